// Copying bytes of one buffer into another, the cheapest way for their size: a loop for a few
// bytes, TypedArray set for a whole buffer, set through a view for a range. The view is made
// from the source's ArrayBuffer and offset, whose getters are calls into V8's runtime (~17 and
// ~13 ns each, not inlined by the optimiser); ranges come in runs from one source (the messages
// of one received frame, of one read), so the last source's are kept: one buffer per process
// stays referenced until a range of another is copied.

let source: Uint8Array = new Uint8Array(0);
let sourceBuffer: ArrayBufferLike = source.buffer;
let sourceOffset = 0;

/** Copies `src[start, end)` into `dst` at `at` (`dst` has the room). */
export function copyBytes(dst: Uint8Array, at: number, src: Uint8Array, start: number, end: number): void {
  const whole = start === 0 && end === src.length;
  // Measured: a loop beats set() below ~20 bytes, and a view of a range below ~48.
  if (end - start <= (whole ? 16 : 40)) {
    for (let i = start; i < end; i++) dst[at++] = src[i];
    return;
  }
  if (whole) return dst.set(src, at);
  if (src !== source) {
    source = src;
    sourceBuffer = src.buffer;
    sourceOffset = src.byteOffset;
  }
  dst.set(new Uint8Array(sourceBuffer, sourceOffset + start, end - start), at);
}
