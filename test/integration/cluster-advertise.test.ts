// Edges advertise their client URLs: INFO connect_urls lists every edge's (this edge's first,
// as nats-server 2.9.10 does in a 2-node cluster with routes), WebSocket clients get the
// websocket URLs, and protocol-1 clients get an async INFO when an edge joins or leaves. nats.js
// and nats.ws fail over by themselves with it: after a kill -9 of their edge, and out of an
// edge's lame duck (SIGTERM), missing nothing published after they resubscribed. One cluster,
// one story: each test continues from the state the previous one left.
import { connect, Events, StringCodec, type NatsConnection, type Subscription } from "nats";
import { connect as connectWs } from "nats.ws";
import WebSocket from "ws";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startBroker } from "../helpers/broker.js";
import { natsClient } from "../helpers/clients.js";
import { startCluster, type ClusterEdge, type TestCluster } from "../helpers/cluster.js";
import { rawConnect, type RawClient } from "../helpers/raw.js";
import { Cleanups, withTimeout } from "../helpers/wait.js";

Object.assign(globalThis, { WebSocket }); // nats.ws in Node runs on the ws library
const sc = StringCodec();
let cluster: TestCluster;
// Clients live across the tests of the file (the story goes on), closed at the end.
const cleanups = new Cleanups();
beforeAll(async () => {
  cluster = await startCluster({
    routers: 2, edges: 2,
    edgeConfig: 'websocket { host: 127.0.0.1, port: -1, no_tls: true }\nlame_duck_duration: "30s"\nlame_duck_grace_period: "500ms"',
  });
}, 30_000);
afterAll(async () => {
  await cleanups.run();
  await cluster?.stop();
});

const nats = (e: ClusterEdge) => `127.0.0.1:${e.natsPort}`;
const ws = (e: ClusterEdge) => `127.0.0.1:${e.wsPort}`;
/** The connect_urls of an INFO line, for a regexp. */
const urlsOf = (urls: string[]) => `"connect_urls":\\[${urls.map((u) => `"${u}"`).join(",")}\\]`;

/** A protocol-1 raw client past its first PONG, so it takes async INFOs. */
async function watcher(e: ClusterEdge): Promise<RawClient> {
  const c = await rawConnect(e.natsPort);
  cleanups.push(() => c.close());
  await c.send('CONNECT {"protocol":1,"verbose":false}\r\nPING\r\n');
  await c.expect("PONG\r\n");
  return c;
}

/** Publishes on `pub` until `sub` gets one: the subscription is live again. */
async function live(pub: NatsConnection, sub: Subscription, subject: string): Promise<void> {
  const got = (async () => { for await (const _ of sub) return; })();
  let done = false;
  void got.then(() => { done = true; });
  await withTimeout((async () => {
    while (!done) {
      pub.publish(subject, sc.encode("probe"));
      await pub.flush();
      await new Promise((r) => setTimeout(r, 20));
    }
  })(), 5_000, () => `no delivery on ${subject}`);
}

let tcp: NatsConnection;
let wsc: Awaited<ReturnType<typeof connectWs>>;

it("a client of edge 1 gets every edge's URL in connect_urls, its own first; WebSocket clients the websocket URLs", async () => {
  const [e1, e2] = cluster.edges;
  // The other router's edges arrive through Redis within a period (1 s).
  const t0 = Date.now();
  const w = await watcher(e1);
  await w.expect(new RegExp(urlsOf([nats(e1), nats(e2)])), 5_000);
  console.log(`edge 2's URL known on edge 1 ${Date.now() - t0} ms after the first PONG`);
  tcp = await connect({ servers: nats(e1), reconnectTimeWait: 100, maxReconnectAttempts: -1, timeout: 3_000 });
  cleanups.push(() => tcp.close());
  expect(tcp.info?.connect_urls).toEqual([nats(e1), nats(e2)]);
  wsc = await connectWs({ servers: `ws://${ws(e1)}`, reconnectTimeWait: 100, maxReconnectAttempts: -1, timeout: 3_000 });
  cleanups.push(() => wsc.close());
  expect(wsc.info?.connect_urls).toEqual([ws(e1), ws(e2)]);
}, 15_000);

it("kill -9 of edge 1: nats.js and nats.ws reconnect to edge 2 by themselves, their subscriptions work again; edge 2's clients get an INFO without edge 1", async () => {
  const [e1, e2] = cluster.edges;
  const w2 = await watcher(e2);
  const subTcp = tcp.subscribe("adv.tcp");
  const subWs = wsc.subscribe("adv.ws");
  await Promise.all([tcp.flush(), wsc.flush()]);
  const pub = await natsClient(cleanups, e2.natsPort);
  const t0 = Date.now();
  await e1.proc.kill();
  await Promise.all([live(pub, subTcp, "adv.tcp"), live(pub, subWs, "adv.ws")]);
  console.log(`edge 1 killed: both clients receiving again on edge 2 after ${Date.now() - t0} ms`);
  expect(tcp.getServer()).toBe(nats(e2));
  await w2.expect(new RegExp(`INFO [^\\r]*${urlsOf([nats(e2)])}`), 5_000);
}, 20_000);

it("an edge joining later shows up in an async INFO (nats.js reports the new server)", async () => {
  const added = (async () => {
    for await (const s of tcp.status()) {
      if (s.type === Events.Update && (s.data as { added?: string[] }).added?.length) return (s.data as { added: string[] }).added;
    }
    return [];
  })();
  const e3 = await cluster.addEdge();
  const urls = await withTimeout(added, 5_000, () => "no async INFO with the new edge");
  expect(urls).toContain(nats(e3));
  expect(tcp.info?.connect_urls).toEqual([nats(cluster.edges[1]), nats(e3)]);
}, 20_000);

it("SIGTERM on an edge: URLs withdrawn first, INFO ldm, clients move to another edge and miss nothing after resubscribing, the edge exits", async () => {
  const [, e2, e3] = cluster.edges;
  const w3 = await watcher(e3);
  const mark = w3.received().length;
  const sub = tcp.subscribe("adv.ldm");
  await tcp.flush();
  const ldm = (async () => { for await (const s of tcp.status()) if (s.type === Events.LDM) return; })();
  const reconnected = (async () => { for await (const s of tcp.status()) if (s.type === Events.Reconnect) return; })();
  const t0 = Date.now();
  e2.proc.signal("SIGTERM");
  // The other edges' clients hear first that edge 2 is gone, then edge 2's get INFO ldm.
  await w3.expect(new RegExp(`INFO [^\\r]*${urlsOf([nats(e3)])}`), 5_000, mark);
  await withTimeout(ldm, 5_000, () => "no INFO ldm");
  console.log(`lame duck: connect_urls without edge 2 on edge 3 after ${Date.now() - t0} ms`);
  await withTimeout(reconnected, 10_000, () => "nats.js did not reconnect");
  expect(tcp.getServer()).toBe(nats(e3));
  await tcp.flush(); // the SUB replayed on edge 3 is applied
  console.log(`lame duck: the client moved to edge 3 after ${Date.now() - t0} ms`);
  const pub = await natsClient(cleanups, e3.natsPort);
  const N = 500;
  const got = (async () => {
    let n = 0;
    for await (const _ of sub) if (++n === N) return n;
    return n;
  })();
  for (let i = 0; i < N; i++) pub.publish("adv.ldm", sc.encode(String(i)));
  await pub.flush();
  expect(await withTimeout(got, 5_000, () => "messages missing after the move")).toBe(N);
  const exit = await e2.proc.exitWithin(35_000);
  expect(exit.code).toBe(0);
  console.log(`lame duck: edge 2 exited by itself after ${Date.now() - t0} ms`);
}, 60_000);

it("client_advertise is the host and port of INFO, a bare host with the listen port; a single server sends no connect_urls (nats-server 2.9.10)", async () => {
  const b = await startBroker({ config: 'client_advertise: "adv.example"' });
  cleanups.push(() => b.stop());
  const c = await rawConnect(b.natsPort);
  cleanups.push(() => c.close());
  const info = JSON.parse((await c.expect(/^INFO (\{.*\}) \r\n/))[1]) as Record<string, unknown>;
  expect([info.host, info.port, info.connect_urls]).toEqual(["adv.example", b.natsPort, undefined]);
});
