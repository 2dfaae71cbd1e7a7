// The WebSocket listener: HTTP(S) upgrade with nats-server's checks, framing and
// permessage-deflate by the `ws` library, then the very same NatsClient as TCP connections use,
// over a WebSocket transport. Auth inputs specific to WebSocket (cookie JWT, the block's
// no_auth_user and authorization) go to the one auth pipeline.
import http from "node:http";
import https from "node:https";
import type net from "node:net";
import type tls from "node:tls";
import { WebSocketServer, type WebSocket } from "ws";
import type { WebsocketConfig } from "../../common/config/options.js";
import type { CloseReason } from "../../common/errors.js";
import type { AuthContext } from "../auth/index.js";
import type { ClientTransport, NatsClient } from "../nats/client.js";
import { hostPort, listenOn } from "../../common/address.js";
import type { WebsocketContext } from "../context.js";
import { peerOf, plainOf, prepareTlsReload, serverOptions } from "../tls.js";
import { LINGER_MS, onceWritten } from "../socket-transport.js";
import { checkUpgrade, isMqttPath } from "./upgrade.js";
import { takeOverDeflate } from "./deflate.js";
import { Timeouts } from "../../common/deadline.js";

/** What a frame may hold besides its NATS payload (control lines, several small messages). */
const FRAME_MARGIN = 64 * 1024;
/** Bounds a connection that never completes its upgrade when no handshake_timeout is set. */
export const DEFAULT_UPGRADE_BOUND_MS = 10_000;
/** Upgrade requests: the request line and headers together, and how many headers are read. */
const MAX_HEADER_BYTES = 16 * 1024;
const MAX_HEADERS = 100;

export class WebsocketListener {
  private readonly server: http.Server;
  private readonly wss: WebSocketServer;
  /** Plain sockets in their handshake (TLS, HTTP upgrade; after TLS, plainOf() finds the plain
   *  one), and their deadlines: one timer for all, no closure per socket. */
  private readonly handshaking = new Set<net.Socket>();
  private readonly deadlines = new Timeouts<net.Socket>((socket) => this.handshakeTimedOut(socket));
  /** The 'close' listener of every handshaking socket (`this` is the socket). */
  private readonly rawSocketClosed: (this: net.Socket) => void;
  private boundPort: number | undefined;
  /** Frame (message) size bounds, checked by ws on the frame header before anything is buffered:
   *  before CONNECT a control line's worth, after it max_payload + max_control_line + a margin. */
  private readonly maxFrame: { before: number; after: number };

  constructor(private readonly edge: WebsocketContext, private readonly cfg: WebsocketConfig) {
    const o = edge.options;
    this.maxFrame = { before: o.maxControlLine + FRAME_MARGIN, after: o.maxPayload + o.maxControlLine + FRAME_MARGIN };
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      maxPayload: this.maxFrame.after,
      // Compression is taken over after the upgrade (deflate.ts); ws's own, with these
      // settings, stays for a client that asked for a smaller server window.
      perMessageDeflate: cfg.compression
        // Fastest deflate level, as nats-server compresses (throughput over ratio); large zlib
        // chunks, so a batch of messages takes one trip to the zlib thread, not one per 16 KB.
        ? {
          serverNoContextTakeover: true, clientNoContextTakeover: true, threshold: 64,
          zlibDeflateOptions: { level: 1, chunkSize: 128 * 1024 },
          zlibInflateOptions: { chunkSize: 128 * 1024 },
        }
        : false,
      // nats-server answers the mqtt subprotocol on /mqtt paths whatever the client offered.
      handleProtocols: () => false,
    });
    this.wss.on("headers", (headers, req) => {
      if (isMqttPath(req.url ?? "/")) headers.push("Sec-WebSocket-Protocol: mqtt");
    });
    // A request line or headers over 16 KB get 431, and at most 100 headers are read.
    const options: http.ServerOptions = { requireHostHeader: false, maxHeaderSize: MAX_HEADER_BYTES };
    if (cfg.tls) {
      this.server = https.createServer({
        ...options, ...serverOptions(cfg.tls),
      } as https.ServerOptions);
    } else {
      this.server = http.createServer(options);
    }
    this.server.maxHeadersCount = MAX_HEADERS;
    const listener = this;
    this.rawSocketClosed = function (this: net.Socket) { listener.handshakeSocketClosed(this); };
    this.server.on("connection", (socket: net.Socket) => this.armDeadline(socket));
    this.server.on("request", (req, res) => this.refuseRequest(req, res));
    this.server.on("upgrade", (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => this.upgrade(req, socket, head));
    this.server.on("tlsClientError", (err, socket) => {
      edge.log.debug(`websocket TLS handshake error: ${err.message}`, { remote: remote(socket) });
    });
  }

  /** For a reload: the tls {} files read again (see prepareTlsReload). */
  prepareTlsReload(): (() => void) | undefined {
    return prepareTlsReload(this.server, this.cfg.tls);
  }

  get port(): number {
    return this.boundPort ?? this.cfg.port;
  }

  async listen(): Promise<void> {
    this.boundPort = await listenOn(this.server, this.cfg.port, this.cfg.host,
      (err) => this.edge.log.error(`websocket listener: ${err.message}`));
    if (!this.cfg.tls) this.edge.log.warn("Websocket not configured with TLS. DO NOT USE IN PRODUCTION!");
    this.edge.log.notice(`listening for websocket clients on ${this.cfg.tls ? "wss" : "ws"}://${hostPort(this.cfg.host, this.port)}`);
  }

  /** Stops accepting; the connections themselves are closed by the edge. */
  close(): Promise<void> {
    for (const socket of this.handshaking) this.deadlines.clear(socket, this.handshakeMs);
    this.handshaking.clear();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** handshake_timeout bounds TLS and the HTTP upgrade together (10 s when none is set). */
  private get handshakeMs(): number {
    return this.cfg.handshakeTimeoutMs > 0 ? this.cfg.handshakeTimeoutMs : DEFAULT_UPGRADE_BOUND_MS;
  }

  private armDeadline(socket: net.Socket): void {
    this.handshaking.add(socket);
    this.deadlines.set(socket, this.handshakeMs);
    socket.on("close", this.rawSocketClosed);
  }

  /** Destroyed: its 'close' reports it (it stays listed until then). */
  private handshakeTimedOut(socket: net.Socket): void {
    this.edge.log.debug("websocket handshake timeout", { remote: remote(socket) });
    socket.destroy();
  }

  private handshakeSocketClosed(socket: net.Socket): void {
    if (!this.handshaking.has(socket)) return;
    // Still listed: the socket never became a connection (refused or timed out).
    this.edge.handshakeClosed();
    this.clearDeadline(socket);
  }

  private clearDeadline(socket: net.Socket): void {
    this.handshaking.delete(socket);
    this.deadlines.clear(socket, this.handshakeMs);
  }

  private refuseRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const refusal = checkUpgrade(req, this.cfg, this.edge.mqtt !== undefined) ?? { status: 400, reason: "invalid value for header 'Upgrade'" };
    this.logRefusal(req, refusal.reason);
    const body = `${http.STATUS_CODES[refusal.status]}\n`;
    res.writeHead(refusal.status, refusalHeaders(body));
    res.end(body);
  }

  /**
   * The WebSocket boundary, from the upgrade on. The http server drops its own 'error' listener
   * from an upgraded socket, so this one is attached first: a reset while the refusal is written
   * or during the handshake ends that socket only. Once upgraded, ws reports errors (bad frames,
   * 1009 too large) on the WebSocket, and the client's receive() runs in its own boundary.
   */
  private upgrade(req: http.IncomingMessage, socket: net.Socket, head: Buffer): void {
    socket.on("error", (err) => {
      this.edge.socketError(isMqttPath(req.url ?? "/") ? "MQTT_WS" : "WEBSOCKET");
      this.edge.log.debug(`websocket socket error: ${err.message}`, { remote: remote(socket) });
      socket.destroy();
    });
    const refusal = checkUpgrade(req, this.cfg, this.edge.mqtt !== undefined);
    if (refusal) {
      this.logRefusal(req, refusal.reason);
      const body = `${http.STATUS_CODES[refusal.status]}\n`;
      const headers = Object.entries(refusalHeaders(body)).map(([k, v]) => `${k}: ${v}\r\n`).join("");
      // Closed once written: the http server hands an upgrade's socket over paused, so it would
      // not see the client go and stayed open until the handshake deadline (10 s by default).
      socket.end(`HTTP/1.1 ${refusal.status} ${http.STATUS_CODES[refusal.status]}\r\n${headers}\r\n${body}`, () => socket.destroy());
      return;
    }
    if (head.length > 0) {
      // nats-server: data before the handshake completes ends the connection, unanswered.
      this.logRefusal(req, "client sent data before handshake is complete");
      socket.destroy();
      return;
    }
    // The checks above accept token lists ("Upgrade: foo, websocket", "Version: 8, 13") as
    // nats-server does; the ws library wants the bare tokens.
    req.headers.upgrade = "websocket";
    req.headers["sec-websocket-version"] = "13";
    // The 101 response and the first frame (a NATS client's INFO, written when this turn's
    // output is flushed) leave in one write: a syscall less per connection. The first write
    // uncorks (WebSocketTransport.write), else the next turn does (an MQTT client speaks
    // first); an abort's end() uncorks by itself.
    socket.cork();
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.clearDeadline(plainOf(socket));
      this.attach(ws, req, socket);
      setImmediate(uncork, socket);
    });
  }

  private attach(ws: WebSocket, req: http.IncomingMessage, socket: net.Socket): void {
    const cfg = this.cfg;
    const verified = cfg.tls ? peerOf(socket as tls.TLSSocket) : undefined;
    const extras: Partial<AuthContext> = { tlsMap: cfg.tls?.verifyAndMap ?? false };
    if (cfg.noAuthUser !== undefined) extras.noAuthUser = cfg.noAuthUser;
    if (cfg.authorization) {
      const { user, password, token } = cfg.authorization;
      extras.override = { user, password, token };
    }
    if (cfg.jwtCookie) {
      const jwt = cookie(req.headers.cookie, cfg.jwtCookie);
      if (jwt === null) this.edge.log.debug(`websocket: cookie "${cfg.jwtCookie}" is not valid URI encoding, ignored`, { remote: remote(socket) });
      else if (jwt) extras.cookieJwt = jwt;
    }
    // permessage-deflate on the event loop when the agreed parameters allow, else ws's own.
    const deflateLater = ws.extensions.includes("permessage-deflate") && !takeOverDeflate(ws);
    if (deflateLater) this.edge.log.debug(`websocket: permessage-deflate left to ws (${ws.extensions})`, { remote: remote(socket) });
    const transport = new WebSocketTransport(ws, socket, this.maxFrame.after, deflateLater);
    transport.limitFrames(this.maxFrame.before);
    const mqtt = this.edge.mqtt;
    if (mqtt && isMqttPath(req.url ?? "/")) {
      // MQTT over WebSocket: the MQTT block's settings and auth apply (connection type MQTT_WS).
      const conn = mqtt.connect(transport, socket.remoteAddress ?? "", socket.remotePort ?? 0, "MQTT_WS", verified?.peer);
      ws.on("message", (data: Buffer) => conn.receive(data));
      ws.on("error", (err) => {
        conn.socketError();
        this.edge.log.debug(`websocket error: ${err.message}`, conn.logContext());
        conn.close("Read Error");
      });
      ws.on("close", () => conn.close("Client Closed"));
      return;
    }
    this.edge.connect(transport, socket.remoteAddress ?? "", socket.remotePort ?? 0, "WEBSOCKET", extras,
      (client: NatsClient) => {
        client.tlsPeer = verified?.peer;
        client.authTimeoutMs = cfg.authorization?.timeoutMs;
        ws.on("message", (data: Buffer) => client.receive(data));
        ws.on("error", (err) => {
          client.socketError();
          client.ctxLog(`websocket error: ${err.message}`);
          client.close("Read Error");
        });
        ws.on("close", () => client.close("Client Closed"));
      });
  }

  private logRefusal(req: http.IncomingMessage, reason: string): void {
    this.edge.log.error(`${remote(req.socket)} - websocket handshake error: ${reason}`);
  }
}

/** Terminates closed WebSockets whose client has not answered the close in time. */
const WS_LINGER = new Timeouts<WebSocket>((ws) => ws.terminate());

/** ws copies its send options: one object serves every write. */
const BINARY = { binary: true } as const;

function uncork(socket: net.Socket): void {
  if (socket.writableCorked > 0) socket.uncork();
}

/** nats-server's error response: the bare status text, and the version it speaks. */
function refusalHeaders(body: string): Record<string, string> {
  return {
    "Content-Type": "text/plain; charset=utf-8",
    "Sec-Websocket-Version": "13",
    "X-Content-Type-Options": "nosniff",
    "Content-Length": String(Buffer.byteLength(body)),
  };
}

/**
 * A WebSocket as a client transport. The close code follows nats-server: 1000 client closed,
 * 1008 policy (auth, slow consumer, limits), 1002 protocol, 1009 payload, 1001 shutdown,
 * no close frame (1006) for stale/read/write errors and TLS, 1011 otherwise.
 */
class WebSocketTransport implements ClientTransport {
  /** ws's own permessage-deflate compresses (takeOverDeflate could not): a send is compressed
   *  on libuv's thread pool, so it is done later, and each message costs a trip there. While one
   *  is on its way, what Outbound writes is held and leaves as one message once it is out.
   *  Compressed by deflate.ts, a send is on the socket when ws.send returns, as uncompressed. */
  private readonly sent: (() => void) | undefined;
  private sending = false;
  private held: Buffer[] | undefined;
  private heldBytes = 0;
  private drained: (() => void) | undefined;

  constructor(private readonly ws: WebSocket, private readonly socket: net.Socket, private readonly maxFrame: number, deflateLater: boolean) {
    if (deflateLater) this.sent = () => this.afterSend();
  }

  /** The client authenticated: frames up to max_payload + max_control_line + margin. */
  authenticated(): void {
    this.limitFrames(this.maxFrame);
  }

  /**
   * Sets the frame bound of this connection. ws has one maxPayload per server, checked by each
   * connection's Receiver on the frame header (`_maxPayload`, the field ws reads per frame);
   * when a ws release drops that field, the server-wide bound (the larger one) applies alone.
   */
  limitFrames(bytes: number): void {
    const receiver = (this.ws as unknown as { _receiver?: { _maxPayload?: number } })._receiver;
    if (receiver && typeof receiver._maxPayload === "number") receiver._maxPayload = bytes;
  }

  /** ws counts a message it is still compressing in bufferedAmount, so Outbound does not
   *  reuse the buffer until it is gone, compressed or not; held writes are counted too. */
  write(data: Buffer): void {
    if (this.sending) {
      (this.held ??= []).push(data);
      this.heldBytes += data.length;
      return;
    }
    this.send(data);
    // The upgrade corked the socket (see upgrade()); Outbound must find the write taken.
    if (this.socket.writableCorked > 0) this.socket.uncork();
  }

  private send(data: Buffer): void {
    this.sending = this.sent !== undefined;
    this.ws.send(data, BINARY, this.sent);
  }

  /** A compressed send is out (the kernel took it): the writes held meanwhile go as one
   *  message; with none, this is the drain Outbound waits for. */
  private afterSend(): void {
    this.sending = false;
    const held = this.takeHeld();
    if (held) return this.send(held);
    const drained = this.drained;
    this.drained = undefined;
    drained?.();
  }

  private takeHeld(): Buffer | undefined {
    const held = this.held;
    if (!held) return undefined;
    this.held = undefined;
    this.heldBytes = 0;
    return held.length === 1 ? held[0] : Buffer.concat(held);
  }

  get pendingBytes(): number { return this.ws.bufferedAmount + this.heldBytes; }
  /** Compressed by ws: a send may be out without the socket's "drain" (its buffer never filled). */
  onDrain(cb: () => void): void {
    if (this.sent) this.drained = cb;
    else onceWritten(this.socket, cb);
  }
  pause(): void { this.ws.pause(); }
  resume(): void { this.ws.resume(); }

  close(reason?: CloseReason): void {
    if (this.ws.readyState === this.ws.CLOSED) return; // the client closed it: nothing left to send
    // Held writes go first (ws queues them behind the send under way), then the close frame.
    const held = this.takeHeld();
    if (held) this.ws.send(held, BINARY);
    const code = closeCode(reason);
    if (code === undefined) return this.ws.terminate();
    this.ws.close(code, reason);
    WS_LINGER.set(this.ws, LINGER_MS);
  }

  ended(): Promise<void> {
    return new Promise((resolve) => {
      if (this.ws.readyState === this.ws.CLOSED) resolve();
      else this.ws.once("close", () => resolve());
    });
  }
}

function closeCode(reason: CloseReason | undefined): number | undefined {
  switch (reason) {
    case undefined:
    case "Client Closed": return 1000;
    case "Authentication Timeout":
    case "Authentication Failure":
    case "Authentication Expired":
    case "Slow Consumer (Pending Bytes)":
    case "Slow Consumer (Write Deadline)":
    case "Maximum Connections Exceeded":
    case "Maximum Control Line Exceeded": return 1008;
    case "Protocol Violation":
    case "Parse Error":
    case "Bad Client Protocol Version":
    case "No Responders Requires Headers": return 1002;
    case "Maximum Message Payload Exceeded": return 1009;
    case "Server Shutdown":
    case "Lame Duck Mode": return 1001;
    case "Stale Connection":
    case "Read Error":
    case "Write Error":
    case "TLS Handshake Error": return undefined;
    default: return 1011;
  }
}

/** The cookie's value; null when it is not valid URI encoding (no cookie JWT then). */
function cookie(header: string | undefined, name: string): string | undefined | null {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        return null; // URIError: %E0%A4%A and the like
      }
    }
  }
  return undefined;
}

function remote(socket: net.Socket): string {
  return `${socket.remoteAddress}:${socket.remotePort}`;
}
