// The cluster's edge client URLs (what edges put in INFO connect_urls), as one router knows
// them: the URLs its attached edges sent (Hello, then ClientUrls updates), merged with the other
// routers' edges read from Redis. The whole set goes to every attached edge when it changes.
//
// Redis rather than the mesh: the set is small, changes rarely, and must outlive nothing; a
// registration with TTL through the routers' Redis needs no new mesh operation, and an edge that
// moves to another router simply overwrites its own field. Key (P = prefix, default "mb"):
//   P:edges:urls   hash   edge id -> {"router", "until" (Redis time, ms), "nats", "websocket"}
// Each router rewrites its edges' fields every period with a new `until`; a field past `until`
// (its router died) is removed by whichever router sees it. A change made here reaches this
// router's edges at once and the other routers' edges within a period.
import type { Cluster, Redis } from "ioredis";
import type { ClientUrls, Draft, EdgeUrls } from "../wire/frames.js";

export const EDGE_URLS_PERIOD_MS = 1_000;
/** A field not renewed for this long is a dead router's. */
const EDGE_URLS_TTL_MS = 3_000;

export interface EdgeUrlOptions {
  routerId: string;
  redis?: Redis | Cluster;
  prefix?: string;
  /** The set changed: send it to every attached edge. */
  push(edges: Draft<EdgeUrls>[]): void;
}

interface Stored { router: string; until: number; nats: string[]; websocket: string[] }

export class EdgeUrlDirectory {
  private readonly local = new Map<string, ClientUrls>();
  private remote = new Map<string, ClientUrls>();
  private readonly key: string;
  private readonly timer: NodeJS.Timeout | undefined;
  /** The set last pushed, serialised, so only changes are pushed. */
  private last = "[]";
  private closed = false;

  constructor(private readonly opts: EdgeUrlOptions) {
    this.key = `${opts.prefix ?? "mb"}:edges:urls`;
    if (opts.redis) this.timer = setInterval(() => void this.beat(), EDGE_URLS_PERIOD_MS).unref();
  }

  /** An attached edge's URLs (undefined or empty: it has none, withdrew them, or detached). */
  set(edgeId: string, urls: ClientUrls | undefined): void {
    if (this.closed) return;
    const none = !urls || (urls.nats.length === 0 && urls.websocket.length === 0);
    if (none && !this.local.has(edgeId)) return;
    if (none) {
      this.local.delete(edgeId);
      this.remote.delete(edgeId);
      this.opts.redis?.hdel(this.key, edgeId).catch(() => {});
    } else {
      this.local.set(edgeId, { nats: [...urls.nats], websocket: [...urls.websocket] });
    }
    this.changed();
    if (!none) void this.beat();
  }

  /** Every edge's URLs, in edge id order. */
  current(): Draft<EdgeUrls>[] {
    const all = new Map([...this.remote, ...this.local]);
    return [...all.keys()].sort().map((edgeId) => ({ edgeId, urls: all.get(edgeId) }));
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    if (this.local.size > 0) this.opts.redis?.hdel(this.key, ...this.local.keys()).catch(() => {});
  }

  private changed(): void {
    const edges = this.current();
    const now = JSON.stringify(edges);
    if (now === this.last) return;
    this.last = now;
    this.opts.push(edges);
  }

  /** Renews this router's fields and reads the others'. Redis away: the last set stays. */
  private async beat(): Promise<void> {
    const r = this.opts.redis;
    if (!r || r.status !== "ready" || this.closed) return;
    try {
      const [sec, usec] = await r.time();
      const now = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
      const fields: string[] = [];
      for (const [edgeId, urls] of this.local) {
        const s: Stored = { router: this.opts.routerId, until: now + EDGE_URLS_TTL_MS, ...urls };
        fields.push(edgeId, JSON.stringify(s));
      }
      if (fields.length > 0) await r.hset(this.key, ...fields);
      const all = await r.hgetall(this.key);
      const remote = new Map<string, ClientUrls>();
      const expired: string[] = [];
      for (const [edgeId, json] of Object.entries(all)) {
        let s: Stored;
        try {
          s = JSON.parse(json) as Stored;
        } catch {
          expired.push(edgeId); // not ours to read: drop it
          continue;
        }
        if (s.until < now) expired.push(edgeId);
        else if (s.router !== this.opts.routerId) remote.set(edgeId, { nats: s.nats ?? [], websocket: s.websocket ?? [] });
      }
      if (expired.length > 0) await r.hdel(this.key, ...expired);
      if (this.closed) return;
      this.remote = remote;
      this.changed();
    } catch {
      // Redis errors are reported by the mesh's heartbeat; the last known set stays.
    }
  }
}
