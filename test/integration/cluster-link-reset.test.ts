// Link resets with every process alive, as a network blip between pods does: redis-server,
// 2 routers and 2 edges as processes, edge i homed on router i, MQTT.js clients under QoS 1/2
// load (mqtt-load.ts). The TCP connections of one link are aborted with `ss -K` (the kernel
// resets both ends); every other link is left alone.
import { afterAll, beforeAll, expect, it } from "vitest";
import { MESH_LINKED, startCluster, type TestCluster } from "../helpers/cluster.js";
import { mqttUnderFault, type LoadResult } from "../helpers/mqtt-load.js";
import { abortConnections, cannotAbortSockets } from "../helpers/sockets.js";
import { cleanupAfterEach } from "../helpers/wait.js";

const SESSIONS = /MQTT session service started/;
/** What the routers say of a link that dropped with its peer alive. */
const NOTES = /answers through Redis|again \d+ QoS|link to router \S+ down|lost router|re-attach/;
let cluster: TestCluster;
let unsupported: string | undefined;
beforeAll(async () => {
  unsupported = await cannotAbortSockets();
  if (unsupported) return;
  cluster = await startCluster({ routers: 2, edges: 2, edgeConfig: 'mqtt { host: 127.0.0.1, port: -1, ack_wait: "1s" }' });
  await Promise.all(cluster.routers.map((r) => r.proc.waitForLine(SESSIONS, 10_000)));
}, 40_000);
afterAll(() => cluster?.stop());
const c = cleanupAfterEach();

/** Every process's lines since `marks` that tell what the reset did. */
function notes(marks: number[]): string[] {
  const procs = [...cluster.routers, ...cluster.edges];
  return procs.flatMap((p, i) => p.proc.lines.slice(marks[i]).map((l) => l.text).filter((t) => NOTES.test(t))
    .map((t) => `  ${p.name}: ${t.replace(/^.*\] /, "")}`));
}

function report(what: string, r: LoadResult, aborted: number, marks: number[]): void {
  console.log(`${what}: ${aborted} connection(s) aborted; ${r.total} published, ${r.lost} lost, ${r.duplicates} duplicates ` +
    `(${r.dupFlagged} with DUP set), all acked ${r.ackedMs} ms after the reset; closes ${JSON.stringify(r.closes)}\n${notes(marks).join("\n")}`);
}

const marksNow = () => [...cluster.routers, ...cluster.edges].map((p) => p.proc.mark());

it.for([1, 2] as const)("a mesh link reset between two live routers under QoS %i load: no client closed, nothing lost, sent again once", { timeout: 60_000 }, async (qos, ctx) => {
  if (unsupported) return ctx.skip(`cannot reset a link on this machine: ${unsupported}`);
  const [r1, r2] = cluster.routers;
  const marks = marksNow();
  let aborted = 0;
  const r = await mqttUnderFault(c, cluster, {
    id: `mesh-reset-${qos}`, qos, subEdge: 1, pubEdge: 0, total: 1_000,
    fault: () => { aborted = abortConnections(r1.proc.pid, r2.port) + abortConnections(r2.proc.pid, r1.port); },
  });
  await r1.proc.waitForLine(MESH_LINKED, 10_000, { since: marks[0] });
  report(`mesh link reset, QoS ${qos}`, r, aborted, marks);
  expect(aborted).toBeGreaterThan(0);
  expect(r.lost).toBe(0);
  expect(r.closes).toEqual({ sub: 0, pub: 0 });
  // Sent again only what the peer had not applied: a copy comes only as a redelivery (DUP) of
  // QoS 1, never for QoS 2.
  expect(r.duplicates).toBe(r.dupFlagged);
  if (qos === 2) expect(r.duplicates).toBe(0);
});

// The group's members: behind r2 only, then behind both routers. Behind r2 only, r1 has no
// member to pick while the link is down, so what is published then must reach the group when
// the link is back (Mesh.replay); with a member behind r1 too, what r1's member got is not sent
// to r2's (a copy would come without DUP).
it.for([
  ["behind the peer", undefined],
  ["behind both routers", 0],
] as const)("a mesh link reset with a shared subscription %s: the group gets each QoS 1 message once", { timeout: 60_000 }, async ([, second], ctx) => {
  if (unsupported) return ctx.skip(`cannot reset a link on this machine: ${unsupported}`);
  const [r1, r2] = cluster.routers;
  const marks = marksNow();
  let aborted = 0;
  const r = await mqttUnderFault(c, cluster, {
    id: `mesh-reset-shared-${second ?? "peer"}`, qos: 1, subEdge: 1, pubEdge: 0, total: 1_000, shared: "g", secondMember: second,
    fault: () => { aborted = abortConnections(r1.proc.pid, r2.port) + abortConnections(r2.proc.pid, r1.port); },
  });
  await r1.proc.waitForLine(MESH_LINKED, 10_000, { since: marks[0] });
  report(`mesh link reset, QoS 1, shared subscription, members ${second === undefined ? "behind r2" : "behind r1 and r2"}`, r, aborted, marks);
  expect(aborted).toBeGreaterThan(0);
  expect(r.lost).toBe(0);
  expect(r.closes).toEqual({ sub: 0, pub: 0 });
  expect(r.duplicates).toBe(r.dupFlagged);
});

it("the subscriber's edge link reset under QoS 1 load: the edge re-attaches, no client closed, nothing lost", async (ctx) => {
  if (unsupported) return ctx.skip(`cannot reset a link on this machine: ${unsupported}`);
  const marks = marksNow();
  let aborted = 0;
  const r = await mqttUnderFault(c, cluster, {
    id: "edge-reset", qos: 1, subEdge: 1, pubEdge: 0, total: 1_000,
    fault: () => { aborted = abortConnections(cluster.edges[1].proc.pid, cluster.routers[1].port); },
  });
  report(`edge link reset, QoS 1, re-attached in ${r.reattached.join(" / ")} ms`, r, aborted, marks);
  expect(aborted).toBeGreaterThan(0);
  expect(r.lost).toBe(0);
  expect(r.closes).toEqual({ sub: 0, pub: 0 });
}, 60_000);
