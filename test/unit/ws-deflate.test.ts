// permessage-deflate on the event loop (services/edge/websocket/deflate.ts): messages round-trip
// against node:zlib, each is a stream of its own (the shared contexts are reset), the sync
// flush trailer is dropped and appended, a zip bomb stops at its bound without allocating it,
// bad data is 1007; the choice between it and ws's own extension; and over real ws sockets:
// the takeover, the 64-byte threshold, the close codes, and the fallback still working.
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import zlib from "node:zlib";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket, { WebSocketServer, type PerMessageDeflateOptions } from "ws";
import {
  canTakeOver, deflateMessage, inflateParts, inflaterCapacity, INVALID_DATA, SYNC_TRAILER, takeOverDeflate, TOO_LARGE,
} from "../../services/edge/websocket/deflate.js";
import { clientFrame } from "../helpers/ws-raw.js";

const SYNC = { finishFlush: zlib.constants.Z_SYNC_FLUSH };

/** Compressible text with a counter, `n` bytes. */
function text(n: number, seed = 0): Buffer {
  let s = "";
  for (let i = seed; s.length < n; i++) s += `PUB subject.${i % 97} 12\r\nhello world!\r\n`;
  return Buffer.from(s.slice(0, n));
}

/** Bytes that do not compress. */
function noise(n: number): Buffer {
  const b = Buffer.alloc(n);
  let x = 0x2545f491;
  for (let i = 0; i < n; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; b[i] = x & 0xff; }
  return b;
}

describe("deflateMessage / inflateParts", () => {
  it.each([0, 1, 63, 64, 1_000, 65_536, 300_000])("%i bytes round-trip, against node:zlib both ways", (n) => {
    for (const data of [text(n), noise(n)]) {
      const out = deflateMessage(data);
      // The trailer is dropped: node's inflate needs it back.
      expect(zlib.inflateRawSync(Buffer.concat([out, SYNC_TRAILER]), SYNC).equals(data)).toBe(true);
      expect((inflateParts([out], n) as Buffer).equals(data)).toBe(true);
      // What a client's zlib sends (sync flush, trailer dropped) inflates the same.
      const theirs = zlib.deflateRawSync(data, SYNC);
      expect(theirs.subarray(-4).equals(SYNC_TRAILER)).toBe(true);
      expect((inflateParts([theirs.subarray(0, -4)], n) as Buffer).equals(data)).toBe(true);
    }
  });

  it("the empty message is the single byte 00 (RFC 7692 7.2.3.6)", () => {
    expect([...deflateMessage(Buffer.alloc(0))]).toEqual([0x00]);
  });

  it("each message is a stream of its own: the shared context does not carry the last one over", () => {
    const a = text(5_000);
    const first = deflateMessage(a);
    // With context takeover the second would refer back to the first and come out smaller.
    expect(deflateMessage(a).equals(first)).toBe(true);
    expect((inflateParts([first], 5_000) as Buffer).equals(a)).toBe(true);
    expect((inflateParts([first], 5_000) as Buffer).equals(a)).toBe(true);
  });

  it("a fragmented message: the frames before the last keep their trailer, and inflate as one", () => {
    const a = text(3_000, 1);
    const b = text(2_000, 7);
    const first = deflateMessage(a, false);
    expect(first.subarray(-4).equals(SYNC_TRAILER)).toBe(true);
    const last = deflateMessage(b, true);
    expect((inflateParts([first, last], 5_000) as Buffer).equals(Buffer.concat([a, b]))).toBe(true);
  });

  it("a message inflates to its bound exactly; one byte more is TOO_LARGE (1009)", () => {
    const data = text(10_000);
    const z = deflateMessage(data);
    expect((inflateParts([z], 10_000) as Buffer).length).toBe(10_000);
    expect(inflateParts([z], 9_999)).toBe(TOO_LARGE);
  });

  it("a zip bomb stops at the bound: 16 MB of zeros in 16 KB, bound 1 MB", () => {
    const bomb = zlib.deflateRawSync(Buffer.alloc(16 * 1024 * 1024), SYNC).subarray(0, -4);
    expect(bomb.length).toBeLessThan(20_000);
    const limit = 1024 * 1024;
    expect(inflateParts([bomb], limit)).toBe(TOO_LARGE);
    // The shared output grew to the bound at most (+1: how it knows the bound was passed).
    expect(inflaterCapacity()).toBeLessThanOrEqual(limit + 1);
    // And the context is ready for the next message.
    expect((inflateParts([deflateMessage(text(100))], 100) as Buffer).equals(text(100))).toBe(true);
  });

  it("data that is not deflate is INVALID_DATA (1007), and the next message inflates", () => {
    expect(inflateParts([Buffer.from([0xff, 0xff, 0xff, 0x01, 0x02, 0x03])], 1_000)).toBe(INVALID_DATA);
    expect((inflateParts([deflateMessage(text(500))], 500) as Buffer).equals(text(500))).toBe(true);
  });

  it("a stream that ends with a final block (the trailer is then left over) still inflates", () => {
    const data = text(2_000);
    expect((inflateParts([zlib.deflateRawSync(data)], 2_000) as Buffer).equals(data)).toBe(true);
  });
});

describe("canTakeOver: the shared contexts, or ws's own extension", () => {
  const both = { server_no_context_takeover: true, client_no_context_takeover: true };
  it.each([
    ["no context takeover either way", both, true],
    ["and the client's window limited (we inflate with 15, which reads any)", { ...both, client_max_window_bits: 10 }, true],
    ["the server's window at 15", { ...both, server_max_window_bits: 15 }, true],
    ["the server's window below 15 (our deflate uses 15)", { ...both, server_max_window_bits: 10 }, false],
    ["server context takeover", { client_no_context_takeover: true }, false],
    ["client context takeover", { server_no_context_takeover: true }, false],
    ["client context takeover with a small client window", { server_no_context_takeover: true, client_max_window_bits: 9 }, false],
    ["nothing agreed", null, false],
  ])("%s", (_what, params, expected) => {
    expect(canTakeOver(params)).toBe(expected);
  });
});

// ---- over real sockets: a ws server as the listener sets it up, a ws client ----

const SERVER_DEFLATE: PerMessageDeflateOptions = {
  serverNoContextTakeover: true, clientNoContextTakeover: true, threshold: 64,
  zlibDeflateOptions: { level: 1 },
};
const servers: WebSocketServer[] = [];
const clients: WebSocket[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.terminate();
  await Promise.all(servers.splice(0).map((s) => new Promise((res) => s.close(res))));
});

interface Pair {
  server: WebSocket;
  client: WebSocket;
  takenOver: boolean;
  /** Messages the server received. */
  got: Buffer[];
  /** Whether each frame the client received had RSV1 (compressed), in order. */
  rsv1: boolean[];
}

async function pair(clientDeflate: PerMessageDeflateOptions | boolean, maxPayload = 1024 * 1024): Promise<Pair> {
  const wss = new WebSocketServer({ port: 0, host: "127.0.0.1", perMessageDeflate: SERVER_DEFLATE, maxPayload });
  servers.push(wss);
  await once(wss, "listening");
  const accepted = new Promise<{ server: WebSocket; takenOver: boolean; got: Buffer[] }>((resolve) => {
    wss.once("connection", (ws) => {
      const takenOver = takeOverDeflate(ws);
      const got: Buffer[] = [];
      ws.on("message", (data: Buffer) => got.push(data));
      ws.on("error", () => {}); // reported by the close
      resolve({ server: ws, takenOver, got });
    });
  });
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, { perMessageDeflate: clientDeflate });
  clients.push(client);
  client.on("error", () => {});
  const rsv1: boolean[] = [];
  await once(client, "open");
  const socket = (client as unknown as { _socket: import("node:net").Socket })._socket;
  // Server frames here are small and arrive one per read: the first byte of a read is a header.
  socket.prependListener("data", (chunk: Buffer) => { rsv1.push((chunk[0] & 0x40) !== 0); });
  return { ...(await accepted), client, rsv1 };
}

function nextMessage(ws: WebSocket): Promise<Buffer> {
  return once(ws, "message").then(([data]) => data as Buffer);
}

/** Resolves once the server has received `n` messages (its collecting listener runs first). */
function serverGot(p: Pair, n: number, timeoutMs = 5_000): Promise<Buffer[]> {
  if (p.got.length >= n) return Promise.resolve(p.got);
  return new Promise((resolve, reject) => {
    const done = () => { clearTimeout(timer); p.server.off("message", onMessage); };
    const timer = setTimeout(() => { done(); reject(new Error(`${p.got.length} of ${n} messages at the server after ${timeoutMs} ms`)); }, timeoutMs);
    const onMessage = () => { if (p.got.length >= n) { done(); resolve(p.got); } };
    p.server.on("message", onMessage);
  });
}

describe("takeOverDeflate on a ws connection", () => {
  it("takes over what ws's client offers; a send is compressed and on the socket when send returns", async () => {
    const p = await pair({ threshold: 0 });
    expect(p.takenOver).toBe(true);
    const big = text(20_000);
    const arriving = nextMessage(p.client);
    p.server.send(big, { binary: true });
    // ws's own deflate would still hold the 20 KB for its zlib thread here.
    expect(p.server.bufferedAmount).toBeLessThan(1_000);
    expect((await arriving).equals(big)).toBe(true);
    expect(p.rsv1).toEqual([true]);
    // And the other way: the client compresses, the server inflates in place.
    p.client.send(big, { binary: true });
    p.client.send(text(10, 3), { binary: true });
    await serverGot(p, 2);
    expect(p.got[0].equals(big)).toBe(true);
    expect(p.got[1].equals(text(10, 3))).toBe(true);
  });

  it("the 64-byte threshold: 63 bytes go as they are (RSV1 clear), 64 compressed", async () => {
    const p = await pair(true);
    expect(p.takenOver).toBe(true);
    for (const n of [63, 64]) {
      const arriving = nextMessage(p.client);
      p.server.send(text(n), { binary: true });
      expect((await arriving).equals(text(n))).toBe(true);
    }
    expect(p.rsv1).toEqual([false, true]);
  });

  it("a fragmented compressed message from the client inflates as one", async () => {
    const p = await pair({ threshold: 0 });
    p.client.send(text(4_000), { binary: true, fin: false });
    p.client.send(text(4_000, 9), { binary: true, fin: true });
    await serverGot(p, 1);
    expect(p.got[0].equals(Buffer.concat([text(4_000), text(4_000, 9)]))).toBe(true);
  });

  it("a zip bomb closes with 1009, bad deflate data with 1007", async () => {
    const p = await pair(true, 64 * 1024);
    expect(p.takenOver).toBe(true);
    const bomb = zlib.deflateRawSync(Buffer.alloc(16 * 1024 * 1024), SYNC).subarray(0, -4);
    const closed = once(p.client, "close");
    (p.client as unknown as { _socket: import("node:net").Socket })._socket.write(clientFrame(bomb, { rsv: 4 }));
    expect((await closed)[0]).toBe(1009);
    expect(p.got).toEqual([]);
    expect(inflaterCapacity()).toBeLessThanOrEqual(1024 * 1024 + 1); // the largest bound used in this file

    const q = await pair(true);
    const closedQ = once(q.client, "close");
    (q.client as unknown as { _socket: import("node:net").Socket })._socket.write(clientFrame(Buffer.from([0xff, 0xfe, 0xfd, 0x01]), { rsv: 4 }));
    expect((await closedQ)[0]).toBe(1007);
  });

  it("falls back to ws's own extension for a client that limits the server's window, which still works", async () => {
    const p = await pair({ serverMaxWindowBits: 10, threshold: 0 });
    expect(p.takenOver).toBe(false);
    const big = text(20_000);
    const arriving = nextMessage(p.client);
    p.server.send(big, { binary: true });
    expect((await arriving).equals(big)).toBe(true);
    expect(p.rsv1).toEqual([true]);
    p.client.send(big, { binary: true });
    await serverGot(p, 1);
    expect(p.got[0].equals(big)).toBe(true);
  });

  it("leaves a connection alone without the extension, or without the ws internals it uses", async () => {
    const p = await pair(false);
    expect(p.takenOver).toBe(false);
    expect(takeOverDeflate({} as WebSocket)).toBe(false);
    const params = { server_no_context_takeover: true, client_no_context_takeover: true };
    const noReceiver = { _extensions: { "permessage-deflate": { params, _isServer: true, compress() {}, decompress() {} } } };
    expect(takeOverDeflate(noReceiver as unknown as WebSocket)).toBe(false);
    const receiverWithout = { ...noReceiver, _receiver: { decompress() {}, _fragments: [] } };
    expect(takeOverDeflate(receiverWithout as unknown as WebSocket)).toBe(false);
  });
});
