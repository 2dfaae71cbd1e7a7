// Operations queued during one event-loop turn leave as one frame on the next: the batching of
// both ends of a link (edge-end.ts, router-end.ts), whatever carries the bytes.
import type { Draft } from "./frames.js";

/** Ops queued this turn, sent as one frame on the next. */
export class Batcher<Op> {
  private ops: Draft<Op>[] = [];
  private scheduled = false;
  constructor(private readonly encode: (ops: Draft<Op>[]) => Buffer, private readonly send: () => ((bytes: Buffer) => void) | undefined) {}

  /** Drops what is queued and not yet sent (the carrier lost its stream). */
  discard(): void {
    this.ops = [];
  }

  push(op: Draft<Op>): void {
    this.ops.push(op);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      const ops = this.ops;
      this.ops = [];
      this.send()?.(this.encode(ops));
    });
  }
}

