// Start order in a cluster does not matter: a router started before Redis waits for it, and an
// edge started before any router waits and attaches once one listens; each logs why it waits.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, expect, it } from "vitest";
import { freePorts, spawnBroker, spawnCommand, stopAllBrokers } from "../helpers/process.js";
import { REDIS_SERVER_BIN } from "../helpers/redis.js";
import { ATTACHED, CLUSTER_TOKEN } from "../helpers/cluster.js";
import { natsClient } from "../helpers/clients.js";
import { connack, connectCollecting, connectMqtt, suback } from "../helpers/mqtt.js";
import { cleanupAfterEach, firstData, withTimeout } from "../helpers/wait.js";

afterEach(() => stopAllBrokers());
const cleanups = cleanupAfterEach();

it("edge first, then the router, then Redis: each waits, logs why, and the cluster comes up", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "meshbroker-startup-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const [routerPort, redisPort] = await freePorts(2);
  await writeFile(path.join(dir, "edge.conf"),
    `server_name: e1\nhost: 127.0.0.1\nport: -1\nmqtt { host: 127.0.0.1, port: -1 }\n` +
    `edge { routers: ["127.0.0.1:${routerPort}"], authorization { token: "${CLUSTER_TOKEN}" } }\n`);
  await writeFile(path.join(dir, "router.conf"),
    `server_name: r1\nrouter { listen: "127.0.0.1:${routerPort}", redis: "redis://127.0.0.1:${redisPort}", authorization { token: "${CLUSTER_TOKEN}" } }\n`);

  const edge = spawnBroker(["edge", "-c", path.join(dir, "edge.conf")]);
  const nats = await edge.waitForLine(/listening for NATS clients on \S+:(\d+)$/);
  const mqttUrl = `mqtt://127.0.0.1:${(await edge.waitForLine(/listening for MQTT clients on \S+:(\d+)$/))[1]}`;
  await edge.waitForLine(/cannot attach to router 127\.0\.0\.1:\d+: .*ECONNREFUSED/);
  // Clients are served meanwhile; their subscriptions wait for the router.
  const nc = await natsClient(cleanups, Number(nats[1]));
  const sub = nc.subscribe("early.bird", { max: 1 });
  await nc.flush();

  const router = spawnBroker(["router", "-c", path.join(dir, "router.conf")]);
  await router.waitForLine(/listening for edges on/);
  await router.waitForLine(/Redis at redis:\/\/127\.0\.0\.1:\d+ not reachable/);
  await edge.waitForLine(ATTACHED, 5_000);
  nc.publish("early.bird", new TextEncoder().encode("routed"));
  expect(await firstData(sub)).toBe("routed");
  // MQTT needs the session service, which needs Redis: until then, "server unavailable".
  expect(await connack(cleanups, mqttUrl, { clientId: "early" })).toEqual({ returnCode: 3, sessionPresent: false });

  const redis = spawnCommand(REDIS_SERVER_BIN, ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir]);
  cleanups.push(() => redis.kill());
  await redis.waitForLine(/Ready to accept connections/);
  await router.waitForLine(/MQTT state stored in Redis at redis:\/\/127\.0\.0\.1:\d+/, 5_000);
  await router.waitForLine(/MQTT session service started/, 5_000);
  const mark = edge.mark();
  expect(await connack(cleanups, mqttUrl, { clientId: "early" })).toEqual({ returnCode: 0, sessionPresent: false });

  // kill -9 of the only router: its restart restores the persistent sessions it owned.
  const keeper = await connectMqtt(cleanups, mqttUrl, { clientId: "keeper", clean: false });
  await suback(keeper, { "keep/#": { qos: 1 } });
  await keeper.publishAsync("keep/probe", "p", { qos: 1 }); // acked: the router has the subscription
  await keeper.endAsync();
  await router.kill();
  const again = spawnBroker(["router", "-c", path.join(dir, "router.conf")]);
  // The same router id (server_name): what it owned is restored at once.
  await again.waitForLine(/MQTT session service started \(1 sessions restored\)/, 10_000);
  await edge.waitForLine(ATTACHED, 5_000, { since: mark });
  const pub = await connectMqtt(cleanups, mqttUrl, { clientId: "keep-pub" });
  await pub.publishAsync("keep/x", "while away", { qos: 1 });
  const back = await connectCollecting(cleanups, mqttUrl, { clientId: "keeper", clean: false });
  expect(back.sessionPresent).toBe(true);
  await withTimeout((async () => {
    while (!back.inbox.all.some((m) => m.payload === "while away")) await new Promise((r) => setTimeout(r, 20));
  })(), 5_000, () => `the restored session did not deliver (got ${JSON.stringify(back.inbox.all.map((m) => m.payload))})`);
}, 40_000);
