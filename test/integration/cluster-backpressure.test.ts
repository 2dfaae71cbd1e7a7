// A fast publisher (NATS, then MQTT QoS 0) while its edge's router is frozen for 0.8 s (SIGSTOP,
// under the link keepalive's 1.5 s). The edge's link to the router fills; the edge then stops
// reading the publisher (nats-server's producer stall) instead of queueing all it sends, so its
// link queue stays small, the link is kept, and the subscriber on the other edge gets every
// message, in order, once the router runs again. Before, the edge read everything into its link
// queue: past the 32 MB bound it dropped the link ("router too slow") and the messages with it.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { StringCodec } from "nats";
import { afterAll, beforeAll, expect, it } from "vitest";
import { natsClient } from "../helpers/clients.js";
import { connectMqtt } from "../helpers/mqtt.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { askUntil, cleanupAfterEach, withTimeout } from "../helpers/wait.js";

let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startCluster({ routers: 2, edges: 2, monitoring: true, edgeConfig: "mqtt { host: 127.0.0.1, port: -1 }" });
}, 30_000);
afterAll(() => cluster?.stop());
const cleanups = cleanupAfterEach();
const sc = StringCodec();

/** 60 MB: more than the link's 32 MB bound, its 4 MB window and the sockets' buffers. */
const MESSAGES = 7_500;
const PAYLOAD = 8 * 1024;
const FREEZE_MS = 800;

async function metric(port: number | undefined, name: string): Promise<number> {
  const page = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = page.split("\n").find((l) => l.startsWith(name));
  return line === undefined ? Number.NaN : Number(line.slice(line.lastIndexOf(" ") + 1));
}

/** A publisher on the edge homed on routers[0]: `send(bytes)` publishes on "stall.data" (MQTT:
 *  topic stall/data), `probe()` on "stall.probe" and waits until written. */
interface Publisher { send(data: Uint8Array): void; probe(): Promise<void>; closed(): boolean }

const publishers: Record<string, () => Promise<Publisher>> = {
  NATS: async () => {
    const nc = await natsClient(cleanups, cluster.edges[0].natsPort);
    return { send: (d) => nc.publish("stall.data", d), probe: async () => { nc.publish("stall.probe"); await nc.flush(); }, closed: () => nc.isClosed() };
  },
  "MQTT QoS 0": async () => {
    const mc = await connectMqtt(cleanups, `mqtt://127.0.0.1:${cluster.edges[0].mqttPort}`);
    return {
      send: (d) => { mc.publish("stall/data", Buffer.from(d), { qos: 0 }); },
      probe: () => mc.publishAsync("stall/probe", "p", { qos: 0 }).then(() => undefined),
      closed: () => !mc.connected,
    };
  },
};

it.each(Object.keys(publishers))("%s: a publisher faster than its frozen router is stalled, not queued: nothing lost, link kept", async (kind) => {
  const [edge, other] = cluster.edges; // edge is homed on routers[0], other on routers[1]
  const sub = await natsClient(cleanups, other.natsPort);
  const pub = await publishers[kind]();
  const got: number[] = [];
  let duplicates = 0;
  let outOfOrder = 0;
  const all = new Promise<void>((resolve) => {
    sub.subscribe("stall.data", { callback: (_err, m) => {
      const n = Number(sc.decode(m.data).slice(0, 8));
      if (got.length > 0 && n <= got[got.length - 1]) n === got[got.length - 1] ? duplicates++ : outOfOrder++;
      got.push(n);
      if (got.length === MESSAGES) resolve();
    } });
  });
  await sub.flush();
  // The subscription is known on the publisher's side once a probe gets through.
  let probed = 0;
  sub.subscribe("stall.probe", { callback: () => { probed++; } });
  await sub.flush();
  await askUntil(async () => { await pub.probe(); await sub.flush(); return probed; }, (n) => n > 0, 5_000);

  const frozen = cluster.routers[0].proc;
  const mark = edge.proc.mark();
  const filler = "x".repeat(PAYLOAD - 8);
  frozen.signal("SIGSTOP");
  cleanups.push(() => frozen.signal("SIGCONT"));
  // The thaw comes from another process: this one is busy publishing for a while.
  const thaw = spawn("sh", ["-c", `sleep ${FREEZE_MS / 1000}; kill -CONT ${frozen.pid}`], { stdio: "ignore" });
  const thawed = once(thaw, "exit");
  const t0 = Date.now();
  for (let i = 0; i < MESSAGES; i++) pub.send(sc.encode(String(i).padStart(8, "0") + filler));
  let maxQueue = 0;
  let running = true;
  void thawed.then(() => { running = false; });
  while (running) {
    maxQueue = Math.max(maxQueue, await metric(edge.httpPort, "meshbroker_link_queue_bytes"));
    await new Promise((r) => setTimeout(r, 50));
  }
  const linkEvents = () => edge.proc.lines.slice(mark).map((l) => l.text).filter((l) => /lost router|re-attach/.test(l));
  await withTimeout(all, 30_000, () => `${got.length} of ${MESSAGES} delivered (edge link events: ${linkEvents().join(" | ") || "none"})`);
  const deliveredMs = Date.now() - t0;
  const stalls = await metric(edge.httpPort, "meshbroker_link_stalls_total");
  const lost = linkEvents();
  console.log(
    `${kind}: router frozen ${FREEZE_MS} ms under ${MESSAGES} publishes of ${PAYLOAD} B: edge link queue at most ${maxQueue} bytes, ` +
      `${stalls} producer stalls, all delivered ${deliveredMs} ms after the freeze began; ${duplicates} duplicates, ` +
      `${outOfOrder} out of order; link events: ${lost.length ? lost.join(" | ") : "none"}`,
  );
  expect(lost).toEqual([]);
  expect(maxQueue).toBeLessThan(8 * 1024 * 1024);
  expect(stalls).toBeGreaterThan(0);
  expect(duplicates + outOfOrder).toBe(0);
  expect(pub.closed() || sub.isClosed()).toBe(false);
}, 60_000);
