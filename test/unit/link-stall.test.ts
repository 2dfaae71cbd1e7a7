// FrameWriter.stall: a producer stalls only while frames wait for 'drain', and every stall ends:
// on the drain, when the writer is released (its stream lost or left), or after MAX_STALL_MS.
// The stream is a real object-mode Writable that holds its writes until told to finish them.
import { Writable } from "node:stream";
import { afterEach, describe, expect, it, vi } from "vitest";
import { FrameWriter, MAX_STALL_MS } from "../../services/router/grpc/writer.js";

/** A grpc-js-like stream: object mode, write() false past `highWaterMark` frames in flight. */
function heldStream(highWaterMark = 2) {
  const held: (() => void)[] = [];
  const stream = new Writable({ objectMode: true, highWaterMark, write(_frame, _enc, cb) { held.push(() => cb()); } });
  return { stream, finishAll: () => { while (held.length > 0) held.shift()!(); } };
}

const frame = (): Buffer => Buffer.alloc(100);

describe("FrameWriter stalls", () => {
  afterEach(() => { vi.useRealTimers(); });

  it("stalls only while frames wait, and resumes the producers once the stream drains", async () => {
    const { stream, finishAll } = heldStream();
    const writer = new FrameWriter(stream, () => { throw new Error("overflow"); }, () => undefined);
    const resumed: string[] = [];
    expect(writer.stall(() => resumed.push("early"))).toBe(false);
    for (let i = 0; i < 4; i++) writer.write(frame()); // two in flight, then blocked
    expect(writer.stall(() => resumed.push("a"))).toBe(true);
    expect(writer.stall(() => resumed.push("b"))).toBe(true);
    expect(resumed).toEqual([]);
    finishAll();
    await new Promise((r) => setImmediate(r)); // 'drain' comes after the callbacks
    finishAll(); // the queued frames went out on the drain
    await new Promise((r) => setImmediate(r));
    expect(resumed).toEqual(["a", "b"]);
    expect(writer.stalls).toBe(2);
  });

  it("release() and MAX_STALL_MS end a stall on a stream that never drains", () => {
    vi.useFakeTimers();
    const { stream } = heldStream();
    const writer = new FrameWriter(stream, () => { throw new Error("overflow"); }, () => undefined);
    for (let i = 0; i < 3; i++) writer.write(frame());
    let resumes = 0;
    expect(writer.stall(() => resumes++)).toBe(true);
    writer.release();
    expect(resumes).toBe(1);
    expect(writer.stall(() => resumes++)).toBe(true);
    vi.advanceTimersByTime(MAX_STALL_MS - 1);
    expect(resumes).toBe(1);
    vi.advanceTimersByTime(1);
    expect(resumes).toBe(2);
  });
});
