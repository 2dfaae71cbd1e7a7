// Cross-field checks on a built Options, with nats-server 2.9's messages (server.go
// validateOptions, auth.go validateAuth / validateNoAuthUser, jwt.go validateTrustedOperators,
// mqtt.go validateMQTTOptions, websocket.go validateWebsocketOptions, opts.go's authorization and
// accounts checks).
// Errors point at the config line that set the offending field when there is one.

import { natsClaimsOf } from "../nats-jwt.js";
import { sourceOf } from "./reader.js";
import { formatGoDuration } from "./duration.js";
import { ConfigError, type Position } from "./errors.js";
import { goQuote } from "./origin.js";
import { GLOBAL_ACCOUNT, type Options } from "./options.js";
import { subjectIsSubsetOf } from "../subject.js";

/** nats-server 2.9 knows the first six; IN_PROCESS came with 2.10 (in-process clients). */
export const CONNECTION_TYPES = new Set(["STANDARD", "WEBSOCKET", "LEAFNODE", "LEAFNODE_WS", "MQTT", "MQTT_WS", "IN_PROCESS"]);


export function validateOptions(options: Options): void {
  const fallback: Position = { file: options.configFile ?? "<options>", line: 0 };
  const fail = (pos: Position | undefined, reason: string): never => {
    throw ConfigError.at(pos ?? fallback, reason);
  };

  if (options.lameDuckGracePeriodMs >= options.lameDuckDurationMs) {
    fail(
      sourceOf(options, "lameDuckGracePeriodMs") ?? sourceOf(options, "lameDuckDurationMs"),
      `lame duck grace period (${formatGoDuration(options.lameDuckGracePeriodMs)}) should be strictly lower than ` +
        `lame duck duration (${formatGoDuration(options.lameDuckDurationMs)})`,
    );
  }
  if (options.maxPayload > options.maxPending) {
    fail(
      sourceOf(options, "maxPayload") ?? sourceOf(options, "maxPending"),
      `max_payload (${options.maxPayload}) cannot be higher than max_pending (${options.maxPending})`,
    );
  }

  const operatorMode = options.operatorJwts.length > 0;
  if (operatorMode) validateOperatorMode(options, fail);

  const auth = options.authorization;
  // Users of the authorization block (global account) and of every account share one namespace.
  const users = [...(auth?.users ?? []), ...options.accounts.flatMap((a) => a.users)];
  if (auth) {
    const at = sourceOf(options, "authorization");
    if ((auth.user || auth.password) && auth.token) fail(at, "Cannot have a user/pass and token");
    if (auth.users.length > 0 && auth.user) fail(at, "Can not have a single user/pass and a users array");
    if (auth.users.length > 0 && auth.token) fail(at, "Can not have a token and a users array");
    const withUsers = options.accounts.find((a) => a.users.length > 0);
    if (withUsers && auth.user) fail(sourceOf(withUsers, "users"), "Can not have a single user/pass and accounts");
    if (withUsers && auth.token) fail(sourceOf(withUsers, "users"), "Can not have a token and accounts");
  }
  const seen = new Set<string>();
  for (const u of users) {
    const name = u.nkey ?? u.user ?? "";
    if (seen.has(name)) fail(sourceOf(u, "entry"), `Duplicate ${u.nkey ? "nkey" : "user"} ${JSON.stringify(name)} detected`);
    seen.add(name);
    const unknown = (u.allowedConnectionTypes ?? []).filter((t) => !CONNECTION_TYPES.has(t.toUpperCase()));
    if (unknown.length > 0) {
      // Go's %q of a []string: ["A" "B"].
      const list = unknown.map((t) => JSON.stringify(t.toUpperCase())).join(" ");
      fail(sourceOf(u, "allowedConnectionTypes") ?? sourceOf(u, "entry"), `invalid connection types [${list}]`);
    }
  }

  validateAccounts(options, fail);

  // nats-server's validateNoAuthUser, for the main no_auth_user and the mqtt and websocket ones.
  const checkNoAuthUser = (noAuthUser: string | undefined, at: Position | undefined): void => {
    if (!noAuthUser) return;
    if (operatorMode) fail(at, "no_auth_user not compatible with Trusted Operator");
    const named = users.filter((u) => u.user !== undefined);
    if (named.length === 0) fail(at, `no_auth_user: "${noAuthUser}" present, but users are not defined`);
    if (!named.some((u) => u.user === noAuthUser)) {
      fail(at, `no_auth_user: "${noAuthUser}" not present as user in authorization block or account configuration`);
    }
  };
  checkNoAuthUser(options.noAuthUser, sourceOf(options, "noAuthUser"));

  const oidcAccount = options.oidc?.account;
  if (oidcAccount !== undefined && oidcAccount !== GLOBAL_ACCOUNT && !options.accounts.some((a) => a.name === oidcAccount)) {
    fail(sourceOf(options.oidc!, "account"), `oidc account ${JSON.stringify(oidcAccount)} is not a configured account`);
  }

  // nats-server's mqtt.go validateMQTTOptions, in its order; a block without a port left `mqtt`
  // undefined, so none of this applies to it.
  const mqtt = options.mqtt;
  if (mqtt) {
    const entry = sourceOf(mqtt, "entry");
    // nats-server derives stream and consumer names from the server name.
    if (options.serverName === "") fail(entry, "mqtt requires server name to be explicitly set");
    checkNoAuthUser(mqtt.noAuthUser, sourceOf(mqtt, "noAuthUser") ?? entry);
    if (users.length > 0) {
      const at = sourceOf(mqtt, "authorization") ?? entry;
      if (mqtt.authorization?.user) fail(at, "mqtt authentication username not compatible with presence of users/nkeys");
      if (mqtt.authorization?.token) fail(at, "mqtt authentication token not compatible with presence of users/nkeys");
    }
    // 0 in the file already became the 30s default.
    if (mqtt.ackWaitMs < 0) fail(sourceOf(mqtt, "ackWaitMs") ?? entry, "ack wait must be a positive value");
    // nats-server 2.9 also refuses to start a standalone server without JetStream ("mqtt requires
    // JetStream to be enabled if running in standalone mode"): its MQTT sessions, QoS 1 messages
    // and retained messages live in JetStream streams. meshbroker keeps them in its own store
    // (store_dir), so a config is accepted with or without `jetstream {}`.
    const { streamReplicas: sr = 0, consumerReplicas: cr = 0 } = mqtt;
    if (cr > 0 && sr > 0 && cr > sr) {
      fail(sourceOf(mqtt, "consumerReplicas") ?? entry, `mqtt: consumer_replicas (${cr}) cannot be higher than stream_replicas (${sr})`);
    }
  }

  // Last, as nats-server (websocket.go validateWebsocketOptions); a block without a port left
  // `websocket` undefined, so none of this applies to it. Allowed origins are parsed by build.
  const ws = options.websocket;
  if (ws) {
    if (!ws.tls && !ws.noTls) fail(sourceOf(ws, "entry"), "websocket requires TLS configuration");
    checkNoAuthUser(ws.noAuthUser, sourceOf(ws, "noAuthUser") ?? sourceOf(ws, "entry"));
    if (users.length > 0) {
      const at = sourceOf(ws, "authorization") ?? sourceOf(ws, "entry");
      if (ws.authorization?.user) fail(at, "websocket authentication username not compatible with presence of users/nkeys");
      if (ws.authorization?.token) fail(at, "websocket authentication token not compatible with presence of users/nkeys");
    }
    if (ws.jwtCookie && !operatorMode && options.pending.trusted === undefined) {
      fail(sourceOf(ws, "jwtCookie") ?? sourceOf(ws, "entry"),
        `trusted operators or trusted keys configuration is required for JWT authentication via cookie ${goQuote(ws.jwtCookie)}`);
    }
  }
}

type Fail = (pos: Position | undefined, reason: string) => never;

/** nats-server's validateTrustedOperators, and the system account a memory resolver must hold. */
function validateOperatorMode(options: Options, fail: Fail): void {
  const at = sourceOf(options, "operatorJwts");
  if (options.resolver === undefined && options.pending.resolver === undefined) {
    fail(at, "operators require an account resolver to be configured");
  }
  if (options.accounts.length > 0) fail(sourceOf(options, "accounts"), "operators do not allow Accounts to be configured directly");
  if ((options.authorization?.users.length ?? 0) > 0) {
    fail(sourceOf(options, "authorization"), "operators do not allow users to be configured directly");
  }
  if (options.pending.trusted !== undefined) fail(at, "conflicting options for 'TrustedKeys' and 'TrustedOperators'");
  const sys = options.systemAccount;
  if (sys === undefined) return;
  const fromJwts = options.operatorJwts.map((jwt) => natsClaimsOf(jwt).nats.system_account).filter((s) => !!s);
  if (fromJwts.length > 0 && !fromJwts.includes(sys)) {
    fail(sourceOf(options, "systemAccount") ?? at, "system_account in config and operator JWT must be identical");
  }
  if (options.resolver === "MEMORY" && !Object.hasOwn(options.resolverPreload, sys)) {
    fail(sourceOf(options, "systemAccount") ?? sourceOf(options, "resolver") ?? at,
      `error resolving system account: account missing (${sys} is not in resolver_preload)`);
  }
}

/** Cross-account references, as nats-server checks them when it wires imports to exports. */
function validateAccounts(options: Options, fail: Fail): void {
  const byName = new Map(options.accounts.map((a) => [a.name, a]));
  for (const acc of options.accounts) {
    for (const ex of acc.exports) {
      const missing = (ex.accounts ?? []).find((n) => !byName.has(n));
      if (missing !== undefined) fail(sourceOf(ex, "entry"), `"${missing}" account not defined for ${ex.kind} export`);
    }
    for (const im of acc.imports) {
      const from = byName.get(im.account);
      if (!from) fail(sourceOf(im, "entry"), `"${im.account}" account not defined for ${im.kind} import`);
      const authorized = from.exports.some(
        (ex) => ex.kind === im.kind && subjectIsSubsetOf(im.subject, ex.subject) && (!ex.accounts || ex.accounts.includes(acc.name)),
      );
      if (!authorized) {
        fail(sourceOf(im, "entry"), `Error adding ${im.kind} import "${im.subject}": ${im.kind} import not authorized`);
      }
    }
  }
  const sys = options.systemAccount;
  const at = sourceOf(options, "systemAccount");
  // A system_account must be a configured account, "$SYS" included when the config names it
  // (nats-server then fails to start); only the implicit "$SYS" is created.
  const explicit = at !== undefined || sys !== "$SYS";
  if (sys !== undefined && explicit && options.operatorJwts.length === 0 && !byName.has(sys)) {
    fail(at, `error resolving system account: account missing (no account ${JSON.stringify(sys)} in accounts)`);
  }
}
