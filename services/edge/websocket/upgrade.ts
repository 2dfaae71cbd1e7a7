// The checks an HTTP upgrade request must pass before it becomes a WebSocket, in nats-server's
// order and with its statuses. The reason goes to the log only; the client sees the bare
// status text.
import type { IncomingMessage } from "node:http";
import type { AllowedOrigin, WebsocketConfig } from "../../common/config/options.js";

export interface Refusal {
  status: number;
  /** For the log, never sent. */
  reason: string;
}

const KEY = /^[+/0-9A-Za-z]{22}==$/;

/** Undefined when the request may be upgraded. `mqttEnabled`: whether /mqtt paths are served. */
export function checkUpgrade(req: IncomingMessage, cfg: WebsocketConfig, mqttEnabled: boolean): Refusal | undefined {
  if (req.method !== "GET") return { status: 405, reason: "request method must be GET" };
  const host = req.headers.host;
  if (!host) return { status: 400, reason: "'Host' missing in request" };
  if (!hasToken(req.headers.upgrade, "websocket")) return { status: 400, reason: "invalid value for header 'Upgrade'" };
  if (!hasToken(req.headers.connection, "upgrade")) return { status: 400, reason: "invalid value for header 'Connection'" };
  const key = req.headers["sec-websocket-key"];
  if (!key) return { status: 400, reason: "key missing" };
  if (!hasToken(req.headers["sec-websocket-version"], "13")) return { status: 400, reason: "invalid version" };
  // The Origin is looked at only when a check is configured (then "null" or an extension's
  // origin is refused); without checks any Origin, even "null" from a file:// page, is fine.
  const origin = req.headers.origin;
  if (origin !== undefined && (cfg.sameOrigin || cfg.allowedOrigins.length > 0)) {
    const refused = checkOrigin(origin, host, cfg, isSecure(req));
    if (refused) return { status: 403, reason: `origin not allowed: ${refused}` };
  }
  // nats-server 2.10+ also rejects a malformed key; the ws library needs a valid one.
  if (typeof key !== "string" || !KEY.test(key)) return { status: 400, reason: "invalid websocket key" };
  if (isMqttPath(req.url ?? "/") && !mqttEnabled) return { status: 404, reason: "MQTT is not enabled" };
  return undefined;
}

/** MQTT over WebSocket: a path ending in /mqtt (a suffix, so ingress path prefixes work). */
export function isMqttPath(url: string): boolean {
  // Asked three times per upgrade: scanned in place, no substrings.
  let end = url.indexOf("?");
  if (end < 0) end = url.length;
  while (end > 0 && url.charCodeAt(end - 1) === SLASH) end--;
  return end >= 5 && url.startsWith("/mqtt", end - 5);
}

const SLASH = 47;

/** Why the Origin is refused, or undefined. */
function checkOrigin(origin: string, host: string, cfg: WebsocketConfig, secure: boolean): string | undefined {
  const o = parseOrigin(origin);
  if (!o) return "invalid origin";
  if (cfg.sameOrigin) {
    // The Origin's host:port must equal the request's Host literally (localhost is not 127.0.0.1).
    const h = splitHostPort(host, secure ? 443 : 80);
    if (!h || h.host.toLowerCase() !== o.host || h.port !== o.port) return "not same origin";
  }
  if (cfg.allowedOrigins.length > 0 &&
      !cfg.allowedOrigins.some((a) => a.scheme === o.scheme && a.host === o.host && a.port === o.port)) {
    return "not in the allowed list";
  }
  return undefined;
}

function parseOrigin(origin: string): AllowedOrigin | undefined {
  let u: URL;
  try {
    u = new URL(origin);
  } catch {
    return undefined;
  }
  const scheme = u.protocol === "https:" ? "https" : u.protocol === "http:" ? "http" : undefined;
  if (!scheme) return undefined;
  const port = u.port ? Number(u.port) : scheme === "https" ? 443 : 80;
  return { scheme, host: u.hostname.toLowerCase().replace(/^\[|\]$/g, ""), port };
}

function splitHostPort(hostHeader: string, defaultPort: number): { host: string; port: number } | undefined {
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(hostHeader);
  if (!m) return undefined;
  return { host: m[1].replace(/^\[|\]$/g, ""), port: m[2] ? Number(m[2]) : defaultPort };
}

function hasToken(value: string | string[] | undefined, token: string): boolean {
  if (value === undefined) return false;
  // Usually the bare token: a value of its length can only match as a whole.
  if (typeof value === "string" && value.length === token.length) return value.toLowerCase() === token;
  const text = Array.isArray(value) ? value.join(",") : value;
  return text.split(",").some((t) => t.trim().toLowerCase() === token);
}

function isSecure(req: IncomingMessage): boolean {
  return (req.socket as { encrypted?: boolean }).encrypted === true;
}
