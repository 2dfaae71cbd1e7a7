// `accounts {}`: accounts, their users, exports and imports (nats-server parseAccounts).

import { hasWildcard, isValidSubject } from "../../subject.js";
import { ConfigError } from "../errors.js";
import { GLOBAL_ACCOUNT, type AccountConfig, type ExportConfig, type ImportConfig } from "../options.js";
import { isConfigMap, isUsedVariable, type ConfigMap, type ConfigValue } from "../parser.js";
import { noteSource, sourceOf, type Reader } from "../reader.js";
import { readPermissions, readUsers } from "./authorization.js";

/** Account keys nats-server 2.9 knows that meshbroker does not implement yet. */
const ACCOUNT_KEYS_NOT_YET_IMPLEMENTED = new Set(["nkey", "jetstream", "limits", "mappings", "maps"]);

const RESPONSE_TYPES: Record<string, ExportConfig["responseType"]> = {
  single: "Singleton", singleton: "Singleton", stream: "Stream", chunk: "Chunked", chunked: "Chunked",
};

/** `accounts { NAME: {...} }`, or a list of names, in declaration order. */
export function readAccounts(r: Reader, m: ConfigMap, key: string): AccountConfig[] {
  const v = m[key];
  if (Array.isArray(v)) {
    const seen = new Set<string>();
    return v.map((n, i) => {
      if (typeof n !== "string") return r.typeError(v, i, "an account name");
      if (n === GLOBAL_ACCOUNT) r.fail(v, i, `"${n}" is a Reserved Account`);
      if (seen.has(n)) r.fail(v, i, `Duplicate Account Entry: ${n}`);
      seen.add(n);
      const acc: AccountConfig = { name: n, users: [], exports: [], imports: [] };
      noteSource(acc, "entry", r.pos(v, i));
      return acc;
    });
  }
  if (!isConfigMap(v)) return r.typeError(m, key, "a map of accounts or an array of account names");
  const accounts: AccountConfig[] = [];
  for (const name of Object.keys(v)) {
    if (isUsedVariable(v, name)) continue; // a variable defined for the account blocks
    if (!isConfigMap(v[name])) r.fail(v, name, "Expected map entries for accounts");
    if (name === GLOBAL_ACCOUNT) r.fail(v, name, `"${name}" is a Reserved Account`);
    accounts.push(readAccount(r, v, name));
  }
  return accounts;
}

export function readAccount(r: Reader, m: ConfigMap, name: string): AccountConfig {
  const am = m[name] as ConfigMap;
  const acc: AccountConfig = { name, users: [], exports: [], imports: [] };
  noteSource(acc, "entry", r.pos(m, name));
  for (const k of Object.keys(am)) {
    const lk = k.toLowerCase();
    if (lk === "users") {
      acc.users = readUsers(r, am, k, name);
      noteSource(acc, "users", r.pos(am, k));
    } else if (lk === "exports") {
      acc.exports = readList(r, am, k, "an array of exports", (e, list, i) => readExport(r, e, list, i));
    } else if (lk === "imports") {
      acc.imports = readList(r, am, k, "an array of imports", (e, list, i) => readImport(r, e, list, i));
    } else if (lk === "default_permissions") {
      acc.defaultPermissions = readPermissions(r, am, k);
    } else if (ACCOUNT_KEYS_NOT_YET_IMPLEMENTED.has(lk)) {
      r.warn(am, k, `"${k}" in account "${name}" is not implemented yet, ignored`);
    } else {
      r.unknown(am, k, `unknown field "${k}" in account "${name}"`);
    }
  }
  if (acc.defaultPermissions) {
    for (const u of acc.users) u.permissions ??= acc.defaultPermissions;
  }
  // nats-server refuses a second import of the same stream, or two service imports that
  // clients reach on the same local subject.
  const seen = new Map<string, ImportConfig>();
  for (const im of acc.imports) {
    const local = im.to ?? im.subject;
    const k = im.kind === "stream" ? `stream ${im.account} ${im.subject}` : `service ${local}`;
    const dup = seen.get(k);
    if (dup) {
      throw ConfigError.at(sourceOf(im, "entry")!, im.kind === "stream"
        ? `Error adding stream import "${im.subject}": stream import already exists`
        : `Duplicate service import subject "${local}", previously used in import for account "${dup.account}", subject "${dup.subject}"`);
    }
    seen.set(k, im);
  }
  return acc;
}

/** An array of maps, each read by `read`, which is given the entry's position for messages. */
export function readList<T extends object>(r: Reader, m: ConfigMap, key: string, what: string, read: (e: ConfigMap, list: ConfigValue[], i: number) => T): T[] {
  const list = m[key];
  if (!Array.isArray(list)) return r.typeError(m, key, what);
  return list.map((e, i) => {
    if (!isConfigMap(e)) return r.typeError(list, i, "a map");
    const item = read(e, list, i);
    noteSource(item, "entry", r.pos(list, i));
    return item;
  });
}

/** `{stream: subject, accounts: [...]}` or `{service: subject, accounts: [...], response_type: ...}`. */
export function readExport(r: Reader, e: ConfigMap, list: ConfigValue[], i: number): ExportConfig {
  let kind: ExportConfig["kind"] | undefined;
  let subject = "";
  let accounts: string[] | undefined;
  let responseType: ExportConfig["responseType"];
  let responseKey: string | undefined;
  for (const k of Object.keys(e)) {
    const lk = k.toLowerCase();
    switch (lk) {
      case "stream":
      case "service":
        if (kind !== undefined && kind !== lk) r.fail(e, k, `Detected ${lk} ${JSON.stringify(e[k])} but already saw a ${kind}`);
        kind = lk;
        subject = r.subject(e, k);
        break;
      case "accounts":
        // An empty list is public, as in nats-server.
        accounts = r.strings(e, k, "account names");
        if (accounts.length === 0) accounts = undefined;
        break;
      case "response":
      case "response_type": {
        const rt = r.str(e, k);
        responseType = RESPONSE_TYPES[rt.toLowerCase()];
        if (responseType === undefined) r.fail(e, k, `Unknown response type: ${JSON.stringify(rt)}`);
        responseKey = k;
        break;
      }
      case "threshold":
      case "response_threshold":
      case "response_max_time":
      case "response_time":
      case "latency":
        r.warn(e, k, `"${k}" in exports is not implemented yet, ignored`);
        break;
      case "account_token_position":
        // Ignoring it would make the export public: refuse instead.
        r.fail(e, k, `"${k}" is not supported yet`);
        break;
      default:
        r.unknown(e, k);
    }
  }
  if (kind === undefined) r.fail(list, i, "an export needs a \"stream\" or a \"service\" subject");
  if (kind === "stream" && responseKey !== undefined) r.fail(e, responseKey, "Detected response directive on non-service");
  const ex: ExportConfig = { kind, subject };
  if (accounts) ex.accounts = accounts;
  if (responseType) ex.responseType = responseType;
  return ex;
}

/** `{stream: {account, subject}, prefix | to}` or `{service: {account, subject}, to}`. */
export function readImport(r: Reader, e: ConfigMap, list: ConfigValue[], i: number): ImportConfig {
  let im: ImportConfig | undefined;
  let to: string | undefined;
  let prefix: string | undefined;
  let prefixKey = "";
  for (const k of Object.keys(e)) {
    const lk = k.toLowerCase();
    switch (lk) {
      case "stream":
      case "service": {
        if (im && im.kind !== lk) r.fail(e, k, `Detected ${lk} but already saw a ${im.kind}`);
        const src = r.map(e, k);
        let account = "";
        let subject = "";
        for (const sk of Object.keys(src)) {
          const lsk = sk.toLowerCase();
          if (lsk === "account") account = r.str(src, sk);
          else if (lsk === "subject") subject = r.subject(src, sk);
          else r.unknown(src, sk);
        }
        if (account === "" || subject === "") r.fail(e, k, "Expect an account name and a subject");
        im = { kind: lk, account, subject };
        break;
      }
      case "prefix":
        prefix = r.str(e, k);
        prefixKey = k;
        break;
      case "to":
        to = r.subject(e, k);
        break;
      case "share":
        r.bool(e, k);
        r.warn(e, k, `"${k}" in imports is not implemented yet, ignored`);
        break;
      default:
        r.unknown(e, k);
    }
  }
  if (!im) return r.fail(list, i, "an import needs a \"stream\" or a \"service\" map");
  if (im.kind === "stream" && prefix !== undefined && to !== undefined) {
    r.fail(list, i, "Stream import can not have a 'prefix' and a 'to' property");
  }
  if (im.kind === "service" && prefix !== undefined) r.fail(e, prefixKey, "a service import takes 'to', not 'prefix'");
  // The prefix is prepended to published subjects (with a "." unless it ends in one), so it
  // must be a literal.
  const bare = prefix?.endsWith(".") ? prefix.slice(0, -1) : prefix;
  if (bare !== undefined && (!isValidSubject(bare) || hasWildcard(bare))) {
    r.fail(e, prefixKey, `Error adding stream import "${im.subject}": stream import prefix can not contain wildcard tokens`);
  }
  if (to !== undefined) im.to = to;
  if (prefix !== undefined) im.prefix = prefix;
  return im;
}
