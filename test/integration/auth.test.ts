// Authentication with real clients: user/password (plain and bcrypt), tokens (plain and bcrypt),
// the single user and the users list, NKEY users, no_auth_user, allowed_connection_types, the
// auth timeout, the failure metrics, and a flood of bad CONNECTs that must not stall anyone.
// nats.js shows what a client sees; a raw socket pins the exact bytes (nats-server 2.9's texts).
// On the cluster (one for the file, its edges reloaded to each test's config) a test's clients
// alternate over the two edges.
import { beforeAll, describe, expect, it } from "vitest";
import { hashSync } from "bcryptjs";
import { createUser } from "@nats-io/nkeys";
import {
  nkeyAuthenticator, StringCodec,
  type ConnectionOptions, type NatsConnection,
} from "nats";
import { clusterTopologies, startTarget, topologies, type SuiteBroker, type SuiteTopology } from "../helpers/broker.js";
import { closedWithin, rawConnect, type RawClient } from "../helpers/raw.js";
import { nextPermissionError, cleanupAfterEach, firstData } from "../helpers/wait.js";
import { natsClient, natsRefusal } from "../helpers/clients.js";

const sc = StringCodec();
const INFO_LINE = /^INFO \{.*\} ?\r\n/;
const AUTH_VIOLATION = "-ERR 'Authorization Violation'\r\n";

const cleanups = cleanupAfterEach();

/** A server with `config`; on the cluster, the file's one cluster reloaded to it (SIGHUP), with
 *  monitoring for the metrics test. */
const target = (topology: SuiteTopology, config: string) => startTarget({ topology, config, shared: "reload", monitoring: true });

async function broker(topology: SuiteTopology, config: string): Promise<SuiteBroker> {
  const b = await target(topology, config);
  cleanups.push(() => b.stop());
  return b;
}

async function client(b: SuiteBroker, opts: Partial<ConnectionOptions> = {}): Promise<NatsConnection> {
  return natsClient(cleanups, b.nextPort(), opts);
}

/** A connect that must be refused: resolves with the error nats.js rejected with. */
async function refused(b: SuiteBroker, opts: Partial<ConnectionOptions>): Promise<{ code?: string; message: string }> {
  return natsRefusal(b.nextPort(), opts);
}

async function raw(port: number): Promise<RawClient> {
  const c = await rawConnect(port);
  cleanups.push(() => c.close());
  await c.expect(INFO_LINE);
  return c;
}

function info(c: RawClient): Record<string, unknown> {
  return JSON.parse(c.received().match(INFO_LINE)![0].replace(/^INFO /, "")) as Record<string, unknown>;
}

/** What the server sent after its INFO line. */
function afterInfo(c: RawClient): string {
  return c.received().replace(INFO_LINE, "");
}

/** A raw CONNECT that must be refused: exactly the -ERR, then the close. */
async function expectRawRefusal(port: number, connectJson: Record<string, unknown>): Promise<void> {
  const c = await raw(port);
  await c.send(`CONNECT ${JSON.stringify({ verbose: false, pedantic: false, ...connectJson })}\r\nPING\r\n`);
  await closedWithin(c, 3_000);
  expect(afterInfo(c)).toBe(AUTH_VIOLATION);
}

/** A raw CONNECT that must be accepted: PONG, no -ERR. */
async function expectRawAccepted(port: number, connectJson: Record<string, unknown>): Promise<void> {
  const c = await raw(port);
  await c.send(`CONNECT ${JSON.stringify({ verbose: false, pedantic: false, ...connectJson })}\r\nPING\r\n`);
  await c.expect("PONG\r\n");
  expect(afterInfo(c)).toBe("PONG\r\n");
  await c.close();
}

/** Proves the connection works: a message to itself (or from `from`, on another edge of a
 *  cluster) comes back. */
async function roundTrip(nc: NatsConnection, subject = `rt.${Math.random().toString(36).slice(2)}`, from = nc): Promise<void> {
  const sub = nc.subscribe(subject, { max: 1 });
  if (from !== nc) await nc.flush();
  from.publish(subject, sc.encode("ping"));
  const got = await firstData(sub);
  expect(got).toBe("ping");
}

// bcrypt cost 4 (the minimum) keeps the tests fast; nats-server accepts any valid cost.
const BCRYPT_PASS = hashSync("s3cret-bcrypt", 4);
const BCRYPT_TOKEN = hashSync("tok-bcrypt", 4);

// Not on the cluster: it loads one process's event loop with bcrypt checks, the same code in an
// edge process, at ~30 s a topology. First in the file: no idle cluster beside it.
describe.each(topologies)("a flood of bad CONNECTs (%s)", (topology) => {
  // A costlier hash than elsewhere (bcryptjs: ~100 ms a check), so the flood takes a while.
  const hash = hashSync("right-password", 10);
  const config = `authorization { users: [
    { user: svc, password: "${hash}" }
    { user: plain, password: plain-pw }
  ] }`;

  /** 50 raw sockets, each sending a CONNECT with a wrong bcrypt password at once. */
  async function flood(b: SuiteBroker): Promise<RawClient[]> {
    const socks = await Promise.all(Array.from({ length: 50 }, () => raw(b.nextPort())));
    await Promise.all(socks.map((c, i) =>
      c.send(`CONNECT ${JSON.stringify({ verbose: false, user: "svc", pass: `wrong-${i}` })}\r\nPING\r\n`)));
    return socks;
  }

  it("does not hold up other clients' request/reply while the checks run", async () => {
    const b = await broker(topology, config);
    const responder = await client(b, { user: "plain", pass: "plain-pw" });
    const requester = await client(b, { user: "plain", pass: "plain-pw" });
    responder.subscribe("echo", { callback: (_err, m) => m.respond(m.data) });
    await responder.flush();

    const socks = await flood(b);
    const started = Date.now();
    const reply = await requester.request("echo", sc.encode("still here"), { timeout: 1_000 });
    const elapsed = Date.now() - started;
    const stillChecking = socks.filter((c) => !c.isClosed()).length;
    expect(sc.decode(reply.data)).toBe("still here");
    expect(elapsed).toBeLessThan(500);
    // The reply came while the flood was still being checked.
    expect(stillChecking).toBeGreaterThan(0);

    // A new client with a plain password gets in promptly too.
    const t0 = Date.now();
    await roundTrip(await client(b, { user: "plain", pass: "plain-pw" }));
    expect(Date.now() - t0).toBeLessThan(1_000);

    // Every bad CONNECT is refused in the end.
    await Promise.all(socks.map((c) => closedWithin(c, 15_000)));
  }, 30_000);

  it("answers every CONNECT of the flood with 'Authorization Violation', never 'Authentication Timeout'", async () => {
    // nats-server stops the auth timer when CONNECT arrives (client.go processConnect
    // clearAuthTimer), so however long the bcrypt check takes, the answer is its verdict.
    const b = await broker(topology, config);
    const socks = await flood(b);
    await Promise.all(socks.map((c) => closedWithin(c, 15_000)));
    const answers: Record<string, number> = {};
    for (const c of socks) answers[afterInfo(c)] = (answers[afterInfo(c)] ?? 0) + 1;
    expect(answers).toEqual({ [AUTH_VIOLATION]: 50 });
  }, 30_000);

  it("accepts a client with the right bcrypt password that CONNECTs during the flood", async () => {
    const b = await broker(topology, config);
    const socks = await flood(b);
    const nc = await client(b, { user: "svc", pass: "right-password", timeout: 15_000 });
    await roundTrip(nc);
    await Promise.all(socks.map((c) => closedWithin(c, 15_000)));
  }, 30_000);
});

describe.each(clusterTopologies)("authentication (%s)", (topology) => {
  // The cluster starts before the tests (up to 15 s on a loaded machine): each test's time bound
  // is then its own.
  beforeAll(async () => { if (topology === "cluster") await target(topology, ""); }, 30_000);

  describe("single user", () => {
    it("accepts the right user/password, refuses a wrong one (nats.js and raw bytes)", async () => {
      const b = await broker(topology, "authorization { user: alice, password: wonderland }");
      const nc = await client(b, { user: "alice", pass: "wonderland" });
      await roundTrip(nc);

      const wrongPass = await refused(b, { user: "alice", pass: "nope" });
      expect(wrongPass.code).toBe("AUTHORIZATION_VIOLATION");
      const wrongUser = await refused(b, { user: "bob", pass: "wonderland" });
      expect(wrongUser.code).toBe("AUTHORIZATION_VIOLATION");
      const none = await refused(b, {});
      expect(none.code).toBe("AUTHORIZATION_VIOLATION");

      const c = await raw(b.nextPort());
      expect(info(c).auth_required).toBe(true);
      await c.close();
      await expectRawRefusal(b.nextPort(), { user: "alice", pass: "nope" });
      await expectRawAccepted(b.nextPort(), { user: "alice", pass: "wonderland" });
    });

    it("checks a bcrypt password", async () => {
      const b = await broker(topology, `authorization { user: alice, password: "${BCRYPT_PASS}" }`);
      const nc = await client(b, { user: "alice", pass: "s3cret-bcrypt" });
      await roundTrip(nc);
      expect((await refused(b, { user: "alice", pass: "s3cret-bcryp" })).code).toBe("AUTHORIZATION_VIOLATION");
      // The hash itself is not the password.
      expect((await refused(b, { user: "alice", pass: BCRYPT_PASS })).code).toBe("AUTHORIZATION_VIOLATION");
      await expectRawRefusal(b.nextPort(), { user: "alice", pass: "wrong" });
    });
  });

  describe("token", () => {
    it("accepts the token, refuses another one and a user/password", async () => {
      const b = await broker(topology, "authorization { token: letmein }");
      const nc = await client(b, { token: "letmein" });
      await roundTrip(nc);
      expect((await refused(b, { token: "letmeout" })).code).toBe("AUTHORIZATION_VIOLATION");
      expect((await refused(b, { user: "letmein", pass: "letmein" })).code).toBe("AUTHORIZATION_VIOLATION");
      expect((await refused(b, {})).code).toBe("AUTHORIZATION_VIOLATION");
      await expectRawRefusal(b.nextPort(), { auth_token: "letmeout" });
      await expectRawAccepted(b.nextPort(), { auth_token: "letmein" });
    });

    it("checks a bcrypt token", async () => {
      const b = await broker(topology, `authorization { token: "${BCRYPT_TOKEN}" }`);
      const nc = await client(b, { token: "tok-bcrypt" });
      await roundTrip(nc);
      expect((await refused(b, { token: "tok-bcryp" })).code).toBe("AUTHORIZATION_VIOLATION");
      expect((await refused(b, { token: BCRYPT_TOKEN })).code).toBe("AUTHORIZATION_VIOLATION");
      await expectRawRefusal(b.nextPort(), { auth_token: "nope" });
    });
  });

  describe("users list", () => {
    const config = `authorization { users: [
      { user: alice, password: plain-pw }
      { user: bob, password: "${BCRYPT_PASS}" }
    ] }`;

    it("accepts each user with its own password, plain or bcrypt", async () => {
      const b = await broker(topology, config);
      const alice = await client(b, { user: "alice", pass: "plain-pw" });
      const bob = await client(b, { user: "bob", pass: "s3cret-bcrypt" });
      await roundTrip(alice);
      await roundTrip(bob);
      await roundTrip(alice, "to.alice", bob);
    });

    it("refuses another user's password, an unknown user and no credentials", async () => {
      const b = await broker(topology, config);
      expect((await refused(b, { user: "alice", pass: "s3cret-bcrypt" })).code).toBe("AUTHORIZATION_VIOLATION");
      expect((await refused(b, { user: "bob", pass: "plain-pw" })).code).toBe("AUTHORIZATION_VIOLATION");
      expect((await refused(b, { user: "carol", pass: "plain-pw" })).code).toBe("AUTHORIZATION_VIOLATION");
      expect((await refused(b, {})).code).toBe("AUTHORIZATION_VIOLATION");
      await expectRawRefusal(b.nextPort(), { user: "alice", pass: "wrong" });
      await expectRawRefusal(b.nextPort(), { user: "bob", pass: "wrong" });
      await expectRawRefusal(b.nextPort(), { user: "carol", pass: "x" });
    });
  });

  describe("auth timeout", () => {
    it("closes a client that sends no CONNECT with exactly -ERR 'Authentication Timeout'", async () => {
      const b = await broker(topology, "authorization { user: a, password: b, timeout: 0.5 }");
      const c = await raw(b.nextPort());
      const started = Date.now();
      await closedWithin(c, 3_000);
      expect(afterInfo(c)).toBe("-ERR 'Authentication Timeout'\r\n");
      expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    });

    it("does not time out a client that authenticated in time", async () => {
      const b = await broker(topology, "authorization { user: a, password: b, timeout: 0.3 }");
      const authed = await raw(b.nextPort());
      await authed.send(`CONNECT {"verbose":false,"user":"a","pass":"b"}\r\nPING\r\n`);
      await authed.expect("PONG\r\n");
      // A second client, connected later, times out: by then the first one's timer is past too.
      const silent = await raw(b.nextPort());
      await closedWithin(silent, 3_000);
      expect(afterInfo(silent)).toBe("-ERR 'Authentication Timeout'\r\n");
      await authed.send("PING\r\n");
      await authed.expect(/^(?:PONG\r\n){2}$/, 2_000, authed.received().match(INFO_LINE)![0].length);
      expect(authed.isClosed()).toBe(false);
      expect(afterInfo(authed)).toBe("PONG\r\nPONG\r\n");
    });
  });

  describe("NKEY users", () => {
    const alice = createUser();
    const bob = createUser();
    const stranger = createUser();
    const config = `authorization { users: [
      { nkey: ${alice.getPublicKey()} }
      { nkey: ${bob.getPublicKey()}, permissions: { publish: "bob.>", subscribe: "bob.>" } }
    ] }`;

    it("INFO carries a nonce; the owner of a configured NKEY signs it and is accepted", async () => {
      const b = await broker(topology, config);
      const c = await raw(b.nextPort());
      expect(info(c).nonce).toMatch(/^[A-Za-z0-9_-]{15,}$/);
      await c.close();
      await roundTrip(await client(b, { authenticator: nkeyAuthenticator(alice.getSeed()) }));
      await roundTrip(await client(b, { authenticator: nkeyAuthenticator(bob.getSeed()) }), "bob.x");
    });

    it("refuses a seed whose key is not configured", async () => {
      const b = await broker(topology, config);
      const err = await refused(b, { authenticator: nkeyAuthenticator(stranger.getSeed()) });
      expect(err.code).toBe("AUTHORIZATION_VIOLATION");
    });

    it("refuses a configured NKEY whose nonce is signed by another key, or not signed", async () => {
      const b = await broker(topology, config);
      const c = await raw(b.nextPort());
      const nonce = info(c).nonce as string;
      const sig = Buffer.from(stranger.sign(new TextEncoder().encode(nonce))).toString("base64url");
      await c.send(`CONNECT ${JSON.stringify({ verbose: false, nkey: alice.getPublicKey(), sig })}\r\nPING\r\n`);
      await closedWithin(c, 3_000);
      expect(afterInfo(c)).toBe(AUTH_VIOLATION);

      await expectRawRefusal(b.nextPort(), { nkey: alice.getPublicKey() });

      const ok = await raw(b.nextPort());
      const goodSig = Buffer.from(alice.sign(new TextEncoder().encode(info(ok).nonce as string))).toString("base64url");
      await ok.send(`CONNECT ${JSON.stringify({ verbose: false, nkey: alice.getPublicKey(), sig: goodSig })}\r\nPING\r\n`);
      await ok.expect("PONG\r\n");
      expect(afterInfo(ok)).toBe("PONG\r\n");
    });

    it("applies the NKEY user's permissions", async () => {
      const b = await broker(topology, config);
      const nc = await client(b, { authenticator: nkeyAuthenticator(bob.getSeed()) });
      const watcher = await client(b, { authenticator: nkeyAuthenticator(alice.getSeed()) });
      const seen = watcher.subscribe("*.x", { max: 1 });
      await watcher.flush();
      const violation = nextPermissionError(nc);
      nc.publish("alice.x", sc.encode("no"));
      expect(await violation).toMatchObject({ operation: "publish", subject: "alice.x" });
      nc.publish("bob.x", sc.encode("allowed"));
      // The denied message went nowhere: the allowed one after it is the first to arrive.
      expect(await firstData(seen)).toBe("allowed");
      await roundTrip(nc, "bob.y"); // still open
    });
  });

  describe("no_auth_user", () => {
    const config = `authorization { users: [
      { user: guest, password: guest-pw, permissions: { publish: "public.>", subscribe: "public.>" } }
      { user: admin, password: admin-pw }
    ] }
    no_auth_user: guest`;

    it("a client without credentials gets the no_auth_user's permissions", async () => {
      const b = await broker(topology, config);
      const nc = await client(b); // no credentials at all
      const admin = await client(b, { user: "admin", pass: "admin-pw" });
      const seen = admin.subscribe("*.x", { max: 1 });
      await admin.flush();
      await roundTrip(nc, "public.hello");
      const violation = nextPermissionError(nc);
      nc.publish("private.x", sc.encode("no"));
      expect(await violation).toMatchObject({ operation: "publish", subject: "private.x" });
      nc.publish("public.x", sc.encode("allowed"));
      // The denied message went nowhere: the allowed one after it is the first to arrive.
      expect(await firstData(seen)).toBe("allowed");
      await roundTrip(nc, "public.again"); // the connection stays open

      const c = await raw(b.nextPort());
      await c.send(`CONNECT {"verbose":false,"pedantic":false}\r\nPUB private.x 1\r\nx\r\nSUB private.> 1\r\nPING\r\n`);
      await c.expect("PONG\r\n");
      expect(afterInfo(c)).toBe(
        `-ERR 'Permissions Violation for Publish to "private.x"'\r\n` +
        `-ERR 'Permissions Violation for Subscription to "private.>"'\r\n` +
        "PONG\r\n",
      );
      expect(c.isClosed()).toBe(false);
    });

    it("a client with credentials is that user, and wrong credentials do not fall back", async () => {
      const b = await broker(topology, config);
      await roundTrip(await client(b, { user: "admin", pass: "admin-pw" }), "private.ok");
      expect((await refused(b, { user: "admin", pass: "wrong" })).code).toBe("AUTHORIZATION_VIOLATION");
    });
  });

  describe("allowed_connection_types", () => {
    const config = `authorization { users: [
      { user: mqtt-only, password: pw, allowed_connection_types: ["MQTT"] }
      { user: ws-only, password: pw, allowed_connection_types: ["WEBSOCKET"] }
      { user: std, password: pw, allowed_connection_types: ["STANDARD"] }
      { user: std-or-ws, password: pw, allowed_connection_types: ["STANDARD", "WEBSOCKET"] }
    ] }`;

    it("refuses MQTT-only and WEBSOCKET-only users over TCP", async () => {
      const b = await broker(topology, config);
      expect((await refused(b, { user: "mqtt-only", pass: "pw" })).code).toBe("AUTHORIZATION_VIOLATION");
      expect((await refused(b, { user: "ws-only", pass: "pw" })).code).toBe("AUTHORIZATION_VIOLATION");
      await expectRawRefusal(b.nextPort(), { user: "mqtt-only", pass: "pw" });
      await expectRawRefusal(b.nextPort(), { user: "ws-only", pass: "pw" });
    });

    it("accepts STANDARD users over TCP", async () => {
      const b = await broker(topology, config);
      await roundTrip(await client(b, { user: "std", pass: "pw" }));
      await roundTrip(await client(b, { user: "std-or-ws", pass: "pw" }));
    });
  });

  describe("metrics", () => {
    it("meshbroker_auth_failures_total counts failed logins by reason", async () => {
      const b = await broker(topology, `authorization { users: [{ user: alice, password: pw }] }`);
      // Each edge counts its own clients' failures: the sum over the edges is the cluster's.
      const failures = async () => {
        const counts: Record<string, number> = {};
        for (const httpPort of b.httpPorts) {
          const res = await fetch(`http://127.0.0.1:${httpPort}/metrics`);
          expect(res.status).toBe(200);
          const text = await res.text();
          for (const m of text.matchAll(/^meshbroker_auth_failures_total\{reason="([^"]*)"\} (\d+)$/gm)) counts[m[1]] = (counts[m[1]] ?? 0) + Number(m[2]);
        }
        return counts;
      };
      // The cluster's edges have counted the earlier tests' failures: this test's are the increase.
      const before = await failures();
      await refused(b, { user: "alice", pass: "bad1" });
      await refused(b, { user: "alice", pass: "bad2" });
      await refused(b, { user: "nobody", pass: "pw" });
      await roundTrip(await client(b, { user: "alice", pass: "pw" })); // a success is not counted

      const after = await failures();
      const counts: Record<string, number> = {};
      for (const [reason, n] of Object.entries(after)) if (n !== (before[reason] ?? 0)) counts[reason] = n - (before[reason] ?? 0);
      expect(Object.values(counts).reduce((a, n) => a + n, 0)).toBe(3);
      expect(counts).toEqual({ "bad user or password": 2, "unknown user": 1 });
    });
  });

  describe("a bcrypt check slower than the auth timeout", () => {
    // bcryptjs at cost 12 takes ~400 ms here, longer than the 0.2 s auth timeout; the timeout
    // is for a client that sends no CONNECT, not for the server's own check of one.
    const hash = hashSync("slow-pw", 12);
    const config = `authorization { users: [{ user: slow, password: "${hash}" }], timeout: 0.2 }`;

    it("accepts the right password", async () => {
      const b = await broker(topology, config);
      await expectRawAccepted(b.nextPort(), { user: "slow", pass: "slow-pw" });
    });

    it("refuses a wrong password with 'Authorization Violation'", async () => {
      const b = await broker(topology, config);
      await expectRawRefusal(b.nextPort(), { user: "slow", pass: "wrong" });
    });
  });
});
