// Decodes the MQTT packets of every connection. The packets of the message path (PUBLISH
// without MQTT 5 properties, PUBACK, PINGREQ) are read here straight from the received bytes:
// no parser state, no packet object for a PUBLISH, and the topic string of the connection's
// previous PUBLISH reused when the bytes match. So is a well-formed CONNECT without MQTT 5
// properties, the one packet of every connection (mqtt-packet's parse was a third of what a
// connect allocated). Every other packet (SUBSCRIBE, a PUBLISH or CONNECT with properties,
// anything malformed in a way not checked here, ...) goes to one
// mqtt-packet parser shared by all connections: a parser of its own cost each connection about
// 1.5 KB while idle. Connections hand over whole packets only (PacketSizeGuard.whole says where
// they end) and keep the bytes of an unfinished packet themselves, so the parser is given one
// whole packet at a time and is back at a packet boundary after every call.
import mqtt, { type IConnectPacket, type Packet, type QoS } from "mqtt-packet";
import type { MqttLevel } from "./reason-codes.js";

/** Where decoded packets go (the connection whose bytes are decoded). */
export interface PacketSink {
  /** The protocol level to decode at, read before each packet (a CONNECT sets it). */
  readonly level: MqttLevel;
  /** Closed: the packets after the current one are not decoded. */
  readonly closed: boolean;
  /** The topic of the connection's last PUBLISH: reused when the next one's topic bytes are the same. */
  readonly recentTopic: string;
  decoded(packet: Packet): void;
  /** A PUBLISH without properties; `payload` is a view of the received bytes. messageId: 0 at QoS 0. */
  published(topic: string, payload: Buffer, qos: number, retain: boolean, messageId: number): void;
  malformed(message: string): void;
}

/** What mqtt-packet encodes and decodes with, one object per level. */
export const ENCODING: Readonly<Record<MqttLevel, { protocolVersion: MqttLevel }>> = {
  4: { protocolVersion: 4 },
  5: { protocolVersion: 5 },
};

const CONNECT = 1, PUBLISH = 3, PUBACK = 4, PINGREQ = 12;
/** A PINGREQ is all alike: one shared packet object. */
const PINGREQ_PACKET: Packet = Object.freeze({ cmd: "pingreq" });

/**
 * Decodes `packets` (whole packets, as PacketSizeGuard framed them: each remaining length is
 * complete and at most 4 bytes), handing each to `sink` synchronously, until the sink closes.
 */
export function decodePackets(packets: Buffer, sink: PacketSink): void {
  const n = packets.length;
  let at = 0;
  while (at < n && !sink.closed) {
    const first = packets[at];
    let body = at + 1;
    let len = 0;
    let mul = 1;
    let b: number;
    do {
      b = packets[body++];
      len += (b & 0x7f) * mul;
      mul *= 128;
    } while (b & 0x80);
    const end = body + len;
    const type = first >> 4;
    if (type === PUBLISH) {
      if (!decodePublish(packets, first, body, end, sink)) decodeOne(packets.subarray(at, end), sink);
    } else if (first === PUBACK << 4 && len === 2) {
      const messageId = (packets[body] << 8) | packets[body + 1];
      sink.decoded(sink.level === 5 ? { cmd: "puback", messageId, reasonCode: 0 } : { cmd: "puback", messageId });
    } else if (first === PINGREQ << 4 && len === 0) {
      sink.decoded(PINGREQ_PACKET);
    } else if (first === CONNECT << 4) {
      const connect = decodeConnect(packets, body, end);
      if (connect) sink.decoded(connect);
      else decodeOne(packets.subarray(at, end), sink);
    } else {
      decodeOne(packets.subarray(at, end), sink);
    }
    at = end;
  }
}

/** A PUBLISH in packets[body, end): true when handled here (decoded, or refused as malformed);
 *  false when it has MQTT 5 properties, which mqtt-packet decodes. */
function decodePublish(packets: Buffer, first: number, body: number, end: number, sink: PacketSink): boolean {
  const qos = (first >> 1) & 3;
  if (qos === 3) {
    sink.malformed("Packet must not have both QoS bits set to 1");
    return true;
  }
  let at = fieldEnd(packets, body, end);
  if (at < 0) {
    sink.malformed("Cannot parse topic");
    return true;
  }
  const topicAt = body + 2;
  const topicLen = at - topicAt;
  let messageId = 0;
  if (qos > 0) {
    if (at + 2 > end) {
      sink.malformed("Cannot parse messageId");
      return true;
    }
    messageId = (packets[at] << 8) | packets[at + 1];
    at += 2;
  }
  if (sink.level === 5) {
    // An empty property block is one 0 byte; anything else is decoded by mqtt-packet.
    if (at >= end || packets[at] !== 0) return false;
    at++;
  }
  const recent = sink.recentTopic;
  const topic = sameAscii(packets, topicAt, topicLen, recent) ? recent : packets.toString("utf8", topicAt, topicAt + topicLen);
  sink.published(topic, packets.subarray(at, end), qos, (first & 1) !== 0, messageId);
  return true;
}

/** A level 4 or 5 CONNECT in packets[body, end) as mqtt-packet's object (strings and buffers read
 *  the same way, buffers views of the bytes), or undefined for mqtt-packet to decode: another
 *  protocol name or level, MQTT 5 properties, invalid flags, or fields that do not fill the packet
 *  exactly. Those are rare, and mqtt-packet's errors for them stay the only ones. */
export function decodeConnect(b: Buffer, body: number, end: number): IConnectPacket | undefined {
  // "MQTT" (4 bytes), level, flags, keepalive (2): 10 bytes before the payload
  if (end - body < 12 || b[body] !== 0 || b[body + 1] !== 4 || b[body + 2] !== 0x4d || b[body + 3] !== 0x51 ||
      b[body + 4] !== 0x54 || b[body + 5] !== 0x54) return undefined;
  const level = b[body + 6];
  const flags = b[body + 7];
  if ((level !== 4 && level !== 5) || (flags & 1) !== 0) return undefined;
  const hasWill = (flags & 0x04) !== 0;
  const willQos = (flags >> 3) & 3;
  const willRetain = (flags & 0x20) !== 0;
  if (!hasWill && (willQos !== 0 || willRetain)) return undefined;
  let at = body + 10;
  if (level === 5 && b[at++] !== 0) return undefined; // a property block other than the empty one
  let to = fieldEnd(b, at, end);
  if (to < 0) return undefined;
  const packet: IConnectPacket = {
    cmd: "connect", retain: false, qos: 0, dup: false, length: end - body, topic: null, payload: null,
    protocolId: "MQTT", protocolVersion: level, clean: (flags & 0x02) !== 0, keepalive: b[body + 8] << 8 | b[body + 9],
    clientId: b.toString("utf8", at + 2, to),
  } as IConnectPacket;
  at = to;
  if (hasWill) {
    if (level === 5 && (at >= end || b[at++] !== 0)) return undefined;
    const topicEnd = fieldEnd(b, at, end);
    if (topicEnd < 0 || (to = fieldEnd(b, topicEnd, end)) < 0) return undefined;
    packet.will = { topic: b.toString("utf8", at + 2, topicEnd), payload: b.subarray(topicEnd + 2, to), qos: willQos as QoS, retain: willRetain };
    at = to;
  }
  if (flags & 0x80) {
    if ((to = fieldEnd(b, at, end)) < 0) return undefined;
    packet.username = b.toString("utf8", at + 2, to);
    at = to;
  }
  if (flags & 0x40) {
    if ((to = fieldEnd(b, at, end)) < 0) return undefined;
    packet.password = b.subarray(at + 2, to);
    at = to;
  }
  return at === end ? packet : undefined;
}

/** Where the length-prefixed field (string or bytes) at b[at] ends; -1 when not by `end`. */
function fieldEnd(b: Buffer, at: number, end: number): number {
  if (at + 2 > end) return -1;
  const to = at + 2 + (b[at] << 8 | b[at + 1]);
  return to <= end ? to : -1;
}

/** bytes[at, at + len) is the ASCII string s (a non-ASCII byte never matches: UTF-8 decoding
 *  might map it to U+FFFD). */
function sameAscii(bytes: Buffer, at: number, len: number, s: string): boolean {
  if (s.length !== len) return false;
  for (let i = 0; i < len; i++) {
    const c = bytes[at + i];
    if (c >= 0x80 || c !== s.charCodeAt(i)) return false;
  }
  return true;
}

/** mqtt-packet's parser, with the internals used here (settings: it replaces them with a CONNECT
 *  it reads). */
type Parser = ReturnType<typeof mqtt.parser> & {
  settings: { protocolVersion?: number };
  error: Error | null;
  _list: { length: number };
};

class Decoder {
  readonly parser = mqtt.parser(ENCODING[4]) as Parser;
  sink: PacketSink | undefined;

  constructor() {
    this.parser.on("packet", (p: Packet) => this.sink!.decoded(p));
    this.parser.on("error", (err: Error) => this.sink!.malformed(err.message));
  }
}

/** The parser not in use; undefined while a decode runs (a packet handler that decoded for
 *  another connection, which none does, would get a parser of its own). */
let idle: Decoder | undefined = new Decoder();

/** One whole packet, decoded by mqtt-packet at the sink's level. */
function decodeOne(packet: Buffer, sink: PacketSink): void {
  const d = idle ?? new Decoder();
  idle = undefined;
  d.sink = sink;
  const parser = d.parser;
  parser.settings = ENCODING[sink.level];
  let clean = false;
  try {
    parser.parse(packet);
    clean = !parser.error && parser._list.length === 0;
  } finally {
    parser.settings = ENCODING[4]; // not the CONNECT (its password) it may have read
    d.sink = undefined;
    // After a malformed packet or a throwing handler, bytes or a half-handled packet are left
    // (and positions _resetState does not reset): the next decode gets a new parser.
    idle = clean ? d : new Decoder();
  }
}
