// MQTT 5 session state, against meshbroker (each topology) and mosquitto 2.0 side by side: the
// session expiry interval (0 ends the session with the connection; a DISCONNECT may shorten it;
// a persistent session ends after the interval), the will delay interval, the client's receive
// maximum; then session expiry across a restart of meshbroker on the LevelDB and Redis stores.
// Expiry is time itself: the waits past an interval are the only timed waits, bounded by it.
import { describe, expect, it } from "vitest";
import type { IConnectPacket } from "mqtt-packet";
import { mqttTopologies, type Topology } from "../helpers/broker.js";
import {
  collect, connectMqtt, mqtt5Targets, mqttUrl, noMessage, RawMqtt, startMqttBroker, startTarget, tempDir,
  type MqttServer, type MqttServerOptions, type MqttTarget,
} from "../helpers/mqtt.js";
import { headers } from "nats";
import { natsClient } from "../helpers/clients.js";
import { startRedis } from "../helpers/redis.js";
import { cleanupAfterEach } from "../helpers/wait.js";
import { loadConfigText } from "../../services/common/config/index.js";
import { silentLogger } from "../../services/common/log.js";
import { startEmbedded } from "../../services/embedded.js";
import { openRedisStore } from "../../services/router/store/redis.js";

const c = cleanupAfterEach();

const targets = mqtt5Targets(c, mqttTopologies);
const start = (target: MqttTarget, opts?: MqttServerOptions) => startTarget(c, target, opts);

/** A level-5 raw client whose CONNECT must be accepted (closed on cleanup). */
async function open5(port: number, clientId: string, connect: Partial<IConnectPacket> = {}) {
  const { c: r, connack } = await RawMqtt.open(port, { protocolVersion: 5, clientId, clean: false, ...connect });
  c.push(() => r.close());
  expect(connack.reasonCode, "CONNACK reason code").toBe(0);
  return { r, present: !!connack.sessionPresent };
}

const expiry = (seconds: number) => ({ properties: { sessionExpiryInterval: seconds } });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A persistent subscriber of `topic` at QoS 1, gone (DISCONNECT) with `seconds` of expiry. */
async function away(s: MqttServer, clientId: string, topic: string, seconds: number): Promise<number> {
  const { r } = await open5(s.mqttPort, clientId, expiry(seconds));
  r.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic, qos: 1 }] });
  await r.next("suback");
  r.send({ cmd: "disconnect", reasonCode: 0 });
  await r.closedWithin(2_000);
  return Date.now();
}

describe.each(targets)("MQTT 5 sessions on $name", (target) => {
  it("session expiry 0 (the default): clean start off still ends the session with the connection", async () => {
    const s = await start(target);
    const { r } = await open5(s.mqttPort, "exp-0");
    r.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "e0/t", qos: 1 }] });
    await r.next("suback");
    await r.close();
    expect((await open5(s.mqttPort, "exp-0")).present).toBe(false);
  });

  it("session expiry interval: present and queued within it, gone after it", async () => {
    const s = await start(target);
    const goneAt = await away(s, "exp-2", "e2/t", 2);
    await away(s, "exp-1", "e2/t", 1);
    const pub = await connectMqtt(c, mqttUrl(s), { protocolVersion: 5, clientId: "exp-pub" });
    await pub.publishAsync("e2/t", "while-away", { qos: 1 });
    const { r, present } = await open5(s.mqttPort, "exp-2", expiry(2));
    expect(present).toBe(true);
    expect(String((await r.next("publish")).payload)).toBe("while-away");
    // Past exp-1's interval of 1 s (mosquitto counts whole seconds: up to one more).
    await sleep(Math.max(0, goneAt + (target.kind === "mosquitto" ? 2_400 : 1_400) - Date.now()));
    expect((await open5(s.mqttPort, "exp-1", expiry(1))).present).toBe(false);
  });

  it("a DISCONNECT may end the session (expiry 0); raising it from 0 is a protocol error", async () => {
    const s = await start(target);
    const { r } = await open5(s.mqttPort, "exp-dis", expiry(60));
    r.send({ cmd: "disconnect", reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
    await r.closedWithin(2_000);
    expect((await open5(s.mqttPort, "exp-dis", expiry(60))).present).toBe(false);
    const { r: zero } = await open5(s.mqttPort, "exp-zero", expiry(0));
    zero.send({ cmd: "disconnect", reasonCode: 0, properties: { sessionExpiryInterval: 30 } });
    await zero.closedWithin(2_000);
    expect(zero.packets.find((p) => p.cmd === "disconnect")).toMatchObject({ reasonCode: 0x82 });
  });

  it("will delay interval: the will waits for it, and a reconnect within it withdraws the will", async () => {
    const s = await start(target);
    const watcher = await connectMqtt(c, mqttUrl(s), { protocolVersion: 5, clientId: "wd-watch" });
    const inbox = collect(watcher);
    await watcher.subscribeAsync("wd/+", { qos: 1 });
    const will = (topic: string) => ({
      topic, payload: Buffer.from(topic), qos: 1 as const, retain: false, properties: { willDelayInterval: 1 },
    });
    const { r: a } = await open5(s.mqttPort, "wd-a", { ...expiry(30), will: will("wd/a") });
    const { r: b } = await open5(s.mqttPort, "wd-b", { ...expiry(30), will: will("wd/b") });
    const lost = Date.now();
    await Promise.all([a.close(), b.close()]);
    await open5(s.mqttPort, "wd-b", expiry(30)); // back within the delay: no will
    const m = await inbox.next(3_000);
    const after = Date.now() - lost;
    console.log(`${target.name}: will with a delay of 1 s published ${after} ms after the connection was lost`);
    expect(m.topic).toBe("wd/a");
    expect(after).toBeGreaterThanOrEqual(900);
    await noMessage(inbox, 300);
  });

  it("a will delay and session expiry of 2^32-1 s hold the will back (past Node's longest timer)", async () => {
    const s = await start(target);
    const watcher = await connectMqtt(c, mqttUrl(s), { protocolVersion: 5, clientId: "wl-watch" });
    const inbox = collect(watcher);
    await watcher.subscribeAsync("wl/t", { qos: 1 });
    const forever = 0xffffffff;
    const { r } = await open5(s.mqttPort, "wl-client", {
      ...expiry(forever), will: { topic: "wl/t", payload: Buffer.from("too soon"), qos: 1, retain: false, properties: { willDelayInterval: forever } },
    });
    await r.close();
    await noMessage(inbox, 300);
  });

  it("receive maximum: at most that many QoS 1 deliveries in flight, the next after a PUBACK", async () => {
    const s = await start(target);
    const { r } = await open5(s.mqttPort, "rm-sub", { clean: true, properties: { receiveMaximum: 2 } });
    r.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "rm/t", qos: 1 }] });
    await r.next("suback");
    const pub = await connectMqtt(c, mqttUrl(s), { protocolVersion: 5, clientId: "rm-pub" });
    for (let i = 0; i < 4; i++) await pub.publishAsync("rm/t", `m${i}`, { qos: 1 });
    const first = [await r.next("publish"), await r.next("publish")];
    await r.none("publish", 250);
    r.send({ cmd: "puback", messageId: first[0].messageId });
    expect(String((await r.next("publish")).payload)).toBe("m2");
    // mosquitto 2.0 sends m3 too here (3 in flight); meshbroker keeps to the 2.
    if (target.kind === "meshbroker") await r.none("publish", 150);
  });
});

/** meshbroker on a LevelDB store_dir or a Redis store, restartable on the same store. */
async function restartable(topology: Topology, kind: "leveldb" | "redis"): Promise<() => Promise<MqttServer>> {
  if (kind === "leveldb") {
    const mqtt = `store_dir: "${await tempDir(c)}"`;
    return async () => {
      const s = await startMqttBroker(topology, { mqtt });
      c.push(() => s.stop());
      return s;
    };
  }
  const redis = await startRedis();
  c.push(() => redis.stop());
  const { options } = loadConfigText("host: 127.0.0.1\nport: -1\nserver_name: exp\nmqtt { host: 127.0.0.1, port: -1 }\n", "exp.conf", {});
  return async () => {
    const store = await openRedisStore(redis.url);
    const broker = await startEmbedded(options, silentLogger(), topology, store);
    let stopped = false;
    const stop = async () => {
      if (stopped) return;
      stopped = true;
      await broker.stop();
      await store.close();
    };
    c.push(stop);
    return { kind: "meshbroker", mqttPort: broker.mqttPort!, natsPort: broker.natsPort, wsPort: undefined, httpPort: undefined, reload: () => Promise.reject(new Error("no reload")), stop };
  };
}

describe.each(mqttTopologies.flatMap((t) => (["leveldb", "redis"] as const).map((k) => [t, k] as const)))(
  "MQTT 5 session expiry across a restart (meshbroker %s, %s store)", (topology, kind) => {
    it("a session within its interval is present after the restart with its queue; one past it is gone", async () => {
      const startBroker = await restartable(topology, kind);
      const a = await startBroker();
      await away(a, "rs-long", "rs/t", 60);
      const shortGone = await away(a, "rs-short", "rs/t", 1);
      const pub = await connectMqtt(c, mqttUrl(a), { protocolVersion: 5, clientId: "rs-pub" });
      await pub.publishAsync("rs/t", "before-restart", { qos: 1 });
      await pub.endAsync();
      await a.stop();
      await sleep(Math.max(0, shortGone + 1_300 - Date.now())); // past rs-short's interval, while stopped
      const b = await startBroker();
      const { r, present } = await open5(b.mqttPort, "rs-long", expiry(60));
      expect(present).toBe(true);
      expect(String((await r.next("publish")).payload)).toBe("before-restart");
      expect((await open5(b.mqttPort, "rs-short", expiry(1))).present).toBe(false);
    });

    it("queued and retained messages keep their properties and expiry (MQTT and NATS publishers); expired ones are not delivered", async () => {
      const startBroker = await restartable(topology, kind);
      const a = await startBroker();
      await away(a, "rp-sub", "rp/#", 60);
      const pub = await connectMqtt(c, mqttUrl(a), { protocolVersion: 5, clientId: "rp-pub" });
      const properties = {
        userProperties: { k: "v", multi: ["1", "2"] }, contentType: "text/plain", correlationData: Buffer.from([0, 1, 255]),
        responseTopic: "rp/resp", payloadFormatIndicator: true, messageExpiryInterval: 60,
      };
      const short = { properties: { messageExpiryInterval: 1 } };
      // A NATS publisher sets the QoS and the expiry with headers.
      const nc = await natsClient(c, a.natsPort);
      const fromNats = (expiry: number, more: Record<string, string> = {}) => {
        const h = headers();
        for (const [k, v] of Object.entries({ "Nmqtt-Pub": "1", "Nmqtt-Expiry": String(expiry), ...more })) h.set(k, v);
        return { headers: h };
      };
      const published = Date.now();
      // The expired ones go first: the next one arriving shows they were dropped, with no wait.
      await pub.publishAsync("rp/short", "short", { qos: 1, ...short });
      nc.publish("rp.nshort", "short", fromNats(1));
      await nc.flush();
      await pub.publishAsync("rp/keep", "keep", { qos: 1, properties });
      nc.publish("rp.nkeep", "keep", fromNats(60, { k: "v" }));
      await nc.flush();
      await nc.close();
      await pub.publishAsync("rr/short", "short", { qos: 1, retain: true, ...short });
      await pub.publishAsync("rr/keep", "keep", { qos: 1, retain: true, properties });
      await pub.endAsync();
      await a.stop();
      await sleep(Math.max(0, published + 1_300 - Date.now())); // past the 1 s interval, while stopped
      const b = await startBroker();
      // Queued for the restored session before its client is back.
      const pub2 = await connectMqtt(c, mqttUrl(b), { protocolVersion: 5, clientId: "rp-pub" });
      await pub2.publishAsync("rp/after", "keep", { qos: 1, properties });
      await pub2.endAsync();
      const { r, present } = await open5(b.mqttPort, "rp-sub", expiry(60));
      expect(present).toBe(true);
      const check = (p: Awaited<ReturnType<typeof r.next<"publish">>>, topic: string) => {
        expect([p.topic, String(p.payload)]).toEqual([topic, "keep"]);
        const { messageExpiryInterval, ...rest } = p.properties ?? {};
        expect(rest).toEqual({ ...properties, messageExpiryInterval: undefined });
        expect(messageExpiryInterval).toBeGreaterThanOrEqual(50); // what is left of the 60 s
        expect(messageExpiryInterval).toBeLessThanOrEqual(60);
      };
      const queued = await r.next("publish");
      check(queued, "rp/keep");
      r.send({ cmd: "puback", messageId: queued.messageId });
      const nats = await r.next("publish");
      expect([nats.topic, String(nats.payload), nats.qos, nats.properties?.userProperties]).toEqual(["rp/nkeep", "keep", 1, { k: "v" }]);
      expect(nats.properties?.messageExpiryInterval).toBeGreaterThanOrEqual(50);
      expect(nats.properties?.messageExpiryInterval).toBeLessThanOrEqual(60);
      r.send({ cmd: "puback", messageId: nats.messageId });
      const after = await r.next("publish");
      check(after, "rp/after");
      r.send({ cmd: "puback", messageId: after.messageId });
      // Retained ones follow the filters' order: rr/keep first means rr/short was skipped.
      r.send({ cmd: "subscribe", messageId: 2, subscriptions: [{ topic: "rr/short", qos: 1 }, { topic: "rr/keep", qos: 1 }] });
      await r.next("suback");
      const retained = await r.next("publish");
      check(retained, "rr/keep");
      expect(retained.retain).toBe(true);
    });
  });
