// NKEYs (nats-io/nkeys): a public key is base32 (RFC 4648, no padding) of [role prefix byte,
// 32-byte Ed25519 key, CRC-16 little endian], 56 characters. Signatures are checked with
// node:crypto's native Ed25519: the pure-JS tweetnacl behind @nats-io/nkeys takes ~10 ms per
// verify, which a flood of CONNECTs would turn into a blocked event loop.
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from "node:crypto";

/** First byte of a decoded public NKEY for each role (nkeys PrefixByte*: the role's letter << 3). */
const ROLE_PREFIX = { operator: 14 << 3, account: 0, user: 20 << 3 } as const;
export type NkeyRole = keyof typeof ROLE_PREFIX;
const KNOWN_PREFIXES = new Set<number>(Object.values(ROLE_PREFIX));

/** 1 prefix + 32 key + 2 CRC bytes. */
const DECODED_LEN = 35;
const ENCODED_LEN = 56;
const ED25519_KEY_LEN = 32;
const ED25519_SIG_LEN = 64;

const B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const B32_INDEX = new Int8Array(128).fill(-1);
for (let i = 0; i < B32.length; i++) B32_INDEX[B32.charCodeAt(i)] = i;

/** RFC 4648 base32 without padding. */
export function base32Encode(data: Uint8Array): string {
  let out = "";
  let bits = 0, value = 0;
  for (const b of data) {
    value = ((value << 8) | b) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += B32[(value >>> bits) & 31];
    }
  }
  if (bits > 0) out += B32[(value << (5 - bits)) & 31];
  return out;
}

/** RFC 4648 base32 without padding; undefined on a character outside the alphabet. */
export function base32Decode(s: string): Buffer | undefined {
  const out = Buffer.allocUnsafe(Math.floor((s.length * 5) / 8));
  let bits = 0, value = 0, n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const v = c < 128 ? B32_INDEX[c] : -1;
    if (v < 0) return undefined;
    value = ((value << 5) | v) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (value >>> bits) & 0xff;
    }
  }
  return out.subarray(0, n);
}

/** CRC-16/XMODEM (poly 0x1021, init 0), the checksum NKEYs carry little-endian. */
export function crc16(data: Uint8Array): number {
  let crc = 0;
  for (const b of data) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/** The 32 raw Ed25519 bytes of a public NKEY of one of `roles` (any role when none is named), or
 *  undefined if it is not one. */
export function decodePublicNkey(key: string, ...roles: NkeyRole[]): Buffer | undefined {
  if (key.length !== ENCODED_LEN) return undefined;
  const raw = base32Decode(key);
  if (!raw || raw.length !== DECODED_LEN) return undefined;
  if (crc16(raw.subarray(0, 33)) !== raw.readUInt16LE(33)) return undefined;
  const ok = roles.length > 0 ? roles.some((r) => ROLE_PREFIX[r] === raw[0]) : KNOWN_PREFIXES.has(raw[0]);
  if (!ok) return undefined;
  return raw.subarray(1, 33);
}

export function isPublicNkey(key: unknown, ...roles: NkeyRole[]): key is string {
  return typeof key === "string" && decodePublicNkey(key, ...roles) !== undefined;
}

/** The public NKEY of a raw Ed25519 key (tests and tools make keys with it). */
export function encodePublicNkey(raw: Uint8Array, role: NkeyRole): string {
  if (raw.length !== ED25519_KEY_LEN) throw new RangeError(`an Ed25519 public key has ${ED25519_KEY_LEN} bytes, not ${raw.length}`);
  const bytes = Buffer.alloc(DECODED_LEN);
  bytes[0] = ROLE_PREFIX[role];
  bytes.set(raw, 1);
  bytes.writeUInt16LE(crc16(bytes.subarray(0, 33)), 33);
  return base32Encode(bytes); // 35 bytes = 280 bits = 56 characters, no padding
}

// Imported keys, bounded: users reconnect with the same keys, strangers can not grow it unbounded.
const KEY_CACHE_MAX = 4096;
const keyCache = new Map<string, KeyObject>();

function publicKeyObject(nkey: string): KeyObject | undefined {
  let k = keyCache.get(nkey);
  if (k) return k;
  const raw = decodePublicNkey(nkey);
  if (!raw) return undefined;
  k = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: raw.toString("base64url") }, format: "jwk" });
  if (keyCache.size >= KEY_CACHE_MAX) keyCache.clear();
  keyCache.set(nkey, k);
  return k;
}

/** A CONNECT `sig`: base64url raw (what nats.js and nats.go send) or padded, or standard base64
 *  (nats-server falls back to StdEncoding). Undefined when it is not base64 of 64 bytes. */
export function decodeSignature(sig: string): Buffer | undefined {
  if (!/^[A-Za-z0-9_\-+/]+={0,2}$/.test(sig)) return undefined;
  const buf = Buffer.from(sig, "base64");
  return buf.length === ED25519_SIG_LEN ? buf : undefined;
}

/** Whether `sig` is `nkey`'s Ed25519 signature of `data` (a string is signed as its UTF-8 bytes). */
export function verifyNkeySignature(nkey: string, data: string | Uint8Array, sig: Uint8Array): boolean {
  const key = publicKeyObject(nkey);
  if (!key || sig.length !== ED25519_SIG_LEN) return false;
  try {
    return verify(null, typeof data === "string" ? Buffer.from(data) : data, key, sig);
  } catch {
    return false;
  }
}

/** A seed (S + role, 58 characters) decodes to [seed prefix, role prefix, 32-byte seed, CRC]. */
const SEED_PREFIX = 18 << 3;
const SEED_DECODED_LEN = 36;
/** PKCS#8 DER header of an Ed25519 private key, before its 32 raw seed bytes. */
const ED25519_PKCS8_HEADER = Buffer.from("302e020100300506032b657004220420", "hex");

/** A signer from an NKEY seed (SU... for a user), or undefined when `seed` is not one. */
export function nkeySigner(seed: string, role: NkeyRole = "user"): { publicKey: string; sign(data: string): Buffer } | undefined {
  const raw = base32Decode(seed);
  if (!raw || raw.length !== SEED_DECODED_LEN) return undefined;
  if (crc16(raw.subarray(0, 34)) !== raw.readUInt16LE(34)) return undefined;
  // The seed prefix and the role share the first two bytes, 5 bits and 5 bits.
  if ((raw[0] & 0xf8) !== SEED_PREFIX || (((raw[0] & 7) << 5) | ((raw[1] & 0xf8) >> 3)) !== ROLE_PREFIX[role]) return undefined;
  const key = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_HEADER, raw.subarray(2, 34)]), format: "der", type: "pkcs8" });
  const x = createPublicKey(key).export({ format: "jwk" }).x!;
  return {
    publicKey: encodePublicNkey(Buffer.from(x, "base64url"), role),
    sign: (data) => sign(null, Buffer.from(data), key),
  };
}
