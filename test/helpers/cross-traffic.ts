// NATS traffic between two edges while a test moves them between routers: a subscriber and a
// publisher on each edge, each subscriber counting what each publisher sent it, so a test can
// say what was lost or duplicated and whether any client was disconnected.
import { StringCodec, type NatsConnection } from "nats";
import { natsClient } from "./clients.js";
import type { Cleanups } from "./wait.js";

const sc = StringCodec();

export interface CrossTraffic {
  /** The subscribers (edge a, edge b). */
  readonly subs: readonly [NatsConnection, NatsConnection];
  /** Publishes `n` messages from each publisher and flushes both. */
  round(n?: number): Promise<void>;
  /** Flushes every client: what was published has arrived. */
  settle(): Promise<void>;
  /** Messages each publisher sent so far. */
  readonly sent: number;
  /** What some subscriber never got, and how many extra copies arrived in all. */
  tally(): { lost: string[]; duplicates: number };
  /** Status events ("disconnect", "reconnect", ...) of every client. */
  readonly statuses: string[];
}

/** Clients on the edges at NATS ports `a` and `b`, on subjects `<prefix>.a` and `<prefix>.b`. */
export async function crossTraffic(c: Cleanups, [a, b]: [number, number], prefix: string): Promise<CrossTraffic> {
  const clients: NatsConnection[] = [];
  for (const port of [a, b, a, b]) clients.push(await natsClient(c, port));
  const [sub1, sub2, pub1, pub2] = clients;
  const statuses: string[] = [];
  for (const nc of clients) void (async () => { for await (const s of nc.status()) statuses.push(s.type); })();
  const seen = [new Map<string, number>(), new Map<string, number>()];
  [sub1, sub2].forEach((nc, i) => nc.subscribe(`${prefix}.>`, { callback: (_, m) => {
    const k = sc.decode(m.data);
    seen[i].set(k, (seen[i].get(k) ?? 0) + 1);
  } }));
  await Promise.all([sub1.flush(), sub2.flush()]);
  let sent = 0;
  return {
    subs: [sub1, sub2],
    statuses,
    get sent() { return sent; },
    async round(n = 10) {
      for (let k = 0; k < n; k++, sent++) {
        pub1.publish(`${prefix}.a`, sc.encode(`a${sent}`));
        pub2.publish(`${prefix}.b`, sc.encode(`b${sent}`));
      }
      await Promise.all([pub1.flush(), pub2.flush()]);
    },
    async settle() {
      await Promise.all(clients.map((nc) => nc.flush()));
    },
    tally() {
      const lost: string[] = [];
      let duplicates = 0;
      for (const m of seen) {
        for (let i = 0; i < sent; i++) {
          for (const k of [`a${i}`, `b${i}`]) {
            const n = m.get(k) ?? 0;
            if (n === 0) lost.push(k);
            if (n > 1) duplicates += n - 1;
          }
        }
      }
      return { lost, duplicates };
    },
  };
}
