// A burst of interest on the cluster topology: a client sends 100,000 SUBs at once to edge 1
// (homed on router 1). The routers apply it a slice per event-loop turn (wire/slices.ts), so
// every link keeps answering its pings and keepalives throughout: no mesh link is declared
// dead, no edge loses its router (which would re-attach and replay everything, loading the
// routers again), and the other node routes to the last subscription.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { measureInterest } from "../bench/interest.js";
import { ATTACHED, startCluster, type TestCluster } from "../helpers/cluster.js";

const SUBS = 100_000, ROUNDS = 2;
/** A link is declared dead after 1.5 s of silence (mesh) or 2 s (attach): after the burst,
 *  watch this long more for a late flap. */
const WATCH_MS = 2_500;
const FLAP = /link to router \S+ down|lost router|no frame for|no answer within|re-attached/;

describe("cluster: a burst of 100,000 SUBs", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startCluster({ routers: 2, edges: 2, timeoutMs: 30_000 });
  }, 40_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it("no link misses its keepalive: no mesh link down, no edge re-attaches", async () => {
    const procs = [...cluster.routers, ...cluster.edges].map((p) => ({ name: p.name, proc: p.proc, since: p.proc.mark() }));
    // Twice, as the bench's rounds: the first client's 100,000 subscriptions are being dropped
    // (it closed) while the second's arrive.
    for (let round = 1; round <= ROUNDS; round++) {
      const { flushMs, reachMs } = await measureInterest(cluster.edges[0].natsPort, cluster.edges[1].natsPort, SUBS, 30_000);
      console.log(`round ${round}, ${SUBS} SUBs: flushed (PONG) after ${flushMs.toFixed(0)} ms, routed from the other node ${reachMs.toFixed(0)} ms later`);
    }
    // Absence of a flap can only be watched for: a bounded wait past the dead-peer rules.
    await new Promise((r) => setTimeout(r, WATCH_MS));
    const flaps = procs.flatMap(({ name, proc, since }) =>
      proc.lines.slice(since).filter((l) => FLAP.test(l.text)).map((l) => `${name}: ${l.text}`));
    expect(flaps).toEqual([]);
    for (const e of cluster.edges) expect(e.proc.lines.filter((l) => ATTACHED.test(l.text))).toHaveLength(1);
  }, 60_000);
});
