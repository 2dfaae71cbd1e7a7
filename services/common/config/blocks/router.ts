// meshbroker's `router {}` block: the gRPC listener of `meshbroker router` (shared listener
// builder), the Redis it shares state through, and the cluster credential it checks.

import { parseRedisUrl } from "../../../router/store/redis-url.js";
import { DEFAULTS, type RedisConfig, type RouterConfig } from "../options.js";
import { isConfigMap, type ConfigMap } from "../parser.js";
import type { Reader } from "../reader.js";
import { readClusterAuthorization } from "./authorization.js";
import { dialAddress, dialAddresses, listenerField, listenerFields, resolvePort } from "./listener.js";

const ROUTER_KEYS = new Set(["listen", "host", "net", "port", "advertise", "tls", "redis", "authorization", "balance_edges"]);
const REDIS_KEYS = new Set(["url", "sentinels", "name", "cluster", "username", "password", "db", "tls"]);

export function readRouter(r: Reader, m: ConfigMap, key: string): RouterConfig {
  const rm = r.map(m, key);
  r.checkKeys(rm, ROUTER_KEYS, key);
  const l = listenerFields();
  let redis: RedisConfig | undefined;
  let authorization: RouterConfig["authorization"];
  let balanceEdgesMs: number = DEFAULTS.router.balanceEdgesMs;
  for (const k of Object.keys(rm)) {
    if (listenerField(r, rm, k, l, "router listener")) continue;
    switch (k.toLowerCase()) {
      case "redis":
        redis = readRedis(r, rm, k);
        break;
      case "authorization":
        authorization = readClusterAuthorization(r, rm, k, "router");
        break;
      case "balance_edges":
        balanceEdgesMs = r.durationString(rm, k, "balance_edges");
        if (balanceEdgesMs < 0) r.fail(rm, k, "balance_edges can not be negative");
        break;
    }
  }
  if (l.advertise !== undefined) {
    // What edges and peers dial: a full address, often from the pod's environment ("$POD_IP:7100").
    const at = Object.keys(rm).find((k) => k.toLowerCase() === "advertise")!;
    l.advertise = r.expandEnv(rm, at);
    dialAddress(r, rm, at, l.advertise);
  }
  if (redis === undefined) r.fail(m, key, `router needs "redis": the routers of a cluster share their state there`);
  const c: RouterConfig = { host: l.host || DEFAULTS.router.host, port: resolvePort(l.port, DEFAULTS.router.port), redis, balanceEdgesMs };
  if (l.advertise !== undefined) c.advertise = l.advertise;
  if (l.tls) c.tls = l.tls;
  if (authorization) c.authorization = authorization;
  return c;
}

/** `redis: "URL"` (the store's URL forms), or a block: `{ url }`, `{ sentinels, name }` or
 *  `{ cluster }`, with `username`, `password`, `db` (Sentinel) and `tls`. */
function readRedis(r: Reader, m: ConfigMap, key: string): RedisConfig {
  if (!isConfigMap(m[key])) return { url: redisUrl(r, m, key) };
  const bm = r.map(m, key);
  r.checkKeys(bm, REDIS_KEYS, key);
  const keyOf = (name: string) => Object.keys(bm).find((k) => k.toLowerCase() === name);
  const kinds = ["url", "sentinels", "cluster"].filter((n) => keyOf(n) !== undefined);
  if (kinds.length !== 1) r.fail(m, key, `redis needs one of "url", "sentinels" (with "name") or "cluster"`);
  const auth: { username?: string; password?: string } = {};
  const user = keyOf("username");
  const pass = keyOf("password");
  if (user !== undefined) auth.username = r.str(bm, user);
  if (pass !== undefined) auth.password = r.str(bm, pass);
  const tlsKey = keyOf("tls");
  const tls = tlsKey === undefined ? false : r.bool(bm, tlsKey);
  const nameKey = keyOf("name");
  const dbKey = keyOf("db");
  if (kinds[0] === "url") {
    const urlKey = keyOf("url")!;
    for (const extra of [user, pass, tlsKey, nameKey, dbKey]) {
      if (extra !== undefined) r.fail(bm, extra, `"${extra}" does not go with "url": put it in the URL`);
    }
    return { url: redisUrl(r, bm, urlKey) };
  }
  if (kinds[0] === "cluster") {
    for (const extra of [nameKey, dbKey]) if (extra !== undefined) r.fail(bm, extra, `"${extra}" does not apply to a Redis Cluster`);
    return { cluster: dialAddresses(r, bm, keyOf("cluster")!), ...auth, tls };
  }
  if (nameKey === undefined) r.fail(m, key, `redis "sentinels" needs "name": the master's name`);
  const name = r.str(bm, nameKey);
  if (name === "") r.fail(bm, nameKey, "the master's name can not be empty");
  const db = dbKey === undefined ? 0 : r.size(bm, dbKey);
  return { sentinels: dialAddresses(r, bm, keyOf("sentinels")!), name, ...auth, db, tls };
}

/** A URL the store accepts (services/router/store/redis.ts parses it for real). */
function redisUrl(r: Reader, m: ConfigMap, key: string): string {
  const url = r.str(m, key);
  try {
    const p = parseRedisUrl(url);
    if (p.kind === "single" && new URL(url).hostname === "") throw new Error(`no host in "${url}"`);
  } catch (err) {
    r.fail(m, key, `invalid Redis URL: ${(err as Error).message} (redis://, rediss://, redis-sentinel://host:port,.../master, redis-cluster://host:port,...)`);
  }
  return url;
}
