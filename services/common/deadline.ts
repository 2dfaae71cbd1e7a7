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
