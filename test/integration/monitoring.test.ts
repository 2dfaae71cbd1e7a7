// The monitoring listener: /healthz, /varz, /connz, /subsz in nats-server's JSON shapes, and
// /metrics in Prometheus text. Shapes are checked against the real nats-server 2.9 driven by
// the same nats.js traffic; every difference is listed below as a known set, so a key that
// meshbroker drops (or newly adds) fails the test. Values are checked against the traffic.
import { afterEach, beforeAll, afterAll, describe, expect, it } from "vitest";
import { connect, type NatsConnection, type NatsError } from "nats";
import { clusterTopologies, startBroker, startTarget, topologies, type SuiteBroker, type SuiteTopology } from "../helpers/broker.js";
import { startNatsServer, type RealNatsServer } from "../helpers/nats-server.js";
import { rawConnect, closedWithin, type RawClient } from "../helpers/raw.js";
import { askUntil } from "../helpers/wait.js";

// ---- known differences from nats-server 2.9.10 (key names; values differ freely) ----

/** /varz keys only nats-server has. */
const VARZ_ONLY_NATS_SERVER: string[] = [];
const VARZ_ONLY_MESHBROKER: string[] = [];
/** /connz connection keys only meshbroker has (none: `account` and `authorized_user`
 *  appear only with `?auth=1`, as in nats-server). */
const CONN_ONLY_NATS_SERVER: string[] = [];
const CONN_ONLY_MESHBROKER: string[] = [];
/** /subsz without ?subs: nats-server sends the bare sublist stats. */
const SUBSZ_ONLY_NATS_SERVER: string[] = [];
const SUBSZ_ONLY_MESHBROKER: string[] = [];

/** The connection fields NATS tooling reads (nats-server's key set for a client with subs). */
const CONNECTION_KEYS = [
  "cid", "kind", "type", "ip", "port", "start", "last_activity", "rtt", "uptime", "idle",
  "pending_bytes", "in_msgs", "out_msgs", "in_bytes", "out_bytes", "subscriptions",
  "name", "lang", "version", "subscriptions_list",
];

interface Conn {
  cid: number; kind: string; type: string; ip: string; port: number; name?: string;
  subscriptions: number; subscriptions_list?: string[]; subscriptions_list_detail?: unknown[];
  in_msgs: number; out_msgs: number; in_bytes: number; out_bytes: number; pending_bytes: number;
  reason?: string; stop?: string; [k: string]: unknown;
}
interface Connz { server_id: string; now: string; num_connections: number; total: number; offset: number; limit: number; connections: Conn[] }
interface SubDetail { account: string; subject: string; qgroup?: string; sid: string; msgs: number; cid: number; [k: string]: unknown }
interface Subsz { num_subscriptions: number; total?: number; offset?: number; limit?: number; subscriptions_list?: SubDetail[]; [k: string]: unknown }
type Varz = Record<string, unknown> & {
  in_msgs: number; out_msgs: number; in_bytes: number; out_bytes: number;
  connections: number; total_connections: number; subscriptions: number; slow_consumers: number;
};

const enc = new TextEncoder();
const sorted = (a: Iterable<string>) => [...a].sort();
const onlyIn = (a: object, b: object) => sorted(Object.keys(a).filter((k) => !(k in b)));

async function getJson<T>(httpPort: number, pathAndQuery: string): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${httpPort}${pathAndQuery}`);
  expect(res.status, `${pathAndQuery}`).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^application\/json/);
  return (await res.json()) as T;
}

const clients: NatsConnection[] = [];
async function client(port: number, opts: Parameters<typeof connect>[0] = {}): Promise<NatsConnection> {
  const nc = await connect({ port, reconnect: false, ...opts });
  clients.push(nc);
  return nc;
}

const raws: RawClient[] = [];

let b: SuiteBroker | undefined;
afterEach(async () => {
  await Promise.all(clients.splice(0).map((nc) => nc.close().catch(() => {})));
  await Promise.all(raws.splice(0).map((c) => c.close()));
  await b?.stop();
  b = undefined;
});

// ---------------------------------------------------------------------------------------
// Shapes, side by side with nats-server
// ---------------------------------------------------------------------------------------

/** The same client activity against any server; returns what its endpoints answer. */
async function exercise(natsPort: number, httpPort: number) {
  const keep = await client(natsPort, { name: "keeper" });
  keep.subscribe("shape.*");
  keep.subscribe("shape.q", { queue: "workers" });
  const gone = await client(natsPort, { name: "goner" });
  gone.subscribe("shape.gone");
  await gone.flush();
  keep.publish("shape.a", enc.encode("hello"));
  await keep.flush();
  await gone.close();
  const closed = await askUntil(
    () => getJson<Connz>(httpPort, "/connz?state=closed&subs=1"),
    (c) => c.connections.some((x) => x.name === "goner"),
  );
  const out = {
    varz: await getJson<Varz>(httpPort, "/varz"),
    connz: await getJson<Connz>(httpPort, "/connz?subs=1"),
    closed,
    detail: await getJson<Connz>(httpPort, "/connz?subs=detail"),
    subsz: await getJson<Subsz>(httpPort, "/subsz?subs=1"),
    subszBare: await getJson<Subsz>(httpPort, "/subsz"),
  };
  await keep.close();
  return out;
}

type Shapes = Awaited<ReturnType<typeof exercise>>;

// Not on the cluster: an edge answers with this same code (its /varz adds role and cluster, checked in
// cluster-monitoring); the behaviour tests below run on the cluster's edges.
describe.each(topologies)("monitoring JSON shapes match nats-server 2.9 (%s)", (topology) => {
  let ns: RealNatsServer | undefined;
  let reference: Shapes;
  let ours: Shapes;

  beforeAll(async () => {
    ns = await startNatsServer('http: "127.0.0.1:-1"');
    const m = ns.log().match(/Starting http monitor on [^\s]*:(\d+)/);
    if (!m) throw new Error(`nats-server did not log its monitoring port:\n${ns.log()}`);
    reference = await exercise(ns.port, Number(m[1]));
    await Promise.all(clients.splice(0).map((nc) => nc.close().catch(() => {})));
    const mb = await startBroker({ topology, monitoring: true });
    try {
      ours = await exercise(mb.natsPort, mb.httpPort!);
    } finally {
      await Promise.all(clients.splice(0).map((nc) => nc.close().catch(() => {})));
      await mb.stop();
    }
  }, 30_000);
  afterAll(async () => { await ns?.stop(); });

  const byName = (c: Connz, name: string) => {
    const conn = c.connections.find((x) => x.name === name);
    if (!conn) throw new Error(`no connection named ${name} in ${JSON.stringify(c)}`);
    return conn;
  };

  it("/varz has nats-server's keys, with the same JSON types", () => {
    expect(onlyIn(reference.varz, ours.varz)).toEqual(VARZ_ONLY_NATS_SERVER);
    expect(onlyIn(ours.varz, reference.varz)).toEqual(VARZ_ONLY_MESHBROKER);
    for (const k of Object.keys(ours.varz)) {
      if (!(k in reference.varz)) continue;
      expect([k, typeof ours.varz[k]]).toEqual([k, typeof reference.varz[k]]);
    }
  });

  it("/connz?subs=1 has nats-server's keys, top level and per connection", () => {
    expect(sorted(Object.keys(ours.connz))).toEqual(sorted(Object.keys(reference.connz)));
    const r = byName(reference.connz, "keeper"), o = byName(ours.connz, "keeper");
    expect(sorted(Object.keys(r))).toEqual(sorted(CONNECTION_KEYS)); // the reference itself
    expect(onlyIn(r, o)).toEqual(CONN_ONLY_NATS_SERVER);
    expect(onlyIn(o, r)).toEqual(CONN_ONLY_MESHBROKER);
    for (const k of CONNECTION_KEYS) expect([k, typeof o[k]]).toEqual([k, typeof r[k]]);
    expect({ kind: o.kind, type: o.type }).toEqual({ kind: r.kind, type: r.type });
    expect(sorted(o.subscriptions_list!)).toEqual(sorted(r.subscriptions_list!));
  });

  it("/connz?state=closed lists a closed client with stop and reason, like nats-server", () => {
    const r = byName(reference.closed, "goner"), o = byName(ours.closed, "goner");
    expect(onlyIn(r, o)).toEqual(CONN_ONLY_NATS_SERVER);
    expect(onlyIn(o, r)).toEqual(CONN_ONLY_MESHBROKER);
    expect(o.reason).toBe(r.reason);
    expect(o.reason).toBe("Client Closed");
    expect(o.subscriptions_list).toEqual(r.subscriptions_list);
  });

  it("/connz?subs=detail puts the details under subscriptions_list_detail, like nats-server", () => {
    const r = byName(reference.detail, "keeper"), o = byName(ours.detail, "keeper");
    expect(r.subscriptions_list_detail).toBeDefined();
    expect(onlyIn(r, o)).toEqual(CONN_ONLY_NATS_SERVER);
    expect(onlyIn(o, r)).toEqual(CONN_ONLY_MESHBROKER);
  });

  it("/subsz?subs=1 has nats-server's keys, top level and per subscription", () => {
    expect(sorted(Object.keys(ours.subsz))).toEqual(sorted(Object.keys(reference.subsz)));
    const pick = (s: Subsz, subject: string) => s.subscriptions_list!.find((x) => x.subject === subject)!;
    for (const subject of ["shape.*", "shape.q"]) {
      expect(sorted(Object.keys(pick(ours.subsz, subject)))).toEqual(sorted(Object.keys(pick(reference.subsz, subject))));
    }
    expect(pick(ours.subsz, "shape.q").qgroup).toBe("workers");
  });

  it("/subsz without subs differs from nats-server only by the known keys", () => {
    expect(onlyIn(reference.subszBare, ours.subszBare)).toEqual(SUBSZ_ONLY_NATS_SERVER);
    expect(onlyIn(ours.subszBare, reference.subszBare)).toEqual(SUBSZ_ONLY_MESHBROKER);
  });
});

// ---------------------------------------------------------------------------------------
// Behaviour, against meshbroker alone; on the cluster, client i of a test is on edge i mod 2
// and each edge's endpoints report its own clients (each test has edges of its own on the file's
// routers: counters start at 0).
// ---------------------------------------------------------------------------------------

/** A test that starts a cluster: its start takes 1–2 s, but up to 15 s on a loaded machine. */
const CLUSTER_TEST_MS = 40_000;

/** A server (or new edges on the cluster's routers) with monitoring. */
async function start(topology: SuiteTopology, config?: string): Promise<SuiteBroker> {
  b = await startTarget({ topology, monitoring: true, config, shared: "edges" });
  // The routers outlive a test's edges: the interest of the last test's clients leaves their
  // subject index (which each edge's counts show) when they notice its edges are gone.
  if (topology === "cluster") await askUntil(() => eachEdge<Varz>("/varz"), (all) => all.every((v) => v.subscriptions === 0));
  return b;
}

/** The edge of client `i` of a test (0 on a single server), and its ports. */
const edgeOf = (i: number) => i % b!.natsPorts.length;
const natsPortOf = (i: number) => b!.natsPorts[edgeOf(i)];
const httpPortOf = (i: number) => b!.httpPorts[edgeOf(i)];

/** Every edge's answer to `path`. */
const eachEdge = <T>(path: string) => Promise.all(b!.httpPorts.map((p) => getJson<T>(p, path)));

// An edge's `subscriptions` (/varz, /subsz, /metrics) is its router's subject index, which holds
// the peer routers' interest entries too (as a nats-server's sublist holds its routes'): with a
// subject per subscription, every edge shows the cluster's count, as a single server shows its own.
const VARZ_COUNTERS = ["in_msgs", "out_msgs", "in_bytes", "out_bytes", "connections", "total_connections", "slow_consumers"] as const;
/** The client counters of /varz summed over the edges (the cluster's figures), and
 *  `subscriptions` if every edge shows the same count (else -1). */
async function varzTotal(): Promise<Record<(typeof VARZ_COUNTERS)[number] | "subscriptions", number>> {
  const all = await eachEdge<Varz>("/varz");
  const subs = all.every((v) => v.subscriptions === all[0].subscriptions) ? all[0].subscriptions : -1;
  return { ...Object.fromEntries(VARZ_COUNTERS.map((k) => [k, all.reduce((n, v) => n + v[k], 0)])), subscriptions: subs } as
    Record<(typeof VARZ_COUNTERS)[number] | "subscriptions", number>;
}

describe.each(clusterTopologies)("monitoring endpoints (%s)", (topology) => {
  it("/healthz answers {\"status\":\"ok\"}; an unknown path is a 404", async () => {
    await start(topology);
    expect(await eachEdge("/healthz")).toEqual(b!.httpPorts.map(() => ({ status: "ok" })));
    for (const port of b!.httpPorts) {
      const res = await fetch(`http://127.0.0.1:${port}/no-such-endpoint`);
      expect(res.status).toBe(404);
      await res.arrayBuffer();
    }
  }, CLUSTER_TEST_MS);

  it("/varz counters follow nats.js traffic", async () => {
    await start(topology);
    for (const [k, v0] of (await eachEdge<Varz>("/varz")).entries()) {
      expect(v0).toMatchObject({ connections: 0, total_connections: 0, subscriptions: 0, in_msgs: 0, out_msgs: 0 });
      expect(v0.port).toBe(b!.natsPorts[k]);
      expect(v0.http_port).toBe(b!.httpPorts[k]);
    }

    const subc = await client(natsPortOf(0));
    const pubc = await client(natsPortOf(1));
    const sub = subc.subscribe("varz.>", { max: 3 });
    await subc.flush();
    for (let i = 0; i < 3; i++) pubc.publish(`varz.${i}`, enc.encode("0123456789"));
    let got = 0;
    for await (const _ of sub) got++; // ends after max: 3
    expect(got).toBe(3);
    // The auto-unsubscribe has been processed once a PING after it is answered.
    await subc.flush();

    expect(await varzTotal()).toMatchObject({
      in_msgs: 3, out_msgs: 3, in_bytes: 30, out_bytes: 30,
      connections: 2, total_connections: 2, subscriptions: 0, slow_consumers: 0,
    });
    // In on the publisher's edge, out on the subscriber's.
    expect(await getJson<Varz>(httpPortOf(1), "/varz")).toMatchObject({ in_msgs: 3, in_bytes: 30 });
    expect(await getJson<Varz>(httpPortOf(0), "/varz")).toMatchObject({ out_msgs: 3, out_bytes: 30 });

    const live = subc.subscribe("varz.live");
    const live2 = subc.subscribe("varz.live2");
    await subc.flush();
    expect((await varzTotal()).subscriptions).toBe(2);
    live.unsubscribe();
    live2.unsubscribe();
    await pubc.close();
    await subc.flush();
    const v2 = await askUntil(varzTotal, (v) => v.connections === 1);
    expect(v2).toMatchObject({ connections: 1, total_connections: 2, subscriptions: 0 });
    for (const v of await eachEdge<Varz>("/varz")) expect((v.http_req_stats as Record<string, number>)["/varz"]).toBeGreaterThanOrEqual(3);
  }, CLUSTER_TEST_MS);

  it("/connz pages, sorts, lists subscriptions and closed connections", async () => {
    await start(topology);
    // c1: 1 sub, c2: 3 subs, c3: 2 subs; connected in this order (on a cluster: c2 alone on
    // the second edge).
    const names = ["c1", "c2", "c3"];
    const subjects: Record<string, string[]> = { c1: ["a.1"], c2: ["b.1", "b.2", "b.>"], c3: ["c.1", "c.*"] };
    const conns: Record<string, NatsConnection> = {};
    for (const [i, name] of names.entries()) {
      const nc = await client(natsPortOf(i), { name });
      for (const s of subjects[name]) nc.subscribe(s);
      await nc.flush();
      conns[name] = nc;
    }
    conns.c1.publish("b.1", enc.encode("xyz")); // c2 gets it twice (b.1 and b.>)
    await conns.c1.flush();
    await conns.c2.flush();
    const on = (edge: number) => names.filter((_n, i) => edgeOf(i) === edge);
    const first = on(0); // c1, c3 and on a single server c2 between them

    const all = await getJson<Connz>(httpPortOf(0), "/connz");
    expect(all).toMatchObject({ num_connections: first.length, total: first.length, offset: 0, limit: 1024 });
    expect(all.connections.map((c) => c.name)).toEqual(first); // by cid
    const cidOf = Object.fromEntries(all.connections.map((c) => [c.name!, c.cid]));
    for (const c of all.connections) {
      expect(c).toMatchObject({ kind: "Client", type: "nats", ip: "127.0.0.1", lang: "nats.js" });
      expect(c.subscriptions_list).toBeUndefined();
    }
    expect(all.connections[0]).toMatchObject({ name: "c1", in_msgs: 1, in_bytes: 3, out_msgs: 0 });
    const c2Edge = await getJson<Connz>(httpPortOf(1), "/connz");
    expect(c2Edge.connections.find((c) => c.name === "c2")).toMatchObject({ in_msgs: 0, out_msgs: 2, out_bytes: 6, subscriptions: 3 });
    cidOf.c2 = c2Edge.connections.find((c) => c.name === "c2")!.cid;

    const page = await getJson<Connz>(httpPortOf(0), "/connz?limit=1&offset=1");
    expect(page).toMatchObject({ num_connections: 1, total: first.length, offset: 1, limit: 1 });
    expect(page.connections.map((c) => c.name)).toEqual([first[1]]);
    const past = await getJson<Connz>(httpPortOf(0), "/connz?offset=5");
    expect(past).toMatchObject({ num_connections: 0, total: first.length, offset: 5, connections: [] });

    const bySubs = await getJson<Connz>(httpPortOf(0), "/connz?sort=subs");
    expect(bySubs.connections.map((c) => c.name)).toEqual(["c2", "c3", "c1"].filter((n) => first.includes(n)));
    const byMsgsTo = await getJson<Connz>(httpPortOf(1), "/connz?sort=msgs_to&limit=1");
    expect(byMsgsTo.connections.map((c) => c.name)).toEqual(["c2"]);

    for (const withSubs of await eachEdge<Connz>("/connz?subs=1")) {
      for (const c of withSubs.connections) {
        expect(sorted(Object.keys(c)).filter((k) => !CONN_ONLY_MESHBROKER.includes(k))).toEqual(sorted(CONNECTION_KEYS));
        expect(sorted(c.subscriptions_list!)).toEqual(sorted(subjects[c.name!]));
      }
    }
    const one = await getJson<Connz>(httpPortOf(2), `/connz?cid=${cidOf.c3}&subs=1`);
    expect(one.connections.map((c) => c.name)).toEqual(["c3"]);

    await conns.c2.close();
    const closed = await askUntil(() => getJson<Connz>(httpPortOf(1), "/connz?state=closed&subs=1"), (c) => c.total === 1);
    expect(closed.connections).toHaveLength(1);
    const c2 = closed.connections[0];
    expect(c2).toMatchObject({ cid: cidOf.c2, name: "c2", reason: "Client Closed", subscriptions: 3 });
    expect(typeof c2.stop).toBe("string");
    expect(Date.parse(c2.stop!)).toBeGreaterThanOrEqual(Date.parse(c2.start as string));
    expect(sorted(c2.subscriptions_list!)).toEqual(sorted(subjects.c2));
    const open = await getJson<Connz>(httpPortOf(0), "/connz");
    expect(open.connections.map((c) => c.name)).toEqual(["c1", "c3"]);
    expect(open.connections.some((c) => "reason" in c)).toBe(false);
    const any = await eachEdge<Connz>("/connz?state=all&sort=cid");
    expect(any.reduce((n, c) => n + c.total, 0)).toBe(3);
  }, CLUSTER_TEST_MS);

  it("/subsz?subs=1 lists every subscription with nats-server's fields", async () => {
    await start(topology);
    const nc = await client(natsPortOf(0));
    const other = await client(natsPortOf(1));
    nc.subscribe("orders.new");
    nc.subscribe("orders.*", { queue: "workers" });
    other.subscribe("audit.>");
    await nc.flush();
    await other.flush();
    other.publish("orders.new", enc.encode("1"));
    await other.flush();
    await nc.flush();

    const each = await eachEdge<Subsz>("/subsz?subs=1");
    for (const s of each) {
      expect(s).toMatchObject({ offset: 0, limit: 1024 });
      for (const k of ["num_cache", "num_inserts", "num_removes", "num_matches", "cache_hit_rate", "max_fanout", "avg_fanout"]) {
        expect(typeof s[k], k).toBe("number");
      }
    }
    for (const s of each) expect(s.num_subscriptions).toBe(3);
    // Each edge lists its own clients' subscriptions.
    expect(each.reduce((n, s) => n + s.total!, 0)).toBe(3);
    const list = each.flatMap((s) => s.subscriptions_list ?? []);
    expect(sorted(list.map((x) => x.subject))).toEqual(["audit.>", "orders.*", "orders.new"]);
    for (const d of list) {
      const keys = sorted(Object.keys(d));
      expect(keys).toEqual(sorted(["account", "subject", "sid", "msgs", "cid", ...(d.qgroup ? ["qgroup"] : [])]));
      expect(d.account).toBe("$G");
    }
    expect(list.find((x) => x.subject === "orders.*")!.qgroup).toBe("workers");
    expect(list.find((x) => x.subject === "orders.new")!.msgs).toBe(1);

    const matching = await getJson<Subsz>(httpPortOf(0), "/subsz?subs=1&test=orders.new");
    expect(sorted(matching.subscriptions_list!.map((x) => x.subject))).toEqual(["orders.*", "orders.new"]);
    const bare = await eachEdge<Subsz>("/subsz");
    for (const s of bare) {
      expect(s.num_subscriptions).toBe(3);
      expect(s.subscriptions_list).toBeUndefined();
    }
  }, CLUSTER_TEST_MS);
});

// ---------------------------------------------------------------------------------------
// /metrics
// ---------------------------------------------------------------------------------------

interface Sample { name: string; labels: Record<string, string>; value: number }

/** Prometheus text exposition format → samples (enough of it for prom-client's output). */
function parseProm(text: string): { samples: Sample[]; types: Record<string, string> } {
  const samples: Sample[] = [];
  const types: Record<string, string> = {};
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) { types[t[1]] = t[2]; continue; }
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return { samples, types };
}

describe.each(clusterTopologies)("/metrics (%s)", (topology) => {
  /** Every edge's /metrics, parsed. */
  const scrape = () => Promise.all(b!.httpPorts.map(async (p) => parseProm(await (await fetch(`http://127.0.0.1:${p}/metrics`)).text())));
  /** A sample's value summed over the edges (one line per edge). */
  const total = (pages: { samples: Sample[] }[], name: string) =>
    pages.reduce((n, p) => n + (p.samples.find((s) => s.name === name)?.value ?? 0), 0);

  it("is Prometheus text whose values follow the traffic and failed logins", async () => {
    await start(topology, "authorization { users: [ { user: a, password: b } ] }\n");
    const subc = await client(natsPortOf(0), { user: "a", pass: "b" });
    const pubc = await client(natsPortOf(1), { user: "a", pass: "b" });
    const sub = subc.subscribe("metrics.>", { max: 4 });
    subc.subscribe("metrics.idle");
    await subc.flush();
    for (let i = 0; i < 4; i++) pubc.publish("metrics.x", enc.encode("abcde")); // 4 x 5 bytes
    let got = 0;
    for await (const _ of sub) got++;
    expect(got).toBe(4);
    await subc.flush();

    const denied = await connect({ port: natsPortOf(2), user: "a", pass: "wrong", reconnect: false })
      .then((nc) => { clients.push(nc); return undefined; }, (e: NatsError) => e);
    expect(denied?.code).toBe("AUTHORIZATION_VIOLATION");
    // The failed client shows up as closed with its reason, on its edge.
    const closed = await askUntil(() => getJson<Connz>(httpPortOf(2), "/connz?state=closed"), (c) => c.total === 1);
    expect(closed.connections[0].reason).toBe("Authentication Failure");

    for (const port of b!.httpPorts) {
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
      await res.arrayBuffer();
    }
    const pages = await scrape();
    const one = (name: string, labels: Record<string, string> = {}) => {
      const found = pages.flatMap((p) => p.samples).filter((s) => s.name === name &&
        Object.entries(labels).every(([k, v]) => s.labels[k] === v));
      expect(found, `${name}${JSON.stringify(labels)} in /metrics`).toHaveLength(pages.length);
      return found.reduce((n, s) => n + s.value, 0);
    };

    expect(one("meshbroker_connections", { type: "STANDARD" })).toBe(2);
    expect(one("meshbroker_messages_received_total")).toBe(4);
    expect(one("meshbroker_messages_sent_total")).toBe(4);
    expect(one("meshbroker_bytes_received_total")).toBe(20);
    expect(one("meshbroker_bytes_sent_total")).toBe(20);
    // metrics.idle; metrics.> ended after 4 (on every edge: its router's count)
    expect(one("meshbroker_subscriptions")).toBe(pages.length);
    expect(one("meshbroker_slow_consumers_total")).toBe(0);
    expect(one("meshbroker_connections_total")).toBe(3);
    const failures = pages.flatMap((p) => p.samples).filter((s) => s.name === "meshbroker_auth_failures_total");
    expect(failures).toHaveLength(1);
    expect(failures[0].value).toBe(1);
    expect(failures[0].labels.reason, "auth failures carry a non-empty reason label").toMatch(/\S/);
    for (const p of pages) expect(p.samples.find((s) => s.name === "process_resident_memory_bytes")?.value).toBeGreaterThan(0);

    for (const { types } of pages) {
      expect(types).toMatchObject({
        meshbroker_connections: "gauge",
        meshbroker_subscriptions: "gauge",
        meshbroker_messages_received_total: "counter",
        meshbroker_messages_sent_total: "counter",
        meshbroker_bytes_received_total: "counter",
        meshbroker_slow_consumers_total: "counter",
        meshbroker_auth_failures_total: "counter",
      });
    }

    // Scraping again after more traffic moves the counters (nothing is cached at first scrape).
    pubc.publish("metrics.idle", enc.encode("1234567"));
    await pubc.flush();
    await subc.flush();
    const again = await scrape();
    expect(total(again, "meshbroker_messages_received_total")).toBe(5);
    expect(total(again, "meshbroker_bytes_received_total")).toBe(27);
    expect(total(again, "meshbroker_messages_sent_total")).toBe(5);
  }, CLUSTER_TEST_MS);

  it("counts a slow consumer in /metrics, /varz and /connz", async () => {
    // A small max_pending and a subscriber that stops reading: the broker must cut it off.
    await start(topology, "max_pending: 64KB\nmax_payload: 1KB\n");
    const reader = await rawConnect(natsPortOf(0));
    raws.push(reader);
    await reader.send('CONNECT {"verbose":false,"pedantic":false}\r\nSUB slow 1\r\nPING\r\n');
    await reader.expect("PONG\r\n");
    reader.socket.pause();

    const pub = await client(natsPortOf(1));
    const payload = new Uint8Array(1000).fill(97);
    // Far more than the socket buffers of loopback can hold, so the broker's queue must grow.
    for (let i = 0; i < 40_000; i++) pub.publish("slow", payload);
    await pub.flush();
    reader.socket.resume();
    await closedWithin(reader, 15_000);

    // The reader's edge cut it off.
    const port = httpPortOf(0);
    const v = await getJson<Varz>(port, "/varz");
    expect(v.slow_consumers).toBe(1);
    expect((await varzTotal()).slow_consumers).toBe(1);
    const closed = await getJson<Connz>(port, "/connz?state=closed");
    expect(closed.connections.map((c) => c.reason)).toEqual(["Slow Consumer (Pending Bytes)"]);
    const metrics = parseProm(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()).samples;
    expect(metrics.find((s) => s.name === "meshbroker_slow_consumers_total")?.value).toBe(1);
  }, CLUSTER_TEST_MS);
});
