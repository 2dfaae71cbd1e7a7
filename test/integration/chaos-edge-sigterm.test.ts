// Chaos: SIGTERM of an edge under NATS load. The edge goes into lame duck (short durations
// here) and closes its clients; a subscriber that listed both edges reconnects to the other one
// and resubscribes. A publisher on the other edge sends numbers all along: from the first number
// the subscriber gets after its resubscription, nothing is missing up to the last one published.
import type { NatsConnection } from "nats";
import { afterAll, beforeAll, expect, it } from "vitest";
import { natsClient } from "../helpers/clients.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { startSequence } from "../helpers/sequence.js";
import { cleanupAfterEach, withTimeout } from "../helpers/wait.js";

let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startCluster({ routers: 2, edges: 2, edgeConfig: 'lame_duck_duration: "30s"\nlame_duck_grace_period: "1s"' });
}, 30_000);
afterAll(() => cluster?.stop());
const cleanups = cleanupAfterEach();

function reconnected(nc: NatsConnection): Promise<void> {
  return withTimeout((async () => {
    for await (const s of nc.status()) if (s.type === "reconnect") return;
  })(), 10_000, () => "no reconnect");
}

it("edge SIGTERM under load: the subscriber moves to the other edge, 0 lost after it resubscribed", async () => {
  const [dying, staying] = cluster.edges;
  const sub = await natsClient(cleanups, dying.natsPort, {
    servers: [`127.0.0.1:${dying.natsPort}`, `127.0.0.1:${staying.natsPort}`],
    noRandomize: true, reconnect: true, reconnectTimeWait: 50, maxReconnectAttempts: 40,
  });
  const pub = await natsClient(cleanups, staying.natsPort);
  const { log, load } = await startSequence(sub, pub, "chaos.edge");
  const before = log.got.length;

  const moved = reconnected(sub);
  const signalled = Date.now();
  dying.proc.signal("SIGTERM");
  await moved;
  const reconnectMs = Date.now() - signalled;
  expect(sub.getServer()).toBe(`127.0.0.1:${staying.natsPort}`);
  const arrivalsAtMove = log.got.length;
  // The first number after the move marks the resubscription; from there nothing may be missing.
  const first = log.got[await log.waitFor(load.sent, 5_000, arrivalsAtMove)];
  const resumedMs = Date.now() - signalled;
  await log.waitFor(load.sent + 500, 10_000);
  const total = await load.stop();
  await log.waitFor(total - 1, 5_000);
  const exit = await dying.proc.exitWithin(10_000);

  const lostAfter = log.missing(first, total);
  const lostDuring = log.missing(log.got[before - 1] + 1, first).length;
  console.log(
    `edge SIGTERM: subscriber reconnected after ${reconnectMs} ms, deliveries resumed after ${resumedMs} ms; ` +
      `${total} published, ${lostDuring} lost while it moved, ${lostAfter.length} lost after it resubscribed, ` +
      `${log.duplicates()} duplicates; edge exited with code ${exit.code}`,
  );
  expect(lostAfter).toEqual([]);
  expect(log.duplicates()).toBe(0);
  expect(exit.code).toBe(0);
}, 40_000);
