// Cross-field checks on a built Options, with nats-server 2.9's messages (server.go
// validateOptions, auth.go validateAuth / validateNoAuthUser, opts.go's authorization checks).
// Errors point at the config line that set the offending field when there is one.

import { sourceOf } from "./build.js";
import { formatGoDuration } from "./duration.js";
import { ConfigError, type Position } from "./errors.js";
import type { Options } from "./options.js";

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

  const auth = options.authorization;
  const users = auth?.users ?? [];
  if (auth) {
    const at = sourceOf(options, "authorization");
    if ((auth.user || auth.password) && auth.token) fail(at, "Cannot have a user/pass and token");
    if (users.length > 0 && auth.user) fail(at, "Can not have a single user/pass and a users array");
    if (users.length > 0 && auth.token) fail(at, "Can not have a token and a users array");
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

  const noAuthUser = options.noAuthUser;
  if (noAuthUser) {
    const at = sourceOf(options, "noAuthUser");
    const named = users.filter((u) => u.user !== undefined);
    if (named.length === 0) fail(at, `no_auth_user: "${noAuthUser}" present, but users are not defined`);
    if (!named.some((u) => u.user === noAuthUser)) {
      fail(at, `no_auth_user: "${noAuthUser}" not present as user in authorization block or account configuration`);
    }
  }
}
