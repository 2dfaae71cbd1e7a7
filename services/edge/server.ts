// The edge: client listeners, the live connections, server identity and INFO, traffic
// counters, config reload. It reaches routing only through the RouterLink it is given.
import net from "node:net";
import tls from "node:tls";
import { randomInt } from "node:crypto";
import { ERR, type CloseReason } from "../common/errors.js";
import type { Options, TlsConfig } from "../common/config/options.js";
import type { LogContext, Logger } from "../common/log.js";
import { advertisedAddress, hostPort, listenOn, reachableAddress } from "../common/address.js";
import { accountSet, type ClientUrls, type EdgeClientUrls, type RouterLink } from "../router/link.js";
import { AuthPipeline, type AuthContext, type ConnectionType } from "./auth/index.js";
import { NatsClient, type ClientContext, type ClientTransport, type TrafficStats } from "./nats/client.js";
import { bindSocket, SocketTransport } from "./socket-transport.js";
import { MemoryReclaimer, RECLAIM_DEFAULTS, majorGc } from "../common/memory.js";
import { closedSnapshot, type ConnectionView } from "./connection-view.js";
import { connectionFault, FaultCounter, type FaultReason, type IsolatedConnection } from "./boundary.js";
import { peerOf, plainOf, serverOptions } from "./tls.js";
import { WebsocketListener } from "./websocket/listener.js";
import { MqttServer } from "./mqtt/server.js";
import { MqttConnection } from "./mqtt/connection.js";
import { NATS_COMPAT_VERSION, type EdgeCluster, type HttpInfo, type MonitorContext, type MqttEdgeContext, type SystemContext, type WebsocketContext } from "./context.js";
import { SystemAccount } from "./system.js";
import { Rebalancer } from "./rebalance.js";

/** An advertise value as a connect URL (host:port), a bare host taking the listener's port. */
function advertisedUrl(advertise: string, listenPort: number): string {
  const { host, port } = advertisedAddress(advertise, listenPort);
  return hostPort(host, port);
}

/** How many closed connections /connz?state=closed remembers (nats-server keeps 10,000). */
const CLOSED_KEPT = 10_000;

/** An INFO line's text before and after a client's own fields. */
interface InfoText {
  head: string;
  tail: string;
}

export interface EdgeDeps {
  options: Options;
  link: RouterLink;
  log: Logger;
  /** The edge role's link to the routers (undefined when embedded). */
  cluster?: EdgeCluster;
}

export class EdgeServer implements ClientContext, MonitorContext, SystemContext, WebsocketContext, MqttEdgeContext {
  options: Options;
  auth: AuthPipeline;
  readonly link: RouterLink;
  readonly log: Logger;
  readonly cluster: EdgeCluster | undefined;
  readonly serverId = newServerId();
  readonly startTime = new Date();
  configLoadTime = new Date();
  readonly stats: TrafficStats = { inMsgs: 0, outMsgs: 0, inBytes: 0, outBytes: 0, slowConsumers: 0 };
  readonly clients = new Map<number, NatsClient>();
  /** Recently closed connections of every protocol, oldest first, up to 2 × CLOSED_KEPT (trimmed
   *  in one go: dropping the oldest on each close shifted 10,000 entries per close). */
  private readonly closedKept: ConnectionView[] = [];
  totalConnections = 0;
  authFailures = new Map<string, number>();
  /** meshbroker_connection_errors_total{type,reason} (see boundary.ts). */
  readonly faults = new FaultCounter();
  /** A major GC once a burst of closed connections is over (services/common/memory.ts). */
  private readonly reclaimer = new MemoryReclaimer(majorGc(), RECLAIM_DEFAULTS,
    (ms, second) => {
      const m = process.memoryUsage();
      const mb = (n: number) => `${(n / 1048576).toFixed(0)} MB`;
      this.log.debug(`memory: ${second ? "the second" : "a"} major GC after a burst of closed connections took ${ms.toFixed(0)} ms; ` +
        `rss ${mb(m.rss)}, heap ${mb(m.heapUsed)} of ${mb(m.heapTotal)}, external ${mb(m.external)}`);
    });
  private nextCid = 1;
  private listener: net.Server | undefined;
  private boundPort: number | undefined;
  private shuttingDown = false;
  private lameDucking = false;
  private listenersClosed: Promise<unknown> | undefined;
  /** Ends a lame-duck wait early (shutdown called meanwhile). */
  private wakeLameDuck: (() => void) | undefined;
  /** Runs TLS handshakes of client connections (which start in the clear, INFO first). */
  private tlsServer: { config: object; server: tls.Server } | undefined;
  /** Client connections in their TLS handshake, by their plain socket (a TLS socket's `_parent`:
   *  looking them up by remote address cost a getpeername call on each side). */
  private readonly tlsPending = new WeakMap<net.Socket, { client: NatsClient; transport: SocketTransport }>();
  /** The WebSocket listener, when the config has a `websocket {}` block. */
  websocket: WebsocketListener | undefined;
  /** MQTT clients (TCP and WebSocket), when the config has an `mqtt {}` block. */
  mqtt: MqttServer | undefined;
  /** The system account's services and events, when there is a system account. */
  system: SystemAccount | undefined;
  /** The monitoring listener's part of /varz, once it listens. */
  httpInfo: (() => HttpInfo) | undefined;
  /** In a cluster: every edge's client URLs, as the router last sent them (INFO connect_urls). */
  private clusterUrls: EdgeClientUrls[] | undefined;
  /** This edge's own client URLs, once its listeners are bound (none with no_advertise). */
  private ownUrls: ClientUrls | undefined;
  /** INFO lines' text around the client's fields, by kind (WebSocket 2 + auth required 1),
   *  and what they were made of. */
  private readonly infoTexts: (InfoText | undefined)[] = [undefined, undefined, undefined, undefined];
  private readonly infoMadeOf = {
    options: undefined as Options | undefined, auth: undefined as AuthPipeline | undefined, port: 0, wsPort: 0,
    clusterUrls: undefined as EdgeClientUrls[] | undefined, ownUrls: undefined as ClientUrls | undefined, lameDucking: false,
  };
  /** Cluster edges: reports the client count, and moves clients when `edge { rebalance }` says so. */
  rebalancer: Rebalancer | undefined;

  constructor(deps: EdgeDeps) {
    this.options = deps.options;
    this.link = deps.link;
    this.log = deps.log;
    this.cluster = deps.cluster;
    this.auth = new AuthPipeline(deps.options);
  }

  get serverName(): string {
    return this.options.serverName || this.serverId;
  }

  /** False once lame duck mode or shutdown began: a handshake that finishes now is refused. */
  get accepting(): boolean {
    return !this.shuttingDown && !this.lameDucking;
  }

  /** The bound client port (after listen; the configured one may have been 0). */
  get port(): number {
    return this.boundPort ?? this.options.port;
  }

  async listen(): Promise<void> {
    this.sendAccounts();
    const sys = this.auth.systemAccount;
    if (sys) {
      this.system = new SystemAccount(this, sys);
      this.system.start();
    }
    const server = net.createServer({ noDelay: true }, (socket) => this.accept(socket));
    this.listener = server;
    this.boundPort = await listenOn(server, this.options.port, this.options.host,
      (err) => this.log.error(`client listener: ${err.message}`));
    this.log.notice(`listening for NATS clients on ${hostPort(this.options.host, this.port)}`);
    try {
      if (this.options.mqtt) {
        this.mqtt = new MqttServer(this, this.options.mqtt);
        await this.mqtt.listen();
      }
      if (this.options.websocket) {
        this.websocket = new WebsocketListener(this, this.options.websocket);
        await this.websocket.listen();
      }
    } catch (err) {
      await this.shutdown();
      throw err;
    }
    this.advertise();
    if (this.cluster && this.link.reportClients) this.rebalancer = new Rebalancer(this);
  }

  /**
   * Cluster links: registers this edge's client URLs (client_advertise, else the listen address;
   * websocket { advertise }, else its listen address) and follows the cluster's set. With
   * no_advertise the edge registers nothing and its clients get no connect_urls (nats-server).
   */
  private advertise(): void {
    if (!this.link.advertise) return;
    const o = this.options;
    const wsAdv = o.websocket?.advertise;
    const ws = !o.websocket || !this.websocket ? undefined
      : wsAdv ? advertisedUrl(wsAdv, this.websocket.port) : reachableAddress(o.websocket.host, this.websocket.port);
    this.ownUrls = this.noAdvertise ? undefined : {
      nats: [o.clientAdvertise ? advertisedUrl(o.clientAdvertise, this.port) : reachableAddress(o.host, this.port)], websocket: ws ? [ws] : [],
    };
    this.link.advertise(this.ownUrls, (edges) => this.clusterUrlsChanged(edges));
  }

  private get noAdvertise(): boolean {
    return this.options.noAdvertise || this.options.edge?.noAdvertise === true;
  }

  /** INFO connect_urls for a NATS (TCP) or WebSocket client, as nats-server 2.9: this edge's
   *  URL first (left out in lame duck), then every other edge's. */
  private connectUrls(websocket: boolean, own = !this.lameDucking): string[] {
    const out: string[] = [];
    if (this.noAdvertise || !this.clusterUrls) return out;
    const pick = (u: ClientUrls) => (websocket ? u.websocket : u.nats);
    if (this.ownUrls && own) out.push(...pick(this.ownUrls));
    for (const e of this.clusterUrls) {
      if (e.edgeId === this.serverId) continue;
      for (const url of pick(e.urls)) if (!out.includes(url)) out.push(url);
    }
    return out;
  }

  /**
   * Rebalancing moves a client: a NATS client (TCP or WebSocket) that takes async INFO gets
   * nats-server's lame-duck INFO ("ldm": true, connect_urls without this edge), so that it
   * reconnects to another edge; then the client, of any protocol, is closed.
   */
  moveClient(c: ConnectionView): void {
    const nats = this.clients.get(c.cid);
    if (nats === c && nats.takesAsyncInfo) {
      nats.sendInfo({ ldm: true, connect_urls: this.connectUrls(nats.connectionType === "WEBSOCKET", false) });
    }
    if (c instanceof MqttConnection) return c.moveAway();
    c.close("Server Shutdown");
  }

  /** The router sent the cluster's URLs: protocol-1 clients whose list changed get an async INFO. */
  private clusterUrlsChanged(edges: EdgeClientUrls[]): void {
    const before = [this.connectUrls(false).join(), this.connectUrls(true).join()];
    this.clusterUrls = edges;
    this.sendUrlInfo(before);
  }

  /** An async INFO to the protocol-1 clients whose connect_urls differ from `before` [tcp, ws]. */
  private sendUrlInfo(before: string[], extra?: Record<string, unknown>): void {
    const changed = [this.connectUrls(false).join() !== before[0], this.connectUrls(true).join() !== before[1]];
    if (!extra && !changed[0] && !changed[1]) return;
    for (const c of this.clients.values()) {
      if (!c.takesAsyncInfo) continue;
      if (extra || changed[c.connectionType === "WEBSOCKET" ? 1 : 0]) c.sendInfo(extra);
    }
  }

  /** The client's INFO line. The JSON around its own fields (client_id, client_ip, nonce) is
   *  made once per kind of client and again only once what it is made of changed
   *  (infoTextsCurrent); `extra` fields (an async INFO's "ldm", connect_urls) make a text of
   *  their own. */
  infoLine(client: NatsClient, extra?: Record<string, unknown>): string {
    const ws = client.connectionType === "WEBSOCKET";
    const auth = this.auth.requiredFor(client.authExtras);
    let text: InfoText;
    if (extra) text = this.infoText(ws, auth, extra);
    else {
      if (!this.infoTextsCurrent()) this.infoTexts.fill(undefined);
      const kind = (ws ? 2 : 0) + (auth ? 1 : 0);
      text = this.infoTexts[kind] ??= this.infoText(ws, auth);
    }
    const nonce = client.nonce === undefined ? "" : `,"nonce":${JSON.stringify(client.nonce)}`;
    return `${text.head}${client.cid},"client_ip":${JSON.stringify(client.remoteAddress)}${nonce}${text.tail}`;
  }

  private infoText(ws: boolean, auth: boolean, extra?: Record<string, unknown>): InfoText {
    const head = JSON.stringify(this.serverInfo(ws, auth));
    const urls = this.connectUrls(ws);
    const after = JSON.stringify({ ...(urls.length > 0 ? { connect_urls: urls } : {}), ...extra });
    return { head: `INFO ${head.slice(0, -1)},"client_id":`, tail: `${after === "{}" ? "}" : `,${after.slice(1)}`} \r\n` };
  }

  /** Whether the INFO texts were made from the options, auth, ports and URLs of now. */
  private infoTextsCurrent(): boolean {
    const k = this.infoMadeOf;
    const wsPort = this.websocket?.port ?? 0;
    if (k.options === this.options && k.auth === this.auth && k.port === this.port && k.wsPort === wsPort &&
        k.clusterUrls === this.clusterUrls && k.ownUrls === this.ownUrls && k.lameDucking === this.lameDucking) return true;
    Object.assign(k, { options: this.options, auth: this.auth, port: this.port, wsPort, clusterUrls: this.clusterUrls,
      ownUrls: this.ownUrls, lameDucking: this.lameDucking });
    return false;
  }

  /** INFO's server fields, up to max_payload, for a TCP or WebSocket client. */
  private serverInfo(websocket: boolean, authRequired: boolean): Record<string, unknown> {
    const o = this.options;
    // A WebSocket client is told about the listener it is on, whose TLS is the wss layer's
    // (nats-server 2.9.19+; 2.9.10 still sent the TCP listener's host, port and TLS).
    const ws = websocket ? o.websocket : undefined;
    // client_advertise is also the host and port a NATS client is told (nats-server).
    const adv = !ws && o.clientAdvertise ? advertisedAddress(o.clientAdvertise, this.port) : undefined;
    const info: Record<string, unknown> = {
      server_id: this.serverId,
      server_name: this.serverName,
      version: NATS_COMPAT_VERSION,
      proto: 1,
      go: `node${process.version}`,
      host: ws ? ws.host : adv?.host ?? o.host,
      port: ws ? this.websocket?.port ?? ws.port : adv?.port ?? this.port,
      headers: true,
    };
    if (authRequired) info.auth_required = true;
    const tlsRequired = ws ? ws.tls !== undefined : o.tls !== undefined;
    if (tlsRequired) info.tls_required = true;
    if (o.tls?.verify || o.tls?.verifyAndMap) info.tls_verify = true;
    if (ws?.tls) info.tls_available = true;
    info.max_payload = o.maxPayload;
    return info;
  }

  /** A client of any protocol passed authentication. */
  clientConnected(client: ConnectionView): void {
    this.system?.connected(client);
  }

  clientClosed(client: NatsClient, reason: CloseReason): void {
    this.clients.delete(client.cid);
    if (client.connected) this.system?.disconnected(client);
    this.remember(client);
    if (this.log.debugOn) this.log.debug(`Client connection closed: ${reason}`, client.logContext());
  }

  handshakeClosed(): void {
    this.reclaimer.connectionClosed();
  }

  /** Keeps a closed connection of any protocol for /connz?state=closed, as a snapshot. */
  remember(conn: ConnectionView): void {
    this.closedKept.push(closedSnapshot(conn));
    this.reclaimer.connectionClosed();
    if (this.closedKept.length >= 2 * CLOSED_KEPT) this.closedKept.splice(0, this.closedKept.length - CLOSED_KEPT);
  }

  /** The last CLOSED_KEPT closed connections of every protocol (/connz?state=closed). */
  get closed(): readonly ConnectionView[] {
    return this.closedKept.length > CLOSED_KEPT ? this.closedKept.slice(-CLOSED_KEPT) : this.closedKept;
  }

  /** Every open client connection: NATS (TCP, WebSocket) and MQTT. */
  openConnections(): ConnectionView[] {
    const list: ConnectionView[] = [...this.clients.values()];
    if (this.mqtt) for (const c of this.mqtt.connections.values()) list.push(c);
    return list;
  }

  /** Connected clients of an account, every protocol (an account JWT's `limits.conn`). */
  accountConnections(account: string): number {
    let n = 0;
    for (const c of this.clients.values()) if (c.connected && c.account === account) n++;
    if (this.mqtt) for (const c of this.mqtt.connections.values()) if (c.account === account) n++;
    return n;
  }

  /** Open client connections of every protocol, as max_connections counts them (nats-server). */
  connectionCount(): number {
    return this.clients.size + (this.mqtt?.connections.size ?? 0);
  }

  /** A new id for a connection of any protocol (NATS cid, MQTT connection id): every accepted
   *  connection takes one, so this is where the reclaimer hears of connects. */
  newConnectionId(): number {
    this.reclaimer.connectionOpened();
    return this.nextCid++;
  }

  authFailed(client: { logContext(): LogContext }, reason: string): void {
    this.authFailures.set(reason, (this.authFailures.get(reason) ?? 0) + 1);
    this.log.error(`authentication error: ${reason}`, client.logContext());
  }

  /** A connection's handler failed: logged, counted, that connection closed (boundary.ts). */
  connectionFault(conn: IsolatedConnection, reason: FaultReason, err: unknown): void {
    connectionFault(this.log, this.faults, conn, reason, err);
  }

  /** A socket error of a connection (read error, reset): counted; the caller closes it. */
  socketError(type: string): void {
    this.faults.count(type, "socket");
  }

  /** Apply a reloaded config: limits and authorization take effect for live connections too. */
  /** The router routes with this edge's accounts (config and operator mode), sent as data. */
  private sendAccounts(): void {
    this.link.configureAccounts(this.serverId, accountSet(this.auth.accounts(), this.auth.systemAccount ?? ""));
  }

  reload(options: Options): void {
    const auth = new AuthPipeline(options); // may throw (bad operator JWTs): nothing changed yet
    // Certificates are read again (rotated files under the same paths): a missing or broken
    // file refuses the reload before anything changed. Connections up keep their session.
    const tlsAcceptor = options.tls ? this.newTlsAcceptor(options.tls) : undefined;
    const tlsUpdates = [this.websocket?.prepareTlsReload(), this.mqtt?.prepareTlsReload()];
    this.tlsServer = tlsAcceptor && options.tls ? { config: options.tls, server: tlsAcceptor } : undefined;
    for (const apply of tlsUpdates) apply?.();
    this.options = options;
    this.configLoadTime = new Date();
    this.auth = auth;
    this.sendAccounts();
    this.log.reconfigure(options.log);
    for (const c of this.clients.values()) c.applyOptions(options);
    this.mqtt?.applyOptions();
  }

  /** Stop accepting, flush what every client has pending, close them, close the listener. */
  async shutdown(): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    this.rebalancer?.close();
    this.wakeLameDuck?.();
    this.system?.stop();
    this.reclaimer.close();
    const closedListeners = Promise.all([this.stopAccepting(), this.mqtt?.close()]);
    const sockets: Promise<void>[] = [];
    for (const c of [...this.clients.values()]) sockets.push(c.closeGracefully("Server Shutdown"));
    await Promise.all(sockets);
    await closedListeners;
  }

  /**
   * Lame duck mode, as nats-server's: stop accepting on every listener, tell NATS clients
   * (an INFO with "ldm": true) so they reconnect elsewhere, wait lame_duck_grace_period, then
   * close the connections one by one, spread over the rest of lame_duck_duration (at most a
   * second apart), and shut down. Spreading the closes spares the other servers a stampede of
   * reconnects. A shutdown() meanwhile cuts it short.
   */
  async lameDuck(): Promise<void> {
    if (this.shuttingDown || this.lameDucking) return;
    const before = [this.connectUrls(false).join(), this.connectUrls(true).join()];
    this.lameDucking = true;
    this.log.notice("Entering lame duck mode, stop accepting new clients");
    // In a cluster the URLs go first, so that the other edges' clients stop being sent here.
    if (this.ownUrls) this.link.advertise?.(undefined, (edges) => this.clusterUrlsChanged(edges));
    void this.stopAccepting(); // takes effect at once; resolves when the last connection is gone
    const conns = this.openConnections();
    if (conns.length > 0 && !this.shuttingDown) {
      // connect_urls without this edge now (nats-server's ldm INFO).
      this.sendUrlInfo(before, { ldm: true });
      const grace = this.options.lameDuckGracePeriodMs;
      const spread = Math.max(this.options.lameDuckDurationMs - grace, 1000);
      // Per close; many clients in a short duration are closed in batches (timers have 1 ms grain).
      const interval = Math.min(Math.max(Math.floor(spread / conns.length), 1), 1000);
      const batch = Math.max(Math.floor(conns.length / spread), 1);
      await this.lameDuckWait(grace);
      if (!this.shuttingDown) this.log.notice("Closing existing clients");
      for (let i = 0; i < conns.length && !this.shuttingDown; i++) {
        conns[i].close("Server Shutdown");
        if (i < conns.length - 1 && (i + 1) % batch === 0) await this.lameDuckWait(interval / 2 + Math.random() * interval / 2);
      }
    }
    await this.shutdown();
  }

  private lameDuckWait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wakeLameDuck = done;
    });
  }

  /**
   * Closes every client listener (NATS, WebSocket, MQTT) at once; open connections stay. The
   * promise resolves when the listeners' last connections are gone too (net.Server.close).
   */
  private stopAccepting(): Promise<unknown> {
    const listener = this.listener;
    this.listenersClosed ??= Promise.all([
      listener?.listening ? new Promise<void>((resolve) => listener.close(() => resolve())) : undefined,
      this.websocket?.close(),
      this.mqtt?.stopAccepting(),
    ]);
    return this.listenersClosed;
  }

  /**
   * Takes a connection from any listener: applies max_connections, registers it and sends
   * INFO. Returns undefined when it was refused (the transport is closed then).
   */
  connect(transport: ClientTransport, remoteAddress: string, remotePort: number, type: ConnectionType,
          authExtras: Partial<AuthContext> = {}, wire?: (client: NatsClient) => void): NatsClient | undefined {
    if (!this.accepting) {
      transport.close("Server Shutdown");
      return undefined;
    }
    const client = new NatsClient(this.newConnectionId(), transport, this, remoteAddress, remotePort, type);
    client.authExtras = authExtras;
    wire?.(client);
    this.totalConnections++;
    if (this.connectionCount() >= this.options.maxConnections) {
      client.sendInfo();
      this.log.error(`maximum connections of ${this.options.maxConnections} exceeded`, client.logContext());
      client.close("Maximum Connections Exceeded", ERR.maxConnections);
      return undefined;
    }
    this.clients.set(client.cid, client);
    if (this.log.debugOn) this.log.debug("Client connection created", client.logContext()); // no context built per connect
    client.start();
    return client;
  }

  private accept(socket: net.Socket): void {
    const transport = new SocketTransport(socket);
    const tlsConfig = this.options.tls;
    const client = this.connect(transport, socket.remoteAddress ?? "", socket.remotePort ?? 0, "STANDARD", {},
      (c) => { if (!tlsConfig) bindSocket(socket, c); });
    if (!client || !tlsConfig) return;
    // nats-server 2.9: INFO goes out in the clear (tls_required), then the client starts TLS.
    // A (non-listening) tls.Server runs the handshake, so the chain is verified as on any TLS port.
    client.outbound.flush();
    // Until the handshake ends the raw socket is the connection's only error path.
    socket.on("error", (err) => {
      this.socketError(client.connectionType);
      client.ctxLog(`read error before TLS: ${err.message}`);
      client.close("TLS Handshake Error");
    });
    this.tlsPending.set(socket, { client, transport });
    this.tlsAcceptor().emit("connection", socket);
  }

  /** The TLS handshake of a client connection finished. */
  private tlsReady(secure: tls.TLSSocket): void {
    const pending = this.takeTlsPending(secure);
    if (!pending) return void secure.destroy();
    const { client, transport } = pending;
    transport.socket = secure;
    bindSocket(secure, client);
    const verified = peerOf(secure);
    const pinned = this.options.tls?.pinnedCerts;
    if (pinned && pinned.length > 0 && !(verified && pinned.includes(verified.fingerprint))) {
      this.log.error("client certificate is not pinned", client.logContext());
      return client.close("TLS Handshake Error");
    }
    client.tlsPeer = verified?.peer;
  }

  /** The connection whose plain socket `secure` runs over (plainOf). */
  private takeTlsPending(secure: tls.TLSSocket): { client: NatsClient; transport: SocketTransport } | undefined {
    const plain = plainOf(secure);
    const pending = this.tlsPending.get(plain);
    this.tlsPending.delete(plain);
    return pending;
  }

  /** Built once per TLS config: the certificates are read when the first TLS client arrives
   *  (and again on a reload). */
  private tlsAcceptor(): tls.Server {
    const cfg = this.options.tls!;
    if (this.tlsServer?.config !== cfg) this.tlsServer = { config: cfg, server: this.newTlsAcceptor(cfg) };
    return this.tlsServer.server;
  }

  private newTlsAcceptor(cfg: TlsConfig): tls.Server {
    const server = tls.createServer(serverOptions(cfg));
    server.on("secureConnection", (secure) => this.tlsReady(secure));
    server.on("tlsClientError", (err, secure) => {
      const pending = this.takeTlsPending(secure);
      if (!pending) return;
      this.log.error(`TLS handshake error: ${err.message}`, pending.client.logContext());
      pending.client.close("TLS Handshake Error");
    });
    return server;
  }

}


function newServerId(): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let id = "N";
  for (let i = 0; i < 55; i++) id += alphabet[randomInt(32)];
  return id;
}
