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
  return shareAs(JSON.stringify(opts), opts);
}

function shareAs(key: string, opts: ClusterOptions): Promise<TestCluster> {
  let c = shared.get(key);
  if (!c) {
    c = startCluster(opts);
    shared.set(key, c);
  }
  return c;
}

/** The edge config each cluster of reloadedCluster runs now. */
const running = new WeakMap<TestCluster, string>();

/** One cluster for the file's tests with `opts` whatever their `edgeConfig`: a test with another
 *  edge config than the last one reloads the edges to it (SIGHUP) instead of starting a cluster.
 *  Only for configs that differ in what an edge reloads (authorization, limits: not listeners);
 *  a refused reload fails the test, and the cluster is stopped. */
export async function reloadedCluster(opts: ClusterOptions): Promise<TestCluster> {
  const { edgeConfig = "", ...rest } = opts;
  const key = `reloaded ${JSON.stringify(rest)}`;
  const cluster = await shareAs(key, opts);
  if ((running.get(cluster) ?? edgeConfig) !== edgeConfig) {
    try {
      await cluster.reloadEdges(edgeConfig);
    } catch (err) {
      shared.delete(key);
      await cluster.stop();
      throw err;
    }
  }
  running.set(cluster, edgeConfig);
  return cluster;
}

/** Edges of a test's own (counters from zero, no closed connections of earlier tests) with
 *  `opts.edgeConfig`, homed one on each router of the file's cluster with the other `opts`,
 *  which has no edges of its own and stays up; stop() kills them. */
export async function ownEdges(opts: ClusterOptions): Promise<{ cluster: TestCluster; edges: ClusterEdge[]; stop(): Promise<void> }> {
  const { edgeConfig = "", edges: count = 2, ...rest } = opts;
  const cluster = await shareAs(`own edges ${JSON.stringify(rest)}`, { ...rest, edges: 0 });
  const edges = await Promise.all(Array.from({ length: count }, (_, home) => cluster.addEdge(home, edgeConfig)));
  return { cluster, edges, stop: async () => { await Promise.all(edges.map((e) => e.proc.kill())); } };
}

/** Takes a shared cluster out of the set (a test is about to change it): the caller stops it. */
export async function releaseShared(cluster: TestCluster): Promise<TestCluster> {
  for (const [key, c] of shared) if ((await c.catch(() => undefined)) === cluster) shared.delete(key);
  return cluster;
}


/** The next of `items` at each call, round robin (an array that grows is followed): a test's
 *  clients alternate over the edges of a cluster. */
export function roundRobin<T>(items: readonly T[]): () => T {
  let turn = 0;
  return () => items[turn++ % items.length];
}
