// What an idle MQTT connection holds, and the decoding that lets it hold little: every MQTT
// connection shares one mqtt-packet parser and keeps only the bytes of a packet not complete yet
// (services/edge/mqtt/decoder.ts), keep-alive is one sweep for all connections
// (keep-alive.ts), and a session makes its in-flight maps on first use.
import net from "node:net";
import { once } from "node:events";
import { describe, expect, it } from "vitest";
import mqttPacket, { type Packet } from "mqtt-packet";
import { majorGc } from "../../services/common/memory.js";
import { startBroker } from "../helpers/broker.js";
import { connectBytes, RawMqtt, startMqttBroker } from "../helpers/mqtt.js";
import { cleanupAfterEach, withTimeout } from "../helpers/wait.js";

const c = cleanupAfterEach();

const bytes = (p: Packet, level: 4 | 5 = 4) => mqttPacket.generate(p, { protocolVersion: level });

describe("decoding packets split over reads (embedded)", () => {
  it("whole packets before a partial one are handled at once; the rest completes it, even byte by byte", async () => {
    const s = await startMqttBroker("embedded");
    c.push(() => s.stop());
    const { c: r } = await RawMqtt.accepted(c, s.mqttPort, { clientId: "split" });
    const sub = bytes({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "split/t", qos: 0 }] });
    const pub = bytes({ cmd: "publish", topic: "split/t", payload: Buffer.from("x".repeat(300)), qos: 0, retain: false, dup: false });
    // SUBSCRIBE whole, then the first 3 bytes of a PUBLISH (its header and part of the length).
    r.sendRaw(Buffer.concat([sub, pub.subarray(0, 3)]));
    await r.next("suback");
    for (let i = 3; i < pub.length; i++) {
      r.sendRaw(pub.subarray(i, i + 1));
      await new Promise((res) => setImmediate(res)); // a read each, as far as TCP lets it
    }
    const got = await r.next("publish");
    expect(Buffer.from(got.payload).toString()).toBe("x".repeat(300));
    // A PINGREQ split in two, then two in one write.
    const ping = bytes({ cmd: "pingreq" });
    r.sendRaw(ping.subarray(0, 1));
    r.sendRaw(Buffer.concat([ping.subarray(1), ping]));
    await r.next("pingresp");
    await r.next("pingresp");
  });

  it("a malformed packet closes its connection only; the next connection's packets decode", async () => {
    const s = await startMqttBroker("embedded");
    c.push(() => s.stop());
    const { c: bad } = await RawMqtt.accepted(c, s.mqttPort, { clientId: "bad" });
    // A PINGREQ, then a PUBLISH with both QoS bits set [MQTT-3.3.1-4], then a PINGREQ in one write.
    const ping = bytes({ cmd: "pingreq" });
    bad.sendRaw(Buffer.concat([ping, Buffer.from([0x36, 0x03, 0x00, 0x01, 0x74]), ping]));
    await bad.next("pingresp");
    await bad.closedWithin(3_000);
    expect(bad.packets.filter((p) => p.cmd === "pingresp")).toHaveLength(1);
    const { c: good } = await RawMqtt.accepted(c, s.mqttPort, { clientId: "good" });
    good.send({ cmd: "pingreq" });
    await good.next("pingresp");
  });
});

/** A bare socket that sent `hello` and saw `until` come back; it then keeps no listener but
 *  its error one, so MQTT and NATS clients cost this process the same. */
async function openIdle(port: number, hello: Buffer, until: string): Promise<net.Socket> {
  const socket = net.connect({ port, host: "127.0.0.1" });
  socket.on("error", () => {});
  await once(socket, "connect");
  let text = "";
  await withTimeout(new Promise<void>((resolve) => {
    const onData = (b: Buffer) => {
      text += b.toString("latin1");
      if (!text.includes(until)) return;
      socket.off("data", onData);
      socket.resume();
      resolve();
    };
    socket.on("data", onData);
    socket.write(hello);
  }), 10_000, () => `no ${JSON.stringify(until)} from port ${port}; got ${JSON.stringify(text)}`);
  return socket;
}

/** Heap bytes per connection that `open` opens, `n` of them, after a full GC each side. */
async function heapPerConnection(n: number, open: (i: number) => Promise<net.Socket>): Promise<number> {
  const gc = majorGc();
  await open(-1).then((s) => s.destroy()); // one-time costs (code, caches) are not per connection
  gc();
  const before = process.memoryUsage().heapUsed;
  const sockets: net.Socket[] = [];
  for (let i = 0; i < n; i++) sockets.push(await open(i));
  gc();
  const per = (process.memoryUsage().heapUsed - before) / n;
  for (const s of sockets) s.destroy();
  return per;
}

describe("idle connection memory (embedded)", () => {
  it("an idle MQTT connection takes no more heap than an idle NATS connection", async () => {
    const b = await startBroker({ config: "server_name: mem\nmqtt { port: -1 }\n" });
    c.push(() => b.stop());
    const N = 400;
    const t0 = Date.now();
    const nats = await heapPerConnection(N, () => openIdle(b.natsPort, Buffer.from("CONNECT {}\r\nPING\r\n"), "PONG\r\n"));
    const mqtt = await heapPerConnection(N, (i) => openIdle(b.mqttPort!, connectBytes({ clientId: `idle-${i}` }), "\x20\x02\x00\x00"));
    // Both figures include this process's own client socket, the same for both.
    console.log(`heap per idle connection (server and client side): MQTT ${mqtt.toFixed(0)} B, NATS ${nats.toFixed(0)} B, ` +
      `${N} each, ${Date.now() - t0} ms`);
    expect(mqtt).toBeLessThanOrEqual(nats);
  });
});
