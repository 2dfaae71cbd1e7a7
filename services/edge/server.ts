// The edge: client listeners, the live connections, server identity and INFO, traffic
// counters, config reload. It reaches routing only through the RouterLink it is given.
import net from "node:net";
import { randomInt } from "node:crypto";
import { ERR, type CloseReason } from "../common/errors.js";
import type { Options } from "../common/config/options.js";
import type { Logger } from "../common/log.js";
import type { RouterLink } from "../router/link.js";
import { AuthPipeline } from "./auth/index.js";
import { NatsClient, type ClientContext, type ClientTransport, type TrafficStats } from "./nats/client.js";

/** The nats-server version whose client-visible behaviour meshbroker matches. Clients read
 *  INFO.version to decide which features (headers, no-responders) they may use. */
export const NATS_COMPAT_VERSION = "2.9.10";

/** How many closed connections /connz?state=closed remembers (nats-server keeps 10,000). */
const CLOSED_KEPT = 10_000;

export interface EdgeDeps {
  options: Options;
  link: RouterLink;
  log: Logger;
}

export class EdgeServer implements ClientContext {
  options: Options;
  auth: AuthPipeline;
  readonly link: RouterLink;
  readonly log: Logger;
  readonly serverId = newServerId();
  readonly startTime = new Date();
  configLoadTime = new Date();
  readonly stats: TrafficStats = { inMsgs: 0, outMsgs: 0, inBytes: 0, outBytes: 0, slowConsumers: 0 };
  readonly clients = new Map<number, NatsClient>();
  readonly closed: NatsClient[] = [];
  totalConnections = 0;
  authFailures = new Map<string, number>();
  private nextCid = 1;
  private listener: net.Server | undefined;
  private shuttingDown = false;

  constructor(deps: EdgeDeps) {
    this.options = deps.options;
    this.link = deps.link;
    this.log = deps.log;
    this.auth = new AuthPipeline(deps.options);
  }

  get serverName(): string {
    return this.options.serverName || this.serverId;
  }

  /** The bound client port (after listen; the configured one may have been 0). */
  get port(): number {
    const addr = this.listener?.address();
    return addr && typeof addr === "object" ? addr.port : this.options.port;
  }

  async listen(): Promise<void> {
    const server = net.createServer({ noDelay: true }, (socket) => this.accept(socket));
    this.listener = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.options.port, this.options.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    server.on("error", (err) => this.log.error(`client listener: ${err.message}`));
    this.log.notice(`listening for NATS clients on ${hostPort(this.options.host, this.port)}`);
  }

  infoFor(client: NatsClient): Record<string, unknown> {
    const o = this.options;
    const info: Record<string, unknown> = {
      server_id: this.serverId,
      server_name: this.serverName,
      version: NATS_COMPAT_VERSION,
      proto: 1,
      go: `node${process.version}`,
      host: o.host,
      port: this.port,
      headers: true,
    };
    if (this.auth.required) info.auth_required = true;
    info.max_payload = o.maxPayload;
    info.client_id = client.cid;
    info.client_ip = client.remoteAddress;
    return info;
  }

  clientClosed(client: NatsClient, reason: CloseReason): void {
    this.clients.delete(client.cid);
    this.closed.push(client);
    if (this.closed.length > CLOSED_KEPT) this.closed.splice(0, this.closed.length - CLOSED_KEPT);
    this.log.debug(`Client connection closed: ${reason}`, client.logContext());
  }

  authFailed(client: NatsClient, reason: string): void {
    this.authFailures.set(reason, (this.authFailures.get(reason) ?? 0) + 1);
    this.log.error(`authentication error: ${reason}`, client.logContext());
  }

  /** Apply a reloaded config: limits and authorization take effect for live connections too. */
  reload(options: Options): void {
    this.options = options;
    this.configLoadTime = new Date();
    this.auth = new AuthPipeline(options);
    this.log.reconfigure(options.log);
    for (const c of this.clients.values()) c.applyOptions(options);
  }

  /** Stop accepting, flush what every client has pending, close them, close the listener. */
  async shutdown(): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    const listener = this.listener;
    const closedListener = listener
      ? new Promise<void>((resolve) => listener.close(() => resolve()))
      : Promise.resolve();
    const sockets: Promise<void>[] = [];
    for (const c of [...this.clients.values()]) sockets.push(c.closeGracefully("Server Shutdown"));
    await Promise.all(sockets);
    await closedListener;
  }

  private accept(socket: net.Socket): void {
    if (this.shuttingDown) {
      socket.destroy();
      return;
    }
    const cid = this.nextCid++;
    const client = new NatsClient(cid, socketTransport(socket), this,
      socket.remoteAddress ?? "", socket.remotePort ?? 0);
    this.totalConnections++;
    socket.on("data", (chunk: Buffer) => client.receive(chunk));
    socket.on("error", (err) => {
      this.log.debug(`read error: ${err.message}`, client.logContext());
      client.close("Read Error");
    });
    socket.on("close", () => client.close("Client Closed"));
    if (this.clients.size >= this.options.maxConnections) {
      client.sendInfo();
      this.log.error(`maximum connections of ${this.options.maxConnections} exceeded`, client.logContext());
      client.close("Maximum Connections Exceeded", ERR.maxConnections);
      return;
    }
    this.clients.set(cid, client);
    this.log.debug("Client connection created", client.logContext());
    client.start();
  }
}

/** A TCP socket as a client transport. */
function socketTransport(socket: net.Socket): ClientTransport {
  return {
    write: (data) => { socket.write(data); },
    get pendingBytes() { return socket.writableLength; },
    onDrain: (cb) => { socket.once("drain", cb); },
    // end() lets the kernel send what is queued; destroy if the peer never reads it.
    close: () => {
      socket.end();
      setTimeout(() => socket.destroy(), 2_000).unref();
    },
    ended: () => new Promise<void>((resolve) => {
      if (socket.destroyed) resolve();
      else socket.once("close", () => resolve());
    }),
  };
}

function newServerId(): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let id = "N";
  for (let i = 0; i < 55; i++) id += alphabet[randomInt(32)];
  return id;
}

export function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
