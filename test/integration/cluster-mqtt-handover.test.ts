// A persistent MQTT session moving between edges of different routers while a QoS 1 publisher
// never stops: its ownership moves between the routers at each reconnect
// (services/router/sessions/ownership.ts), and no message may be lost in the handover. Each
// payload is published twice, back to back: the handover's merge tells equal messages apart by
// their ids (before, by content, two equal ones could count as one).
// redis-server, 2 routers, 2 edges (edge i homed on router i) as processes, MQTT.js clients.
import { afterAll, beforeAll, expect, it } from "vitest";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { closeOf, connectCollecting, connectMqtt, suback, type Inbox } from "../helpers/mqtt.js";
import { cleanupAfterEach, withTimeout } from "../helpers/wait.js";

const MOVES = 12;
/** Messages the subscriber takes on each edge before it moves on. */
const PER_STAY = 15;
let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startCluster({ routers: 2, edges: 2, edgeConfig: 'mqtt { host: 127.0.0.1, port: -1, ack_wait: "1s" }' });
  await Promise.all(cluster.routers.map((r) => r.proc.waitForLine(/MQTT session service started/, 10_000)));
}, 40_000);
afterAll(() => cluster?.stop());
const c = cleanupAfterEach();

const url = (edge: number) => `mqtt://127.0.0.1:${cluster.edges[edge].mqttPort}`;

/** Until `inbox` holds `n` messages (bounded). */
const untilCount = (inbox: Inbox, n: number, timeoutMs: number, what: () => string) => withTimeout((async () => {
  while (inbox.all.length < n) await new Promise((r) => setTimeout(r, 5));
})(), timeoutMs, what);

it("a persistent session moving between routers loses no QoS 1 message, equal messages included", async () => {
  const pub = await connectMqtt(c, url(0), { clientId: "ho-pub" });
  const first = await connectCollecting(c, url(0), { clientId: "ho-sub", clean: false });
  expect(await suback(first.client, { "ho/t": { qos: 1 } })).toEqual([1]);
  // Every delivery, by payload: how often, and how often with DUP set.
  const seen = new Map<string, { n: number; dup: number }>();
  const record = (inbox: Inbox, from: number) => {
    for (const m of inbox.all.slice(from)) {
      const s = seen.get(m.payload) ?? { n: 0, dup: 0 };
      s.n++;
      if (m.packet.dup) s.dup++;
      seen.set(m.payload, s);
    }
  };

  let sent = 0;
  let publishing = true;
  const publisher = (async () => {
    while (publishing) {
      await pub.publishAsync("ho/t", String(sent), { qos: 1 });
      await pub.publishAsync("ho/t", String(sent++), { qos: 1 });
    }
  })();

  let { client, inbox } = first;
  const t0 = Date.now();
  const stays: number[] = [];
  for (let move = 1; move <= MOVES; move++) {
    const stay = Date.now();
    await untilCount(inbox, PER_STAY, 10_000, () => `move ${move}: ${inbox.all.length} of ${PER_STAY} messages on edge ${(move - 1) % 2}`);
    stays.push(Date.now() - stay);
    record(inbox, 0);
    client.end();
    await closeOf(client, 5_000);
    // Router 0's edge, then router 1's, and back: ownership moves at every reconnect.
    ({ client, inbox } = await connectCollecting(c, url(move % 2), { clientId: "ho-sub", clean: false }));
  }
  publishing = false;
  await publisher;
  // Everything sent arrives (each payload twice), after the last move.
  const count = (k: number) => (seen.get(String(k))?.n ?? 0) + inbox.all.filter((m) => m.payload === String(k)).length;
  const missing = () => [...Array(sent).keys()].filter((k) => count(k) < 2);
  await withTimeout((async () => {
    while (missing().length > 0) await new Promise((r) => setTimeout(r, 20));
  })(), 10_000, () => `sent ${sent}, lost ${missing().length}: ${missing().join(" ")}`).catch((err: Error) => err);
  record(inbox, 0);
  const lost = [...Array(sent).keys()].filter((k) => (seen.get(String(k))?.n ?? 0) < 2);
  let duplicates = 0, withDup = 0;
  for (const s of seen.values()) {
    duplicates += Math.max(0, s.n - 2);
    withDup += Math.min(s.dup, Math.max(0, s.n - 2));
  }
  console.log(`${MOVES} moves between routers in ${Date.now() - t0} ms (stays ${stays.join(" ")} ms): ${sent} payloads sent twice, ` +
    `${lost.length} with a copy lost${lost.length > 0 ? ` (${lost.join(" ")})` : ""}, ${duplicates} copies delivered twice (${withDup} of them with DUP)`);
  expect(lost).toEqual([]);
  // A second delivery is a redelivery of one not acknowledged: it carries DUP [MQTT-3.3.1-1].
  expect(duplicates - withDup).toBe(0);
}, 90_000);
