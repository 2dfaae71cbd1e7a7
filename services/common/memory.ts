// Gives memory back after a burst of connections is over.
//
// A burst of short-lived connections (a reconnect storm, abuse, a fuzzer) leaves V8's heap as
// large as the burst needed: the garbage is unreachable, but V8 returns the pages only after a
// major GC, and an idle broker allocates too little to trigger one. Measured with the fuzzers: RSS
// stayed 2–2.7× its warm-up value once every connection was gone, and came back to 1.15× after
// one forced major GC. So when many connections have closed and then none has closed for a quiet
// period (the burst is over, the broker is not busy), one major GC runs, at most once per
// interval. It pauses the event loop for tens of milliseconds, once, when little is happening.
//
// That GC leaves the young generation as large as the burst made it (V8 sizes it by the recent
// allocation rate: 28 MB committed after the NATS fuzzer, for a few KB live). V8 shrinks it only
// in a GC that finds the allocation rate low over its last ~5 s, so a second GC follows once the
// broker has been idle that long (measured: 16 MB -> 1 MB of young generation at 7 s, none at 4 s).
//
// The quiet period is long because the GC costs more than its pause: with the burst's connections
// gone, it collects their hidden classes too, and V8 throws away the optimized code built on them
// (about 80 functions of the connection path, "weak objects" deopts). The next connections then
// run cold until compiled again: 5,000 MQTT connects right after a reclaim cost 134-150 us of CPU
// each, against 98-106 us without one. A storm comes in waves (clients retry after 1-2 s backoffs,
// then again), so a reclaim 2 s after a wave made the next one cold; 15 s of quiet outlasts them.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

export interface ReclaimOptions {
  /** Closed connections since the last reclaim that make a burst. */
  burst: number;
  /** No connection closed for this long: the burst is over. */
  quietMs: number;
  /** At most one reclaim per this long. */
  minIntervalMs: number;
  /** The second GC, this long after the first (0 or unset: none), skipped if a new burst began. */
  settleMs?: number;
}

export const RECLAIM_DEFAULTS: ReclaimOptions = { burst: 500, quietMs: 15_000, minIntervalMs: 30_000, settleMs: 6_000 };

/** When the last GC of a reclaim has run, counted from the end of the burst. */
export function reclaimDoneMs(opts: ReclaimOptions = RECLAIM_DEFAULTS): number {
  return opts.quietMs + (opts.settleMs ?? 0);
}

/** V8's full GC, exposed at run time (the command is started without `--expose-gc`). */
export function majorGc(): () => void {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed) return exposed;
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  // A full GC compacts only the pages it picks as fragmented: the survivors of a burst (the
  // closed-connection ring) stay spread over most of the pages it used, and those stay
  // committed (88 MB of old space for 32 MB live, measured). Compacting every page for this one
  // GC gives them back (34 MB).
  return () => {
    setFlagsFromString("--compact-on-every-full-gc");
    try {
      gc();
    } finally {
      setFlagsFromString("--no-compact-on-every-full-gc");
    }
  };
}

export class MemoryReclaimer {
  private closes = 0;
  private lastRun = 0;
  private timer: NodeJS.Timeout | undefined;
  private settle: NodeJS.Timeout | undefined;
  /** How many reclaims ran (for the logs and tests); the second GC of each is not counted. */
  runs = 0;

  constructor(private readonly gc: () => void, private readonly opts: ReclaimOptions = RECLAIM_DEFAULTS,
              private readonly onRun?: (ms: number, second: boolean) => void) {}

  /** A client connection closed. Cheap: one counter and, during a burst, one timer refresh. */
  connectionClosed(): void {
    if (++this.closes < this.opts.burst) return;
    if (this.timer) this.timer.refresh();
    else this.timer = setTimeout(() => this.fire(), this.opts.quietMs).unref();
  }

  /** A client connection opened: a pending GC waits until connections stop coming too. */
  connectionOpened(): void {
    this.timer?.refresh();
    this.settle?.refresh();
  }

  private fire(): void {
    const wait = this.lastRun + this.opts.minIntervalMs - Date.now();
    if (wait > 0) {
      this.timer = setTimeout(() => this.fire(), wait).unref();
      return;
    }
    this.timer = undefined;
    this.closes = 0;
    this.collect(false);
    this.lastRun = Date.now();
    this.runs++;
    if (this.opts.settleMs) {
      this.settle = setTimeout(() => {
        this.settle = undefined;
        if (!this.timer) this.collect(true); // else a new burst: its own reclaim follows
      }, this.opts.settleMs).unref();
    }
  }

  private collect(second: boolean): void {
    const start = performance.now();
    this.gc();
    this.onRun?.(performance.now() - start, second);
  }

  close(): void {
    clearTimeout(this.timer);
    clearTimeout(this.settle);
    this.timer = this.settle = undefined;
  }
}
