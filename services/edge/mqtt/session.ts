// MQTT sessions: the subscriptions and QoS 1/2 deliveries of a client id in an account (the
// SessionKey: the same client id in two accounts is two sessions), which outlive the
// connection when the client asked for a persistent session (clean = false). Subscriptions sit
// in the one sublist as ordinary subscribers; deliveries for an absent client are queued.
// Persistent sessions write through to the MqttStore, so a restart loses nothing.
import type { Logger } from "../../common/log.js";
import type { PermissionChecker } from "../auth/permissions.js";
import type { Connection, MessageData, RouterLink, Subscriber } from "../../router/link.js";
import { sessionKey, type MqttStore, type QoS, type SessionKey, type StoredMessage } from "../../router/store/store.js";
import { subjectToTopic, topicToSubject } from "./topic.js";

/** What a session needs from the connection currently attached to it. */
export interface SessionClient {
  sendPublish(topic: string, payload: Buffer, qos: QoS, retain: boolean, dup: boolean, packetId?: number): void;
  sendPubrel(packetId: number): void;
  /** Closes the connection because another one took the session over. */
  takenOver(): void;
}

export interface SessionLimits {
  ackWaitMs: number;
  maxAckPending: number;
}

/** A QoS 1/2 delivery on its way: queued, then in flight under a packet id until acknowledged. */
interface Delivery {
  msg: StoredMessage;
  /** The store's sequence number (persistent sessions). */
  seq?: Promise<number>;
  sentAt: number;
}

const NMQTT_PUB = "Nmqtt-Pub:";
const NMQTT_PUB_BYTES = Buffer.from(NMQTT_PUB, "latin1");
/** Length of "NATS/1.0\r\nNmqtt-Pub:q\r\n\r\n", and where q sits in it. */
const NMQTT_HDR_LEN = 25;
const QOS_AT = 20;

export class MqttSession implements Connection {
  readonly echo = true; // MQTT 3.1.1 delivers a client's own publishes to its subscriptions
  readonly edgeId: string;
  /** MQTT filter → granted QoS and its sublist entries ("a/#" needs two: a.> and a). */
  readonly subscriptions = new Map<string, { qos: QoS; subs: MqttSubscriber[] }>();
  client: SessionClient | undefined;
  /** The permissions of the user the session belongs to (its latest connection's). */
  permissions: PermissionChecker | undefined;
  private readonly queue: Delivery[] = [];
  private readonly inflight = new Map<number, Delivery>();
  /** Packet ids whose PUBREC came: PUBREL sent, PUBCOMP awaited (QoS 2 outbound). */
  private readonly released = new Set<number>();
  private nextPacketId = 1;
  /** Sids of this session's sublist entries (one per entry, as a NATS client numbers its SUBs). */
  private nextSid = 1;
  private retryTimer: NodeJS.Timeout | undefined;
  private lastSubject = "";
  private lastTopic = "";
  /** After a restart the store holds deliveries memory does not: load them once. */
  restored = false;
  /** Account + client id: the session's name in the registry and in every store key. */
  readonly key: SessionKey;

  constructor(
    readonly cid: number,
    readonly clientId: string,
    readonly persistent: boolean,
    readonly account: string,
    private readonly registry: SessionRegistry,
  ) {
    this.key = sessionKey(account, clientId);
    this.edgeId = registry.ids.serverId;
  }

  // ---- subscriptions ----

  addSubscription(filter: string, subjects: string[], qos: QoS): void {
    this.removeSubscription(filter);
    // [MQTT-4.7.2-1] a filter starting with a wildcard does not match topics starting with "$".
    const wildFirst = filter.startsWith("+") || filter.startsWith("#");
    const subs = subjects.map((s) => new MqttSubscriber(s, String(this.nextSid++), this, qos, wildFirst));
    for (const s of subs) this.registry.link.subscribe(this.account, s);
    this.subscriptions.set(filter, { qos, subs });
  }

  removeSubscription(filter: string): boolean {
    const entry = this.subscriptions.get(filter);
    if (!entry) return false;
    for (const s of entry.subs) this.registry.link.unsubscribe(this.account, s);
    this.subscriptions.delete(filter);
    return true;
  }

  // ---- outbound ----

  /** A message the router matched to one of this session's subscriptions. */
  route(subject: string, msg: MessageData, granted: QoS, wildFirst: boolean): void {
    if (wildFirst && subject.charCodeAt(0) === 36 /* $ */) return;
    // A wildcard subscription may cover subjects the user is denied (nats-server filters them here).
    const perms = this.permissions;
    if (perms?.hasSubscribeDeny && perms.deniedDelivery(subject)) return;
    const qos = Math.min(granted, publishedQos(msg)) as QoS;
    // Subscribers mostly see one subject again and again: map it once.
    if (subject !== this.lastSubject) {
      this.lastSubject = subject;
      this.lastTopic = subjectToTopic(subject);
    }
    const topic = this.lastTopic;
    const payload = msg.buf.subarray(msg.start + msg.hdrLen, msg.end);
    if (qos === 0) {
      this.client?.sendPublish(topic, payload, 0, false, false);
      return;
    }
    this.enqueue({ topic, payload: Buffer.from(payload), qos, retain: false });
  }

  /** A QoS 1/2 message for this client (a routed one, or a retained one on subscribe). */
  enqueue(msg: StoredMessage): void {
    const d: Delivery = { msg, sentAt: 0 };
    if (this.persistent) d.seq = this.registry.journal((s) => s.enqueue(this.key, msg));
    this.queue.push(d);
    this.pump();
  }

  /** Send what the in-flight window allows. */
  pump(): void {
    const client = this.client;
    if (!client) return;
    const limits = this.registry.limits;
    while (this.queue.length > 0 && this.inflight.size < limits.maxAckPending) {
      const d = this.queue.shift()!;
      const id = this.packetId();
      this.inflight.set(id, d);
      d.sentAt = Date.now();
      // Stored with its packet id, so a resend after a restart reuses it with DUP [MQTT-4.4.0-1].
      if (d.seq) d.seq.then((seq) => void this.registry.journal((s) => s.setPacketId(this.key, seq, id)), () => {});
      client.sendPublish(d.msg.topic, d.msg.payload, d.msg.qos, d.msg.retain, false, id);
    }
    if (this.inflight.size > 0 && !this.retryTimer) {
      this.retryTimer = setInterval(() => this.redeliver(false), Math.max(50, limits.ackWaitMs / 2));
      this.retryTimer.unref();
    }
  }

  /** Resend what waited ack_wait (or everything, on reconnect) with DUP set. */
  redeliver(all: boolean): void {
    const client = this.client;
    if (!client) return;
    const due = Date.now() - this.registry.limits.ackWaitMs;
    for (const [id, d] of this.inflight) {
      if (!all && d.sentAt > due) continue;
      d.sentAt = Date.now();
      client.sendPublish(d.msg.topic, d.msg.payload, d.msg.qos, d.msg.retain, true, id);
    }
    if (all) for (const id of this.released) client.sendPubrel(id);
  }

  puback(id: number): void {
    const d = this.inflight.get(id);
    if (!d || d.msg.qos !== 1) return;
    this.inflight.delete(id);
    this.settle(d);
    this.pump();
  }

  pubrec(id: number): void {
    const d = this.inflight.get(id);
    if (d && d.msg.qos === 2) {
      this.inflight.delete(id);
      this.settle(d);
      this.released.add(id);
      if (this.persistent) this.registry.journal((s) => s.markReleased(this.key, id));
    }
    if (this.released.has(id)) this.client?.sendPubrel(id);
  }

  pubcomp(id: number): void {
    if (!this.released.delete(id)) return;
    if (this.persistent) this.registry.journal((s) => s.completeReleased(this.key, id));
    this.pump();
  }

  /** Loads what a previous process left in the store (after a restart). */
  async restore(store: MqttStore): Promise<void> {
    if (this.restored || !this.persistent) return;
    this.restored = true;
    for (const q of await store.queued(this.key, 65_535)) {
      const d: Delivery = { msg: q, seq: Promise.resolve(q.seq), sentAt: 0 };
      // Sent before the restart: in flight again under its id, resent with DUP on attach.
      if (q.packetId !== undefined && !this.inflight.has(q.packetId)) this.inflight.set(q.packetId, d);
      else this.queue.push(d);
    }
    for (const id of await store.released(this.key)) this.released.add(id);
  }

  /** The connection went away; a persistent session keeps queueing. */
  detach(client: SessionClient): void {
    if (this.client !== client) return;
    this.client = undefined;
    // Unacknowledged deliveries stay in flight under their packet ids: the next connection
    // gets them again with DUP set [MQTT-4.4.0-1].
    if (this.retryTimer) clearInterval(this.retryTimer);
    this.retryTimer = undefined;
  }

  /**
   * The user attached to the session (a takeover by another user of the account, or a reload)
   * gets only what its permissions allow, as nats-server re-checks a session's subscriptions
   * against the connecting user: subscriptions `allowed` refuses are dropped, and so are queued
   * and in-flight deliveries on subjects the user may not read. Returns whether a subscription
   * was dropped (the caller saves the session then).
   */
  applyPermissions(perms: PermissionChecker | undefined, allowed: (subject: string, qos: QoS) => boolean): boolean {
    this.permissions = perms;
    let dropped = false;
    for (const [filter, entry] of [...this.subscriptions]) {
      if (entry.subs.every((s) => allowed(s.subject, entry.qos))) continue;
      this.removeSubscription(filter);
      dropped = true;
    }
    if (!perms) return dropped;
    const readable = (d: Delivery) => {
      const subject = topicToSubject(d.msg.topic, false);
      return subject !== undefined && perms.canSubscribe(subject);
    };
    for (let i = this.queue.length - 1; i >= 0; i--) {
      if (!readable(this.queue[i])) this.settle(this.queue.splice(i, 1)[0]);
    }
    for (const [id, d] of [...this.inflight]) {
      if (readable(d)) continue;
      this.inflight.delete(id);
      this.settle(d);
    }
    return dropped;
  }

  /** Drops every subscription (clean session end, or takeover by a clean session). */
  dispose(): void {
    for (const filter of [...this.subscriptions.keys()]) this.removeSubscription(filter);
    if (this.retryTimer) clearInterval(this.retryTimer);
    this.retryTimer = undefined;
    this.queue.length = 0;
    this.inflight.clear();
  }

  private settle(d: Delivery): void {
    if (d.seq) d.seq.then((seq) => void this.registry.journal((s) => s.ack(this.key, seq)), () => {});
  }

  private packetId(): number {
    // Ids in use (in flight or released) are skipped; 65535 is the protocol's limit.
    for (;;) {
      const id = this.nextPacketId;
      this.nextPacketId = id === 65535 ? 1 : id + 1;
      if (!this.inflight.has(id) && !this.released.has(id)) return id;
    }
  }
}

/** One sublist entry of an MQTT subscription. */
export class MqttSubscriber implements Subscriber {
  readonly queue = undefined;
  constructor(readonly subject: string, readonly sid: string, readonly conn: MqttSession, readonly qos: QoS,
              /** The MQTT filter starts with + or #. */
              private readonly wildFirst: boolean) {}

  deliver(subject: string, _reply: string | undefined, msg: MessageData): void {
    this.conn.route(subject, msg, this.qos, this.wildFirst);
  }
}

/** All sessions of this edge, by session key (account + client id). */
export class SessionRegistry {
  private readonly sessions = new Map<SessionKey, MqttSession>();
  /** Store writes not yet settled, so close() can let them land before the store closes. */
  private readonly pending = new Set<Promise<unknown>>();
  /** Inside writesOf: the writes started so far. */
  private collecting = false;
  private collected: Promise<unknown>[] | undefined;

  constructor(
    readonly link: RouterLink,
    /** The edge's one connection id space: a session is a connection to the router. */
    readonly ids: { readonly serverId: string; newConnectionId(): number },
    readonly store: MqttStore,
    public limits: SessionLimits,
    private readonly log: Logger,
  ) {}

  get size(): number { return this.sessions.size; }

  /**
   * Attaches a connection to the session of the client id in the account, taking it over from
   * another connection of that account (a client of another account with the same client id
   * has a session of its own). Returns the session and whether it existed (CONNACK session present).
   */
  async attach(clientId: string, clean: boolean, account: string, client: SessionClient):
      Promise<{ session: MqttSession; present: boolean }> {
    const key = sessionKey(account, clientId);
    let session = this.sessions.get(key);
    if (session?.client && session.client !== client) {
      const old = session.client;
      session.detach(old);
      old.takenOver();
    }
    if (session && (clean || !session.persistent)) {
      session.dispose();
      this.sessions.delete(key);
      if (session.persistent) await this.store.deleteSession(key);
      session = undefined;
    }
    let present = false;
    if (session) {
      present = true;
    } else if (clean) {
      await this.store.deleteSession(key);
      session = new MqttSession(this.ids.newConnectionId(), clientId, false, account, this);
    } else {
      session = new MqttSession(this.ids.newConnectionId(), clientId, true, account, this);
      const saved = await this.store.getSession(key);
      if (saved) present = true;
      await this.store.putSession({ clientId, subscriptions: saved?.subscriptions ?? [], updatedAt: Date.now(), account });
    }
    this.sessions.set(key, session);
    session.client = client;
    if (session.persistent) await session.restore(this.store);
    return { session, present };
  }

  /** The connection closed: a clean session ends, a persistent one waits for its client. */
  detach(session: MqttSession, client: SessionClient): void {
    session.detach(client);
    if (session.persistent || session.client) return;
    session.dispose();
    if (this.sessions.get(session.key) === session) this.sessions.delete(session.key);
  }

  /** Records a persistent session's subscriptions. */
  saveSubscriptions(session: MqttSession): void {
    if (!session.persistent) return;
    const subscriptions = [...session.subscriptions].map(([filter, e]) => ({ filter, qos: e.qos }));
    this.journal((s) => s.putSession({ clientId: session.clientId, subscriptions, updatedAt: Date.now(), account: session.account }));
  }

  /** Persistent sessions of an earlier run: their subscriptions queue messages until the client returns. */
  async restoreAll(resubscribe: (session: MqttSession, filter: string, qos: QoS) => void, defaultAccount: string): Promise<void> {
    for (const saved of await this.store.listSessions()) {
      const session = new MqttSession(this.ids.newConnectionId(), saved.clientId, true, saved.account ?? defaultAccount, this);
      if (this.sessions.has(session.key)) continue;
      this.sessions.set(session.key, session);
      for (const { filter, qos } of saved.subscriptions) resubscribe(session, filter, qos);
    }
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

  /** Runs `route` (one message's routing) and returns the store writes it started: queued
   *  copies for persistent sessions, the retained message. Undefined when there were none. */
  writesOf(route: () => void): Promise<unknown>[] | undefined {
    this.collecting = true;
    try {
      route();
    } finally {
      this.collecting = false;
    }
    const writes = this.collected;
    this.collected = undefined;
    return writes;
  }

  /** Ends every session; resolves once their store writes (and the writes those chain) landed. */
  async close(): Promise<void> {
    for (const s of this.sessions.values()) s.dispose();
    this.sessions.clear();
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }
}

/** QoS of a message published by an MQTT client (the Nmqtt-Pub header); NATS messages are QoS 0. */
function publishedQos({ buf, start, hdrLen }: MessageData): QoS {
  if (hdrLen === 0) return 0;
  // Fast path: the header exactly as MQTT publishers here write it ("NATS/1.0\r\nNmqtt-Pub:q\r\n\r\n").
  if (hdrLen === NMQTT_HDR_LEN && buf[start + QOS_AT - 1] === 58 /* : */ && buf[start + 10] === 78 /* N */) {
    const q = buf[start + QOS_AT] - 48;
    return q === 1 || q === 2 ? q : 0;
  }
  const at = buf.indexOf(NMQTT_PUB_BYTES, start);
  if (at < 0 || at - start >= hdrLen) return 0;
  const q = buf[at + NMQTT_PUB.length] - 48;
  return q === 1 || q === 2 ? q : 0;
}
