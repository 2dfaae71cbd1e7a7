// Router membership and interest summaries in Redis.
//
// Keys (P = prefix, default "mb"; ID = a router id):
//   P:routers              zset   router id, score = when its registration expires (ms epoch)
//   P:routers:addr         hash   router id -> advertise address (host:port)
//   P:routers:edges        hash   router id -> how many edges are attached to it (spread.ts)
//   P:{interest:ID}        hash   "account subject queue" -> weight: the router's aggregated interest
//   P:{interest:ID}:seq    string the interest sequence the hash is consistent with
// A registration lives TTL ms (by Redis's clock) unless renewed; an expired one is removed by
// whichever router sees it first. The two interest keys share a hash tag, so a Cluster keeps them in one slot
// and MULTI over them is legal.
import type { Cluster, Redis } from "ioredis";
import { interestKey, type InterestUpdateData } from "./interest.js";

export interface RouterRecord {
  id: string;
  address: string;
  /** Edges attached to it, as of its last heartbeat; -1: it is stopping and takes none. */
  edges: number;
}

export const REGISTRATION_TTL_MS = 3_000;

export class MeshRegistry {
  private readonly routers: string;
  private readonly addresses: string;
  private readonly edgeCounts: string;
  private readonly interest: string;
  private readonly interestSeq: string;

  constructor(readonly redis: Redis | Cluster, prefix: string, private readonly self: Omit<RouterRecord, "edges">) {
    this.routers = `${prefix}:routers`;
    this.addresses = `${prefix}:routers:addr`;
    this.edgeCounts = `${prefix}:routers:edges`;
    this.interest = `${prefix}:{interest:${self.id}}`;
    this.interestSeq = `${this.interest}:seq`;
  }

  get ready(): boolean {
    return this.redis.status === "ready";
  }

  /** Renews this router's registration with its edge count; returns every live router (this
   *  one included). */
  async heartbeat(edges: number): Promise<RouterRecord[]> {
    const r = this.redis;
    // Redis's clock, not this host's: registrations from hosts whose clocks differ still compare.
    const [sec, usec] = await r.time();
    const now = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
    const [, , , expired, live] = await Promise.all([
      r.zadd(this.routers, now + REGISTRATION_TTL_MS, this.self.id),
      r.hset(this.addresses, this.self.id, this.self.address),
      r.hset(this.edgeCounts, this.self.id, String(edges)),
      r.zrangebyscore(this.routers, "-inf", now),
      r.zrangebyscore(this.routers, now, "+inf"),
    ]);
    if (expired.length > 0) {
      await Promise.all([
        r.zremrangebyscore(this.routers, "-inf", now), r.hdel(this.addresses, ...expired), r.hdel(this.edgeCounts, ...expired),
      ]);
    }
    if (live.length === 0) return [];
    const [addrs, counts] = await Promise.all([r.hmget(this.addresses, ...live), r.hmget(this.edgeCounts, ...live)]);
    return live.flatMap((id, i) => (addrs[i] ? [{ id, address: addrs[i]!, edges: Number(counts[i] ?? 0) || 0 }] : []));
  }

  /** One incremental update of this router's summary. */
  async writeUpdate(update: InterestUpdateData): Promise<void> {
    const m = this.redis.multi();
    const set: string[] = [], del: string[] = [];
    for (const e of update.entries) {
      const key = interestKey(e.account, e.subject, e.queue);
      if (e.weight === 0) del.push(key);
      else set.push(key, String(e.weight));
    }
    if (set.length > 0) m.hset(this.interest, ...set);
    if (del.length > 0) m.hdel(this.interest, ...del);
    m.set(this.interestSeq, String(update.seq));
    await m.exec();
  }

  /** The whole summary again (after Redis was away, or at start). */
  async writeSnapshot(snapshot: InterestUpdateData): Promise<void> {
    const m = this.redis.multi();
    m.del(this.interest);
    const fields: string[] = [];
    for (const e of snapshot.entries) fields.push(interestKey(e.account, e.subject, e.queue), String(e.weight));
    if (fields.length > 0) m.hset(this.interest, ...fields);
    m.set(this.interestSeq, String(snapshot.seq));
    await m.exec();
  }

  /** A router's summary as Redis holds it (for inspection and tests). */
  async readSummary(id: string, prefix: string): Promise<{ seq: number; entries: Record<string, string> }> {
    const key = `${prefix}:{interest:${id}}`;
    const [entries, seq] = await Promise.all([this.redis.hgetall(key), this.redis.get(`${key}:seq`)]);
    return { seq: Number(seq ?? -1), entries };
  }

  /** Leaves the cluster: the registration and the summary go. */
  async deregister(): Promise<void> {
    await Promise.all([
      this.redis.zrem(this.routers, this.self.id),
      this.redis.hdel(this.addresses, this.self.id),
      this.redis.hdel(this.edgeCounts, this.self.id),
      this.redis.del(this.interest, this.interestSeq),
    ]);
  }
}
