// Shared shapes of the auth pipeline (re-exported by index.ts, the public surface).
import type { Permissions } from "../../common/config/options.js";

export type ConnectionType = "STANDARD" | "WEBSOCKET" | "MQTT" | "MQTT_WS";

/** What the client sent in CONNECT (MQTT: username/password map to user/pass). */
export interface Credentials {
  user?: string;
  pass?: string;
  /** CONNECT `auth_token`. */
  token?: string;
  nkey?: string;
  /** base64url Ed25519 signature of the INFO nonce. */
  sig?: string;
  jwt?: string;
}

/** The verified client certificate of a TLS connection. */
export interface TlsPeer {
  /** Subject DN in RFC 2253 form, most significant RDN last: "CN=alice,OU=eng,O=Acme". */
  subject: string;
  emails: string[];
  dnsNames: string[];
  /** SAN URIs; nats-server tries them after e-mails and DNS names. */
  uris?: string[];
}

export interface AuthContext {
  connectionType: ConnectionType;
  /** A transport's override of the main no_auth_user (websocket / mqtt blocks). */
  noAuthUser?: string;
  /** The nonce this connection's INFO carried. */
  nonce?: string;
  /** The verified client certificate, when the listener verified one. */
  tls?: TlsPeer;
  /** Whether this listener maps certificates to users (verify_and_map). Default: the main `tls`
   *  block's verify_and_map for STANDARD connections, false for the others (nats-server takes
   *  websocket's and mqtt's from their own tls blocks). */
  tlsMap?: boolean;
  /** websocket jwt_cookie: used when Credentials.jwt is empty. */
  cookieJwt?: string;
  /** websocket / mqtt `authorization {}` block: replaces the main single user / token. */
  override?: { user?: string; password?: string; token?: string };
  /** The client's IP address, for JWT users restricted by `src` CIDRs. */
  remoteAddress?: string;
}

export interface AuthenticatedUser {
  /** The user name ("" for token auth or when no authentication is required); an NKEY user's or a
   *  JWT user's public key; an OIDC token's user claim. */
  name: string;
  account: string;
  permissions?: Permissions;
  /** Epoch ms after which the connection must be closed (JWT exp, account exp, time window end). */
  expiresAt?: number;
  /** Limits from a user JWT (`subs`, `payload`, when > 0) and its account JWT (`conn`, when ≥ 0). */
  limits?: { maxSubscriptions?: number; maxPayload?: number; accountMaxConnections?: number };
}

export type AuthResult = { ok: true; user: AuthenticatedUser } | { ok: false; reason: string };

export { GLOBAL_ACCOUNT } from "../../common/config/options.js";

export function refuse(reason: string): AuthResult {
  return { ok: false, reason };
}

/** nats-server validateResponsePermissions: allow_responses turns off the implicit "publish to
 *  anything", and zero values take the defaults (1 message, 2 minutes). */
export function withResponseDefaults(p: Permissions | undefined): Permissions | undefined {
  if (!p?.allowResponses) return p;
  const r = p.allowResponses;
  return {
    ...p,
    publish: { ...p.publish, allow: p.publish?.allow ?? [] },
    allowResponses: { maxMsgs: r.maxMsgs || 1, expiresMs: r.expiresMs || 2 * 60_000 },
  };
}
