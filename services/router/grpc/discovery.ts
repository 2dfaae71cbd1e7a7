// Where an edge's routers are: a fixed list (`edge { routers: [...] }`, tried in order), or every
// A and AAAA record of a DNS name (`discovery { dns: "name:port" }`), resolved again every
// `refresh` so that routers added later are used when the edge re-attaches. Queries go to the
// system's name servers (/etc/resolv.conf), or to MESHBROKER_DNS_SERVERS ("ip[:port],..."),
// without a cache of their own. A failed or empty resolution keeps the last known list.
import { Resolver } from "node:dns/promises";
import { hostPort } from "../../common/address.js";

export interface RouterSource {
  /** The router addresses (host:port) known now; may be empty until a first resolution. */
  current(): string[];
  /** Where to start in the list: the first for a fixed list (the operator's preference),
   *  a random one for DNS (records come in no meaningful order: spread the edges). */
  readonly randomStart: boolean;
  close(): void;
}

export function staticRouters(routers: { host: string; port: number }[]): RouterSource {
  const list = routers.map(({ host, port }) => hostPort(host, port));
  return { current: () => list, randomStart: false, close() {} };
}

export class DnsRouters implements RouterSource {
  readonly randomStart = true;
  private list: string[] = [];
  private readonly resolver = new Resolver();
  private readonly timer: NodeJS.Timeout;
  private lastError = "";

  constructor(private readonly name: { host: string; port: number }, refreshMs: number,
              private readonly log: { notice(m: string): void; warn(m: string): void }) {
    const servers = process.env.MESHBROKER_DNS_SERVERS;
    if (servers) this.resolver.setServers(servers.split(",").map((s) => s.trim()).filter(Boolean));
    this.timer = setInterval(() => void this.resolve(), refreshMs).unref();
  }

  current(): string[] {
    return this.list;
  }

  /** One resolution: A and AAAA records, sorted so that a change is one comparison. */
  async resolve(): Promise<void> {
    const { host, port } = this.name;
    const [v4, v6] = await Promise.allSettled([this.resolver.resolve4(host), this.resolver.resolve6(host)]);
    const addrs = [...(v4.status === "fulfilled" ? v4.value : []), ...(v6.status === "fulfilled" ? v6.value : [])];
    if (addrs.length === 0) {
      const why = v4.status === "rejected" ? (v4.reason as Error).message : "no A or AAAA records";
      if (why !== this.lastError) this.log.warn(`discovery: ${hostPort(host, port)}: ${why}${this.list.length > 0 ? "; keeping the last known routers" : ""}`);
      this.lastError = why;
      return;
    }
    this.lastError = "";
    const list = addrs.map((a) => hostPort(a, port)).sort();
    if (list.join() === this.list.join()) return;
    this.list = list;
    this.log.notice(`discovery: ${hostPort(host, port)} resolves to ${list.join(", ")}`);
  }

  close(): void {
    clearInterval(this.timer);
    this.resolver.cancel();
  }
}
