// The bench harness's cluster cases: which server each column runs, and the embedded column
// with its ratio (cluster/embedded) in the report. Pure functions: no server is started.
import { describe, expect, it } from "vitest";
import { findCases, type BenchCase, type RoundResult } from "../bench/cases.js";
import { renderMarkdown, type ReportMeta } from "../bench/report.js";
import { slotFor, type Binaries } from "../bench/slots.js";

const BINS: Binaries = { meshCmd: ["node", "bin/meshbroker", "-c", "{config}"], natsServer: () => "/usr/sbin/nats-server", mosquitto: () => "/usr/sbin/mosquitto" };

const META: ReportMeta = {
  date: "2026-12-04T00:00:00Z", machine: "test", node: "v20", versions: [], servers: [], loadgen: "loadgen", rounds: 1, scale: 1,
};

const round = (v: number): { rounds: RoundResult[] } => ({ rounds: [{ values: [v], detail: `${v}` }] });

function only(id: string): BenchCase {
  const [c] = findCases(id);
  if (!c) throw new Error(`no case ${id}`);
  return c;
}

describe("bench cluster cases", () => {
  it("every cluster case but the interest one has an embedded column", () => {
    const cluster = findCases("cluster");
    expect(cluster.map((c) => c.id)).toEqual(expect.arrayContaining(["cpub", "creqrep16", "cwsdeflate", "cmqtt0", "cconnects", "cwsconnects", "cmqttconnects", "cmqttidle"]));
    for (const c of cluster) expect(c.servers.includes("embedded"), c.id).toBe(c.id !== "cinterest");
    // nats-server's MQTT needs JetStream, which its cluster does not run
    expect(only("cmqtt0").servers).toEqual(["meshbroker", "embedded"]);
  });

  it("runs clusters in the meshbroker and nats-server columns and one process in the embedded one", () => {
    const ws = only("cwsdeflate");
    expect(slotFor("meshbroker", "meshbroker", ws.listener, true, BINS).start).toBeDefined();
    expect(slotFor("nats-server", "nats-server", ws.listener, true, BINS).start).toBeDefined();
    const embedded = slotFor("embedded", "embedded", ws.listener, true, BINS);
    expect(embedded.start).toBeUndefined();
    expect(embedded.configTemplate).toContain("compression: true");
    expect(slotFor("meshbroker", "meshbroker", "mqtt", true, BINS).describe).toContain("mqtt { port: -1 }");
    expect(() => slotFor("nats-server", "nats-server", "mqtt", true, BINS)).toThrow(/no nats-server cluster with mqtt/);
  });

  it("reports the cluster's figure over the embedded one, only when a cluster case ran", () => {
    const cpub = only("cpub");
    const md = renderMarkdown(META, [{ bench: cpub, results: { meshbroker: round(50_000), "nats-server": round(200_000), embedded: round(200_000) } }]);
    expect(md).toContain("| case | meshbroker | nats-server | ratio (meshbroker/nats-server) | embedded | ratio (cluster/embedded) |");
    expect(md).toContain("| 200.0k msgs/s | 0.25 (higher is better: embedded ahead) |");
    const pub = only("pub");
    const plain = renderMarkdown(META, [{ bench: pub, results: { meshbroker: round(1), "nats-server": round(1) } }]);
    expect(plain).not.toContain("embedded");
  });
});

describe("bench: Node's floor", () => {
  it("runs beside the connect and idle cases of one process, not the cluster or throughput ones", () => {
    for (const id of ["connects", "wsconnects", "mqttconnects", "tlsconnects", "mqtttlsidle", "idle"]) expect(only(id).servers, id).toContain("node");
    for (const id of ["pub", "mqtt0", "cconnects", "cmqttidle", "storm"]) expect(only(id).servers, id).not.toContain("node");
    const tls = slotFor("node", "node", "mqtt-tls", false, BINS);
    expect(tls.argv.slice(2)).toEqual(["mqtt-tls", "{host}", "{port}", "{mqtt_port}", "{tls_cert}", "{tls_key}"]);
    expect(slotFor("node", "node", "nats", false, BINS).argv.slice(2)).toEqual(["nats", "{host}", "{port}"]);
  });

  it("reports meshbroker over the floor, and the floor over the target's reference", () => {
    const c = only("mqttconnects");
    const two = (v: number, cpu: number): { rounds: RoundResult[] } => ({ rounds: [{ values: [v, cpu], detail: `${v}` }] });
    const md = renderMarkdown(META, [{ bench: c, results: { meshbroker: two(8000, 90), "nats-server": two(4000, 250), mosquitto: two(10_000, 40), node: two(12_500, 50) } }]);
    expect(md).toContain("| node | ratio (meshbroker/node) |");
    expect(md).toContain("| 12500 conns/s | 0.64 (higher is better: node ahead) |");
    expect(md).toContain("meshbroker/mosquitto ≥ 1.00; measured 0.80: **not met** (Node's floor: node/mosquitto 1.25)");
  });
});
