// The flush rule across the router mesh: a subscription confirmed by a flush (PING/PONG) on an
// edge homed on one router is routed from an edge homed on the other router at once. Each
// router's sync waits for its peers to apply the interest changes made before it
// (services/router/mesh/barrier.ts); without it the publisher could race the interest update.
import { StringCodec } from "nats";
import { afterAll, beforeAll, expect, it } from "vitest";
import { natsClient } from "../helpers/clients.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { cleanupAfterEach } from "../helpers/wait.js";

const sc = StringCodec();
let cluster: TestCluster;
beforeAll(async () => { cluster = await startCluster(); }, 30_000);
afterAll(() => cluster?.stop());
const cleanups = cleanupAfterEach();

it("sub + flush on edge 2 (router 2), then publish on edge 1 (router 1): never missed", async () => {
  const sub = await natsClient(cleanups, cluster.edges[1].natsPort);
  const pub = await natsClient(cleanups, cluster.edges[0].natsPort);
  const ROUNDS = 200;
  const missed: number[] = [];
  const started = Date.now();
  for (let i = 0; i < ROUNDS; i++) {
    const subject = `flush.${i}.${started}`;
    let got = 0;
    sub.subscribe(subject, { max: 1, callback: () => { got++; } });
    await sub.flush();
    pub.publish(subject, sc.encode(String(i)));
    // The publisher's flush passes router 1's barrier, which follows the forward to router 2;
    // the subscriber's flush then follows the delivery: a message still missing was dropped.
    await pub.flush();
    await sub.flush();
    if (got !== 1) missed.push(i);
  }
  console.log(`flush barrier: ${ROUNDS} rounds in ${Date.now() - started} ms, ${missed.length} missed`);
  expect(missed).toEqual([]);
}, 60_000);
