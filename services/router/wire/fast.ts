// The hand-written half of the codec: the operations every message crosses a link as (Publish
// edge → router, NATS and MQTT; Forward router → router; Deliver router → edge, and for MQTT
// SessionEvent.publish) in protobuf's wire
// format, byte for byte what protobufjs writes for the same fields of proto/meshbroker/v1 (the
// .proto stays the contract; test/unit/wire-fast.test.ts checks both ways against protobufjs).
// Every other operation goes through protobufjs (codec.ts), one op at a time, inside the same
// frame: a frame is `repeated Op ops = 1`, so ops encoded either way simply follow each other.
//
// Encoding writes straight into one growing buffer per frame (FrameBuilder). Decoding walks a
// frame with a cursor (FrameCursor): a hot op fills the cursor's fields (views of the frame's
// bytes, strings of repeated values reused), any other op comes out as protobufjs decoded it.
// Fields left at their default are not written (proto3), as protobufjs does with such drafts.
import type protobuf from "protobufjs";
import { copyBytes } from "../../common/byte-range.js";
import type { MessageData } from "../link.js";
import { PROTO_PACKAGE, protoTypes, WireError } from "./codec.js";
import type {
  Deliver, Draft, EdgeOp, Forward, InterestChange, InterestEntry, InterestUpdate, MeshOp, Message, MqttProperties, RouterOp,
} from "./frames.js";

/** The `ops` field of EdgeFrame, RouterFrame and MeshFrame, length-delimited. */
const OPS_TAG = (1 << 3) | 2;
/** Oneof members of the hot ops, in EdgeOp, RouterOp and MeshOp. */
const EDGE_INTEREST = 2, EDGE_PUBLISH = 3, ROUTER_DELIVER = 2, ROUTER_SESSION_EVENT = 4, MESH_INTEREST = 2, MESH_FORWARD = 5;
/** SessionEvent's members and fields (edge.proto); the members are RouterFrameCursor.event's values. */
export const EVENT_PUBLISH = 3, EVENT_PUBREL = 4, EVENT_TAKEOVER = 6;
const EVENT_CONNECTION = 5;
const SLAB_BYTES = 2 * 1024 * 1024;
const EMPTY = Buffer.alloc(0);
const MAX_VARINT_BYTES = 10;

/** Bytes of `s` in UTF-8 (a loop for short strings: cheaper than a native call). */
export function utf8Length(s: string): number {
  const n = s.length;
  if (n > 64) return Buffer.byteLength(s, "utf8");
  let len = n;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) len += 1;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < n && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) { len += 2; i++; }
    else len += 2;
  }
  return len;
}

export function varintSize(v: number): number {
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x200000) return 3;
  if (v < 0x10000000) return 4;
  if (v < 2 ** 35) return 5;
  if (v < 2 ** 42) return 6;
  if (v < 2 ** 49) return 7;
  if (v < 2 ** 56) return 8;
  return v < 2 ** 63 ? 9 : 10;
}

/**
 * The UTF-8 bytes of the last string seen at one place: names that repeat from message to
 * message and may be long (an account's public key, an edge's 56-character server id) are
 * measured and encoded once, then copied.
 */
export class StringBytes {
  private str = "";
  bytes = EMPTY;

  of(s: string): Buffer {
    if (s !== this.str) {
      this.str = s;
      this.bytes = Buffer.from(s, "utf8");
    }
    return this.bytes;
  }
}

/** A length-delimited field of `len` bytes: tag, length, content. */
const fieldSize = (len: number): number => 1 + varintSize(len) + len;
const stringSize = (len: number): number => (len === 0 ? 0 : fieldSize(len));
const numberSize = (v: number): number => (v === 0 ? 0 : 1 + varintSize(v));

/**
 * One frame at a time, written into a slab: finish() hands out a view of the frame and the next
 * frame starts after it, so a frame is never copied to be sent. A builder whose carrier gives
 * frames back (done(), once it no longer reads them: gRPC streams copy a frame behind their
 * length prefix before they call back) writes a slab again once all its frames are back: when
 * the next frame does not fit, it moves to the start of this slab or the one before, and a frame
 * that starts when all are back starts at the slab's start (the same few cache-warm pages).
 * Otherwise (a carrier that keeps views of the frame, as the serialised test link) a slab is
 * never written again once a frame left it: the next frame that does not fit gets a new one, and
 * the old one goes to the GC with its frames. Reusing a slab spares a fresh 2 MB's page faults
 * (~0.4 µs per 128-byte message).
 */
export class FrameBuilder {
  private buf: Buffer = Buffer.allocUnsafe(SLAB_BYTES);
  /** The slab before `buf`, written again once its frames are given back (givesBack only). */
  private spare: Buffer | undefined;
  /** Frames of `buf` and of `spare` not given back yet (givesBack only). */
  private held = 0;
  private spareHeld = 0;
  private start = 0;
  pos = 0;
  /** The op opened last (openOp): where it starts in the frame, its oneof member and the
   *  member's length, so that it can still grow (insert()) while nothing follows it. */
  private opAt = 0;
  private opMember = 0;
  private opBody = 0;
  /** Where the frame continues after an insert() (endInsert()). */
  private resume = 0;

  /** `givesBack`: the carrier calls done() with every frame once it no longer reads it. */
  constructor(private readonly givesBack = false) {}

  /** The carrier no longer reads `frame` (given back once, never early: its bytes are written
   *  over). Only for a builder made with `givesBack`. */
  done(frame: Buffer): void {
    if (frame.buffer === this.buf.buffer) this.held--;
    else if (frame.buffer === this.spare?.buffer) this.spareHeld--;
  }

  /** Bytes in the frame so far (also: where the next byte goes, as an offset in the frame). */
  get length(): number { return this.pos - this.start; }

  /** Starts an entry of the frame's `ops` whose oneof `member` has `body` bytes. */
  openOp(member: number, body: number): void {
    const op = fieldSize(body);
    this.ensure(fieldSize(op));
    this.opAt = this.pos - this.start;
    this.opMember = member;
    this.opBody = body;
    this.open(OPS_TAG, op);
    this.open((member << 3) | 2, body);
  }

  /**
   * Makes room for `n` more bytes of the op opened last (the frame's last op) at `at`, an offset
   * in the frame inside its body or at its end: what follows moves up, the op's two lengths are
   * rewritten (the op moves up too when they grow a byte). The caller writes exactly `n` bytes
   * from `pos`, then calls endInsert(). The result is the op as if written whole.
   */
  insert(at: number, n: number): void {
    const head = 2 + varintSize(fieldSize(this.opBody)) + varintSize(this.opBody);
    const body = this.opBody + n;
    const grown = 2 + varintSize(fieldSize(body)) + varintSize(body) - head;
    this.ensure(n + grown);
    const b = this.buf, base = this.start, end = this.pos;
    if (base + at < end) b.copyWithin(base + at + n + grown, base + at, end);
    if (grown > 0) b.copyWithin(base + this.opAt + head + grown, base + this.opAt + head, base + at);
    this.pos = base + this.opAt;
    this.open(OPS_TAG, fieldSize(body));
    this.open((this.opMember << 3) | 2, body);
    this.opBody = body;
    this.resume = end + n + grown;
    this.pos = base + at + grown;
  }

  /** The bytes of insert() are written. */
  endInsert(): void {
    this.pos = this.resume;
  }

  /** Room for `n` more bytes: the frame so far moves to a new slab if this one is short. */
  ensure(n: number): void {
    if (this.pos === this.start && this.start !== 0 && this.givesBack && this.held === 0) this.start = this.pos = 0;
    if (this.pos + n <= this.buf.length) return;
    const used = this.pos - this.start;
    // Doubling what the frame holds so far (a frame grows op by op); a single large op adds only itself.
    const size = Math.max(SLAB_BYTES, 2 * used + n);
    const old = this.buf;
    if (size === SLAB_BYTES && this.givesBack && this.held === 0) {
      old.copyWithin(0, this.start, this.pos);
    } else if (!this.givesBack) {
      this.buf = Buffer.allocUnsafe(size);
      old.copy(this.buf, 0, this.start, this.pos);
    } else {
      const spare = this.spare;
      const reuse = size === SLAB_BYTES && spare !== undefined && this.spareHeld === 0;
      this.buf = reuse ? spare : Buffer.allocUnsafe(size);
      old.copy(this.buf, 0, this.start, this.pos);
      // The slab left becomes the spare (a larger one, made for one big frame, is let go).
      if (old.length === SLAB_BYTES) {
        this.spare = old;
        this.spareHeld = this.held;
      } else if (reuse) {
        this.spare = undefined;
      }
      this.held = 0;
    }
    this.start = 0;
    this.pos = used;
  }

  /** The frame's bytes; the builder starts the next frame. A carrier that gives frames back
   *  calls done() with them once it no longer reads them. */
  finish(): Buffer {
    const frame = this.buf.subarray(this.start, this.pos);
    this.start = this.pos;
    if (this.givesBack) this.held++;
    return frame;
  }

  /** Drops the frame being built. */
  reset(): void {
    this.pos = this.start;
  }

  varint(v: number): void {
    const b = this.buf;
    let p = this.pos;
    if (v >= 0x80000000) {
      // Up to 2^53 (a router's message ids are about 2^52): the low 28 bits first, from the low
      // 32 as an integer, then the rest (below 2^25), so no step divides a float (which cost
      // about 4 % of a router's CPU per MQTT message).
      let lo = v >>> 0;
      const hi = (v - lo) / 0x100000000;
      for (let i = 0; i < 4; i++) {
        b[p++] = (lo & 0x7f) | 0x80;
        lo >>>= 7;
      }
      v = (hi << 4) | lo;
    }
    while (v > 0x7f) {
      b[p++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    b[p++] = v;
    this.pos = p;
  }

  /** A string field of `len` UTF-8 bytes (utf8Length), skipped when empty. */
  string(tag: number, s: string, len: number): void {
    if (len === 0) return;
    const b = this.buf;
    b[this.pos++] = tag;
    this.varint(len);
    let p = this.pos;
    if (len === s.length && len <= 64) {
      for (let i = 0; i < len; i++) b[p++] = s.charCodeAt(i);
    } else {
      p += b.write(s, p, len, "utf8");
    }
    this.pos = p;
  }

  /** A bytes field from `src[start, end)`, skipped when empty. */
  bytes(tag: number, src: Buffer, start: number, end: number): void {
    const len = end - start;
    if (len === 0) return;
    this.buf[this.pos++] = tag;
    this.varint(len);
    this.copy(src, start, end);
  }

  /** `src[start, end)` as it is. */
  copy(src: Buffer, start: number, end: number): void {
    copyBytes(this.buf, this.pos, src, start, end);
    this.pos += end - start;
  }

  /** A varint field, skipped when 0. */
  number(tag: number, v: number): void {
    if (v === 0) return;
    this.buf[this.pos++] = tag;
    this.varint(v);
  }

  bool(tag: number, v: boolean): void {
    if (!v) return;
    this.buf[this.pos++] = tag;
    this.buf[this.pos++] = 1;
  }

  /** The tag and length of a length-delimited field whose content follows. */
  open(tag: number, len: number): void {
    this.buf[this.pos++] = tag;
    this.varint(len);
  }

  /** Bytes as they are (a field written ahead of time), inside an op opened with their size. */
  literal(bytes: Uint8Array): void {
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  /** Bytes encoded elsewhere, as a length-delimited field. */
  raw(tag: number, bytes: Uint8Array): void {
    this.ensure(1 + MAX_VARINT_BYTES + bytes.length);
    this.open(tag, bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }
}

// ---- encoders: one op each, as an entry of the frame's `ops` ----

/** Sizes of a Message's fields, computed once per op; `asRead`: the Message is the one a cursor
 *  read last (lastRead), its `body` bytes copied as they were. */
interface MessageSizes { subject: number; reply: number; hdrLen: number; payloadLen: number; body: number; asRead: boolean }
const sizes: MessageSizes = { subject: 0, reply: 0, hdrLen: 0, payloadLen: 0, body: 0, asRead: false };

/**
 * The Message field a cursor read last, where it lies in its frame. A router sends most messages
 * on unchanged (a Forward from an edge's Publish, a Deliver from a peer's Forward): when the
 * message to write is that one, with the same subject and reply, its field is copied as one block
 * instead of measured and written field by field. `msg` and its range must still be what the
 * cursor set, so a MessageData refilled since (the next op) never matches.
 */
const lastRead = { msg: undefined as MessageData | undefined, buf: EMPTY as Buffer, start: 0, end: 0, subject: "", reply: "", fieldStart: 0, fieldEnd: 0 };

function isLastRead(msg: MessageData, subject: string, reply: string): boolean {
  const r = lastRead;
  return r.msg === msg && msg.buf === r.buf && msg.start === r.start && msg.end === r.end && subject === r.subject && reply === r.reply;
}

function measureMessage(subject: string, reply: string, hdrLen: number, payloadLen: number): MessageSizes {
  sizes.asRead = false;
  sizes.subject = utf8Length(subject);
  sizes.reply = utf8Length(reply);
  sizes.hdrLen = hdrLen;
  sizes.payloadLen = payloadLen;
  sizes.body = stringSize(sizes.subject) + stringSize(sizes.reply) + stringSize(hdrLen) + stringSize(payloadLen);
  return sizes;
}

/** measureMessage() of `msg`, or of its field as a cursor read it (isLastRead). */
function measureMessageOf(subject: string, reply: string, msg: MessageData): MessageSizes {
  if (!isLastRead(msg, subject, reply)) return measureMessage(subject, reply, msg.hdrLen, msg.end - msg.start - msg.hdrLen);
  sizes.asRead = true;
  sizes.body = lastRead.fieldEnd - lastRead.fieldStart;
  return sizes;
}

/** The Message field (field 2 of Publish, Forward and Deliver), always written (it is set):
 *  headers from `hdrSrc` at `hdrStart`, the payload from `paySrc` at `payStart`. */
function writeMessage(w: FrameBuilder, s: MessageSizes, subject: string, reply: string,
                      hdrSrc: Buffer, hdrStart: number, paySrc: Buffer, payStart: number): void {
  w.open((2 << 3) | 2, s.body);
  if (s.asRead) return w.copy(lastRead.buf, lastRead.fieldStart, lastRead.fieldEnd);
  w.string((1 << 3) | 2, subject, s.subject);
  w.string((2 << 3) | 2, reply, s.reply);
  w.bytes((3 << 3) | 2, hdrSrc, hdrStart, hdrStart + s.hdrLen);
  w.bytes((4 << 3) | 2, paySrc, payStart, payStart + s.payloadLen);
}

/** EdgeOp.publish of a NATS message, from the client's bytes (read during the call only). */
export function writePublish(w: FrameBuilder, account: string, subject: string, reply: string, msg: MessageData,
                             originConnection: number, noResponders: boolean): void {
  const payloadStart = msg.start + msg.hdrLen;
  writePublishParts(w, account, subject, reply, msg.buf, msg.start, msg.hdrLen, msg.buf, payloadStart, msg.end - payloadStart,
    originConnection, noResponders, 0, 0, false, "", undefined);
}

/**
 * EdgeOp.publish of an MQTT message (`payload` read during the call only): `topic` marks it
 * MQTT; `properties` are MqttProperties already encoded (encodeProperties), MQTT 5's rare case.
 */
export function writeMqttPublish(w: FrameBuilder, subject: string, payload: Buffer, originConnection: number, correlationId: number,
                                 qos: number, retain: boolean, topic: string, properties: Uint8Array | undefined): void {
  writePublishParts(w, "", subject, "", EMPTY, 0, 0, payload, 0, payload.length, originConnection, false, correlationId, qos, retain,
    topic, properties);
}

/** A length-delimited field numbered 16 to 2047 (a two-byte tag) of `len` bytes, or 0 when absent. */
const wideFieldSize = (bytes: Uint8Array | undefined): number => (bytes === undefined ? 0 : 2 + varintSize(bytes.length) + bytes.length);

/** Field 30 (properties) of Publish and StoredMessage: its two-byte tag. */
const PROPERTIES_TAG = Buffer.from([0xf2, 0x01]);

function writeProperties(w: FrameBuilder, properties: Uint8Array | undefined): void {
  if (properties === undefined) return;
  w.literal(PROPERTIES_TAG);
  w.varint(properties.length);
  w.literal(properties);
}

function writePublishParts(w: FrameBuilder, account: string, subject: string, reply: string, hdrSrc: Buffer, hdrStart: number,
                           hdrLen: number, paySrc: Buffer, payStart: number, payLen: number, originConnection: number,
                           noResponders: boolean, correlationId: number, qos: number, retain: boolean, topic: string,
                           properties: Uint8Array | undefined): void {
  const acc = accountBytes.of(account);
  const m = measureMessage(subject, reply, hdrLen, payLen);
  const topicLen = topic === "" ? 0 : utf8Length(topic);
  const publish = stringSize(acc.length) + fieldSize(m.body) + numberSize(originConnection) + (noResponders ? 2 : 0) +
    numberSize(correlationId) + numberSize(qos) + (retain ? 2 : 0) + stringSize(topicLen) + wideFieldSize(properties);
  w.openOp(EDGE_PUBLISH, publish);
  w.bytes((1 << 3) | 2, acc, 0, acc.length);
  writeMessage(w, m, subject, reply, hdrSrc, hdrStart, paySrc, payStart);
  w.number(3 << 3, originConnection);
  w.bool(4 << 3, noResponders);
  w.number(5 << 3, correlationId);
  w.number(6 << 3, qos);
  w.bool(7 << 3, retain);
  w.string((8 << 3) | 2, topic, topicLen);
  writeProperties(w, properties);
}

/**
 * RouterOp.sessionEvent of a PUBLISH for an MQTT client (`payload` read during the call only),
 * as SessionEvent { publish { message: StoredMessage, packet_id, dup }, connection_id }.
 */
export function writeSessionPublish(w: FrameBuilder, connectionId: number, topic: string, payload: Buffer, qos: number, retain: boolean,
                                    properties: Uint8Array | undefined, packetId: number, dup: boolean): void {
  const topicLen = utf8Length(topic);
  const stored = stringSize(topicLen) + stringSize(payload.length) + numberSize(qos) + (retain ? 2 : 0) + wideFieldSize(properties);
  const publish = fieldSize(stored) + numberSize(packetId) + (dup ? 2 : 0);
  w.openOp(ROUTER_SESSION_EVENT, fieldSize(publish) + numberSize(connectionId));
  w.open((EVENT_PUBLISH << 3) | 2, publish);
  w.open((3 << 3) | 2, stored);
  w.string((1 << 3) | 2, topic, topicLen);
  w.bytes((2 << 3) | 2, payload, 0, payload.length);
  w.number(3 << 3, qos);
  w.bool(4 << 3, retain);
  writeProperties(w, properties);
  w.number(4 << 3, packetId);
  w.bool(5 << 3, dup);
  w.number(EVENT_CONNECTION << 3, connectionId);
}

let propertiesType: protobuf.Type | undefined;
const propertiesCodec = (): protobuf.Type => (propertiesType ??= protoTypes().lookupType(`${PROTO_PACKAGE}.MqttProperties`));

/** MQTT 5 properties as the bytes of an MqttProperties (protobufjs: rare, and many fields);
 *  undefined stays undefined (none). */
export function encodeProperties(p: Draft<MqttProperties> | undefined): Uint8Array | undefined {
  return p === undefined ? undefined : propertiesCodec().encode(p as unknown as protobuf.Message).finish();
}

const accountBytes = new StringBytes(), edgeBytes = new StringBytes();

/** RouterOp.deliver of a drafted Deliver. */
function writeDeliver(w: FrameBuilder, d: Draft<Deliver>): void {
  const msg = d.message ?? {};
  const headers = msg.headers ?? EMPTY, payload = msg.payload ?? EMPTY;
  const targets = d.targets ?? [];
  const first = targets.length > 0 ? targets[0] : undefined;
  const subject = msg.subject ?? "", reply = msg.reply ?? "";
  writeDeliverParts(w, d.account ?? "", subject, reply, headers, 0, payload, 0, measureMessage(subject, reply, headers.length, payload.length),
    first?.connectionId ?? 0, first?.sid ?? "", first !== undefined);
  for (let i = 1; i < targets.length; i++) addDeliverTarget(w, targets[i].connectionId ?? 0, targets[i].sid ?? "");
}

/** RouterOp.deliver of a message (its bytes read during the call only) to one subscription;
 *  while it is the frame's last op, addDeliverTarget() adds more. */
export function writeDeliverOf(w: FrameBuilder, account: string, subject: string, reply: string, msg: MessageData,
                               connectionId: number, sid: string): void {
  writeDeliverParts(w, account, subject, reply, msg.buf, msg.start, msg.buf, msg.start + msg.hdrLen,
    measureMessageOf(subject, reply, msg), connectionId, sid, true);
}

function writeDeliverParts(w: FrameBuilder, account: string, subject: string, reply: string, hdrSrc: Buffer, hdrStart: number,
                           paySrc: Buffer, payStart: number, m: MessageSizes, connectionId: number, sid: string,
                           withTarget: boolean): void {
  const acc = accountBytes.of(account);
  const sidLen = utf8Length(sid);
  const target = subscriptionRefSize(connectionId, sidLen);
  w.openOp(ROUTER_DELIVER, stringSize(acc.length) + fieldSize(m.body) + (withTarget ? fieldSize(target) : 0));
  w.bytes((1 << 3) | 2, acc, 0, acc.length);
  writeMessage(w, m, subject, reply, hdrSrc, hdrStart, paySrc, payStart);
  if (withTarget) writeSubscriptionRef(w, DELIVER_TARGET_TAG, target, connectionId, sid, sidLen);
}

/** One more target of the Deliver that is the frame's last op (targets are its last field). */
export function addDeliverTarget(w: FrameBuilder, connectionId: number, sid: string): void {
  const sidLen = utf8Length(sid);
  const target = subscriptionRefSize(connectionId, sidLen);
  w.insert(w.length, fieldSize(target));
  writeSubscriptionRef(w, DELIVER_TARGET_TAG, target, connectionId, sid, sidLen);
  w.endInsert();
}

/** Deliver.targets and InterestChange.sub: their tags. */
const DELIVER_TARGET_TAG = (3 << 3) | 2, INTEREST_SUB_TAG = (5 << 3) | 2;

/** The bytes of a SubscriptionRef's fields. */
const subscriptionRefSize = (connectionId: number, sidLen: number): number => numberSize(connectionId) + stringSize(sidLen);

/** A SubscriptionRef of `size` bytes (subscriptionRefSize) as the field `tag`. */
function writeSubscriptionRef(w: FrameBuilder, tag: number, size: number, connectionId: number, sid: string, sidLen: number): void {
  w.open(tag, size);
  w.number(1 << 3, connectionId);
  w.string((3 << 3) | 2, sid, sidLen);
}

/**
 * EdgeOp.interest, a subscription's change (a client's burst of SUBs is one per SUB, and an
 * edge's replay one per live subscription): written by hand as protobufjs would, whose encoder
 * cost about 1.5 µs an op here.
 */
function writeInterest(w: FrameBuilder, i: Draft<InterestChange>): void {
  const acc = accountBytes.of(i.account ?? "");
  const subject = i.subject ?? "", queue = i.queue ?? "", sid = i.sub?.sid ?? "";
  const subjectLen = utf8Length(subject), queueLen = utf8Length(queue), sidLen = utf8Length(sid);
  const weight = i.weightDelta ?? 0;
  const zigzag = ((weight << 1) ^ (weight >> 31)) >>> 0; // sint32
  const connection = i.sub?.connectionId ?? 0;
  const ref = i.sub == null ? -1 : subscriptionRefSize(connection, sidLen);
  w.openOp(EDGE_INTEREST, stringSize(acc.length) + stringSize(subjectLen) + stringSize(queueLen) + numberSize(zigzag) +
    (ref < 0 ? 0 : fieldSize(ref)) + (i.noEcho ? 2 : 0));
  w.bytes((1 << 3) | 2, acc, 0, acc.length);
  w.string((2 << 3) | 2, subject, subjectLen);
  w.string((3 << 3) | 2, queue, queueLen);
  w.number(4 << 3, zigzag);
  if (ref >= 0) writeSubscriptionRef(w, INTEREST_SUB_TAG, ref, connection, sid, sidLen);
  w.bool(6 << 3, i.noEcho ?? false);
}

/** Per entry of the InterestUpdate being written: its subject's and queue's UTF-8 lengths, its size. */
const entrySizes: number[] = [];

/**
 * MeshOp.interest: a turn's interest changes for a peer, up to UPDATE_ENTRIES entries (a SUB
 * burst is one per subscription): written by hand as protobufjs would, whose encoder took about
 * a tenth of a router's CPU in such a burst.
 */
function writeInterestUpdate(w: FrameBuilder, u: Draft<InterestUpdate>): void {
  const entries = u.entries ?? [];
  const seq = u.seq ?? 0;
  let body = numberSize(seq);
  entrySizes.length = 3 * entries.length;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    const subjectLen = utf8Length(e.subject ?? ""), queueLen = utf8Length(e.queue ?? "");
    const size = stringSize(accountBytes.of(e.account ?? "").length) + stringSize(subjectLen) + stringSize(queueLen) + numberSize(e.weight ?? 0);
    entrySizes[3 * i] = subjectLen;
    entrySizes[3 * i + 1] = queueLen;
    entrySizes[3 * i + 2] = size;
    body += fieldSize(size);
  }
  w.openOp(MESH_INTEREST, body);
  w.number(1 << 3, seq);
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    const acc = accountBytes.of(e.account ?? ""); // encoded again only when the account changes
    w.open((2 << 3) | 2, entrySizes[3 * i + 2]);
    w.bytes((1 << 3) | 2, acc, 0, acc.length);
    w.string((2 << 3) | 2, e.subject ?? "", entrySizes[3 * i]);
    w.string((3 << 3) | 2, e.queue ?? "", entrySizes[3 * i + 1]);
    w.number(4 << 3, e.weight ?? 0);
  }
}

/** MeshOp.forward of a drafted Forward. */
function writeForward(w: FrameBuilder, f: Draft<Forward>): void {
  const msg = f.message ?? {};
  const headers = msg.headers ?? EMPTY, payload = msg.payload ?? EMPTY;
  const queues = f.queues ?? [];
  const subject = msg.subject ?? "", reply = msg.reply ?? "";
  let at = writeForwardParts(w, f.account ?? "", subject, reply, headers, 0, payload, 0,
    measureMessage(subject, reply, headers.length, payload.length), queues.length > 0 ? queues[0] : undefined,
    f.originEdge ?? "", f.originConnection ?? 0, f.qos ?? 0, f.retain ?? false, f.msgId ?? 0);
  for (let i = 1; i < queues.length; i++) at = addForwardQueue(w, at, queues[i]);
}

/**
 * MeshOp.forward of a message (its bytes read during the call only), naming `queue` when set.
 * Returns where its queue names end (an offset in the frame): while it is the frame's last op,
 * addForwardQueue() names more groups there.
 */
export function writeForwardOf(w: FrameBuilder, account: string, subject: string, reply: string, msg: MessageData,
                               queue: string | undefined, originEdge: string, originConnection: number, retain: boolean,
                               msgId: number): number {
  return writeForwardParts(w, account, subject, reply, msg.buf, msg.start, msg.buf, msg.start + msg.hdrLen,
    measureMessageOf(subject, reply, msg), queue, originEdge, originConnection, 0, retain, msgId);
}

function writeForwardParts(w: FrameBuilder, account: string, subject: string, reply: string, hdrSrc: Buffer, hdrStart: number,
                           paySrc: Buffer, payStart: number, m: MessageSizes, queue: string | undefined,
                           originEdge: string, originConnection: number, qos: number, retain: boolean, msgId: number): number {
  const acc = accountBytes.of(account), edge = edgeBytes.of(originEdge);
  const queueLen = queue === undefined ? 0 : utf8Length(queue);
  // A repeated string writes empty entries too.
  const forward = stringSize(acc.length) + fieldSize(m.body) + (queue === undefined ? 0 : fieldSize(queueLen)) +
    stringSize(edge.length) + numberSize(originConnection) + numberSize(qos) + (msgId === 0 ? 0 : 2 + varintSize(msgId)) + (retain ? 3 : 0);
  w.openOp(MESH_FORWARD, forward);
  w.bytes((1 << 3) | 2, acc, 0, acc.length);
  writeMessage(w, m, subject, reply, hdrSrc, hdrStart, paySrc, payStart);
  if (queue !== undefined) writeQueue(w, queue, queueLen);
  const queuesEnd = w.length;
  w.bytes((4 << 3) | 2, edge, 0, edge.length);
  w.number(5 << 3, originConnection);
  w.number(6 << 3, qos);
  if (msgId !== 0) {
    w.literal(FORWARD_MSG_ID);
    w.varint(msgId);
  }
  if (retain) w.literal(FORWARD_RETAIN);
  return queuesEnd;
}

/** One more queue group of the Forward that is the frame's last op, at `at` (where its queue
 *  names end); returns where they end now. */
export function addForwardQueue(w: FrameBuilder, at: number, queue: string): number {
  const len = utf8Length(queue);
  w.insert(at, fieldSize(len));
  writeQueue(w, queue, len);
  const end = w.length;
  w.endInsert();
  return end;
}

function writeQueue(w: FrameBuilder, queue: string, len: number): void {
  if (len === 0) w.open((3 << 3) | 2, 0);
  else w.string((3 << 3) | 2, queue, len);
}

/** The tag of Forward.msg_id (field 70, a varint): two bytes. */
const FORWARD_MSG_ID = Buffer.from([0xb0, 0x04]);
/** Forward.retain = true: field 80's tag takes two bytes. */
const FORWARD_RETAIN = Buffer.from([0x80, 0x05, 1]);

/** Writes one op of a frame whose op type is `name`: the hot one by hand, others by protobufjs. */
export type OpWriter<Op> = (w: FrameBuilder, op: Draft<Op>) => void;

function opWriter<Op extends { op?: string }>(name: string, hot: Record<string, (w: FrameBuilder, v: never) => void>): OpWriter<Op> {
  const members = Object.keys(hot);
  let type: protobuf.Type | undefined;
  return (w, op) => {
    const fields = op as Record<string, unknown>;
    // `op` names the oneof member when set; a draft may also just carry the member.
    if (op.op !== undefined) {
      const value = fields[op.op];
      const writeHot = hot[op.op];
      if (writeHot !== undefined && value !== undefined) return writeHot(w, value as never);
    } else {
      for (const m of members) if (fields[m] !== undefined) return hot[m](w, fields[m] as never);
    }
    type ??= protoTypes().lookupType(`${PROTO_PACKAGE}.${name}`);
    let bytes: Uint8Array;
    try {
      bytes = type.encode(op as unknown as protobuf.Message).finish();
    } catch (err) {
      throw new WireError(`cannot encode ${name}: ${(err as Error).message}`, "UNENCODABLE", { cause: err });
    }
    w.raw(OPS_TAG, bytes);
  };
}

export const writeEdgeOp: OpWriter<EdgeOp> = opWriter<EdgeOp>("EdgeOp", {
  publish: (w, p: NonNullable<Draft<EdgeOp>["publish"]>) => {
    // A drafted publish: kept while detached, or MQTT's awaiting its completion (kept for a replay).
    const m = p.message ?? {};
    const headers = m.headers ?? EMPTY, payload = m.payload ?? EMPTY;
    writePublishParts(w, p.account ?? "", m.subject ?? "", m.reply ?? "", headers, 0, headers.length, payload, 0, payload.length,
      p.originConnection ?? 0, p.noResponders ?? false, p.correlationId ?? 0, p.qos ?? 0, p.retain ?? false, p.topic ?? "",
      encodeProperties(p.properties));
  },
  interest: writeInterest,
});
export const writeRouterOp: OpWriter<RouterOp> = opWriter<RouterOp>("RouterOp", { deliver: writeDeliver });
export const writeMeshOp: OpWriter<MeshOp> = opWriter<MeshOp>("MeshOp", { forward: writeForward, interest: writeInterestUpdate });

// ---- decoding ----

/** A protobufjs-decoded Message's bytes as one MessageData (the headers and payload views
 *  joined: a copy only when both are set; a cursor moves them together instead). */
export function messageData(m: Message | undefined): MessageData {
  if (!m) return { buf: EMPTY, start: 0, end: 0, hdrLen: 0 };
  const buf = m.headers.length === 0 ? m.payload : Buffer.concat([m.headers, m.payload]);
  return { buf, start: 0, end: buf.length, hdrLen: m.headers.length };
}

class Malformed extends Error {}

/** The last string decoded from some field, kept with its bytes: the same subject, account or
 *  sid again (the common case) costs a comparison, not a string. */
class StringCache {
  private readonly bytes = Buffer.alloc(64);
  /** `bytes` four at a time: a 56-byte edge id compares in ~27 ns instead of ~50-70 byte by byte. */
  private readonly words = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.length);
  private len = -1;
  private str = "";

  /** `words`: a view of `buf`'s bytes (offsets as in `buf`). */
  get(buf: Buffer, words: DataView, start: number, end: number): string {
    const len = end - start;
    if (len === 0) return "";
    if (len === this.len && this.same(buf, words, start, len)) return this.str;
    const str = buf.toString("utf8", start, end);
    if (len <= this.bytes.length) {
      buf.copy(this.bytes, 0, start, end);
      this.len = len;
      this.str = str;
    }
    return str;
  }

  private same(buf: Buffer, words: DataView, start: number, len: number): boolean {
    const own = this.words;
    let i = 0;
    for (; i + 4 <= len; i += 4) if (own.getUint32(i) !== words.getUint32(start + i)) return false;
    const b = this.bytes;
    for (; i < len; i++) if (b[i] !== buf[start + i]) return false;
    return true;
  }
}

const enum Wire { Varint = 0, Fixed64 = 1, Bytes = 2, Fixed32 = 5 }

/** What FrameCursor.next() found: Hot2 is the second hot member (a RouterFrameCursor's
 *  SessionEvent, an EdgeFrameCursor's InterestChange). */
export const enum Next { End = 0, Hot = 1, Cold = 2, Hot2 = 3 }

/**
 * Walks one frame's ops. Hot ops (by `hot`, the oneof member's field number, and `hot2` if any)
 * fill this cursor's fields; others are decoded by protobufjs into `cold`. A malformed op or
 * frame makes next() return a WireError (the ops before it were already returned).
 */
class FrameCursor<Op> {
  buf: Buffer = EMPTY;
  /** `buf` as a DataView, for StringCache's comparisons. */
  private words: DataView = new DataView(new ArrayBuffer(0));
  pos = 0;
  end = 0;
  /** The op next() returned as Cold. */
  cold: Op | undefined;
  private type: protobuf.Type | undefined;
  protected readonly subjects = new StringCache();
  protected readonly replies = new StringCache();
  protected readonly accounts = new StringCache();
  /** The Message of the hot op: subject, reply, and its bytes as MessageData (one object,
   *  filled again per op: a receiver's use of it ends with the call, link.ts). */
  subject = "";
  reply = "";
  msg: MessageData = { buf: EMPTY, start: 0, end: 0, hdrLen: 0 };
  account = "";
  /** MQTT 5: the hot op's properties (rare: decoded by protobufjs as the op is read, so that
   *  malformed ones make next() return a WireError). */
  protected props: MqttProperties | undefined;
  /** The SubscriptionRef read last (readSubscriptionRef): a Deliver's target, an InterestChange's sub. */
  refConnection = 0;
  refSid = "";
  private readonly sids = new StringCache();
  private readonly hotTag: number;
  private readonly hotTag2: number;

  constructor(private readonly opType: string, hot: number, hot2 = 0) {
    this.hotTag = (hot << 3) | 2;
    this.hotTag2 = hot2 === 0 ? -1 : (hot2 << 3) | 2;
  }

  /** The current hot op's MQTT properties, if it carries any. */
  properties(): MqttProperties | undefined {
    return this.props;
  }

  /** Field 30 (properties) of Publish and StoredMessage. */
  protected readProperties(tag: number, end: number): void {
    this.expect(tag, Wire.Bytes);
    const propsEnd = this.length(end);
    this.props = propertiesCodec().decode(this.buf.subarray(this.pos, propsEnd)) as unknown as MqttProperties;
    this.pos = propsEnd;
  }

  reset(bytes: Buffer): void {
    this.failure = undefined;
    this.buf = bytes;
    this.words = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    this.pos = 0;
    this.end = bytes.length;
  }

  next(): Next | WireError {
    if (this.failure) {
      const failure = this.failure;
      this.failure = undefined;
      return failure;
    }
    try {
      while (this.pos < this.end) {
        const tag = this.varint();
        if (tag !== OPS_TAG) {
          this.skip(tag & 7, this.end);
          continue;
        }
        const opEnd = this.length(this.end);
        const start = this.pos;
        // One member, a hot one, spanning the op: decode it here; anything else: protobufjs.
        const member = opEnd > start ? this.buf[start] : -2;
        if (member === this.hotTag || member === this.hotTag2) {
          this.pos++;
          const end = this.length(opEnd);
          if (end === opEnd) {
            const found = member === this.hotTag ? this.readHot(end) : this.readHot2(end);
            this.pos = opEnd;
            return found;
          }
        }
        this.pos = opEnd;
        this.type ??= protoTypes().lookupType(`${PROTO_PACKAGE}.${this.opType}`);
        this.cold = this.type.decode(this.buf.subarray(start, opEnd)) as unknown as Op;
        return Next.Cold;
      }
      return Next.End;
    } catch (err) {
      return this.fail(err);
    }
  }

  /** A part of a hot op read after next() returned it was malformed: next() returns this. */
  protected failure: WireError | undefined;

  protected fail(err: unknown): WireError {
    this.pos = this.end;
    return new WireError(`malformed ${this.opType.replace(/Op$/, "Frame")}: ${(err as Error).message}`, "MALFORMED", { cause: err });
  }

  /** Fields 1 and 2 of every hot op: the account and the Message. */
  protected accountOrMessage(tag: number, end: number): void {
    this.expect(tag, Wire.Bytes);
    if (tag >>> 3 === 1) this.account = this.string(this.accounts, end);
    else this.readMessage(this.length(end));
  }

  /** A hot op without a Message has an empty one. */
  protected emptyMessage(): void {
    this.subject = "";
    this.reply = "";
    this.setMessage(EMPTY, 0, 0, 0);
  }

  protected setMessage(buf: Buffer, start: number, end: number, hdrLen: number): void {
    const m = this.msg;
    m.buf = buf;
    m.start = start;
    m.end = end;
    m.hdrLen = hdrLen;
  }

  /** Fills the fields from the hot op's message, which ends at `end`. */
  protected readHot(_end: number): Next { return Next.Hot; }

  /** The same for the second hot member. */
  protected readHot2(_end: number): Next { return Next.Hot; }

  /** SubscriptionRef { connection_id = 1, sid = 3 } ending at `end` (a field repeated: the last counts). */
  protected readSubscriptionRef(end: number): void {
    this.refConnection = 0;
    this.refSid = "";
    while (this.pos < end) {
      const tag = this.varint();
      if (tag === 1 << 3) this.refConnection = this.varint();
      else if (tag === ((3 << 3) | 2)) this.refSid = this.string(this.sids, end);
      else this.skip(tag & 7, end);
    }
  }

  protected varint(): number {
    const b = this.buf;
    let p = this.pos;
    let v = 0, shift = 1;
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      if (p >= this.end) throw new Malformed("index out of range");
      const byte = b[p++];
      v += (byte & 0x7f) * shift;
      if (byte < 0x80) {
        this.pos = p;
        return v;
      }
      shift *= 0x80;
    }
    throw new Malformed("invalid varint encoding");
  }

  /** A length prefix: where the field it starts ends (at most `limit`). */
  protected length(limit: number): number {
    const len = this.varint();
    const end = this.pos + len;
    if (end > limit) throw new Malformed(`index out of range: ${this.pos} + ${len} > ${limit}`);
    return end;
  }

  protected skip(wire: number, limit: number): void {
    switch (wire) {
      case Wire.Varint: this.varint(); return;
      case Wire.Fixed64: this.pos += 8; break;
      case Wire.Bytes: this.pos = this.length(limit); return;
      case Wire.Fixed32: this.pos += 4; break;
      default: throw new Malformed(`invalid wire type ${wire} at offset ${this.pos}`);
    }
    if (this.pos > limit) throw new Malformed("index out of range");
  }

  protected expect(tag: number, wire: Wire): void {
    if ((tag & 7) !== wire) throw new Malformed(`field ${tag >>> 3}: wire type ${tag & 7}, expected ${wire}`);
  }

  protected string(cache: StringCache | undefined, limit: number): string {
    const end = this.length(limit);
    const s = cache ? cache.get(this.buf, this.words, this.pos, end) : this.buf.toString("utf8", this.pos, end);
    this.pos = end;
    return s;
  }

  /**
   * A Message ending at `end`. Its headers and payload become one MessageData: when the headers
   * come first, as every encoder writes them, they are moved up against the payload (over the
   * payload's tag and length, already read), so that no copy is made; this changes the frame's
   * bytes, which nothing reads again.
   */
  protected readMessage(end: number): void {
    const fieldStart = this.pos;
    this.subject = "";
    this.reply = "";
    let hs = 0, he = 0, ps = 0, pe = 0;
    while (this.pos < end) {
      const tag = this.varint();
      switch (tag >>> 3) {
        case 1: this.expect(tag, Wire.Bytes); this.subject = this.string(this.subjects, end); break;
        case 2: this.expect(tag, Wire.Bytes); this.reply = this.string(this.replies, end); break;
        case 3: this.expect(tag, Wire.Bytes); he = this.length(end); hs = this.pos; this.pos = he; break;
        case 4: this.expect(tag, Wire.Bytes); pe = this.length(end); ps = this.pos; this.pos = pe; break;
        default: this.skip(tag & 7, end);
      }
    }
    const hdrLen = he - hs;
    if (hdrLen === 0) {
      this.setMessage(this.buf, ps, pe, 0);
    } else if (pe === ps) {
      this.setMessage(this.buf, hs, he, hdrLen);
    } else if (he <= ps) {
      this.buf.copyWithin(ps - hdrLen, hs, he);
      this.setMessage(this.buf, ps - hdrLen, pe, hdrLen);
    } else {
      const buf = Buffer.concat([this.buf.subarray(hs, he), this.buf.subarray(ps, pe)]);
      this.setMessage(buf, 0, buf.length, hdrLen);
    }
    const r = lastRead;
    // Headers moved up changed the field's bytes: it is no longer what was read.
    r.msg = hdrLen === 0 || pe === ps ? this.msg : undefined;
    r.buf = this.msg.buf;
    r.start = this.msg.start;
    r.end = this.msg.end;
    r.subject = this.subject;
    r.reply = this.reply;
    r.fieldStart = fieldStart;
    r.fieldEnd = end;
  }
}

/** EdgeFrames, publish hot, and interest (Hot2: a SUB burst or an edge's replay is one per
 *  subscription) in `account`, `subject`, the interest fields below and the ref (refConnection, refSid). */
export class EdgeFrameCursor extends FrameCursor<EdgeOp> {
  originConnection = 0;
  noResponders = false;
  correlationId = 0;
  qos = 0;
  retain = false;
  topic = "";
  private readonly topics = new StringCache();
  queue = "";
  weightDelta = 0;
  /** The InterestChange has a SubscriptionRef (refConnection, refSid). */
  hasSub = false;
  noEcho = false;
  private readonly queues = new StringCache();

  constructor() { super("EdgeOp", EDGE_PUBLISH, EDGE_INTEREST); }

  /** InterestChange { account, subject, queue, weight_delta (sint32), sub, no_echo }. */
  protected override readHot2(end: number): Next {
    this.account = "";
    this.subject = "";
    this.queue = "";
    this.weightDelta = 0;
    this.refConnection = 0;
    this.refSid = "";
    this.hasSub = false;
    this.noEcho = false;
    while (this.pos < end) {
      const tag = this.varint();
      switch (tag >>> 3) {
        case 1: this.expect(tag, Wire.Bytes); this.account = this.string(this.accounts, end); break;
        case 2: this.expect(tag, Wire.Bytes); this.subject = this.string(undefined, end); break;
        case 3: this.expect(tag, Wire.Bytes); this.queue = this.string(this.queues, end); break;
        case 4: {
          this.expect(tag, Wire.Varint);
          const zigzag = this.varint() % 0x100000000; // as protobufjs: the low 32 bits
          this.weightDelta = (zigzag >>> 1) ^ -(zigzag & 1);
          break;
        }
        case 5: this.expect(tag, Wire.Bytes); this.readSubscriptionRef(this.length(end)); this.hasSub = true; break;
        case 6: this.expect(tag, Wire.Varint); this.noEcho = this.varint() !== 0; break;
        default: this.skip(tag & 7, end);
      }
    }
    return Next.Hot2;
  }

  protected override readHot(end: number): Next {
    this.account = "";
    this.originConnection = 0;
    this.noResponders = false;
    this.correlationId = 0;
    this.qos = 0;
    this.retain = false;
    this.topic = "";
    this.props = undefined;
    this.emptyMessage();
    while (this.pos < end) {
      const tag = this.varint();
      switch (tag >>> 3) {
        case 1: case 2: this.accountOrMessage(tag, end); break;
        case 30: this.readProperties(tag, end); break;
        case 3: this.expect(tag, Wire.Varint); this.originConnection = this.varint(); break;
        case 4: this.expect(tag, Wire.Varint); this.noResponders = this.varint() !== 0; break;
        case 5: this.expect(tag, Wire.Varint); this.correlationId = this.varint(); break;
        case 6: this.expect(tag, Wire.Varint); this.qos = this.varint() % 0x100000000; break;
        case 7: this.expect(tag, Wire.Varint); this.retain = this.varint() !== 0; break;
        case 8: this.expect(tag, Wire.Bytes); this.topic = this.string(this.topics, end); break;
        default: this.skip(tag & 7, end);
      }
    }
    return Next.Hot;
  }
}

/**
 * RouterFrames, deliver and session events hot. After next() returned Hot (a Deliver),
 * nextTarget() walks its targets (each in refConnection, refSid); after Hot2 (a SessionEvent),
 * `event` says which member it carried (a field number: EVENT_*, 0 for none) and the fields
 * below hold it, the payload of a publish as `msg`.
 */
export class RouterFrameCursor extends FrameCursor<RouterOp> {
  private targetsFrom = 0;
  private targetsEnd = 0;
  event = 0;
  eventConnection = 0;
  pubrel = 0;
  topic = "";
  qos = 0;
  retain = false;
  packetId = 0;
  dup = false;
  private readonly topics = new StringCache();

  constructor() { super("RouterOp", ROUTER_DELIVER, ROUTER_SESSION_EVENT); }

  /** SessionEvent ending at `end`: a oneof, of which the last member read counts (protobuf's rule). */
  protected override readHot2(end: number): Next {
    this.event = 0;
    this.eventConnection = 0;
    this.pubrel = 0;
    this.topic = "";
    this.qos = 0;
    this.retain = false;
    this.packetId = 0;
    this.dup = false;
    this.props = undefined;
    this.emptyMessage();
    while (this.pos < end) {
      const tag = this.varint();
      switch (tag >>> 3) {
        case EVENT_CONNECTION: this.expect(tag, Wire.Varint); this.eventConnection = this.varint(); break;
        case EVENT_TAKEOVER: this.expect(tag, Wire.Varint); this.varint(); this.event = EVENT_TAKEOVER; break;
        case EVENT_PUBREL: this.expect(tag, Wire.Varint); this.pubrel = this.varint() % 0x100000000; this.event = EVENT_PUBREL; break;
        case EVENT_PUBLISH: this.expect(tag, Wire.Bytes); this.readSessionPublish(this.length(end)); this.event = EVENT_PUBLISH; break;
        default: this.skip(tag & 7, end);
      }
    }
    return Next.Hot2;
  }

  /** SessionPublish { message: StoredMessage, packet_id, dup }, ending at `end`. */
  private readSessionPublish(end: number): void {
    while (this.pos < end) {
      const tag = this.varint();
      switch (tag >>> 3) {
        case 3: this.expect(tag, Wire.Bytes); this.readStored(this.length(end)); break;
        case 4: this.expect(tag, Wire.Varint); this.packetId = this.varint() % 0x100000000; break;
        case 5: this.expect(tag, Wire.Varint); this.dup = this.varint() !== 0; break;
        default: this.skip(tag & 7, end);
      }
    }
  }

  /** StoredMessage { topic, payload, qos, retain, properties }, ending at `end`. */
  private readStored(end: number): void {
    while (this.pos < end) {
      const tag = this.varint();
      switch (tag >>> 3) {
        case 1: this.expect(tag, Wire.Bytes); this.topic = this.string(this.topics, end); break;
        case 2: {
          this.expect(tag, Wire.Bytes);
          const pe = this.length(end);
          this.setMessage(this.buf, this.pos, pe, 0);
          this.pos = pe;
          break;
        }
        case 3: this.expect(tag, Wire.Varint); this.qos = this.varint() % 0x100000000; break;
        case 4: this.expect(tag, Wire.Varint); this.retain = this.varint() !== 0; break;
        case 30: this.readProperties(tag, end); break;
        default: this.skip(tag & 7, end);
      }
    }
  }

  protected override readHot(end: number): Next {
    this.account = "";
    this.emptyMessage();
    this.targetsFrom = -1;
    this.targetsEnd = end;
    while (this.pos < end) {
      const tag = this.varint();
      switch (tag >>> 3) {
        case 1: case 2: this.accountOrMessage(tag, end); break;
        case 3: {
          this.expect(tag, Wire.Bytes);
          if (this.targetsFrom < 0) this.targetsFrom = this.pos - 1;
          this.pos = this.length(end);
          break;
        }
        default: this.skip(tag & 7, end);
      }
    }
    if (this.targetsFrom < 0) this.targetsFrom = end;
    return Next.Hot;
  }

  /** The next target of the Deliver last returned (false: no more, or malformed: then the
   *  next call of next() returns the WireError). */
  nextTarget(): boolean {
    if (this.targetsFrom >= this.targetsEnd) return false;
    const saved = this.pos, savedEnd = this.end;
    this.pos = this.targetsFrom;
    this.end = this.targetsEnd;
    let found = false;
    try {
      while (!found && this.pos < this.targetsEnd) {
        const tag = this.varint();
        if (tag !== ((3 << 3) | 2)) {
          this.skip(tag & 7, this.targetsEnd);
          continue;
        }
        this.readSubscriptionRef(this.length(this.targetsEnd));
        found = true;
      }
      this.targetsFrom = this.pos;
    } catch (err) {
      this.targetsFrom = this.targetsEnd;
      this.failure = this.fail(err);
      return false;
    } finally {
      this.pos = this.failure ? savedEnd : saved;
      this.end = savedEnd;
    }
    return found;
  }
}

const NO_QUEUES: readonly string[] = Object.freeze([]);

/** MeshFrames, forward hot, and interest updates (Hot2) in `interest`. */
export class MeshFrameCursor extends FrameCursor<MeshOp> {
  queues: readonly string[] = NO_QUEUES;
  originEdge = "";
  originConnection = 0;
  qos = 0;
  retain = false;
  msgId = 0;
  /** The InterestUpdate of Hot2: its entries are new objects (the peer's copy keeps them). */
  interest: InterestUpdate = { seq: 0, entries: [] };
  private readonly edges = new StringCache();
  private readonly queueNames = new StringCache();

  constructor() { super("MeshOp", MESH_FORWARD, MESH_INTEREST); }

  /** InterestUpdate { seq, repeated InterestEntry entries }. */
  protected override readHot2(end: number): Next {
    const update: InterestUpdate = { seq: 0, entries: [] };
    while (this.pos < end) {
      const tag = this.varint();
      switch (tag >>> 3) {
        case 1: this.expect(tag, Wire.Varint); update.seq = this.varint(); break;
        case 2: this.expect(tag, Wire.Bytes); update.entries.push(this.readEntry(this.length(end))); break;
        default: this.skip(tag & 7, end);
      }
    }
    this.interest = update;
    return Next.Hot2;
  }

  /** InterestEntry { account, subject, queue, weight } ending at `end`. */
  private readEntry(end: number): InterestEntry {
    const e: InterestEntry = { account: "", subject: "", queue: "", weight: 0 };
    while (this.pos < end) {
      const tag = this.varint();
      switch (tag >>> 3) {
        case 1: this.expect(tag, Wire.Bytes); e.account = this.string(this.accounts, end); break;
        case 2: this.expect(tag, Wire.Bytes); e.subject = this.string(undefined, end); break;
        case 3: this.expect(tag, Wire.Bytes); e.queue = this.string(this.queueNames, end); break;
        case 4: this.expect(tag, Wire.Varint); e.weight = this.varint() % 0x100000000; break;
        default: this.skip(tag & 7, end);
      }
    }
    return e;
  }

  protected override readHot(end: number): Next {
    this.account = "";
    this.emptyMessage();
    this.queues = NO_QUEUES;
    this.originEdge = "";
    this.originConnection = 0;
    this.qos = 0;
    this.retain = false;
    this.msgId = 0;
    while (this.pos < end) {
      const tag = this.varint();
      switch (tag >>> 3) {
        case 1: case 2: this.accountOrMessage(tag, end); break;
        case 3: {
          this.expect(tag, Wire.Bytes);
          const q = this.string(this.queueNames, end);
          // One array per forward that names queues, grown in place (was a copy per queue).
          if (this.queues === NO_QUEUES) this.queues = [q];
          else (this.queues as string[]).push(q);
          break;
        }
        case 4: this.expect(tag, Wire.Bytes); this.originEdge = this.string(this.edges, end); break;
        case 5: this.expect(tag, Wire.Varint); this.originConnection = this.varint(); break;
        case 6: this.expect(tag, Wire.Varint); this.qos = this.varint() % 0x100000000; break;
        case 70: this.expect(tag, Wire.Varint); this.msgId = this.varint(); break;
        case 80: this.expect(tag, Wire.Varint); this.retain = this.varint() !== 0; break;
        default: this.skip(tag & 7, end);
      }
    }
    return Next.Hot;
  }
}
