// The codec of the edge↔router and router↔router frames (services/router/wire): every operation
// of proto/meshbroker/v1 survives a round trip, batches stay whole, payloads arrive as views of
// the frame (no copy), unknown fields and operations are skipped, and malformed bytes give a
// WireError value instead of a throw.
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import protobuf from "protobufjs";
import {
  edgeFrames, meshFrames, PROTO_PACKAGE, protoRoot, protoTypes, routerFrames, WireError, type FrameCodec,
} from "../../services/router/wire/codec.js";
import {
  ErrorCode, ExportKind, ResponseType,
  type Draft, type EdgeFrame, type EdgeOp, type MeshFrame, type MeshOp, type RouterFrame, type RouterOp,
} from "../../services/router/wire/frames.js";

const bytes = (s: string) => Buffer.from(s, "latin1");
const stored = { topic: "a/b", payload: bytes("retained"), qos: 1, retain: true };
/** MQTT 5 properties, every field set. */
const mqttProperties = {
  userProperties: [{ name: "k", value: "v" }, { name: "k", value: "w" }], contentType: "text/plain", correlationData: bytes("c-1"),
  hasCorrelationData: true, responseTopic: "r/t", payloadUtf8: true, messageExpiry: { seconds: 60 }, subscriptionIdentifier: 3,
};
const message = { subject: "orders.new", reply: "_INBOX.1", headers: bytes("NATS/1.0\r\nK: v\r\n\r\n"), payload: bytes("hello") };
const accounts = {
  version: "3f2a", systemAccount: "SYS",
  accounts: [
    { name: "A", exports: [{ kind: ExportKind.Service, subject: "svc.>", accounts: ["B"], responseType: ResponseType.Stream, tokenRequired: true }] },
    { name: "B", imports: [{ kind: ExportKind.Service, account: "A", subject: "svc.q", to: "q", activation: { subject: "svc.*", expiresAtMs: 1_900_000_000_000 } },
      { kind: ExportKind.Stream, account: "A", subject: "feed.>", prefix: "a" }] },
  ],
};
const sub = { connectionId: 2 ** 40 + 7, sid: "3" };

/** One of every edge → router operation (and of every session operation). */
const EDGE_OPS: Draft<EdgeOp>[] = [
  { hello: {
    edgeId: "e1-x", credential: { token: "s3cret" }, configVersion: "c1", accounts, version: "0.1.0", sentAtUs: 1_700_000_000_000_000,
    urls: { nats: ["10.0.0.5:4222"], websocket: ["ws.example.com:443"] },
  } },
  { hello: { edgeId: "e2", credential: { nkey: { publicKey: "UABC", signature: bytes("sig"), signed: bytes("e2 1") } } } },
  { interest: { account: "A", subject: "orders.*", queue: "workers", weightDelta: -2 } },
  { interest: { account: "A", subject: "orders.>", weightDelta: 1, sub, noEcho: true } },
  { publish: { account: "A", message, originConnection: 12, noResponders: true, correlationId: 99, qos: 2, retain: true, topic: "a/b" } },
  { publish: { account: "A", message, qos: 1, topic: "a/b", properties: mqttProperties } },
  { unsubscribe: { account: "A", sub, max: 5 } },
  { connectionClosed: { connectionId: 12 } },
  { session: { correlationId: 1, clientId: "c", connectionId: 1_000_000_001, attach: {
    clean: true, account: "A", subscribe: { allow: ["a.>"], deny: ["a.secret"] }, will: { message: stored, subject: "a.b" }, ackWaitMs: 500, maxAckPending: 2,
  } } },
  { session: { correlationId: 5, clientId: "c5", connectionId: 9, attach: {
    clean: false, account: "A", will: { message: { ...stored, properties: mqttProperties }, subject: "a.b", delay: 30 },
    expiry: { seconds: 3600 }, receiveMaximum: 10,
  } } },
  { session: { connectionId: 1_000_000_001, detach: { publishWill: true } } },
  { session: { connectionId: 9, detach: { publishWill: false, expiry: { seconds: 0 } } } },
  { session: { connectionId: 8, subscribe: { subscriptions: [{ filter: "a/#", qos: 1 }, { filter: "b/+", qos: 2 }] } } },
  { session: { connectionId: 9, subscribe: { subscriptions: [
    { filter: "c/+", qos: 1, noLocal: true, retainAsPublished: true, retainHandling: 2, identifier: 7 },
  ] } } },
  { session: { connectionId: 8, unsubscribe: { filters: ["a/#"] } } },
  { session: { connectionId: 8, resume: {} } },
  { session: { connectionId: 8, puback: { packetId: 1 } } },
  { session: { connectionId: 8, pubrec: { packetId: 2 } } },
  { session: { correlationId: 2, connectionId: 8, incoming: { packetId: 3, message: stored, subject: "a.b" } } },
  { session: { correlationId: 3, connectionId: 8, pubrel: { packetId: 3 } } },
  { session: { connectionId: 8, pubcomp: { packetId: 2 } } },
  { session: { correlationId: 4, connectionId: 8, permissions: { subscribe: { allow: [], deny: ["b.>"] }, will: { message: stored, subject: "a.b" } } } },
  { statsQuery: { correlationId: 6, account: "A" } },
  { ping: { sentAtUs: 1_700_000_000_000_123, seq: 9 } },
  { pong: { sentAtUs: 1_700_000_000_000_123, seq: 9, receivedAtUs: 1_700_000_000_000_456 } },
  { accounts: { accounts } },
  { urls: { nats: [], websocket: [] } },
  { clients: { count: 201 } },
];

const ROUTER_OPS: Draft<RouterOp>[] = [
  { helloReply: { routerId: "r1", accountsVersion: "3f2a", version: "0.1.0" } },
  { clusterUrls: { edges: [{ edgeId: "e1-x", urls: { nats: ["10.0.0.5:4222"], websocket: [] } }] } },
  { deliver: { account: "A", message, targets: [sub, { connectionId: 13, sid: "inbox.1" }] } },
  { deliver: { account: "A", message: { subject: "x", payload: bytes("p") } } },
  { completion: { correlationId: 99, result: "delivered", delivered: 0 } },
  { completion: { correlationId: 1, attached: { sessionPresent: true, subscriptions: [{ filter: "a/#", qos: 1 }] } } },
  { completion: { correlationId: 2 } },
  { completion: { correlationId: 4, error: { code: ErrorCode.StoreUnavailable, text: "redis: connection refused" } } },
  { sessionEvent: { connectionId: 1_000_000_001, takeover: true } },
  { sessionEvent: { connectionId: 8, publish: { message: stored, packetId: 17, dup: true } } },
  { sessionEvent: { connectionId: 8, pubrel: 2 } },
  { statsReply: { correlationId: 6, stats: {
    subscriptions: 10, cacheEntries: 2, matches: 100, cacheHits: 90, inserts: 10, removes: 0, maxFanout: 4, avgFanout: 1.5,
  } } },
  { ping: { sentAtUs: 1, seq: 1 } },
  { pong: { sentAtUs: 1, seq: 1, receivedAtUs: 2 } },
  { goAway: { reason: "router stopping", router: "10.0.0.2:7100" } },
  { load: { edges: [{ edgeId: "e1-x", clients: 201 }, { edgeId: "e2-y", clients: 0 }] } },
];

const entries = [{ account: "A", subject: "orders.*", queue: "", weight: 3 }, { account: "A", subject: "q", queue: "w", weight: 0 }];
const MESH_OPS: Draft<MeshOp>[] = [
  { hello: { routerId: "r1", version: "0.1.0", credential: { token: "t" }, accountsVersion: "3f2a", interestSeq: 41, sentAtUs: 5, lastForwardId: 2 ** 40 + 7 } },
  { interest: { seq: 42, entries } },
  { resyncRequest: { haveSeq: 40 } },
  { snapshot: { seq: 42, entries, last: true } },
  { forward: { account: "A", message, queues: ["workers"], originEdge: "e1-x", originConnection: 12, qos: 1, retain: true, msgId: 2 ** 40 + 3 } },
  { ping: { sentAtUs: 1, seq: 2 } },
  { pong: { sentAtUs: 1, seq: 2, receivedAtUs: 3 } },
];

/** The oneof member an op sets (the decoded op names it). */
const kindOf = (op: object) => Object.keys(op)[0];

function roundTrip<T>(codec: FrameCodec<T>, frame: Draft<T>): T {
  const decoded = codec.decode(codec.encode(frame));
  if (decoded instanceof WireError) throw decoded;
  return decoded;
}

describe.each([
  { name: "EdgeFrame", codec: edgeFrames as FrameCodec<EdgeFrame | RouterFrame | MeshFrame>, ops: EDGE_OPS },
  { name: "RouterFrame", codec: routerFrames as FrameCodec<EdgeFrame | RouterFrame | MeshFrame>, ops: ROUTER_OPS },
  { name: "MeshFrame", codec: meshFrames as FrameCodec<EdgeFrame | RouterFrame | MeshFrame>, ops: MESH_OPS },
])("$name", ({ codec, ops }) => {
  it.each(ops.map((op) => [kindOf(op), op] as const))("round trip of %s", (kind, op) => {
    const f = roundTrip(codec, { ops: [op] } as Draft<EdgeFrame>);
    expect(f.ops).toHaveLength(1);
    expect(f.ops[0]).toMatchObject(op);
    expect(f.ops[0].op).toBe(kind);
  });

  it("keeps a batch of 1,000 operations whole and in order", () => {
    const batch = Array.from({ length: 1000 }, (_, i) => ops[i % ops.length]);
    const f = roundTrip(codec, { ops: batch } as Draft<EdgeFrame>);
    expect(f.ops).toHaveLength(1000);
    expect(f.ops.map((o) => o.op)).toEqual(batch.map(kindOf));
    expect(f.ops[999]).toMatchObject(batch[999]);
  });

  it("gives absent fields their proto3 defaults, and bytes as Buffers", () => {
    const f = roundTrip(codec, { ops: [{ ping: {} }] } as Draft<EdgeFrame>);
    expect(f.ops[0].ping).toMatchObject({ sentAtUs: 0, seq: 0 });
  });
});

// The samples are typed with frames.ts, so tsc holds their field names to the TypeScript side;
// the round trips hold them to the .proto side. Using every .proto field makes the two sides
// one contract: a field added to a .proto file and not to frames.ts fails here.
it("the samples use every field of every message the frames reach", () => {
  const used = new Set<string>();
  const mark = (type: protobuf.Type, value: Record<string, unknown>) => {
    for (const [name, v] of Object.entries(value)) {
      if (type.oneofs?.[name]) continue; // the oneof's name, a virtual field
      const field = type.fields[name];
      expect(field, `${type.fullName} has no field ${name}`).toBeDefined();
      used.add(`${type.name}.${name}`);
      const nested = field.resolve().resolvedType;
      if (!(nested instanceof protobuf.Type)) continue;
      for (const item of (field.repeated ? v : [v]) as Record<string, unknown>[]) mark(nested, item);
    }
  };
  const all = new Set<string>();
  const reach = (type: protobuf.Type) => {
    for (const f of type.fieldsArray) {
      const key = `${type.name}.${f.name}`;
      if (all.has(key)) continue;
      all.add(key);
      const nested = f.resolve().resolvedType;
      if (nested instanceof protobuf.Type) reach(nested);
    }
  };
  const type = (name: string) => protoTypes().lookupType(`${PROTO_PACKAGE}.${name}`);
  for (const [frame, ops] of [["EdgeFrame", EDGE_OPS], ["RouterFrame", ROUTER_OPS], ["MeshFrame", MESH_OPS]] as const) {
    mark(type(frame), { ops });
    reach(type(frame));
  }
  expect([...all].filter((f) => !used.has(f))).toEqual([]);
});

describe("payloads", () => {
  it("arrive as views of the frame's buffer, not copies", () => {
    const payload = Buffer.alloc(64 * 1024, 7);
    const frame = edgeFrames.encode({ ops: [{ publish: { account: "A", message: { subject: "s", payload } } }] });
    const f = edgeFrames.decode(frame) as EdgeFrame;
    const got = f.ops[0].publish!.message!.payload;
    expect(Buffer.isBuffer(got)).toBe(true);
    expect(got.equals(payload)).toBe(true);
    expect(got.buffer).toBe(frame.buffer); // same memory: a view
    expect(got.byteOffset).toBeGreaterThanOrEqual(frame.byteOffset);
    expect(got.byteOffset + got.length).toBeLessThanOrEqual(frame.byteOffset + frame.length);
  });

  it("absent bytes are an empty Buffer", () => {
    const f = routerFrames.decode(routerFrames.encode({ ops: [{ deliver: { message: { subject: "s" } } }] })) as RouterFrame;
    const m = f.ops[0].deliver!.message!;
    expect(Buffer.isBuffer(m.payload) && m.payload.length === 0).toBe(true);
    expect(Buffer.isBuffer(m.headers) && m.headers.length === 0).toBe(true);
  });

  it("ids up to 2^53 stay exact numbers", () => {
    const f = roundTrip(edgeFrames, { ops: [{ connectionClosed: { connectionId: Number.MAX_SAFE_INTEGER } }] });
    expect(f.ops[0].connectionClosed!.connectionId).toBe(Number.MAX_SAFE_INTEGER);
  });
});

describe("compatibility", () => {
  it("skips unknown fields", () => {
    const frame = edgeFrames.encode({ ops: [{ ping: { seq: 3 } }] });
    // Field 15 (varint 1) and field 16 (length-delimited "zz") appended: a newer peer's additions.
    const f = edgeFrames.decode(Buffer.concat([frame, Buffer.from([15 << 3, 1, 0x82, 0x01, 2, 0x7a, 0x7a])]));
    expect(f).not.toBeInstanceOf(WireError);
    expect((f as EdgeFrame).ops[0]).toMatchObject({ op: "ping", ping: { seq: 3 } });
  });

  it("decodes an operation of an unknown kind with no op, so the receiver skips it", () => {
    // EdgeFrame.ops (field 1) holding an EdgeOp with only field 99 (varint 1): tag 99<<3 = 0x318.
    const op = Buffer.from([0x98, 0x06, 1]);
    const f = edgeFrames.decode(Buffer.concat([Buffer.from([0x0a, op.length]), op]));
    expect((f as EdgeFrame).ops).toHaveLength(1);
    expect((f as EdgeFrame).ops[0].op).toBeUndefined();
  });

  it("the .proto files load with @grpc/proto-loader, as grpc-js will use them", () => {
    const script = `const pl=require("@grpc/proto-loader"),g=require("@grpc/grpc-js");` +
      `const p=g.loadPackageDefinition(pl.loadSync(["meshbroker/v1/edge.proto","meshbroker/v1/mesh.proto"],{includeDirs:[${JSON.stringify(protoRoot())}]}));` +
      `console.log(Object.keys(p.meshbroker.v1.EdgeLink.service).join(),Object.keys(p.meshbroker.v1.RouterMesh.service).join())`;
    expect(execFileSync(process.execPath, ["-e", script], { encoding: "utf8" }).trim()).toBe("Attach Link");
  });

  it("protoRoot is the package's proto/ directory", () => {
    expect(protoRoot()).toBe(join(process.cwd(), "proto"));
  });
});

describe("malformed frames", () => {
  const good = edgeFrames.encode({ ops: [{ publish: { account: "A", message } }] });
  it.each([
    ["truncated", good.subarray(0, good.length - 3)],
    ["a length past the end", Buffer.from([0x0a, 0x7f, 1, 2])],
    ["an unknown field of wire type 7", Buffer.from([0x7f, 0])],
    ["an unterminated varint", Buffer.from([0x08, 0xff, 0xff, 0xff])],
    ["an op that is not a message", Buffer.from([0x0a, 0x02, 0x0a, 0x05])],
  ])("%s gives a WireError, not a throw", (_, bad) => {
    for (const codec of [edgeFrames, routerFrames, meshFrames] as FrameCodec<unknown>[]) {
      const r = codec.decode(bad);
      expect(r).toBeInstanceOf(WireError);
      expect((r as WireError).code).toBe("MALFORMED");
      expect((r as WireError).message).toMatch(/^malformed \w+Frame: /);
    }
  });

  it("an encode that cannot proceed throws a WireError", () => {
    const bad = { ops: [null] } as unknown as Draft<EdgeFrame>;
    expect(() => edgeFrames.encode(bad)).toThrow(WireError);
  });
});
