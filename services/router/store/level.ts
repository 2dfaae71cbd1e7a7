// The embedded store: LevelDB (classic-level) in `store_dir`. It survives a restart of the
// process (writes go to LevelDB's log before they resolve; `sync: true` also survives a power
// loss, at the price of an fsync per batch).
//
// Keys (utf8; "\0" separates, which MQTT forbids inside client ids and topics [MQTT-1.5.3-2]):
//   s\0<cid>                  session JSON
//   n\0<cid>                  highest seq reserved (decimal), so seqs survive restarts
//   c\0<cid>\0q\0<seq:14 hex>  queued message record (codec.ts), seq order = key order
//   c\0<cid>\0i\0<pid:4 hex>   inbound QoS 2 message, PUBREC sent
//   c\0<cid>\0r\0<pid:4 hex>   outbound PUBREL pending; value = a seq, for the resend order
//   t\0<topic>                retained message record
// All of a client except s and n sits under one prefix, so deleteSession is one range.
//
// Every write goes through one FIFO writer: jobs queued in the same tick, or while a batch is
// being written, go out as one LevelDB batch (group commit), and are applied in call order.
// Read-modify-write jobs (setPacketId, putIncoming, takeIncoming) are resolved inside the writer
// against the batch being built, so they never race with a write called before or after them.
// Reads wait for the writes called before them.
import { mkdir } from "node:fs/promises";
import { ClassicLevel } from "classic-level";
import { checkPacketId, decodeMessage, decodeSession, encodeMessage, encodeSession, toQueued, toStored, withPacketId } from "./codec.js";
import type { MqttStore, QueuedMessage, SessionRecord, StoredMessage } from "./store.js";
import { StoreError } from "./store.js";
import { TopicTree } from "./topic.js";

export interface LevelStoreOptions {
  /** fsync every batch (default false: safe against a crash of the process, not of the machine). */
  sync?: boolean;
}

type Op = { type: "put"; key: string; value: Buffer } | { type: "del"; key: string };
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

const sessionKey = (cid: string) => `s\0${cid}`;
const counterKey = (cid: string) => `n\0${cid}`;
const clientPrefix = (cid: string) => `c\0${cid}\0`;
const queuePrefix = (cid: string) => `c\0${cid}\0q\0`;
const queueKey = (cid: string, seq: number) => queuePrefix(cid) + seq.toString(16).padStart(SEQ_WIDTH, "0");
const incomingKey = (cid: string, pid: number) => `c\0${cid}\0i\0${pid.toString(16).padStart(4, "0")}`;
const releasedPrefix = (cid: string) => `c\0${cid}\0r\0`;
const releasedKey = (cid: string, pid: number) => releasedPrefix(cid) + pid.toString(16).padStart(4, "0");
const retainedKey = (topic: string) => `t\0${topic}`;
/** The end of a prefix range: the same prefix with its last "\0" turned into "\x01". */
const rangeEnd = (prefix: string) => prefix.slice(0, -1) + "\x01";

function checkClientId(cid: string): void {
  if (cid.includes("\0")) throw new RangeError("client id contains U+0000");
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
    private readonly lastSeq: Map<string, number>,
    /** Highest seq per client id that the database has reserved (the n key). */
    private readonly reserved: Map<string, number>,
    /** Retained topics (not payloads), so a filter needs no scan of the whole key space. */
    private readonly retainedTopics: TopicTree<true>,
    private readonly sync: boolean,
  ) {}

  /** Opens (creating it if needed) the database in `dir`. */
  static async open(dir: string, opts: LevelStoreOptions = {}): Promise<LevelStore> {
    await mkdir(dir, { recursive: true });
    const db = new ClassicLevel<string, Buffer>(dir, { keyEncoding: "utf8", valueEncoding: "buffer" });
    await db.open();
    try {
      // After a restart, a client continues after its whole reserved block.
      const lastSeq = new Map<string, number>();
      for await (const [k, v] of db.iterator({ gte: "n\0", lt: "n\x01" })) lastSeq.set(k.slice(2), Number(v.toString("latin1")));
      const retained = new TopicTree<true>();
      for await (const k of db.keys({ gte: "t\0", lt: "t\x01" })) retained.set(k.slice(2), true);
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
  private nextSeq(cid: string, ops: Op[]): number {
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

  async getSession(clientId: string): Promise<SessionRecord | undefined> {
    checkClientId(clientId);
    await this.settled();
    const v = await this.db.get(sessionKey(clientId));
    return v && decodeSession(v);
  }

  async putSession(session: SessionRecord): Promise<void> {
    checkClientId(session.clientId);
    await this.submit({ ops: [{ type: "put", key: sessionKey(session.clientId), value: encodeSession(session) }] });
  }

  async deleteSession(clientId: string): Promise<void> {
    checkClientId(clientId);
    this.lastSeq.delete(clientId);
    this.reserved.delete(clientId);
    await this.submit({
      task: async () => {
        const prefix = clientPrefix(clientId);
        const ops: Op[] = [{ type: "del", key: sessionKey(clientId) }, { type: "del", key: counterKey(clientId) }];
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

  async enqueue(clientId: string, msg: StoredMessage): Promise<number> {
    checkClientId(clientId);
    const ops: Op[] = [];
    const seq = this.nextSeq(clientId, ops);
    ops.push({ type: "put", key: queueKey(clientId, seq), value: encodeMessage(msg) });
    await this.submit({ ops });
    return seq;
  }

  async enqueueMany(entries: { clientId: string; msg: StoredMessage }[]): Promise<void> {
    for (const e of entries) checkClientId(e.clientId);
    const ops: Op[] = [];
    for (const { clientId, msg } of entries) {
      const seq = this.nextSeq(clientId, ops);
      ops.push({ type: "put", key: queueKey(clientId, seq), value: encodeMessage(msg) });
    }
    await this.submit({ ops });
  }

  async queued(clientId: string, limit: number): Promise<QueuedMessage[]> {
    checkClientId(clientId);
    if (limit <= 0) return [];
    await this.settled();
    const prefix = queuePrefix(clientId);
    const entries = await this.db.iterator({ gte: prefix, lt: rangeEnd(prefix), limit }).all();
    return entries.map(([k, v]) => toQueued(decodeMessage(v), parseInt(k.slice(prefix.length), 16)));
  }

  async setPacketId(clientId: string, seq: number, packetId: number): Promise<void> {
    checkClientId(clientId);
    checkPacketId(packetId);
    await this.submit({ update: { key: queueKey(clientId, seq), fn: (old) => (old ? withPacketId(old, packetId) : undefined) } });
  }

  async ack(clientId: string, seq: number): Promise<void> {
    checkClientId(clientId);
    await this.submit({ ops: [{ type: "del", key: queueKey(clientId, seq) }] });
  }

  // ---- QoS 2 ----

  async putIncoming(clientId: string, packetId: number, msg: StoredMessage): Promise<boolean> {
    checkClientId(clientId);
    checkPacketId(packetId);
    const value = encodeMessage(msg);
    const old = await this.submit({ update: { key: incomingKey(clientId, packetId), fn: (o) => (o ? undefined : value) } });
    return old === undefined;
  }

  async takeIncoming(clientId: string, packetId: number): Promise<StoredMessage | undefined> {
    checkClientId(clientId);
    const old = await this.submit({ update: { key: incomingKey(clientId, packetId), fn: (o) => (o ? null : undefined) } });
    return old && toStored(decodeMessage(old));
  }

  async markReleased(clientId: string, packetId: number): Promise<void> {
    checkClientId(clientId);
    checkPacketId(packetId);
    // The value orders the resend; it takes a seq (persisted with it) so the order holds across restarts.
    const ops: Op[] = [];
    const order = this.nextSeq(clientId, ops);
    await this.submit({
      ops,
      update: { key: releasedKey(clientId, packetId), fn: (o) => (o ? undefined : Buffer.from(String(order))) },
    });
  }

  async released(clientId: string): Promise<number[]> {
    checkClientId(clientId);
    await this.settled();
    const prefix = releasedPrefix(clientId);
    const entries = await this.db.iterator({ gte: prefix, lt: rangeEnd(prefix) }).all();
    return entries
      .map(([k, v]) => ({ pid: parseInt(k.slice(prefix.length), 16), order: Number(v.toString("latin1")) }))
      .sort((a, b) => a.order - b.order)
      .map((e) => e.pid);
  }

  async completeReleased(clientId: string, packetId: number): Promise<void> {
    checkClientId(clientId);
    await this.submit({ ops: [{ type: "del", key: releasedKey(clientId, packetId) }] });
  }

  // ---- retained ----

  async setRetained(msg: StoredMessage): Promise<void> {
    // [MQTT-3.3.1-10] an empty payload removes the retained message.
    if (msg.payload.length === 0) {
      this.retainedTopics.delete(msg.topic);
      await this.submit({ ops: [{ type: "del", key: retainedKey(msg.topic) }] });
    } else {
      this.retainedTopics.set(msg.topic, true);
      await this.submit({ ops: [{ type: "put", key: retainedKey(msg.topic), value: encodeMessage(msg) }] });
    }
  }

  async matchRetained(filter: string): Promise<StoredMessage[]> {
    await this.settled();
    const keys: string[] = [];
    this.retainedTopics.match(filter, (topic) => keys.push(retainedKey(topic)));
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
