// MQTT load across the cluster for the tests that break something under it (cluster-mqtt,
// chaos-mqtt): a persistent subscriber on one edge, a publisher on another sending numbered
// QoS 1 or 2 messages, a fault injected a quarter of the way through. It counts what was acked,
// lost and duplicated, and whether a client was disconnected; the caller prints and checks.
import type { MqttClient } from "mqtt";
import { ATTACHED, type TestCluster } from "./cluster.js";
import { connectCollecting, connectMqtt, suback, type Inbox } from "./mqtt.js";
import { withTimeout, type Cleanups } from "./wait.js";

/** Calls `send` until `inbox` has received something: interest has crossed the mesh. */
export async function untilReceived(inbox: Inbox, send: () => Promise<unknown>): Promise<void> {
  await withTimeout((async () => {
    while (inbox.all.length === 0) {
      await send();
      await new Promise((r) => setTimeout(r, 20));
    }
  })(), 3_000, () => "interest never reached the publisher's router");
}

export interface LoadOptions {
  /** Client ids and topics start with it. */
  id: string;
  qos: 1 | 2;
  /** The subscriber's and the publisher's edge. */
  subEdge: number;
  pubEdge: number;
  total?: number;
  /** Injected once a quarter was published; the load goes on meanwhile. */
  fault(): unknown;
  /** Called with the publish number and its ack time (Date.now()), for checks on when acks came. */
  onAck?(i: number, at: number): void;
  ackTimeoutMs?: number;
  /** The subscriber joins this shared subscription group (`$share/<group>/<id>/#`) instead of
   *  subscribing plainly: a queue group, as the routers see it. */
  shared?: string;
  /** With `shared`: the edge of a second member of the group, whose messages count with the
   *  subscriber's (each message goes to one of the two). */
  secondMember?: number;
}

export interface LoadResult {
  total: number;
  lost: number;
  duplicates: number;
  /** Duplicates that came with DUP set (a redelivery, as MQTT allows for QoS 1). */
  dupFlagged: number;
  /** Per edge: the re-attach time it logged, "-" when it stayed attached. */
  reattached: string[];
  /** From the fault to the last ack. */
  ackedMs: number;
  closes: { sub: number; pub: number };
  sub: MqttClient;
  pub: MqttClient;
}

export async function mqttUnderFault(c: Cleanups, cluster: TestCluster, o: LoadOptions): Promise<LoadResult> {
  const url = (edge: number) => `mqtt://127.0.0.1:${cluster.edges[edge].mqttPort}`;
  const { client: sub, inbox } = await connectCollecting(c, url(o.subEdge), { clientId: o.id, clean: false });
  const filter = o.shared === undefined ? `${o.id}/#` : `$share/${o.shared}/${o.id}/#`;
  await suback(sub, { [filter]: { qos: o.qos } });
  const inboxes = [inbox];
  if (o.shared !== undefined && o.secondMember !== undefined) {
    const second = await connectCollecting(c, url(o.secondMember), { clientId: `${o.id}-2`, clean: false });
    await suback(second.client, { [filter]: { qos: o.qos } });
    inboxes.push(second.inbox);
  }
  const pub = await connectMqtt(c, url(o.pubEdge), { clientId: `${o.id}-pub` });
  const closes = { sub: 0, pub: 0 };
  sub.on("close", () => closes.sub++);
  pub.on("close", () => closes.pub++);
  const errors: string[] = [];
  sub.on("error", (e) => errors.push(`sub: ${e.message}`));
  pub.on("error", (e) => errors.push(`pub: ${e.message}`));
  await untilReceived(inbox, () => pub.publishAsync(`${o.id}/probe`, "p", { qos: 1 }));

  const total = o.total ?? 2_000;
  const marks = cluster.edges.map((e) => e.proc.mark());
  let faultAt = 0;
  const acked: Promise<unknown>[] = [];
  const unacked = new Set<number>();
  for (let i = 0; i < total; i++) {
    unacked.add(i);
    acked.push(pub.publishAsync(`${o.id}/m`, String(i), { qos: o.qos }).then(() => {
      unacked.delete(i);
      o.onAck?.(i, Date.now());
    }));
    if (i === total / 4) {
      faultAt = Date.now();
      void o.fault();
    }
    if (i % 50 === 0) await new Promise((r) => setImmediate(r));
  }
  const serverLines = () => [...cluster.edges.map((e, i) => e.proc.lines.slice(marks[i]).map((l) => `${e.name}: ${l.text}`)),
    ...cluster.routers.map((r) => r.proc.lines.slice(Math.max(0, r.proc.lines.length - 30)).map((l) => `${r.name}: ${l.text}`))].flat();
  await withTimeout(Promise.all(acked), o.ackTimeoutMs ?? 15_000, () =>
    `not every publish was acknowledged (${unacked.size} of ${total} not: ${[...unacked].slice(0, 10).join(", ")}…; ` +
    `client errors: ${errors.join("; ") || "none"}; closes ${JSON.stringify(closes)})\n${serverLines().join("\n")}`);
  const ackedMs = Date.now() - faultAt;
  const msgs = () => inboxes.flatMap((i) => i.all.filter((m) => m.topic === `${o.id}/m`));
  const distinct = () => new Set(msgs().map((m) => m.payload)).size;
  // Wait for everything, or for deliveries to stop for 5 s (what is missing then is lost): a
  // router frozen with the subscriber's session stops them until it is declared dead (1.5 s),
  // does not answer (0.5 s), and its sessions are adopted.
  const deadline = Date.now() + 10_000;
  for (let last = -1, since = Date.now(); distinct() < total && Date.now() < deadline;) {
    if (distinct() !== last) [last, since] = [distinct(), Date.now()];
    else if (Date.now() - since > 5_000) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  await new Promise((r) => setTimeout(r, 300)); // late duplicates, to count them
  // Read, not waited for: an edge that had to re-attach did before its clients' acks and deliveries
  // went through (waiting 5 s for the line of an edge that stayed cost every test 5 s).
  const reattached = cluster.edges.map((e, i) => {
    const line = e.proc.lines.slice(marks[i]).find((l) => ATTACHED.test(l.text));
    return line ? ATTACHED.exec(line.text)![3] ?? "?" : "-";
  });
  if (closes.sub + closes.pub > 0) {
    // What the servers said meanwhile, to tell why a client was closed.
    console.log(`closes ${JSON.stringify(closes)}; client errors: ${errors.join("; ") || "none"}\n${serverLines().join("\n")}`);
  }
  return {
    total, lost: total - distinct(), duplicates: msgs().length - distinct(), dupFlagged: msgs().filter((m) => m.packet.dup).length,
    reattached, ackedMs, closes, sub, pub,
  };
}
