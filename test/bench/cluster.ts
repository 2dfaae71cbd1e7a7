// The two clusters the cluster cases compare, each seen by a case as one RunningServer whose
// `nodes` are the client listeners of its two nodes: meshbroker's (redis-server, 2 routers, 2
// edges, edge i homed on router i: the test topology of test/helpers/cluster.ts) and a 2-node
// nats-server cluster joined by routes. Clients of node 1 connect to its `port` (`wsPort`,
// `mqttPort`), and its `pid` is node 1's process: an edge's for meshbroker.
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { freePorts } from "../helpers/process.js";
import { ensureRedisServer, startServer, type RunningServer } from "./servers.js";

/** At the end, each meshbroker process gets SIGINT (stop now) and prints its frame counts in
 *  this line, within STOP_MS; then everything is killed. */
const FRAMES_LINE = /link frames sent: (.*)$/;
const STOP_MS = 5_000;

/** `edgeConfig`: the listener blocks every edge gets beside its NATS port (`port: -1` in them). */
export async function startMeshCluster(edgeConfig: string): Promise<RunningServer> {
  ensureRedisServer();
  const cluster: TestCluster = await startCluster({ routers: 2, edges: 2, edgeConfig, timeoutMs: 20_000 });
  const notes: string[] = [];
  const procs = [...cluster.routers.map((r) => ({ name: r.name, proc: r.proc })), ...cluster.edges.map((e) => ({ name: e.name, proc: e.proc }))];
  const nodes = cluster.edges.map((e) => ({ port: e.natsPort, wsPort: e.wsPort, mqttPort: e.mqttPort }));
  return {
    label: "meshbroker",
    ...nodes[0],
    nodes,
    pid: cluster.edges[0].proc.pid,
    logFile: "",
    notes,
    // redis-server too: what it does per message or connection is part of the cluster's cost
    processes: [...procs.map(({ name, proc }) => ({ name, pid: proc.pid })), { name: "redis", pid: cluster.redis.pid }],
    async stop() {
      // Each process's ops per frame over its whole life (every round of the case, probes too).
      await Promise.all(procs.map(async ({ name, proc }) => {
        const since = proc.mark();
        proc.signal("SIGINT");
        try {
          const m = await proc.waitForLine(FRAMES_LINE, STOP_MS, { since });
          notes.push(`${name}: ${m[1]}`);
          // Let it exit by itself: a --cpu-prof profile (MESHBROKER_NODE_ARGS) is written last.
          await proc.exitWithin(STOP_MS);
        } catch {
          // exited without sending frames, or too slowly: no figure
        }
      }));
      await cluster.stop();
    },
  };
}

/** Two nats-server processes with `cluster { listen, routes }` pointing at each other;
 *  `listeners`: more listener blocks (placeholders as in slots.ts). */
export async function startNatsCluster(bin: string, listeners: string, workDir: string, root: string): Promise<RunningServer> {
  const routePorts = await freePorts(2);
  const node = (i: number) => ({
    label: "nats-server",
    argv: [bin, "-c", "{config}"],
    configTemplate:
      `port: {port}\nhost: {host}\nserver_name: n${i + 1}\n${listeners}` +
      `cluster {\n  name: bench\n  listen: "127.0.0.1:${routePorts[i]}"\n  routes: ["nats-route://127.0.0.1:${routePorts[1 - i]}"]\n}\n`,
  });
  const a = await startServer(node(0), workDir, root);
  let b: RunningServer;
  try {
    b = await startServer(node(1), workDir, root);
  } catch (err) {
    await a.stop();
    throw err;
  }
  return {
    label: "nats-server",
    port: a.port,
    wsPort: a.wsPort,
    nodes: [a, b].map((n) => ({ port: n.port, wsPort: n.wsPort })),
    pid: a.pid,
    logFile: a.logFile,
    processes: [{ name: "n1", pid: a.pid }, { name: "n2", pid: b.pid }],
    async stop() {
      await Promise.all([a.stop(), b.stop()]);
    },
  };
}

export const MESH_CLUSTER_TEXT =
  "redis-server + `meshbroker router` ×2 + `meshbroker edge` ×2 (edge i homed on router i, cluster token), as test/helpers/cluster.ts";
export const NATS_CLUSTER_TEXT = "2 × nats-server with `cluster { listen, routes }` to each other";
