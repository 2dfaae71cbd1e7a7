// Received frames are applied in order, a bounded amount of work per event-loop turn: a burst
// (a client's 100,000 SUBs arrive as one frame of 100,000 operations, and become interest
// updates of thousands of entries for every peer) is applied over several turns, so that pings
// and keepalives on every link are answered meanwhile instead of after the whole burst. The
// operations of one link keep their order: a frame waits until the one before it is done.
import { WireError } from "./codec.js";
import { Next } from "./fast.js";

/** About how much one turn applies: operations, an interest entry counting as one. Each
 *  slice of this many takes some milliseconds, far below the mesh's 1.5 s dead-peer rule. */
export const SLICE_COST = 4_096;

/** A frame cursor (fast.ts): one op of the frame at a time. */
export interface OpCursor {
  reset(frame: Buffer): void;
  next(): Next | WireError;
}

/** What a link's receiving end does with the ops its cursor reads. */
export interface OpTarget {
  /** Nothing more is to be applied (the link closed, or refused its peer). */
  stopped(): boolean;
  /** Applies the op the cursor just read; returns its cost beyond 1 (interest entries). */
  op(next: Next.Hot | Next.Cold | Next.Hot2): number;
  /** The rest of the frame is malformed (the ops before it were applied). */
  malformed(err: WireError): void;
}

export class FrameQueue {
  private readonly frames: Buffer[] = [];
  /** A frame is begun and not finished. */
  private inFrame = false;
  /** Waiting for the next turn. */
  private paused = false;
  /** Turns that ended with work left (metrics, tests). */
  slicedTurns = 0;
  /** Frames and ops received (metrics). */
  framesIn = 0;
  opsIn = 0;

  constructor(private readonly cursor: OpCursor, private readonly target: OpTarget) {}

  push(frame: Buffer): void {
    this.frames.push(frame);
    if (!this.paused) this.run();
  }

  /** Drops what is not applied yet (the link ended). */
  clear(): void {
    this.frames.length = 0;
    this.inFrame = false;
  }

  /** Applies ops of the current frame until their cost reaches `budget`; returns the cost
   *  (below `budget`: the frame is done). */
  private apply(budget: number): number {
    const cur = this.cursor, target = this.target;
    let cost = 0;
    while (cost < budget && !target.stopped()) {
      const next = cur.next();
      if (next === Next.End) break;
      if (next instanceof WireError) {
        target.malformed(next);
        break;
      }
      this.opsIn++;
      cost += 1 + target.op(next);
    }
    return cost;
  }

  private run(): void {
    let budget = SLICE_COST;
    for (;;) {
      if (!this.inFrame) {
        const frame = this.frames.shift();
        if (frame === undefined) return;
        this.framesIn++;
        this.cursor.reset(frame);
        this.inFrame = true;
      }
      const cost = this.apply(budget);
      if (cost < budget) this.inFrame = false;
      budget -= cost;
      if (budget > 0 && !this.inFrame) continue;
      if (!this.inFrame && this.frames.length === 0) return;
      this.slicedTurns++;
      this.paused = true;
      setImmediate(() => {
        this.paused = false;
        this.run();
      });
      return;
    }
  }
}
