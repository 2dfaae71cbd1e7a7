// NATS over WebSocket with real clients: nats.ws (in Node, on the `ws` library) against nats.js
// over TCP, both ways, with request/reply, headers and queue groups; permessage-deflate when
// `compression` is on (checked on the wire); framing (split, fragmented, text frames, pings);
// the close frames a WebSocket client gets when the server closes it (max_payload → 1009, parse
// error → 1002, auth timeout / control line / max connections → 1008, shutdown → 1001); and how
// /varz, /connz and /metrics show the listener and its connections. Each scenario runs against
// meshbroker and against nats-server 2.9.10 with the same config.
import zlib from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import {
  connect as connectTcp, headers as tcpHeaders, StringCodec,
  type NatsConnection as TcpConnection, type Subscription as TcpSubscription,
} from "nats";
import {
  headers as wsHeaders,
  type ConnectionOptions as WsOptions, type NatsConnection as WsConnection, type Subscription as WsSubscription,
} from "nats.ws";
import { clusterTopologies, topologies } from "../helpers/broker.js";
import {
  afterInfo, clientFrame, closeWithin, INFO_LINE, socketOf, watchFrames, wsFactory, wsOpen, wsTargets,
  type WsPeer, type WsServer,
} from "../helpers/ws-raw.js";
import { askUntil, cleanupAfterEach } from "../helpers/wait.js";
import { natsClient, wsClient } from "../helpers/clients.js";

// nats.ws opens `new WebSocket(url)`: in Node that is the `ws` library's.
Object.assign(globalThis, { WebSocket });

const sc = StringCodec();

const cleanups = cleanupAfterEach();

async function tcp(server: WsServer, opts: Parameters<typeof connectTcp>[0] = {}): Promise<TcpConnection> {
  return natsClient(cleanups, server.natsPort, opts);
}

async function ws(server: WsServer, opts: WsOptions & Partial<ReturnType<typeof wsFactory>> = {}): Promise<WsConnection> {
  return wsClient(cleanups, `ws://127.0.0.1:${server.wsPort}`, opts);
}

async function peer(server: WsServer): Promise<WsPeer> {
  const p = await wsOpen(`ws://127.0.0.1:${server.wsPort}`);
  cleanups.push(() => p.close());
  await p.expect(INFO_LINE);
  return p;
}

/** The next `n` messages of a subscription (either client's), or a rejection after `timeoutMs`. */
async function take(sub: TcpSubscription | WsSubscription, n = 1, timeoutMs = 3_000): Promise<{ subject: string; data: string; hdr?: string }[]> {
  const got: { subject: string; data: string; hdr?: string }[] = [];
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      (async () => {
        for await (const m of sub as AsyncIterable<{ subject: string; data: Uint8Array; headers?: { get(k: string): string } }>) {
          got.push({ subject: m.subject, data: sc.decode(m.data), hdr: m.headers?.get("X-Via") || undefined });
          if (got.length === n) return got;
        }
        throw new Error(`subscription ended after ${JSON.stringify(got)}`);
      })(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`only ${JSON.stringify(got)} within ${timeoutMs}ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

describe.each(wsTargets(clusterTopologies))("nats.ws and nats.js on $name", (target) => {
  let server: WsServer;
  beforeAll(async () => {
    server = await target.start({ ws: "no_tls: true" });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("a WebSocket publisher reaches a TCP subscriber, and a TCP publisher a WebSocket subscriber", async () => {
    const t = await tcp(server);
    const w = await ws(server);
    const tcpSub = t.subscribe("to.tcp", { max: 2 });
    const wsSub = w.subscribe("to.ws", { max: 2 });
    await Promise.all([t.flush(), w.flush()]);

    w.publish("to.tcp", sc.encode("from ws 1"));
    w.publish("to.tcp", sc.encode("from ws 2"));
    t.publish("to.ws", sc.encode("from tcp 1"));
    t.publish("to.ws", sc.encode("from tcp 2"));

    expect((await take(tcpSub, 2)).map((m) => m.data)).toEqual(["from ws 1", "from ws 2"]);
    expect((await take(wsSub, 2)).map((m) => m.data)).toEqual(["from tcp 1", "from tcp 2"]);
  });

  it("the INFO names the websocket listener's host and port (nats-server 2.9.19+; 2.9.10 names the TCP one)", async () => {
    const [t, w] = [await tcp(server), await ws(server)];
    expect(t.info).toMatchObject({ host: "127.0.0.1", port: server.natsPort });
    expect(w.info).toMatchObject({ host: "127.0.0.1", port: target.reference ? server.natsPort : server.wsPort });
    expect(w.info).not.toHaveProperty("tls_required"); // ws://, no TLS to offer
  });

  it("request/reply: a WebSocket requester and a TCP responder", async () => {
    const t = await tcp(server);
    const w = await ws(server);
    t.subscribe("svc.upper", { callback: (_err, m) => m.respond(sc.encode(sc.decode(m.data).toUpperCase())) });
    await t.flush();
    const reply = await w.request("svc.upper", sc.encode("hello from the web"), { timeout: 3_000 });
    expect(sc.decode(reply.data)).toBe("HELLO FROM THE WEB");
  });

  it("request/reply: a TCP requester and a WebSocket responder", async () => {
    const t = await tcp(server);
    const w = await ws(server);
    w.subscribe("svc.reverse", { callback: (_err, m) => m.respond(sc.encode([...sc.decode(m.data)].reverse().join(""))) });
    await w.flush();
    const reply = await t.request("svc.reverse", sc.encode("stressed"), { timeout: 3_000 });
    expect(sc.decode(reply.data)).toBe("desserts");
  });

  it("headers cross transports both ways", async () => {
    const t = await tcp(server);
    const w = await ws(server);
    const tcpSub = t.subscribe("hdr.tcp", { max: 1 });
    const wsSub = w.subscribe("hdr.ws", { max: 1 });
    await Promise.all([t.flush(), w.flush()]);
    const h1 = wsHeaders();
    h1.set("X-Via", "websocket");
    w.publish("hdr.tcp", sc.encode("a"), { headers: h1 });
    const h2 = tcpHeaders();
    h2.set("X-Via", "tcp");
    t.publish("hdr.ws", sc.encode("b"), { headers: h2 });
    expect(await take(tcpSub)).toEqual([{ subject: "hdr.tcp", data: "a", hdr: "websocket" }]);
    expect(await take(wsSub)).toEqual([{ subject: "hdr.ws", data: "b", hdr: "tcp" }]);
  });

  it("a queue group spans both transports", async () => {
    const t = await tcp(server);
    const w = await ws(server);
    let tcpGot = 0;
    let wsGot = 0;
    t.subscribe("work", { queue: "q", callback: () => { tcpGot++; } });
    w.subscribe("work", { queue: "q", callback: () => { wsGot++; } });
    await Promise.all([t.flush(), w.flush()]);
    const pub = await tcp(server);
    for (let i = 0; i < 200; i++) pub.publish("work", sc.encode(String(i)));
    await pub.flush();
    await Promise.all([t.flush(), w.flush()]); // both have processed everything routed to them
    expect(tcpGot + wsGot).toBe(200);
    expect(tcpGot).toBeGreaterThan(0);
    expect(wsGot).toBeGreaterThan(0);
  });
});

// This and the blocks below stay on the single-server topologies: framing, compression, close
// frames and /connz are one edge's business, and a cluster's edge runs the same code.
describe.each(wsTargets(topologies))("compression on $name", (target) => {
  let server: WsServer;
  beforeAll(async () => {
    server = await target.start({ ws: "no_tls: true\ncompression: true" });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("negotiates permessage-deflate without context takeover with nats.ws (ws offers it)", async () => {
    let extensions: string | undefined;
    const w = await ws(server, wsFactory({ onUpgrade: (res) => { extensions = res.headers["sec-websocket-extensions"] as string; } }));
    await w.flush();
    expect(extensions).toBe("permessage-deflate; server_no_context_takeover; client_no_context_takeover");
  });

  it("a 10 KB message round-trips both ways, compressed", async () => {
    const t = await tcp(server);
    let extensions: string | undefined;
    const w = await ws(server, wsFactory({ onUpgrade: (res) => { extensions = res.headers["sec-websocket-extensions"] as string; } }));
    expect(extensions).toMatch(/^permessage-deflate/);
    // Compressible but not trivial: 10 240 bytes of a repeating sentence with a counter.
    const big = Array.from({ length: 600 }, (_, i) => `msg ${String(i).padStart(3, "0")} lorem ipsum `).join("").slice(0, 10_240);
    expect(big.length).toBe(10_240);
    const tcpSub = t.subscribe("big.tcp", { max: 1 });
    const wsSub = w.subscribe("big.ws", { max: 1 });
    await Promise.all([t.flush(), w.flush()]);
    w.publish("big.tcp", sc.encode(big));
    t.publish("big.ws", sc.encode(big));
    expect((await take(tcpSub))[0].data).toBe(big);
    expect((await take(wsSub))[0].data).toBe(big);
    // And a WebSocket echo through a TCP responder (request/reply, both legs compressed on the WS side).
    t.subscribe("big.echo", { callback: (_e, m) => m.respond(m.data) });
    await t.flush();
    expect(sc.decode((await w.request("big.echo", sc.encode(big), { timeout: 3_000 })).data)).toBe(big);
  });

  it("frames from the server are really compressed: RSV1 on a big message, not on a 64-byte one", async () => {
    // A raw ws client that offers permessage-deflate: ws inflates; the RSV1 bit shows on the wire.
    const p = await wsOpen(`ws://127.0.0.1:${server.wsPort}`, { perMessageDeflate: true });
    cleanups.push(() => p.close());
    await p.expect(INFO_LINE);
    expect(p.upgrade.headers["sec-websocket-extensions"]).toBe("permessage-deflate; server_no_context_takeover; client_no_context_takeover");
    const t = await tcp(server);
    await p.send("CONNECT {\"verbose\":false}\r\nSUB z 1\r\nPING\r\n");
    await p.expect("PONG\r\n");
    const frames = watchFrames(p);
    t.publish("z", sc.encode("z".repeat(4_000)));
    await p.expect(/MSG z 1 4000\r\nz{4000}\r\n/);
    expect(frames.length).toBeGreaterThan(0);
    expect(frames.every((f) => f.rsv1), JSON.stringify(frames)).toBe(true);
    expect(frames.reduce((n, f) => n + f.length, 0)).toBeLessThan(1_000);

    // "MSG z 1 5\r\nsmall\r\n" is far below the 64-byte threshold: sent as is.
    const from = p.received().length;
    const before = frames.length;
    t.publish("z", sc.encode("small"));
    await p.expect("MSG z 1 5\r\nsmall\r\n", 2_000, from);
    expect(frames.slice(before).map((f) => f.rsv1)).toEqual([false]);
  });

  it("nats.ws compressing every message: 2000 publishes reach a compressing subscriber in order", async () => {
    // threshold 0: each of nats.ws's writes leaves compressed, however small.
    const compressing = () => wsFactory({ perMessageDeflate: { threshold: 0 } });
    const pub = await ws(server, compressing());
    const sub = await ws(server, compressing());
    const s = sub.subscribe("many", { max: 2_000 });
    await sub.flush();
    for (let i = 0; i < 2_000; i++) pub.publish("many", sc.encode(`message ${i} `.padEnd(100 + (i % 50), "x")));
    await pub.flush();
    const got = await take(s, 2_000, 10_000);
    expect(got.map((m) => m.data)).toEqual(Array.from({ length: 2_000 }, (_, i) => `message ${i} `.padEnd(100 + (i % 50), "x")));
  });

  it("a client that limits the server's window (server_max_window_bits=10) still gets compressed messages", async () => {
    const p = await wsOpen(`ws://127.0.0.1:${server.wsPort}`, { perMessageDeflate: { serverMaxWindowBits: 10, threshold: 0 } });
    cleanups.push(() => p.close());
    await p.expect(INFO_LINE);
    // meshbroker (ws) agrees to the smaller window and compresses with ws's own extension;
    // nats-server 2.9.10 leaves the parameter out of its answer.
    if (!target.reference) expect(p.upgrade.headers["sec-websocket-extensions"]).toMatch(/server_max_window_bits=10/);
    const frames = watchFrames(p);
    await p.send("CONNECT {\"verbose\":false}\r\nSUB z 1\r\nPUB z 4000\r\n" + "z".repeat(4_000) + "\r\nPING\r\n");
    await p.expect(/MSG z 1 4000\r\nz{4000}\r\n/);
    await p.expect("PONG\r\n");
    expect(frames.some((f) => f.rsv1)).toBe(true);
  });

  // nats-server 2.9.10 inflates such a message whole (this one for seconds) and parses it.
  it.skipIf(target.reference)("a compressed message that inflates past the frame bound (zip bomb) closes with 1009", async () => {
    const p = await wsOpen(`ws://127.0.0.1:${server.wsPort}`, { perMessageDeflate: true });
    cleanups.push(() => p.close());
    await p.expect(INFO_LINE);
    await p.send("CONNECT {\"verbose\":false}\r\nPING\r\n");
    await p.expect("PONG\r\n");
    // 64 MB of a repeated PUB line (past max_payload 1 MB + control line + margin) in ~64 KB.
    const bomb = zlib.deflateRawSync(Buffer.from("PUB a 1\r\nx\r\n".repeat(64 * 1024 * 1024 / 12)), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    socketOf(p).write(clientFrame(bomb.subarray(0, -4), { rsv: 4 }));
    expect((await closeWithin(p, 5_000)).code).toBe(1009);
  });

  // nats-server 2.9.10 drops the connection without a close frame (1006).
  it.skipIf(target.reference)("a compressed frame that is not deflate data closes with 1007", async () => {
    const p = await wsOpen(`ws://127.0.0.1:${server.wsPort}`, { perMessageDeflate: true });
    cleanups.push(() => p.close());
    await p.expect(INFO_LINE);
    socketOf(p).write(clientFrame(Buffer.from([0xff, 0xfe, 0xfd, 0x01, 0x02]), { rsv: 4 }));
    expect((await closeWithin(p)).code).toBe(1007);
  });
});

describe.each(wsTargets(topologies))("compression and write_deadline on $name", (target) => {
  let server: WsServer;
  beforeAll(async () => {
    server = await target.start({ ws: "no_tls: true\ncompression: true", config: 'write_deadline: "300ms"' });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("a compressed subscriber that keeps up is not a slow consumer once write_deadline has passed", async () => {
    // A compressed send is done on the thread pool, not by the socket's "drain": the write
    // deadline of the first one used to fire 300 ms later on a client that had read everything.
    const p = await wsOpen(`ws://127.0.0.1:${server.wsPort}`, { perMessageDeflate: true });
    cleanups.push(() => p.close());
    await p.expect(INFO_LINE);
    const t = await tcp(server);
    await p.send("CONNECT {\"verbose\":false}\r\nSUB z 1\r\nPING\r\n");
    await p.expect("PONG\r\n");
    for (let i = 0; i < 5; i++) {
      const from = p.received().length;
      t.publish("z", sc.encode("z".repeat(4_000)));
      await p.expect(/MSG z 1 4000\r\nz{4000}\r\n/, 2_000, from);
      // The behaviour under test is a timer: 5 × 150 ms spans the deadline twice.
      await new Promise((res) => setTimeout(res, 150));
    }
    const from = p.received().length;
    await p.send("PING\r\n");
    await p.expect("PONG\r\n", 2_000, from);
    expect(p.isClosed()).toBe(false);
  });
});

describe.each(wsTargets(topologies))("no compression configured on $name", (target) => {
  let server: WsServer;
  beforeAll(async () => {
    server = await target.start({ ws: "no_tls: true" });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("does not accept the offered permessage-deflate", async () => {
    const p = await wsOpen(`ws://127.0.0.1:${server.wsPort}`, { perMessageDeflate: true });
    cleanups.push(() => p.close());
    expect(p.upgrade.headers["sec-websocket-extensions"]).toBeUndefined();
    expect(p.ws.extensions).toBe("");
  });
});

describe.each(wsTargets(topologies))("close frames on $name", (target) => {
  let server: WsServer;
  beforeAll(async () => {
    server = await target.start({ ws: "no_tls: true", config: "max_payload: 1024" });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("max_payload violation: -ERR 'Maximum Payload Violation', then close 1009", async () => {
    const p = await peer(server);
    await p.send("CONNECT {\"verbose\":false}\r\nPING\r\n");
    await p.expect("PONG\r\n");
    await p.send(`PUB too.big 2000\r\n${"x".repeat(2000)}\r\n`);
    const close = await closeWithin(p);
    expect(afterInfo(p)).toBe("PONG\r\n-ERR 'Maximum Payload Violation'\r\n");
    expect(close).toEqual({ code: 1009, reason: "Maximum Message Payload Exceeded" });
  });

  it("a parse error: -ERR 'Unknown Protocol Operation', then close 1002", async () => {
    const p = await peer(server);
    await p.send("CONNECT {\"verbose\":false}\r\nPING\r\n");
    await p.expect("PONG\r\n");
    await p.send("HELLO\r\n");
    const close = await closeWithin(p);
    expect(afterInfo(p)).toBe("PONG\r\n-ERR 'Unknown Protocol Operation'\r\n");
    expect(close).toEqual({ code: 1002, reason: "Protocol Violation" });
  });

  it("a client that closes gets the 1000 back", async () => {
    const p = await peer(server);
    await p.send("CONNECT {\"verbose\":false}\r\nPING\r\n");
    await p.expect("PONG\r\n");
    p.ws.close(1000, "bye");
    const close = await closeWithin(p);
    expect(close.code).toBe(1000);
  });
});

describe.each(wsTargets(topologies))("framing on $name", (target) => {
  let server: WsServer;
  beforeAll(async () => {
    server = await target.start({ ws: "no_tls: true" });
  });
  afterAll(async () => {
    await server?.stop();
  });

  /** A peer past CONNECT, subscribed to `in` as sid 1. */
  async function ready(): Promise<WsPeer> {
    const p = await peer(server);
    await p.send("CONNECT {\"verbose\":false}\r\nSUB in 1\r\nPING\r\n");
    await p.expect("PONG\r\n");
    return p;
  }

  it("a PUB split over three frames at odd offsets", async () => {
    const p = await ready();
    const from = p.received().length;
    const op = "PUB in 11\r\nhello world\r\nPING\r\n";
    for (const part of [op.slice(0, 5), op.slice(5, 14), op.slice(14)]) await p.send(part);
    await p.expect("MSG in 1 11\r\nhello world\r\nPONG\r\n", 2_000, from);
  });

  it("a fragmented message (FIN=0, then continuation frames)", async () => {
    const p = await ready();
    const from = p.received().length;
    const s = socketOf(p);
    s.write(clientFrame("PUB in 5\r\nhe", { fin: false }));
    s.write(clientFrame("ll", { opcode: 0, fin: false }));
    s.write(clientFrame("o\r\nPING\r\n", { opcode: 0, fin: true }));
    await p.expect("MSG in 1 5\r\nhello\r\nPONG\r\n", 2_000, from);
  });

  it("text frames carry the protocol as well as binary ones", async () => {
    const p = await ready();
    const from = p.received().length;
    socketOf(p).write(clientFrame("PUB in 4\r\ntext\r\nPING\r\n", { opcode: 1 }));
    await p.expect("MSG in 1 4\r\ntext\r\nPONG\r\n", 2_000, from);
  });

  it("many operations in one frame, and a WebSocket ping is answered with a pong", async () => {
    const p = await ready();
    const from = p.received().length;
    await p.send("PUB in 1\r\na\r\nPUB in 1\r\nb\r\nPUB in 1\r\nc\r\nPING\r\n");
    await p.expect("MSG in 1 1\r\na\r\nMSG in 1 1\r\nb\r\nMSG in 1 1\r\nc\r\nPONG\r\n", 2_000, from);
    const pong = new Promise<string>((resolve) => p.ws.once("pong", (data: Buffer) => resolve(data.toString())));
    p.ws.ping("are you there");
    expect(await pong).toBe("are you there");
  });

  it("an unmasked client frame ends the connection unread", async () => {
    const p = await ready();
    socketOf(p).write(clientFrame("PING\r\n", { mask: false }));
    const close = await closeWithin(p);
    expect(afterInfo(p)).toBe("PONG\r\n"); // the unmasked PING was not answered
    // Known difference: nats-server 2.9.10 drops the connection, usually without a close frame
    // that reaches the client (1006, but not always: it races its own close); meshbroker (the ws
    // library) always sends close 1002, as RFC 6455 §5.1 asks.
    if (!target.reference) expect(close.code).toBe(1002);
  });
});

describe.each(wsTargets(topologies))("more close frames on $name", (target) => {
  it("auth timeout of the websocket block's authorization: -ERR 'Authentication Timeout', close 1008", async () => {
    const server = await target.start({ ws: "no_tls: true\nauthorization { user: a, password: b, timeout: 0.5 }" });
    cleanups.push(() => server.stop());
    const p = await peer(server);
    const close = await closeWithin(p, 3_000);
    expect(afterInfo(p)).toBe("-ERR 'Authentication Timeout'\r\n");
    expect(close).toEqual({ code: 1008, reason: "Authentication Timeout" });
  });

  it("max_control_line: -ERR 'maximum control line exceeded', close 1008", async () => {
    const server = await target.start({ ws: "no_tls: true", config: "max_control_line: 64" });
    cleanups.push(() => server.stop());
    const p = await peer(server);
    await p.send(`CONNECT {"verbose":false}\r\nSUB ${"a".repeat(100)} 1\r\n`);
    const close = await closeWithin(p);
    expect(afterInfo(p)).toBe("-ERR 'maximum control line exceeded'\r\n");
    expect(close).toEqual({ code: 1008, reason: "Maximum Control Line Exceeded" });
  });

  it("max_connections: -ERR 'maximum connections exceeded', close 1008", async () => {
    const server = await target.start({ ws: "no_tls: true", config: "max_connections: 1" });
    cleanups.push(() => server.stop());
    await (await tcp(server)).flush();
    const p = await peer(server);
    const close = await closeWithin(p);
    expect(afterInfo(p)).toBe("-ERR 'maximum connections exceeded'\r\n");
    expect(close).toEqual({ code: 1008, reason: "Maximum Connections Exceeded" });
  });

  it("server shutdown: close 1001", async () => {
    const server = await target.start({ ws: "no_tls: true" });
    const p = await peer(server);
    await p.send("CONNECT {\"verbose\":false}\r\nPING\r\n");
    await p.expect("PONG\r\n");
    await server.stop();
    const close = await closeWithin(p);
    expect(close).toEqual({ code: 1001, reason: "Server Shutdown" });
  });
});

describe.each(wsTargets(topologies))("monitoring of WebSocket connections on $name", (target) => {
  let server: WsServer;
  beforeAll(async () => {
    server = await target.start({
      ws: `no_tls: true\ncompression: true\nhandshake_timeout: 2\nallowed_origins: ["http://app.example"]`,
      monitoring: true,
    });
  });

  it("/varz describes the websocket listener as nats-server does", async () => {
    const varz = (await (await fetch(`http://127.0.0.1:${server.httpPort}/varz`)).json()) as { websocket?: unknown };
    expect(varz.websocket).toEqual({
      host: "127.0.0.1",
      port: server.wsPort,
      handshake_timeout: 2_000_000_000, // Go's time.Duration: nanoseconds
      no_tls: true,
      allowed_origins: ["http://app.example"],
      compression: true,
    });
  });
  afterAll(async () => {
    await server?.stop();
  });

  interface Conn { cid: number; kind?: string; type: string; name?: string; lang?: string; subscriptions: number }

  async function connz(): Promise<Conn[]> {
    const res = await fetch(`http://127.0.0.1:${server.httpPort}/connz`);
    expect(res.status).toBe(200);
    return ((await res.json()) as { connections: Conn[] }).connections;
  }

  it("/connz lists a WebSocket client with type \"websocket\" and a TCP one with \"nats\"", async () => {
    const w = await ws(server, { name: "browser-ish" });
    const t = await tcp(server, { name: "backend" });
    w.subscribe("a.b");
    await Promise.all([w.flush(), t.flush()]);
    const conns = await connz();
    const wsConn = conns.find((c) => c.name === "browser-ish");
    const tcpConn = conns.find((c) => c.name === "backend");
    expect(wsConn, JSON.stringify(conns)).toMatchObject({ kind: "Client", type: "websocket", lang: "nats.ws", subscriptions: 1 });
    expect(tcpConn, JSON.stringify(conns)).toMatchObject({ kind: "Client", type: "nats", lang: "nats.js" });
  });

  it.skipIf(target.reference)("/metrics counts connections by type, WEBSOCKET included", async () => {
    const metric = async () => {
      const text = await (await fetch(`http://127.0.0.1:${server.httpPort}/metrics`)).text();
      const by: Record<string, number> = {};
      for (const m of text.matchAll(/^meshbroker_connections\{type="([^"]+)"\} (\d+)$/gm)) by[m[1]] = Number(m[2]);
      return by;
    };
    const w1 = await ws(server);
    const w2 = await ws(server);
    const t = await tcp(server);
    await Promise.all([w1.flush(), w2.flush(), t.flush()]);
    const by = await metric();
    expect(by.WEBSOCKET).toBe(2);
    expect(by.STANDARD).toBe(1);

    await w2.close();
    // The server notices the close on its own schedule: the closed nats.ws socket has sent its
    // close frame; one round trip on another WebSocket connection lets the server process it.
    await w1.flush();
    const after = await askUntil(metric, (m) => m.WEBSOCKET === 1);
    expect(after.WEBSOCKET).toBe(1);
  });
});

