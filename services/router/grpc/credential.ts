// The cluster credential: what an edge (or peer router) sends in its Hello and what a router
// accepts. A router's port is a way around every client's authentication, so an attach without
// a valid credential is refused.
import { timingSafeEqual } from "node:crypto";
import type { ClusterAuthorization } from "../../common/config/options.js";
import type { Credential, Draft } from "../wire/frames.js";

/** What a member sends (token; NKEY proofs are not produced yet). */
export function credentialOf(auth: ClusterAuthorization | undefined): Draft<Credential> | undefined {
  return auth?.token !== undefined ? { token: auth.token } : undefined;
}

/** undefined when `cred` is accepted by a router configured with `auth`, else why not. */
export function checkCredential(auth: ClusterAuthorization | undefined, cred: Credential | undefined): string | undefined {
  if (auth === undefined || (auth.token === undefined && auth.nkeys === undefined)) return undefined; // open (see the startup warning)
  if (cred?.kind === "token" && auth.token !== undefined) {
    const want = Buffer.from(auth.token), got = Buffer.from(cred.token ?? "");
    return want.length === got.length && timingSafeEqual(want, got) ? undefined : "wrong cluster token";
  }
  if (cred?.kind === "nkey") return "NKEY cluster credentials are not supported yet";
  return "no cluster credential";
}
