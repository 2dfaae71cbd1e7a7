// Where the cluster's Redis is: the connection forms of the `redis` setting and their URL
// parsing, apart from the store itself so that reading a config does not load the Redis client
// (ioredis types only).
import type { ClusterNode, ClusterOptions, RedisOptions } from "ioredis";
import { StoreError } from "./store.js";

/** A Redis Cluster given by its seed nodes. */
export interface RedisClusterConfig {
  cluster: ClusterNode[];
  options?: ClusterOptions;
}

/**
 * Where the store's Redis is:
 * - `redis://[[user]:pass@]host[:port][/db]` (`rediss://` for TLS): one server;
 * - `redis-sentinel://[[user]:pass@]host[:port][,host[:port]...]/master-name[/db]`: Sentinel
 *   (credentials are the master's; sentinels default to port 26379);
 * - `redis-cluster://[[user]:pass@]host[:port][,host[:port]...]`: Cluster seed nodes;
 *   `rediss-sentinel://` and `rediss-cluster://` use TLS;
 * - ioredis `RedisOptions` (with `sentinels` + `name` for Sentinel), or `{ cluster: nodes }`.
 */
export type RedisConnection = string | RedisOptions | RedisClusterConfig;

function parseHosts(list: string, defaultPort: number): { host: string; port: number }[] {
  return list.split(",").map((h) => {
    const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(h.trim());
    if (!m) throw new StoreError(`bad Redis host "${h}"`, "BAD_CONFIG");
    return { host: m[1].replace(/^\[|\]$/g, ""), port: m[2] ? Number(m[2]) : defaultPort };
  });
}

export type ParsedRedisUrl =
  | { kind: "single"; url: string }
  | { kind: "sentinel"; options: RedisOptions }
  | { kind: "cluster"; nodes: { host: string; port: number }[]; options: ClusterOptions };

/** Reads the URL forms listed at RedisConnection. */
export function parseRedisUrl(url: string): ParsedRedisUrl {
  const m = /^(rediss?)-(sentinel|cluster):\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/?#]+)(?:\/([^/?#]*))?(?:\/(\d+))?\/?$/.exec(url);
  if (!m) {
    if (!/^rediss?:\/\//.test(url)) throw new StoreError(`unsupported Redis URL "${url}"`, "BAD_CONFIG");
    return { kind: "single", url };
  }
  const [, scheme, topology, user, pass, hosts, name, db] = m;
  const auth: RedisOptions = {};
  if (user) auth.username = decodeURIComponent(user);
  if (pass) auth.password = decodeURIComponent(pass);
  if (scheme === "rediss") auth.tls = {};
  if (topology === "cluster") {
    if (name || db) throw new StoreError(`a Redis Cluster URL has no path: "${url}"`, "BAD_CONFIG");
    return { kind: "cluster", nodes: parseHosts(hosts, 6379), options: { redisOptions: auth } };
  }
  if (!name) throw new StoreError(`a Sentinel URL needs the master name as its path: "${url}"`, "BAD_CONFIG");
  return {
    kind: "sentinel",
    options: { ...auth, sentinels: parseHosts(hosts, 26379), name: decodeURIComponent(name), db: db ? Number(db) : 0 },
  };
}
