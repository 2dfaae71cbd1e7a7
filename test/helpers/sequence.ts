// A steady numbered NATS load for the chaos tests: a publisher sends 0, 1, 2, … in small flushed
// batches until stopped, and a log records what a subscriber received and when, so a test can
// count what was lost, duplicated or stalled around a fault. Waits are event-driven and bounded.
import { StringCodec, type NatsConnection } from "nats";
import { withTimeout } from "./wait.js";

const sc = StringCodec();

export interface SequencePublisher {
  /** How many numbers were published so far (the next one is this). */
  readonly sent: number;
  /** Stops after the batch in flight; resolves with the count published. */
  stop(): Promise<number>;
}

/** Publishes `batch` numbers, flushes, yields a turn, and again, until stopped or closed. */
export function publishSequence(nc: NatsConnection, subject: string, batch = 20): SequencePublisher {
  let n = 0;
  let stopped = false;
  const done = (async () => {
    while (!stopped && !nc.isClosed()) {
      for (let i = 0; i < batch; i++) nc.publish(subject, sc.encode(String(n++)));
      await nc.flush().catch(() => undefined); // a reconnecting client flushes later
      await new Promise((r) => setImmediate(r));
    }
  })();
  return {
    get sent() { return n; },
    async stop() {
      stopped = true;
      await done;
      return n;
    },
  };
}

export class SequenceLog {
  /** Numbers in arrival order, and when each arrived (Date.now()). */
  readonly got: number[] = [];
  readonly at: number[] = [];
  private readonly waiters = new Set<() => void>();

  /** The subscription callback: `sub.subscribe(s, { callback: (_, m) => log.record(m.data) })`. */
  record(data: Uint8Array): void {
    this.got.push(Number(sc.decode(data)));
    this.at.push(Date.now());
    for (const w of [...this.waiters]) w();
  }

  /** Resolves with the index (in `got`) of the first number ≥ `n` received from arrival index
   *  `since` on; rejects after `timeoutMs`. */
  waitFor(n: number, timeoutMs: number, since = 0): Promise<number> {
    let check = (): void => undefined;
    return withTimeout(new Promise<number>((resolve) => {
      let i = since;
      check = () => {
        for (; i < this.got.length; i++) {
          if (this.got[i] >= n) {
            this.waiters.delete(check);
            return resolve(i);
          }
        }
      };
      this.waiters.add(check);
      check();
    }), timeoutMs, () => `number ${n} (last received ${this.got[this.got.length - 1] ?? "none"})`).finally(() => this.waiters.delete(check));
  }

  /** Numbers in [from, to) never received. */
  missing(from: number, to: number): number[] {
    const seen = new Set(this.got);
    const out: number[] = [];
    for (let i = from; i < to; i++) if (!seen.has(i)) out.push(i);
    return out;
  }

  /** How many arrivals repeated a number already received. */
  duplicates(): number {
    return this.got.length - new Set(this.got).size;
  }

  /** The longest time between two arrivals at or after arrival index `since` (ms). */
  longestGap(since: number): number {
    let gap = 0;
    for (let i = Math.max(1, since); i < this.at.length; i++) gap = Math.max(gap, this.at[i] - this.at[i - 1]);
    return gap;
  }
}

/** `sub` subscribes to `subject` (flushed), `pub` starts publishing numbers on it; resolves once
 *  the first one arrived (the interest crossed), with the log, the load and that number. */
export async function startSequence(sub: NatsConnection, pub: NatsConnection, subject: string):
  Promise<{ log: SequenceLog; load: SequencePublisher; first: number }> {
  const log = new SequenceLog();
  sub.subscribe(subject, { callback: (_, m) => log.record(m.data) });
  await sub.flush();
  const load = publishSequence(pub, subject);
  const first = log.got[await log.waitFor(0, 5_000)];
  return { log, load, first };
}
