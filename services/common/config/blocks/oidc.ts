// `oidc {}` (a meshbroker extension): bearer JWTs from an OpenID Connect provider.

import type { OidcConfig } from "../options.js";
import type { ConfigMap } from "../parser.js";
import { noteSource, type Reader } from "../reader.js";
import { readPermissions } from "./authorization.js";

const OIDC_KEYS = new Set([
  "jwks_file", "issuer", "audience", "user_claim", "account_claim", "account", "permissions_claim",
  "default_permissions", "clock_tolerance",
]);

export function readOidc(r: Reader, m: ConfigMap, key: string): OidcConfig {
  const om = r.map(m, key);
  r.checkKeys(om, OIDC_KEYS, key);
  const c: Omit<OidcConfig, "jwksFile"> & { jwksFile?: string } = { userClaim: "sub", clockToleranceSec: 60 };
  for (const k of Object.keys(om)) {
    switch (k.toLowerCase()) {
      case "jwks_file":
        c.jwksFile = r.readableFile(om, k, "error reading jwks_file: ");
        break;
      case "issuer":
        c.issuer = r.str(om, k);
        break;
      case "audience":
        c.audience = r.str(om, k);
        break;
      case "user_claim":
        c.userClaim = r.str(om, k);
        break;
      case "account_claim":
        c.accountClaim = r.str(om, k);
        break;
      case "account":
        c.account = r.str(om, k);
        noteSource(c, "account", r.pos(om, k));
        break;
      case "permissions_claim":
        c.permissionsClaim = r.str(om, k);
        break;
      case "default_permissions":
        c.defaultPermissions = readPermissions(r, om, k);
        break;
      case "clock_tolerance":
        c.clockToleranceSec = r.secondsOrDuration(om, k, "clock_tolerance") / 1000;
        break;
    }
  }
  if (c.jwksFile === undefined) r.fail(m, key, `oidc requires "jwks_file"`);
  return c as OidcConfig;
}
