// One NATS client connection on the edge: protocol state, subscriptions, timers, limits.
// The transport (TCP now, WebSocket later) only moves bytes; everything NATS is here.
import { ERR, ProtocolError, type CloseReason } from "../../common/errors.js";
import { isValidLiteralSubject, isValidSubject } from "../../common/subject.js";
import { Timeouts } from "../../common/deadline.js";
import type { Connection, MessageData, RouterLink, Subscriber } from "../../router/link.js";
import type {
  AuthContext, AuthenticatedUser, AuthPipeline, AuthResult, ConnectionType, Credentials, TlsPeer,
} from "../auth/index.js";
import { Outbound, type Transport } from "../outbound.js";
import { NatsParser, type ParserSink } from "./parser.js";
import { ReadStall } from "../read-stall.js";
import { PermissionChecker } from "../../common/permissions.js";
import type { ConnectionView, SubscriptionView } from "../connection-view.js";
import type { Options } from "../../common/config/options.js";
import type { Logger } from "../../common/log.js";
import type { FaultReason, IsolatedConnection } from "../boundary.js";

/** What a client needs from the edge it runs in. */
export interface ClientContext {
  readonly options: Options;
  readonly link: RouterLink;
  /** This edge's id on the link (connections are named by edge id + cid). */
  readonly serverId: string;
  readonly auth: AuthPipeline;
  readonly log: Logger;
  readonly stats: TrafficStats;
  /** The client's INFO line ("INFO {...} \r\n"); `extra` fields go after the usual ones. */
  infoLine(client: NatsClient, extra?: Record<string, unknown>): string;
  clientConnected(client: NatsClient): void;
  clientClosed(client: NatsClient, reason: CloseReason): void;
  authFailed(client: NatsClient, reason: string): void;
  /** Connected clients of the account (for an account JWT's connection limit). */
  accountConnections(account: string): number;
  /** A handler of this connection threw: log, count, close it (boundary.ts). */
  connectionFault(conn: IsolatedConnection, reason: FaultReason, err: unknown): void;
  /** A socket error of a connection of this type: counted. */
  socketError(type: string): void;
}

export interface TrafficStats {
  inMsgs: number;
  outMsgs: number;
  inBytes: number;
  outBytes: number;
  slowConsumers: number;
}

/** CONNECT fields nats-server reads. Absent verbose/pedantic/echo default to true, as there. */
interface ConnectOptions {
  verbose?: boolean;
  pedantic?: boolean;
  tls_required?: boolean;
  echo?: boolean;
  headers?: boolean;
  no_responders?: boolean;
  name?: string;
  lang?: string;
  version?: string;
  protocol?: number;
  user?: string;
  pass?: string;
  auth_token?: string;
  nkey?: string;
  sig?: string;
  jwt?: string;
}

const SP = 32, CR = 13, LF = 10;

/** The byte stream under a client (TCP socket, WebSocket). */
export interface ClientTransport extends Transport {
  /** Stop / restart reading (while an asynchronous auth check decides). */
  pause(): void;
  resume(): void;
  /** Flush what is queued, then close (a WebSocket turns the reason into its close code). */
  close(reason?: CloseReason): void;
  /** Resolves once the transport is fully closed. */
  ended(): Promise<void>;
  /** The client authenticated: input limits meant for strangers may widen (WebSocket frames). */
  authenticated?(): void;
}

export class ClientSubscription implements Subscriber {
  delivered = 0;
  /** Auto-unsubscribe after this many messages (UNSUB sid max); 0 = none. */
  max = 0;

  constructor(
    readonly client: NatsClient,
    readonly subject: string,
    readonly queue: string | undefined,
    readonly sid: string,
  ) {}

  get conn(): Connection { return this.client; }

  private cachedHeaders = false;
  private cachedPrefix: Buffer | undefined;

  /** "MSG <subject> <sid> " (or HMSG) of a literal subscription, which always gets the same
   *  one, so the hot path copies bytes instead of encoding a string. undefined for a wildcard:
   *  its subjects vary (a requester's inbox gets a new one per reply), a Buffer each is waste. */
  prefix(subject: string, headers: boolean): Buffer | undefined {
    if (subject !== this.subject) return undefined;
    if (this.cachedPrefix && headers === this.cachedHeaders) return this.cachedPrefix;
    this.cachedHeaders = headers;
    return this.cachedPrefix = Buffer.from(`${headers ? "HMSG" : "MSG"} ${subject} ${this.sid} `, "latin1");
  }

  deliver(subject: string, reply: string | undefined, msg: MessageData): void {
    // No drop past `max` here: the link counts UNSUB max where deliveries are decided (at the
    // router over a wire), so whatever still arrives was delivered within the max.
    const perms = this.client.perms;
    if (perms !== undefined) {
      // A wildcard subscription may cover subjects the user is denied (nats-server filters them here).
      if (perms.hasSubscribeDeny && perms.deniedDelivery(subject)) return;
      if (reply !== undefined && perms.allowsResponses) perms.grantReply(reply);
    }
    this.delivered++;
    this.client.sendMessage(this, subject, reply, msg);
    if (this.max > 0 && this.delivered >= this.max) this.client.removeSubscription(this);
  }
}

export class NatsClient implements ParserSink, Connection, ConnectionView, IsolatedConnection {
  readonly startTime = new Date();
  /** Epoch ms of the last bytes received (a number: this is set on every read). */
  lastActivityMs = this.startTime.getTime();
  readonly subs = new Map<string, ClientSubscription>();
  readonly parser: NatsParser;
  readonly outbound: Outbound;

  // CONNECT state (nats-server's defaults before CONNECT arrives)
  verbose = true;
  pedantic = true;
  echo = true;
  headers = false;
  noResponders = false;
  protocol = 0;
  private firstPongSent = false;
  /** A publish or a removed subscription went to the link since the last PING's sync (onPing);
   *  a subscription still held makes every PING sync anyway. */
  private linkCalled = false;
  /** PINGs whose PONG waits for the link's sync. */
  private pongsWaiting = 0;
  name = "";
  lang = "";
  version = "";
  user: AuthenticatedUser | undefined;
  account = "";
  perms: PermissionChecker | undefined;
  /** Kept to authenticate again when a reload changes the authorization config. */
  private credentials: Credentials = {};
  /** Sent in INFO when the server takes NKEY or JWT signatures. */
  nonce: string | undefined;
  /** The client certificate, once a TLS handshake verified one. */
  tlsPeer: TlsPeer | undefined;
  /** Transport-specific auth inputs (WebSocket cookie JWT, a block's no_auth_user or override). */
  authExtras: Partial<AuthContext> = {};
  /** A listener's own auth timeout (websocket `authorization { timeout }`). */
  authTimeoutMs: number | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  /** max_subscriptions for this connection (Infinity = none). */
  private maxSubscriptions = Infinity;

  inMsgs = 0;
  outMsgs = 0;
  inBytes = 0;
  outBytes = 0;
  /** Round-trip time of the last server PING, in ms (for /connz). */
  rttMs = 0;
  closed = false;
  closeReason: CloseReason | undefined;
  stopTime: Date | undefined;

  /** CONNECT accepted (authenticated). */
  connected = false;
  private pingsOut = 0;
  private pingSentAt = 0;
  /** The length of the pending auth timeout and of the ping period (0: none). */
  private authMs = 0;
  private pingMs = 0;

  constructor(
    readonly cid: number,
    private readonly transport: ClientTransport,
    private readonly ctx: ClientContext,
    readonly remoteAddress: string,
    readonly remotePort: number,
    readonly connectionType: ConnectionType = "STANDARD",
  ) {
    const o = ctx.options;
    this.parser = new NatsParser(this, { maxControlLine: o.maxControlLine, maxPayload: o.maxPayload });
    this.outbound = new Outbound(transport, this, o.maxPending, o.writeDeadlineMs);
    this.applyLimits(o);
    this.edgeId = ctx.serverId;
  }

  readonly edgeId: string;

  /** Send INFO and arm the timers; called once the transport is ready. */
  start(): void {
    if (this.ctx.auth.needsNonce) this.nonce = this.ctx.auth.newNonce();
    this.sendInfo();
    if (this.ctx.auth.requiredFor(this.authExtras)) {
      this.authMs = this.authTimeoutMs ?? this.ctx.options.authorization?.timeoutMs ?? this.ctx.options.authTimeoutMs;
      AUTH_TIMEOUTS.set(this, this.authMs);
    }
    this.armPing();
  }

  /** The INFO; `extra` fields (an async INFO's "ldm") go after the usual ones. */
  sendInfo(extra?: Record<string, unknown>): void {
    this.outbound.appendString(this.ctx.infoLine(this, extra));
  }

  /** As nats-server: an async INFO goes only to clients of protocol 1 that got their first PONG. */
  get takesAsyncInfo(): boolean {
    return this.protocol >= 1 && this.firstPongSent;
  }

  /** Bytes from the transport. */
  receive(chunk: Buffer): void {
    if (this.closed) return;
    this.lastActivityMs = Date.now();
    const published = this.inMsgs;
    // The boundary inline: the read path allocates no closure per chunk.
    try {
      this.parser.parse(chunk);
    } catch (err) {
      this.fault(err, "exception");
    }
    if (this.inMsgs !== published && this.connected && !this.closed) {
      this.readStall = ReadStall.after(this.readStall, this.ctx.link, this, this.transport);
    }
  }

  /** Reading stopped while the cluster link is congested (made on first need). */
  private readStall: ReadStall | undefined;

  /**
   * The connection's fault boundary, for the transports' data events and the asynchronous
   * continuations of CONNECT: a protocol violation closes with its -ERR; anything else thrown is
   * a fault (logged with the stack, counted, -ERR 'Internal Server Error' and close). Shared
   * state stays consistent when a handler dies halfway: a subscription is in `subs` before the
   * router has it, and close() unsubscribes all of `subs` (the router ignores one it does not
   * know) and removes the client from the edge.
   */
  private guarded(work: () => void, reason: FaultReason = "exception"): void {
    try {
      work();
    } catch (err) {
      this.fault(err, reason);
    }
  }

  private fault(err: unknown, reason: FaultReason): void {
    if (!(err instanceof ProtocolError)) return this.ctx.connectionFault(this, reason, err);
    this.ctx.log.error(err.message, this.logContext());
    this.close(err.reason, err.clientError);
  }

  closeOnFault(): void {
    this.close("Internal Error", ERR.internal);
  }

  /** The transport reported an error (counted; the transport closes the client). */
  socketError(): void {
    this.ctx.socketError(this.connectionType);
  }

  /** SocketSink (NATS over TCP/TLS): a read error closes the client. */
  socketFailed(err: Error): void {
    this.socketError();
    this.ctxLog(`read error: ${err.message}`);
    this.close(err.message.includes("SSL") || err.message.includes("TLS") ? "TLS Handshake Error" : "Read Error");
  }

  socketClosed(): void {
    this.close("Client Closed");
  }

  // ---- ParserSink ----

  onConnect(json: string): void {
    const c = parseConnect(json);
    this.verbose = c.verbose ?? true;
    this.pedantic = c.pedantic ?? true;
    this.echo = c.echo ?? true;
    this.headers = c.headers === true;
    this.noResponders = c.no_responders === true;
    this.protocol = typeof c.protocol === "number" ? c.protocol : 0;
    this.name = typeof c.name === "string" ? c.name : "";
    this.lang = typeof c.lang === "string" ? c.lang : "";
    this.version = typeof c.version === "string" ? c.version : "";
    this.parser.headersAllowed = this.headers;

    if (this.protocol < 0 || this.protocol > 1) return this.close("Bad Client Protocol Version", ERR.invalidProtocol);
    if (this.noResponders && !this.headers) {
      return this.close("No Responders Requires Headers", ERR.noRespondersNeedsHeaders);
    }

    if (this.connected) return this.ok();
    // The CONNECT arrived in time: a slow check (bcrypt) is not an authentication timeout.
    this.clearAuthTimeout();
    this.credentials = { user: c.user, pass: c.pass, token: c.auth_token, nkey: c.nkey, sig: c.sig, jwt: c.jwt };
    const result = this.ctx.auth.authenticate(this.credentials, this.authContext());
    if (!(result instanceof Promise)) return this.connectAuthenticated(result);
    // An asynchronous check (bcrypt, OIDC): hold further input until it is decided.
    this.parser.suspend();
    this.transport.pause();
    result.then((r) => this.guarded(() => {
      if (this.closed) return;
      this.connectAuthenticated(r);
      if (this.closed) return;
      this.transport.resume();
      this.parser.resume();
    }, "rejection"), (err: Error) => {
      this.ctx.log.error(`authentication error: ${err.message}`, this.logContext());
      this.close("Authentication Failure", ERR.authorization);
    });
  }

  private connectAuthenticated(result: AuthResult): void {
    if (!this.acceptAuth(result)) return;
    const max = this.user?.limits?.accountMaxConnections;
    if (max !== undefined && this.ctx.accountConnections(this.account) >= max) {
      this.ctx.log.error(`maximum account active connections exceeded (${max})`, this.logContext());
      return this.close("Maximum Account Connections Exceeded", ERR.maxAccountConnections);
    }
    this.connected = true;
    this.transport.authenticated?.();
    this.rttMs = Date.now() - this.startTime.getTime(); // INFO → CONNECT, until a PING measures it
    this.clearAuthTimeout();
    this.ok();
    this.ctx.clientConnected(this);
  }

  onPub(subject: string, reply: string | undefined, msg: MessageData): void {
    if (!this.authorized()) return;
    const size = msg.end - msg.start;
    this.inMsgs++;
    this.inBytes += size;
    const stats = this.ctx.stats;
    stats.inMsgs++;
    stats.inBytes += size;
    // nats-server 2.9 reports a bad subject in pedantic mode but still acknowledges and routes it.
    if (this.pedantic && !isValidLiteralSubject(subject)) this.err(ERR.invalidPublishSubject);
    // Reply subjects of the service-import and gateway machinery are not the client's to use.
    if (reply !== undefined && (reply.startsWith("_R_.") || reply.startsWith("_GR_."))) {
      return this.err(ERR.replyPermission(reply));
    }
    if (subject.startsWith("_GR_.")) return this.err(ERR.pubPermission(subject));
    if (this.perms && !this.perms.canPublish(subject)) {
      this.ctx.log.debug(`Publish Violation - subject "${subject}"`, this.logContext());
      return this.err(ERR.pubPermission(subject));
    }
    this.ok(); // nats-server acknowledges before delivering
    this.linkCalled = true;
    this.ctx.link.publish(this.account, subject, reply, msg, this,
      this.noResponders && reply !== undefined ? NO_RESPONDERS : undefined);
  }

  onSub(subject: string, queue: string | undefined, sid: string): void {
    if (!this.authorized()) return;
    if (!isValidSubject(subject)) return this.err(ERR.invalidSubject); // queue names are not checked
    if (this.perms && !this.perms.canSubscribe(subject, queue)) {
      this.ctx.log.debug(`Subscription Violation - subject "${subject}"`, this.logContext());
      return this.err(ERR.subPermission(subject, queue));
    }
    const max = this.maxSubscriptions;
    if (this.subs.size >= max) {
      this.ctx.log.error(`maximum subscriptions exceeded (${max})`, this.logContext());
      return this.err(ERR.maxSubscriptions);
    }
    if (!this.subs.has(sid)) { // a repeated sid keeps the first subscription, as nats-server
      const sub = new ClientSubscription(this, subject, queue, sid);
      this.subs.set(sid, sub);
      this.ctx.link.subscribe(this.account, sub);
    }
    this.ok();
  }

  onUnsub(sid: string, max: number | undefined): void {
    if (!this.authorized()) return;
    const sub = this.subs.get(sid);
    if (sub) {
      if (max !== undefined && max > sub.delivered) {
        sub.max = max;
        this.ctx.link.unsubscribe(this.account, sub, max);
      } else this.removeSubscription(sub);
    }
    this.ok();
  }

  onPing(): void {
    if (!this.authorized()) return;
    // After the client's flush its earlier publishes must have reached their subscribers, and
    // what was routed to its subscriptions before must have reached it: the PONG waits until the
    // router has applied them (at once on the embedded link). A client with no subscription, no
    // link call since its last PING and no PONG still waiting (PONGs keep their order) has
    // nothing to wait for: the connect handshake's PING, say, costs no round trip to the router.
    if (!this.linkCalled && this.pongsWaiting === 0 && this.subs.size === 0) return this.pong();
    this.linkCalled = false;
    this.pongsWaiting++;
    this.ctx.link.sync(this.synced);
  }

  private readonly synced = (): void => {
    this.pongsWaiting--;
    this.pong();
  };

  private pong(): void {
    if (this.closed) return;
    this.outbound.appendString("PONG\r\n");
    this.firstPongSent = true;
  }

  onPong(): void {
    if (!this.authorized()) return;
    if (this.pingSentAt) this.rttMs = Date.now() - this.pingSentAt;
    this.pingSentAt = 0;
    this.pingsOut = 0;
  }

  // ---- delivery ----

  sendMessage(sub: ClientSubscription, subject: string, reply: string | undefined, msg: MessageData): void {
    const out = this.outbound;
    const hdrLen = msg.hdrLen;
    // A client that did not ask for headers gets the payload alone, as nats-server does.
    const withHeaders = hdrLen > 0 && this.headers;
    const from = msg.start + (withHeaders ? 0 : hdrLen);
    const size = msg.end - from;
    const prefix = sub.prefix(subject, withHeaders);
    // prefix [reply ' '] [hdrLen ' '] size CRLF payload CRLF; 32 covers the numbers and CRLFs.
    const prefixLen = prefix === undefined ? subject.length + sub.sid.length + 7 : prefix.length;
    if (!out.begin(prefixLen + (reply === undefined ? 0 : reply.length + 1) + 32 + size)) return;
    if (prefix !== undefined) {
      out.putBytes(prefix);
    } else {
      out.putAscii(withHeaders ? "HMSG " : "MSG ");
      out.putAscii(subject);
      out.putByte(SP);
      out.putAscii(sub.sid);
      out.putByte(SP);
    }
    if (reply !== undefined) {
      out.putAscii(reply);
      out.putByte(SP);
    }
    if (withHeaders) {
      out.putUint(hdrLen);
      out.putByte(SP);
    }
    out.putUint(size);
    out.putByte(CR);
    out.putByte(LF);
    out.putBytes(msg.buf, from, msg.end);
    out.putByte(CR);
    out.putByte(LF);
    out.done();
    this.outMsgs++;
    this.outBytes += size;
    const stats = this.ctx.stats;
    stats.outMsgs++;
    stats.outBytes += size;
  }

  removeSubscription(sub: ClientSubscription): void {
    if (this.subs.get(sub.sid) !== sub) return;
    this.subs.delete(sub.sid);
    this.linkCalled = true;
    this.ctx.link.unsubscribe(this.account, sub);
  }

  // ---- limits, timers, close ----

  slowConsumer(reason: CloseReason): void {
    this.ctx.stats.slowConsumers++;
    this.ctx.log.notice(`Slow Consumer Detected: ${reason}`, this.logContext());
    this.close(reason); // nats-server sends no -ERR to a slow consumer
  }

  /** Apply a reloaded config to this live connection: limits, then authorization. */
  applyOptions(o: Options): void {
    this.applyLimits(o);
    this.outbound.setLimits(o.maxPending, o.writeDeadlineMs);
    this.armPing();
    if (!this.connected) return;
    const result = this.ctx.auth.authenticate(this.credentials, this.authContext());
    if (result instanceof Promise) {
      result.then((r) => this.guarded(() => this.reauthenticated(r), "rejection"),
        () => this.close("Authentication Failure", ERR.authorization));
    } else {
      this.reauthenticated(result);
    }
  }

  /** After a reload: the same account must accept the client, and its permissions are applied. */
  private reauthenticated(result: AuthResult): void {
    if (this.closed) return;
    if (result.ok && result.user.account !== this.account) {
      this.ctx.authFailed(this, "account changed by reload");
      return this.close("Authentication Failure", ERR.authorization);
    }
    if (!this.acceptAuth(result)) return;
    // Subscriptions the new permissions no longer allow are dropped, as nats-server does.
    for (const sub of [...this.subs.values()]) {
      if (this.perms && !this.perms.canSubscribe(sub.subject, sub.queue)) {
        this.removeSubscription(sub);
        this.err(ERR.subPermissionRevoked(sub.subject, sub.sid));
      }
    }
  }

  /** The server's limits, tightened by the user's own (JWT `subs`, `payload`). */
  private applyLimits(o: Options): void {
    const own = this.user?.limits;
    this.parser.limits = { maxControlLine: o.maxControlLine, maxPayload: Math.min(o.maxPayload, own?.maxPayload ?? Infinity) };
    this.maxSubscriptions = Math.min(o.maxSubscriptions || Infinity, own?.maxSubscriptions ?? Infinity);
  }

  /** What the auth pipeline knows of this connection besides its CONNECT credentials. */
  private authContext(): AuthContext {
    return {
      connectionType: this.connectionType, nonce: this.nonce, tls: this.tlsPeer,
      remoteAddress: this.remoteAddress, ...this.authExtras,
    };
  }

  /** Takes an auth decision: the user, account and permissions; a refusal closes the connection. */
  private acceptAuth(result: AuthResult): boolean {
    if (!result.ok) {
      this.ctx.authFailed(this, result.reason);
      this.close("Authentication Failure", ERR.authorization);
      return false;
    }
    this.user = result.user;
    this.account = result.user.account;
    this.perms = result.user.permissions ? new PermissionChecker(result.user.permissions) : undefined;
    this.applyLimits(this.ctx.options);
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
    if (result.user.expiresAt !== undefined) this.armExpiry(result.user.expiresAt);
    return true;
  }

  /** A JWT user is disconnected when its token expires, as nats-server does. */
  private armExpiry(at: number): void {
    const left = at - Date.now();
    if (left <= 0) return this.close("Authentication Expired", ERR.userAuthExpired);
    // Timers hold at most ~24 days; re-arm until the moment comes.
    this.expiryTimer = setTimeout(() => this.armExpiry(at), Math.min(left, 2 ** 31 - 1));
  }

  close(reason: CloseReason, errText?: string): void {
    if (this.closed) return;
    if (errText !== undefined) this.outbound.appendString(`-ERR '${errText}'\r\n`);
    this.outbound.flush();
    this.closed = true;
    this.parser.halt();
    this.closeReason = reason;
    this.stopTime = new Date();
    this.clearAuthTimeout();
    PINGS.clear(this, this.pingMs);
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.outbound.dispose();
    for (const sub of this.subs.values()) this.ctx.link.unsubscribe(this.account, sub);
    this.transport.close(reason);
    this.ctx.clientClosed(this, reason);
  }

  /** Close and resolve once the peer has been sent everything and the socket is gone. */
  closeGracefully(reason: CloseReason): Promise<void> {
    this.close(reason);
    return this.transport.ended();
  }

  // ---- ConnectionView (monitoring) ----

  get pendingBytes(): number { return this.outbound.pendingBytes; }
  get subscriptionCount(): number { return this.subs.size; }
  subscriptionList(): SubscriptionView[] { return [...this.subs.values()]; }
  get userName(): string | undefined { return this.user?.name || undefined; }

  /** A debug line about this connection (transports report read errors here). */
  ctxLog(message: string): void {
    this.ctx.log.debug(message, this.logContext());
  }

  logContext(): { remote: string; cid: number } {
    return { remote: `${this.remoteAddress}:${this.remotePort}`, cid: this.cid };
  }

  /** A PING every ping_interval (from now: a reload re-arms it). */
  private armPing(): void {
    PINGS.clear(this, this.pingMs);
    this.pingMs = Math.max(0, this.ctx.options.pingIntervalMs);
    if (this.pingMs > 0) PINGS.set(this, this.pingMs);
  }

  /** PINGS: one more PING, or close when ping_max of them are unanswered. */
  pingDue(): void {
    if (this.pingsOut + 1 > this.ctx.options.pingMax) {
      this.ctx.log.debug("Stale Client Connection - Closing", this.logContext());
      return this.close("Stale Connection", ERR.staleConnection);
    }
    this.pingsOut++;
    this.pingSentAt = Date.now();
    this.outbound.appendString("PING\r\n");
    PINGS.set(this, this.pingMs);
  }

  private clearAuthTimeout(): void {
    if (this.authMs > 0) AUTH_TIMEOUTS.clear(this, this.authMs);
    this.authMs = 0;
  }

  /** Before CONNECT, a server that needs credentials accepts nothing else. */
  private authorized(): boolean {
    if (this.connected || !this.ctx.auth.requiredFor(this.authExtras)) return true;
    this.ctx.authFailed(this, "operation before CONNECT");
    this.close("Authentication Failure", ERR.authorization);
    return false;
  }

  private ok(): void {
    if (this.verbose) this.outbound.appendString("+OK\r\n");
  }

  private err(text: string): void {
    this.outbound.appendString(`-ERR '${text}'\r\n`);
  }
}

const NO_RESPONDERS = Object.freeze({ noResponders: true });

/** Every client's ping period and auth timeout, on one timer per length (not one per client). */
const PINGS = new Timeouts<NatsClient>((c) => c.pingDue());
const AUTH_TIMEOUTS = new Timeouts<NatsClient>((c) => c.close("Authentication Timeout", ERR.authTimeout));

/** The JSON type of each CONNECT field nats-server reads (its ClientOpts); others are ignored. */
const CONNECT_FIELDS: Record<string, "string" | "bool" | "int"> = {
  verbose: "bool", pedantic: "bool", tls_required: "bool", echo: "bool", headers: "bool", no_responders: "bool",
  new_account: "bool", protocol: "int",
  name: "string", lang: "string", version: "string", user: "string", pass: "string", auth_token: "string",
  nkey: "string", sig: "string", jwt: "string", account: "string",
};

/**
 * CONNECT's JSON, every field nats-server reads checked for its type before anything (the auth
 * pipeline) sees it. A wrong type closes the connection without -ERR, as nats-server's JSON
 * decoder does (`json: cannot unmarshal number into Go struct field ClientOpts.pass of type
 * string`, closed as a protocol violation). null leaves a field unset, as in Go.
 */
function parseConnect(json: string): ConnectOptions {
  let c: unknown;
  try {
    c = JSON.parse(json); // V8 parses deeply nested JSON iteratively; a RangeError would land here too
  } catch (err) {
    // V8's message quotes the input around the fault, which may be a password: log the position only.
    const at = /at position (\d+)/.exec((err as Error).message);
    throw new ProtocolError(`malformed CONNECT JSON${at ? ` at position ${at[1]}` : ""} (${json.length} bytes)`, undefined);
  }
  if (typeof c !== "object" || c === null || Array.isArray(c)) {
    throw new ProtocolError(`json: cannot unmarshal ${jsonType(c)} into Go value of type server.ClientOpts`, undefined);
  }
  const fields = c as Record<string, unknown>;
  for (const key in fields) {
    const want = CONNECT_FIELDS[key];
    const v = fields[key];
    if (want === undefined) continue;
    if (v === null) {
      delete fields[key];
      continue;
    }
    const ok = want === "string" ? typeof v === "string"
      : want === "bool" ? typeof v === "boolean"
      : typeof v === "number" && Number.isSafeInteger(v);
    if (!ok) {
      const got = want === "int" && typeof v === "number" ? `number ${v}` : jsonType(v); // Go's wording
      throw new ProtocolError(`json: cannot unmarshal ${got} into Go struct field ClientOpts.${key} of type ${want}`, undefined);
    }
  }
  return fields as ConnectOptions;
}

function jsonType(v: unknown): string {
  if (Array.isArray(v)) return "array";
  if (v === null) return "null";
  if (typeof v === "boolean") return "bool";
  return typeof v; // string, number, object
}
