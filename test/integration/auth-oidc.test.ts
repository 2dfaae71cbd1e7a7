// meshbroker's OIDC extension with real clients: tokens signed by a throwaway RSA key whose public
// half is in a JWKS file, sent as the CONNECT auth_token (nats.js `token`), as the CONNECT jwt
// (jwtAuthenticator without a seed) or as the password. Wrong audience, issuer, key or an expired
// token are refused; the permissions claim is enforced; the account claim picks the account.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from "jose";
import {
  jwtAuthenticator, StringCodec,
  type ConnectionOptions, type NatsConnection,
} from "nats";
import { startBroker, topologies, type TestBroker, type Topology } from "../helpers/broker.js";
import { closedWithin, rawConnect, type RawClient } from "../helpers/raw.js";
import { take, nextPermissionError, cleanupAfterEach } from "../helpers/wait.js";
import { natsClient, natsRefusal } from "../helpers/clients.js";

const sc = StringCodec();
const INFO_LINE = /^INFO \{.*\} ?\r\n/;
const ISSUER = "https://idp.example.test/realms/acme";
const AUDIENCE = "meshbroker";

let dir: string;
let jwksFile: string;
let signing: { privateKey: CryptoKey; publicKey: CryptoKey };
let stranger: { privateKey: CryptoKey; publicKey: CryptoKey };

beforeAll(async () => {
  signing = await generateKeyPair("RS256");
  stranger = await generateKeyPair("RS256");
  dir = await mkdtemp(path.join(os.tmpdir(), "meshbroker-oidc-"));
  jwksFile = path.join(dir, "jwks.json");
  const jwk = { ...(await exportJWK(signing.publicKey)), kid: "test-key-1", alg: "RS256", use: "sig" };
  await writeFile(jwksFile, JSON.stringify({ keys: [jwk] }));
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const cleanups = cleanupAfterEach();

function config(): string {
  return `oidc {
    jwks_file: "${jwksFile}"
    issuer: "${ISSUER}"
    audience: "${AUDIENCE}"
    user_claim: "preferred_username"
    account_claim: "nats_account"
    permissions_claim: "nats_permissions"
  }
  accounts {
    TEAM: { users: [{ user: team-svc, password: pw }] }
  }`;
}

interface Mint { iss?: string; aud?: string; exp?: number | string; key?: CryptoKey; kid?: string }

function mint(claims: JWTPayload, m: Mint = {}): Promise<string> {
  return new SignJWT({ preferred_username: "alice", ...claims })
    .setProtectedHeader({ alg: "RS256", kid: m.kid ?? "test-key-1", typ: "JWT" })
    .setIssuer(m.iss ?? ISSUER)
    .setAudience(m.aud ?? AUDIENCE)
    .setSubject("3f6b1c2e-user")
    .setIssuedAt()
    .setExpirationTime(m.exp ?? "10m")
    .sign(m.key ?? signing.privateKey);
}

async function broker(topology: Topology): Promise<TestBroker> {
  const b = await startBroker({ topology, config: config() });
  cleanups.push(() => b.stop());
  return b;
}

async function client(b: TestBroker, opts: Partial<ConnectionOptions>): Promise<NatsConnection> {
  return natsClient(cleanups, b.natsPort, opts);
}

async function refused(b: TestBroker, opts: Partial<ConnectionOptions>): Promise<{ code?: string }> {
  return natsRefusal(b.natsPort, opts);
}


async function roundTrip(nc: NatsConnection, subject: string): Promise<void> {
  const sub = nc.subscribe(subject, { max: 1 });
  nc.publish(subject, sc.encode("ping"));
  expect(await take(sub, 1)).toEqual([`${subject}:ping`]);
}

async function raw(port: number): Promise<RawClient> {
  const c = await rawConnect(port);
  cleanups.push(() => c.close());
  await c.expect(INFO_LINE);
  return c;
}


describe.each(topologies)("OIDC tokens (%s)", (topology) => {
  it("accepts a valid token as auth_token, as the CONNECT jwt, and as the password", async () => {
    const b = await broker(topology);
    const token = await mint({});
    await roundTrip(await client(b, { token }), "via.token");
    await roundTrip(await client(b, { authenticator: jwtAuthenticator(token) }), "via.jwt");
    await roundTrip(await client(b, { user: "alice", pass: token }), "via.password");
  });

  it("refuses a token for another audience", async () => {
    const b = await broker(topology);
    const token = await mint({}, { aud: "someone-else" });
    expect((await refused(b, { token })).code).toBe("AUTHORIZATION_VIOLATION");
    expect((await refused(b, { authenticator: jwtAuthenticator(token) })).code).toBe("AUTHORIZATION_VIOLATION");
  });

  it("refuses an expired token (past the clock tolerance)", async () => {
    const b = await broker(topology);
    const token = await mint({}, { exp: Math.floor(Date.now() / 1000) - 3600 });
    expect((await refused(b, { token })).code).toBe("AUTHORIZATION_VIOLATION");
    const c = await raw(b.natsPort);
    await c.send(`CONNECT ${JSON.stringify({ verbose: false, auth_token: token })}\r\nPING\r\n`);
    await closedWithin(c, 3_000);
    expect(c.received().replace(INFO_LINE, "")).toBe("-ERR 'Authorization Violation'\r\n");
  });

  it("refuses another issuer, a key not in the JWKS, and a tampered token", async () => {
    const b = await broker(topology);
    expect((await refused(b, { token: await mint({}, { iss: "https://evil.example.test" }) })).code).toBe("AUTHORIZATION_VIOLATION");
    expect((await refused(b, { token: await mint({}, { key: stranger.privateKey }) })).code).toBe("AUTHORIZATION_VIOLATION");
    const [h, , s] = (await mint({})).split(".");
    const forged = Buffer.from(JSON.stringify({
      preferred_username: "root", iss: ISSUER, aud: AUDIENCE, exp: Math.floor(Date.now() / 1000) + 600,
    })).toString("base64url");
    expect((await refused(b, { token: `${h}.${forged}.${s}` })).code).toBe("AUTHORIZATION_VIOLATION");
  });

  it("enforces the permissions claim; a violation leaves the connection open", async () => {
    const b = await broker(topology);
    const token = await mint({ nats_permissions: { publish: { allow: ["team.>"] }, subscribe: { allow: ["team.>"], deny: ["team.hr"] } } });
    const nc = await client(b, { token });
    const violation = nextPermissionError(nc);
    nc.publish("finance.report", sc.encode("no"));
    expect(await violation).toMatchObject({ operation: "publish", subject: "finance.report" });
    await roundTrip(nc, "team.standup");

    const c = await raw(b.natsPort);
    await c.send(`CONNECT ${JSON.stringify({ verbose: false, pedantic: false, auth_token: token })}\r\n` +
      "PUB finance.x 1\r\nx\r\nPUB team.x 1\r\nx\r\nSUB finance.> 1\r\nSUB team.hr 2\r\nSUB team.> 3\r\nPING\r\n");
    await c.expect("PONG\r\n");
    expect(c.received().replace(INFO_LINE, "")).toBe(
      `-ERR 'Permissions Violation for Publish to "finance.x"'\r\n` +
      `-ERR 'Permissions Violation for Subscription to "finance.>"'\r\n` +
      `-ERR 'Permissions Violation for Subscription to "team.hr"'\r\n` +
      "PONG\r\n",
    );
    expect(c.isClosed()).toBe(false);
  });

  it("refuses a token whose permissions claim is malformed", async () => {
    const b = await broker(topology);
    const token = await mint({ nats_permissions: "everything" });
    expect((await refused(b, { token })).code).toBe("AUTHORIZATION_VIOLATION");
  });

  it("the account claim puts the client in that account", async () => {
    const b = await broker(topology);
    const teamToken = await mint({ nats_account: "TEAM" });
    const globalToken = await mint({ preferred_username: "bob" });
    const oidcTeam = await client(b, { token: teamToken });
    const oidcGlobal = await client(b, { token: globalToken });
    const svc = await client(b, { user: "team-svc", pass: "pw" });
    const inTeam = oidcTeam.subscribe("news");
    const inGlobal = oidcGlobal.subscribe("news");
    await Promise.all([oidcTeam.flush(), oidcGlobal.flush()]);
    svc.publish("news", sc.encode("for TEAM"));
    await svc.flush();
    oidcGlobal.publish("news", sc.encode("global"));
    expect(await take(inTeam, 1)).toEqual(["news:for TEAM"]);
    expect(await take(inGlobal, 1)).toEqual(["news:global"]);
  });

  it("disconnects the client when its token expires", async () => {
    const b = await broker(topology);
    const token = await mint({}, { exp: Math.floor(Date.now() / 1000) + 2 });
    const c = await raw(b.natsPort);
    await c.send(`CONNECT ${JSON.stringify({ verbose: false, auth_token: token })}\r\nPING\r\n`);
    await c.expect("PONG\r\n");
    await closedWithin(c, 6_000);
    expect(c.received().replace(INFO_LINE, "")).toBe("PONG\r\n-ERR 'User Authentication Expired'\r\n");
    expect(c.isClosed()).toBe(true);
  }, 10_000);
});
