// Which router owns each MQTT session in a cluster, recorded in Redis, so that one router
// cluster-wide holds a session key: its subscriptions sit in that router's sublist only (a QoS
// 1/2 message is queued once for an absent client, not once per router), and it is restored
// from the store by that router only.
//
//   P:{sessions}:owner   hash  session key -> owning router id
//   P:sessions:<ID>      pub/sub channel of router ID: "takeover" requests, "released" answers
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
import { createRedisClient, type RedisConnection } from "../store/redis.js";
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
}

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
const CLAIM = "local p = redis.call('HGET', KEYS[1], ARGV[1]); redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]); return p";
const RELEASE = "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end return 0";
const ADOPT = "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]); return 1 end return 0";

interface Notice {
  op: "prepare" | "prepared" | "takeover" | "released"; key: SessionKey; from: string; nonce: number; since?: number;
  /** A takeover's attaching connection. */
  edge?: string; cid?: number;
}

export class SessionOwnership implements SessionOwners {
  private readonly redis: Redis | Cluster;
  private readonly sub: Redis | Cluster;
  private readonly ownerKey: string;
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
    const previous = await this.redis.eval(CLAIM, 1, this.ownerKey, key, this.self) as string | null;
    if (previous === null || previous === this.self || !this.linked(previous)) return undefined;
    if (!ready) return void (await this.ask(previous, "takeover", key, by));
    // No answer: the old owner is dead though still linked (its loss not detected yet), and
    // the session is taken as after a loss (the held messages of SessionService).
    if (!(await this.ask(previous, "prepare", key))) return undefined;
    await ready();
    return (await this.ask(previous, "takeover", key, by))?.since;
  }

  release(key: SessionKey): void {
    this.redis.eval(RELEASE, 1, this.ownerKey, key, this.self).catch((err: Error) => this.log.warn(`session ownership: ${err.message}`));
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
   * router: what its previous run owned): each is claimed with a
   * compare-and-set, so one router adopts it, and restored from the store. An old owner that is
   * in fact alive (a link that only flapped) is told, so it lets go. Returns how many persistent
   * sessions were restored.
   */
  async adoptOrphans(dead: (owner: string) => boolean, stored?: SessionKey[]): Promise<number> {
    const owners = await this.redis.hgetall(this.ownerKey);
    const orphans: [SessionKey, string][] = [];
    const atStart = stored !== undefined;
    for (const [key, owner] of Object.entries(owners)) {
      if ((owner !== this.self || atStart) && dead(owner)) orphans.push([key as SessionKey, owner]);
    }
    for (const key of stored ?? []) if (owners[key] === undefined) orphans.push([key, ""]);
    let adopted = 0;
    for (const [key, owner] of orphans) {
      const won = owner === ""
        ? await this.redis.hsetnx(this.ownerKey, key, this.self)
        : await this.redis.eval(ADOPT, 1, this.ownerKey, key, owner, this.self) as number;
      if (won !== 1 || this.closed) continue;
      if (owner !== "" && owner !== this.self) {
        const notice: Notice = { op: "takeover", key, from: this.self, nonce: 0 };
        this.redis.publish(this.channel(owner), JSON.stringify(notice)).catch(() => {});
      }
      if (await this.service?.adopt(key)) adopted++;
    }
    return adopted;
  }

  /** Sends `op` to `owner`; resolves with its answer, or undefined after RELEASE_WAIT_MS. */
  private ask(owner: string, op: "prepare" | "takeover", key: SessionKey, by?: ConnectionRef): Promise<{ since?: number } | undefined> {
    const nonce = this.nonce++;
    return new Promise<{ since?: number } | undefined>((resolve) => {
      const timer = setTimeout(() => {
        this.waits.delete(nonce);
        this.log.warn(`session ownership: router ${owner} did not ${op === "prepare" ? "prepare to release" : "release"} an MQTT session within ${RELEASE_WAIT_MS} ms; going ahead`);
        resolve(undefined);
      }, RELEASE_WAIT_MS);
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
    if (n.op === "released" || n.op === "prepared") {
      this.waits.get(n.nonce)?.(n.since);
      this.waits.delete(n.nonce);
      return;
    }
    const reply = (op: "prepared" | "released", since?: number) => {
      const answer: Notice = { op, key: n.key, from: this.self, nonce: n.nonce };
      if (since !== undefined) answer.since = since;
      void this.redis.publish(this.channel(n.from), JSON.stringify(answer)).catch(() => {});
    };
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
