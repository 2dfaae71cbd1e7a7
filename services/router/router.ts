// Routing: one sublist per account, fan-out to plain subscribers, one member per queue group,
// and the no-responders status for requests nobody can answer.
import { Sublist } from "./sublist.js";
import type { Connection, PublishOptions, RouterLink, RouterStats, Subscriber } from "./link.js";

/** "NATS/1.0 503\r\n\r\n": the status header nats-server sends for a request without responders. */
const NO_RESPONDERS = Buffer.from("NATS/1.0 503\r\n\r\n", "latin1");

export class Router implements RouterLink {
  private readonly accounts = new Map<string, Sublist>();

  private sublist(account: string): Sublist {
    let sl = this.accounts.get(account);
    if (!sl) this.accounts.set(account, sl = new Sublist());
    return sl;
  }

  subscribe(account: string, sub: Subscriber): void {
    this.sublist(account).insert(sub);
  }

  unsubscribe(account: string, sub: Subscriber): void {
    this.accounts.get(account)?.remove(sub);
  }

  publish(account: string, subject: string, reply: string | undefined, data: Buffer, hdrLen: number,
          origin: Connection, options?: PublishOptions): void {
    const sl = this.accounts.get(account);
    let delivered = 0;
    if (sl) {
      const { psubs, qsubs } = sl.match(subject);
      for (let i = 0; i < psubs.length; i++) {
        const sub = psubs[i];
        if (sub.conn === origin && !origin.echo) continue;
        sub.deliver(subject, reply, data, hdrLen);
        delivered++;
      }
      for (let g = 0; g < qsubs.length; g++) {
        const member = pickMember(qsubs[g], origin);
        if (member) {
          member.deliver(subject, reply, data, hdrLen);
          delivered++;
        }
      }
    }
    if (delivered === 0 && reply !== undefined && options?.noResponders && sl) {
      // Only the requester hears about it, on its own reply subscription.
      for (const sub of sl.match(reply).psubs) {
        if (sub.conn === origin) sub.deliver(reply, undefined, NO_RESPONDERS, NO_RESPONDERS.length);
      }
    }
  }

  stats(): RouterStats {
    const s: RouterStats = {
      subscriptions: 0, cacheEntries: 0, matches: 0, cacheHits: 0, inserts: 0, removes: 0, maxFanout: 0, avgFanout: 0,
    };
    let fanoutTotal = 0;
    for (const sl of this.accounts.values()) {
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

  /** All subscribers of all accounts (monitoring). */
  subscribers(): Subscriber[] {
    const out: Subscriber[] = [];
    for (const sl of this.accounts.values()) out.push(...sl.all());
    return out;
  }
}

/** A random member, as nats-server picks; skips the publisher itself when it asked for no echo. */
function pickMember(members: Subscriber[], origin: Connection): Subscriber | undefined {
  const n = members.length;
  const start = (Math.random() * n) | 0;
  for (let k = 0; k < n; k++) {
    const m = members[(start + k) % n];
    if (m.conn !== origin || origin.echo) return m;
  }
  return undefined;
}
