// The cluster credential: what an edge (or peer router) sends in its Hello and what a router
// accepts. A router's port is a way around every client's authentication, so an attach without
// a valid credential is refused. Two kinds: the shared token, or an NKEY proof (the sender signs
// "<its id> <sent_at_us>" with the user seed of `seed_file`; the router lists accepted keys).
import { readFileSync } from "node:fs";
import { timingSafeEqual } from "node:crypto";
import type { ClusterAuthorization } from "../../common/config/options.js";
import { nkeySigner, verifyNkeySignature } from "../../common/nkeys.js";
import type { Credential, Draft } from "../wire/frames.js";

/** How far a signed Hello's time may be from the router's clock. */
const MAX_SKEW_US = 5 * 60 * 1_000_000;

/** What a member puts in its Hello, given its id and the Hello's time. */
export type CredentialSource = (senderId: string, sentAtUs: number) => Draft<Credential>;

/** The credential a member sends: NKEY when it has a seed_file (bare seed or a creds file), else
 *  the token. Reads the seed file now: a missing or bad one throws, naming the file. */
export function credentialSource(auth: ClusterAuthorization | undefined): CredentialSource | undefined {
  if (auth?.seedFile !== undefined) {
    const text = readFileSync(auth.seedFile, "utf8");
    const seed = text.match(/\bSU[A-Z2-7]{56}\b/)?.[0];
    const signer = seed === undefined ? undefined : nkeySigner(seed);
    if (!signer) throw new Error(`${auth.seedFile}: no valid user NKEY seed (SU...)`);
    return (senderId, sentAtUs) => {
      const signed = `${senderId} ${sentAtUs}`;
      return { nkey: { publicKey: signer.publicKey, signature: signer.sign(signed), signed: Buffer.from(signed) } };
    };
  }
  if (auth?.token !== undefined) {
    const credential = { token: auth.token };
    return () => credential;
  }
  return undefined;
}

/** undefined when a Hello from `senderId`, sent at `sentAtUs` with `cred`, is accepted by a
 *  router configured with `auth`; else why not. */
export function checkCredential(auth: ClusterAuthorization | undefined, cred: Credential | undefined,
                                senderId: string, sentAtUs: number, nowUs = Date.now() * 1000): string | undefined {
  if (auth === undefined || (auth.token === undefined && auth.nkeys === undefined)) return undefined; // open (see the startup warning)
  if (cred?.kind === "token") {
    if (auth.token === undefined) return "a token, but this router accepts NKEYs only";
    const want = Buffer.from(auth.token), got = Buffer.from(cred.token ?? "");
    return want.length === got.length && timingSafeEqual(want, got) ? undefined : "wrong cluster token";
  }
  if (cred?.kind === "nkey") {
    const proof = cred.nkey!;
    if (!auth.nkeys?.includes(proof.publicKey)) return `NKEY ${proof.publicKey} is not in this router's nkeys`;
    const signed = `${senderId} ${sentAtUs}`;
    if (proof.signed.toString() !== signed) return "the NKEY proof signs another Hello";
    if (Math.abs(nowUs - sentAtUs) > MAX_SKEW_US) return "the NKEY proof is too old or from the future (clock skew over 5 minutes)";
    return verifyNkeySignature(proof.publicKey, proof.signed, proof.signature) ? undefined : "bad NKEY signature";
  }
  return "no cluster credential";
}
