// Parsed config tree → Options, with nats-server 2.9's key names, aliases and value rules
// (server/opts.go processConfigFileLine). Keys are matched case-insensitively, as there.
// Keys of nats-server features meshbroker does not implement yet are kept in `pending` with a
// warning; keys nats-server does not know are errors, unless they only define a `$variable`.
// Files the config names (TLS certificates, operator JWTs, the OIDC JWKS) are checked here, at
// load time, relative to the working directory as nats-server does.

import { accessSync, constants, readFileSync, statSync } from "node:fs";
import { decodeNatsJwt, natsClaimsOf, unarmorNatsJwt } from "../nats-jwt.js";
import { isPublicNkey } from "../nkeys.js";
import { hasWildcard, isValidSubject } from "../subject.js";
import { formatGoDuration, parseGoDuration } from "./duration.js";
import { ConfigError, type Position } from "./errors.js";
import { parseAllowedOrigin } from "./origin.js";
import {
  GLOBAL_ACCOUNT,
  DEFAULTS,
  type AccountConfig,
  type AllowedOrigin,
  type AuthorizationConfig,
  type ExportConfig,
  type ImportConfig,
  type ListenerAuthorization,
  type MqttConfig,
  type OidcConfig,
  type Options,
  type Permissions,
  type ResponsePermission,
  type SubjectPermission,
  type TlsConfig,
  type UserConfig,
  type WebsocketConfig,
} from "./options.js";
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
      case "accounts":
        o.accounts = b.accounts(tree, key);
        setSource("accounts");
        break;
      case "system_account":
      case "system":
        o.systemAccount = typeof tree[key] === "string" ? tree[key] : b.fail(tree, key, "system account name must be a string");
        setSource("systemAccount");
        break;
      case "operator":
      case "operators":
      case "roots":
      case "root":
      case "root_operators":
      case "root_operator":
        o.operatorJwts = b.operators(tree, key);
        setSource("operatorJwts");
        break;
      case "resolver":
      case "account_resolver":
      case "accounts_resolver":
        o.resolver = b.resolver(tree, key);
        if (o.resolver === undefined) {
          o.pending.resolver = tree[key];
          b.warn(tree, key, `"${key}" of this type is not implemented yet (only MEMORY is), ignored`);
        }
        setSource("resolver");
        break;
      case "resolver_preload":
        o.resolverPreload = b.resolverPreload(tree, key);
        break;
      case "tls":
        o.tls = b.tls(tree, key);
        break;
      case "websocket":
      case "ws":
        // No port: no WebSocket listener (its other settings are still read and checked).
        o.websocket = b.websocket(tree, key);
        break;
      case "mqtt":
        // No port: no MQTT listener, as websocket.
        o.mqtt = b.mqtt(tree, key);
        break;
      case "oidc":
        o.oidc = b.oidc(tree, key);
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
  // nats-server: with TLS the auth timeout defaults to the TLS timeout + 1s.
  if (o.tls) o.authTimeoutMs = o.tls.timeoutMs + 1000;
  if (o.operatorJwts.length > 0) {
    // Operator mode: the first operator's system account unless system_account is set.
    const sys = natsClaimsOf(o.operatorJwts[0]).nats.system_account;
    if (o.systemAccount === undefined && typeof sys === "string" && sys !== "") o.systemAccount = sys;
    if (o.systemAccount === undefined) b.warnings.push(`${where(o, "operatorJwts", file)}: Trusted Operators should utilize a System Account`);
    const a = o.authorization;
    if (a && (a.user !== undefined || a.token !== undefined)) {
      b.warnings.push(`${where(o, "authorization", file)}: authorization user/token is ignored in operator mode (clients authenticate with JWTs)`);
    }
  } else if (o.systemAccount === undefined && o.accounts.length > 0 && o.pending.no_system_account !== true) {
    o.systemAccount = "$SYS";
  }
  if (o.mqtt && o.mqtt.storeDir === undefined) {
    const dir = b.pendingStoreDir(o.pending);
    if (dir) o.mqtt.storeDir = dir;
  }
  return { options: o, warnings: b.warnings };
}

/** "file:line" of a field set from the config. */
function where(o: Options, field: string, file: string): string {
  const p = sourceOf(o, field) ?? { file, line: 0 };
  return `${p.file}:${p.line}`;
}

/** nats-server 2.9 top-level keys meshbroker accepts but does not implement yet (alias → name
 *  kept in `pending`). */
const NOT_YET_IMPLEMENTED: Record<string, string> = {};
for (const names of [
  ["resolver_tls"],
  ["resolver_pinned_accounts"],
  ["no_system_account", "no_system", "no_sys_acc"],
  ["trusted", "trusted_keys"],
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
// misspelt one fails before any value is read (in a pending block: now, not when the feature lands).
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
  "store_dir", // meshbroker's: where MQTT state is kept (nats-server keeps it in JetStream)
]);
const SIMPLE_AUTH_KEYS = new Set(["user", "username", "pass", "password", "token", "timeout"]);
const TLS_KEYS = new Set([
  "cert_file", "key_file", "ca_file", "insecure", "verify", "verify_and_map",
  "verify_cert_and_check_known_urls", "cipher_suites", "curve_preferences", "timeout",
  "connection_rate_limit", "pinned_certs",
]);

const CHECK_PENDING: Record<string, (b: Builder, map: ConfigMap, key: string) => void> = {};

/** nats-server 2.9's cipher suite names (Go's crypto/tls) and curve names. */
const CIPHER_SUITES = new Set([
  "TLS_RSA_WITH_RC4_128_SHA", "TLS_RSA_WITH_3DES_EDE_CBC_SHA", "TLS_RSA_WITH_AES_128_CBC_SHA",
  "TLS_RSA_WITH_AES_128_CBC_SHA256", "TLS_RSA_WITH_AES_256_CBC_SHA", "TLS_RSA_WITH_AES_256_GCM_SHA384",
  "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
  "TLS_ECDHE_RSA_WITH_RC4_128_SHA", "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
  "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
  "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
  "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
  "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
  "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
]);
const CURVES = new Set(["X25519", "CurveP256", "CurveP384", "CurveP521"]);
const TLS_TIMEOUT_MS = 2000;

const OIDC_KEYS = new Set([
  "jwks_file", "issuer", "audience", "user_claim", "account_claim", "account", "permissions_claim",
  "default_permissions", "clock_tolerance",
]);

/** Account keys nats-server 2.9 knows that meshbroker does not implement yet. */
const ACCOUNT_KEYS_NOT_YET_IMPLEMENTED = new Set(["nkey", "jetstream", "limits", "mappings", "maps"]);

const RESPONSE_TYPES: Record<string, ExportConfig["responseType"]> = {
  single: "Singleton", singleton: "Singleton", stream: "Stream", chunk: "Chunked", chunked: "Chunked",
};

/** Go's text for the errno of a failed open, so messages read like nats-server's. */
const ERRNO_TEXT: Record<string, string> = {
  ENOENT: "no such file or directory",
  EACCES: "permission denied",
  ENOTDIR: "not a directory",
  ELOOP: "too many levels of symbolic links",
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

  /** A number of seconds, or a Go duration string (as nats-server's tls timeout). Milliseconds. */
  secondsOrDuration(m: ConfigMap, key: string, field: string): number {
    if (typeof m[key] === "number") return this.seconds(m, key);
    const ms = this.durationString(m, key, field);
    if (ms < 0) this.fail(m, key, `${field} can not be negative`);
    return ms;
  }

  /** A readable regular file, else an error with Go's `open PATH: reason` wording. */
  readableFile(m: ConfigMap, key: string, prefix = ""): string {
    const path = this.str(m, key);
    try {
      if (statSync(path).isDirectory()) this.fail(m, key, `${prefix}read ${path}: is a directory`);
      accessSync(path, constants.R_OK);
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      const code = (err as NodeJS.ErrnoException).code ?? "";
      this.fail(m, key, `${prefix}open ${path}: ${ERRNO_TEXT[code] ?? code}`);
    }
    return path;
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
      if (this.simpleAuthField(am, k, auth)) continue;
      switch (k.toLowerCase()) {
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

  /** A `users` list; `account` names the account block it is in (none: the global account). */
  private users(m: ConfigMap, key: string, account?: string): UserConfig[] {
    const list = m[key];
    if (!Array.isArray(list)) return this.typeError(m, key, "an array of users");
    return list.map((entry, i) => {
      if (!isConfigMap(entry)) return this.typeError(list, i, "a user map");
      const u: UserConfig = account === undefined ? {} : { account };
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
        if (!isPublicNkey(u.nkey, "user")) this.fail(list, i, "Not a valid public nkey for a user");
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

  // ---- tls ----

  /** A `tls {}` block; `listener` names what it secures in warnings. */
  tls(m: ConfigMap, key: string, listener = "client listener"): TlsConfig {
    const tm = this.map(m, key);
    this.checkKeys(tm, TLS_KEYS, key);
    const t: Partial<TlsConfig> & { verify: boolean; verifyAndMap: boolean; timeoutMs: number } = {
      verify: false,
      verifyAndMap: false,
      timeoutMs: TLS_TIMEOUT_MS,
    };
    const files: { cert?: string; key?: string; ca?: string } = {}; // their keys in tm
    for (const k of Object.keys(tm)) {
      switch (k.toLowerCase()) {
        case "cert_file":
          t.certFile = this.str(tm, k);
          files.cert = k;
          break;
        case "key_file":
          t.keyFile = this.str(tm, k);
          files.key = k;
          break;
        case "ca_file":
          t.caFile = this.str(tm, k);
          files.ca = k;
          break;
        case "verify":
          t.verify ||= this.bool(tm, k);
          break;
        case "verify_and_map":
          // As nats-server: true turns verify on too; false leaves verify alone.
          t.verifyAndMap = this.bool(tm, k);
          t.verify ||= t.verifyAndMap;
          break;
        case "verify_cert_and_check_known_urls":
          if (this.bool(tm, k)) this.fail(tm, k, "verify_cert_and_check_known_urls not supported in this context");
          break;
        case "insecure":
          // Skips verification of a server's certificate: meaningless on a listener.
          this.bool(tm, k);
          this.warn(tm, k, `"${k}" has no effect on the ${listener}, ignored`);
          break;
        case "timeout":
          // 0 keeps the default.
          t.timeoutMs = this.secondsOrDuration(tm, k, "tls timeout") || TLS_TIMEOUT_MS;
          break;
        case "cipher_suites":
          t.ciphers = this.nonEmptyNames(tm, k, CIPHER_SUITES, "unrecognized cipher");
          break;
        case "curve_preferences":
          t.curvePreferences = this.nonEmptyNames(tm, k, CURVES, "unrecognized curve preference");
          break;
        case "pinned_certs": {
          const pins = this.strings(tm, k, "hex-encoded sha256 of DER encoded SubjectPublicKeyInfo").map((p) => p.toLowerCase());
          for (const p of pins) {
            if (!/^[0-9a-f]{64}$/.test(p)) {
              this.fail(tm, k, `error parsing tls config, 'pinned_certs' key ${p} does not look like hex-encoded sha256 of DER encoded SubjectPublicKeyInfo`);
            }
          }
          if (pins.length > 0) t.pinnedCerts = pins;
          break;
        }
        case "connection_rate_limit":
          this.int(tm, k);
          this.warn(tm, k, `"${k}" is not implemented yet, ignored`);
          break;
      }
    }
    // Then, as nats-server: the pair must be given, then readable, then the CA.
    if (t.certFile === undefined) this.fail(m, key, "missing 'cert_file' in TLS configuration");
    if (t.keyFile === undefined) this.fail(m, key, "missing 'key_file' in TLS configuration");
    this.readableFile(tm, files.cert!, "error parsing X509 certificate/key pair: ");
    this.readableFile(tm, files.key!, "error parsing X509 certificate/key pair: ");
    if (files.ca !== undefined) this.readableFile(tm, files.ca);
    return t as TlsConfig;
  }

  /** A non-empty list of names from a known set (cipher suites, curves). */
  private nonEmptyNames(m: ConfigMap, key: string, known: Set<string>, unknownReason: string): string[] {
    const names = this.strings(m, key, "names");
    if (names.length === 0) this.fail(m, key, `error parsing tls config, '${key}' cannot be empty`);
    for (const n of names) if (!known.has(n)) this.fail(m, key, `${unknownReason} ${n}`);
    return names;
  }

  // ---- websocket ----

  /** The `websocket {}` block (nats-server parseWebsocket). Undefined without a port: like
   *  nats-server, no listener then, and the cross-field checks (TLS required, origins, auth)
   *  are skipped; the block's keys and values are still checked. */
  websocket(m: ConfigMap, key: string): WebsocketConfig | undefined {
    this.checkListenerBlock(m, key, WEBSOCKET_KEYS);
    const wm = m[key] as ConfigMap;
    const ws: WebsocketConfig = {
      host: "", port: 0, noTls: false, sameOrigin: false, allowedOrigins: [], compression: false, handshakeTimeoutMs: 0,
    };
    noteSource(ws, "entry", this.pos(m, key));
    let host = "";
    let port = 0;
    let origins: { list: string[]; key: string } | undefined;
    for (const k of Object.keys(wm)) {
      switch (k.toLowerCase()) {
        case "listen": {
          const hp = this.hostPort(wm, k);
          host = hp.host;
          port = hp.port;
          break;
        }
        case "port":
          port = this.port(wm, k);
          break;
        case "host":
        case "net":
          host = this.str(wm, k);
          break;
        case "advertise":
          ws.advertise = this.str(wm, k);
          break;
        case "no_tls":
          ws.noTls = this.bool(wm, k);
          break;
        case "tls":
          ws.tls = this.tls(wm, k, "websocket listener");
          break;
        case "same_origin":
          ws.sameOrigin = this.bool(wm, k);
          break;
        case "allowed_origins":
        case "allowed_origin":
        case "allow_origins":
        case "allow_origin":
        case "origins":
        case "origin":
          origins = { list: this.strings(wm, k, "allowed origins"), key: k };
          break;
        case "handshake_timeout":
          ws.handshakeTimeoutMs = this.handshakeTimeout(wm, k);
          break;
        case "compress":
        case "compression":
          ws.compression = this.bool(wm, k);
          break;
        case "authorization":
        case "authentication":
          ws.authorization = this.listenerAuthorization(wm, k);
          noteSource(ws, "authorization", this.pos(wm, k));
          break;
        case "jwt_cookie":
          ws.jwtCookie = this.str(wm, k);
          noteSource(ws, "jwtCookie", this.pos(wm, k));
          break;
        case "no_auth_user":
          ws.noAuthUser = this.str(wm, k);
          noteSource(ws, "noAuthUser", this.pos(wm, k));
          break;
        default:
          this.unknown(wm, k, `unknown field "${k}" in ${key}`);
      }
    }
    if (port === 0) return undefined;
    // nats-server refuses to start when an origin does not parse (and skips one it cannot use,
    // which meshbroker refuses too): checked only for a listener, as there.
    if (origins) {
      const { list, key: ok } = origins;
      const v = wm[ok];
      ws.allowedOrigins = list.map((o, i): AllowedOrigin => {
        try {
          return parseAllowedOrigin(o);
        } catch (err) {
          return Array.isArray(v) ? this.fail(v, i, (err as Error).message) : this.fail(wm, ok, (err as Error).message);
        }
      });
    }
    ws.host = host || DEFAULTS.host;
    ws.port = port === -1 ? 0 : port;
    return ws;
  }

  /** nats-server's websocket handshake_timeout: an integer is seconds, a string a Go duration;
   *  0 or less means no limit. Milliseconds. */
  private handshakeTimeout(m: ConfigMap, key: string): number {
    const v = m[key];
    let ms: number;
    if (typeof v === "number" && Number.isInteger(v)) ms = v * 1000;
    else if (typeof v === "string") {
      try {
        ms = parseGoDuration(v);
      } catch (err) {
        return this.fail(m, key, (err as Error).message);
      }
    } else return this.fail(m, key, `error parsing handshake timeout: unsupported type ${goTypeOf(v)}`);
    return Math.max(ms, 0);
  }

  /** A listener's own `authorization {}` (nats-server parseSimpleAuth): user/pass, token and a
   *  timeout in seconds; `users` and `nkeys` are not allowed there (checkListenerBlock). */
  listenerAuthorization(m: ConfigMap, key: string): ListenerAuthorization {
    const am = this.map(m, key);
    const auth: ListenerAuthorization = {};
    for (const k of Object.keys(am)) {
      if (!this.simpleAuthField(am, k, auth)) this.unknown(am, k, `unknown field "${k}" in ${key}`);
    }
    return auth;
  }

  /** The fields every authorization block has (nats-server's simple auth): user/username,
   *  pass/password, token, and timeout in seconds, where 0 keeps the default. False for others. */
  private simpleAuthField(am: ConfigMap, k: string, auth: ListenerAuthorization): boolean {
    switch (k.toLowerCase()) {
      case "user":
      case "username":
        auth.user = this.str(am, k);
        return true;
      case "pass":
      case "password":
        auth.password = this.str(am, k);
        return true;
      case "token":
        auth.token = this.str(am, k);
        return true;
      case "timeout":
        auth.timeoutMs = this.seconds(am, k) || undefined;
        return true;
      default:
        return false;
    }
  }

  // ---- mqtt ----

  /** The `mqtt {}` block (nats-server parseMQTT). Undefined without a port, as websocket: no
   *  listener then, and validateOptions skips the block; its keys and values are still checked.
   *  nats-server keeps MQTT state in JetStream and tunes it with js_domain, *_replicas and
   *  consumer_*; meshbroker keeps it in its own store (`store_dir`), so those are kept, unused. */
  mqtt(m: ConfigMap, key: string): MqttConfig | undefined {
    this.checkListenerBlock(m, key, MQTT_KEYS);
    const mm = m[key] as ConfigMap;
    const c: MqttConfig = { host: "", port: 0, ackWaitMs: 0, maxAckPending: 0 };
    noteSource(c, "entry", this.pos(m, key));
    let host = "";
    let port = 0;
    const unused: string[] = []; // JetStream-only keys given, for one warning
    for (const k of Object.keys(mm)) {
      const lk = k.toLowerCase();
      const setSource = (field: string) => noteSource(c, field, this.pos(mm, k));
      switch (lk) {
        case "listen": {
          const hp = this.hostPort(mm, k);
          host = hp.host;
          port = hp.port;
          break;
        }
        case "port":
          port = this.port(mm, k);
          break;
        case "host":
        case "net":
          host = this.str(mm, k);
          break;
        case "tls":
          c.tls = this.tls(mm, k, "mqtt listener");
          break;
        case "authorization":
        case "authentication":
          c.authorization = this.listenerAuthorization(mm, k);
          setSource("authorization");
          break;
        case "no_auth_user":
          c.noAuthUser = this.str(mm, k);
          setSource("noAuthUser");
          break;
        case "ack_wait":
        case "ackwait":
          // A negative value is refused when the listener starts (validateOptions), as there.
          c.ackWaitMs = this.signedDuration(mm, k, "ack_wait");
          setSource("ackWaitMs");
          break;
        case "max_ack_pending":
        case "max_pending":
        case "max_inflight": {
          const v = this.int(mm, k);
          if (v < 0 || v > 0xffff) this.fail(mm, k, `invalid value ${v}, should in [0..${0xffff}] range`);
          c.maxAckPending = v;
          break;
        }
        case "store_dir":
          // "" is unset: the jetstream / top-level store_dir, if any, applies.
          c.storeDir = this.str(mm, k) || undefined;
          break;
        case "js_domain":
          c.jsDomain = this.str(mm, k);
          unused.push(k);
          break;
        case "stream_replicas":
          c.streamReplicas = this.int(mm, k);
          unused.push(k);
          break;
        case "consumer_replicas":
          c.consumerReplicas = this.int(mm, k);
          setSource("consumerReplicas");
          unused.push(k);
          break;
        case "consumer_memory_storage":
          c.consumerMemoryStorage = this.bool(mm, k);
          unused.push(k);
          break;
        case "consumer_inactive_threshold":
        case "consumer_auto_cleanup":
          c.consumerInactiveThresholdMs = this.signedDuration(mm, k, "consumer_inactive_threshold");
          unused.push(k);
          break;
      }
    }
    if (port === 0) return undefined;
    if (unused.length > 0) {
      this.warn(mm, unused[0], `${unused.map((k) => `"${k}"`).join(", ")}: JetStream settings of nats-server's MQTT, unused by meshbroker, ignored`);
    }
    c.host = host || DEFAULTS.mqtt.host;
    c.port = port === -1 ? 0 : port;
    // 0 means the default, as nats-server; a negative ack_wait stays for validateOptions.
    c.ackWaitMs ||= DEFAULTS.mqtt.ackWaitMs;
    c.maxAckPending ||= DEFAULTS.mqtt.maxAckPending;
    return c;
  }

  /** nats-server's parseDuration without a sign check: a Go duration string, or (with its
   *  warning) an integer number of seconds. Milliseconds. */
  private signedDuration(m: ConfigMap, key: string, field: string): number {
    const v = m[key];
    if (typeof v === "number" && Number.isInteger(v)) {
      this.warn(m, key, `invalid use of field "${field}": ${field} should be converted to a duration`);
      return v * 1000;
    }
    return this.durationString(m, key, field);
  }

  /** The store_dir of a pending `jetstream {}` block (`store_dir`, `storedir` or `store`), else
   *  the top-level one: where the MQTT block keeps its state when it names no directory. */
  pendingStoreDir(pending: Record<string, unknown>): string | undefined {
    const js = pending.jetstream as ConfigValue | undefined;
    if (isConfigMap(js)) {
      for (const k of Object.keys(js)) {
        if (["store_dir", "storedir", "store"].includes(k.toLowerCase())) {
          const dir = this.str(js, k);
          if (dir) return dir;
        }
      }
    }
    const top = pending.store_dir;
    return typeof top === "string" && top !== "" ? top : undefined;
  }

  // ---- accounts ----

  /** `accounts { NAME: {...} }`, or a list of names, in declaration order. */
  accounts(m: ConfigMap, key: string): AccountConfig[] {
    const v = m[key];
    if (Array.isArray(v)) {
      const seen = new Set<string>();
      return v.map((n, i) => {
        if (typeof n !== "string") return this.typeError(v, i, "an account name");
        if (n === GLOBAL_ACCOUNT) this.fail(v, i, `"${n}" is a Reserved Account`);
        if (seen.has(n)) this.fail(v, i, `Duplicate Account Entry: ${n}`);
        seen.add(n);
        const acc: AccountConfig = { name: n, users: [], exports: [], imports: [] };
        noteSource(acc, "entry", this.pos(v, i));
        return acc;
      });
    }
    if (!isConfigMap(v)) return this.typeError(m, key, "a map of accounts or an array of account names");
    const accounts: AccountConfig[] = [];
    for (const name of Object.keys(v)) {
      if (isUsedVariable(v, name)) continue; // a variable defined for the account blocks
      if (!isConfigMap(v[name])) this.fail(v, name, "Expected map entries for accounts");
      if (name === GLOBAL_ACCOUNT) this.fail(v, name, `"${name}" is a Reserved Account`);
      accounts.push(this.account(v, name));
    }
    return accounts;
  }

  private account(m: ConfigMap, name: string): AccountConfig {
    const am = m[name] as ConfigMap;
    const acc: AccountConfig = { name, users: [], exports: [], imports: [] };
    noteSource(acc, "entry", this.pos(m, name));
    for (const k of Object.keys(am)) {
      const lk = k.toLowerCase();
      if (lk === "users") {
        acc.users = this.users(am, k, name);
        noteSource(acc, "users", this.pos(am, k));
      } else if (lk === "exports") {
        acc.exports = this.list(am, k, "an array of exports", (e, list, i) => this.export(e, list, i));
      } else if (lk === "imports") {
        acc.imports = this.list(am, k, "an array of imports", (e, list, i) => this.import(e, list, i));
      } else if (lk === "default_permissions") {
        acc.defaultPermissions = this.permissions(am, k);
      } else if (ACCOUNT_KEYS_NOT_YET_IMPLEMENTED.has(lk)) {
        this.warn(am, k, `"${k}" in account "${name}" is not implemented yet, ignored`);
      } else {
        this.unknown(am, k, `unknown field "${k}" in account "${name}"`);
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
  private list<T extends object>(m: ConfigMap, key: string, what: string, read: (e: ConfigMap, list: ConfigValue[], i: number) => T): T[] {
    const list = m[key];
    if (!Array.isArray(list)) return this.typeError(m, key, what);
    return list.map((e, i) => {
      if (!isConfigMap(e)) return this.typeError(list, i, "a map");
      const item = read(e, list, i);
      noteSource(item, "entry", this.pos(list, i));
      return item;
    });
  }

  /** `{stream: subject, accounts: [...]}` or `{service: subject, accounts: [...], response_type: ...}`. */
  private export(e: ConfigMap, list: ConfigValue[], i: number): ExportConfig {
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
          if (kind !== undefined && kind !== lk) this.fail(e, k, `Detected ${lk} ${JSON.stringify(e[k])} but already saw a ${kind}`);
          kind = lk;
          subject = this.subject(e, k);
          break;
        case "accounts":
          // An empty list is public, as in nats-server.
          accounts = this.strings(e, k, "account names");
          if (accounts.length === 0) accounts = undefined;
          break;
        case "response":
        case "response_type": {
          const rt = this.str(e, k);
          responseType = RESPONSE_TYPES[rt.toLowerCase()];
          if (responseType === undefined) this.fail(e, k, `Unknown response type: ${JSON.stringify(rt)}`);
          responseKey = k;
          break;
        }
        case "threshold":
        case "response_threshold":
        case "response_max_time":
        case "response_time":
        case "latency":
          this.warn(e, k, `"${k}" in exports is not implemented yet, ignored`);
          break;
        case "account_token_position":
          // Ignoring it would make the export public: refuse instead.
          this.fail(e, k, `"${k}" is not supported yet`);
          break;
        default:
          this.unknown(e, k);
      }
    }
    if (kind === undefined) this.fail(list, i, "an export needs a \"stream\" or a \"service\" subject");
    if (kind === "stream" && responseKey !== undefined) this.fail(e, responseKey, "Detected response directive on non-service");
    const ex: ExportConfig = { kind, subject };
    if (accounts) ex.accounts = accounts;
    if (responseType) ex.responseType = responseType;
    return ex;
  }

  /** `{stream: {account, subject}, prefix | to}` or `{service: {account, subject}, to}`. */
  private import(e: ConfigMap, list: ConfigValue[], i: number): ImportConfig {
    let im: ImportConfig | undefined;
    let to: string | undefined;
    let prefix: string | undefined;
    let prefixKey = "";
    for (const k of Object.keys(e)) {
      const lk = k.toLowerCase();
      switch (lk) {
        case "stream":
        case "service": {
          if (im && im.kind !== lk) this.fail(e, k, `Detected ${lk} but already saw a ${im.kind}`);
          const src = this.map(e, k);
          let account = "";
          let subject = "";
          for (const sk of Object.keys(src)) {
            const lsk = sk.toLowerCase();
            if (lsk === "account") account = this.str(src, sk);
            else if (lsk === "subject") subject = this.subject(src, sk);
            else this.unknown(src, sk);
          }
          if (account === "" || subject === "") this.fail(e, k, "Expect an account name and a subject");
          im = { kind: lk, account, subject };
          break;
        }
        case "prefix":
          prefix = this.str(e, k);
          prefixKey = k;
          break;
        case "to":
          to = this.subject(e, k);
          break;
        case "share":
          this.bool(e, k);
          this.warn(e, k, `"${k}" in imports is not implemented yet, ignored`);
          break;
        default:
          this.unknown(e, k);
      }
    }
    if (!im) return this.fail(list, i, "an import needs a \"stream\" or a \"service\" map");
    if (im.kind === "stream" && prefix !== undefined && to !== undefined) {
      this.fail(list, i, "Stream import can not have a 'prefix' and a 'to' property");
    }
    if (im.kind === "service" && prefix !== undefined) this.fail(e, prefixKey, "a service import takes 'to', not 'prefix'");
    // The prefix is prepended to published subjects (with a "." unless it ends in one), so it
    // must be a literal.
    const bare = prefix?.endsWith(".") ? prefix.slice(0, -1) : prefix;
    if (bare !== undefined && (!isValidSubject(bare) || hasWildcard(bare))) {
      this.fail(e, prefixKey, `Error adding stream import "${im.subject}": stream import prefix can not contain wildcard tokens`);
    }
    if (to !== undefined) im.to = to;
    if (prefix !== undefined) im.prefix = prefix;
    return im;
  }

  private subject(m: ConfigMap, key: string): string {
    const s = this.str(m, key);
    if (!isValidSubject(s)) this.fail(m, key, `subject ${JSON.stringify(s)} is not a valid subject`);
    return s;
  }

  // ---- operator mode ----

  /** Operator JWTs: inline, or files holding one (bare or between armor lines), or a list. */
  operators(m: ConfigMap, key: string): string[] {
    const v = m[key];
    const list = Array.isArray(v) ? v : [v];
    return list.map((item, i) => {
      const [c, k]: [ConfigMap | ConfigValue[], string | number] = Array.isArray(v) ? [v, i] : [m, key];
      if (typeof item !== "string") return this.fail(c, k, `error parsing operators: unsupported type ${describe(item)}`);
      let text: string;
      try {
        text = readFileSync(item, "utf8");
      } catch (err) {
        // Not a readable file: maybe the JWT itself.
        if (!item.startsWith("eyJ")) {
          const code = (err as NodeJS.ErrnoException).code ?? "";
          return this.fail(c, k, `error parsing operator JWT: open ${item}: ${ERRNO_TEXT[code] ?? code}`);
        }
        text = item;
      }
      const jwt = unarmorNatsJwt(text);
      try {
        checkNatsJwt(jwt, "operator");
      } catch (err) {
        return this.fail(c, k, `error parsing operator JWT: ${(err as Error).message}`);
      }
      return jwt;
    });
  }

  /** "MEMORY" (or "MEM"); undefined for the kinds meshbroker does not implement (URL(...),
   *  {type: full|cache, dir}), which the caller keeps pending. */
  resolver(m: ConfigMap, key: string): "MEMORY" | undefined {
    const v = m[key];
    const invalid = () =>
      this.fail(m, key, `error parsing account resolver, should be MEM or URL("url") or a map containing dir and type state=[FULL|CACHE])`);
    if (typeof v === "string") {
      const s = v.trim().toUpperCase();
      if (s === "MEM" || s === "MEMORY") return "MEMORY";
      if (/^URL\(\s*"?[^\s"]+"?\s*\)$/i.test(v.trim())) return undefined;
      return invalid();
    }
    if (!isConfigMap(v)) return this.fail(m, key, `error parsing operator resolver, wrong type ${describe(v)}`);
    const lower = new Map(Object.keys(v).map((k) => [k.toLowerCase(), v[k]]));
    const dir = lower.get("dir");
    if (typeof dir !== "string" || dir === "") this.fail(m, key, "dir has no value and needs to point to a directory");
    const type = lower.get("type");
    if (typeof type !== "string" || !["FULL", "CACHE"].includes(type.toUpperCase())) return invalid();
    return undefined;
  }

  /** `resolver_preload { ACCOUNT_PUBKEY: "account JWT" }`. */
  resolverPreload(m: ConfigMap, key: string): Record<string, string> {
    const v = m[key];
    if (!isConfigMap(v)) return this.fail(m, key, "preload should be a map of account_public_key:account_jwt");
    const out: Record<string, string> = {};
    for (const k of Object.keys(v)) {
      const jwt = v[k];
      if (typeof jwt !== "string") this.fail(v, k, "preload map value should be a string JWT");
      try {
        checkNatsJwt(jwt, "account");
      } catch {
        this.fail(v, k, "invalid account JWT");
      }
      out[k] = jwt;
    }
    return out;
  }

  // ---- oidc (meshbroker extension) ----

  oidc(m: ConfigMap, key: string): OidcConfig {
    const om = this.map(m, key);
    this.checkKeys(om, OIDC_KEYS, key);
    const c: Omit<OidcConfig, "jwksFile"> & { jwksFile?: string } = { userClaim: "sub", clockToleranceSec: 60 };
    for (const k of Object.keys(om)) {
      switch (k.toLowerCase()) {
        case "jwks_file":
          c.jwksFile = this.readableFile(om, k, "error reading jwks_file: ");
          break;
        case "issuer":
          c.issuer = this.str(om, k);
          break;
        case "audience":
          c.audience = this.str(om, k);
          break;
        case "user_claim":
          c.userClaim = this.str(om, k);
          break;
        case "account_claim":
          c.accountClaim = this.str(om, k);
          break;
        case "account":
          c.account = this.str(om, k);
          noteSource(c, "account", this.pos(om, k));
          break;
        case "permissions_claim":
          c.permissionsClaim = this.str(om, k);
          break;
        case "default_permissions":
          c.defaultPermissions = this.permissions(om, k);
          break;
        case "clock_tolerance":
          c.clockToleranceSec = this.secondsOrDuration(om, k, "clock_tolerance") / 1000;
          break;
      }
    }
    if (c.jwksFile === undefined) this.fail(m, key, `oidc requires "jwks_file"`);
    return c as OidcConfig;
  }
}

/** nats-io/jwt DecodeOperatorClaims / DecodeAccountClaims: a JWT of that claim type, signed by
 *  an operator key. Throws an Error with nats-io/jwt's wording. */
function checkNatsJwt(jwt: string, kind: "operator" | "account"): void {
  if (decodeNatsJwt(jwt, "operator").kind !== kind) throw new Error(`not ${kind} claim`);
}

function describe(v: ConfigValue | undefined): string {
  if (typeof v === "string") return `string ${JSON.stringify(v)}`;
  if (typeof v === "number") return Number.isInteger(v) ? `integer ${v}` : `float ${v}`;
  if (typeof v === "boolean") return `boolean ${v}`;
  if (v instanceof Date) return `datetime ${v.toISOString()}`;
  if (Array.isArray(v)) return "an array";
  return v === undefined ? "nothing" : "a map";
}

/** Go's %T of a config value, for messages nats-server words that way. */
function goTypeOf(v: ConfigValue | undefined): string {
  if (typeof v === "string") return "string";
  if (typeof v === "number") return Number.isInteger(v) ? "int64" : "float64";
  if (typeof v === "boolean") return "bool";
  if (v instanceof Date) return "time.Time";
  if (Array.isArray(v)) return "[]interface {}";
  return v === undefined ? "<nil>" : "map[string]interface {}";
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
