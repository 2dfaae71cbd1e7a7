// One binary record for a message, shared by the level and redis stores:
//
//   flags u8 (bits 0-1 qos, bit 2 retain) | packetId u16 (0 = not sent) | topicLen u16 | topic | payload
//
// Packet ids are 1..65535 ([MQTT-2.3.1-1] non-zero), so 0 is free to mean "none". The Redis queue
// puts a 6-byte seq in front of it (see redis.ts); PACKET_ID_OFFSET is relative to the record.
import type { QoS, QueuedMessage, SessionRecord, StoredMessage } from "./store.js";
import { StoreError } from "./store.js";
import { subscriptionOf } from "../link.js";

export const HEADER_LEN = 5;
export const PACKET_ID_OFFSET = 1;

export interface DecodedMessage extends StoredMessage {
  /** 0 when not sent */
  packetId: number;
}

export function encodeMessage(msg: StoredMessage, packetId = 0): Buffer {
  const topicLen = Buffer.byteLength(msg.topic, "utf8");
  if (topicLen > 0xffff) throw new StoreError(`topic longer than 65535 bytes`, "BAD_RECORD");
  const buf = Buffer.allocUnsafe(HEADER_LEN + topicLen + msg.payload.length);
  buf[0] = (msg.qos & 3) | (msg.retain ? 4 : 0);
  buf.writeUInt16BE(packetId, 1);
  buf.writeUInt16BE(topicLen, 3);
  buf.write(msg.topic, HEADER_LEN, topicLen, "utf8");
  msg.payload.copy(buf, HEADER_LEN + topicLen);
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
  return {
    topic: buf.toString("utf8", offset + HEADER_LEN, topicEnd),
    payload: buf.subarray(topicEnd),
    qos: (flags & 3) as QoS,
    retain: (flags & 4) !== 0,
    packetId,
  };
}

export function toStored(d: DecodedMessage): StoredMessage {
  return { topic: d.topic, payload: d.payload, qos: d.qos, retain: d.retain };
}

export function toQueued(d: DecodedMessage, seq: number): QueuedMessage {
  const q: QueuedMessage = { topic: d.topic, payload: d.payload, qos: d.qos, retain: d.retain, seq };
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
  return Buffer.from(JSON.stringify({ clientId: s.clientId, subscriptions: s.subscriptions, updatedAt: s.updatedAt, account: s.account, expiry: s.expiry }));
}

export function decodeSession(buf: Buffer | string): SessionRecord {
  try {
    const v = JSON.parse(typeof buf === "string" ? buf : buf.toString("utf8")) as SessionRecord;
    const rec: SessionRecord = { clientId: v.clientId, subscriptions: v.subscriptions.map(subscriptionOf), updatedAt: v.updatedAt };
    if (typeof v.account === "string") rec.account = v.account;
    if (typeof v.expiry === "number") rec.expiry = v.expiry;
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
