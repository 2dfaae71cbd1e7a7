// Lame duck mode, on SIGTERM (a pod leaving gently) and on SIGUSR2 (nats-server's signal for
// it): every client listener closes at once, NATS clients (TCP and WebSocket) that take async
// INFO get one with "ldm": true, and after lame_duck_grace_period the connections (NATS, WebSocket and MQTT) are
// closed one at a time, spread over lame_duck_duration, then the process exits 0. A SIGINT
// meanwhile stops at once. Each test runs the real bin/meshbroker in a child process; on the
// cluster, a new edge of the file's cluster (redis-server, 2 routers, 2 edges that stay up).
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Events, type NatsConnection } from "nats";
import mqtt from "mqtt";
import { rawConnect, type RawClient } from "../helpers/raw.js";
import { wsOpen } from "../helpers/ws-raw.js";
import { assertBuilt, isListening, startBrokerProcess, type BrokerProcess } from "../helpers/process.js";
import { clusterTopologies, topologies, type SuiteTopology } from "../helpers/broker.js";
import { sharedCluster } from "../helpers/shared-cluster.js";
import { startNatsServer } from "../helpers/nats-server.js";
import { cleanupAfterEach, withTimeout } from "../helpers/wait.js";
import { natsClient } from "../helpers/clients.js";

const cleanups = cleanupAfterEach();
let dir: string;

beforeAll(async () => {
  assertBuilt();
  dir = await mkdtemp(path.join(os.tmpdir(), "meshbroker-ldm-"));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function conf(name: string, text: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, text);
  return file;
}

interface Ldm {
  proc: BrokerProcess;
  natsPort: number;
  httpPort: number;
  wsPort: number;
  mqttPort: number;
  /** The NATS ports of the cluster's other edges, which stay up (none for one process). */
  others: number[];
}

const LISTENERS = "websocket { host: 127.0.0.1, port: -1, no_tls: true }\nmqtt { host: 127.0.0.1, port: -1 }";

/**
 * meshbroker with `settings` (lame duck durations), a monitoring, WebSocket and MQTT listener:
 * its own process, or a new edge of the file's cluster. With `idle`, once nothing is connected
 * (the start-up probe of startBrokerProcess gone).
 */
async function startLdm(topology: SuiteTopology, name: string, settings: string, opts: { idle?: boolean } = {}): Promise<Ldm> {
  if (topology === "cluster") {
    const cluster = await sharedCluster({ edgeConfig: LISTENERS, monitoring: true });
    const others = cluster.edges.filter((e) => e.proc.child.exitCode === null).map((e) => e.natsPort);
    const e = await cluster.addEdge(undefined, settings);
    cleanups.push(() => e.proc.kill());
    return { proc: e.proc, natsPort: e.natsPort, httpPort: e.httpPort!, wsPort: e.wsPort!, mqttPort: e.mqttPort!, others };
  }
  const file = await conf(name, ["server_name: ldm", "host: 127.0.0.1", "port: -1", 'http: "127.0.0.1:-1"', settings, LISTENERS].join("\n"));
  const env = { ...process.env, MESHBROKER_TEST_TOPOLOGY: topology };
  const { proc, natsPort, httpPort } = await startBrokerProcess([...(opts.idle ? ["-D"] : []), "-c", file], { monitoring: true, env });
  cleanups.push(() => proc.kill());
  const wsPort = Number((await proc.waitForLine(/listening for websocket clients on ws:\/\/\S+:(\d+)$/))[1]);
  const mqttPort = Number((await proc.waitForLine(/listening for MQTT clients on tcp:\/\/\S+:(\d+)$/))[1]);
  if (opts.idle) await proc.waitForLine(/cid:1 - Client connection closed/);
  return { proc, natsPort, httpPort: httpPort!, wsPort, mqttPort, others: [] };
}

async function nats(port: number): Promise<NatsConnection> {
  const nc = await natsClient(cleanups, port);
  await nc.flush(); // PING/PONG done: the client now takes async INFO
  return nc;
}

/** A raw client past CONNECT and its first PING/PONG, with the given CONNECT protocol. */
async function rawClient(port: number, protocol: 0 | 1): Promise<RawClient> {
  const c = await rawConnect(port);
  cleanups.push(() => c.close());
  await c.expect(/^INFO .*\r\n/);
  await c.send(`CONNECT {"verbose":false,"pedantic":false,"protocol":${protocol}}\r\nPING\r\n`);
  await c.expect("PONG\r\n");
  return c;
}

const LDM_INFO = /INFO (\{[^\r]*"ldm":true[^\r]*\}) ?\r\n/;

// Not on the cluster: an edge's ldm INFO has the other edges' connect_urls, which a single
// nats-server has not (cluster-advertise checks them); the signal is handled as SIGTERM's. First
// in the file: no idle cluster beside it.
describe.each(topologies)("lame duck on SIGUSR2 (%s)", (topology) => {
  it("SIGUSR2 enters lame duck too, and the ldm INFO has nats-server's fields in its order", async () => {
    const config = 'host: 127.0.0.1\nport: -1\nlame_duck_duration: "30s"\nlame_duck_grace_period: "300ms"\n';
    const real = await startNatsServer(config);
    cleanups.push(() => real.stop());
    const env = { ...process.env, MESHBROKER_TEST_TOPOLOGY: topology };
    const { proc, natsPort } = await startBrokerProcess(["-c", await conf("ldm-usr2.conf", config)], { env });
    cleanups.push(() => proc.kill());

    const infos = await Promise.all([
      { port: real.port, signal: () => real.signal("SIGUSR2") },
      { port: natsPort, signal: () => proc.signal("SIGUSR2") },
    ].map(async ({ port, signal }) => {
      const c = await rawClient(port, 1);
      signal();
      const info = JSON.parse((await c.expect(LDM_INFO, 5_000))[1]) as Record<string, unknown>;
      await withTimeout(c.closed, 5_000, () => "close after the grace period");
      for (const k of ["server_id", "server_name", "go", "port", "client_id"]) if (k in info) info[k] = typeof info[k];
      return info;
    }));
    const [fromReal, fromMesh] = infos;
    expect(fromReal).toMatchObject({ ldm: true, version: "2.9.10" });
    expect(Object.keys(fromMesh)).toEqual(Object.keys(fromReal));
    expect(fromMesh).toEqual(fromReal);
    expect((await proc.exitWithin(5_000)).code).toBe(0);
  });
});

// On the cluster an edge's URLs are withdrawn first (other edges' INFO: cluster-advertise) and its
// clients move to another edge without loss (chaos-edge-sigterm); here, what its own clients see.
describe.each(clusterTopologies)("lame duck mode (%s)", (topology) => {
  it("SIGTERM: listeners close at once, clients hear ldm, then are closed one at a time after the grace period", async () => {
    const { proc, natsPort, httpPort, wsPort, mqttPort, others } = await startLdm(topology, "ldm.conf",
      'lame_duck_duration: "30s"\nlame_duck_grace_period: "1s"');
    // Clients of the other edges, which must not notice.
    const bystanders = await Promise.all(others.map((port) => nats(port)));

    const nc = await nats(natsPort);
    const heardLdm = (async () => {
      for await (const s of nc.status()) if (s.type === Events.LDM) return true;
      return false;
    })();
    const async1 = await rawClient(natsPort, 1);
    const async0 = await rawClient(natsPort, 0); // protocol 0: no async INFO, as nats-server
    const browser = await wsOpen(`ws://127.0.0.1:${wsPort}`);
    cleanups.push(() => browser.close());
    await browser.send('CONNECT {"verbose":false,"protocol":1}\r\nPING\r\n');
    await browser.expect("PONG\r\n");
    const device = mqtt.connect(`mqtt://127.0.0.1:${mqttPort}`, { clientId: "ldm-device", reconnectPeriod: 0 });
    cleanups.push(() => device.endAsync(true));
    await withTimeout(new Promise((resolve) => device.once("connect", resolve)), 5_000, () => "MQTT CONNACK");

    const closedAt: number[] = [];
    const stamp = () => { closedAt.push(performance.now()); };
    const allClosed = Promise.all([
      nc.closed().then(stamp),
      async1.closed.then(stamp),
      async0.closed.then(stamp),
      browser.closed.then(stamp),
      new Promise<void>((resolve) => device.once("close", () => resolve())).then(stamp),
    ]);

    const mark = proc.mark();
    const signalled = performance.now();
    proc.signal("SIGTERM");
    await proc.waitForLine(/Entering lame duck mode/, 5_000, { since: mark });

    // Nothing new gets in, on any listener, while the old clients are still connected.
    const ldm = JSON.parse((await async1.expect(LDM_INFO, 5_000))[1]) as Record<string, unknown>;
    expect(ldm).toMatchObject({ ldm: true, port: natsPort, proto: 1, headers: true });
    expect(await isListening(natsPort)).toBe(false);
    expect(await isListening(wsPort)).toBe(false);
    expect(await isListening(mqttPort)).toBe(false);
    expect(closedAt, "no client is closed within the grace period").toEqual([]);
    expect(await withTimeout(heardLdm, 5_000, () => "nats.js ldm status")).toBe(true);
    expect(JSON.parse((await browser.expect(LDM_INFO, 5_000))[1])).toMatchObject({ ldm: true, port: wsPort });

    await withTimeout(allClosed, 10_000, () => `clients closed: ${closedAt.length}/5`);
    expect(await browser.closed).toEqual({ code: 1001, reason: "Server Shutdown" }); // going away
    expect(async0.received()).not.toMatch(LDM_INFO);
    closedAt.sort((a, b) => a - b);
    expect(closedAt[0] - signalled, "the first close waits lame_duck_grace_period").toBeGreaterThanOrEqual(990);
    // 30s spread over 5 clients is capped at 1s per client, and each wait is at least half of
    // that: the server closes them ≥ 500 ms apart. The margins allow for this process seeing a
    // close late; closing all at once would leave no gap at all.
    for (let i = 1; i < closedAt.length; i++) {
      expect(closedAt[i] - closedAt[i - 1], `gap before close ${i + 1}`).toBeGreaterThanOrEqual(200);
    }
    expect(closedAt[4] - closedAt[0], "four waits of at least 500 ms").toBeGreaterThanOrEqual(1800);
    expect((await proc.exitWithin(10_000)).code).toBe(0);
    expect(await isListening(httpPort)).toBe(false);
    for (const b of bystanders) {
      expect(b.isClosed()).toBe(false);
      await b.flush();
    }
  });

  it("SIGTERM with no client connected exits at once, without waiting the grace period", async () => {
    // The default grace period (10s) would outlast the 5s allowed here.
    const { proc, natsPort } = await startLdm(topology, "ldm-empty.conf", "", { idle: true });
    proc.signal("SIGTERM");
    expect((await proc.exitWithin(5_000)).code).toBe(0);
    expect(await isListening(natsPort)).toBe(false);
  });

  it("a SIGINT during lame duck stops at once, and the exit is logged once", async () => {
    const { proc, natsPort } = await startLdm(topology, "ldm-int.conf", 'lame_duck_grace_period: "20s"');
    const c = await rawClient(natsPort, 1);
    await c.send("SUB last.words 1\r\nPING\r\n");
    await c.expect("PONG\r\nPONG\r\n");
    const mark = proc.mark();
    proc.signal("SIGTERM");
    await proc.waitForLine(/Entering lame duck mode/, 5_000, { since: mark });
    await c.expect(LDM_INFO, 5_000);
    proc.signal("SIGTERM"); // a second one changes nothing
    proc.signal("SIGINT");
    expect((await proc.exitWithin(5_000)).code).toBe(0);
    await withTimeout(c.closed, 2_000, () => "client close");
    expect(proc.lines.filter((l) => /Server Exiting/.test(l.text))).toHaveLength(1);
  });
});
