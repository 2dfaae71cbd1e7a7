// MQTT sessions with MQTT.js and the raw mqtt-packet client: a persistent session (clean = false)
// keeps its subscriptions and queues QoS 1 messages while the client is away, and CONNACK says
// sessionPresent when it returns; a clean session neither finds nor leaves anything; a second
// connection with the same client id takes the session over and the first is closed. Compared
// with nats-server 2.9.10 where it has the feature. meshbroker only: unacknowledged QoS 1/2
// state resent on reconnect [MQTT-4.4.0-1], exactly-once across a reconnect, and the LevelDB
// store (`mqtt { store_dir }`) keeping sessions, queues and retained messages across a restart.
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { mqttTopologies } from "../helpers/broker.js";
import { startBrokerProcess } from "../helpers/process.js";
import { startRedis } from "../helpers/redis.js";
import { Redis } from "ioredis";
import { loadConfigText } from "../../services/common/config/index.js";
import { silentLogger } from "../../services/common/log.js";
import { startEmbedded } from "../../services/embedded.js";
import { openRedisStore } from "../../services/router/store/redis.js";
import {
  closeOf, collect, connack, connectMqtt, mqttSuiteTopologies, mqttTargets, noMessage, RawMqtt, startMqttBroker, tempDir,
  type MqttServer, type MqttServerOptions, type MqttTarget,
  startTarget, mqttUrl,
} from "../helpers/mqtt.js";
import { cleanupAfterEach } from "../helpers/wait.js";

const c = cleanupAfterEach();

const start = (target: MqttTarget, opts?: MqttServerOptions) => startTarget(c, target, opts);

const text = (b: Buffer | Uint8Array | string) => (typeof b === "string" ? b : Buffer.from(b).toString("utf8"));

async function rawClient(s: MqttServer, clientId: string, clean: boolean): Promise<{ r: RawMqtt; sessionPresent: boolean }> {
  const { c: r, sessionPresent } = await RawMqtt.accepted(c, s.mqttPort, { clientId, clean });
  return { r, sessionPresent };
}

describe.each(mqttTargets(mqttSuiteTopologies))("sessions on $name", (target) => {
  it("clean=false: subscriptions kept and QoS 1 messages queued while away; sessionPresent on return", async () => {
    const s = await start(target);
    const first = await connectMqtt(c, mqttUrl(s), { clientId: "persist-1", clean: false });
    expect(first.connected).toBe(true);
    await first.subscribeAsync("ps/#", { qos: 1 });
    await first.endAsync();
    const pub = await connectMqtt(c, mqttUrl(s), { clientId: "persist-1-pub" });
    await pub.publishAsync("ps/a", "while-away-1", { qos: 1 });
    await pub.publishAsync("ps/b", "while-away-2", { qos: 1 });
    // Back, without subscribing again.
    const { r, sessionPresent } = await rawClient(s, "persist-1", false);
    expect(sessionPresent).toBe(true);
    const m1 = await r.next("publish");
    const m2 = await r.next("publish");
    expect([[m1.topic, text(m1.payload), m1.qos], [m2.topic, text(m2.payload), m2.qos]]).toEqual([
      ["ps/a", "while-away-1", 1],
      ["ps/b", "while-away-2", 1],
    ]);
    r.send({ cmd: "puback", messageId: m1.messageId });
    r.send({ cmd: "puback", messageId: m2.messageId });
    // The subscription is live again too.
    await pub.publishAsync("ps/c", "live", { qos: 1 });
    expect(text((await r.next("publish")).payload)).toBe("live");
  });

  it("clean=true: sessionPresent=false, nothing queued for it, and the old persistent session is gone", async () => {
    const s = await start(target);
    const first = await connectMqtt(c, mqttUrl(s), { clientId: "cleaner", clean: false });
    await first.subscribeAsync("cl/#", { qos: 1 });
    await first.endAsync();
    const pub = await connectMqtt(c, mqttUrl(s), { clientId: "cleaner-pub" });
    await pub.publishAsync("cl/x", "queued-for-old-session", { qos: 1 });
    const clean = await connectMqtt(c, mqttUrl(s), { clientId: "cleaner", clean: true });
    const inbox = collect(clean);
    expect(clean.connected).toBe(true);
    await noMessage(inbox, 250);
    await clean.endAsync();
    // The clean session ended the persistent one: no session to find any more.
    expect(await connack(c, mqttUrl(s), { clientId: "cleaner", clean: false })).toEqual({ returnCode: 0, sessionPresent: false });
  });

  it("clean=true reports sessionPresent=false even on the client's first persistent-less connect", async () => {
    const s = await start(target);
    expect(await connack(c, mqttUrl(s), { clientId: "fresh", clean: true })).toEqual({ returnCode: 0, sessionPresent: false });
    expect(await connack(c, mqttUrl(s), { clientId: "fresh2", clean: false })).toEqual({ returnCode: 0, sessionPresent: false });
  });

  it("a second connection with the same client id takes the session over; the first is closed", async () => {
    const s = await start(target);
    const first = await connectMqtt(c, mqttUrl(s), { clientId: "twin", clean: false });
    const firstClosed = closeOf(first, 3_000);
    await first.subscribeAsync("tw/x", { qos: 1 });
    const { r: second, sessionPresent } = await rawClient(s, "twin", false);
    expect(sessionPresent).toBe(true);
    await firstClosed;
    // The session's subscription now delivers to the second connection.
    const pub = await connectMqtt(c, mqttUrl(s), { clientId: "twin-pub" });
    await pub.publishAsync("tw/x", "to-second", { qos: 1 });
    expect(text((await second.next("publish")).payload)).toBe("to-second");
  });

  it("the will of a taken-over connection is not published (nats-server 2.9 behaviour)", async () => {
    const s = await start(target);
    const watcher = await connectMqtt(c, mqttUrl(s), { clientId: "tw-watch" });
    const inbox = collect(watcher);
    await watcher.subscribeAsync("tw/will", { qos: 1 });
    const first = await connectMqtt(c, mqttUrl(s), {
      clientId: "twin-will", will: { topic: "tw/will", payload: Buffer.from("evicted"), qos: 1, retain: false },
    });
    const firstClosed = closeOf(first, 3_000);
    await rawClient(s, "twin-will", true);
    await firstClosed;
    await noMessage(inbox, 300);
  });
});

describe.each(mqttSuiteTopologies)("session state on meshbroker (%s)", (topology) => {
  async function broker(opts: MqttServerOptions = {}): Promise<MqttServer> {
    const s = await startMqttBroker(topology, opts);
    c.push(() => s.stop());
    return s;
  }

  it("an unacknowledged QoS 1 PUBLISH is resent with DUP and its packet id on reconnect [MQTT-4.4.0-1]", async () => {
    const s = await broker();
    const { r } = await rawClient(s, "resend-1", false);
    r.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "rs/x", qos: 1 }] });
    await r.next("suback");
    const pub = await connectMqtt(c, mqttUrl(s), { clientId: "resend-1-pub" });
    await pub.publishAsync("rs/x", "unacked", { qos: 1 });
    const p = await r.next("publish");
    expect(p.dup).toBe(false);
    await r.close();
    const { r: back, sessionPresent } = await rawClient(s, "resend-1", false);
    expect(sessionPresent).toBe(true);
    const again = await back.next("publish");
    expect([text(again.payload), again.messageId, again.dup, again.qos]).toEqual(["unacked", p.messageId, true, 1]);
    back.send({ cmd: "puback", messageId: again.messageId });
    await back.none("publish", 200);
  });

  it("QoS 2 outbound: after PUBREC the PUBREL is resent on reconnect, not the PUBLISH", async () => {
    const s = await broker();
    const { r } = await rawClient(s, "resend-2", false);
    r.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "rs/two", qos: 2 }] });
    await r.next("suback");
    const pub = await connectMqtt(c, mqttUrl(s), { clientId: "resend-2-pub" });
    await pub.publishAsync("rs/two", "two", { qos: 2 });
    const p = await r.next("publish");
    r.send({ cmd: "pubrec", messageId: p.messageId });
    expect((await r.next("pubrel")).messageId).toBe(p.messageId);
    await r.close();
    const { r: back } = await rawClient(s, "resend-2", false);
    expect((await back.next("pubrel")).messageId).toBe(p.messageId);
    back.send({ cmd: "pubcomp", messageId: p.messageId });
    await back.none("publish", 200);
  });

  it("QoS 2 inbound: a PUBLISH re-sent (DUP) after a reconnect, before PUBREL, is delivered once", async () => {
    const s = await broker();
    const sub = await connectMqtt(c, mqttUrl(s), { clientId: "eo-rc-sub" });
    const inbox = collect(sub);
    await sub.subscribeAsync("eo/rc", { qos: 2 });
    const publish = { cmd: "publish" as const, topic: "eo/rc", payload: Buffer.from("once"), qos: 2 as const, messageId: 31, retain: false, dup: false };
    const { r } = await rawClient(s, "eo-rc-pub", false);
    r.send(publish);
    await r.next("pubrec");
    await r.close();
    const { r: back } = await rawClient(s, "eo-rc-pub", false);
    back.send({ ...publish, dup: true });
    expect((await back.next("pubrec")).messageId).toBe(31);
    back.send({ cmd: "pubrel", messageId: 31 });
    expect((await back.next("pubcomp")).messageId).toBe(31);
    expect((await inbox.next()).payload).toBe("once");
    await noMessage(inbox, 250);
  });
});

// Not on the cluster: it restarts the in-process broker on its store; the cluster's restarts are in cluster-mqtt and chaos-mqtt.
describe.each(mqttTopologies)("persistence across a restart on meshbroker (%s)", (topology) => {
  it("store_dir: the session, its queued QoS 1 message and a retained message survive the restart", async () => {
    const dir = await tempDir(c);
    const mqtt = `store_dir: "${dir}"`;
    const a = await startMqttBroker(topology, { mqtt });
    let aStopped = false;
    c.push(() => (aStopped ? undefined : a.stop()));

    const away = await connectMqtt(c, mqttUrl(a), { clientId: "survivor", clean: false });
    await away.subscribeAsync("st/q", { qos: 1 });
    await away.endAsync();
    const pub = await connectMqtt(c, mqttUrl(a), { clientId: "st-pub" });
    await pub.publishAsync("st/q", "queued-before-restart", { qos: 1 });
    await pub.publishAsync("st/r", "retained-before-restart", { qos: 1, retain: true });
    await pub.endAsync();
    await a.stop();
    aStopped = true;

    const b = await startMqttBroker(topology, { mqtt });
    c.push(() => b.stop());
    const { r, sessionPresent } = await rawClient(b, "survivor", false);
    expect(sessionPresent).toBe(true);
    const m = await r.next("publish");
    expect([m.topic, text(m.payload), m.qos]).toEqual(["st/q", "queued-before-restart", 1]);
    r.send({ cmd: "puback", messageId: m.messageId });
    // The restored subscription is live.
    const pub2 = await connectMqtt(c, mqttUrl(b), { clientId: "st-pub2" });
    await pub2.publishAsync("st/q", "after-restart", { qos: 1 });
    expect(text((await r.next("publish")).payload)).toBe("after-restart");

    const newcomer = await connectMqtt(c, mqttUrl(b), { clientId: "st-new" });
    const inbox = collect(newcomer);
    await newcomer.subscribeAsync("st/r", { qos: 1 });
    const kept = await inbox.next();
    expect([kept.topic, kept.payload, kept.packet.retain, kept.packet.qos]).toEqual(["st/r", "retained-before-restart", true, 1]);
  });

  it("store_dir: a delivered but unacknowledged QoS 1 message is resent after the restart, with DUP and its packet id", async () => {
    const dir = await tempDir(c);
    const mqtt = `store_dir: "${dir}"`;
    const a = await startMqttBroker(topology, { mqtt });
    let aStopped = false;
    c.push(() => (aStopped ? undefined : a.stop()));
    const { r } = await rawClient(a, "inflight", false);
    r.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "st/in", qos: 1 }] });
    await r.next("suback");
    const pub = await connectMqtt(c, mqttUrl(a), { clientId: "st-in-pub" });
    await pub.publishAsync("st/in", "in-flight", { qos: 1 });
    const first = await r.next("publish");
    expect(text(first.payload)).toBe("in-flight");
    await pub.endAsync();
    await r.close();
    await a.stop();
    aStopped = true;

    const b = await startMqttBroker(topology, { mqtt });
    c.push(() => b.stop());
    const { r: back, sessionPresent } = await rawClient(b, "inflight", false);
    expect(sessionPresent).toBe(true);
    const again = await back.next("publish");
    // [MQTT-4.4.0-1] the original packet id, and DUP since it was sent before.
    expect([text(again.payload), again.qos, again.messageId, again.dup]).toEqual(["in-flight", 1, first.messageId, true]);
    back.send({ cmd: "puback", messageId: again.messageId });
    await back.none("publish", 200);
  });

  it("store_dir: a clean session leaves nothing behind for the next run", async () => {
    const dir = await tempDir(c);
    const mqtt = `store_dir: "${dir}"`;
    const a = await startMqttBroker(topology, { mqtt });
    let aStopped = false;
    c.push(() => (aStopped ? undefined : a.stop()));
    const cl = await connectMqtt(c, mqttUrl(a), { clientId: "ephemeral", clean: true });
    await cl.subscribeAsync("st/e", { qos: 1 });
    await cl.endAsync();
    await a.stop();
    aStopped = true;
    const b = await startMqttBroker(topology, { mqtt });
    c.push(() => b.stop());
    expect(await connack(c, mqttUrl(b), { clientId: "ephemeral", clean: false })).toEqual({ returnCode: 0, sessionPresent: false });
  });
});

// Not on the cluster: LevelDB in one process; kill -9 of a router or an edge is in cluster-mqtt and chaos-mqtt.
describe.each(mqttTopologies)("a crash right after the acks (%s; SIGKILL of the real process, LevelDB store)", (topology) => {
  // PUBACK means stored: the copies queued for an offline persistent session, and a retained
  // message, are in the store before the publisher hears its ack, so killing the process at that
  // moment loses nothing.
  it("every acknowledged QoS 1 message, queued or retained, is there after the restart", async () => {
    const dir = await tempDir(c);
    const config = await writeConfig(dir, `host: 127.0.0.1\nport: -1\nserver_name: crash\n` +
      `mqtt { host: 127.0.0.1, port: -1, store_dir: "${path.join(dir, "store")}" }\n`);
    const startProcess = async () => {
      const { proc } = await startBrokerProcess(["-c", config], { env: { ...process.env, MESHBROKER_TEST_TOPOLOGY: topology } });
      c.push(() => proc.kill());
      const port = Number((await proc.waitForLine(/listening for MQTT clients on tcp:\/\/\S+:(\d+)$/))[1]);
      return { proc, port, url: `mqtt://127.0.0.1:${port}` };
    };
    let broker = await startProcess();

    const away = await connectMqtt(c, broker.url, { clientId: "crash-sub", clean: false });
    await away.subscribeAsync("crash/q", { qos: 1 });
    await away.endAsync();

    const COUNT = 200;
    const pub = await connectMqtt(c, broker.url, { clientId: "crash-pub", reconnectPeriod: 0 });
    const acked = Array.from({ length: COUNT }, (_, i) => pub.publishAsync("crash/q", `m${i}`, { qos: 1 }));
    acked.push(pub.publishAsync("crash/kept", "retained", { qos: 1, retain: true }));
    await Promise.all(acked);
    broker.proc.child.kill("SIGKILL"); // at once: no shutdown, no flush
    await broker.proc.exited;

    broker = await startProcess();
    const { c: back, sessionPresent } = await RawMqtt.accepted(c, broker.port, { clientId: "crash-sub", clean: false });
    expect(sessionPresent).toBe(true);
    const got: string[] = [];
    for (let i = 0; i < COUNT; i++) {
      const m = await back.next("publish");
      got.push(text(m.payload));
      back.send({ cmd: "puback", messageId: m.messageId });
    }
    expect(got).toEqual(Array.from({ length: COUNT }, (_, i) => `m${i}`));

    const late = await connectMqtt(c, broker.url, { clientId: "crash-late" });
    const inbox = collect(late);
    await late.subscribeAsync("crash/kept", { qos: 1 });
    const kept = await inbox.next();
    expect([kept.payload, kept.packet.retain]).toEqual(["retained", true]);
  });
});

async function writeConfig(dir: string, text: string): Promise<string> {
  const file = path.join(dir, "broker.conf");
  await writeFile(file, text);
  return file;
}

// Not on the cluster: it stalls the store under an in-process broker; chaos-mqtt stops the cluster's Redis instead.
describe.each(mqttTopologies)("the publisher's ack waits for the store (%s)", (topology) => {
  /** An edge on a real redis-server's store, with a persistent QoS 1 subscriber of acks/q away,
   *  and a second Redis connection to make the store stall or refuse writes. */
  async function redisBroker(): Promise<{ port: number; url: string; control: Redis }> {
    const redis = await startRedis();
    c.push(() => redis.stop());
    const store = await openRedisStore(redis.url);
    const { options } = loadConfigText("host: 127.0.0.1\nport: -1\nserver_name: acks\nmqtt { host: 127.0.0.1, port: -1 }\n", "acks.conf", {});
    c.push(() => store.close());
    const broker = await startEmbedded(options, silentLogger(), topology, store);
    c.push(() => broker.stop());
    const port = broker.mqttPort!, url = `mqtt://127.0.0.1:${port}`;
    const away = await connectMqtt(c, url, { clientId: "acks-sub", clean: false });
    await away.subscribeAsync("acks/q", { qos: 1 });
    await away.endAsync();
    const control = new Redis(redis.port, "127.0.0.1");
    c.push(() => control.quit());
    return { port, url, control };
  }

  async function backSubscriber(port: number): Promise<RawMqtt> {
    return (await RawMqtt.accepted(c, port, { clientId: "acks-sub", clean: false })).c;
  }

  // Redis stops executing writes (CLIENT PAUSE WRITE) while the broker routes a QoS 1 message
  // to an offline persistent session: the PUBACK must not come before the queued copy is stored.
  it("no PUBACK while the store cannot write; it comes once the write is done", async () => {
    const { port, url, control } = await redisBroker();
    const pub = await connectMqtt(c, url, { clientId: "acks-pub" });
    await control.call("CLIENT", "PAUSE", "10000", "WRITE");
    c.push(() => control.call("CLIENT", "UNPAUSE"));
    const ack = pub.publishAsync("acks/q", "stored first", { qos: 1 }).then(() => "acked");
    // 300 ms is ample time for the broker to ack, if it acked without the store.
    const early = await Promise.race([ack, new Promise((resolve) => setTimeout(() => resolve("waiting"), 300))]);
    expect(early, "PUBACK before the queued copy was stored").toBe("waiting");
    await control.call("CLIENT", "UNPAUSE");
    expect(await ack).toBe("acked");
    expect(text((await (await backSubscriber(port)).next("publish")).payload)).toBe("stored first");
  });

  // Redis refuses writes over maxmemory (noeviction): the queued copy cannot be stored.
  it("a message the store refuses gets no PUBACK: the connection closes, and the resend is stored and acked", async () => {
    const { port, control } = await redisBroker();
    const { c: pub } = await RawMqtt.accepted(c, port, { clientId: "acks-pub" });
    await control.call("CONFIG", "SET", "maxmemory-policy", "noeviction");
    await control.call("CONFIG", "SET", "maxmemory", "1");
    c.push(() => control.call("CONFIG", "SET", "maxmemory", "0"));
    pub.send({ cmd: "publish", topic: "acks/q", payload: Buffer.from("kept"), qos: 1, messageId: 7, retain: false, dup: false });
    await pub.closedWithin(5_000);
    expect(pub.packets.filter((p) => p.cmd === "puback")).toEqual([]);

    await control.call("CONFIG", "SET", "maxmemory", "0");
    const { c: again } = await RawMqtt.accepted(c, port, { clientId: "acks-pub" });
    again.send({ cmd: "publish", topic: "acks/q", payload: Buffer.from("kept"), qos: 1, messageId: 7, retain: false, dup: true });
    expect((await again.next("puback")).messageId).toBe(7);
    expect(text((await (await backSubscriber(port)).next("publish")).payload)).toBe("kept");
  });
});
