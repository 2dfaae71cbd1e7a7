// NKEYs: public key decoding (base32, role prefix byte, CRC16), the INFO nonce, and Ed25519
// signature checks of that nonce. Verification uses node:crypto's native Ed25519: the pure-JS
// tweetnacl behind @nats-io/nkeys takes ~10 ms per verify, which a flood of CONNECTs would turn
// into a blocked event loop.
import { createPublicKey, randomBytes, verify, type KeyObject } from "node:crypto";

/** First byte of a decoded public NKEY for each role (nkeys PrefixByte*). */
const ROLE_PREFIX = { operator: 14 << 3, account: 0, user: 20 << 3 } as const;
export type NkeyRole = keyof typeof ROLE_PREFIX;
const KNOWN_PREFIXES = new Set<number>(Object.values(ROLE_PREFIX));

/** nats-server nkey.go: 11 random bytes, base64 RawURLEncoding (15 characters). */
const NONCE_RAW_LEN = 11;

export function newNonce(): string {
  return randomBytes(NONCE_RAW_LEN).toString("base64url");
}

const B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const B32_INDEX = new Int8Array(128).fill(-1);
for (let i = 0; i < B32.length; i++) B32_INDEX[B32.charCodeAt(i)] = i;

/** RFC 4648 base32 without padding; undefined on a character outside the alphabet. */
function base32Decode(s: string): Buffer | undefined {
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
function crc16(data: Uint8Array): number {
  let crc = 0;
  for (const b of data) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/** The 32 raw Ed25519 bytes of a public NKEY of one of `roles`, or undefined if it is not one. */
export function decodePublicNkey(key: string, ...roles: NkeyRole[]): Buffer | undefined {
  if (key.length !== 56) return undefined; // 1 prefix + 32 key + 2 crc bytes, base32
  const raw = base32Decode(key);
  if (!raw || raw.length !== 35) return undefined;
  const body = raw.subarray(0, 33);
  if (crc16(body) !== raw.readUInt16LE(33)) return undefined;
  const ok = roles.length > 0 ? roles.some((r) => ROLE_PREFIX[r] === raw[0]) : KNOWN_PREFIXES.has(raw[0]);
  if (!ok) return undefined;
  return raw.subarray(1, 33);
}

export function isPublicNkey(key: unknown, ...roles: NkeyRole[]): key is string {
  return typeof key === "string" && decodePublicNkey(key, ...roles) !== undefined;
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
  return buf.length === 64 ? buf : undefined;
}

/** Whether `sig` is `nkey`'s Ed25519 signature of `data` (the nonce as sent, i.e. its text bytes). */
export function verifyNkeySignature(nkey: string, data: string | Uint8Array, sig: Uint8Array): boolean {
  const key = publicKeyObject(nkey);
  if (!key || sig.length !== 64) return false;
  try {
    return verify(null, typeof data === "string" ? Buffer.from(data) : data, key, sig);
  } catch {
    return false;
  }
}

export type NonceCheck = { ok: true } | { ok: false; reason: string };

/** The nonce challenge as nats-server checks it for nkey users and JWT users. */
export function checkNonceSignature(nkey: string, nonce: string | undefined, sig: string | undefined): NonceCheck {
  if (sig === undefined || sig === "") return { ok: false, reason: "signature missing" };
  if (nonce === undefined || nonce === "") return { ok: false, reason: "no nonce was sent to sign" };
  const raw = decodeSignature(sig);
  if (!raw) return { ok: false, reason: "signature not valid base64" };
  return verifyNkeySignature(nkey, nonce, raw) ? { ok: true } : { ok: false, reason: "signature not verified" };
}
