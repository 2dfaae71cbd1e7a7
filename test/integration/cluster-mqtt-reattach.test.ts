// MQTT clients of an edge whose link to its router drops while the router lives (frozen with
// SIGSTOP past the keepalive, then SIGCONT): the edge re-attaches to the same router, and every
// client stays connected, keeps its session and gets every QoS 1 publish acked and delivered.
// One router, so the edge can only come back to it; redis-server and the processes are real.
// Frozen 4.5 s, an edge's first new stream gets no answer either (ATTACH_TIMEOUT_MS): the
// attaches replayed on it are still unanswered at the next stream, which must not carry them
// next to its own (the router took each session from its own connection and closed it).
// Nor do the clients' wills go out: the router, seeing the old streams end, gives their
// connections LOST_LINK_GRACE_MS to be attached again.
import { afterAll, beforeAll, expect, it } from "vitest";
import { LOST_LINK_GRACE_MS } from "../../services/router/sessions/service.js";
import { ATTACHED, startCluster, type TestCluster } from "../helpers/cluster.js";
import { closeOf, connectCollecting, connectMqtt, suback } from "../helpers/mqtt.js";
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

it("router frozen 2,200 ms: the edges re-attach, the wills of their MQTT clients are not published and retained messages not sent again; a client lost later still has its will published", async () => {
  // The watcher's session is persistent: a will published while its edge is away is queued for it.
  const { client: watcher, inbox } = await connectCollecting(c, `mqtt://127.0.0.1:${cluster.edges[1].mqttPort}`, { clientId: "flap-watcher", clean: false });
  await suback(watcher, { "flap/will": { qos: 1 } });
  const doomed = await connectMqtt(c, `mqtt://127.0.0.1:${cluster.edges[0].mqttPort}`, {
    clientId: "flap-doomed", will: { topic: "flap/will", payload: Buffer.from("gone"), qos: 1, retain: false },
  });
  // A clean session's subscriptions are made again on the re-attach: its retained message is not sent again.
  await doomed.publishAsync("flap/retained", "kept", { qos: 1, retain: true });
  const { client: reader, inbox: retained } = await connectCollecting(c, `mqtt://127.0.0.1:${cluster.edges[0].mqttPort}`, { clientId: "flap-reader" });
  await suback(reader, { "flap/retained": { qos: 1 } });
  expect((await retained.next()).payload).toBe("kept");
  let closes = 0;
  for (const client of [watcher, doomed, reader]) client.on("close", () => closes++);
  await freezeRouter(2_200);
  // Absence can only be waited for: the grace, and a little more, after both edges re-attached.
  await new Promise((r) => setTimeout(r, LOST_LINK_GRACE_MS + 500));
  console.log(`router SIGSTOP 2,200 ms: ${inbox.all.length} will(s) published, ${closes} client(s) closed`);
  expect(inbox.all.map((m) => m.payload)).toEqual([]);
  expect(retained.all.map((m) => m.payload)).toEqual(["kept"]);
  expect(closes).toBe(0);
  await doomed.publishAsync("flap/retained", "", { qos: 1, retain: true }); // cleared for later runs
  await doomed.publishAsync("flap/alive", "still here", { qos: 1 }); // acked: attached again
  doomed.stream.destroy(); // now the connection is lost: its will goes
  await closeOf(doomed);
  expect((await inbox.next(LOST_LINK_GRACE_MS + 2_000)).payload).toBe("gone");
}, 60_000);

it("router frozen: of two MQTT clients that end while their edge has lost its router, the one that sent DISCONNECT has no will published, the one that dropped has", async () => {
  const { client: watcher, inbox } = await connectCollecting(c, `mqtt://127.0.0.1:${cluster.edges[1].mqttPort}`, { clientId: "gone-watcher", clean: false });
  await suback(watcher, { "gone/#": { qos: 1 } });
  const will = (name: string) => ({ topic: `gone/${name}`, payload: Buffer.from(name), qos: 1 as const, retain: false });
  const polite = await connectMqtt(c, `mqtt://127.0.0.1:${cluster.edges[0].mqttPort}`, { clientId: "gone-polite", will: will("polite") });
  const dropped = await connectMqtt(c, `mqtt://127.0.0.1:${cluster.edges[0].mqttPort}`, { clientId: "gone-dropped", will: will("dropped") });
  const router = cluster.routers[0].proc;
  const edge = cluster.edges[0].proc;
  const mark = edge.mark();
  router.signal("SIGSTOP");
  c.push(() => router.signal("SIGCONT"));
  await edge.waitForLine(/lost router .*; re-attaching/, 10_000, { since: mark });
  await polite.endAsync(); // DISCONNECT: no will
  dropped.stream.destroy(); // no DISCONNECT: its will
  await closeOf(dropped);
  router.signal("SIGCONT");
  await edge.waitForLine(ATTACHED, 10_000, { since: mark });
  expect((await inbox.next(LOST_LINK_GRACE_MS + 2_000)).payload).toBe("dropped");
  // Absence can only be waited for: past the grace the router gives the lost stream's connections.
  await new Promise((r) => setTimeout(r, LOST_LINK_GRACE_MS + 500));
  console.log(`wills of clients ended while their edge lost its router: ${JSON.stringify(inbox.all.map((m) => [m.payload, m.packet.dup]))} ([payload, DUP])`);
  // The watcher's edge re-attached too: what was sent to its lost stream comes again, with DUP
  // (QoS 1: at least once), so the one will may arrive twice.
  expect(new Set(inbox.all.map((m) => m.payload))).toEqual(new Set(["dropped"]));
}, 60_000);

it("router kill -9, then restarted: of two persistent MQTT clients that ended while their edge had no router, the will of the one that dropped is published, not the one's that sent DISCONNECT", async () => {
  const { client: watcher, inbox } = await connectCollecting(c, `mqtt://127.0.0.1:${cluster.edges[1].mqttPort}`, { clientId: "dead-watcher", clean: false });
  await suback(watcher, { "dead/#": { qos: 1 } });
  watcher.on("error", () => {});
  const will = (name: string) => ({ topic: `dead/${name}`, payload: Buffer.from(name), qos: 1 as const, retain: false });
  const url = `mqtt://127.0.0.1:${cluster.edges[0].mqttPort}`;
  const polite = await connectMqtt(c, url, { clientId: "dead-polite", clean: false, will: will("polite") });
  const dropped = await connectMqtt(c, url, { clientId: "dead-dropped", clean: false, will: will("dropped") });
  const edge = cluster.edges[0].proc;
  const mark = edge.mark();
  await cluster.killRouter(0);
  // The edge tries the router again and again: its detaches have no stream to go on.
  await edge.waitForLine(/cannot attach to router/, 10_000, { since: mark });
  await polite.endAsync(); // DISCONNECT: no will
  dropped.stream.destroy(); // no DISCONNECT: its will
  await closeOf(dropped);
  const back = edge.mark();
  await cluster.restartRouter(0);
  await edge.waitForLine(ATTACHED, 15_000, { since: back });
  // The restarted router refuses the detaches until its Redis answers: the edge tries again.
  const first = await inbox.next(LOST_LINK_GRACE_MS + 15_000).catch((err: Error) => {
    // What the edge and the restarted router said, to see where the will stopped.
    console.log([...edge.lines.slice(mark), ...cluster.routers[0].proc.lines].map((l) => l.text).join("\n"));
    throw err;
  });
  expect(first.payload).toBe("dropped");
  await new Promise((r) => setTimeout(r, LOST_LINK_GRACE_MS + 500)); // absence can only be waited for
  console.log(`router kill -9 and restart: wills ${JSON.stringify(inbox.all.map((m) => [m.payload, m.packet.dup]))} ([payload, DUP])`);
  expect(new Set(inbox.all.map((m) => m.payload))).toEqual(new Set(["dropped"]));
}, 60_000);
