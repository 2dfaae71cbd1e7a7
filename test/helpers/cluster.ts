// The cluster test topology: a real redis-server, router processes and edge processes
// (`bin/meshbroker router|edge`), each on free ports, their configs in a temp dir. Edges get
// the list of every router; `routers` is a parameter (1 until the router mesh exists, 2 for
// failover). Startup waits for each edge's "attached to router" line, so interest set up after
// startCluster() resolves is routed. `stop()` kills everything (afterAll); a worker that dies
// takes its processes with it (process.ts, redis.ts).
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { LISTEN_MONITORING, reload, spawnBroker, type BrokerProcess } from "./process.js";
import { startRedis, type RedisServer } from "./redis.js";

export const CLUSTER_TOKEN = "cluster-test-token";
const LISTEN_EDGES = /listening for edges on (?:tls:\/\/)?(\S+):(\d+)$/;
const LISTEN_NATS = /listening for NATS clients on \S+:(\d+)$/;
const LISTEN_WS = /listening for websocket clients on wss?:\/\/\S+:(\d+)$/;
const LISTEN_MQTT = /listening for MQTT clients on \w+:\/\/\S+:(\d+)$/;
/** A router's log line for each peer router it linked to over the mesh. */
export const MESH_LINKED = /mesh: linked to router (\S+) \((?:dialed|accepted)\)$/;
export const ATTACHED = /attached to router (\S+) at (\S+)(?: \(re-attached (\d+) ms after the loss\))?$/;

export interface ClusterRouter {
  name: string;
  host: string;
  port: number;
  /** With `monitoring`: the router's monitoring port. */
  httpPort: number | undefined;
  /** Its config file (a test may rewrite it and send SIGHUP). */
  file: string;
  proc: BrokerProcess;
}

export interface ClusterEdge {
  name: string;
  natsPort: number;
  /** Set when the edge config has a `websocket {}` block (use `port: -1` there). */
  wsPort: number | undefined;
  /** Set when the edge config has an `mqtt {}` block (use `port: -1` there). */
  mqttPort: number | undefined;
  /** With `monitoring`: the edge's monitoring port. */
  httpPort: number | undefined;
  proc: BrokerProcess;
}

export interface ClusterOptions {
  /** Router processes (default 1). */
  routers?: number;
  /** Edge processes (default 2). */
  edges?: number;
  /** Extra config text for every edge (accounts, `websocket { port: -1 }`, ...). */
  edgeConfig?: string;
  /** mTLS on the links: routers verify edges' certificates against `caFile`. */
  tls?: { caFile: string; router: { certFile: string; keyFile: string }; edge: { certFile: string; keyFile: string } };
  /** The cluster token in router {} and edge {} (default true; without it, mTLS authenticates). */
  token?: boolean;
  /** The address router i listens on (default 127.0.0.1; any of 127.0.0.0/8 works on Linux). */
  routerHosts?: string[];
  /** One port for every router (on different `routerHosts`), as DNS discovery needs; default: free ports. */
  routerPort?: number;
  /** How edges find the routers, instead of the list of every router (`discovery { dns: … }`). */
  edgeDiscovery?: string;
  /** Extra entries inside every edge's `edge {}` block (`rebalance { ... }`). */
  edgeBlock?: string;
  /** Every router's `balance_edges` (default "0s": off, since tests place edges on routers
   *  themselves and expect them to stay where they re-attached). */
  balanceEdges?: string;
  /** Environment of the edge processes (added to this process's). */
  edgeEnv?: NodeJS.ProcessEnv;
  /** A monitoring listener (`http`) on every router and edge. */
  monitoring?: boolean;
  timeoutMs?: number;
}

export interface TestCluster {
  redis: RedisServer;
  routers: ClusterRouter[];
  edges: ClusterEdge[];
  /** kill -9 of router `i`. */
  killRouter(i: number): Promise<void>;
  /** Starts router `i` again on its port. */
  restartRouter(i: number): Promise<void>;
  /** Starts one more edge (e<n+1>), homed like the others by its index, or on router `home`,
   *  with `extraConfig` after the others' config text; resolves once attached (then in `edges`). */
  addEdge(home?: number, extraConfig?: string): Promise<ClusterEdge>;
  /** kill -9 of edge `i`. */
  killEdge(i: number): Promise<void>;
  /** Rewrites every edge's config with `edgeConfig` in place of the extra text, sends SIGHUP and
   *  resolves once each edge logged its reload (rejects on "Failed to reload"). */
  reloadEdges(edgeConfig: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startCluster(opts: ClusterOptions = {}): Promise<TestCluster> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const dir = await mkdtemp(path.join(os.tmpdir(), "meshbroker-cluster-"));
  const procs = new Set<BrokerProcess>();
  let redis: RedisServer | undefined;
  const stop = async () => {
    await Promise.all([...procs].map((p) => p.kill()));
    await redis?.stop();
    await rm(dir, { recursive: true, force: true });
  };
  const token = opts.token === false ? "" : `authorization { token: "${CLUSTER_TOKEN}" }`;
  const http = opts.monitoring ? 'http: "127.0.0.1:-1"' : "";
  const httpPort = async (proc: BrokerProcess) => (opts.monitoring ? Number((await proc.waitForLine(LISTEN_MONITORING, timeoutMs))[2]) : undefined);
  try {
    redis = await startRedis({ timeoutMs });
    const routers: ClusterRouter[] = [];
    const startRouter = async (name: string, port: number): Promise<ClusterRouter> => {
      const file = path.join(dir, `${name}.conf`);
      const t = opts.tls;
      const host = opts.routerHosts?.[Number(name.slice(1)) - 1] ?? "127.0.0.1";
      await writeFile(file, [
        `server_name: ${name}`, http,
        `router { listen: "${host}:${port === 0 ? -1 : port}", redis: "${redis!.url}", balance_edges: "${opts.balanceEdges ?? "0s"}", ${token}`,
        t ? `tls { cert_file: "${t.router.certFile}", key_file: "${t.router.keyFile}", ca_file: "${t.caFile}", verify: true } }` : "}",
      ].join("\n"));
      const proc = spawnBroker(["router", "-c", file]);
      procs.add(proc);
      const m = await proc.waitForLine(LISTEN_EDGES, timeoutMs);
      return { name, host, port: Number(m[2]), httpPort: await httpPort(proc), file, proc };
    };
    // Side by side: each finds the others in Redis (waitForPeers), whichever starts first.
    routers.push(...await Promise.all(Array.from({ length: opts.routers ?? 2 }, (_, i) => startRouter(`r${i + 1}`, opts.routerPort ?? 0))));
    // The routers link to each other while the edges start: a router that registered first finds
    // the other at its next heartbeat (up to 1 s), as long as an edge's start takes.
    const meshed = Promise.all(routers.map((r) => waitForPeers(r, routers.length - 1, timeoutMs)));
    meshed.catch(() => {}); // awaited below, after the edges
    let edgeConfig = opts.edgeConfig ?? "";
    const edgeFile = (i: number) => path.join(dir, `e${i + 1}.conf`);
    /** Edge i's home router, once started (addEdge may name another), and its own config text. */
    const homes: number[] = [];
    const extras: string[] = [];
    const writeEdgeConfig = (i: number) => {
      // Edge i prefers router i (mod the count): with 2 routers the two edges are homed on
      // different routers, so their clients reach each other through the mesh.
      const home = homes[i] ?? i;
      const list = routers.map((_r, k) => routers[(home + k) % routers.length]).map((r) => `"${r.host}:${r.port}"`).join(", ");
      return writeFile(edgeFile(i), [
        `server_name: e${i + 1}`, "host: 127.0.0.1", "port: -1", http,
        `edge { ${opts.edgeDiscovery ?? `routers: [${list}]`}, ${opts.edgeBlock ? `${opts.edgeBlock},` : ""} ${token}`,
        opts.tls ? `tls { ca_file: "${opts.tls.caFile}", cert_file: "${opts.tls.edge.certFile}", key_file: "${opts.tls.edge.keyFile}" } }` : "}",
        edgeConfig, extras[i] ?? "",
      ].join("\n"));
    };
    const startEdge = async (i: number, home = i, extra?: string): Promise<ClusterEdge> => {
      const name = `e${i + 1}`, file = edgeFile(i);
      homes[i] = home;
      if (extra !== undefined) extras[i] = extra;
      await writeEdgeConfig(i);
      const proc = spawnBroker(["edge", "-c", file], opts.edgeEnv ? { env: { ...process.env, ...opts.edgeEnv } } : {});
      procs.add(proc);
      const nats = await proc.waitForLine(LISTEN_NATS, timeoutMs);
      const text = `${opts.edgeConfig ?? ""}\n${extras[i] ?? ""}`;
      const ws = /^\s*websocket\s*[:={]/m.test(text) ? await proc.waitForLine(LISTEN_WS, timeoutMs) : undefined;
      const mqtt = /^\s*mqtt\s*[:={]/m.test(text) ? await proc.waitForLine(LISTEN_MQTT, timeoutMs) : undefined;
      await proc.waitForLine(ATTACHED, timeoutMs);
      return {
        name, natsPort: Number(nats[1]), wsPort: ws ? Number(ws[1]) : undefined, mqttPort: mqtt ? Number(mqtt[1]) : undefined,
        httpPort: await httpPort(proc), proc,
      };
    };
    const edges = await Promise.all(Array.from({ length: opts.edges ?? 2 }, (_, i) => startEdge(i)));
    await meshed;
    let added = edges.length;
    return {
      redis, routers, edges, stop,
      async addEdge(home, extraConfig) {
        // Its index is taken at once: edges added side by side get their own.
        const i = added++;
        const edge = await startEdge(i, home, extraConfig);
        edges[i] = edge;
        return edge;
      },
      async killRouter(i) {
        await routers[i].proc.kill();
        procs.delete(routers[i].proc);
      },
      async restartRouter(i) {
        routers[i] = await startRouter(routers[i].name, routers[i].port);
        await waitForPeers(routers[i], routers.length - 1, timeoutMs);
      },
      async killEdge(i) {
        await edges[i].proc.kill();
        procs.delete(edges[i].proc);
      },
      async reloadEdges(text) {
        edgeConfig = text;
        await Promise.all(edges.map(async (e, i) => {
          await writeEdgeConfig(i);
          const line = await reload(e.proc, timeoutMs);
          if (!/Reloaded: /.test(line)) throw new Error(`${e.name}: ${line}`);
        }));
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * Waits until router `r` has linked to `peers` distinct peer routers (they find each other in
 * Redis within a heartbeat, about 1 s): before that, interest on one router is unknown to the
 * others, and a test's first message could be routed nowhere.
 */
export async function waitForPeers(r: ClusterRouter, peers: number, timeoutMs: number, since = 0): Promise<void> {
  const seen = new Set<string>();
  let from = since;
  while (seen.size < peers) {
    await r.proc.waitForLine(MESH_LINKED, timeoutMs, { since: from });
    for (; from < r.proc.lines.length; from++) {
      const m = MESH_LINKED.exec(r.proc.lines[from].text);
      if (m) seen.add(m[1]);
    }
  }
}
