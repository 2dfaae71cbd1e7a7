// The benchmark cases. Each names its payload size; each row of the report is one metric.
import { measureInterest } from "./interest.js";
import { holdIdle, runLoadgen } from "./loadgen.js";
import { cpuSeconds, HOST, rssKB, untilQuiet, type NodePorts, type RunningServer } from "./servers.js";
import { STORM_USER, type Listener, type ServerKind } from "./slots.js";

export type Better = "higher" | "lower";

/** A goal for meshbroker: its figure divided by `vs`'s is at least (higher is better) or at
 * most (lower is better) `ratio`. */
export interface Target {
  readonly vs: ServerKind;
  readonly ratio: number;
}

export interface Metric {
  /** Row name in the report, payload size included. */
  readonly name: string;
  readonly better: Better;
  format(v: number): string;
  readonly targets?: readonly Target[];
  /** An absolute goal for meshbroker's figure: at most (lower is better) or at least this. */
  readonly limit?: number;
}

export interface RoundResult {
  /** One value per metric, in `metrics` order. */
  readonly values: number[];
  /** Extra figures for the per-round details. */
  readonly detail: string;
}

export interface CaseContext {
  readonly loadgen: string;
  readonly server: RunningServer;
  /** Multiplies message counts (`--scale`). */
  readonly scale: number;
}

export interface BenchCase {
  readonly id: string;
  readonly aliases: readonly string[];
  /** What the load generator connects to; decides each server's command and config (slots.ts). */
  readonly listener: Listener;
  /** Columns, meshbroker first; each ratio is meshbroker's figure over the other's. */
  readonly servers: readonly ServerKind[];
  /** A cluster case: the meshbroker and nats-server columns are two-node clusters (cluster.ts),
   *  an "embedded" column runs the same load on one meshbroker process. */
  readonly cluster?: boolean;
  readonly metrics: readonly Metric[];
  /** What a value means, for the report. */
  readonly measure: string;
  /** Memory cases need a fresh process each round: memory freed by an earlier round is reused. */
  readonly freshServerPerRound: boolean;
  /** Each server runs one round first that is reported but not counted: meshbroker's first
   *  few hundred thousand messages (a cluster's first requests) run before V8 has optimised the
   *  message path (2-3x the CPU per message of later rounds), a start-up cost, not the throughput
   *  or latency of a running broker. */
  readonly warmupRound?: boolean;
  round(ctx: CaseContext): Promise<RoundResult>;
}

const PAYLOAD = 128;

export function formatRate(v: number): string {
  if (v >= 1e6) return `${(v / 1e6).toFixed(2)}M msgs/s`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(1)}k msgs/s`;
  return `${v.toFixed(0)} msgs/s`;
}

const formatMicros = (v: number): string => `${v.toFixed(1)} µs`;

const REQUESTS = 5000;
const WARMUP = 500;
// p99.9 wants a few dozen samples above it
const REQUESTS_MANY = 32_000;
const WARMUP_MANY = 100;
const IDLE_CONNS = 1000;

function scaled(count: number, scale: number): string {
  return String(Math.max(1, Math.round(count * scale)));
}

function base(port: number): string[] {
  return ["--host", HOST, "--port", String(port), "--size", String(PAYLOAD)];
}

const NATS_PAIR: readonly ServerKind[] = ["meshbroker", "nats-server"];
const MQTT_TRIO: readonly ServerKind[] = ["meshbroker", "nats-server", "mosquitto"];
// nats-server 2.9 speaks MQTT 3.1.1 only (it refuses a level 5 CONNECT with CONNACK code 1).
const MQTT5_PAIR: readonly ServerKind[] = ["meshbroker", "mosquitto"];
const CLUSTER_NATS: readonly ServerKind[] = ["meshbroker", "nats-server", "embedded"];
// nats-server's MQTT needs JetStream, which its cluster here does not run; mosquitto has no cluster.
const CLUSTER_MQTT: readonly ServerKind[] = ["meshbroker", "embedded"];
const CLUSTER_MQTT_TEXT = "; no nats-server column: its MQTT needs JetStream, which the bench's nats-server cluster does not run";

function portOf(node: NodePorts, listener: Listener): number | undefined {
  return listener === "nats" || listener === "nats-tls" ? node.port
    : listener === "mqtt" || listener === "mqtt-tls" ? node.mqttPort : node.wsPort;
}

/** The server's port for `listener`; a cluster's is node 1's. */
function listenerPort(server: RunningServer, listener: Listener): number {
  const port = portOf(server, listener);
  if (!port) throw new Error(`${server.label} has no ${listener} port`);
  return port;
}

/** loadgen CPU as a share of one core over the run: far below 100% means it was not the limit. */
function loadgenCpu(r: Record<string, unknown>): string {
  return `loadgen CPU ${((100 * (r.cpu_s as number)) / (r.elapsed_s as number)).toFixed(0)}%`;
}

/**
 * Where a cluster case's subscribers (and responder) connect: "remote" all on the second node
 * (the publisher is on the first), "spread" alternating over both nodes.
 */
type Placement = "remote" | "spread";

/** loadgen's --sub-ports for a cluster; none on one server (a cluster case's embedded column). */
function subPorts(server: RunningServer, placement: Placement, listener: Listener = "nats"): string[] {
  if (!server.nodes) return [];
  const ports = server.nodes.map((n) => portOf(n, listener));
  if (ports.length < 2 || !ports.every((p) => p)) throw new Error(`${server.label}: not a cluster with ${listener} on each node`);
  return ["--sub-ports", (placement === "remote" ? ports.slice(1) : ports).join(",")];
}

/** A cluster's processes, or the one of a single server. */
function processesOf(server: RunningServer): readonly { readonly name: string; readonly pid: number }[] {
  return server.processes ?? [{ name: server.label, pid: server.pid }];
}

/** CPU seconds each of the server's processes used so far. */
function cpuSamples(server: RunningServer): number[] {
  return processesOf(server).map((p) => cpuSeconds(p.pid));
}

/**
 * The server's CPU time per unit (a published message, a request) since `start` (cpuSamples()
 * before the run), per process and summed: "; CPU/msg r1 2.1, … = 10.2 µs". Load-robust where
 * rates are not on a shared machine: it counts what the processes did, not when they ran.
 */
function cpuPer(unit: string, server: RunningServer, start: number[], count: number): string {
  const procs = processesOf(server);
  if (count === 0) return "";
  const us = procs.map((p, i) => ((cpuSeconds(p.pid) - start[i]) * 1e6) / count);
  const sum = us.reduce((a, b) => a + b, 0);
  const total = procs.length > 1 ? ` = ${sum.toFixed(1)}` : "";
  return `; CPU/${unit} ${procs.map((p, i) => `${p.name} ${us[i].toFixed(1)}`).join(", ")}${total} µs`;
}

const PLACEMENT_TEXT: Record<Placement, string> = {
  remote: "; cluster: publisher on node 1, subscribers on node 2 (meshbroker: edges homed on different routers)",
  spread: "; cluster: publisher on node 1, subscribers alternating over nodes 1 and 2",
};

function pubsubCase(
  id: string,
  aliases: string[],
  name: string,
  subs: number,
  queue: boolean,
  count: number,
  listener: Listener = "nats",
  targets?: readonly Target[],
  placement?: Placement,
): BenchCase {
  const transport = listener === "nats" ? [] : ["--transport", listener];
  return {
    id,
    aliases,
    listener,
    servers: placement ? CLUSTER_NATS : NATS_PAIR,
    cluster: placement !== undefined,
    metrics: [{ name, better: "higher", format: formatRate, targets }],
    measure:
      `${count} published; messages received per second, summed over ${subs} subscriber(s), ` +
      "from the first publish to the last receive" +
      (listener === "ws"
        ? "; NATS over WebSocket (binary frames, ~64 KB per publisher frame)"
        : listener === "ws-deflate"
          ? "; NATS over WebSocket with permessage-deflate, no context takeover, both directions"
          : "") +
      (placement ? PLACEMENT_TEXT[placement] : ""),
    freshServerPerRound: false,
    warmupRound: true,
    async round({ loadgen, server, scale }) {
      const args = ["pubsub", ...base(listenerPort(server, listener)), ...transport];
      args.push("--subs", String(subs), "--count", scaled(count, scale));
      if (queue) args.push("--queue", "q");
      if (placement) args.push(...subPorts(server, placement, listener));
      const cpu = cpuSamples(server);
      const r = await runLoadgen(loadgen, args);
      const recv = r.recv_rate as number;
      const pub = r.pub_rate as number;
      let detail = `recv ${formatRate(recv)}, pub ${formatRate(pub)}, ${loadgenCpu(r)}`;
      if (listener === "ws" || listener === "ws-deflate") detail += `; ${wsDetail(r)}`;
      if (placement && server.nodes) detail += `; interest probe ${((r.probe_s as number) * 1000).toFixed(0)} ms, per sub [${(r.per_sub as number[]).join(",")}]`;
      detail += cpuPer("msg", server, cpu, Number(scaled(count, scale)));
      return { values: [recv], detail };
    },
  };
}

const mb = (bytes: number): string => `${(bytes / 1048576).toFixed(1)} MB`;

/** WebSocket traffic as the subscribers saw it: shows whether the server compressed. */
function wsDetail(r: Record<string, unknown>): string {
  const n = (k: string): number => r[k] as number;
  return (
    `in ${n("ws_msgs_in")} ws msgs, ${n("ws_compressed_in")} deflated, wire ${mb(n("ws_wire_in"))} of ${mb(n("ws_data_in"))}; ` +
    `out wire ${mb(n("ws_wire_out"))} of ${mb(n("ws_data_out"))}`
  );
}

// MQTT flow control: how many published messages may be outstanding (not yet received by every
// subscriber). mosquitto 2.0 drops messages for a client once max_queued_messages (1000)
// packets wait for it. At QoS 1 every message beyond the 20 in flight waits in that queue, so
// the window is 1000: nothing can be dropped. At QoS 0 a message only waits there while the
// socket toward the subscriber is full, and the subscriber reads continuously; 2000 keeps
// mosquitto's queue short (no drops seen even at 20000) while avoiding the stop-and-go of a
// window smaller than two batches. A drop would fail the round (the delivery count must be
// exact), not skew it. meshbroker's and nats-server's limits (max_pending, 64 MB) are far away.
const MQTT_WINDOW = { 0: 2000, 1: 1000 } as const;
const MQTT_INFLIGHT = 1000;

/** MQTT protocol level on the wire: 4 is 3.1.1, 5 is MQTT 5 (loadgen --mqtt-version). */
type MqttVersion = 4 | 5;

function mqttCase(
  id: string,
  aliases: string[],
  qos: 0 | 1,
  subs: number,
  count: number,
  targets?: readonly Target[],
  version: MqttVersion = 4,
  placement?: Placement,
): BenchCase {
  const v5 = version === 5;
  const name = `${placement ? "cluster " : ""}mqtt${v5 ? "5" : ""} QoS${qos} ${PAYLOAD}B ${subs === 1 ? "1:1" : `fan-out 1→${subs}`}` +
    (placement === "remote" ? " across nodes" : "");
  return {
    id,
    aliases,
    listener: "mqtt",
    servers: placement ? CLUSTER_MQTT : v5 ? MQTT5_PAIR : MQTT_TRIO,
    cluster: placement !== undefined,
    metrics: [{ name, better: "higher", format: formatRate, targets }],
    measure:
      `${v5 ? "MQTT 5 (empty property blocks)" : "MQTT 3.1.1"}, ${count} PUBLISH at QoS ${qos} to topic "bench", ${subs} subscriber(s) at QoS ${qos}` +
      (qos === 1
        ? ` acknowledging each delivery, the publisher awaiting PUBACK with up to ${MQTT_INFLIGHT} packet ids in flight` +
          (v5 ? " (fewer if the server's CONNACK Receive Maximum is lower: mosquitto's is 20)" : "")
        : "") +
      `; messages received per second, summed over subscribers (at most ${MQTT_WINDOW[qos]} published ahead of delivery)` +
      (v5 ? "; no nats-server column: nats-server 2.9 refuses MQTT 5 connections" : "") +
      (placement ? PLACEMENT_TEXT[placement] + CLUSTER_MQTT_TEXT : ""),
    freshServerPerRound: false,
    warmupRound: true,
    async round({ loadgen, server, scale }) {
      const args = ["mqtt", ...base(listenerPort(server, "mqtt")), "--qos", String(qos), "--mqtt-version", String(version)];
      args.push("--subs", String(subs), "--count", scaled(count, scale), "--window", String(MQTT_WINDOW[qos]));
      args.push("--inflight", String(MQTT_INFLIGHT));
      if (placement) args.push(...subPorts(server, placement, "mqtt"));
      const cpu = placement ? cpuSamples(server) : [];
      const r = await runLoadgen(loadgen, args);
      const recv = r.recv_rate as number;
      const pub = r.pub_rate as number;
      const inflight = qos === 1 ? `, ${r.inflight as number} in flight` : "";
      let detail = `recv ${formatRate(recv)}, pub ${formatRate(pub)}${inflight}, ${loadgenCpu(r)}`;
      if (placement && server.nodes) detail += `; interest probe ${((r.probe_s as number) * 1000).toFixed(0)} ms`;
      if (placement) detail += cpuPer("msg", server, cpu, Number(scaled(count, scale)));
      return { values: [recv], detail };
    },
  };
}

/** Requests in flight at once: one per requester connection, each sequential. */
function reqrepCase(id: string, aliases: string[], prefix: string, cluster: boolean, targets?: readonly Target[], requesters = 1): BenchCase {
  const many = requesters > 1;
  const [count, warmup] = many ? [REQUESTS_MANY, WARMUP_MANY] : [REQUESTS, WARMUP];
  const latency = (q: string, last?: readonly Target[]): Metric =>
    ({ name: `${prefix} ${PAYLOAD}B ${q}`, better: "lower", format: formatMicros, targets: last });
  return {
    id,
    aliases,
    listener: "nats",
    servers: cluster ? CLUSTER_NATS : NATS_PAIR,
    cluster,
    metrics: many ? [latency("p50"), latency("p99"), latency("p99.9", targets)] : [latency("p50"), latency("p99", targets)],
    measure:
      (many
        ? `${requesters} requesters (a connection each), each sending sequential requests, ${count} in all after ${warmup} warm-up each, to one responder`
        : `${count} sequential requests after ${warmup} warm-up`) +
      "; round-trip latency" +
      (cluster ? `; cluster: requester${many ? "s" : ""} on node 1, responder on node 2 (meshbroker: edges homed on different routers)` : ""),
    freshServerPerRound: false,
    // V8 takes rounds, not the in-round warm-up, to reach a steady CPU per request: the cluster's
    // four processes 1,470 -> 870 -> 1,180 -> 910 -> 670 -> 620 us over six rounds of creqrep, one
    // node 145 -> 96 -> 65 us over three of reqrep (p99.9 3.5 -> 2.9 -> 0.6 ms).
    warmupRound: true,
    async round({ loadgen, server, scale }) {
      const cpu = cpuSamples(server);
      const r = await runLoadgen(loadgen, [
        "reqrep", ...base(server.port), "--subject", "req", "--count", scaled(count, scale), "--warmup", String(warmup),
        "--requesters", String(requesters), ...(cluster ? subPorts(server, "remote") : []),
      ]);
      const [p50, p99, p999] = [r.p50_us as number, r.p99_us as number, r.p999_us as number];
      return {
        values: many ? [p50, p99, p999] : [p50, p99],
        detail: `p50 ${formatMicros(p50)}, p99 ${formatMicros(p99)}, p99.9 ${formatMicros(p999)}, mean ${formatMicros(r.mean_us as number)}, ` +
          `max ${formatMicros(r.max_us as number)}, ${(r.rate as number).toFixed(0)} req/s` +
          cpuPer("req", server, cpu, Number(scaled(count, scale)) + warmup * requesters),
      };
    },
  };
}

const INTEREST_SUBS = 100_000;

function interestCase(): BenchCase {
  return {
    id: "cinterest",
    aliases: ["cluster-interest", "interest"],
    listener: "nats",
    // no embedded column: on one process there is no interest to carry between nodes
    servers: NATS_PAIR,
    cluster: true,
    metrics: [
      { name: `cluster interest for ${INTEREST_SUBS / 1000}k subscriptions`, better: "lower", format: (ms) => `${ms.toFixed(0)} ms`, limit: 1000 },
    ],
    measure:
      `one client on node 2 writes ${INTEREST_SUBS} SUBs (distinct subjects) then PING; time from its PONG to the first ` +
      `message a client on node 1 publishes (every millisecond) on the last subject reaching it; fresh cluster each round`,
    freshServerPerRound: true,
    async round({ server }) {
      const nodes = server.nodes;
      if (!nodes || nodes.length < 2) throw new Error(`${server.label} is not a cluster (one client port)`);
      const r = await measureInterest(nodes[1].port, nodes[0].port, INTEREST_SUBS, 30_000);
      return { values: [r.reachMs], detail: `reached node 1 ${r.reachMs.toFixed(0)} ms after the PONG; SUBs flushed in ${r.flushMs.toFixed(0)} ms` };
    },
  };
}

type ClientListener = "nats" | "ws" | "mqtt" | "nats-tls" | "ws-tls" | "mqtt-tls";

const plain = (l: ClientListener): "nats" | "ws" | "mqtt" => (l === "nats-tls" ? "nats" : l === "ws-tls" ? "ws" : l === "mqtt-tls" ? "mqtt" : l);
const withTls = (l: ClientListener): boolean => l.endsWith("-tls");

/** loadgen arguments of an idle mode (idle / mqttidle) for a listener; --conns comes after. */
function idleArgs(server: RunningServer, listener: ClientListener): string[] {
  const p = plain(listener);
  return [p === "mqtt" ? "mqttidle" : "idle", "--host", HOST, "--port", String(listenerPort(server, listener)),
    ...(p === "ws" ? ["--transport", "ws"] : []), ...(withTls(listener) ? ["--tls", "1"] : [])];
}

const HANDSHAKE: Record<"nats" | "ws" | "mqtt", string> = {
  nats: "NATS over TCP: INFO, CONNECT + PING, PONG",
  ws: "NATS over WebSocket: HTTP upgrade, INFO, CONNECT + PING, PONG (one binary frame each way)",
  mqtt: "MQTT 3.1.1: CONNECT (clean session), CONNACK",
};

/** The handshake of a listener's clients, for a case's description. */
function handshake(l: ClientListener): string {
  return HANDSHAKE[plain(l)] + (l === "nats-tls" ? "; TLS after the INFO (ECDSA P-256 certificate)"
    : withTls(l) ? "; TLS first (ECDSA P-256 certificate)" : "");
}

/** What every case of a client listener starts with: MQTT cases add mosquitto, and Node's floor
 *  (the handshakes alone, node-floor.ts) runs beside them; on a cluster (clients on node 1: one
 *  edge of meshbroker's) the embedded column comes instead. */
function clientCase(id: string, aliases: string[], listener: ClientListener, cluster: boolean): Pick<BenchCase, "id" | "aliases" | "listener" | "servers" | "cluster"> {
  const mqtt = plain(listener) === "mqtt";
  if (cluster) return { id, aliases, listener, cluster, servers: mqtt ? CLUSTER_MQTT : CLUSTER_NATS };
  return { id, aliases, listener, cluster, servers: [...(mqtt ? MQTT_TRIO : NATS_PAIR), "node"] };
}

/** A row label: NATS, ws or MQTT, and "+TLS"; "cluster …" on a cluster. */
function clientLabel(l: ClientListener, cluster: boolean): string {
  const p = plain(l);
  const label = (p === "mqtt" ? "MQTT" : p === "ws" ? "ws" : "NATS") + (withTls(l) ? "+TLS" : "");
  return cluster ? `cluster ${label}` : label;
}

const CLUSTER_CLIENT_TEXT =
  "; cluster: every client on node 1 (meshbroker: one edge, attached to its router), the figure is that process's; " +
  "the details give each process's share";

/** Idle connections are held in IDLE_BURSTS bursts of IDLE_CONNS; the slope is taken over the later ones. */
const IDLE_BURSTS = 4;

/**
 * Holds `bursts` loadgen processes of `conns` idle connections each, one after another, and reads
 * the server's RSS after each burst is set up (all earlier ones still held).
 */
async function rssPerBurst(loadgen: string, args: string[], conns: number, bursts: number, pids: readonly number[]): Promise<number[][]> {
  const rss: number[][] = [];
  const hold = async (left: number): Promise<void> => {
    if (left === 0) return;
    await holdIdle(loadgen, [...args, "--conns", String(conns)], async () => {
      rss.push(pids.map(rssKB));
      await hold(left - 1);
    });
  };
  await hold(bursts);
  return rss;
}

function idleCase(id: string, aliases: string[], listener: ClientListener, limitKiB?: number, cluster = false): BenchCase {
  const label = clientLabel(listener, cluster);
  const later = IDLE_BURSTS / 2;
  return {
    ...clientCase(id, aliases, listener, cluster),
    metrics: [
      { name: `RSS per idle ${label} conn${cluster ? " (node 1)" : ""}`, better: "lower", format: (kb) => `${kb.toFixed(1)} KiB`, limit: limitKiB },
    ],
    measure:
      `server RSS (VmRSS, process and descendants) with idle connections (${handshake(listener)}) opened in ` +
      `${IDLE_BURSTS} bursts of ${IDLE_CONNS}, all held: the growth over the last ${later} bursts divided by their ` +
      `${later * IDLE_CONNS} connections (steady state: one-time growth such as V8's young generation lands in the ` +
      "first bursts); fresh server each round" + (cluster ? CLUSTER_CLIENT_TEXT : ""),
    freshServerPerRound: true,
    async round({ loadgen, server }) {
      // the server's process first, then a cluster's processes (node 1's among them)
      const procs = server.processes ?? [];
      const rss = await rssPerBurst(loadgen, idleArgs(server, listener), IDLE_CONNS, IDLE_BURSTS, [server.pid, ...procs.map((p) => p.pid)]);
      const perConn = (k: number): number => (rss[IDLE_BURSTS - 1][k] - rss[later - 1][k]) / (later * IDLE_CONNS);
      let detail = `RSS after each burst ${rss.map((kb) => `${(kb[0] / 1024).toFixed(1)}`).join(" → ")} MB`;
      if (procs.length) detail += `; per conn ${procs.map((p, k) => `${p.name} ${perConn(k + 1).toFixed(2)}`).join(", ")} KiB`;
      return { values: [perConn(0)], detail };
    },
  };
}

/** Clients per round (fewer with TLS, whose handshakes cost ~10× more), and warm-up connections. */
const CONNECTS = 5000;
const TLS_CONNECTS = 1000;
const CONNECTS_WARMUP = 500;
/** Handshakes in flight at once (loadgen threads, each one connection at a time). */
const CONNECTS_PARALLEL = 4;

function connectsCase(id: string, aliases: string[], listener: ClientListener, targets: readonly Target[], cluster = false): BenchCase {
  const label = clientLabel(listener, cluster);
  const clients = withTls(listener) ? TLS_CONNECTS : CONNECTS;
  const warmup = Math.min(CONNECTS_WARMUP, clients / 5);
  return {
    ...clientCase(id, aliases, listener, cluster),
    metrics: [
      { name: `${label} connects/s (${clients / 1000}k clients)`, better: "higher", format: (v) => `${v.toFixed(0)} conns/s`, targets },
      { name: `${label} ${cluster ? "node 1" : "server"} CPU per connect`, better: "lower", format: (v) => `${v.toFixed(0)} µs` },
    ],
    measure:
      `${clients} clients, ${CONNECTS_PARALLEL} handshakes in flight (${handshake(listener)}), each staying connected until ` +
      `the last is set up; connections per second from the first connect to the last handshake, and the server's CPU ` +
      `time (user + system, /proc, read before they close) divided by their number; after a warm-up of ${warmup} connections` +
      (cluster ? CLUSTER_CLIENT_TEXT : ""),
    freshServerPerRound: false,
    // As request/reply: the in-round warm-up is too short for V8 (ws connects, server CPU per
    // connect over five rounds of one server: 362, 226, 174, 244, 238 us).
    warmupRound: true,
    async round({ loadgen, server }) {
      const args = [...idleArgs(server, listener), "--parallel", String(CONNECTS_PARALLEL)];
      await holdIdle(loadgen, [...args, "--conns", String(warmup)], () => undefined);
      // The warm-up connections' closes are not charged either.
      await untilQuiet(server);
      const cpu0 = cpuSeconds(server.pid);
      const each0 = server.processes ? cpuSamples(server) : [];
      // CPU read while the connections are held: their closing is not charged.
      const { held, result: r } = await holdIdle(loadgen, [...args, "--conns", String(clients)],
        () => ({ cpu1: cpuSeconds(server.pid), each: server.processes ? cpuPer("connect", server, each0, clients) : "" }));
      const cpuUs = ((held.cpu1 - cpu0) * 1e6) / clients;
      const rate = r.connects_per_s as number;
      return { values: [rate, cpuUs], detail: `${rate.toFixed(0)} conns/s, server CPU ${cpuUs.toFixed(0)} µs per connect${held.each}` };
    },
  };
}

/** The connection storm: clients connecting at once, as after an edge drain. */
const STORM_CLIENTS = 10_000;
const STORM_PARALLEL = 64;

/**
 * 10,000 clients (NATS, WebSocket, MQTT in turn; user and password; TLS or none) connect and
 * subscribe, 64 handshakes in flight, then one message must reach every one. `mqttOnly`: the
 * storm's MQTT third alone, so that mosquitto can be compared too.
 */
function stormCase(id: string, aliases: string[], tls: boolean, mqttOnly: boolean): BenchCase {
  const clients = mqttOnly ? Math.ceil(STORM_CLIENTS / 3) : STORM_CLIENTS;
  const what = `${mqttOnly ? "MQTT " : ""}storm ${clients / 1000}k${tls ? " TLS" : ""}`;
  const ms = (v: number): string => `${v.toFixed(0)} ms`;
  return {
    id,
    aliases,
    listener: tls ? "storm-tls" : "storm",
    servers: mqttOnly ? MQTT_TRIO : NATS_PAIR,
    metrics: [
      { name: `${what}: all subscribed`, better: "lower", format: ms },
      { name: `${what}: a message reaches all`, better: "lower", format: ms },
    ],
    measure:
      `${clients} clients (${mqttOnly ? "MQTT 3.1.1" : "NATS over TCP, NATS over WebSocket and MQTT 3.1.1 in turn"}; ` +
      `user and password${tls ? "; TLS with an ECDSA P-256 certificate" : ""}), ${STORM_PARALLEL} at a time, each ` +
      "connecting and subscribing (SUB + PING/PONG, SUBSCRIBE/SUBACK QoS 0), all held; time from the first connect until " +
      `every one is subscribed, then from one more client's publish (${mqttOnly ? "MQTT" : "NATS over TCP"}) until every ` +
      "subscriber got the message; fresh server each round",
    freshServerPerRound: true,
    async round({ loadgen, server }) {
      const mosquitto = server.port === 0;
      const args = ["storm", "--host", HOST, "--conns", String(clients), "--parallel", String(STORM_PARALLEL),
        "--mix", mqttOnly ? "mqtt" : "nats,ws,mqtt", "--user", STORM_USER.user, "--pass", STORM_USER.pass,
        "--mqtt-port", String(listenerPort(server, "mqtt")), ...(tls ? ["--tls", "1"] : [])];
      if (!mosquitto) args.push("--port", String(server.port), "--ws-port", String(listenerPort(server, "ws")));
      const r = await runLoadgen(loadgen, args, 300_000);
      const [sub, reach] = [(r.subscribed_s as number) * 1000, (r.reach_s as number) * 1000];
      return { values: [sub, reach], detail: `all subscribed after ${ms(sub)}, the message reached all ${ms(reach)} after its publish` };
    },
  };
}

export const CASES: readonly BenchCase[] = [
  pubsubCase("pub", ["1:1", "pubsub", "pub1"], `pub ${PAYLOAD}B 1:1`, 1, false, 500_000),
  pubsubCase("fanout", ["fan-out", "fanout8"], `pub ${PAYLOAD}B fan-out 1→8`, 8, false, 100_000),
  pubsubCase("queue", ["qgroup", "queue4"], `pub ${PAYLOAD}B queue group x4`, 4, true, 500_000, "nats",
    [{ vs: "nats-server", ratio: 1.0 }]),
  reqrepCase("reqrep", ["req", "latency"], "req/rep", false, [{ vs: "nats-server", ratio: 1.0 }]),
  reqrepCase("reqrep16", ["req16", "reqrep-16"], "req/rep 16 requesters", false, [{ vs: "nats-server", ratio: 1.0 }], 16),
  idleCase("idle", ["rss", "memory", "conns"], "nats"),
  pubsubCase("ws", ["websocket", "ws-pub"], `ws pub ${PAYLOAD}B 1:1`, 1, false, 500_000, "ws", [
    { vs: "nats-server", ratio: 0.5 },
  ]),
  pubsubCase("wsdeflate", ["ws-deflate", "wscompress", "ws+deflate"], `ws+deflate pub ${PAYLOAD}B 1:1`, 1, false, 1_000_000, "ws-deflate", [
    { vs: "nats-server", ratio: 0.9 },
  ]),
  mqttCase("mqtt0", ["mqtt", "mqttqos0", "mqtt-qos0"], 0, 1, 200_000,
    [{ vs: "nats-server", ratio: 1.0 }, { vs: "mosquitto", ratio: 1.0 }]),
  mqttCase("mqtt1", ["mqttqos1", "mqtt-qos1"], 1, 1, 50_000, [{ vs: "nats-server", ratio: 1.0 }]),
  mqttCase("mqtt5qos0", ["mqtt5", "mqtt5-qos0"], 0, 1, 200_000, [{ vs: "mosquitto", ratio: 1.0 }], 5),
  mqttCase("mqtt5qos1", ["mqtt5-qos1"], 1, 1, 50_000, [{ vs: "mosquitto", ratio: 1.0 }], 5),
  mqttCase("mqttfanout", ["mqtt-fanout", "mqttfanout8"], 0, 8, 100_000, [{ vs: "mosquitto", ratio: 1.0 }]),
  idleCase("wsidle", ["ws-idle", "wsrss"], "ws"),
  idleCase("mqttidle", ["mqtt-idle", "mqttrss"], "mqtt", 4),
  connectsCase("connects", ["nats-connects", "connect"], "nats", [{ vs: "nats-server", ratio: 1.0 }]),
  connectsCase("wsconnects", ["ws-connects"], "ws", [{ vs: "nats-server", ratio: 1.0 }]),
  connectsCase("mqttconnects", ["mqtt-connects"], "mqtt", [{ vs: "mosquitto", ratio: 1.0 }]),
  connectsCase("tlsconnects", ["nats-tls-connects"], "nats-tls", [{ vs: "nats-server", ratio: 1.0 }]),
  connectsCase("wstlsconnects", ["ws-tls-connects"], "ws-tls", [{ vs: "nats-server", ratio: 1.0 }]),
  connectsCase("mqtttlsconnects", ["mqtt-tls-connects"], "mqtt-tls", [{ vs: "mosquitto", ratio: 1.0 }]),
  idleCase("tlsidle", ["nats-tls-idle"], "nats-tls"),
  idleCase("wstlsidle", ["ws-tls-idle"], "ws-tls"),
  idleCase("mqtttlsidle", ["mqtt-tls-idle"], "mqtt-tls"),
  stormCase("storm", ["connection-storm"], false, false),
  stormCase("stormtls", ["storm-tls"], true, false),
  stormCase("mqttstorm", ["mqtt-storm"], false, true),
  stormCase("mqttstormtls", ["mqtt-storm-tls"], true, true),
  // Cluster cases: two nodes; meshbroker's are two edges homed on two routers (cluster.ts), and
  // the same load on one meshbroker process is the "embedded" column.
  pubsubCase("cpub", ["cluster-pub", "cluster-1:1"], `cluster pub ${PAYLOAD}B 1:1 across nodes`, 1, false, 200_000, "nats",
    [{ vs: "nats-server", ratio: 0.5 }], "remote"),
  pubsubCase("cfanout", ["cluster-fanout"], `cluster pub ${PAYLOAD}B fan-out 1→8 over both nodes`, 8, false, 50_000, "nats",
    undefined, "spread"),
  pubsubCase("cqueue", ["cluster-queue"], `cluster pub ${PAYLOAD}B queue group x4 over both nodes`, 4, true, 200_000, "nats",
    undefined, "spread"),
  reqrepCase("creqrep", ["cluster-reqrep"], "cluster req/rep across nodes", true, [{ vs: "nats-server", ratio: 3 }]),
  reqrepCase("creqrep16", ["cluster-reqrep16"], "cluster req/rep 16 requesters across nodes", true, [{ vs: "nats-server", ratio: 1.0 }], 16),
  interestCase(),
  // issue #14's cases on the cluster; the targets are the embedded cases' where their reference runs
  pubsubCase("cwsdeflate", ["cluster-wsdeflate"], `cluster ws+deflate pub ${PAYLOAD}B 1:1 across nodes`, 1, false, 200_000, "ws-deflate",
    [{ vs: "nats-server", ratio: 0.5 }], "remote"),
  mqttCase("cmqtt0", ["cluster-mqtt0", "cluster-mqtt"], 0, 1, 200_000, undefined, 4, "remote"),
  connectsCase("cconnects", ["cluster-connects"], "nats", [{ vs: "nats-server", ratio: 1.0 }], true),
  connectsCase("cwsconnects", ["cluster-wsconnects"], "ws", [{ vs: "nats-server", ratio: 1.0 }], true),
  connectsCase("cmqttconnects", ["cluster-mqttconnects"], "mqtt", [], true),
  idleCase("cmqttidle", ["cluster-mqttidle"], "mqtt", 4, true),
];

const isStorm = (c: BenchCase): boolean => c.listener === "storm" || c.listener === "storm-tls";

/** What a run without --case measures: every case but the storms, which take minutes each
 *  (`make bench-storm`, `--case storms`). */
export const DEFAULT_CASES: readonly BenchCase[] = CASES.filter((c) => !isStorm(c));

/** The case named (id or alias), or a group: every cluster case for "cluster", every storm
 *  case for "storms". */
export function findCases(name: string): BenchCase[] {
  const n = name.toLowerCase();
  if (n === "cluster") return CASES.filter((c) => c.cluster);
  if (n === "storms") return CASES.filter(isStorm);
  return CASES.filter((c) => c.id === n || c.aliases.includes(n));
}
