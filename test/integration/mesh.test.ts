// The router mesh: routers in this process, each with a real gRPC server on port 0, sharing a
// real redis-server; subscribers attach directly to each Router (the RouterLink seam).
import * as grpc from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createUser } from "@nats-io/nkeys";
import { accountSet, type Connection, type MessageData, type Subscriber } from "../../services/router/link.js";
import { Router } from "../../services/router/router.js";
import { Mesh } from "../../services/router/mesh/mesh.js";
import { meshChannelOptions, dialLink } from "../../services/router/mesh/transport.js";
import { MESH_VERSION } from "../../services/router/mesh/peer.js";
import { MeshRegistry } from "../../services/router/mesh/registry.js";
import { meshFrames } from "../../services/router/wire/codec.js";
import type { AccountConfig, ClusterAuthorization } from "../../services/common/config/options.js";
import type { MeshFrame } from "../../services/router/wire/frames.js";
import { startRedis, type RedisServer } from "../helpers/redis.js";
import { startBroker, topologies } from "../helpers/broker.js";
import { natsClient } from "../helpers/clients.js";
import { StringCodec, ErrorCode, type NatsError } from "nats";
import { Registry } from "prom-client";
import { askUntil, cleanupAfterEach, withTimeout } from "../helpers/wait.js";
import { assertBuilt, REPO_ROOT, spawnCommand, stopAllBrokers } from "../helpers/process.js";

const TOKEN = "cluster-secret";
let redis: RedisServer;
let prefixSeq = 0;
const cleanups = cleanupAfterEach();

beforeAll(async () => { redis = await startRedis(); });
afterAll(async () => { await redis?.stop(); });
afterEach(() => stopAllBrokers());

interface TestRouter {
  id: string;
  router: Router;
  mesh: Mesh;
  server: grpc.Server;
  address: string;
  logs: string[];
  stop(): Promise<void>;
}

/** A router with its mesh on a gRPC server on port 0, registered in the test's Redis prefix. */
async function startRouter(id: string, prefix: string,
                           opts: { authorization?: ClusterAuthorization; redisUrl?: string; router?: Router; maxBacklogBytes?: number } = {}): Promise<TestRouter> {
  const router = opts.router ?? new Router();
  const server = new grpc.Server(meshChannelOptions);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  const logs: string[] = [];
  const address = `127.0.0.1:${port}`;
  const mesh = new Mesh(router, {
    id, advertise: address, authorization: opts.authorization ?? { token: TOKEN }, redis: opts.redisUrl ?? redis.url, prefix,
    log: { info: (m) => logs.push(m), warn: (m) => logs.push(m) }, maxBacklogBytes: opts.maxBacklogBytes,
  });
  mesh.addTo(server);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await mesh.close();
    server.forceShutdown();
    router.close();
  };
  cleanups.push(stop);
  return { id, router, mesh, server, address, logs, stop };
}

/** Routers r1..rn linked in a full mesh. */
async function cluster(n: number): Promise<TestRouter[]> {
  const prefix = `mesh-test-${process.pid}-${prefixSeq++}`;
  const routers = await Promise.all(Array.from({ length: n }, (_, i) => startRouter(`r${i + 1}`, prefix)));
  await until(() => routers.every((r) => r.mesh.peers().length === n - 1 && r.mesh.peers().every((p) => p.interestSeq >= 0)),
    5_000, "full mesh");
  return routers;
}

/** Waits (one event-loop turn per check) until `pred` holds. */
function until(pred: () => boolean, timeoutMs: number, what: string): Promise<unknown> {
  return askUntil(() => new Promise<boolean>((r) => setImmediate(() => r(pred()))), (v) => v, timeoutMs)
    .catch((err: Error) => { throw new Error(`${what}: ${err.message}`); });
}

let cidSeq = 1;
function recorder(subject: string, opts: { queue?: string; edge?: string; echo?: boolean } = {}) {
  const got: { subject: string; reply: string | undefined; text: string; hdrLen: number }[] = [];
  const conn: Connection = { edgeId: opts.edge ?? "E", cid: cidSeq++, echo: opts.echo ?? true };
  const sub: Subscriber = {
    subject, queue: opts.queue, sid: "1", conn,
    deliver: (s, reply, msg) => got.push({ subject: s, reply, hdrLen: msg.hdrLen, text: msg.buf.toString("latin1", msg.start + msg.hdrLen, msg.end) }),
  };
  return { sub, got, conn };
}

const data = (text: string, headers = ""): MessageData => {
  const buf = Buffer.from(headers + text, "latin1");
  return { buf, start: 0, end: buf.length, hdrLen: headers.length };
};
const publisher = (): Connection => ({ edgeId: "P", cid: cidSeq++, echo: true });

/** Resolves once every router has applied its peers' interest so far (an update is in flight for a turn or two). */
async function settled(routers: TestRouter[]): Promise<void> {
  await until(() => routers.every((r) => r.mesh.peers().every((p) => {
    const peer = routers.find((x) => x.id === p.id)!;
    return p.interestSeq === peer.mesh.interestStats().seq;
  })), 3_000, "interest settled");
}

describe("mesh: cluster-wide routing", () => {
  it("a message reaches subscribers on another router, once per peer however many entries match", async () => {
    const [a, b] = await cluster(2);
    const s1 = recorder("foo.*"), s2 = recorder("foo.>"), s3 = recorder("foo.bar");
    a.router.subscribe("$G", s1.sub);
    a.router.subscribe("$G", s2.sub);
    b.router.subscribe("$G", s3.sub);
    await settled([a, b]);
    let forwarded = 0;
    const original = a.router.deliverForwarded.bind(a.router);
    a.router.deliverForwarded = (...args) => { forwarded++; original(...args); };
    b.router.publish("$G", "foo.bar", "reply.x", data("hi", "NATS/1.0\r\nk: v\r\n\r\n"), publisher());
    await until(() => s1.got.length === 1 && s2.got.length === 1, 2_000, "delivery on a");
    expect(s3.got).toHaveLength(1);
    expect(s1.got[0]).toEqual({ subject: "foo.bar", reply: "reply.x", text: "hi", hdrLen: 18 });
    expect(forwarded).toBe(1);
    // Nothing crosses to a router without matching interest.
    b.router.publish("$G", "other", undefined, data("x"), publisher());
    b.router.publish("$G", "foo.bar", undefined, data("y"), publisher());
    await until(() => s1.got.length === 2, 2_000, "second delivery");
    expect(forwarded).toBe(2);
  });

  it("a turn of large messages leaves in several frames, each message with its queue groups", async () => {
    const [a, b] = await cluster(2);
    const plain = recorder("big");
    const members = [recorder("big", { queue: "q1" }), recorder("big", { queue: "q2" })];
    for (const s of [plain, ...members]) b.router.subscribe("$G", s.sub);
    await settled([a, b]);
    const N = 40; // 40 × 64 KB: past the 1 MB frame size several times within one turn
    for (let i = 0; i < N; i++) a.router.publish("$G", "big", undefined, data(String(i).padStart(64 * 1024, ".")), publisher());
    await until(() => plain.got.length === N && members.every((m) => m.got.length === N), 3_000, "every message, every group");
  });

  it("accounts stay apart across routers", async () => {
    const [a, b] = await cluster(2);
    const inA = recorder("x"), inB = recorder("x");
    a.router.subscribe("A", inA.sub);
    a.router.subscribe("B", inB.sub);
    await settled([a, b]);
    b.router.publish("B", "x", undefined, data("b"), publisher());
    await until(() => inB.got.length === 1, 2_000, "account B delivery");
    expect(inA.got).toEqual([]);
  });

  it("a queue group gets each message exactly once cluster-wide, about half crossing with 2 members per router", async () => {
    const [a, b] = await cluster(2);
    const members = [recorder("q.>", { queue: "workers" }), recorder("q.>", { queue: "workers" })];
    const remote = [recorder("q.>", { queue: "workers" }), recorder("q.>", { queue: "workers" })];
    for (const m of members) a.router.subscribe("$G", m.sub);
    for (const m of remote) b.router.subscribe("$G", m.sub);
    const plain = recorder("q.>");
    b.router.subscribe("$G", plain.sub);
    await settled([a, b]);
    const N = 2_000;
    for (let i = 0; i < N; i++) a.router.publish("$G", `q.${i}`, undefined, data(String(i)), publisher());
    const total = () => [...members, ...remote].reduce((n, m) => n + m.got.length, 0);
    await until(() => total() === N && plain.got.length === N, 5_000, "all queue deliveries");
    const seen = new Set([...members, ...remote].flatMap((m) => m.got.map((g) => g.text)));
    expect(seen.size).toBe(N);
    const crossed = remote[0].got.length + remote[1].got.length;
    console.log(`queue group: ${crossed}/${N} crossed to the other router (${(100 * crossed / N).toFixed(1)} %)`);
    expect(crossed / N).toBeGreaterThan(0.4);
    expect(crossed / N).toBeLessThan(0.6);
    for (const m of [...members, ...remote]) expect(m.got.length).toBeGreaterThan(N / 8);
  });

  it("request/reply and no-responders across routers", async () => {
    const [a, b] = await cluster(2);
    const inbox = recorder("_INBOX.1");
    a.router.subscribe("$G", inbox.sub);
    // Nobody anywhere: 503 to the requester.
    a.router.publish("$G", "svc", "_INBOX.1", data("q"), inbox.conn, { noResponders: true });
    expect(inbox.got).toEqual([{ subject: "_INBOX.1", reply: undefined, text: "", hdrLen: 16 }]);
    // A responder behind the other router: no 503, its reply comes back.
    const responder: Subscriber = {
      subject: "svc", queue: undefined, sid: "1", conn: { edgeId: "R", cid: cidSeq++, echo: true },
      deliver: (_s, reply) => b.router.publish("$G", reply!, undefined, data("answer"), responder.conn),
    };
    b.router.subscribe("$G", responder);
    await settled([a, b]);
    a.router.publish("$G", "svc", "_INBOX.1", data("q"), inbox.conn, { noResponders: true });
    await until(() => inbox.got.length === 2, 2_000, "the reply");
    expect(inbox.got[1].text).toBe("answer");
  });

  it("a reply finds the inbox its requester subscribed just before publishing (interest travels ahead of the message)", async () => {
    const [a, b] = await cluster(2);
    // The responder answers as soon as the request arrives, in the same turn.
    const responder: Subscriber = {
      subject: "svc", queue: undefined, sid: "1", conn: { edgeId: "R", cid: cidSeq++, echo: true },
      deliver: (_s, reply) => b.router.publish("$G", reply!, undefined, data("answer"), responder.conn),
    };
    b.router.subscribe("$G", responder);
    await settled([a, b]);
    // nats.js's request: SUB of a new inbox and PUB in one go, no flush between them.
    for (let i = 0; i < 20; i++) {
      const inbox = recorder(`_INBOX.fresh.${i}`);
      a.router.subscribe("$G", inbox.sub);
      a.router.publish("$G", "svc", inbox.sub.subject, data("q"), inbox.conn, { noResponders: true });
      await until(() => inbox.got.length === 1, 2_000, `reply ${i}`);
      expect(inbox.got[0].text).toBe("answer");
    }
  });

  it("routers whose account sets differ log it once (MeshHello.accounts_version); routers that agree do not", async () => {
    const acc = (name: string) => ({ name, users: [], exports: [], imports: [] }) as unknown as AccountConfig;
    const warned: string[][] = [[], [], []];
    const routers = [["A"], ["A"], ["A", "B"]].map((names, i) => {
      const r = new Router((m) => warned[i].push(m));
      r.configureAccounts(`E${i + 1}`, accountSet(names.map(acc)));
      return r;
    });
    const prefix = `mesh-test-${process.pid}-${prefixSeq++}`;
    const [a, b, c3] = await Promise.all(routers.map((router, i) => startRouter(`r${i + 1}`, prefix, { router })));
    await until(() => [a, b, c3].every((r) => r.mesh.peers().length === 2), 5_000, "full mesh");
    const differ = (w: string[]) => w.filter((l) => /accounts version .* their account configs differ/.test(l));
    expect(differ(warned[0])).toEqual([expect.stringMatching(/^router r3 sent accounts version \w+, edge E1 has \w+/)]);
    expect(differ(warned[1])).toEqual([expect.stringMatching(/^router r3 sent accounts version \w+, edge E2 has \w+/)]);
    // r3 hears it from r1 and r2, which agree with each other: each pair once.
    expect(differ(warned[2]).sort()).toEqual([
      expect.stringMatching(/^router r1 sent accounts version \w+, edge E3 has/),
      expect.stringMatching(/^router r2 sent accounts version \w+, edge E3 has/),
    ]);
  });

  it("service imports answer through the importer's router when the responder is on another", async () => {
    const [a, b] = await cluster(2);
    const acc = (name: string, extra: Partial<AccountConfig>) => ({ name, users: [], exports: [], imports: [], ...extra }) as AccountConfig;
    const set = accountSet([
      acc("SVC", { exports: [{ kind: "service", subject: "time" }] } as Partial<AccountConfig>),
      acc("APP", { imports: [{ kind: "service", account: "SVC", subject: "time" }] } as Partial<AccountConfig>),
    ]);
    a.router.configureAccounts("E1", set);
    b.router.configureAccounts("E2", set);
    const seen: string[] = [];
    const responder: Subscriber = {
      subject: "time", queue: undefined, sid: "1", conn: { edgeId: "R", cid: cidSeq++, echo: true },
      deliver: (_s, reply) => { seen.push(reply!); b.router.publish("SVC", reply!, undefined, data("noon"), responder.conn); },
    };
    b.router.subscribe("SVC", responder);
    const inbox = recorder("_INBOX.2");
    a.router.subscribe("APP", inbox.sub);
    await settled([a, b]);
    a.router.publish("APP", "time", "_INBOX.2", data("?"), inbox.conn, { noResponders: true });
    await until(() => inbox.got.length === 1, 2_000, "the service reply");
    expect(inbox.got[0]).toMatchObject({ subject: "_INBOX.2", text: "noon" });
    expect(seen[0]).toMatch(/^_R_\./);
  });

  it("echo: false holds for a publisher whose own subscription another router forwards to", async () => {
    const [a, b] = await cluster(2);
    const self = recorder("e", { echo: false, edge: "E1" });
    const other = recorder("e");
    a.router.subscribe("$G", self.sub);
    a.router.subscribe("$G", other.sub);
    await settled([a, b]);
    // The same connection ids publishing through b (its edge attached to both): not echoed.
    b.router.publish("$G", "e", undefined, data("x"), self.conn);
    await until(() => other.got.length === 1, 2_000, "delivery");
    expect(self.got).toEqual([]);
  });
});

describe.each(topologies)("mesh: NATS clients on two meshed brokers (%s edge link)", (topology) => {
  it("pub/sub, request/reply and no-responders across routers", async () => {
    const prefix = `mesh-test-${process.pid}-${prefixSeq++}`;
    const brokers = await Promise.all([startBroker({ topology }), startBroker({ topology })]);
    for (const b of brokers) cleanups.push(() => b.stop());
    const [a, b] = await Promise.all(brokers.map((br, i) => startRouter(`n${i + 1}`, prefix, { router: br.broker.router })));
    await until(() => a.mesh.peers().length === 1 && b.mesh.peers().length === 1, 5_000, "linked");
    const [c1, c2] = await Promise.all(brokers.map((br) => natsClient(cleanups, br.natsPort)));
    const sc = StringCodec();
    const sub = c1.subscribe("greet.*");
    c1.subscribe("svc", { callback: (_e, m) => m.respond(sc.encode(`re:${sc.decode(m.data)}`)) });
    await c1.flush();
    await settled([a, b]);
    c2.publish("greet.joe", sc.encode("hello"));
    const got = await withTimeout((async () => { for await (const m of sub) return `${m.subject}:${sc.decode(m.data)}`; })(), 2_000, () => "no message");
    expect(got).toBe("greet.joe:hello");
    const reply = await c2.request("svc", sc.encode("ping"), { timeout: 2_000 });
    expect(sc.decode(reply.data)).toBe("re:ping");
    const err = await c2.request("nobody", sc.encode(""), { timeout: 2_000 }).catch((e: NatsError) => e);
    expect((err as NatsError).code).toBe(ErrorCode.NoResponders);
    const register = new Registry();
    a.mesh.registerMetrics(register);
    const text = await register.metrics();
    expect(text).toMatch(/^meshbroker_mesh_peers 1$/m);
    expect(text).toMatch(/^meshbroker_mesh_interest_entries\{peer="n2"\} [1-9]/m);
    expect(text).toMatch(/^meshbroker_mesh_peer_rtt_seconds\{peer="n2"\} /m);
  });
});

describe("mesh: interest and membership", () => {
  it("interest is aggregated: one entry per subject and queue group, with a weight", async () => {
    const [a, b] = await cluster(2);
    const subs = [recorder("agg"), recorder("agg"), recorder("agg", { queue: "q" }), recorder("agg", { queue: "q" })];
    for (const s of subs) a.router.subscribe("$G", s.sub);
    await settled([a, b]);
    expect(b.mesh.peers()[0].interestEntries).toBe(2);
    expect(a.mesh.interestStats().entries).toBe(2);
    for (const s of subs.slice(1)) a.router.unsubscribe("$G", s.sub);
    await settled([a, b]);
    expect(b.mesh.peers()[0].interestEntries).toBe(1); // RS- for the group, weight 1 left for "agg"
    a.router.unsubscribe("$G", subs[0].sub);
    await settled([a, b]);
    expect(b.mesh.peers()[0].interestEntries).toBe(0);
    // Nothing is forwarded once the interest is gone: a later message on the same stream is the barrier.
    const marker = recorder("marker");
    a.router.subscribe("$G", marker.sub);
    await settled([a, b]);
    const forwarded: string[] = [];
    const original = a.router.deliverForwarded.bind(a.router);
    a.router.deliverForwarded = (account, subject, ...rest) => { forwarded.push(subject); original(account, subject, ...rest); };
    b.router.publish("$G", "agg", undefined, data("x"), publisher());
    b.router.publish("$G", "marker", undefined, data("x"), publisher());
    await until(() => marker.got.length === 1, 2_000, "the marker");
    expect(forwarded).toEqual(["marker"]);
  });

  it("a router that registered first (and dials, with the smaller id) links to one started just after it at once, not a heartbeat later", async () => {
    const prefix = `mesh-test-${process.pid}-${prefixSeq++}`;
    const a = await startRouter("r1", prefix);
    await until(() => a.logs.includes("mesh: registered in Redis"), 2_000, "r1 registered");
    const b = await startRouter("r2", prefix);
    await until(() => b.logs.includes("mesh: registered in Redis"), 2_000, "r2 registered");
    const t0 = performance.now();
    await until(() => a.mesh.peers().length === 1 && b.mesh.peers().length === 1, 5_000, "linked");
    const took = performance.now() - t0;
    console.log(`r1 linked to r2 ${took.toFixed(0)} ms after r2 registered`);
    // r1's next regular heartbeat is about 1 s after its first: well past this bound.
    expect(took).toBeLessThan(600);
  });

  it("a late router gets the others' interest by snapshot", async () => {
    const prefix = `mesh-test-${process.pid}-${prefixSeq++}`;
    const a = await startRouter("r1", prefix);
    const s = recorder("late.>");
    a.router.subscribe("$G", s.sub);
    const c = await startRouter("r3", prefix);
    await until(() => c.mesh.peers().some((p) => p.id === "r1" && p.interestEntries === 1), 5_000, "snapshot on r3");
    c.router.publish("$G", "late.1", undefined, data("x"), publisher());
    await until(() => s.got.length === 1, 2_000, "delivery from the late router");
  });

  it("a torn-down peer's interest is dropped at once, and no-responders follows", async () => {
    const [a, b] = await cluster(2);
    b.router.subscribe("$G", recorder("gone").sub);
    await settled([a, b]);
    expect(a.mesh.peers()[0].interestEntries).toBe(1);
    const t0 = Date.now();
    b.server.forceShutdown(); // its streams torn down; its Redis key stays until the TTL
    await until(() => a.mesh.peers().length === 0, 2_000, "link dropped");
    console.log(`torn-down peer dropped after ${Date.now() - t0} ms`);
    const inbox = recorder("_INBOX.3");
    a.router.subscribe("$G", inbox.sub);
    a.router.publish("$G", "gone", "_INBOX.3", data(""), inbox.conn, { noResponders: true });
    expect(inbox.got).toHaveLength(1); // 503: nobody left in the cluster
    await b.stop();
  });

  it("a peer that goes silent is declared dead within 2 s", async () => {
    const [a] = await cluster(1);
    const { stream, client } = dialLink(a.address, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    stream.on("error", () => {});
    stream.write(meshFrames.encode({ ops: [{ op: "hello", hello: { routerId: "r0", version: MESH_VERSION, credential: { token: TOKEN } } }] }));
    await until(() => a.mesh.peers().length === 1, 2_000, "fake peer linked");
    const t0 = Date.now();
    // It never answers a ping from now on (a frozen process).
    await until(() => a.mesh.peers().length === 0, 2_500, "silent peer dropped");
    const took = Date.now() - t0;
    console.log(`silent peer declared dead after ${took} ms`);
    expect(took).toBeLessThanOrEqual(2_000);
  });

  it("a mesh needs a cluster credential: a token, or mTLS on its server", () => {
    expect(() => new Mesh(new Router(), { id: "x", advertise: "127.0.0.1:1", log: { info() {}, warn() {} } }))
      .toThrow(/no cluster credential/);
  });

  it("refuses a peer without the cluster credential, which can neither subscribe nor publish", async () => {
    const [a] = await cluster(1);
    const s = recorder("secret");
    a.router.subscribe("$G", s.sub);
    const { stream, client } = dialLink(a.address, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    stream.on("error", () => {});
    const ended = new Promise<void>((r) => { stream.on("end", r); stream.on("close", r); stream.on("error", () => r()); });
    stream.write(meshFrames.encode({ ops: [
      { op: "hello", hello: { routerId: "intruder", credential: { token: "wrong" } } },
      { op: "interest", interest: { seq: 1, entries: [{ account: "$G", subject: ">", weight: 1 }] } },
      { op: "forward", forward: { account: "$G", message: { subject: "secret", payload: Buffer.from("x") } } },
    ] }));
    stream.resume();
    await withTimeout(ended, 2_000, () => "the refused stream did not end");
    expect(a.logs.some((l) => /refused peer "intruder": wrong cluster token \(from 127\.0\.0\.1:\d+\)/.test(l))).toBe(true);
    expect(s.got).toEqual([]);
    expect(a.mesh.peers()).toEqual([]);
  });

  it("NKEY peers (grpc/credential.ts, as edges): routers with seed files link; a stranger's key, or a proof for another Hello, neither subscribes nor publishes; refusals logged once per address", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "mesh-nkey-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const member = async (name: string) => {
      const kp = createUser();
      const seedFile = path.join(dir, `${name}.nk`);
      await writeFile(seedFile, new TextDecoder().decode(kp.getSeed()));
      return { kp, seedFile };
    };
    const [k1, k2, stranger] = await Promise.all([member("r1"), member("r2"), member("stranger")]);
    const nkeys = [k1.kp.getPublicKey(), k2.kp.getPublicKey()];
    const prefix = `mesh-test-${process.pid}-${prefixSeq++}`;
    const [a, b] = await Promise.all([
      startRouter("r1", prefix, { authorization: { nkeys, seedFile: k1.seedFile } }),
      startRouter("r2", prefix, { authorization: { nkeys, seedFile: k2.seedFile } }),
    ]);
    await until(() => a.mesh.peers().length === 1 && b.mesh.peers().length === 1, 5_000, "NKEY mesh");
    const s = recorder("secret");
    a.router.subscribe("$G", s.sub);
    const signed = (kp: typeof stranger.kp, text: string) => ({ publicKey: kp.getPublicKey(), signature: Buffer.from(kp.sign(Buffer.from(text))), signed: Buffer.from(text) });
    const now = Date.now() * 1000;
    const hellos = [
      // A key the routers do not list.
      { routerId: "intruder", sentAtUs: now, credential: { nkey: signed(stranger.kp, `intruder ${now}`) } },
      // r2's key, with a proof replayed from another Hello (another id).
      { routerId: "intruder", sentAtUs: now, credential: { nkey: signed(k2.kp, `r2 ${now}`) } },
    ];
    for (const hello of hellos) {
      const { stream, client } = dialLink(a.address, grpc.credentials.createInsecure());
      cleanups.push(() => client.close());
      stream.on("error", () => {});
      const ended = new Promise<void>((r) => { stream.on("end", r); stream.on("close", r); stream.on("error", () => r()); });
      stream.write(meshFrames.encode({ ops: [
        { op: "hello", hello: { version: MESH_VERSION, ...hello } },
        { op: "interest", interest: { seq: 1, entries: [{ account: "$G", subject: ">", weight: 1 }] } },
        { op: "forward", forward: { account: "$G", message: { subject: "secret", payload: Buffer.from("x") } } },
      ] }));
      stream.resume();
      await withTimeout(ended, 2_000, () => "the refused stream did not end");
    }
    // The legitimate peer still routes: r2's publish reaches r1's subscriber, and only it.
    await settled([a, b]);
    b.router.publish("$G", "secret", undefined, data("legit"), publisher());
    await until(() => s.got.length > 0, 2_000, "the peer's message");
    expect(s.got.map((m) => m.text)).toEqual(["legit"]);
    expect(a.mesh.peers().map((p) => p.id)).toEqual(["r2"]);
    const refusals = a.logs.filter((l) => /refused peer/.test(l));
    expect(refusals).toEqual([expect.stringMatching(/refused peer "intruder": NKEY \S+ is not in this router's nkeys \(from 127\.0\.0\.1:\d+\)/)]);
  });

  it("a router with nkeys needs its own seed_file to dial its peers", () => {
    expect(() => new Mesh(new Router(), { id: "x", advertise: "127.0.0.1:1", authorization: { nkeys: ["UABC"] }, log: { info() {}, warn() {} } }))
      .toThrow(/no cluster credential/);
  });

  it("a peer that stops reading is closed as a slow peer once its backlog passes the bound", async () => {
    const prefix = `mesh-test-${process.pid}-${prefixSeq++}`;
    const a = await startRouter("r1", prefix, { maxBacklogBytes: 1 << 20 });
    const { stream, client } = dialLink(a.address, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    stream.on("error", () => {});
    // A reader that pauses: grpc-js pauses the HTTP/2 stream only once its reader has asked for
    // data (before that it takes every frame into memory, however wide the window).
    stream.on("data", () => {});
    stream.write(meshFrames.encode({ ops: [
      { op: "hello", hello: { routerId: "r0", version: MESH_VERSION, credential: { token: TOKEN } } },
      { op: "snapshot", snapshot: { seq: 1, entries: [{ account: "$G", subject: "big", weight: 1 }], last: true } },
    ] }));
    await until(() => a.mesh.peers()[0]?.interestEntries === 1, 2_000, "fake peer linked");
    stream.pause(); // reads nothing more: once its window is full, HTTP/2 flow control stops the router's writes
    const big = data("x".repeat(64 * 1024));
    let maxBacklog = 0;
    await withTimeout(new Promise<void>((resolve) => {
      const turn = () => {
        const peer = a.mesh.peers()[0];
        if (!peer) return resolve();
        maxBacklog = Math.max(maxBacklog, peer.backlogBytes);
        for (let i = 0; i < 8; i++) a.router.publish("$G", "big", undefined, big, publisher());
        setImmediate(turn);
      };
      turn();
    }), 1_500, () => "the slow peer was not closed");
    expect(maxBacklog).toBeLessThanOrEqual(1 << 20);
    expect(a.logs.some((l) => /slow peer: over 1048576 bytes/.test(l))).toBe(true);
  });

  it("a stranger's garbage or a first operation other than a hello is refused and logged", async () => {
    const [a] = await cluster(1);
    const s = recorder("secret");
    a.router.subscribe("$G", s.sub);
    for (const bytes of [Buffer.from([0xff, 0xff, 0xff, 0xff]),
      meshFrames.encode({ ops: [{ op: "forward", forward: { account: "$G", message: { subject: "secret" } } }] })]) {
      const { stream, client } = dialLink(a.address, grpc.credentials.createInsecure());
      cleanups.push(() => client.close());
      stream.on("error", () => {});
      const ended = new Promise<void>((r) => { stream.on("end", r); stream.on("close", r); stream.on("error", () => r()); });
      stream.write(bytes);
      stream.resume();
      await withTimeout(ended, 2_000, () => "the stranger's stream did not end");
    }
    // Both ended; logged once, since both came from one address (a refused peer redials).
    expect(a.logs.filter((l) => /refused a peer/.test(l))).toEqual([
      expect.stringMatching(/refused a peer before its hello: malformed MeshFrame.* \(from 127\.0\.0\.1:\d+\)/),
    ]);
    expect(s.got).toEqual([]);
  });

  it("a gap in a peer's interest updates makes the router ask for a snapshot", async () => {
    const [a] = await cluster(1);
    const { stream, client } = dialLink(a.address, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    stream.on("error", () => {});
    const received: MeshFrame[] = [];
    stream.on("data", (b: Buffer) => received.push(meshFrames.decode(b) as MeshFrame));
    const send = (frame: Parameters<typeof meshFrames.encode>[0]) => stream.write(meshFrames.encode(frame));
    send({ ops: [
      { op: "hello", hello: { routerId: "r0", version: MESH_VERSION, credential: { token: TOKEN } } },
      { op: "snapshot", snapshot: { seq: 5, entries: [{ account: "$G", subject: "a", weight: 1 }], last: true } },
      { op: "interest", interest: { seq: 6, entries: [{ account: "$G", subject: "b", weight: 1 }] } },
    ] });
    await until(() => a.mesh.peers()[0]?.interestEntries === 2, 2_000, "snapshot and update applied");
    send({ ops: [{ op: "interest", interest: { seq: 8, entries: [{ account: "$G", subject: "c", weight: 1 }] } }] });
    const ops = () => received.flatMap((f) => f.ops.map((o) => o.op));
    await until(() => ops().includes("resyncRequest"), 2_000, "resync request");
    expect(a.mesh.peers()[0].interestEntries).toBe(2); // the update after the gap was not applied
    send({ ops: [{ op: "snapshot", snapshot: { seq: 8, entries: [{ account: "$G", subject: "c", weight: 3 }], last: true } }] });
    await until(() => a.mesh.peers()[0]?.interestSeq === 8 && a.mesh.peers()[0]?.interestEntries === 1, 2_000, "resynced");
    expect(a.logs.some((l) => /missed; resync/.test(l))).toBe(true);
  });

  it("a router whose registration expires is dropped by the others", async () => {
    const [a, b] = await cluster(2);
    // b keeps its stream but stops renewing its key (as a router cut off from Redis would).
    clearInterval((b.mesh as unknown as { timer: NodeJS.Timeout }).timer);
    const t0 = Date.now();
    await until(() => a.mesh.peers().length === 0, 7_000, "expired peer dropped");
    console.log(`peer with an expired registration dropped after ${Date.now() - t0} ms`);
    expect(a.logs.some((l) => /registration expired/.test(l))).toBe(true);
  });

  it("interest for 100,000 subscriptions reaches another router within 1 s", async () => {
    const [a, b] = await cluster(2);
    const N = 100_000;
    const subs = Array.from({ length: N }, (_, i) => recorder(`bulk.${i}.x`).sub);
    const t0 = performance.now();
    for (const sub of subs) a.router.subscribe("$G", sub);
    const t1 = performance.now();
    await until(() => b.mesh.peers()[0]?.interestEntries === N, 10_000, "100,000 entries on the peer");
    const took = performance.now() - t1;
    console.log(`100,000 subscriptions: subscribed on r1 in ${(t1 - t0).toFixed(0)} ms, then on r2 ${took.toFixed(0)} ms later`);
    expect(took).toBeLessThan(3_000); // the target is 1 s; generous for a loaded 2-core machine
  });
});

describe("mesh: a peer router process killed or frozen", () => {
  /** r1 in this process, r2 a child process with `subjects` subscribed; resolves once linked. */
  async function withChild(subjects: string[]) {
    assertBuilt();
    const prefix = `mesh-test-${process.pid}-${prefixSeq++}`;
    const child = spawnCommand(process.execPath,
      [path.join(REPO_ROOT, "test/fixtures/mesh-router.mjs"), "r2", redis.url, prefix, TOKEN, ...subjects], { name: "mesh-router" });
    await child.waitForLine(/^mesh router r2 on /);
    const a = await startRouter("r1", prefix);
    await until(() => a.mesh.peers()[0]?.interestEntries === subjects.length, 5_000, "the child's interest");
    return { a, child };
  }

  it("kill -9: its interest is dropped within 2 s", async () => {
    const { a, child } = await withChild(["k.1", "k.2"]);
    const t0 = Date.now();
    await child.kill();
    await until(() => a.mesh.peers().length === 0, 2_000, "killed peer dropped");
    console.log(`killed peer router dropped after ${Date.now() - t0} ms`);
  });

  it("SIGSTOP: a frozen router is declared dead within 2 s", async () => {
    const { a, child } = await withChild(["f.1"]);
    const t0 = Date.now();
    child.signal("SIGSTOP");
    await until(() => a.mesh.peers().length === 0, 2_500, "frozen peer dropped");
    const took = Date.now() - t0;
    console.log(`frozen peer router dropped after ${took} ms`);
    expect(took).toBeLessThanOrEqual(2_000);
    await child.kill();
  });
});

describe("mesh: Redis restart", () => {
  it("routing continues while Redis is down, and the summary is rewritten when it is back", async () => {
    const own = await startRedis();
    let current: RedisServer | undefined = own;
    cleanups.push(() => current?.stop());
    const prefix = `mesh-test-${process.pid}-${prefixSeq++}`;
    const a = await startRouter("r1", prefix, { redisUrl: own.url });
    const b = await startRouter("r2", prefix, { redisUrl: own.url });
    await until(() => a.mesh.peers().length === 1 && b.mesh.peers().length === 1, 5_000, "linked");
    await own.stop();
    current = undefined;
    await until(() => a.logs.some((l) => /Redis unavailable/.test(l)), 3_000, "outage logged");
    expect(a.logs.some((l) => /Redis is back/.test(l))).toBe(false);
    // Interest made during the outage still travels over the mesh.
    const s = recorder("during");
    a.router.subscribe("$G", s.sub);
    await settled([a, b]);
    b.router.publish("$G", "during", undefined, data("x"), publisher());
    await until(() => s.got.length === 1, 2_000, "delivery during the outage");
    current = await startRedis({ port: own.port });
    await until(() => a.logs.some((l) => /Redis is back/.test(l)), 8_000, "recovery logged");
    const registry = (a.mesh as unknown as { registry: MeshRegistry }).registry;
    const summary = await registry.readSummary("r1", prefix);
    expect(summary.entries).toEqual({ "$G during ": "1" });
    expect(summary.seq).toBe(a.mesh.interestStats().seq);
    expect(a.mesh.peers()).toHaveLength(1); // the link survived
  });
});
