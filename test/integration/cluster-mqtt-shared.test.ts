// MQTT shared subscriptions in the cluster: redis-server, 2 routers and 2 edges as processes,
// edge i homed on router i. Members of one `$share/{group}/…` group on both edges (an MQTT 5 and
// a 3.1.1 client) and a NATS queue subscriber of the same group name: each message reaches
// exactly one of them, cluster-wide, and every one gets some.
import { StringCodec } from "nats";
import { afterAll, beforeAll, expect, it } from "vitest";
import { natsClient } from "../helpers/clients.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { collect, connectMqtt } from "../helpers/mqtt.js";
import { cleanupAfterEach, withTimeout } from "../helpers/wait.js";

const SESSIONS = /MQTT session service started/;
const sc = StringCodec();
let cluster: TestCluster;
beforeAll(async () => {
  const t0 = Date.now();
  cluster = await startCluster({ routers: 2, edges: 2, edgeConfig: "mqtt { host: 127.0.0.1, port: -1 }" });
  await Promise.all(cluster.routers.map((r) => r.proc.waitForLine(SESSIONS, 10_000)));
  console.log(`cluster up in ${Date.now() - t0} ms`);
}, 40_000);
afterAll(() => cluster?.stop());
const c = cleanupAfterEach();

const url = (edge: number) => `mqtt://127.0.0.1:${cluster.edges[edge].mqttPort}`;

it("$share/{group}/{filter} with members on both edges and a NATS queue subscriber: each message to exactly one", async () => {
  const a = await connectMqtt(c, url(0), { protocolVersion: 5, clientId: "shared-a" });
  const b = await connectMqtt(c, url(1), { clientId: "shared-b" });
  const boxes = [collect(a), collect(b)];
  await a.subscribeAsync("$share/crew/jobs/+", { qos: 1 });
  await b.subscribeAsync("$share/crew/jobs/+", { qos: 1 });
  const nc = await natsClient(c, cluster.edges[1].natsPort);
  const natsGot: string[] = [];
  nc.subscribe("jobs.*", { queue: "crew", callback: (_, m) => { natsGot.push(sc.decode(m.data)); } });
  await nc.flush();
  const pub = await connectMqtt(c, url(0), { protocolVersion: 5, clientId: "shared-pub" });
  const got = () => [...boxes.flatMap((x) => x.all.map((m) => m.payload)), ...natsGot];
  // Interest crosses the mesh: probe until every member has had one (each probe goes to one).
  const t0 = Date.now();
  await withTimeout((async () => {
    while (boxes.some((x) => x.all.length === 0) || natsGot.length === 0) {
      await pub.publishAsync("jobs/probe", "probe", { qos: 0 });
      await new Promise((r) => setTimeout(r, 10));
    }
  })(), 10_000, () => `members reached: ${boxes.map((x) => x.all.length).join(", ")}, NATS ${natsGot.length}`);
  console.log(`every member reached ${Date.now() - t0} ms after the first probe`);
  const probes = got().length;
  const n = 300;
  for (let i = 0; i < n; i++) await pub.publishAsync(`jobs/${i % 5}`, `m${i}`, { qos: 1 });
  await withTimeout((async () => {
    while (got().length < probes + n) await new Promise((r) => setTimeout(r, 10));
  })(), 10_000, () => `received ${got().length - probes} of ${n}`);
  await new Promise((r) => setTimeout(r, 200)); // nothing more arrives
  const real = got().filter((p) => p !== "probe");
  expect(real.length).toBe(n);
  expect(new Set(real).size).toBe(n);
  const counts = [...boxes.map((x) => x.all.filter((m) => m.payload !== "probe").length), natsGot.filter((p) => p !== "probe").length];
  console.log(`${n} messages: edge 0 MQTT 5 member ${counts[0]}, edge 1 MQTT 3.1.1 member ${counts[1]}, edge 1 NATS queue subscriber ${counts[2]}`);
  for (const k of counts) expect(k).toBeGreaterThan(0);
});
