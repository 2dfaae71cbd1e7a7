// meshbroker's OIDC extension: a standard JWT (RS256/ES256/EdDSA, ...) from an identity provider,
// verified against a JWKS file read once at construction (jose). The user, account and
// permissions come from claims the `oidc {}` block names.
import { readFileSync } from "node:fs";
import { createLocalJWKSet, decodeProtectedHeader, errors, jwtVerify, type JWTPayload, type LocalJWKSet } from "jose";
import type { OidcConfig, Permissions, SubjectPermission } from "../../common/config/options.js";
import { GLOBAL_ACCOUNT, refuse, withResponseDefaults, type AuthResult, type AuthenticatedUser } from "./types.js";

/** Asymmetric JWS algorithms only: a JWKS is public, so an HMAC key in it would be a shared secret. */
const OIDC_ALGORITHMS = [
  "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519",
];
const OIDC_ALGORITHM_SET = new Set(OIDC_ALGORITHMS);

/** Whether a string is a compact JWS whose header names an OIDC algorithm (not ed25519-nkey),
 *  so it is meant for this verifier rather than operator mode or a password check. */
export function isOidcToken(token: string | undefined): token is string {
  if (!token || token.split(".").length !== 3) return false;
  try {
    const alg = decodeProtectedHeader(token).alg;
    return typeof alg === "string" && OIDC_ALGORITHM_SET.has(alg);
  } catch {
    return false;
  }
}

export class OidcVerifier {
  private readonly jwks: LocalJWKSet;

  /** Throws when the JWKS file can not be read or is not a JWKS. */
  constructor(private readonly config: OidcConfig) {
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(config.jwksFile, "utf8"));
    } catch (err) {
      throw new Error(`oidc: can not read jwks_file ${config.jwksFile}: ${(err as Error).message}`, { cause: err });
    }
    try {
      this.jwks = createLocalJWKSet(json as Parameters<typeof createLocalJWKSet>[0]);
    } catch (err) {
      throw new Error(`oidc: jwks_file ${config.jwksFile} is not a JSON Web Key Set: ${(err as Error).message}`, { cause: err });
    }
  }

  async verify(token: string): Promise<AuthResult> {
    const c = this.config;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.jwks, {
        algorithms: OIDC_ALGORITHMS,
        clockTolerance: c.clockToleranceSec,
        ...(c.issuer !== undefined ? { issuer: c.issuer } : {}),
        ...(c.audience !== undefined ? { audience: c.audience } : {}),
      }));
    } catch (err) {
      return refuse(oidcReason(err));
    }
    const name = claimAt(payload, c.userClaim || "sub");
    if (typeof name !== "string" || name === "") return refuse(`token has no ${c.userClaim || "sub"} claim`);
    const accountClaim = c.accountClaim !== undefined ? claimAt(payload, c.accountClaim) : undefined;
    if (accountClaim !== undefined && (typeof accountClaim !== "string" || accountClaim === "")) {
      return refuse(`token claim ${c.accountClaim} is not an account name`);
    }
    let permissions = c.defaultPermissions;
    if (c.permissionsClaim !== undefined) {
      const raw = claimAt(payload, c.permissionsClaim);
      if (raw !== undefined) {
        const p = permissionsFromClaim(raw);
        if (!p) return refuse(`token claim ${c.permissionsClaim} is not a permissions object`);
        permissions = p;
      }
    }
    const user: AuthenticatedUser = { name, account: accountClaim ?? c.account ?? GLOBAL_ACCOUNT };
    const p = withResponseDefaults(permissions);
    if (p) user.permissions = p;
    if (typeof payload.exp === "number") user.expiresAt = payload.exp * 1000;
    return { ok: true, user };
  }
}

function oidcReason(err: unknown): string {
  if (err instanceof errors.JWTExpired) return "token expired";
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === "iss") return "token issuer not accepted";
    if (err.claim === "aud") return "token audience not accepted";
    if (err.claim === "nbf") return "token not yet valid";
    return `token claim ${err.claim} not valid`;
  }
  if (err instanceof errors.JWKSNoMatchingKey) return "no key in the JWKS for the token";
  if (err instanceof errors.JWKSMultipleMatchingKeys) return "several keys in the JWKS match the token";
  if (err instanceof errors.JWSSignatureVerificationFailed) return "token signature not verified";
  if (err instanceof errors.JOSEAlgNotAllowed) return "token algorithm not allowed";
  return "token not valid";
}

/** A claim by name; a dotted name ("nats.permissions") walks nested objects when no claim has
 *  the full name (Keycloak and others nest custom claims). */
function claimAt(payload: JWTPayload, name: string): unknown {
  if (name in payload) return payload[name];
  let v: unknown = payload;
  for (const part of name.split(".")) {
    if (typeof v !== "object" || v === null || Array.isArray(v)) return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

/** NATS-style permissions: `{publish, subscribe, allow_responses}` (or `pub` / `sub`), each side
 *  a subject, a list (= allow) or `{allow, deny}`; allow_responses `true` or `{max, expires}`
 *  (expires in seconds). Undefined when the claim does not have that shape. */
export function permissionsFromClaim(v: unknown): Permissions | undefined {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  const p: Permissions = {};
  for (const [k, val] of Object.entries(o)) {
    const key = k.toLowerCase();
    if (key === "publish" || key === "pub") {
      const s = subjectPermission(val);
      if (s === null) return undefined;
      if (s) p.publish = s;
    } else if (key === "subscribe" || key === "sub") {
      const s = subjectPermission(val);
      if (s === null) return undefined;
      if (s) p.subscribe = s;
    } else if (key === "allow_responses" || key === "allowresponses") {
      if (val === true) p.allowResponses = { maxMsgs: 0, expiresMs: 0 };
      else if (typeof val === "object" && val !== null && !Array.isArray(val)) {
        const r = val as Record<string, unknown>;
        p.allowResponses = {
          maxMsgs: typeof r.max === "number" ? r.max : 0,
          expiresMs: typeof r.expires === "number" ? r.expires * 1000 : 0,
        };
      } else if (val !== false) return undefined;
    }
  }
  return p;
}

/** undefined = no restriction, null = malformed. */
function subjectPermission(v: unknown): SubjectPermission | undefined | null {
  const list = (x: unknown): string[] | null => {
    if (typeof x === "string") return [x];
    if (Array.isArray(x) && x.every((s) => typeof s === "string")) return x as string[];
    return null;
  };
  if (typeof v === "string" || Array.isArray(v)) {
    const l = list(v);
    return l === null ? null : { allow: l };
  }
  if (typeof v !== "object" || v === null) return null;
  const o = v as Record<string, unknown>;
  const sp: SubjectPermission = {};
  if (o.allow !== undefined) {
    const l = list(o.allow);
    if (l === null) return null;
    sp.allow = l;
  }
  if (o.deny !== undefined) {
    const l = list(o.deny);
    if (l === null) return null;
    sp.deny = l;
  }
  return sp.allow || sp.deny ? sp : undefined;
}
