// `authorization {}` (nats-server parseAuthorization: users, nkeys, permissions) and the simple
// form every listener block takes (parseSimpleAuth: user/pass, token, timeout).

import { readFileSync } from "node:fs";
import { isPublicNkey } from "../../nkeys.js";
import { isValidSubject } from "../../subject.js";
import type {
  AuthorizationConfig, ClusterAuthorization, ListenerAuthorization, Permissions, ResponsePermission, SubjectPermission, UserConfig,
} from "../options.js";
import { isConfigMap, type ConfigMap } from "../parser.js";
import { noteSource, type Reader } from "../reader.js";

export const SIMPLE_AUTH_KEYS = new Set(["user", "username", "pass", "password", "token", "timeout"]);
const CONNECTION_TYPES_KEYS = ["allowed_connection_types", "connection_types", "clients"];
const DEFAULT_RESPONSE_PERMISSION: ResponsePermission = { maxMsgs: 1, expiresMs: 2 * 60_000 };

export function readAuthorization(r: Reader, m: ConfigMap, key: string): AuthorizationConfig {
  const am = r.map(m, key);
  const auth: AuthorizationConfig = { users: [] };
  for (const k of Object.keys(am)) {
    if (simpleAuthField(r, am, k, auth)) continue;
    switch (k.toLowerCase()) {
      case "users":
        auth.users = readUsers(r, am, k);
        break;
      case "default_permission":
      case "default_permissions":
      case "permissions":
        auth.defaultPermissions = readPermissions(r, am, k);
        break;
      default:
        r.unknown(am, k);
    }
  }
  if (auth.defaultPermissions) {
    for (const u of auth.users) u.permissions ??= auth.defaultPermissions;
  }
  return auth;
}

/** A `users` list; `account` names the account block it is in (none: the global account). */
export function readUsers(r: Reader, m: ConfigMap, key: string, account?: string): UserConfig[] {
  const list = m[key];
  if (!Array.isArray(list)) return r.typeError(m, key, "an array of users");
  return list.map((entry, i) => {
    if (!isConfigMap(entry)) return r.typeError(list, i, "a user map");
    const u: UserConfig = account === undefined ? {} : { account };
    for (const k of Object.keys(entry)) {
      const lk = k.toLowerCase();
      if (lk === "nkey") u.nkey = r.str(entry, k);
      else if (lk === "user" || lk === "username") u.user = r.str(entry, k);
      else if (lk === "pass" || lk === "password") u.password = r.str(entry, k);
      else if (lk === "permission" || lk === "permissions" || lk === "authorization") {
        u.permissions = readPermissions(r, entry, k);
      } else if (CONNECTION_TYPES_KEYS.includes(lk)) {
        u.allowedConnectionTypes = r.strings(entry, k, "connection types").map((t) => t.toUpperCase());
        noteSource(u, "allowedConnectionTypes", r.pos(entry, k));
      } else r.unknown(entry, k);
    }
    if (u.nkey === undefined && u.user === undefined) r.fail(list, i, "User entry requires a user");
    if (u.nkey !== undefined) {
      if (!isPublicNkey(u.nkey, "user")) r.fail(list, i, "Not a valid public nkey for a user");
      if (u.user !== undefined || u.password !== undefined) {
        r.fail(list, i, "Nkey users do not take usernames or passwords");
      }
    }
    noteSource(u, "entry", r.pos(list, i));
    return u;
  });
}

export function readPermissions(r: Reader, m: ConfigMap, key: string): Permissions {
  const pm = r.map(m, key);
  const p: Permissions = {};
  for (const k of Object.keys(pm)) {
    switch (k.toLowerCase()) {
      case "pub":
      case "publish":
      case "import":
        p.publish = readSubjectPermission(r, pm, k);
        break;
      case "sub":
      case "subscribe":
      case "export":
        p.subscribe = readSubjectPermission(r, pm, k);
        break;
      case "allow_responses":
      case "publish_allow_responses":
        p.allowResponses = readResponsePermission(r, pm, k);
        break;
      default:
        r.unknown(pm, k, `Unknown field "${k}" parsing permissions`);
    }
  }
  // nats-server: allowing responses turns off the implicit "publish to anything".
  if (p.allowResponses && p.publish?.allow === undefined) p.publish = { ...p.publish, allow: [] };
  return p;
}

/** A subject, a list of subjects (both mean allow), or {allow, deny}. */
export function readSubjectPermission(r: Reader, m: ConfigMap, key: string): SubjectPermission | undefined {
  const v = m[key];
  if (!isConfigMap(v)) return { allow: readSubjects(r, m, key) };
  const keys = Object.keys(v);
  if (keys.length === 0) return undefined;
  const sp: SubjectPermission = {};
  for (const k of keys) {
    const lk = k.toLowerCase();
    if (lk === "allow") sp.allow = readSubjects(r, v, k);
    else if (lk === "deny") sp.deny = readSubjects(r, v, k);
    else {
      r.unknown(v, k, `Unknown field name "${k}" parsing subject permissions, only 'allow' or 'deny' are permitted`);
    }
  }
  return sp;
}

export function readSubjects(r: Reader, m: ConfigMap, key: string): string[] {
  const list = r.strings(m, key, "subjects");
  for (const s of list) {
    // "subject queue" restricts a subscription to one queue group.
    const parts = s.trim().split(/\s+/);
    const ok = isValidSubject(s) || (parts.length === 2 && isValidSubject(parts[0]));
    if (!ok) r.fail(m, key, `subject ${JSON.stringify(s)} is not a valid subject`);
  }
  return list;
}

export function readResponsePermission(r: Reader, m: ConfigMap, key: string): ResponsePermission | undefined {
  const v = m[key];
  if (typeof v === "boolean") return v ? { ...DEFAULT_RESPONSE_PERMISSION } : undefined;
  if (!isConfigMap(v)) return r.fail(m, key, "error parsing response permissions, expected a boolean or a map");
  const rp = { ...DEFAULT_RESPONSE_PERMISSION };
  for (const k of Object.keys(v)) {
    switch (k.toLowerCase()) {
      case "max":
      case "max_msgs":
      case "max_messages":
      case "max_responses":
        // 0 keeps the default; a negative value means unlimited.
        rp.maxMsgs = r.int(v, k) || rp.maxMsgs;
        break;
      case "expires":
      case "expiration":
      case "ttl":
        rp.expiresMs = r.durationString(v, k, "expires") || rp.expiresMs;
        break;
      default:
        r.unknown(v, k, `Unknown field "${k}" parsing permissions`);
    }
  }
  return rp;
}

/** A listener's own `authorization {}` (nats-server parseSimpleAuth): user/pass, token and a
 *  timeout in seconds; `users` and `nkeys` are not allowed there (checkListenerBlock). */
export function readListenerAuthorization(r: Reader, m: ConfigMap, key: string): ListenerAuthorization {
  const am = r.map(m, key);
  const auth: ListenerAuthorization = {};
  for (const k of Object.keys(am)) {
    if (!simpleAuthField(r, am, k, auth)) r.unknown(am, k, `unknown field "${k}" in ${key}`);
  }
  return auth;
}

/** The fields every authorization block has (nats-server's simple auth): user/username,
 *  pass/password, token, and timeout in seconds, where 0 keeps the default. False for others. */
export function simpleAuthField(r: Reader, am: ConfigMap, k: string, auth: ListenerAuthorization): boolean {
  switch (k.toLowerCase()) {
    case "user":
    case "username":
      auth.user = r.str(am, k);
      return true;
    case "pass":
    case "password":
      auth.password = r.str(am, k);
      return true;
    case "token":
      auth.token = r.str(am, k);
      return true;
    case "timeout":
      auth.timeoutMs = r.seconds(am, k) || undefined;
      return true;
    default:
      return false;
  }
}

const CLUSTER_AUTH_KEYS = { router: new Set(["token", "nkeys", "seed_file"]), edge: new Set(["token", "seed_file"]) };

/** The cluster credential of `router { authorization }` / `edge { authorization }`: a shared
 *  token, or NKEYs: the member's own seed (`seed_file`) and, on routers, the public keys allowed
 *  to attach (`nkeys`). One kind, not both. */
export function readClusterAuthorization(r: Reader, m: ConfigMap, key: string, role: "router" | "edge"): ClusterAuthorization {
  const am = r.map(m, key);
  r.checkKeys(am, CLUSTER_AUTH_KEYS[role], `${role}.${key}`);
  const a: ClusterAuthorization = {};
  for (const k of Object.keys(am)) {
    switch (k.toLowerCase()) {
      case "token":
        a.token = r.str(am, k);
        if (a.token === "") r.fail(am, k, "the cluster token can not be empty");
        break;
      case "nkeys": {
        const keys = r.strings(am, k, "public user NKEYs");
        const v = am[k];
        keys.forEach((nk, i) => {
          const reason = `Not a valid public nkey for a user: ${JSON.stringify(nk)}`;
          if (!isPublicNkey(nk, "user")) return Array.isArray(v) ? r.fail(v, i, reason) : r.fail(am, k, reason);
        });
        if (keys.length === 0) r.fail(am, k, "nkeys can not be empty");
        a.nkeys = keys;
        break;
      }
      case "seed_file": {
        a.seedFile = r.readableFile(am, k);
        if (!NKEY_USER_SEED.test(readFileSync(a.seedFile, "utf8"))) r.fail(am, k, `${a.seedFile} holds no user NKEY seed (SU...)`);
        break;
      }
    }
  }
  const nkey = a.nkeys !== undefined || a.seedFile !== undefined;
  if (a.token !== undefined && nkey) r.fail(m, key, "the cluster credential is a token or NKEYs, not both");
  if (role === "router" && nkey && (a.nkeys === undefined || a.seedFile === undefined)) {
    // A router both accepts attaches (nkeys) and attaches to its peers (its own seed).
    r.fail(m, key, "a router's NKEY credential needs both 'nkeys' and 'seed_file'");
  }
  if (a.token === undefined && !nkey) r.fail(m, key, "the cluster credential needs a 'token' or NKEYs");
  return a;
}

/** A user seed, bare or in a creds file. */
const NKEY_USER_SEED = /(^|\s)SU[A-Z2-7]{56}(\s|$)/;
