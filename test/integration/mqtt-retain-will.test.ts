// Retained messages and wills with MQTT.js, against meshbroker and nats-server 2.9.10:
// one retained message per topic, delivered on subscribe with the retain flag (live deliveries
// carry none), cleared by an empty retained PUBLISH, downgraded to the subscription's QoS; a
// will goes out when the connection drops without DISCONNECT (the socket destroyed), not after
// DISCONNECT (client.end()), and a retained will is kept for later subscribers.
import { describe, expect, it } from "vitest";
import { connect as natsConnect } from "nats";
import {
  closeOf, collect, connectMqtt, mqttSuiteTopologies, mqttTargets, noMessage, RawMqtt, startMqttBroker,
  type MqttServerOptions, type MqttTarget,
  startTarget, mqttUrl,
} from "../helpers/mqtt.js";
import { cleanupAfterEach } from "../helpers/wait.js";

const c = cleanupAfterEach();

const start = (target: MqttTarget, opts?: MqttServerOptions) => startTarget(c, target, opts);


describe.each(mqttTargets(mqttSuiteTopologies))("retained messages on $name", (target) => {
  it("stored per topic (the last one wins), delivered on subscribe with the retain flag", async () => {
    const s = await start(target);
    const pub = await connectMqtt(c, mqttUrl(s), { clientId: "ret-pub" });
    await pub.publishAsync("ret/1", "v1", { qos: 1, retain: true });
    await pub.publishAsync("ret/1", "v2", { qos: 1, retain: true });
    await pub.publishAsync("ret/2", "other", { qos: 1, retain: true });
    await pub.publishAsync("ret/3", "not-retained", { qos: 1 });
    const sub = await connectMqtt(c, mqttUrl(s), { clientId: "ret-sub" });
    const inbox = collect(sub);
    await sub.subscribeAsync("ret/+", { qos: 1 });
    const got = [await inbox.next(), await inbox.next()].sort((a, b) => a.topic.localeCompare(b.topic));
    expect(got.map((m) => [m.topic, m.payload, m.packet.retain, m.packet.qos])).toEqual([
      ["ret/1", "v2", true, 1],
      ["ret/2", "other", true, 1],
    ]);
    await noMessage(inbox, 200);
  });

  it("a retained PUBLISH reaches current subscribers without the retain flag [MQTT-3.3.1-9]", async () => {
    const s = await start(target);
    const sub = await connectMqtt(c, mqttUrl(s), { clientId: "live-sub" });
    const inbox = collect(sub);
    await sub.subscribeAsync("live/x", { qos: 1 });
    const pub = await connectMqtt(c, mqttUrl(s), { clientId: "live-pub" });
    await pub.publishAsync("live/x", "now", { qos: 1, retain: true });
    const m = await inbox.next();
    expect([m.payload, m.packet.retain]).toEqual(["now", false]);
  });

  it("an empty retained PUBLISH clears it: later subscribers get nothing", async () => {
    const s = await start(target);
    const pub = await connectMqtt(c, mqttUrl(s), { clientId: "clr-pub" });
    await pub.publishAsync("clr/x", "keep-me", { qos: 1, retain: true });
    const before = await connectMqtt(c, mqttUrl(s), { clientId: "clr-before" });
    const beforeInbox = collect(before);
    await before.subscribeAsync("clr/x", { qos: 0 });
    expect((await beforeInbox.next()).payload).toBe("keep-me");
    await pub.publishAsync("clr/x", "", { qos: 1, retain: true });
    const after = await connectMqtt(c, mqttUrl(s), { clientId: "clr-after" });
    const inbox = collect(after);
    await after.subscribeAsync("clr/x", { qos: 1 });
    await noMessage(inbox, 250);
  });

  it("retained messages are sent again when a subscription is repeated [MQTT-3.8.4-3]", async () => {
    const s = await start(target);
    const pub = await connectMqtt(c, mqttUrl(s), { clientId: "again-pub" });
    await pub.publishAsync("again/x", "twice", { qos: 1, retain: true });
    const sub = await connectMqtt(c, mqttUrl(s), { clientId: "again-sub" });
    const inbox = collect(sub);
    await sub.subscribeAsync("again/x", { qos: 0 });
    expect((await inbox.next()).payload).toBe("twice");
    await sub.subscribeAsync("again/x", { qos: 0 });
    const m = await inbox.next();
    expect([m.payload, m.packet.retain]).toEqual(["twice", true]);
  });

  it("a QoS 1 retained message is sent at the subscription's QoS 0, with the retain flag", async () => {
    const s = await start(target);
    const pub = await connectMqtt(c, mqttUrl(s), { clientId: "dg-pub" });
    await pub.publishAsync("dg/x", "qos1-retained", { qos: 1, retain: true });
    const sub0 = await connectMqtt(c, mqttUrl(s), { clientId: "dg-sub0" });
    const in0 = collect(sub0);
    await sub0.subscribeAsync("dg/x", { qos: 0 });
    const m0 = await in0.next();
    expect([m0.payload, m0.packet.qos, m0.packet.retain]).toEqual(["qos1-retained", 0, true]);
    // A QoS 0 retained message stays QoS 0 on a QoS 1 subscription.
    await pub.publishAsync("dg/y", "qos0-retained", { qos: 0, retain: true });
    const r = await RawMqtt.open(s.mqttPort, { clientId: "dg-raw" });
    c.push(() => r.c.close());
    r.c.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "dg/+", qos: 1 }] });
    await r.c.next("suback");
    const got = [await r.c.next("publish"), await r.c.next("publish")].sort((a, b) => a.topic.localeCompare(b.topic));
    expect(got.map((p) => [p.topic, p.qos, p.retain])).toEqual([["dg/x", 1, true], ["dg/y", 0, true]]);
  });
});

// nats-server 2.9 breaks this rule (a "#" subscriber also gets its internal $MQTT retained
// state); meshbroker is held to the spec.
describe.each(mqttSuiteTopologies)("MQTT 3.1.1 $-topic rule for retained messages on meshbroker (%s)", (topology) => {
  const target: MqttTarget = { name: `meshbroker (${topology})`, kind: "meshbroker", start: (o) => startMqttBroker(topology, o) };

  it("a retained $-topic is not sent for # [MQTT-4.7.2-1], but is for $sys/#", async () => {
    const s = await start(target);
    const pub = await connectMqtt(c, mqttUrl(s), { clientId: "rd-pub" });
    await pub.publishAsync("$sys/ret", "dollar-retained", { qos: 1, retain: true });
    await pub.publishAsync("plainret/x", "plain-retained", { qos: 1, retain: true });
    const all = await connectMqtt(c, mqttUrl(s), { clientId: "rd-all" });
    const inbox = collect(all);
    await all.subscribeAsync("#", { qos: 0 });
    const dollar = await connectMqtt(c, mqttUrl(s), { clientId: "rd-dollar" });
    const dollarInbox = collect(dollar);
    await dollar.subscribeAsync("$sys/#", { qos: 0 });
    expect(await dollarInbox.next()).toMatchObject({ topic: "$sys/ret", payload: "dollar-retained" });
    while (!inbox.all.some((m) => m.topic === "plainret/x")) await inbox.next();
    await new Promise((r) => setTimeout(r, 200)); // the other retained messages would have come by now
    expect(inbox.all.map((m) => m.topic).filter((t) => t.startsWith("$"))).toEqual([]);
  });
});

describe.each(mqttTargets(mqttSuiteTopologies))("wills on $name", (target) => {
  it("published when the connection drops without DISCONNECT (socket destroyed), to MQTT and NATS subscribers", async () => {
    const s = await start(target);
    const watcher = await connectMqtt(c, mqttUrl(s), { clientId: "will-watch" });
    const inbox = collect(watcher);
    await watcher.subscribeAsync("will/+", { qos: 1 });
    const nc = await natsConnect({ servers: `127.0.0.1:${s.natsPort}`, reconnect: false });
    c.push(() => nc.close());
    const nsub = nc.subscribe("will.*", { max: 1 });
    await nc.flush();
    const dying = await connectMqtt(c, mqttUrl(s), {
      clientId: "will-dying",
      will: { topic: "will/dying", payload: Buffer.from("gone"), qos: 1, retain: false },
    });
    dying.stream.destroy();
    const m = await inbox.next();
    expect([m.topic, m.payload, m.packet.qos, m.packet.retain]).toEqual(["will/dying", "gone", 1, false]);
    for await (const nm of nsub) expect([nm.subject, new TextDecoder().decode(nm.data)]).toEqual(["will.dying", "gone"]);
  });

  it("not published after DISCONNECT (client.end())", async () => {
    const s = await start(target);
    const watcher = await connectMqtt(c, mqttUrl(s), { clientId: "nowill-watch" });
    const inbox = collect(watcher);
    await watcher.subscribeAsync("will/#", { qos: 1 });
    const polite = await connectMqtt(c, mqttUrl(s), {
      clientId: "nowill-polite",
      will: { topic: "will/polite", payload: Buffer.from("should-not-see"), qos: 1, retain: false },
    });
    await polite.endAsync();
    await noMessage(inbox, 300);
  });

  it("published when the server closes the connection for a protocol violation", async () => {
    const s = await start(target);
    const watcher = await connectMqtt(c, mqttUrl(s), { clientId: "pv-watch" });
    const inbox = collect(watcher);
    await watcher.subscribeAsync("will/pv", { qos: 0 });
    const { c: r } = await RawMqtt.open(s.mqttPort, {
      clientId: "pv-client", will: { topic: "will/pv", payload: Buffer.from("violated"), qos: 0, retain: false },
    });
    c.push(() => r.close());
    r.send({ cmd: "publish", topic: "bad/#", payload: Buffer.from("x"), qos: 0, retain: false, dup: false });
    await r.closedWithin(2_000);
    expect((await inbox.next()).payload).toBe("violated");
  });

  it("a retained will is kept: a later subscriber gets it with the retain flag", async () => {
    const s = await start(target);
    const dying = await connectMqtt(c, mqttUrl(s), {
      clientId: "rwill-dying",
      will: { topic: "rwill/status", payload: Buffer.from("offline"), qos: 1, retain: true },
    });
    // A first subscriber proves the will went out before the later one subscribes.
    const first = await connectMqtt(c, mqttUrl(s), { clientId: "rwill-first" });
    const firstInbox = collect(first);
    await first.subscribeAsync("rwill/status", { qos: 1 });
    dying.stream.destroy();
    await closeOf(dying);
    expect((await firstInbox.next()).payload).toBe("offline");
    const later = await connectMqtt(c, mqttUrl(s), { clientId: "rwill-later" });
    const inbox = collect(later);
    await later.subscribeAsync("rwill/#", { qos: 1 });
    const m = await inbox.next();
    expect([m.topic, m.payload, m.packet.retain]).toEqual(["rwill/status", "offline", true]);
  });
});
