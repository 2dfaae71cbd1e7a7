// The one auth pipeline every transport goes through: credentials and connection type in,
// the user (account, permissions) or a refusal out. This issue covers users, passwords,
// tokens and no_auth_user; NKEYs, certificates and JWTs plug in here later.
import { timingSafeEqual } from "node:crypto";
import type { Options, Permissions } from "../../common/config/options.js";

export type ConnectionType = "STANDARD" | "WEBSOCKET" | "MQTT" | "MQTT_WS";

export interface Credentials {
  user?: string;
  pass?: string;
  token?: string;
}

export interface AuthContext {
  connectionType: ConnectionType;
  /** A transport-level override of the main no_auth_user (websocket / mqtt blocks). */
  noAuthUser?: string;
}

export interface AuthenticatedUser {
  /** The user name, "" when the server needs no authentication. */
  name: string;
  account: string;
  permissions?: Permissions;
}

export type AuthResult = { ok: true; user: AuthenticatedUser } | { ok: false; reason: string };

export const GLOBAL_ACCOUNT = "$G";

export class AuthPipeline {
  constructor(private readonly options: Options) {}

  /** Whether clients must send credentials (INFO auth_required). */
  get required(): boolean {
    const a = this.options.authorization;
    return !!a && (a.user !== undefined || a.token !== undefined || a.users.length > 0);
  }

  authenticate(creds: Credentials, ctx: AuthContext): AuthResult {
    const a = this.options.authorization;
    if (!this.required || !a) return { ok: true, user: { name: "", account: GLOBAL_ACCOUNT } };
    const noAuthUser = ctx.noAuthUser ?? this.options.noAuthUser;
    const hasCreds = creds.user !== undefined || creds.pass !== undefined || creds.token !== undefined;
    if (!hasCreds && noAuthUser !== undefined) {
      const u = a.users.find((x) => x.user === noAuthUser);
      if (u) return this.accept(u.user!, u.permissions, u.allowedConnectionTypes, ctx);
    }
    if (a.token !== undefined) {
      return creds.token !== undefined && secretEquals(creds.token, a.token)
        ? { ok: true, user: { name: "", account: GLOBAL_ACCOUNT, permissions: a.defaultPermissions } }
        : { ok: false, reason: "bad token" };
    }
    if (a.user !== undefined) {
      return creds.user === a.user && creds.pass !== undefined && secretEquals(creds.pass, a.password ?? "")
        ? { ok: true, user: { name: a.user, account: GLOBAL_ACCOUNT, permissions: a.defaultPermissions } }
        : { ok: false, reason: "bad user or password" };
    }
    const u = a.users.find((x) => x.user !== undefined && x.user === creds.user);
    if (!u || creds.pass === undefined || !secretEquals(creds.pass, u.password ?? "")) {
      return { ok: false, reason: "bad user or password" };
    }
    return this.accept(u.user!, u.permissions ?? a.defaultPermissions, u.allowedConnectionTypes, ctx);
  }

  private accept(name: string, permissions: Permissions | undefined, types: string[] | undefined,
                 ctx: AuthContext): AuthResult {
    if (types && types.length > 0 && !types.includes(ctx.connectionType)) {
      return { ok: false, reason: `connection type ${ctx.connectionType} not allowed` };
    }
    return { ok: true, user: { name, account: GLOBAL_ACCOUNT, permissions } };
  }
}

/** Constant-time comparison (for equal lengths; the length itself is not secret here). */
function secretEquals(given: string, expected: string): boolean {
  const a = Buffer.from(given), b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}
