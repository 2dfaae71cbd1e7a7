// Which router owns each MQTT session in a cluster, recorded in Redis, so that one router
// cluster-wide holds a session key: its subscriptions sit in that router's sublist only (a QoS
// 1/2 message is queued once for an absent client, not once per router), and it is restored
// from the store by that router only.
//
//   P:{sessions}:owner      hash  session key -> owning router id
//   P:{sessions}:owned:<ID> set   the keys router ID owns (may lag: a key's hash entry decides)
//   P:{sessions}:owners     set   the router ids that may own keys
//   P:sessions:<ID>         pub/sub channel of router ID: "takeover" requests, "released" answers,
//                           "ping" (is it alive?), "pong"
//   P:{sessions}:lost:<EDGE>:<CID>  string with a TTL: that edge connection's stream was lost
//                                   longer than the grace, and its will published (lost())
//
// The per-router sets let a router adopt a lost router's sessions by reading that router's keys
// only: the periodic scan for expired routers reads the (small) owners set, where it read the
// whole hash (every session of the cluster) every 2 s. The scripts keep hash and sets together
// (one hash tag: one Redis Cluster slot).
//
// A router claims a key when a client attaches to it (CONNECT on one of its edges, or an edge
// re-attaching after it lost its router). If another router owned it, that router is asked to
// let go (it closes its holder as taken over, drops its subscriptions and lets its store writes
// land) and the claimer waits for its answer, unless the old owner is not linked in the mesh
// (dead): then there is nothing to wait for. A persistent session's handover has a first round
// ("prepare"), after which the claimer puts the session's interest in place before the old
// owner withdraws its own (SessionService.attachNow says why nothing is lost). Sessions of a router that left the mesh are adopted
// by a live one with a compare-and-set, so exactly one router adopts each.
import type { Cluster, Redis } from "ioredis";
import { createRedisClient } from "../store/redis.js";
import type { RedisConnection } from "../store/redis-url.js";
import type { SessionKey } from "../store/store.js";
import type { ConnectionRef } from "../link.js";

/** What the session service needs of ownership (absent in the embedded topology: one owner). */
export interface SessionOwners {
  /** Makes this router the key's owner; resolves once a previous owner let go (or is dead).
   *  With `ready`: a live previous owner is first told to note what it queues from now on, then
   *  `ready` runs (the claimer's interest goes in place), then the owner lets go. Resolves with
   *  the store sequence of the first message the old owner queued after it was told (undefined:
   *  none, or `ready` did not run). `by`: the connection attaching, which the old owner is told
   *  (the same connection, its edge re-attached here, is no takeover of itself). */
  claim(key: SessionKey, by: ConnectionRef, ready?: () => Promise<void>): Promise<number | undefined>;
  /** A clean session ended here: the key has no owner any more (unless another claimed it). */
  release(key: SessionKey): void;
  /** Connection `conn` was detached with its will after its stream's grace ran out: a later
   *  attach of that same connection (its edge was slow, not dead) is refused, on every router,
   *  so the edge closes the client instead of keeping one whose will is out (or publishing a
   *  dropped one's will a second time with its replayed detach). */
  lost(conn: ConnectionRef): void;
}

/** Why claim() refused: the attaching connection is one lost() named. */
export const CONNECTION_LOST = "the connection's session was ended: its edge was out of reach for longer than the grace";
/** How long lost() is remembered: past every replay an edge makes (60 tries, 1 s apart). */
const LOST_TTL_MS = 300_000;

/** What ownership calls on the session service. */
export interface OwnedSessions {
  /** Another router is taking `key` over: note the first message queued from now on. */
  prepare(key: SessionKey): void;
  /** Another router took `key` over, for connection `by` (unknown: an adoption, or a router of
   *  an earlier version): drop it here; resolves once its store writes landed, with the store
   *  sequence of the first message queued since prepare() (if any). */
  evict(key: SessionKey, by?: ConnectionRef): Promise<number | undefined>;
  /** This router adopted `key` from a router that left: restore it from the store (false:
   *  nothing stored, a clean session). */
  adopt(key: SessionKey): Promise<boolean>;
}

/** How long a claimer waits for a live old owner to let go before going ahead. */
export const RELEASE_WAIT_MS = 2_000;

// Compare-and-set scripts: only the expected owner's entry changes.
// KEYS: the hash, the owners set, this router's owned set, (CLAIM) the attaching connection's
// lost key; ARGV: the session key, this router's id, then (CLAIM, ADOPT) the owned sets' name
// prefix, (ADOPT) the expected owner ("": none).
const CLAIM = `if redis.call('EXISTS', KEYS[4]) == 1 then return redis.error_reply('LOST') end
local p = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if p and p ~= ARGV[2] then redis.call('SREM', ARGV[3] .. p, ARGV[1]) end
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
return p`;
const RELEASE = `if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
redis.call('SREM', KEYS[3], ARGV[1])
return 0`;
const ADOPT = `local p = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[4] ~= '' then redis.call('SREM', ARGV[3] .. ARGV[4], ARGV[1]) end
if (p or '') ~= ARGV[4] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
return 1`;
/** KEYS: the owners set, a router's owned set; ARGV: that router's id. It leaves the owners once it owns nothing. */
const FORGET_OWNER = "if redis.call('SCARD', KEYS[2]) == 0 then redis.call('SREM', KEYS[1], ARGV[1]) end return 0";
/** Keys read per round trip when a router's keys are scanned or the hash indexed. */
const SCAN_COUNT = 500;

interface Notice {
  op: "prepare" | "prepared" | "takeover" | "released" | "ping" | "pong"; key: SessionKey; from: string; nonce: number; since?: number;
  /** A takeover's attaching connection. */
  edge?: string; cid?: number;
}

export class SessionOwnership implements SessionOwners {
  private readonly redis: Redis | Cluster;
  private readonly sub: Redis | Cluster;
  private readonly ownerKey: string;
  private readonly ownersKey: string;
  private readonly ownedPrefix: string;
  private nonce = 1;
  private readonly waits = new Map<number, (since?: number) => void>();
  private service: OwnedSessions | undefined;
  private closed = false;

  constructor(conn: RedisConnection, private readonly self: string, private readonly prefix: string,
              /** Whether router `id` is linked in the mesh now (a dead one is not asked). */
              private readonly linked: (id: string) => boolean,
              private readonly log: { warn(message: string): void }) {
    this.redis = createRedisClient(conn);
    this.sub = createRedisClient(conn);
    for (const c of [this.redis, this.sub]) c.on("error", () => {}); // the store reports Redis outages
    this.ownerKey = `${prefix}:{sessions}:owner`;
    this.ownersKey = `${prefix}:{sessions}:owners`;
    this.ownedPrefix = `${prefix}:{sessions}:owned:`;
    this.sub.on("message", (_channel: string, text: string) => this.notice(text));
  }

  private channel(id: string): string {
    return `${this.prefix}:sessions:${id}`;
  }

  /** Starts answering takeovers for `service`. */
  async start(service: OwnedSessions): Promise<void> {
    this.service = service;
    await this.sub.subscribe(this.channel(this.self));
  }

  async claim(key: SessionKey, by: ConnectionRef, ready?: () => Promise<void>): Promise<number | undefined> {
    const previous = await (this.redis.eval(CLAIM, 4, this.ownerKey, this.ownersKey, this.ownedPrefix + this.self, this.lostKey(by),
      key, this.self, this.ownedPrefix) as Promise<string | null>).catch((err: Error) => {
      throw err.message === "LOST" ? new Error(CONNECTION_LOST) : err;
    });
    if (previous === null || previous === this.self || !this.linked(previous)) return undefined;
    if (!ready) return void (await this.ask(previous, "takeover", key, by));
    // No answer: the old owner is dead though still linked (its loss not detected yet), and
    // the session is taken as after a loss (the held messages of SessionService).
    if (!(await this.ask(previous, "prepare", key))) return undefined;
    await ready();
    return (await this.ask(previous, "takeover", key, by))?.since;
  }

  release(key: SessionKey): void {
    this.redis.eval(RELEASE, 3, this.ownerKey, this.ownersKey, this.ownedPrefix + this.self, key, this.self).catch((err: Error) => this.log.warn(`session ownership: ${err.message}`));
  }

  lost(conn: ConnectionRef): void {
    // Sent before the will is published, on the connection claim() uses: a claim here after it
    // sees it; one on another router races it by less than a round trip.
    this.redis.set(this.lostKey(conn), "1", "PX", LOST_TTL_MS).catch((err: Error) => this.log.warn(`session ownership: ${err.message}`));
  }

  private lostKey(conn: ConnectionRef): string {
    return `${this.prefix}:{sessions}:lost:${conn.edgeId}:${conn.cid}`;
  }

  /** The routers whose registration (mesh/registry.ts) has not expired, by Redis's clock. */
  async liveRouters(): Promise<Set<string>> {
    const [sec, usec] = await this.redis.time();
    const now = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
    return new Set(await this.redis.zrangebyscore(`${this.prefix}:routers`, now, "+inf"));
  }

  /**
   * Adopts the sessions whose owner `dead` says is gone, and those with no owner at all among
   * `stored` (the persistent sessions in the store, at start; then `dead` may also name this
   * router: what its previous run owned): each is claimed with a compare-and-set, so one router
   * adopts it, and restored from the store. An old owner that is in fact alive (it did not answer
   * answers() in time: stalled) is told, so it lets go. Reads the owners set and the dead routers' keys only.
   * Returns how many persistent sessions were restored.
   */
  async adoptOrphans(dead: (owner: string) => boolean, stored?: SessionKey[]): Promise<number> {
    const atStart = stored !== undefined;
    if (atStart) await this.index();
    let adopted = 0;
    for (const owner of await this.redis.smembers(this.ownersKey)) {
      if ((owner !== this.self || atStart) && dead(owner)) adopted += await this.adoptFrom(owner);
    }
    for (let i = 0; i < (stored?.length ?? 0) && !this.closed; i += SCAN_COUNT) {
      const keys = stored!.slice(i, i + SCAN_COUNT);
      const owners = await this.redis.hmget(this.ownerKey, ...keys);
      for (let j = 0; j < keys.length; j++) if (owners[j] === null) adopted += await this.adoptKey(keys[j], "");
    }
    return adopted;
  }

  /** Adopts every key router `owner` owns (its owned set, a slice per round trip). */
  private async adoptFrom(owner: string): Promise<number> {
    const set = this.ownedPrefix + owner;
    let adopted = 0;
    let cursor = "0";
    do {
      const [next, keys] = await this.redis.sscan(set, cursor, "COUNT", SCAN_COUNT);
      cursor = next;
      for (const key of keys) adopted += await this.adoptKey(key as SessionKey, owner);
    } while (cursor !== "0" && !this.closed);
    if (owner !== this.self) await this.redis.eval(FORGET_OWNER, 2, this.ownersKey, set, owner);
    return adopted;
  }

  /** 1 when this router took `key` from `owner` ("": nobody) and restored a persistent session. */
  private async adoptKey(key: SessionKey, owner: string): Promise<number> {
    const won = await this.redis.eval(ADOPT, 3, this.ownerKey, this.ownersKey, this.ownedPrefix + this.self, key, this.self,
      this.ownedPrefix, owner) as number;
    if (won !== 1 || this.closed) return 0;
    if (owner !== "" && owner !== this.self) {
      const notice: Notice = { op: "takeover", key, from: this.self, nonce: 0 };
      this.redis.publish(this.channel(owner), JSON.stringify(notice)).catch(() => {});
    }
    return (await this.service?.adopt(key)) ? 1 : 0;
  }

  /** Puts every owner hash entry in its router's owned set: entries of routers of an earlier
   *  version (no sets) become adoptable. Once per start, a slice per round trip. */
  private async index(): Promise<void> {
    let cursor = "0";
    do {
      const [next, flat] = await this.redis.hscan(this.ownerKey, cursor, "COUNT", SCAN_COUNT);
      cursor = next;
      const byOwner = new Map<string, string[]>();
      for (let i = 0; i < flat.length; i += 2) {
        const keys = byOwner.get(flat[i + 1]);
        if (keys) keys.push(flat[i]);
        else byOwner.set(flat[i + 1], [flat[i]]);
      }
      for (const [owner, keys] of byOwner) {
        await Promise.all([this.redis.sadd(this.ownedPrefix + owner, ...keys), this.redis.sadd(this.ownersKey, owner)]);
      }
    } while (cursor !== "0" && !this.closed);
  }

  /**
   * Whether router `id` answers through Redis within `timeoutMs`: a router whose mesh link
   * dropped may be alive (a network blip, a short stall), and then it keeps its sessions.
   * A router of an earlier version answers too (it takes the ping for a takeover of no session).
   */
  async answers(id: string, timeoutMs: number): Promise<boolean> {
    return (await this.ask(id, "ping", "" as SessionKey, undefined, timeoutMs)) !== undefined;
  }

  /** Sends `op` to `owner`; resolves with its answer, or undefined after `waitMs`. */
  private ask(owner: string, op: "prepare" | "takeover" | "ping", key: SessionKey, by?: ConnectionRef,
              waitMs = RELEASE_WAIT_MS): Promise<{ since?: number } | undefined> {
    const nonce = this.nonce++;
    return new Promise<{ since?: number } | undefined>((resolve) => {
      const timer = setTimeout(() => {
        this.waits.delete(nonce);
        if (op !== "ping") {
          this.log.warn(`session ownership: router ${owner} did not ${op === "prepare" ? "prepare to release" : "release"} an MQTT session within ${waitMs} ms; going ahead`);
        }
        resolve(undefined);
      }, waitMs);
      this.waits.set(nonce, (since) => { clearTimeout(timer); resolve({ since }); });
      const notice: Notice = { op, key, from: this.self, nonce };
      if (by) {
        notice.edge = by.edgeId;
        notice.cid = by.cid;
      }
      this.redis.publish(this.channel(owner), JSON.stringify(notice)).catch(() => {}); // then the timer decides
    });
  }

  private notice(text: string): void {
    let n: Notice;
    try {
      n = JSON.parse(text) as Notice;
    } catch {
      return this.log.warn("session ownership: an unreadable notice");
    }
    if (n.op === "released" || n.op === "prepared" || n.op === "pong") {
      this.waits.get(n.nonce)?.(n.since);
      this.waits.delete(n.nonce);
      return;
    }
    const reply = (op: "prepared" | "released" | "pong", since?: number) => {
      const answer: Notice = { op, key: n.key, from: this.self, nonce: n.nonce };
      if (since !== undefined) answer.since = since;
      void this.redis.publish(this.channel(n.from), JSON.stringify(answer)).catch(() => {});
    };
    if (n.op === "ping") return reply("pong");
    if (n.op === "prepare") {
      this.service?.prepare(n.key);
      return reply("prepared");
    }
    const by = typeof n.edge === "string" && typeof n.cid === "number" ? { edgeId: n.edge, cid: n.cid } : undefined;
    (this.service ? this.service.evict(n.key, by) : Promise.resolve(undefined)).then((since) => reply("released", since), () => reply("released"));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const done of this.waits.values()) done();
    this.waits.clear();
    this.sub.disconnect();
    this.redis.disconnect();
  }
}
