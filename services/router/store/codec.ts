// One binary record for a message, shared by the level and redis stores:
//
//   flags u8 (bits 0-1 qos, bit 2 retain, bit 3 MQTT 5 part, bit 4 id) | packetId u16 (0 = not sent) |
//   topicLen u16 | topic | [MQTT 5 part] | [id u64] | payload
//   MQTT 5 part: expiresAt f64 (ms epoch, 0 = none) | propsLen u32 | props (proto MqttProperties)
//   id: the message's id in the cluster (StoredMessage.id, below 2^53)
//
// Packet ids are 1..65535 ([MQTT-2.3.1-1] non-zero), so 0 is free to mean "none". The Redis queue
// puts a 6-byte seq in front of it (see redis.ts); PACKET_ID_OFFSET is relative to the record.
// Records of earlier versions have no bit 3 or 4: they read as messages without properties or id.
// The properties use the wire's encoding (one mapping, wire/sessions.ts), so fields added there
// are stored too.
import type protobuf from "protobufjs";
import type { QoS, QueuedMessage, SessionRecord, StoredMessage } from "./store.js";
import { StoreError } from "./store.js";
import { subscriptionOf } from "../link.js";
import { PROTO_PACKAGE, protoTypes } from "../wire/codec.js";
import { propertiesFromWire, propertiesToWire } from "../wire/sessions.js";
import type { MqttProperties as WireProperties } from "../wire/frames.js";

export const HEADER_LEN = 5;
export const PACKET_ID_OFFSET = 1;

export interface DecodedMessage extends StoredMessage {
  /** 0 when not sent */
  packetId: number;
}

const MQTT5 = 8, ID = 16;
const ID_LEN = 8;
/** expiresAt f64 + propsLen u32 */
const MQTT5_LEN = 12;
let propertiesType: protobuf.Type | undefined;

function propertiesCodec(): protobuf.Type {
  return (propertiesType ??= protoTypes().lookupType(`${PROTO_PACKAGE}.MqttProperties`));
}

export function encodeMessage(msg: StoredMessage, packetId = 0): Buffer {
  const topicLen = Buffer.byteLength(msg.topic, "utf8");
  if (topicLen > 0xffff) throw new StoreError(`topic longer than 65535 bytes`, "BAD_RECORD");
  // 3.1.1 messages (no properties, no expiry) keep the short record.
  const mqtt5 = msg.props !== undefined || msg.expiresAt !== undefined;
  const props = msg.props ? propertiesCodec().encode(propertiesToWire(msg.props) as protobuf.Message).finish() : undefined;
  const extLen = mqtt5 ? MQTT5_LEN + (props?.length ?? 0) : 0;
  const id = msg.id ?? 0;
  const payloadAt = HEADER_LEN + topicLen + extLen + (id > 0 ? ID_LEN : 0);
  const buf = Buffer.allocUnsafe(payloadAt + msg.payload.length);
  buf[0] = (msg.qos & 3) | (msg.retain ? 4 : 0) | (mqtt5 ? MQTT5 : 0) | (id > 0 ? ID : 0);
  buf.writeUInt16BE(packetId, 1);
  buf.writeUInt16BE(topicLen, 3);
  buf.write(msg.topic, HEADER_LEN, topicLen, "utf8");
  if (mqtt5) {
    const at = HEADER_LEN + topicLen;
    buf.writeDoubleBE(msg.expiresAt ?? 0, at);
    buf.writeUInt32BE(props?.length ?? 0, at + 8);
    if (props) buf.set(props, at + MQTT5_LEN);
  }
  if (id > 0) {
    buf.writeUInt32BE(Math.floor(id / 2 ** 32), payloadAt - ID_LEN);
    buf.writeUInt32BE(id >>> 0, payloadAt - ID_LEN + 4);
  }
  msg.payload.copy(buf, payloadAt);
  return buf;
}

/** Decodes a record starting at `offset`. The payload is a view into `buf`. */
export function decodeMessage(buf: Buffer, offset = 0): DecodedMessage {
  if (buf.length < offset + HEADER_LEN) throw new StoreError("truncated message record", "BAD_RECORD");
  const flags = buf[offset];
  const packetId = buf.readUInt16BE(offset + 1);
  const topicLen = buf.readUInt16BE(offset + 3);
  const topicEnd = offset + HEADER_LEN + topicLen;
  if (buf.length < topicEnd) throw new StoreError("truncated message record", "BAD_RECORD");
  let payloadAt = topicEnd, expiresAt = 0;
  let props: StoredMessage["props"];
  if (flags & MQTT5) {
    if (buf.length < topicEnd + MQTT5_LEN) throw new StoreError("truncated message record", "BAD_RECORD");
    expiresAt = buf.readDoubleBE(topicEnd);
    const propsLen = buf.readUInt32BE(topicEnd + 8);
    payloadAt = topicEnd + MQTT5_LEN + propsLen;
    if (buf.length < payloadAt) throw new StoreError("truncated message record", "BAD_RECORD");
    if (propsLen > 0) {
      try {
        props = propertiesFromWire(propertiesCodec().decode(buf.subarray(topicEnd + MQTT5_LEN, payloadAt)) as unknown as WireProperties);
      } catch (err) {
        throw new StoreError("unreadable message properties", "BAD_RECORD", { cause: err });
      }
    }
  }
  let id = 0;
  if (flags & ID) {
    if (buf.length < payloadAt + ID_LEN) throw new StoreError("truncated message record", "BAD_RECORD");
    id = buf.readUInt32BE(payloadAt) * 2 ** 32 + buf.readUInt32BE(payloadAt + 4);
    payloadAt += ID_LEN;
  }
  const d: DecodedMessage = {
    topic: buf.toString("utf8", offset + HEADER_LEN, topicEnd),
    payload: buf.subarray(payloadAt),
    qos: (flags & 3) as QoS,
    retain: (flags & 4) !== 0,
    packetId,
  };
  if (props) d.props = props;
  if (expiresAt > 0) d.expiresAt = expiresAt;
  if (id > 0) d.id = id;
  return d;
}

/** The message's own fields, without a decoded record's packet id or a queued one's seq. */
export function toStored(d: StoredMessage): StoredMessage {
  const m: StoredMessage = { topic: d.topic, payload: d.payload, qos: d.qos, retain: d.retain };
  if (d.props) m.props = d.props;
  if (d.expiresAt !== undefined) m.expiresAt = d.expiresAt;
  if (d.id !== undefined) m.id = d.id;
  return m;
}

export function toQueued(d: DecodedMessage, seq: number): QueuedMessage {
  const q: QueuedMessage = { ...toStored(d), seq };
  if (d.packetId !== 0) q.packetId = d.packetId;
  return q;
}

/** Returns a copy of `buf` with the packet id replaced. */
export function withPacketId(buf: Buffer, packetId: number, offset = 0): Buffer {
  const out = Buffer.from(buf);
  out.writeUInt16BE(packetId, offset + PACKET_ID_OFFSET);
  return out;
}

export function encodeSession(s: SessionRecord): Buffer {
  return Buffer.from(JSON.stringify({ clientId: s.clientId, subscriptions: s.subscriptions, updatedAt: s.updatedAt, account: s.account, expiry: s.expiry, mqtt5: s.mqtt5 }));
}

export function decodeSession(buf: Buffer | string): SessionRecord {
  try {
    const v = JSON.parse(typeof buf === "string" ? buf : buf.toString("utf8")) as SessionRecord;
    const rec: SessionRecord = { clientId: v.clientId, subscriptions: v.subscriptions.map(subscriptionOf), updatedAt: v.updatedAt };
    if (typeof v.account === "string") rec.account = v.account;
    if (typeof v.expiry === "number") rec.expiry = v.expiry;
    if (v.mqtt5 === true) rec.mqtt5 = true;
    return rec;
  } catch (err) {
    throw new StoreError("unreadable session record", "BAD_RECORD", { cause: err });
  }
}

/** Packet ids must fit the record (and the protocol): 1..65535. */
export function checkPacketId(packetId: number): void {
  if (!Number.isInteger(packetId) || packetId < 1 || packetId > 0xffff) {
    throw new RangeError(`packet id out of range: ${packetId}`);
  }
}
