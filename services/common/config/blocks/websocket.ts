// The `websocket {}` block (nats-server parseWebsocket).

import { parseGoDuration } from "../duration.js";
import { parseAllowedOrigin } from "../origin.js";
import { DEFAULTS, type AllowedOrigin, type WebsocketConfig } from "../options.js";
import type { ConfigMap } from "../parser.js";
import { goTypeOf, noteSource, type Reader } from "../reader.js";
import { readListenerAuthorization } from "./authorization.js";
import { checkListenerBlock, listenerField, listenerFields, resolvePort } from "./listener.js";

// Sub-keys nats-server 2.9 accepts, so a misspelt one fails before any value is read.
const WEBSOCKET_KEYS = new Set([
  "listen", "port", "host", "net", "advertise", "no_tls", "tls", "same_origin",
  "allowed_origins", "allowed_origin", "allow_origins", "allow_origin", "origins", "origin",
  "handshake_timeout", "compress", "compression", "authorization", "authentication", "jwt_cookie", "no_auth_user",
]);

/** The `websocket {}` block (nats-server parseWebsocket). Undefined without a port: like
 *  nats-server, no listener then, and the cross-field checks (TLS required, origins, auth)
 *  are skipped; the block's keys and values are still checked. */
export function readWebsocket(r: Reader, m: ConfigMap, key: string): WebsocketConfig | undefined {
  checkListenerBlock(r, m, key, WEBSOCKET_KEYS);
  const wm = m[key] as ConfigMap;
  const ws: WebsocketConfig = {
    host: "", port: 0, noTls: false, sameOrigin: false, allowedOrigins: [], compression: false, handshakeTimeoutMs: 0,
  };
  noteSource(ws, "entry", r.pos(m, key));
  const l = listenerFields();
  let origins: { list: string[]; key: string } | undefined;
  for (const k of Object.keys(wm)) {
    if (listenerField(r, wm, k, l, "websocket listener")) continue;
    switch (k.toLowerCase()) {
      case "same_origin":
        ws.sameOrigin = r.bool(wm, k);
        break;
      case "allowed_origins":
      case "allowed_origin":
      case "allow_origins":
      case "allow_origin":
      case "origins":
      case "origin":
        origins = { list: r.strings(wm, k, "allowed origins"), key: k };
        break;
      case "handshake_timeout":
        ws.handshakeTimeoutMs = readHandshakeTimeout(r, wm, k);
        break;
      case "compress":
      case "compression":
        ws.compression = r.bool(wm, k);
        break;
      case "authorization":
      case "authentication":
        ws.authorization = readListenerAuthorization(r, wm, k);
        noteSource(ws, "authorization", r.pos(wm, k));
        break;
      case "jwt_cookie":
        ws.jwtCookie = r.str(wm, k);
        noteSource(ws, "jwtCookie", r.pos(wm, k));
        break;
      case "no_auth_user":
        ws.noAuthUser = r.str(wm, k);
        noteSource(ws, "noAuthUser", r.pos(wm, k));
        break;
      default:
        r.unknown(wm, k, `unknown field "${k}" in ${key}`);
    }
  }
  if (l.port === 0) return undefined;
  // nats-server refuses to start when an origin does not parse (and skips one it cannot use,
  // which meshbroker refuses too): checked only for a listener, as there.
  if (origins) {
    const { list, key: ok } = origins;
    const v = wm[ok];
    ws.allowedOrigins = list.map((o, i): AllowedOrigin => {
      try {
        return parseAllowedOrigin(o);
      } catch (err) {
        return Array.isArray(v) ? r.fail(v, i, (err as Error).message) : r.fail(wm, ok, (err as Error).message);
      }
    });
  }
  ws.host = l.host || DEFAULTS.host;
  ws.port = resolvePort(l.port, 0);
  ws.noTls = l.noTls;
  if (l.advertise !== undefined) ws.advertise = l.advertise;
  if (l.tls) ws.tls = l.tls;
  return ws;
}

/** nats-server's websocket handshake_timeout: an integer is seconds, a string a Go duration;
 *  0 or less means no limit. Milliseconds. */
export function readHandshakeTimeout(r: Reader, m: ConfigMap, key: string): number {
  const v = m[key];
  let ms: number;
  if (typeof v === "number" && Number.isInteger(v)) ms = v * 1000;
  else if (typeof v === "string") {
    try {
      ms = parseGoDuration(v);
    } catch (err) {
      return r.fail(m, key, (err as Error).message);
    }
  } else return r.fail(m, key, `error parsing handshake timeout: unsupported type ${goTypeOf(v)}`);
  return Math.max(ms, 0);
}
