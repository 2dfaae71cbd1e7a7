// `make test-chart`: the chart installed with its default values on kube-sim (needs root): each
// pod a process in its own network namespace with the pod's env, volumes, probes and preStop,
// cluster DNS from dnsmasq, the checkout standing in for the meshbroker image and Debian's
// redis-server for the Redis image. Clients go through `kube-sim port-forward` of the client
// Service, which picks the next ready edge per connection. What kube-sim does not simulate (a
// Service VIP, securityContext, NetworkPolicy, the HPA) is not checked here.
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { connect, StringCodec, type NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { wsClient } from "../helpers/clients.js";
import { KubeSim, renderChart, type Rendered, type SimPod } from "../helpers/chart.js";
import { collect, connectMqtt, suback, type Inbox } from "../helpers/mqtt.js";
import { freePorts } from "../helpers/process.js";
import { Cleanups, firstData, withTimeout } from "../helpers/wait.js";

Object.assign(globalThis, { WebSocket }); // nats.ws in Node runs on the ws library
const sc = StringCodec();
const isRoot = process.getuid?.() === 0;
const RELEASE = "mb";
const SERVICE = `svc/${RELEASE}-meshbroker`;
const edges = (pods: SimPod[]) => pods.filter((p) => p.name.startsWith(`${RELEASE}-meshbroker-edge-`));
const routers = (pods: SimPod[]) => pods.filter((p) => p.name.startsWith(`${RELEASE}-meshbroker-router-`));
const allReady = (pods: SimPod[]) => pods.length > 0 && pods.every((p) => p.ready);

describe.skipIf(!isRoot)("the chart on kube-sim (default values)", () => {
  const cleanups = new Cleanups();
  let tmp: string;
  let sim: KubeSim | undefined;
  let rendered: Rendered;
  let port: { nats: number; ws: number; mqtt: number; monitor: number };
  const started = Date.now();
  const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), "meshbroker-chart-e2e-"));
    rendered = await renderChart(tmp, [], RELEASE);
    sim = await KubeSim.create();
    // a subnet of its own per run (the host must not route it already)
    const subnet = `10.213.${100 + (process.pid % 150)}.0/24`;
    const t0 = Date.now();
    try {
      await sim.up(rendered.file, subnet);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${await sim.logs()}`);
    }
    console.log(`kube-sim up: every pod ready after ${Date.now() - t0} ms`);
    const [nats, ws, mqtt, monitor] = await freePorts(4);
    port = { nats, ws, mqtt, monitor };
    await sim.run(["port-forward", SERVICE, `${nats}:4222`, `${ws}:8080`, `${mqtt}:1883`, `${monitor}:8222`]);
  }, 300_000);

  afterAll(async () => {
    await cleanups.run();
    if (sim) await sim.down();
    await rm(tmp, { recursive: true, force: true });
    console.log(`chart end-to-end: ${elapsed()} in all`);
  }, 180_000);

  /** Fails with every pod's log: what a failing step most needs. */
  async function withLogs<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${await sim!.logs()}`);
    }
  }

  /** A nats.js client through the forward that reconnects through it (per-connection round robin). */
  async function natsThrough(name: string): Promise<NatsConnection> {
    const nc = await connect({
      servers: `127.0.0.1:${port.nats}`, name, timeout: 5_000,
      reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 200,
    });
    cleanups.push(() => nc.close());
    return nc;
  }

  it("starts every pod of the default values: 2 edges, 2 routers, the bundled Redis", async () => {
    const pods = await sim!.pods();
    expect(edges(pods)).toHaveLength(2);
    expect(routers(pods)).toHaveLength(2);
    expect(pods.filter((p) => p.name === `${RELEASE}-meshbroker-redis-0`)).toHaveLength(1);
    expect(allReady(pods)).toBe(true);
    const varz = await (await fetch(`http://127.0.0.1:${port.monitor}/varz`)).json() as { role?: string; cluster?: { router?: string } };
    expect(varz.role).toBe("edge");
    expect(varz.cluster?.router).toMatch(/^mb-meshbroker-router-\d$/);
  });

  it("NATS, WebSocket and MQTT clients round-trip through the client Service", () => withLogs(async () => {
    // each connection goes to the next ready edge: the pairs below cross edges as well
    const sub = await natsThrough("e2e-sub");
    const ws = await wsClient(cleanups, `ws://127.0.0.1:${port.ws}`, { name: "e2e-ws" });
    const mqttSub = await connectMqtt(cleanups, `mqtt://127.0.0.1:${port.mqtt}`, { clientId: "e2e-mqtt-sub" });
    const mqttPub = await connectMqtt(cleanups, `mqtt://127.0.0.1:${port.mqtt}`, { clientId: "e2e-mqtt-pub" });
    const inbox = collect(mqttSub);
    expect(await suback(mqttSub, { "e2e/mqtt": { qos: 1 } })).toEqual([1]);
    const natsGot = firstData(sub.subscribe("e2e.nats", { max: 1 }), 10_000);
    const wsGot = firstData(ws.subscribe("e2e.ws", { max: 1 }), 10_000);
    const fromMqtt = firstData(sub.subscribe("e2e.mqtt", { max: 1 }), 10_000);
    await sub.flush();
    await ws.flush();
    const pub = await natsThrough("e2e-pub");
    pub.publish("e2e.nats", sc.encode("via NATS"));
    pub.publish("e2e.ws", sc.encode("to WebSocket"));
    await pub.flush();
    await mqttPub.publishAsync("e2e/mqtt", "via MQTT", { qos: 1 });
    expect(await natsGot).toBe("via NATS");
    expect(await wsGot).toBe("to WebSocket");
    expect(await fromMqtt).toBe("via MQTT");
    expect((await inbox.next(10_000)).payload).toBe("via MQTT");
    console.log(`edges of the clients: sub ${sub.info?.server_name}, pub ${pub.info?.server_name}, ws ${ws.info?.server_name}`);
  }), 60_000);

  it("a router killed with -9 is restarted, and the clients do not notice", () => withLogs(async () => {
    const subs: Array<{ name: string; got: number[]; closed: () => boolean }> = [];
    for (let i = 0; i < 2; i++) {
      const nc = await natsThrough(`e2e-kill-nats-${i}`);
      let disconnects = 0;
      void (async () => { for await (const s of nc.status()) if (s.type === "disconnect") disconnects++; })();
      const got: number[] = [];
      const sub = nc.subscribe("e2e.kill");
      void (async () => { for await (const m of sub) got.push(Number(sc.decode(m.data))); })();
      await nc.flush();
      subs.push({ name: `nats ${nc.info?.server_name}`, got, closed: () => disconnects > 0 || nc.isClosed() });
    }
    const ws = await wsClient(cleanups, `ws://127.0.0.1:${port.ws}`, { name: "e2e-kill-ws" });
    const wsGot: number[] = [];
    const wsSub = ws.subscribe("e2e.kill");
    void (async () => { for await (const m of wsSub) wsGot.push(Number(sc.decode(m.data))); })();
    await ws.flush();
    subs.push({ name: `ws ${ws.info?.server_name}`, got: wsGot, closed: () => ws.isClosed() });
    const mq = await connectMqtt(cleanups, `mqtt://127.0.0.1:${port.mqtt}`, { clientId: "e2e-kill-mqtt" });
    let mqClosed = false;
    mq.on("close", () => { mqClosed = true; });
    const mqInbox: Inbox = collect(mq);
    expect(await suback(mq, { "e2e/kill": { qos: 0 } })).toEqual([0]);
    subs.push({ name: "mqtt", get got() { return mqInbox.all.map((r) => Number(r.payload)); }, closed: () => mqClosed });

    const pub = await natsThrough("e2e-kill-pub");
    let n = 0;
    const publisher = setInterval(() => pub.publish("e2e.kill", sc.encode(String(++n))), 20);
    cleanups.push(() => clearInterval(publisher));
    const everyoneHas = (k: number) => subs.every((s) => s.got.some((x) => x >= k));
    await withTimeout((async () => { while (!everyoneHas(1)) await new Promise((r) => setTimeout(r, 20)); })(), 10_000,
      () => "not every subscriber received before the kill");

    const victim = `${RELEASE}-meshbroker-router-0`;
    const before = (await sim!.pods()).find((p) => p.name === victim)!;
    const killedAt = n;
    const t0 = Date.now();
    await sim!.run(["kill", victim, "--signal", "KILL"]);
    await sim!.waitPods((pods) => pods.some((p) => p.name === victim && p.ready && p.restarts > before.restarts), 60_000,
      `${victim} restarted and ready`);
    const restartedMs = Date.now() - t0;
    const after = n;
    await withTimeout((async () => { while (!everyoneHas(after + 25)) await new Promise((r) => setTimeout(r, 20)); })(), 15_000,
      () => `not every subscriber kept receiving: ${subs.map((s) => `${s.name} last ${Math.max(0, ...s.got)}`).join(", ")} (published ${n})`);
    clearInterval(publisher);
    for (const s of subs) expect(s.closed(), `${s.name} was disconnected`).toBe(false);
    const missed = subs.map((s) => {
      const seen = new Set(s.got);
      let m = 0;
      for (let i = 1; i <= after + 25; i++) if (!seen.has(i)) m++;
      return `${s.name}: ${m} missed`;
    });
    console.log(`router kill -9 at message ${killedAt}: ${victim} ready again after ${restartedMs} ms; ${missed.join(", ")} of ${after + 25} (NATS core: at most once)`);
  }), 120_000);

  it("an edge scaled away drains its clients to the other edge (lame duck)", () => withLogs(async () => {
    const clients: NatsConnection[] = [];
    const got = new Map<NatsConnection, number>();
    for (let i = 0; i < 6; i++) {
      const nc = await natsThrough(`e2e-drain-${i}`);
      const sub = nc.subscribe("e2e.drain");
      got.set(nc, 0);
      void (async () => { for await (const m of sub) got.set(nc, Number(sc.decode(m.data))); })();
      await nc.flush();
      clients.push(nc);
    }
    const spread = new Set(clients.map((c) => c.info?.server_name));
    expect(spread.size, "the forward spreads connections over both edges").toBe(2);
    const t0 = Date.now();
    await sim!.run(["scale", `deployment/${RELEASE}-meshbroker-edge`, "1"]);
    const left = await sim!.waitPods((pods) => edges(pods).length === 1 && edges(pods)[0].ready, 120_000, "one edge left");
    const survivor = edges(left)[0].name;
    const goneMs = Date.now() - t0;
    // every client is now on the surviving edge, subscribed again, and receiving
    const pub = await natsThrough("e2e-drain-pub");
    expect(pub.info?.server_name).toBe(survivor);
    let n = 0;
    const publisher = setInterval(() => pub.publish("e2e.drain", sc.encode(String(++n))), 50);
    cleanups.push(() => clearInterval(publisher));
    const mark = n;
    await withTimeout((async () => {
      while (!clients.every((c) => c.info?.server_name === survivor && got.get(c)! > mark)) await new Promise((r) => setTimeout(r, 50));
    })(), 30_000, () => `clients not all receiving on ${survivor}: ${clients.map((c) => `${c.info?.server_name}@${got.get(c)}`).join(", ")}`);
    clearInterval(publisher);
    expect(clients.every((c) => !c.isClosed())).toBe(true);
    console.log(`scale 2 -> 1: the edge was gone after ${goneMs} ms (preStop sleep, lame duck); all 6 clients receiving on ${survivor} after ${Date.now() - t0} ms`);
  }), 180_000);

  it("the helm test pod's command passes (run in the remaining edge pod)", () => withLogs(async () => {
    const test = rendered.get("Pod", "-test-pubsub");
    const c = (test.spec as { containers: Array<{ command: string[]; env: Array<{ name: string; value: string }> }> }).containers[0];
    const edge = edges(await sim!.pods())[0].name;
    const r = await sim!.run(["exec", edge, "--", "env", ...c.env.map((e) => `${e.name}=${e.value}`), ...c.command], 30_000);
    expect(r.stdout).toMatch(/^OK: published and received on helm\.test\./m);
  }), 60_000);
});
