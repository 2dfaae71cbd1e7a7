// A budget of synchronous work per event-loop turn, shared by many concurrent async tasks.
// Promise continuations that become ready together (a socket read carrying the Redis replies of
// a thousand pipelined commands) all run in one turn, however many there are: 1,000 sessions
// restored at once held a router's event loop for 0.5–0.9 s, past the edges' keepalive. A task
// takes its share before its synchronous part; once the turn's budget is spent, the next
// tasks wait for later turns (in the order they asked), so timers and sockets run in between.

export class TurnBudget {
  /** Spent in the current turn. */
  private used = 0;
  /** Tasks waiting for a later turn, in order. */
  private readonly waiting: { cost: number; go: () => void }[] = [];
  private armed = false;
  /** Tasks that had to wait for a later turn (metrics, tests). */
  deferred = 0;

  constructor(readonly perTurn: number) {}

  /**
   * Takes `cost` from this turn's budget: undefined when it is there (go on now), else a
   * promise that resolves in a later turn (await it, then go on). Tasks go in the order they
   * asked: once one waits, the next ones wait behind it.
   */
  take(cost: number): Promise<void> | undefined {
    if (this.tryTake(cost)) return undefined;
    this.arm();
    this.deferred++;
    return new Promise((go) => this.waiting.push({ cost, go }));
  }

  /** Takes `cost` only if this turn's budget has it and nobody waits: true if taken. */
  tryTake(cost: number): boolean {
    if (this.waiting.length > 0 || this.used >= this.perTurn) return false;
    this.arm();
    this.used += cost;
    return true;
  }

  /** The turn ends at the next check phase: the budget is whole again there. */
  private arm(): void {
    if (this.armed) return;
    this.armed = true;
    setImmediate(this.nextTurn);
  }

  private readonly nextTurn = (): void => {
    this.armed = false;
    this.used = 0;
    // Each task released here runs its synchronous part in this turn's microtasks.
    while (this.waiting.length > 0 && this.used < this.perTurn) {
      const w = this.waiting.shift()!;
      this.used += w.cost;
      w.go();
    }
    if (this.waiting.length > 0 || this.used > 0) this.arm();
  };
}

/** Removals (a subscription, an interest entry) done per turn by forEachInTurns: about 4 µs each
 *  with the mesh's interest updates, so 100,000 in one turn held a router 0.3–0.4 s. */
export const REMOVALS_PER_TURN = 4_096;

/** Calls `each` on `items` in order, `perTurn` of them per event-loop turn: the first slice now,
 *  the next ones at later check phases, so timers and sockets run in between; then `done` (in the
 *  call when one slice holds them all). */
export function forEachInTurns<T>(items: readonly T[], each: (item: T) => void, perTurn = REMOVALS_PER_TURN,
                                  done?: () => void, from = 0): void {
  const end = Math.min(items.length, from + perTurn);
  for (let i = from; i < end; i++) each(items[i]);
  if (end < items.length) setImmediate(() => forEachInTurns(items, each, perTurn, done, end));
  else done?.();
}
