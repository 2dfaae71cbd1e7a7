// The decoding that lets an idle MQTT connection hold little: every MQTT connection shares one
// mqtt-packet parser and keeps only the bytes of a packet not complete yet (decoder.ts,
// PacketSizeGuard.takeWhole), over real sockets. test/unit/mqtt-framing.test.ts cuts the stream
// at random points.
import { describe, expect, it } from "vitest";
import mqttPacket, { type Packet } from "mqtt-packet";
import { RawMqtt, startMqttBroker } from "../helpers/mqtt.js";
import { cleanupAfterEach } from "../helpers/wait.js";

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
