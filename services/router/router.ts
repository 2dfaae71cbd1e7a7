// Routing: one subject space per account, fan-out to plain subscribers, one member per queue
// group, exports/imports between accounts, and the no-responders status for requests nobody
// can answer.
import { randomBytes } from "node:crypto";
import { subjectMatches } from "../common/subject.js";
import { Account, wireAccounts, type Warn } from "./accounts.js";
import {
  sameConnection, type AccountSet, type Connection, type MessageData, type PublishOptions, type RouterLink,
  type RouterStats, type Subscriber,
} from "./link.js";

/** "NATS/1.0 503\r\n\r\n": the status header nats-server sends for a request without responders. */
const NO_RESPONDERS_HEADER = Buffer.from("NATS/1.0 503\r\n\r\n", "latin1");
const NO_RESPONDERS: MessageData = {
  buf: NO_RESPONDERS_HEADER, start: 0, end: NO_RESPONDERS_HEADER.length, hdrLen: NO_RESPONDERS_HEADER.length,
};
/** How long a service-import reply route lives (nats-server's default response threshold). */
const RESPONSE_TTL_MS = 2 * 60_000;
const RESPONSE_PREFIX = "_R_.";

export class Router implements RouterLink {
  private readonly accounts = new Map<string, Account>();
  private readonly replyPrefix = `${RESPONSE_PREFIX}${randomBytes(4).toString("hex")}.`;
  private replySeq = 0;
  private sweeper: NodeJS.Timeout | undefined;
  /** The account set version each edge sent last. */
  private readonly accountVersions = new Map<string, string>();

  constructor(private readonly warn: Warn = () => {}) {}

  /**
   * Declares the accounts and wires their exports/imports (again on reload). The last set sent
   * wins; an edge whose version differs from another edge's is logged, since the two route
   * the same subjects differently until their configs agree.
   */
  configureAccounts(edge: string, set: AccountSet): void {
    this.accountVersions.set(edge, set.version);
    for (const [other, version] of this.accountVersions) {
      if (other !== edge && version !== set.version) {
        this.warn(`edge ${edge} sent accounts version ${set.version}, edge ${other} has ${version}: their account configs differ`);
      }
    }
    wireAccounts(set.accounts, (name) => this.account(name), this.warn);
  }

  /** Direct calls: everything before this call is applied already. */
  sync(done: () => void): void {
    done();
  }

  /** An edge left: its account version no longer counts. */
  forgetEdge(edge: string): void {
    this.accountVersions.delete(edge);
  }

  subscribe(account: string, sub: Subscriber): void {
    this.account(account).sublist.insert(sub);
  }

  unsubscribe(account: string, sub: Subscriber, max?: number): void {
    if (max !== undefined && max > 0) return; // the in-process subscriber counts (link.ts)
    this.accounts.get(account)?.sublist.remove(sub);
  }

  publish(account: string, subject: string, reply: string | undefined, msg: MessageData,
          origin: Connection, options?: PublishOptions): void {
    const acc = this.accounts.get(account);
    if (!acc) return this.noResponders(undefined, reply, origin, options);
    let delivered = deliver(acc, subject, reply, msg, origin);

    for (const imp of acc.streamImports) {
      if (!matches(imp.filter, subject)) continue;
      if (imp.expiresAt !== undefined && imp.expiresAt <= Date.now()) continue; // its activation expired
      delivered += deliver(imp.importer, imp.map(subject), reply, msg, undefined);
    }
    for (const si of acc.serviceImports) {
      if (!matches(si.local, subject)) continue;
      if (si.expiresAt !== undefined && si.expiresAt <= Date.now()) continue; // its activation expired
      const mapped = reply === undefined ? undefined : this.routeResponse(si.exporter, acc, reply, si.responseType === "Singleton");
      delivered += deliver(si.exporter, si.map(subject), mapped, msg, undefined);
    }
    if (acc.responses.size > 0 && subject.startsWith(RESPONSE_PREFIX)) {
      const route = acc.responses.get(subject);
      if (route) {
        if (route.singleton) acc.responses.delete(subject);
        delivered += deliver(route.account, route.reply, undefined, msg, undefined);
      }
    }
    if (delivered === 0) this.noResponders(acc, reply, origin, options);
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

/** Local delivery in one account; `origin` is set only for the publisher's own account (echo). */
function deliver(acc: Account, subject: string, reply: string | undefined, msg: MessageData,
                 origin: Connection | undefined): number {
  const { psubs, qsubs } = acc.sublist.match(subject);
  let delivered = 0;
  for (let i = 0; i < psubs.length; i++) {
    const sub = psubs[i];
    if (origin !== undefined && !sub.conn.echo && sameConnection(sub.conn, origin)) continue;
    sub.deliver(subject, reply, msg);
    delivered++;
  }
  for (let g = 0; g < qsubs.length; g++) {
    const member = pickMember(qsubs[g], origin);
    if (member) {
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

function matches(filter: string, subject: string): boolean {
  return filter === subject || subjectMatches(filter, subject);
}
