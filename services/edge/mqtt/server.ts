// The MQTT side of the edge: the TCP/TLS listener of the `mqtt {}` block and MQTT connections
// arriving over WebSocket (/mqtt). Their sessions and retained messages are the router side's
// (the link's SessionLink).
import net from "node:net";
import tls from "node:tls";
import { hostPort, listenOn } from "../../common/address.js";
import type { MqttConfig } from "../../common/config/options.js";
import type { SessionLink } from "../../router/link.js";
import type { TlsPeer } from "../auth/index.js";
import type { ClientTransport } from "../nats/client.js";
import type { MqttEdgeContext } from "../context.js";
import { bindSocket, SocketTransport } from "../socket-transport.js";
import { peerOf, prepareTlsReload, serverOptions } from "../tls.js";
import { MqttConnection, type MqttListenerContext } from "./connection.js";

export class MqttServer implements MqttListenerContext {
  readonly connections = new Map<number, MqttConnection>();
  readonly sessions: SessionLink;
  private listener: net.Server | undefined;
  private boundPort: number | undefined;
  private stopped: Promise<void> | undefined;

  constructor(readonly edge: MqttEdgeContext, readonly cfg: MqttConfig) {
    if (!edge.link.sessions) throw new Error("mqtt needs the router's session service");
    this.sessions = edge.link.sessions;
  }

  /** For a reload: the tls {} files read again (see prepareTlsReload). */
  prepareTlsReload(): (() => void) | undefined {
    return prepareTlsReload(this.listener, this.cfg.tls);
  }

  get port(): number {
    return this.boundPort ?? this.cfg.port;
  }

  async listen(): Promise<void> {
    const cfg = this.cfg;
    const server = cfg.tls
      ? tls.createServer(serverOptions(cfg.tls),
        (socket) => this.accept(socket, peerOf(socket)?.peer))
      : net.createServer({ noDelay: true }, (socket) => this.accept(socket, undefined));
    if (cfg.tls) server.on("tlsClientError", (err, socket) => this.edge.log.debug(`mqtt TLS handshake error: ${err.message}`,
      { remote: `${socket.remoteAddress}:${socket.remotePort}` }));
    this.listener = server;
    this.boundPort = await listenOn(server, cfg.port, cfg.host, (err) => this.edge.log.error(`mqtt listener: ${err.message}`));
    this.edge.log.notice(`listening for MQTT clients on ${cfg.tls ? "tls" : "tcp"}://${hostPort(cfg.host, this.port)}`);
  }

  /** An MQTT client over any transport (TCP here, WebSocket from the websocket listener). */
  connect(transport: ClientTransport, remoteAddress: string, remotePort: number, type: "MQTT" | "MQTT_WS",
          peer: TlsPeer | undefined): MqttConnection {
    const conn = new MqttConnection(this.edge.newConnectionId(), transport, this, remoteAddress, remotePort, type, peer);
    this.edge.totalConnections++;
    if (!this.edge.accepting) {
      conn.close("Server Shutdown"); // its WebSocket handshake outlasted the listener
    } else if (this.edge.connectionCount() >= this.edge.options.maxConnections) {
      // max_connections counts every protocol; nats-server closes an MQTT client over it at once (no CONNACK).
      this.edge.log.error(`maximum connections of ${this.edge.options.maxConnections} exceeded`, conn.logContext());
      conn.close("Maximum Connections Exceeded");
    } else {
      this.connections.set(conn.cid, conn);
    }
    return conn;
  }

  /** A reload: live connections re-authenticate and take their users' new permissions. */
  applyOptions(): void {
    for (const c of [...this.connections.values()]) c.applyOptions();
  }

  closed(conn: MqttConnection): void {
    this.connections.delete(conn.cid);
  }

  /** Stops accepting new MQTT clients over TCP (lame duck, shutdown). */
  stopAccepting(): Promise<void> {
    this.stopped ??= new Promise<void>((resolve) => {
      if (this.listener?.listening) this.listener.close(() => resolve());
      else resolve();
    });
    return this.stopped;
  }

  async close(): Promise<void> {
    const closing = this.stopAccepting();
    for (const c of [...this.connections.values()]) c.close("Server Shutdown");
    await closing;
  }

  /** The MQTT-over-TCP/TLS boundary: receive() runs the packet handlers inside the connection's
   *  fault boundary; a socket error closes that connection. */
  private accept(socket: net.Socket, peer: TlsPeer | undefined): void {
    bindSocket(socket, this.connect(new SocketTransport(socket), socket.remoteAddress ?? "", socket.remotePort ?? 0, "MQTT", peer));
  }
}
