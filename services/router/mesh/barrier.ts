// The mesh's flush barrier: a client's PING (flush) is answered once every linked peer router
// applied the interest changes made before it, so a subscription confirmed by a flush is
// routed from every edge of the cluster, not only from edges of its own router. Each peer gets
// a ping queued after the pending interest update on its stream, and answers it in order;
// a peer that goes away releases the wait, and a timeout bounds it (a peer that is slow but
// alive must not hold a client's PONG for ever).

/** One barrier: done once `pending` links passed it, or at its deadline. */
export interface BarrierWaiter {
  pending: number;
  readonly done: () => void;
  readonly deadline: number;
}

/** A link a barrier waits on. */
export interface BarrierLink {
  barrier(waiter: BarrierWaiter): void;
}

/** Longer than the mesh's dead-peer detection (1.5 s): a peer gone quiet is dropped first. */
export const BARRIER_TIMEOUT_MS = 2_000;

/**
 * The barriers in flight, released in the order they were made (the edge's end matches its
 * pings to pongs in order), each once all its links passed or its deadline came.
 */
export class Barriers {
  private readonly waiting: BarrierWaiter[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** Barriers that ran into their deadline: a peer slow to apply interest. */
  timeouts = 0;

  constructor(private readonly timeoutMs = BARRIER_TIMEOUT_MS) {}

  /** `done` once every link answered a ping sent after what is queued on it now. */
  start(links: Iterable<BarrierLink>, done: () => void): void {
    const waiter: BarrierWaiter = { pending: 1, done, deadline: Date.now() + this.timeoutMs };
    this.waiting.push(waiter);
    for (const l of links) {
      waiter.pending++;
      l.barrier(waiter);
    }
    this.passed(waiter); // the 1 it started with: links that passed at once are counted already
    if (this.waiting.length > 0 && this.timer === undefined) this.arm();
  }

  /** One link passed `waiter` (its pong came, or it went away). */
  passed(waiter: BarrierWaiter): void {
    waiter.pending--;
    this.release(Date.now());
  }

  /** Everything waiting passes (the mesh closes). */
  releaseAll(): void {
    for (const w of this.waiting) w.pending = 0;
    this.release(Date.now());
  }

  private release(now: number): void {
    const w = this.waiting;
    let n = 0;
    while (n < w.length && (w[n].pending <= 0 || w[n].deadline <= now)) {
      if (w[n].pending > 0) this.timeouts++;
      n++;
    }
    if (n === 0) return;
    const ready = w.splice(0, n);
    for (const waiter of ready) {
      waiter.pending = 0; // a late pong of a timed-out barrier finds it done
      waiter.done();
    }
    if (w.length === 0 && this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  private arm(): void {
    const head = this.waiting[0];
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.release(Date.now());
      if (this.waiting.length > 0) this.arm();
    }, Math.max(1, head.deadline - Date.now())).unref();
  }
}
