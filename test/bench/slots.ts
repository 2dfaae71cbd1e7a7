// Which command and config each server runs, for each kind of listener a case measures.
//
// Placeholders, substituted by startServer: {host}, {config} (the file the config template is
// written to), {port} (NATS client port), {ws_port}, {mqtt_port} (each a free loopback port,
// allocated only when used), {store_dir} (a fresh empty directory), {tls_cert} and {tls_key} (a
// self-signed certificate for 127.0.0.1), {passwd_file} (mosquitto's, with the storm's user).
import { fileURLToPath } from "node:url";
import { MESH_CLUSTER_TEXT, NATS_CLUSTER_TEXT, startMeshCluster, startNatsCluster } from "./cluster.js";
import { parseCommand, type ServerSlot } from "./servers.js";

/** The servers a report can have a column for, meshbroker first. "embedded" is meshbroker as one
 *  process beside a cluster case's clusters: the same load, for the ratio cluster/embedded.
 *  "node" is Node's floor (node-floor.ts): the handshakes alone on Node's sockets, in the connect
 *  and idle cases. */
export type ServerKind = "meshbroker" | "nats-server" | "mosquitto" | "embedded" | "node";
export const SERVER_KINDS: readonly ServerKind[] = ["meshbroker", "nats-server", "mosquitto", "embedded", "node"];

const NODE_FLOOR = fileURLToPath(new URL("./node-floor.js", import.meta.url));

/** What a case talks to: NATS over TCP, NATS over WebSocket (plain or compressed), MQTT (3.1.1 or 5);
 *  NATS, WebSocket or MQTT with TLS (a self-signed certificate made for the run, {tls_cert} and
 *  {tls_key}). A cluster case (cluster.ts) has one of the first four on each node. */
export type Listener = "nats" | "ws" | "ws-deflate" | "mqtt" | "nats-tls" | "ws-tls" | "mqtt-tls" | "storm" | "storm-tls";

/** The connection storm's user (every listener requires it). */
export const STORM_USER = { user: "storm", pass: "s3cret-storm" };

export interface Binaries {
  /** BENCH_MESHBROKER_CMD, already split. */
  readonly meshCmd: readonly string[];
  /** Resolved on first use: a run without MQTT cases never needs mosquitto. */
  natsServer(): string;
  mosquitto(): string;
}

const NATS_BASE = "port: {port}\nhost: {host}\n";
const WS_BLOCK = "websocket {\n  port: {ws_port}\n  no_tls: true\n}\n";
const WS_DEFLATE_BLOCK = "websocket {\n  port: {ws_port}\n  no_tls: true\n  compression: true\n}\n";
const MQTT_BLOCK = "mqtt {\n  port: {mqtt_port}\n}\n";
// meshbroker needs no JetStream for MQTT; nats-server does (sessions and QoS 1 live in streams).
const MESH_MQTT = `${NATS_BASE}server_name: bench\n${MQTT_BLOCK}`;
const NATS_MQTT = `${NATS_BASE}server_name: bench\njetstream {\n  store_dir: "{store_dir}"\n}\n${MQTT_BLOCK}`;
const MOSQUITTO_MQTT = "listener {mqtt_port} {host}\nallow_anonymous true\n";
const TLS_FILES = 'cert_file: "{tls_cert}"\n  key_file: "{tls_key}"';
const TLS_BLOCK = `tls {\n  ${TLS_FILES}\n}\n`;
const WS_TLS_BLOCK = `websocket {\n  port: {ws_port}\n  tls {\n  ${TLS_FILES}\n  }\n}\n`;
const MESH_MQTT_TLS = `${NATS_BASE}server_name: bench\nmqtt {\n  port: {mqtt_port}\n  tls {\n  ${TLS_FILES}\n  }\n}\n`;
const NATS_MQTT_TLS = `${NATS_BASE}server_name: bench\njetstream {\n  store_dir: "{store_dir}"\n}\nmqtt {\n  port: {mqtt_port}\n  tls {\n  ${TLS_FILES}\n  }\n}\n`;
const MOSQUITTO_MQTT_TLS = "listener {mqtt_port} {host}\ncertfile {tls_cert}\nkeyfile {tls_key}\nallow_anonymous true\n";

/** The storm's server: NATS, WebSocket and MQTT listeners, one user, TLS on all three or none. */
function stormConfig(tls: boolean, jetstream: boolean): string {
  const t = tls ? `  tls {\n  ${TLS_FILES}\n  }\n` : "";
  return `${NATS_BASE}server_name: bench\n` + (tls ? TLS_BLOCK : "") +
    `authorization {\n  user: ${STORM_USER.user}\n  password: ${STORM_USER.pass}\n}\n` +
    (jetstream ? 'jetstream {\n  store_dir: "{store_dir}"\n}\n' : "") +
    `websocket {\n  port: {ws_port}\n${tls ? t : "  no_tls: true\n"}}\n` +
    `mqtt {\n  port: {mqtt_port}\n${t}}\n`;
}
// mosquitto takes a password file (mosquitto_passwd writes it; {passwd_file}).
const MOSQUITTO_STORM = "listener {mqtt_port} {host}\nallow_anonymous false\npassword_file {passwd_file}\n";

/** The config of a NATS, WebSocket or MQTT listener with TLS, as meshbroker and nats-server read it. */
function tlsConfig(listener: "nats-tls" | "ws-tls" | "mqtt-tls", mqtt: string): string {
  return listener === "nats-tls" ? NATS_BASE + TLS_BLOCK : listener === "ws-tls" ? NATS_BASE + WS_TLS_BLOCK : mqtt;
}

/** A cluster node's listener blocks beside its NATS port, per listener of a cluster case. */
const CLUSTER_LISTENERS: Partial<Record<Listener, string>> = { nats: "", ws: WS_BLOCK, "ws-deflate": WS_DEFLATE_BLOCK, mqtt: MQTT_BLOCK };

/** The two-node cluster of `run` (cluster.ts), its nodes listening for `listener`. */
function clusterSlot(label: ServerKind, run: ServerKind, listener: Listener, bins: Binaries): ServerSlot {
  const blocks = CLUSTER_LISTENERS[listener];
  if (blocks === undefined) throw new Error(`no cluster with ${listener} listeners`);
  const each = (text: string): string => (text ? `; each node: \`${text.replace(/\s+/g, " ").trim()}\`` : "");
  if (run === "meshbroker") {
    // the test cluster's edges take `port: -1` (a free port, read from their log)
    const edge = blocks.replace(/\{(ws|mqtt)_port\}/g, "-1");
    return { label, argv: [], start: () => startMeshCluster(edge), describe: MESH_CLUSTER_TEXT + each(edge) };
  }
  if (run === "nats-server" && listener !== "mqtt") {
    const bin = bins.natsServer();
    return { label, argv: [], start: (workDir, cwd) => startNatsCluster(bin, blocks, workDir, cwd), describe: NATS_CLUSTER_TEXT + each(blocks) };
  }
  // nats-server's MQTT needs JetStream (cluster.ts has none); mosquitto has no cluster
  throw new Error(`no ${run} cluster with ${listener} listeners`);
}

/**
 * The slot of server `run` in the column of `column`. They differ only when a harness check
 * (BENCH_SAME_SERVER) puts one reference server into every column. `cluster`: a cluster case,
 * whose "embedded" column is one process (meshbroker, or `run`) and other columns clusters.
 */
export function slotFor(column: ServerKind, run: ServerKind, listener: Listener, cluster: boolean, bins: Binaries): ServerSlot {
  const label = column;
  if (cluster && column !== "embedded") return clusterSlot(label, run, listener, bins);
  switch (run) {
    case "embedded":
    case "meshbroker": {
      const argv = bins.meshCmd;
      if (listener === "nats") return { label, argv, configTemplate: NATS_BASE };
      if (listener === "ws") return { label, argv, configTemplate: NATS_BASE + WS_BLOCK };
      if (listener === "ws-deflate") return { label, argv, configTemplate: NATS_BASE + WS_DEFLATE_BLOCK };
      if (listener === "storm" || listener === "storm-tls") return { label, argv, configTemplate: stormConfig(listener === "storm-tls", false) };
      if (listener !== "mqtt") return { label, argv, configTemplate: tlsConfig(listener, MESH_MQTT_TLS) };
      return { label, argv, configTemplate: MESH_MQTT };
    }
    case "nats-server": {
      const bin = bins.natsServer();
      if (listener === "nats") return { label, argv: [bin, "-a", "{host}", "-p", "{port}"] };
      const argv = [bin, "-c", "{config}"];
      if (listener === "ws") return { label, argv, configTemplate: NATS_BASE + WS_BLOCK };
      if (listener === "ws-deflate") return { label, argv, configTemplate: NATS_BASE + WS_DEFLATE_BLOCK };
      if (listener === "storm" || listener === "storm-tls") return { label, argv, configTemplate: stormConfig(listener === "storm-tls", true) };
      if (listener !== "mqtt") return { label, argv, configTemplate: tlsConfig(listener, NATS_MQTT_TLS) };
      return { label, argv, configTemplate: NATS_MQTT };
    }
    case "node": {
      if (listener === "ws-deflate" || listener === "storm" || listener === "storm-tls") throw new Error(`Node's floor has no ${listener} listener`);
      const other = listener.startsWith("ws") ? ["{ws_port}"] : listener.startsWith("mqtt") ? ["{mqtt_port}"] : [];
      const files = listener.endsWith("-tls") ? ["{tls_cert}", "{tls_key}"] : [];
      return { label, argv: [process.execPath, NODE_FLOOR, listener, "{host}", "{port}", ...other, ...files] };
    }
    case "mosquitto":
      if (listener === "storm" || listener === "storm-tls") {
        const cfg = MOSQUITTO_STORM + (listener === "storm-tls" ? "certfile {tls_cert}\nkeyfile {tls_key}\n" : "");
        return { label, argv: [bins.mosquitto(), "-c", "{config}"], configTemplate: cfg };
      }
      if (listener !== "mqtt" && listener !== "mqtt-tls") {
        throw new Error(`mosquitto has no ${listener === "nats" || listener === "nats-tls" ? "NATS" : "NATS-over-WebSocket"} listener`);
      }
      return { label, argv: [bins.mosquitto(), "-c", "{config}"], configTemplate: listener === "mqtt" ? MOSQUITTO_MQTT : MOSQUITTO_MQTT_TLS };
  }
}

/** BENCH_SAME_SERVER: which server runs in every column (harness check), if any. */
export function sameServerFromEnv(): ServerKind | undefined {
  const v = process.env.BENCH_SAME_SERVER?.trim();
  if (!v) return undefined;
  if (v !== "nats-server" && v !== "mosquitto" && v !== "meshbroker") {
    throw new Error(`BENCH_SAME_SERVER must be nats-server, mosquitto or meshbroker, not '${v}'`);
  }
  return v;
}

export function meshCommandFromEnv(): { text: string; argv: string[] } {
  const text = process.env.BENCH_MESHBROKER_CMD ?? "bin/meshbroker -c {config}";
  return { text, argv: parseCommand(text) };
}

/** One line for the report: command, and config template with newlines folded. */
export function describeSlot(slot: ServerSlot, execPath: string): string {
  if (slot.describe) return slot.describe;
  const argv = slot.argv.map((a) => (a === execPath ? "node" : a)).join(" ");
  if (slot.configTemplate === undefined || !slot.argv.some((a) => a.includes("{config}"))) return `\`${argv}\``;
  const cfg = slot.configTemplate
    .trim()
    .split("\n")
    .map((l) => l.trim())
    .join(" ");
  return `\`${argv}\` with config \`${cfg}\``;
}
