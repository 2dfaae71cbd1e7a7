// Routing: one subject space per account, fan-out to plain subscribers, one member per queue
// group, exports/imports between accounts, and the no-responders status for requests nobody
// can answer. With a mesh attached (mesh/), peer routers' aggregated interest sits in the same
// sublists as RemoteSubscribers, so one match serves local and remote delivery alike.
import { randomBytes, randomInt } from "node:crypto";
import { subjectMatches } from "../common/subject.js";
import { Account, wireAccounts, type Warn } from "./accounts.js";
import type { MatchResult } from "./sublist.js";
import {
  sameConnection, type AccountSet, type Connection, type MessageData, type PublishOptions, type RouterLink,
  type QueuePick, type RouterStats, type RouterSessions, type Subscriber,
} from "./link.js";

/** "NATS/1.0 503\r\n\r\n": the status header nats-server sends for a request without responders. */
const NO_RESPONDERS_HEADER = Buffer.from("NATS/1.0 503\r\n\r\n", "latin1");
const NO_RESPONDERS: MessageData = {
  buf: NO_RESPONDERS_HEADER, start: 0, end: NO_RESPONDERS_HEADER.length, hdrLen: NO_RESPONDERS_HEADER.length,
};
/** How long a service-import reply route lives (nats-server's default response threshold). */
const RESPONSE_TTL_MS = 2 * 60_000;
const RESPONSE_PREFIX = "_R_.";

/**
 * A peer router's aggregated interest (one entry per account, subject and queue group), held
 * in the sublist beside local subscribers. deliver() queues the message for that peer.
 */
export interface RemoteSubscriber extends Subscriber {
  /** The number of subscriptions behind the entry: a queue group's pick is weighted by it. */
  weight: number;
}

/** What a mesh learns from the router. The router calls it only when one is attached. */
export interface MeshHooks {
  /** A local subscription (not a peer's entry) came (+1) or went (-1). */
  interestChanged(account: string, subject: string, queue: string | undefined, delta: number): void;
  /** A publish starts: the RemoteSubscribers delivered to until the next call belong to it.
   *  `retain`: an MQTT message published with the retain flag; `msgId`: its id (0: none). */
  publishing(origin: Connection | undefined, retain: boolean, msgId: number): void;
  /** `done` once every peer applied the interest changes made so far (a flush barrier). */
  barrier(done: () => void): void;
}

function isRemote(sub: Subscriber): sub is RemoteSubscriber {
  return (sub as RemoteSubscriber).weight !== undefined;
}

export class Router implements RouterLink {
  /** The MQTT session service, when MQTT is served (services/router/sessions/). */
  sessions: RouterSessions | undefined = undefined;
  /** The MQTT retain flag of the message being delivered (deliveries are synchronous): MQTT
   *  sessions read it for retain as published, on the publisher's router and on its peers. */
  retained = false;
  /** The id of the message being delivered (0: none): given here to each publish that has
   *  headers (every MQTT message has), or by the peer router where it entered the cluster. MQTT
   *  sessions keep it, to tell a message from an equal one across routers. */
  msgId = 0;
  /** The last id given. Ids count up from a random start below 2^52, so they stay exact numbers
   *  and two routers that each give n ids share one with a chance of about n / 2^51. */
  private lastMsgId = randomInt(2 ** 48 - 1) * 16;
  private readonly accounts = new Map<string, Account>();
  private readonly replyPrefix = `${RESPONSE_PREFIX}${randomBytes(4).toString("hex")}.`;
  private replySeq = 0;
  private sweeper: NodeJS.Timeout | undefined;
  /** The account set version of each edge ("edge <id>") and linked peer router ("router <id>"). */
  private readonly accountVersions = new Map<string, string>();
  /** Disagreements already logged ("a|b|va|vb"): a peer re-linking does not log it again. */
  private readonly versionWarnings = new Set<string>();
  /** The version of the account set this router serves (its edges' last), "" before any. */
  accountsVersion = "";
  /** Set by attachMesh; undefined keeps the embedded path exactly as without a mesh. */
  private mesh: MeshHooks | undefined;

  constructor(private readonly warn: Warn = () => {}) {}

  /**
   * Declares the accounts and wires their exports/imports (again on reload). The last set sent
   * wins; an edge whose version differs from another edge's is logged, since the two route
   * the same subjects differently until their configs agree.
   */
  configureAccounts(edge: string, set: AccountSet): void {
    this.compareAccounts(`edge ${edge}`, set.version);
    this.accountsVersion = set.version;
    wireAccounts(set.accounts, (name) => this.account(name), this.warn);
    this.announceReplies();
  }

  /**
   * With a mesh, each account that serves a service import takes replies on this router's
   * `_R_.` prefix: a responder behind a peer answers there, so the peers learn it now, before
   * the first request crosses (an interest update sent with the request would arrive after it).
   */
  private announceReplies(): void {
    if (!this.mesh) return;
    for (const acc of this.accounts.values()) {
      for (const si of acc.serviceImports) this.announceReply(si.exporter);
    }
  }

  private announceReply(exporter: Account): void {
    if (exporter.meshReplies) return;
    exporter.meshReplies = true;
    this.mesh!.interestChanged(exporter.name, this.replyPrefix + ">", undefined, 1);
  }

  /** Direct calls: everything before this call is applied here already; with a mesh, done
   *  once the peers applied the interest changes too (a flush confirms cluster-wide routing). */
  sync(done: () => void): void {
    if (this.mesh) this.mesh.barrier(done);
    else done();
  }

  /** An edge left: its account version no longer counts. */
  forgetEdge(edge: string): void {
    this.accountVersions.delete(`edge ${edge}`);
  }

  /**
   * Notes the account set version `who` (an edge, or a peer router from its MeshHello) serves,
   * and logs each member it disagrees with, once per pair of versions: the two route the same
   * subjects differently until their configs agree. "" (no accounts sent yet) is not compared.
   */
  compareAccounts(who: string, version: string): void {
    if (version === "") return void this.accountVersions.delete(who);
    this.accountVersions.set(who, version);
    for (const [other, v] of this.accountVersions) {
      const key = `${who}|${other}|${version}|${v}`;
      // Two peers that differ log it themselves, against their own edges.
      if (other === who || v === version || this.versionWarnings.has(key) || (who.startsWith("router ") && other.startsWith("router "))) continue;
      if (this.versionWarnings.size >= 1_000) this.versionWarnings.clear();
      this.versionWarnings.add(key);
      this.warn(`${who} sent accounts version ${version}, ${other} has ${v}: their account configs differ`);
    }
  }

  /** A member left: its account version no longer counts. */
  forgetAccounts(who: string): void {
    this.accountVersions.delete(who);
  }

  subscribe(account: string, sub: Subscriber): void {
    this.account(account).sublist.insert(sub);
    this.mesh?.interestChanged(account, sub.subject, sub.queue, 1);
  }

  unsubscribe(account: string, sub: Subscriber, max?: number): void {
    if (max !== undefined && max > 0) return; // the in-process subscriber counts (link.ts)
    if (this.accounts.get(account)?.sublist.remove(sub)) this.mesh?.interestChanged(account, sub.subject, sub.queue, -1);
  }

  /**
   * Attaches the router mesh before any edge subscribes: from now on local interest changes
   * reach it, and queue groups pick weighted over local members and peers' entries.
   */
  attachMesh(mesh: MeshHooks): void {
    for (const [name, acc] of this.accounts) {
      if (acc.sublist.count > 0) throw new Error(`attachMesh: account ${name} already has subscriptions`);
    }
    this.mesh = mesh;
    this.announceReplies();
  }

  /** The subscribers of `subject` in `account` (undefined: no such account). */
  match(account: string, subject: string): MatchResult | undefined {
    return this.accounts.get(account)?.sublist.match(subject);
  }

  /** A peer's interest entry enters (or leaves) the account's subject space. */
  addRemote(account: string, sub: RemoteSubscriber): void {
    this.account(account).sublist.insert(sub);
  }

  removeRemote(account: string, sub: RemoteSubscriber): void {
    this.accounts.get(account)?.sublist.remove(sub);
  }

  /**
   * A message a peer forwarded: the sender applied imports and picked this router for the
   * queue groups in `queues`, so it goes only to local plain subscribers and one local member
   * of each named group, never back to a peer. The one exception is a reply to a service
   * import this router mapped (`_R_.` with its own prefix): the route lives here only.
   */
  deliverForwarded(account: string, subject: string, reply: string | undefined, msg: MessageData,
                   queues: readonly string[], origin: Connection, retain = false, msgId = 0): void {
    const acc = this.accounts.get(account);
    if (!acc) return;
    this.retained = retain;
    this.msgId = msgId;
    const { psubs, qsubs } = acc.sublist.match(subject);
    for (let i = 0; i < psubs.length; i++) {
      const sub = psubs[i];
      if (isRemote(sub) || (!sub.conn.echo && sameConnection(sub.conn, origin))) continue;
      sub.deliver(subject, reply, msg);
    }
    if (queues.length > 0) {
      for (let g = 0; g < qsubs.length; g++) {
        if (!queues.includes(qsubs[g][0].queue!)) continue;
        pickWeighted(qsubs[g], origin, false)?.deliver(subject, reply, msg);
      }
    }
    if (subject.startsWith(this.replyPrefix)) {
      this.mesh?.publishing(origin, false, 0); // a new message for the peers' batches
      this.respond(acc, subject, msg);
    }
  }

  publish(account: string, subject: string, reply: string | undefined, msg: MessageData,
          origin: Connection, options?: PublishOptions): void {
    const acc = this.accounts.get(account);
    if (!acc) return this.noResponders(undefined, reply, origin, options);
    const mesh = this.mesh;
    const retain = options?.retain === true;
    this.retained = retain;
    const msgId = this.msgId = msg.hdrLen > 0 ? ++this.lastMsgId : 0;
    mesh?.publishing(origin, retain, msgId);
    const pick = mesh ? pickMeshed : pickMember;
    let delivered = deliver(acc, subject, reply, msg, origin, pick, options?.queuePicks);

    for (const imp of acc.streamImports) {
      if (!matches(imp.filter, subject)) continue;
      if (imp.expiresAt !== undefined && imp.expiresAt <= Date.now()) continue; // its activation expired
      delivered += deliver(imp.importer, imp.map(subject), reply, msg, undefined, pick);
    }
    for (const si of acc.serviceImports) {
      if (!matches(si.local, subject)) continue;
      if (si.expiresAt !== undefined && si.expiresAt <= Date.now()) continue; // its activation expired
      const mapped = reply === undefined ? undefined : this.routeResponse(si.exporter, acc, reply, si.responseType === "Singleton");
      delivered += deliver(si.exporter, si.map(subject), mapped, msg, undefined, pick);
    }
    if (acc.responses.size > 0 && subject.startsWith(RESPONSE_PREFIX)) delivered += this.respond(acc, subject, msg);
    // A peer entry counts as delivered: its router said someone there listens (interest
    // knowledge, as nats-server's routes). So the 503 comes only when nobody in the cluster
    // matched, as far as this router's view of the peers' interest goes.
    if (delivered === 0) this.noResponders(acc, reply, origin, options);
  }

  /** A reply on a mapped service-import reply subject goes back to the requester's account. */
  private respond(acc: Account, subject: string, msg: MessageData): number {
    const route = acc.responses.get(subject);
    if (!route) return 0;
    if (route.singleton) acc.responses.delete(subject);
    return deliver(route.account, route.reply, undefined, msg, undefined, this.mesh ? pickMeshed : pickMember);
  }

  stats(): Promise<RouterStats> {
    return Promise.resolve(this.statsNow());
  }

  private statsNow(): RouterStats {
    const s: RouterStats = {
      subscriptions: 0, cacheEntries: 0, matches: 0, cacheHits: 0, inserts: 0, removes: 0, maxFanout: 0, avgFanout: 0,
    };
    let fanoutTotal = 0;
    for (const { sublist: sl } of this.accounts.values()) {
      const f = sl.cacheFanout();
      s.maxFanout = Math.max(s.maxFanout, f.max);
      fanoutTotal += f.total;
      s.subscriptions += sl.count;
      s.cacheEntries += sl.cacheEntries;
      s.matches += sl.matches;
      s.cacheHits += sl.cacheHits;
      s.inserts += sl.inserts;
      s.removes += sl.removes;
    }
    s.avgFanout = s.cacheEntries === 0 ? 0 : fanoutTotal / s.cacheEntries;
    return s;
  }

  close(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  private account(name: string): Account {
    let acc = this.accounts.get(name);
    if (!acc) this.accounts.set(name, acc = new Account(name));
    return acc;
  }

  /** A reply subject in the exporter that leads back to the requester's reply in its account. */
  private routeResponse(exporter: Account, requester: Account, reply: string, singleton: boolean): string {
    const mapped = this.replyPrefix + (this.replySeq++).toString(36);
    exporter.responses.set(mapped, { account: requester, reply, singleton, expires: Date.now() + RESPONSE_TTL_MS });
    if (this.mesh) this.announceReply(exporter);
    this.sweeper ??= setInterval(() => this.sweepResponses(), 30_000).unref();
    return mapped;
  }

  private sweepResponses(): void {
    const now = Date.now();
    for (const acc of this.accounts.values()) {
      for (const [key, route] of acc.responses) if (route.expires <= now) acc.responses.delete(key);
    }
  }

  /** Only the requester hears about it, on its own reply subscription. */
  private noResponders(acc: Account | undefined, reply: string | undefined, origin: Connection,
                       options: PublishOptions | undefined): void {
    if (!acc || reply === undefined || !options?.noResponders) return;
    for (const sub of acc.sublist.match(reply).psubs) {
      if (sameConnection(sub.conn, origin)) sub.deliver(reply, undefined, NO_RESPONDERS);
    }
  }
}

type Pick = (members: Subscriber[], origin: Connection | undefined) => Subscriber | undefined;

/** Delivery in one account; `origin` is set only for the publisher's own account (echo). Each
 *  group's pick is appended to `picks` when given. */
function deliver(acc: Account, subject: string, reply: string | undefined, msg: MessageData,
                 origin: Connection | undefined, pick: Pick, picks?: QueuePick[]): number {
  const { psubs, qsubs } = acc.sublist.match(subject);
  let delivered = 0;
  for (let i = 0; i < psubs.length; i++) {
    const sub = psubs[i];
    if (origin !== undefined && !sub.conn.echo && sameConnection(sub.conn, origin)) continue;
    sub.deliver(subject, reply, msg);
    delivered++;
  }
  for (let g = 0; g < qsubs.length; g++) {
    const member = pick(qsubs[g], origin);
    if (member) {
      picks?.push({ queue: member.queue!, to: member.conn.edgeId });
      member.deliver(subject, reply, msg);
      delivered++;
    }
  }
  return delivered;
}

/** A random member, as nats-server picks; skips the publisher itself when it asked for no echo
 *  (the subscription carries its connection's echo flag, so a publish needs only the ids). */
function pickMember(members: Subscriber[], origin: Connection | undefined): Subscriber | undefined {
  const n = members.length;
  const start = (Math.random() * n) | 0;
  for (let k = 0; k < n; k++) {
    const m = members[(start + k) % n];
    if (origin === undefined || m.conn.echo || !sameConnection(m.conn, origin)) return m;
  }
  return undefined;
}

/** With peers: one member cluster-wide. */
function pickMeshed(members: Subscriber[], origin: Connection | undefined): Subscriber | undefined {
  return pickWeighted(members, origin, true);
}

/**
 * The cluster's queue rule: every subscription in the cluster is equally likely, with no
 * preference for local members. A local member weighs 1, a peer's entry the number of members
 * behind it, so with 2 members on each of 2 routers half the messages cross. `withPeers`
 * false: only local members (a forwarded message is never sent on).
 */
function pickWeighted(members: Subscriber[], origin: Connection | undefined, withPeers: boolean): Subscriber | undefined {
  let total = 0;
  for (let i = 0; i < members.length; i++) total += weightOf(members[i], origin, withPeers);
  if (total === 0) return undefined;
  let r = Math.random() * total;
  for (let i = 0; i < members.length; i++) {
    const w = weightOf(members[i], origin, withPeers);
    if (r < w) return members[i];
    r -= w;
  }
  return undefined; // unreachable: r < total
}

function weightOf(m: Subscriber, origin: Connection | undefined, withPeers: boolean): number {
  if (isRemote(m)) return withPeers ? m.weight : 0;
  return origin === undefined || m.conn.echo || !sameConnection(m.conn, origin) ? 1 : 0;
}

function matches(filter: string, subject: string): boolean {
  return filter === subject || subjectMatches(filter, subject);
}
