// Writes frames to a grpc-js stream honouring its backpressure: grpc-js streams are in object
// mode and write() returns false after 16 queued frames; past that, frames wait here for
// 'drain', up to a bound in bytes, and the owner is told when the bound is crossed.
//
// On a server stream a frame is given back to its builder (frameDone) on the write callback: a
// grpc-js server copies the frame behind its 5-byte prefix as it is written and calls back after
// that write. Not on a client stream: grpc-js's retry layer calls back as soon as it has queued
// the frame (by reference, to send it when the call is ready or its earlier writes are done),
// so the bytes could be written over before they leave.
import { frameDone } from "../wire/fast.js";
import { LINK_QUEUE_BYTES } from "./service.js";

const noop = (): void => {};

interface FrameStream {
  write(frame: Buffer, done: () => void): boolean;
  on(event: "drain", listener: () => void): unknown;
}

export class FrameWriter {
  private readonly queue: Buffer[] = [];
  private queuedBytes = 0;
  private blocked = false;
  private overflowed = false;

  private readonly send: (frame: Buffer) => boolean;

  constructor(stream: FrameStream, private readonly overflow: (queuedBytes: number) => void,
              private readonly limit = LINK_QUEUE_BYTES, side: "server" | "client" = "client") {
    this.send = side === "server" ? (frame) => stream.write(frame, () => frameDone(frame)) : (frame) => stream.write(frame, noop);
    stream.on("drain", () => this.drain());
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
  }

}
