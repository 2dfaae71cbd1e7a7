// Rotated certificates (new files under the same paths, as cert-manager writes a Secret) are read
// again on SIGHUP: the client listeners' (NATS, WebSocket, MQTT) and a router's gRPC listener.
// New connections get the new certificate, connections up stay; a broken file refuses the reload
// and the previous certificate stays in use.
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { copyFile, writeFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import tls from "node:tls";
import { StringCodec } from "nats";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createPki, type CertPair, type TestPki } from "../helpers/certs.js";
import { natsClient } from "../helpers/clients.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { reload, startBrokerProcess } from "../helpers/process.js";
import { cleanupAfterEach, firstData, withTimeout } from "../helpers/wait.js";

const sc = StringCodec();
const c = cleanupAfterEach();
let pki: TestPki;
let rotated: CertPair;
beforeAll(async () => {
  pki = await createPki();
  rotated = await pki.rotated("rotated");
}, 30_000);
afterAll(() => pki?.cleanup());

/** The serial number of the certificate a TLS server presents on `port` (`plainFirst`: a NATS
 *  port, which sends INFO in the clear before the handshake). */
async function servedSerial(port: number, opts: { plainFirst?: boolean; client?: CertPair; alpn?: string[] } = {}): Promise<string> {
  const socket = opts.plainFirst ? await afterInfo(port) : undefined;
  return withTimeout(new Promise<string>((resolve, reject) => {
    const s = tls.connect({
      host: "127.0.0.1", port, socket, ca: [readPem(pki.caFile)], servername: "localhost", ALPNProtocols: opts.alpn,
      ...(opts.client ? { cert: readPem(opts.client.certFile), key: readPem(opts.client.keyFile) } : {}),
    }, () => {
      resolve(s.getPeerX509Certificate()!.serialNumber);
      s.destroy();
    });
    s.once("error", reject);
  }), 5_000, () => `no TLS handshake on port ${port}`);
}

function afterInfo(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: "127.0.0.1", port });
    let text = "";
    const onData = (b: Buffer) => {
      text += b.toString("latin1");
      if (!text.includes("\r\n")) return;
      s.off("data", onData);
      resolve(s);
    };
    s.on("data", onData);
    s.once("error", reject);
  });
}

const readPem = (file: string) => readFileSync(file);
const serialOf = (pair: CertPair) => new X509Certificate(readPem(pair.certFile)).serialNumber;

async function install(pair: CertPair, live: CertPair): Promise<void> {
  await copyFile(pair.certFile, live.certFile);
  await copyFile(pair.keyFile, live.keyFile);
}

it("NATS, WebSocket and MQTT listeners serve a rotated certificate after SIGHUP; a client connected before stays", async () => {
  const live = { certFile: path.join(pki.dir, "live-edge.pem"), keyFile: path.join(pki.dir, "live-edge.key") };
  await install(pki.server, live);
  const block = `tls { cert_file: "${live.certFile}", key_file: "${live.keyFile}" }`;
  const conf = path.join(pki.dir, "edge-reload.conf");
  await writeFile(conf, `server_name: tls-reload\nhost: 127.0.0.1\nport: -1\n${block}\nwebsocket { host: 127.0.0.1, port: -1, ${block} }\nmqtt { host: 127.0.0.1, port: -1, ${block} }\n`);
  const { proc, natsPort } = await startBrokerProcess(["-c", conf]);
  c.push(() => proc.kill());
  const wsPort = Number((await proc.waitForLine(/listening for websocket clients on wss:\/\/\S+:(\d+)$/, 5_000))[1]);
  const mqttPort = Number((await proc.waitForLine(/listening for MQTT clients on tls:\/\/\S+:(\d+)$/, 5_000))[1]);
  const serials = () => Promise.all([servedSerial(natsPort, { plainFirst: true }), servedSerial(wsPort), servedSerial(mqttPort)]);
  expect(await serials()).toEqual(Array(3).fill(serialOf(pki.server)));

  const nc = await natsClient(c, natsPort, { tls: { caFile: pki.caFile } });
  const sub = nc.subscribe("rotate.check", { max: 2 });
  await nc.flush();

  await install(rotated, live);
  expect(await reload(proc)).toMatch(/Reloaded: no changes$/);
  expect(await serials()).toEqual(Array(3).fill(serialOf(rotated)));
  nc.publish("rotate.check", sc.encode("after rotation"));
  expect(await firstData(sub)).toBe("after rotation");

  // A broken key refuses the whole reload; the rotated certificate stays in use.
  await writeFile(live.keyFile, "not a key\n");
  expect(await reload(proc)).toMatch(/Failed to reload configuration: .*/);
  expect(await serials()).toEqual(Array(3).fill(serialOf(rotated)));
}, 30_000);

it("a router's gRPC listener serves a rotated certificate after SIGHUP: its edge stays attached, a new edge attaches", async () => {
  const live = { certFile: path.join(pki.dir, "live-router.pem"), keyFile: path.join(pki.dir, "live-router.key") };
  await install(pki.peer, live);
  const cluster: TestCluster = await startCluster({ routers: 1, edges: 1, tls: { caFile: pki.caFile, router: live, edge: pki.peer } });
  c.push(() => cluster.stop());
  const r = cluster.routers[0];
  const routerSerial = () => servedSerial(r.port, { client: pki.peer, alpn: ["h2"] });
  expect(await routerSerial()).toBe(serialOf(pki.peer));

  await install(rotated, live);
  const edgeMark = cluster.edges[0].proc.mark();
  expect(await reload(r.proc)).toMatch(/Reloaded: no changes$/);
  expect(await routerSerial()).toBe(serialOf(rotated));

  // A new edge trusts the same CA and attaches over the rotated certificate.
  await cluster.addEdge(0);
  // An edge's SIGHUP reads its edge { tls } files again too (new router links use them).
  expect(await reload(cluster.edges[0].proc)).toMatch(/Reloaded: no changes$/);

  // The attached edge kept its link and routes.
  const nc = await natsClient(c, cluster.edges[0].natsPort);
  const sub = nc.subscribe("rotate.router", { max: 1 });
  await nc.flush();
  nc.publish("rotate.router", sc.encode("ok"));
  expect(await firstData(sub)).toBe("ok");
  expect(cluster.edges[0].proc.lines.slice(edgeMark).map((l) => l.text).join("\n")).not.toMatch(/lost router|re-attach/);

  // A broken certificate refuses the reload; the rotated one stays.
  await writeFile(live.certFile, "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n");
  expect(await reload(r.proc)).toMatch(/Failed to reload configuration: .*/);
  expect(await routerSerial()).toBe(serialOf(rotated));
}, 45_000);
