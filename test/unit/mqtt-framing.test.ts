// PacketSizeGuard frames the MQTT byte stream for the decoder all connections share: whatever
// the read boundaries, every packet reaches it whole and once, and nothing is left over. The
// decoder's own PUBLISH/PUBACK/PINGREQ reading and the hand-written PUBLISH encoder agree with
// mqtt-packet on random valid packets of both levels; so do its CONNECTs, and a malformed one gets
// mqtt-packet's error.
import { expect, it } from "vitest";
import mqttPacket, { type IConnectPacket, type IPublishPacket, type Packet } from "mqtt-packet";
import { decodeConnect, decodePackets, type PacketSink } from "../../services/edge/mqtt/decoder.js";
import { writePublish } from "../../services/edge/mqtt/encoder.js";
import { PACKET_OK, PacketSizeGuard } from "../../services/edge/mqtt/packet-size.js";
import type { MqttLevel } from "../../services/edge/mqtt/reason-codes.js";
import { Outbound } from "../../services/edge/outbound.js";
import { prng } from "../helpers/prng.js";

/** A sink handing every packet to `decoded`, PUBLISHes the decoder read itself as mqtt-packet's objects. */
function packetSink(decoded: (p: Packet) => void, malformed: (m: string) => void, level: MqttLevel = 4): PacketSink {
  let recent = "";
  return {
    level,
    closed: false,
    get recentTopic() { return recent; },
    decoded,
    malformed,
    published(topic, payload, qos, retain, messageId) {
      recent = topic;
      const p: IPublishPacket = { cmd: "publish", topic, payload, qos: qos as 0 | 1 | 2, retain, dup: false };
      if (qos > 0) p.messageId = messageId;
      decoded(p);
    },
  };
}

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
    const sink = packetSink((p) => got.push(p), (m) => { throw new Error(m); });
    const maxRead = round % 2 ? 7 : 700;
    for (let off = 0; off < stream.length;) {
      const chunk = stream.subarray(off, off + 1 + pick(maxRead));
      off += chunk.length;
      const size = guard.check(chunk);
      if (size !== PACKET_OK) throw new Error(`round ${round}, offset ${off}: check gave ${size}`);
      const packets = guard.takeWhole(chunk);
      if (packets) decodePackets(packets, sink);
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
  // A SUBSCRIBE goes to mqtt-packet's shared parser (a PUBLISH without properties does not).
  const subscribe = mqttPacket.generate({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "t", qos: 0 }] });
  const failing = packetSink(() => { throw new TypeError("simulated bug"); }, (m) => { throw new Error(m); });
  expect(() => decodePackets(subscribe, failing)).toThrow("simulated bug");
  expect(() => decodePackets(publish, failing)).toThrow("simulated bug");
  const got: string[] = [];
  const sink = packetSink((p) => got.push(p.cmd), (m) => got.push(m));
  decodePackets(mqttPacket.generate({ cmd: "pingreq" }), sink);
  decodePackets(subscribe, sink);
  decodePackets(publish, sink);
  expect(got).toEqual(["pingreq", "subscribe", "publish"]);
});

// ---- the decoder's and encoder's own packets against mqtt-packet ----

const TOPICS = ["bench", "a/b/c", "", "sensors/é/温度", "x".repeat(70), "ü".repeat(40), "$SYS/x", "t/😀"];

/** A random valid packet: mostly PUBLISH (with and without MQTT 5 properties), PUBACK, PINGREQ, and some others. */
function randomPacket(rand: () => number, level: MqttLevel): Packet {
  const pick = (n: number) => Math.floor(rand() * n);
  const k = pick(10);
  if (k === 0) return { cmd: "pingreq" };
  if (k === 1) return level === 5 && rand() < 0.5 ? { cmd: "puback", messageId: 1 + pick(65535), reasonCode: 16 } : { cmd: "puback", messageId: 1 + pick(65535) };
  if (k === 2) return { cmd: "subscribe", messageId: 1 + pick(65535), subscriptions: [{ topic: "a/+", qos: 1 }] };
  if (k === 3) return { cmd: "pubrel", messageId: 1 + pick(65535) };
  const qos = pick(3) as 0 | 1 | 2;
  const sizes = [0, 1, 100, 128, 16_000, 20_000];
  const payload = Buffer.alloc(sizes[pick(sizes.length)], pick(256));
  const p: IPublishPacket = { cmd: "publish", topic: TOPICS[pick(TOPICS.length)], payload, qos, retain: rand() < 0.3, dup: qos > 0 && rand() < 0.3 };
  if (qos > 0) p.messageId = 1 + pick(65535);
  if (level === 5 && rand() < 0.4) {
    p.properties = rand() < 0.5 ? { topicAlias: 1 + pick(10) } : { contentType: "text/plain", userProperties: { a: "b" }, messageExpiryInterval: 60 };
  }
  if (p.topic === "" && level === 4) p.topic = "t";
  if (p.topic === "" && !p.properties?.topicAlias) p.properties = { ...p.properties, topicAlias: 3 };
  return p;
}

/** What a connection reads of a packet (mqtt-packet sets more: length, dup of a PUBLISH, ...). */
function essentials(p: Packet): unknown {
  const o = p as Packet & Record<string, unknown>;
  const r: Record<string, unknown> = { cmd: p.cmd };
  for (const k of ["topic", "qos", "retain", "messageId", "properties", "reasonCode", "subscriptions"]) {
    if (o[k] !== undefined && o[k] !== null && !(p.cmd !== "publish" && (k === "qos" || k === "retain" || k === "topic"))) r[k] = o[k];
  }
  if (p.cmd === "publish") r.payload = Buffer.from(p.payload as Buffer).toString("hex");
  return r;
}

/** mqtt-packet's decoding of `bytes` at `level`. */
function reference(bytes: Buffer, level: MqttLevel): Packet[] {
  const parser = mqttPacket.parser({ protocolVersion: level });
  const out: Packet[] = [];
  parser.on("packet", (p: Packet) => out.push(p));
  parser.on("error", (e: Error) => { throw e; });
  parser.parse(bytes);
  return out;
}

/** Feeds `chunks` through a PacketSizeGuard to decodePackets. */
function decodeChunks(chunks: Buffer[], level: MqttLevel): { got: Packet[]; errors: string[] } {
  const got: Packet[] = [];
  const errors: string[] = [];
  const sink = packetSink((p) => got.push(p), (m) => errors.push(m), level);
  const guard = new PacketSizeGuard(1 << 20);
  for (const chunk of chunks) {
    expect(guard.check(chunk)).toBe(PACKET_OK);
    const packets = guard.takeWhole(chunk);
    if (packets) decodePackets(packets, sink);
  }
  return { got, errors };
}

it("decodes random valid packets of both levels as mqtt-packet does, whole, split at every byte, and truncated", () => {
  const rand = prng(3);
  for (const level of [4, 5] as const) {
    for (let round = 0; round < 80; round++) {
      const packet = randomPacket(rand, level);
      const bytes = mqttPacket.generate(packet, { protocolVersion: level });
      const want = reference(bytes, level).map(essentials);
      expect(want).toHaveLength(1);
      expect(decodeChunks([bytes], level).got.map(essentials), `level ${level}: ${JSON.stringify(essentials(packet))}`).toEqual(want);
      if (bytes.length > 300) continue; // the big payloads: whole only (every split is quadratic)
      for (let cut = 1; cut < bytes.length; cut++) {
        const split = decodeChunks([bytes.subarray(0, cut), bytes.subarray(cut)], level);
        expect(split.got.map(essentials), `split at ${cut}`).toEqual(want);
        const truncated = decodeChunks([bytes.subarray(0, cut)], level);
        expect(truncated, `truncated at ${cut}`).toEqual({ got: [], errors: [] });
      }
    }
  }
});

it("a PUBLISH whose fields overrun its remaining length, or with QoS 3, is malformed", () => {
  const cases: [string, number[]][] = [
    ["Packet must not have both QoS bits set to 1", [0x36, 3, 0, 1, 0x74]],
    ["Cannot parse topic", [0x30, 1, 0]],
    ["Cannot parse topic", [0x30, 3, 0, 5, 0x74]],
    ["Cannot parse messageId", [0x32, 4, 0, 1, 0x74, 0]],
  ];
  for (const [message, bytes] of cases) {
    for (const level of [4, 5] as const) {
      // The PINGREQ after it still decodes (this sink stays open): the decoder is at the next packet.
      const { got, errors } = decodeChunks([Buffer.from([...bytes, 0xc0, 0])], level);
      expect(errors[0], `${Buffer.from(bytes).toString("hex")} at level ${level}`).toBe(message);
      expect(got.map((p) => p.cmd)).toEqual(errors.length > 0 ? ["pingreq"] : []);
    }
  }
});

it("reuses the previous PUBLISH's topic string when the bytes match, and decodes non-ASCII topics afresh", () => {
  const got: Packet[] = [];
  const sink = packetSink((p) => got.push(p), (m) => { throw new Error(m); });
  const publish = (topic: string) => mqttPacket.generate({ cmd: "publish", topic, payload: Buffer.from("x"), qos: 0, retain: false, dup: false });
  decodePackets(Buffer.concat([publish("bench"), publish("bench"), publish("benci"), publish("é"), publish("é")]), sink);
  expect(got.map((p) => (p as IPublishPacket).topic)).toEqual(["bench", "bench", "benci", "é", "é"]);
});

it("encodes a PUBLISH byte for byte as mqtt-packet, both levels, with and without a topic alias", () => {
  const rand = prng(5);
  const pick = (n: number) => Math.floor(rand() * n);
  const written: Buffer[] = [];
  const transport = { write: (b: Buffer) => void written.push(Buffer.from(b)), pendingBytes: 0, onDrain: () => {} };
  const out = new Outbound(transport, { slowConsumer: (r) => { throw new Error(r); } }, 64 << 20, 0);
  for (let i = 0; i < 600; i++) {
    const level: MqttLevel = rand() < 0.5 ? 4 : 5;
    const qos = pick(3) as 0 | 1 | 2;
    const alias = level === 5 && rand() < 0.4 ? 1 + pick(65535) : 0;
    const topic = alias && rand() < 0.5 ? "" : TOPICS[pick(TOPICS.length)] || "t";
    const sizes = [0, 5, 100, 127, 16_380, 20_000, 2_100_000];
    const payload = Buffer.alloc(sizes[pick(sizes.length)], pick(256));
    const retain = rand() < 0.5;
    const dup = rand() < 0.5;
    const packetId = qos > 0 ? 1 + pick(65535) : 0;
    expect(writePublish(out, level, topic, payload, qos, retain, dup, packetId, alias)).toBe(true);
    out.flush();
    const p: IPublishPacket = { cmd: "publish", topic, payload, qos, retain, dup };
    if (qos > 0) p.messageId = packetId;
    if (alias) p.properties = { topicAlias: alias };
    const want = mqttPacket.generate(p, { protocolVersion: level });
    expect(written.pop()!.equals(want), `${JSON.stringify({ level, topic, size: payload.length, qos, alias })}`).toBe(true);
    // Again (the bytes before the payload reused), and with another payload of the same size.
    payload.fill(pick(256));
    writePublish(out, level, topic, payload, qos, retain, dup, packetId, alias);
    out.flush();
    expect(written.pop()!.equals(mqttPacket.generate(p, { protocolVersion: level })), "encoded again").toBe(true);
  }
});

/** A random CONNECT of `level`: with and without will, user name, password; some with MQTT 5 properties. */
function randomConnect(rand: () => number, level: MqttLevel): IConnectPacket {
  const pick = (n: number) => Math.floor(rand() * n);
  const p: IConnectPacket = {
    cmd: "connect", protocolId: "MQTT", protocolVersion: level, clean: rand() < 0.5, keepalive: pick(65536),
    clientId: ["", "c", "client-é-温度", "x".repeat(300)][pick(4)],
  };
  if (p.clientId === "" && !p.clean) p.clientId = "c"; // mqtt-packet refuses to write that one
  if (rand() < 0.4) {
    p.will = { topic: TOPICS[pick(TOPICS.length)] || "w", payload: Buffer.alloc(pick(3) * 100, 7), qos: pick(3) as 0 | 1 | 2, retain: rand() < 0.5 };
    if (level === 5 && rand() < 0.3) p.will.properties = { willDelayInterval: 5 };
  }
  if (rand() < 0.5) p.username = ["", "user", "ü"][pick(3)];
  if (p.username !== undefined && rand() < 0.5) p.password = Buffer.from(["", "secret", "x".repeat(200)][pick(3)]);
  if (level === 5 && rand() < 0.3) p.properties = { sessionExpiryInterval: 60, receiveMaximum: 10 };
  return p;
}

it("decodes random CONNECTs of both levels to the same object as mqtt-packet, whole and split", () => {
  const rand = prng(9);
  for (const level of [4, 5] as const) {
    for (let round = 0; round < 300; round++) {
      const bytes = mqttPacket.generate(randomConnect(rand, level), { protocolVersion: level });
      const want = reference(bytes, 4);
      expect(want).toHaveLength(1);
      expect(decodeChunks([bytes], 4).got, `level ${level}, round ${round}`).toEqual(want);
      // read here unless it has properties (mqtt-packet's then)
      const withProperties = "properties" in want[0] || "properties" in ((want[0] as IConnectPacket).will ?? {});
      expect(decodeConnect(bytes, bytes.length - (want[0] as IConnectPacket & { length: number }).length, bytes.length))
        .toEqual(withProperties ? undefined : want[0]);
      const cut = 1 + Math.floor(rand() * (bytes.length - 1));
      expect(decodeChunks([bytes.subarray(0, cut), bytes.subarray(cut)], 4).got, `split at ${cut}`).toEqual(want);
    }
  }
});

it("a malformed CONNECT gets mqtt-packet's error, and the decoder goes on at the next packet", () => {
  const valid = [...mqttPacket.generate({ cmd: "connect", protocolId: "MQTT", protocolVersion: 4, clean: true, keepalive: 30, clientId: "c" })];
  const cases: [string, number[]][] = [
    ["Invalid protocolId", valid.map((b, i) => (i === 4 ? 0x58 : b))],
    ["Invalid protocol version", valid.map((b, i) => (i === 8 ? 6 : b))],
    ["Connect flag bit 0 must be 0, but got 1", valid.map((b, i) => (i === 9 ? b | 1 : b))],
    ["Will QoS must be set to zero when Will Flag is set to 0", valid.map((b, i) => (i === 9 ? b | 0x08 : b))],
    ["Will Retain Flag must be set to zero when Will Flag is set to 0", valid.map((b, i) => (i === 9 ? b | 0x20 : b))],
    ["Packet too short", [0x10, 12, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 2, 0, 30, 0, 5]],
    ["Cannot parse will topic", [0x10, 13, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 6, 0, 30, 0, 0, 0]],
    ["Cannot parse username", [0x10, 13, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x82, 0, 30, 0, 0, 0]],
  ];
  for (const [message, bytes] of cases) {
    let reference = "";
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.on("error", (e: Error) => { reference ||= e.message; });
    parser.parse(Buffer.from(bytes));
    expect(reference, "the case is malformed for mqtt-packet").toBe(message);
    const { got, errors } = decodeChunks([Buffer.from([...bytes, 0xc0, 0])], 4);
    expect(errors[0], Buffer.from(bytes).toString("hex")).toBe(message);
    expect(got.map((p) => p.cmd)).toEqual(["pingreq"]);
  }
});
