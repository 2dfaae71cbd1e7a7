// Session ownership in a real redis-server (single node and Cluster): which router owns each
// MQTT session key, and the adoption of a lost router's sessions, which reads that router's keys
// (its owned set) and the small set of owners, never the whole owner hash.
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionOwnership, type OwnedSessions } from "../../services/router/sessions/ownership.js";
import type { SessionKey } from "../../services/router/store/store.js";
import { startRedis, type RedisServer } from "../helpers/redis.js";
import { cleanupAfterEach } from "../helpers/wait.js";

describe.each([false, true])("session ownership (Redis Cluster: %s)", (cluster) => {
  let server: RedisServer;
  beforeAll(async () => { server = await startRedis({ cluster }); }, 30_000);
  afterAll(() => server?.stop());
  const c = cleanupAfterEach();
  let n = 0;

  /** A router's ownership under a fresh key prefix; `adopted` lists the keys it restored. */
  async function router(id: string, prefix: string): Promise<{ own: SessionOwnership; adopted: string[] }> {
    const own = new SessionOwnership(server.url, id, prefix, () => false, { warn: () => {} });
    c.push(() => own.close());
    const adopted: string[] = [];
    const service: OwnedSessions = {
      prepare: () => {},
      evict: async () => undefined,
      adopt: async (key) => { adopted.push(key); return true; },
    };
    await own.start(service);
    return { own, adopted };
  }

  /** The number of calls of `command` the server counted since `resetStats` (a Cluster here is one node holding every slot). */
  async function calls(command: string): Promise<number> {
    const r = new Redis(server.port, "127.0.0.1");
    c.push(() => r.disconnect());
    const stats = await r.info("commandstats");
    return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(stats)?.[1] ?? 0);
  }
  async function resetStats(): Promise<void> {
    const r = new Redis(server.port, "127.0.0.1");
    c.push(() => r.disconnect());
    await r.config("RESETSTAT");
  }

  it("a router answers another's ping through Redis while it lives; a closed one does not", async () => {
    const prefix = `own${++n}`;
    const [a, b] = await Promise.all([router("a", prefix), router("b", prefix)]);
    expect(await a.own.answers("b", 2_000)).toBe(true);
    expect(await b.own.answers("a", 2_000)).toBe(true);
    await b.own.close();
    const started = Date.now();
    expect(await a.own.answers("b", 300)).toBe(false);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(await a.own.answers("nobody", 100)).toBe(false);
  });

  it("a lost router's sessions are adopted from its own keys: the others stay, the owner hash is not read whole", async () => {
    const prefix = `own${++n}`;
    const [a, b, live] = await Promise.all([router("a", prefix), router("b", prefix), router("c", prefix)]);
    const key = (s: string) => `A\u0000${s}` as SessionKey;
    for (const k of ["1", "2", "3"]) await a.own.claim(key(k), { edgeId: "e", cid: 1 });
    for (const k of ["4", "5"]) await b.own.claim(key(k), { edgeId: "e", cid: 2 });
    await b.own.claim(key("3"), { edgeId: "e", cid: 3 }); // moved from a to b
    await resetStats();
    expect(await live.own.adoptOrphans((o) => o === "a")).toBe(2);
    expect(live.adopted.sort()).toEqual([key("1"), key("2")]);
    expect([await calls("hgetall"), await calls("hscan")]).toEqual([0, 0]);
    // Adopted once: a second scan finds nothing of a's, and a has left the owners.
    expect(await live.own.adoptOrphans((o) => o === "a")).toBe(0);
    expect(await live.own.adoptOrphans((o) => o === "b")).toBe(3);
    expect(live.adopted.sort()).toEqual([key("1"), key("2"), key("3"), key("4"), key("5")]);
  });

  it("at start: keys no router owns are adopted, and those of a router of an earlier version (no owned set)", async () => {
    const prefix = `own${++n}`;
    const key = (s: string) => `A\u0000${s}` as SessionKey;
    // An earlier version wrote the hash entry alone.
    const first = await router("x", prefix);
    await first.own.claim(key("old"), { edgeId: "e", cid: 1 });
    const writer = new Redis(server.port, "127.0.0.1");
    c.push(() => writer.disconnect());
    await writer.srem(`${prefix}:{sessions}:owned:x`, key("old"));
    await writer.srem(`${prefix}:{sessions}:owners`, "x");
    const starting = await router("y", prefix);
    expect(await starting.own.adoptOrphans((o) => o === "x", [key("old"), key("free")])).toBe(2);
    expect(starting.adopted.sort()).toEqual([key("free"), key("old")]);
  });
});
