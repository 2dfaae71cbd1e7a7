// Users, NKEY users and secrets from the config: the `authorization` block's users and every
// `accounts {}` block's users, resolved once (account, effective permissions, connection types),
// and password / token comparison (bcrypt hashes, else constant time).
import { createHash, timingSafeEqual } from "node:crypto";
import type { Options, Permissions, UserConfig } from "../../common/config/options.js";
import { bcryptMatches } from "./bcrypt-pool.js";
import { GLOBAL_ACCOUNT, withResponseDefaults, type ConnectionType } from "./types.js";

export interface ConfiguredUser {
  name: string;
  /** "" when the config gives none (nats-server compares "" with the client's "" then). */
  password: string;
  account: string;
  permissions?: Permissions;
  /** Upper-case; undefined = every type. */
  connectionTypes?: ReadonlySet<string>;
}

export interface ConfiguredNkey {
  nkey: string;
  account: string;
  permissions?: Permissions;
  connectionTypes?: ReadonlySet<string>;
}

export class UserDirectory {
  readonly users = new Map<string, ConfiguredUser>();
  readonly nkeys = new Map<string, ConfiguredNkey>();

  constructor(options: Options) {
    const auth = options.authorization;
    for (const u of auth?.users ?? []) this.add(u, u.account ?? GLOBAL_ACCOUNT, undefined, auth?.defaultPermissions);
    for (const acc of options.accounts) {
      for (const u of acc.users) this.add(u, acc.name, acc.defaultPermissions, auth?.defaultPermissions);
    }
  }

  private add(u: UserConfig, account: string, accountDefault?: Permissions, authDefault?: Permissions): void {
    // The user's own permissions, else its account's default_permissions, else authorization's.
    const permissions = withResponseDefaults(u.permissions ?? accountDefault ?? authDefault);
    const types = u.allowedConnectionTypes && u.allowedConnectionTypes.length > 0
      ? new Set(u.allowedConnectionTypes.map((t) => t.toUpperCase()))
      : undefined;
    if (u.nkey !== undefined) {
      this.nkeys.set(u.nkey, { nkey: u.nkey, account, permissions, connectionTypes: types });
    } else if (u.user !== undefined) {
      this.users.set(u.user, { name: u.user, password: u.password ?? "", account, permissions, connectionTypes: types });
    }
  }
}

/** nats-server client.connectionTypeAllowed: an empty set allows every type. */
export function connectionTypeAllowed(types: ReadonlySet<string> | undefined, t: ConnectionType): boolean {
  return !types || types.size === 0 || types.has(t);
}

/** nats-server isBcrypt: `$2a$`, `$2b$`, `$2x$`, `$2y$` followed by a two-digit cost. */
const BCRYPT_PREFIX = /^\$2[abxy]\$\d{2}\$/;

export function isBcrypt(secret: string): boolean {
  return BCRYPT_PREFIX.test(secret);
}

/** Compares a configured password or token with the client's. Plain secrets are compared in
 *  constant time (over SHA-256 digests, so the length does not leak either); bcrypt hashes in a
 *  worker thread (bcrypt-pool.ts), so checks never stall the event loop. */
export function checkSecret(expected: string, given: string | undefined): boolean | Promise<boolean> {
  const g = given ?? "";
  if (isBcrypt(expected)) {
    // bcryptjs refuses the $2x$ revision with an error; that is a mismatch.
    return bcryptMatches(g, expected);
  }
  const a = createHash("sha256").update(g).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b) && g.length === expected.length;
}
