// Other real MQTT clients, against meshbroker and nats-server 2.9.10:
// - Debian's mosquitto_pub / mosquitto_sub (MQTT 3.1.1): QoS 0 and 1 round trips, retained with
//   -r (and cleared with -r -n), user/password, and both directions with nats.js;
// - MQTT over TLS (`mqtt { tls {} }`): MQTT.js mqtts:// and mosquitto_pub --cafile;
// - MQTT over WebSocket: MQTT.js on ws://127.0.0.1:<wsPort>/mqtt talking to TCP MQTT and NATS
//   clients; the 101 answer carries "Sec-WebSocket-Protocol: mqtt"; with `compression: true`,
//   permessage-deflate both ways (RSV1 seen on the wire);
// - headless Chromium (test/helpers/browser.ts): a page opens
//   new WebSocket("ws://127.0.0.1:<wsPort>/mqtt", "mqtt") and speaks MQTT with hand-made bytes
//   (CONNECT, SUBSCRIBE, PUBLISH, and parsing CONNACK / SUBACK / PUBLISH).
import { readFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser, Page } from "playwright-core";
import type { NatsConnection } from "nats";
import { launchBrowser } from "../helpers/browser.js";
import { mqttTopologies } from "../helpers/broker.js";
import {
  collect, connack, connectMqtt, MOSQUITTO_PUB, MOSQUITTO_SUB, mosquitto, mqttSuiteTopologies, mqttTargets, noMessage, RawMqtt,
  type MqttServer, type MqttServerOptions, type MqttTarget,
  startTarget,
} from "../helpers/mqtt.js";
import { cleanupAfterEach } from "../helpers/wait.js";
import { createPki } from "../helpers/certs.js";
import WebSocket from "ws";
import { httpExchange, upgradeRequest, watchFrames, type WsPeer } from "../helpers/ws-raw.js";
import { natsClient } from "../helpers/clients.js";

const c = cleanupAfterEach();

const start = (target: MqttTarget, opts?: MqttServerOptions) => startTarget(c, target, opts);

async function nats(s: MqttServer): Promise<NatsConnection> {
  return natsClient(c, s.natsPort);
}

const tcpUrl = (s: MqttServer) => `mqtt://127.0.0.1:${s.mqttPort}`;
const wsUrl = (s: MqttServer) => `ws://127.0.0.1:${s.wsPort}/mqtt`;

/** Common mosquitto arguments: this server, MQTT 3.1.1. */
const mosqBase = (s: MqttServer) => ["-h", "127.0.0.1", "-p", String(s.mqttPort), "-V", "mqttv311"];
/** mosquitto_sub printing "MSG <topic> <qos> <retain> <payload>" per message, with -d for SUBACK. */
const subFormat = ["-d", "-F", "MSG %t %q %r %p"];

describe.each(mqttTargets(mqttSuiteTopologies))("mosquitto clients on $name", (target) => {
  it("QoS 0: mosquitto_pub → mosquitto_sub", async () => {
    const s = await start(target);
    const sub = mosquitto(c, MOSQUITTO_SUB, [...mosqBase(s), ...subFormat, "-t", "mo/#", "-q", "0", "-C", "1", "-i", "msub0"]);
    await sub.waitFor(/received SUBACK/);
    const pub = mosquitto(c, MOSQUITTO_PUB, [...mosqBase(s), "-t", "mo/zero", "-m", "hello zero", "-q", "0", "-i", "mpub0"]);
    expect((await pub.exitWithin()).code).toBe(0);
    expect((await sub.waitFor(/^MSG (.*)$/))[1]).toBe("mo/zero 0 0 hello zero");
    expect((await sub.exitWithin()).code).toBe(0);
  });

  it("QoS 1: mosquitto_pub gets its PUBACK (exit 0) and mosquitto_sub receives at QoS 1", async () => {
    const s = await start(target);
    const sub = mosquitto(c, MOSQUITTO_SUB, [...mosqBase(s), ...subFormat, "-t", "mo/#", "-q", "1", "-C", "1", "-i", "msub1"]);
    await sub.waitFor(/received SUBACK/);
    const pub = mosquitto(c, MOSQUITTO_PUB, [...mosqBase(s), "-d", "-t", "mo/one", "-m", "hello one", "-q", "1", "-i", "mpub1"]);
    expect((await pub.exitWithin()).code).toBe(0);
    expect(pub.output()).toMatch(/received PUBACK/);
    expect((await sub.waitFor(/^MSG (.*)$/))[1]).toBe("mo/one 1 0 hello one");
    expect((await sub.exitWithin()).code).toBe(0);
  });

  it("retained with -r: a later mosquitto_sub gets it with the retain flag; -r -n clears it", async () => {
    const s = await start(target);
    const pub = mosquitto(c, MOSQUITTO_PUB, [...mosqBase(s), "-t", "mo/ret", "-m", "kept", "-q", "1", "-r", "-i", "mpubr"]);
    expect((await pub.exitWithin()).code).toBe(0);
    const sub = mosquitto(c, MOSQUITTO_SUB, [...mosqBase(s), ...subFormat, "-t", "mo/ret", "-q", "1", "-C", "1", "-i", "msubr"]);
    expect((await sub.waitFor(/^MSG (.*)$/))[1]).toBe("mo/ret 1 1 kept");
    expect((await sub.exitWithin()).code).toBe(0);
    const clear = mosquitto(c, MOSQUITTO_PUB, [...mosqBase(s), "-t", "mo/ret", "-n", "-q", "1", "-r", "-i", "mpubn"]);
    expect((await clear.exitWithin()).code).toBe(0);
    const later = await connectMqtt(c, tcpUrl(s), { clientId: "mo-later" });
    const inbox = collect(later);
    await later.subscribeAsync("mo/ret", { qos: 1 });
    await noMessage(inbox, 250);
  });

  it("with a user name and password (-u / -P); a wrong password makes mosquitto_pub fail", async () => {
    const s = await start(target, { config: "authorization { user: mosq, password: quitto }" });
    const sub = mosquitto(c, MOSQUITTO_SUB, [...mosqBase(s), ...subFormat, "-u", "mosq", "-P", "quitto", "-t", "auth/x", "-q", "1", "-C", "1", "-i", "msuba"]);
    await sub.waitFor(/received SUBACK/);
    const pub = mosquitto(c, MOSQUITTO_PUB, [...mosqBase(s), "-u", "mosq", "-P", "quitto", "-t", "auth/x", "-m", "authed", "-q", "1", "-i", "mpuba"]);
    expect((await pub.exitWithin()).code).toBe(0);
    expect((await sub.waitFor(/^MSG (.*)$/))[1]).toBe("auth/x 1 0 authed");
    const bad = mosquitto(c, MOSQUITTO_PUB, [...mosqBase(s), "-d", "-u", "mosq", "-P", "wrong", "-t", "auth/x", "-m", "no", "-q", "1", "-i", "mpubb"]);
    expect((await bad.exitWithin()).code).not.toBe(0);
    expect(bad.output()).toMatch(/CONNACK \(5\)|not authori[sz]ed/i);
  });

  it("mosquitto ↔ nats.js: mosquitto_pub reaches a.b subscribers, nats.js publishes reach mosquitto_sub", async () => {
    const s = await start(target);
    const nc = await nats(s);
    const nsub = nc.subscribe("mq.from", { max: 1 });
    await nc.flush();
    const pub = mosquitto(c, MOSQUITTO_PUB, [...mosqBase(s), "-t", "mq/from", "-m", "to-nats", "-q", "1", "-i", "mpubx"]);
    expect((await pub.exitWithin()).code).toBe(0);
    for await (const m of nsub) {
      expect(new TextDecoder().decode(m.data)).toBe("to-nats");
      expect(m.headers?.get("Nmqtt-Pub")).toBe("1");
    }
    const sub = mosquitto(c, MOSQUITTO_SUB, [...mosqBase(s), ...subFormat, "-t", "mq/to/+", "-q", "1", "-C", "1", "-i", "msubx"]);
    await sub.waitFor(/received SUBACK/);
    nc.publish("mq.to.mosquitto", "from-nats");
    expect((await sub.waitFor(/^MSG (.*)$/))[1]).toBe("mq/to/mosquitto 0 0 from-nats");
  });
});

describe.each(mqttTargets(mqttSuiteTopologies))("MQTT over WebSocket on $name", (target) => {
  it("the 101 answer on /mqtt carries Sec-WebSocket-Protocol: mqtt", async () => {
    const s = await start(target, { websocket: true });
    const host = `127.0.0.1:${s.wsPort}`;
    const offered = await httpExchange(s.wsPort!, upgradeRequest(host, { path: "/mqtt", headers: { "Sec-WebSocket-Protocol": "mqtt" } }));
    expect(offered.status).toBe(101);
    expect(offered.headers["sec-websocket-protocol"]).toBe("mqtt");
    expect(offered.headers["sec-websocket-accept"]).toBe("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    // nats-server answers it on the MQTT path even when the client offered nothing.
    const bare = await httpExchange(s.wsPort!, upgradeRequest(host, { path: "/mqtt" }));
    expect(bare.status).toBe(101);
    expect(bare.headers["sec-websocket-protocol"]).toBe("mqtt");
  });

  it("MQTT.js over ws://…/mqtt talks with MQTT/TCP and NATS clients", async () => {
    const s = await start(target, { websocket: true });
    const web = await connectMqtt(c, wsUrl(s), { clientId: "ws-client" });
    const webInbox = collect(web);
    await web.subscribeAsync("ws/in/#", { qos: 1 });
    const tcp = await connectMqtt(c, tcpUrl(s), { clientId: "tcp-client" });
    const tcpInbox = collect(tcp);
    await tcp.subscribeAsync("ws/out", { qos: 1 });
    await tcp.publishAsync("ws/in/tcp", "tcp→ws", { qos: 1 });
    const m1 = await webInbox.next();
    expect([m1.topic, m1.payload, m1.packet.qos]).toEqual(["ws/in/tcp", "tcp→ws", 1]);
    const nc = await nats(s);
    nc.publish("ws.in.nats", "nats→ws");
    expect(await webInbox.next()).toMatchObject({ topic: "ws/in/nats", payload: "nats→ws" });
    await web.publishAsync("ws/out", "ws→tcp", { qos: 1 });
    expect(await tcpInbox.next()).toMatchObject({ topic: "ws/out", payload: "ws→tcp" });
  });

  it("MQTT.js over a compressed WebSocket (permessage-deflate both ways)", async () => {
    const s = await start(target, { websocket: "compression" });
    let socket: WebSocket | undefined;
    // MQTT.js's own ws, compressing everything it sends (threshold 0).
    const web = await connectMqtt(c, wsUrl(s), {
      clientId: "ws-deflate",
      createWebsocket: (url: string, protocols: string[]) => (socket = new WebSocket(url, protocols, { perMessageDeflate: { threshold: 0 } })),
    });
    expect(socket!.extensions).toMatch(/^permessage-deflate/);
    const frames = watchFrames({ ws: socket! } as unknown as WsPeer);
    const webInbox = collect(web);
    await web.subscribeAsync("wsz/in", { qos: 1 });
    const tcp = await connectMqtt(c, tcpUrl(s), { clientId: "tcp-deflate" });
    const tcpInbox = collect(tcp);
    await tcp.subscribeAsync("wsz/out", { qos: 1 });
    const big = "compressible MQTT payload ".repeat(200);
    await tcp.publishAsync("wsz/in", big, { qos: 1 });
    expect(await webInbox.next()).toMatchObject({ topic: "wsz/in", payload: big });
    expect(frames.some((f) => f.rsv1 && f.length < big.length / 4), JSON.stringify(frames)).toBe(true);
    await web.publishAsync("wsz/out", big, { qos: 1 });
    expect(await tcpInbox.next()).toMatchObject({ topic: "wsz/out", payload: big });
  });
});

// Not on the cluster: TLS and the Chromium page below are the edge's listener code, the same in a
// cluster's edge; the mosquitto and MQTT-over-WebSocket clients above cross its edges.
describe.each(mqttTargets(mqttTopologies))("MQTT over TLS (mqtt { tls {} }) on $name", (target) => {
  it("MQTT.js (mqtts://) and mosquitto_pub --cafile connect; a plain-TCP CONNECT gets no CONNACK", async () => {
    const pki = await createPki();
    c.push(() => pki.cleanup());
    const s = await start(target, { mqtt: `tls {\n    cert_file: "${pki.server.certFile}"\n    key_file: "${pki.server.keyFile}"\n  }` });
    const ca = await readFile(pki.caFile);
    const url = `mqtts://127.0.0.1:${s.mqttPort}`;
    const sub = await connectMqtt(c, url, { clientId: "tls-sub", ca, servername: "localhost" });
    const inbox = collect(sub);
    await sub.subscribeAsync("tls/x", { qos: 1 });
    const pub = mosquitto(c, MOSQUITTO_PUB, [...mosqBase(s), "--cafile", pki.caFile, "-t", "tls/x", "-m", "over tls", "-q", "1", "-i", "mpubtls"]);
    expect((await pub.exitWithin()).code).toBe(0);
    expect(await inbox.next()).toMatchObject({ topic: "tls/x", payload: "over tls" });
    // An untrusting client fails the handshake; a plain one never gets a CONNACK.
    await expect(connack(c, url, { clientId: "tls-untrusted", rejectUnauthorized: true })).rejects.toThrow();
    const plain = await RawMqtt.connect(s.mqttPort);
    c.push(() => plain.close());
    plain.send({ cmd: "connect", protocolId: "MQTT", protocolVersion: 4, clean: true, clientId: "plain", keepalive: 0 });
    await plain.closedWithin(4_000);
    expect(plain.packets.filter((p) => p.cmd === "connack")).toEqual([]);
  });
});

// ---- Chromium ----

/** The page: raw MQTT 3.1.1 over a browser WebSocket (?ws=<url>&topic=<filter>&id=<client id>). */
const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>raw MQTT over WebSocket</title></head>
<body><ul id="events"></ul>
<script>
"use strict";
const params = new URLSearchParams(location.search);
const enc = new TextEncoder();
const dec = new TextDecoder();
window.events = [];
window.received = [];
window.protocol = null;
const note = (e) => { window.events.push(e); const li = document.createElement("li"); li.textContent = e; document.getElementById("events").appendChild(li); };
const str = (s) => { const b = enc.encode(s); return [b.length >> 8, b.length & 255, ...b]; };
const varint = (n) => { const out = []; do { let d = n % 128; n = Math.floor(n / 128); if (n > 0) d |= 128; out.push(d); } while (n > 0); return out; };
const packet = (first, body) => new Uint8Array([first, ...varint(body.length), ...body]);
const ws = new WebSocket(params.get("ws"), "mqtt");
ws.binaryType = "arraybuffer";
window.mqttPublish = (topic, text) => ws.send(packet(0x30, [...str(topic), ...enc.encode(text)]));
ws.onopen = () => {
  note("open");
  window.protocol = ws.protocol;
  // CONNECT: "MQTT", level 4, clean session, keepalive 60, client id.
  ws.send(packet(0x10, [...str("MQTT"), 4, 0x02, 0, 60, ...str(params.get("id"))]));
};
let buf = new Uint8Array(0);
ws.onmessage = (e) => {
  const chunk = new Uint8Array(e.data);
  const next = new Uint8Array(buf.length + chunk.length);
  next.set(buf); next.set(chunk, buf.length); buf = next;
  for (;;) {
    if (buf.length < 2) return;
    let len = 0, mul = 1, i = 1, b;
    do { if (i >= buf.length) return; b = buf[i++]; len += (b & 127) * mul; mul *= 128; } while (b & 128);
    if (buf.length < i + len) return;
    const type = buf[0] >> 4, flags = buf[0] & 15, body = buf.subarray(i, i + len);
    buf = buf.slice(i + len);
    if (type === 2) {
      note("connack " + body[1]);
      // SUBSCRIBE, packet id 1, one filter at QoS 0.
      if (body[1] === 0) ws.send(packet(0x82, [0, 1, ...str(params.get("topic")), 0]));
    } else if (type === 9) {
      note("suback " + Array.from(body.subarray(2)).join(","));
    } else if (type === 3) {
      const tlen = (body[0] << 8) | body[1];
      const topic = dec.decode(body.subarray(2, 2 + tlen));
      const qos = (flags >> 1) & 3;
      const payload = dec.decode(body.subarray(2 + tlen + (qos > 0 ? 2 : 0)));
      window.received.push(topic + " " + payload);
    } else {
      note("packet " + type);
    }
  }
};
ws.onerror = () => note("error");
ws.onclose = (e) => note("close " + e.code);
</script></body></html>`;

interface PageGlobals { events: string[]; received: string[]; protocol: string | null; mqttPublish(topic: string, text: string): void }

describe.each(mqttTargets(mqttTopologies))("Chromium speaking raw MQTT over WebSocket on $name", (target) => {
  let browser: Browser;
  let pageServer: http.Server;
  let origin: string;

  beforeAll(async () => {
    browser = await launchBrowser();
    pageServer = http.createServer((req, res) => {
      if (req.method === "GET" && (req.url ?? "").startsWith("/mqtt.html")) {
        res.writeHead(200, { "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store" }).end(PAGE);
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve) => pageServer.listen(0, "127.0.0.1", () => resolve()));
    origin = `http://127.0.0.1:${(pageServer.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await browser?.close();
    if (pageServer) {
      pageServer.closeAllConnections();
      await new Promise<void>((resolve) => pageServer.close(() => resolve()));
    }
  });

  async function open(s: MqttServer, topic: string, id: string): Promise<Page> {
    const context = await browser.newContext();
    c.push(() => context.close());
    const page = await context.newPage();
    const q = new URLSearchParams({ ws: wsUrl(s), topic, id });
    await page.goto(`${origin}/mqtt.html?${q}`);
    return page;
  }

  it("CONNECT, SUBSCRIBE, then PUBLISHes from MQTT.js and nats.js arrive; the page's PUBLISH reaches MQTT.js", async () => {
    const s = await start(target, { websocket: true });
    const page = await open(s, "browser/+", "chromium-1");
    await page.waitForFunction(() => (globalThis as unknown as PageGlobals).events.some((e) => e.startsWith("suback") || e.startsWith("close")), undefined, { timeout: 5_000 });
    expect(await page.evaluate(() => ({ events: (globalThis as unknown as PageGlobals).events, protocol: (globalThis as unknown as PageGlobals).protocol })))
      .toEqual({ events: ["open", "connack 0", "suback 0"], protocol: "mqtt" });

    const tcp = await connectMqtt(c, tcpUrl(s), { clientId: "to-browser" });
    const tcpInbox = collect(tcp);
    await tcp.subscribeAsync("from/browser", { qos: 0 });
    await tcp.publishAsync("browser/mqtt", "hello from MQTT.js", { qos: 1 });
    const nc = await nats(s);
    nc.publish("browser.nats", "hello from nats.js");
    await page.waitForFunction(() => (globalThis as unknown as PageGlobals).received.length >= 2, undefined, { timeout: 5_000 });
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).received)).toEqual(["browser/mqtt hello from MQTT.js", "browser/nats hello from nats.js"]);

    await page.evaluate(() => (globalThis as unknown as PageGlobals).mqttPublish("from/browser", "hi from chromium"));
    expect(await tcpInbox.next()).toMatchObject({ topic: "from/browser", payload: "hi from chromium" });
  });
});
