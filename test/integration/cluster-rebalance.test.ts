// Rebalancing (`edge { rebalance { max_evictions_per_second, tolerance } }`): 200 clients on one
// edge, a second edge added, and the first moves clients until both are within the tolerance
// of the mean. Real processes: redis-server, 2 routers, the edges. NATS clients (nats.js) move
// by themselves: they learn the second edge from connect_urls and get the lame-duck INFO before
// the close. MQTT clients (QoS 1, clean=false; MQTT 5 ones get DISCONNECT 0x9C first) are closed; this test reconnects each to the
// other edge, as a client behind a Service would land on another pod. Every QoS 1 message
// published during the move reaches every MQTT subscriber.
// The second edge is homed on the other router: each moved persistent session changes owner
// router (the handover of services/router/sessions/ownership.ts), and the counts go through
// Redis (P:edges:clients), by the code that carries edge URLs between routers (edge-urls.ts).
import { connect, type NatsConnection } from "nats";
import mqtt, { type MqttClient } from "mqtt";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { clientOptions, connectMqtt, suback } from "../helpers/mqtt.js";
import { askUntil, Cleanups, withTimeout } from "../helpers/wait.js";

const NATS_CLIENTS = 150;
const MQTT_CLIENTS = 50;
const TOLERANCE = 0.1;
const RATE = 40;
let cluster: TestCluster;
const c = new Cleanups();
/** Set at teardown: a closed MQTT client is not brought back then. */
let stopping = false;
beforeAll(async () => {
  cluster = await startCluster({
    routers: 2, edges: 1, monitoring: true,
    edgeConfig: 'mqtt { host: 127.0.0.1, port: -1, ack_wait: "1s" }',
    edgeBlock: `rebalance { max_evictions_per_second: ${RATE}, tolerance: ${TOLERANCE} }`,
  });
  await Promise.all(cluster.routers.map((r) => r.proc.waitForLine(/MQTT session service started/, 10_000)));
}, 30_000);
afterAll(async () => {
  stopping = true;
  await c.run();
  await cluster?.stop();
});

async function connections(edge: number): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${cluster.edges[edge].httpPort}/varz`);
  return ((await res.json()) as { connections: number }).connections;
}

it("a second edge takes half of the clients, and no QoS 1 message is lost", async () => {
  const port0 = cluster.edges[0].natsPort;
  const mqtt0 = `mqtt://127.0.0.1:${cluster.edges[0].mqttPort}`;
  // The publisher first: the oldest client, so rebalancing (newest first) leaves it in place.
  const pub = await connectMqtt(c, mqtt0, { clientId: "rb-pub" });

  const nats: NatsConnection[] = [];
  for (let i = 0; i < NATS_CLIENTS; i++) {
    const nc = await connect({ servers: `127.0.0.1:${port0}`, reconnectTimeWait: 100, maxReconnectAttempts: -1, timeout: 3_000 });
    c.push(() => nc.close());
    nats.push(nc);
  }
  // MQTT subscribers, persistent sessions; each logical subscriber keeps what it received
  // across its connections.
  const received = Array.from({ length: MQTT_CLIENTS }, () => new Set<string>());
  const current: MqttClient[] = [];
  let moved = 0;
  /** The reason codes of the DISCONNECTs the MQTT 5 subscribers got. */
  const disconnectCodes: number[] = [];
  const attach = (i: number, edge: number): Promise<MqttClient> => new Promise((resolve, reject) => {
    // Every other subscriber speaks MQTT 5 (a persistent session needs an expiry there).
    const v5 = i % 2 === 1 ? { protocolVersion: 5 as const, properties: { sessionExpiryInterval: 300 } } : {};
    const client = mqtt.connect(`mqtt://127.0.0.1:${cluster.edges[edge].mqttPort}`, clientOptions({ clientId: `rb-sub-${i}`, clean: false, ...v5 }));
    c.push(() => client.endAsync(true));
    current[i] = client;
    let up = false;
    client.on("message", (_t, payload) => received[i].add(payload.toString()));
    client.on("disconnect", (packet) => { if (!stopping) disconnectCodes.push(packet.reasonCode ?? -1); });
    client.once("connect", () => { up = true; resolve(client); });
    client.once("error", reject);
    client.on("error", () => {}); // after the close: the test has what it needs
    // Closed by the edge (rebalancing): come back on the other edge, as a new connection.
    client.once("close", () => {
      if (!up) return reject(new Error("closed before CONNACK"));
      if (stopping || client !== current[i] || cluster.edges.length < 2) return;
      moved++;
      void reattach(i, 1 - edge);
    });
  });
  // A reconnect that fails (a CONNACK slow on a loaded machine) is tried again.
  const reattach = (i: number, edge: number): Promise<unknown> =>
    attach(i, edge).catch(() => (stopping ? undefined : reattach(i, edge)));
  for (let i = 0; i < MQTT_CLIENTS; i++) {
    const client = await attach(i, 0);
    expect(await suback(client, { "rb/t": { qos: 1 } })).toEqual([1]);
  }
  const total = 1 + NATS_CLIENTS + MQTT_CLIENTS;
  expect(await connections(0)).toBe(total);

  // Publish QoS 1 all along the move.
  let sent = 0;
  let publishing = true;
  const publisher = (async () => {
    while (publishing) {
      await pub.publishAsync("rb/t", String(sent), { qos: 1 });
      sent++;
      await new Promise((r) => setTimeout(r, 20));
    }
  })();

  const t0 = Date.now();
  await cluster.addEdge(1); // the other router: the sessions move between routers
  const mean = total / 2;
  const within = (n: number) => Math.abs(n - mean) <= Math.ceil(mean * TOLERANCE) + 1;
  const counts = await askUntil(async () => {
    await new Promise((r) => setTimeout(r, 250));
    return [await connections(0), await connections(1)];
  }, (n) => n[0] + n[1] === total && n.every(within), 30_000);
  const converged = Date.now() - t0;
  publishing = false;
  await publisher;

  // NATS clients moved by themselves, to the second edge.
  const natsOn1 = nats.filter((nc) => !nc.getServer().endsWith(`:${port0}`)).length;
  // Every QoS 1 message reaches every MQTT subscriber (queued in its session while it moved).
  await withTimeout((async () => {
    while (received.some((r) => r.size < sent)) await new Promise((r) => setTimeout(r, 50));
  })(), 15_000, () => `sent ${sent}, missing: ${received.map((r, i) => [i, [...Array(sent).keys()].filter((k) => !r.has(String(k)))] as const)
    .filter(([, m]) => m.length > 0).map(([i, m]) => `sub ${i}: ${m.join(" ")}`).join(", ")}`);
  const evicted = cluster.edges[0].proc.lines.filter((l) => /rebalance: .* moving \d+/.test(l.text)).length;
  console.log(`rebalanced ${total} clients to ${counts.join(" + ")} in ${converged} ms after the second edge started ` +
    `(max ${RATE}/s, tolerance ${TOLERANCE}); ${natsOn1} NATS clients moved by themselves, ${moved} MQTT clients reconnected; ` +
    `${sent} QoS 1 messages, none lost; ${evicted} eviction rounds; MQTT 5 DISCONNECT reason codes ${[...new Set(disconnectCodes)].map((x) => `0x${x.toString(16)}`).join(", ")} (${disconnectCodes.length})`);
  expect(natsOn1).toBeGreaterThan(0);
  expect(moved).toBeGreaterThan(0);
  // MQTT 5 clients are told to go elsewhere: 0x9C "use another server", not 0x8B "shutting down".
  expect(disconnectCodes.length).toBeGreaterThan(0);
  expect(new Set(disconnectCodes)).toEqual(new Set([0x9c]));
  // Bounded by the rate: the excess (~90 clients) takes at least two seconds at 40/s.
  expect(converged).toBeLessThan(30_000);
}, 60_000);
