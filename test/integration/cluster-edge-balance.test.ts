// Adding a router adds capacity: edges even out over the live routers (`router { balance_edges }`,
// services/router/grpc/spread.ts). Router 2 is killed, so both edges end up on router 1, then
// started again: router 1 asks one edge to move to it (a GoAway naming router 2), the edge moves
// the graceful way (attach and replay there, then leave), and clients on both edges keep
// exchanging messages throughout: none disconnected, nothing lost.
import { afterAll, beforeAll, expect, it } from "vitest";
import { ATTACHED, startCluster, type TestCluster } from "../helpers/cluster.js";
import { crossTraffic } from "../helpers/cross-traffic.js";
import { cleanupAfterEach } from "../helpers/wait.js";

const ASKED = /asking edge (\S+) to move there$/;
let cluster: TestCluster;
beforeAll(async () => { cluster = await startCluster({ balanceEdges: "1s" }); }, 30_000);
afterAll(() => cluster?.stop());
const cleanups = cleanupAfterEach();

/** The router edge `i` is attached to now (its last "attached to router" line). */
function routerOf(i: number): string {
  const lines = cluster.edges[i].proc.lines.map((l) => ATTACHED.exec(l.text)).filter((m) => m !== null);
  return lines.at(-1)![1];
}

it("a router that comes back gets one of the edges of the other, without a client noticing", async () => {
  // Both edges on router 1: router 2 is killed, and edge 2 re-attaches to router 1.
  const mark2 = cluster.edges[1].proc.mark();
  await cluster.killRouter(1);
  await cluster.edges[1].proc.waitForLine(ATTACHED, 5_000, { since: mark2 });
  expect([routerOf(0), routerOf(1)]).toEqual(["r1", "r1"]);

  const traffic = await crossTraffic(cleanups, [cluster.edges[0].natsPort, cluster.edges[1].natsPort], "bal");

  const r1 = cluster.routers[0];
  const askedMark = r1.proc.mark();
  const edgeMarks = cluster.edges.map((e) => e.proc.mark());
  const started = Date.now();
  await cluster.restartRouter(1);
  const asked = r1.proc.waitForLine(ASKED, 15_000, { since: askedMark });
  let movedAt = 0;
  const moved = Promise.any(cluster.edges.map((e, i) =>
    e.proc.waitForLine(/attached to router r2 at \S+ \(re-attached/, 15_000, { since: edgeMarks[i] })));
  void moved.then(() => { movedAt = Date.now(); }, () => {});
  let after = -1; // rounds still to send once an edge moved
  while (after !== 0) {
    await traffic.round();
    if (after > 0) after--;
    else if (movedAt > 0) after = 20;
    if (Date.now() - started > 20_000) throw new Error(`no edge moved to router 2 within 20 s (${traffic.sent} sent)`);
  }
  await traffic.settle();
  const askLine = (await asked)[0];
  const { lost, duplicates } = traffic.tally();
  console.log(`edge balance: an edge moved to the restarted router ${movedAt - started} ms after its restart began; ` +
    `${traffic.sent * 2} messages to each of 2 subscribers, ${lost.length} lost, ${duplicates} duplicates; router 1: ${askLine}`);
  expect(lost).toEqual([]);
  expect(traffic.statuses.filter((st) => st === "disconnect")).toEqual([]);
  expect([routerOf(0), routerOf(1)].sort()).toEqual(["r1", "r2"]);
  // Even now (one edge each): nothing more is asked.
  expect(r1.proc.lines.slice(askedMark).filter((l) => ASKED.test(l.text)).length).toBe(1);
}, 60_000);
