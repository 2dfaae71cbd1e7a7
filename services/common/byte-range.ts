// Copying a range of one buffer into another. TypedArray.prototype.set copies a whole array, so a
// range needs a view of it, made from the source's ArrayBuffer and offset; their getters are calls
// into V8's runtime (~17 and ~13 ns each, not inlined by the optimiser). Ranges come in runs from
// one source (the messages of one received frame, of one read), so the last source's are kept:
// one buffer per process stays referenced until a range of another is copied.

let source: Uint8Array = new Uint8Array(0);
let sourceBuffer: ArrayBufferLike = source.buffer;
let sourceOffset = 0;

/** Copies `src[start, end)` into `dst` at `at` (`dst` has the room). */
export function copyRange(dst: Uint8Array, at: number, src: Uint8Array, start: number, end: number): void {
  if (src !== source) {
    source = src;
    sourceBuffer = src.buffer;
    sourceOffset = src.byteOffset;
  }
  dst.set(new Uint8Array(sourceBuffer, sourceOffset + start, end - start), at);
}
