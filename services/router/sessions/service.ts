// The MQTT session service, on the router side of the link: it owns every durable MQTT state
// (sessions and who holds each, takeover, subscriptions of persistent sessions, QoS 1/2 queues
// and in-flight redelivery, inbound QoS 2 state, retained messages, wills) on the one MqttStore.
// Edges reach it through SessionLink (link.ts), directly in the embedded topology, as SessionOps
// over a serialising link. One holder per session key across every edge: attaching elsewhere
// takes the session over.
import { GLOBAL_ACCOUNT, type SubjectPermission } from "../../common/config/options.js";
import type { Logger } from "../../common/log.js";
import { Deadline, Timeouts } from "../../common/deadline.js";
import { filterInterest, topicToSubject } from "../../common/mqtt-topic.js";
import { hasWildcard, subjectMatches } from "../../common/subject.js";
import { TurnBudget } from "../../common/turn-budget.js";
import { mqttMaySubscribe, PermissionChecker } from "../../common/permissions.js";
import {
  ATTACH_TIMEOUT_MS, EXPIRY_NEVER, sameConnection, type Connection, type ConnectionRef, type MessageData, type MqttSubscription, type PublishOptions,
  type QueuePick,  type RouterLink, type SessionAttach, type RouterSessions, type SessionAttached, type SessionClient, type SessionWill, type StoredMessage,
} from "../link.js";
import { sessionKey, type MqttStore, type SessionKey, type SessionRecord } from "../store/store.js";
import { DEAD_AFTER_MS, PING_INTERVAL_MS } from "../mesh/peer.js";
import type { ReplaySend } from "../mesh/mesh.js";
import type { OwnedSessions, SessionOwners } from "./ownership.js";
import { MqttSession, deliveryProps, expired, mqttHeader, stampExpiry, type SessionHost, type SessionLimits } from "./session.js";

/** A connection holding (or attaching to) a session. */
interface Holder {
  readonly conn: Connection;
  readonly client: SessionClient;
  readonly account: string;
  subscribe: SubjectPermission | undefined;
  will: SessionWill | undefined;
  /** Set once attach finished. */
  session: MqttSession | undefined;
  /** Settles when attach finished: calls that arrive meanwhile (an edge re-attaching replays
   *  them right behind its attach) wait for it. */
  ready: Promise<void>;
  /** The connection went away (or was taken over) before or after attach finished. */
  gone: boolean;
  /** Detached before its attach finished: how (the attach finishes the detach). */
  ended: { publishWill: boolean; expiry: number | undefined } | undefined;
  /** The stream carrying the connection ended (linkLost): it is detached with its will once
   *  LOST_LINK_GRACE_MS have passed (lostGrace), unless its edge attached it again first. */
  lost: boolean;
}

/** The `ready` of a holder attached at once. */
const ATTACHED = Promise.resolve();

/** A call from a connection that holds no session: nothing stored, so no ack. */
const NOT_HELD = Promise.reject(new Error("the connection holds no MQTT session"));
NOT_HELD.catch(() => {}); // each caller handles it; this one only keeps it from counting as unhandled

export class SessionService implements RouterSessions, SessionHost, OwnedSessions {
  /** Sessions are connections of the router side, in an id space of their own. */
  readonly id = "mqtt-sessions";
  private nextCid = 1;
  private readonly sessions = new Map<SessionKey, MqttSession>();
  /** Holders by edge id, then connection id (lookups allocate nothing). */
  private readonly held = new Map<string, Map<number, Holder>>();
  /** The attached holder of each held session. */
  private readonly holders = new Map<MqttSession, Holder>();
  /** The attach running for a session key, if any: the next one waits for it. */
  private readonly attaching = new Map<SessionKey, Promise<void>>();
  /** Store writes not yet settled, so close() can let them land before the store closes. */
  private readonly pending = new Set<Promise<unknown>>();
  /** Inside route(): the writes started so far (the completion of a publish waits on them). */
  private collecting = false;
  private collected: Promise<unknown>[] | undefined;
  readonly publishing: { session: MqttSession | undefined } = { session: undefined };
  /** What route() hands the router, reused for every message. */
  private readonly routed: MessageData = { buf: Buffer.alloc(0), start: 0, end: 0, hdrLen: 0 };
  /** Where route() writes each message's header and payload, one after the other: no Buffer
   *  object per message. Bytes written are never written again (a full slab is left for a new
   *  one), so two messages never share a place: a view kept past the call stays right, and a
   *  router end tells messages apart by their bytes' place (router-end.ts deliver()). */
  private slab = Buffer.allocUnsafe(ROUTE_SLAB_BYTES);
  /** Cluster: the options of a QoS 1/2 publish, which the router fills `picks` through. */
  private readonly picks: QueuePick[] = [];
  private readonly keptOptions: PublishOptions = { noResponders: false, queuePicks: this.picks };
  private slabAt = 0;
  /** In a cluster: which router owns each session (ownership.ts). Unset: this service is the only one. */
  owners: SessionOwners | undefined;
  /**
   * Cluster: while the sessions of a router that went down are being adopted (hold()), the
   * QoS 1/2 messages routed here are kept: a session restored from the store meanwhile gets the
   * ones its subscriptions match (they were routed before it subscribed here, when its old
   * router's interest was already gone), and their publishers' acks wait for the adoption.
   */
  private limbo: Kept[] = [];
  /** Where each subject's kept messages are in the limbo (built when a session first needs it). */
  private limboIndex: Map<string, number[]> | undefined;
  /** Cluster: the QoS 1/2 messages routed in the last RECENT_MS. A peer that dies may have had
   *  some of them forwarded to it and not yet queued (a forward has no completion): they join
   *  the limbo, so a session adopted from it gets them (at worst twice: QoS 1 allows it). */
  private recent: Kept[] = [];
  private recentBytes = 0;
  private limboBytes = 0;
  private holds = 0;
  private holdEnded: Promise<void> = Promise.resolve();
  private releaseHold: () => void = noop;
  private limboTimer: NodeJS.Timeout | undefined;
  /** Restoring sessions (an edge's replayed attaches, adoptions) takes a share of each turn,
   *  so that a thousand of them at once do not hold the event loop (turn-budget.ts). */
  readonly turns = new TurnBudget(SESSION_TURN_BUDGET);
  /** Connections whose stream was lost (linkLost), detached with their wills once their grace
   *  passed: one timer for all, a share per turn (Timeouts). */
  private readonly lostGrace = new Timeouts<Holder>((holder) => {
    if (holder.gone) return;
    this.owners?.lost(holder.conn); // its edge attaching it again later is refused
    this.detachHolder(holder, true);
  });

  constructor(
    readonly router: Pick<RouterLink, "subscribe" | "unsubscribe" | "publish" | "sync"> & SessionHost["router"],
    readonly store: MqttStore,
    readonly limits: SessionLimits,
    private readonly log: Pick<Logger, "error">,
  ) {}

  /** Persistent sessions of an earlier run, restored once at the router's start: their
   *  subscriptions queue messages until the client returns (to any edge). */
  async start(): Promise<void> {
    for (const saved of await this.store.listSessions()) {
      const share = this.turns.take(1 + saved.subscriptions.length);
      if (share) await share;
      this.restoreSession(saved);
    }
  }

  // ---- SessionHost ----

  get keepsDelivered(): boolean {
    return this.owners !== undefined;
  }

  /** A store write whose failure is logged rather than lost silently. The returned promise
   *  still rejects: a caller that chains on it must handle that (or return void from it). */
  journal<T>(op: (store: MqttStore) => Promise<T>): Promise<T> {
    const p = op(this.store);
    this.pending.add(p);
    if (this.collecting) (this.collected ??= []).push(p);
    p.then(() => this.pending.delete(p), (err: Error) => {
      this.pending.delete(p);
      this.log.error(`mqtt store: ${err.message}`);
    });
    return p;
  }

  // ---- SessionLink ----

  attach(req: SessionAttach, client: SessionClient): SessionAttached | Promise<SessionAttached> {
    const { conn, account } = req;
    const holder: Holder = {
      conn, client, account, subscribe: req.subscribe, will: req.will, session: undefined, gone: false, ready: ATTACHED,
      lost: false, ended: undefined,
    };
    let byCid = this.held.get(conn.edgeId);
    if (!byCid) this.held.set(conn.edgeId, byCid = new Map());
    byCid.set(conn.cid, holder);
    const key = sessionKey(account, req.clientId);
    if (this.attachesAtOnce(key, req)) {
      const session = new MqttSession(this.nextCid++, req.clientId, false, account, this);
      this.configure(session, req, 0);
      this.bind(holder, session);
      return { present: false, subscriptions: [] };
    }
    // Attaches of one session key run one after the other, so two CONNECTs at once (on any
    // edges) end with one holder: the second takes the session over from the first.
    const run = this.serial(key, () => this.attachNow(holder, key, req));
    holder.ready = run.then(noop, noop);
    // During a hold, the messages its subscriptions will match are kept until it has them: an
    // attach paced over turns (turns) may end after the adoption that started the hold.
    if (this.holds > 0) this.hold(run);
    return run;
  }

  /**
   * A clean session whose attach has nothing to wait for: one router (no owner to claim), no
   * session of the key here (so none in the store either: this service restored them all at its
   * start, and keeps both in step), no attach of it running, no hold, and the turn has room.
   * Most CONNECTs of a single node are this one; it allocates no promise.
   */
  private attachesAtOnce(key: SessionKey, req: SessionAttach): boolean {
    return this.owners === undefined && req.clean && (req.expiry ?? 0) <= 0 && this.holds === 0 && !this.sessions.has(key) &&
      !this.attaching.has(key) && this.turns.tryTake(2);
  }

  /** Runs `work` after the attaches (evictions, adoptions) of `key` started before it. */
  private serial<T>(key: SessionKey, work: () => Promise<T>): Promise<T> {
    const run = (this.attaching.get(key) ?? Promise.resolve()).then(work);
    const tail = run.then(noop, noop);
    this.attaching.set(key, tail);
    void tail.then(() => {
      if (this.attaching.get(key) === tail) this.attaching.delete(key);
    });
    return run;
  }

  private async attachNow(holder: Holder, key: SessionKey, req: SessionAttach): Promise<SessionAttached> {
    const { clientId, clean, account } = req;
    const entry = this.turns.take(1);
    if (entry) await entry;
    // Taken over while waiting its turn. One that ended goes on: its session is claimed (from a
    // router that lost its stream, say) and then detached as its end said (its will or none).
    if (holder.gone && !holder.ended) return { present: false, subscriptions: [] };
    // 3.1.1: a clean session ends with its connection, another never; MQTT 5 says how long.
    const expiry = req.expiry ?? (clean ? 0 : EXPIRY_NEVER);
    // In the store: what outlives the connection, and what a resumed (not clean) session may hold.
    const stored = expiry > 0 || !clean;
    // Cluster: the session's other owner (another router) lets go first. A persistent session's
    // subscriptions are in place here, and known to every router of the mesh (the flush
    // barrier), before the old owner drops its own: so every QoS 1/2 message is routed to this
    // router, or to the old owner before it let go, or both. The old owner, asked to let go,
    // first passes a barrier of its own (what peers routed before they knew this router's
    // interest has reached it) and lets its queue writes land; the messages routed here meanwhile
    // wait in the shadow, and restore() merges them behind the stored queue, leaving out those
    // the old owner queued too (from `since` on). Hence no loss: a message is in the stored queue
    // or in the shadow.
    let shadow: MqttSession | undefined;
    const since = await this.owners?.claim(key, holder.conn, clean || !stored ? undefined : async () => {
      const saved = await this.store.getSession(key);
      if (!saved || this.sessions.has(key) || holder.gone) return;
      shadow = new MqttSession(this.nextCid++, clientId, true, account, this);
      shadow.shadow = [];
      for (const sub of saved.subscriptions) this.addSubscription(shadow, sub);
      await new Promise<void>((resolve) => this.router.sync(resolve));
    }).catch((err: Error) => {
      // Refused (a connection lost() named, or no Redis): no detach may follow (the edge closes a
      // replayed connection as taken over), so the holder goes now.
      this.forget(holder);
      throw err;
    });
    let session = this.sessions.get(key);
    if (shadow && (session || holder.gone)) {
      shadow.dispose();
      shadow = undefined;
    }
    const previous = session && this.holders.get(session);
    // The same connection of the same edge attaching again (its edge re-attached) is no takeover:
    // it is not closed, and keeps its session even when clean; only its old attach is forgotten.
    const again = previous !== undefined && sameConnection(previous.conn, holder.conn);
    // Past its CONNACK already: no resume follows this attach (the edge's came before it).
    const resumed = again && session!.client === previous.client && !session!.connecting;
    if (previous) (again ? this.letGo(previous) : this.takeOver(previous, holder.conn));
    if (session && !again && (clean || !session.persistent)) {
      this.willNow(session); // the session ends: a delayed will goes now
      session.dispose();
      this.sessions.delete(key);
      if (session.persistent) await this.store.deleteSession(key);
      session = undefined;
    }
    let present = false;
    let savedSubs: MqttSubscription[] | undefined;
    if (session) {
      present = true;
    } else {
      if (clean) await this.store.deleteSession(key);
      session = shadow ?? new MqttSession(this.nextCid++, clientId, stored, account, this);
      session.expiry = expiry;
      if (stored) {
        let saved = clean ? undefined : await this.store.getSession(key);
        if (saved && expiredAt(saved) <= Date.now()) {
          await this.store.deleteSession(key); // expired while no router had it
          saved = undefined;
        }
        if (saved) present = true;
        else if (shadow) shadow.dispose(); // expired meanwhile: its subscriptions go
        // Held by another router until now: its subscriptions come from the store (added once its
        // queue is loaded, so nothing they queue meanwhile is loaded twice), unless in place already.
        if (!shadow) savedSubs = saved?.subscriptions;
        await this.store.putSession(this.record(session, saved?.subscriptions ?? []));
      }
    }
    this.configure(session, req, expiry);
    if (session.persistent) await session.restore(this.store, since);
    // Its turn first: what the limbo gets while it waits is looked at too.
    const share = this.turns.take(1 + (savedSubs?.length ?? 0) + (savedSubs || shadow ? this.limboCost(session, savedSubs) : 0));
    if (share) await share;
    const delivered = (savedSubs || shadow) && this.limbo.length > 0 ? await this.store.delivered(key) : undefined;
    for (const sub of savedSubs ?? []) this.addSubscription(session, sub);
    if (delivered) this.fromLimbo(session, delivered);
    if (holder.gone) {
      // The connection ended while attaching: as if it had attached, then gone.
      if (holder.ended) this.ending(holder, session, holder.ended.publishWill, holder.ended.expiry);
      if (!session.client) this.detached(session);
      return { present, subscriptions: [] };
    }
    this.bind(holder, session);
    if (resumed) this.resume(holder.conn);
    return { present, subscriptions: session.subscriptionList() };
  }

  /** The session as this attach asks for it, under its key. Resumed: it no longer expires, and
   *  its delayed will is withdrawn [MQTT-3.1.3-9]. */
  private configure(session: MqttSession, req: SessionAttach, expiry: number): void {
    session.expiry = expiry;
    session.window = req.receiveMaximum ?? Infinity;
    session.mqtt5 = req.expiry !== undefined; // an MQTT 5 attach always states the expiry
    session.expiryTimer?.cancel();
    session.expiryTimer = undefined;
    session.delayedWill?.timer.cancel();
    session.delayedWill = undefined;
    this.sessions.set(session.key, session);
    session.limits = req.limits ?? this.limits;
  }

  /** The holder holds the session from now on (its CONNACK follows: `connecting`). */
  private bind(holder: Holder, session: MqttSession): void {
    session.client = holder.client;
    session.connecting = true;
    holder.session = session;
    this.holders.set(session, holder);
    this.applyPermissions(holder, session);
  }

  resume(conn: Connection): void {
    this.withSession(conn, (session) => {
      session.connecting = false;
      session.redeliver(true);
      session.pump();
    });
  }

  detach(conn: Connection, publishWill: boolean, expiry?: number): void {
    const holder = this.held.get(conn.edgeId)?.get(conn.cid);
    if (holder) this.detachHolder(holder, publishWill, expiry);
  }

  linkLost(conn: Connection, client: SessionClient, edgeMoved: boolean): void {
    const holder = this.held.get(conn.edgeId)?.get(conn.cid);
    if (!holder || holder.client !== client) return;
    if (edgeMoved) return this.detachHolder(holder, false);
    // Deliveries meanwhile go nowhere: an attach again resends the unacknowledged ones (resume).
    if (holder.lost) return;
    holder.lost = true;
    this.lostGrace.set(holder, LOST_LINK_GRACE_MS);
  }

  private detachHolder(holder: Holder, publishWill: boolean, expiry?: number): void {
    this.forget(holder);
    const session = holder.session;
    if (!session) {
      holder.ended = { publishWill, expiry }; // attach still running: it finishes the detach
      return;
    }
    this.ending(holder, session, publishWill, expiry);
    session.detach(holder.client);
    if (!session.client) this.detached(session);
  }

  /** What a connection's end says for its session: the expiry a DISCONNECT set, and the will. */
  private ending(holder: Holder, session: MqttSession, publishWill: boolean, expiry: number | undefined): void {
    if (expiry !== undefined && session.persistent) session.expiry = expiry;
    if (publishWill && holder.will) this.publishWill(session, holder.account, holder.conn, holder.will);
  }

  /** A will goes now, or after its delay unless the session resumes first; the session's end
   *  publishes a delayed one early [MQTT-3.1.2-8]. */
  private publishWill(session: MqttSession, account: string, conn: Connection, will: SessionWill): void {
    const publish = () => void this.route(account, conn, will.subject, will.message)?.catch(noop); // logged by journal
    const delay = Math.min(will.delay ?? 0, session.expiry);
    if (delay <= 0) return publish();
    const timer = new Deadline(Date.now() + delay * 1000, () => {
      session.delayedWill = undefined;
      publish();
    });
    session.delayedWill = { timer, publish };
  }

  /** The session ends: its delayed will, if any, goes now. */
  private willNow(session: MqttSession): void {
    const will = session.delayedWill;
    if (!will) return;
    session.delayedWill = undefined;
    will.timer.cancel();
    will.publish();
  }

  /** A session no connection holds: ends now (expiry 0), after its expiry interval, or never. */
  private detached(session: MqttSession): void {
    if (!session.persistent || session.expiry === 0) {
      this.endSession(session);
      if (session.persistent) this.journal((s) => s.deleteSession(session.key)).catch(noop);
      return;
    }
    if (session.expiry === EXPIRY_NEVER) return;
    // The record says when the connection ended, so a restart knows what is left of the interval.
    const record = this.record(session);
    this.journal((s) => s.putSession(record)).catch(noop);
    this.armExpiry(session, session.expiry * 1000);
  }

  private armExpiry(session: MqttSession, ms: number): void {
    session.expiryTimer?.cancel();
    session.expiryTimer = new Deadline(Date.now() + ms, () => void this.serial(session.key, async () => {
      // Sessions that expire together (a lost edge's, with one interval) end a share per turn.
      const share = this.turns.take(1 + session.subscriptions.size);
      if (share) await share;
      if (this.sessions.get(session.key) !== session || session.client) return;
      this.endSession(session);
      await this.journal((s) => s.deleteSession(session.key));
    }).catch(noop));
  }

  /** The store record of a session (its subscriptions, unless given). */
  private record(session: MqttSession, subscriptions = session.subscriptionList()): SessionRecord {
    const rec: SessionRecord = { clientId: session.clientId, subscriptions, updatedAt: Date.now(), account: session.account };
    if (session.expiry !== EXPIRY_NEVER) rec.expiry = session.expiry;
    if (session.mqtt5) rec.mqtt5 = true;
    return rec;
  }

  publish(conn: Connection, subject: string, msg: StoredMessage): Promise<void> | undefined {
    const session = this.holding(conn);
    if (session) return this.route(session.account, conn, subject, msg);
    const later = this.afterAttach(conn, (s) => this.route(s.account, conn, subject, msg));
    if (later) return msg.qos === 0 ? void later.catch(noop) : later;
    return msg.qos === 0 ? undefined : NOT_HELD;
  }

  incoming(conn: Connection, packetId: number, subject: string, msg: StoredMessage): Promise<void> {
    // Exactly once: routed on the first PUBLISH of this packet id, not on its duplicates. Once
    // stored, the message is routed even if the connection closed meanwhile, since its resend
    // would be taken as a duplicate.
    const work = (session: MqttSession) => this.store.putIncoming(session.key, packetId, msg).then((fresh) => {
      if (fresh) return this.route(session.account, conn, subject, msg);
    });
    const session = this.holding(conn);
    return session ? work(session) : this.afterAttach(conn, work) ?? NOT_HELD;
  }

  release(conn: Connection, packetId: number): Promise<void> {
    const work = (session: MqttSession) => this.store.takeIncoming(session.key, packetId).then(noop);
    const session = this.holding(conn);
    return session ? work(session) : this.afterAttach(conn, work) ?? NOT_HELD;
  }

  puback(conn: Connection, packetId: number): void {
    this.withSession(conn, (s) => s.puback(packetId));
  }

  pubrec(conn: Connection, packetId: number): void {
    this.withSession(conn, (s) => s.pubrec(packetId));
  }

  pubcomp(conn: Connection, packetId: number): void {
    this.withSession(conn, (s) => s.pubcomp(packetId));
  }

  /** Runs `op` on the session `conn` holds: now, or once its attach finished. */
  private withSession(conn: Connection, op: (session: MqttSession) => void): void {
    const session = this.holding(conn);
    if (session) return op(session);
    void this.afterAttach(conn, async (s) => op(s))?.catch(noop);
  }

  /** `op` once the attach of `conn` finished; undefined when `conn` is not attaching. */
  private afterAttach(conn: Connection, op: (session: MqttSession) => Promise<void> | undefined): Promise<void> | undefined {
    const holder = this.held.get(conn.edgeId)?.get(conn.cid);
    if (!holder || holder.gone) return undefined;
    return holder.ready.then(() => (holder.session && !holder.gone ? op(holder.session) : NOT_HELD));
  }

  permissions(conn: Connection, subscribe: SubjectPermission | undefined, will: SessionWill | undefined): Promise<MqttSubscription[]> {
    const holder = this.held.get(conn.edgeId)?.get(conn.cid);
    if (!holder?.session) return Promise.resolve([]);
    holder.subscribe = subscribe;
    holder.will = will;
    this.applyPermissions(holder, holder.session);
    return Promise.resolve(holder.session.subscriptionList());
  }

  /** Ends every session; resolves once their store writes (and the writes those chain) landed. */
  async close(): Promise<void> {
    for (const byCid of this.held.values()) for (const holder of byCid.values()) this.lostGrace.clear(holder, LOST_LINK_GRACE_MS);
    for (const s of this.sessions.values()) s.dispose();
    this.sessions.clear();
    this.held.clear();
    this.holders.clear();
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  // ---- inside ----

  /**
   * Routes an MQTT message (with the Nmqtt-Pub header NATS subscribers see) and returns the
   * completion of the store writes it started: the retained message, copies queued for
   * persistent sessions. Those happen inside the synchronous router call, so they are collected
   * here. Undefined: nothing to wait for (nothing written, or QoS 0, whose failed writes are logged).
   */
  private route(account: string, origin: Connection, subject: string, msg: StoredMessage): Promise<void> | undefined {
    this.collecting = true;
    try {
      if (msg.retain) {
        stampExpiry(msg);
        this.journal((s) => s.setRetained(account, msg));
      }
      const hdr = mqttHeader(msg.qos, msg.props);
      const size = hdr.length + msg.payload.length;
      let data: Buffer, at = 0;
      if (size > ROUTE_SLAB_BYTES / 8) {
        data = Buffer.allocUnsafe(size); // a large message gets its own
      } else {
        if (this.slabAt + size > ROUTE_SLAB_BYTES) {
          this.slab = Buffer.allocUnsafe(ROUTE_SLAB_BYTES);
          this.slabAt = 0;
        }
        data = this.slab;
        at = this.slabAt;
        this.slabAt += size;
      }
      data.set(hdr, at);
      data.set(msg.payload, at + hdr.length);
      const routed = this.routed;
      routed.buf = data;
      routed.start = at;
      routed.end = at + size;
      routed.hdrLen = hdr.length;
      // MQTT 5 response topic: the NATS reply subject (checked a topic name by the edge).
      const response = msg.props?.responseTopic;
      // The router delivers synchronously to the sessions here: they see who published, and how.
      this.publishing.session = this.holding(origin);
      // A message kept for a replay records its queue groups' picks (Mesh.replay).
      let options = msg.retain ? RETAINED : undefined;
      if (this.owners && msg.qos > 0) {
        this.picks.length = 0;
        options = this.keptOptions;
        options.retain = msg.retain;
      }
      this.router.publish(account, subject, response === undefined ? undefined : topicToSubject(response, false), routed, origin, options);
    } finally {
      this.publishing.session = undefined;
      this.collecting = false;
    }
    let writes = this.collected;
    this.collected = undefined;
    const up = msg.qos > 0 ? this.store.available?.() : undefined;
    if (up) (writes ??= []).push(up);
    if (this.owners && msg.qos > 0) {
      const picks = this.picks.length > 0 ? this.picks.splice(0) : undefined;
      const kept: Kept = { account, subject, msg: { ...msg, payload: Buffer.from(msg.payload), id: this.router.msgId }, at: Date.now(), picks };
      this.keepRecent(kept);
      if (this.holds > 0 && this.limboBytes < LIMBO_MAX_BYTES) {
        this.indexKept(kept, this.limbo.push(kept) - 1);
        this.limboBytes += msg.payload.length;
        (writes ??= []).push(this.holdEnded);
      }
    }
    if (!writes || msg.qos === 0) return undefined;
    return writes.length === 1 ? writes[0].then(noop) : Promise.all(writes).then(noop);
  }

  subscribe(conn: Connection, subs: MqttSubscription[]): void {
    const holder = this.held.get(conn.edgeId)?.get(conn.cid);
    if (holder && !holder.session) return this.withSession(conn, () => this.subscribe(conn, subs));
    const session = holder?.session;
    if (!session) return;
    // MQTT 5 retain handling: 0 always sends retained messages, 1 for a new subscription only, 2 never.
    const retained = subs.filter((s) => s.retainHandling !== 2 && !(s.retainHandling === 1 && session.subscriptions.has(s.filter)));
    for (const sub of subs) this.addSubscription(session, sub);
    this.saveSubscriptions(session);
    // Retained messages follow the SUBACK (the edge sent it first), with the retain flag [MQTT-3.3.1-6].
    void (async () => {
      for (const { filter, qos, identifier } of retained) {
        // A shared subscription gets no retained messages [MQTT-4.8.2]: its group has them already.
        if (filterInterest(filter)?.queue !== undefined) continue;
        for (const m of await this.store.matchRetained(session.account, filter)) {
          if (holder.gone) return;
          // A retained message past its expiry is no longer sent [MQTT-3.3.2-5].
          if (expired(m, Date.now())) continue;
          const props = identifier === undefined ? m.props : { ...m.props, subscriptionIdentifier: identifier };
          const q = Math.min(qos, m.qos) as 0 | 1 | 2;
          if (q === 0) holder.client.sendPublish(m.topic, m.payload, 0, true, false, undefined, deliveryProps(m, props));
          else session.enqueue({ ...m, qos: q, retain: true, ...(props ? { props } : {}) });
        }
      }
    })().catch((err: Error) => this.log.error(`mqtt store: ${err.message}`));
  }

  unsubscribe(conn: Connection, filters: string[]): void {
    this.withSession(conn, (session) => {
      for (const filter of filters) session.removeSubscription(filter);
      this.saveSubscriptions(session);
    });
  }

  private addSubscription(session: MqttSession, sub: MqttSubscription): void {
    const interest = filterInterest(sub.filter);
    if (interest) session.addSubscription(sub, interest);
  }

  /** Records a persistent session's subscriptions. */
  private saveSubscriptions(session: MqttSession): void {
    if (!session.persistent) return;
    const record = this.record(session);
    this.journal((s) => s.putSession(record));
  }

  /**
   * The user attached to the session (a takeover by another user of the account, or a reload)
   * gets only what its permissions allow, as nats-server re-checks a session's subscriptions
   * against the connecting user.
   */
  private applyPermissions(holder: Holder, session: MqttSession): void {
    const perms = holder.subscribe ? new PermissionChecker({ subscribe: holder.subscribe }) : undefined;
    const cid = holder.conn.cid;
    if (session.applyPermissions(perms, (subject, qos) => mqttMaySubscribe(perms, subject, qos, cid))) {
      this.saveSubscriptions(session);
    }
  }

  private holding(conn: Connection): MqttSession | undefined {
    return this.held.get(conn.edgeId)?.get(conn.cid)?.session;
  }

  /** Connection `by` attached: the old one closes without its will (as nats-server), unless its
   *  stream was lost already (linkLost) and `by` is another connection: its will goes now, as
   *  it would have without the grace. */
  private takeOver(previous: Holder, by: ConnectionRef | undefined): void {
    const will = previous.lost && !(by && sameConnection(previous.conn, by)) ? previous.will : undefined;
    this.letGo(previous);
    if (will) this.publishWill(previous.session!, previous.account, previous.conn, will);
    previous.client.takenOver();
  }

  /** The session no longer goes to `previous` (no will: the connection is not lost). */
  private letGo(previous: Holder): void {
    this.forget(previous);
    previous.session!.detach(previous.client);
  }

  private forget(holder: Holder): void {
    holder.gone = true;
    this.lostGrace.clear(holder, LOST_LINK_GRACE_MS);
    if (holder.session && this.holders.get(holder.session) === holder) this.holders.delete(holder.session);
    const byCid = this.held.get(holder.conn.edgeId);
    if (byCid?.get(holder.conn.cid) !== holder) return;
    byCid.delete(holder.conn.cid);
    if (byCid.size === 0) this.held.delete(holder.conn.edgeId);
  }

  private endSession(session: MqttSession): void {
    this.willNow(session);
    session.dispose();
    if (this.sessions.get(session.key) !== session) return;
    this.sessions.delete(session.key);
    this.owners?.release(session.key);
  }

  // ---- OwnedSessions (cluster) ----

  private keepRecent(kept: Kept): void {
    this.recent.push(kept);
    this.recentBytes += kept.msg.payload.length;
    const old = kept.at - RECENT_MS;
    let drop = 0;
    while (drop < this.recent.length && (this.recent[drop].at < old || this.recentBytes > LIMBO_MAX_BYTES)) {
      this.recentBytes -= this.recent[drop++].msg.payload.length;
    }
    if (drop > 0) this.recent.splice(0, drop);
  }

  /**
   * The recent QoS 1/2 messages published here with an id above `afterId`, oldest first, to a
   * peer router whose link dropped while both lived (Mesh.replay): what the link lost, or what
   * found none of the peer's interest while it was down. Ids grow with each publish (Router).
   */
  replaySince(afterId: number, send: ReplaySend): void {
    const since = Date.now() - RECENT_MS;
    for (const { account, subject, msg, at, picks } of this.recent) {
      if (msg.id === undefined || msg.id <= afterId || at < since) continue;
      send(account, subject, replyOf(msg), routedOf(msg), msg.retain, msg.id, picks);
    }
  }

  /** Keeps QoS 1/2 messages routed until `adoption` settles (see `limbo`), starting with the recent ones. */
  hold(adoption: Promise<unknown>): void {
    if (this.holds++ === 0) {
      clearTimeout(this.limboTimer);
      this.holdEnded = new Promise((resolve) => { this.releaseHold = resolve; });
      if (this.limbo.length === 0) {
        this.limboIndex = undefined;
        this.limbo = [...this.recent];
        this.limboBytes = this.recentBytes;
      }
    }
    void adoption.catch(noop).then(() => Promise.allSettled([...this.pending])).then(() => {
      if (--this.holds > 0) return;
      this.releaseHold();
      // An attach that started during the hold may still be loading its session: then they go.
      this.limboTimer = setTimeout(() => {
        if (this.holds > 0) return;
        this.limbo = [];
        this.limboIndex = undefined;
        this.limboBytes = 0;
      }, LIMBO_KEEP_MS);
      this.limboTimer.unref();
    });
  }

  /**
   * A session restored from the store here, just subscribed: the kept messages it matches, less
   * those it holds (loaded from the store) and those its client received from the lost router
   * (`delivered`, the session's delivered record, read before it subscribed here).
   */
  private fromLimbo(session: MqttSession, delivered: number[]): void {
    const skip = session.heldIds();
    for (const id of delivered) skip.add(id);
    const at = this.limboAt(session.account, subjectsOf(session));
    const n = at ? at.length : this.limbo.length;
    for (let i = 0; i < n; i++) {
      const { account, subject, msg } = this.limbo[at ? at[i] : i];
      if (account !== session.account || (msg.id !== undefined && skip.has(msg.id))) continue;
      for (const entry of session.subscriptions.values()) {
        const sub = entry.subs.find((s) => subjectMatches(s.subject, subject));
        if (!sub) continue;
        session.route(subject, replyOf(msg), routedOf(msg), sub, msg.id ?? 0);
        break;
      }
    }
  }

  /** Where the kept messages on `subjects` are in the limbo, in order; undefined: everywhere (a
   *  wildcard). Without it, each of a thousand sessions adopted at once looked at every kept
   *  message, and 2,000 of them took a router's event loop 0.4 s. */
  private limboAt(account: string, subjects: Iterable<string>): number[] | undefined {
    if (!this.limboIndex) {
      this.limboIndex = new Map();
      this.limbo.forEach((kept, i) => this.indexKept(kept, i));
    }
    let at: number[] | undefined, merged = false;
    for (const subject of subjects) {
      if (hasWildcard(subject)) return undefined;
      const found = this.limboIndex.get(`${account} ${subject}`);
      if (!found) continue;
      if (at) merged = true;
      at = at ? at.concat(found) : found;
    }
    // Two subscriptions' messages interleave: back in limbo order, each once.
    return merged ? [...new Set(at)].sort((a, b) => a - b) : at ?? [];
  }

  private indexKept(kept: Kept, i: number): void {
    if (!this.limboIndex) return;
    const key = `${kept.account} ${kept.subject}`;
    const at = this.limboIndex.get(key);
    if (at) at.push(i);
    else this.limboIndex.set(key, [i]);
  }

  /** fromLimbo's work for `session` with `subs` added, in turn-budget units (a kept message
   *  looked at is much less than a session restored). */
  private limboCost(session: MqttSession, subs: MqttSubscription[] | undefined): number {
    if (this.limbo.length === 0) return 0;
    const subjects = [...subjectsOf(session)];
    for (const sub of subs ?? []) subjects.push(...filterInterest(sub.filter)?.subjects ?? []);
    return Math.ceil((this.limboAt(session.account, subjects)?.length ?? this.limbo.length) / 64);
  }

  prepare(key: SessionKey): void {
    const session = this.sessions.get(key);
    if (!session?.persistent) return;
    session.handingOver = true;
    session.handoverSeq = undefined; // an earlier handover that did not happen counts no more
  }

  /** Another router took the session over: its holder here closes as taken over, its
   *  subscriptions go (the store keeps its state), and its started writes land first. After a
   *  prepare, the subscriptions stay until a flush barrier passed: what peers routed before they
   *  knew the new owner's interest is queued here first. */
  evict(key: SessionKey, by?: ConnectionRef): Promise<number | undefined> {
    return this.serial(key, async () => {
      const session = this.sessions.get(key);
      if (!session) return undefined;
      const holder = this.holders.get(session);
      if (holder) this.takeOver(holder, by);
      if (session.handingOver) await new Promise<void>((resolve) => this.router.sync(resolve));
      session.dispose();
      if (this.sessions.get(key) === session) this.sessions.delete(key);
      await Promise.allSettled([...this.pending]);
      return session.handoverSeq?.catch(() => undefined);
    });
  }

  /** A router that owned the session left: restore it here from the store (a clean session
   *  left nothing to restore, so only its ownership goes). */
  adopt(key: SessionKey): Promise<boolean> {
    return this.serial(key, async () => {
      if (this.sessions.has(key)) return false;
      const saved = await this.store.getSession(key);
      if (!saved) {
        this.owners?.release(key);
        return false;
      }
      const session = this.restoreSession({ ...saved, subscriptions: [] });
      await session?.restore(this.store);
      const share = this.turns.take(1 + saved.subscriptions.length + (session ? this.limboCost(session, saved.subscriptions) : 0));
      if (share) await share;
      const delivered = session && this.limbo.length > 0 ? await this.store.delivered(key) : undefined;
      if (session && this.sessions.get(key) === session) {
        for (const sub of saved.subscriptions) this.addSubscription(session, sub);
        if (delivered) this.fromLimbo(session, delivered);
      }
      return true;
    });
  }

  /** A persistent session from its store record, queueing for its subscriptions until the client
   *  returns or its expiry interval (counted from the record's last write) ends. */
  private restoreSession(saved: SessionRecord): MqttSession | undefined {
    const session = new MqttSession(this.nextCid++, saved.clientId, true, saved.account ?? GLOBAL_ACCOUNT, this);
    if (this.sessions.has(session.key)) return undefined;
    const left = expiredAt(saved) - Date.now();
    if (left <= 0) {
      this.journal((s) => s.deleteSession(session.key)).catch(noop);
      return undefined;
    }
    session.expiry = saved.expiry ?? EXPIRY_NEVER;
    session.mqtt5 = saved.mqtt5 === true; // what it queues before its client is back keeps its properties
    this.sessions.set(session.key, session);
    for (const sub of saved.subscriptions) this.addSubscription(session, sub);
    if (saved.expiry !== undefined) this.armExpiry(session, left);
    return session;
  }
}

function noop(): void {}

/** The subjects of a session's subscriptions. */
function* subjectsOf(session: MqttSession): Iterable<string> {
  for (const entry of session.subscriptions.values()) for (const sub of entry.subs) yield sub.subject;
}

const RETAINED: PublishOptions = { noResponders: false, retain: true };

/** When a stored session expires (ms epoch; Infinity: never). */
function expiredAt(saved: SessionRecord): number {
  return saved.expiry === undefined || saved.expiry === EXPIRY_NEVER ? Infinity : saved.updatedAt + saved.expiry * 1000;
}

/** Bounds on the messages kept while a lost router's sessions are adopted, and how far back
 *  the recent ones go: a forward in flight to a peer that died is younger than 1 s at its
 *  death, and a peer that froze (SIGSTOP, a stall) is declared dead only after its silence
 *  timeout and up to two ping ticks more (peer.ts), all that time receiving forwards it never stores. */
const LIMBO_MAX_BYTES = 64 * 1024 * 1024, LIMBO_KEEP_MS = 1_000;
const ROUTE_SLAB_BYTES = 64 * 1024;
/** Turn-budget units (about a session restored with one subscription) per event-loop turn: a
 *  share of some milliseconds, far below the edges' 1.5 s keepalive answer. */
const SESSION_TURN_BUDGET = 64;
const RECENT_MS = 1_000 + DEAD_AFTER_MS + 2 * PING_INTERVAL_MS;
/** How long a connection whose stream was lost stays attached (linkLost): an edge that lost its
 *  router (or was stalled past the keepalive) has re-attached within this: two attach timeouts
 *  and a second for a loaded machine (3 s was too short at a load average over 10). */
export const LOST_LINK_GRACE_MS = 2 * ATTACH_TIMEOUT_MS + 1_000;

/** A QoS 1/2 message kept in a cluster; `picks`: its account's queue groups that got a member. */
interface Kept { account: string; subject: string; msg: StoredMessage; at: number; picks: QueuePick[] | undefined }

/** A kept message as the router routes it: its MQTT header, then its payload. */
function routedOf(msg: StoredMessage): MessageData {
  const hdr = mqttHeader(msg.qos, msg.props);
  const data = Buffer.concat([hdr, msg.payload]);
  return { buf: data, start: 0, end: data.length, hdrLen: hdr.length };
}

/** A kept message's reply subject: its MQTT 5 response topic. */
function replyOf(msg: StoredMessage): string | undefined {
  const response = msg.props?.responseTopic;
  return response === undefined ? undefined : topicToSubject(response, false);
}
