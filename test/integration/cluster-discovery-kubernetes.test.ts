// Kubernetes discovery: `edge { discovery { kubernetes { service } } }` uses the ready endpoints
// of the Service's EndpointSlices, listed then watched. Real routers and a real edge process;
// the Kubernetes API server is the one component that cannot run here, so a stand-in in this
// test (test/helpers/kube-api.ts) serves the list and watch as the real API does, found through
// env KUBECONFIG. The routers listen on 127.0.0.2 and 127.0.0.3 on one port, as pods of one
// Service do on their pod IPs.
import { afterAll, beforeAll, expect, it } from "vitest";
import { ATTACHED, startCluster, type TestCluster } from "../helpers/cluster.js";
import { startKubeApi, type KubeApi } from "../helpers/kube-api.js";
import { freePort } from "../helpers/process.js";
import { withTimeout } from "../helpers/wait.js";

const SERVICE = "meshbroker-router";
const R1 = "127.0.0.2";
const R2 = "127.0.0.3";
let api: KubeApi;
let cluster: TestCluster;
let port: number;
beforeAll(async () => {
  api = await startKubeApi();
  port = await freePort(R2);
  // r2 runs from the start but is not ready yet: the edge must not use it.
  api.setSlice(`${SERVICE}-a`, SERVICE, port, [{ address: R1, ready: true }, { address: R2, ready: false }]);
  cluster = await startCluster({
    routers: 2, edges: 1, routerHosts: [R1, R2], routerPort: port,
    edgeDiscovery: `discovery { kubernetes { service: "${SERVICE}" } }`,
    edgeEnv: { KUBECONFIG: api.kubeconfig },
  });
}, 30_000);
afterAll(async () => {
  await cluster?.stop();
  await api?.stop();
});

const edge = () => cluster.edges[0].proc;
const attachedTo = () => edge().lines.map((l) => l.text.match(ATTACHED)).filter((m) => m !== null).at(-1)![2];
const readyLine = (addrs: string[]) =>
  new RegExp(`discovery: kubernetes service meshbroker/${SERVICE} has ready routers ${addrs.map((a) => `${a.replace(/\./g, "\\.")}:${port}`).join(", ")}$`);

it("the edge attaches to the ready endpoint only, with the slice's port", () => {
  expect(edge().lines.some((l) => readyLine([R1]).test(l.text))).toBe(true);
  expect(attachedTo()).toBe(`${R1}:${port}`);
  expect(api.requests.slice(0, 2)).toEqual(["GET list", "GET watch rv=101"]);
});

it("routers follow the slices: a new ready endpoint is seen, a removed one is left", async () => {
  let mark = edge().mark();
  let t0 = Date.now();
  // r2 becomes ready (MODIFIED), and a second slice of the Service appears (ADDED) with a not-ready address.
  api.setSlice(`${SERVICE}-a`, SERVICE, port, [{ address: R1, ready: true }, { address: R2, ready: true }]);
  api.setSlice(`${SERVICE}-b`, SERVICE, port, [{ address: "127.0.0.4", ready: false }]);
  await edge().waitForLine(readyLine([R1, R2]), 5_000, { since: mark });
  console.log(`the edge saw the ready endpoint ${Date.now() - t0} ms after the change`);

  // r1's pod goes away: its slice loses it, then the process dies; the edge re-attaches to r2.
  mark = edge().mark();
  t0 = Date.now();
  api.setSlice(`${SERVICE}-a`, SERVICE, port, [{ address: R2, ready: true }]);
  await edge().waitForLine(readyLine([R2]), 5_000, { since: mark });
  await cluster.killRouter(0);
  await withTimeout(edge().waitForLine(ATTACHED, 10_000, { since: mark }), 11_000, () => "the edge did not re-attach");
  expect(attachedTo()).toBe(`${R2}:${port}`);
  console.log(`the edge re-attached to r2 ${Date.now() - t0} ms after r1 left the slice`);
}, 20_000);

it("a watch resumed from a compacted resourceVersion gets 410 Gone and lists again", async () => {
  const mark = edge().mark();
  const before = api.requests.length;
  api.compact();
  api.deleteSlice(`${SERVICE}-b`);
  api.setSlice(`${SERVICE}-c`, SERVICE, port, [{ address: "127.0.0.5", ready: true }]);
  await edge().waitForLine(readyLine([R2, "127.0.0.5"]), 10_000, { since: mark });
  const after = api.requests.slice(before);
  expect(after[0]).toMatch(/^GET watch rv=\d+$/); // resumed from where it was: too old now
  expect(after).toContain("GET list");
}, 15_000);

it("an API server that fails is listed again with backoff, and the last routers stay in use", async () => {
  const mark = edge().mark();
  api.failWith = 503;
  api.compact(); // ends the watch: the edge watches again, fails, and lists again after a backoff
  await edge().waitForLine(/discovery: kubernetes service meshbroker\/meshbroker-router: (?:watch|list): .*; listing again in \d+ ms, keeping the last known routers$/,
    5_000, { since: mark });
  expect(attachedTo()).toBe(`${R2}:${port}`);
  api.setSlice(`${SERVICE}-c`, SERVICE, port, [{ address: "127.0.0.6", ready: true }]);
  const t0 = Date.now();
  api.failWith = undefined;
  await edge().waitForLine(readyLine([R2, "127.0.0.6"]), 15_000, { since: mark });
  console.log(`the edge listed again ${Date.now() - t0} ms after the API server recovered`);
}, 20_000);
