// MQTT 5 on the MQTT listeners, against meshbroker (each topology) and mosquitto 2.0 started side
// by side with the same scenario where mosquitto implements the feature (differential), with
// meshbroker alone where the behaviour is its own (auth pipeline, nats-server's 3.1.1 codes, the
// NATS side). Raw mqtt-packet clients at level 5 read exact reason codes and properties; MQTT.js
// with protocolVersion 5 and mosquitto_pub/sub -V mqttv5 are the real clients.
import { describe, expect, it } from "vitest";
import { connect as natsConnect, headers } from "nats";
import type { IConnectPacket, IPublishPacket } from "mqtt-packet";
import { mqttTopologies } from "../helpers/broker.js";
import {
  collect, connack, connectMqtt, mosquitto, MOSQUITTO_PUB, MOSQUITTO_SUB, mqtt5Targets, mqttUrl, noMessage, RawMqtt,
  startTarget, suback, type Inbox, type MqttServerOptions, type MqttTarget,
} from "../helpers/mqtt.js";
import { cleanupAfterEach, withTimeout } from "../helpers/wait.js";
import { newAccount, newOperator, newUser, operatorConfig } from "../helpers/creds.js";

const c = cleanupAfterEach();

const targets = mqtt5Targets(c, mqttTopologies);
const meshbrokers = targets.filter((t) => t.kind === "meshbroker");
const start = (target: MqttTarget, opts?: MqttServerOptions) => startTarget(c, target, opts);

const V5 = { protocolVersion: 5 } as const;

/** A level-5 raw client whose CONNECT must be accepted (closed on cleanup). */
async function open5(port: number, connect: Partial<IConnectPacket> = {}) {
  const r = await RawMqtt.open(port, { ...V5, clientId: "", ...connect });
  c.push(() => r.c.close());
  return r;
}

const publish = (topic: string, payload: string, more: Partial<IPublishPacket> = {}): IPublishPacket =>
  ({ cmd: "publish", topic, payload: Buffer.from(payload), qos: 0, retain: false, dup: false, ...more });

describe.each(targets)("MQTT 5 on $name", (target) => {
  it("CONNACK: reason code 0, an assigned client id for an empty one, the server's limits", async () => {
    const s = await start(target);
    const { connack: ack } = await open5(s.mqttPort);
    expect(ack.reasonCode).toBe(0);
    expect(ack.sessionPresent).toBe(false);
    expect(ack.properties?.assignedClientIdentifier).toMatch(/^\S+$/);
    if (target.kind === "meshbroker") {
      expect(ack.properties).toMatchObject({
        topicAliasMaximum: 64, retainAvailable: true, wildcardSubscriptionAvailable: true, subscriptionIdentifiersAvailable: true,
      });
      expect(ack.properties!.maximumPacketSize).toBeGreaterThan(1024 * 1024);
    }
    // A client id of its own: none assigned.
    const { connack: named } = await open5(s.mqttPort, { clientId: "v5-named" });
    expect(named.reasonCode).toBe(0);
    expect(named.properties?.assignedClientIdentifier).toBeUndefined();
  });

  it("MQTT.js protocolVersion 5: publish and subscribe at QoS 0, 1, 2 with reason code 0 on every ack", async () => {
    const s = await start(target);
    const sub = await connectMqtt(c, mqttUrl(s), { ...V5, clientId: "v5-sub" });
    const inbox = collect(sub);
    const granted = await sub.subscribeAsync("v5/+", { qos: 2 });
    expect(granted.map((g) => g.qos)).toEqual([2]);
    const pub = await connectMqtt(c, mqttUrl(s), { ...V5, clientId: "v5-pub" });
    const acks: number[] = [];
    pub.on("packetreceive", (p) => { if (p.cmd === "puback" || p.cmd === "pubrec" || p.cmd === "pubcomp") acks.push(p.reasonCode ?? 0); });
    for (const qos of [0, 1, 2] as const) await pub.publishAsync(`v5/q${qos}`, `m${qos}`, { qos });
    const got = [await inbox.next(), await inbox.next(), await inbox.next()];
    expect(got.map((m) => [m.topic, m.payload, m.packet.qos])).toEqual([["v5/q0", "m0", 0], ["v5/q1", "m1", 1], ["v5/q2", "m2", 2]]);
    expect(acks).toEqual([0, 0, 0]);
  });

  it("UNSUBACK has a reason code per filter: 0x00 removed, 0x11 no subscription existed", async () => {
    const s = await start(target);
    const { c: r } = await open5(s.mqttPort, { clientId: "v5-unsub" });
    r.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "u/a", qos: 0 }] });
    await r.next("suback");
    r.send({ cmd: "unsubscribe", messageId: 2, unsubscriptions: ["u/a", "u/none"] });
    expect((await r.next("unsuback")).granted).toEqual([0x00, 0x11]);
  });

  it("a second connection with the client id: the first gets DISCONNECT 0x8E (session taken over)", async () => {
    const s = await start(target);
    const { c: first } = await open5(s.mqttPort, { clientId: "v5-dup" });
    await open5(s.mqttPort, { clientId: "v5-dup" });
    await first.closedWithin(2_000);
    // mosquitto 2.0 closes the taken-over connection without a DISCONNECT.
    if (target.kind === "meshbroker") expect(first.packets.find((p) => p.cmd === "disconnect")).toMatchObject({ reasonCode: 0x8e });
  });

  it("DISCONNECT with reason 0x04 publishes the will; DISCONNECT 0x00 does not", async () => {
    const s = await start(target);
    const watcher = await connectMqtt(c, mqttUrl(s), { ...V5, clientId: "v5-watch" });
    const inbox = collect(watcher);
    await watcher.subscribeAsync("will/+", { qos: 1 });
    const will = (topic: string) => ({ topic, payload: Buffer.from(`gone:${topic}`), qos: 1 as const, retain: false });
    const { c: a } = await open5(s.mqttPort, { clientId: "v5-will-a", will: will("will/a") });
    const { c: b } = await open5(s.mqttPort, { clientId: "v5-will-b", will: will("will/b") });
    a.send({ cmd: "disconnect", reasonCode: 0x04 });
    b.send({ cmd: "disconnect", reasonCode: 0x00 });
    await Promise.all([a.closedWithin(2_000), b.closedWithin(2_000)]);
    expect(await inbox.next()).toMatchObject({ topic: "will/a", payload: "gone:will/a" });
    await noMessage(inbox, 250);
  });

  it("topic aliases from the client: a PUBLISH sets one, later ones use it with an empty topic", async () => {
    const s = await start(target);
    const sub = await connectMqtt(c, mqttUrl(s), { ...V5, clientId: "v5-alias-sub" });
    const inbox = collect(sub);
    await sub.subscribeAsync("alias/#", { qos: 1 });
    const { c: r } = await open5(s.mqttPort, { clientId: "v5-alias-pub" });
    r.send(publish("alias/long/topic", "one", { qos: 1, messageId: 1, properties: { topicAlias: 3 } }));
    r.send(publish("", "two", { qos: 1, messageId: 2, properties: { topicAlias: 3 } }));
    await r.next("puback");
    await r.next("puback");
    expect([await inbox.next(), await inbox.next()].map((m) => [m.topic, m.payload])).toEqual([
      ["alias/long/topic", "one"], ["alias/long/topic", "two"],
    ]);
    // An alias that was never set: DISCONNECT with protocol error.
    r.send(publish("", "three", { properties: { topicAlias: 4 } }));
    expect((await r.next("disconnect")).reasonCode).toBe(0x82);
    await r.closedWithin(2_000);
  });

  it("topic aliases to the client, within its topic alias maximum", async () => {
    const s = await start(target);
    const { c: r } = await open5(s.mqttPort, { clientId: "v5-alias-in", properties: { topicAliasMaximum: 1 } });
    r.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "ta/+", qos: 0 }] });
    await r.next("suback");
    const pub = await connectMqtt(c, mqttUrl(s), { ...V5, clientId: "v5-alias-out" });
    for (const t of ["ta/x", "ta/x", "ta/y"]) await pub.publishAsync(t, t, { qos: 1 });
    const got = [await r.next("publish"), await r.next("publish"), await r.next("publish")];
    const alias = got[0].properties?.topicAlias;
    // mosquitto may alias any topic; both must stay within the maximum and be decodable.
    const seen = new Map<number, string>();
    const topics = got.map((p) => {
      const a = p.properties?.topicAlias;
      if (a !== undefined) expect(a).toBe(1);
      if (p.topic !== "") { if (a !== undefined) seen.set(a, p.topic); return p.topic; }
      return seen.get(a!);
    });
    expect(topics).toEqual(["ta/x", "ta/x", "ta/y"]);
    if (target.kind === "meshbroker") {
      expect(alias).toBe(1);
      expect(got[1].topic).toBe("");
    }
  });

  it("a message over the client's maximum packet size is not sent, nor resent", async () => {
    const s = await start(target);
    const { c: r } = await open5(s.mqttPort, { clientId: "v5-small", clean: true, properties: { maximumPacketSize: 128 } });
    r.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "big/+", qos: 1 }] });
    await r.next("suback");
    const pub = await connectMqtt(c, mqttUrl(s), { ...V5, clientId: "v5-big" });
    await pub.publishAsync("big/a", "x".repeat(500), { qos: 1 });
    await pub.publishAsync("big/b", "small", { qos: 1 });
    const p = await r.next("publish");
    expect([p.topic, String(p.payload)]).toEqual(["big/b", "small"]);
    await r.none("publish", 250);
  });
});

describe.each(targets)("MQTT 5 message properties on $name", (target) => {
  const PROPS = {
    userProperties: { trace: "t-1", tag: ["x", "y"] }, contentType: "application/json",
    correlationData: Buffer.from([1, 2, 3, 250]), responseTopic: "answers/here", payloadFormatIndicator: true,
  };

  it("user properties, content type, correlation data, response topic and payload format reach MQTT 5 subscribers", async () => {
    const s = await start(target);
    const { c: sub } = await open5(s.mqttPort, { clientId: "props-sub" });
    sub.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "props/+", qos: 1 }] });
    await sub.next("suback");
    const { c: pub } = await open5(s.mqttPort, { clientId: "props-pub" });
    pub.send(publish("props/a", "{}", { qos: 1, messageId: 1, properties: PROPS }));
    const got = await sub.next("publish");
    expect(got.properties).toMatchObject(PROPS);
  });

  it("message expiry interval: a queued message past it is not delivered, one within it says what is left", async () => {
    const s = await start(target);
    const { c: away } = await open5(s.mqttPort, { clientId: "mx-sub", clean: false, properties: { sessionExpiryInterval: 60 } });
    away.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "mx/t", qos: 1 }] });
    await away.next("suback");
    away.send({ cmd: "disconnect", reasonCode: 0 });
    await away.closedWithin(2_000);
    const { c: pub } = await open5(s.mqttPort, { clientId: "mx-pub" });
    pub.send(publish("mx/t", "short", { qos: 1, messageId: 1, properties: { messageExpiryInterval: 1 } }));
    pub.send(publish("mx/t", "long", { qos: 1, messageId: 2, properties: { messageExpiryInterval: 60 } }));
    await pub.next("puback");
    await pub.next("puback");
    const sent = Date.now();
    // Past the short one's interval (mosquitto counts in whole seconds: up to one more).
    await new Promise((r) => setTimeout(r, Math.max(0, sent + (target.kind === "mosquitto" ? 2_300 : 1_300) - Date.now())));
    const { c: back } = await open5(s.mqttPort, { clientId: "mx-sub", clean: false, properties: { sessionExpiryInterval: 60 } });
    const m = await back.next("publish");
    expect(String(m.payload)).toBe("long");
    expect(m.properties?.messageExpiryInterval).toBeGreaterThanOrEqual(57);
    expect(m.properties?.messageExpiryInterval).toBeLessThanOrEqual(60);
    await back.none("publish", 200);
  });
});

describe.each(targets)("MQTT 5 subscription options on $name", (target) => {
  it("no local: a client's own publishes skip its no-local subscription, others' arrive", async () => {
    const s = await start(target);
    const { c: me } = await open5(s.mqttPort, { clientId: "nl-me" });
    me.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "nl/t", qos: 0, nl: true }] });
    await me.next("suback");
    me.send(publish("nl/t", "mine"));
    const { c: other } = await open5(s.mqttPort, { clientId: "nl-other" });
    other.send(publish("nl/t", "theirs"));
    expect(String((await me.next("publish")).payload)).toBe("theirs");
    await me.none("publish", 150);
  });

  it("retain as published keeps the retain flag of a live delivery; without it the flag is cleared", async () => {
    const s = await start(target);
    const { c: r } = await open5(s.mqttPort, { clientId: "rap-sub" });
    r.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "rap/a", qos: 0, rap: true }, { topic: "rap/b", qos: 0 }] });
    await r.next("suback");
    const pub = await connectMqtt(c, mqttUrl(s), { ...V5, clientId: "rap-pub" });
    await pub.publishAsync("rap/a", "a", { qos: 1, retain: true });
    await pub.publishAsync("rap/b", "b", { qos: 1, retain: true });
    const got = [await r.next("publish"), await r.next("publish")];
    expect(got.map((p) => [p.topic, p.retain])).toEqual([["rap/a", true], ["rap/b", false]]);
  });

  it("retain handling: 0 sends retained messages, 1 only for a new subscription, 2 never", async () => {
    const s = await start(target);
    const pub = await connectMqtt(c, mqttUrl(s), { ...V5, clientId: "rh-pub" });
    await pub.publishAsync("rh/t", "kept", { qos: 1, retain: true });
    const { c: r } = await open5(s.mqttPort, { clientId: "rh-sub" });
    const sub = async (id: number, rh: 0 | 1 | 2) => {
      r.send({ cmd: "subscribe", messageId: id, subscriptions: [{ topic: "rh/t", qos: 0, rh }] });
      await r.next("suback");
    };
    await sub(1, 2);
    await r.none("publish", 150);
    await sub(2, 1); // an existing subscription: nothing
    await r.none("publish", 150);
    r.send({ cmd: "unsubscribe", messageId: 3, unsubscriptions: ["rh/t"] });
    await r.next("unsuback");
    await sub(4, 1); // new: the retained message
    expect((await r.next("publish")).retain).toBe(true);
    await sub(5, 0);
    expect((await r.next("publish")).retain).toBe(true);
  });

  it("subscription identifiers come with each delivery the subscription matched", async () => {
    const s = await start(target);
    const { c: r } = await open5(s.mqttPort, { clientId: "sid-sub" });
    r.send({ cmd: "subscribe", messageId: 1, properties: { subscriptionIdentifier: 7 }, subscriptions: [{ topic: "sid/+", qos: 1 }] });
    await r.next("suback");
    const pub = await connectMqtt(c, mqttUrl(s), { ...V5, clientId: "sid-pub" });
    await pub.publishAsync("sid/x", "one", { qos: 1 });
    const p = await r.next("publish");
    expect([p.properties?.subscriptionIdentifier].flat()).toEqual([7]);
  });
});

describe.each(targets)("shared subscriptions on $name", (target) => {
  it("$share/{group}/{filter}: each message to one member (MQTT 5 and 3.1.1 members), plain subscribers get all", async () => {
    const s = await start(target);
    const members = [
      await connectMqtt(c, mqttUrl(s), { ...V5, clientId: "sh-5" }),
      await connectMqtt(c, mqttUrl(s), { clientId: "sh-4" }),
    ];
    const boxes = members.map(collect);
    for (const m of members) await m.subscribeAsync("$share/grp/sh/+", { qos: 1 });
    const plain = await connectMqtt(c, mqttUrl(s), { ...V5, clientId: "sh-plain" });
    const all = collect(plain);
    await plain.subscribeAsync("sh/+", { qos: 1 });
    const pub = await connectMqtt(c, mqttUrl(s), { ...V5, clientId: "sh-pub" });
    const n = 40;
    for (let i = 0; i < n; i++) await pub.publishAsync(`sh/${i % 3}`, `m${i}`, { qos: 1 });
    for (let i = 0; i < n; i++) await all.next();
    const shared = await takeAll(boxes, n);
    expect(shared.sort()).toEqual(Array.from({ length: n }, (_, i) => `m${i}`).sort());
    for (const b of boxes) expect(b.all.length, "every member gets some").toBeGreaterThan(0);
    for (const b of [...boxes, all]) await noMessage(b, 100);
  });
});

/** Waits until the inboxes hold `n` messages together, takes them; their payloads. */
async function takeAll(boxes: Inbox[], n: number, timeoutMs = 5_000): Promise<string[]> {
  await withTimeout((async () => {
    while (boxes.reduce((k, b) => k + b.all.length, 0) < n) await new Promise((r) => setTimeout(r, 10));
  })(), timeoutMs, () => `received ${boxes.map((b) => b.all.length).join("+")} of ${n}`);
  for (const b of boxes) for (let k = b.pending().length; k > 0; k--) await b.next();
  return boxes.flatMap((b) => b.all.map((m) => m.payload));
}

describe.each(meshbrokers)("MQTT 5 on $name: codes, the auth pipeline, the NATS side", (target) => {
  const USERS = `
authorization {
  users = [
    { user: alice, password: wonderland, permissions: { publish: ["ok.>"], subscribe: ["ok.>"] } }
    { user: std, password: std, allowed_connection_types: ["STANDARD"] }
  ]
}`;

  it("authentication failures: 0x86 bad user name or password, 0x87 not authorized; 3.1.1 keeps 5", async () => {
    const s = await start(target, { config: USERS });
    const refused = async (connect: Partial<IConnectPacket>) => {
      const { c: r, connack: ack } = await RawMqtt.open(s.mqttPort, { clientId: "x", ...connect });
      c.push(() => r.close());
      await r.closedWithin(2_000);
      return ack;
    };
    const bad = await refused({ ...V5, username: "alice", password: Buffer.from("nope") });
    expect(bad.reasonCode).toBe(0x86);
    expect(bad.properties?.reasonString).toBeTruthy();
    expect((await refused({ ...V5, username: "std", password: Buffer.from("std") })).reasonCode).toBe(0x87);
    expect((await refused({ username: "alice", password: Buffer.from("nope") })).returnCode).toBe(5);
    expect((await refused({ username: "std", password: Buffer.from("std") })).returnCode).toBe(5);
    // MQTT.js sees the same code.
    expect((await connack(c, mqttUrl(s), { ...V5, clientId: "js", username: "alice", password: "nope" })).returnCode).toBe(0x86);
  });

  it("permissions: PUBACK 0x87 for a denied publish, SUBACK 0x87 / 0x8F; the connection stays", async () => {
    const s = await start(target, { config: USERS });
    const { c: r, connack: ack } = await RawMqtt.open(s.mqttPort, { ...V5, clientId: "perm", username: "alice", password: Buffer.from("wonderland") });
    c.push(() => r.close());
    expect(ack.reasonCode).toBe(0);
    r.send(publish("ok/a", "yes", { qos: 1, messageId: 1 }));
    r.send(publish("no/a", "no", { qos: 1, messageId: 2 }));
    expect([await r.next("puback"), await r.next("puback")].map((p) => [p.messageId, p.reasonCode ?? 0])).toEqual([[1, 0], [2, 0x87]]);
    r.send({ cmd: "subscribe", messageId: 3, subscriptions: [{ topic: "ok/+", qos: 0 }, { topic: "no/+", qos: 0 }, { topic: "a/#/b", qos: 0 }] });
    expect((await r.next("suback")).granted).toEqual([0, 0x87, 0x8f]);
    expect(r.closedNow).toBe(false);
  });

  it("a receive maximum or maximum packet size of 0 is a protocol error: closed without CONNACK 0", async () => {
    const s = await start(target);
    for (const properties of [{ receiveMaximum: 0 }, { maximumPacketSize: 0 }]) {
      const r = await RawMqtt.connect(s.mqttPort, "127.0.0.1", 5);
      c.push(() => r.close());
      r.send({ cmd: "connect", protocolId: "MQTT", protocolVersion: 5, clean: true, clientId: "zero", keepalive: 0, properties });
      await r.closedWithin(2_000);
      expect(r.packets.filter((p) => p.cmd === "connack" && p.reasonCode === 0)).toEqual([]);
    }
  });

  it("keep-alive timeout: DISCONNECT 0x8D; shutdown (also at the end of lame duck): DISCONNECT 0x8B", async () => {
    const s = await start(target, { config: 'lame_duck_grace_period: "100ms"' });
    const { c: idle } = await open5(s.mqttPort, { clientId: "idle", keepalive: 1 });
    const { c: live } = await open5(s.mqttPort, { clientId: "live", keepalive: 0 });
    const t0 = Date.now();
    expect((await idle.next("disconnect", 4_000)).reasonCode).toBe(0x8d);
    console.log(`keep-alive 1 s: DISCONNECT 0x8D after ${Date.now() - t0} ms`);
    await s.broker!.broker.lameDuck();
    expect((await live.next("disconnect", 5_000)).reasonCode).toBe(0x8b);
    await live.closedWithin(2_000);
  });

  it("3.1.1 and 5 clients on one topic, and NATS subscribers, all get the messages", async () => {
    const s = await start(target);
    const v4 = await connectMqtt(c, mqttUrl(s), { clientId: "mix-4" });
    const v5 = await connectMqtt(c, mqttUrl(s), { ...V5, clientId: "mix-5" });
    const nc = await natsConnect({ port: s.natsPort });
    c.push(() => nc.close());
    const natsSub = nc.subscribe("mix.t");
    const [in4, in5] = [collect(v4), collect(v5)];
    await v4.subscribeAsync("mix/t", { qos: 1 });
    await v5.subscribeAsync("mix/t", { qos: 1 });
    await nc.flush();
    await v4.publishAsync("mix/t", "from-4", { qos: 1 });
    await v5.publishAsync("mix/t", "from-5", { qos: 1 });
    for (const inbox of [in4, in5]) expect([(await inbox.next()).payload, (await inbox.next()).payload]).toEqual(["from-4", "from-5"]);
    const it = natsSub[Symbol.asyncIterator]();
    expect([(await it.next()).value.string(), (await it.next()).value.string()]).toEqual(["from-4", "from-5"]);
  });

  it("MQTT.js protocolVersion 5 over WebSocket", async () => {
    const s = await start(target, { websocket: true });
    const client = await connectMqtt(c, `ws://127.0.0.1:${s.wsPort}/mqtt`, { ...V5, clientId: "v5-ws" });
    const inbox = collect(client);
    await client.subscribeAsync("ws/t", { qos: 1 });
    await client.publishAsync("ws/t", "over-ws", { qos: 1 });
    expect((await inbox.next()).payload).toBe("over-ws");
  });

  it("shared subscriptions: NATS queue subscribers of the group name join it; no retained messages; bad share names refused", async () => {
    const s = await start(target);
    const nc = await natsConnect({ port: s.natsPort });
    c.push(() => nc.close());
    const pub = await connectMqtt(c, mqttUrl(s), { ...V5, clientId: "q-pub" });
    await pub.publishAsync("q/kept", "retained", { qos: 1, retain: true });
    let natsGot = 0;
    nc.subscribe("q.*", { queue: "workers", callback: () => { natsGot++; } });
    await nc.flush();
    const member = await connectMqtt(c, mqttUrl(s), { ...V5, clientId: "q-member" });
    const box = collect(member);
    await member.subscribeAsync("$share/workers/q/+", { qos: 1 });
    const n = 40;
    for (let i = 0; i < n; i++) await pub.publishAsync("q/x", `m${i}`, { qos: 1 });
    await withTimeout((async () => {
      while (box.all.length + natsGot < n) await new Promise((r) => setTimeout(r, 10));
    })(), 5_000, () => `MQTT ${box.all.length} + NATS ${natsGot} of ${n}`);
    expect(box.all.every((m) => m.payload !== "retained")).toBe(true);
    expect(box.all.length).toBeGreaterThan(0);
    expect(natsGot).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 100)); // nothing more arrives
    expect(box.all.length + natsGot).toBe(n);
    const { c: r } = await open5(s.mqttPort, { clientId: "q-bad" });
    r.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "$share/g", qos: 0 }, { topic: "$share/g+/a", qos: 0 }, { topic: "$share//a", qos: 0 }] });
    expect((await r.next("suback")).granted).toEqual([0x8f, 0x8f, 0x8f]);
    const v4 = await connectMqtt(c, mqttUrl(s), { clientId: "q-bad-4" });
    expect(await suback(v4, { "$share/g": { qos: 0 }, "$share/ok/a": { qos: 1 } })).toEqual([0x80, 1]);
  });

  it("NATS ↔ MQTT 5: user properties are headers, content type and correlation data are Nmqtt- headers, the response topic is the reply subject", async () => {
    const s = await start(target);
    const nc = await natsConnect({ port: s.natsPort });
    c.push(() => nc.close());
    const natsSub = nc.subscribe("np.>", { max: 1 });
    await nc.flush();
    const { c: pub } = await open5(s.mqttPort, { clientId: "np-pub" });
    pub.send(publish("np/a", "hi", {
      qos: 1, messageId: 1,
      properties: { userProperties: { trace: "t-1", tag: ["x", "y"] }, contentType: "text/plain", correlationData: Buffer.from("c-1"), responseTopic: "np/reply/here" },
    }));
    const m = (await natsSub[Symbol.asyncIterator]().next()).value!;
    expect(m.reply).toBe("np.reply.here");
    expect(m.headers?.get("Nmqtt-Pub")).toBe("1");
    expect(m.headers?.get("trace")).toBe("t-1");
    expect(m.headers?.values("tag")).toEqual(["x", "y"]);
    expect(m.headers?.get("Nmqtt-Content-Type")).toBe("text/plain");
    expect(Buffer.from(m.headers!.get("Nmqtt-Correlation-Data"), "base64").toString()).toBe("c-1");
    // NATS → MQTT 5: headers become user properties, Nmqtt- headers their properties.
    const { c: sub } = await open5(s.mqttPort, { clientId: "np-sub" });
    sub.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "from/nats", qos: 0 }] });
    await sub.next("suback");
    const h = headers();
    h.append("trace", "n-1");
    h.append("Nmqtt-Content-Type", "text/csv");
    nc.publish("from.nats", "a,b", { headers: h, reply: "reply.to.me" });
    const got = await sub.next("publish");
    expect(got.properties).toMatchObject({ userProperties: { trace: "n-1" }, contentType: "text/csv", responseTopic: "reply/to/me" });
  });

  it("request/reply both ways: an MQTT 5 client answers a NATS request, and makes one a NATS service answers", async () => {
    const s = await start(target);
    const nc = await natsConnect({ port: s.natsPort });
    c.push(() => nc.close());
    const responder = await connectMqtt(c, mqttUrl(s), { ...V5, clientId: "rr-responder" });
    responder.on("message", (_topic, payload, packet) => {
      const rt = packet.properties?.responseTopic;
      if (rt) responder.publish(rt, `echo:${payload}`, { qos: 0, properties: { correlationData: packet.properties?.correlationData } });
    });
    await responder.subscribeAsync("svc/echo", { qos: 0 });
    const answer = await nc.request("svc.echo", "ping", { timeout: 3_000 });
    expect(answer.string()).toBe("echo:ping");
    // The other way: a NATS service, an MQTT 5 requester with a response topic and correlation data.
    nc.subscribe("svc.time", { callback: (_err, m) => m.respond("now") });
    await nc.flush();
    const { c: req } = await open5(s.mqttPort, { clientId: "rr-requester" });
    req.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "rr/inbox", qos: 0 }] });
    await req.next("suback");
    req.send(publish("svc/time", "?", { properties: { responseTopic: "rr/inbox", correlationData: Buffer.from("q-7") } }));
    const reply = await req.next("publish");
    expect([reply.topic, String(reply.payload)]).toEqual(["rr/inbox", "now"]);
  });

  it("operator mode: a bearer user JWT as the password connects; garbage gets 0x86, a JWT for STANDARD only 0x87", async () => {
    const op = await newOperator();
    const acc = await newAccount(op, "MQTT5ACC");
    const bearer = await newUser(acc, "bearer5", { bearer_token: true });
    const stdOnly = await newUser(acc, "std5", { bearer_token: true, allowed_connection_types: ["STANDARD"] });
    const s = await start(target, { config: operatorConfig(op, [acc]) });
    const code = (password: string, clientId: string) => connack(c, mqttUrl(s), { ...V5, clientId, username: "x", password });
    expect((await code(bearer.jwt, "jwt-1")).returnCode).toBe(0);
    expect((await code("not-a-jwt", "jwt-2")).returnCode).toBe(0x86);
    expect((await code(stdOnly.jwt, "jwt-3")).returnCode).toBe(0x87);
  });

  it("mosquitto_sub and mosquitto_pub -V mqttv5", async () => {
    const s = await start(target);
    const sub = mosquitto(c, MOSQUITTO_SUB, ["-V", "mqttv5", "-h", "127.0.0.1", "-p", String(s.mqttPort), "-t", "mosq/v5", "-q", "1", "-d", "-C", "1"]);
    await sub.waitFor(/SUBACK/);
    const pub = mosquitto(c, MOSQUITTO_PUB, ["-V", "mqttv5", "-h", "127.0.0.1", "-p", String(s.mqttPort), "-t", "mosq/v5", "-q", "1", "-m", "hello-v5"]);
    expect((await pub.exitWithin(5_000)).code).toBe(0);
    await sub.waitFor(/^hello-v5$/);
    expect((await sub.exitWithin(5_000)).code).toBe(0);
  });
});
