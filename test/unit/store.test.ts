// One table of behaviour for every MQTT store (memory, level, redis, redis as a Cluster), then
// what only the durable ones promise: state kept across a close and reopen / a new connection.
import { mkdtemp, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  MEMORY_STORE_WARNING,
  MemoryStore,
  openStore,
  topicMatches,
  type MqttStore,
  type StoredMessage,
} from "../../services/router/store/index.js";
import { LevelStore } from "../../services/router/store/level.js";
import { sessionKey } from "../../services/router/store/store.js";
import { GLOBAL_ACCOUNT as G } from "../../services/common/config/options.js";
import { hashTag, openRedisStore } from "../../services/router/store/redis.js";
import { parseRedisUrl } from "../../services/router/store/redis-url.js";
import { encodeMessage, encodeSession } from "../../services/router/store/codec.js";
import { ClassicLevel } from "classic-level";
import { startRedis, type RedisServer } from "../helpers/redis.js";

/** A client id's session key in the global account (the key the tests mostly use). */
const K = (clientId: string) => sessionKey(G, clientId);

const msg = (topic: string, payload: string | Buffer = "x", qos: 0 | 1 | 2 = 1, retain = false): StoredMessage => ({
  topic,
  payload: typeof payload === "string" ? Buffer.from(payload) : payload,
  qos,
  retain,
});

/** Compares messages by value (payload as a string), ignoring Buffer identity. */
const plain = (m: StoredMessage & { seq?: number; packetId?: number }) => ({ ...m, payload: m.payload.toString("latin1") });

interface Impl {
  name: string;
  start(): Promise<void>;
  open(): Promise<MqttStore>;
  stop(): Promise<void>;
}

function redisImpl(name: string, cluster: boolean): Impl {
  let server: RedisServer | undefined;
  let n = 0;
  return {
    name,
    async start() { server = await startRedis({ cluster }); },
    // A fresh key prefix per test keeps tests apart without flushing.
    open: () => openRedisStore(server!.url, { prefix: `t${++n}` }),
    async stop() { await server?.stop(); },
  };
}

function levelImpl(): Impl {
  let base = "";
  let n = 0;
  return {
    name: "level",
    async start() { base = await mkdtemp(path.join(os.tmpdir(), "meshbroker-store-")); },
    open: () => LevelStore.open(path.join(base, `db${++n}`)),
    async stop() { await rm(base, { recursive: true, force: true }); },
  };
}

const impls: Impl[] = [
  { name: "memory", start: async () => {}, open: async () => new MemoryStore(), stop: async () => {} },
  levelImpl(),
  redisImpl("redis", false),
  redisImpl("redis-cluster", true),
];

// Retained topics and, per filter, the topics it must return (MQTT 3.1.1 section 4.7).
const RETAINED_TOPICS = [
  "a", "a/b", "a/b/c", "a/c", "a/", "a//b", "/a", "b",
  "sport", "sport/", "sport/tennis/player1", "sport/tennis/player1/ranking",
  "$SYS", "$SYS/x", "$other/a/b", "q*/[1]", "qq/[1]", "q\\/x", "日本/語",
];
const FILTER_CASES: [string, string[]][] = [
  ["a/b", ["a/b"]],
  ["nope", []],
  ["a/+", ["a/b", "a/c", "a/"]],
  ["a/#", ["a", "a/b", "a/b/c", "a/c", "a/", "a//b"]],
  ["a/b/c/#", ["a/b/c"]],
  ["a/+/c", ["a/b/c"]],
  ["a/+/b", ["a//b"]],
  ["+", ["a", "b", "sport"]],
  ["+/+", ["a/b", "a/c", "a/", "/a", "sport/", "q*/[1]", "qq/[1]", "q\\/x", "日本/語"]],
  ["+/+/+", ["a/b/c", "a//b", "sport/tennis/player1"]],
  ["/+", ["/a"]],
  ["+/a", ["/a"]],
  ["sport/#", ["sport", "sport/", "sport/tennis/player1", "sport/tennis/player1/ranking"]],
  ["sport/tennis/player1/#", ["sport/tennis/player1", "sport/tennis/player1/ranking"]],
  ["sport/+", ["sport/"]],
  ["sport/tennis/+", ["sport/tennis/player1"]],
  // [MQTT-4.7.2-1] wildcards in the first level do not reach "$" topics; a literal "$" level does.
  ["+/x", ["q\\/x"]],
  ["$SYS/#", ["$SYS", "$SYS/x"]],
  ["$SYS/+", ["$SYS/x"]],
  ["$other/+/b", ["$other/a/b"]],
  // Glob characters are literal in MQTT (the redis store narrows with HSCAN MATCH).
  ["q*/+", ["q*/[1]"]],
  ["+/[1]", ["q*/[1]", "qq/[1]"]],
  ["q\\/#", ["q\\/x"]],
  ["日本/+", ["日本/語"]],
];
const ALL_BUT_DOLLAR = RETAINED_TOPICS.filter((t) => !t.startsWith("$"));

describe.each(impls)("MQTT store: $name", (impl) => {
  let store: MqttStore;
  beforeAll(() => impl.start());
  afterAll(() => impl.stop());
  beforeEach(async () => { store = await impl.open(); });
  afterEach(() => store.close());

  it("stores, overwrites, lists and deletes sessions", async () => {
    expect(await store.getSession(K("c1"))).toBeUndefined();
    const s1 = { clientId: "c1", subscriptions: [{ filter: "a/#", qos: 1 as const }], updatedAt: 1000 };
    await store.putSession(s1);
    await store.putSession({ clientId: "c2", subscriptions: [], updatedAt: 2000 });
    expect(await store.getSession(K("c1"))).toEqual(s1);
    const s1b = { clientId: "c1", subscriptions: [{ filter: "x", qos: 2 as const }, { filter: "+/y", qos: 0 as const }], updatedAt: 3000, account: G };
    await store.putSession(s1b);
    expect(await store.getSession(K("c1"))).toEqual(s1b);
    const list = await store.listSessions();
    expect(list.sort((a, b) => a.clientId.localeCompare(b.clientId))).toEqual([s1b, { clientId: "c2", subscriptions: [], updatedAt: 2000 }]);
    await store.deleteSession(K("c1"));
    expect(await store.getSession(K("c1"))).toBeUndefined();
    expect((await store.listSessions()).map((s) => s.clientId)).toEqual(["c2"]);
  });

  it("keeps an MQTT 5 session's expiry interval, its MQTT 5 mark and its subscriptions' options and identifiers", async () => {
    const s = {
      clientId: "v5", updatedAt: 5000, account: G, expiry: 120, mqtt5: true,
      subscriptions: [
        { filter: "$share/g/a/+", qos: 1 as const },
        { filter: "b/#", qos: 2 as const, noLocal: true, retainAsPublished: true, retainHandling: 2 as const, identifier: 9 },
      ],
    };
    await store.putSession(s);
    expect(await store.getSession(K("v5"))).toEqual(s);
    expect((await store.listSessions()).find((x) => x.clientId === "v5")).toEqual(s);
    await store.deleteSession(K("v5"));
  });

  it("deleteSession removes the queue, incoming and released state too, and seqs start over", async () => {
    await store.putSession({ clientId: "d", subscriptions: [], updatedAt: 1 });
    await store.enqueue(K("d"), msg("t", "1"));
    const seq = await store.enqueue(K("d"), msg("t", "2"));
    await store.setPacketId(K("d"), seq, 7);
    await store.putIncoming(K("d"), 3, msg("in"));
    await store.markReleased(K("d"), 4);
    await store.enqueue(K("other"), msg("t", "keep"));
    await store.deleteSession(K("d"));
    expect(await store.getSession(K("d"))).toBeUndefined();
    expect(await store.queued(K("d"), 10)).toEqual([]);
    expect(await store.takeIncoming(K("d"), 3)).toBeUndefined();
    expect(await store.released(K("d"))).toEqual([]);
    expect(await store.enqueue(K("d"), msg("t", "new"))).toBe(1);
    expect((await store.queued(K("other"), 10)).map(plain)).toEqual([{ ...plain(msg("t", "keep")), seq: 1 }]);
    await store.deleteSession(K("never-existed"));
  });

  it("queues per client in order, with increasing seqs and a limit", async () => {
    const seqs: number[] = [];
    for (let i = 0; i < 5; i++) seqs.push(await store.enqueue(K("c"), msg(`t/${i}`, `p${i}`)));
    expect(seqs).toEqual([1, 2, 3, 4, 5]);
    expect((await store.queued(K("c"), 3)).map((m) => [m.seq, m.topic, m.payload.toString()])).toEqual([
      [1, "t/0", "p0"], [2, "t/1", "p1"], [3, "t/2", "p2"],
    ]);
    expect(await store.queued(K("c"), 0)).toEqual([]);
    expect(await store.queued(K("empty"), 10)).toEqual([]);
    await store.ack(K("c"), 2);
    await store.ack(K("c"), 99); // unknown: no-op
    expect((await store.queued(K("c"), 10)).map((m) => m.seq)).toEqual([1, 3, 4, 5]);
    expect(await store.enqueue(K("c"), msg("t/5"))).toBe(6);
  });

  it("round-trips every message field", async () => {
    const bin = Buffer.from([0, 1, 2, 255, 0, 10, 13]);
    const cases = [msg("a/b", bin, 1, false), msg("日本/語/ü", "", 2, true), msg("/", "x".repeat(100_000), 1, true), msg("q0", "z", 0, false)];
    for (const m of cases) await store.enqueue(K("rt"), m);
    const got = await store.queued(K("rt"), 10);
    expect(got.map(plain)).toEqual(cases.map((m, i) => ({ ...plain(m), seq: i + 1 })));
    expect(got[0].packetId).toBeUndefined();
    expect(Buffer.isBuffer(got[0].payload)).toBe(true);
  });

  it("keeps MQTT 5 properties and the expiry time in queues, QoS 2 state and retained messages, packet ids too", async () => {
    const props = {
      userProperties: { a: "1", twice: ["x", "y"] }, contentType: "text/plain", correlationData: Buffer.from([0, 1, 255]),
      responseTopic: "resp/a", payloadFormatIndicator: true, messageExpiryInterval: 30,
    };
    const full: StoredMessage = { ...msg("p/1", "body", 1, false), props, expiresAt: 1_800_000_000_123 };
    const expiryOnly: StoredMessage = { ...msg("p/2", "", 2, false), expiresAt: 1_800_000_000_000 };
    const propsOnly: StoredMessage = { ...msg("p/3", "z", 1, false), props: { contentType: "c" } };
    for (const m of [full, expiryOnly, propsOnly]) await store.enqueue(K("p5"), m);
    await store.setPacketId(K("p5"), 1, 7);
    const got = await store.queued(K("p5"), 10);
    expect(got.map(plain)).toEqual([
      { ...plain(full), seq: 1, packetId: 7 }, { ...plain(expiryOnly), seq: 2 }, { ...plain(propsOnly), seq: 3 },
    ]);
    expect(await store.putIncoming(K("p5"), 9, full)).toBe(true);
    expect(plain((await store.takeIncoming(K("p5"), 9))!)).toEqual(plain(full));
    await store.setRetained(G, { ...full, retain: true });
    expect((await store.matchRetained(G, "p/#")).map(plain)).toEqual([plain({ ...full, retain: true })]);
  });

  it("applies calls in call order without awaiting in between", async () => {
    const pending: Promise<unknown>[] = [];
    const seqs: Promise<number>[] = [];
    for (let i = 0; i < 50; i++) seqs.push(store.enqueue(K("o"), msg("t", `a${i}`)));
    pending.push(store.enqueueMany(Array.from({ length: 50 }, (_, i) => ({ id: K("o"), msg: msg("t", `b${i}`) }))));
    pending.push(store.ack(K("o"), 1), store.setPacketId(K("o"), 2, 100), store.ack(K("o"), 3));
    pending.push(store.putSession({ clientId: "o", subscriptions: [], updatedAt: 1 }), store.deleteSession(K("o2")));
    const puts = [store.putIncoming(K("o"), 1, msg("i")), store.putIncoming(K("o"), 1, msg("j"))];
    const takes = [store.takeIncoming(K("o"), 1), store.takeIncoming(K("o"), 1)];
    const q = store.queued(K("o"), 1000);
    expect(await Promise.all(seqs)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    await Promise.all(pending);
    expect(await Promise.all(puts)).toEqual([true, false]);
    const [t1, t2] = await Promise.all(takes);
    expect(t1 && t1.topic).toBe("i");
    expect(t2).toBeUndefined();
    const got = await q;
    expect(got.map((m) => m.payload.toString())).toEqual([
      ...Array.from({ length: 50 }, (_, i) => `a${i}`).filter((_, i) => i !== 0 && i !== 2),
      ...Array.from({ length: 50 }, (_, i) => `b${i}`),
    ]);
    expect(got.map((m) => m.seq)).toEqual([2, ...Array.from({ length: 97 }, (_, i) => i + 4)]);
    expect(got[0].packetId).toBe(100);
  });

  it("records packet ids, acks, and never resurrects an acked message", async () => {
    const s1 = await store.enqueue(K("p"), msg("t", "1", 2));
    const s2 = await store.enqueue(K("p"), msg("t", "2", 1));
    await store.setPacketId(K("p"), s1, 1);
    await store.setPacketId(K("p"), s2, 65535);
    let q = await store.queued(K("p"), 10);
    expect(q.map((m) => [m.seq, m.packetId, m.qos])).toEqual([[s1, 1, 2], [s2, 65535, 1]]);
    await store.setPacketId(K("p"), s1, 42); // re-sent with a new id
    await store.ack(K("p"), s2);
    await store.setPacketId(K("p"), s2, 9); // late: no-op
    await store.setPacketId(K("p"), 12345, 9); // never queued: no-op
    q = await store.queued(K("p"), 10);
    expect(q.map((m) => [m.seq, m.packetId, m.payload.toString()])).toEqual([[s1, 42, "1"]]);
    await expect(store.setPacketId(K("p"), s1, 0)).rejects.toThrow(RangeError);
    await expect(store.setPacketId(K("p"), s1, 65536)).rejects.toThrow(RangeError);
  });

  it("enqueueMany fans out in one call, keeping per-client order and seqs", async () => {
    await store.enqueue(K("f1"), msg("first"));
    await store.enqueueMany([
      { id: K("f1"), msg: msg("x", "1") },
      { id: K("f2"), msg: msg("x", "1") },
      { id: K("f1"), msg: msg("x", "2") },
      { id: K("f3"), msg: msg("x", "1", 2, true) },
    ]);
    await store.enqueueMany([]);
    expect((await store.queued(K("f1"), 10)).map((m) => [m.seq, m.topic, m.payload.toString()])).toEqual([
      [1, "first", "x"], [2, "x", "1"], [3, "x", "2"],
    ]);
    expect((await store.queued(K("f2"), 10)).map((m) => m.seq)).toEqual([1]);
    expect((await store.queued(K("f3"), 10)).map(plain)).toEqual([{ ...plain(msg("x", "1", 2, true)), seq: 1 }]);
    expect(await store.enqueue(K("f2"), msg("y"))).toBe(2);
  });

  it("keeps clients apart, whatever their ids", async () => {
    const ids = ["", "a", "a{b}", "{a}", "=a", "a:q", "a b", "日本", "x".repeat(200)];
    for (const id of ids) {
      await store.putSession({ clientId: id, subscriptions: [{ filter: id || "e", qos: 1 }], updatedAt: 5 });
      await store.enqueue(K(id), msg(`for/${id}`));
      await store.putIncoming(K(id), 1, msg(`in/${id}`));
      await store.markReleased(K(id), 2);
    }
    for (const id of ids) {
      expect((await store.getSession(K(id)))?.clientId).toBe(id);
      expect((await store.queued(K(id), 10)).map((m) => [m.seq, m.topic])).toEqual([[1, `for/${id}`]]);
      expect(await store.released(K(id))).toEqual([2]);
    }
    expect((await store.listSessions()).map((s) => s.clientId).sort()).toEqual([...ids].sort());
    await store.deleteSession(K("a"));
    for (const id of ids.filter((i) => i !== "a")) expect((await store.takeIncoming(K(id), 1))?.topic).toBe(`in/${id}`);
    expect(await store.takeIncoming(K("a"), 1)).toBeUndefined();
  });

  it("keeps its own copy of the payloads it is given", async () => {
    const buf = Buffer.from("original");
    const view = buf.subarray(0, 4); // "orig", as a parser would pass it
    await store.enqueue(K("cp"), { topic: "t", payload: view, qos: 1, retain: false });
    await store.putIncoming(K("cp"), 1, { topic: "t", payload: view, qos: 2, retain: false });
    await store.setRetained(G, { topic: "cp/t", payload: view, qos: 1, retain: true });
    buf.fill(0x2a);
    expect((await store.queued(K("cp"), 1))[0].payload.toString()).toBe("orig");
    expect((await store.takeIncoming(K("cp"), 1))?.payload.toString()).toBe("orig");
    expect((await store.matchRetained(G, "cp/t"))[0].payload.toString()).toBe("orig");
  });

  it("holds inbound QoS 2 messages until released, once", async () => {
    expect(await store.putIncoming(K("q2"), 10, msg("a", "1", 2))).toBe(true);
    expect(await store.putIncoming(K("q2"), 10, msg("a", "dup", 2))).toBe(false); // a re-sent PUBLISH (DUP)
    expect(await store.putIncoming(K("q2"), 11, msg("b", "2", 2, true))).toBe(true);
    expect(plain((await store.takeIncoming(K("q2"), 10))!)).toEqual(plain(msg("a", "1", 2)));
    expect(await store.takeIncoming(K("q2"), 10)).toBeUndefined();
    expect(plain((await store.takeIncoming(K("q2"), 11))!)).toEqual(plain(msg("b", "2", 2, true)));
    expect(await store.putIncoming(K("q2"), 10, msg("a", "again", 2))).toBe(true); // the id is free again
    await expect(store.putIncoming(K("q2"), 0, msg("a"))).rejects.toThrow(RangeError);
  });

  it("lists outbound PUBRELs in the order first marked", async () => {
    await store.markReleased(K("r"), 300);
    await store.markReleased(K("r"), 2);
    await store.markReleased(K("r"), 65535);
    await store.markReleased(K("r"), 2); // PUBREC again: same place
    expect(await store.released(K("r"))).toEqual([300, 2, 65535]);
    await store.completeReleased(K("r"), 2);
    await store.completeReleased(K("r"), 7); // unknown: no-op
    expect(await store.released(K("r"))).toEqual([300, 65535]);
    await store.markReleased(K("r"), 2);
    expect(await store.released(K("r"))).toEqual([300, 65535, 2]);
    expect(await store.released(K("nobody"))).toEqual([]);
  });

  it("keeps a message's cluster id in queues and QoS 2 state, with or without MQTT 5 parts and packet ids", async () => {
    const plainId: StoredMessage = { ...msg("i/1", "a"), id: 1 };
    const bigId: StoredMessage = { ...msg("i/2", "b", 2), id: Number.MAX_SAFE_INTEGER };
    const v5Id: StoredMessage = { ...msg("i/3", "c"), props: { contentType: "c" }, expiresAt: 1_800_000_000_000, id: 2 ** 32 + 7 };
    for (const m of [plainId, bigId, v5Id]) await store.enqueue(K("ids"), m);
    await store.setPacketId(K("ids"), 2, 9);
    expect((await store.queued(K("ids"), 10)).map(plain)).toEqual([
      { ...plain(plainId), seq: 1 }, { ...plain(bigId), seq: 2, packetId: 9 }, { ...plain(v5Id), seq: 3 },
    ]);
    await store.putIncoming(K("ids"), 4, bigId);
    expect(plain((await store.takeIncoming(K("ids"), 4))!)).toEqual(plain(bigId));
  });

  it("received: the PUBREC's ack, release and delivered record in one call; deleteSession drops the record", async () => {
    const seq = await store.enqueue(K("rc"), { ...msg("t", "1", 2), id: 41 });
    const keep = await store.enqueue(K("rc"), { ...msg("t", "2", 2), id: 42 });
    await store.received(K("rc"), 5, seq, 41);
    await store.received(K("rc"), 6, undefined, undefined); // nothing queued, no id: only the release
    await store.received(K("rc"), 5, seq, 41); // PUBREC again: same place, recorded once
    expect((await store.queued(K("rc"), 10)).map((m) => m.seq)).toEqual([keep]);
    expect(await store.released(K("rc"))).toEqual([5, 6]);
    expect(await store.delivered(K("rc"))).toEqual([41]);
    await store.received(K("rc"), 7, keep, Number.MAX_SAFE_INTEGER);
    expect((await store.delivered(K("rc"))).sort()).toEqual([41, Number.MAX_SAFE_INTEGER].sort());
    await expect(store.received(K("rc"), 0, undefined, 1)).rejects.toThrow(RangeError);
    expect(await store.delivered(K("nobody"))).toEqual([]);
    await store.deleteSession(K("rc"));
    expect(await store.delivered(K("rc"))).toEqual([]);
    expect(await store.released(K("rc"))).toEqual([]);
  });

  it("keeps one retained message per topic; an empty payload clears it", async () => {
    await store.setRetained(G, msg("r/1", "a", 1, true));
    await store.setRetained(G, msg("r/1", "b", 2, true));
    await store.setRetained(G, msg("r/2", "c", 0, true));
    expect((await store.matchRetained(G, "r/1")).map(plain)).toEqual([plain(msg("r/1", "b", 2, true))]);
    expect((await store.matchRetained(G, "r/+")).map((m) => m.payload.toString()).sort()).toEqual(["b", "c"]);
    await store.setRetained(G, msg("r/1", "", 1, true));
    await store.setRetained(G, msg("r/none", "", 1, true)); // clearing nothing
    expect(await store.matchRetained(G, "r/1")).toEqual([]);
    expect((await store.matchRetained(G, "r/#")).map((m) => m.topic)).toEqual(["r/2"]);
  });

  it("keeps two accounts' sessions, queues, QoS 2 state and retained messages apart (same client id, same topic)", async () => {
    const a = sessionKey("A", "dev"), b = sessionKey("B", "dev"), g = K("dev");
    // Keys no other pair may collide with: a global client id shaped like another account's key.
    const forged = K(sessionKey("A", "dev"));
    expect(new Set([a, b, g, forged, sessionKey("A", "\u0001B\u0001dev")]).size).toBe(5);
    await store.putSession({ clientId: "dev", account: "A", subscriptions: [{ filter: "a/#", qos: 1 }], updatedAt: 1 });
    await store.putSession({ clientId: "dev", account: "B", subscriptions: [{ filter: "b/#", qos: 2 }], updatedAt: 2 });
    expect((await store.getSession(a))?.subscriptions).toEqual([{ filter: "a/#", qos: 1 }]);
    expect((await store.getSession(b))?.subscriptions).toEqual([{ filter: "b/#", qos: 2 }]);
    expect(await store.getSession(g)).toBeUndefined();
    expect(await store.getSession(forged)).toBeUndefined();
    await store.enqueue(a, msg("a/1", "for A"));
    await store.enqueue(b, msg("b/1", "for B"));
    expect(await store.putIncoming(a, 7, msg("in", "A's", 2))).toBe(true);
    expect(await store.putIncoming(b, 7, msg("in", "B's", 2))).toBe(true); // the same packet id is B's own
    await store.markReleased(a, 3);
    // B deleting "its" dev session leaves A's untouched.
    expect((await store.takeIncoming(b, 7))?.payload.toString()).toBe("B's");
    await store.deleteSession(b);
    expect(await store.getSession(b)).toBeUndefined();
    expect((await store.queued(a, 10)).map((m) => m.payload.toString())).toEqual(["for A"]);
    expect(await store.released(a)).toEqual([3]);
    expect((await store.takeIncoming(a, 7))?.payload.toString()).toBe("A's");
    expect((await store.listSessions()).map((x) => [x.account, x.clientId])).toEqual([["A", "dev"]]);
    // Retained: one per account and topic; B can neither read, replace nor clear A's.
    await store.setRetained("A", msg("t/secret", "A's", 1, true));
    await store.setRetained("B", msg("t/secret", "B's", 1, true));
    await store.setRetained("B", msg("t/secret", "", 1, true));
    expect((await store.matchRetained("A", "#")).map((m) => m.payload.toString())).toEqual(["A's"]);
    expect(await store.matchRetained("B", "#")).toEqual([]);
    expect(await store.matchRetained("B", "t/secret")).toEqual([]);
    expect(await store.matchRetained(G, "#")).toEqual([]);
    // Account names with key separators in them stay apart too.
    await store.setRetained("x:y{z}\u0001", msg("t/secret", "odd", 1, true));
    expect((await store.matchRetained("x:y{z}\u0001", "t/+")).map((m) => m.payload.toString())).toEqual(["odd"]);
    expect((await store.matchRetained("A", "t/+")).map((m) => m.payload.toString())).toEqual(["A's"]);
  });

  it("matches retained messages with MQTT filters", async () => {
    for (const t of RETAINED_TOPICS) await store.setRetained(G, msg(t, `v:${t}`, 1, true));
    for (const [filter, want] of [...FILTER_CASES, ["#", ALL_BUT_DOLLAR] as [string, string[]]]) {
      const got = await store.matchRetained(G, filter);
      expect({ filter, topics: got.map((m) => m.topic).sort() }).toEqual({ filter, topics: [...want].sort() });
      for (const m of got) expect(m.payload.toString()).toBe(`v:${m.topic}`);
    }
  });
});

describe("topicMatches", () => {
  it("agrees with the filter table", () => {
    for (const [filter, want] of [...FILTER_CASES, ["#", ALL_BUT_DOLLAR] as [string, string[]]]) {
      expect({ filter, topics: RETAINED_TOPICS.filter((t) => topicMatches(filter, t)).sort() }).toEqual({ filter, topics: [...want].sort() });
    }
  });
});

/** Writes one of everything, for the reopen tests. */
async function fill(store: MqttStore): Promise<void> {
  await store.putSession({ clientId: "keep", subscriptions: [{ filter: "a/+", qos: 2 }], updatedAt: 123 });
  await store.putSession({ clientId: "gone", subscriptions: [], updatedAt: 1 });
  for (let i = 1; i <= 3; i++) await store.enqueue(K("keep"), msg(`q/${i}`, Buffer.from([i, 0, 255]), 1));
  await store.setPacketId(K("keep"), 2, 77);
  await store.ack(K("keep"), 1);
  await store.enqueue(K("drained"), msg("d"));
  await store.ack(K("drained"), 1);
  await store.putIncoming(K("keep"), 5, msg("in", "inbound", 2));
  await store.markReleased(K("keep"), 9);
  await store.markReleased(K("keep"), 3);
  await store.setRetained(G, msg("ret/a", "A", 1, true));
  await store.setRetained(G, msg("ret/b", "B", 0, true));
  await store.setRetained(G, msg("ret/b", "", 0, true));
  await store.deleteSession(K("gone"));
  // Another account's session and retained message with the same client id and topic.
  await store.putSession({ clientId: "keep", account: "B", subscriptions: [{ filter: "b", qos: 1 }], updatedAt: 7 });
  await store.enqueue(sessionKey("B", "keep"), msg("b/1", "B"));
  await store.setRetained("B", msg("ret/a", "B", 1, true));
}

/** Checks what fill() wrote, after a restart. */
async function check(store: MqttStore): Promise<void> {
  expect((await store.listSessions()).sort((x, y) => (x.account ?? "").localeCompare(y.account ?? ""))).toEqual([
    { clientId: "keep", subscriptions: [{ filter: "a/+", qos: 2 }], updatedAt: 123 },
    { clientId: "keep", account: "B", subscriptions: [{ filter: "b", qos: 1 }], updatedAt: 7 },
  ]);
  expect((await store.queued(sessionKey("B", "keep"), 10)).map((m) => m.payload.toString())).toEqual(["B"]);
  expect((await store.matchRetained("B", "ret/#")).map((m) => m.payload.toString())).toEqual(["B"]);
  const q = await store.queued(K("keep"), 10);
  expect(q.map((m) => [m.seq, m.topic, [...m.payload], m.packetId])).toEqual([
    [2, "q/2", [2, 0, 255], 77],
    [3, "q/3", [3, 0, 255], undefined],
  ]);
  expect(await store.released(K("keep"))).toEqual([9, 3]);
  expect((await store.matchRetained(G, "ret/#")).map(plain)).toEqual([plain(msg("ret/a", "A", 1, true))]);
  // Seqs continue where they were, also for a client whose queue was empty at the restart.
  expect(await store.enqueue(K("keep"), msg("q/4"))).toBeGreaterThan(3);
  expect(await store.enqueue(K("drained"), msg("d2"))).toBeGreaterThan(1);
  expect(await store.enqueue(K("gone"), msg("g"))).toBe(1);
  expect(plain((await store.takeIncoming(K("keep"), 5))!)).toEqual(plain(msg("in", "inbound", 2)));
}

describe("level store on disk", () => {
  let base: string;
  beforeEach(async () => { base = await mkdtemp(path.join(os.tmpdir(), "meshbroker-store-")); });
  afterEach(() => rm(base, { recursive: true, force: true }));

  it("creates its directory and keeps everything across close and reopen", async () => {
    const dir = path.join(base, "nested", "store");
    const first = await LevelStore.open(dir);
    await fill(first);
    await first.close();
    expect((await stat(dir)).isDirectory()).toBe(true);
    const second = await LevelStore.open(dir);
    try {
      await check(second);
    } finally {
      await second.close();
    }
  });

  it("reads a database written before state was per account as the global account's", async () => {
    // The previous version's keys, written as it wrote them: s\0<client id>, c\0<client id>\0q\0<seq>, t\0<topic>.
    const old = new ClassicLevel<string, Buffer>(base, { keyEncoding: "utf8", valueEncoding: "buffer" });
    await old.batch([
      { type: "put", key: "s\0dev", value: encodeSession({ clientId: "dev", subscriptions: [{ filter: "a/#", qos: 1 }], updatedAt: 9 }) },
      { type: "put", key: "n\0dev", value: Buffer.from("1024") },
      { type: "put", key: `c\0dev\0q\0${(1).toString(16).padStart(14, "0")}`, value: encodeMessage(msg("a/1", "queued")) },
      { type: "put", key: "t\0a/r", value: encodeMessage(msg("a/r", "retained", 1, true)) },
    ]);
    await old.close();
    const store = await LevelStore.open(base);
    try {
      expect(await store.getSession(K("dev"))).toEqual({ clientId: "dev", subscriptions: [{ filter: "a/#", qos: 1 }], updatedAt: 9 });
      expect((await store.queued(K("dev"), 10)).map((m) => m.payload.toString())).toEqual(["queued"]);
      expect((await store.matchRetained(G, "a/#")).map((m) => m.payload.toString())).toEqual(["retained"]);
      expect(await store.matchRetained("A", "a/#")).toEqual([]);
      expect(await store.getSession(sessionKey("A", "dev"))).toBeUndefined();
    } finally {
      await store.close();
    }
  });

  it("reads message records of the format before MQTT 5 properties were stored", async () => {
    // flags (qos 1, retain) | packet id 5 | topic length 3 | "a/r" | payload: what earlier versions wrote.
    const record = Buffer.concat([Buffer.from([1 | 4, 0, 5, 0, 3]), Buffer.from("a/rold")]);
    const old = new ClassicLevel<string, Buffer>(base, { keyEncoding: "utf8", valueEncoding: "buffer" });
    await old.batch([
      { type: "put", key: `c\0dev\0q\0${(1).toString(16).padStart(14, "0")}`, value: record },
      { type: "put", key: "t\0a/r", value: record },
    ]);
    await old.close();
    const store = await LevelStore.open(base);
    try {
      expect((await store.queued(K("dev"), 10)).map(plain)).toEqual([{ ...plain(msg("a/r", "old", 1, true)), seq: 1, packetId: 5 }]);
      expect((await store.matchRetained(G, "a/#")).map(plain)).toEqual([plain(msg("a/r", "old", 1, true))]);
    } finally {
      await store.close();
    }
  });

  it("rejects calls after close", async () => {
    const store = await LevelStore.open(base);
    await store.close();
    await expect(store.enqueue(K("c"), msg("t"))).rejects.toThrow(/closed/);
  });
});

describe("redis store on a server", () => {
  let server: RedisServer;
  beforeAll(async () => { server = await startRedis(); });
  afterAll(() => server.stop());

  it("keeps everything for a new connection", async () => {
    const first = await openRedisStore(server.url, { prefix: "persist" });
    await fill(first);
    await first.close();
    const second = await openRedisStore({ host: "127.0.0.1", port: server.port }, { prefix: "persist" });
    try {
      await check(second);
    } finally {
      await second.close();
    }
  });

  it("uses a given client without closing it, and no KEYS", async () => {
    const client = new Redis(server.url);
    const monitor = await new Redis(server.url, { lazyConnect: true }).monitor();
    const seen: string[] = [];
    let onMark: () => void = () => {};
    const marked = new Promise<void>((resolve) => { onMark = resolve; });
    monitor.on("monitor", (_time: string, args: string[]) => {
      seen.push(String(args[0]).toLowerCase());
      if (String(args[0]).toLowerCase() === "echo" && args[1] === "store-test-mark") onMark();
    });
    try {
      const store = await openRedisStore(client, { prefix: "given" });
      await fill(store);
      await check(store);
      await store.close();
      expect(await client.ping()).toBe("PONG");
      // MONITOR reports in execution order: once it shows the mark, it has shown the store's commands.
      await client.echo("store-test-mark");
      await marked;
      expect(seen).toContain("zadd");
      expect(seen).not.toContain("keys");
      expect(seen).not.toContain("scan");
    } finally {
      client.disconnect();
      monitor.disconnect();
    }
  });
});

describe("redis store on a Cluster", () => {
  let server: RedisServer;
  beforeAll(async () => { server = await startRedis({ cluster: true }); });
  afterAll(() => server.stop());

  it("puts all keys of a client in one slot", async () => {
    const admin = new Redis(server.port, "127.0.0.1");
    try {
      for (const id of ["", "a", "{a}", "a}b{", "=x", "日本"]) {
        const slots = await Promise.all(["s", "n", "q", "i", "r"].map((k) => admin.call("CLUSTER", "KEYSLOT", `mb:{${hashTag(id)}}:${k}`)));
        expect(new Set(slots).size).toBe(1);
      }
    } finally {
      admin.disconnect();
    }
  });

  it("keeps everything for a new connection", async () => {
    const first = await openRedisStore(server.url, { prefix: "persist" });
    await fill(first);
    await first.close();
    const second = await openRedisStore({ cluster: [{ host: "127.0.0.1", port: server.port }] }, { prefix: "persist" });
    try {
      await check(second);
    } finally {
      await second.close();
    }
  });
});

describe("Redis URLs", () => {
  it("reads single, Sentinel and Cluster forms", () => {
    expect(parseRedisUrl("redis://:pw@host:6380/2")).toEqual({ kind: "single", url: "redis://:pw@host:6380/2" });
    expect(parseRedisUrl("redis-sentinel://:p%40w@s1,s2:26380/mymaster/3")).toEqual({
      kind: "sentinel",
      options: { password: "p@w", sentinels: [{ host: "s1", port: 26379 }, { host: "s2", port: 26380 }], name: "mymaster", db: 3 },
    });
    expect(parseRedisUrl("rediss-cluster://user:pw@n1:7000,[::1]:7001,n3")).toEqual({
      kind: "cluster",
      nodes: [{ host: "n1", port: 7000 }, { host: "::1", port: 7001 }, { host: "n3", port: 6379 }],
      options: { redisOptions: { username: "user", password: "pw", tls: {} } },
    });
    expect(() => parseRedisUrl("redis-sentinel://s1:26379")).toThrow(/master name/);
    expect(() => parseRedisUrl("redis-cluster://n1/0")).toThrow(/no path/);
    expect(() => parseRedisUrl("memcached://x")).toThrow(/unsupported/);
  });
});

describe("openStore", () => {
  it("falls back to memory, with a warning", async () => {
    const warnings: string[] = [];
    const store = await openStore({ log: { warn: (m) => warnings.push(m) } });
    expect(store.kind).toBe("memory");
    expect(warnings).toEqual([MEMORY_STORE_WARNING]);
    await store.close();
  });

  it("opens LevelDB in dir", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "meshbroker-store-"));
    try {
      const warnings: string[] = [];
      const store = await openStore({ dir, log: { warn: (m) => warnings.push(m) } });
      expect(store.kind).toBe("level");
      expect(warnings).toEqual([]);
      await store.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("prefers Redis when given, and rejects unknown URLs", async () => {
    const server = await startRedis();
    try {
      const store = await openStore({ redis: server.url, dir: "/nonexistent/never-created" });
      expect(store.kind).toBe("redis");
      await store.close();
      await expect(openStore({ redis: "http://127.0.0.1:1" })).rejects.toThrow(/unsupported Redis URL/);
      await expect(openStore({ redis: "redis-sentinel://127.0.0.1:26379" })).rejects.toThrow(/master name/);
    } finally {
      await server.stop();
    }
  });
});
