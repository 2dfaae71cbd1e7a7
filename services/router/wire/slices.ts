// Received frames are applied in order, a bounded amount of work per event-loop turn: a burst
// (a client's 100,000 SUBs arrive as one frame of 100,000 operations, and become interest
// updates of thousands of entries for every peer) is applied over several turns, so that pings
// and keepalives on every link are answered meanwhile instead of after the whole burst. The
// operations of one link keep their order: a frame waits until the one before it is done.

/** About how much one turn applies: operations, an interest entry counting as one. Each
 *  slice of this many takes some milliseconds, far below the mesh's 1.5 s dead-peer rule. */
export const SLICE_COST = 4_096;

/** What a link's receiving end provides: start on a frame, then apply some of it. */
export interface SlicedFrames {
  /** The next frame to apply from its start. */
  begin(frame: Buffer): void;
  /** Applies operations of the current frame until their cost reaches `budget` or the frame
   *  ends; returns the cost applied (below `budget`: the frame is done). */
  apply(budget: number): number;
}

export class FrameQueue {
  private readonly frames: Buffer[] = [];
  /** A frame is begun and not finished. */
  private inFrame = false;
  /** Waiting for the next turn. */
  private paused = false;
  /** Turns that ended with work left (metrics, tests). */
  slicedTurns = 0;

  constructor(private readonly target: SlicedFrames) {}

  push(frame: Buffer): void {
    this.frames.push(frame);
    if (!this.paused) this.run();
  }

  /** Drops what is not applied yet (the link ended). */
  clear(): void {
    this.frames.length = 0;
    this.inFrame = false;
  }

  private run(): void {
    let budget = SLICE_COST;
    for (;;) {
      if (!this.inFrame) {
        const frame = this.frames.shift();
        if (frame === undefined) return;
        this.target.begin(frame);
        this.inFrame = true;
      }
      const cost = this.target.apply(budget);
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
