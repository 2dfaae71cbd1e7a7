// Rebalancing (`edge { rebalance { max_evictions_per_second, tolerance } }`): scale-out that
// takes load. Every edge of a cluster reports its client count to its router each second; the
// routers share the counts through Redis (P:edges:clients) and send every edge the whole set.
// An edge with the block whose count is above mean × (1 + tolerance), and above the mean by at
// least min_excess clients (EMQX has such an absolute threshold too: in a small cluster the
// fraction alone would move 1 of 3 clients back and forth), moves its newest clients to the
// other edges, at most max_evictions_per_second, until it is within the tolerance.
//
// The mean is taken over the other edges' reported counts, which lag by a second or two, and
// this edge's live count (its own report lags too: a burst of clients that just arrived would
// count as none, and the edge would move all of them). The excess is taken on the live count,
// so clients already moved are not moved again. Newest first: they carry the least state
// (subscriptions, MQTT inflight), and a long-lived client, likely the more important one, is
// left alone; a client moved here by another edge's rebalancing would only be moved on if this
// edge were above the mean itself.
import type { Options } from "../common/config/options.js";
import type { Logger } from "../common/log.js";
import type { RouterLink } from "../router/link.js";
import type { ConnectionView } from "./connection-view.js";

export const REBALANCE_PERIOD_MS = 1_000;

export interface RebalancedEdge {
  readonly options: Options;
  readonly link: RouterLink;
  readonly log: Logger;
  /** This edge's id in the cluster (the edge ids of the reported counts). */
  readonly serverId: string;
  /** False in lame duck and shutdown: nothing is moved then. */
  readonly accepting: boolean;
  /** Open client connections (every protocol). */
  connectionCount(): number;
  openConnections(): ConnectionView[];
  /** Tells the client to go elsewhere (NATS: the lame-duck INFO) and closes it. */
  moveClient(c: ConnectionView): void;
}

export class Rebalancer {
  /** Clients moved so far (meshbroker_rebalance_evictions_total). */
  evictions = 0;
  private load: { edgeId: string; clients: number }[] = [];
  /** Moves allowed now: max_evictions_per_second accrues each period (fractions add up). */
  private budget = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly edge: RebalancedEdge) {
    this.timer = setInterval(() => this.tick(), REBALANCE_PERIOD_MS).unref();
  }

  close(): void {
    clearInterval(this.timer);
  }

  private tick(): void {
    const { edge } = this;
    if (!edge.accepting || !edge.link.reportClients) return;
    const here = edge.connectionCount();
    edge.link.reportClients(here, (edges) => { this.load = edges; });
    const cfg = edge.options.edge?.rebalance;
    if (!cfg?.enabled || cfg.maxEvictionsPerSecond <= 0 || this.load.length < 2) return;
    let total = here, edges = 1;
    for (const e of this.load) {
      if (e.edgeId === edge.serverId) continue;
      total += e.clients;
      edges++;
    }
    const mean = total / edges;
    const excess = here - Math.max(Math.ceil(mean * (1 + cfg.tolerance)), Math.floor(mean) + cfg.minExcess);
    const rate = cfg.maxEvictionsPerSecond;
    this.budget = Math.min(this.budget + rate, Math.max(rate, 1));
    const n = Math.min(excess, Math.floor(this.budget));
    if (n <= 0) return;
    this.budget -= n;
    // The list only when moving: an edge of 100,000 clients would build it every second.
    const conns = edge.openConnections().sort((a, b) => b.cid - a.cid);
    edge.log.notice(`rebalance: ${here} clients here, ${mean.toFixed(1)} the mean of ${edges} edges: moving ${n} to other edges`);
    for (let i = 0; i < n; i++) edge.moveClient(conns[i]);
    this.evictions += n;
  }
}
