// The one auth pipeline every transport goes through: credentials and connection context in, the
// user (account, permissions, expiry) or a refusal out. The order of checks is nats-server 2.9's
// (auth.go processClientOrLeafAuthentication): operator-mode JWTs; then NKEY users; then users
// (mapped from the TLS certificate with verify_and_map, else no_auth_user or user/password); then
// the token; then the single user. meshbroker's OIDC tokens are recognised by their JOSE header
// before any of these, so they coexist with every mode.
// Answers are synchronous except for bcrypt hashes (checked in worker threads, bcrypt-pool.ts) and
// OIDC (jose verifies asynchronously).
import type { AccountConfig, Options } from "../../common/config/options.js";
import { OperatorMode } from "./jwt.js";
import { checkNonceSignature, newNonce } from "./nonce.js";
import { isOidcToken, OidcVerifier } from "./oidc.js";
import { mapCertificateUser } from "./tls-map.js";
import {
  GLOBAL_ACCOUNT, refuse, withResponseDefaults,
  type AuthContext, type AuthResult, type AuthenticatedUser, type Credentials,
} from "./types.js";
import { checkSecret, connectionTypeAllowed, UserDirectory, type ConfiguredUser } from "./users.js";

export {
  GLOBAL_ACCOUNT,
  type AuthContext, type AuthResult, type AuthenticatedUser, type ConnectionType, type Credentials, type TlsPeer,
} from "./types.js";
export { tlsPeerFromCertificate } from "./tls-map.js";
export { isBcrypt } from "./users.js";

/** A websocket / mqtt block's auth settings in force for one connection (nats-server authOverride:
 *  set when that block has a user, a token or a no_auth_user). */
interface Override { noAuthUser?: string; user?: string; password?: string; token?: string }

export class AuthPipeline {
  private readonly directory: UserDirectory;
  private readonly operator?: OperatorMode;
  private readonly oidc?: OidcVerifier;

  /** Throws an Error for an invalid operator / account JWT setup or an unreadable JWKS file. */
  constructor(private readonly options: Options) {
    this.directory = new UserDirectory(options);
    if (options.operatorJwts.length > 0) this.operator = new OperatorMode(options);
    if (options.oidc) this.oidc = new OidcVerifier(options.oidc);
  }

  /** Whether clients of the main listener must authenticate (INFO auth_required). */
  get required(): boolean {
    if (this.operator || this.oidc) return true;
    if (this.directory.users.size > 0 || this.directory.nkeys.size > 0) return true;
    const a = this.options.authorization;
    return !!a && (!!a.user || !!a.token);
  }

  /** auth_required for a transport whose block may override the main settings. */
  requiredFor(ctx: Pick<AuthContext, "override" | "noAuthUser">): boolean {
    return this.required || overrideOf(ctx) !== undefined;
  }

  /** Whether INFO carries a nonce to sign: NKEY users or operator mode (nats-server nonceRequired). */
  get needsNonce(): boolean {
    return this.directory.nkeys.size > 0 || this.operator !== undefined;
  }

  /** 11 random bytes, base64url without padding (15 characters), as nats-server's generateNonce. */
  newNonce(): string {
    return newNonce();
  }

  get systemAccount(): string | undefined {
    return this.operator ? this.operator.systemAccount : this.options.systemAccount;
  }

  /** Accounts from the config, and in operator mode the resolver's (trusted) account JWTs. */
  accounts(): AccountConfig[] {
    return [...this.options.accounts, ...(this.operator?.accounts() ?? [])];
  }

  /**
   * Never throws and never rejects, whatever the input: each transport validates its credentials
   * where they enter (NATS CONNECT field types, MQTT strings, the WebSocket cookie), and this
   * entry checks once more, so a field of the wrong type or a bug below is a refusal for that
   * client, not an exception in the connection's handler.
   */
  authenticate(creds: Credentials, ctx: AuthContext): AuthResult | Promise<AuthResult> {
    for (const k of CREDENTIAL_FIELDS) {
      const v = creds[k];
      if (v !== undefined && v !== null && typeof v !== "string") return refuse(`malformed credentials (${k})`);
    }
    if (ctx.cookieJwt !== undefined && typeof ctx.cookieJwt !== "string") return refuse("malformed cookie JWT");
    try {
      const result = this.decide(creds, ctx);
      if (!(result instanceof Promise)) return result;
      return result.catch((err: Error) => refuse(`internal error: ${err.message}`));
    } catch (err) {
      return refuse(`internal error: ${(err as Error).message}`);
    }
  }

  private decide(creds: Credentials, ctx: AuthContext): AuthResult | Promise<AuthResult> {
    const override = overrideOf(ctx);
    if (!this.required && !override) return { ok: true, user: { name: "", account: GLOBAL_ACCOUNT } };

    const jwt = creds.jwt || ctx.cookieJwt || undefined;
    if (this.oidc) {
      // The token may come as the CONNECT jwt (or websocket cookie), auth_token, or password
      // (MQTT clients can only send a username and a password).
      const token = [jwt, creds.token, creds.pass].find(isOidcToken);
      if (token !== undefined) return this.oidc.verify(token);
    }
    if (this.operator) {
      if (!jwt) return refuse("user JWT required");
      return this.operator.authenticate(jwt, creds, ctx);
    }
    return this.configured(creds, ctx, override);
  }

  /** Users, NKEYs, token and single user from the config. */
  private configured(creds: Credentials, ctx: AuthContext, override: Override | undefined): AuthResult | Promise<AuthResult> {
    const d = this.directory;
    const type = ctx.connectionType;
    const typeRefused = () => refuse(`connection type ${type} not allowed`);

    if (d.nkeys.size > 0 && creds.nkey) {
      const u = d.nkeys.get(creds.nkey);
      if (!u) return refuse("unknown nkey");
      if (!connectionTypeAllowed(u.connectionTypes, type)) return typeRefused();
      const s = checkNonceSignature(creds.nkey, ctx.nonce, creds.sig);
      if (!s.ok) return s;
      return accepted({ name: u.nkey, account: u.account, permissions: u.permissions });
    }

    if (d.users.size > 0) {
      const tlsMap = ctx.tlsMap ?? (type === "STANDARD" && !!this.options.tls?.verifyAndMap);
      if (tlsMap) {
        // No fallback to no_auth_user or user/password: the certificate names the user.
        const m = mapCertificateUser(ctx.tls, d.users, (u) => connectionTypeAllowed(u.connectionTypes, type));
        if (!m.user) {
          if (m.typeRefused) return typeRefused();
          return refuse(ctx.tls ? "no user for the TLS certificate" : "no TLS client certificate");
        }
        // nats-server still compares the mapped user's password ("" when it has none) with the client's.
        return this.checkUserPassword(m.user, creds.pass);
      }
      const noCredentials = !creds.user && !creds.pass && !creds.token && !creds.nkey && !creds.jwt;
      const noAuthUser = override ? override.noAuthUser : this.options.noAuthUser;
      if (noCredentials && noAuthUser) {
        const u = d.users.get(noAuthUser);
        if (u) {
          if (!connectionTypeAllowed(u.connectionTypes, type)) return typeRefused();
          return accepted(userOf(u));
        }
      }
      if (creds.user) {
        const u = d.users.get(creds.user);
        if (!u) return refuse("unknown user");
        if (!connectionTypeAllowed(u.connectionTypes, type)) return typeRefused();
        return this.checkUserPassword(u, creds.pass);
      }
    }

    const a = this.options.authorization;
    const single: Override = override ?? { user: a?.user, password: a?.password, token: a?.token };
    // The main block's default permissions apply to its single user / token (a transport's do not).
    const permissions = override ? undefined : withResponseDefaults(a?.defaultPermissions);
    if (single.token) {
      return settle(checkSecret(single.token, creds.token), { name: "", account: GLOBAL_ACCOUNT, permissions }, "bad token");
    }
    if (single.user) {
      if (creds.user !== single.user) return refuse("bad user or password");
      return settle(checkSecret(single.password ?? "", creds.pass),
        { name: single.user, account: GLOBAL_ACCOUNT, permissions }, "bad user or password");
    }
    return refuse(creds.user || creds.pass || creds.token || creds.nkey || creds.jwt ? "bad credentials" : "no credentials");
  }

  private checkUserPassword(u: ConfiguredUser, pass: string | undefined): AuthResult | Promise<AuthResult> {
    return settle(checkSecret(u.password, pass), userOf(u), "bad user or password");
  }
}

const CREDENTIAL_FIELDS = ["user", "pass", "token", "nkey", "sig", "jwt"] as const;

function overrideOf(ctx: Pick<AuthContext, "override" | "noAuthUser">): Override | undefined {
  const o = ctx.override;
  if (!o?.user && !o?.token && !ctx.noAuthUser) return undefined;
  return { noAuthUser: ctx.noAuthUser, user: o?.user, password: o?.password, token: o?.token };
}

function userOf(u: ConfiguredUser): AuthenticatedUser {
  return { name: u.name, account: u.account, permissions: u.permissions };
}

function accepted(user: AuthenticatedUser): AuthResult {
  if (user.permissions === undefined) delete user.permissions;
  return { ok: true, user };
}

function settle(check: boolean | Promise<boolean>, user: AuthenticatedUser, reason: string): AuthResult | Promise<AuthResult> {
  if (typeof check === "boolean") return check ? accepted(user) : refuse(reason);
  return check.then((ok) => (ok ? accepted(user) : refuse(reason)));
}
