// The router's end of a link that carries bytes: EdgeOps become calls on the routing core and
// its session service, on connections and subscriptions rebuilt from ids alone; what the
// router delivers to the edge (messages, completions, session events) goes back as batched
// RouterOps. Shared by the serialised test link and the gRPC link.
import {
  OriginCache, type Carrier, type Connection, type MessageData, type QoS, type RouterLink, type SessionClient, type RouterSessions,
  type StoredMessage, type Subscriber,
} from "../link.js";
import { fromWire } from "./accounts.js";
import { Batcher, FRAME_STATS } from "./batcher.js";
import {
  addDeliverTarget, EdgeFrameCursor, encodeProperties, messageData, Next, writeDeliverOf, writeRouterOp, writeSessionPublish,
} from "./fast.js";
import { FrameQueue } from "./slices.js";
import { forEachInTurns } from "../../common/turn-budget.js";
import {
  ErrorCode, GO_AWAY_TIMEOUT_MS, NO_SESSION_SERVICE, type ClientUrls, type Completion, type Draft, type EdgeLoad, type EdgeOp,
  type EdgeUrls, type Hello, type MqttProperties, type RouterOp, type SessionOp,
} from "./frames.js";
import {
  permissionFromWire, propertiesFromWire, propertiesToWire, storedFromWire, subscriptionsFromWire, willFromWire,
} from "./sessions.js";

type Warn = (message: string) => void;

const NO_RESPONDERS = { noResponders: true } as const;

/** The routing core an end drives: the Router, or a mesh around it. */
export type RoutingCore = RouterLink & { readonly sessions: RouterSessions | undefined; forgetEdge?(edge: string): void };

/** What a network carrier adds: peer authentication and the router's name for HelloReply. */
export interface RouterEndHooks {
  routerId: string;
  /** undefined: accepted; else why not (the end then ignores the stream, the carrier ends it). */
  authenticate(hello: Hello): string | undefined;
  refused(reason: string): void;
  /** The Hello was accepted (the carrier keeps one stream per edge id); `sentAtUs`: when the
   *  edge sent it, by its clock (0: not said). */
  accepted?(edgeId: string, sentAtUs: number): void;
  /** The edge's client URLs, from its Hello or an update (undefined: none, or withdrawn). */
  urls?(edgeId: string, urls: ClientUrls | undefined): void;
  /** The edge's client count (every second, for rebalancing). */
  clients?(edgeId: string, count: number): void;
}

type Target = { connectionId: number; sid: string };

/** An edge's subscription as the router sees it; counts deliveries for UNSUB max here, where
 *  they are decided, so those still on the wire count too. */
class EdgeSubscriber implements Subscriber {
  delivered = 0;
  max = 0;
  constructor(readonly subject: string, readonly queue: string | undefined, readonly sid: string,
              readonly conn: Connection, readonly account: string, private readonly end: RouterEnd,
              readonly target: Target) {}

  deliver(subject: string, reply: string | undefined, msg: MessageData): void {
    this.delivered++;
    this.end.deliver(this, subject, reply, msg);
    if (this.max > 0 && this.delivered >= this.max) this.end.drop(this);
  }
}

/** An MQTT QoS 1/2 publish or a session op in slice units (slices.ts): it writes to the store,
 *  some tens of times a NATS op; 4,096 of them in one turn (an edge's burst, or its replay after
 *  a re-attach) held a router 0.3 s. A QoS 0 publish costs what a NATS one does. */
const MQTT_OP_COST = 31;

/** How long after a goAway the edge may still be moving: its bound, with room for a slow turn. */
const MOVE_WINDOW_MS = 2 * GO_AWAY_TIMEOUT_MS;

/** The router's side: EdgeOps become Router calls on subscriptions rebuilt from ids. */
export class RouterEnd {
  /** What takes the frames for the edge. */
  carrier: Carrier | undefined;
  private readonly out: Batcher<RouterOp>;
  private edgeId = "";
  /** The router's view of the edge's subscriptions, by connection id, then sid. */
  private readonly subs = new Map<number, Map<string, EdgeSubscriber>>();
  /** Connections of the edge holding MQTT sessions, with their session clients: if the stream
   *  ends they are lost (their wills go out unless the edge attaches them again). */
  private readonly holders = new Map<number, SessionClient>();
  /** Before the Hello is accepted nothing is applied (always accepted without hooks). */
  private accepted: boolean;
  private closed = false;
  /** Until then the edge may be moving (a goAway): it attaches its sessions on another router,
   *  which takes them over from this one, and its clients stay connected. An edge that did not
   *  move by then stays (its list lacks the router named). */
  private movingUntil = 0;
  /** The Deliver written last (deliver()): its message, while `out.last` is still `lastOp`, is
   *  the frame's last op; the router delivers one message to several subscriptions in a row. */
  private lastMsg: MessageData | undefined;
  private lastBuf: Buffer | undefined;
  private lastStart = 0;
  private lastEnd = 0;
  private lastOp = -1;
  private lastSubject = "";
  private lastReply: string | undefined;
  private lastAccount = "";

  constructor(private readonly router: RoutingCore, private readonly warn: Warn,
              private readonly hooks?: RouterEndHooks, givesBack = false) {
    this.accepted = hooks === undefined;
    this.out = new Batcher<RouterOp>(writeRouterOp, () => this.carrier, FRAME_STATS["router→edge"], { givesBack });
  }

  /** A frame sent is no longer read by the carrier (only when made with `givesBack`). */
  readonly frameDone = (frame: Buffer): void => this.out.done(frame);

  /** Frames and ops received from the edge (metrics). */
  get framesIn(): number { return this.frames.framesIn; }
  get opsIn(): number { return this.frames.opsIn; }

  /** The edge's id from its Hello ("" before). */
  get edge(): string { return this.edgeId; }

  /** Frames and ops sent to the edge (metrics). */
  get framesOut(): number { return this.out.framesSent; }
  get opsOut(): number { return this.out.opsSent; }

  /** Subscriptions of the edge held here. */
  get subscriptions(): number {
    let n = 0;
    for (const byCid of this.subs.values()) n += byCid.size;
    return n;
  }

  /** Asks the edge to move to another router: `router` (host:port), or the next of its list. */
  goAway(reason: string, router = ""): void {
    if (this.closed) return;
    this.movingUntil = Date.now() + MOVE_WINDOW_MS;
    this.out.push({ op: "goAway", goAway: { reason, router } });
  }

  private moving(): boolean {
    return Date.now() < this.movingUntil;
  }

  /** The stream ended: the edge's subscriptions and account version go (nothing more is applied).
   *  `left`: the edge ended it itself after moving, so its clients live on (no wills). */
  close(left = false): void {
    if (this.closed) return;
    this.closed = true;
    this.frames.clear();
    const subs: EdgeSubscriber[] = [];
    for (const byCid of this.subs.values()) for (const sub of byCid.values()) subs.push(sub);
    this.subs.clear();
    // A slice per turn (a million at once would pass the links' keepalives); until its turn, a
    // subscription is matched but delivers nothing (deliver()).
    forEachInTurns(subs, (sub) => this.router.unsubscribe(sub.account, sub));
    // Its MQTT connections are lost with it, unless the edge attaches them again in time.
    const sessions = this.router.sessions;
    const moved = left && this.moving();
    for (const [cid, client] of this.holders) sessions?.linkLost(this.connection(cid), client, moved);
    this.holders.clear();
    if (this.edgeId !== "") this.router.forgetEdge?.(this.edgeId);
  }

  /** Every edge's client URLs in the cluster (sent whole when the set changes). */
  sendClusterUrls(edges: Draft<EdgeUrls>[]): void {
    if (!this.closed && this.accepted) this.out.push({ op: "clusterUrls", clusterUrls: { edges } });
  }

  /** Every edge's client count in the cluster (sent when one changes). */
  sendClusterLoad(edges: Draft<EdgeLoad>[]): void {
    if (!this.closed && this.accepted) this.out.push({ op: "load", load: { edges } });
  }

  private readonly origins = new OriginCache();

  private readonly cursor = new EdgeFrameCursor();
  /** Frames applied in order, a slice per turn (slices.ts). */
  private readonly frames = new FrameQueue(this.cursor, {
    stopped: () => this.closed,
    op: (next) => this.applyOp(next),
    malformed: (err) => this.warn(`serialised link: ${err.message}`),
  });

  receive(bytes: Buffer): void {
    if (!this.closed) this.frames.push(bytes);
  }

  /** Applies the op the cursor read (a Hello first, or nothing more is applied); returns its
   *  cost beyond 1 for the slice (slices.ts). */
  private applyOp(next: Next.Hot | Next.Cold | Next.Hot2): number {
    const cur = this.cursor;
    if (!this.accepted) {
      if (next === Next.Cold && cur.cold!.op === "hello") this.authenticate(cur.cold!.hello!);
      else this.refuse("the first operation was not a Hello");
    } else if (next === Next.Hot) {
      this.publish(cur);
      if (cur.topic !== "" && cur.qos > 0) return MQTT_OP_COST;
    } else if (next === Next.Hot2) {
      this.interest(cur.account, cur.subject, cur.queue, cur.weightDelta, cur.refConnection, cur.hasSub ? cur.refSid : undefined, cur.noEcho);
    } else {
      const op = cur.cold!;
      this.apply(op);
      if (op.op === "session" || (op.op === "publish" && op.publish!.topic !== "" && op.publish!.qos > 0)) return MQTT_OP_COST;
    }
    return 0;
  }

  /** A NATS or MQTT publish as the cursor read it: its message is a view of the frame. */
  private publish(cur: EdgeFrameCursor): void {
    this.publishMessage(cur.account, cur.subject, cur.reply, cur.msg, cur.originConnection, cur.noResponders, cur.topic, cur.qos,
      cur.retain, cur.correlationId, cur.topic === "" ? undefined : cur.properties());
  }

  /** A publish, from the cursor or decoded by protobufjs: MQTT's (a topic) go to the session
   *  service, NATS's to the router. */
  private publishMessage(account: string, subject: string, reply: string, msg: MessageData, cid: number, noResponders: boolean,
                         topic: string, qos: number, retain: boolean, correlationId: number, properties: MqttProperties | undefined): void {
    if (topic !== "") {
      const payload = msg.buf.subarray(msg.start + msg.hdrLen, msg.end);
      const stored: StoredMessage = { topic, payload, qos: qos as QoS, retain };
      const props = propertiesFromWire(properties);
      if (props) stored.props = props;
      return this.mqttPublish(cid, correlationId, subject, stored);
    }
    this.router.publish(account, subject, reply === "" ? undefined : reply, msg, this.origins.of(this.edgeId, cid),
      noResponders ? NO_RESPONDERS : undefined);
  }

  /** An InterestChange, from the cursor or decoded by protobufjs: a subscription of the edge
   *  (`sid` undefined: none named, nothing to do). */
  private interest(account: string, subject: string, queue: string, weightDelta: number, cid: number, sid: string | undefined,
                   noEcho: boolean): void {
    if (weightDelta <= 0 || sid === undefined) return; // aggregated interest is the cluster's; this edge names subscriptions
    let byCid = this.subs.get(cid);
    if (!byCid) this.subs.set(cid, byCid = new Map());
    const conn = { edgeId: this.edgeId, cid, echo: !noEcho };
    const sub = new EdgeSubscriber(subject, queue === "" ? undefined : queue, sid, conn, account, this, { connectionId: cid, sid });
    const previous = byCid.get(sid);
    if (previous) this.router.unsubscribe(previous.account, previous); // a replay names it again
    byCid.set(sid, sub);
    this.router.subscribe(account, sub);
  }

  private authenticate(hello: Hello): void {
    const refusal = this.hooks!.authenticate(hello);
    if (refusal !== undefined) return this.refuse(refusal);
    this.accepted = true;
    this.apply({ op: "hello", hello });
  }

  /** Nothing more is applied; the carrier ends the stream. */
  private refuse(reason: string): void {
    this.closed = true;
    this.frames.clear();
    this.hooks!.refused(reason);
  }

  private apply(op: EdgeOp): void {
    switch (op.op) {
      case "hello":
        this.edgeId = op.hello!.edgeId;
        this.hooks?.accepted?.(this.edgeId, Number(op.hello!.sentAtUs ?? 0));
        if (op.hello!.accounts) this.router.configureAccounts(this.edgeId, fromWire(op.hello!.accounts));
        this.out.push({ op: "helloReply", helloReply: {
          routerId: this.hooks?.routerId ?? "", accountsVersion: op.hello!.accounts?.version ?? "",
        } });
        this.hooks?.urls?.(this.edgeId, op.hello!.urls);
        return;
      case "urls":
        this.hooks?.urls?.(this.edgeId, op.urls);
        return;
      case "clients":
        this.hooks?.clients?.(this.edgeId, op.clients!.count);
        return;
      case "accounts":
        if (op.accounts!.accounts) this.router.configureAccounts(this.edgeId, fromWire(op.accounts!.accounts));
        return;
      case "interest": {
        const i = op.interest!;
        return this.interest(i.account, i.subject, i.queue, i.weightDelta, i.sub?.connectionId ?? 0, i.sub?.sid, i.noEcho);
      }
      case "unsubscribe": {
        const u = op.unsubscribe!;
        const byCid = this.subs.get(u.sub!.connectionId);
        const sub = byCid?.get(u.sub!.sid);
        if (!sub) return;
        if (u.max > 0 && u.max > sub.delivered) {
          sub.max = u.max;
          return;
        }
        this.drop(sub);
        return;
      }
      case "publish": {
        // Decoded bytes are views of this frame, which nothing reuses: no copy needed.
        const p = op.publish!;
        const m = p.message;
        return this.publishMessage(p.account, m?.subject ?? "", m?.reply ?? "", messageData(m), p.originConnection, p.noResponders,
          p.topic, p.qos, p.retain, p.correlationId, p.properties);
      }
      case "statsQuery": {
        const correlationId = op.statsQuery!.correlationId;
        void this.router.stats().then((stats) => this.out.push({ op: "statsReply", statsReply: { correlationId, stats } }));
        return;
      }
      case "ping": {
        // Ops are applied in order and their deliveries queued before this; the router's sync
        // adds the peer routers' barrier, so the pong means "routed cluster-wide".
        const seq = op.ping!.seq;
        this.router.sync(() => { if (!this.closed) this.out.push({ op: "pong", pong: { seq } }); });
        return;
      }
      case "session":
        return this.session(op.session!);
      default:
        return;
    }
  }

  private connection(cid: number): Connection {
    return { edgeId: this.edgeId, cid, echo: true };
  }

  private mqttPublish(cid: number, correlationId: number, subject: string, msg: StoredMessage): void {
    const sessions = this.router.sessions;
    if (!sessions) return this.completeWith(correlationId, Promise.reject(new Error(NO_SESSION_SERVICE)));
    // One origin object per run of a publisher's messages (ids are what the service compares).
    this.completeWith(correlationId, sessions.publish(this.origins.of(this.edgeId, cid), subject, msg));
  }

  private session(op: SessionOp): void {
    const sessions: RouterSessions | undefined = this.router.sessions;
    const id = op.correlationId;
    if (!sessions) return this.completeWith(id, Promise.reject(new Error(NO_SESSION_SERVICE)));
    const conn = this.connection(op.connectionId);
    switch (op.op) {
      case "attach": {
        const a = op.attach!;
        const client = this.client(conn.cid);
        this.holders.set(conn.cid, client);
        const attached = sessions.attach({
          conn, clientId: op.clientId, clean: a.clean, account: a.account, subscribe: permissionFromWire(a.subscribe),
          will: willFromWire(a.will), expiry: a.expiry?.seconds, receiveMaximum: a.receiveMaximum || undefined,
          limits: a.ackWaitMs > 0 && a.maxAckPending > 0 ? { ackWaitMs: a.ackWaitMs, maxAckPending: a.maxAckPending } : undefined,
        }, client);
        return this.completeWith(id, Promise.resolve(attached).then((r) => ({ attached: { sessionPresent: r.present, subscriptions: r.subscriptions } })));
      }
      case "resume": return sessions.resume(conn);
      case "detach":
        this.holders.delete(conn.cid);
        sessions.detach(conn, op.detach!.publishWill, op.detach!.expiry?.seconds);
        return this.completeWith(id, undefined); // the edge sends it again on its next router until answered
      case "subscribe": return sessions.subscribe(conn, subscriptionsFromWire(op.subscribe!.subscriptions));
      case "unsubscribe": return sessions.unsubscribe(conn, op.unsubscribe!.filters);
      case "puback": return sessions.puback(conn, op.puback!.packetId);
      case "pubrec": return sessions.pubrec(conn, op.pubrec!.packetId);
      case "pubcomp": return sessions.pubcomp(conn, op.pubcomp!.packetId);
      case "incoming": {
        const i = op.incoming!;
        return this.completeWith(id, sessions.incoming(conn, i.packetId, i.subject, storedFromWire(i.message!)));
      }
      case "pubrel": return this.completeWith(id, sessions.release(conn, op.pubrel!.packetId));
      case "permissions": {
        const p = op.permissions!;
        const subs = sessions.permissions(conn, permissionFromWire(p.subscribe), willFromWire(p.will));
        return this.completeWith(id, subs.then((subscriptions) => ({ attached: { sessionPresent: false, subscriptions } })));
      }
      default:
        return;
    }
  }

  /** The session client of connection `cid` on this edge: its calls become SessionEvents. */
  private client(cid: number): SessionClient {
    return {
      // The payload may be a view of a buffer the router reuses: it goes into the frame now.
      sendPublish: (topic, payload, qos, retain, dup, packetId, props) => {
        if (this.closed) return; // lost (linkLost): an attach again resends what is unacknowledged
        writeSessionPublish(this.out.frameForOp(), cid, topic, payload, qos, retain, encodeProperties(propertiesToWire(props)), packetId ?? 0,
          dup);
        this.out.wrote(payload.length + topic.length);
      },
      sendPubrel: (packetId) => {
        if (!this.closed) this.out.push({ op: "sessionEvent", sessionEvent: { connectionId: cid, pubrel: packetId } });
      },
      takenOver: () => {
        this.holders.delete(cid);
        if (this.closed) return;
        // Moving, the taker is this very connection through the edge's next router.
        if (!this.moving()) this.out.push({ op: "sessionEvent", sessionEvent: { connectionId: cid, takeover: true } });
      },
    };
  }

  /** A Completion for `correlationId` (none when it is 0) once `work` settles; a failure is
   *  an error the edge must not acknowledge. */
  private completeWith(correlationId: number, work: Promise<Draft<Completion> | void> | undefined): void {
    if (correlationId === 0) {
      work?.catch(() => {}); // nobody waits: the service logged what failed
      return;
    }
    (work ?? Promise.resolve()).then(
      (result) => this.out.push({ op: "completion", completion: { ...(result ?? {}), correlationId } }),
      (err: Error) => this.out.push({ op: "completion", completion: {
        correlationId, error: { code: ErrorCode.StoreUnavailable, text: err.message },
      } }),
    );
  }

  /** Removes one subscription (UNSUB, or its max reached). */
  drop(sub: EdgeSubscriber): void {
    const byCid = this.subs.get(sub.conn.cid);
    if (byCid?.get(sub.sid) !== sub) return;
    byCid.delete(sub.sid);
    if (byCid.size === 0) this.subs.delete(sub.conn.cid);
    this.router.unsubscribe(sub.account, sub);
  }

  private readonly forgetLast = (): void => { this.lastMsg = undefined; };

  /**
   * Queues a delivery to one subscription: the Deliver is written into the frame now (`msg` may
   * be a view of a buffer its owner reuses), and the next subscriptions of the same message join
   * it as targets while it is still the frame's last op.
   */
  deliver(sub: EdgeSubscriber, subject: string, reply: string | undefined, msg: MessageData): void {
    if (this.closed) return; // a subscription of the ended stream not removed yet
    const { account, target } = sub;
    const out = this.out;
    // Only the deliveries of one routing call join, known by the message (the MessageData and
    // the bytes it names: the session service and the frame cursors reuse one MessageData for
    // every publish) within one task: a later call (another publish of the same bytes, the
    // shared no-responders status) starts a Deliver of its own.
    if (this.lastMsg === msg && msg.buf === this.lastBuf && msg.start === this.lastStart && msg.end === this.lastEnd &&
        this.lastOp === out.last && this.lastSubject === subject && this.lastReply === reply && this.lastAccount === account) {
      addDeliverTarget(out.frameOfLast(), target.connectionId, target.sid);
      return;
    }
    writeDeliverOf(out.frameForOp(), account, subject, reply ?? "", msg, target.connectionId, target.sid);
    out.wrote(msg.end - msg.start + subject.length);
    if (this.lastMsg === undefined) queueMicrotask(this.forgetLast);
    this.lastMsg = msg;
    this.lastBuf = msg.buf;
    this.lastStart = msg.start;
    this.lastEnd = msg.end;
    this.lastOp = out.last;
    this.lastSubject = subject;
    this.lastReply = reply;
    this.lastAccount = account;
  }
}
