// One MQTT 3.1.1 connection on the edge: packets decoded and encoded by mqtt-packet, CONNECT
// through the one auth pipeline, topics mapped onto the shared subject space, keep-alive. The
// session (subscriptions, QoS 1/2 state, packet ids of outbound messages, retained messages,
// the will) is the router side's session service, reached through the link's SessionLink.
import { randomBytes } from "node:crypto";
import mqtt, { type IConnectPacket, type IPublishPacket, type ISubscribePacket, type IUnsubscribePacket, type Packet } from "mqtt-packet";
import type { MqttConfig } from "../../common/config/options.js";
import type { CloseReason } from "../../common/errors.js";
import type {
  Connection, MqttSubscription, QoS, SessionClient, SessionLink, SessionWill, StoredMessage,
} from "../../router/link.js";
import type { AuthContext, AuthResult, ConnectionType, Credentials, TlsPeer } from "../auth/index.js";
import { mqttMaySubscribe, PermissionChecker } from "../../common/permissions.js";
import type { ClientTransport } from "../nats/client.js";
import { Outbound } from "../outbound.js";
import type { MqttEdgeContext } from "../context.js";
import type { ConnectionView, SubscriptionView } from "../connection-view.js";
import { filterNeedsParent, topicToSubject } from "../../common/mqtt-topic.js";
import { connectionFault, isolate, type IsolatedConnection } from "../boundary.js";
import { MQTT_MAX_CONNECT_PACKET, MQTT_PACKET_MARGIN, PACKET_MALFORMED, PACKET_OK, PacketSizeGuard } from "./packet-size.js";

/** CONNACK return codes of MQTT 3.1.1, as nats-server uses them. */
const ACCEPTED = 0, BAD_PROTOCOL = 1, BAD_CLIENT_ID = 2, SERVER_UNAVAILABLE = 3, BAD_USER = 4, NOT_AUTHORIZED = 5;
const SUBACK_FAILURE = 0x80;

export interface MqttListenerContext {
  edge: MqttEdgeContext;
  cfg: MqttConfig;
  sessions: SessionLink;
  closed(conn: MqttConnection): void;
}

export class MqttConnection implements SessionClient, Connection, ConnectionView, IsolatedConnection {
  readonly echo = true; // MQTT 3.1.1 delivers a client's own publishes to its subscriptions
  readonly edgeId: string;
  readonly startTime = new Date();
  lastActivityMs = Date.now();
  clientId = "";
  closed = false;
  closeReason: CloseReason | undefined;
  stopTime: Date | undefined;
  inMsgs = 0;
  outMsgs = 0;
  inBytes = 0;
  outBytes = 0;
  /** CONNECT → CONNACK, the only round trip MQTT gives us to measure. */
  rttMs = 0;
  readonly name = "";
  readonly lang = "mqtt";
  readonly version = "3.1.1";
  userName: string | undefined;
  private readonly parser = mqtt.parser({ protocolVersion: 4 });
  /** Packet sizes, checked on the fixed header before mqtt-packet buffers a byte of them. */
  private readonly sizes = new PacketSizeGuard(MQTT_MAX_CONNECT_PACKET);
  /** The last ack still waiting for the store (see ackWhenStored). */
  private acks: Promise<void> | undefined;
  readonly outbound: Outbound;
  private connected = false;
  /** Packets that arrived while CONNECT was being authenticated. */
  private held: Packet[] | undefined;
  /** Attach sent: the session service knows this connection (close() detaches it). */
  private attaching = false;
  /** Attached: holds its session until close() or a takeover. */
  private attached = false;
  /** The session's account (set at attach). */
  private sessionAccount = "";
  /** The session's subscriptions as the service reported them and SUBSCRIBE/UNSUBSCRIBE changed
   *  them (for max_subscriptions and /connz). */
  private filters = new Map<string, QoS>();
  private perms: PermissionChecker | undefined;
  private will: StoredMessage | undefined;
  /** DISCONNECT came: the service drops the will instead of publishing it. */
  private disconnected = false;
  private keepAliveTimer: NodeJS.Timeout | undefined;
  /** Kept to authenticate again when a reload changes the authorization config. */
  private credentials: Credentials = {};
  private expiryTimer: NodeJS.Timeout | undefined;
  /** max_subscriptions, tightened by the user's JWT `subs` (Infinity = none). */
  private maxSubscriptions = Infinity;
  private connectTimer: NodeJS.Timeout | undefined;
  private lastTopic = "";
  private lastSubject: string | undefined;

  constructor(
    readonly cid: number,
    private readonly transport: ClientTransport,
    private readonly ctx: MqttListenerContext,
    readonly remoteAddress: string,
    readonly remotePort: number,
    readonly connectionType: Extract<ConnectionType, "MQTT" | "MQTT_WS">,
    private readonly tlsPeer: TlsPeer | undefined,
  ) {
    const o = ctx.edge.options;
    this.edgeId = ctx.edge.serverId;
    this.outbound = new Outbound(transport, { slowConsumer: (r) => this.close(r) }, o.maxPending, o.writeDeadlineMs);
    this.parser.on("packet", (p: Packet) => this.onPacket(p));
    this.parser.on("error", (err: Error) => this.protocolError(err.message));
    // A client has the auth timeout to send CONNECT.
    const ms = ctx.cfg.authorization?.timeoutMs ?? o.authorization?.timeoutMs ?? o.authTimeoutMs;
    this.connectTimer = setTimeout(() => this.close("Authentication Timeout"), ms);
  }

  /**
   * Bytes from the transport (TCP, TLS, WebSocket): the MQTT connection's fault boundary. The
   * packet handlers run inside it (mqtt-packet emits them synchronously), and their asynchronous
   * continuations go through settle(). Shared state stays consistent when a handler dies halfway:
   * close() detaches the session (whose subscriptions the session itself keeps in step with the
   * router) and removes the connection from the server; a store write either landed or not.
   */
  receive(chunk: Buffer): void {
    if (this.closed) return;
    this.lastActivityMs = Date.now();
    const size = this.sizes.check(chunk);
    if (size !== PACKET_OK) {
      return this.protocolError(size === PACKET_MALFORMED ? "malformed remaining length"
        : `packet of ${size} bytes over the limit of ${this.sizes.limit}`);
    }
    // The boundary inline: the read path allocates no closure per chunk.
    try {
      this.parser.parse(chunk);
    } catch (err) {
      connectionFault(this.ctx.edge.log, this.ctx.edge.faults, this, "exception", err);
    }
  }

  /** An asynchronous continuation of this connection's handling: a failure is a fault. */
  private settle(work: Promise<unknown>): void {
    work.catch((err: unknown) => this.ctx.edge.connectionFault(this, "rejection", err));
  }

  closeOnFault(): void {
    this.close("Internal Error"); // MQTT 3.1.1 has no server DISCONNECT: just close
  }

  /** The transport reported an error (counted; the transport closes the connection). */
  socketError(): void {
    this.ctx.edge.socketError(this.connectionType);
  }

  private onPacket(p: Packet): void {
    if (this.closed) return;
    if (this.held) {
      this.held.push(p);
      return;
    }
    if (!this.connected) {
      if (p.cmd !== "connect") return this.protocolError(`first packet is ${p.cmd}, not CONNECT`);
      return this.onConnect(p);
    }
    // Connected means attached to a session until close(); a packet without one (it cannot
    // happen: close() stops parsing) closes the connection, as [MQTT-3.1.0-1] a packet before CONNECT.
    if (!this.attached) return this.protocolError(`${p.cmd} without a session`);
    const sessions = this.ctx.sessions;
    switch (p.cmd) {
      case "connect": return this.protocolError("second CONNECT"); // [MQTT-3.1.0-2]
      case "publish": return this.onPublish(p);
      case "puback": return sessions.puback(this, p.messageId!);
      case "pubrec": return sessions.pubrec(this, p.messageId!);
      case "pubrel": return this.onPubrel(p.messageId!);
      case "pubcomp": return sessions.pubcomp(this, p.messageId!);
      case "subscribe": return this.onSubscribe(p);
      case "unsubscribe": return this.onUnsubscribe(p);
      case "pingreq": return this.send({ cmd: "pingresp" });
      case "disconnect":
        this.disconnected = true; // [MQTT-3.14.4-3] a clean DISCONNECT discards the will
        return this.close("Client Closed");
      default: return this.protocolError(`unexpected ${p.cmd}`);
    }
  }

  // ---- CONNECT ----

  private onConnect(p: IConnectPacket): void {
    if (p.protocolVersion !== 4 || p.protocolId !== "MQTT") return this.refuse(BAD_PROTOCOL, "unsupported protocol level");
    const clean = p.clean !== false;
    let clientId = p.clientId ?? "";
    if (clientId === "") {
      if (!clean) return this.refuse(BAD_CLIENT_ID, "empty client id requires a clean session"); // [MQTT-3.1.3-8]
      // Unguessable, so nobody can take over a session whose id the server chose (nats-server uses a random NUID).
      clientId = randomBytes(18).toString("base64url");
    }
    // mqtt-packet decodes strings leniently: a replacement character means invalid UTF-8 [MQTT-1.5.3-1].
    if (clientId.includes("\uFFFD")) return this.refuse(BAD_CLIENT_ID, "client id is not valid UTF-8");
    if (p.username === "" || p.username?.includes("\uFFFD")) return this.refuse(BAD_USER, "empty or invalid user name");
    if (p.will) {
      const willSubject = topicToSubject(p.will.topic, false);
      if (willSubject === undefined) return this.protocolError(`invalid will topic "${p.will.topic}"`);
      this.will = {
        topic: p.will.topic, payload: Buffer.from(p.will.payload), qos: (p.will.qos ?? 0) as QoS, retain: !!p.will.retain,
      };
    }
    this.clientId = clientId;
    // The password may be a password, a token or a (bearer) JWT, as nats-server tries them.
    const secret = p.password?.toString("utf8");
    this.credentials = { user: p.username, pass: secret, token: secret, jwt: secret };
    const result = this.ctx.edge.auth.authenticate(this.credentials, this.authContext());
    if (!(result instanceof Promise)) return this.settle(this.authenticated(result, clean, p.keepalive ?? 0));
    this.held = [];
    this.settle(result.then((r) => this.authenticated(r, clean, p.keepalive ?? 0),
      () => this.refuse(NOT_AUTHORIZED, "authentication error")));
  }

  private async authenticated(result: AuthResult, clean: boolean, keepalive: number): Promise<void> {
    if (this.closed) return;
    if (!result.ok) {
      this.ctx.edge.authFailed(this, result.reason);
      return this.refuse(NOT_AUTHORIZED, result.reason);
    }
    const user = result.user;
    // The account JWT's `limits.conn` counts every protocol; as in nats-server the client is closed, no CONNACK.
    const max = user.limits?.accountMaxConnections;
    if (max !== undefined && this.ctx.edge.accountConnections(user.account) >= max) {
      this.ctx.edge.log.error(`maximum account active connections exceeded (${max})`, this.logContext());
      return this.close("Maximum Account Connections Exceeded");
    }
    this.takeUser(result);
    this.held ??= [];
    try {
      this.sessionAccount = user.account;
      this.attaching = true;
      const { present, subscriptions } = await this.ctx.sessions.attach({
        conn: this, clientId: this.clientId, account: user.account, clean,
        subscribe: user.permissions?.subscribe, will: this.permittedWill(), limits: this.ctx.edge.options.mqtt,
      }, this);
      if (this.closed) return; // close() detached it
      this.attached = true;
      this.takeSubscriptions(subscriptions);
      this.connected = true;
      this.sizes.limit = this.ctx.edge.options.maxPayload + MQTT_PACKET_MARGIN;
      this.transport.authenticated?.();
      if (this.connectTimer) clearTimeout(this.connectTimer);
      this.send({ cmd: "connack", returnCode: ACCEPTED, sessionPresent: present });
      this.rttMs = Date.now() - this.startTime.getTime();
      this.ctx.edge.clientConnected(this);
      this.armKeepAlive(keepalive);
      this.ctx.sessions.resume(this);
    } catch (err) {
      this.ctx.edge.log.error(`mqtt session: ${(err as Error).message}`, this.logContext());
      if (this.closed) return;
      // No session service (a router whose Redis has not answered yet) or no store: "server
      // unavailable", so the client retries later.
      if (this.attached) return this.close("Server Shutdown");
      return this.refuse(SERVER_UNAVAILABLE, (err as Error).message);
    }
    const held = this.held;
    this.held = undefined;
    // Packets the client sent before its CONNACK (3.1.1 allows that); in the boundary too.
    for (const p of held ?? []) isolate(this.ctx.edge.log, this.ctx.edge.faults, this, () => this.onPacket(p));
  }

  /** The user's name, permissions, limits and credential expiry (at CONNECT and after a reload). */
  private takeUser(result: AuthResult & { ok: true }): void {
    const user = result.user;
    this.userName = user.name || undefined;
    this.perms = user.permissions ? new PermissionChecker(user.permissions) : undefined;
    this.maxSubscriptions = Math.min(this.ctx.edge.options.maxSubscriptions || Infinity, user.limits?.maxSubscriptions ?? Infinity);
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
    if (user.expiresAt !== undefined) this.armExpiry(user.expiresAt);
  }

  /** The session's subscriptions, as the service kept them for this user. */
  private takeSubscriptions(subscriptions: MqttSubscription[]): void {
    this.filters = new Map(subscriptions.map((s) => [s.filter, s.qos]));
  }

  /** The will, if the user may publish it (the session service publishes it without asking). */
  private permittedWill(): SessionWill | undefined {
    const will = this.will;
    if (!will) return undefined;
    const subject = topicToSubject(will.topic, false)!; // checked at CONNECT
    if (this.perms && !this.perms.canPublish(subject)) return undefined;
    return { subject, message: will };
  }

  /** A JWT or OIDC user is disconnected when its credential expires, as nats-server does (MQTT gets no error text). */
  private armExpiry(at: number): void {
    const left = at - Date.now();
    if (left <= 0) return this.close("Authentication Expired");
    // Timers hold at most ~24 days; re-arm until the moment comes.
    this.expiryTimer = setTimeout(() => this.armExpiry(at), Math.min(left, 2 ** 31 - 1));
  }

  /** A reload: the user must still be accepted, in the same account; its new permissions apply
   *  to the session (subscriptions no longer allowed are dropped), as for NATS clients. */
  applyOptions(): void {
    if (!this.connected || this.closed) return;
    const done = (r: AuthResult) => {
      if (this.closed) return;
      if (!r.ok || r.user.account !== this.sessionAccount) {
        this.ctx.edge.authFailed(this, r.ok ? "account changed by reload" : r.reason);
        return this.close("Authentication Failure");
      }
      this.takeUser(r);
      // The session (perhaps saved by another user of the account) keeps only what this user may read.
      const renewed = this.ctx.sessions.permissions(this, r.user.permissions?.subscribe, this.permittedWill());
      this.settle(renewed.then((subs) => this.takeSubscriptions(subs)));
    };
    const result = this.ctx.edge.auth.authenticate(this.credentials, this.authContext());
    if (result instanceof Promise) result.then(done, () => this.close("Authentication Failure"));
    else done(result);
  }

  /** What the auth pipeline knows of this connection besides its CONNECT credentials. */
  private authContext(): AuthContext {
    const cfg = this.ctx.cfg;
    const extras: AuthContext = {
      connectionType: this.connectionType, remoteAddress: this.remoteAddress, tls: this.tlsPeer,
      tlsMap: cfg.tls?.verifyAndMap ?? false,
    };
    if (cfg.noAuthUser !== undefined) extras.noAuthUser = cfg.noAuthUser;
    if (cfg.authorization) {
      const { user, password, token } = cfg.authorization;
      extras.override = { user, password, token };
    }
    return extras;
  }

  private refuse(code: number, reason: string): void {
    this.ctx.edge.log.debug(`mqtt CONNECT refused (${code}): ${reason}`, this.logContext());
    this.send({ cmd: "connack", returnCode: code, sessionPresent: false });
    this.will = undefined;
    this.close(code === NOT_AUTHORIZED || code === BAD_USER ? "Authentication Failure"
      : code === SERVER_UNAVAILABLE ? "Server Shutdown" : "Protocol Violation");
  }

  // ---- PUBLISH (client → broker) ----

  private onPublish(p: IPublishPacket): void {
    // Publishers mostly repeat a topic: map it once.
    if (p.topic !== this.lastTopic) {
      this.lastTopic = p.topic;
      this.lastSubject = topicToSubject(p.topic, false);
    }
    const subject = this.lastSubject;
    if (subject === undefined) return this.protocolError(`invalid topic name "${p.topic}"`); // wildcards close
    const payload = typeof p.payload === "string" ? Buffer.from(p.payload) : p.payload;
    const ack: Packet | undefined = p.qos === 1 ? { cmd: "puback", messageId: p.messageId }
      : p.qos === 2 ? { cmd: "pubrec", messageId: p.messageId } : undefined;
    if (this.perms && !this.perms.canPublish(subject)) {
      this.ctx.edge.log.debug(`Publish Violation - subject "${subject}"`, this.logContext());
      // nats-server sends MQTT clients no error; the message is dropped (and acknowledged).
      if (ack) this.ackWhenStored(ack, undefined);
      return;
    }
    const msg: StoredMessage = { topic: p.topic, payload, qos: p.qos, retain: p.retain };
    const stats = this.ctx.edge.stats;
    stats.inMsgs++;
    stats.inBytes += payload.length;
    this.inMsgs++;
    this.inBytes += payload.length;
    const sessions = this.ctx.sessions;
    // QoS 0: nothing to wait for.
    if (!ack) return void sessions.publish(this, subject, msg);
    this.ackWhenStored(ack, p.qos === 2 ? sessions.incoming(this, p.messageId!, subject, msg) : sessions.publish(this, subject, msg));
  }

  /**
   * The publisher's PUBACK/PUBREC goes out once the session service reports the message
   * routed and stored (queued for offline persistent sessions, retained): after the ack, a
   * crash loses nothing. Acks keep the order of their PUBLISHes [MQTT-4.6.0-2].
   */
  private ackWhenStored(ack: Packet, stored: Promise<void> | undefined): void {
    if (!stored && !this.acks) return this.send(ack);
    const chain: Promise<void> = Promise.all([this.acks, stored]).then(
      () => this.send(ack),
      // Not stored, so no ack: the client sends the message again when it reconnects.
      () => this.close("Server Shutdown"),
    ).finally(() => {
      if (this.acks === chain) this.acks = undefined;
    });
    this.acks = chain;
  }

  private onPubrel(id: number): void {
    this.settle(this.ctx.sessions.release(this, id).then(
      () => this.send({ cmd: "pubcomp", messageId: id }),
      () => this.close("Server Shutdown"),
    ));
  }

  // ---- SUBSCRIBE / UNSUBSCRIBE ----

  private onSubscribe(p: ISubscribePacket): void {
    const granted: number[] = [];
    const added: MqttSubscription[] = [];
    for (const { topic: filter, qos } of p.subscriptions) {
      const subject = topicToSubject(filter, true);
      const parent = filterNeedsParent(filter);
      if (subject === undefined || !this.maySubscribe(subject, qos) ||
          (parent !== undefined && !this.maySubscribe(parent, qos))) {
        granted.push(SUBACK_FAILURE);
        continue;
      }
      // max_subscriptions counts filters; as in nats-server, at the limit even a repeated filter gets a
      // failure (the existing subscription stays), and the connection stays.
      if (this.filters.size >= this.maxSubscriptions) {
        this.ctx.edge.log.error(`maximum subscriptions exceeded (${this.maxSubscriptions})`, this.logContext());
        granted.push(SUBACK_FAILURE);
        continue;
      }
      this.filters.set(filter, qos as QoS);
      granted.push(qos);
      added.push({ filter, qos: qos as QoS });
    }
    // The service persists them; retained messages it sends follow the SUBACK [MQTT-3.3.1-6]
    // (it reads them from the store first).
    this.ctx.sessions.subscribe(this, added);
    this.afterSync({ cmd: "suback", messageId: p.messageId, granted });
  }

  /** Sends `ack` once the router has applied what came before, and its peers the interest
   *  changes (the barrier a NATS PONG waits on): after a SUBACK, a publish on any edge of the
   *  cluster reaches the subscription. In order with other acks sent this way; at once embedded. */
  private afterSync(ack: Packet): void {
    this.ctx.edge.link.sync(() => { if (!this.closed) this.send(ack); });
  }

  private maySubscribe(subject: string, qos: number): boolean {
    return mqttMaySubscribe(this.perms, subject, qos, this.cid);
  }

  private onUnsubscribe(p: IUnsubscribePacket): void {
    for (const filter of p.unsubscriptions) this.filters.delete(filter);
    this.ctx.sessions.unsubscribe(this, p.unsubscriptions);
    this.afterSync({ cmd: "unsuback", messageId: p.messageId } as Packet);
  }

  // ---- SessionClient ----

  sendPublish(topic: string, payload: Buffer, qos: QoS, retain: boolean, dup: boolean, packetId?: number): void {
    this.send({ cmd: "publish", topic, payload, qos, retain, dup, messageId: packetId });
    const stats = this.ctx.edge.stats;
    stats.outMsgs++;
    stats.outBytes += payload.length;
    this.outMsgs++;
    this.outBytes += payload.length;
  }

  sendPubrel(packetId: number): void {
    this.send({ cmd: "pubrel", messageId: packetId });
  }

  takenOver(): void {
    this.attaching = false; // the new connection owns the session now; the service forgot this one
    this.close("Client Closed"); // as nats-server: the old connection is closed without its will
  }

  // ---- lifecycle ----

  close(reason: CloseReason): void {
    if (this.closed) return;
    this.outbound.flush();
    this.closed = true;
    this.closeReason = reason;
    this.stopTime = new Date();
    if (this.connectTimer) clearTimeout(this.connectTimer);
    if (this.keepAliveTimer) clearTimeout(this.keepAliveTimer);
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.outbound.dispose();
    this.transport.close(reason);
    if (this.connected) this.ctx.edge.system?.disconnected(this); // while the session names the account
    // The service publishes the will unless DISCONNECT came.
    if (this.attaching) this.ctx.sessions.detach(this, !this.disconnected);
    this.attaching = false;
    this.attached = false;
    this.ctx.closed(this);
    this.ctx.edge.remember(this);
  }

  // ---- ConnectionView (monitoring) ----

  get pendingBytes(): number { return this.outbound.pendingBytes; }
  get account(): string { return this.attached ? this.sessionAccount : ""; }
  get mqttClientId(): string { return this.clientId; }
  get subscriptionCount(): number { return this.subscriptionList().length; }

  /** Each MQTT filter, in its NATS form, with the filter itself as the sid (as nats-server). */
  subscriptionList(): SubscriptionView[] {
    const list: SubscriptionView[] = [];
    if (!this.attached) return list;
    for (const filter of this.filters.keys()) {
      const subject = topicToSubject(filter, true);
      if (subject === undefined) continue;
      const parent = filterNeedsParent(filter);
      for (const s of parent ? [subject, parent] : [subject]) list.push({ subject: s, queue: undefined, sid: filter, delivered: 0, max: 0 });
    }
    return list;
  }

  logContext(): { remote: string; cid: number } {
    return { remote: `${this.remoteAddress}:${this.remotePort}`, cid: this.cid };
  }

  /** [MQTT-3.1.2-24] closes after one and a half keep-alive periods without a packet. */
  private armKeepAlive(seconds: number): void {
    if (seconds <= 0) return;
    const limit = seconds * 1500;
    const check = () => {
      const idle = Date.now() - this.lastActivityMs;
      if (idle >= limit) return this.close("Stale Connection");
      this.keepAliveTimer = setTimeout(check, limit - idle);
    };
    this.keepAliveTimer = setTimeout(check, limit);
  }

  private protocolError(why: string): void {
    this.ctx.edge.log.debug(`mqtt protocol error: ${why}`, this.logContext());
    this.close("Protocol Violation");
  }

  /** mqtt-packet encodes straight into the outbound slab (no buffer per packet). */
  private send(packet: Packet): void {
    if (this.closed) return;
    if (!this.outbound.begin(encodedBound(packet))) return;
    mqtt.writeToStream(packet, this.slabWriter as unknown as NodeJS.WritableStream);
    this.outbound.done();
  }

  private readonly slabWriter = {
    write: (chunk: Buffer | string): boolean => {
      if (typeof chunk === "string") this.outbound.putUtf8(chunk);
      else this.outbound.putBytes(chunk);
      return true;
    },
  };
}

/** An upper bound of a packet's encoded size, for Outbound.begin(). */
function encodedBound(p: Packet): number {
  if (p.cmd === "publish") {
    const payload = typeof p.payload === "string" ? Buffer.byteLength(p.payload) : p.payload.length;
    return 16 + p.topic.length * 3 + payload;
  }
  return 64 + (p.cmd === "suback" ? p.granted.length : 0);
}
