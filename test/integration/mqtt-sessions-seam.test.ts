// The MQTT session service sits on the router side of the link (issue #10): two edges, each
// joined to one router by a serialised link (every call as bytes, answered on a later turn),
// share every session. A client id has one holder across both edges (takeover from the other
// edge, or two connections attaching at once), a persistent session's queue is delivered once,
// wherever the client returns, and the wills of an edge whose stream ends are published by the router.
import { describe, expect, it } from "vitest";
import { StringCodec } from "nats";
import { loadConfigText } from "../../services/common/config/index.js";
import { silentLogger } from "../../services/common/log.js";
import { EdgeServer } from "../../services/edge/server.js";
import { startRouterSide } from "../../services/embedded.js";
import { createSerialisedLink } from "../../services/router/link-serialised.js";
import { LOST_LINK_GRACE_MS } from "../../services/router/sessions/service.js";
import { natsClient } from "../helpers/clients.js";
import { mqttTopologies } from "../helpers/broker.js";
import { RawMqtt, startMqttBroker, tempDir } from "../helpers/mqtt.js";
import { cleanupAfterEach, firstData, withTimeout } from "../helpers/wait.js";

const c = cleanupAfterEach();
const sc = StringCodec();
const text = (b: Buffer | Uint8Array | string) => (typeof b === "string" ? b : Buffer.from(b).toString("utf8"));

interface Edge { edge: EdgeServer; mqttPort: number; link: { close(): void } }

/** One router side (memory store) and two edges on serialised links to it. */
async function twoEdges(): Promise<[Edge, Edge]> {
  const config = "host: 127.0.0.1\nport: -1\nmqtt { host: 127.0.0.1, port: -1 }\n";
  const { options } = loadConfigText(`server_name: router\n${config}`, "router.conf", {});
  const side = await startRouterSide(options, silentLogger());
  c.push(() => side.close());
  const edges: Edge[] = [];
  for (const name of ["edge-a", "edge-b"]) {
    const { options: edgeOptions } = loadConfigText(`server_name: ${name}\n${config}`, `${name}.conf`, {});
    const link = createSerialisedLink(side.router);
    const edge = new EdgeServer({ options: edgeOptions, link, log: silentLogger() });
    await edge.listen();
    c.push(async () => {
      await edge.shutdown();
      link.close();
    });
    edges.push({ edge, mqttPort: edge.mqtt!.port, link });
  }
  return edges as [Edge, Edge];
}

describe("MQTT sessions across two edges of one router", () => {
  it("a client id connecting on the other edge takes the session over; the first connection is closed", async () => {
    const [a, b] = await twoEdges();
    const first = await RawMqtt.accepted(c, a.mqttPort, { clientId: "roamer", clean: false });
    first.c.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "roam/#", qos: 1 }] });
    await first.c.next("suback");
    const second = await RawMqtt.accepted(c, b.mqttPort, { clientId: "roamer", clean: false });
    expect(second.sessionPresent).toBe(true);
    await first.c.closedWithin(2_000);
    // The subscription made on edge A delivers on edge B now.
    const nc = await natsClient(c, a.edge.port);
    nc.publish("roam.x", sc.encode("here"));
    const m = await second.c.next("publish");
    expect([m.topic, text(m.payload), m.qos]).toEqual(["roam/x", "here", 0]);
  });

  it("QoS 1 messages queued while away are delivered once, on the edge the client returns to", async () => {
    const [a, b] = await twoEdges();
    const away = await RawMqtt.accepted(c, a.mqttPort, { clientId: "away", clean: false });
    away.c.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "q/1", qos: 1 }] });
    await away.c.next("suback");
    away.c.send({ cmd: "disconnect" });
    await away.c.closedWithin(2_000);
    const pub = await RawMqtt.accepted(c, a.mqttPort, { clientId: "pub" });
    pub.c.send({ cmd: "publish", topic: "q/1", payload: Buffer.from("queued"), qos: 1, messageId: 9, retain: false, dup: false });
    await pub.c.next("puback");

    const back = await RawMqtt.accepted(c, b.mqttPort, { clientId: "away", clean: false });
    expect(back.sessionPresent).toBe(true);
    const m = await back.c.next("publish");
    expect([m.topic, text(m.payload), m.qos]).toEqual(["q/1", "queued", 1]);
    back.c.send({ cmd: "puback", messageId: m.messageId });
    // Acknowledged on edge B: back on edge A the queue is empty, and a PINGRESP is all that comes.
    back.c.send({ cmd: "disconnect" });
    await back.c.closedWithin(2_000);
    const again = await RawMqtt.accepted(c, a.mqttPort, { clientId: "away", clean: false });
    again.c.send({ cmd: "pingreq" });
    expect((await again.c.next()).cmd).toBe("pingresp");
  });

  it("an edge whose stream ends loses its connections: the router publishes their wills", async () => {
    const [a, b] = await twoEdges();
    const nc = await natsClient(c, b.edge.port);
    const sub = nc.subscribe("wills.a");
    await nc.flush();
    await RawMqtt.accepted(c, a.mqttPort, {
      clientId: "mortal", will: { topic: "wills/a", payload: Buffer.from("edge a is gone"), qos: 0, retain: false },
    });
    const closed = Date.now();
    a.link.close(); // the edge's stream ends without the connection closing
    // Not at once: for LOST_LINK_GRACE_MS the edge may attach the connection again.
    expect(await firstData(sub, LOST_LINK_GRACE_MS + 2_000)).toBe("edge a is gone");
    expect(Date.now() - closed).toBeGreaterThanOrEqual(LOST_LINK_GRACE_MS - 50);
  });
});

describe.each(mqttTopologies)("one holder per client id (%s)", (topology) => {
  it("two CONNECTs of one client id at once: one connection is closed, the other holds the session", async () => {
    // LevelDB: an attach waits on real store I/O, so the two would overlap if nothing ordered them.
    const s = await startMqttBroker(topology, { mqtt: `store_dir: "${await tempDir(c)}"` });
    c.push(() => s.stop());
    const connect = { cmd: "connect", protocolId: "MQTT", protocolVersion: 4, clean: false, clientId: "twin", keepalive: 0 } as const;
    const [x, y] = await Promise.all([RawMqtt.connect(s.mqttPort), RawMqtt.connect(s.mqttPort)]);
    c.push(() => x.close());
    c.push(() => y.close());
    x.send(connect);
    y.send(connect);
    // The one taken over may be closed before or after its CONNACK.
    await withTimeout(Promise.race([x.closed, y.closed]), 3_000, () => "neither connection was closed: two holders of one session");
    const survivor = x.socket.destroyed ? y : x;
    expect((await survivor.next("connack")).cmd).toBe("connack");
    survivor.send({ cmd: "pingreq" });
    expect((await survivor.next("pingresp")).cmd).toBe("pingresp");
  });
});
