import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWTPayload } from "jose";
import { createAccount, createOperator, createUser, encodeAccount, encodeOperator, encodeUser } from "@nats-io/jwt";
import { defaultOptions, type OidcConfig, type Options } from "../../services/common/config/index.js";
import { AuthPipeline, type AuthContext, type AuthResult, type Credentials } from "../../services/edge/auth/index.js";
import { isOidcToken, permissionsFromClaim } from "../../services/edge/auth/oidc.js";

const ISSUER = "https://idp.example.com/realms/acme";
const AUDIENCE = "meshbroker";
const STD: AuthContext = { connectionType: "STANDARD" };

let dir: string;
let jwksFile: string;
let rsa: { privateKey: CryptoKey; publicKey: CryptoKey };
let ec: { privateKey: CryptoKey; publicKey: CryptoKey };
let stranger: { privateKey: CryptoKey; publicKey: CryptoKey };

beforeAll(async () => {
  rsa = await generateKeyPair("RS256");
  ec = await generateKeyPair("ES256");
  stranger = await generateKeyPair("RS256");
  const keys = [
    { ...(await exportJWK(rsa.publicKey)), kid: "rsa-1", alg: "RS256", use: "sig" },
    { ...(await exportJWK(ec.publicKey)), kid: "ec-1", alg: "ES256", use: "sig" },
  ];
  dir = mkdtempSync(join(tmpdir(), "auth-oidc-"));
  jwksFile = join(dir, "jwks.json");
  writeFileSync(jwksFile, JSON.stringify({ keys }));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function oidc(extra: Partial<OidcConfig> = {}): OidcConfig {
  return {
    jwksFile, issuer: ISSUER, audience: AUDIENCE, userClaim: "preferred_username", accountClaim: "nats_account",
    permissionsClaim: "nats_permissions", defaultPermissions: { subscribe: { allow: ["public.>"] } }, clockToleranceSec: 60,
    ...extra,
  };
}

function pipeline(extra: Partial<Options> = {}, cfg: Partial<OidcConfig> = {}): AuthPipeline {
  return new AuthPipeline(defaultOptions({ oidc: oidc(cfg), ...extra }));
}

interface Mint { key?: CryptoKey; alg?: string; kid?: string; iss?: string; aud?: string; exp?: number | string; iat?: number; nbf?: number }

async function mint(claims: JWTPayload, m: Mint = {}): Promise<string> {
  const alg = m.alg ?? "RS256";
  const key = m.key ?? (alg === "ES256" ? ec.privateKey : rsa.privateKey);
  const j = new SignJWT({ preferred_username: "alice", ...claims })
    .setProtectedHeader({ alg, kid: m.kid ?? (alg === "ES256" ? "ec-1" : "rsa-1"), typ: "JWT" })
    .setIssuer(m.iss ?? ISSUER)
    .setAudience(m.aud ?? AUDIENCE)
    .setSubject("0b5d7c0e")
    .setIssuedAt(m.iat)
    .setExpirationTime(m.exp ?? "10m");
  if (m.nbf !== undefined) j.setNotBefore(m.nbf);
  return j.sign(key);
}

async function auth(p: AuthPipeline, creds: Credentials, ctx: AuthContext = STD): Promise<AuthResult> {
  return p.authenticate(creds, ctx);
}

const nowSec = () => Math.floor(Date.now() / 1000);

describe("OIDC", () => {
  it("accepts a good RS256 token: user, account and permissions from claims, exp", async () => {
    const p = pipeline();
    expect(p.required).toBe(true);
    expect(p.needsNonce).toBe(false);
    const exp = nowSec() + 600;
    const token = await mint({ nats_account: "ENG", nats_permissions: { publish: { allow: ["eng.>"], deny: ["eng.secret"] }, subscribe: ["eng.>", "_INBOX.>"] } }, { exp });
    const r = p.authenticate({ jwt: token }, STD);
    expect(r).toBeInstanceOf(Promise);
    expect(await r).toEqual({
      ok: true,
      user: {
        name: "alice", account: "ENG", expiresAt: exp * 1000,
        permissions: { publish: { allow: ["eng.>"], deny: ["eng.secret"] }, subscribe: { allow: ["eng.>", "_INBOX.>"] } },
      },
    });
  });

  it("accepts a good ES256 token as auth_token, as the password (MQTT), and as the websocket cookie", async () => {
    const p = pipeline();
    const token = await mint({}, { alg: "ES256" });
    const expected = { ok: true, user: { name: "alice", account: "$G", permissions: { subscribe: { allow: ["public.>"] } } } };
    expect(await auth(p, { token })).toMatchObject(expected);
    expect(await auth(p, { user: "whatever", pass: token }, { connectionType: "MQTT" })).toMatchObject(expected);
    expect(await auth(p, {}, { connectionType: "WEBSOCKET", cookieJwt: token })).toMatchObject(expected);
  });

  it("account: the claim, else oidc.account, else $G", async () => {
    const token = await mint({});
    expect(await auth(pipeline({}, { account: "DEFAULT" }), { jwt: token })).toMatchObject({ ok: true, user: { account: "DEFAULT" } });
    expect(await auth(pipeline({}, { accountClaim: undefined }), { jwt: await mint({ nats_account: "X" }) })).toMatchObject({ ok: true, user: { account: "$G" } });
    expect(await auth(pipeline(), { jwt: await mint({ nats_account: 7 }) })).toMatchObject({ ok: false });
  });

  it("refuses a wrong issuer or audience", async () => {
    const p = pipeline();
    expect(await auth(p, { jwt: await mint({}, { iss: "https://evil.example.com" }) })).toEqual({ ok: false, reason: "token issuer not accepted" });
    expect(await auth(p, { jwt: await mint({}, { aud: "someone-else" }) })).toEqual({ ok: false, reason: "token audience not accepted" });
  });

  it("refuses an expired token beyond the clock tolerance, accepts one within it", async () => {
    const p = pipeline();
    expect(await auth(p, { jwt: await mint({}, { exp: nowSec() - 120, iat: nowSec() - 600 }) })).toEqual({ ok: false, reason: "token expired" });
    expect(await auth(p, { jwt: await mint({}, { exp: nowSec() - 30, iat: nowSec() - 600 }) })).toMatchObject({ ok: true });
    expect(await auth(p, { jwt: await mint({}, { nbf: nowSec() + 600 }) })).toEqual({ ok: false, reason: "token not yet valid" });
  });

  it("refuses an unknown kid and a signature by another key", async () => {
    const p = pipeline();
    expect(await auth(p, { jwt: await mint({}, { key: stranger.privateKey, kid: "other" }) })).toEqual({ ok: false, reason: "no key in the JWKS for the token" });
    expect(await auth(p, { jwt: await mint({}, { key: stranger.privateKey, kid: "rsa-1" }) })).toEqual({ ok: false, reason: "token signature not verified" });
    const good = await mint({});
    const [h, , s] = good.split(".");
    const forged = `${h}.${Buffer.from(JSON.stringify({ preferred_username: "root", iss: ISSUER, aud: AUDIENCE, exp: nowSec() + 60 })).toString("base64url")}.${s}`;
    expect(await auth(p, { jwt: forged })).toEqual({ ok: false, reason: "token signature not verified" });
  });

  it("refuses a token without the user claim or with a malformed permissions claim", async () => {
    const p = pipeline({}, { userClaim: "email" });
    expect(await auth(p, { jwt: await mint({}) })).toEqual({ ok: false, reason: "token has no email claim" });
    const q = pipeline();
    expect(await auth(q, { jwt: await mint({ nats_permissions: "everything" }) })).toMatchObject({ ok: false });
    expect(await auth(q, { jwt: await mint({ nats_permissions: { publish: { allow: [1] } } }) })).toMatchObject({ ok: false });
  });

  it("reads a nested permissions claim and allow_responses", async () => {
    const p = pipeline({}, { permissionsClaim: "ext.nats" });
    const token = await mint({ ext: { nats: { pub: "a", sub: { deny: ["b"] }, allow_responses: true } } });
    expect(await auth(p, { jwt: token })).toMatchObject({
      ok: true, user: { permissions: { publish: { allow: ["a"] }, subscribe: { deny: ["b"] }, allowResponses: { maxMsgs: 1, expiresMs: 120_000 } } },
    });
    expect(permissionsFromClaim({ publish: ["x"], allow_responses: { max: 3, expires: 5 } })).toEqual({
      publish: { allow: ["x"] }, allowResponses: { maxMsgs: 3, expiresMs: 5000 },
    });
  });

  it("only asymmetric algorithms count as OIDC tokens", async () => {
    const hs = await new SignJWT({ preferred_username: "alice" }).setProtectedHeader({ alg: "HS256" })
      .setIssuer(ISSUER).setAudience(AUDIENCE).setExpirationTime("10m").sign(new TextEncoder().encode("x".repeat(32)));
    expect(isOidcToken(hs)).toBe(false);
    expect(isOidcToken(await mint({}))).toBe(true);
    expect(isOidcToken("password")).toBe(false);
    expect(await auth(pipeline(), { jwt: hs })).toMatchObject({ ok: false });
  });

  it("coexists with users and with operator mode", async () => {
    const p = pipeline({ authorization: { users: [{ user: "bob", password: "pw" }] } });
    expect(await auth(p, { user: "bob", pass: "pw" })).toMatchObject({ ok: true, user: { name: "bob" } });
    expect(await auth(p, { jwt: await mint({}) })).toMatchObject({ ok: true, user: { name: "alice" } });

    const op = createOperator(), acc = createAccount(), u = createUser();
    const q = pipeline({
      operatorJwts: [await encodeOperator("OP", op)],
      resolverPreload: { [acc.getPublicKey()]: await encodeAccount("A", acc, {}, { signer: op }) },
    });
    expect(await auth(q, { jwt: await mint({}) })).toMatchObject({ ok: true, user: { name: "alice" } });
    const natsJwt = await encodeUser("u", u, acc, { bearer_token: true });
    expect(await auth(q, { jwt: natsJwt })).toMatchObject({ ok: true, user: { name: u.getPublicKey(), account: acc.getPublicKey() } });
  });

  it("throws at construction for an unreadable or invalid JWKS file", () => {
    expect(() => pipeline({}, { jwksFile: join(dir, "missing.json") })).toThrow(/oidc: can not read jwks_file/);
    const bad = join(dir, "bad.json");
    writeFileSync(bad, JSON.stringify({ nokeys: true }));
    expect(() => pipeline({}, { jwksFile: bad })).toThrow(/not a JSON Web Key Set/);
  });
});
