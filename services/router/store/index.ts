// The public surface of the MQTT store: the interface, and openStore() choosing an
// implementation from the configuration (router `redis`, else `store_dir`, else memory). The
// LevelDB and Redis stores are loaded when chosen: a broker with neither never loads their
// clients (about 2 MB of heap that every full GC would mark again).
import { MemoryStore } from "./memory.js";
import type { RedisConnection } from "./redis-url.js";
import type { RedisStoreOptions } from "./redis.js";
import type { MqttStore } from "./store.js";

export type { MqttStore, QoS, QueuedMessage, SessionRecord, StoredMessage, StoreKind, Subscription } from "./store.js";
export { StoreError } from "./store.js";
export { MemoryStore } from "./memory.js";
export type { RedisClusterConfig, RedisConnection } from "./redis-url.js";
export { topicMatches, TopicTree } from "./topic.js";

export interface OpenStoreOptions {
  /** `store_dir`: LevelDB files go directly in it (created if missing). */
  dir?: string;
  /** The cluster's Redis; wins over `dir`, since routers must share the state. */
  redis?: RedisConnection;
  /** Redis key prefix and error hook. */
  redisOptions?: RedisStoreOptions;
  /** Where the memory-store warning goes (the broker's logger). */
  log?: { warn(msg: string): void };
}

export const MEMORY_STORE_WARNING =
  "MQTT state is kept in memory only: sessions, QoS 1/2 queues and retained messages are lost on restart (set store_dir to keep them)";

export async function openStore(opts: OpenStoreOptions = {}): Promise<MqttStore> {
  if (opts.redis !== undefined) return (await import("./redis.js")).openRedisStore(opts.redis, opts.redisOptions);
  if (opts.dir !== undefined && opts.dir !== "") return (await import("./level.js")).openLevelStore(opts.dir);
  opts.log?.warn(MEMORY_STORE_WARNING);
  return new MemoryStore();
}
