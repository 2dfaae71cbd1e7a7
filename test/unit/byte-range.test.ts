// copyBytes copies by a loop, set() or a view, by size; for views it keeps the last source's
// ArrayBuffer and offset: ranges of sources that share one ArrayBuffer at different offsets
// (Buffer's pool), taken in turns, must still be their own bytes. Whole and partial, small and large.
import { describe, expect, it } from "vitest";
import { copyBytes } from "../../services/common/byte-range.js";
import { prng } from "../helpers/prng.js";

describe("copyBytes", () => {
  it("copies the range of each source, sources alternating, as Buffer.copy does", () => {
    const r = prng(7);
    const sources = Array.from({ length: 4 }, (_, i) => Buffer.from(Array.from({ length: 300 + i }, () => Math.floor(r() * 256))));
    sources.push(Buffer.from(sources[0].buffer, sources[0].byteOffset + 1, 200)); // same memory, another offset
    sources.push(Buffer.from([1, 2, 3]), Buffer.alloc(16, 9), Buffer.alloc(17, 8));
    const got = Buffer.alloc(1000), want = Buffer.alloc(1000);
    for (let n = 0; n < 2_000; n++) {
      const src = sources[Math.floor(r() * sources.length)];
      const whole = r() < 0.3;
      const start = whole ? 0 : Math.floor(r() * src.length), end = whole ? src.length : start + Math.floor(r() * (src.length - start + 1));
      const at = Math.floor(r() * (1000 - (end - start)));
      copyBytes(got, at, src, start, end);
      src.copy(want, at, start, end);
      expect(got.equals(want), `copy ${n}`).toBe(true);
    }
  });
});
