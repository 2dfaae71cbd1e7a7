// MQTT clients of an edge whose link to its router drops while the router lives (frozen with
// SIGSTOP past the keepalive, then SIGCONT): the edge re-attaches to the same router, and every
// client stays connected, keeps its session and gets every QoS 1 publish acked and delivered.
// One router, so the edge can only come back to it; redis-server and the processes are real.
// Frozen 4.5 s, an edge's first new stream gets no answer either (ATTACH_TIMEOUT_MS): the
// attaches replayed on it are still unanswered at the next stream, which must not carry them
// next to its own (the router took each session from its own connection and closed it).
import { afterAll, beforeAll, expect, it } from "vitest";
import { ATTACHED, startCluster, type TestCluster } from "../helpers/cluster.js";
import { mqttUnderFault } from "../helpers/mqtt-load.js";
import { cleanupAfterEach } from "../helpers/wait.js";

let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startCluster({ routers: 1, edges: 2, edgeConfig: 'mqtt { host: 127.0.0.1, port: -1, ack_wait: "1s" }' });
  await cluster.routers[0].proc.waitForLine(/MQTT session service started/, 10_000);
}, 40_000);
afterAll(() => cluster?.stop());
const c = cleanupAfterEach();

/** Freezes the router for `ms` (past the edges' keepalive, 1.75 s), resumes it, and waits until
 *  both edges logged their re-attach to it. */
async function freezeRouter(ms: number): Promise<void> {
  const router = cluster.routers[0].proc;
  const marks = cluster.edges.map((e) => e.proc.mark());
  router.signal("SIGSTOP");
  c.push(() => router.signal("SIGCONT"));
  await new Promise((r) => setTimeout(r, ms));
  router.signal("SIGCONT");
  await Promise.all(cluster.edges.map((e, i) => e.proc.waitForLine(ATTACHED, 10_000, { since: marks[i] })));
}

for (const [ms, subEdge, pubEdge] of [[2_200, 0, 1], [4_500, 0, 1]] as const) {
  it(`router frozen ${ms} ms, subscriber on edge ${subEdge}, publisher on edge ${pubEdge}: the edges re-attach to it, no MQTT client closed, every QoS 1 publish acked and delivered`, async () => {
    const r = await mqttUnderFault(c, cluster, { id: `frz${ms}${subEdge}${pubEdge}`, qos: 1, subEdge, pubEdge, fault: () => freezeRouter(ms) });
    console.log(`router SIGSTOP ${ms} ms: ${r.total} published, ${r.lost} lost, ${r.duplicates} duplicates (${r.dupFlagged} with DUP); ` +
      `edges re-attached in ${r.reattached.join(" / ")} ms, all acked ${r.ackedMs} ms after the freeze; closes ${JSON.stringify(r.closes)}`);
    expect(r.closes).toEqual({ sub: 0, pub: 0 });
    expect(r.lost).toBe(0);
  }, 60_000);
}
