import { describe, it, expect, beforeAll } from "vitest";
import {
  Algorithms, encodeAccount, encodeActivation, encodeOperator, encodeUser, newScopedSigner,
  createAccount, createOperator, createUser, type KeyPair,
} from "@nats-io/jwt";
import { defaultOptions, type Options } from "../../services/common/config/index.js";
import { AuthPipeline, type AuthContext, type AuthResult, type Credentials } from "../../services/edge/auth/index.js";
import { decodeNatsJwt, isNatsJwt } from "../../services/common/nats-jwt.js";

const te = new TextEncoder();
const nowSec = () => Math.floor(Date.now() / 1000);

function signNonce(kp: KeyPair, nonce: string): string {
  return Buffer.from(kp.sign(te.encode(nonce))).toString("base64url");
}

/** Re-encodes a JWT's payload after `edit`, keeping the original header and signature. */
function tamper(jwt: string, edit: (claims: Record<string, any>) => void): string {
  const [h, p, s] = jwt.split(".");
  const claims = JSON.parse(Buffer.from(p, "base64url").toString());
  edit(claims);
  return `${h}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.${s}`;
}

// Keys and JWTs of one operator setup, minted with @nats-io/jwt.
const op = createOperator(), opSigning = createOperator();
const sys = createAccount();
const acc = createAccount(), accSigning = createAccount(), accScoped = createAccount();
const other = createAccount(); // exports a service and a stream to acc
const revokedAcc = createAccount();
const noBearer = createAccount();
const foreignOp = createOperator();
const foreignAcc = createAccount();
const revokedUser = createUser();

let operatorJwt: string;
let preload: Record<string, string>;

beforeAll(async () => {
  operatorJwt = await encodeOperator("OP", op, { signing_keys: [opSigning.getPublicKey()], system_account: sys.getPublicKey() });
  const activation = await encodeActivation("act", acc, other, "service", { subject: "private.svc" });
  preload = {
    [sys.getPublicKey()]: await encodeAccount("SYS", sys, {}, { signer: op }),
    [acc.getPublicKey()]: await encodeAccount("ACC", acc, {
      signing_keys: [accSigning.getPublicKey(), newScopedSigner(accScoped, "dev", { pub: { allow: ["{{name()}}.>", "dev.{{subject()}}"], deny: [] }, sub: { allow: ["_INBOX.>"], deny: [] } })],
      revocations: { [revokedUser.getPublicKey()]: nowSec() + 5 },
      imports: [
        { name: "svc", type: "service", account: other.getPublicKey(), subject: "help", to: "help.remote" },
        { name: "svc2", type: "service", account: other.getPublicKey(), subject: "private.svc", local_subject: "mine.svc", token: activation },
        { name: "feed", type: "stream", account: other.getPublicKey(), subject: "feed.>", to: "imported" },
        { name: "mapped", type: "stream", account: other.getPublicKey(), subject: "raw.>", local_subject: "cooked.>" },
      ],
    }, { signer: opSigning }), // issued by an operator signing key
    [other.getPublicKey()]: await encodeAccount("OTHER", other, {
      exports: [
        { name: "help", type: "service", subject: "help.remote", response_type: "Stream" },
        { name: "private", type: "service", subject: "private.svc", token_req: true },
        { name: "feed", type: "stream", subject: "feed.>" },
        { name: "raw", type: "stream", subject: "raw.>" },
      ],
      default_permissions: { pub: { allow: ["other.>"] }, sub: { allow: ["other.>"] } },
    }, { signer: op }),
    [revokedAcc.getPublicKey()]: await encodeAccount("REV", revokedAcc, { revocations: { "*": nowSec() + 5 } }, { signer: op }),
    [noBearer.getPublicKey()]: await encodeAccount("NOBEARER", noBearer, { limits: { disallow_bearer: true } }, { signer: op }),
    [foreignAcc.getPublicKey()]: await encodeAccount("FOREIGN", foreignAcc, {}, { signer: foreignOp }),
  };
});

function pipeline(extra: Partial<Options> = {}): AuthPipeline {
  return new AuthPipeline(defaultOptions({ operatorJwts: [operatorJwt], resolver: "MEMORY", resolverPreload: preload, ...extra }));
}

/** Authenticates a user JWT, signing the nonce with `kp` unless told not to. */
async function connect(p: AuthPipeline, jwt: string, kp: KeyPair | undefined, ctx: Partial<AuthContext> = {},
  creds: Partial<Credentials> = {}): Promise<AuthResult> {
  const nonce = p.newNonce();
  const c: Credentials = { jwt, ...(kp ? { sig: signNonce(kp, nonce) } : {}), ...creds };
  return p.authenticate(c, { connectionType: "STANDARD", nonce, ...ctx });
}

describe("operator mode: setup", () => {
  it("requires auth and a nonce; knows the system account and the accounts", () => {
    const p = pipeline();
    expect(p.required).toBe(true);
    expect(p.needsNonce).toBe(true);
    expect(p.systemAccount).toBe(sys.getPublicKey());
    const names = p.accounts().map((a) => a.name);
    expect(names).toContain(acc.getPublicKey());
    expect(names).not.toContain(foreignAcc.getPublicKey()); // not trusted, never loaded
  });

  it("converts account JWT exports and imports", () => {
    const accounts = pipeline().accounts();
    const a = accounts.find((x) => x.name === acc.getPublicKey())!;
    const o = accounts.find((x) => x.name === other.getPublicKey())!;
    const otherKey = other.getPublicKey();
    expect(a.imports).toEqual([
      { kind: "service", account: otherKey, subject: "help.remote", to: "help" },
      // token_req: the activation, checked (issuer, importer, times, revocation), travels with the import.
      { kind: "service", account: otherKey, subject: "private.svc", to: "mine.svc", activation: { subject: "private.svc" } },
      { kind: "stream", account: otherKey, subject: "feed.>", prefix: "imported" },
      { kind: "stream", account: otherKey, subject: "raw.>", to: "cooked.>" },
    ]);
    expect(o.exports).toEqual([
      { kind: "service", subject: "help.remote", responseType: "Stream" },
      { kind: "service", subject: "private.svc", tokenRequired: true },
      { kind: "stream", subject: "feed.>" },
      { kind: "stream", subject: "raw.>" },
    ]);
    expect(o.defaultPermissions).toEqual({ publish: { allow: ["other.>"] }, subscribe: { allow: ["other.>"] } });
  });

  it("throws for a bad operator JWT, a tampered or misfiled account JWT (cross-field rules are the config's)", async () => {
    expect(() => pipeline({ operatorJwts: [tamper(operatorJwt, (c) => { c.name = "EVIL"; })] })).toThrow(/operator JWT.*signature/);
    const signedByOther = await encodeOperator("OP", op.getPublicKey(), {}, { signer: foreignOp });
    expect(() => pipeline({ operatorJwts: [signedByOther] })).toThrow(/signed neither by the operator nor by one of its signing keys/);
    const accountAsOperator = preload[sys.getPublicKey()];
    expect(() => pipeline({ operatorJwts: [accountAsOperator] })).toThrow(/operator JWT/);
    const key = acc.getPublicKey();
    expect(() => pipeline({ resolverPreload: { ...preload, [key]: tamper(preload[key], (c) => { c.nats.revocations = {}; }) } }))
      .toThrow(`preload account error for "${key}": signature verification failed`);
    expect(() => pipeline({ resolverPreload: { [key]: preload[sys.getPublicKey()] } })).toThrow(/not the key it is listed under/);
    expect(() => pipeline({ resolverPreload: { ["NOTAKEY"]: preload[key] } })).toThrow(/not a valid public account key/);
    expect(pipeline({ systemAccount: sys.getPublicKey() }).systemAccount).toBe(sys.getPublicKey());
  });

  it("decodes nats JWTs: header, issuer kind and signature", async () => {
    const u = createUser();
    const jwt = await encodeUser("u", u, acc);
    expect(isNatsJwt(jwt)).toBe(true);
    const d = decodeNatsJwt(jwt, "account");
    expect(d).toMatchObject({ kind: "user", version: 2, claims: { sub: u.getPublicKey(), iss: acc.getPublicKey(), name: "u" } });
    expect(() => decodeNatsJwt(jwt, "operator")).toThrow(expect.objectContaining({ code: "issuer" }));
    expect(() => decodeNatsJwt("a.b", "account")).toThrow(/3 chunks/);
  });
});

describe("operator mode: users", () => {
  it("a user signed by its account, proving its key with the nonce", async () => {
    const p = pipeline();
    const u = createUser();
    const jwt = await encodeUser("alice", u, acc, { pub: { allow: ["foo.>"] }, sub: { deny: ["secret"] } });
    expect(await connect(p, jwt, u)).toEqual({
      ok: true,
      user: { name: u.getPublicKey(), account: acc.getPublicKey(), permissions: { publish: { allow: ["foo.>"] }, subscribe: { deny: ["secret"] } } },
    });
  });

  it("refuses a missing, foreign or wrong-nonce signature, and no JWT", async () => {
    const p = pipeline();
    const u = createUser();
    const jwt = await encodeUser("alice", u, acc);
    expect(await connect(p, jwt, undefined)).toEqual({ ok: false, reason: "signature missing" });
    expect(await connect(p, jwt, createUser())).toEqual({ ok: false, reason: "signature not verified" });
    expect(p.authenticate({ jwt, sig: signNonce(u, "other") }, { connectionType: "STANDARD", nonce: p.newNonce() }))
      .toEqual({ ok: false, reason: "signature not verified" });
    expect(p.authenticate({ user: "a", pass: "b" }, { connectionType: "STANDARD", nonce: p.newNonce() }))
      .toEqual({ ok: false, reason: "user JWT required" });
  });

  it("a bearer user needs no signature", async () => {
    const p = pipeline();
    const jwt = await encodeUser("bearer", createUser(), acc, { bearer_token: true });
    expect(await connect(p, jwt, undefined)).toMatchObject({ ok: true, user: { account: acc.getPublicKey() } });
    // ...unless the account disallows bearer tokens.
    const jwt2 = await encodeUser("bearer", createUser(), noBearer, { bearer_token: true });
    expect(await connect(p, jwt2, undefined)).toEqual({ ok: false, reason: "account does not allow bearer tokens" });
  });

  it("a user signed by an account signing key, with issuer_account", async () => {
    const p = pipeline();
    const u = createUser();
    const jwt = await encodeUser("sk", u, acc.getPublicKey(), {}, { signer: accSigning });
    expect(decodeNatsJwt(jwt, "account").claims.nats.issuer_account).toBe(acc.getPublicKey());
    expect(await connect(p, jwt, u)).toMatchObject({ ok: true, user: { name: u.getPublicKey(), account: acc.getPublicKey() } });
    // A key the account does not list.
    const rogue = await encodeUser("rogue", u, acc.getPublicKey(), {}, { signer: createAccount() });
    expect(await connect(p, rogue, u)).toEqual({ ok: false, reason: "user JWT issuer is not known" });
    // A signing key without issuer_account names no account.
    const noIssuerAccount = tamper(jwt, (c) => { delete c.nats.issuer_account; });
    expect((await connect(p, noIssuerAccount, u)).ok).toBe(false);
  });

  it("a scoped signing key: the template's permissions, expanded", async () => {
    const p = pipeline();
    const u = createUser();
    const jwt = await encodeUser("bob", u, acc.getPublicKey(), {}, { signer: accScoped, scopedUser: true });
    expect(await connect(p, jwt, u)).toEqual({
      ok: true,
      user: {
        name: u.getPublicKey(), account: acc.getPublicKey(),
        // jwt.js templates carry resp {max: 0, ttl: 0}; nats-server reads a present resp as
        // allow_responses with the defaults.
        permissions: {
          publish: { allow: ["bob.>", `dev.${u.getPublicKey()}`] }, subscribe: { allow: ["_INBOX.>"] },
          allowResponses: { maxMsgs: 1, expiresMs: 120_000 },
        },
      },
    });
    // Scoped users may not carry permissions of their own.
    const withPerms = await encodeUser("bob", u, acc.getPublicKey(), { pub: { allow: [">"] } }, { signer: accScoped, scopedUser: true });
    expect(await connect(p, withPerms, u)).toMatchObject({ ok: false, reason: expect.stringMatching(/scoped users/) });
  });

  it("refuses an expired user and one not yet valid; exp becomes expiresAt", async () => {
    const p = pipeline();
    const u = createUser();
    expect(await connect(p, await encodeUser("old", u, acc, {}, { exp: nowSec() - 10 }), u)).toEqual({ ok: false, reason: "user JWT expired" });
    expect(await connect(p, await encodeUser("early", u, acc, {}, { nbf: nowSec() + 3600 }), u)).toEqual({ ok: false, reason: "user JWT not yet valid" });
    const exp = nowSec() + 3600;
    expect(await connect(p, await encodeUser("ok", u, acc, {}, { exp, nbf: nowSec() - 5 }), u)).toMatchObject({ ok: true, user: { expiresAt: exp * 1000 } });
  });

  it("refuses revoked users (by key and by the * wildcard), not those issued after the revocation", async () => {
    const p = pipeline();
    expect(await connect(p, await encodeUser("r", revokedUser, acc), revokedUser)).toEqual({ ok: false, reason: "user authentication revoked" });
    const u = createUser();
    expect(await connect(p, await encodeUser("r", u, revokedAcc), u)).toEqual({ ok: false, reason: "user authentication revoked" });
    const later = tamper(await encodeUser("r", u, revokedAcc), (c) => { c.iat = nowSec() + 60; });
    const resigned = await resign(later, revokedAcc);
    expect(await connect(p, resigned, u)).toMatchObject({ ok: true });
  });

  it("refuses users of an account signed by an unknown operator, and of unknown accounts", async () => {
    const p = pipeline();
    const u = createUser();
    expect(await connect(p, await encodeUser("f", u, foreignAcc), u)).toEqual({ ok: false, reason: "account JWT not signed by a trusted operator" });
    expect(await connect(p, await encodeUser("n", u, createAccount()), u)).toEqual({ ok: false, reason: "account not found" });
  });

  it("refuses a tampered user JWT", async () => {
    const p = pipeline();
    const u = createUser();
    const jwt = await encodeUser("t", u, acc, { pub: { allow: ["mine"] } });
    const widened = tamper(jwt, (c) => { c.nats.pub.allow = [">"]; });
    expect(await connect(p, widened, u)).toEqual({ ok: false, reason: "user JWT not valid: signature verification failed" });
    expect(await connect(p, jwt.slice(0, -4) + "AAAA", u)).toMatchObject({ ok: false });
    expect(await connect(p, "eyJhbGciOiJub25lIn0.e30.", u)).toMatchObject({ ok: false });
  });

  it("words JWT decoding failures without echoing the token", async () => {
    const p = pipeline();
    const u = createUser();
    const [h, claims, sig] = (await encodeUser("h", u, acc)).split(".");
    const b64 = (v: object) => Buffer.from(JSON.stringify(v)).toString("base64url");
    // @nats-io/jwt refuses to issue a user with an operator key; sign one by hand.
    const asOperator = `${h}.${b64({ ...JSON.parse(Buffer.from(claims, "base64url").toString()), iss: op.getPublicKey() })}`;
    const byOperator = `${asOperator}.${Buffer.from(op.sign(te.encode(asOperator))).toString("base64url")}`;
    const cases: [string, string][] = [
      [byOperator, "issuer is not a valid public key of the expected kind"],
      ["a.b", "expected 3 chunks"],
      ["a+b.c.d", "not base64url"],
      ["abc.def.ghi", "malformed JWT"],
      [`${b64({ typ: "EVIL\n", alg: "ed25519-nkey" })}.${claims}.${sig}`, "not supported type"],
      [`${b64({ typ: "JWT", alg: "EVIL\n" })}.${claims}.${sig}`, "unexpected algorithm"],
    ];
    for (const [jwt, why] of cases) expect(await connect(p, jwt, u)).toEqual({ ok: false, reason: `user JWT not valid: ${why}` });
  });

  it("maps the claims' permissions, response permissions and limits", async () => {
    const p = pipeline();
    const u = createUser();
    const jwt = await encodeUser("perm", u, acc, {
      pub: { allow: ["a.>"], deny: ["a.secret"] }, sub: { allow: ["b.*"] }, resp: { max: 5, ttl: 1_500_000_000 }, subs: 10, payload: 2048,
    });
    expect(await connect(p, jwt, u)).toEqual({
      ok: true,
      user: {
        name: u.getPublicKey(), account: acc.getPublicKey(),
        permissions: { publish: { allow: ["a.>"], deny: ["a.secret"] }, subscribe: { allow: ["b.*"] }, allowResponses: { maxMsgs: 5, expiresMs: 1500 } },
        limits: { maxSubscriptions: 10, maxPayload: 2048 },
      },
    });
    // resp alone: publishing is limited to replies; zero values take the defaults.
    const respOnly = await encodeUser("resp", u, acc, { resp: { max: 0, ttl: 0 } });
    expect(await connect(p, respOnly, u)).toMatchObject({
      ok: true, user: { permissions: { publish: { allow: [] }, allowResponses: { maxMsgs: 1, expiresMs: 120_000 } } },
    });
    // No permissions of its own: the account's default_permissions.
    const dflt = await encodeUser("d", u, other);
    expect(await connect(p, dflt, u)).toMatchObject({ ok: true, user: { permissions: { publish: { allow: ["other.>"] } } } });
  });

  it("allowed_connection_types in the claims", async () => {
    const p = pipeline();
    const u = createUser();
    const jwt = await encodeUser("ws", u, acc, { allowed_connection_types: ["WEBSOCKET", "MQTT"] });
    expect(await connect(p, jwt, u)).toEqual({ ok: false, reason: "connection type STANDARD not allowed" });
    expect(await connect(p, jwt, u, { connectionType: "WEBSOCKET" })).toMatchObject({ ok: true });
    expect(await connect(p, jwt, u, { connectionType: "MQTT" })).toMatchObject({ ok: true });
    // Only types this server does not know: refused everywhere.
    const unknown = await encodeUser("x", u, acc, { allowed_connection_types: ["IN_PROCESS"] });
    expect(await connect(p, unknown, u, { connectionType: "WEBSOCKET" })).toMatchObject({ ok: false });
  });

  it("the websocket cookie JWT is used when CONNECT has none", async () => {
    const p = pipeline();
    const u = createUser();
    const jwt = await encodeUser("c", u, acc, { bearer_token: true });
    expect(p.authenticate({}, { connectionType: "WEBSOCKET", nonce: p.newNonce(), cookieJwt: jwt })).toMatchObject({ ok: true });
    const other = await encodeUser("d", createUser(), acc, { bearer_token: true, pub: { allow: ["x"] } });
    // The CONNECT jwt wins over the cookie.
    expect(p.authenticate({ jwt: other }, { connectionType: "WEBSOCKET", cookieJwt: jwt })).toMatchObject({
      ok: true, user: { permissions: { publish: { allow: ["x"] } } },
    });
  });

  it("src CIDRs and connect time windows", async () => {
    const p = pipeline();
    const u = createUser();
    const jwt = await encodeUser("src", u, acc, { src: ["10.1.0.0/16", "::1/128"] });
    expect(await connect(p, jwt, u, { remoteAddress: "10.1.2.3" })).toMatchObject({ ok: true });
    expect(await connect(p, jwt, u, { remoteAddress: "::ffff:10.1.2.3" })).toMatchObject({ ok: true });
    expect(await connect(p, jwt, u, { remoteAddress: "::1" })).toMatchObject({ ok: true });
    expect(await connect(p, jwt, u, { remoteAddress: "10.2.0.1" })).toEqual({ ok: false, reason: "source address not allowed" });
    expect(await connect(p, jwt, u)).toEqual({ ok: false, reason: "source address not allowed" });

    const hh = (h: number) => `${String(((h % 24) + 24) % 24).padStart(2, "0")}:00:00`;
    const hour = new Date().getUTCHours();
    const open = await encodeUser("t", u, acc, { times: [{ start: hh(hour - 1), end: hh(hour + 2) }], locale: "UTC" });
    const r = await connect(p, open, u);
    expect(r).toMatchObject({ ok: true });
    expect(r.ok && r.user.expiresAt! > Date.now()).toBe(true);
    const closed = await encodeUser("t", u, acc, { times: [{ start: hh(hour + 2), end: hh(hour + 3) }], locale: "UTC" });
    expect(await connect(p, closed, u)).toEqual({ ok: false, reason: "outside connect times" });
    const badZone = await encodeUser("t", u, acc, { times: [{ start: "00:00:00", end: "23:59:59" }], locale: "Nowhere/Special" });
    expect(await connect(p, badZone, u)).toEqual({ ok: false, reason: "outside connect times" });
  });

  it("accepts v1 JWTs (alg ed25519, signature over the payload)", async () => {
    const p = pipeline();
    const u = createUser();
    const jwt = await encodeUser("v1", u, acc, { pub: { allow: ["v1"] } }, { algorithm: Algorithms.v1 });
    expect(decodeNatsJwt(jwt, "account").version).toBe(1);
    expect(await connect(p, jwt, u)).toMatchObject({ ok: true, user: { permissions: { publish: { allow: ["v1"] } } } });
  });
});

/** Signs a (tampered) JWT again with `kp`, as its issuer would. */
async function resign(jwt: string, kp: KeyPair): Promise<string> {
  const [h, p] = jwt.split(".");
  const sig = Buffer.from(kp.sign(te.encode(`${h}.${p}`))).toString("base64url");
  return `${h}.${p}.${sig}`;
}
