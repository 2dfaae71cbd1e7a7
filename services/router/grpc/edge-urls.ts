// What routers share about their edges through Redis: each edge's client URLs (what edges put in
// INFO connect_urls) and each edge's client count (for rebalancing), as one router knows them:
// what its attached edges sent, merged with the other routers' edges read from Redis. The whole
// set goes to every attached edge when it changes.
//
// Redis rather than the mesh: the sets are small, and must outlive nothing; a registration with
// TTL through the routers' Redis needs no new mesh operation, and an edge that moves to another
// router simply overwrites its own field. Keys (P = prefix, default "mb"):
//   P:edges:urls      hash   edge id -> {"router", "until" (Redis time, ms), "nats", "websocket"}
//   P:edges:clients   hash   edge id -> {"router", "until", "clients"}
// Each router rewrites its edges' fields every period with a new `until`; a field past `until`
// (its router died) is removed by whichever router sees it. A change made here reaches this
// router's edges at once and the other routers' edges within a period.
import type { Cluster, Redis } from "ioredis";
import type { ClientUrls, Draft, EdgeLoad, EdgeUrls } from "../wire/frames.js";

export const EDGE_URLS_PERIOD_MS = 1_000;
/** A field not renewed for this long is a dead router's. */
const EDGE_URLS_TTL_MS = 3_000;

export interface EdgeDirectoryOptions<W> {
  routerId: string;
  redis?: Redis | Cluster;
  prefix?: string;
  /** The set changed: send it to every attached edge. */
  push(edges: W[]): void;
}

/** What one hash holds: values V per edge, sent to edges as entries W. */
interface Kind<V, W> {
  /** The hash's name after `P:edges:`. */
  name: string;
  /** An edge with nothing to share (it is left out). */
  none(v: V): boolean;
  /** The value of a stored field (its other members), checked. */
  read(s: Record<string, unknown>): V;
  /** The wire entry of an edge's value. */
  entry(edgeId: string, v: V): W;
}

/** One hash of per-edge values; `V` is stored as the members of the field's JSON object. */
export class EdgeDirectory<V extends object, W> {
  private readonly local = new Map<string, V>();
  private remote = new Map<string, V>();
  private readonly key: string;
  private readonly timer: NodeJS.Timeout | undefined;
  /** The set last pushed, serialised, so only changes are pushed. */
  private last = "[]";
  private closed = false;

  constructor(private readonly kind: Kind<V, W>, private readonly opts: EdgeDirectoryOptions<W>) {
    this.key = `${opts.prefix ?? "mb"}:edges:${kind.name}`;
    if (opts.redis) this.timer = setInterval(() => void this.beat(), EDGE_URLS_PERIOD_MS).unref();
  }

  /** An attached edge's value (undefined or none: it has nothing to share, or detached). */
  set(edgeId: string, value: V | undefined): void {
    if (this.closed) return;
    const none = !value || this.kind.none(value);
    if (none && !this.local.has(edgeId)) return;
    if (none) {
      this.local.delete(edgeId);
      this.remote.delete(edgeId);
      this.opts.redis?.hdel(this.key, edgeId).catch(() => {});
    } else {
      this.local.set(edgeId, value);
    }
    this.changed();
    if (!none) void this.beat();
  }

  /** Every edge's entry, in edge id order. */
  current(): W[] {
    const all = new Map([...this.remote, ...this.local]);
    return [...all.keys()].sort().map((edgeId) => this.kind.entry(edgeId, all.get(edgeId)!));
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
      for (const [edgeId, value] of this.local) {
        fields.push(edgeId, JSON.stringify({ router: this.opts.routerId, until: now + EDGE_URLS_TTL_MS, ...value }));
      }
      if (fields.length > 0) await r.hset(this.key, ...fields);
      const all = await r.hgetall(this.key);
      const remote = new Map<string, V>();
      const expired: string[] = [];
      for (const [edgeId, json] of Object.entries(all)) {
        let s: { router: string; until: number } & Record<string, unknown>;
        try {
          s = JSON.parse(json) as typeof s;
        } catch {
          expired.push(edgeId); // not ours to read: drop it
          continue;
        }
        if (s.until < now) expired.push(edgeId);
        else if (s.router !== this.opts.routerId) remote.set(edgeId, this.kind.read(s));
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

const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : []);

/** Every edge's client URLs, for INFO connect_urls. */
export function edgeUrlDirectory(opts: EdgeDirectoryOptions<Draft<EdgeUrls>>) {
  return new EdgeDirectory<ClientUrls, Draft<EdgeUrls>>({
    name: "urls",
    none: (u) => u.nats.length === 0 && u.websocket.length === 0,
    read: (s) => ({ nats: strings(s.nats), websocket: strings(s.websocket) }),
    entry: (edgeId, urls) => ({ edgeId, urls }),
  }, opts);
}

/** Every edge's client count, for rebalancing. An edge that reports none is not in it. */
export function edgeLoadDirectory(opts: EdgeDirectoryOptions<Draft<EdgeLoad>>) {
  return new EdgeDirectory<{ clients: number }, Draft<EdgeLoad>>({
    name: "clients",
    none: () => false,
    read: (s) => ({ clients: typeof s.clients === "number" ? s.clients : 0 }),
    entry: (edgeId, { clients }) => ({ edgeId, clients }),
  }, opts);
}
