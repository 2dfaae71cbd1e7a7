// Monitoring of the cluster roles: a router's /healthz, /varz, /routez and /metrics, and an
// edge's /healthz and /varz following its link (2 routers, 2 edges, each homed on its router).
import { StringCodec } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { natsClient } from "../helpers/clients.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { startRedis } from "../helpers/redis.js";
import { askUntil, cleanupAfterEach } from "../helpers/wait.js";

const sc = StringCodec();
let cluster: TestCluster;
beforeAll(async () => { cluster = await startCluster({ monitoring: true }); }, 30_000);
afterAll(() => cluster?.stop());
const cleanups = cleanupAfterEach();

async function get(port: number | undefined, path: string): Promise<{ status: number; body: string; json: () => Record<string, any> }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  const body = await res.text();
  return { status: res.status, body, json: () => JSON.parse(body) as Record<string, any> };
}

/** The value of one sample line of a Prometheus text page. */
function sample(page: string, line: string): number | undefined {
  const m = page.split("\n").find((l) => l.startsWith(`${line} `));
  return m === undefined ? undefined : Number(m.slice(line.length + 1));
}

describe("router monitoring", () => {
  it("/healthz, /varz and /routez: peers with rtt and messages, attached edges", async () => {
    const [r1, r2] = cluster.routers;
    expect((await get(r1.httpPort, "/healthz")).json()).toEqual({ status: "ok" });
    // Traffic from edge 1 (router 1) to a subscriber on edge 2 (router 2) crosses the route.
    const sub = await natsClient(cleanups, cluster.edges[1].natsPort);
    const pub = await natsClient(cleanups, cluster.edges[0].natsPort);
    let got = 0;
    sub.subscribe("mon.x", { callback: () => { got++; } });
    await sub.flush();
    for (let i = 0; i < 10; i++) pub.publish("mon.x", sc.encode("m"));
    await pub.flush();
    await sub.flush();
    expect(got).toBe(10);

    // Edges are known by their server id (the Hello's edge id).
    const [e1, e2] = await Promise.all(cluster.edges.map(async (e) => (await get(e.httpPort, "/varz")).json().server_id as string));
    const varz = (await get(r1.httpPort, "/varz")).json();
    expect(varz.role).toBe("router");
    expect(varz.server_name).toBe("r1");
    expect(varz.cluster).toMatchObject({ peers: ["r2"], edges: [e1], redis: "up" });
    const routez = (await get(r1.httpPort, "/routez")).json();
    expect(routez.num_routes).toBe(1);
    expect(routez.routes[0]).toMatchObject({ remote_id: "r2", did_solicit: true });
    expect(routez.routes[0].out_msgs).toBeGreaterThanOrEqual(10);
    expect(routez.routes[0].rtt).toMatch(/s$/);
    expect(routez.edges.map((e: { edge_id: string }) => e.edge_id)).toEqual([e1]);
    const r2routez = (await get(r2.httpPort, "/routez")).json();
    expect(r2routez.routes[0]).toMatchObject({ remote_id: "r1", did_solicit: false });
    expect(r2routez.routes[0].in_msgs).toBeGreaterThanOrEqual(10);
    expect(r2routez.edges[0]).toMatchObject({ edge_id: e2 });
    expect(r2routez.edges[0].subscriptions).toBeGreaterThanOrEqual(1);
  });

  it("/metrics: mesh, edge links (frames, ops) and Redis calls", async () => {
    const e1 = (await get(cluster.edges[0].httpPort, "/varz")).json().server_id as string;
    const page = (await get(cluster.routers[0].httpPort, "/metrics")).body;
    expect(sample(page, "meshbroker_mesh_peers")).toBe(1);
    expect(sample(page, "meshbroker_router_edges")).toBe(1);
    expect(sample(page, `meshbroker_link_frames_total{peer="${e1}",direction="in"}`)).toBeGreaterThan(0);
    expect(sample(page, `meshbroker_link_ops_total{peer="${e1}",direction="in"}`)).toBeGreaterThan(0);
    expect(sample(page, 'meshbroker_mesh_frames_total{peer="r2",direction="out"}')).toBeGreaterThan(0);
    expect(sample(page, `meshbroker_link_queue_bytes{peer="${e1}"}`)).toBe(0);
    expect(sample(page, "meshbroker_redis_calls_total")).toBeGreaterThan(0);
    expect(sample(page, "meshbroker_redis_errors_total")).toBe(0);
  });
});

describe("edge monitoring", () => {
  it("/healthz ok while attached; /varz says role edge and its router; link metrics", async () => {
    const e1 = cluster.edges[0];
    expect((await get(e1.httpPort, "/healthz")).json()).toEqual({ status: "ok" });
    const varz = (await get(e1.httpPort, "/varz")).json();
    expect(varz.role).toBe("edge");
    expect(varz.cluster).toMatchObject({ router: "r1", router_address: `127.0.0.1:${cluster.routers[0].port}` });
    // The RTT probe runs every second: wait for a figure.
    const page = await askUntil(async () => (await get(e1.httpPort, "/metrics")).body,
      (p) => (sample(p, "meshbroker_link_rtt_seconds") ?? 0) > 0, 5_000);
    expect(sample(page, 'meshbroker_link_attached{peer="r1"}')).toBe(1);
    expect(sample(page, "meshbroker_link_reattaches_total")).toBe(0);
    expect(sample(page, 'meshbroker_link_ops_total{peer="r1",direction="out"}')).toBeGreaterThan(0);
    console.log(`edge e1 → router r1 sync RTT (with router 1's barrier over router 2): ${(sample(page, "meshbroker_link_rtt_seconds")! * 1000).toFixed(2)} ms`);
  });
});

describe("what a client's PING asks of the router", () => {
  it("nothing when the client has no subscription and made no call: connect handshakes add no op on the edge's link", async () => {
    const e1 = cluster.edges[0];
    const opsOut = async () => sample((await get(e1.httpPort, "/metrics")).body, 'meshbroker_link_ops_total{peer="r1",direction="out"}')!;
    const N = 40;
    const before = await opsOut();
    const started = Date.now();
    for (let i = 0; i < N; i++) await (await natsClient(cleanups, e1.natsPort)).flush(); // CONNECT + PING, then a flush
    const seconds = (Date.now() - started) / 1000;
    const added = (await opsOut()) - before;
    console.log(`${N} connects and flushes in ${seconds.toFixed(2)} s: ${added} ops on the edge's link`);
    // Only the RTT probe (one sync a second) may have gone meanwhile; one sync per PING would be 2N.
    expect(added).toBeLessThanOrEqual(Math.ceil(seconds) + 1);

    // With a subscription the flush still waits for the router (a sync op, after the SUB).
    const nc = await natsClient(cleanups, e1.natsPort);
    nc.subscribe("ping.rule");
    const mid = await opsOut();
    await nc.flush();
    await nc.flush();
    expect((await opsOut()) - mid).toBeGreaterThanOrEqual(3); // the SUB, then a sync per flush
  });
});

describe("health follows the cluster's state", () => {
  it("a router without Redis answers 503 and ok again once Redis is back; an edge without a router answers 503", async () => {
    const r1 = cluster.routers[0];
    const port = Number(new URL(cluster.redis.url).port);
    await cluster.redis.stop();
    const down = await askUntil(() => get(r1.httpPort, "/healthz"), (h) => h.status === 503, 5_000);
    expect(down.json()).toEqual({ status: "unavailable", error: "Redis unavailable" });
    const again = await startRedis({ port });
    cleanups.push(() => again.stop());
    await askUntil(() => get(r1.httpPort, "/healthz"), (h) => h.status === 200, 10_000);

    // Both routers gone: the edges have nowhere to attach.
    const e1 = cluster.edges[0];
    await cluster.killRouter(0);
    await cluster.killRouter(1);
    const detached = await askUntil(() => get(e1.httpPort, "/healthz"), (h) => h.status === 503, 5_000);
    expect(detached.json()).toEqual({ status: "unavailable", error: "not attached to a router" });
    expect((await get(e1.httpPort, "/varz")).json().cluster).toMatchObject({ router: "" });
  }, 30_000);
});
