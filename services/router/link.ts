// The seam between edge and router, the TypeScript statement of proto/meshbroker/v1/edge.proto.
// The edge only ever calls a RouterLink; the embedded topology links in-process
// (link-local.ts), the cluster over gRPC. Everything the router learns is data that can cross
// a wire: connections are named by (edge id, connection id), subscriptions by (edge id,
// connection id, sid), accounts arrive as an AccountSet; replies (stats) are asynchronous.
import { createHash } from "node:crypto";
import type { AccountConfig, SubjectPermission } from "../common/config/options.js";
import type { MqttProperties } from "../common/mqtt-properties.js";

/**
 * The edge connection a subscription or a publish belongs to, as far as routing needs to know
 * it. Routing compares the ids (sameConnection), never the objects, so a remote link can
 * rebuild it from a frame.
 */
export interface Connection {
  /** The edge the connection lives on (its server id). */
  readonly edgeId: string;
  /** Unique within its edge, across every protocol (NATS, WebSocket, MQTT, system account). */
  readonly cid: number;
  /** false: do not deliver this connection's own publishes back to it (CONNECT echo). */
  readonly echo: boolean;
}

/** One connection, named by ids. */
export function sameConnection(a: ConnectionRef, b: ConnectionRef): boolean {
  return a.cid === b.cid && a.edgeId === b.edgeId;
}

/**
 * The Connection of the publisher named last: a publisher's messages come in runs and the router
 * reads a publish's origin only during the call, so one object serves the run (not one per message).
 */
export class OriginCache {
  private conn: Connection = { edgeId: "", cid: -1, echo: true };

  of(edgeId: string, cid: number): Connection {
    const c = this.conn;
    return c.cid === cid && c.edgeId === edgeId ? c : (this.conn = { edgeId, cid, echo: true });
  }
}

/**
 * A message's bytes, `buf[start, end)`: the header block (`hdrLen` bytes, 0 = none), then the
 * payload. It points into the sender's read buffer and is valid only during the call: a
 * receiver that keeps the bytes copies them. Senders reuse the object, so routing a message
 * allocates nothing.
 */
export interface MessageData {
  buf: Buffer;
  start: number;
  end: number;
  hdrLen: number;
}

/**
 * One subscription, owned by the edge: its interest as data (account is the call's, subject,
 * queue, sid, and the connection's ids), plus the edge's opaque delivery handle. The embedded
 * link keeps the object and calls deliver directly (allocation-free); a remote link sends the
 * data and delivers by (edge, cid, sid).
 */
export interface Subscriber {
  readonly subject: string;
  readonly queue: string | undefined;
  /** The subscription's id within its connection (NATS sid; MQTT: one per sublist entry). */
  readonly sid: string;
  readonly conn: Connection;
  /** Deliver one message (its bytes are only valid during the call). */
  deliver(subject: string, reply: string | undefined, msg: MessageData): void;
}

export interface PublishOptions {
  /** The publisher asked for a 503 status reply when nobody is subscribed. */
  noResponders: boolean;
  /** An MQTT message published with the retain flag (sessions on every router see it, for
   *  retain as published). */
  retain?: boolean;
  /** In-process callers only (the MQTT session service, for a message it keeps): each queue
   *  group of the publisher's account that got a member is appended here, with where. */
  queuePicks?: QueuePick[];
}

/** A queue group's pick for one message: `to` is the member's edge id ("mesh:<router id>" for a
 *  peer router's entry). A group with no member then has no pick. */
export interface QueuePick {
  queue: string;
  to: string;
}

export interface RouterStats {
  subscriptions: number;
  cacheEntries: number;
  matches: number;
  cacheHits: number;
  inserts: number;
  removes: number;
  /** Over the cached match results: the largest fan-out and the average. */
  maxFanout: number;
  avgFanout: number;
}

/** An MQTT session's QoS 1/2 delivery limits (`mqtt { ack_wait, max_ack_pending }`). */
export interface SessionLimits {
  ackWaitMs: number;
  maxAckPending: number;
}

/** An account as the router needs it: its name and its exports/imports (no users, no secrets). */
export type RouterAccount = Pick<AccountConfig, "name" | "exports" | "imports">;

/**
 * The account set an edge routes with (config accounts and operator-mode accounts decoded),
 * versioned by a hash of its content: edges with different versions route differently.
 */
export interface AccountSet {
  readonly version: string;
  readonly accounts: RouterAccount[];
  /** The edge's system account ("" = none): routers learn it with the accounts. */
  readonly systemAccount: string;
}

export function accountSet(accounts: AccountConfig[], systemAccount = ""): AccountSet {
  const data: RouterAccount[] = accounts.map(({ name, exports, imports }) => ({ name, exports, imports }));
  const version = createHash("sha256").update(JSON.stringify([data, systemAccount])).digest("hex").slice(0, 16);
  return { version, accounts: data, systemAccount };
}

// ---- MQTT: the session service behind the seam ----

export type QoS = 0 | 1 | 2;

/** An MQTT message as sessions, queues and retained messages keep it. */
export interface StoredMessage {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  /** MQTT 5 properties that travel with it. */
  props?: MqttProperties;
  /** MQTT 5 message expiry as a time (ms epoch), set on the router when it is queued or
   *  retained, so the store keeps it across a restart; not sent on the link. */
  expiresAt?: number;
  /** The message's id in the cluster (Router.msgId), kept by the router side and its store so a
   *  session tells it from an equal message; not sent on the link. */
  id?: number;
}

export interface MqttSubscription {
  filter: string;
  qos: QoS;
  /** MQTT 5 subscription options (absent: off, retain handling 0) and subscription identifier. */
  noLocal?: boolean;
  retainAsPublished?: boolean;
  retainHandling?: 0 | 1 | 2;
  identifier?: number;
}

/** A subscription with only the options it sets (from a store record or wire data, whose
 *  absent options read as false / 0). */
export function subscriptionOf(s: {
  filter: string; qos: number; noLocal?: boolean; retainAsPublished?: boolean; retainHandling?: number; identifier?: number;
}): MqttSubscription {
  const sub: MqttSubscription = { filter: s.filter, qos: s.qos as QoS };
  if (s.noLocal) sub.noLocal = true;
  if (s.retainAsPublished) sub.retainAsPublished = true;
  if (s.retainHandling === 1 || s.retainHandling === 2) sub.retainHandling = s.retainHandling;
  if (s.identifier) sub.identifier = s.identifier;
  return sub;
}

/**
 * The edge's end of one MQTT connection holding a session, as the session service calls it.
 * The service assigns the packet ids of outbound QoS 1/2 messages: they belong to the session,
 * which outlives the connection and may move to another edge, and a message resent after a
 * reconnect (or a restart) must keep its id with DUP set [MQTT-4.4.0-1]. The edge only writes
 * the packets and reports the acks by id.
 */
export interface SessionClient {
  sendPublish(topic: string, payload: Buffer, qos: QoS, retain: boolean, dup: boolean, packetId?: number, props?: MqttProperties): void;
  sendPubrel(packetId: number): void;
  /** Another connection (on any edge) took the session over: close without the will. */
  takenOver(): void;
}

export interface SessionAttach {
  /** The connection that now holds the client id. */
  conn: Connection;
  clientId: string;
  account: string;
  /** MQTT 3.1.1 clean session: discard stored state first, keep nothing after detach. MQTT 5
   *  clean start: discard stored state first (what is kept is `expiry`'s). */
  clean: boolean;
  /** MQTT 5 session expiry interval in seconds (0: the session ends with the connection;
   *  0xFFFFFFFF: never). Undefined: MQTT 3.1.1, where `clean` decides (0 or never). */
  expiry?: number;
  /** MQTT 5 receive maximum: the client's limit on QoS 1/2 deliveries in flight. */
  receiveMaximum?: number;
  /** The user's subscribe permissions, as data (undefined: no restriction). The service drops
   *  subscriptions and deliveries the user may not read. */
  subscribe: SubjectPermission | undefined;
  /** Published by the service if the connection is lost without DISCONNECT (the edge checked
   *  the user may publish it). */
  will: SessionWill | undefined;
  /** The edge's `mqtt { ack_wait, max_ack_pending }` (undefined: the service's own). */
  limits?: SessionLimits;
}

/** An MQTT will, with the NATS subject of its topic. */
export interface SessionWill {
  subject: string;
  message: StoredMessage;
  /** MQTT 5 will delay interval in seconds: published then (or when the session ends, if
   *  sooner), unless the session is resumed meanwhile. */
  delay?: number;
}

/** MQTT 5 session expiry interval that never ends [MQTT-3.1.2-11 ff.]. */
export const EXPIRY_NEVER = 0xffffffff;

/** A link's attach must be answered within this (over gRPC: the HelloReply, else the edge tries
 *  another router; a router ends a stream that sent no Hello within it). Session handling on the
 *  router side times its grace for a lost stream by it. */
export const ATTACH_TIMEOUT_MS = 2_000;

export interface SessionAttached {
  /** CONNACK session present. */
  present: boolean;
  /** The session's subscriptions after the user's permissions applied. */
  subscriptions: MqttSubscription[];
}

/**
 * The MQTT session service (services/router/sessions/): every durable MQTT state (sessions,
 * takeover, subscriptions of persistent sessions, QoS 1/2 queues, QoS 2 state, retained
 * messages, wills) on the router side. Calls name the holding connection; a call from a
 * connection that no longer holds its session (taken over) is ignored. Promises settle once the
 * store holds what the call wrote, and reject when it failed: then the edge sends no ack.
 */
export interface SessionLink {
  /** CONNECT: take the client id over (the previous holder's edge gets takenOver). */
  attach(req: SessionAttach, client: SessionClient): SessionAttached | Promise<SessionAttached>;
  /** CONNACK is out: (re)send in-flight messages with DUP, PUBRELs, then the queue. */
  resume(conn: Connection): void;
  /** The connection ended; `publishWill` unless it sent DISCONNECT or was taken over. `expiry`:
   *  the session expiry interval an MQTT 5 DISCONNECT set (undefined: the CONNECT's stands). */
  detach(conn: Connection, publishWill: boolean, expiry?: number): void;
  /** SUBSCRIBE (checked by the edge); retained messages follow to the client. */
  subscribe(conn: Connection, subs: MqttSubscription[]): void;
  unsubscribe(conn: Connection, filters: string[]): void;
  /**
   * A PUBLISH of any QoS into `subject`, in the session's account. For QoS 1/2 it returns the
   * completion the PUBACK waits on: it resolves once the message is routed and stored (retained,
   * queued for persistent sessions), and rejects when a write failed (then no ack: the client
   * sends it again). Undefined: nothing to wait for (QoS 0, whose failed writes are only logged,
   * or nothing was written), so the common QoS 1 ack allocates no promise.
   */
  publish(conn: Connection, subject: string, msg: StoredMessage): Promise<void> | undefined;
  /** Inbound QoS 2 PUBLISH: stored until PUBREL, routed once (a resend of the id is not). */
  incoming(conn: Connection, packetId: number, subject: string, msg: StoredMessage): Promise<void>;
  /** PUBREL of an inbound QoS 2 message; resolves when its state is gone (then PUBCOMP). */
  release(conn: Connection, packetId: number): Promise<void>;
  puback(conn: Connection, packetId: number): void;
  pubrec(conn: Connection, packetId: number): void;
  pubcomp(conn: Connection, packetId: number): void;
  /** A reload changed the user's permissions: the subscribe permissions and the will as the
   *  user may now publish it (undefined: none). Returns the subscriptions left. */
  permissions(conn: Connection, subscribe: SubjectPermission | undefined, will: SessionWill | undefined): Promise<MqttSubscription[]>;
}

/** Which connection of which edge: what names a session's holder across routers. */
export type ConnectionRef = Pick<Connection, "edgeId" | "cid">;

/** The session service as the router's end of a link sees it: also told when a link is lost. */
export interface RouterSessions extends SessionLink {
  /**
   * The stream that carried `conn` ended without a detach from its edge, which may be alive (a
   * link reset, an edge or router stalled past the keepalive). `client` (the stream's own; a
   * newer stream of the edge may hold the connection already) stays attached for a grace, so
   * that its edge attaches it again, here or on another router, without the will going out;
   * after the grace, or when another connection takes the session over, it is detached with its
   * will. `edgeMoved`: the edge ended the stream after moving its clients: detached now, no will.
   */
  linkLost(conn: Connection, client: SessionClient, edgeMoved: boolean): void;
}

/** A link that can be congested: what is sent waits for the other end. */
export interface Backpressure {
  /** Whether the link is congested now; if so, `resume` is called once it no longer is (or
   *  after a bounded wait), and the caller stops producing until then. */
  stall(resume: () => void): boolean;
}

/** What carries a link end's frames: a gRPC stream's FrameWriter, or the serialised test link's
 *  queue. One that can be congested says so (stall). */
export interface Carrier extends Partial<Backpressure> {
  write(frame: Buffer): void;
}

export interface RouterLink {
  /** MQTT sessions (absent where no MQTT is served). */
  readonly sessions: SessionLink | undefined;
  /** Cluster links only: a client whose input finds the link congested stops reading until
   *  `resume` (Backpressure.stall); the embedded link is never congested. */
  stall?(resume: () => void): boolean;
  subscribe(account: string, sub: Subscriber): void;
  /**
   * Removes the subscription now, or with `max` > 0 (NATS `UNSUB sid max`) once it has had `max`
   * deliveries in all, counted where deliveries are decided: a remote link counts at the router,
   * so deliveries in flight on the wire still count. In process the subscriber counts its own
   * deliveries (it is called on the router's stack), so the embedded router ignores `max`.
   */
  unsubscribe(account: string, sub: Subscriber, max?: number): void;
  /**
   * NATS core: fire and forget, so it returns nothing and allocates nothing (no promise, no
   * callback per message). A publish that needs its completion (MQTT QoS 1/2: the PUBACK only
   * once the store holds the message) goes through `sessions.publish`, which returns one; on a
   * wire that is Publish.correlation_id answered by a Completion.
   */
  publish(
    account: string, subject: string, reply: string | undefined,
    msg: MessageData, origin: Connection, options?: PublishOptions,
  ): void;
  /**
   * Calls `done` once the router applied every call made before it on this link and what they
   * delivered has reached the edge: a client's PONG waits on it, so that after its flush its
   * publishes reached their subscribers (nats-server's guarantee). The embedded link calls it at once.
   */
  sync(done: () => void): void;
  /** The edge's account set (at start and on every reload). */
  configureAccounts(edge: string, set: AccountSet): void;
  /** Routing counters over every account, for monitoring (/varz, /subsz, STATSZ). */
  stats(): Promise<RouterStats>;
  /**
   * Cluster links only: this edge's client URLs for the other edges' INFO connect_urls
   * (undefined withdraws them: lame duck), and `onClusterUrls` called with every edge's URLs
   * (this one's included) whenever the cluster's set changes. The embedded link has neither.
   */
  advertise?(urls: ClientUrls | undefined, onClusterUrls: (edges: EdgeClientUrls[]) => void): void;
  /**
   * Cluster links only: this edge's client count (sent now, while attached), and `onLoad` called
   * with every edge's last count (this one's included) when one changes: for rebalancing.
   */
  reportClients?(count: number, onLoad: (edges: { edgeId: string; clients: number }[]) => void): void;
}

/** An edge's client URLs (host:port, no scheme). */
export interface ClientUrls {
  nats: string[];
  websocket: string[];
}

export interface EdgeClientUrls {
  edgeId: string;
  urls: ClientUrls;
}
