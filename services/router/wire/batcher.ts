// Operations queued during one event-loop turn leave as one frame on the next: the batching of
// both ends of a link (edge-end.ts, router-end.ts) and of the router mesh, whatever carries the
// bytes.
import { isIdle } from "../../common/flush.js";
import { FrameBuilder, type OpWriter } from "./fast.js";
import type { Draft } from "./frames.js";
import type { Carrier } from "../link.js";

/** Frames and the ops they carried, per direction of link, for this process (the bench and the
 *  exit line read the ops per frame); two additions per frame, nothing per op. */
export interface FrameCount { frames: number; ops: number }
export const FRAME_STATS = {
  "edge→router": { frames: 0, ops: 0 } as FrameCount,
  "router→edge": { frames: 0, ops: 0 } as FrameCount,
  "router→router": { frames: 0, ops: 0 } as FrameCount,
};

/** "edge→router 120 frames, 4.1 ops/frame; …" for the directions that sent anything, else "". */
export function describeFrameStats(): string {
  return Object.entries(FRAME_STATS)
    .filter(([, c]) => c.frames > 0)
    .map(([dir, c]) => `${dir} ${c.frames} frames, ${(c.ops / c.frames).toFixed(1)} ops/frame`)
    .join("; ");
}

/**
 * Ops queued this turn, sent as one frame on the next (or once the current task is done, when
 * the batcher was idle: common/flush.ts); with `maxBytes`, a frame whose ops (by the sizes they
 * were pushed with) reached it leaves before the next op is queued, so no frame grows much past it. Ops pushed as
 * drafts are encoded when the frame leaves (the op pushed last is never sent within its own
 * push: its caller may still be filling it); an op written through frameForOp() goes into the
 * frame's buffer at once, after every draft pushed before it.
 */
export class Batcher<Op> {
  private readonly frame: FrameBuilder;
  private readonly maxBytes: number;
  /** Drafts not yet written into `frame`. */
  private drafts: Draft<Op>[] = [];
  /** Ops in the frame, written or not. */
  private count = 0;
  private bytes = 0;
  private scheduled = false;
  /** When the last frame left (performance.now()). */
  private sentAt = 0;
  private readonly flushScheduled = (): void => {
    this.scheduled = false;
    this.flush();
  };
  /** Changes whenever an op is queued, the frame leaves or is dropped: an op written through
   *  frameForOp() is still the frame's last, unsent, while this is what it was after wrote(). */
  last = 0;
  /** Frames and ops sent so far (metrics: ops per frame is the batching achieved). */
  framesSent = 0;
  opsSent = 0;
  /** `givesBack`: the carrier calls done() with every frame sent once it no longer reads it
   *  (FrameBuilder), so the frames' memory is written again. */
  constructor(private readonly writeOp: OpWriter<Op>, private readonly carrier: () => Carrier | undefined,
              private readonly stats: FrameCount, { givesBack = false, maxBytes = Infinity } = {}) {
    this.frame = new FrameBuilder(givesBack);
    this.maxBytes = maxBytes;
  }

  /** A frame sent is no longer read by its carrier (only with `givesBack`). */
  readonly done = (frame: Buffer): void => this.frame.done(frame);

  /** Drops what is queued and not yet sent (the carrier lost its stream). */
  discard(): void {
    this.last++;
    this.drafts = [];
    this.frame.reset();
    this.count = 0;
    this.bytes = 0;
  }

  /** `bytes`: about how much the op adds to the frame (0: small). */
  push(op: Draft<Op>, bytes = 0): void {
    if (this.bytes >= this.maxBytes) this.flush();
    this.drafts.push(op);
    this.queued(bytes);
  }

  /** The frame, for one op to be written into it now (from bytes valid only during the call,
   *  with no closure or draft per op); wrote() must follow. */
  frameForOp(): FrameBuilder {
    if (this.bytes >= this.maxBytes) this.flush();
    if (this.drafts.length > 0) this.writeDrafts();
    return this.frame;
  }

  /** The frame, for the op written last to grow in (while `last` is what it was after its
   *  wrote(): FrameBuilder.insert()). */
  frameOfLast(): FrameBuilder {
    return this.frame;
  }

  /** The op started by frameForOp() is in the frame. */
  wrote(bytes = 0): void {
    this.queued(bytes);
  }

  private queued(bytes: number): void {
    this.last++;
    this.count++;
    this.bytes += bytes;
    if (this.scheduled) return;
    this.scheduled = true;
    if (isIdle(this.sentAt)) queueMicrotask(this.flushScheduled);
    else setImmediate(this.flushScheduled);
  }

  private writeDrafts(): void {
    const drafts = this.drafts;
    this.drafts = [];
    for (let i = 0; i < drafts.length; i++) this.writeOp(this.frame, drafts[i]);
  }

  /** Sends what is queued now (a carrier about to switch streams sends it on the old one). */
  flush(): void {
    if (this.count === 0) return;
    const carrier = this.carrier();
    if (!carrier) return this.discard();
    if (this.drafts.length > 0) this.writeDrafts();
    const n = this.count;
    this.last++;
    this.count = 0;
    this.bytes = 0;
    this.framesSent++;
    this.opsSent += n;
    this.stats.frames++;
    this.stats.ops += n;
    this.sentAt = performance.now();
    carrier.write(this.frame.finish());
  }
}
