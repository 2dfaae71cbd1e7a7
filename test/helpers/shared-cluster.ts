// Clusters (test/helpers/cluster.ts) shared by the tests of one file, by options: starting one
// costs 1–2 s. vitest evaluates this module once per file; the clusters stop after its tests.
// (Apart from cluster.ts, which the benchmark imports outside vitest.)
import { afterAll } from "vitest";
import { startCluster, type ClusterEdge, type ClusterOptions, type TestCluster } from "./cluster.js";

const shared = new Map<string, Promise<TestCluster>>();
// Only under vitest: `make fuzz` (plain node) imports this module through mqtt.ts and ws-raw.ts.
if (process.env.VITEST) {
  afterAll(async () => {
    const all = [...shared.values()];
    shared.clear();
    await Promise.all(all.map(async (c) => (await c.catch(() => undefined))?.stop()));
  });
}

/** A cluster with `opts` shared by the tests of the file: they must not depend on what an
 *  earlier test left there. Do not stop it (releaseShared first). */
export function sharedCluster(opts: ClusterOptions): Promise<TestCluster> {
  const key = JSON.stringify(opts);
  let c = shared.get(key);
  if (!c) {
    c = startCluster(opts);
    shared.set(key, c);
  }
  return c;
}

/** sharedCluster, once the file's shared clusters of other options are stopped: a file whose
 *  tests come config by config runs one cluster at a time (a dozen idle ones load the machine). */
export async function soleSharedCluster(opts: ClusterOptions): Promise<TestCluster> {
  const key = JSON.stringify(opts);
  const others = [...shared].filter(([k]) => k !== key);
  for (const [k] of others) shared.delete(k);
  await Promise.all(others.map(async ([, c]) => (await c.catch(() => undefined))?.stop()));
  return sharedCluster(opts);
}

/** Takes a shared cluster out of the set (a test is about to change it): the caller stops it. */
export async function releaseShared(cluster: TestCluster): Promise<TestCluster> {
  for (const [key, c] of shared) if ((await c.catch(() => undefined)) === cluster) shared.delete(key);
  return cluster;
}


/** `pick` of the next edge at each call, round robin: a test's clients alternate over the edges. */
export function edgeTurns(cluster: TestCluster): <T>(pick: (e: ClusterEdge) => T) => T {
  let turn = 0;
  return (pick) => pick(cluster.edges[turn++ % cluster.edges.length]);
}
