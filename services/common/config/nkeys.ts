// Public NKEYs and NATS JWTs, as far as the config loader checks them (nats-io/nkeys and
// nats-io/jwt v2 semantics): a public key is base32 of [prefix byte, 32-byte ed25519 key,
// CRC-16 little endian]; a JWT is header.claims.signature, signed by its issuer's key.

import { createPublicKey, verify } from "node:crypto";

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/** First letter of a public key by role. */
export type NkeyRole = "O" | "A" | "U";

/** The raw 32-byte ed25519 key of a public NKEY of the given role, or undefined if invalid. */
export function decodePublicNkey(key: string, role: NkeyRole): Buffer | undefined {
  if (key.length !== 56 || key[0] !== role) return undefined;
  const bytes: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const ch of key) {
    const v = BASE32.indexOf(ch);
    if (v < 0) return undefined;
    acc = ((acc << 5) | v) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      bytes.push((acc >> bits) & 0xff);
    }
  }
  if (bytes.length !== 35 || bytes[0] !== BASE32.indexOf(role) << 3) return undefined;
  if (crc16(bytes.slice(0, 33)) !== (bytes[33] | (bytes[34] << 8))) return undefined;
  return Buffer.from(bytes.slice(1, 33));
}

export function isValidPublicNkey(key: string, role: NkeyRole): boolean {
  return decodePublicNkey(key, role) !== undefined;
}

/** The public NKEY of a raw ed25519 key (tests and tools make keys with it). */
export function encodePublicNkey(raw: Uint8Array, role: NkeyRole): string {
  const bytes = [BASE32.indexOf(role) << 3, ...raw];
  const crc = crc16(bytes);
  bytes.push(crc & 0xff, crc >> 8);
  let out = "";
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = ((acc << 8) | b) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += BASE32[(acc >> bits) & 31];
    }
  }
  return out; // 35 bytes = 280 bits: no padding
}

/** CRC-16/XMODEM, as the nkeys libraries use. */
function crc16(bytes: number[]): number {
  let crc = 0;
  for (const b of bytes) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/** JWT claims: the registered ones plus the `nats` section (v2). */
export interface NatsClaims {
  iss?: string;
  sub?: string;
  name?: string;
  nats?: Record<string, unknown> & { type?: string; version?: number };
  [k: string]: unknown;
}

/** Decodes a NATS JWT of the given type and checks its signature against its issuer
 *  (operator and account JWTs are both issued by operator keys). Throws an Error with
 *  nats-io/jwt's wording. */
export function decodeNatsJwt(token: string, type: "operator" | "account"): NatsClaims {
  const chunks = token.split(".");
  if (chunks.length !== 3) throw new Error("expected 3 chunks");
  const header = parseJson(chunks[0]) as { typ?: unknown; alg?: unknown };
  if (String(header.typ).toUpperCase() !== "JWT") throw new Error(`not supported type "${String(header.typ ?? "")}"`);
  const alg = String(header.alg).toLowerCase();
  if (alg !== "ed25519" && alg !== "ed25519-nkey") throw new Error(`unexpected "${String(header.alg ?? "")}" algorithm`);
  const claims = parseJson(chunks[1]) as NatsClaims;
  // v1 JWTs carry `type` at the top and sign the claims chunk only; v2 sign header.claims.
  const v1 = typeof claims.type === "string";
  const kind = v1 ? claims.type : claims.nats?.type;
  if (kind !== type) throw new Error(`not ${type} claim`);
  const issuer = decodePublicNkey(String(claims.iss ?? ""), "O");
  const signed = v1 ? chunks[1] : `${chunks[0]}.${chunks[1]}`;
  const sig = Buffer.from(chunks[2], "base64url");
  if (!issuer || !verifyEd25519(issuer, Buffer.from(signed), sig)) {
    throw new Error(`claim failed V${v1 ? 1 : 2} signature verification`);
  }
  return claims;
}

function parseJson(chunk: string): unknown {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(chunk, "base64url").toString("utf8"));
  } catch {
    throw new Error("invalid JWT segment");
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("invalid JWT segment");
  return v;
}

function verifyEd25519(raw: Buffer, data: Buffer, sig: Buffer): boolean {
  const key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: raw.toString("base64url") }, format: "jwk" });
  return verify(null, data, key, sig);
}

/** The claims of a JWT without checking anything (for tokens decodeNatsJwt already accepted). */
export function natsClaimsOf(token: string): NatsClaims {
  try {
    return parseJson(token.split(".")[1] ?? "") as NatsClaims;
  } catch {
    return {};
  }
}
