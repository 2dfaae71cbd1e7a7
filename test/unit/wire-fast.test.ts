// The hand-written codec of the hot operations (services/router/wire/fast.ts) against protobufjs,
// the reference: on many random messages (headers, empty payloads, unicode subjects, big
// payloads, reply subjects, queue groups, large ids) its frames are byte for byte protobufjs's,
// protobufjs decodes them to the same values, it decodes protobufjs's frames (hot ops mixed with
// others) to the same values, and malformed bytes give a WireError, never a throw.
import { describe, expect, it } from "vitest";
import { edgeFrames, meshFrames, PROTO_PACKAGE, protoTypes, routerFrames, WireError } from "../../services/router/wire/codec.js";
import {
  addDeliverTarget, addForwardQueue, EdgeFrameCursor, encodeProperties, EVENT_PUBLISH, EVENT_PUBREL, EVENT_TAKEOVER, FrameBuilder,
  MeshFrameCursor, Next, RouterFrameCursor, utf8Length, writeDeliverOf, writeEdgeOp, writeForwardOf, writeMeshOp, writeMqttPublish,
  writePublish, writeRouterOp, writeSessionPublish,
} from "../../services/router/wire/fast.js";
import type { Draft, EdgeOp, Message, MeshOp, MqttProperties, RouterOp } from "../../services/router/wire/frames.js";
import { prng } from "../helpers/prng.js";

const ALPHABET = ["a", "Z", "9", ".", "_", ">", "*", "é", "ß", "€", "日本", "😀", "\u{10348}"];

function gen(seed: number) {
  const r = prng(seed);
  const int = (n: number) => Math.floor(r() * n);
  const text = (max: number, ascii = false) => {
    let s = "";
    for (let i = int(max + 1); i > 0; i--) s += ascii ? ALPHABET[int(5)] : ALPHABET[int(ALPHABET.length)];
    return s;
  };
  /** Random bytes at both ends, a fill between (big payloads stay cheap to make and compare). */
  const bytes = (max: number) => {
    const b = Buffer.alloc(int(max + 1), int(256));
    for (let i = 0; i < Math.min(b.length, 40); i++) b[i] = b[b.length - 1 - i] = int(256);
    return b;
  };
  const payloadMax = () => [0, 16, 200, 0, 16, 200, 70_000][int(7)];
  const id = () => [0, 1, 127, 128, 300, 2 ** 31, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER][int(8)];
  /** A long unicode subject now and then (past the short-string fast paths). */
  const subject = () => (int(6) === 0 ? text(80) : text(12, int(2) === 0));
  const message = (): Message => ({
    subject: subject(), reply: int(2) ? "" : `_INBOX.${text(30, true)}`,
    headers: int(3) ? Buffer.alloc(0) : Buffer.from(`NATS/1.0\r\nK: ${text(20)}\r\n\r\n`),
    payload: bytes(payloadMax()),
  });
  /** MQTT 5 properties, none (undefined), empty, or some of every kind; only fields that are
   *  set (the reference encodes drafts without defaults). */
  const properties = (): Draft<MqttProperties> | undefined => {
    const k = int(4);
    if (k === 0) return undefined;
    if (k === 1) return {};
    const p: Draft<MqttProperties> = {};
    if (int(2)) p.userProperties = Array.from({ length: 1 + int(3) }, () => ({ name: text(6) || "n", value: text(10) || "v" }));
    if (int(2)) p.contentType = text(12) || "c";
    if (int(2)) { p.correlationData = bytes(20); if (p.correlationData.length > 0) p.hasCorrelationData = true; else delete p.correlationData; }
    if (int(2)) p.responseTopic = `r/${text(10)}`;
    if (int(2)) p.payloadUtf8 = true;
    if (int(2)) p.messageExpiry = { seconds: 1 + int(100_000) };
    if (int(2)) p.subscriptionIdentifier = 1 + int(268_435_455);
    return p;
  };
  /** An MQTT topic: unicode, sometimes long, never empty. */
  const topic = () => `${text(4)}/${int(6) === 0 ? text(80) : text(10)}`;
  return { int, text, id, subject, message, properties, topic, bytes };
}

/** protobufjs writes a field that is set even at its default: the hand-written codec never
 *  writes defaults, so the reference gets drafts without them. */
function withoutDefaults<T>(v: T): T {
  if (Buffer.isBuffer(v) || Array.isArray(v)) return (Array.isArray(v) ? v.map(withoutDefaults) : v) as T;
  if (typeof v !== "object" || v === null) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    if (x === "" || x === 0 || x === false || (Buffer.isBuffer(x) && x.length === 0)) continue;
    out[k] = withoutDefaults(x);
  }
  return out as T;
}

/** Buffers as hex strings: vitest compares big Buffers byte by byte, far too slowly. */
function hex<T>(v: T): unknown {
  if (Buffer.isBuffer(v)) return `hex:${v.toString("hex")}`;
  if (Array.isArray(v)) return v.map(hex);
  if (typeof v !== "object" || v === null) return v;
  return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined).map(([k, x]) => [k, hex(x)]));
}

/** Properties as protobufjs decodes them (its repeated fields are there when empty). */
const decodedProps = (p: Draft<MqttProperties> | undefined) => (p === undefined ? undefined : hex({ userProperties: [], ...p }));

/** The hot op's message as the cursor read it. */
const viewed = (msg: { buf: Buffer; start: number; end: number; hdrLen: number }) => ({
  headers: hex(msg.buf.subarray(msg.start, msg.start + msg.hdrLen)), payload: hex(msg.buf.subarray(msg.start + msg.hdrLen, msg.end)),
});

/** A protobuf varint. */
function varintBytes(v: number): Buffer {
  const out: number[] = [];
  for (; v > 0x7f; v >>>= 7) out.push((v & 0x7f) | 0x80);
  out.push(v);
  return Buffer.from(out);
}

const frameOf = (write: (w: FrameBuilder) => void): Buffer => {
  const w = new FrameBuilder();
  write(w);
  return Buffer.from(w.finish()); // a copy: decoders may change the bytes they read
};

describe("hand-written codec vs protobufjs", () => {
  it("utf8Length counts as Buffer.byteLength", () => {
    const g = gen(1);
    for (let i = 0; i < 2_000; i++) {
      const s = g.text(120);
      expect(utf8Length(s)).toBe(Buffer.byteLength(s));
    }
    expect(utf8Length("\ud800x")).toBe(Buffer.byteLength("\ud800x")); // a lone surrogate
  });

  it("Publish (edge → router): same bytes, decoded the same both ways", () => {
    for (let seed = 0; seed < 200; seed++) {
      const g = gen(seed);
      const ops: Draft<EdgeOp>[] = [];
      for (let n = 1 + g.int(5); n > 0; n--) {
        const m = g.message();
        ops.push({ publish: { account: g.int(4) ? "$G" : g.text(8), message: m, originConnection: g.id(), noResponders: g.int(2) === 0 } });
      }
      // The edge's way: the client's bytes, headers and payload in one buffer at an offset.
      const hand = frameOf((w) => {
        for (const { publish: p } of ops) {
          const m = p!.message!;
          const buf = Buffer.concat([Buffer.from("junk"), m.headers!, m.payload!, Buffer.from("more")]);
          writePublish(w, p!.account!, m.subject!, m.reply!, { buf, start: 4, end: 4 + m.headers!.length + m.payload!.length, hdrLen: m.headers!.length },
            p!.originConnection!, p!.noResponders!);
        }
      });
      const reference = edgeFrames.encode(withoutDefaults({ ops }));
      expect(hand.equals(reference), `seed ${seed}`).toBe(true);
      // The draft way (writeEdgeOp) writes the same.
      expect(frameOf((w) => { for (const op of ops) writeEdgeOp(w, op); }).equals(reference), `seed ${seed}`).toBe(true);

      const cur = new EdgeFrameCursor();
      cur.reset(Buffer.from(reference));
      for (const { publish: p } of ops) {
        expect(cur.next()).toBe(Next.Hot);
        const m = p!.message!;
        expect({
          account: cur.account, subject: cur.subject, reply: cur.reply, originConnection: cur.originConnection, noResponders: cur.noResponders,
          ...viewed(cur.msg),
        }, `seed ${seed}`).toEqual(hex({ ...p, ...m, message: undefined }));
      }
      expect(cur.next()).toBe(Next.End);
    }
  });

  it("Deliver (router → edge): same bytes, targets and message decoded the same", () => {
    for (let seed = 0; seed < 200; seed++) {
      const g = gen(1_000 + seed);
      const ops: Draft<RouterOp>[] = [];
      for (let n = 1 + g.int(4); n > 0; n--) {
        const targets = Array.from({ length: g.int(5) }, () => ({ connectionId: g.id(), sid: g.int(5) ? String(g.int(1000)) : g.text(6) }));
        ops.push({ deliver: { account: g.text(6, true), message: g.message(), targets } });
      }
      const reference = routerFrames.encode(withoutDefaults({ ops }));
      expect(frameOf((w) => { for (const op of ops) writeRouterOp(w, op); }).equals(reference), `seed ${seed}`).toBe(true);

      const cur = new RouterFrameCursor();
      cur.reset(Buffer.from(reference));
      for (const { deliver: d } of ops) {
        expect(cur.next()).toBe(Next.Hot);
        expect({ account: cur.account, subject: cur.subject, reply: cur.reply, ...viewed(cur.msg) }, `seed ${seed}`)
          .toEqual(hex({ account: d!.account, ...d!.message }));
        const got: { connectionId: number; sid: string }[] = [];
        while (cur.nextTarget()) got.push({ connectionId: cur.refConnection, sid: cur.refSid });
        expect(got, `seed ${seed}`).toEqual(d!.targets);
      }
      expect(cur.next()).toBe(Next.End);
    }
  });

  it("InterestChange (edge → router): same bytes as protobufjs, which decodes them the same, and so does the router's cursor", () => {
    for (let seed = 0; seed < 200; seed++) {
      const g = gen(5_000 + seed);
      const ops: Draft<EdgeOp>[] = [];
      for (let n = 1 + g.int(6); n > 0; n--) {
        const weightDelta = [1, -1, 0, 7, -300, 2 ** 31 - 1, -(2 ** 31)][g.int(7)];
        const sub = g.int(4) === 0 ? undefined : { connectionId: g.id(), sid: g.int(5) ? String(g.int(1000)) : g.text(6) };
        ops.push({ op: "interest", interest: { account: g.int(3) ? "$G" : g.text(8), subject: g.subject(), queue: g.int(2) ? "" : g.text(6),
          weightDelta, sub, noEcho: g.int(2) === 0 } });
      }
      // Other ops between them still go through protobufjs.
      if (g.int(2)) ops.splice(g.int(ops.length), 0, { op: "ping", ping: { seq: 1 + g.int(100) } });
      const reference = edgeFrames.encode(withoutDefaults({ ops }));
      const hand = frameOf((w) => { for (const op of ops) writeEdgeOp(w, op); });
      expect(hand.toString("hex"), `seed ${seed}`).toBe(reference.toString("hex"));
      const decoded = edgeFrames.decode(hand);
      if (decoded instanceof WireError) throw decoded;
      expect(decoded.ops.map((op) => withoutDefaults(op.interest ?? op.ping)), `seed ${seed}`)
        .toEqual(ops.map((op) => withoutDefaults(op.interest ?? op.ping)));
      const cur = new EdgeFrameCursor();
      cur.reset(hand);
      for (const op of ops) {
        const i = op.interest;
        if (!i) {
          expect(cur.next()).toBe(Next.Cold);
          continue;
        }
        expect(cur.next(), `seed ${seed}`).toBe(Next.Hot2);
        expect([cur.account, cur.subject, cur.queue, cur.weightDelta, cur.hasSub, cur.refConnection, cur.refSid, cur.noEcho], `seed ${seed}`)
          .toEqual([i.account, i.subject, i.queue, i.weightDelta, i.sub !== undefined, i.sub?.connectionId ?? 0, i.sub?.sid ?? "", i.noEcho]);
      }
      expect(cur.next()).toBe(Next.End);
    }
  });

  it("InterestUpdate (router → router): same bytes as protobufjs, and the peer's cursor reads what was written", () => {
    for (let seed = 0; seed < 200; seed++) {
      const g = gen(7_000 + seed);
      const ops: Draft<MeshOp>[] = [];
      for (let n = 1 + g.int(3); n > 0; n--) {
        const entries = Array.from({ length: g.int(20) }, () => ({
          account: g.int(3) ? "$G" : g.text(8), subject: g.subject(), queue: g.int(2) ? "" : g.text(6), weight: [0, 1, 2, 300, 2 ** 32 - 1][g.int(5)],
        }));
        ops.push({ interest: { seq: g.id(), entries } });
        // Other ops between them still go through protobufjs.
        if (g.int(2)) ops.push({ ping: { seq: 1 + g.int(100) } });
      }
      const reference = meshFrames.encode(withoutDefaults({ ops }));
      const hand = frameOf((w) => { for (const op of ops) writeMeshOp(w, op); });
      expect(hand.toString("hex"), `seed ${seed}`).toBe(reference.toString("hex"));
      const cur = new MeshFrameCursor();
      cur.reset(hand);
      for (const op of ops) {
        if (!op.interest) {
          expect(cur.next()).toBe(Next.Cold);
          continue;
        }
        expect(cur.next(), `seed ${seed}`).toBe(Next.Hot2);
        expect(cur.interest, `seed ${seed}`).toEqual(op.interest);
      }
      expect(cur.next()).toBe(Next.End);
    }
  });

  it("varints of every length up to 2^53 - 1 (msg_id): same bytes and sizes", () => {
    const values: number[] = [];
    for (let bits = 1; bits <= 53; bits++) values.push(2 ** (bits - 1), 2 ** bits - 1, 2 ** (bits - 1) + 0x5a5a5 % 2 ** (bits - 1));
    for (const msgId of values) {
      const ops: Draft<MeshOp>[] = [{ forward: { account: "a", message: { subject: "s" }, originEdge: "e", originConnection: msgId, msgId } }];
      const reference = meshFrames.encode(withoutDefaults({ ops }));
      expect(frameOf((w) => writeMeshOp(w, ops[0])).toString("hex"), `msg_id ${msgId}`).toBe(reference.toString("hex"));
    }
  });

  it("Forward (router → router): same bytes, queues (empty names too), retain (field 80) and msg_id (field 70) decoded the same", () => {
    for (let seed = 0; seed < 200; seed++) {
      const g = gen(2_000 + seed);
      const ops: Draft<MeshOp>[] = [];
      for (let n = 1 + g.int(4); n > 0; n--) {
        ops.push({ forward: {
          account: g.text(6), message: g.message(), queues: Array.from({ length: g.int(4) }, () => g.text(5)),
          originEdge: g.int(3) ? `e${g.int(9)}-${g.text(4, true)}` : "", originConnection: g.id(), qos: g.int(3),
          retain: g.int(2) === 1, msgId: g.id(),
        } });
      }
      const reference = meshFrames.encode(withoutDefaults({ ops }));
      expect(frameOf((w) => { for (const op of ops) writeMeshOp(w, op); }).equals(reference), `seed ${seed}`).toBe(true);
      // protobufjs reads the hand-written bytes back to the drafts.
      const decoded = meshFrames.decode(frameOf((w) => { for (const op of ops) writeMeshOp(w, op); }));
      if (decoded instanceof WireError) throw decoded;
      expect(hex(withoutDefaults(decoded.ops.map((op) => ({ ...op.forward, message: { ...op.forward!.message } })))), `seed ${seed}`)
        .toEqual(hex(withoutDefaults(ops.map((op) => op.forward))));

      const cur = new MeshFrameCursor();
      cur.reset(Buffer.from(reference));
      for (const { forward: f } of ops) {
        expect(cur.next()).toBe(Next.Hot);
        expect({
          account: cur.account, queues: [...cur.queues], originEdge: cur.originEdge, originConnection: cur.originConnection, qos: cur.qos,
          retain: cur.retain, msgId: cur.msgId, subject: cur.subject, reply: cur.reply, ...viewed(cur.msg),
        }, `seed ${seed}`).toEqual(hex({ ...f, message: undefined, ...f!.message }));
      }
      expect(cur.next()).toBe(Next.End);
    }
  });

  it("MQTT Publish (edge → router): same bytes as protobufjs (QoS 0-2, retain, MQTT 5 properties, empty payloads), decoded the same", () => {
    for (let seed = 0; seed < 300; seed++) {
      const g = gen(3_000 + seed);
      const ops: Draft<EdgeOp>[] = [];
      for (let n = 1 + g.int(4); n > 0; n--) {
        ops.push({ publish: {
          message: { subject: g.text(10) || "s", payload: g.bytes([0, 16, 200, 70_000][g.int(4)]) }, originConnection: g.id(),
          correlationId: g.int(2) ? 0 : g.id(), qos: g.int(3), retain: g.int(2) === 1, topic: g.topic(), properties: g.properties(),
        } });
      }
      const reference = edgeFrames.encode(withoutDefaults({ ops }));
      // The edge's way (a QoS 0 publish written at once), and the draft way (kept for a replay).
      const hand = frameOf((w) => {
        for (const { publish: p } of ops) {
          writeMqttPublish(w, p!.message!.subject!, p!.message!.payload!, p!.originConnection!, p!.correlationId!, p!.qos!, p!.retain!, p!.topic!,
            encodeProperties(p!.properties));
        }
      });
      expect(hand.equals(reference), `seed ${seed}`).toBe(true);
      expect(frameOf((w) => { for (const op of ops) writeEdgeOp(w, op); }).equals(reference), `seed ${seed}`).toBe(true);

      const cur = new EdgeFrameCursor();
      cur.reset(Buffer.from(reference));
      for (const { publish: p } of ops) {
        expect(cur.next()).toBe(Next.Hot);
        const props = cur.properties();
        expect({
          subject: cur.subject, payload: hex(cur.msg.buf.subarray(cur.msg.start, cur.msg.end)), hdrLen: cur.msg.hdrLen,
          originConnection: cur.originConnection, correlationId: cur.correlationId, qos: cur.qos, retain: cur.retain, topic: cur.topic,
          properties: props === undefined ? undefined : hex(withoutDefaults(props)),
        }, `seed ${seed}`).toEqual({
          subject: p!.message!.subject, payload: hex(p!.message!.payload), hdrLen: 0, originConnection: p!.originConnection,
          correlationId: p!.correlationId, qos: p!.qos, retain: p!.retain, topic: p!.topic, properties: decodedProps(p!.properties),
        });
      }
      expect(cur.next()).toBe(Next.End);
    }
  });

  it("SessionEvent (router → edge): a publish written by hand is protobufjs's bytes; the cursor reads publish, pubrel and takeover as protobufjs does", () => {
    for (let seed = 0; seed < 300; seed++) {
      const g = gen(4_000 + seed);
      const ops: Draft<RouterOp>[] = [];
      for (let n = 1 + g.int(5); n > 0; n--) {
        const connectionId = g.id();
        const kind = g.int(6);
        if (kind === 0) ops.push({ sessionEvent: { connectionId, pubrel: 1 + g.int(65_535) } });
        else if (kind === 1) ops.push({ sessionEvent: { connectionId, takeover: true } });
        else if (kind === 2) ops.push({ deliver: { account: "A", message: g.message(), targets: [{ connectionId, sid: "1" }] } });
        else {
          const qos = g.int(3);
          ops.push({ sessionEvent: { connectionId, publish: {
            message: { topic: g.topic(), payload: g.bytes([0, 16, 200, 70_000][g.int(4)]), qos, retain: g.int(2) === 1, properties: g.properties() },
            packetId: qos === 0 ? 0 : 1 + g.int(65_535), dup: qos > 0 && g.int(2) === 1,
          } } });
        }
      }
      const reference = routerFrames.encode(withoutDefaults({ ops }));
      const hand = frameOf((w) => {
        for (const op of ops) {
          const p = op.sessionEvent?.publish;
          if (!p) { writeRouterOp(w, withoutDefaults(op)); continue; }
          const m = p.message!;
          writeSessionPublish(w, op.sessionEvent!.connectionId!, m.topic!, m.payload!, m.qos!, m.retain!, encodeProperties(m.properties), p.packetId!,
            p.dup!);
        }
      });
      expect(hand.equals(reference), `seed ${seed}`).toBe(true);

      const cur = new RouterFrameCursor();
      cur.reset(Buffer.from(reference));
      for (const op of ops) {
        if (op.deliver) {
          expect(cur.next()).toBe(Next.Hot);
          continue;
        }
        expect(cur.next()).toBe(Next.Hot2);
        const e = op.sessionEvent!;
        expect(cur.eventConnection).toBe(e.connectionId);
        if (e.pubrel !== undefined) expect([cur.event, cur.pubrel]).toEqual([EVENT_PUBREL, e.pubrel]);
        else if (e.takeover) expect(cur.event).toBe(EVENT_TAKEOVER);
        else {
          const m = e.publish!.message!;
          const props = cur.properties();
          expect({
            event: cur.event, topic: cur.topic, payload: hex(cur.msg.buf.subarray(cur.msg.start, cur.msg.end)), qos: cur.qos, retain: cur.retain,
            packetId: cur.packetId, dup: cur.dup, properties: props === undefined ? undefined : hex(withoutDefaults(props)),
          }, `seed ${seed}`).toEqual({
            event: EVENT_PUBLISH, topic: m.topic, payload: hex(m.payload), qos: m.qos, retain: m.retain, packetId: e.publish!.packetId,
            dup: e.publish!.dup, properties: decodedProps(m.properties),
          });
        }
      }
      expect(cur.next()).toBe(Next.End);
    }
  });

  it("a Deliver grown target by target, a Forward queue by queue, are the op written whole (lengths of every size)", () => {
    // Payload sizes put the op's two lengths just below 128 and 16,384 bytes, so that growing
    // makes them a byte longer; an op before it in the frame moves with nothing of its own.
    for (const size of [0, 90, 118, 16_300, 16_360, 2_100_000]) {
      for (const extra of [1, 2, 5, 40]) {
        const g = gen(size + extra);
        const m = { ...g.message(), payload: Buffer.alloc(size, 7) };
        const buf = Buffer.concat([m.headers, m.payload]);
        const data = { buf, start: 0, end: buf.length, hdrLen: m.headers.length };
        const before: Draft<RouterOp> = { ping: { seq: 9 } };
        const targets = Array.from({ length: extra }, (_, i) => ({ connectionId: g.id(), sid: i % 3 ? String(i) : g.text(4) }));
        const grown = frameOf((w) => {
          writeRouterOp(w, before);
          writeDeliverOf(w, "acc", m.subject, m.reply, data, targets[0].connectionId, targets[0].sid);
          for (const t of targets.slice(1)) addDeliverTarget(w, t.connectionId, t.sid);
        });
        const deliver = { account: "acc", message: m, targets };
        expect(grown.equals(routerFrames.encode(withoutDefaults({ ops: [before, { deliver }] }))), `deliver ${size}+${extra}`).toBe(true);

        const queues = Array.from({ length: extra }, (_, i) => (i === 1 ? "" : g.text(5)));
        const forwarded = frameOf((w) => {
          let at = writeForwardOf(w, "acc", m.subject, m.reply, data, queues[0], "edge-1", 42, true, 123_456_789_012);
          for (const q of queues.slice(1)) at = addForwardQueue(w, at, q);
        });
        const forward = { account: "acc", message: m, queues, originEdge: "edge-1", originConnection: 42, retain: true, msgId: 123_456_789_012 };
        expect(forwarded.equals(meshFrames.encode(withoutDefaults({ ops: [{ forward }] }))), `forward ${size}+${extra}`).toBe(true);
      }
    }
  });

  it("a message sent on as read (Publish → Forward → Deliver, the routers' way) is protobufjs's bytes at every hop", () => {
    for (let seed = 0; seed < 200; seed++) {
      const g = gen(3_000 + seed);
      const publishes = Array.from({ length: 1 + g.int(4) }, () => ({ account: g.text(6), message: g.message(), originConnection: 1 + g.int(50) }));
      const cur = new EdgeFrameCursor();
      cur.reset(Buffer.from(edgeFrames.encode(withoutDefaults({ ops: publishes.map((publish) => ({ publish })) }))));
      const forwarded = frameOf((w) => {
        while (cur.next() === Next.Hot) writeForwardOf(w, cur.account, cur.subject, cur.reply, cur.msg, undefined, "edge-1", cur.originConnection, false, 0);
      });
      const forwards = publishes.map((p) => ({ account: p.account, message: p.message, originEdge: "edge-1", originConnection: p.originConnection }));
      expect(forwarded.equals(meshFrames.encode(withoutDefaults({ ops: forwards.map((forward) => ({ forward })) }))), `seed ${seed}`).toBe(true);

      const mesh = new MeshFrameCursor();
      mesh.reset(forwarded);
      const delivered = frameOf((w) => {
        while (mesh.next() === Next.Hot) writeDeliverOf(w, mesh.account, mesh.subject, mesh.reply, mesh.msg, 7, "1");
      });
      const delivers = publishes.map((p) => ({ account: p.account, message: p.message, targets: [{ connectionId: 7, sid: "1" }] }));
      expect(delivered.equals(routerFrames.encode(withoutDefaults({ ops: delivers.map((deliver) => ({ deliver })) }))), `seed ${seed}`).toBe(true);
    }
  });

  it("copies the Message field as read only while it is the message written: same subject and reply, the cursor's own view", () => {
    // A Message with a field this version does not know (9): copied as read, it stays; written
    // field by field, it is gone. So its presence shows which way the Deliver was written.
    const message = Buffer.concat([
      protoTypes().lookupType(`${PROTO_PACKAGE}.Message`).encode({ subject: "a.b", reply: "_INBOX.1", payload: Buffer.alloc(60, 5) }).finish(),
      Buffer.from([9 << 3, 1]),
    ]);
    const field = (tag: number, bytes: Buffer) => Buffer.concat([Buffer.from([(tag << 3) | 2]), varintBytes(bytes.length), bytes]);
    const forward = Buffer.concat([field(1, Buffer.from("acc")), field(2, message)]);
    const frame = field(1, field(5, forward));
    const deliverFrom = (subject: string, view: (m: MeshFrameCursor["msg"]) => MeshFrameCursor["msg"]) => {
      const cur = new MeshFrameCursor();
      cur.reset(Buffer.from(frame));
      expect(cur.next()).toBe(Next.Hot);
      return frameOf((w) => writeDeliverOf(w, cur.account, subject, cur.reply, view(cur.msg), 7, "1"));
    };
    expect(deliverFrom("a.b", (m) => m).includes(message)).toBe(true);
    for (const d of [deliverFrom("c.d", (m) => m), deliverFrom("a.b", (m) => ({ ...m }))]) {
      expect(d.includes(message)).toBe(false);
      const decoded = routerFrames.decode(d);
      if (decoded instanceof WireError) throw decoded;
      expect(decoded.ops[0].deliver?.message?.payload).toEqual(Buffer.alloc(60, 5));
    }
  });

  it("a repeated string is read again only when its bytes are the same: same length, one byte different anywhere", () => {
    const base = "NCXOBHU2ULHTRZIQ3E5NAOQN6SYH7YNS6SFWJFZUBNT4MYDRCX7P6ULP";
    const edges: string[] = [];
    for (let i = 0; i < base.length; i++) edges.push(base, `${base.slice(0, i)}x${base.slice(i + 1)}`, base.slice(0, i + 1));
    const message = { subject: "s", payload: Buffer.from("p") };
    const cur = new MeshFrameCursor();
    cur.reset(Buffer.from(meshFrames.encode({ ops: edges.map((originEdge) => ({ forward: { account: "a", message, originEdge } })) })));
    for (const edge of edges) {
      expect(cur.next()).toBe(Next.Hot);
      expect(cur.originEdge).toBe(edge);
    }
    expect(cur.next()).toBe(Next.End);
  });

  it("decodes protobufjs frames that set defaults explicitly, mix in other ops and unknown fields", () => {
    const message = { subject: "a.b", reply: "", headers: Buffer.alloc(0), payload: Buffer.from("x") };
    const ops: Draft<EdgeOp>[] = [
      { ping: { seq: 3 } },
      { publish: { account: "", message, originConnection: 0, noResponders: false, correlationId: 0, qos: 0, retain: false, topic: "" } },
      { interest: { account: "A", subject: "a.*", weightDelta: 1, sub: { connectionId: 5, sid: "1" } } },
      // MQTT publish: hot too, with its own fields.
      { publish: { account: "A", message: { subject: "t.x", payload: Buffer.from("m") }, originConnection: 9, correlationId: 44, qos: 1, retain: true, topic: "t/x" } },
      { publish: { account: "A" } }, // no message at all
    ];
    const bytes = edgeFrames.encode({ ops });
    // An unknown frame field (a newer peer) between the ops: skipped.
    const framed = Buffer.concat([Buffer.from([0x12, 0x02, 0x08, 0x01]), bytes]);
    const cur = new EdgeFrameCursor();
    cur.reset(framed);
    expect(cur.next()).toBe(Next.Cold);
    expect(cur.cold!.ping!.seq).toBe(3);
    expect(cur.next()).toBe(Next.Hot);
    expect([cur.account, cur.subject, cur.reply, cur.msg.buf.toString("latin1", cur.msg.start, cur.msg.end)]).toEqual(["", "a.b", "", "x"]);
    expect(cur.next()).toBe(Next.Hot2);
    expect([cur.account, cur.subject, cur.queue, cur.weightDelta, cur.hasSub, cur.refConnection, cur.refSid, cur.noEcho]).toEqual(["A", "a.*", "", 1, true, 5, "1", false]);
    expect(cur.next()).toBe(Next.Hot);
    expect([cur.topic, cur.qos, cur.retain, cur.correlationId, cur.originConnection]).toEqual(["t/x", 1, true, 44, 9]);
    expect(cur.next()).toBe(Next.Hot);
    expect([cur.account, cur.subject, cur.msg.end - cur.msg.start]).toEqual(["A", "", 0]);
    expect(cur.next()).toBe(Next.End);
  });

  it("gives a WireError for malformed bytes, never a throw", () => {
    const g = gen(99);
    const valid = [
      edgeFrames.encode({ ops: [{ publish: { account: "A", message: g.message(), originConnection: 7 } }, { ping: { seq: 1 } }] }),
      routerFrames.encode({ ops: [{ deliver: { account: "A", message: g.message(), targets: [{ connectionId: 1, sid: "s" }] } }, { sessionEvent: {
        connectionId: 3, publish: { message: { topic: "t/ü", payload: Buffer.from("p"), qos: 1, properties: { contentType: "c" } }, packetId: 2 },
      } }] }),
      meshFrames.encode({ ops: [{ forward: { account: "A", message: g.message(), queues: ["q"], originEdge: "e" } }] }),
    ];
    const cursors = [new EdgeFrameCursor(), new RouterFrameCursor(), new MeshFrameCursor()];
    const walk = (i: number, bytes: Buffer): WireError | undefined => {
      const cur = cursors[i];
      cur.reset(bytes);
      for (let guard = 0; guard < 10_000; guard++) {
        const next = cur.next();
        if (next instanceof WireError) return next;
        if (next === Next.End) return undefined;
        if (next === Next.Hot && cur instanceof RouterFrameCursor) while (cur.nextTarget());
      }
      throw new Error("the cursor did not end");
    };
    // Hand-made: a truncated varint, a length past the end, wire types 3, 4, 7, a hot op cut short.
    for (const [i, hex] of [[0, "0aff"], [0, "0a05"], [1, "0b"], [2, "0c"], [0, "0f"], [0, "0a041a02"], [0, "0a031a010a"], [2, "0a042a020a05"]] as const) {
      expect(walk(i, Buffer.from(hex, "hex")), hex).toBeInstanceOf(WireError);
    }
    // Random damage: truncation and flipped bytes.
    let errors = 0;
    for (let k = 0; k < 3_000; k++) {
      const i = k % 3;
      const b = Buffer.from(valid[i]);
      const damaged = g.int(2) === 0 ? b.subarray(0, g.int(b.length)) : b;
      for (let f = 1 + g.int(3); f > 0 && damaged.length > 0; f--) damaged[g.int(damaged.length)] = g.int(256);
      if (walk(i, Buffer.from(damaged)) !== undefined) errors++;
    }
    expect(errors).toBeGreaterThan(100);
  });
});

describe("FrameBuilder slabs", () => {
  /** A frame of about `n` bytes: a field of `fill` bytes. */
  const frame = (w: FrameBuilder, n: number, fill: number): Buffer => {
    w.raw(9 << 3 | 2, Buffer.alloc(n, fill));
    return w.finish();
  };
  /** The frame still holds its `fill` bytes (past the field's tag and length). */
  const intact = (f: Buffer, fill: number) => f.subarray(8).every((b) => b === fill);

  it("never writes over a frame not given back, across several slabs", () => {
    const w = new FrameBuilder(true);
    const held: { f: Buffer; fill: number }[] = [];
    // 60 frames of 100 KB: three 2 MB slabs' worth, every other one given back.
    for (let i = 0; i < 60; i++) {
      const f = frame(w, 100_000, i);
      if (i % 2 === 0) w.done(f);
      else held.push({ f, fill: i });
    }
    for (const { f, fill } of held) expect(intact(f, fill), `frame ${fill}`).toBe(true);
  });

  it("starts the next frame at the slab's start once every frame was given back, and reuses a slab given back", () => {
    const w = new FrameBuilder(true);
    const a = frame(w, 1000, 1);
    const b = frame(w, 1000, 2);
    expect(b.byteOffset).toBe(a.byteOffset + a.length); // a is held
    w.done(a);
    w.done(b);
    const c = frame(w, 1000, 3);
    expect(c.buffer).toBe(a.buffer);
    expect(c.byteOffset).toBe(0);
    // A slab that filled while a frame of it was held is written again once that one is back.
    const h = frame(w, 1000, 6);
    for (let i = 0; i < 30; i++) w.done(frame(w, 100_000, 7)); // fills a's slab: on to a second
    const h2 = frame(w, 1000, 8);
    expect(h2.buffer).not.toBe(a.buffer);
    w.done(c);
    w.done(h);
    for (let i = 0; i < 30; i++) w.done(frame(w, 100_000, 9)); // fills the second: back to the first
    expect(frame(w, 1000, 10).buffer).toBe(a.buffer);
    expect(intact(h2, 8)).toBe(true);
  });

  it("without givesBack, never writes a slab again once a frame left it", () => {
    const w = new FrameBuilder();
    const frames = Array.from({ length: 60 }, (_, i) => frame(w, 100_000, i));
    frames.forEach((f, i) => expect(intact(f, i), `frame ${i}`).toBe(true));
    expect(new Set(frames.map((f) => f.buffer)).size).toBeGreaterThanOrEqual(3);
    for (let i = 1; i < frames.length; i++) {
      // Within a slab, each frame starts after the one before: none starts over at the slab's start.
      if (frames[i].buffer === frames[i - 1].buffer) expect(frames[i].byteOffset).toBe(frames[i - 1].byteOffset + frames[i - 1].length);
    }
  });

  it("a frame larger than a slab gets its own buffer", () => {
    const w = new FrameBuilder(true);
    const small = frame(w, 1000, 1);
    const big = frame(w, 3_000_000, 2);
    expect(big.buffer).not.toBe(small.buffer);
    expect(big.length).toBeGreaterThan(3_000_000);
    expect(intact(small, 1)).toBe(true);
  });
});
