// meshbroker's `edge {}` block: how `meshbroker edge` finds its routers (a list, DNS or a
// Kubernetes Service), the TLS and credential it attaches with, and how it rebalances clients.

import { DEFAULTS, type EdgeConfig, type RouterDiscovery } from "../options.js";
import type { ConfigMap } from "../parser.js";
import type { Reader } from "../reader.js";
import { readClusterAuthorization } from "./authorization.js";
import { dialAddress, dialAddresses } from "./listener.js";
import { readClientTls } from "./tls.js";

const EDGE_KEYS = new Set(["routers", "discovery", "tls", "authorization", "rebalance", "no_advertise"]);
const DISCOVERY_KEYS = new Set(["dns", "kubernetes", "refresh"]);
/** How often a DNS name is resolved again (`discovery { refresh: "5s" }`). */
export const DNS_REFRESH_MS = 5_000;
const KUBERNETES_KEYS = new Set(["service", "namespace", "port"]);
const REBALANCE_KEYS = new Set(["max_evictions_per_second", "tolerance", "min_excess"]);
/** A Kubernetes object name (RFC 1123 label), as Services and namespaces must be. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export function readEdge(r: Reader, m: ConfigMap, key: string): EdgeConfig {
  const em = r.map(m, key);
  r.checkKeys(em, EDGE_KEYS, key);
  let discovery: RouterDiscovery | undefined;
  const c: Omit<EdgeConfig, "discovery"> = { rebalance: { ...DEFAULTS.edge.rebalance } };
  for (const k of Object.keys(em)) {
    switch (k.toLowerCase()) {
      case "routers":
      case "discovery":
        if (discovery) r.fail(em, k, `edge takes "routers" or "discovery", not both`);
        discovery = k.toLowerCase() === "routers" ? { routers: dialAddresses(r, em, k) } : readDiscovery(r, em, k);
        break;
      case "tls":
        c.tls = readClientTls(r, em, k);
        break;
      case "authorization":
        c.authorization = readClusterAuthorization(r, em, k, "edge");
        break;
      case "rebalance":
        c.rebalance = readRebalance(r, em, k);
        break;
      case "no_advertise":
        c.noAdvertise = r.bool(em, k);
        break;
    }
  }
  if (!discovery) return r.fail(m, key, `edge needs "routers" or "discovery": where the routers are`);
  return { discovery, ...c };
}

/** `{ dns: "name:port" }` or `{ kubernetes: { service, namespace, port } }`. */
function readDiscovery(r: Reader, m: ConfigMap, key: string): RouterDiscovery {
  const dm = r.map(m, key);
  r.checkKeys(dm, DISCOVERY_KEYS, `edge.${key}`);
  const refreshKey = Object.keys(dm).find((x) => x.toLowerCase() === "refresh");
  const keys = Object.keys(dm).filter((x) => x !== refreshKey);
  if (keys.length !== 1) r.fail(m, key, `discovery takes one of "dns" or "kubernetes"`);
  const k = keys[0];
  if (k.toLowerCase() === "dns") {
    const refreshMs = refreshKey === undefined ? DNS_REFRESH_MS : r.durationString(dm, refreshKey, "refresh");
    if (refreshMs <= 0) r.fail(dm, refreshKey!, "discovery refresh must be a positive duration");
    return { dns: dialAddress(r, dm, k), refreshMs };
  }
  if (refreshKey !== undefined) r.fail(dm, refreshKey, "refresh applies to dns discovery");
  const km = r.map(dm, k);
  r.checkKeys(km, KUBERNETES_KEYS, `edge.${key}.${k}`);
  let service: string | undefined;
  let namespace: string | undefined;
  let port: number | undefined;
  for (const kk of Object.keys(km)) {
    switch (kk.toLowerCase()) {
      case "service":
        service = r.str(km, kk);
        if (!DNS_LABEL.test(service)) r.fail(km, kk, `invalid Service name ${JSON.stringify(service)}`);
        break;
      case "namespace":
        namespace = r.str(km, kk);
        if (!DNS_LABEL.test(namespace)) r.fail(km, kk, `invalid namespace ${JSON.stringify(namespace)}`);
        break;
      case "port":
        port = r.port(km, kk);
        if (port < 1) r.fail(km, kk, `invalid port ${port}`);
        break;
    }
  }
  if (service === undefined) return r.fail(dm, k, `kubernetes discovery needs "service"`);
  return { kubernetes: { service, ...(namespace === undefined ? {} : { namespace }), ...(port === undefined ? {} : { port }) } };
}

function readRebalance(r: Reader, m: ConfigMap, key: string): EdgeConfig["rebalance"] {
  const bm = r.map(m, key);
  r.checkKeys(bm, REBALANCE_KEYS, `edge.${key}`);
  const rb: EdgeConfig["rebalance"] = { ...DEFAULTS.edge.rebalance, enabled: true };
  for (const k of Object.keys(bm)) {
    if (!REBALANCE_KEYS.has(k.toLowerCase())) continue; // a $variable definition
    const v = bm[k];
    if (typeof v !== "number" || v < 0) r.fail(bm, k, `"${k}" must be a number, 0 or more`);
    if (k.toLowerCase() === "tolerance") {
      if (v > 1) r.fail(bm, k, `"tolerance" is a fraction of the mean, from 0 to 1`);
      rb.tolerance = v;
    } else if (k.toLowerCase() === "max_evictions_per_second") rb.maxEvictionsPerSecond = v;
    else if (k.toLowerCase() === "min_excess") {
      if (!Number.isInteger(v)) r.fail(bm, k, `"min_excess" is a number of clients`);
      rb.minExcess = v;
    }
  }
  return rb;
}
