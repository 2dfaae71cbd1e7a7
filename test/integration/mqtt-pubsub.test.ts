// MQTT SUBSCRIBE / PUBLISH with real clients (MQTT.js, nats.js) and the raw mqtt-packet client
// where exact packets matter (no PUBACK, DUP re-sends, packet ids), against meshbroker and,
// where the comparison means something, nats-server 2.9.10: SUBACK grants and 0x80 refusals
// (invalid filters, subscribe permissions, QoS 1 needing "$MQTT.sub.>"), UNSUBSCRIBE, QoS 0/1
// publishes, redelivery with DUP after ack_wait, the max_ack_pending window, the topic ↔ subject
// mapping in both directions with the Nmqtt-Pub header, publish permissions (dropped, connection
// kept), subscribe deny lists on delivery, the parent level a "foo/#" filter also subscribes,
// a repeated SUBSCRIBE replacing the first. QoS 2 (PUBREC/PUBREL/PUBCOMP, exactly once) is
// meshbroker's: nats-server 2.9 closes the connection on a QoS 2 PUBLISH. The $-topic rule
// [MQTT-4.7.2-1], which nats-server 2.9 does not follow, is checked on meshbroker only.
import { describe, expect, it } from "vitest";
import { headers as natsHeaders, type Msg, type NatsConnection, type Subscription } from "nats";
import {
  collect, connectMqtt, mqttSuiteTopologies, mqttTargets, noMessage, RawMqtt, startMqttBroker, suback,
  type MqttServer, type MqttServerOptions, type MqttTarget,
  startTarget, mqttUrl,
} from "../helpers/mqtt.js";
import { cleanupAfterEach } from "../helpers/wait.js";
import { natsClient } from "../helpers/clients.js";

const c = cleanupAfterEach();

const start = (target: MqttTarget, opts?: MqttServerOptions) => startTarget(c, target, opts);


async function rawClient(s: MqttServer, clientId: string, extra: Parameters<typeof RawMqtt.open>[1] = {}): Promise<RawMqtt> {
  return (await RawMqtt.accepted(c, s.mqttPort, { clientId, ...extra })).c;
}

async function rawSubscribe(r: RawMqtt, topic: string, qos: 0 | 1 | 2, messageId = 1): Promise<number[]> {
  r.send({ cmd: "subscribe", messageId, subscriptions: [{ topic, qos }] });
  const ack = await r.next("suback");
  expect(ack.messageId).toBe(messageId);
  return ack.granted as number[];
}

async function nats(s: MqttServer, opts: { user?: string; pass?: string } = {}): Promise<NatsConnection> {
  return natsClient(c, s.natsPort, opts);
}

/** A nats.js subscription whose messages are queued; `next` takes them in order. */
function natsInbox(nc: NatsConnection, subject: string): { msgs: Msg[]; sub: Subscription; next(timeoutMs?: number): Promise<Msg> } {
  const msgs: Msg[] = [];
  let taken = 0;
  const waiters = new Set<() => void>();
  const sub = nc.subscribe(subject, {
    callback: (err, m) => {
      if (err) return;
      msgs.push(m);
      for (const w of [...waiters]) w();
    },
  });
  return {
    msgs,
    sub,
    next(timeoutMs = 3_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (taken < msgs.length) {
            done();
            resolve(msgs[taken++]);
          }
        };
        const timer = setTimeout(() => { done(); reject(new Error(`no NATS message on ${subject}`)); }, timeoutMs);
        const done = () => { clearTimeout(timer); waiters.delete(check); };
        waiters.add(check);
        check();
      });
    },
  };
}

const text = (b: Uint8Array | Buffer | string | undefined) => (typeof b === "string" ? b : Buffer.from(b ?? []).toString("utf8"));

const PERM_USERS = `
authorization {
  users = [
    { user: admin, password: admin }
    { user: sub0, password: sub0, permissions: { subscribe: ["a.>"] } }
    { user: sub1, password: sub1, permissions: { subscribe: ["a.>", "$MQTT.sub.>"] } }
    { user: pub, password: pub, permissions: { publish: ["ok.>"] } }
    { user: nosecret, password: nosecret, permissions: { subscribe: { allow: ["sec.>"], deny: ["sec.secret"] } } }
  ]
}`;

describe.each(mqttTargets(mqttSuiteTopologies))("SUBSCRIBE on $name", (target) => {
  it("grants QoS 0 and 1 as asked; QoS 2 is granted 2 by meshbroker, 1 by nats-server 2.9", async () => {
    const s = await start(target);
    const r = await rawClient(s, "granter");
    r.send({ cmd: "subscribe", messageId: 3, subscriptions: [{ topic: "g/0", qos: 0 }, { topic: "g/1", qos: 1 }, { topic: "g/2", qos: 2 }] });
    const ack = await r.next("suback");
    expect(ack.granted).toEqual(target.kind === "nats-server" ? [0, 1, 1] : [0, 1, 2]);
  });

  it("answers 0x80 for invalid filters (a/#/b, #/x), in place, and grants the valid ones of the same SUBSCRIBE", async () => {
    const s = await start(target);
    const r = await rawClient(s, "invalid-filters");
    r.send({
      cmd: "subscribe", messageId: 4, subscriptions: [
        { topic: "a/#/b", qos: 0 }, { topic: "ok/1", qos: 0 }, { topic: "#/x", qos: 1 }, { topic: "ok/+/x", qos: 1 },
      ],
    });
    expect((await r.next("suback")).granted).toEqual([0x80, 0, 0x80, 1]);
    expect(r.closedNow).toBe(false);
  });

  it("a wildcard that is not a whole level (a/b#, a+/b): 0x80 on meshbroker [MQTT-4.7.1-2/3]; nats-server 2.9 grants it", async () => {
    const s = await start(target);
    const r = await rawClient(s, "partial-wildcards");
    r.send({ cmd: "subscribe", messageId: 5, subscriptions: [{ topic: "a/b#", qos: 1 }, { topic: "a+/b", qos: 0 }] });
    expect((await r.next("suback")).granted).toEqual(target.kind === "nats-server" ? [1, 0] : [0x80, 0x80]);
  });

  it("UNSUBSCRIBE: UNSUBACK with the packet id, and delivery stops", async () => {
    const s = await start(target);
    const sub = await connectMqtt(c, mqttUrl(s), { clientId: "unsub-sub" });
    const inbox = collect(sub);
    const pub = await connectMqtt(c, mqttUrl(s), { clientId: "unsub-pub" });
    await sub.subscribeAsync("u/x", { qos: 1 });
    await pub.publishAsync("u/x", "before", { qos: 1 });
    expect((await inbox.next()).payload).toBe("before");
    const r = await rawClient(s, "unsub-raw");
    await rawSubscribe(r, "u/x", 0);
    r.send({ cmd: "unsubscribe", messageId: 77, unsubscriptions: ["u/x"] });
    expect((await r.next("unsuback")).messageId).toBe(77);
    await sub.unsubscribeAsync("u/x");
    await pub.publishAsync("u/x", "after", { qos: 1 });
    const nc = await nats(s);
    nc.publish("u.x", "after-nats");
    await nc.flush();
    await noMessage(inbox, 250);
    await r.none("publish", 50);
  });
});

describe.each(mqttTargets(mqttSuiteTopologies))("subscription semantics on $name", (target) => {
  it("a SUBSCRIBE to an existing filter replaces it (new QoS, no duplicate deliveries) [MQTT-3.8.4-3]", async () => {
    const s = await start(target);
    const r = await rawClient(s, "resub");
    expect(await rawSubscribe(r, "rs/a", 0, 1)).toEqual([0]);
    expect(await rawSubscribe(r, "rs/a", 1, 2)).toEqual([1]);
    const pub = await connectMqtt(c, mqttUrl(s), { clientId: "resub-pub" });
    await pub.publishAsync("rs/a", "once", { qos: 1 });
    const p = await r.next("publish");
    expect([text(p.payload), p.qos]).toEqual(["once", 1]);
    r.send({ cmd: "puback", messageId: p.messageId });
    await r.none("publish", 250);
  });
});

// nats-server 2.9 breaks this rule (a "#" subscriber even gets its internal $MQTT.sess.* traffic);
// meshbroker is held to the spec.
describe.each(mqttSuiteTopologies)("MQTT 3.1.1 $-topic rule on meshbroker (%s)", (topology) => {
  const target: MqttTarget = { name: `meshbroker (${topology})`, kind: "meshbroker", start: (o) => startMqttBroker(topology, o) };

  it("wildcards at the first level do not match topics starting with $ [MQTT-4.7.2-1]; $x/# does", async () => {
    const s = await start(target);
    const wild = await connectMqtt(c, mqttUrl(s), { clientId: "dollar-wild" });
    const wildInbox = collect(wild);
    await wild.subscribeAsync({ "#": { qos: 0 }, "+/x": { qos: 0 } });
    const exact = await connectMqtt(c, mqttUrl(s), { clientId: "dollar-exact" });
    const exactInbox = collect(exact);
    await exact.subscribeAsync("$app/#", { qos: 0 });
    const pub = await connectMqtt(c, mqttUrl(s), { clientId: "dollar-pub" });
    await pub.publishAsync("$app/x", "dollar", { qos: 1 });
    expect(await exactInbox.next()).toMatchObject({ topic: "$app/x", payload: "dollar" });
    await pub.publishAsync("plain/x", "plain", { qos: 1 });
    // "#" and "+/x" both match plain/x: one or two copies (overlapping subscriptions), never the $ one.
    while (!wildInbox.all.some((m) => m.topic === "plain/x")) await wildInbox.next();
    await new Promise((r) => setTimeout(r, 200)); // a $ message, sent first, would have come by now
    expect(wildInbox.all.map((m) => m.topic).filter((t) => t.startsWith("$"))).toEqual([]);
  });
});

describe.each(mqttTargets(mqttSuiteTopologies))("permissions on $name", (target) => {
  it("subscribe: no permission → 0x80; QoS 0 within subscribe [\"a.>\"] granted but QoS 1 needs \"$MQTT.sub.>\"", async () => {
    const s = await start(target, { config: PERM_USERS });
    const r0 = await rawClient(s, "perm-sub0", { username: "sub0", password: Buffer.from("sub0") });
    r0.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "a/x", qos: 0 }, { topic: "a/y", qos: 1 }, { topic: "b/x", qos: 0 }] });
    expect((await r0.next("suback")).granted).toEqual([0, 0x80, 0x80]);
    const r1 = await rawClient(s, "perm-sub1", { username: "sub1", password: Buffer.from("sub1") });
    r1.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "a/x", qos: 0 }, { topic: "a/y", qos: 1 }, { topic: "b/x", qos: 1 }] });
    expect((await r1.next("suback")).granted).toEqual([0, 1, 0x80]);
  });

  it("subscribe deny: a sec/+ subscriber is granted, and live messages of the denied sec/secret do not reach it", async () => {
    const s = await start(target, { config: PERM_USERS });
    const admin = await connectMqtt(c, mqttUrl(s), { clientId: "deny-admin", username: "admin", password: "admin" });
    // (A retained sec/secret would be sent on subscribe by nats-server 2.9 and meshbroker alike:
    // neither checks the deny list for retained messages.)
    await admin.publishAsync("sec/open", "retained-open", { qos: 1, retain: true });
    const limited = await connectMqtt(c, mqttUrl(s), { clientId: "deny-limited", username: "nosecret", password: "nosecret" });
    const inbox = collect(limited);
    expect(await suback(limited, { "sec/+": { qos: 0 } })).toEqual([0]);
    await admin.publishAsync("sec/secret", "live-secret", { qos: 1 });
    await admin.publishAsync("sec/open", "live-open", { qos: 1 });
    while (!inbox.all.some((m) => m.payload === "live-open")) await inbox.next();
    await new Promise((r) => setTimeout(r, 200)); // anything else would have come by now
    expect(inbox.all.map((m) => `${m.topic} ${m.payload}`).sort()).toEqual(["sec/open live-open", "sec/open retained-open"]);
  });

  it("foo/# needs subscribe permission on foo as well: allow [\"sec.>\"] refuses sec/# (0x80)", async () => {
    // nats-server subscribes the parent level ("sec", sid suffix " fwc") under the same permissions.
    const s = await start(target, { config: PERM_USERS });
    const limited = await connectMqtt(c, mqttUrl(s), { clientId: "fwc-perm", username: "nosecret", password: "nosecret" });
    const inbox = collect(limited);
    expect.soft(await suback(limited, { "sec/#": { qos: 0 }, "sec/+/#": { qos: 0 } })).toEqual([0x80, 0]);
    // Whatever the SUBACK said: nothing on "sec" itself may reach this user.
    const admin = await connectMqtt(c, mqttUrl(s), { clientId: "fwc-admin", username: "admin", password: "admin" });
    await admin.publishAsync("sec", "parent-level", { qos: 1 });
    await noMessage(inbox, 250);
  });

  it("a client's own subscription to $MQTT/sub/+ (the QoS 1 delivery subjects) gets 0x80", async () => {
    const s = await start(target);
    const r = await rawClient(s, "sneaky");
    r.send({ cmd: "subscribe", messageId: 1, subscriptions: [{ topic: "$MQTT/sub/+", qos: 0 }] });
    expect((await r.next("suback")).granted).toEqual([0x80]);
  });

  it("publish without permission: dropped (no MQTT or NATS subscriber gets it), the client stays connected", async () => {
    const s = await start(target, { config: PERM_USERS });
    const admin = await connectMqtt(c, mqttUrl(s), { clientId: "perm-admin", username: "admin", password: "admin" });
    const inbox = collect(admin);
    await admin.subscribeAsync({ "no/#": { qos: 1 }, "ok/#": { qos: 1 } });
    const nc = await nats(s, { user: "admin", pass: "admin" });
    const nin = natsInbox(nc, "no.>");
    await nc.flush();
    const pub = await connectMqtt(c, mqttUrl(s), { clientId: "perm-pub", username: "pub", password: "pub" });
    pub.publish("no/x", "q0", { qos: 0 });
    await pub.publishAsync("no/y", "q1", { qos: 1 }); // PUBACK comes all the same
    await pub.publishAsync("ok/z", "allowed", { qos: 1 });
    const got = await inbox.next();
    expect([got.topic, got.payload]).toEqual(["ok/z", "allowed"]);
    await noMessage(inbox, 200);
    expect(nin.msgs).toHaveLength(0);
    expect(pub.connected).toBe(true);
  });
});

describe.each(mqttTargets(mqttSuiteTopologies))("PUBLISH on $name", (target) => {
  it("QoS 0: delivered at QoS 0", async () => {
    const s = await start(target);
    const sub = await connectMqtt(c, mqttUrl(s), { clientId: "q0-sub" });
    const inbox = collect(sub);
    await sub.subscribeAsync("q/0", { qos: 1 });
    const pub = await connectMqtt(c, mqttUrl(s), { clientId: "q0-pub" });
    pub.publish("q/0", "zero", { qos: 0 });
    const m = await inbox.next();
    expect([m.topic, m.payload, m.packet.qos, m.packet.retain]).toEqual(["q/0", "zero", 0, false]);
  });

  it("QoS 1: PUBACK with the publisher's packet id; delivered at min(QoS, granted)", async () => {
    const s = await start(target);
    const sub1 = await connectMqtt(c, mqttUrl(s), { clientId: "q1-sub1" });
    const in1 = collect(sub1);
    await sub1.subscribeAsync("q/1", { qos: 1 });
    const sub0 = await connectMqtt(c, mqttUrl(s), { clientId: "q1-sub0" });
    const in0 = collect(sub0);
    await sub0.subscribeAsync("q/1", { qos: 0 });
    const r = await rawClient(s, "q1-pub");
    r.send({ cmd: "publish", topic: "q/1", payload: Buffer.from("one"), qos: 1, messageId: 4242, retain: false, dup: false });
    expect((await r.next("puback")).messageId).toBe(4242);
    const m1 = await in1.next();
    expect([m1.topic, m1.payload, m1.packet.qos]).toEqual(["q/1", "one", 1]);
    const m0 = await in0.next();
    expect([m0.topic, m0.payload, m0.packet.qos]).toEqual(["q/1", "one", 0]);
  });

  it("redelivers an unacknowledged QoS 1 message after ack_wait with DUP and the same packet id; none after PUBACK", async () => {
    const s = await start(target, { mqtt: `ack_wait: "500ms"` });
    const r = await rawClient(s, "no-acker");
    await rawSubscribe(r, "rd/x", 1);
    const pub = await connectMqtt(c, mqttUrl(s), { clientId: "rd-pub" });
    await pub.publishAsync("rd/x", "again", { qos: 1 });
    const first = await r.next("publish");
    expect([first.topic, text(first.payload), first.qos, first.dup]).toEqual(["rd/x", "again", 1, false]);
    const sent = Date.now();
    const second = await r.next("publish", 3_000);
    expect(Date.now() - sent).toBeGreaterThanOrEqual(300);
    expect([second.topic, text(second.payload), second.qos, second.dup, second.messageId]).toEqual(["rd/x", "again", 1, true, first.messageId]);
    // Acknowledged right away: the next redelivery would be due ack_wait (500 ms) later.
    r.send({ cmd: "puback", messageId: first.messageId });
    await r.none("publish", 300);
  });

  it("max_ack_pending 2: a non-acking QoS 1 subscriber gets exactly 2 PUBLISHes until it acks one", async () => {
    const s = await start(target, { mqtt: "max_ack_pending: 2" });
    const r = await rawClient(s, "window");
    await rawSubscribe(r, "w/x", 1);
    const pub = await connectMqtt(c, mqttUrl(s), { clientId: "w-pub" });
    for (let i = 1; i <= 5; i++) await pub.publishAsync("w/x", `m${i}`, { qos: 1 });
    const a = await r.next("publish");
    const b = await r.next("publish");
    expect([text(a.payload), text(b.payload)]).toEqual(["m1", "m2"]);
    await r.none("publish", 300);
    r.send({ cmd: "puback", messageId: a.messageId });
    const third = await r.next("publish");
    expect(text(third.payload)).toBe("m3");
    await r.none("publish", 200);
    r.send({ cmd: "puback", messageId: b.messageId });
    r.send({ cmd: "puback", messageId: third.messageId });
    expect(text((await r.next("publish")).payload)).toBe("m4");
    expect(text((await r.next("publish")).payload)).toBe("m5");
  });

  it("a PUBLISH to a topic with a wildcard closes the connection", async () => {
    const s = await start(target);
    for (const topic of ["wild/+", "wild/#", "+"]) {
      const r = await rawClient(s, `wild-${topic.length}-${topic.charCodeAt(topic.length - 1)}`);
      r.send({ cmd: "publish", topic, payload: Buffer.from("x"), qos: 0, retain: false, dup: false });
      await r.closedWithin(2_000);
    }
  });
});

describe.each(mqttTargets(mqttSuiteTopologies))("MQTT ↔ NATS mapping on $name", (target) => {
  it("MQTT a/b reaches the NATS subscriber of a.b with the header Nmqtt-Pub: <qos>", async () => {
    const s = await start(target);
    const nc = await nats(s);
    const sub = natsInbox(nc, "a.b");
    await nc.flush();
    const pub = await connectMqtt(c, mqttUrl(s), { clientId: "map-pub" });
    await pub.publishAsync("a/b", "from-mqtt-1", { qos: 1 });
    const m1 = await sub.next();
    expect([m1.subject, text(m1.data), m1.headers?.get("Nmqtt-Pub")]).toEqual(["a.b", "from-mqtt-1", "1"]);
    pub.publish("a/b", "from-mqtt-0", { qos: 0 });
    const m0 = await sub.next();
    expect([m0.subject, text(m0.data), m0.headers?.get("Nmqtt-Pub")]).toEqual(["a.b", "from-mqtt-0", "0"]);
  });

  it("NATS a.b reaches the MQTT subscriber of a/b at QoS 0, even on a QoS 1 subscription; headers are not payload", async () => {
    const s = await start(target);
    const sub = await connectMqtt(c, mqttUrl(s), { clientId: "map-sub" });
    const inbox = collect(sub);
    await sub.subscribeAsync({ "a/b": { qos: 1 }, "h/+": { qos: 0 } });
    const nc = await nats(s);
    nc.publish("a.b", "from-nats");
    const h = natsHeaders();
    h.set("X-Test", "1");
    nc.publish("h.1", "with-headers", { headers: h });
    const m = await inbox.next();
    expect([m.topic, m.payload, m.packet.qos, m.packet.retain]).toEqual(["a/b", "from-nats", 0, false]);
    const m2 = await inbox.next();
    expect([m2.topic, m2.payload]).toEqual(["h/1", "with-headers"]);
  });

  it("foo/# also matches foo (MQTT and NATS publishers), and foo/+ does not", async () => {
    const s = await start(target);
    const sub = await connectMqtt(c, mqttUrl(s), { clientId: "fwc-sub" });
    const inbox = collect(sub);
    await sub.subscribeAsync("foo/#", { qos: 0 });
    const plus = await connectMqtt(c, mqttUrl(s), { clientId: "fwc-plus" });
    const plusInbox = collect(plus);
    await plus.subscribeAsync("foo/+", { qos: 0 });
    const pub = await connectMqtt(c, mqttUrl(s), { clientId: "fwc-pub" });
    await pub.publishAsync("foo", "parent-mqtt", { qos: 1 });
    expect(await inbox.next()).toMatchObject({ topic: "foo", payload: "parent-mqtt" });
    const nc = await nats(s);
    nc.publish("foo", "parent-nats");
    nc.publish("foo.bar.baz", "deep-nats");
    expect(await inbox.next()).toMatchObject({ topic: "foo", payload: "parent-nats" });
    expect(await inbox.next()).toMatchObject({ topic: "foo/bar/baz", payload: "deep-nats" });
    await noMessage(plusInbox, 150);
  });

  // MQTT topic → NATS subject (nats.docs mqtt README, mqttToNATSSubjectConversion).
  const rows: [string, string][] = [["/foo/bar", "/.foo.bar"], ["foo/bar/", "foo.bar./"], ["foo//bar", "foo./.bar"], ["//foo/bar", "/./.foo.bar"]];
  it.each(rows)("MQTT %s is the NATS subject %s, both ways", async (topic, subject) => {
    const s = await start(target);
    const nc = await nats(s);
    const nsub = natsInbox(nc, subject);
    await nc.flush();
    const client = await connectMqtt(c, mqttUrl(s), { clientId: "map-row" });
    const inbox = collect(client);
    await client.subscribeAsync(topic, { qos: 0 });
    await client.publishAsync(topic, "mqtt-side", { qos: 1 });
    const m = await nsub.next();
    expect([m.subject, text(m.data)]).toEqual([subject, "mqtt-side"]);
    expect(await inbox.next()).toMatchObject({ topic, payload: "mqtt-side" });
    nc.publish(subject, "nats-side");
    expect(await inbox.next()).toMatchObject({ topic, payload: "nats-side" });
  });

  it("MQTT foo.bar is the NATS subject foo//bar (2.10 rule; nats-server 2.9 refuses the topic and closes)", async () => {
    const s = await start(target);
    const nc = await nats(s);
    const nsub = natsInbox(nc, "foo//bar");
    await nc.flush();
    if (target.kind === "nats-server") {
      const r = await rawClient(s, "dotted");
      r.send({ cmd: "publish", topic: "foo.bar", payload: Buffer.from("dot"), qos: 1, messageId: 1, retain: false, dup: false });
      await r.closedWithin(2_000);
      return;
    }
    const client = await connectMqtt(c, mqttUrl(s), { clientId: "dotted" });
    const inbox = collect(client);
    await client.subscribeAsync("foo.bar", { qos: 0 });
    await client.publishAsync("foo.bar", "dot", { qos: 1 });
    const m = await nsub.next();
    expect([m.subject, text(m.data)]).toEqual(["foo//bar", "dot"]);
    expect(await inbox.next()).toMatchObject({ topic: "foo.bar", payload: "dot" });
    nc.publish("foo//bar", "dot-nats");
    expect(await inbox.next()).toMatchObject({ topic: "foo.bar", payload: "dot-nats" });
  });
});

describe.each(mqttSuiteTopologies)("QoS 2 on meshbroker (%s)", (topology) => {
  async function broker(opts: MqttServerOptions = {}): Promise<MqttServer> {
    const s = await startMqttBroker(topology, opts);
    c.push(() => s.stop());
    return s;
  }

  it("PUBLISH QoS 2 → PUBREC, PUBREL → PUBCOMP; a DUP re-send before PUBREL is delivered ONCE", async () => {
    const s = await broker();
    const sub = await connectMqtt(c, mqttUrl(s), { clientId: "eo-sub" });
    const inbox = collect(sub);
    await sub.subscribeAsync("eo/x", { qos: 2 });
    const nc = await nats(s);
    const nsub = natsInbox(nc, "eo.x");
    await nc.flush();
    const r = await rawClient(s, "eo-pub");
    const publish = { cmd: "publish" as const, topic: "eo/x", payload: Buffer.from("exactly-once"), qos: 2 as const, messageId: 900, retain: false, dup: false };
    r.send(publish);
    expect((await r.next("pubrec")).messageId).toBe(900);
    r.send({ ...publish, dup: true });
    expect((await r.next("pubrec")).messageId).toBe(900);
    r.send({ cmd: "pubrel", messageId: 900 });
    expect((await r.next("pubcomp")).messageId).toBe(900);
    const m = await inbox.next();
    expect([m.topic, m.payload, m.packet.qos]).toEqual(["eo/x", "exactly-once", 2]);
    const nm = await nsub.next();
    expect(nm.headers?.get("Nmqtt-Pub")).toBe("2");
    await noMessage(inbox, 250);
    expect(nsub.msgs).toHaveLength(1);
  });

  it("after PUBCOMP the same packet id is a new message", async () => {
    const s = await broker();
    const sub = await connectMqtt(c, mqttUrl(s), { clientId: "eo2-sub" });
    const inbox = collect(sub);
    await sub.subscribeAsync("eo/y", { qos: 2 });
    const r = await rawClient(s, "eo2-pub");
    for (const payload of ["first", "second"]) {
      r.send({ cmd: "publish", topic: "eo/y", payload: Buffer.from(payload), qos: 2, messageId: 5, retain: false, dup: false });
      await r.next("pubrec");
      r.send({ cmd: "pubrel", messageId: 5 });
      await r.next("pubcomp");
      expect((await inbox.next()).payload).toBe(payload);
    }
  });

  it("outbound QoS 2: the raw subscriber gets PUBLISH QoS 2, PUBREC → PUBREL, PUBCOMP; MQTT.js end to end", async () => {
    const s = await broker();
    const r = await rawClient(s, "eo-out");
    expect(await rawSubscribe(r, "eo/out", 2)).toEqual([2]);
    const pub = await connectMqtt(c, mqttUrl(s), { clientId: "eo-out-pub" });
    await pub.publishAsync("eo/out", "two", { qos: 2 });
    const p = await r.next("publish");
    expect([p.topic, text(p.payload), p.qos, p.dup]).toEqual(["eo/out", "two", 2, false]);
    r.send({ cmd: "pubrec", messageId: p.messageId });
    expect((await r.next("pubrel")).messageId).toBe(p.messageId);
    r.send({ cmd: "pubcomp", messageId: p.messageId });
    await r.none("publish", 200);
    // The same through MQTT.js on both ends.
    const sub = await connectMqtt(c, mqttUrl(s), { clientId: "eo-out-sub" });
    const inbox = collect(sub);
    await sub.subscribeAsync("eo/js", { qos: 2 });
    await pub.publishAsync("eo/js", "js-two", { qos: 2 });
    const m = await inbox.next();
    expect([m.payload, m.packet.qos]).toEqual(["js-two", 2]);
  });

  it("a QoS 2 message to a QoS 1 subscription is delivered at QoS 1", async () => {
    const s = await broker();
    const sub = await connectMqtt(c, mqttUrl(s), { clientId: "eo-down" });
    const inbox = collect(sub);
    await sub.subscribeAsync("eo/down", { qos: 1 });
    const pub = await connectMqtt(c, mqttUrl(s), { clientId: "eo-down-pub" });
    await pub.publishAsync("eo/down", "downgraded", { qos: 2 });
    const m = await inbox.next();
    expect([m.payload, m.packet.qos]).toEqual(["downgraded", 1]);
  });
});

describe("QoS 2 on nats-server 2.9.10 (reference)", () => {
  it("a QoS 2 PUBLISH closes the connection", async () => {
    const target = mqttTargets([]).find((t) => t.kind === "nats-server")!;
    const s = await start(target);
    const r = await rawClient(s, "ns-qos2");
    r.send({ cmd: "publish", topic: "x/y", payload: Buffer.from("2"), qos: 2, messageId: 1, retain: false, dup: false });
    await r.closedWithin(2_000);
  });
});

