// Router failover: two routers, two edges listing both. kill -9 of the router an edge is
// attached to: the edge re-attaches to the other router (or to the restarted one), replays its
// interest, and deliveries resume within 2 s, without any client being disconnected. The
// re-attach times are printed. (Without the router mesh, edges on different routers do not
// reach each other yet: each kill leaves both edges on the surviving router.)
import { StringCodec, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, it } from "vitest";
import { natsClient } from "../helpers/clients.js";
import { ATTACHED, startCluster, type TestCluster } from "../helpers/cluster.js";
import { cleanupAfterEach, withTimeout } from "../helpers/wait.js";

const sc = StringCodec();
let cluster: TestCluster;
beforeAll(async () => { cluster = await startCluster({ routers: 2, edges: 2 }); }, 30_000);
afterAll(() => cluster?.stop());
const cleanups = cleanupAfterEach();

/** The router index edge `e` is attached to now (its last "attached to router" line). */
function routerOf(e: number): number {
  const lines = cluster.edges[e].proc.lines.map((l) => l.text.match(ATTACHED)).filter((m) => m !== null);
  const address = lines[lines.length - 1]![2];
  return cluster.routers.findIndex((r) => address.endsWith(`:${r.port}`));
}

/** Publishes on `pub` until `sub` hears one: how long deliveries took to resume. */
async function resumed(pub: NatsConnection, seen: string[], subject: string): Promise<void> {
  await withTimeout((async () => {
    for (let i = 0; seen.length === 0; i++) {
      pub.publish(subject, sc.encode(String(i)));
      await pub.flush();
      await new Promise((r) => setImmediate(r));
    }
  })(), 3_000, () => `no delivery on ${subject}`);
}

it("kill -9 of the attached router: the edges re-attach elsewhere, interest replays, no client disconnected", async () => {
  const sub = await natsClient(cleanups, cluster.edges[1].natsPort);
  const pub = await natsClient(cleanups, cluster.edges[0].natsPort);
  const statuses: string[] = [];
  for (const nc of [sub, pub]) void (async () => { for await (const s of nc.status()) statuses.push(s.type); })();
  const seen: string[] = [];
  sub.subscribe("fail.over", { callback: (_, m) => seen.push(sc.decode(m.data)) });
  await sub.flush();

  for (const round of ["to the other router", "to the restarted router"]) {
    const victim = routerOf(0);
    const marks = cluster.edges.map((e) => e.proc.mark());
    const killed = Date.now();
    await cluster.killRouter(victim);
    const m = await cluster.edges[0].proc.waitForLine(ATTACHED, 5_000, { since: marks[0] });
    const reattachMs = Date.now() - killed;
    seen.length = 0;
    await resumed(pub, seen, "fail.over");
    const resumedMs = Date.now() - killed;
    console.log(`router kill -9, ${round}: edge re-attached in ${m[3] ?? "?"} ms (logged), ${reattachMs} ms (seen); deliveries resumed after ${resumedMs} ms`);
    expect(resumedMs).toBeLessThan(2_000);
    expect(routerOf(0)).not.toBe(victim);
    expect(sub.isClosed() || pub.isClosed()).toBe(false);
    await cluster.restartRouter(victim);
  }
  expect(statuses.filter((s) => s === "disconnect")).toEqual([]);
}, 60_000);

it("a frozen router (SIGSTOP) is declared dead by keepalive within 2 s and the edge moves on", async () => {
  const sub = await natsClient(cleanups, cluster.edges[0].natsPort);
  const seen: string[] = [];
  sub.subscribe("frozen", { callback: (_, m) => seen.push(sc.decode(m.data)) });
  await sub.flush();
  const victim = routerOf(0);
  const mark = cluster.edges[0].proc.mark();
  const frozen = Date.now();
  cluster.routers[victim].proc.signal("SIGSTOP");
  cleanups.push(() => cluster.routers[victim].proc.signal("SIGCONT"));
  await cluster.edges[0].proc.waitForLine(ATTACHED, 5_000, { since: mark });
  const movedMs = Date.now() - frozen;
  await resumed(sub, seen, "frozen");
  console.log(`router SIGSTOP: edge re-attached after ${movedMs} ms, deliveries resumed after ${Date.now() - frozen} ms`);
  expect(routerOf(0)).not.toBe(victim);
  expect(movedMs).toBeLessThan(2_500); // keepalive: a ping a second, dead after a second without its answer
  expect(sub.isClosed()).toBe(false);
}, 30_000);
