// The edge's end of a link that carries bytes: RouterLink and SessionLink calls become EdgeOps,
// batched per event-loop turn; RouterOps (deliveries, completions, session events, replies)
// reach the subscription handles and session clients by ids. The serialised test link and the
// gRPC link differ only in what carries the bytes (`carrier`).
import type { SubjectPermission } from "../../common/config/options.js";
import { forEachInTurns } from "../../common/turn-budget.js";
import type {
  AccountSet, Carrier, ClientUrls, Connection, EdgeClientUrls, MessageData, MqttSubscription, PublishOptions, RouterLink, RouterStats, SessionAttach,
  SessionAttached, SessionClient, SessionLink, SessionWill, StoredMessage, Subscriber,
} from "../link.js";
import { toWire } from "./accounts.js";
import { Batcher, FRAME_STATS } from "./batcher.js";
import { WireError } from "./codec.js";
import {
  encodeProperties, EVENT_PUBLISH, EVENT_PUBREL, EVENT_TAKEOVER, messageData, Next, RouterFrameCursor, writeEdgeOp, writeMqttPublish,
  writePublish,
} from "./fast.js";
import type {
  Completion, Credential, Deliver, Draft, EdgeOp, HelloReply, Message, MqttProperties as WireProperties, RouterOp, SessionEvent, SessionOp,
} from "./frames.js";
import { NO_SESSION_SERVICE } from "./frames.js";
import {
  expiryToWire, permissionToWire, propertiesFromWire, propertiesToWire, storedToWire, subscriptionsFromWire, willToWire,
} from "./sessions.js";

type Warn = (message: string) => void;

/** Publishes kept while detached from every router (or replaying to a new one), in payload and
 *  header bytes: past it they are dropped (NATS core is at most once) and the drop is logged once
 *  per detachment. */
export const DETACHED_PUBLISH_BUFFER_BYTES = 8 * 1024 * 1024;
/** Subscriptions a re-attach sends a new router per event-loop turn (attach()): 100,000 in one
 *  turn held an edge 100-155 ms; this share is about 10 ms. */
const INTEREST_REPLAYS_PER_TURN = 8_192;
const NO_STATS: RouterStats = {
  subscriptions: 0, cacheEntries: 0, matches: 0, cacheHits: 0, inserts: 0, removes: 0, maxFanout: 0, avgFanout: 0,
};

/** The edge's side: RouterLink calls become EdgeOps; Deliver ops reach the subscription handles by ids. */
export class EdgeEnd implements RouterLink {
  readonly sessions = new EdgeSessions(this);
  /** What takes the frames for the router now; none while detached. */
  carrier: Carrier | undefined;
  /** Ops for the router; EdgeSessions adds its own. */
  readonly out: Batcher<EdgeOp>;
  /** Operations waiting for their Completion, by correlation id (in the order they were sent),
   *  with the op: a router lost before answering did not store it, so the next one gets it again. */
  private readonly completions = new Map<number, { resolve(c: Completion): void; reject(err: Error): void; op: Draft<EdgeOp> }>();
  /** Subscription handles by connection id, then sid. */
  private readonly handles = new Map<number, Map<string, Subscriber>>();
  private readonly statsWaits = new Map<number, (stats: RouterStats) => void>();
  /** sync() callbacks in the order of their Ping ops (the router answers in order). */
  private readonly syncWaits: (() => void)[] = [];
  /** When each of those pings left (ms), for the round trip. */
  private readonly syncSentAt: number[] = [];
  private pingSeq = 0;
  /** The last sync's round trip through the router (ms): it includes the router's barrier over
   *  its peers, so it is what a client's flush costs. */
  rttMs = 0;
  /** Frames and ops received from the router (metrics; sent: `out`). */
  framesIn = 0;
  opsIn = 0;
  private nextCorrelation = 1;
  private hello = false;
  private closed = false;
  /** The cluster credential for a Hello from `edgeId` at `sentAtUs` (the gRPC link sets it). */
  credential: ((edgeId: string, sentAtUs: number) => Draft<Credential>) | undefined;
  /** Called when the router accepts the Hello. */
  onAttached: ((reply: HelloReply) => void) | undefined;
  /** Called when the router asks the edge to move (it is stopping). */
  onGoAway: ((reason: string, router: string) => void) | undefined;
  /** Live subscriptions and what re-attaching replays of them (account, UNSUB max). */
  private readonly live = new Map<Subscriber, { account: string; max: number }>();
  private edgeId = "";
  private accounts: AccountSet | undefined;
  /** false between detach() and attach(): no router hears us (a remote link lost its stream). */
  private attached = true;
  /** Subscriptions the current re-attach has yet to send (attach()), while it runs. */
  private unreplayed: Set<Subscriber> | undefined;
  /** What waits for that replay's end: stalled publishers' reads, syncs (also run on detach()). */
  private afterReplay: (() => void)[] = [];
  /** Publishes while detached or replaying: sent behind every subscription of the replay. */
  private heldPublishes: Draft<EdgeOp>[] = [];
  /** This edge's client URLs (every Hello carries them) and who wants the cluster's. */
  private urls: ClientUrls | undefined;
  private onClusterUrls: ((edges: EdgeClientUrls[]) => void) | undefined;
  private onLoad: ((edges: { edgeId: string; clients: number }[]) => void) | undefined;
  private heldBytes = 0;
  private dropped = 0;

  /** `givesBack`: the carrier gives every frame back (out.done) once it no
   *  longer reads it (Batcher). */
  constructor(readonly warn: Warn, givesBack = false) {
    this.out = new Batcher<EdgeOp>(writeEdgeOp, () => this.carrier, FRAME_STATS["edge→router"], { givesBack });
  }

  subscribe(account: string, sub: Subscriber): void {
    this.live.set(sub, { account, max: 0 });
    this.addHandle(sub);
    if (this.attached) this.pushInterest(account, sub);
  }

  private addHandle(sub: Subscriber): void {
    let byCid = this.handles.get(sub.conn.cid);
    if (!byCid) this.handles.set(sub.conn.cid, byCid = new Map());
    byCid.set(sub.sid, sub);
  }

  private pushInterest(account: string, sub: Subscriber): void {
    this.out.push({ op: "interest", interest: {
      account, subject: sub.subject, queue: sub.queue ?? "", weightDelta: 1,
      sub: { connectionId: sub.conn.cid, sid: sub.sid }, noEcho: !sub.conn.echo,
    } });
  }

  unsubscribe(account: string, sub: Subscriber, max?: number): void {
    // A subscription the replay has yet to send goes with its max then, or not at all.
    if (max !== undefined && max > 0) {
      const l = this.live.get(sub);
      if (l) l.max = max;
      if (this.attached && !this.unreplayed?.has(sub)) this.pushUnsubscribe(account, sub, max);
      return;
    }
    this.live.delete(sub);
    if (this.attached && !this.unreplayed?.delete(sub)) this.pushUnsubscribe(account, sub, 0);
    // Messages the router matched before the UNSUB are still on their way (nats-server delivers
    // them): the handle goes once the router has answered everything before it. The UNSUBs of
    // one callback (a closing connection's 100,000 subscriptions) share one sync.
    if (this.removals.length === 0) queueMicrotask(this.syncRemovals);
    this.removals.push(sub);
  }

  private removals: Subscriber[] = [];
  private readonly syncRemovals = (): void => {
    const subs = this.removals;
    this.removals = [];
    this.sync(() => {
      for (const sub of subs) {
        const byCid = this.handles.get(sub.conn.cid);
        if (byCid?.get(sub.sid) !== sub) continue; // the sid was reused meanwhile
        byCid.delete(sub.sid);
        if (byCid.size === 0) this.handles.delete(sub.conn.cid);
      }
    });
  };

  private pushUnsubscribe(account: string, sub: Subscriber, max: number): void {
    this.out.push({ op: "unsubscribe", unsubscribe: { account, sub: { connectionId: sub.conn.cid, sid: sub.sid }, max } });
  }

  publish(account: string, subject: string, reply: string | undefined, msg: MessageData, origin: Connection,
          options?: PublishOptions): void {
    const holding = !this.attached || this.unreplayed !== undefined;
    if (holding && this.heldBytes + msg.end - msg.start > DETACHED_PUBLISH_BUFFER_BYTES) {
      if (this.dropped++ === 0) this.warn(`no router has this edge's subscriptions yet: publishes past ${DETACHED_PUBLISH_BUFFER_BYTES} bytes are dropped until one has`);
      return;
    }
    const noResponders = options?.noResponders ?? false;
    // The bytes are only valid during the call: they go into the frame now.
    if (!holding) {
      writePublish(this.out.frameForOp(), account, subject, reply ?? "", msg, origin.cid, noResponders);
      return this.out.wrote();
    }
    const message: Draft<Message> = {
      subject, reply: reply ?? "",
      headers: Buffer.from(msg.buf.subarray(msg.start, msg.start + msg.hdrLen)),
      payload: Buffer.from(msg.buf.subarray(msg.start + msg.hdrLen, msg.end)),
    };
    this.heldPublishes.push({ op: "publish", publish: { account, message, originConnection: origin.cid, noResponders } });
    this.heldBytes += msg.end - msg.start;
  }

  configureAccounts(edge: string, set: AccountSet): void {
    this.edgeId = edge;
    this.accounts = set;
    if (!this.attached) return; // the Hello of attach() carries them
    const accounts = toWire(set);
    if (!this.hello) {
      this.hello = true;
      const sentAtUs = Date.now() * 1000;
      this.out.push({ op: "hello", hello: {
        edgeId: edge, accounts, credential: this.credential?.(edge, sentAtUs), sentAtUs, urls: this.urls,
      } });
    } else {
      this.out.push({ op: "accounts", accounts: { accounts } });
    }
  }

  advertise(urls: ClientUrls | undefined, onClusterUrls: (edges: EdgeClientUrls[]) => void): void {
    this.urls = urls;
    this.onClusterUrls = onClusterUrls;
    // Before the Hello the Hello carries them; while detached the next Hello will.
    if (this.attached && this.hello) this.out.push({ op: "urls", urls: urls ?? { nats: [], websocket: [] } });
  }

  reportClients(count: number, onLoad: (edges: { edgeId: string; clients: number }[]) => void): void {
    this.onLoad = onLoad;
    if (this.attached && this.hello) this.out.push({ op: "clients", clients: { count } });
  }

  stall(resume: () => void): boolean {
    // During a replay a publisher's input waits in its socket, not in heldPublishes.
    if (this.unreplayed !== undefined) {
      this.afterReplay.push(resume);
      return true;
    }
    return this.carrier?.stall?.(resume) ?? false;
  }

  sync(done: () => void): void {
    if (!this.attached) return done(); // nothing is in flight to wait for
    // Behind the held publishes: a client's PONG comes after its PUBs reached the router.
    if (this.unreplayed !== undefined) return void this.afterReplay.push(() => this.sync(done));
    this.syncWaits.push(done);
    this.syncSentAt.push(performance.now());
    this.out.push({ op: "ping", ping: { seq: ++this.pingSeq } });
  }

  private ponged(): void {
    const sentAt = this.syncSentAt.shift();
    if (sentAt !== undefined) this.rttMs = performance.now() - sentAt;
    this.syncWaits.shift()?.();
  }

  /** Sends the op `build` makes with a fresh correlation id; settles on its Completion. */
  request(build: (correlationId: number) => Draft<EdgeOp>): Promise<Completion> {
    const correlationId = this.nextCorrelation++;
    const op = build(correlationId);
    return new Promise((resolve, reject) => {
      this.completions.set(correlationId, { resolve, reject, op });
      this.out.push(op);
    });
  }

  /** Forgets a request a newer one replaces: it is neither sent again nor settled. */
  forget(correlationId: number): void {
    this.completions.delete(correlationId);
  }

  stats(): Promise<RouterStats> {
    if (!this.attached) return Promise.resolve({ ...NO_STATS });
    const correlationId = this.nextCorrelation++;
    return new Promise((resolve) => {
      this.statsWaits.set(correlationId, resolve);
      this.out.push({ op: "statsQuery", statsQuery: { correlationId } });
    });
  }

  close(): void {
    this.closed = true;
    this.unreplayed = undefined;
    this.sessions.stopReplay();
  }

  /**
   * The carrier lost its router: what was in flight is lost (NATS core, at most once), waiters
   * are released (a PONG goes out, stats read zero), and until attach() subscriptions are only
   * recorded and publishes buffered up to DETACHED_PUBLISH_BUFFER_BYTES.
   */
  detach(): void {
    if (!this.attached) return;
    this.attached = false;
    this.hello = false;
    this.unreplayed = undefined; // the next stream's replays every subscription again
    this.sessions.stopReplay(); // and every connection
    this.out.discard(); // the next stream starts with its Hello
    this.syncSentAt.length = 0;
    for (const done of this.syncWaits.splice(0)) done();
    for (const resolve of this.statsWaits.values()) resolve({ ...NO_STATS });
    this.statsWaits.clear();
    this.runAfterReplay(); // syncs end at once now, stalled publishers read into heldPublishes
  }

  /**
   * A new stream to a router: Hello, then every live subscription, the MQTT sessions of live
   * connections (attached again, so they move to this router), the operations the lost router
   * did not answer (an MQTT publish not acknowledged is sent again rather than failed: the
   * client stays connected, and a QoS 1 message is at worst delivered twice), then the buffered
   * publishes. The subscriptions go a share per turn (INTEREST_REPLAYS_PER_TURN); until the last,
   * this edge's NATS publishes and syncs wait (so a request sees every responder here, and a
   * PONG follows its PUBs) and its publishers stop reading. Subscribed meanwhile: sent at once.
   */
  attach(): void {
    if (this.attached) return;
    this.attached = true;
    if (this.accounts) this.configureAccounts(this.edgeId, this.accounts);
    // The first share of subscriptions goes before the sessions' ops (an MQTT publish sent again
    // reaches this edge's NATS subscribers), the held publishes after both.
    const subs = new Set(this.live.keys());
    this.unreplayed = subs;
    let inAttach = true;
    forEachInTurns([...subs], (sub) => this.replaySubscription(subs, sub), INTEREST_REPLAYS_PER_TURN,
      () => inAttach || this.replayed(subs));
    const unanswered = [...this.completions];
    this.sessions.replay();
    // Each behind its connection's attach (replayFirst). Less the attaches of an earlier replay
    // that this one made again (replayOne() dropped them).
    for (const [id, { op }] of unanswered) {
      this.sessions.replayFirst(sessionConnectionOf(op));
      if (this.completions.has(id)) this.out.push(op);
    }
    inAttach = false;
    if (subs.size === 0) this.replayed(subs);
  }

  private replaySubscription(subs: Set<Subscriber>, sub: Subscriber): void {
    if (this.unreplayed !== subs || !subs.delete(sub)) return; // detached since, or unsubscribed
    const { account, max } = this.live.get(sub)!;
    this.pushInterest(account, sub);
    if (max > 0) this.pushUnsubscribe(account, sub, max);
  }

  /** The replay of `subs` has sent them all: the held publishes follow, then what waited. */
  private replayed(subs: Set<Subscriber>): void {
    if (this.unreplayed !== subs) return; // done already, or detached since (the next attach sends them)
    this.unreplayed = undefined;
    for (const op of this.heldPublishes) this.out.push(op);
    if (this.dropped > 0) this.warn(`${this.dropped} publishes were dropped while no router had this edge's subscriptions`);
    this.heldPublishes = [];
    this.heldBytes = 0;
    this.dropped = 0;
    this.runAfterReplay();
  }

  private runAfterReplay(): void {
    const waiting = this.afterReplay;
    this.afterReplay = [];
    for (const go of waiting) go();
  }

  private readonly cursor = new RouterFrameCursor();

  receive(bytes: Buffer): void {
    if (this.closed) return;
    this.framesIn++;
    const cur = this.cursor;
    cur.reset(bytes);
    for (;;) {
      const next = cur.next();
      if (next === Next.End) return;
      if (next instanceof WireError) return this.warn(`serialised link: ${next.message}`);
      this.opsIn++;
      if (next === Next.Hot) this.deliver(cur);
      else if (next === Next.Hot2) this.sessions.eventOf(cur);
      else this.apply(cur.cold!);
    }
  }

  private apply(op: RouterOp): void {
    if (op.op === "deliver") this.deliverDecoded(op.deliver!);
    else if (op.op === "helloReply") this.onAttached?.(op.helloReply!);
    else if (op.op === "pong") this.ponged();
    else if (op.op === "goAway") this.onGoAway?.(op.goAway!.reason, op.goAway!.router);
    else if (op.op === "sessionEvent") this.sessions.event(op.sessionEvent!);
    else if (op.op === "clusterUrls") {
      this.onClusterUrls?.(op.clusterUrls!.edges.map((e) => ({
        edgeId: e.edgeId, urls: { nats: e.urls?.nats ?? [], websocket: e.urls?.websocket ?? [] },
      })));
    }
    else if (op.op === "load") this.onLoad?.(op.load!.edges);
    else if (op.op === "completion") this.complete(op.completion!);
    else if (op.op === "statsReply") {
      const r = op.statsReply!;
      this.statsWaits.get(r.correlationId)?.(r.stats!);
      this.statsWaits.delete(r.correlationId);
    }
  }

  private complete(c: Completion): void {
    const wait = this.completions.get(c.correlationId);
    if (!wait) return;
    this.completions.delete(c.correlationId);
    // An error means the router did not do it (for a publish: not stored, so no ack).
    if (c.error) wait.reject(new Error(c.error.text || "router error"));
    else wait.resolve(c);
  }

  /** A Deliver as the cursor read it: its message is a view of the frame. */
  private deliver(cur: RouterFrameCursor): void {
    const reply = cur.reply === "" ? undefined : cur.reply;
    const { subject, msg } = cur;
    while (cur.nextTarget()) this.deliverTo(cur.refConnection, cur.refSid, subject, reply, msg);
  }

  /** A Deliver protobufjs decoded (one the cursor does not take as it is, e.g. with several ops' members). */
  private deliverDecoded(d: Deliver): void {
    const m = d.message;
    if (!m) return;
    const msg = messageData(m);
    const reply = m.reply === "" ? undefined : m.reply;
    for (const t of d.targets) this.deliverTo(t.connectionId, t.sid, m.subject, reply, msg);
  }

  private deliverTo(cid: number, sid: string, subject: string, reply: string | undefined, msg: MessageData): void {
    this.handles.get(cid)?.get(sid)?.deliver(subject, reply, msg);
  }
}

function noop(): void {}

/** A connection holding (or attaching) a session, with what a new router needs to attach it again. */
interface Held {
  client: SessionClient; req: SessionAttach; attached: boolean;
  /** By filter; made with the first (most idle MQTT connections hold none: about 0.2 KiB each). */
  subs?: Map<string, MqttSubscription>;
  /** The correlation id of the first attach, or of the last replay's, while unanswered. */
  replaying?: number;
}

/** The MQTT connection an unanswered op speaks for (a session op, an MQTT publish), if any. */
function sessionConnectionOf(op: Draft<EdgeOp>): number | undefined {
  if (op.op === "session") return op.session?.connectionId;
  return op.op === "publish" && op.publish?.topic ? op.publish.originConnection : undefined;
}

/** Connections a replay attaches again per event-loop turn (replay()): a share of some
 *  milliseconds (18,000 at once held an edge 150-180 ms). */
const REPLAYS_PER_TURN = 1_024;

/** A refused attach or detach (no session service on the router yet) is sent again this often, this many times. */
const END_RETRY_MS = 1_000, END_RETRIES = 60;

/** A session op the router refused for want of its session service (`err`) runs `again` a little
 *  later, while `still()` holds; false when it is not to be tried again. */
function retryLater(err: Error, tries: number, still: () => boolean, again: () => void): boolean {
  if (err.message !== NO_SESSION_SERVICE || tries >= END_RETRIES) return false;
  setTimeout(() => { if (still()) again(); }, END_RETRY_MS).unref();
  return true;
}

/** SessionLink calls as SessionOps; SessionEvents reach the holding connections by id. */
class EdgeSessions implements SessionLink {
  /** The connections of this edge holding (or attaching to) a session, with what a new
   *  router needs to attach them again: the request and the subscriptions. */
  private readonly clients = new Map<number, Held>();
  /** Connections that ended, until a router answered their detach. A detach lost with its
   *  stream is sent again (an unanswered op), behind an attach of the connection (replay()): the
   *  new router takes the session (from the router that lost the stream, which would otherwise
   *  publish the will after its grace), then detaches it as the end said (DISCONNECT: no will). */
  private readonly ended = new Map<number, SessionAttach>();
  /** Connections whose attach the current replay has yet to send (replay()). */
  private readonly pending = new Map<number, Held>();

  constructor(private readonly end: EdgeEnd) {}

  attach(req: SessionAttach, client: SessionClient): Promise<SessionAttached> {
    const held: Held = { client, req, attached: false };
    this.clients.set(req.conn.cid, held);
    return this.attachOp(req, (id) => { held.replaying = id; }).then((c) => {
      const subscriptions = subscriptionsFromWire(c.attached?.subscriptions ?? []);
      held.attached = true;
      held.replaying = undefined;
      for (const s of subscriptions) (held.subs ??= new Map()).set(s.filter, s);
      return { present: c.attached?.sessionPresent ?? false, subscriptions };
    });
  }

  private attachOp(req: SessionAttach, sent?: (correlationId: number) => void): Promise<Completion> {
    return this.request(req.conn, {
      clientId: req.clientId,
      attach: {
        clean: req.clean, account: req.account, subscribe: permissionToWire(req.subscribe), will: willToWire(req.will),
        expiry: expiryToWire(req.expiry), receiveMaximum: req.receiveMaximum ?? 0,
        ackWaitMs: req.limits?.ackWaitMs ?? 0, maxAckPending: req.limits?.maxAckPending ?? 0,
      },
    }, sent);
  }

  /**
   * The edge re-attached to another router: each connection holding a session attaches it
   * there (a persistent one is taken from the lost router's store state, with its in-flight
   * messages resent with DUP; a clean one starts afresh with the connection's subscriptions),
   * then resumes. Connections still attaching have their attach among the unanswered ops.
   * The attach of an earlier replay not answered yet (that router was lost too) is not sent
   * again: the router would take the session from this very connection and close it.
   */
  replay(): void {
    // Their detach follows among the unanswered ops. No one waits for the attach: the connection is gone.
    for (const req of this.ended.values()) this.attachOp(req).catch(() => {});
    // A share per turn (a hundred thousand at once would come near the link's keepalive); any
    // op of a connection not replayed yet sends its attach first (replayFirst), so the router
    // never sees a connection's op before its attach. A connection no longer pending (replayed
    // already, or the stream lost: stopReplay) is skipped when its turn comes; the turns of an
    // earlier replay still running serve the next one too (at most twice the share a turn).
    this.pending.clear();
    for (const [cid, held] of this.clients) if (held.attached) this.pending.set(cid, held);
    forEachInTurns([...this.pending.keys()], (cid) => this.replayFirst(cid), REPLAYS_PER_TURN);
  }

  /** Before any op of connection `cid`: its attach, if the current replay has yet to send it. */
  replayFirst(cid: number | undefined): void {
    if (cid === undefined || this.pending.size === 0) return; // on every MQTT publish: no lookup outside a replay
    const held = this.pending.get(cid);
    if (held === undefined) return;
    this.pending.delete(cid);
    if (this.clients.get(cid) === held && held.attached) this.replayOne(cid, held, 0);
  }

  /** The stream was lost: the rest of the replay is not sent (the next stream's replays all). */
  stopReplay(): void {
    this.pending.clear();
  }

  /** Attaches connection `cid` on the new router, its clean session's subscriptions again, and
   *  resumes it. A router whose session service is not up yet is asked again a second later. */
  private replayOne(cid: number, held: Held, tries: number): void {
    const { req, client } = held;
    if (held.replaying !== undefined) this.end.forget(held.replaying);
    let id = 0;
    const answered = () => { if (held.replaying === id) held.replaying = undefined; };
    this.attachOp(req, (correlationId) => { held.replaying = id = correlationId; }).then(answered, (err: Error) => {
      answered();
      const current = () => this.clients.get(cid) === held;
      if (!current()) return;
      if (retryLater(err, tries, () => current() && held.replaying === undefined, () => this.replayOne(cid, held, tries + 1))) return;
      // The new router could not attach it (no store): close as the lost one would have.
      this.end.warn(`MQTT client ${req.clientId} not attached again on the new router: ${err.message}`);
      this.clients.delete(cid);
      client.takenOver();
    });
    // The client had the retained messages when it subscribed: a replayed subscription gets none.
    if (req.clean && held.subs !== undefined && held.subs.size > 0) {
      this.push(req.conn, { subscribe: { subscriptions: [...held.subs.values()].map((sub) => ({ ...sub, retainHandling: 2 as const })) } });
    }
    this.push(req.conn, { resume: {} });
  }

  resume(conn: Connection): void {
    this.push(conn, { resume: {} });
  }

  detach(conn: Connection, publishWill: boolean, expiry?: number): void {
    this.replayFirst(conn.cid);
    const held = this.clients.get(conn.cid);
    this.clients.delete(conn.cid);
    if (!held) return void this.push(conn, { detach: { publishWill, expiry: expiryToWire(expiry) } });
    // An attach not answered yet is sent again by replay(), for the detach behind it.
    if (held.replaying !== undefined) this.end.forget(held.replaying);
    this.ended.set(conn.cid, held.req);
    this.endSession(held.req, { publishWill, expiry: expiryToWire(expiry) }, 0);
  }

  /** Sends a detach until a router answers it. A router that has no session service yet (its
   *  Redis not answering) refuses it: then attach and detach again a little later. */
  private endSession(req: SessionAttach, detach: Draft<SessionOp>["detach"], tries: number): void {
    const cid = req.conn.cid;
    const current = () => this.ended.get(cid) === req;
    this.request(req.conn, { detach }).then(() => { if (current()) this.ended.delete(cid); }, (err: Error) => {
      if (!current()) return;
      if (retryLater(err, tries, current, () => {
        this.attachOp(req).catch(() => {});
        this.endSession(req, detach, tries + 1);
      })) return;
      this.ended.delete(cid);
      this.end.warn(`MQTT client ${req.clientId}: its end (${detach!.publishWill ? "with" : "without"} will) was not taken: ${err.message}`);
    });
  }

  subscribe(conn: Connection, subs: MqttSubscription[]): void {
    const held = this.clients.get(conn.cid);
    if (held) for (const s of subs) (held.subs ??= new Map()).set(s.filter, s);
    this.push(conn, { subscribe: { subscriptions: subs } });
  }

  unsubscribe(conn: Connection, filters: string[]): void {
    const held = this.clients.get(conn.cid);
    if (held) for (const f of filters) held.subs?.delete(f);
    this.push(conn, { unsubscribe: { filters } });
  }

  publish(conn: Connection, subject: string, msg: StoredMessage): Promise<void> | undefined {
    this.replayFirst(conn.cid);
    const properties = propertiesToWire(msg.props);
    if (msg.qos === 0) {
      // The payload may be a view of the parser's buffer: it goes into the frame now.
      writeMqttPublish(this.end.out.frameForOp(), subject, msg.payload, conn.cid, 0, 0, msg.retain, msg.topic, encodeProperties(properties));
      this.end.out.wrote();
      return undefined;
    }
    // Kept until its Completion (a new router gets it again): a copy of the payload.
    const publish = {
      message: { subject, payload: Buffer.from(msg.payload) }, originConnection: conn.cid,
      qos: msg.qos, retain: msg.retain, topic: msg.topic, properties,
    };
    return this.end.request((correlationId) => ({ op: "publish", publish: { ...publish, correlationId } })).then(noop);
  }

  incoming(conn: Connection, packetId: number, subject: string, msg: StoredMessage): Promise<void> {
    return this.request(conn, { incoming: { packetId, subject, message: storedToWire(msg, true) } }).then(noop);
  }

  release(conn: Connection, packetId: number): Promise<void> {
    return this.request(conn, { pubrel: { packetId } }).then(noop);
  }

  puback(conn: Connection, packetId: number): void {
    this.push(conn, { puback: { packetId } });
  }

  pubrec(conn: Connection, packetId: number): void {
    this.push(conn, { pubrec: { packetId } });
  }

  pubcomp(conn: Connection, packetId: number): void {
    this.push(conn, { pubcomp: { packetId } });
  }

  permissions(conn: Connection, subscribe: SubjectPermission | undefined, will: SessionWill | undefined): Promise<MqttSubscription[]> {
    const held = this.clients.get(conn.cid);
    if (held) held.req = { ...held.req, subscribe, will };
    return this.request(conn, { permissions: { subscribe: permissionToWire(subscribe), will: willToWire(will) } })
      .then((c) => {
        const subscriptions = subscriptionsFromWire(c.attached?.subscriptions ?? []);
        if (held) held.subs = subscriptions.length === 0 ? undefined : new Map(subscriptions.map((s) => [s.filter, s]));
        return subscriptions;
      });
  }

  /** A session event for a connection of this edge, as protobufjs decoded it (its bytes are
   *  views of the frame: the client writes them out at once). */
  event(e: SessionEvent): void {
    if (e.event === "publish") {
      const p = e.publish!;
      const m = p.message!;
      this.sendPublish(e.connectionId, m.topic, m.payload, m.qos, m.retain, p.dup, p.packetId, m.properties);
    } else if (e.event === "pubrel") {
      this.clients.get(e.connectionId)?.client.sendPubrel(e.pubrel!);
    } else if (e.event === "takeover") {
      this.takeover(e.connectionId);
    }
  }

  /** The session event the cursor read (Next.Hot2): the same, from the cursor's fields. */
  eventOf(cur: RouterFrameCursor): void {
    if (cur.event === EVENT_PUBLISH) {
      const m = cur.msg;
      this.sendPublish(cur.eventConnection, cur.topic, m.buf.subarray(m.start, m.end), cur.qos, cur.retain, cur.dup, cur.packetId,
        cur.properties());
    } else if (cur.event === EVENT_PUBREL) {
      this.clients.get(cur.eventConnection)?.client.sendPubrel(cur.pubrel);
    } else if (cur.event === EVENT_TAKEOVER) {
      this.takeover(cur.eventConnection);
    }
  }

  private sendPublish(cid: number, topic: string, payload: Buffer, qos: number, retain: boolean, dup: boolean, packetId: number,
                      properties: WireProperties | undefined): void {
    const client = this.clients.get(cid)?.client;
    if (!client) return; // closed meanwhile
    client.sendPublish(topic, payload, qos as 0 | 1 | 2, retain, dup, qos === 0 ? undefined : packetId, propertiesFromWire(properties));
  }

  private takeover(cid: number): void {
    const client = this.clients.get(cid)?.client;
    if (!client) return;
    this.clients.delete(cid);
    client.takenOver();
  }

  private push(conn: Connection, op: Draft<SessionOp>): void {
    this.replayFirst(conn.cid);
    op.connectionId = conn.cid;
    this.end.out.push({ op: "session", session: op });
  }

  private request(conn: Connection, op: Draft<SessionOp>, sent?: (correlationId: number) => void): Promise<Completion> {
    this.replayFirst(conn.cid);
    op.connectionId = conn.cid;
    return this.end.request((correlationId) => {
      sent?.(correlationId);
      return { op: "session", session: { ...op, correlationId } };
    });
  }
}
