// The wire codec's own speed, in one process (no server, no comparison): operations per second
// through protobufjs (wire/codec.ts) and through the hand-written hot path (wire/fast.ts), for
// 128-byte messages. Moved here from the unit tests, which do not time things.
//   npx tsc -p tsconfig.json && node dist/test/bench/codec.js
import { edgeFrames } from "../../services/router/wire/codec.js";
import {
  addDeliverTarget, EdgeFrameCursor, FrameBuilder, MeshFrameCursor, Next, RouterFrameCursor, writeDeliverOf, writeForwardOf, writePublish,
} from "../../services/router/wire/fast.js";
import type { EdgeFrame } from "../../services/router/wire/frames.js";

const N = 500_000, PER_FRAME = 500;
const msg = { buf: Buffer.alloc(128, 120), start: 0, end: 128, hdrLen: 0 };

/** Ops per second of `fn`, run `rounds` times over `opsPerRound` ops, after a warm-up round. */
function rate(opsPerRound: number, rounds: number, fn: () => void): string {
  fn();
  const start = performance.now();
  for (let r = 0; r < rounds; r++) fn();
  return `${Math.round((opsPerRound * rounds * 1000) / (performance.now() - start)).toLocaleString("en")}/s`;
}

/** Encodes N ops, PER_FRAME to a frame, with `write`; decodes them with `read` (ops read). */
function handWritten(name: string, write: (w: FrameBuilder, i: number) => void, read: (frames: Buffer[]) => number): void {
  const w = new FrameBuilder();
  let frames: Buffer[] = [];
  const encode = rate(N, 3, () => {
    frames = [];
    for (let i = 0; i < N; i += PER_FRAME) {
      for (let j = 0; j < PER_FRAME; j++) write(w, j);
      frames.push(Buffer.from(w.finish()));
    }
  });
  let n = 0;
  // Decoding moves a message's headers in place: every round reads the same bytes again.
  const decode = rate(N, 3, () => { n = read(frames); });
  if (n !== N) throw new Error(`${name}: decoded ${n} ops of ${N}`);
  console.log(`hand-written ${name}, ${PER_FRAME} per frame: encode ${encode}, decode ${decode}`);
}

handWritten("Publish 128B", (w) => writePublish(w, "$G", "bench.subject", "", msg, 12, false), (frames) => {
  const cur = new EdgeFrameCursor();
  let n = 0;
  for (const f of frames) for (cur.reset(f); cur.next() === Next.Hot;) n++;
  return n;
});
handWritten("Forward 128B", (w) => writeForwardOf(w, "$G", "bench.subject", "", msg, undefined, "e1", 12, false, 0), (frames) => {
  const cur = new MeshFrameCursor();
  let n = 0;
  for (const f of frames) for (cur.reset(f); cur.next() === Next.Hot;) n++;
  return n;
});
handWritten("Deliver 128B to 2 targets", (w) => {
  writeDeliverOf(w, "$G", "bench.subject", "", msg, 7, "1");
  addDeliverTarget(w, 8, "2");
}, (frames) => {
  const cur = new RouterFrameCursor();
  let n = 0;
  for (const f of frames) for (cur.reset(f); cur.next() === Next.Hot;) while (cur.nextTarget()) n += 0.5;
  return n;
});

// protobufjs, as every op that is not a message goes.
const payload = Buffer.alloc(128, 1);
const ops = Array.from({ length: 100 }, (_, i) => ({ publish: { account: "A", message: { subject: `orders.${i}`, payload }, originConnection: i } }));
let frame = edgeFrames.encode({ ops });
const encode = rate(100, 3000, () => { frame = edgeFrames.encode({ ops }); });
let decoded = 0;
const decode = rate(100, 3000, () => { decoded += (edgeFrames.decode(frame) as EdgeFrame).ops.length; });
console.log(`protobufjs Publish 128B, 100 per frame (${frame.length} bytes): encode ${encode}, decode ${decode}`);
