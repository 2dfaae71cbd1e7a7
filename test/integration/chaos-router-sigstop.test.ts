// Chaos: a router frozen with SIGSTOP under NATS load. The subscriber's edge is homed on the
// frozen router, the publisher's on the other one. Keepalives declare the frozen router dead:
// the edge re-attaches to the live router and replays its interest, and deliveries resume within
// a bound (printed). Messages caught in the frozen router are lost, as on a dead NATS route;
// from the first number delivered after the move, none is missing.
import { afterAll, beforeAll, expect, it } from "vitest";
import { natsClient } from "../helpers/clients.js";
import { ATTACHED, startCluster, type TestCluster } from "../helpers/cluster.js";
import { startSequence } from "../helpers/sequence.js";
import { cleanupAfterEach } from "../helpers/wait.js";

let cluster: TestCluster;
beforeAll(async () => { cluster = await startCluster({ routers: 2, edges: 2 }); }, 30_000);
afterAll(() => cluster?.stop());
const cleanups = cleanupAfterEach();

/** Keepalive declares a peer dead after about 1.5 s; the rest is re-attach and timer slack on a
 *  loaded 2-core machine. */
const RESUME_BOUND_MS = 5_000;

it("router SIGSTOP under load: declared dead, the edge moves, deliveries resume within the bound", async () => {
  const sub = await natsClient(cleanups, cluster.edges[0].natsPort);
  const pub = await natsClient(cleanups, cluster.edges[1].natsPort);
  const { log, load } = await startSequence(sub, pub, "chaos.frozen");

  const frozen = cluster.routers[0].proc; // edge 1's home router
  const mark = cluster.edges[0].proc.mark();
  const t0 = Date.now();
  const arrivalsAtFreeze = log.got.length;
  frozen.signal("SIGSTOP");
  cleanups.push(() => frozen.signal("SIGCONT"));
  const m = await cluster.edges[0].proc.waitForLine(ATTACHED, RESUME_BOUND_MS, { since: mark });
  const movedMs = Date.now() - t0;
  const resumedAt = await log.waitFor(load.sent, RESUME_BOUND_MS, log.got.length);
  const resumedMs = Date.now() - t0;
  const first = log.got[resumedAt];
  await log.waitFor(load.sent + 500, 10_000);
  const total = await load.stop();
  await log.waitFor(total - 1, 5_000);

  const lostAfter = log.missing(first, total);
  console.log(
    `router SIGSTOP: edge re-attached to ${m[1]} after ${movedMs} ms, deliveries resumed after ${resumedMs} ms ` +
      `(longest gap between deliveries ${log.longestGap(arrivalsAtFreeze)} ms); ${total} published, ` +
      `${log.missing(log.got[0], first).length} lost around the freeze, ${lostAfter.length} after, ${log.duplicates()} duplicates`,
  );
  expect(m[1]).toBe(cluster.routers[1].name);
  expect(resumedMs).toBeLessThan(RESUME_BOUND_MS);
  expect(lostAfter).toEqual([]);
  expect(log.duplicates()).toBe(0);
  expect(sub.isClosed() || pub.isClosed()).toBe(false);
}, 40_000);
