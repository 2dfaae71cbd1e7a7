// One MQTT connection on the edge, 3.1.1 or 5 (the CONNECT's protocol level, kept as data: one
// handler, the level decides the encoding and the codes): the message path's packets decoded
// and the delivered PUBLISH encoded by hand (decoder.ts, encoder.ts), the other packets by
// mqtt-packet, CONNECT through the one auth pipeline, topics mapped onto the shared subject
// space, keep-alive, MQTT 5 topic aliases and packet size limits. The
// session (subscriptions, QoS 1/2 state, packet ids of outbound messages, retained messages,
// the will) is the router side's session service, reached through the link's SessionLink.
import { randomBytes } from "node:crypto";
import mqtt, { type IConnectPacket, type IPublishPacket, type ISubscribePacket, type IUnsubscribePacket, type Packet } from "mqtt-packet";
import type { MqttConfig } from "../../common/config/options.js";
import type { CloseReason } from "../../common/errors.js";
import type {
  Connection, MqttSubscription, QoS, SessionAttached, SessionClient, SessionLink, SessionWill, StoredMessage,
} from "../../router/link.js";
import type { AuthContext, AuthResult, ConnectionType, Credentials, TlsPeer } from "../auth/index.js";
import { mqttMaySubscribe, PermissionChecker } from "../../common/permissions.js";
import type { ClientTransport } from "../nats/client.js";
import { Outbound, type OutboundOwner } from "../outbound.js";
import { ReadStall } from "../read-stall.js";
import type { MqttEdgeContext } from "../context.js";
import type { ConnectionView, SubscriptionView } from "../connection-view.js";
import { filterInterest, topicToSubject } from "../../common/mqtt-topic.js";
import { carriedProperties, type MqttProperties } from "../../common/mqtt-properties.js";
import { connectionFault, isolate, type IsolatedConnection } from "../boundary.js";
import { decodePackets, ENCODING, type PacketSink } from "./decoder.js";
import { publishBody, topicBytes, varIntLength, writePublish } from "./encoder.js";
import { Timeouts } from "../../common/deadline.js";
import { MQTT_MAX_CONNECT_PACKET, MQTT_PACKET_MARGIN, PACKET_MALFORMED, PACKET_OK, PacketSizeGuard } from "./packet-size.js";
import {
  authRefusal, disconnectCode, DISCONNECT_WITH_WILL, MALFORMED_PACKET, NO_SUBSCRIPTION_EXISTED, NOT_AUTHORIZED,
  PACKET_TOO_LARGE, PROTOCOL_ERROR, QUOTA_EXCEEDED, Refusal, SESSION_TAKEN_OVER, SUBACK_FAILURE_311, SUCCESS,
  TOPIC_ALIAS_INVALID, TOPIC_FILTER_INVALID, TOPIC_NAME_INVALID, USE_ANOTHER_SERVER, type MqttLevel,
} from "./reason-codes.js";

/** Topic aliases a client may set (MQTT 5 CONNACK topic alias maximum). */
export const MQTT_TOPIC_ALIAS_MAX = 64;

export interface MqttListenerContext {
  edge: MqttEdgeContext;
  cfg: MqttConfig;
  sessions: SessionLink;
  closed(conn: MqttConnection): void;
}

export class MqttConnection
  implements SessionClient, Connection, ConnectionView, IsolatedConnection, PacketSink, OutboundOwner {
  // Constants are getters on the prototype, and the start a number: every field of an idle
  // connection counts (issue #14, ≤ 4 KiB each).
  /** MQTT 3.1.1 delivers a client's own publishes to its subscriptions. */
  get echo(): boolean { return true; }
  readonly edgeId: string;
  private readonly startMs = Date.now();
  get startTime(): Date { return new Date(this.startMs); }
  lastActivityMs = this.startMs;
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
  get name(): string { return ""; }
  get lang(): string { return "mqtt"; }
  userName: string | undefined;
  /** The CONNECT's protocol level: 4 (3.1.1) until a level-5 CONNECT came. */
  level: MqttLevel = 4;
  /** MQTT 5: the client's topic aliases (alias → topic), and ours towards it (topic → alias). */
  private aliasesIn: string[] | undefined;
  private aliasesOut: Map<string, number> | undefined;
  /** MQTT 5: the client's topic alias maximum and maximum packet size (0: none). */
  private aliasMaxOut = 0;
  private maxPacketOut = 0;
  /** The DISCONNECT reason code of the close under way, when not the close reason's. */
  private closeCode: number | undefined;
  /** Packet sizes, checked on the fixed header before a byte of them is buffered; the bytes
   *  of an unfinished packet (the decoder takes whole packets only). */
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
  private filters: Map<string, QoS> | undefined;
  private perms: PermissionChecker | undefined;
  private will: StoredMessage | undefined;
  /** MQTT 5 will delay interval (seconds). */
  private willDelay: number | undefined;
  /** MQTT 5 session expiry interval of the CONNECT, and the one a DISCONNECT set. */
  private expiry: number | undefined;
  private disconnectExpiry: number | undefined;
  /** MQTT 5 receive maximum of the client. */
  private receiveMaximum: number | undefined;
  /** DISCONNECT came: the service drops the will instead of publishing it. */
  private disconnected = false;
  /** [MQTT-3.1.2-24] closed after this long without a packet (0: no keep-alive). */
  keepAliveMs = 0;
  /** Kept to authenticate again when a reload changes the authorization config. */
  private credentials: Credentials = {};
  private expiryTimer: NodeJS.Timeout | undefined;
  /** max_subscriptions, tightened by the user's JWT `subs` (0 = none). */
  private maxSubscriptions = 0;
  /** The length of the pending CONNECT timeout (0: none). */
  private connectMs: number;
  /** The server chose the client id (MQTT 5 CONNACK tells it). */
  private assignedId = false;
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
    this.outbound = new Outbound(transport, this, o.maxPending, o.writeDeadlineMs);
    // A client has the auth timeout to send CONNECT.
    this.connectMs = ctx.cfg.authorization?.timeoutMs ?? o.authorization?.timeoutMs ?? o.authTimeoutMs;
    CONNECT_TIMEOUTS.set(this, this.connectMs);
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
    if (this.keepAliveMs > 0) KEEP_ALIVE.set(this, this.keepAliveMs);
    const size = this.sizes.check(chunk);
    if (size !== PACKET_OK) {
      return size === PACKET_MALFORMED ? this.protocolError("malformed remaining length", MALFORMED_PACKET)
        : this.protocolError(`packet of ${size} bytes over the limit of ${this.sizes.limit}`, PACKET_TOO_LARGE);
    }
    const published = this.inMsgs;
    // The boundary inline: the read path allocates no closure per chunk.
    try {
      const packets = this.sizes.takeWhole(chunk);
      if (packets) decodePackets(packets, this);
    } catch (err) {
      connectionFault(this.ctx.edge.log, this.ctx.edge.faults, this, "exception", err);
    }
    if (this.inMsgs !== published && !this.closed) {
      this.readStall = ReadStall.after(this.readStall, this.ctx.edge.link, this, this.transport);
    }
  }

  /** Reading stopped while the cluster link is congested (made on first need). */
  private readStall: ReadStall | undefined;

  /** PacketSink: a packet of this connection's bytes. */
  decoded(p: Packet): void {
    this.onPacket(p);
  }

  /** PacketSink: the topic the decoder may reuse (the last PUBLISH's, after alias resolution). */
  get recentTopic(): string {
    return this.lastTopic;
  }

  /** PacketSink: a PUBLISH without properties. */
  published(topic: string, payload: Buffer, qos: number, retain: boolean, messageId: number): void {
    if (this.closed) return;
    if (!this.attached || this.held) { // before CONNECT, or while it is authenticated
      const p: IPublishPacket = { cmd: "publish", topic, payload, qos: qos as QoS, retain, dup: false };
      if (qos > 0) p.messageId = messageId;
      return this.onPacket(p);
    }
    this.onPublish(topic, payload, qos as QoS, retain, messageId, undefined);
  }

  /** PacketSink: this connection's bytes are not MQTT. */
  malformed(message: string): void {
    this.protocolError(message, MALFORMED_PACKET);
  }

  /** OutboundOwner: over max_pending or the write deadline. */
  slowConsumer(reason: CloseReason): void {
    this.close(reason);
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

  /** SocketSink (MQTT over TCP/TLS): a read error closes the connection. */
  socketFailed(err: Error): void {
    this.socketError();
    this.ctx.edge.log.debug(`mqtt read error: ${err.message}`, this.logContext());
    this.close("Read Error");
  }

  socketClosed(): void {
    this.close("Client Closed");
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
      case "publish": return this.onPublish(p.topic, p.payload as Buffer, p.qos, p.retain, p.messageId ?? 0, p.properties);
      case "puback": return sessions.puback(this, p.messageId!);
      case "pubrec": return sessions.pubrec(this, p.messageId!);
      case "pubrel": return this.onPubrel(p.messageId!);
      case "pubcomp": return sessions.pubcomp(this, p.messageId!);
      case "subscribe": return this.onSubscribe(p);
      case "unsubscribe": return this.onUnsubscribe(p);
      case "pingreq": return this.send({ cmd: "pingresp" });
      case "disconnect": {
        // A session that ended with the connection cannot be kept by the DISCONNECT [MQTT-3.14.2-2].
        const expiry = p.properties?.sessionExpiryInterval;
        if (expiry !== undefined && expiry > 0 && this.expiry === 0) return this.protocolError("session expiry set at DISCONNECT");
        this.disconnectExpiry = expiry;
        // [MQTT-3.14.4-3] a clean DISCONNECT discards the will; MQTT 5 reason 0x04 asks for it.
        this.disconnected = p.reasonCode !== DISCONNECT_WITH_WILL;
        return this.close("Client Closed");
      }
      default: return this.protocolError(`unexpected ${p.cmd}`);
    }
  }

  // ---- CONNECT ----

  private onConnect(p: IConnectPacket): void {
    if (p.protocolId === "MQTT" && p.protocolVersion === 5) {
      this.level = 5;
      const props = p.properties;
      // Zero would stall every delivery or packet [MQTT-3.1.2-21, -24]: a protocol error.
      if (props?.receiveMaximum === 0 || props?.maximumPacketSize === 0) return this.protocolError("receive maximum or maximum packet size of 0");
      this.aliasMaxOut = props?.topicAliasMaximum ?? 0;
      this.maxPacketOut = props?.maximumPacketSize ?? 0;
      this.expiry = props?.sessionExpiryInterval ?? 0;
      this.receiveMaximum = props?.receiveMaximum;
      this.willDelay = p.will?.properties?.willDelayInterval;
    } else if (p.protocolVersion !== 4 || p.protocolId !== "MQTT") {
      return this.refuse(Refusal.badProtocol, "unsupported protocol level");
    }
    const clean = p.clean !== false;
    let clientId = p.clientId ?? "";
    this.assignedId = clientId === "";
    if (clientId === "") {
      // [MQTT-3.1.3-8] 3.1.1 only; MQTT 5 assigns an id to any session [MQTT-3.1.3-6].
      if (!clean && this.level === 4) return this.refuse(Refusal.badClientId, "empty client id requires a clean session");
      // Unguessable, so nobody can take over a session whose id the server chose (nats-server uses a random NUID).
      clientId = randomBytes(18).toString("base64url");
    }
    // mqtt-packet decodes strings leniently: a replacement character means invalid UTF-8 [MQTT-1.5.3-1].
    if (clientId.includes("\uFFFD")) return this.refuse(Refusal.badClientId, "client id is not valid UTF-8");
    if (p.username === "" || p.username?.includes("\uFFFD")) return this.refuse(Refusal.badUserOrPassword, "empty or invalid user name");
    if (p.will) {
      const willSubject = topicToSubject(p.will.topic, false);
      if (willSubject === undefined) return this.protocolError(`invalid will topic "${p.will.topic}"`);
      this.will = {
        topic: p.will.topic, payload: Buffer.from(p.will.payload), qos: (p.will.qos ?? 0) as QoS, retain: !!p.will.retain,
      };
      const props = carriedProperties(p.will.properties);
      if (props) {
        if (!this.validResponseTopic(props)) return;
        this.will.props = props;
      }
    }
    this.clientId = clientId;
    // The password may be a password, a token or a (bearer) JWT, as nats-server tries them.
    const secret = p.password?.toString("utf8");
    this.credentials = { user: p.username, pass: secret, token: secret, jwt: secret };
    const result = this.ctx.edge.auth.authenticate(this.credentials, this.authContext());
    if (!(result instanceof Promise)) {
      const attaching = this.authenticated(result, clean, p.keepalive ?? 0);
      if (attaching) this.settle(attaching);
      return;
    }
    this.held = [];
    this.settle(result.then((r) => this.authenticated(r, clean, p.keepalive ?? 0),
      () => this.refuse(Refusal.notAuthorized, "authentication error")));
  }

  /** The CONNECT's user: its session is attached, at once or later (the promise). */
  private authenticated(result: AuthResult, clean: boolean, keepalive: number): Promise<void> | undefined {
    if (this.closed) return;
    if (!result.ok) {
      this.ctx.edge.authFailed(this, result.reason);
      // 3.1.1 clients get 5 for every failure, as from nats-server.
      return void this.refuse(this.level === 5 ? authRefusal(result.reason) : Refusal.notAuthorized, result.reason);
    }
    const user = result.user;
    // The account JWT's `limits.conn` counts every protocol; as in nats-server the client is closed, no CONNACK.
    const max = user.limits?.accountMaxConnections;
    if (max !== undefined && this.ctx.edge.accountConnections(user.account) >= max) {
      this.ctx.edge.log.error(`maximum account active connections exceeded (${max})`, this.logContext());
      return void this.close("Maximum Account Connections Exceeded");
    }
    this.takeUser(result);
    this.held ??= [];
    this.sessionAccount = user.account;
    this.attaching = true;
    let attached: SessionAttached | Promise<SessionAttached>;
    try {
      attached = this.ctx.sessions.attach({
        conn: this, clientId: this.clientId, account: user.account, clean, expiry: this.expiry,
        receiveMaximum: this.receiveMaximum, subscribe: user.permissions?.subscribe, will: this.permittedWill(),
        limits: this.ctx.edge.options.mqtt,
      }, this);
    } catch (err) {
      return void this.attachFailed(err as Error);
    }
    if (attached instanceof Promise) {
      return attached.then((a) => this.sessionAttached(a, keepalive), (err: Error) => this.attachFailed(err));
    }
    this.sessionAttached(attached, keepalive);
  }

  /** The session is attached: CONNACK, then the packets held meanwhile. */
  private sessionAttached({ present, subscriptions }: SessionAttached, keepalive: number): void {
    if (this.closed) return; // close() detached it
    try {
      this.attached = true;
      this.takeSubscriptions(subscriptions);
      this.connected = true;
      this.sizes.limit = this.ctx.edge.options.maxPayload + MQTT_PACKET_MARGIN;
      this.transport.authenticated?.();
      this.clearConnectTimeout();
      this.sendConnack(present, keepalive);
      this.rttMs = Date.now() - this.startMs;
      this.ctx.edge.clientConnected(this);
      this.armKeepAlive(keepalive);
      this.ctx.sessions.resume(this);
    } catch (err) {
      return this.attachFailed(err as Error);
    }
    const held = this.held;
    this.held = undefined;
    // Packets the client sent before its CONNACK (3.1.1 allows that); in the boundary too.
    for (const p of held ?? []) isolate(this.ctx.edge.log, this.ctx.edge.faults, this, () => this.onPacket(p));
  }

  private attachFailed(err: Error): void {
    this.ctx.edge.log.error(`mqtt session: ${err.message}`, this.logContext());
    if (this.closed) return;
    // No session service (a router whose Redis has not answered yet) or no store: "server
    // unavailable", so the client retries later.
    if (this.attached) return this.close("Server Shutdown");
    this.refuse(Refusal.serverUnavailable, err.message);
  }

  /** The user's name, permissions, limits and credential expiry (at CONNECT and after a reload). */
  private takeUser(result: AuthResult & { ok: true }): void {
    const user = result.user;
    this.userName = user.name || undefined;
    this.perms = user.permissions ? new PermissionChecker(user.permissions) : undefined;
    const max = Math.min(this.ctx.edge.options.maxSubscriptions || Infinity, user.limits?.maxSubscriptions ?? Infinity);
    this.maxSubscriptions = max === Infinity ? 0 : max;
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
    if (user.expiresAt !== undefined) this.armExpiry(user.expiresAt);
  }

  /** The session's subscriptions, as the service kept them for this user. */
  private takeSubscriptions(subscriptions: MqttSubscription[]): void {
    this.filters = subscriptions.length > 0 ? new Map(subscriptions.map((s) => [s.filter, s.qos])) : undefined;
  }

  /** The will, if the user may publish it (the session service publishes it without asking). */
  private permittedWill(): SessionWill | undefined {
    const will = this.will;
    if (!will) return undefined;
    const subject = topicToSubject(will.topic, false)!; // checked at CONNECT
    if (this.perms && !this.perms.canPublish(subject)) return undefined;
    return this.willDelay ? { subject, message: will, delay: this.willDelay } : { subject, message: will };
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

  /** The accepting CONNACK. */
  private sendConnack(sessionPresent: boolean, keepalive: number): void {
    if (this.level === 5) return this.send(this.connack5(keepalive, sessionPresent));
    // 3.1.1: four constant bytes, written as they are (no packet object, no encoder).
    if (!this.outbound.begin(4)) return;
    this.outbound.putByte(0x20);
    this.outbound.putByte(2);
    this.outbound.putByte(sessionPresent ? 1 : 0);
    this.outbound.putByte(SUCCESS);
    this.outbound.done();
  }

  /** MQTT 5's accepting CONNACK states what this server supports and what it chose. */
  private connack5(keepalive: number, sessionPresent: boolean): Packet {
    return {
      cmd: "connack", reasonCode: SUCCESS, sessionPresent,
      properties: {
        ...(this.assignedId ? { assignedClientIdentifier: this.clientId } : {}),
        serverKeepAlive: keepalive,
        receiveMaximum: 65535,
        maximumPacketSize: this.sizes.limit,
        topicAliasMaximum: MQTT_TOPIC_ALIAS_MAX,
        retainAvailable: true,
        wildcardSubscriptionAvailable: true,
        sharedSubscriptionAvailable: true,
        subscriptionIdentifiersAvailable: true,
      },
    };
  }

  private refuse(refusal: Refusal, reason: string): void {
    const code = refusal[this.level === 5 ? 1 : 0];
    this.ctx.edge.log.debug(`mqtt CONNECT refused (${code}): ${reason}`, this.logContext());
    this.send(this.level === 5
      ? { cmd: "connack", reasonCode: code, sessionPresent: false, properties: { reasonString: reason } }
      : { cmd: "connack", returnCode: code, sessionPresent: false });
    this.will = undefined;
    this.close(refusal === Refusal.notAuthorized || refusal === Refusal.badUserOrPassword ? "Authentication Failure"
      : refusal === Refusal.serverUnavailable ? "Server Shutdown" : "Protocol Violation");
  }

  // ---- PUBLISH (client → broker) ----

  private onPublish(
    topic: string, payload: Buffer, qos: QoS, retain: boolean, messageId: number, properties: IPublishPacket["properties"],
  ): void {
    const alias = properties?.topicAlias;
    if (alias !== undefined) {
      const aliased = this.aliasIn(topic, alias);
      if (aliased === undefined) return;
      topic = aliased;
    }
    // Publishers mostly repeat a topic: map it once.
    if (topic !== this.lastTopic) {
      this.lastTopic = topic;
      this.lastSubject = topicToSubject(topic, false);
    }
    const subject = this.lastSubject;
    if (subject === undefined) return this.protocolError(`invalid topic name "${topic}"`); // wildcards close
    const ack: Packet | undefined = qos === 1 ? { cmd: "puback", messageId } : qos === 2 ? { cmd: "pubrec", messageId } : undefined;
    if (this.perms && !this.perms.canPublish(subject)) {
      this.ctx.edge.log.debug(`Publish Violation - subject "${subject}"`, this.logContext());
      // nats-server sends 3.1.1 clients no error; the message is dropped (and acknowledged).
      // MQTT 5 says why in the ack.
      if (ack) {
        if (this.level === 5) (ack as { reasonCode?: number }).reasonCode = NOT_AUTHORIZED;
        this.ackWhenStored(ack, undefined);
      }
      return;
    }
    const msg: StoredMessage = { topic, payload, qos, retain };
    if (properties) {
      const props = carriedProperties(properties);
      if (props) {
        if (!this.validResponseTopic(props)) return;
        msg.props = props;
      }
    }
    const stats = this.ctx.edge.stats;
    stats.inMsgs++;
    stats.inBytes += payload.length;
    this.inMsgs++;
    this.inBytes += payload.length;
    const sessions = this.ctx.sessions;
    // QoS 0: nothing to wait for.
    if (!ack) return void sessions.publish(this, subject, msg);
    this.ackWhenStored(ack, qos === 2 ? sessions.incoming(this, messageId, subject, msg) : sessions.publish(this, subject, msg));
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

  /** A response topic is a topic name [MQTT-3.3.2-13]; false: the connection is closed. */
  private validResponseTopic(props: MqttProperties): boolean {
    if (props.responseTopic === undefined || topicToSubject(props.responseTopic, false) !== undefined) return true;
    this.protocolError(`invalid response topic "${props.responseTopic}"`, TOPIC_NAME_INVALID);
    return false;
  }

  /**
   * MQTT 5 topic alias [MQTT-3.3.2-7..12]: a PUBLISH with a topic sets the alias, one without
   * uses it. The topic, or undefined: the connection is closed (alias 0, over our maximum, or unknown).
   */
  private aliasIn(topic: string, alias: number): string | undefined {
    if (this.level !== 5 || alias === 0 || alias > MQTT_TOPIC_ALIAS_MAX) {
      this.protocolError(`topic alias ${alias} out of range`, TOPIC_ALIAS_INVALID);
      return undefined;
    }
    const aliases = this.aliasesIn ??= [];
    if (topic !== "") {
      aliases[alias] = topic;
      return topic;
    }
    const known = aliases[alias];
    if (known === undefined) this.protocolError(`topic alias ${alias} not set`, PROTOCOL_ERROR);
    return known;
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
    // 3.1.1 has one failure code; MQTT 5 says which failure it was.
    const v5 = this.level === 5;
    const identifier = v5 ? p.properties?.subscriptionIdentifier : undefined;
    for (const { topic: filter, qos, nl, rap, rh } of p.subscriptions) {
      const interest = filterInterest(filter);
      if (interest === undefined) {
        granted.push(v5 ? TOPIC_FILTER_INVALID : SUBACK_FAILURE_311);
        continue;
      }
      if (!interest.subjects.every((subject) => this.maySubscribe(subject, qos))) {
        granted.push(v5 ? NOT_AUTHORIZED : SUBACK_FAILURE_311);
        continue;
      }
      // max_subscriptions counts filters; as in nats-server, at the limit even a repeated filter gets a
      // failure (the existing subscription stays), and the connection stays.
      if (this.maxSubscriptions > 0 && (this.filters?.size ?? 0) >= this.maxSubscriptions) {
        this.ctx.edge.log.error(`maximum subscriptions exceeded (${this.maxSubscriptions})`, this.logContext());
        granted.push(v5 ? QUOTA_EXCEEDED : SUBACK_FAILURE_311);
        continue;
      }
      (this.filters ??= new Map()).set(filter, qos as QoS);
      granted.push(qos);
      const sub: MqttSubscription = { filter, qos: qos as QoS };
      if (v5) {
        // No local on a shared subscription is a protocol error [MQTT-3.8.3-4].
        if (nl && interest.queue !== undefined) return this.protocolError(`no local on shared subscription "${filter}"`);
        if (nl) sub.noLocal = true;
        if (rap) sub.retainAsPublished = true;
        if (rh === 1 || rh === 2) sub.retainHandling = rh;
        if (typeof identifier === "number" && identifier > 0) sub.identifier = identifier;
      }
      added.push(sub);
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
    // MQTT 5 answers each filter: removed, or there was none [MQTT-3.11.3-1].
    const granted: number[] = [];
    for (const filter of p.unsubscriptions) granted.push(this.filters?.delete(filter) ? SUCCESS : NO_SUBSCRIPTION_EXISTED);
    this.ctx.sessions.unsubscribe(this, p.unsubscriptions);
    this.afterSync({ cmd: "unsuback", messageId: p.messageId, ...(this.level === 5 ? { granted } : {}) } as Packet);
  }

  // ---- SessionClient ----

  sendPublish(topic: string, payload: Buffer, qos: QoS, retain: boolean, dup: boolean, packetId = 0, props?: MqttProperties): void {
    if (this.closed) return;
    let alias = 0;
    if (this.level === 5) {
      if (this.maxPacketOut > 0 && this.publishSize(topic, payload, qos, props) > this.maxPacketOut) {
        return this.dropTooLarge(topic, qos, packetId);
      }
      if (this.aliasMaxOut > 0) {
        alias = this.aliasOut(topic);
        if (alias < 0) { // aliased before: the alias alone
          alias = -alias;
          topic = "";
        }
      }
      if (props) { // properties beyond a topic alias: mqtt-packet encodes them
        const properties = alias > 0 ? { ...props, topicAlias: alias } : { ...props };
        this.send({ cmd: "publish", topic, payload, qos, retain, dup, messageId: qos > 0 ? packetId : undefined, properties });
        return this.sent(payload);
      }
    }
    if (writePublish(this.outbound, this.level, topic, payload, qos, retain, dup, packetId, alias)) this.sent(payload);
  }

  /** Counts a delivery. */
  private sent(payload: Buffer): void {
    const stats = this.ctx.edge.stats;
    stats.outMsgs++;
    stats.outBytes += payload.length;
    this.outMsgs++;
    this.outBytes += payload.length;
  }

  /**
   * MQTT 5: a packet over the client's maximum packet size is not sent, and handled as if it
   * had been [MQTT-3.1.2-25]: a QoS 1/2 delivery is acknowledged here, so it is not resent.
   */
  private dropTooLarge(topic: string, qos: QoS, id: number): void {
    this.ctx.edge.log.debug(`mqtt publish on "${topic}" over the client's maximum packet size of ${this.maxPacketOut}`, this.logContext());
    if (qos === 0) return;
    if (qos === 1) return this.ctx.sessions.puback(this, id);
    this.ctx.sessions.pubrec(this, id);
    this.ctx.sessions.pubcomp(this, id);
  }

  /** MQTT 5 outbound topic alias: a topic already aliased goes as its alias with an empty topic
   *  (returned negated); a new one takes the next alias while the client's maximum allows (0: none). */
  private aliasOut(topic: string): number {
    const aliases = this.aliasesOut ??= new Map();
    const known = aliases.get(topic);
    if (known !== undefined) return -known;
    if (aliases.size >= this.aliasMaxOut) return 0;
    const alias = aliases.size + 1;
    aliases.set(topic, alias);
    return alias;
  }

  /** The encoded size of a PUBLISH (MQTT 5, as this connection sends it before aliasing). */
  private publishSize(topic: string, payload: Buffer, qos: QoS, props: MqttProperties | undefined): number {
    if (props) {
      const head = mqtt.generate({ cmd: "publish", topic, payload: Buffer.alloc(0), qos, retain: false, dup: false, messageId: 1, properties: props },
        ENCODING[5]);
      let headBody = head.length - 2; // the remaining length of `head`, found from its size
      while (1 + varIntLength(headBody) + headBody !== head.length) headBody--;
      const body = headBody + payload.length;
      return 1 + varIntLength(body) + body;
    }
    const body = publishBody(5, topicBytes(topic), qos, 0, payload.length);
    return 1 + varIntLength(body) + body;
  }

  sendPubrel(packetId: number): void {
    this.send({ cmd: "pubrel", messageId: packetId });
  }

  /** Rebalancing moves this client to another edge: MQTT 5 hears DISCONNECT 0x9C "use another
   *  server" (3.1.1 has no server DISCONNECT: the socket closes). The session stays for it. */
  moveAway(): void {
    this.closeCode = USE_ANOTHER_SERVER;
    this.close("Server Shutdown");
  }

  takenOver(): void {
    this.attaching = false; // the new connection owns the session now; the service forgot this one
    // As nats-server: the old connection is closed without its will (MQTT 5: DISCONNECT 0x8E).
    this.closeCode = SESSION_TAKEN_OVER;
    this.close("Client Closed");
  }

  // ---- lifecycle ----

  close(reason: CloseReason): void {
    if (this.closed) return;
    // MQTT 5: the server says why it closes [MQTT-3.14.0-1] (not before CONNACK, not after the
    // client's DISCONNECT).
    if (this.level === 5 && this.connected) {
      const code = this.closeCode ?? disconnectCode(reason);
      if (code !== undefined) this.send({ cmd: "disconnect", reasonCode: code });
    }
    this.outbound.flush();
    this.closed = true;
    this.closeReason = reason;
    this.stopTime = new Date();
    this.clearConnectTimeout();
    KEEP_ALIVE.clear(this, this.keepAliveMs);
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.outbound.dispose();
    this.transport.close(reason);
    if (this.connected) this.ctx.edge.system?.disconnected(this); // while the session names the account
    // The service publishes the will unless DISCONNECT came.
    if (this.attaching) this.ctx.sessions.detach(this, !this.disconnected, this.disconnectExpiry);
    this.attaching = false;
    this.attached = false;
    this.ctx.closed(this);
    this.ctx.edge.remember(this);
  }

  // ---- ConnectionView (monitoring) ----

  get pendingBytes(): number { return this.outbound.pendingBytes; }
  get version(): string { return this.level === 5 ? "5.0" : "3.1.1"; }
  get account(): string { return this.attached ? this.sessionAccount : ""; }
  get mqttClientId(): string { return this.clientId; }
  get subscriptionCount(): number { return this.subscriptionList().length; }

  /** Each MQTT filter, in its NATS form, with the filter itself as the sid (as nats-server). */
  subscriptionList(): SubscriptionView[] {
    const list: SubscriptionView[] = [];
    if (!this.attached || !this.filters) return list;
    for (const filter of this.filters.keys()) {
      const interest = filterInterest(filter);
      for (const subject of interest?.subjects ?? []) list.push({ subject, queue: interest!.queue, sid: filter, delivered: 0, max: 0 });
    }
    return list;
  }

  logContext(): { remote: string; cid: number } {
    return { remote: `${this.remoteAddress}:${this.remotePort}`, cid: this.cid };
  }

  /** [MQTT-3.1.2-24] closes after one and a half keep-alive periods without a packet (each
   *  read sets the timeout again). */
  private armKeepAlive(seconds: number): void {
    if (seconds <= 0 || this.closed) return;
    this.keepAliveMs = seconds * 1500;
    KEEP_ALIVE.set(this, this.keepAliveMs);
  }

  private clearConnectTimeout(): void {
    if (this.connectMs > 0) CONNECT_TIMEOUTS.clear(this, this.connectMs);
    this.connectMs = 0;
  }

  private protocolError(why: string, code = PROTOCOL_ERROR): void {
    this.ctx.edge.log.debug(`mqtt protocol error: ${why}`, this.logContext());
    this.closeCode = code;
    this.close("Protocol Violation");
  }

  /** mqtt-packet encodes straight into the outbound slab (no buffer per packet). */
  private send(packet: Packet): void {
    if (this.closed) return;
    if (!this.outbound.begin(encodedBound(packet))) return;
    const outer = slabWriter.outbound;
    slabWriter.outbound = this.outbound;
    try {
      mqtt.writeToStream(packet, slabWriter as unknown as NodeJS.WritableStream, ENCODING[this.level]);
    } finally {
      slabWriter.outbound = outer;
    }
    this.outbound.done();
  }
}

/** The stream mqtt-packet encodes into: the outbound slab of the connection sending (one
 *  writer for all connections, not two closures each). */
const slabWriter = {
  outbound: undefined as Outbound | undefined,
  write(chunk: Buffer | string): boolean {
    if (typeof chunk === "string") this.outbound!.putUtf8(chunk);
    else this.outbound!.putBytes(chunk);
    return true;
  },
  // mqtt-packet reports a packet it cannot encode by destroying the stream: a fault of ours.
  destroy(err: Error): void { throw err; },
};

/** An upper bound of a packet's encoded size, for Outbound.begin(). */
function encodedBound(p: Packet): number {
  // MQTT 5 properties: strings and binary data as JSON are longer than their encoding.
  const props = "properties" in p && p.properties ? 16 + JSON.stringify(p.properties).length * 3 : 0;
  if (p.cmd === "publish") {
    const payload = typeof p.payload === "string" ? Buffer.byteLength(p.payload) : p.payload.length;
    return 16 + p.topic.length * 3 + payload + props;
  }
  return 64 + props + (p.cmd === "suback" || p.cmd === "unsuback" ? (p.granted?.length ?? 0) : 0);
}

/** Every connection's CONNECT and keep-alive timeouts, on one timer per length. */
const CONNECT_TIMEOUTS = new Timeouts<MqttConnection>((c) => c.close("Authentication Timeout"));
const KEEP_ALIVE = new Timeouts<MqttConnection>((c) => c.close("Stale Connection"));
