// DNS discovery: `edge { discovery { dns: "name:port", refresh } }` takes every A record of the
// name as a router, resolves it again every period, and re-attaches to routers that appeared
// since. A real dnsmasq serves the name; the routers listen on 127.0.0.2 and 127.0.0.3 (the
// loopback /8), on one port, as DNS names addresses and not ports.
import { StringCodec } from "nats";
import { afterAll, beforeAll, expect, it } from "vitest";
import { natsClient } from "../helpers/clients.js";
import { ATTACHED, startCluster, type TestCluster } from "../helpers/cluster.js";
import { startDns, type DnsServer } from "../helpers/dns.js";
import { freePort } from "../helpers/process.js";
import { cleanupAfterEach, firstData, withTimeout } from "../helpers/wait.js";

const sc = StringCodec();
const NAME = "routers.meshbroker.test";
let dns: DnsServer;
let cluster: TestCluster;
let port: number;
beforeAll(async () => {
  dns = await startDns({ [NAME]: ["127.0.0.2"] });
  port = await freePort("127.0.0.3");
  cluster = await startCluster({
    routers: 2, edges: 2, routerHosts: ["127.0.0.2", "127.0.0.3"], routerPort: port,
    edgeDiscovery: `discovery { dns: "${NAME}:${port}", refresh: "200ms" }`,
    edgeEnv: { MESHBROKER_DNS_SERVERS: dns.address },
  });
}, 30_000);
afterAll(async () => {
  await cluster?.stop();
  await dns?.stop();
});
const cleanups = cleanupAfterEach();

/** The address edge `e` attached to last. */
const attachedTo = (e: number) => cluster.edges[e].proc.lines.map((l) => l.text.match(ATTACHED)).filter((m) => m !== null).at(-1)![2];

async function crossEdgeDelivery(subject: string): Promise<void> {
  const sub = await natsClient(cleanups, cluster.edges[0].natsPort);
  const pub = await natsClient(cleanups, cluster.edges[1].natsPort);
  const s = sub.subscribe(subject, { max: 1 });
  await sub.flush();
  const got = firstData(s, 5_000);
  // Interest may still be on its way to the other edge's router: publish until it arrives.
  let done = false;
  void got.finally(() => { done = true; });
  while (!done) {
    pub.publish(subject, sc.encode("hi"));
    await pub.flush();
    await new Promise((r) => setTimeout(r, 20));
  }
  expect(await got).toBe("hi");
}

it("edges attach to the router the name resolves to", async () => {
  expect(attachedTo(0)).toBe(`127.0.0.2:${port}`);
  expect(attachedTo(1)).toBe(`127.0.0.2:${port}`);
  await crossEdgeDelivery("dns.one");
});

it("a router added to the name is used when the edges re-attach", async () => {
  const marks = cluster.edges.map((e) => e.proc.mark());
  const t0 = Date.now();
  await dns.setRecords({ [NAME]: ["127.0.0.2", "127.0.0.3"] });
  await Promise.all(cluster.edges.map((e, i) =>
    e.proc.waitForLine(new RegExp(`discovery: \\S+ resolves to 127\\.0\\.0\\.2:${port}, 127\\.0\\.0\\.3:${port}`), 5_000, { since: marks[i] })));
  console.log(`both edges resolved the new router ${Date.now() - t0} ms after the DNS change (refresh 200 ms)`);
  const since = cluster.edges.map((e) => e.proc.mark());
  await cluster.killRouter(0);
  await withTimeout(Promise.all(cluster.edges.map((e, i) => e.proc.waitForLine(ATTACHED, 5_000, { since: since[i] }))), 6_000,
    () => "the edges did not re-attach");
  expect(attachedTo(0)).toBe(`127.0.0.3:${port}`);
  expect(attachedTo(1)).toBe(`127.0.0.3:${port}`);
  await crossEdgeDelivery("dns.two");
}, 20_000);
