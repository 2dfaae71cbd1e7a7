// MQTT CONNECT / CONNACK with real clients (MQTT.js, and a raw mqtt-packet client for packets
// MQTT.js will not send), each case run against meshbroker and nats-server 2.9.10 so the return
// codes are compared with the reference: 0 accepted, 1 protocol level (nats-server: an MQTT 5 client), 2 empty
// client id without a clean session, 4 empty user name, 5 every authentication failure (bad
// password, bad token, a connection type the user may not use). The password is tried as a
// password, as the token, and (operator mode, meshbroker) as a bearer user JWT. The mqtt block's
// no_auth_user; allowed_connection_types MQTT vs MQTT_WS vs STANDARD. Keep-alive: 1.5 × the
// CONNECT keepalive. The connections gauge by type (meshbroker's /metrics).
import { beforeAll, describe, expect, it } from "vitest";
import { connect as natsConnect } from "nats";
import { mqttTopologies } from "../helpers/broker.js";
import { newAccount, newOperator, newUser, operatorConfig, type TestAccount, type TestOperator, type TestUser } from "../helpers/creds.js";
import {
  connack, connectBytes, connectMqtt, mqttSuiteTopologies, mqttTargets, RawMqtt, startMqttBroker, suback,
  type MqttServer, type MqttServerOptions, type MqttTarget,
  startTarget,
} from "../helpers/mqtt.js";
import { cleanupAfterEach } from "../helpers/wait.js";

const c = cleanupAfterEach();

const start = (target: MqttTarget, opts?: MqttServerOptions) => startTarget(c, target, opts);

async function raw(port: number, connect: Parameters<typeof RawMqtt.open>[1]) {
  const r = await RawMqtt.open(port, connect);
  c.push(() => r.c.close());
  return r;
}

const tcp = (s: MqttServer) => `mqtt://127.0.0.1:${s.mqttPort}`;
const ws = (s: MqttServer) => `ws://127.0.0.1:${s.wsPort}/mqtt`;

const USERS = `
authorization {
  users = [
    { user: alice, password: wonderland }
    { user: std, password: std, allowed_connection_types: ["STANDARD"] }
    { user: mq, password: mq, allowed_connection_types: ["MQTT"] }
    { user: mqws, password: mqws, allowed_connection_types: ["MQTT_WS"] }
    { user: bob, password: builder, permissions: { publish: ["b.>"], subscribe: ["b.>"] } }
  ]
}`;

// Not on the cluster: CONNACK codes are the edge's own checks (about 15 configs, one cluster each);
// on the cluster, the operator-mode cases below run (a JWT checked on the edge, the session on a router).
describe.each(mqttTargets(mqttTopologies))("CONNACK on $name", (target) => {
  it("accepts a 3.1.1 CONNECT: return code 0, no session present", async () => {
    const s = await start(target);
    expect(await connack(c, tcp(s), { clientId: "ok-client" })).toEqual({ returnCode: 0, sessionPresent: false });
  });

  it("an MQTT 5 CONNECT: nats-server answers code 1 and closes, meshbroker accepts it (mqtt5.test.ts)", async () => {
    const s = await start(target);
    const refused = target.kind === "nats-server";
    const ack = await connack(c, tcp(s), { protocolVersion: 5, clientId: "v5-client" });
    expect(ack.returnCode).toBe(refused ? 1 : 0);
    // A level-5 CONNECT from the raw client (mqtt-packet).
    const { c: r, connack: p } = await raw(s.mqttPort, { protocolVersion: 5, clientId: "v5-raw" });
    expect(p.returnCode ?? p.reasonCode).toBe(refused ? 1 : 0);
    if (refused) await r.closedWithin(2_000);
  });

  it("answers protocol name MQTT with level 3 with code 1 [MQTT-3.1.2-2]", async () => {
    const s = await start(target);
    const r = await RawMqtt.connect(s.mqttPort);
    c.push(() => r.close());
    r.sendRaw(connectBytes({ clientId: "lvl3", level: 3 }));
    expect((await r.next("connack")).returnCode).toBe(1);
    await r.closedWithin(2_000);
  });

  it("closes on an MQTT 3.1 (MQIsdp, level 3) CONNECT; a CONNACK, if any, carries code 1 [MQTT-3.1.2-1]", async () => {
    // nats-server 2.9 closes without a CONNACK (wrong protocol name); the spec allows either.
    const s = await start(target);
    const r = await RawMqtt.connect(s.mqttPort);
    c.push(() => r.close());
    r.sendRaw(connectBytes({ clientId: "v31", protocolName: "MQIsdp", level: 3 }));
    await r.closedWithin(2_000);
    for (const p of r.packets) expect(p).toMatchObject({ cmd: "connack", returnCode: 1 });
  });

  it("refuses an empty client id without a clean session with code 2, accepts it with one", async () => {
    const s = await start(target);
    const r = await RawMqtt.connect(s.mqttPort);
    c.push(() => r.close());
    r.sendRaw(connectBytes({ clientId: "", clean: false }));
    expect((await r.next("connack")).returnCode).toBe(2);
    await r.closedWithin(2_000);
    const accepted = await raw(s.mqttPort, { clientId: "", clean: true });
    expect(accepted.connack.returnCode).toBe(0);
  });

  it("refuses a client id that is not valid UTF-8 with code 2", async () => {
    const s = await start(target);
    const r = await RawMqtt.connect(s.mqttPort);
    c.push(() => r.close());
    const bytes = connectBytes({ clientId: "abcd" });
    bytes.set([0xc3, 0x28], bytes.length - 2); // an invalid two-byte sequence
    r.sendRaw(bytes);
    expect((await r.next("connack")).returnCode).toBe(2);
    await r.closedWithin(2_000);
  });

  it("refuses a user name that is not valid UTF-8 with code 4", async () => {
    const s = await start(target);
    const r = await RawMqtt.connect(s.mqttPort);
    c.push(() => r.close());
    const bytes = connectBytes({ clientId: "bad-user", username: "abcd" });
    bytes.set([0xc3, 0x28], bytes.length - 2); // the user name is last: an invalid two-byte sequence
    r.sendRaw(bytes);
    expect((await r.next("connack")).returnCode).toBe(4);
    await r.closedWithin(2_000);
  });

  it("refuses an empty user name with code 4", async () => {
    const s = await start(target);
    const { c: r, connack: p } = await raw(s.mqttPort, { clientId: "empty-user", username: "" });
    expect(p.returnCode).toBe(4);
    await r.closedWithin(2_000);
  });

  it("users: right password 0, wrong password 5, unknown user 5, no credentials 5", async () => {
    const s = await start(target, { config: USERS });
    expect((await connack(c, tcp(s), { clientId: "u1", username: "alice", password: "wonderland" })).returnCode).toBe(0);
    expect((await connack(c, tcp(s), { clientId: "u2", username: "alice", password: "nope" })).returnCode).toBe(5);
    expect((await connack(c, tcp(s), { clientId: "u3", username: "mallory", password: "wonderland" })).returnCode).toBe(5);
    expect((await connack(c, tcp(s), { clientId: "u4" })).returnCode).toBe(5);
    const refused = await raw(s.mqttPort, { clientId: "u5", username: "alice", password: Buffer.from("bad") });
    expect(refused.connack.returnCode).toBe(5);
    await refused.c.closedWithin(2_000);
  });

  it("a user limited to STANDARD gets 5 over MQTT, and still connects over NATS", async () => {
    const s = await start(target, { config: USERS });
    expect((await connack(c, tcp(s), { clientId: "std1", username: "std", password: "std" })).returnCode).toBe(5);
    const nc = await natsConnect({ servers: `127.0.0.1:${s.natsPort}`, user: "std", pass: "std", reconnect: false });
    await nc.close();
  });

  it("allowed_connection_types MQTT: accepted over MQTT/TCP, refused over NATS and over MQTT/WebSocket", async () => {
    const s = await start(target, { config: USERS, websocket: true });
    expect((await connack(c, tcp(s), { clientId: "mq1", username: "mq", password: "mq" })).returnCode).toBe(0);
    await expect(natsConnect({ servers: `127.0.0.1:${s.natsPort}`, user: "mq", pass: "mq", reconnect: false }))
      .rejects.toThrow(/Authorization Violation/i);
    expect((await connack(c, ws(s), { clientId: "mq2", username: "mq", password: "mq" })).returnCode).toBe(5);
  });

  it("allowed_connection_types MQTT_WS: accepted over ws://…/mqtt, refused over MQTT/TCP", async () => {
    const s = await start(target, { config: USERS, websocket: true });
    expect((await connack(c, ws(s), { clientId: "mw1", username: "mqws", password: "mqws" })).returnCode).toBe(0);
    expect((await connack(c, tcp(s), { clientId: "mw2", username: "mqws", password: "mqws" })).returnCode).toBe(5);
  });

  it("the password is the token with authorization { token }", async () => {
    const s = await start(target, { config: `authorization { token: "s3cr3t-t0ken" }` });
    // MQTT 3.1.1 sends a password only with a user name; the name is not checked against a token.
    expect((await connack(c, tcp(s), { clientId: "t1", username: "anything", password: "s3cr3t-t0ken" })).returnCode).toBe(0);
    expect((await connack(c, tcp(s), { clientId: "t2", username: "anything", password: "wrong" })).returnCode).toBe(5);
    expect((await connack(c, tcp(s), { clientId: "t3" })).returnCode).toBe(5);
  });

  it("the mqtt block's authorization { username, password } replaces the main single user for MQTT", async () => {
    const s = await start(target, {
      config: `authorization { user: natsuser, password: natspass }`,
      mqtt: `authorization { username: mqttuser, password: mqttpass }`,
    });
    expect((await connack(c, tcp(s), { clientId: "o1", username: "mqttuser", password: "mqttpass" })).returnCode).toBe(0);
    expect((await connack(c, tcp(s), { clientId: "o2", username: "natsuser", password: "natspass" })).returnCode).toBe(5);
    const nc = await natsConnect({ servers: `127.0.0.1:${s.natsPort}`, user: "natsuser", pass: "natspass", reconnect: false });
    await nc.close();
  });

  it("the mqtt block's no_auth_user: MQTT clients without credentials are that user; NATS clients are refused", async () => {
    const s = await start(target, { config: USERS, mqtt: "no_auth_user: bob" });
    const client = await connectMqtt(c, tcp(s), { clientId: "anon" });
    // bob may only subscribe to b.>: that is who the anonymous MQTT client is.
    expect(await suback(client, { "b/x": { qos: 0 }, "c/x": { qos: 0 } })).toEqual([0, 128]);
    // Credentials still win over no_auth_user.
    expect((await connack(c, tcp(s), { clientId: "anon2", username: "alice", password: "wonderland" })).returnCode).toBe(0);
    expect((await connack(c, tcp(s), { clientId: "anon3", username: "alice", password: "bad" })).returnCode).toBe(5);
    await expect(natsConnect({ servers: `127.0.0.1:${s.natsPort}`, reconnect: false })).rejects.toThrow(/Authorization Violation/i);
  });

  it("keep-alive: a silent client with keepalive 1 is closed after 1.5 s, not before 1 s [MQTT-3.1.2-24]", async () => {
    const s = await start(target);
    const { c: r, connack: p } = await raw(s.mqttPort, { clientId: "sleepy", keepalive: 1 });
    expect(p.returnCode).toBe(0);
    const since = Date.now();
    await r.closedWithin(4_000);
    const after = r.closedAt - since;
    if (target.kind === "nats-server") {
      // nats-server 2.9 computes time.Duration(float64(ka)*1.5) * time.Second: 1.5 truncates to 1,
      // so keepalive 1 closes after 1 s (measured from our CONNACK, a few ms less).
      expect(after).toBeGreaterThanOrEqual(900);
      expect(after).toBeLessThan(1_400);
    } else {
      // The spec's one and a half keep-alive periods, with a little timer slack.
      expect(after).toBeGreaterThanOrEqual(1_000);
      expect(after).toBeLessThan(2_400); // slack for a loaded machine; never is caught by the 4 s wait

    }
  });

  it("keep-alive: PINGREQ within the period keeps the connection", async () => {
    const s = await start(target);
    const { c: r } = await raw(s.mqttPort, { clientId: "pinger", keepalive: 1 });
    for (let i = 0; i < 3; i++) {
      // Each PINGRESP is awaited, then the next PINGREQ goes out: well within 1.5 s.
      await new Promise((res) => setTimeout(res, 300));
      r.send({ cmd: "pingreq" });
      await r.next("pingresp", 1_000);
    }
    expect(r.closedNow).toBe(false);
  });
});

// Operator mode (meshbroker): the MQTT password is tried as the user JWT; only a bearer JWT can
// work, since an MQTT client cannot sign a nonce.
describe.each(mqttSuiteTopologies)("operator mode on meshbroker (%s)", (topology) => {
  let op: TestOperator;
  let acc: TestAccount;
  let users: Record<"bearer" | "plain" | "stdOnly", TestUser>;
  let config: string;

  beforeAll(async () => {
    op = await newOperator();
    acc = await newAccount(op, "MQTTACC");
    users = {
      bearer: await newUser(acc, "bearer", { bearer_token: true }),
      plain: await newUser(acc, "plain"),
      stdOnly: await newUser(acc, "stdonly", { bearer_token: true, allowed_connection_types: ["STANDARD"] }),
    };
    config = operatorConfig(op, [acc]);
  });

  it("a bearer user JWT as the password connects (0); a non-bearer one, garbage or none get 5", async () => {
    const s = await startMqttBroker(topology, { config });
    c.push(() => s.stop());
    const url = tcp(s);
    expect((await connack(c, url, { clientId: "j1", username: "x", password: users.bearer.jwt })).returnCode).toBe(0);
    expect((await connack(c, url, { clientId: "j2", username: "x", password: users.plain.jwt })).returnCode).toBe(5);
    expect((await connack(c, url, { clientId: "j3", username: "x", password: "not-a-jwt" })).returnCode).toBe(5);
    expect((await connack(c, url, { clientId: "j4" })).returnCode).toBe(5);
  });

  it("a bearer JWT whose allowed_connection_types is STANDARD gets 5 over MQTT", async () => {
    const s = await startMqttBroker(topology, { config });
    c.push(() => s.stop());
    expect((await connack(c, tcp(s), { clientId: "j5", username: "x", password: users.stdOnly.jwt })).returnCode).toBe(5);
  });

  it("the bearer-JWT MQTT client publishes into its account (a NATS client of the account receives it)", async () => {
    const s = await startMqttBroker(topology, { config });
    c.push(() => s.stop());
    const { jwtAuthenticator } = await import("nats");
    const nc = await natsConnect({ servers: `127.0.0.1:${s.natsPort}`, authenticator: jwtAuthenticator(users.bearer.jwt), reconnect: false });
    c.push(() => nc.close());
    const sub = nc.subscribe("acct.>", { max: 1 });
    await nc.flush();
    const client = await connectMqtt(c, tcp(s), { clientId: "j6", username: "x", password: users.bearer.jwt });
    await client.publishAsync("acct/hello", "in-account", { qos: 1 });
    for await (const m of sub) {
      expect(m.subject).toBe("acct.hello");
      expect(new TextDecoder().decode(m.data)).toBe("in-account");
    }
  });
});

// Not on the cluster: the gauges count one process's clients, and a test's clients spread over the edges.
describe.each(mqttTopologies)("metrics on meshbroker (%s)", (topology) => {
  async function gauge(s: MqttServer): Promise<Record<string, number>> {
    const text = await (await fetch(`http://127.0.0.1:${s.httpPort}/metrics`)).text();
    const out: Record<string, number> = {};
    for (const m of text.matchAll(/^meshbroker_connections\{type="([A-Z_]+)"\} (\d+)$/gm)) out[m[1]] = Number(m[2]);
    return out;
  }

  it('meshbroker_connections{type="MQTT"} counts MQTT clients, {type="MQTT_WS"} MQTT over WebSocket', async () => {
    const s = await startMqttBroker(topology, { monitoring: true, websocket: true });
    c.push(() => s.stop());
    await connectMqtt(c, tcp(s), { clientId: "m1" });
    await connectMqtt(c, tcp(s), { clientId: "m2" });
    await connectMqtt(c, ws(s), { clientId: "m3" });
    const nc = await natsConnect({ servers: `127.0.0.1:${s.natsPort}`, reconnect: false });
    c.push(() => nc.close());
    let g = await gauge(s);
    expect(g.MQTT).toBe(2);
    expect(g.MQTT_WS).toBe(1);
    expect(g.STANDARD).toBe(1);
    // A raw client that sends DISCONNECT: the server closes it, so by its close the count is down.
    const { c: r } = await raw(s.mqttPort, { clientId: "m4" });
    expect((await gauge(s)).MQTT).toBe(3);
    r.send({ cmd: "disconnect" });
    await r.closedWithin(2_000);
    g = await gauge(s);
    expect(g.MQTT).toBe(2);
  });
});
