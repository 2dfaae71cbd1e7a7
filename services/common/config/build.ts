// Parsed config tree → Options, with nats-server 2.9's key names, aliases and value rules
// (server/opts.go processConfigFileLine). Keys are matched case-insensitively, as there.
// Keys of nats-server features meshbroker does not implement yet are kept in `pending` with a
// warning; keys nats-server does not know are errors, unless they only define a `$variable`.
// Files the config names (TLS certificates, operator JWTs, the OIDC JWKS) are checked here, at
// load time, relative to the working directory as nats-server does.

import { natsClaimsOf } from "../nats-jwt.js";
import { formatGoDuration } from "./duration.js";
import { readAccounts } from "./blocks/accounts.js";
import { readAuthorization } from "./blocks/authorization.js";
import { readEdge } from "./blocks/edge.js";
import { monitorField, monitorPort } from "./blocks/http.js";
import { listenerField, listenerFields, resolvePort } from "./blocks/listener.js";
import { pendingStoreDir, readMqtt } from "./blocks/mqtt.js";
import { readOidc } from "./blocks/oidc.js";
import { readOperators, readResolver, readResolverPreload } from "./blocks/operator.js";
import { readRouter } from "./blocks/router.js";
import { readWebsocket } from "./blocks/websocket.js";
import { DEFAULTS, type Options } from "./options.js";
import type { ConfigMap } from "./parser.js";
import { noteSource, Reader, sourceOf } from "./reader.js";

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

/** `env` expands `$NAME` inside meshbroker's address strings (Reader.expandEnv). */
export function buildOptions(tree: ConfigMap, file: string, env: NodeJS.ProcessEnv = {}): BuildResult {
  const b: Reader = new Reader(file, env); // typed, so its never-returning fail() narrows
  const o = applyDefaults();
  // Raw listener values, whose "0 means default" rules are resolved at the end.
  const client = listenerFields();
  const http = listenerFields();

  for (const key of Object.keys(tree)) {
    const name = key.toLowerCase();
    const at = b.pos(tree, key);
    const setSource = (field: string) => noteSource(o, field, at);
    switch (name) {
      case "listen":
      case "port":
        listenerField(b, tree, key, client, "client listener");
        setSource("port");
        break;
      case "host":
      case "net":
        listenerField(b, tree, key, client, "client listener");
        break;
      case "server_name":
        o.serverName = b.str(tree, key);
        break;
      case "client_advertise":
        o.clientAdvertise = b.expandEnv(tree, key); // "$POD_IP:4222", as router { advertise }
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
        o.authorization = readAuthorization(b, tree, key);
        setSource("authorization");
        break;
      case "accounts":
        o.accounts = readAccounts(b, tree, key);
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
        o.operatorJwts = readOperators(b, tree, key);
        setSource("operatorJwts");
        break;
      case "resolver":
      case "account_resolver":
      case "accounts_resolver":
        o.resolver = readResolver(b, tree, key);
        if (o.resolver === undefined) {
          o.pending.resolver = tree[key];
          b.warn(tree, key, `"${key}" of this type is not implemented yet (only MEMORY is), ignored`);
        }
        setSource("resolver");
        break;
      case "resolver_preload":
        o.resolverPreload = readResolverPreload(b, tree, key);
        break;
      case "tls":
        listenerField(b, tree, key, client, "client listener");
        break;
      case "websocket":
      case "ws":
        // No port: no WebSocket listener (its other settings are still read and checked).
        o.websocket = readWebsocket(b, tree, key);
        break;
      case "mqtt":
        // No port: no MQTT listener, as websocket.
        o.mqtt = readMqtt(b, tree, key);
        break;
      case "oidc":
        o.oidc = readOidc(b, tree, key);
        break;
      case "no_auth_user":
        o.noAuthUser = b.str(tree, key);
        setSource("noAuthUser");
        break;
      case "http":
      case "http_port":
      case "monitor_port":
        monitorField(b, tree, key, http);
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
      // meshbroker's own blocks, for the cluster roles.
      case "router":
        o.router = readRouter(b, tree, key);
        break;
      case "edge":
        o.edge = readEdge(b, tree, key);
        break;
      default: {
        const canonical = NOT_YET_IMPLEMENTED[name];
        if (canonical === undefined) {
          b.unknown(tree, key);
          break;
        }
        o.pending[canonical] = tree[key];
        b.warn(tree, key, `"${key}" is not implemented yet, ignored`);
      }
    }
  }

  // nats-server: port 0 (or none) means the default port, -1 a random one.
  o.host = client.host || DEFAULTS.host;
  o.port = resolvePort(client.port, DEFAULTS.port);
  if (client.tls) o.tls = client.tls;
  o.httpHost = http.host || o.host;
  o.httpPort = monitorPort(http);
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
    const dir = pendingStoreDir(b, o.pending);
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
