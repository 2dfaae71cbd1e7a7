// A small seeded PRNG (mulberry32) and the byte/text mutators every fuzzer shares. Same seed,
// same inputs: nothing here reads the clock or Math.random.

export class Rng {
  private s: number;
  constructor(readonly seed: number) {
    this.s = seed >>> 0;
  }
  /** A float in [0, 1). */
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
  /** A child generator, so one part of an input can draw without shifting the rest. */
  fork(): Rng {
    return new Rng((this.int(0x100000000) ^ 0x9e3779b9) >>> 0);
  }
}

/** Numbers at the edges parsers get wrong: zero, sign and width boundaries, huge lengths. */
export const INTERESTING_NUMBERS = [
  0, 1, -1, 2, 127, 128, 255, 256, 1023, 1024, 4095, 4096, 4097, 65_535, 65_536, 1_048_576, 1_048_577,
  2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53, 1e21, -(2 ** 31),
];

/** Text fragments that upset tokenizers: delimiters, escapes, odd Unicode, partial UTF-8. */
export const TOKENS = [
  " ", "\t", "\r", "\n", "\r\n", "\0", "{", "}", "[", "]", ":", "=", ",", ";", "\"", "'", "\\", "$", "#",
  "//", "*", ">", ".", "..", "%", "%E0%A4%A", "\u0000", "\u00ff", "\u2028", "\ud800", "😀", "\xc3", "\xff\xfe",
  "-", "+", "0x", "1e999", "NaN", "null", "true", "include ", "$x", "${x}",
];

/** Small random edits of a byte buffer: flips, inserts, deletes, repeats, interesting numbers. */
export function mutateBytes(rng: Rng, input: Buffer, edits = rng.range(1, 4)): Buffer {
  let b = Buffer.from(input);
  for (let e = 0; e < edits; e++) {
    const at = b.length === 0 ? 0 : rng.int(b.length);
    switch (rng.int(8)) {
      case 0: // bit flip
        if (b.length > 0) b[at] ^= 1 << rng.int(8);
        break;
      case 1: // random byte
        if (b.length > 0) b[at] = rng.int(256);
        break;
      case 2: // insert random bytes
        b = Buffer.concat([b.subarray(0, at), rng.bytes(rng.range(1, 8)), b.subarray(at)]);
        break;
      case 3: // delete a run
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + rng.range(1, 16)))]);
        break;
      case 4: { // repeat a run
        const run = b.subarray(at, at + rng.range(1, 32));
        const times = rng.chance(0.1) ? rng.range(100, 2000) : rng.range(1, 8);
        b = Buffer.concat([b.subarray(0, at), ...Array<Buffer>(times).fill(run), b.subarray(at)]);
        break;
      }
      case 5: // insert a token
        b = Buffer.concat([b.subarray(0, at), Buffer.from(rng.pick(TOKENS), "latin1"), b.subarray(at)]);
        break;
      case 6: // replace a digit run with an interesting number
        b = Buffer.from(b.toString("latin1").replace(/\d+/, String(rng.pick(INTERESTING_NUMBERS))), "latin1");
        break;
      default: // truncate
        b = b.subarray(0, at);
    }
  }
  return b;
}

/** A buffer cut into 1–4 pieces at random offsets (each piece is one socket write). */
export function splitWrites(rng: Rng, data: Buffer): Buffer[] {
  const pieces = Math.min(rng.range(1, 4), Math.max(1, data.length));
  const cuts = new Set<number>();
  while (cuts.size < pieces - 1) cuts.add(rng.range(1, data.length - 1));
  const sorted = [0, ...[...cuts].sort((a, b) => a - b), data.length];
  const out: Buffer[] = [];
  for (let i = 0; i + 1 < sorted.length; i++) out.push(data.subarray(sorted[i], sorted[i + 1]));
  return out;
}

/** A random JSON value of any type, nested up to `depth`, strings sometimes huge. */
export function jsonValue(rng: Rng, depth = 3): unknown {
  switch (rng.int(depth > 0 ? 9 : 7)) {
    case 0: return null;
    case 1: return rng.chance(0.5);
    case 2: return rng.pick(INTERESTING_NUMBERS) * (rng.chance(0.2) ? 0.5 : 1);
    case 3: return "";
    case 4: return rng.pick(TOKENS).repeat(rng.chance(0.05) ? rng.range(10_000, 200_000) : rng.range(1, 4));
    case 5: return rng.bytes(rng.range(1, 24)).toString("latin1");
    case 6: return rng.bytes(rng.range(4, 40)).toString("base64url");
    case 7: return Array.from({ length: rng.range(0, 4) }, () => jsonValue(rng, depth - 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = rng.range(0, 3); i > 0; i--) o[rng.pick(["a", "user", "pass", "jwt", "sig", "nats", "__proto__", "constructor"])] = jsonValue(rng, depth - 1);
      return o;
    }
  }
}

/** JSON text nested `depth` deep (arrays or objects), for parsers that recurse. */
export function deepJson(depth: number, object: boolean): string {
  return object ? '{"a":'.repeat(depth) + "1" + "}".repeat(depth) : "[".repeat(depth) + "]".repeat(depth);
}
