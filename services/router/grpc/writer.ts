// Writes frames to a grpc-js stream honouring its backpressure: grpc-js streams are in object
// mode and write() returns false after 16 queued frames; past that, frames wait here for
// 'drain', up to a bound in bytes, and the owner is told when the bound is crossed.
//
// A frame is given back to its builder (`done`) on the write callback: grpc-js has copied it
// behind its 5-byte length prefix by then, on both ends (a server as it writes; a client in its
// compression filter, before the call's retry layer sees the message: test/unit/grpc-writer.test.ts).
//
// While frames wait, producers may stall (stall()): an edge's client whose input finds the link
// congested stops reading until it drains, as nats-server stalls a fast producer, so a backlog
// stays in the client's socket instead of the edge's heap (where a long-lived one also costs
// V8's major GC). A stall lasts until the queue drains, the writer is released (its stream is
// lost or left), or MAX_STALL_MS: never longer, whatever the router does.
import type { Backpressure } from "../link.js";
import { LINK_QUEUE_BYTES } from "./service.js";

/** The longest a producer waits for a congested link; then it reads again (and may stall again). */
export const MAX_STALL_MS = 1_000;

interface FrameStream {
  write(frame: Buffer, done: () => void): boolean;
  on(event: "drain", listener: () => void): unknown;
}

export class FrameWriter implements Backpressure {
  private readonly queue: Buffer[] = [];
  private queuedBytes = 0;
  private blocked = false;
  private overflowed = false;
  /** Producers stalled on this writer (stall()), resumed together. */
  private stalled: (() => void)[] = [];
  private stallTimer: NodeJS.Timeout | undefined;
  /** Producers stalled so far (a counter for metrics and tests). */
  stalls = 0;

  constructor(private readonly stream: FrameStream, private readonly overflow: (queuedBytes: number) => void,
              private readonly done: (frame: Buffer) => void, private readonly limit = LINK_QUEUE_BYTES) {
    stream.on("drain", () => this.drain());
  }

  private send(frame: Buffer): boolean {
    return this.stream.write(frame, () => this.done(frame));
  }

  /** Bytes waiting for 'drain' (a gauge for metrics and tests). */
  get pending(): number { return this.queuedBytes; }

  write(frame: Buffer): void {
    if (this.overflowed) return;
    if (!this.blocked) {
      this.blocked = !this.send(frame);
      return;
    }
    if (this.queuedBytes + frame.length > this.limit) {
      this.overflowed = true;
      this.queue.length = 0;
      return this.overflow(this.queuedBytes + frame.length);
    }
    this.queue.push(frame);
    this.queuedBytes += frame.length;
  }

  private drain(): void {
    this.blocked = false;
    let i = 0;
    while (i < this.queue.length && !this.blocked) {
      const frame = this.queue[i++];
      this.queuedBytes -= frame.length;
      this.blocked = !this.send(frame);
    }
    this.queue.splice(0, i);
    if (!this.blocked) this.release();
  }

  stall(resume: () => void): boolean {
    if (!this.blocked || this.overflowed) return false;
    this.stalled.push(resume);
    this.stalls++;
    this.stallTimer ??= setTimeout(() => this.release(), MAX_STALL_MS).unref();
    return true;
  }

  /** Resumes every stalled producer (also: the stream is lost or left). */
  release(): void {
    if (this.stallTimer !== undefined) clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
    if (this.stalled.length === 0) return;
    const resumes = this.stalled;
    this.stalled = [];
    for (let i = 0; i < resumes.length; i++) resumes[i]();
  }

}
