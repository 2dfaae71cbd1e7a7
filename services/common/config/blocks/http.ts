// The monitoring listener: top-level `http: "host:port"` (or a port), `http_port` /
// `monitor_port`, read by the shared listener builder.

import type { ConfigMap } from "../parser.js";
import type { Reader } from "../reader.js";
import { listenerField, type ListenerFields } from "./listener.js";

/** Reads a monitoring key into `l`; false for any other key. */
export function monitorField(r: Reader, m: ConfigMap, k: string, l: ListenerFields): boolean {
  switch (k.toLowerCase()) {
    case "http":
      return listenerField(r, m, k, l, "monitoring listener", "listen");
    case "http_port":
    case "monitor_port":
      return listenerField(r, m, k, l, "monitoring listener", "port");
    default:
      return false;
  }
}

/** Monitoring's port: 0 (or none) means off, -1 a random port. */
export function monitorPort(l: ListenerFields): number | undefined {
  return l.port === 0 ? undefined : l.port === -1 ? 0 : l.port;
}
