// The INFO nonce and the check of a client's signature of it (nats-server nkey.go), for NKEY
// users and JWT users. Keys and signatures are decoded and verified by common/nkeys.ts.
import { randomBytes } from "node:crypto";
import { decodeSignature, verifyNkeySignature } from "../../common/nkeys.js";

/** nats-server nkey.go: 11 random bytes, base64 RawURLEncoding (15 characters). */
const NONCE_RAW_LEN = 11;

export function newNonce(): string {
  return randomBytes(NONCE_RAW_LEN).toString("base64url");
}

export type NonceCheck = { ok: true } | { ok: false; reason: string };

/** The nonce challenge as nats-server checks it for nkey users and JWT users: `sig` is the
 *  client's signature of the nonce as sent (its text bytes). */
export function checkNonceSignature(nkey: string, nonce: string | undefined, sig: string | undefined): NonceCheck {
  if (sig === undefined || sig === "") return { ok: false, reason: "signature missing" };
  if (nonce === undefined || nonce === "") return { ok: false, reason: "no nonce was sent to sign" };
  const raw = decodeSignature(sig);
  if (!raw) return { ok: false, reason: "signature not valid base64" };
  return verifyNkeySignature(nkey, nonce, raw) ? { ok: true } : { ok: false, reason: "signature not verified" };
}
