// The shared store of the cluster topology: Redis through ioredis, as a single server, through
// Sentinel, or as a Redis Cluster.
//
// Keys (P = prefix, default "mb"; T = the session key, account + client id (store.ts sessionKey),
// as a hash tag, see hashTag; A = a URI-encoded account):
//   P:{T}:s   string   session JSON
//   P:{T}:n   string   last seq (INCR), so seqs survive restarts and failovers
//   P:{T}:q   zset     queue: score = seq, member = seq (6 bytes BE, keeps members unique) + record
//   P:{T}:i   hash     packet id -> record: inbound QoS 2, PUBREC sent
//   P:{T}:r   zset     packet id, score = a seq from P:{T}:n: outbound PUBRELs in resend order
//   P:{T}:d   zset     delivered record: message id, score = when written (ms epoch)
//   P:sessions set     session keys with a session (listSessions uses SSCAN on it, never KEYS)
//   P:retained hash    topic -> record, of the global account
//   P:retained:A hash  topic -> record, of account A
// A global session key is its client id, so keys written before sessions and retained
// messages were per account are the global account's, unchanged.
// All keys of one session share a hash tag, so in a Cluster they live in one slot and the Lua
// scripts below (which touch several of them) are legal. Records are codec.ts's.
import { Cluster, Redis } from "ioredis";
import { parseRedisUrl, type RedisConnection } from "./redis-url.js";
import { checkPacketId, decodeMessage, decodeSession, encodeMessage, encodeSession, toQueued, toStored } from "./codec.js";
import { DELIVERED_KEEP_MS, keyOf, type MqttStore, type QueuedMessage, type SessionKey, type SessionRecord, type StoredMessage } from "./store.js";
import { GLOBAL_ACCOUNT } from "../../common/config/options.js";
import { hasWildcard, topicMatches } from "./topic.js";

export interface RedisStoreOptions {
  /** Key prefix, so several brokers (or tests) can share one Redis. Default "mb". */
  prefix?: string;
  /** Connection errors (ioredis reconnects by itself; commands meanwhile queue or fail). */
  onError?: (err: Error) => void;
}

type Client = Redis | Cluster;

// ---- Lua: each runs atomically on the node that owns the client's slot ----

/** KEYS: counter, queue. ARGV: records. Appends them in order; returns the first seq. */
const ENQUEUE = `
local n = #ARGV
local last = redis.call('INCRBY', KEYS[1], n)
local first = last - n + 1
for i = 1, n do
  local s = first + i - 1
  local x = s
  local b = {}
  for j = 6, 1, -1 do
    b[j] = x % 256
    x = math.floor(x / 256)
  end
  redis.call('ZADD', KEYS[2], s, string.char(b[1], b[2], b[3], b[4], b[5], b[6]) .. ARGV[i])
end
return first`;

/** KEYS: queue. ARGV: seq, packet id (2 bytes BE). Rewrites the member in place, if queued. */
const SET_PACKET_ID = `
local m = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1])
if #m == 0 then return 0 end
redis.call('ZREM', KEYS[1], m[1])
redis.call('ZADD', KEYS[1], ARGV[1], string.sub(m[1], 1, 7) .. ARGV[2] .. string.sub(m[1], 10))
return 1`;

/** KEYS: counter, released. ARGV: packet id. Keeps the first mark's position. */
const MARK_RELEASED = `
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[1]), ARGV[1])
return 1`;

/** KEYS: queue, counter, released, delivered. ARGV: seq ("" none), packet id, message id ("" none),
 *  now, the oldest time kept. The client's PUBREC: ack, mark released and record, atomically. */
const RECEIVED = `
if ARGV[1] ~= '' then redis.call('ZREMRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1]) end
if not redis.call('ZSCORE', KEYS[3], ARGV[2]) then redis.call('ZADD', KEYS[3], redis.call('INCR', KEYS[2]), ARGV[2]) end
if ARGV[3] ~= '' then
  redis.call('ZADD', KEYS[4], ARGV[4], ARGV[3])
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[5])
end
return 1`;

/** KEYS: incoming. ARGV: packet id. HGET + HDEL. */
const TAKE = `
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v then redis.call('HDEL', KEYS[1], ARGV[1]) end
return v`;

interface Scripts {
  mbEnqueue(counter: string, queue: string, ...records: Buffer[]): Promise<number>;
  mbSetPacketId(queue: string, seq: number, packetId: Buffer): Promise<number>;
  mbMarkReleased(counter: string, released: string, packetId: number): Promise<number>;
  mbReceived(queue: string, counter: string, released: string, delivered: string, seq: number | "", packetId: number, msgId: number | "",
             now: number, oldest: number): Promise<number>;
  mbTakeBuffer(incoming: string, packetId: number): Promise<Buffer | null>;
}

/** Offset of the record inside a queue member (after the 6-byte seq). */
const SEQ_LEN = 6;

/**
 * A session key as a hash tag: as is when that is safe, else "=" + base64url. A tag may not be
 * empty or hold braces (Redis would hash the whole key, splitting a session over slots), and
 * plain keys never start with "=", so two sessions never share keys.
 */
export function hashTag(key: string): string {
  if (key !== "" && key[0] !== "=" && !key.includes("{") && !key.includes("}")) return key;
  return "=" + Buffer.from(key, "utf8").toString("base64url");
}

/** The retained topics a filter can match start with its literal part: let Redis skip the rest. */
function retainedGlob(filter: string): string {
  let end = filter.length;
  const plus = filter.indexOf("+");
  const hash = filter.indexOf("#");
  if (plus >= 0) end = plus;
  if (hash >= 0 && hash < end) end = hash > 0 && filter[hash - 1] === "/" ? hash - 1 : hash; // "a/#" matches "a"
  return filter.slice(0, end).replace(/[\\*?[\]]/g, "\\$&") + "*";
}

/** Turns a connection description into an ioredis client (connecting, not yet awaited). */
export function createRedisClient(conn: RedisConnection): Client {
  // Auto-pipelining: commands called in one tick leave in one write (per node for a Cluster),
  // in call order; that is what makes enqueueMany one round trip.
  if (typeof conn !== "string") {
    if ("cluster" in conn) return new Cluster(conn.cluster, { enableAutoPipelining: true, ...conn.options });
    return new Redis({ enableAutoPipelining: true, ...conn });
  }
  const p = parseRedisUrl(conn);
  if (p.kind === "single") return new Redis(p.url, { enableAutoPipelining: true });
  if (p.kind === "cluster") return new Cluster(p.nodes, { enableAutoPipelining: true, ...p.options });
  return new Redis({ enableAutoPipelining: true, ...p.options });
}

export class RedisStore implements MqttStore {
  readonly kind = "redis";
  private readonly prefix: string;
  private readonly sessionsKey: string;
  private readonly retainedKey: string;
  private readonly cmd: Client & Scripts;
  private back: Promise<void> | undefined;

  constructor(
    readonly client: Client,
    /** Whether close() ends the connection (it does when the store created it). */
    private readonly owned: boolean,
    opts: RedisStoreOptions = {},
  ) {
    this.prefix = opts.prefix ?? "mb";
    this.sessionsKey = `${this.prefix}:sessions`;
    this.retainedKey = `${this.prefix}:retained`;
    // ioredis sends EVALSHA and falls back to EVAL once per script and node (NOSCRIPT).
    client.defineCommand("mbEnqueue", { numberOfKeys: 2, lua: ENQUEUE });
    client.defineCommand("mbSetPacketId", { numberOfKeys: 1, lua: SET_PACKET_ID });
    client.defineCommand("mbMarkReleased", { numberOfKeys: 2, lua: MARK_RELEASED });
    client.defineCommand("mbReceived", { numberOfKeys: 4, lua: RECEIVED });
    client.defineCommand("mbTake", { numberOfKeys: 1, lua: TAKE });
    this.cmd = client as Client & Scripts;
    if (owned || opts.onError) client.on("error", opts.onError ?? (() => {})); // failures also reject the command
  }

  private k(id: SessionKey, kind: "s" | "n" | "q" | "i" | "r" | "d"): string {
    return `${this.prefix}:{${hashTag(id)}}:${kind}`;
  }

  // ---- sessions ----

  async getSession(id: SessionKey): Promise<SessionRecord | undefined> {
    const v = await this.cmd.getBuffer(this.k(id, "s"));
    return v ? decodeSession(v) : undefined;
  }

  async putSession(session: SessionRecord): Promise<void> {
    // Two slots in a Cluster, so two commands; both are sent before either answers.
    await Promise.all([
      this.cmd.set(this.k(keyOf(session), "s"), encodeSession(session)),
      this.cmd.sadd(this.sessionsKey, keyOf(session)),
    ]);
  }

  async deleteSession(id: SessionKey): Promise<void> {
    await Promise.all([
      this.cmd.del(this.k(id, "s"), this.k(id, "n"), this.k(id, "q"), this.k(id, "i"), this.k(id, "r"), this.k(id, "d")),
      this.cmd.srem(this.sessionsKey, id),
    ]);
  }

  async listSessions(): Promise<SessionRecord[]> {
    const out: SessionRecord[] = [];
    let cursor = "0";
    do {
      const [next, ids] = await this.cmd.sscan(this.sessionsKey, cursor, "COUNT", 500);
      cursor = next;
      const values = await Promise.all(ids.map((id) => this.cmd.getBuffer(this.k(id as SessionKey, "s"))));
      for (const v of values) if (v) out.push(decodeSession(v));
    } while (cursor !== "0");
    return out;
  }

  // ---- outbound queue ----

  async enqueue(id: SessionKey, msg: StoredMessage): Promise<number> {
    return Number(await this.cmd.mbEnqueue(this.k(id, "n"), this.k(id, "q"), encodeMessage(msg)));
  }

  async enqueueMany(entries: { id: SessionKey; msg: StoredMessage }[]): Promise<void> {
    // One script call per client (a fan-out usually has one message per client).
    const byClient = new Map<SessionKey, Buffer[]>();
    for (const { id, msg } of entries) {
      const list = byClient.get(id);
      if (list) list.push(encodeMessage(msg));
      else byClient.set(id, [encodeMessage(msg)]);
    }
    // Sent in one tick: with auto-pipelining (on for connections this store creates) that is one
    // write per node; an explicit pipeline would not keep call order with the other methods.
    await Promise.all([...byClient].map(([cid, records]) => this.cmd.mbEnqueue(this.k(cid, "n"), this.k(cid, "q"), ...records)));
  }

  async queued(id: SessionKey, limit: number): Promise<QueuedMessage[]> {
    if (limit <= 0) return [];
    const members = await this.cmd.zrangeBuffer(this.k(id, "q"), "0", String(limit - 1));
    return members.map((m) => toQueued(decodeMessage(m, SEQ_LEN), m.readUIntBE(0, SEQ_LEN)));
  }

  async setPacketId(id: SessionKey, seq: number, packetId: number): Promise<void> {
    checkPacketId(packetId);
    const pid = Buffer.allocUnsafe(2);
    pid.writeUInt16BE(packetId);
    await this.cmd.mbSetPacketId(this.k(id, "q"), seq, pid);
  }

  async ack(id: SessionKey, seq: number): Promise<void> {
    await this.cmd.zremrangebyscore(this.k(id, "q"), seq, seq);
  }

  // ---- QoS 2 ----

  async putIncoming(id: SessionKey, packetId: number, msg: StoredMessage): Promise<boolean> {
    checkPacketId(packetId);
    return (await this.cmd.hsetnx(this.k(id, "i"), String(packetId), encodeMessage(msg))) === 1;
  }

  async takeIncoming(id: SessionKey, packetId: number): Promise<StoredMessage | undefined> {
    const v = await this.cmd.mbTakeBuffer(this.k(id, "i"), packetId);
    return v ? toStored(decodeMessage(v)) : undefined;
  }

  async markReleased(id: SessionKey, packetId: number): Promise<void> {
    checkPacketId(packetId);
    await this.cmd.mbMarkReleased(this.k(id, "n"), this.k(id, "r"), packetId);
  }

  async received(id: SessionKey, packetId: number, seq: number | undefined, msgId: number | undefined): Promise<void> {
    checkPacketId(packetId);
    const now = Date.now();
    await this.cmd.mbReceived(this.k(id, "q"), this.k(id, "n"), this.k(id, "r"), this.k(id, "d"), seq ?? "", packetId, msgId ?? "",
      now, now - DELIVERED_KEEP_MS);
  }

  async delivered(id: SessionKey): Promise<number[]> {
    return (await this.cmd.zrange(this.k(id, "d"), "0", "-1")).map(Number);
  }

  async released(id: SessionKey): Promise<number[]> {
    return (await this.cmd.zrange(this.k(id, "r"), "0", "-1")).map(Number);
  }

  async completeReleased(id: SessionKey, packetId: number): Promise<void> {
    await this.cmd.zrem(this.k(id, "r"), String(packetId));
  }

  // ---- retained ----

  /** An account's retained hash: the global account keeps the original key. */
  private retainedOf(account: string): string {
    return account === GLOBAL_ACCOUNT ? this.retainedKey : `${this.retainedKey}:${encodeURIComponent(account)}`;
  }

  async setRetained(account: string, msg: StoredMessage): Promise<void> {
    // [MQTT-3.3.1-10] an empty payload removes the retained message.
    const key = this.retainedOf(account);
    if (msg.payload.length === 0) await this.cmd.hdel(key, msg.topic);
    else await this.cmd.hset(key, msg.topic, encodeMessage(msg));
  }

  async matchRetained(account: string, filter: string): Promise<StoredMessage[]> {
    const key = this.retainedOf(account);
    if (!hasWildcard(filter)) {
      const v = await this.cmd.hgetBuffer(key, filter);
      return v ? [toStored(decodeMessage(v))] : [];
    }
    // HSCAN may return a field twice; the glob only narrows, topicMatches decides.
    const found = new Map<string, StoredMessage>();
    const glob = retainedGlob(filter);
    let cursor = "0";
    do {
      const [next, kv] = await this.cmd.hscanBuffer(key, cursor, "MATCH", glob, "COUNT", 1000);
      cursor = next.toString();
      for (let i = 0; i + 1 < kv.length; i += 2) {
        const topic = kv[i].toString("utf8");
        if (topicMatches(filter, topic)) found.set(topic, toStored(decodeMessage(kv[i + 1])));
      }
    } while (cursor !== "0");
    return [...found.values()];
  }

  available(): Promise<void> | undefined {
    if (this.client.status === "ready") return undefined;
    // One wait for every publish of the outage.
    return this.back ??= new Promise((resolve) => {
      const ready = () => {
        this.client.off("ready", ready).off("end", ready);
        this.back = undefined;
        resolve();
      };
      this.client.on("ready", ready).on("end", ready); // end: closed for good, the writes themselves fail
    });
  }

  async close(): Promise<void> {
    if (!this.owned) return;
    if (this.client.status === "end") return;
    await this.client.quit().catch(() => this.client.disconnect());
  }
}

/**
 * Opens the store on a new connection (closed by `close()`), or on an existing ioredis client
 * (left open). Resolves once Redis answers.
 */
export async function openRedisStore(conn: RedisConnection | Redis | Cluster, opts: RedisStoreOptions = {}): Promise<RedisStore> {
  const owned = !(conn instanceof Redis || conn instanceof Cluster);
  const client = owned ? createRedisClient(conn as RedisConnection) : (conn as Client);
  const store = new RedisStore(client, owned, opts);
  try {
    await client.ping();
  } catch (err) {
    if (owned) client.disconnect();
    throw err;
  }
  return store;
}
