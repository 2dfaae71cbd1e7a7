// The one listener builder: the keys every listening block shares (listen, host/net, port,
// advertise, tls, no_tls), read the same way for the client listener, `websocket {}`,
// `mqtt {}`, `http` and `router {}`. Which of them a block accepts is its key set's business
// (checkListenerBlock refuses the others before any value is read); what port 0 and -1 mean
// differs per block, so the raw port is kept and each block resolves it (resolvePort).

import type { TlsConfig } from "../options.js";
import type { ConfigMap, ConfigValue } from "../parser.js";
import { describe, splitHostPort, type Reader } from "../reader.js";
import { SIMPLE_AUTH_KEYS } from "./authorization.js";
import { readTls, TLS_KEYS } from "./tls.js";

/** A listener's address and security, as read: `port` raw (0 unset, -1 random), `host` "" unset. */
export interface ListenerFields {
  host: string;
  port: number;
  advertise?: string;
  tls?: TlsConfig;
  noTls: boolean;
}

export function listenerFields(): ListenerFields {
  return { host: "", port: 0, noTls: false };
}

/** Reads `m[k]` into `l` when k is a listener key; false for any other key. `what` names the
 *  listener in TLS warnings; `as` reads k as that listener key (top-level `http` is a `listen`). */
export function listenerField(r: Reader, m: ConfigMap, k: string, l: ListenerFields, what: string, as = k.toLowerCase()): boolean {
  switch (as) {
    case "listen": {
      const hp = r.hostPort(m, k);
      l.host = hp.host;
      l.port = hp.port;
      return true;
    }
    case "host":
    case "net":
      l.host = r.str(m, k);
      return true;
    case "port":
      l.port = r.port(m, k);
      return true;
    case "advertise": // "$POD_IP:443": a host:port the format's own variables cannot build
      l.advertise = r.expandEnv(m, k);
      return true;
    case "tls":
      l.tls = readTls(r, m, k, what);
      return true;
    case "no_tls":
      l.noTls = r.bool(m, k);
      return true;
    default:
      return false;
  }
}

/** A raw port as the block means it: -1 is a random port (0 to bind), 0 is `unset`. */
export function resolvePort(raw: number, unset: number): number {
  return raw === -1 ? 0 : raw === 0 ? unset : raw;
}

/** Checks a listener block's keys, and those of its `tls {}` and `authorization {}`, before any
 *  value is read (in a block with no port too, so a misspelling never waits for the port). */
export function checkListenerBlock(r: Reader, m: ConfigMap, key: string, allowed: Set<string>): void {
  const block = r.map(m, key);
  r.checkKeys(block, allowed, key);
  for (const k of Object.keys(block)) {
    const lk = k.toLowerCase();
    if (lk === "tls") r.checkKeys(r.map(block, k), TLS_KEYS, `${key}.tls`);
    if (lk === "authorization" || lk === "authentication") {
      r.checkKeys(r.map(block, k), SIMPLE_AUTH_KEYS, `${key}.${k}`);
    }
  }
}

/** An address this process dials: "host:port", both given, the port 1..65535. `c[key]` is a
 *  map entry or an array element; `v` its value, unless already transformed (Reader.expandEnv). */
export function dialAddress(
  r: Reader, c: ConfigMap | ConfigValue[], key: string | number, v = (c as Record<string | number, ConfigValue>)[key],
): { host: string; port: number } {
  if (typeof v !== "string") return r.fail(c, key, `expected "host:port", got ${describe(v)}`);
  const hp = splitHostPort(v);
  const port = hp && /^\d+$/.test(hp.port) ? Number(hp.port) : NaN;
  if (!hp || hp.host === "" || !(port >= 1 && port <= 65535)) r.fail(c, key, `expected "host:port", got ${JSON.stringify(v)}`);
  return { host: hp.host, port };
}

/** A non-empty list of "host:port". */
export function dialAddresses(r: Reader, m: ConfigMap, key: string): { host: string; port: number }[] {
  const v = m[key];
  const list: ConfigValue[] = Array.isArray(v) ? v : r.fail(m, key, `"${key}" must be a list of "host:port"`);
  if (list.length === 0) r.fail(m, key, `"${key}" can not be empty`);
  return list.map((_, i) => dialAddress(r, list, i));
}
