// Chaos: Redis restarted under NATS load. Redis holds router membership and the interest
// summaries, not the message path: while it is down the routers keep routing on the interest
// they know, so a stable subscription on the other edge (other router) loses nothing; once it
// is back (empty: no persistence), the routers register again and new interest crosses the mesh.
// Redis stays down longer than a router registration lives, plus the heartbeats a peer may miss.
import { HEARTBEAT_MS } from "../../services/router/mesh/mesh.js";
import { REGISTRATION_TTL_MS } from "../../services/router/mesh/registry.js";
import { afterAll, beforeAll, expect, it } from "vitest";
import { natsClient } from "../helpers/clients.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { startRedis } from "../helpers/redis.js";
import { publishSequence, SequenceLog, startSequence } from "../helpers/sequence.js";
import { cleanupAfterEach } from "../helpers/wait.js";

let cluster: TestCluster;
beforeAll(async () => { cluster = await startCluster({ routers: 2, edges: 2 }); }, 30_000);
afterAll(() => cluster?.stop());
const cleanups = cleanupAfterEach();
const DOWN_MS = REGISTRATION_TTL_MS + 3 * HEARTBEAT_MS;

it("Redis restart under load: routing continues on known interest, 0 lost, new interest crosses after", async () => {
  const sub = await natsClient(cleanups, cluster.edges[1].natsPort);
  const pub = await natsClient(cleanups, cluster.edges[0].natsPort);
  const { log, load, first } = await startSequence(sub, pub, "chaos.redis");

  const t0 = Date.now();
  await cluster.redis.stop();
  const downAt = load.sent;
  // Deliveries go on with Redis down: each wait is for a number published after the last one.
  while (Date.now() - t0 < DOWN_MS) await log.waitFor(load.sent, 5_000, log.got.length);
  const downMs = Date.now() - t0;
  const redis = await startRedis({ port: cluster.redis.port });
  cleanups.push(() => redis.stop());
  const upAt = load.sent;
  // And after it is back, past the time the routers take to register again.
  while (Date.now() - t0 < 2 * DOWN_MS) await log.waitFor(load.sent, 5_000, log.got.length);

  // New interest after the restart: a subscription on edge 2 reached by a publisher on edge 1.
  const fresh = new SequenceLog();
  sub.subscribe("chaos.redis.after", { callback: (_, m) => fresh.record(m.data) });
  await sub.flush();
  const t1 = Date.now();
  const probe = publishSequence(pub, "chaos.redis.after", 1);
  await fresh.waitFor(0, 10_000);
  const newInterestMs = Date.now() - t1;
  await probe.stop();

  const total = await load.stop();
  await log.waitFor(total - 1, 5_000);
  const lost = log.missing(first, total);
  console.log(
    `Redis restart: down for ${downMs} ms with ${upAt - downAt} published meanwhile; ${total - first} published to a stable ` +
      `subscription, ${lost.length} lost, ${log.duplicates()} duplicates; new interest crossed ${newInterestMs} ms after it was flushed`,
  );
  // What the routers and edges said, to explain a loss.
  if (lost.length) for (const p of [...cluster.routers, ...cluster.edges]) console.log(`--- ${p.name}\n${p.proc.stdout()}${p.proc.stderr()}`);
  expect(lost).toEqual([]);
  expect(log.duplicates()).toBe(0);
  // No mesh link was dropped for a registration Redis lost in the restart.
  for (const r of cluster.routers) expect(r.proc.stdout() + r.proc.stderr()).not.toMatch(/mesh: link to router \S+ down/);
}, 40_000);
