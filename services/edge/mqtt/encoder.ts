// The PUBLISH a connection delivers, encoded by hand into its outbound slab: fixed header,
// topic, packet id, an MQTT 5 property block holding at most a topic alias, payload. No packet
// object and no stream writes per message, and the bytes before the payload are reused while
// they stay the same; the bytes are mqtt-packet's (test/unit/mqtt-framing.test.ts).
// A delivery with other MQTT 5 properties goes through mqtt-packet (connection.ts send()).
import type { Outbound } from "../outbound.js";
import type { MqttLevel } from "./reason-codes.js";

/** Below this length a topic is scanned for non-ASCII characters here, not by Buffer.byteLength. */
const SHORT_TOPIC = 64;

/** The last topic measured, and its length: the deliveries of a message, and the messages of a
 *  publisher, mostly share their topic. */
let measured = "";
let measuredBytes = 0;

/** The UTF-8 length of a topic. */
export function topicBytes(topic: string): number {
  if (topic === measured) return measuredBytes;
  const n = topic.length;
  let bytes = n;
  if (n > SHORT_TOPIC) bytes = Buffer.byteLength(topic);
  else {
    for (let i = 0; i < n; i++) {
      if (topic.charCodeAt(i) >= 0x80) {
        bytes = Buffer.byteLength(topic);
        break;
      }
    }
  }
  measured = topic;
  measuredBytes = bytes;
  return bytes;
}

/** The remaining length of a PUBLISH without properties other than a topic alias (`alias` 0: none). */
export function publishBody(level: MqttLevel, topicLen: number, qos: number, alias: number, payloadLen: number): number {
  return 2 + topicLen + (qos > 0 ? 2 : 0) + (level === 5 ? (alias > 0 ? 4 : 1) : 0) + payloadLen;
}

/** The bytes of a remaining length. */
export function varIntLength(n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4;
}

/** The bytes before the payload of the last PUBLISH encoded, and what they were made of: the
 *  deliveries of one message, and a publisher's messages of one size, share them at QoS 0. */
let head = Buffer.allocUnsafe(256);
let headLen = 0;
let headTopic = "";
let headFirst = -1;
let headLevel = 0;
let headAlias = -1;
let headPayload = -1;
let headPacketId = -1;

/** Appends a PUBLISH to `out`; false when `out` is over its limits (nothing written). */
export function writePublish(
  out: Outbound, level: MqttLevel, topic: string, payload: Buffer, qos: number, retain: boolean, dup: boolean,
  packetId: number, alias: number,
): boolean {
  const first = 0x30 | (dup ? 8 : 0) | (qos << 1) | (retain ? 1 : 0);
  if (topic !== headTopic || first !== headFirst || level !== headLevel || alias !== headAlias
    || payload.length !== headPayload || packetId !== headPacketId) {
    encodeHead(level, topic, first, payload.length, packetId, alias);
  }
  if (!out.begin(headLen + payload.length)) return false;
  out.putBytes(head, 0, headLen);
  out.putBytes(payload);
  out.done();
  return true;
}

/** Encodes the bytes before the payload into `head`. */
function encodeHead(level: MqttLevel, topic: string, first: number, payloadLen: number, packetId: number, alias: number): void {
  const qos = (first >> 1) & 3;
  const topicLen = topicBytes(topic);
  let body = publishBody(level, topicLen, qos, alias, payloadLen);
  const size = 1 + varIntLength(body) + body - payloadLen;
  if (size > head.length) head = Buffer.allocUnsafe(size);
  const h = head;
  let at = 0;
  h[at++] = first;
  while (body >= 128) {
    h[at++] = (body & 0x7f) | 0x80;
    body = Math.floor(body / 128);
  }
  h[at++] = body;
  h[at++] = topicLen >> 8;
  h[at++] = topicLen & 0xff;
  if (topicLen === topic.length && topicLen <= 32) {
    for (let i = 0; i < topicLen; i++) h[at++] = topic.charCodeAt(i);
  } else {
    at += h.write(topic, at, topicLen === topic.length ? "latin1" : "utf8");
  }
  if (qos > 0) {
    h[at++] = packetId >> 8;
    h[at++] = packetId & 0xff;
  }
  if (level === 5) {
    if (alias > 0) {
      h[at++] = 3;
      h[at++] = 0x23; // topic alias
      h[at++] = alias >> 8;
      h[at++] = alias & 0xff;
    } else {
      h[at++] = 0;
    }
  }
  headLen = at;
  headTopic = topic;
  headFirst = first;
  headLevel = level;
  headAlias = alias;
  headPayload = payloadLen;
  headPacketId = packetId;
}
