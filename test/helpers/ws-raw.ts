// WebSocket at the byte level, for tests that pin exact handshakes and frames:
// - `httpExchange` writes an HTTP request byte for byte on a TCP (or TLS) socket and reads the
//   whole response back (headers, then Content-Length bytes; a 101 ends at its blank line);
// - `wsOpen` is a `ws` client that collects the NATS text a server sends and the close frame
//   (code and reason) it ends with, with `expect` like test/helpers/raw.ts;
// - `wsTargets` starts meshbroker or the reference nats-server 2.9.10 with the same
//   `websocket {}` block, so a test can run against both and compare.
// Everything is event-driven: nothing here sleeps.
import type { IncomingMessage } from "node:http";
import { afterAll, beforeAll } from "vitest";
import net from "node:net";
import tls from "node:tls";
import WebSocket, { type ClientOptions } from "ws";
import { startBroker, type SuiteTopology } from "./broker.js";
import { roundRobin, sharedCluster } from "./shared-cluster.js";
import { startNatsServer } from "./nats-server.js";
import { freePorts } from "./process.js";

// ---- raw HTTP ----

/** The sample key of RFC 6455 §1.3 (16 bytes, base64). */
export const WS_KEY = "dGhlIHNhbXBsZSBub25jZQ==";

export interface UpgradeRequest {
  method?: string;
  path?: string;
  /** The request line's version, "HTTP/1.1" by default. */
  version?: string;
  /** Replace, add (at the end) or, with `undefined`, drop headers; names match case-insensitively. */
  headers?: Record<string, string | undefined>;
}

/**
 * A WebSocket upgrade request as a browser sends it (Host, Upgrade, Connection, key, version 13),
 * with the changes in `r`.
 */
export function upgradeRequest(host: string, r: UpgradeRequest = {}): string {
  const headers: [string, string][] = [
    ["Host", host],
    ["Upgrade", "websocket"],
    ["Connection", "Upgrade"],
    ["Sec-WebSocket-Key", WS_KEY],
    ["Sec-WebSocket-Version", "13"],
  ];
  for (const [name, value] of Object.entries(r.headers ?? {})) {
    const i = headers.findIndex(([n]) => n.toLowerCase() === name.toLowerCase());
    if (value === undefined) {
      if (i >= 0) headers.splice(i, 1);
    } else if (i >= 0) headers[i] = [headers[i][0], value];
    else headers.push([name, value]);
  }
  const lines = headers.map(([n, v]) => `${n}: ${v}\r\n`).join("");
  return `${r.method ?? "GET"} ${r.path ?? "/"} ${r.version ?? "HTTP/1.1"}\r\n${lines}\r\n`;
}

export interface HttpResponse {
  /** "HTTP/1.1 400 Bad Request"; "" (and status 0) when the server closed without a byte. */
  statusLine: string;
  status: number;
  /** Header names lowercased; repeated headers joined with ", ". */
  headers: Record<string, string>;
  /** The header lines exactly as sent. */
  headerLines: string[];
  /** The body (Content-Length bytes, or up to the close without one), latin1. A 101 has none. */
  body: string;
  /** For a 101: the bytes that followed the blank line (the server's first frames), latin1. */
  after: string;
}

export interface ExchangeOptions {
  /** Speak TLS first (wss): the options for tls.connect. */
  tls?: tls.ConnectionOptions;
  timeoutMs?: number;
}

/** Sends `request` and resolves with the complete response; the socket is closed afterwards. */
export async function httpExchange(port: number, request: string | Buffer, opts: ExchangeOptions = {}): Promise<HttpResponse> {
  const timeoutMs = opts.timeoutMs ?? 3_000;
  const socket: net.Socket = opts.tls
    ? tls.connect({ host: "127.0.0.1", port, ...opts.tls })
    : net.connect({ host: "127.0.0.1", port });
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  try {
    return await new Promise<HttpResponse>((resolve, reject) => {
      let text = "";
      const timer = setTimeout(() => fail("timed out"), timeoutMs);
      function fail(why: string): void {
        clearTimeout(timer);
        reject(new Error(`${why} before a complete response; received: ${JSON.stringify(text)}`));
      }
      const check = (atEnd: boolean): void => {
        const end = text.indexOf("\r\n\r\n");
        if (end < 0) {
          if (atEnd && text === "") {
            clearTimeout(timer);
            resolve({ statusLine: "", status: 0, headers: {}, headerLines: [], body: "", after: "" });
          } else if (atEnd) fail("connection closed");
          return;
        }
        const [statusLine, ...headerLines] = text.slice(0, end).split("\r\n");
        const headers: Record<string, string> = {};
        for (const l of headerLines) {
          const colon = l.indexOf(":");
          const name = l.slice(0, colon).trim().toLowerCase();
          const value = l.slice(colon + 1).trim();
          headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
        }
        const status = Number(statusLine.split(" ")[1]);
        const rest = text.slice(end + 4);
        let body: string;
        let after = "";
        if (status === 101) {
          body = "";
          after = rest;
        } else if (headers["content-length"] !== undefined) {
          const n = Number(headers["content-length"]);
          if (rest.length < n) {
            if (atEnd) fail("connection closed");
            return;
          }
          body = rest.slice(0, n);
        } else if (atEnd) {
          body = rest;
        } else {
          return; // the body runs to the close
        }
        clearTimeout(timer);
        resolve({ statusLine, status, headers, headerLines, body, after });
      };
      socket.on("data", (b: Buffer) => {
        text += b.toString("latin1");
        check(false);
      });
      socket.once("close", () => check(true));
      socket.on("error", () => {}); // a reset after the response is not this helper's business
      socket.write(typeof request === "string" ? Buffer.from(request, "latin1") : request);
    });
  } finally {
    socket.destroy();
    await closed;
  }
}

// ---- a WebSocket peer that shows the bytes ----

export interface CloseFrame {
  code: number;
  reason: string;
}

export interface WsPeer {
  readonly ws: WebSocket;
  /** The server's 101 response (headers lowercased by Node). */
  readonly upgrade: IncomingMessage;
  /** Sends NATS protocol text in one binary frame, as nats.ws does. */
  send(text: string | Buffer): Promise<void>;
  /** Resolves when what arrived so far (after offset `from`) matches; rejects on timeout or close. */
  expect(pattern: RegExp | string, timeoutMs?: number, from?: number): Promise<RegExpMatchArray>;
  /** All message payloads so far, concatenated, latin1. */
  received(): string;
  /** The close the server sent (1005 without a code, 1006 when the socket just went away). */
  readonly closed: Promise<CloseFrame>;
  isClosed(): boolean;
  /** Drop the connection (no close handshake) and wait until it is gone. */
  close(): Promise<void>;
}

/** Opens a WebSocket with the `ws` library; rejects with the status when the upgrade is refused. */
export function wsOpen(url: string, opts: ClientOptions = {}): Promise<WsPeer> {
  const ws = new WebSocket(url, { handshakeTimeout: 3_000, ...opts });
  ws.binaryType = "nodebuffer";
  let text = "";
  let isClosed = false;
  const waiters = new Set<() => void>();
  const wake = () => { for (const w of [...waiters]) w(); };
  let upgrade: IncomingMessage | undefined;
  ws.on("upgrade", (res) => { upgrade = res; });
  ws.on("message", (data: Buffer) => {
    text += data.toString("latin1");
    wake();
  });
  const closed = new Promise<CloseFrame>((resolve) => {
    ws.once("close", (code, reason) => {
      isClosed = true;
      resolve({ code, reason: reason.toString("utf8") });
      wake();
    });
  });
  return new Promise<WsPeer>((resolve, reject) => {
    ws.once("unexpected-response", (_req, res) => {
      reject(Object.assign(new Error(`upgrade refused: ${res.statusCode} ${res.statusMessage}`), { status: res.statusCode }));
      ws.terminate();
    });
    ws.once("error", (err) => reject(err));
    ws.once("open", () => {
      ws.on("error", () => {}); // reported through `closed`
      resolve({
        ws,
        upgrade: upgrade!,
        send: (data) => new Promise<void>((res, rej) => {
          if (ws.readyState !== WebSocket.OPEN) return res();
          ws.send(typeof data === "string" ? Buffer.from(data, "latin1") : data, { binary: true }, (err) => (err ? rej(err) : res()));
        }),
        expect(pattern, timeoutMs = 2_000, from = 0) {
          const test = (): RegExpMatchArray | null => {
            const t = text.slice(from);
            if (typeof pattern !== "string") return t.match(pattern);
            const i = t.indexOf(pattern);
            if (i < 0) return null;
            return Object.assign([pattern], { index: i, input: t }) as RegExpMatchArray;
          };
          const now = test();
          if (now) return Promise.resolve(now);
          return new Promise((res, rej) => {
            const fail = (why: string) => {
              cleanup();
              rej(new Error(`${why} waiting for ${String(pattern)}; received: ${JSON.stringify(text)}`));
            };
            const check = () => {
              const m = test();
              if (m) {
                cleanup();
                res(m);
              } else if (isClosed) fail("websocket closed");
            };
            const timer = setTimeout(() => fail(`timed out after ${timeoutMs}ms`), timeoutMs);
            const cleanup = () => { clearTimeout(timer); waiters.delete(check); };
            waiters.add(check);
            check();
          });
        },
        received: () => text,
        closed,
        isClosed: () => isClosed,
        async close() {
          if (!isClosed) ws.terminate();
          await closed;
        },
      });
    });
  });
}

/** Resolves with the close frame, or rejects when the server has not closed within `timeoutMs`. */
export function closeWithin(peer: WsPeer, timeoutMs = 3_000): Promise<CloseFrame> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`websocket not closed after ${timeoutMs}ms; received: ${JSON.stringify(peer.received())}`)),
      timeoutMs,
    );
    peer.closed.then((c) => { clearTimeout(timer); resolve(c); });
  });
}

export const INFO_LINE = /^INFO (\{.*\}) ?\r\n/;

/** The INFO a peer got first, parsed. */
export function infoOf(peer: WsPeer): Record<string, unknown> {
  const m = peer.received().match(INFO_LINE);
  if (!m) throw new Error(`no INFO line in ${JSON.stringify(peer.received())}`);
  return JSON.parse(m[1]) as Record<string, unknown>;
}

/** What the server sent after its INFO line. */
export function afterInfo(peer: WsPeer): string {
  return peer.received().replace(INFO_LINE, "");
}

// ---- the servers under test ----

export interface WsServer {
  name: string;
  /** The reference nats-server rather than meshbroker. */
  reference: boolean;
  natsPort: number;
  wsPort: number;
  /** The monitoring port, when started with `monitoring`. */
  httpPort?: number;
  /** What the server logged so far (meshbroker: its captured lines). */
  log(): string;
  stop(): Promise<void>;
}

export interface WsStartOptions {
  /** The inside of `websocket { … }`, after `host` and `port` (which the target sets). */
  ws: string;
  /** The rest of the config (authorization, operator, limits…). */
  config?: string;
  monitoring?: boolean;
}

export interface WsTarget {
  name: string;
  reference: boolean;
  start(opts: WsStartOptions): Promise<WsServer>;
}

/** One server for the describe block it is called in: started in beforeAll, stopped in afterAll.
 *  The config is read when the block starts (it may name files made by an earlier beforeAll). */
export function serverFor(target: WsTarget, ws: () => string, config: () => string = () => ""): () => WsServer {
  let server: WsServer | undefined;
  beforeAll(async () => {
    server = await target.start({ ws: ws(), config: config() });
  });
  afterAll(async () => {
    await server?.stop();
  });
  return () => server!;
}

/** meshbroker in each topology, then the reference nats-server 2.9.10 (unless `reference` is false). */
export function wsTargets(topologies: SuiteTopology[], reference = true): WsTarget[] {
  const targets: WsTarget[] = topologies.map((topology): WsTarget => ({
    name: `meshbroker (${topology})`,
    reference: false,
    async start({ ws, config = "", monitoring }) {
      if (topology === "cluster") return startWsCluster({ ws, config, monitoring });
      const b = await startBroker({
        topology,
        monitoring,
        captureLog: true,
        // The main port is set here: startBroker would take the block's `port` for it.
        config: `port: -1\nhost: 127.0.0.1\n${config}\nwebsocket {\n  host: 127.0.0.1\n  port: -1\n${ws}\n}\n`,
      });
      return {
        name: `meshbroker (${topology})`,
        reference: false,
        natsPort: b.natsPort,
        wsPort: b.wsPort!,
        httpPort: b.httpPort,
        log: () => b.log.join("\n"),
        stop: () => b.stop(),
      };
    },
  }));
  if (reference) targets.push({ name: "nats-server 2.9.10 (reference)", reference: true, start: startReference });
  return targets;
}

/**
 * The cluster (test/helpers/shared-cluster.ts, shared by the file's tests with the same config):
 * each read of natsPort, wsPort or httpPort names the next edge, so clients alternate over them.
 */
async function startWsCluster({ ws, config = "", monitoring }: WsStartOptions): Promise<WsServer> {
  const cluster = await sharedCluster({ edgeConfig: `${config}\nwebsocket {\n  host: 127.0.0.1\n  port: -1\n${ws}\n}\n`, monitoring });
  const next = roundRobin(cluster.edges);
  return {
    name: "meshbroker (cluster)",
    reference: false,
    get natsPort() { return next().natsPort; },
    get wsPort() { return next().wsPort!; },
    get httpPort() { return next().httpPort; },
    log: () => cluster.edges.map((e) => e.proc.stdout() + e.proc.stderr()).join("\n"),
    stop: async () => {},
  };
}

/** nats-server needs a fixed websocket port (its `-1` is not read back here): one that was just free. */
async function startReference({ ws, config = "", monitoring }: WsStartOptions): Promise<WsServer> {
  const [wsPort, httpPort] = await freePorts(2);
  const http = monitoring ? `http: 127.0.0.1:${httpPort}\n` : "";
  const s = await startNatsServer(`port: -1\nhost: 127.0.0.1\n${http}${config}\nwebsocket {\n  host: 127.0.0.1\n  port: ${wsPort}\n${ws}\n}\n`);
  const m = s.log().match(/Starting http monitor on [^\s]*:(\d+)/);
  return {
    name: "nats-server 2.9.10 (reference)",
    reference: true,
    natsPort: s.port,
    wsPort,
    httpPort: m ? Number(m[1]) : undefined,
    log: () => s.log(),
    stop: () => s.stop(),
  };
}

// ---- nats.ws over the `ws` library ----

export interface NatsWsSocketOptions extends ClientOptions {
  /** Called with the server's 101 response (to look at its headers). */
  onUpgrade?: (res: IncomingMessage) => void;
}

/**
 * nats.ws options that open its WebSocket with the `ws` library and these options (a CA for wss,
 * a client certificate, a Cookie header, …): nats.ws's `wsFactory` hook. Without it nats.ws uses
 * `globalThis.WebSocket`, which then must be set to ws's.
 */
export function wsFactory(opts: NatsWsSocketOptions = {}): { wsFactory: (url: string) => Promise<{ socket: WebSocket; encrypted: boolean }> } {
  const { onUpgrade, ...options } = opts;
  return {
    wsFactory: async (url: string) => {
      const socket = new WebSocket(url, options);
      if (onUpgrade) socket.once("upgrade", onUpgrade);
      return { socket, encrypted: url.startsWith("wss://") };
    },
  };
}

export interface FrameHeader {
  fin: boolean;
  /** RSV1: the frame is compressed (permessage-deflate). */
  rsv1: boolean;
  opcode: number;
  length: number;
}

/**
 * Records the header of every frame the server sends to `peer` from now on, read off the socket
 * beside the ws library (server frames are unmasked). Call before the frames of interest arrive.
 */
export function watchFrames(peer: WsPeer): FrameHeader[] {
  const frames: FrameHeader[] = [];
  const socket = socketOf(peer);
  let pending: Buffer = Buffer.alloc(0);
  let skip = 0; // payload bytes of the current frame still to pass over
  socket.prependListener("data", (chunk: Buffer) => {
    let b = chunk;
    for (;;) {
      if (skip > 0) {
        const n = Math.min(skip, b.length);
        skip -= n;
        b = b.subarray(n);
        if (skip > 0) return;
      }
      pending = pending.length > 0 ? Buffer.concat([pending, b]) : b;
      b = Buffer.alloc(0);
      if (pending.length < 2) return;
      let len = pending[1] & 0x7f;
      let head = 2;
      if (len === 126) {
        if (pending.length < 4) return;
        len = pending.readUInt16BE(2);
        head = 4;
      } else if (len === 127) {
        if (pending.length < 10) return;
        len = Number(pending.readBigUInt64BE(2));
        head = 10;
      }
      frames.push({ fin: (pending[0] & 0x80) !== 0, rsv1: (pending[0] & 0x40) !== 0, opcode: pending[0] & 0x0f, length: len });
      b = pending.subarray(head);
      pending = Buffer.alloc(0);
      skip = len;
      if (b.length === 0 && skip > 0) return;
    }
  });
  return frames;
}

/** The TCP (or TLS) socket under a peer: to write hand-made frames beside the ws library. */
export function socketOf(peer: WsPeer): net.Socket {
  return (peer.ws as unknown as { _socket: net.Socket })._socket;
}

/**
 * One client frame as a browser sends it (masked), for raw handshake-and-data tests. Fuzzers may
 * also set the RSV bits (`rsv`, 0–7; 4 = RSV1, "compressed") and announce a `length` other than
 * the payload's.
 */
export function clientFrame(payload: string | Buffer, opts: { opcode?: number; fin?: boolean; mask?: boolean; rsv?: number; length?: number | bigint } = {}): Buffer {
  const data = typeof payload === "string" ? Buffer.from(payload, "latin1") : payload;
  const { opcode = 2, fin = true, mask = true, rsv = 0 } = opts;
  const len = BigInt(opts.length ?? data.length);
  const head = len < 126n ? 2 : len < 65_536n ? 4 : 10;
  const out = Buffer.alloc(head + (mask ? 4 : 0) + data.length);
  out[0] = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f);
  if (len < 126n) out[1] = Number(len);
  else if (len < 65_536n) { out[1] = 126; out.writeUInt16BE(Number(len), 2); }
  else { out[1] = 127; out.writeBigUInt64BE(BigInt.asUintN(64, len), 2); }
  if (mask) {
    out[1] |= 0x80;
    const key = Buffer.from([0x12, 0x34, 0x56, 0x78]);
    key.copy(out, head);
    for (let i = 0; i < data.length; i++) out[head + 4 + i] = data[i] ^ key[i & 3];
  } else data.copy(out, head);
  return out;
}
