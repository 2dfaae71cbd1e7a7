// PacketSizeGuard frames the MQTT byte stream for the decoder all connections share: whatever
// the read boundaries, every packet reaches it whole and once, and nothing is left over.
import { expect, it } from "vitest";
import mqttPacket, { type Packet } from "mqtt-packet";
import { decodePackets } from "../../services/edge/mqtt/decoder.js";
import { PACKET_OK, PacketSizeGuard } from "../../services/edge/mqtt/packet-size.js";
import { prng } from "../helpers/prng.js";

it("packets cut at random points, 1–7 and 1–700 bytes a read, decode whole and in order", () => {
  const rand = prng(14);
  const pick = (n: number) => Math.floor(rand() * n);
  for (let round = 0; round < 40; round++) {
    const sent: Packet[] = [];
    for (let i = 0; i < 200; i++) {
      const k = pick(3);
      sent.push(k === 0 ? { cmd: "puback", messageId: i + 1 } : k === 1 ? { cmd: "pingreq" }
        : { cmd: "publish", topic: `t/${i}`, payload: Buffer.alloc(pick(400), i), qos: 1, messageId: i + 1, retain: false, dup: false });
    }
    const stream = Buffer.concat(sent.map((p) => mqttPacket.generate(p)));
    const guard = new PacketSizeGuard(1 << 20);
    const got: Packet[] = [];
    const sink = { decoded: (p: Packet) => got.push(p), malformed: (m: string) => { throw new Error(m); } };
    const maxRead = round % 2 ? 7 : 700;
    for (let off = 0; off < stream.length;) {
      const chunk = stream.subarray(off, off + 1 + pick(maxRead));
      off += chunk.length;
      const size = guard.check(chunk);
      if (size !== PACKET_OK) throw new Error(`round ${round}, offset ${off}: check gave ${size}`);
      const packets = guard.takeWhole(chunk);
      if (packets) decodePackets(packets, 4, sink);
    }
    expect(got.map((p) => p.cmd)).toEqual(sent.map((p) => p.cmd));
    expect(got.map((p) => ("messageId" in p ? p.messageId : 0))).toEqual(sent.map((p) => ("messageId" in p ? p.messageId : 0)));
    const none = Buffer.alloc(0);
    guard.check(none);
    expect(guard.takeWhole(none)?.length, "no bytes left over").toBe(0);
  }
});

it("a handler that throws leaves the shared decoder ready for the next connection's packets", () => {
  const publish = mqttPacket.generate({ cmd: "publish", topic: "t", payload: Buffer.from("x"), qos: 0, retain: false, dup: false });
  const failing = { decoded: () => { throw new TypeError("simulated bug"); }, malformed: (m: string) => { throw new Error(m); } };
  expect(() => decodePackets(publish, 4, failing)).toThrow("simulated bug");
  const got: string[] = [];
  const sink = { decoded: (p: Packet) => got.push(p.cmd), malformed: (m: string) => got.push(m) };
  decodePackets(mqttPacket.generate({ cmd: "pingreq" }), 4, sink);
  decodePackets(publish, 4, sink);
  expect(got).toEqual(["pingreq", "publish"]);
});
