// Tenant isolation of MQTT state, over MQTT TCP and MQTT over WebSocket, against meshbroker and
// nats-server 2.9.10 with the same config: two accounts (A: a1, a2; B: b1) and two users of one
// account. Nothing of one can be read, replaced, deleted or taken over by the other: retained
// messages, sessions and client ids, subscriptions, queued QoS 1 messages, wills and QoS 2 state.
// NATS clients reach MQTT state only through their account's subjects. The store-level half of
// the matrix (every store: memory, LevelDB, Redis, Redis Cluster) is in test/unit/store.test.ts.
import { describe, expect, it } from "vitest";
import type { IClientOptions, MqttClient } from "mqtt";
import { mqttTopologies } from "../helpers/broker.js";
import { natsClient } from "../helpers/clients.js";
import {
  connectCollecting, connectMqtt, mqttSuiteTopologies, mqttTargets, noMessage, RawMqtt, startTarget,
  type Inbox, type MqttServer, type MqttTarget,
} from "../helpers/mqtt.js";
import { cleanupAfterEach } from "../helpers/wait.js";

const c = cleanupAfterEach();

// a2 may subscribe only to public.> (and QoS 1 needs $MQTT.sub.> in nats-server 2.9).
const CONFIG = `accounts {
  A {
    jetstream: enabled
    users: [
      { user: a1, password: pa1 }
      { user: a2, password: pa2, permissions: { subscribe: ["public.>", "$MQTT.sub.>"] } }
    ]
  }
  B {
    jetstream: enabled
    users: [ { user: b1, password: pb1 } ]
  }
}`;

const USERS = { a1: "pa1", a2: "pa2", b1: "pb1" } as const;
type User = keyof typeof USERS;

interface Transport {
  name: string;
  url(s: MqttServer): string;
}

const TRANSPORTS: Transport[] = [
  { name: "MQTT", url: (s) => `mqtt://127.0.0.1:${s.mqttPort}` },
  { name: "MQTT over WebSocket", url: (s) => `ws://127.0.0.1:${s.wsPort}/mqtt` },
];

describe.each(mqttTargets(mqttSuiteTopologies))("MQTT isolation on $name", (target: MqttTarget) => {
  describe.each(TRANSPORTS)("over $name", (transport) => {
    async function server() {
      const s = await startTarget(c, target, { config: CONFIG, websocket: true });
      /** A user's connection, collecting from before its CONNACK. */
      const session = (user: User, opts: IClientOptions = {}) =>
        connectCollecting(c, transport.url(s), { username: user, password: USERS[user], ...opts });
      const as = async (user: User, opts: IClientOptions = {}): Promise<MqttClient> => (await session(user, opts)).client;
      return { s, as, session };
    }

    it("retained messages are per account: B neither reads, replaces nor clears A's", async () => {
      const { s, as, session } = await server();
      const a1 = await as("a1");
      await a1.publishAsync("tenantA/secret", "A-secret", { qos: 1, retain: true });
      const { client: b1, inbox: inB } = await session("b1");
      await b1.subscribeAsync("#", { qos: 0 });
      await b1.publishAsync("tenantA/secret", "", { qos: 1, retain: true }); // would clear A's
      await b1.publishAsync("tenantA/config", "B-config", { qos: 1, retain: true }); // would add to A's
      // A NATS client of B on the subject of A's topic reaches B only; it ends what B sees.
      const nb = await natsClient(c, s.natsPort, { user: "b1", pass: "pb1" });
      nb.publish("tenantA.secret", "from-nats-b");
      await nb.flush();
      expect(await until(inB, "from-nats-b")).not.toContain("A-secret");

      const { client: a1b, inbox: inA } = await session("a1");
      await a1b.subscribeAsync("tenantA/#", { qos: 1 });
      const m = await inA.next();
      expect([m.topic, m.payload, m.packet.retain]).toEqual(["tenantA/secret", "A-secret", true]);
      await noMessage(inA);
    });

    it("a client of another account with the same client id neither closes A's connection nor touches its session", async () => {
      const { as, session } = await server();
      // Per transport: a shared cluster keeps the persistent session of the other transport's run.
      const id = `shared-id-${transport.name}`;
      const { client: a1, inbox: inA } = await session("a1", { clientId: id, clean: false });
      await a1.subscribeAsync("private/#", { qos: 1 });
      const b1 = await as("b1", { clientId: id, clean: true });
      const pubA = await as("a1", { clientId: "a-publisher" });
      await pubA.publishAsync("private/1", "live", { qos: 1 });
      expect((await inA.next()).payload).toBe("live"); // still connected, still subscribed
      expect(a1.connected).toBe(true);
      await b1.endAsync();
      await a1.endAsync();
      await pubA.publishAsync("private/2", "queued", { qos: 1 });
      // B with the same id and clean=false finds no session and gets nothing of A's.
      const b2 = await session("b1", { clientId: id, clean: false });
      expect(b2.sessionPresent).toBe(false);
      await noMessage(b2.inbox);
      await b2.client.endAsync();
      // A's session is intact: present, with its queued message.
      const back = await session("a1", { clientId: id, clean: false });
      expect(back.sessionPresent).toBe(true);
      expect((await back.inbox.next()).payload).toBe("queued");
    });

    it("another user of the account taking a session over gets neither its queued nor its live messages beyond its permissions", async () => {
      const { as, session } = await server();
      const a1 = await as("a1", { clientId: "device-7", clean: false });
      await a1.subscribeAsync("private/#", { qos: 1 });
      await a1.endAsync();
      const pubA = await as("a1", { clientId: "a-publisher" });
      await pubA.publishAsync("private/queued", "q", { qos: 1 });
      const { inbox: inA2 } = await session("a2", { clientId: "device-7", clean: false });
      await pubA.publishAsync("private/live", "l", { qos: 1 });
      await noMessage(inA2, 300);
    });

    it("a will stays in its account: A's subscribers neither get B's will nor find it retained", async () => {
      const { as, session } = await server();
      const { client: a1, inbox: inA } = await session("a1");
      await a1.subscribeAsync("tenantA/#", { qos: 0 });
      const { client: b1watch, inbox: inB } = await session("b1");
      await b1watch.subscribeAsync("tenantA/#", { qos: 0 });
      const b1 = await as("b1", { will: { topic: "tenantA/alarm", payload: Buffer.from("B-will"), qos: 1, retain: true } });
      b1.stream.destroy(); // an abnormal close publishes the will
      expect((await inB.next()).payload).toBe("B-will");
      await noMessage(inA);
      const { client: a1b, inbox: inA2 } = await session("a1");
      await a1b.subscribeAsync("tenantA/#", { qos: 1 });
      await noMessage(inA2);
    });
  });

  // nats-server 2.9 has no QoS 2 (it closes the connection); meshbroker's is 2.10's.
  it.runIf(target.kind === "meshbroker")("QoS 2 state is per account: B's unreleased packet id does not swallow A's PUBLISH with the same id and client id", async () => {
    const s = await startTarget(c, target, { config: CONFIG });
    const { client: watchA, inbox: inA } = await connectCollecting(c, `mqtt://127.0.0.1:${s.mqttPort}`, { username: "a1", password: "pa1" });
    await watchA.subscribeAsync("q2/#", { qos: 0 });
    const { c: b } = await RawMqtt.accepted(c, s.mqttPort, { clientId: "q2-dev", clean: false, username: "b1", password: Buffer.from("pb1") });
    b.send({ cmd: "publish", topic: "q2/b", payload: Buffer.from("B"), qos: 2, messageId: 7, retain: false, dup: false });
    expect((await b.next("pubrec")).messageId).toBe(7);
    const { c: a } = await RawMqtt.accepted(c, s.mqttPort, { clientId: "q2-dev", clean: false, username: "a1", password: Buffer.from("pa1") });
    a.send({ cmd: "publish", topic: "q2/a", payload: Buffer.from("A"), qos: 2, messageId: 7, retain: false, dup: false });
    expect((await a.next("pubrec")).messageId).toBe(7);
    expect(b.closedNow).toBe(false); // not taken over by A's connection
    const m = await inA.next();
    expect([m.topic, m.payload]).toEqual(["q2/a", "A"]);
    a.send({ cmd: "pubrel", messageId: 7 });
    expect((await a.next("pubcomp")).messageId).toBe(7);
    b.send({ cmd: "pubrel", messageId: 7 });
    expect((await b.next("pubcomp")).messageId).toBe(7);
    await noMessage(inA);
  });
});

/** The payloads an inbox takes up to and including `last`. */
async function until(inbox: Inbox, last: string): Promise<string[]> {
  const seen: string[] = [];
  for (;;) {
    const m = await inbox.next();
    seen.push(m.payload);
    if (m.payload === last) return seen;
  }
}

describe.each(mqttTopologies)("server-assigned MQTT client ids (meshbroker %s)", () => {
  it("are random, 24 characters, and unrelated to the server id", async () => {
    const s = await startTarget(c, mqttTargets(mqttTopologies)[0], { monitoring: true });
    const url = `mqtt://127.0.0.1:${s.mqttPort}`;
    await connectMqtt(c, url, { clientId: "", clean: true });
    await connectMqtt(c, url, { clientId: "", clean: true });
    const connz = await (await fetch(`http://127.0.0.1:${s.httpPort}/connz`)).json() as
      { server_id: string; connections: { mqtt_client?: string }[] };
    const ids = connz.connections.map((x) => x.mqtt_client ?? "");
    expect(ids).toHaveLength(2);
    for (const id of ids) {
      // Not the old guessable form, mb-<8 chars of the server id>-<connection id>.
      expect(id).toMatch(/^[A-Za-z0-9_-]{24}$/);
      expect(id).not.toContain(connz.server_id.slice(0, 8));
    }
    expect(ids[0]).not.toBe(ids[1]);
  });
});
