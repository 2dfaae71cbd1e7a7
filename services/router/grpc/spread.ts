// Evens out edges over the live routers, so that a router added to the cluster takes its share
// of the edges (and of their traffic) without any client noticing. Each router registers how
// many edges it holds with its heartbeat (mesh/registry.ts). When this router has held more than
// one edge more than the least loaded live router for `delayMs` in a row, it asks one edge to move
// there: a GoAway naming that router, the graceful move of a router's SIGTERM (the edge attaches
// and replays there before it leaves, no client is disconnected). One edge at a time, the one
// attached last first: the next is asked once the last one left (or MOVE_WAIT_MS passed) and
// ASK_INTERVAL_MS passed, so that the counts in Redis caught up. An edge that stays (its list
// lacks that router) is not asked again for RETRY_AFTER_MS.

import { GO_AWAY_TIMEOUT_MS } from "../wire/frames.js";

export interface SpreadDeps {
  selfId: string;
  /** Live routers (this one included) with their edge counts (-1: stopping, takes none); none
   *  while that is unknown. */
  members(): readonly { id: string; address: string; edges: number }[];
  /** The edges attached here, in the order they attached. */
  edges(): string[];
  /** Asks edge `edgeId` to move to the router at `address`. */
  ask(edgeId: string, address: string): void;
  log(message: string): void;
}

const TICK_MS = 1_000;
/** Longer than a heartbeat and a move: the next decision sees the last move's counts. */
export const ASK_INTERVAL_MS = 3_000;
const RETRY_AFTER_MS = 60_000;
/** An edge asked to move leaves within GO_AWAY_TIMEOUT_MS or stays: wait for that, with room. */
const MOVE_WAIT_MS = 2 * GO_AWAY_TIMEOUT_MS;

export class EdgeSpread {
  private unevenSince: number | undefined;
  private lastAsk = -Infinity;
  /** The edge asked last. */
  private moving: string | undefined;
  /** Edges asked to move, and when. */
  private readonly asked = new Map<string, number>();
  private readonly timer: NodeJS.Timeout;

  /** `delayMs`: how long the spread must stay uneven before an edge is moved; 0: never (a
   *  reload may change it). */
  constructor(private readonly deps: SpreadDeps, public delayMs: number) {
    this.timer = setInterval(() => this.tick(Date.now()), TICK_MS).unref();
  }

  /** One decision at time `now` (ms). */
  tick(now: number): void {
    const { delayMs } = this;
    if (delayMs <= 0) return;
    const mine = this.deps.edges();
    let least: { id: string; address: string; edges: number } | undefined;
    for (const m of this.deps.members()) {
      if (m.id !== this.deps.selfId && m.edges >= 0 && (!least || m.edges < least.edges)) least = m;
    }
    if (!least || mine.length <= least.edges + 1) {
      this.unevenSince = undefined;
      return;
    }
    this.unevenSince ??= now;
    if (now - this.unevenSince < delayMs || now - this.lastAsk < ASK_INTERVAL_MS) return;
    if (this.moving !== undefined && mine.includes(this.moving) && now - this.lastAsk < MOVE_WAIT_MS) return;
    for (const [id, at] of this.asked) if (now - at >= RETRY_AFTER_MS || !mine.includes(id)) this.asked.delete(id);
    let edge: string | undefined;
    for (let i = mine.length - 1; i >= 0 && edge === undefined; i--) if (!this.asked.has(mine[i])) edge = mine[i];
    if (edge === undefined) return;
    this.asked.set(edge, now);
    this.lastAsk = now;
    this.moving = edge;
    this.deps.log(`${mine.length} edges here, ${least.edges} on router ${least.id}: asking edge ${edge} to move there`);
    this.deps.ask(edge, least.address);
  }

  close(): void {
    clearInterval(this.timer);
  }
}
