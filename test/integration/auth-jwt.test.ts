// Operator mode with real clients: an operator, accounts and users made with @nats-io/jwt and
// @nats-io/nkeys (as nsc would), `resolver: MEMORY` with `resolver_preload`. Creds files through
// nats.js credsAuthenticator, bearer tokens through jwtAuthenticator, expired and revoked users,
// user JWT permissions; and the raw bytes of each refusal, compared with nats-server 2.9.10.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFile } from "node:fs/promises";
import {
  credsAuthenticator, jwtAuthenticator, StringCodec,
  type ConnectionOptions, type NatsConnection,
} from "nats";
import { startBroker, topologies, type TestBroker, type Topology } from "../helpers/broker.js";
import {
  credsDir, newAccount, newOperator, newUser, operatorConfig, reissueAccount,
  type TestAccount, type TestOperator, type TestUser,
} from "../helpers/creds.js";
import { startNatsServer } from "../helpers/nats-server.js";
import { rawConnect, type RawClient } from "../helpers/raw.js";
import { nextPermissionError, cleanupAfterEach, firstData } from "../helpers/wait.js";
import { natsClient, natsRefusal } from "../helpers/clients.js";

const sc = StringCodec();
const INFO_LINE = /^INFO \{.*\} ?\r\n/;
const AUTH_VIOLATION = "-ERR 'Authorization Violation'\r\n";

const cleanups = cleanupAfterEach();

// One operator and its accounts and users for the whole file.
let op: TestOperator;
let acme: TestAccount;
let users: Record<"plain" | "bearer" | "expired" | "revoked" | "limited" | "stranger", TestUser>;
let files: Awaited<ReturnType<typeof credsDir>>;
let config: string;

beforeAll(async () => {
  op = await newOperator();
  // ACME's first JWT; the one the server gets (below) is re-issued with a revocation.
  const acmeV1 = await newAccount(op, "ACME");
  const nowSec = Math.floor(Date.now() / 1000);
  users = {
    plain: await newUser(acmeV1, "plain"),
    bearer: await newUser(acmeV1, "bearer", { bearer_token: true }),
    expired: await newUser(acmeV1, "expired", {}, { exp: nowSec - 60 }),
    revoked: await newUser(acmeV1, "revoked"),
    limited: await newUser(acmeV1, "limited", {
      pub: { allow: ["allowed.>"], deny: ["allowed.secret"] },
      sub: { allow: ["allowed.>", "_INBOX.>"] },
    }),
    // A user of an account the operator did not sign.
    stranger: await newUser(await newAccount(await newOperator("ROGUE"), "ELSEWHERE"), "stranger"),
  };
  // The account JWT revokes one user (every JWT of it issued up to now).
  acme = await reissueAccount(op, acmeV1, { revocations: { [users.revoked.pub]: Math.floor(Date.now() / 1000) } });
  files = await credsDir();
  config = operatorConfig(op, [acme]);
});

afterAll(async () => {
  await files?.cleanup();
});

async function broker(topology: Topology): Promise<TestBroker> {
  const b = await startBroker({ topology, config });
  cleanups.push(() => b.stop());
  return b;
}

async function client(b: TestBroker, opts: Partial<ConnectionOptions>): Promise<NatsConnection> {
  return natsClient(cleanups, b.natsPort, opts);
}

async function refused(b: TestBroker, opts: Partial<ConnectionOptions>): Promise<{ code?: string; message: string }> {
  return natsRefusal(b.natsPort, opts);
}

async function credsOf(name: string, user: TestUser): Promise<Uint8Array> {
  return new Uint8Array(await readFile(await files.write(name, user)));
}

async function roundTrip(nc: NatsConnection, subject: string): Promise<void> {
  const sub = nc.subscribe(subject, { max: 1 });
  nc.publish(subject, sc.encode("ping"));
  expect(await firstData(sub)).toBe("ping");
}

async function raw(port: number): Promise<RawClient> {
  const c = await rawConnect(port);
  cleanups.push(() => c.close());
  await c.expect(INFO_LINE);
  return c;
}

/** CONNECT as a JWT user over a raw socket: the INFO nonce signed with the user's key (unless `sign` is false). */
async function rawJwtConnect(port: number, user: TestUser, sign = true): Promise<RawClient> {
  const c = await raw(port);
  const info = JSON.parse(c.received().match(INFO_LINE)![0].slice(5)) as { nonce?: string };
  const o: Record<string, unknown> = { verbose: false, pedantic: false, jwt: user.jwt };
  if (sign && info.nonce) o.sig = Buffer.from(user.kp.sign(new TextEncoder().encode(info.nonce))).toString("base64url");
  await c.send(`CONNECT ${JSON.stringify(o)}\r\nPING\r\n`);
  return c;
}

function afterInfo(c: RawClient): string {
  return c.received().replace(INFO_LINE, "") + (c.isClosed() ? "<closed>" : "");
}

async function closedWithin(c: RawClient, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([c.closed, new Promise<void>((r) => { timer = setTimeout(r, ms); })]);
  clearTimeout(timer);
}


describe.each(topologies)("operator mode: JWT users (%s)", (topology) => {
  it("a creds file (JWT + seed) authenticates; INFO carries a nonce", async () => {
    const b = await broker(topology);
    const c = await raw(b.natsPort);
    const info = JSON.parse(c.received().match(INFO_LINE)![0].slice(5)) as Record<string, unknown>;
    expect(info.auth_required).toBe(true);
    expect(typeof info.nonce).toBe("string");
    await c.close();

    const nc = await client(b, { authenticator: credsAuthenticator(await credsOf("plain", users.plain)) });
    await roundTrip(nc, "hello.world");
  });

  it("refuses a client without credentials, and a user/password", async () => {
    const b = await broker(topology);
    expect((await refused(b, {})).code).toBe("AUTHORIZATION_VIOLATION");
    expect((await refused(b, { user: "plain", pass: "x" })).code).toBe("AUTHORIZATION_VIOLATION");
  });

  it("a bearer-token user connects with its JWT alone (jwtAuthenticator without a seed)", async () => {
    const b = await broker(topology);
    const nc = await client(b, { authenticator: jwtAuthenticator(users.bearer.jwt) });
    await roundTrip(nc, "bearer.ok");
  });

  it("a non-bearer user's JWT without the seed's signature is refused", async () => {
    const b = await broker(topology);
    const err = await refused(b, { authenticator: jwtAuthenticator(users.plain.jwt) });
    expect(err.code).toBe("AUTHORIZATION_VIOLATION");
    const c = await rawJwtConnect(b.natsPort, users.plain, false);
    await closedWithin(c, 3_000);
    expect(afterInfo(c)).toBe(AUTH_VIOLATION + "<closed>");
  });

  it("a JWT signed with another user's seed is refused", async () => {
    const b = await broker(topology);
    const err = await refused(b, { authenticator: jwtAuthenticator(users.plain.jwt, users.limited.seed) });
    expect(err.code).toBe("AUTHORIZATION_VIOLATION");
  });

  it("refuses an expired user JWT", async () => {
    const b = await broker(topology);
    const err = await refused(b, { authenticator: credsAuthenticator(await credsOf("expired", users.expired)) });
    expect(err.code).toBe("AUTHORIZATION_VIOLATION");
    const c = await rawJwtConnect(b.natsPort, users.expired);
    await closedWithin(c, 3_000);
    expect(afterInfo(c)).toBe(AUTH_VIOLATION + "<closed>");
  });

  it("refuses a user the account JWT revokes; the account's other users still connect", async () => {
    const b = await broker(topology);
    const err = await refused(b, { authenticator: credsAuthenticator(await credsOf("revoked", users.revoked)) });
    expect(err.code).toBe("AUTHORIZATION_VIOLATION");
    const c = await rawJwtConnect(b.natsPort, users.revoked);
    await closedWithin(c, 3_000);
    expect(afterInfo(c)).toBe(AUTH_VIOLATION + "<closed>");
    await roundTrip(await client(b, { authenticator: credsAuthenticator(users.plain.creds) }), "still.fine");
  });

  it("refuses a user of an account the operator did not sign", async () => {
    const b = await broker(topology);
    const err = await refused(b, { authenticator: credsAuthenticator(users.stranger.creds) });
    expect(err.code).toBe("AUTHORIZATION_VIOLATION");
  });

  it("enforces the user JWT's permissions; the connection stays open", async () => {
    const b = await broker(topology);
    const nc = await client(b, { authenticator: credsAuthenticator(await credsOf("limited", users.limited)) });
    const violation = nextPermissionError(nc);
    nc.publish("x", sc.encode("nope"));
    expect(await violation).toMatchObject({ operation: "publish", subject: "x" });
    await roundTrip(nc, "allowed.ok");

    const c = await rawJwtConnect(b.natsPort, users.limited);
    await c.expect("PONG\r\n");
    await c.send("PUB x 1\r\nx\r\nPUB allowed.secret 1\r\nx\r\nPUB allowed.fine 1\r\nx\r\nSUB other 1\r\nSUB allowed.> 2\r\nPING\r\n");
    await c.expect(/PONG\r\n[^]*PONG\r\n$/);
    expect(afterInfo(c)).toBe(
      "PONG\r\n" +
      `-ERR 'Permissions Violation for Publish to "x"'\r\n` +
      `-ERR 'Permissions Violation for Publish to "allowed.secret"'\r\n` +
      `-ERR 'Permissions Violation for Subscription to "other"'\r\n` +
      "PONG\r\n",
    );
  });

  it("disconnects a user when its JWT expires, with -ERR 'User Authentication Expired'", async () => {
    const b = await broker(topology);
    const expiring = await newUser(acme, "expiring", {}, { exp: Math.floor(Date.now() / 1000) + 2 });
    const c = await rawJwtConnect(b.natsPort, expiring);
    await c.expect("PONG\r\n");
    await closedWithin(c, 6_000);
    expect(afterInfo(c)).toBe("PONG\r\n-ERR 'User Authentication Expired'\r\n<closed>");
  }, 10_000);
});

describe.each(topologies)("operator mode: refusals compared with nats-server 2.9 (%s)", (topology) => {
  it("an account JWT's connection limit: the connection over it is refused", async () => {
    const small = await newAccount(op, "SMALL", { limits: { conn: 1 } });
    const [u1, u2] = [await newUser(small, "one"), await newUser(small, "two")];
    const cfg = operatorConfig(op, [acme, small]);
    const [real, mesh] = await Promise.all([startNatsServer(cfg), startBroker({ topology, config: cfg })]);
    cleanups.push(() => real.stop(), () => mesh.stop());
    const run = async (port: number) => {
      const first = await rawJwtConnect(port, u1);
      await first.expect("PONG\r\n");
      const second = await rawJwtConnect(port, u2);
      await Promise.race([second.closed, second.expect("PONG\r\n").catch(() => undefined)]);
      if (second.received().includes("-ERR")) await closedWithin(second, 3_000);
      return [afterInfo(first), afterInfo(second)];
    };
    const [fromReal, fromMesh] = await Promise.all([run(real.port), run(mesh.natsPort)]);
    expect(fromReal, "nats-server 2.9.10 (the reference) changed")
      .toEqual(["PONG\r\n", "-ERR 'maximum account active connections exceeded'\r\n<closed>"]);
    expect(fromMesh).toEqual(fromReal);
  });


  it("a user JWT that expires while connected: -ERR 'User Authentication Expired', then the close", async () => {
    const expiring = await newUser(acme, "expiring", {}, { exp: Math.floor(Date.now() / 1000) + 2 });
    const [real, mesh] = await Promise.all([startNatsServer(config), startBroker({ topology, config })]);
    cleanups.push(() => real.stop(), () => mesh.stop());
    const run = async (port: number) => {
      const c = await rawJwtConnect(port, expiring);
      await c.expect("PONG\r\n");
      await closedWithin(c, 6_000);
      return afterInfo(c);
    };
    const [fromReal, fromMesh] = await Promise.all([run(real.port), run(mesh.natsPort)]);
    expect(fromReal, "nats-server 2.9.10 (the reference) changed").toBe("PONG\r\n-ERR 'User Authentication Expired'\r\n<closed>");
    expect(fromMesh).toBe(fromReal);
  }, 10_000);

  const cases: { name: string; user: () => TestUser; sign?: boolean; then?: string; want: string }[] = [
    { name: "signed user JWT is accepted", user: () => users.plain, want: "PONG\r\n" },
    { name: "bearer JWT without a signature is accepted", user: () => users.bearer, sign: false, want: "PONG\r\n" },
    { name: "user JWT without a signature", user: () => users.plain, sign: false, want: AUTH_VIOLATION + "<closed>" },
    { name: "expired user JWT", user: () => users.expired, want: AUTH_VIOLATION + "<closed>" },
    { name: "revoked user", user: () => users.revoked, want: AUTH_VIOLATION + "<closed>" },
    { name: "user of an untrusted account", user: () => users.stranger, want: AUTH_VIOLATION + "<closed>" },
    {
      name: "user JWT permissions",
      user: () => users.limited,
      then: "PUB x 1\r\nx\r\nPUB allowed.secret 1\r\nx\r\nSUB other 1\r\nPING\r\n",
      want: "PONG\r\n" +
        `-ERR 'Permissions Violation for Publish to "x"'\r\n` +
        `-ERR 'Permissions Violation for Publish to "allowed.secret"'\r\n` +
        `-ERR 'Permissions Violation for Subscription to "other"'\r\n` +
        "PONG\r\n",
    },
  ];

  it.each(cases)("$name", async (k) => {
    const [real, mesh] = await Promise.all([startNatsServer(config), startBroker({ topology, config })]);
    cleanups.push(() => real.stop(), () => mesh.stop());
    const run = async (port: number) => {
      const c = await rawJwtConnect(port, k.user(), k.sign ?? true);
      if (k.then) {
        await c.expect("PONG\r\n").catch(() => undefined);
        await c.send(k.then);
        await c.expect(/PONG\r\n[^]*PONG\r\n$/).catch(() => undefined);
      } else {
        await Promise.race([c.closed, c.expect("PONG\r\n").catch(() => undefined)]);
        // A refusal closes right after the -ERR; wait for that close.
        if (c.received().includes("-ERR")) await closedWithin(c, 3_000);
      }
      return afterInfo(c);
    };
    const [fromReal, fromMesh] = await Promise.all([run(real.port), run(mesh.natsPort)]);
    expect(fromReal, "nats-server 2.9.10 (the reference) changed").toBe(k.want);
    expect(fromMesh).toBe(fromReal);
  });
});
