// Issue #8: no input may crash the broker. The four faults found by fuzzing, each at its cause
// (regression tests that crashed the process before the fix), and the connection boundary: an
// exception in one connection's handler closes that connection with its protocol's error, is
// logged with its cid and counted, and the others carry on. The broker runs in-process, so a
// fault that escaped its connection would reach this process; failOnEscapedFaults fails the test.
import net from "node:net";
import { describe, expect, it } from "vitest";
import mqttPacket, { type Packet } from "mqtt-packet";
import { StringCodec } from "nats";
import { mqttTopologies, startBroker, type TestBroker, type Topology } from "../helpers/broker.js";
import { natsClient } from "../helpers/clients.js";
import { newAccount, newOperator, newUser, operatorConfig } from "../helpers/creds.js";
import { RawMqtt } from "../helpers/mqtt.js";
import { startNatsServer } from "../helpers/nats-server.js";
import { closedWithin, rawConnect } from "../helpers/raw.js";
import { cleanupAfterEach, failOnEscapedFaults, firstData } from "../helpers/wait.js";
import { closeWithin, upgradeRequest, wsOpen } from "../helpers/ws-raw.js";
import { AuthPipeline, type Credentials } from "../../services/edge/auth/index.js";
import { loadConfigText } from "../../services/common/config/index.js";

const cleanups = cleanupAfterEach();
const sc = StringCodec();

failOnEscapedFaults();

async function broker(config: string, topology: Topology = "embedded"): Promise<TestBroker> {
  const b = await startBroker({ config, monitoring: true, captureLog: true, topology });
  cleanups.push(() => b.stop());
  return b;
}

/** The broker still serves: a nats.js round trip. */
async function serves(b: TestBroker, opts: { user?: string; pass?: string } = {}): Promise<void> {
  const nc = await natsClient(cleanups, b.natsPort, opts);
  const sub = nc.subscribe("alive");
  nc.publish("alive", sc.encode("yes"));
  expect(await firstData(sub)).toBe("yes");
}

async function metric(b: TestBroker, re: RegExp): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${b.httpPort}/metrics`)).text();
  const m = text.match(re);
  return m ? Number(m[1]) : 0;
}

const USERS = `authorization { users: [ {user: u1, password: p1} ] }`;

describe("fault 1: WebSocket sockets on the upgrade path have an error listener", () => {
  it("clients that reset right after a refused or accepted upgrade do not take the process down", async () => {
    const b = await broker(`websocket { host: 127.0.0.1, port: -1, no_tls: true }`);
    const refused = upgradeRequest("127.0.0.1", { headers: { "Sec-WebSocket-Key": undefined } }); // 400
    const accepted = upgradeRequest("127.0.0.1");
    // The server writes its answer to a peer that already sent RST: ECONNRESET / EPIPE on the
    // socket the http server handed over. Enough rounds that it happens (about 1 in 3 here).
    for (let i = 0; i < 90; i++) {
      const s = net.connect({ port: b.wsPort!, host: "127.0.0.1" });
      s.on("error", () => {});
      await new Promise<void>((resolve) => s.once("connect", () => resolve()));
      s.write(i % 2 === 0 ? refused : accepted);
      s.resetAndDestroy();
      await new Promise<void>((resolve) => s.once("close", () => resolve()));
    }
    const peer = await wsOpen(`ws://127.0.0.1:${b.wsPort}`);
    cleanups.push(() => peer.close());
    await peer.expect(/^INFO /);
    await serves(b);
  });
});

describe.each(mqttTopologies)("fault 2 (%s): an MQTT packet is never handled without its session", (topology) => {
  const config = `server_name: mb\nmqtt { host: 127.0.0.1, port: -1 }`;

  it("a QoS 2 PUBLISH stored after a DISCONNECT is still routed; the broker lives on", async () => {
    const b = await broker(config, topology);
    const nc = await natsClient(cleanups, b.natsPort);
    const sub = nc.subscribe("after.disconnect");
    await nc.flush();
    const c = await RawMqtt.connect(b.mqttPort!);
    cleanups.push(() => c.close());
    // CONNECT, PUBLISH (QoS 2: its store write is asynchronous) and DISCONNECT in one write.
    c.sendRaw(Buffer.concat([
      mqttPacket.generate({ cmd: "connect", protocolId: "MQTT", protocolVersion: 4, clean: true, clientId: "q2", keepalive: 0 } as Packet),
      mqttPacket.generate({ cmd: "publish", topic: "after/disconnect", payload: Buffer.from("kept"), qos: 2, messageId: 7, retain: false, dup: false }),
      mqttPacket.generate({ cmd: "disconnect" }),
    ]));
    await c.closedWithin(2_000);
    expect(await firstData(sub)).toBe("kept");
    await serves(b);
  });

  it("a QoS 2 PUBLISH racing a takeover: the old connection is closed, the broker lives on", async () => {
    const b = await broker(config, topology);
    for (let i = 0; i < 20; i++) {
      const old = await RawMqtt.accepted(cleanups, b.mqttPort!, { clientId: "twin", clean: false });
      old.c.send({ cmd: "publish", topic: "race", payload: Buffer.from(String(i)), qos: 2, messageId: 1 + i, retain: false, dup: false });
      await RawMqtt.accepted(cleanups, b.mqttPort!, { clientId: "twin", clean: false });
      await old.c.closedWithin(2_000);
    }
    await serves(b);
  });

  it("packets sent before the CONNACK wait for the (bcrypt) authentication, then run", async () => {
    // bcrypt of "p1", cost 4
    const b = await broker(`server_name: mb\nauthorization { users: [ {user: u1, password: "$2b$04$njk6FT50qk8HNkO/hDQQxuJvkm0k.cjxG5MWEMjoeRLm6lLJGL5Zy"} ] }\nmqtt { host: 127.0.0.1, port: -1 }`, topology);
    const c = await RawMqtt.connect(b.mqttPort!);
    cleanups.push(() => c.close());
    c.sendRaw(Buffer.concat([
      mqttPacket.generate({ cmd: "connect", protocolId: "MQTT", protocolVersion: 4, clean: true, clientId: "early", keepalive: 0, username: "u1", password: Buffer.from("p1") } as Packet),
      mqttPacket.generate({ cmd: "publish", topic: "early", payload: Buffer.from("x"), qos: 1, messageId: 3, retain: false, dup: false }),
      mqttPacket.generate({ cmd: "pingreq" }),
    ]));
    expect((await c.next("connack")).returnCode).toBe(0);
    expect((await c.next("puback")).messageId).toBe(3);
    await c.next("pingresp");
  });
});

describe("fault 3: CONNECT fields of the wrong JSON type", () => {
  // What nats-server 2.9.10 does with each: its JSON decoder refuses the type, the connection is
  // closed as a protocol violation, with no -ERR.
  const cases = [
    `{"user":"u1","pass":123}`,
    `{"user":"u1","pass":{"a":1}}`,
    `{"user":["u1"],"pass":"p1"}`,
    `{"user":"u1","pass":"p1","auth_token":5}`,
    `{"user":"u1","pass":"p1","sig":[1]}`,
    `{"user":"u1","pass":"p1","nkey":true}`,
    `{"user":"u1","pass":"p1","jwt":{}}`,
    `{"user":"u1","pass":"p1","name":5}`,
    `{"user":"u1","pass":"p1","verbose":"yes"}`,
    `{"user":"u1","pass":"p1","echo":1}`,
    `{"user":"u1","pass":"p1","protocol":1.5}`,
    `{"user":"u1","pass":"p1","protocol":"1"}`,
    `[1,2]`,
    `"connect"`,
  ];

  async function transcript(port: number, connect: string): Promise<string> {
    const c = await rawConnect(port);
    cleanups.push(() => c.close());
    await c.expect(/^INFO .*\r\n/);
    await c.send(`CONNECT ${connect}\r\nPING\r\n`);
    await closedWithin(c, 2_000).catch(() => undefined);
    return c.received().replace(/^INFO .*\r\n/, "") + (c.isClosed() ? "<closed>" : "");
  }

  it("closes that connection as nats-server does, and the broker lives on", async () => {
    const ref = await startNatsServer(`port: -1\nhost: 127.0.0.1\n${USERS}`);
    cleanups.push(() => ref.stop());
    const b = await broker(USERS);
    for (const connect of cases) {
      const theirs = await transcript(ref.port, connect);
      expect(theirs, `nats-server: CONNECT ${connect}`).toBe("<closed>");
      expect(await transcript(b.natsPort, connect), `CONNECT ${connect}`).toBe(theirs);
    }
    // null leaves a field unset, in both.
    expect(await transcript(b.natsPort, `{"user":"u1","pass":"p1","lang":null,"verbose":false}`)).toBe("PONG\r\n");
    expect(b.log.some((l) => /cid:\d+ - json: cannot unmarshal number into Go struct field ClientOpts.pass of type string/.test(l))).toBe(true);
    await serves(b, { user: "u1", pass: "p1" });
  });

  it("the auth pipeline refuses credentials of the wrong type itself, for every method", async () => {
    const configs = [USERS, `authorization { token: t0k }`, `authorization { user: a, password: b }`];
    const odd: unknown[] = [123, { a: 1 }, ["x"], true, 1.5];
    for (const text of configs) {
      const { options } = loadConfigText(`port: -1\n${text}`, "test.conf", {});
      const auth = new AuthPipeline(options);
      for (const field of ["user", "pass", "token", "nkey", "sig", "jwt"] as const) {
        for (const v of odd) {
          const creds = { user: "u1", pass: "p1", [field]: v } as unknown as Credentials;
          const r = await auth.authenticate(creds, { connectionType: "STANDARD" });
          expect(r.ok, `${text} ${field}=${JSON.stringify(v)}`).toBe(false);
        }
      }
    }
  });
});

describe("fault 4: a WebSocket jwt_cookie that is not valid URI encoding", () => {
  it("is no cookie JWT (logged at debug); the client is refused as without one, the broker lives on", async () => {
    const op = await newOperator();
    const acme = await newAccount(op, "ACME");
    const bearer = await newUser(acme, "bearer", { bearer_token: true });
    const b = await broker(`${operatorConfig(op, [acme])}\nwebsocket { host: 127.0.0.1, port: -1, no_tls: true, jwt_cookie: "jwt" }`);
    const bad = await wsOpen(`ws://127.0.0.1:${b.wsPort}`, { headers: { Cookie: "jwt=%E0%A4%A" } });
    cleanups.push(() => bad.close());
    await bad.expect(/^INFO /);
    await bad.send(`CONNECT {"verbose":false,"protocol":1}\r\nPING\r\n`);
    await bad.expect("-ERR 'Authorization Violation'");
    expect((await closeWithin(bad)).code).toBe(1008);
    expect(b.log.some((l) => /cookie "jwt" is not valid URI encoding/.test(l))).toBe(true);
    // A good cookie still works.
    const good = await wsOpen(`ws://127.0.0.1:${b.wsPort}`, { headers: { Cookie: `jwt=${encodeURIComponent(bearer.jwt)}` } });
    cleanups.push(() => good.close());
    await good.send(`CONNECT {"verbose":false,"protocol":1}\r\nPING\r\n`);
    await good.expect("PONG\r\n");
  });
});

describe("the connection boundary", () => {
  /** Makes the router fail on one subject, as a bug would: the publisher's handler throws. */
  function failOn(b: TestBroker, subject: string): void {
    const link = b.broker.edge.link;
    const publish = link.publish.bind(link);
    link.publish = (account, subj, ...rest) => {
      if (subj === subject) throw new TypeError(`simulated bug routing ${subj}`);
      return publish(account, subj, ...rest);
    };
  }

  it("NATS (TCP and WebSocket): that connection gets -ERR 'Internal Server Error' (close 1011), is logged with its cid and counted; others carry on", async () => {
    const b = await broker(`websocket { host: 127.0.0.1, port: -1, no_tls: true }`);
    failOn(b, "boom");
    const bystander = await natsClient(cleanups, b.natsPort);
    const c = await rawConnect(b.natsPort);
    cleanups.push(() => c.close());
    await c.send(`CONNECT {"verbose":false}\r\nPUB boom 2\r\nhi\r\n`);
    await c.expect("-ERR 'Internal Server Error'\r\n");
    await closedWithin(c);
    const cid = Number(JSON.parse(c.received().match(/^INFO (.*) \r\n/)![1]).client_id);
    expect(b.log.some((l) => l.includes(`cid:${cid} - connection handler failed (exception), closing: TypeError: simulated bug`))).toBe(true);

    const w = await wsOpen(`ws://127.0.0.1:${b.wsPort}`);
    cleanups.push(() => w.close());
    await w.send(`CONNECT {"verbose":false}\r\nPUB boom 2\r\nhi\r\n`);
    await w.expect("-ERR 'Internal Server Error'\r\n");
    expect((await closeWithin(w)).code).toBe(1011);

    expect(await metric(b, /meshbroker_connection_errors_total\{type="STANDARD",reason="exception"\} (\d+)/)).toBe(1);
    expect(await metric(b, /meshbroker_connection_errors_total\{type="WEBSOCKET",reason="exception"\} (\d+)/)).toBe(1);
    const sub = bystander.subscribe("still");
    bystander.publish("still", sc.encode("here"));
    expect(await firstData(sub)).toBe("here");
  });

  it.each(mqttTopologies)("MQTT (%s): that connection is closed (3.1.1 has no server DISCONNECT), logged and counted; its session is detached", async (topology) => {
    const b = await broker(`server_name: mb\nmqtt { host: 127.0.0.1, port: -1 }\nwebsocket { host: 127.0.0.1, port: -1, no_tls: true }`, topology);
    // MQTT publishes go to the session service.
    const sessions = b.broker.edge.link.sessions!;
    const publish = sessions.publish.bind(sessions);
    sessions.publish = (conn, subj, msg) => {
      if (subj === "boom") throw new TypeError(`simulated bug routing ${subj}`);
      return publish(conn, subj, msg);
    };
    const { c } = await RawMqtt.accepted(cleanups, b.mqttPort!, { clientId: "victim" });
    c.send({ cmd: "publish", topic: "boom", payload: Buffer.from("x"), qos: 0, retain: false, dup: false });
    await c.closedWithin(2_000);
    expect(b.broker.edge.mqtt!.connections.size).toBe(0);
    expect(await metric(b, /meshbroker_connection_errors_total\{type="MQTT",reason="exception"\} (\d+)/)).toBe(1);
    // The same client id connects again (its session was detached on the way out).
    const again = await RawMqtt.accepted(cleanups, b.mqttPort!, { clientId: "victim" });
    again.c.send({ cmd: "pingreq" });
    await again.c.next("pingresp");
    await serves(b);
  });
});
