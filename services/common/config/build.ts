// Parsed config tree → Options, with nats-server 2.9's key names, aliases and value rules
// (server/opts.go processConfigFileLine). Keys are matched case-insensitively, as there.
// Keys of nats-server features meshbroker does not implement yet are kept in `pending` with a
// warning; keys nats-server does not know are errors, unless they only define a `$variable`.

import { isValidSubject } from "../subject.js";
import { formatGoDuration, parseGoDuration } from "./duration.js";
import { ConfigError, type Position } from "./errors.js";
import { DEFAULTS, type AuthorizationConfig, type Options, type Permissions, type ResponsePermission, type SubjectPermission, type UserConfig } from "./options.js";
import { isConfigMap, isUsedVariable, positionOf, type ConfigMap, type ConfigValue } from "./parser.js";

export interface BuildResult {
  options: Options;
  warnings: string[];
}

/** Fills every field missing from `overrides` from DEFAULTS. `port: -1` becomes 0 (random). */
export function applyDefaults(overrides: Partial<Options> = {}): Options {
  const o: Options = {
    serverName: DEFAULTS.serverName,
    host: DEFAULTS.host,
    port: DEFAULTS.port,
    noAdvertise: DEFAULTS.noAdvertise,
    maxPayload: DEFAULTS.maxPayload,
    maxConnections: DEFAULTS.maxConnections,
    maxControlLine: DEFAULTS.maxControlLine,
    maxPending: DEFAULTS.maxPending,
    maxSubscriptions: DEFAULTS.maxSubscriptions,
    pingIntervalMs: DEFAULTS.pingIntervalMs,
    pingMax: DEFAULTS.pingMax,
    writeDeadlineMs: DEFAULTS.writeDeadlineMs,
    lameDuckDurationMs: DEFAULTS.lameDuckDurationMs,
    lameDuckGracePeriodMs: DEFAULTS.lameDuckGracePeriodMs,
    authTimeoutMs: DEFAULTS.authTimeoutMs,
    accounts: [],
    operatorJwts: [],
    resolverPreload: {},
    ...overrides,
    // The monitoring listener binds where the client listener does unless told otherwise.
    httpHost: overrides.httpHost ?? overrides.host ?? DEFAULTS.httpHost,
    log: { ...DEFAULTS.log, ...overrides.log },
    pending: { ...overrides.pending },
  };
  if (o.port === -1) o.port = 0;
  if (o.httpPort === -1) o.httpPort = 0;
  return o;
}

/** Positions of option fields, for validateOptions' messages: sourceOf(options, "maxPayload"),
 *  sourceOf(user, "entry"). Kept aside so Options stays a plain model. */
const optionSources = new WeakMap<object, Map<string, Position>>();

export function sourceOf(obj: object, field: string): Position | undefined {
  return optionSources.get(obj)?.get(field);
}

function noteSource(obj: object, field: string, pos: Position): void {
  let m = optionSources.get(obj);
  if (!m) optionSources.set(obj, (m = new Map()));
  m.set(field, pos);
}

export function buildOptions(tree: ConfigMap, file: string): BuildResult {
  const b: Builder = new Builder(file); // typed, so its never-returning fail() narrows
  const o = applyDefaults();
  // Raw values whose meaning depends on "0 means default" rules, resolved at the end.
  let host = DEFAULTS.host as string;
  let port = 0;
  let httpHost: string | undefined;
  let httpPort: number | undefined;

  for (const key of Object.keys(tree)) {
    const name = key.toLowerCase();
    const at = b.pos(tree, key);
    const setSource = (field: string) => noteSource(o, field, at);
    switch (name) {
      case "listen": {
        const hp = b.hostPort(tree, key);
        host = hp.host;
        port = hp.port;
        setSource("port");
        break;
      }
      case "host":
      case "net":
        host = b.str(tree, key);
        break;
      case "port":
        port = b.port(tree, key);
        setSource("port");
        break;
      case "server_name":
        o.serverName = b.str(tree, key);
        break;
      case "client_advertise":
        o.clientAdvertise = b.str(tree, key);
        break;
      case "max_payload":
        o.maxPayload = b.int32(tree, key) || DEFAULTS.maxPayload;
        if (o.maxPayload > 8 * 1024 * 1024) {
          b.warn(tree, key, "max_payload over 8MB is generally discouraged and could lead to poor performance");
        }
        setSource("maxPayload");
        break;
      case "max_pending":
        o.maxPending = b.size(tree, key) || DEFAULTS.maxPending;
        setSource("maxPending");
        break;
      case "max_control_line":
        o.maxControlLine = b.int32(tree, key) || DEFAULTS.maxControlLine;
        break;
      case "max_connections":
      case "max_conn":
        o.maxConnections = b.int(tree, key) || DEFAULTS.maxConnections;
        break;
      case "max_subscriptions":
      case "max_subs":
        o.maxSubscriptions = b.int(tree, key);
        break;
      case "ping_interval":
        o.pingIntervalMs = b.duration(tree, key, "ping_interval") || DEFAULTS.pingIntervalMs;
        break;
      case "ping_max":
        o.pingMax = b.size(tree, key) || DEFAULTS.pingMax;
        break;
      case "write_deadline":
        o.writeDeadlineMs = b.duration(tree, key, "write_deadline") || DEFAULTS.writeDeadlineMs;
        break;
      case "lame_duck_duration": {
        const ms = b.durationString(tree, key, "lame_duck_duration");
        if (ms < 30_000) b.fail(tree, key, `invalid lame_duck_duration of ${formatGoDuration(ms)}, minimum is 30 seconds`);
        o.lameDuckDurationMs = ms;
        setSource("lameDuckDurationMs");
        break;
      }
      case "lame_duck_grace_period": {
        const ms = b.durationString(tree, key, "lame_duck_grace_period");
        if (ms < 0) b.fail(tree, key, "invalid lame_duck_grace_period, needs to be positive");
        o.lameDuckGracePeriodMs = ms || DEFAULTS.lameDuckGracePeriodMs;
        setSource("lameDuckGracePeriodMs");
        break;
      }
      case "authorization":
        o.authorization = b.authorization(tree, key);
        setSource("authorization");
        break;
      case "no_auth_user":
        o.noAuthUser = b.str(tree, key);
        setSource("noAuthUser");
        break;
      case "http": {
        const hp = b.hostPort(tree, key);
        if (hp.host !== "") httpHost = hp.host;
        httpPort = hp.port;
        break;
      }
      case "http_port":
      case "monitor_port":
        httpPort = b.port(tree, key);
        break;
      case "debug":
        o.log.debug = b.bool(tree, key);
        break;
      case "trace":
        o.log.trace = b.bool(tree, key);
        break;
      case "logtime":
        o.log.logtime = b.bool(tree, key);
        break;
      case "log_file":
      case "logfile":
        o.log.file = b.str(tree, key);
        break;
      case "log_format": {
        const f = b.str(tree, key);
        if (f !== "text" && f !== "json") b.fail(tree, key, `log_format must be "text" or "json", got ${JSON.stringify(f)}`);
        o.log.format = f;
        break;
      }
      // meshbroker's own blocks; their issues give them types.
      case "router":
      case "edge":
        o.pending[name] = b.map(tree, key);
        break;
      default: {
        const canonical = NOT_YET_IMPLEMENTED[name];
        if (canonical === undefined) {
          b.unknown(tree, key);
          break;
        }
        CHECK_PENDING[canonical]?.(b, tree, key);
        o.pending[canonical] = tree[key];
        b.warn(tree, key, `"${key}" is not implemented yet, ignored`);
      }
    }
  }

  // nats-server: port 0 (or none) means the default port, -1 a random one.
  o.host = host || DEFAULTS.host;
  o.port = port === 0 ? DEFAULTS.port : port === -1 ? 0 : port;
  o.httpHost = httpHost ?? o.host;
  // Monitoring: 0 (or none) means off, -1 a random port.
  o.httpPort = httpPort === undefined || httpPort === 0 ? undefined : httpPort === -1 ? 0 : httpPort;
  return { options: o, warnings: b.warnings };
}

/** nats-server 2.9 top-level keys meshbroker accepts but does not implement yet (alias → name
 *  kept in `pending`). */
const NOT_YET_IMPLEMENTED: Record<string, string> = {};
for (const names of [
  ["websocket", "ws"],
  ["mqtt"],
  ["accounts"],
  ["operator", "operators", "roots", "root", "root_operators", "root_operator"],
  ["resolver", "account_resolver", "accounts_resolver"],
  ["resolver_tls"],
  ["resolver_preload"],
  ["resolver_pinned_accounts"],
  ["system_account", "system"],
  ["no_system_account", "no_system", "no_sys_acc"],
  ["trusted", "trusted_keys"],
  ["tls"],
  ["allow_non_tls"],
  ["ocsp"],
  ["jetstream"],
  ["store_dir", "storedir"],
  ["cluster"],
  ["gateway"],
  ["leafnodes", "leaf"],
  ["mappings", "maps"],
  ["https"],
  ["https_port"],
  ["http_base_path"],
  ["trace_verbose"],
  ["disable_sublist_cache", "no_sublist_cache"],
  ["logfile_size_limit", "log_size_limit"],
  ["syslog"],
  ["remote_syslog"],
  ["pidfile", "pid_file"],
  ["ports_file_dir"],
  ["prof_port"],
  ["max_traced_msg_len"],
  ["max_sub_tokens", "max_subscription_tokens"],
  ["no_header_support"],
  ["connect_error_reports"],
  ["reconnect_error_reports"],
  ["server_tags"],
  ["default_js_domain"],
]) {
  for (const n of names) NOT_YET_IMPLEMENTED[n] = names[0];
}

// Sub-keys nats-server 2.9 accepts (parseWebsocket, parseMQTT, parseSimpleAuth, parseTLS), so a
// misspelt one in a pending block fails now rather than when the feature lands.
const WEBSOCKET_KEYS = new Set([
  "listen", "port", "host", "net", "advertise", "no_tls", "tls", "same_origin",
  "allowed_origins", "allowed_origin", "allow_origins", "allow_origin", "origins", "origin",
  "handshake_timeout", "compress", "compression", "authorization", "authentication", "jwt_cookie", "no_auth_user",
]);
const MQTT_KEYS = new Set([
  "listen", "port", "host", "net", "tls", "authorization", "authentication", "no_auth_user",
  "ack_wait", "ackwait", "max_ack_pending", "max_pending", "max_inflight", "js_domain",
  "stream_replicas", "consumer_replicas", "consumer_memory_storage",
  "consumer_inactive_threshold", "consumer_auto_cleanup",
]);
const SIMPLE_AUTH_KEYS = new Set(["user", "username", "pass", "password", "token", "timeout"]);
const TLS_KEYS = new Set([
  "cert_file", "key_file", "ca_file", "insecure", "verify", "verify_and_map",
  "verify_cert_and_check_known_urls", "cipher_suites", "curve_preferences", "timeout",
  "connection_rate_limit", "pinned_certs",
]);

const CHECK_PENDING: Record<string, (b: Builder, map: ConfigMap, key: string) => void> = {
  websocket: (b, m, k) => b.checkListenerBlock(m, k, WEBSOCKET_KEYS),
  mqtt: (b, m, k) => b.checkListenerBlock(m, k, MQTT_KEYS),
  tls: (b, m, k) => b.checkKeys(b.map(m, k), TLS_KEYS, "tls"),
};

const CONNECTION_TYPES_KEYS = ["allowed_connection_types", "connection_types", "clients"];
const DEFAULT_RESPONSE_PERMISSION: ResponsePermission = { maxMsgs: 1, expiresMs: 2 * 60_000 };
const INT32_MAX = 2 ** 31 - 1;

/** Typed reads of tree values; every error names the file and line of the key. */
class Builder {
  readonly warnings: string[] = [];

  constructor(private readonly file: string) {}

  pos(c: ConfigMap | ConfigValue[], key: string | number): Position {
    return positionOf(c, key) ?? { file: this.file, line: 0 };
  }

  fail(c: ConfigMap | ConfigValue[], key: string | number, reason: string): never {
    throw ConfigError.at(this.pos(c, key), reason);
  }

  warn(c: ConfigMap, key: string, reason: string): void {
    const p = this.pos(c, key);
    this.warnings.push(`${p.file}:${p.line}: ${reason}`);
  }

  /** A key nats-server does not know: an error, unless it only defines a `$variable`. */
  unknown(m: ConfigMap, key: string, reason = `unknown field "${key}"`): void {
    if (!isUsedVariable(m, key)) this.fail(m, key, reason);
  }

  checkKeys(m: ConfigMap, allowed: Set<string>, block: string): void {
    for (const k of Object.keys(m)) {
      if (!allowed.has(k.toLowerCase())) this.unknown(m, k, `unknown field "${k}" in ${block}`);
    }
  }

  checkListenerBlock(m: ConfigMap, key: string, allowed: Set<string>): void {
    const block = this.map(m, key);
    this.checkKeys(block, allowed, key);
    for (const k of Object.keys(block)) {
      const lk = k.toLowerCase();
      if (lk === "tls") this.checkKeys(this.map(block, k), TLS_KEYS, `${key}.tls`);
      if (lk === "authorization" || lk === "authentication") {
        this.checkKeys(this.map(block, k), SIMPLE_AUTH_KEYS, `${key}.${k}`);
      }
    }
  }

  // ---- scalars ----

  private typeError(c: ConfigMap | ConfigValue[], key: string | number, expected: string): never {
    const what = typeof key === "number" ? "array element" : `"${key}"`;
    return this.fail(c, key, `${what} must be ${expected}, got ${describe((c as Record<string | number, ConfigValue>)[key])}`);
  }

  str(m: ConfigMap, key: string): string {
    const v = m[key];
    return typeof v === "string" ? v : this.typeError(m, key, "a string");
  }

  bool(m: ConfigMap, key: string): boolean {
    const v = m[key];
    return typeof v === "boolean" ? v : this.typeError(m, key, "a boolean (true/false, yes/no, on/off)");
  }

  int(m: ConfigMap, key: string): number {
    const v = m[key];
    return typeof v === "number" && Number.isInteger(v) ? v : this.typeError(m, key, "an integer");
  }

  /** A non-negative integer, sizes like 64MB included. */
  size(m: ConfigMap, key: string): number {
    const v = this.int(m, key);
    if (v < 0) this.fail(m, key, `"${key}" can not be negative`);
    return v;
  }

  /** nats-server keeps these in an int32. */
  int32(m: ConfigMap, key: string): number {
    const v = this.size(m, key);
    if (v > INT32_MAX) this.fail(m, key, `${key} value is too big`);
    return v;
  }

  port(m: ConfigMap, key: string): number {
    const v = this.int(m, key);
    if (v < -1 || v > 65535) this.fail(m, key, `invalid port ${v} (use 0 for the default, -1 for a random port)`);
    return v;
  }

  /** An integer port, or "host:port" / ":port" (Go's net.SplitHostPort). */
  hostPort(m: ConfigMap, key: string): { host: string; port: number } {
    const v = m[key];
    if (typeof v === "number" && Number.isInteger(v)) return { host: "", port: this.port(m, key) };
    if (typeof v !== "string") return this.typeError(m, key, 'a port or "host:port"');
    const hp = splitHostPort(v);
    if (!hp) this.fail(m, key, `could not parse address string ${JSON.stringify(v)}`);
    if (!/^[+-]?\d+$/.test(hp.port)) this.fail(m, key, `could not parse port ${JSON.stringify(hp.port)}`);
    const port = Number(hp.port);
    if (port < -1 || port > 65535) this.fail(m, key, `invalid port ${port}`);
    return { host: hp.host, port };
  }

  /** A Go duration string ("2m", "1m30s", "500ms") or, for compatibility, an integer number of
   *  seconds, which nats-server accepts with a warning. Milliseconds. */
  duration(m: ConfigMap, key: string, field: string): number {
    const v = m[key];
    if (typeof v === "number" && Number.isInteger(v)) {
      this.warn(m, key, `invalid use of field "${field}": ${field} should be converted to a duration`);
      if (v < 0) this.fail(m, key, `${field} can not be negative`);
      return v * 1000;
    }
    const ms = this.durationString(m, key, field);
    if (ms < 0) this.fail(m, key, `${field} can not be negative`);
    return ms;
  }

  /** A Go duration string only. Milliseconds. */
  durationString(m: ConfigMap, key: string, field: string): number {
    const v = m[key];
    if (typeof v !== "string") return this.typeError(m, key, 'a duration string such as "2s" or "1m30s"');
    try {
      return parseGoDuration(v);
    } catch (err) {
      return this.fail(m, key, `error parsing ${field}: ${(err as Error).message}`);
    }
  }

  /** A number of seconds (integer or float). Milliseconds. */
  seconds(m: ConfigMap, key: string): number {
    const v = m[key];
    if (typeof v !== "number" || v < 0) return this.typeError(m, key, "a number of seconds");
    return v * 1000;
  }

  map(m: ConfigMap, key: string): ConfigMap {
    const v = m[key];
    return isConfigMap(v) ? v : this.typeError(m, key, "a map");
  }

  /** A string or an array of strings. */
  strings(m: ConfigMap, key: string, what: string): string[] {
    const v = m[key];
    if (typeof v === "string") return [v];
    if (!Array.isArray(v)) return this.typeError(m, key, `a string or an array of strings (${what})`);
    return v.map((s, i) => (typeof s === "string" ? s : this.typeError(v, i, `a string (${what})`)));
  }

  // ---- authorization ----

  authorization(m: ConfigMap, key: string): AuthorizationConfig {
    const am = this.map(m, key);
    const auth: AuthorizationConfig = { users: [] };
    for (const k of Object.keys(am)) {
      switch (k.toLowerCase()) {
        case "user":
        case "username":
          auth.user = this.str(am, k);
          break;
        case "pass":
        case "password":
          auth.password = this.str(am, k);
          break;
        case "token":
          auth.token = this.str(am, k);
          break;
        case "timeout":
          // 0 keeps the derived default (2s, or tls timeout + 1s).
          auth.timeoutMs = this.seconds(am, k) || undefined;
          break;
        case "users":
          auth.users = this.users(am, k);
          break;
        case "default_permission":
        case "default_permissions":
        case "permissions":
          auth.defaultPermissions = this.permissions(am, k);
          break;
        default:
          this.unknown(am, k);
      }
    }
    if (auth.defaultPermissions) {
      for (const u of auth.users) u.permissions ??= auth.defaultPermissions;
    }
    return auth;
  }

  private users(m: ConfigMap, key: string): UserConfig[] {
    const list = m[key];
    if (!Array.isArray(list)) return this.typeError(m, key, "an array of users");
    return list.map((entry, i) => {
      if (!isConfigMap(entry)) return this.typeError(list, i, "a user map");
      const u: UserConfig = {};
      for (const k of Object.keys(entry)) {
        const lk = k.toLowerCase();
        if (lk === "nkey") u.nkey = this.str(entry, k);
        else if (lk === "user" || lk === "username") u.user = this.str(entry, k);
        else if (lk === "pass" || lk === "password") u.password = this.str(entry, k);
        else if (lk === "permission" || lk === "permissions" || lk === "authorization") {
          u.permissions = this.permissions(entry, k);
        } else if (CONNECTION_TYPES_KEYS.includes(lk)) {
          u.allowedConnectionTypes = this.strings(entry, k, "connection types").map((t) => t.toUpperCase());
          noteSource(u, "allowedConnectionTypes", this.pos(entry, k));
        } else this.unknown(entry, k);
      }
      if (u.nkey === undefined && u.user === undefined) this.fail(list, i, "User entry requires a user");
      if (u.nkey !== undefined) {
        if (!isValidPublicUserKey(u.nkey)) this.fail(list, i, "Not a valid public nkey for a user");
        if (u.user !== undefined || u.password !== undefined) {
          this.fail(list, i, "Nkey users do not take usernames or passwords");
        }
      }
      noteSource(u, "entry", this.pos(list, i));
      return u;
    });
  }

  private permissions(m: ConfigMap, key: string): Permissions {
    const pm = this.map(m, key);
    const p: Permissions = {};
    for (const k of Object.keys(pm)) {
      switch (k.toLowerCase()) {
        case "pub":
        case "publish":
        case "import":
          p.publish = this.subjectPermission(pm, k);
          break;
        case "sub":
        case "subscribe":
        case "export":
          p.subscribe = this.subjectPermission(pm, k);
          break;
        case "allow_responses":
        case "publish_allow_responses":
          p.allowResponses = this.responsePermission(pm, k);
          break;
        default:
          this.unknown(pm, k, `Unknown field "${k}" parsing permissions`);
      }
    }
    // nats-server: allowing responses turns off the implicit "publish to anything".
    if (p.allowResponses && p.publish?.allow === undefined) p.publish = { ...p.publish, allow: [] };
    return p;
  }

  /** A subject, a list of subjects (both mean allow), or {allow, deny}. */
  private subjectPermission(m: ConfigMap, key: string): SubjectPermission | undefined {
    const v = m[key];
    if (!isConfigMap(v)) return { allow: this.subjects(m, key) };
    const keys = Object.keys(v);
    if (keys.length === 0) return undefined;
    const sp: SubjectPermission = {};
    for (const k of keys) {
      const lk = k.toLowerCase();
      if (lk === "allow") sp.allow = this.subjects(v, k);
      else if (lk === "deny") sp.deny = this.subjects(v, k);
      else {
        this.unknown(v, k, `Unknown field name "${k}" parsing subject permissions, only 'allow' or 'deny' are permitted`);
      }
    }
    return sp;
  }

  private subjects(m: ConfigMap, key: string): string[] {
    const list = this.strings(m, key, "subjects");
    for (const s of list) {
      // "subject queue" restricts a subscription to one queue group.
      const parts = s.trim().split(/\s+/);
      const ok = isValidSubject(s) || (parts.length === 2 && isValidSubject(parts[0]));
      if (!ok) this.fail(m, key, `subject ${JSON.stringify(s)} is not a valid subject`);
    }
    return list;
  }

  private responsePermission(m: ConfigMap, key: string): ResponsePermission | undefined {
    const v = m[key];
    if (typeof v === "boolean") return v ? { ...DEFAULT_RESPONSE_PERMISSION } : undefined;
    if (!isConfigMap(v)) return this.fail(m, key, "error parsing response permissions, expected a boolean or a map");
    const rp = { ...DEFAULT_RESPONSE_PERMISSION };
    for (const k of Object.keys(v)) {
      switch (k.toLowerCase()) {
        case "max":
        case "max_msgs":
        case "max_messages":
        case "max_responses":
          // 0 keeps the default; a negative value means unlimited.
          rp.maxMsgs = this.int(v, k) || rp.maxMsgs;
          break;
        case "expires":
        case "expiration":
        case "ttl":
          rp.expiresMs = this.durationString(v, k, "expires") || rp.expiresMs;
          break;
        default:
          this.unknown(v, k, `Unknown field "${k}" parsing permissions`);
      }
    }
    return rp;
  }
}

function describe(v: ConfigValue | undefined): string {
  if (typeof v === "string") return `string ${JSON.stringify(v)}`;
  if (typeof v === "number") return Number.isInteger(v) ? `integer ${v}` : `float ${v}`;
  if (typeof v === "boolean") return `boolean ${v}`;
  if (v instanceof Date) return `datetime ${v.toISOString()}`;
  if (Array.isArray(v)) return "an array";
  return v === undefined ? "nothing" : "a map";
}

/** Go's net.SplitHostPort: "host:port", "[::1]:port", ":port". */
function splitHostPort(s: string): { host: string; port: string } | undefined {
  if (s.startsWith("[")) {
    const end = s.indexOf("]");
    if (end < 0 || s[end + 1] !== ":") return undefined;
    return { host: s.slice(1, end), port: s.slice(end + 2) };
  }
  const colon = s.lastIndexOf(":");
  if (colon < 0 || s.slice(0, colon).includes(":")) return undefined;
  return { host: s.slice(0, colon), port: s.slice(colon + 1) };
}

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const PREFIX_BYTE_USER = 20 << 3; // "U"

/** A public user NKEY: base32 of [prefix, 32-byte key, CRC16 (little endian)]. */
function isValidPublicUserKey(key: string): boolean {
  if (key.length !== 56) return false;
  const bytes: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const ch of key) {
    const v = BASE32.indexOf(ch);
    if (v < 0) return false;
    acc = ((acc << 5) | v) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      bytes.push((acc >> bits) & 0xff);
    }
  }
  if (bytes.length !== 35 || bytes[0] !== PREFIX_BYTE_USER) return false;
  return crc16(bytes.slice(0, 33)) === (bytes[33] | (bytes[34] << 8));
}

/** CRC-16/XMODEM, as the nkeys libraries use. */
function crc16(bytes: number[]): number {
  let crc = 0;
  for (const b of bytes) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}
