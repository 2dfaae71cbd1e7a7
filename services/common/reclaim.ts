// Gives memory back after a burst of connections has come and gone (a storm of bad clients, an
// edge's clients reconnecting here after a drain). V8 keeps the space such a burst's garbage
// used until its next major GC, and an idle broker triggers none: RSS stayed at about 1.8× its
// warm-up value once the connections were gone. Like Go's runtime (nats-server's), which forces a
// GC periodically, the command runs a full GC when enough connections have closed since the last
// one and the churn has stopped, or at most once a minute while it goes on.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** What the reclaimer watches: the closed connections so far (a monotonic count). */
export interface ChurnSource {
  closedConnections(): number;
}

export interface ReclaimOptions {
  /** Connections that must have closed since the last GC (default 1,000). */
  minClosed?: number;
  /** How often the churn is looked at; "stopped" means no close within one period (default 2 s). */
  periodMs?: number;
  /** While churn goes on, at most one GC per this interval (default 60 s). */
  maxIntervalMs?: number;
}

let reclaims = 0;

/** Full GCs run by the reclaimer (meshbroker_memory_reclaims_total). */
export function reclaimCount(): number {
  return reclaims;
}

/** The full-GC function V8 exposes on request; only the command (a process of its own) asks. */
function fullGc(): () => void {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

/** Starts watching; returns the stop function. The timer never keeps the process alive. */
export function startReclaimer(source: ChurnSource, opts: ReclaimOptions = {}): () => void {
  const minClosed = opts.minClosed ?? 1_000;
  const maxIntervalMs = opts.maxIntervalMs ?? 60_000;
  const gc = fullGc();
  let closedAtGc = source.closedConnections();
  let closedAtTick = closedAtGc;
  let lastGc = Date.now();
  const timer = setInterval(() => {
    const closed = source.closedConnections();
    const quiet = closed === closedAtTick;
    closedAtTick = closed;
    if (closed - closedAtGc < minClosed) return;
    if (!quiet && Date.now() - lastGc < maxIntervalMs) return;
    gc();
    reclaims++;
    closedAtGc = closed;
    lastGc = Date.now();
  }, opts.periodMs ?? 2_000);
  timer.unref();
  return () => clearInterval(timer);
}
