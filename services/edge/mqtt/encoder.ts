// The PUBLISH a connection delivers, encoded by hand into its outbound slab: fixed header,
// topic, packet id, an MQTT 5 property block holding at most a topic alias, payload. No packet
// object and no stream writes per message; the bytes are mqtt-packet's (test/unit/mqtt-codec).
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

/** Appends a PUBLISH to `out`; false when `out` is over its limits (nothing written). */
export function writePublish(
  out: Outbound, level: MqttLevel, topic: string, payload: Buffer, qos: number, retain: boolean, dup: boolean,
  packetId: number, alias: number,
): boolean {
  const topicLen = topicBytes(topic);
  let body = publishBody(level, topicLen, qos, alias, payload.length);
  if (!out.begin(1 + varIntLength(body) + body)) return false;
  out.putByte(0x30 | (dup ? 8 : 0) | (qos << 1) | (retain ? 1 : 0));
  while (body >= 128) {
    out.putByte((body & 0x7f) | 0x80);
    body = Math.floor(body / 128);
  }
  out.putByte(body);
  out.putByte(topicLen >> 8);
  out.putByte(topicLen & 0xff);
  if (topicLen === topic.length) out.putAscii(topic);
  else out.putUtf8(topic);
  if (qos > 0) {
    out.putByte(packetId >> 8);
    out.putByte(packetId & 0xff);
  }
  if (level === 5) {
    if (alias > 0) {
      out.putByte(3);
      out.putByte(0x23); // topic alias
      out.putByte(alias >> 8);
      out.putByte(alias & 0xff);
    } else {
      out.putByte(0);
    }
  }
  out.putBytes(payload);
  out.done();
  return true;
}
