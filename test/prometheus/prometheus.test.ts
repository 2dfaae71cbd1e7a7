// The dashboard (deploy/grafana/meshbroker.json) and the alerts (deploy/prometheus/rules.yaml)
// against the metrics meshbroker really serves. promtool checks the rules and runs their unit
// tests (test/prometheus/rules.test.yaml); then a real Prometheus server scrapes a local cluster
// (redis-server, 2 routers, 2 edges, every 500 ms) carrying some traffic and an auth failure, and
// every PromQL expression of the dashboard and of the rules must return at least one series
// through the HTTP API. An alert is evaluated without its threshold (the comparison with a
// number is cut off: `x > 5` becomes `x`), so that a healthy cluster returns its series too.
// kube-state-metrics cannot run without a Kubernetes cluster: a stand-in in this test serves its
// kube_horizontalpodautoscaler_* series for the HPA panel.
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { natsClient, natsRefusal } from "../helpers/clients.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { freePort, REPO_ROOT, runCommand, spawnCommand, type BrokerProcess } from "../helpers/process.js";
import { Cleanups } from "../helpers/wait.js";

const PROMETHEUS_BIN = process.env.PROMETHEUS_BIN ?? "/usr/bin/prometheus";
const PROMTOOL_BIN = process.env.PROMTOOL_BIN ?? "/usr/bin/promtool";
const RULES = path.join(REPO_ROOT, "deploy/prometheus/rules.yaml");
const DASHBOARD = path.join(REPO_ROOT, "deploy/grafana/meshbroker.json");

interface Dashboard {
  panels: { title: string; targets: { expr: string }[] }[];
  templating: { list: { name: string; type: string; current?: { value?: string } }[] };
}

/** Every expression of the dashboard, its variables replaced as Grafana would. */
function dashboardExprs(): { what: string; expr: string }[] {
  const d = JSON.parse(readFileSync(DASHBOARD, "utf8")) as Dashboard;
  const vars = new Map(d.templating.list.filter((v) => v.type === "textbox").map((v) => [v.name, v.current?.value ?? ""]));
  return d.panels.flatMap((p) => p.targets.map((t) => ({
    what: `panel "${p.title}"`,
    expr: t.expr.replace(/\$__rate_interval/g, "5s").replace(/\$(\w+)/g, (_, n: string) => vars.get(n) ?? `$${n}`),
  })));
}

/** Every alert's expression without its threshold (comparisons with a number removed). */
function alertExprs(): { what: string; expr: string }[] {
  const text = readFileSync(RULES, "utf8");
  const out: { what: string; expr: string }[] = [];
  // The rules file is ours: each rule is `- alert: Name` then `expr:` inline or as a `|` block.
  const re = /- alert: (\w+)\n\s+(?:#[^\n]*\n\s+)*expr: (?:\|\n((?:\s{10,}[^\n]*\n)+)|([^\n]+)\n)/g;
  for (const m of text.matchAll(re)) {
    const expr = (m[2] ?? m[3]).replace(/\s*(?:==|!=|>=|<=|>|<)\s*-?\d+(?:\.\d+)?(?![\w\]])/g, "");
    out.push({ what: `alert ${m[1]}`, expr });
  }
  return out;
}

let cluster: TestCluster;
let prometheus: BrokerProcess;
let api: string;
let dir: string;
const cleanups = new Cleanups();
const started = Date.now();

beforeAll(async () => {
  cluster = await startCluster({
    routers: 2, edges: 2, monitoring: true,
    edgeConfig: 'authorization { users: [{ user: "app", password: "s3cret" }] }',
  });
  // kube-state-metrics' series for the edge HPA (the stand-in: no cluster here).
  const ksm = createServer((_req, res) => {
    const labels = 'namespace="default",horizontalpodautoscaler="meshbroker-edge"';
    res.end([
      `kube_horizontalpodautoscaler_status_current_replicas{${labels}} 2`,
      `kube_horizontalpodautoscaler_status_desired_replicas{${labels}} 2`,
      `kube_horizontalpodautoscaler_spec_min_replicas{${labels}} 2`,
      `kube_horizontalpodautoscaler_spec_max_replicas{${labels}} 10`, "",
    ].join("\n"));
  });
  await new Promise<void>((resolve) => ksm.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => new Promise((resolve) => ksm.close(resolve)));

  dir = await mkdtemp(path.join(os.tmpdir(), "meshbroker-prometheus-"));
  const targets = [...cluster.routers, ...cluster.edges].map((p) => `"127.0.0.1:${p.httpPort}"`).join(", ");
  await writeFile(path.join(dir, "prometheus.yml"), [
    "global: { scrape_interval: 500ms, evaluation_interval: 500ms }",
    `rule_files: ["${RULES}"]`,
    "scrape_configs:",
    `  - job_name: meshbroker`,
    `    static_configs: [{ targets: [${targets}] }]`,
    `  - job_name: kube-state-metrics`,
    `    static_configs: [{ targets: ["127.0.0.1:${(ksm.address() as AddressInfo).port}"] }]`, "",
  ].join("\n"));
  const port = await freePort();
  api = `http://127.0.0.1:${port}/api/v1`;
  prometheus = spawnCommand(PROMETHEUS_BIN, [
    `--config.file=${path.join(dir, "prometheus.yml")}`, `--storage.tsdb.path=${path.join(dir, "data")}`,
    `--web.listen-address=127.0.0.1:${port}`, "--log.level=info",
  ]);
  cleanups.push(() => prometheus.kill());
  await prometheus.waitForLine(/Server is ready to receive web requests/, 15_000);

  // Traffic: pub/sub across the two edges, and one failed login.
  const sub = await natsClient(cleanups, cluster.edges[0].natsPort, { user: "app", pass: "s3cret" });
  const pub = await natsClient(cleanups, cluster.edges[1].natsPort, { user: "app", pass: "s3cret" });
  sub.subscribe("metrics.>", { callback: () => {} });
  await sub.flush();
  const traffic = setInterval(() => pub.publish("metrics.tick", "x"), 20);
  cleanups.push(() => clearInterval(traffic));
  expect((await natsRefusal(cluster.edges[0].natsPort, { user: "app", pass: "wrong" })).message).toMatch(/Authorization Violation/i);
}, 40_000);

afterAll(async () => {
  await cleanups.run();
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
  console.log(`prometheus test: ${Date.now() - started} ms in all`);
});

async function query(expr: string): Promise<unknown[]> {
  const res = await fetch(`${api}/query?query=${encodeURIComponent(expr)}`);
  const body = await res.json() as { status: string; error?: string; data?: { result: unknown[] } };
  if (body.status !== "success") throw new Error(`${expr}: ${body.error}`);
  return body.data!.result;
}

/** Queries until the result has a series (scrapes and rate windows fill up), within `timeoutMs`. */
async function someSeries(expr: string, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const n = (await query(expr)).length;
    if (n > 0 || Date.now() > deadline) return n;
    await new Promise((r) => setTimeout(r, 250));
  }
}

it("promtool accepts the rules and their unit tests pass (one test per alert)", async () => {
  const check = await runCommand(PROMTOOL_BIN, ["check", "rules", RULES]);
  expect(check.stdout + check.stderr).toMatch(/SUCCESS: 7 rules found/);
  expect(check.code).toBe(0);
  const unit = await runCommand(PROMTOOL_BIN, ["test", "rules", path.join(REPO_ROOT, "test/prometheus/rules.test.yaml")]);
  expect(unit.stdout + unit.stderr).toMatch(/SUCCESS/);
  expect(unit.code).toBe(0);
  const tested = new Set([...readFileSync(path.join(REPO_ROOT, "test/prometheus/rules.test.yaml"), "utf8").matchAll(/alertname: (\w+)/g)].map((m) => m[1]));
  expect([...tested].sort()).toEqual(alertExprs().map((a) => a.what.slice("alert ".length)).sort());
});

it("every expression of the dashboard and of the alerts returns a series from a live cluster", async () => {
  const exprs = [...dashboardExprs(), ...alertExprs()];
  expect(exprs.length).toBeGreaterThan(25);
  const t0 = Date.now();
  const empty: string[] = [];
  for (const { what, expr } of exprs) {
    // The first ones wait for the scrapes to fill the rate windows; the rest answer at once.
    if (await someSeries(expr, Math.max(1_000, 15_000 - (Date.now() - t0))) === 0) empty.push(`${what}: ${expr}`);
  }
  console.log(`${exprs.length} expressions evaluated in ${Date.now() - t0} ms`);
  expect(empty).toEqual([]);
}, 30_000);
