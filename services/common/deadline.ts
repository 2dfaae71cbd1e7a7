// A timeout at a moment however far ahead: Node's timers hold at most 2^31-1 ms (~24.8 days)
// and fire at once beyond that, while an MQTT 5 interval may be 2^32-1 seconds.

const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** Calls `fire` at `at` (ms epoch), re-arming every ~24.8 days until then. Does not hold the
 *  process open. */
export class Deadline {
  private timer: NodeJS.Timeout | undefined;

  constructor(readonly at: number, private readonly fire: () => void) {
    this.arm();
  }

  cancel(): void {
    clearTimeout(this.timer);
  }

  private arm(): void {
    const left = Math.max(0, Math.min(this.at - Date.now(), MAX_TIMEOUT_MS));
    this.timer = setTimeout(() => (Date.now() >= this.at ? this.fire() : this.arm()), left);
    this.timer.unref();
  }
}

/** Owners whose timeouts fire in one event-loop turn at the most (Timeouts). */
const EXPIRIES_PER_TURN = 1_024;

/**
 * Timeouts for many owners (connections) on one timer per length: a Timeout and its closure
 * per connection cost about 200 bytes of an idle one and allocations per connect. Timeouts of
 * one length expire in the order they were set, so an insertion-ordered Map (owner → due) is
 * the queue of each length: set = delete + append, the first entry is the next due. One timer
 * per length, armed for the first entry, fires each owner's timeout on time. Timeouts set
 * together expire together (a lost edge's 10,000 MQTT connections held its router 125 ms in
 * one turn): at most `perTurn` fire per event-loop turn, the rest in the next check phases, so
 * that sockets and keepalives are served in between.
 */
export class Timeouts<T> {
  private readonly lengths = new Map<number, TimeoutQueue<T>>();

  constructor(private readonly expired: (owner: T) => void, private readonly perTurn = EXPIRIES_PER_TURN) {}

  /** Starts, or restarts, `owner`'s timeout of `ms` (> 0): `expired(owner)` in `ms` unless
   *  cleared or set again before. An owner has one timeout per length. */
  set(owner: T, ms: number): void {
    let q = this.lengths.get(ms);
    if (!q) this.lengths.set(ms, (q = new TimeoutQueue(ms, this.perTurn, this.expired, () => this.lengths.delete(ms))));
    q.set(owner);
  }

  clear(owner: T, ms: number): void {
    this.lengths.get(ms)?.due.delete(owner);
  }
}

class TimeoutQueue<T> {
  readonly due = new Map<T, number>();
  /** Held while `run` runs too, so that a set() from `expired` arms nothing; an Immediate while
   *  expired owners wait for the next turn. */
  private timer: NodeJS.Timeout | NodeJS.Immediate | undefined;

  constructor(
    private readonly ms: number,
    private readonly perTurn: number,
    private readonly expired: (owner: T) => void,
    private readonly emptied: () => void,
  ) {}

  set(owner: T): void {
    this.due.delete(owner);
    this.due.set(owner, Math.ceil(performance.now()) + this.ms);
    // Unreferenced: the connections' sockets keep the process alive, not their timeouts.
    this.timer ??= setTimeout(this.run, this.ms).unref();
  }

  private readonly run = (): void => {
    const now = performance.now();
    let left = this.perTurn;
    // An owner set again by `expired` goes to the end, due later than now: the loop stops there.
    for (const [owner, at] of this.due) {
      if (at > now) {
        this.timer = setTimeout(this.run, at - now).unref();
        return;
      }
      if (left-- === 0) {
        this.timer = setImmediate(this.run).unref();
        return;
      }
      this.due.delete(owner);
      try {
        this.expired(owner);
      } catch (err) {
        // One owner's bug must not stop the others' timeouts: reported as uncaught, after the loop.
        queueMicrotask(() => { throw err; });
      }
    }
    this.timer = undefined;
    this.emptied();
  };
}
