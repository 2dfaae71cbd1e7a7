// Starts meshbroker for a test: in-process, on port 0, with the given config text.
// Every protocol test runs against each topology in `topologies`: embedded (direct calls) and
// serialised (every link call encoded with the wire codec, answered on a later turn). Suites that
// need only client ports also run on `cluster` (processes: redis-server, a router, 2 edges;
// test/helpers/cluster.ts) through startTarget, their clients spread over the edges.
import { loadConfigText } from "../../services/common/config/index.js";
import { Logger, silentLogger } from "../../services/common/log.js";
import { startEmbedded, type EmbeddedBroker, type Topology } from "../../services/embedded.js";
import { startCluster, type ClusterEdge, type TestCluster } from "./cluster.js";
import { ownEdges, reloadedCluster, roundRobin, sharedCluster } from "./shared-cluster.js";

export type { Topology };
export const topologies: Topology[] = ["embedded", "serialised"];
/** The topologies MQTT tests run on (every one: the session service sits behind the link). */
export const mqttTopologies: Topology[] = topologies;

export interface TestBroker {
  natsPort: number;
  httpPort: number | undefined;
  /** Set when the config has a `websocket {}` block (use `port: -1` there for a free port). */
  wsPort: number | undefined;
  /** Set when the config has an `mqtt {}` block (use `port: -1` there). */
  mqttPort: number | undefined;
  broker: EmbeddedBroker;
  /** Lines the broker logged (when `captureLog` was set). */
  log: string[];
  stop(): Promise<void>;
}

export interface StartOptions {
  topology?: Topology;
  /** NATS config text; `port` defaults to -1 (a free port) unless the text sets it. */
  config?: string;
  /** Start the monitoring listener on a free port. */
  monitoring?: boolean;
  captureLog?: boolean;
}

export async function startBroker(opts: StartOptions = {}): Promise<TestBroker> {
  let text = opts.config ?? "";
  if (!/^\s*(port|listen)\s*[:=\s]/m.test(text)) text = `port: -1\nhost: 127.0.0.1\n${text}`;
  if (opts.monitoring && !/^\s*(http_port|http|monitor_port)\s*[:=\s]/m.test(text)) text += "\nhttp: 127.0.0.1:-1\n";
  const { options } = loadConfigText(text, "test.conf", {});
  const lines: string[] = [];
  const log = opts.captureLog
    ? new Logger({ ...options.log, debug: true, logtime: false }, (l) => lines.push(l))
    : silentLogger();
  const broker = await startEmbedded(options, log, opts.topology ?? "embedded");
  return {
    natsPort: broker.natsPort,
    httpPort: broker.httpPort,
    wsPort: broker.wsPort,
    mqttPort: broker.mqttPort,
    broker,
    log: lines,
    stop: () => broker.stop(),
  };
}

/** A topology of the suites that need only client ports. */
export type SuiteTopology = Topology | "cluster";
export const clusterTopologies: SuiteTopology[] = [...topologies, "cluster"];

/** What such a suite needs: the NATS port of every edge (one, unless a cluster), and stop. */
export interface SuiteBroker {
  natsPort: number;
  /** Every edge's NATS port: a test spreads its clients over them. */
  natsPorts: number[];
  /** The next client's NATS port: round robin over natsPorts, from the first. */
  nextPort(): number;
  /** With `monitoring`: every edge's monitoring port, in the order of natsPorts. */
  httpPorts: number[];
  /** The cluster's processes (their logs, signals), on the cluster topology. */
  cluster?: TestCluster;
  stop(): Promise<void>;
}

/** startBroker, or a cluster of processes whose edges all get `config`. With `shared`, the
 *  tests of the file with the same config share the cluster (test/helpers/shared-cluster.ts; its
 *  stop() is then a no-op); "reload": every test of the file shares one cluster, its edges
 *  reloaded to the test's config; "edges": every test shares the routers and Redis, and gets
 *  edges of its own, stopped with it. */
export async function startTarget(opts: { topology: SuiteTopology; config?: string; shared?: boolean | "reload" | "edges"; monitoring?: boolean }): Promise<SuiteBroker> {
  if (opts.topology !== "cluster") {
    const b = await startBroker({ topology: opts.topology, config: opts.config, monitoring: opts.monitoring });
    const natsPorts = [b.natsPort];
    return { natsPort: b.natsPort, natsPorts, nextPort: roundRobin(natsPorts), httpPorts: b.httpPort === undefined ? [] : [b.httpPort], stop: b.stop };
  }
  // Without monitoring the key stays as before, so such files keep sharing one cluster per config.
  const clusterOpts = { edgeConfig: opts.config, ...(opts.monitoring ? { monitoring: true } : {}) };
  if (opts.shared === "edges") {
    const own = await ownEdges(clusterOpts);
    return clusterSuite(own.cluster, own.edges, own.stop);
  }
  const c = await (opts.shared === "reload" ? reloadedCluster : opts.shared ? sharedCluster : startCluster)(clusterOpts);
  return clusterSuite(c, c.edges, opts.shared ? async () => {} : c.stop);
}

/** The suite's view of a cluster: clients go to `edges`. */
function clusterSuite(cluster: TestCluster, edges: ClusterEdge[], stop: () => Promise<void>): SuiteBroker {
  const natsPorts = edges.map((e) => e.natsPort);
  const httpPorts = edges.flatMap((e) => (e.httpPort === undefined ? [] : [e.httpPort]));
  return { natsPort: natsPorts[0], natsPorts, nextPort: roundRobin(natsPorts), httpPorts, cluster, stop };
}
