// SIGTERM on a router: it asks its edges to move (a GoAway), each attaches to another router of
// its list, replays and leaves the old one once the new router's barrier passed; the router
// exits once its edges left. Clients on both edges keep exchanging messages throughout: none
// is disconnected and nothing is lost for subscriptions that exist before and after. MQTT
// clients of the moving edge keep their sessions: no will goes out, QoS 1 keeps flowing.
import { afterAll, beforeAll, expect, it } from "vitest";
import { ATTACHED, startCluster, type TestCluster } from "../helpers/cluster.js";
import { crossTraffic } from "../helpers/cross-traffic.js";
import { connectCollecting, connectMqtt, suback } from "../helpers/mqtt.js";
import { untilReceived } from "../helpers/mqtt-load.js";
import { cleanupAfterEach, firstData } from "../helpers/wait.js";

let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startCluster({ edgeConfig: "mqtt { host: 127.0.0.1, port: -1 }" });
}, 30_000);
afterAll(() => cluster?.stop());
const cleanups = cleanupAfterEach();

it("router 1 gets SIGTERM: its edge moves to router 2 first, no client disconnected, nothing lost", async () => {
  const traffic = await crossTraffic(cleanups, [cluster.edges[0].natsPort, cluster.edges[1].natsPort], "move");
  const sub2 = traffic.subs[1];
  // MQTT on the moving edge (edge 1, homed on router 1): a client with a will, and a persistent
  // QoS 1 subscriber fed from edge 2.
  const mqttUrl = (e: number) => `mqtt://127.0.0.1:${cluster.edges[e].mqttPort}`;
  const wills = sub2.subscribe("move.will");
  const willed = await connectMqtt(cleanups, mqttUrl(0), { clientId: "move-will", will: { topic: "move/will", payload: Buffer.from("gone"), qos: 1, retain: false } });
  const { client: msub, inbox } = await connectCollecting(cleanups, mqttUrl(0), { clientId: "move-sub", clean: false });
  await suback(msub, { "move/q1": { qos: 1 } });
  const mpub = await connectMqtt(cleanups, mqttUrl(1), { clientId: "move-pub" });
  await untilReceived(inbox, () => mpub.publishAsync("move/q1", "probe", { qos: 0 }));
  const mqttClosed: string[] = [];
  for (const [name, cl] of [["willed", willed], ["sub", msub], ["pub", mpub]] as const) cl.on("close", () => mqttClosed.push(name));
  let qos1Sent = 0;
  await sub2.flush();

  const r1 = cluster.routers[0];
  const mark = cluster.edges[0].proc.mark();
  let after = -1; // rounds still to send once the edge moved and router 1 exited
  const started = Date.now();
  let exitedAt = 0;
  const exited = r1.proc.exitWithin(15_000).then((e) => { exitedAt = Date.now(); return e; });
  r1.proc.signal("SIGTERM");
  while (after !== 0) {
    await mpub.publishAsync("move/q1", `q${qos1Sent++}`, { qos: 1 });
    await traffic.round();
    if (after > 0) after--;
    else if (after < 0 && exitedAt > 0) after = 20;
    if (Date.now() - started > 20_000) throw new Error(`router 1 did not exit within 20 s (${traffic.sent} sent)`);
  }
  expect((await exited).code).toBe(0);
  const moved = await cluster.edges[0].proc.waitForLine(ATTACHED, 1_000, { since: mark });
  expect(moved[1]).toBe("r2");
  await traffic.settle();
  const { lost, duplicates } = traffic.tally();
  console.log(`router SIGTERM: exited after ${exitedAt - started} ms; ${traffic.sent * 2} messages to each of 2 subscribers, ` +
    `${lost.length} lost, ${duplicates} duplicates; edge log: ${moved[0]}`);
  expect(lost).toEqual([]);
  expect(traffic.statuses.filter((st) => st === "disconnect")).toEqual([]);
  expect(r1.proc.stdout() + r1.proc.stderr()).toMatch(/asking 1 edges to move/);
  // MQTT: every acked QoS 1 message reached the session on the moved edge, and no will went out.
  await mpub.publishAsync("move/q1", "last", { qos: 1 });
  for (;;) if ((await inbox.next(5_000)).payload === "last") break;
  const got = new Set(inbox.all.map((m) => m.payload));
  const mqttLost = Array.from({ length: qos1Sent }, (_, i) => `q${i}`).filter((k) => !got.has(k));
  await sub2.flush();
  console.log(`router SIGTERM, MQTT: ${qos1Sent} QoS 1 messages, ${mqttLost.length} lost; closed: ${mqttClosed.join(", ") || "none"}; wills: ${wills.getProcessed()}`);
  expect(mqttLost).toEqual([]);
  expect(mqttClosed).toEqual([]);
  expect(wills.getProcessed()).toBe(0);
  // The will still goes out when its client does go away (so the count above could see one).
  willed.stream.destroy();
  expect(await firstData(wills, 5_000)).toBe("gone");
}, 60_000);
