// The embedded store: LevelDB (classic-level) in `store_dir`. It survives a restart of the
// process (writes go to LevelDB's log before they resolve; `sync: true` also survives a power
// loss, at the price of an fsync per batch).
//
// Keys (utf8; "\0" separates, which MQTT forbids inside client ids and topics [MQTT-1.5.3-2];
// <sk> is the session key, account + client id (store.ts sessionKey), <acc> a URI-encoded account):
//   s\0<sk>                   session JSON
//   n\0<sk>                   highest seq reserved (decimal), so seqs survive restarts
//   c\0<sk>\0q\0<seq:14 hex>   queued message record (codec.ts), seq order = key order
//   c\0<sk>\0i\0<pid:4 hex>    inbound QoS 2 message, PUBREC sent
//   c\0<sk>\0r\0<pid:4 hex>    outbound PUBREL pending; value = a seq, for the resend order
//   c\0<sk>\0d\0<ms:12 hex><id:14 hex>  delivered record (MqttStore.received), empty value
//   t\0<topic>                retained message record of the global account
//   a\0<acc>\0<topic>         retained message record of another account
// All of a session except s and n sits under one prefix, so deleteSession is one range.
// A database written before sessions and retained messages were per account needs no
// migration: its keys are exactly the global account's (a global session key is the client id).
//
// Every write goes through one FIFO writer: jobs queued in the same tick, or while a batch is
// being written, go out as one LevelDB batch (group commit), and are applied in call order.
// Read-modify-write jobs (setPacketId, putIncoming, takeIncoming) are resolved inside the writer
// against the batch being built, so they never race with a write called before or after them.
// Reads wait for the writes called before them.
import { mkdir } from "node:fs/promises";
import { ClassicLevel } from "classic-level";
import { checkPacketId, decodeMessage, decodeSession, encodeMessage, encodeSession, toQueued, toStored, withPacketId } from "./codec.js";
import { DELIVERED_KEEP_MS, keyOf, type MqttStore, type QueuedMessage, type SessionKey, type SessionRecord, type StoredMessage } from "./store.js";
import { GLOBAL_ACCOUNT } from "../../common/config/options.js";
import { StoreError } from "./store.js";
import { TopicTree } from "./topic.js";

export interface LevelStoreOptions {
  /** fsync every batch (default false: safe against a crash of the process, not of the machine). */
  sync?: boolean;
}

type Op = { type: "put"; key: string; value: Buffer } | { type: "del"; key: string };
const EMPTY = Buffer.alloc(0);
/** Given the current value, returns the new one, `null` to delete, `undefined` to leave it. */
type Update = (old: Buffer | undefined) => Buffer | null | undefined;

interface Job {
  ops?: Op[];
  /** Applied after `ops`; the job resolves with the value the key had before. */
  update?: { key: string; fn: Update };
  /** Runs alone, between batches (deleteSession). */
  task?: () => Promise<void>;
  resolve: (old: Buffer | undefined) => void;
  reject: (err: unknown) => void;
}

const SEQ_WIDTH = 14; // hex digits; 56 bits hold any safe integer
/** Seqs reserved per write of the counter: a restart skips at most this many, and enqueue
 *  writes one key instead of two. */
const SEQ_BLOCK = 1024;

const recordKey = (cid: SessionKey) => `s\0${cid}`;
const counterKey = (cid: SessionKey) => `n\0${cid}`;
const clientPrefix = (cid: SessionKey) => `c\0${cid}\0`;
const queuePrefix = (cid: SessionKey) => `c\0${cid}\0q\0`;
const queueKey = (cid: SessionKey, seq: number) => queuePrefix(cid) + seq.toString(16).padStart(SEQ_WIDTH, "0");
const incomingKey = (cid: SessionKey, pid: number) => `c\0${cid}\0i\0${pid.toString(16).padStart(4, "0")}`;
const releasedPrefix = (cid: SessionKey) => `c\0${cid}\0r\0`;
const releasedKey = (cid: SessionKey, pid: number) => releasedPrefix(cid) + pid.toString(16).padStart(4, "0");
/** The delivered record: keys ordered by the time they were written (12 hex digits), then the id. */
const deliveredPrefix = (cid: SessionKey) => `c\0${cid}\0d\0`;
const TIME_WIDTH = 12;
const RETAINED_GLOBAL = "t\0";
const RETAINED_OTHER = "a\0";
/** The prefix of an account's retained keys: the global account keeps the original "t" keys. */
const retainedPrefix = (account: string) =>
  account === GLOBAL_ACCOUNT ? RETAINED_GLOBAL : `${RETAINED_OTHER}${encodeURIComponent(account)}\0`;
/** The end of a prefix range: the same prefix with its last "\0" turned into "\x01". */
const rangeEnd = (prefix: string) => prefix.slice(0, -1) + "\x01";

function checkClientId(id: SessionKey): void {
  if (id.includes("\0")) throw new RangeError("client id contains U+0000");
}

export class LevelStore implements MqttStore {
  readonly kind = "level";
  private jobs: Job[] = [];
  private draining = false;
  /** The running drain, so close() can wait for the writes already queued. */
  private drainRun: Promise<void> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly db: ClassicLevel<string, Buffer>,
    /** Last seq per client id, bumped synchronously so call order is seq order. */
    private readonly lastSeq: Map<SessionKey, number>,
    /** Highest seq per client id that the database has reserved (the n key). */
    private readonly reserved: Map<SessionKey, number>,
    /** Retained topics (not payloads) per account, so a filter needs no scan of the key space. */
    private readonly retainedTopics: Map<string, TopicTree<true>>,
    private readonly sync: boolean,
  ) {}

  /** Opens (creating it if needed) the database in `dir`. */
  static async open(dir: string, opts: LevelStoreOptions = {}): Promise<LevelStore> {
    await mkdir(dir, { recursive: true });
    const db = new ClassicLevel<string, Buffer>(dir, { keyEncoding: "utf8", valueEncoding: "buffer" });
    await db.open();
    try {
      // After a restart, a client continues after its whole reserved block.
      const lastSeq = new Map<SessionKey, number>();
      for await (const [k, v] of db.iterator({ gte: "n\0", lt: "n\x01" })) lastSeq.set(k.slice(2) as SessionKey, Number(v.toString("latin1")));
      const retained = new Map<string, TopicTree<true>>();
      const add = (account: string, topic: string) => {
        let tree = retained.get(account);
        if (!tree) retained.set(account, tree = new TopicTree());
        tree.set(topic, true);
      };
      for await (const k of db.keys({ gte: RETAINED_GLOBAL, lt: rangeEnd(RETAINED_GLOBAL) })) add(GLOBAL_ACCOUNT, k.slice(2));
      for await (const k of db.keys({ gte: RETAINED_OTHER, lt: rangeEnd(RETAINED_OTHER) })) {
        const sep = k.indexOf("\0", 2);
        add(decodeURIComponent(k.slice(2, sep)), k.slice(sep + 1));
      }
      return new LevelStore(db, lastSeq, new Map(lastSeq), retained, opts.sync ?? false);
    } catch (err) {
      await db.close();
      throw err;
    }
  }

  // ---- the writer ----

  private submit(job: Omit<Job, "resolve" | "reject">): Promise<Buffer | undefined> {
    if (this.closed) return Promise.reject(new StoreError("store is closed", "CLOSED"));
    return new Promise((resolve, reject) => {
      this.jobs.push({ ...job, resolve, reject });
      if (!this.draining) {
        this.draining = true;
        // Start after the current tick so a loop of calls (a fan-out) lands in one batch.
        this.drainRun = Promise.resolve().then(() => this.drain());
      }
    });
  }

  private async drain(): Promise<void> {
    while (this.jobs.length > 0) {
      const head = this.jobs[0];
      if (head.task) {
        this.jobs.shift();
        try {
          await head.task();
          head.resolve(undefined);
        } catch (err) {
          head.reject(err);
        }
        continue;
      }
      let n = 1;
      while (n < this.jobs.length && !this.jobs[n].task) n++;
      const group = this.jobs.splice(0, n);
      try {
        await this.writeGroup(group);
      } catch (err) {
        for (const j of group) j.reject(err);
      }
    }
    this.draining = false;
  }

  private async writeGroup(group: Job[]): Promise<void> {
    // Keys an update reads before anything in this batch wrote them come from the database,
    // which already holds every earlier batch; the rest come from the batch itself.
    const overlay = new Map<string, Buffer | undefined>();
    const fetch: string[] = [];
    const touched = new Set<string>();
    for (const j of group) {
      if (j.ops) for (const op of j.ops) touched.add(op.key);
      if (j.update && !touched.has(j.update.key)) {
        fetch.push(j.update.key);
        touched.add(j.update.key);
      }
    }
    if (fetch.length > 0) {
      const values = await this.db.getMany(fetch);
      for (let i = 0; i < fetch.length; i++) overlay.set(fetch[i], values[i]);
    }
    const ops: Op[] = [];
    const results: (Buffer | undefined)[] = [];
    for (const j of group) {
      if (j.ops) {
        for (const op of j.ops) {
          ops.push(op);
          overlay.set(op.key, op.type === "put" ? op.value : undefined);
        }
      }
      let old: Buffer | undefined;
      if (j.update) {
        const { key, fn } = j.update;
        old = overlay.get(key);
        const next = fn(old);
        if (next === null) {
          ops.push({ type: "del", key });
          overlay.set(key, undefined);
        } else if (next !== undefined) {
          ops.push({ type: "put", key, value: next });
          overlay.set(key, next);
        }
      }
      results.push(old);
    }
    if (ops.length > 0) await this.db.batch(ops, { sync: this.sync });
    for (let i = 0; i < group.length; i++) group[i].resolve(results[i]);
  }

  /** Resolves once every write called before it is in the database. */
  private settled(): Promise<unknown> {
    if (!this.draining && this.jobs.length === 0) return Promise.resolve();
    return this.submit({});
  }

  /** The next seq of a client; when it leaves the reserved block, adds the new block's write to `ops`. */
  private nextSeq(cid: SessionKey, ops: Op[]): number {
    const seq = (this.lastSeq.get(cid) ?? 0) + 1;
    this.lastSeq.set(cid, seq);
    if (seq > (this.reserved.get(cid) ?? 0)) {
      const top = seq + SEQ_BLOCK - 1;
      this.reserved.set(cid, top);
      ops.push({ type: "put", key: counterKey(cid), value: Buffer.from(String(top)) });
    }
    return seq;
  }

  // ---- sessions ----

  async getSession(id: SessionKey): Promise<SessionRecord | undefined> {
    checkClientId(id);
    await this.settled();
    const v = await this.db.get(recordKey(id));
    return v && decodeSession(v);
  }

  async putSession(session: SessionRecord): Promise<void> {
    checkClientId(keyOf(session));
    await this.submit({ ops: [{ type: "put", key: recordKey(keyOf(session)), value: encodeSession(session) }] });
  }

  async deleteSession(id: SessionKey): Promise<void> {
    checkClientId(id);
    this.lastSeq.delete(id);
    this.reserved.delete(id);
    await this.submit({
      task: async () => {
        const prefix = clientPrefix(id);
        const ops: Op[] = [{ type: "del", key: recordKey(id) }, { type: "del", key: counterKey(id) }];
        for await (const key of this.db.keys({ gte: prefix, lt: rangeEnd(prefix) })) ops.push({ type: "del", key });
        await this.db.batch(ops, { sync: this.sync });
      },
    });
  }

  async listSessions(): Promise<SessionRecord[]> {
    await this.settled();
    const out: SessionRecord[] = [];
    for await (const v of this.db.values({ gte: "s\0", lt: "s\x01" })) out.push(decodeSession(v));
    return out;
  }

  // ---- outbound queue ----

  async enqueue(id: SessionKey, msg: StoredMessage): Promise<number> {
    checkClientId(id);
    const ops: Op[] = [];
    const seq = this.nextSeq(id, ops);
    ops.push({ type: "put", key: queueKey(id, seq), value: encodeMessage(msg) });
    await this.submit({ ops });
    return seq;
  }

  async enqueueMany(entries: { id: SessionKey; msg: StoredMessage }[]): Promise<void> {
    for (const e of entries) checkClientId(e.id);
    const ops: Op[] = [];
    for (const { id, msg } of entries) {
      const seq = this.nextSeq(id, ops);
      ops.push({ type: "put", key: queueKey(id, seq), value: encodeMessage(msg) });
    }
    await this.submit({ ops });
  }

  async queued(id: SessionKey, limit: number): Promise<QueuedMessage[]> {
    checkClientId(id);
    if (limit <= 0) return [];
    await this.settled();
    const prefix = queuePrefix(id);
    const entries = await this.db.iterator({ gte: prefix, lt: rangeEnd(prefix), limit }).all();
    return entries.map(([k, v]) => toQueued(decodeMessage(v), parseInt(k.slice(prefix.length), 16)));
  }

  async setPacketId(id: SessionKey, seq: number, packetId: number): Promise<void> {
    checkClientId(id);
    checkPacketId(packetId);
    await this.submit({ update: { key: queueKey(id, seq), fn: (old) => (old ? withPacketId(old, packetId) : undefined) } });
  }

  async ack(id: SessionKey, seq: number): Promise<void> {
    checkClientId(id);
    await this.submit({ ops: [{ type: "del", key: queueKey(id, seq) }] });
  }

  // ---- QoS 2 ----

  async putIncoming(id: SessionKey, packetId: number, msg: StoredMessage): Promise<boolean> {
    checkClientId(id);
    checkPacketId(packetId);
    const value = encodeMessage(msg);
    const old = await this.submit({ update: { key: incomingKey(id, packetId), fn: (o) => (o ? undefined : value) } });
    return old === undefined;
  }

  async takeIncoming(id: SessionKey, packetId: number): Promise<StoredMessage | undefined> {
    checkClientId(id);
    const old = await this.submit({ update: { key: incomingKey(id, packetId), fn: (o) => (o ? null : undefined) } });
    return old && toStored(decodeMessage(old));
  }

  async markReleased(id: SessionKey, packetId: number): Promise<void> {
    checkClientId(id);
    checkPacketId(packetId);
    // The value orders the resend; it takes a seq (persisted with it) so the order holds across restarts.
    const ops: Op[] = [];
    const order = this.nextSeq(id, ops);
    await this.submit({
      ops,
      update: { key: releasedKey(id, packetId), fn: (o) => (o ? undefined : Buffer.from(String(order))) },
    });
  }

  async received(id: SessionKey, packetId: number, seq: number | undefined, msgId: number | undefined): Promise<void> {
    checkClientId(id);
    checkPacketId(packetId);
    const ops: Op[] = [];
    if (seq !== undefined) ops.push({ type: "del", key: queueKey(id, seq) });
    const order = this.nextSeq(id, ops);
    const prefix = deliveredPrefix(id), now = Date.now();
    if (msgId !== undefined) {
      ops.push({ type: "put", key: prefix + now.toString(16).padStart(TIME_WIDTH, "0") + msgId.toString(16).padStart(SEQ_WIDTH, "0"), value: EMPTY });
    }
    await this.submit({
      ops,
      update: { key: releasedKey(id, packetId), fn: (o) => (o ? undefined : Buffer.from(String(order))) },
    });
    // Older entries go; they are only ever read as "not in the record", so when does not matter.
    if (msgId !== undefined) await this.db.clear({ gte: prefix, lt: prefix + (now - DELIVERED_KEEP_MS).toString(16).padStart(TIME_WIDTH, "0") });
  }

  async delivered(id: SessionKey): Promise<number[]> {
    checkClientId(id);
    await this.settled();
    const prefix = deliveredPrefix(id);
    const ids = new Set<number>(); // an id recorded again (a PUBREC resent) has a key per time
    for await (const key of this.db.keys({ gte: prefix, lt: rangeEnd(prefix) })) ids.add(parseInt(key.slice(prefix.length + TIME_WIDTH), 16));
    return [...ids];
  }

  async released(id: SessionKey): Promise<number[]> {
    checkClientId(id);
    await this.settled();
    const prefix = releasedPrefix(id);
    const entries = await this.db.iterator({ gte: prefix, lt: rangeEnd(prefix) }).all();
    return entries
      .map(([k, v]) => ({ pid: parseInt(k.slice(prefix.length), 16), order: Number(v.toString("latin1")) }))
      .sort((a, b) => a.order - b.order)
      .map((e) => e.pid);
  }

  async completeReleased(id: SessionKey, packetId: number): Promise<void> {
    checkClientId(id);
    await this.submit({ ops: [{ type: "del", key: releasedKey(id, packetId) }] });
  }

  // ---- retained ----

  async setRetained(account: string, msg: StoredMessage): Promise<void> {
    const key = retainedPrefix(account) + msg.topic;
    let tree = this.retainedTopics.get(account);
    // [MQTT-3.3.1-10] an empty payload removes the retained message.
    if (msg.payload.length === 0) {
      tree?.delete(msg.topic);
      await this.submit({ ops: [{ type: "del", key }] });
    } else {
      if (!tree) this.retainedTopics.set(account, tree = new TopicTree());
      tree.set(msg.topic, true);
      await this.submit({ ops: [{ type: "put", key, value: encodeMessage(msg) }] });
    }
  }

  async matchRetained(account: string, filter: string): Promise<StoredMessage[]> {
    await this.settled();
    const prefix = retainedPrefix(account);
    const keys: string[] = [];
    this.retainedTopics.get(account)?.match(filter, (topic) => keys.push(prefix + topic));
    if (keys.length === 0) return [];
    const values = await this.db.getMany(keys);
    const out: StoredMessage[] = [];
    for (const v of values) if (v) out.push(toStored(decodeMessage(v)));
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    // Refuse new writes first, so none can slip in between the last batch and the close.
    this.closed = true;
    await this.drainRun;
    await this.db.close();
  }
}

export function openLevelStore(dir: string, opts?: LevelStoreOptions): Promise<LevelStore> {
  return LevelStore.open(dir, opts);
}
