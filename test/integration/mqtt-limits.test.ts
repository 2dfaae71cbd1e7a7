// The per-connection rules NATS clients get apply to MQTT clients too: max_connections (counting
// every protocol), max_subscriptions, an account JWT's connection limit, credential expiry, and
// a config reload that removes a user or narrows its permissions. max_connections and
// max_subscriptions are compared with nats-server 2.9.10 (same config, same client bytes).
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { credsAuthenticator } from "nats";
import { mqttTopologies } from "../helpers/broker.js";
import { natsClient, natsRefusal } from "../helpers/clients.js";
import { newAccount, newOperator, newUser, operatorConfig } from "../helpers/creds.js";
import {
  closeOf, connectCollecting, connectMqtt, mqttTargets, noMessage, RawMqtt, startMqttBroker, startTarget, suback, tempDir,
  type MqttServer,
} from "../helpers/mqtt.js";
import { cleanupAfterEach } from "../helpers/wait.js";

const c = cleanupAfterEach();
const url = (s: MqttServer) => `mqtt://127.0.0.1:${s.mqttPort}`;

/** A raw CONNECT the server closes before any CONNACK (a connection limit). */
async function closedWithoutConnack(port: number, connect: { username?: string; password?: Buffer } = {}): Promise<void> {
  const r = await RawMqtt.connect(port);
  c.push(() => r.close());
  r.send({ cmd: "connect", protocolId: "MQTT", protocolVersion: 4, clean: true, clientId: "", keepalive: 0, ...connect });
  await r.closedWithin(3_000);
  expect(r.packets.map((p) => p.cmd)).toEqual([]);
}

describe.each(mqttTargets(mqttTopologies))("MQTT limits on $name", (target) => {
  it("max_connections counts NATS and MQTT clients together; an MQTT client over it is closed without CONNACK", async () => {
    const s = await startTarget(c, target, { config: "max_connections: 2" });
    await natsClient(c, s.natsPort);
    await connectMqtt(c, url(s), { clientId: "first" });
    await closedWithoutConnack(s.mqttPort);
    // nats.js reads the -ERR, or (nats-server) fails writing its CONNECT to the closed socket first.
    expect((await natsRefusal(s.natsPort)).message).toMatch(/maximum connections exceeded|EPIPE|ECONNRESET/);
  });

  it("max_subscriptions: a filter over it gets SUBACK 0x80 and the connection stays", async () => {
    const s = await startTarget(c, target, { config: "max_subscriptions: 1" });
    const { client: m, inbox } = await connectCollecting(c, url(s));
    expect(await suback(m, { "a/b": { qos: 0 }, "c/d": { qos: 0 } })).toEqual([0, 0x80]);
    // At the limit even the same filter again fails (nats-server); the existing subscription stays.
    expect(await suback(m, { "a/b": { qos: 0 } })).toEqual([0x80]);
    await m.publishAsync("a/b", "still", { qos: 0 });
    expect((await inbox.next()).payload).toBe("still");
    expect(m.connected).toBe(true);
  });
  it("a reload that removes a user closes its MQTT connections; one that narrows permissions drops the subscriptions it no longer allows", async () => {
    const users = `authorization { users: [
      { user: a1, password: p1, permissions: { subscribe: [">"] } }
      { user: a2, password: p2 }
      { user: pub, password: pp }
    ] }`;
    const s = await startTarget(c, target, { config: users });
    const { client: a1, inbox } = await connectCollecting(c, url(s), { username: "a1", password: "p1" });
    await a1.subscribeAsync("private/#", { qos: 0 });
    await a1.subscribeAsync("public/#", { qos: 0 });
    const a2 = await connectMqtt(c, url(s), { username: "a2", password: "p2" });
    const pub = await connectMqtt(c, url(s), { username: "pub", password: "pp" });

    await s.reload((text) => text
      .replace("{ user: a2, password: p2 }", "")
      .replace(`subscribe: [">"]`, `subscribe: ["public.>", "public"]`));
    await closeOf(a2);
    await pub.publishAsync("private/x", "no", { qos: 1 });
    await pub.publishAsync("public/x", "yes", { qos: 1 });
    expect((await inbox.next()).payload).toBe("yes");
    await noMessage(inbox);
    expect(a1.connected).toBe(true);
  });
});

describe.each(mqttTopologies)("MQTT wills and reloads (meshbroker %s)", (topology) => {
  // The session service publishes the will without asking the edge: a reload that denies the
  // user its will's subject withdraws the will too.
  it("a reload that denies the user its will's subject: the will is not published when the connection is lost", async () => {
    const users = `authorization { users: [
      { user: w, password: pw, permissions: { publish: [">"] } }
      { user: sub, password: ps }
    ] }`;
    const s = await startMqttBroker(topology, { config: users });
    c.push(() => s.stop());
    const { inbox } = await connectCollecting(c, url(s), { username: "sub", password: "ps" }).then(async (r) => {
      await r.client.subscribeAsync("wills/#", { qos: 0 });
      return r;
    });
    const { c: w } = await RawMqtt.accepted(c, s.mqttPort, {
      clientId: "willing", username: "w", password: Buffer.from("pw"),
      will: { topic: "wills/w", payload: Buffer.from("gone"), qos: 0, retain: false },
    });
    await s.reload((text) => text.replace(`publish: [">"]`, `publish: ["other"]`));
    // The edge handled the reload before this PINGREQ; the link keeps the order of its calls.
    w.send({ cmd: "pingreq" });
    await w.next("pingresp");
    w.socket.destroy();
    await noMessage(inbox, 500);
  });
});

describe.each(mqttTopologies)("MQTT and credentials (meshbroker %s)", (topology) => {
  it("an account JWT's limits.conn counts NATS and MQTT clients; an MQTT client over it is closed without CONNACK", async () => {
    const op = await newOperator();
    const acc = await newAccount(op, "A", { limits: { conn: 2 } });
    const user = await newUser(acc, "u", { bearer_token: true });
    const s = await startMqttBroker(topology, { config: operatorConfig(op, [acc]) });
    c.push(() => s.stop());
    await natsClient(c, s.natsPort, { authenticator: credsAuthenticator(user.creds) });
    await connectMqtt(c, url(s), { username: "jwt", password: user.jwt });
    await closedWithoutConnack(s.mqttPort, { username: "jwt", password: Buffer.from(user.jwt) });
    expect((await natsRefusal(s.natsPort, { authenticator: credsAuthenticator(user.creds) })).message)
      .toMatch(/maximum account active connections exceeded/);
  });

  it("an MQTT client whose bearer JWT expires is closed at the expiry", async () => {
    const op = await newOperator();
    const acc = await newAccount(op, "A");
    const exp = Math.floor(Date.now() / 1000) + 2;
    const user = await newUser(acc, "u", { bearer_token: true }, { exp });
    const s = await startMqttBroker(topology, { config: operatorConfig(op, [acc]) });
    c.push(() => s.stop());
    const m = await connectMqtt(c, url(s), { username: "jwt", password: user.jwt, keepalive: 0 });
    await closeOf(m, 5_000);
    expect(Date.now()).toBeGreaterThanOrEqual(exp * 1000);
  });

  it("an MQTT client whose OIDC token expires is closed at the expiry", async () => {
    const { privateKey, publicKey } = await generateKeyPair("RS256");
    const jwksFile = path.join(await tempDir(c), "jwks.json");
    await writeFile(jwksFile, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: "k1", alg: "RS256" }] }));
    const exp = Math.floor(Date.now() / 1000) + 2;
    const token = await new SignJWT({ sub: "device" }).setProtectedHeader({ alg: "RS256", kid: "k1" }).setExpirationTime(exp).sign(privateKey);
    const s = await startMqttBroker(topology, { config: `oidc { jwks_file: "${jwksFile}", clock_tolerance: 0 }` });
    c.push(() => s.stop());
    const m = await connectMqtt(c, url(s), { username: "oidc", password: token, keepalive: 0 });
    await closeOf(m, 5_000);
    expect(Date.now()).toBeGreaterThanOrEqual(exp * 1000);
  });

});
