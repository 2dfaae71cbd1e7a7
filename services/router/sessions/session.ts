// One MQTT session on the router side: the subscriptions and QoS 1/2 deliveries of a client id
// in an account (the SessionKey: the same client id in two accounts is two sessions), which
// outlive the connection when the client asked for a persistent session (clean = false).
// Subscriptions sit in the router's sublist as ordinary subscribers; deliveries for an absent
// client are queued. Persistent sessions write through to the MqttStore, so a restart loses
// nothing. The SessionService (service.ts) owns the sessions and who holds each.
import type { PermissionChecker } from "../../common/permissions.js";
import type { Deadline } from "../../common/deadline.js";
import { subjectToTopic, topicToSubject, type FilterInterest } from "../../common/mqtt-topic.js";
import { headersToProperties, propertiesToHeaderLines, type MqttProperties } from "../../common/mqtt-properties.js";
import {
  EXPIRY_NEVER, type Connection, type MessageData, type MqttSubscription, type QoS, type SessionClient, type SessionLimits,
  type StoredMessage, type Subscriber,
} from "../link.js";
export type { SessionLimits };
import { sessionKey, type MqttStore, type QueuedMessage, type SessionKey } from "../store/store.js";

/** What a session needs of its service: routing, the store journal, the limits. */
export interface SessionHost {
  readonly id: string;
  /** While an MQTT publish is being routed (synchronously): the publishing session, for no local. */
  readonly publishing: { session: MqttSession | undefined };
  readonly limits: SessionLimits;
  readonly router: {
    subscribe(account: string, sub: Subscriber): void; unsubscribe(account: string, sub: Subscriber): void;
    /** The retain flag of the message being delivered, published here or on a peer router. */
    readonly retained: boolean;
    /** The id of the message being delivered (0: none). */
    readonly msgId: number;
  };
  /** Cluster: a QoS 2 delivery's PUBREC also records its message id in the store, for a router
   *  that adopts the session after this one died (MqttStore.received). */
  readonly keepsDelivered: boolean;
  journal<T>(op: (store: MqttStore) => Promise<T>): Promise<T>;
}


/** A QoS 1/2 delivery on its way: queued, then in flight under a packet id until acknowledged. */
interface Delivery {
  /** Not delivered after its `expiresAt` (MQTT 5 message expiry). */
  msg: StoredMessage;
  /** The store's sequence number (persistent sessions). */
  seq?: Promise<number>;
  sentAt: number;
  /** QoS 2 of a persistent session: its packet id is being stored, and it is not sent before. */
  idPending?: boolean;
  /** Not sent to any client yet: its first send has no DUP [MQTT-3.3.1-1]. */
  unsent?: boolean;
}

const NMQTT_PUB = "Nmqtt-Pub:";
/** The header NATS subscribers see on messages MQTT clients published, by QoS. */
export const NMQTT_HEADERS = ([0, 1, 2] as const).map((q) => Buffer.from(`NATS/1.0\r\n${NMQTT_PUB}${q}\r\n\r\n`, "latin1"));
const NMQTT_PUB_BYTES = Buffer.from(NMQTT_PUB, "latin1");
/** Length of "NATS/1.0\r\nNmqtt-Pub:q\r\n\r\n", and where q sits in it. */
const NMQTT_HDR_LEN = 25;
const QOS_AT = 20;

/** The header block of an MQTT message as NATS subscribers see it: the QoS, and the MQTT 5
 *  properties that travel as headers (mqtt-properties.ts). */
export function mqttHeader(qos: QoS, props: MqttProperties | undefined): Buffer {
  if (!props) return NMQTT_HEADERS[qos];
  return Buffer.from(`NATS/1.0\r\n${NMQTT_PUB}${qos}\r\n${propertiesToHeaderLines(props)}\r\n`, "utf8");
}

export class MqttSession implements Connection {
  readonly echo = true; // MQTT 3.1.1 delivers a client's own publishes to its subscriptions
  /** The service's id: a session is a connection of the router side, not of an edge. */
  readonly edgeId: string;
  /** MQTT filter → the subscription and its sublist entries ("a/#" needs two: a.> and a). */
  readonly subscriptions = new Map<string, { sub: MqttSubscription; subs: MqttSubscriber[] }>();
  /** The connection holding the session, if any. */
  client: SessionClient | undefined;
  /** The client attached, its CONNACK not sent yet: deliveries wait for its resume (the server's
   *  first packet is the CONNACK [MQTT-3.2.0-1]; live messages come at once on an attach whose
   *  interest was in place before it, see SessionService.attachNow). */
  connecting = false;
  /** The permissions of the user the session belongs to (its latest connection's). */
  permissions: PermissionChecker | undefined;
  private readonly queue: Delivery[] = [];
  /** QoS 1/2 deliveries sent, by packet id. It and `released` are made on first use: most
   *  sessions of idle connections never need them. */
  private inflight: Map<number, Delivery> | undefined;
  /** Packet ids whose PUBREC came: PUBREL sent, PUBCOMP awaited (QoS 2 outbound). */
  private released: Set<number> | undefined;
  private nextPacketId = 1;
  /** Sids of this session's sublist entries (one per entry, as a NATS client numbers its SUBs). */
  private nextSid = 1;
  private retryTimer: NodeJS.Timeout | undefined;
  private lastSubject = "";
  private lastTopic = "";
  /** After a restart the store holds deliveries memory does not: load them once. */
  restored = false;
  /** Seconds the session outlives its connection (MQTT 5 session expiry; 3.1.1: 0 or never). */
  expiry = EXPIRY_NEVER;
  /** QoS 1/2 deliveries the holding client takes in flight (MQTT 5 receive maximum). */
  window = Infinity;
  /** Its latest client spoke MQTT 5: deliveries carry properties (3.1.1 ones skip the work). */
  mqtt5 = false;
  /** Ends the session once it has been detached for `expiry` seconds. */
  expiryTimer: Deadline | undefined;
  /** An MQTT 5 will waiting for its delay (published when it fires or the session ends). */
  delayedWill: { timer: Deadline; publish(): void } | undefined;
  /** Account + client id: the session's name in the service and in every store key. */
  readonly key: SessionKey;
  /** The holder's edge's limits, from its attach (the service's until one attaches). */
  limits: SessionLimits;
  /** Handover, new owner: the QoS 1/2 messages routed here before the old owner's queue is
   *  loaded (restore() merges them in). */
  shadow: StoredMessage[] | undefined;
  /** Handover, old owner: noting the first message queued since the new owner asked (true), and
   *  its store sequence once one was. */
  handingOver = false;
  handoverSeq: Promise<number> | undefined;

  constructor(
    readonly cid: number,
    readonly clientId: string,
    readonly persistent: boolean,
    readonly account: string,
    private readonly host: SessionHost,
  ) {
    this.key = sessionKey(account, clientId);
    this.limits = host.limits;
    this.edgeId = host.id;
  }

  // ---- subscriptions ----

  addSubscription(sub: MqttSubscription, interest: FilterInterest): void {
    this.removeSubscription(sub.filter);
    // [MQTT-4.7.2-1] a filter starting with a wildcard does not match topics starting with "$".
    const wildFirst = interest.filter.startsWith("+") || interest.filter.startsWith("#");
    const subs = interest.subjects.map((s) => new MqttSubscriber(s, interest.queue, String(this.nextSid++), this, sub, wildFirst));
    for (const s of subs) this.host.router.subscribe(this.account, s);
    this.subscriptions.set(sub.filter, { sub, subs });
  }

  removeSubscription(filter: string): boolean {
    const entry = this.subscriptions.get(filter);
    if (!entry) return false;
    for (const s of entry.subs) this.host.router.unsubscribe(this.account, s);
    this.subscriptions.delete(filter);
    return true;
  }

  // ---- outbound ----

  /** A message the router matched to one of this session's subscriptions. */
  route(subject: string, reply: string | undefined, msg: MessageData, { sub, wildFirst }: MqttSubscriber,
        msgId = this.host.router.msgId): void {
    if (wildFirst && subject.charCodeAt(0) === 36 /* $ */) return;
    const publishing = this.host.publishing;
    if (sub.noLocal && publishing.session === this) return; // MQTT 5 no local [MQTT-3.8.3-3]
    const granted = sub.qos;
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
    const payload = payloadOf(msg);
    // Headers beyond the plain Nmqtt-Pub one, and a reply subject, are MQTT 5 properties.
    let props: MqttProperties | undefined;
    if (this.mqtt5) {
      if (msg.hdrLen > 0 && !isPlainMqttHeader(msg)) props = headersToProperties(msg.buf, msg.start, msg.hdrLen);
      if (reply !== undefined) (props ??= {}).responseTopic = subjectToTopic(reply);
      if (sub.identifier !== undefined) (props ??= {}).subscriptionIdentifier = sub.identifier;
    }
    // Live deliveries carry no retain flag [MQTT-3.3.1-9], unless retain as published [MQTT-3.3.1-12].
    const retain = sub.retainAsPublished === true && this.host.router.retained;
    if (qos === 0) {
      if (!this.connecting) this.client?.sendPublish(topic, payload, 0, retain, false, undefined, props);
      return;
    }
    const stored: StoredMessage = { topic, payload: Buffer.from(payload), qos, retain };
    if (props) stored.props = props;
    if (msgId !== 0) stored.id = msgId;
    this.enqueue(stored);
  }

  /** A QoS 1/2 message for this client (a routed one, or a retained one on subscribe). */
  enqueue(msg: StoredMessage): void {
    if (this.shadow) return void this.shadow.push(msg);
    const d: Delivery = { msg, sentAt: 0 };
    stampExpiry(msg);
    if (this.persistent) {
      d.seq = this.host.journal((s) => s.enqueue(this.key, msg));
      if (this.handingOver) this.handoverSeq ??= d.seq;
    }
    this.queue.push(d);
    this.pump();
  }

  /** Send what the in-flight window allows. */
  pump(): void {
    const client = this.client;
    if (!client || this.connecting) return;
    const limits = this.limits;
    const window = Math.min(limits.maxAckPending, this.window);
    while (this.queue.length > 0 && (this.inflight?.size ?? 0) < window) {
      const d = this.queue.shift()!;
      // Past its message expiry interval: dropped, not delivered [MQTT-3.3.2-5].
      if (expired(d.msg, Date.now())) {
        this.settle(d);
        continue;
      }
      const id = this.packetId();
      (this.inflight ??= new Map()).set(id, d);
      if (d.seq) {
        // Stored with its packet id, so a resend after a restart reuses it with DUP [MQTT-4.4.0-1].
        const stored = d.seq.then((seq) => this.host.journal((s) => s.setPacketId(this.key, seq, id)));
        if (d.msg.qos === 2) {
          // Sent once the id is stored: a router lost between the send and the write would leave
          // it to the next one to send under a new id, which the client takes for another
          // message. A failed write (logged) sends it anyway.
          d.idPending = d.unsent = true;
          const sendFirst = () => this.idStored(d, id);
          stored.then(sendFirst, sendFirst);
          continue;
        }
        stored.catch(() => {}); // journal logs a failed write
      }
      d.sentAt = Date.now();
      this.send(client, d, false, id);
    }
    if (this.inflight && this.inflight.size > 0 && !this.retryTimer) {
      this.retryTimer = setInterval(() => this.redeliver(false), Math.max(50, limits.ackWaitMs / 2));
      this.retryTimer.unref();
    }
  }

  /** Resend what waited ack_wait (or everything, on reconnect) with DUP set. */
  redeliver(all: boolean): void {
    const client = this.client;
    if (!client || this.connecting) return;
    const due = Date.now() - this.limits.ackWaitMs;
    for (const [id, d] of this.inflight ?? []) {
      if (d.idPending || (!all && d.sentAt > due)) continue;
      const dup = !d.unsent;
      d.unsent = false;
      d.sentAt = Date.now();
      this.send(client, d, dup, id);
    }
    if (all) for (const id of this.released ?? []) client.sendPubrel(id);
  }

  /** A QoS 2 delivery's packet id is in the store: its first send, unless its client is away
   *  (redeliver sends it on resume) or it was settled meanwhile. */
  private idStored(d: Delivery, id: number): void {
    d.idPending = false;
    const client = this.client;
    if (!client || this.connecting || !d.unsent || this.inflight?.get(id) !== d) return;
    d.unsent = false;
    d.sentAt = Date.now();
    this.send(client, d, false, id);
  }

  /** A delivery to the client; an expiring one says how much of its interval is left [MQTT-3.3.2-6]. */
  private send(client: SessionClient, d: Delivery, dup: boolean, id: number): void {
    const m = d.msg;
    client.sendPublish(m.topic, m.payload, m.qos, m.retain, dup, id, deliveryProps(m, m.props));
  }

  puback(id: number): void {
    const d = this.inflight?.get(id);
    if (!d || d.msg.qos !== 1) return;
    this.inflight!.delete(id);
    this.settle(d);
    this.pump();
  }

  pubrec(id: number): void {
    const d = this.inflight?.get(id);
    if (d && d.msg.qos === 2) {
      this.inflight!.delete(id);
      (this.released ??= new Set()).add(id);
      if (this.persistent) {
        // PUBREL once the store has, in one write, the message out of the queue, the id released
        // and (cluster) the message's id in the delivered record: a router lost before that
        // resends the PUBLISH (same id, DUP), which the client still holds unreleased; after it,
        // the next router resends only the PUBREL, and leaves the message out of what it kept
        // for the lost router's sessions. Sent earlier, the client could complete the id and
        // take a resent PUBLISH as a new message.
        const msgId = this.host.keepsDelivered ? d.msg.id : undefined;
        (d.seq ?? NO_SEQ).then(undefined, () => undefined)
          .then((seq) => this.host.journal((s) => s.received(this.key, id, seq, msgId)))
          .then(() => {
            if (this.released?.has(id)) this.client?.sendPubrel(id);
          }, () => {});
        return;
      }
    }
    if (this.released?.has(id)) this.client?.sendPubrel(id);
  }

  pubcomp(id: number): void {
    if (!this.released?.delete(id)) return;
    if (this.persistent) this.host.journal((s) => s.completeReleased(this.key, id));
    this.pump();
  }

  /**
   * Loads what a previous process (or router) left in the store, then queues the shadowed
   * messages behind it, except those the old owner queued too: a shadowed message is left out
   * when a loaded one has its id (Router.msgId, given where it entered the cluster). Loaded
   * messages without an id (an earlier version's records) are compared by content instead, those
   * the old owner queued from store sequence `since` on (undefined: none): one with the same
   * topic, QoS and payload stands for one shadowed copy.
   */
  async restore(store: MqttStore, since?: number): Promise<void> {
    const overlap: QueuedMessage[] = [];
    const ids = new Set<number>();
    if (!this.restored && this.persistent) {
      this.restored = true;
      // What was queued here since the start (before the client came back) is in the store too,
      // after the earlier run's messages: it is loaded once, behind them.
      const waiting = this.queue.map((d) => d.seq?.catch(() => -1) ?? -1);
      const stored = await store.queued(this.key, 65_535);
      const known = new Set(await Promise.all(waiting));
      const loaded: Delivery[] = [];
      for (const q of stored) {
        if (known.has(q.seq)) continue;
        const d: Delivery = { msg: q, seq: Promise.resolve(q.seq), sentAt: 0 };
        // Sent before the restart: in flight again under its id, resent with DUP on attach.
        const inflight = this.inflight ??= new Map();
        if (q.packetId !== undefined && !inflight.has(q.packetId)) inflight.set(q.packetId, d);
        else loaded.push(d);
        if (q.id !== undefined) ids.add(q.id);
        else if (since !== undefined && q.seq >= since) overlap.push(q);
      }
      this.queue.unshift(...loaded);
      for (const id of await store.released(this.key)) (this.released ??= new Set()).add(id);
    }
    const shadow = this.shadow;
    this.shadow = undefined;
    for (const m of shadow ?? []) {
      if (m.id !== undefined && ids.has(m.id)) continue;
      const i = overlap.findIndex((q) => q.qos === m.qos && q.topic === m.topic && q.payload.equals(m.payload));
      if (i >= 0) overlap.splice(i, 1);
      else this.enqueue(m);
    }
  }

  /** The connection went away; a persistent session keeps queueing. */
  detach(client: SessionClient): void {
    if (this.client !== client) return;
    this.client = undefined;
    this.connecting = false;
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
      if (entry.subs.every((s) => allowed(s.subject, entry.sub.qos))) continue;
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
    for (const [id, d] of [...this.inflight ?? []]) {
      if (readable(d)) continue;
      this.inflight!.delete(id);
      this.settle(d);
    }
    return dropped;
  }

  /** The ids of the messages queued or in flight here. */
  heldIds(): Set<number> {
    const ids = new Set<number>();
    for (const d of this.queue) if (d.msg.id !== undefined) ids.add(d.msg.id);
    for (const d of this.inflight?.values() ?? []) if (d.msg.id !== undefined) ids.add(d.msg.id);
    return ids;
  }

  /** The subscriptions as the store and the edge see them. */
  subscriptionList(): MqttSubscription[] {
    return [...this.subscriptions.values()].map((e) => e.sub);
  }

  /** Drops every subscription (clean session end, or takeover by a clean session). */
  dispose(): void {
    for (const filter of [...this.subscriptions.keys()]) this.removeSubscription(filter);
    if (this.retryTimer) clearInterval(this.retryTimer);
    this.retryTimer = undefined;
    this.expiryTimer?.cancel();
    this.expiryTimer = undefined;
    this.queue.length = 0;
    this.inflight = undefined;
    this.shadow = undefined;
  }

  /** Removes a delivery from the store's queue; settles once it is gone. */
  private settle(d: Delivery): Promise<void> | undefined {
    const done = d.seq?.then((seq) => this.host.journal((s) => s.ack(this.key, seq)));
    done?.catch(() => {}); // journal logs a failed write
    return done;
  }

  private packetId(): number {
    // Ids in use (in flight or released) are skipped; 65535 is the protocol's limit.
    for (;;) {
      const id = this.nextPacketId;
      this.nextPacketId = id === 65535 ? 1 : id + 1;
      if (!this.inflight?.has(id) && !this.released?.has(id)) return id;
    }
  }
}

const NO_SEQ: Promise<number | undefined> = Promise.resolve(undefined);

/** Turns a message's expiry interval into a time, once (the store keeps the time: a restart
 *  counts the time the broker was down). */
export function stampExpiry(msg: StoredMessage): void {
  const interval = msg.props?.messageExpiryInterval;
  if (interval !== undefined && msg.expiresAt === undefined) msg.expiresAt = Date.now() + interval * 1000;
}

/** Past its message expiry interval: dropped, not delivered [MQTT-3.3.2-5]. */
export function expired(msg: StoredMessage, now: number): boolean {
  return msg.expiresAt !== undefined && msg.expiresAt <= now;
}

/** `props` for a delivery of `msg`: an expiring one says how much of its interval is left
 *  [MQTT-3.3.2-6]. */
export function deliveryProps(msg: StoredMessage, props: MqttProperties | undefined): MqttProperties | undefined {
  if (!props || msg.expiresAt === undefined) return props;
  return { ...props, messageExpiryInterval: Math.max(0, Math.ceil((msg.expiresAt - Date.now()) / 1000)) };
}

/** The payload view of the last message delivered: a message's subscribers share one (a view is
 *  an allocation; the receivers copy what they keep). */
let viewOf: Buffer | undefined;
let viewStart = 0;
let viewEnd = 0;
let view: Buffer = Buffer.alloc(0);

function payloadOf(msg: MessageData): Buffer {
  const start = msg.start + msg.hdrLen;
  if (msg.buf !== viewOf || start !== viewStart || msg.end !== viewEnd) {
    viewOf = msg.buf;
    viewStart = start;
    viewEnd = msg.end;
    view = msg.buf.subarray(start, msg.end);
  }
  return view;
}

/** One sublist entry of an MQTT subscription. */
export class MqttSubscriber implements Subscriber {
  constructor(readonly subject: string,
              /** A shared subscription's group (`$share/{queue}/…`). */
              readonly queue: string | undefined,
              readonly sid: string, readonly conn: MqttSession,
              /** The MQTT subscription: granted QoS, MQTT 5 options and identifier. */
              readonly sub: MqttSubscription,
              /** The MQTT filter starts with + or #. */
              readonly wildFirst: boolean) {}

  deliver(subject: string, reply: string | undefined, msg: MessageData): void {
    this.conn.route(subject, reply, msg, this);
  }
}

/** The header is exactly "NATS/1.0\r\nNmqtt-Pub:q\r\n\r\n", as MQTT publishers without properties write it. */
function isPlainMqttHeader({ buf, start, hdrLen }: MessageData): boolean {
  return hdrLen === NMQTT_HDR_LEN && buf[start + QOS_AT - 1] === 58 /* : */ && buf[start + 10] === 78 /* N */;
}

/** QoS of a message published by an MQTT client (the Nmqtt-Pub header); NATS messages are QoS 0. */
function publishedQos(msg: MessageData): QoS {
  const { buf, start, hdrLen } = msg;
  if (hdrLen === 0) return 0;
  // Fast path: the header exactly as MQTT publishers here write it.
  if (isPlainMqttHeader(msg)) {
    const q = buf[start + QOS_AT] - 48;
    return q === 1 || q === 2 ? q : 0;
  }
  const at = buf.indexOf(NMQTT_PUB_BYTES, start);
  if (at < 0 || at - start >= hdrLen) return 0;
  // NATS clients write "Name: value": the value may follow spaces.
  let v = at + NMQTT_PUB.length;
  while (buf[v] === 32 || buf[v] === 9) v++;
  const q = buf[v] - 48;
  return q === 1 || q === 2 ? q : 0;
}
