// The Helm chart, offline: chart-check (Helm's template engine, values.schema.json, the
// Kubernetes and prometheus-operator schemas, lint rules) on the default, production and minimal
// value sets (and accounts, operator mode); k8s-validate on deploy/; and every rendered edge.conf / router.conf loaded by
// `meshbroker -t`, as the pods would load them, so the chart cannot ship a config the broker
// refuses. The first chart-check run on a machine builds its renderer (45–85 s), hence the
// long timeouts; `make test-deps` warms it.
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import yaml from "js-yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPki, type TestPki } from "../helpers/certs.js";
import { newAccount, newOperator } from "../helpers/creds.js";
import { CHART, CHART_CHECK_FIRST_RUN_MS, chartCheck, k8sValidate, renderChart, type K8sObject, type Rendered } from "../helpers/chart.js";
import { REPO_ROOT, runBroker } from "../helpers/process.js";

const SETS: Record<string, string[]> = {
  default: [],
  production: ["-f", path.join(CHART, "ci/production-values.yaml")],
  minimal: ["-f", path.join(CHART, "ci/minimal-values.yaml")],
  accounts: ["-f", path.join(CHART, "ci/accounts-values.yaml")],
  operator: [], // operator mode: values with fresh JWTs, written in beforeAll
};
const MONITORING_API = ["-a", "monitoring.coreos.com/v1"];
/** As the Makefile's CHART_MANIFEST_ARGS. */
const CHART_MANIFEST_ARGS = ["--release", "meshbroker", "--set", "cluster.auth.existingSecret=meshbroker-cluster-token", "--set", "tests.enabled=false"];

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string }; secretKeyRef?: { name: string; key: string } };
}
interface Container { name: string; args: string[]; env: EnvVar[]; volumeMounts: Array<{ name: string; mountPath: string }> }

function containerOf(o: K8sObject): Container {
  return (o.spec as { template: { spec: { containers: Container[] } } }).template.spec.containers[0];
}

/** The container's environment as the kubelet makes it: downward API and Secret keys filled in
 *  with stand-ins, $(VAR) of earlier entries expanded. */
function podEnv(c: Container): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of c.env) {
    if (e.value !== undefined) env[e.name] = e.value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, n: string) => env[n] ?? m);
    else if (e.valueFrom?.fieldRef) env[e.name] = { "metadata.name": "mb-meshbroker-x-0", "metadata.namespace": "default", "status.podIP": "10.1.2.3" }[e.valueFrom.fieldRef.fieldPath] ?? "";
    else if (e.valueFrom?.secretKeyRef) env[e.name] = `secret-${e.valueFrom.secretKeyRef.key}`;
  }
  return env;
}

describe("charts/meshbroker", () => {
  let tmp: string;
  let pki: TestPki;
  const rendered: Record<string, Rendered> = {};

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), "meshbroker-chart-"));
    pki = await createPki();
    const op = await newOperator();
    const app = await newAccount(op, "APP");
    const operatorValues = path.join(tmp, "operator-values.yaml");
    await writeFile(operatorValues, JSON.stringify({
      auth: {
        operator: { jwt: op.jwt, resolver: "MEMORY", resolver_preload: { [op.system.pub]: op.system.jwt, [app.pub]: app.jwt } },
        system_account: op.system.pub,
      },
      config: { websocket: { jwt_cookie: "jwt" } },
    }));
    SETS.operator = ["-f", operatorValues];
    const t0 = Date.now();
    // one at a time: the first run builds the renderer under a lock anyway
    for (const [name, args] of Object.entries(SETS)) rendered[name] = await renderChart(tmp, [...args, ...MONITORING_API]);
    console.log(`chart-check rendered ${Object.keys(SETS).length} value sets in ${Date.now() - t0} ms`);
  }, CHART_CHECK_FIRST_RUN_MS + 60_000);

  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
    await pki?.cleanup();
  });

  it.each(Object.keys(SETS))("chart-check passes on the %s values, no warnings", async (name) => {
    const r = await chartCheck([CHART, ...SETS[name], ...MONITORING_API, "--strict-unknown"]);
    expect(r.stdout + r.stderr).toMatch(/chart-check: \d+ documents, \d+ kinds, 0 errors$/m);
    expect(r.stdout + r.stderr).not.toMatch(/warnings?\b/);
    expect(r.code).toBe(0);
  }, CHART_CHECK_FIRST_RUN_MS);

  it("k8s-validate passes on deploy/'s manifests (deploy/prometheus/ is promtool's format, not Kubernetes objects)", async () => {
    const files = (await readdir(path.join(REPO_ROOT, "deploy"), { recursive: true }))
      .filter((f) => /\.ya?ml$/.test(f)).map((f) => path.join(REPO_ROOT, "deploy", f));
    // deploy/prometheus/ holds promtool's files (rules and their unit tests): checked by promtool
    const manifests = files.filter((f) => !path.relative(REPO_ROOT, f).startsWith("deploy/prometheus/"));
    expect(manifests.map((f) => path.relative(REPO_ROOT, f))).toContain("deploy/kubernetes/meshbroker.yaml");
    const r = await k8sValidate(["--strict-unknown", ...manifests]);
    expect(r.stdout + r.stderr).toMatch(/ 0 errors$/m);
    expect(r.code).toBe(0);
  }, CHART_CHECK_FIRST_RUN_MS);

  it("deploy/kubernetes/meshbroker.yaml is the chart's current render (make chart-manifest)", async () => {
    const file = path.join(tmp, "manifest.yaml");
    const r = await chartCheck([CHART, ...CHART_MANIFEST_ARGS, "-o", file]);
    expect(r.code).toBe(0);
    const committed = (await readFile(path.join(REPO_ROOT, "deploy/kubernetes/meshbroker.yaml"), "utf8")).replace(/^(#[^\n]*\n)+/, "");
    expect(committed === await readFile(file, "utf8"), "deploy/kubernetes/meshbroker.yaml is stale: run make chart-manifest").toBe(true);
  }, CHART_CHECK_FIRST_RUN_MS);

  it("refuses values the schema or the templates reject, with a clear message", async () => {
    const bad: Array<[string[], RegExp]> = [
      [["--set", "config.advertise.mode=public"], /advertise/],
      [["--set", "edge.discovery=static"], /discovery/],
      [["--set", "redis.bundled.enabled=false"], /redis/],
      [["--set", "config.lameDuck.duration=soon"], /lameDuck|duration/],
      [["--set", "redis.bundled.enabled=false", "--set", "redis.url=redis://u:p@h:6379"], /redis\.url/],
      [["--set", "config.tls.enabled=true"], /config\.tls\.secretName/],
      [["--set", "monitoring.serviceMonitor.enabled=true", "--set", "monitoring.podMonitor.enabled=true"], /choose one/],
    ];
    for (const [args, message] of bad) {
      const r = await chartCheck([CHART, ...args]);
      expect(r.code, args.join(" ")).toBe(1);
      expect(r.stdout + r.stderr, args.join(" ")).toMatch(message);
    }
  }, CHART_CHECK_FIRST_RUN_MS);

  it.each(Object.keys(SETS))("every edge.conf and router.conf of the %s values loads with meshbroker -t", async (name) => {
    const r = rendered[name];
    // the pod's file system under a temp dir: /etc/meshbroker/{config,auth,tls/...}
    const root = path.join(tmp, `etc-${name}`);
    const etc = path.join(root, "etc/meshbroker");
    await mkdir(path.join(etc, "config"), { recursive: true });
    const config = r.get("ConfigMap", "-config");
    for (const [file, text] of Object.entries(config.data!)) {
      await writeFile(path.join(etc, "config", file), text.replaceAll("/etc/meshbroker/", `${etc}/`));
    }
    const auth = r.objects.find((o) => o.kind === "Secret" && o.metadata.name.endsWith("-auth"));
    if (auth) {
      await mkdir(path.join(etc, "auth"));
      await writeFile(path.join(etc, "auth/auth.conf"), auth.stringData!["auth.conf"]);
    }
    for (const dir of ["client", "cluster"]) {
      await mkdir(path.join(etc, "tls", dir), { recursive: true });
      await copyFile(pki.peer.certFile, path.join(etc, "tls", dir, "tls.crt"));
      await copyFile(pki.peer.keyFile, path.join(etc, "tls", dir, "tls.key"));
      await copyFile(pki.caFile, path.join(etc, "tls", dir, "ca.crt"));
    }
    const workloads = [r.get("Deployment", "-edge"), r.get("StatefulSet", "-router")];
    for (const w of workloads) {
      const c = containerOf(w);
      const confFile = c.args[c.args.indexOf("-c") + 1];
      expect(confFile).toMatch(/^\/etc\/meshbroker\/config\/(edge|router)\.conf$/);
      // what the pod mounts must be what the config reads
      for (const used of config.data![path.basename(confFile)].match(/\/etc\/meshbroker\/[a-z/]+/g) ?? []) {
        expect(c.volumeMounts.some((m) => used.startsWith(`${m.mountPath}/`)), `${used} is mounted in ${w.metadata.name}`).toBe(true);
      }
      const res = await runBroker(["-t", "-c", confFile.replace("/etc/meshbroker/", `${etc}/`)], { env: { ...process.env, ...podEnv(c) } });
      expect(`${res.stdout}${res.stderr}`.trim(), `${name}: ${w.metadata.name}`).toMatch(/is valid$/);
      expect(res.code).toBe(0);
    }
    expect((await readdir(path.join(etc, "config"))).sort()).toEqual(["edge.conf", "router.conf"]);
  }, 60_000);

  it("derives the edges' grace period from the preStop sleep and lame duck, and rolls pods on config changes", async () => {
    const spec = (o: K8sObject) => (o.spec as { template: { spec: { terminationGracePeriodSeconds: number }; metadata: { annotations: Record<string, string> } } }).template;
    // default: sleep 5 + 30s + 5s + 10
    expect(spec(rendered.default.get("Deployment", "-edge")).spec.terminationGracePeriodSeconds).toBe(50);
    // production: sleep 5 + 2m + 10s + 10
    expect(spec(rendered.production.get("Deployment", "-edge")).spec.terminationGracePeriodSeconds).toBe(145);
    const other = await renderChart(tmp, ["--set", "config.limits.max_connections=10"]);
    const a = spec(rendered.default.get("Deployment", "-edge")).metadata.annotations;
    const b = spec(other.get("Deployment", "-edge")).metadata.annotations;
    expect(b["checksum/config"]).not.toBe(a["checksum/config"]);
    expect(b["checksum/secrets"]).toBe(a["checksum/secrets"]);
  }, CHART_CHECK_FIRST_RUN_MS);

  it("renders RBAC only for Kubernetes discovery, one scrape monitor, and the PrometheusRule from deploy/prometheus/rules.yaml", () => {
    const kinds = (r: Rendered) => new Set(r.objects.map((o) => o.kind));
    expect(kinds(rendered.default).has("Role")).toBe(false);
    expect(kinds(rendered.default).has("ServiceAccount")).toBe(false);
    for (const k of ["ServiceAccount", "Role", "RoleBinding", "HorizontalPodAutoscaler", "Ingress", "NetworkPolicy", "ServiceMonitor", "PrometheusRule"]) {
      expect(kinds(rendered.production).has(k), k).toBe(true);
    }
    // one of ServiceMonitor and PodMonitor (both would scrape every pod twice), on the same pods
    expect(kinds(rendered.production).has("PodMonitor")).toBe(false);
    expect(kinds(rendered.accounts).has("ServiceMonitor")).toBe(false);
    const monitor = rendered.accounts.get("PodMonitor", "meshbroker").spec as Record<string, unknown>;
    const service = rendered.production.get("ServiceMonitor", "meshbroker").spec as Record<string, unknown>;
    expect(monitor.selector).toEqual(service.selector);
    expect(monitor.namespaceSelector).toEqual(service.namespaceSelector);
    const rule = rendered.production.get("PrometheusRule", "meshbroker");
    expect(JSON.stringify(rule.spec)).toContain("alert");
    const dashboard = rendered.production.get("ConfigMap", "-dashboard");
    expect(dashboard.metadata.labels?.grafana_dashboard).toBe("1");
    expect(() => JSON.parse(dashboard.data!["meshbroker.json"])).not.toThrow();
  });

  it("README's values table names every value of values.yaml (or the map it belongs to)", async () => {
    const readme = await readFile(path.join(REPO_ROOT, "README.md"), "utf8");
    const table = readme.slice(readme.indexOf("### Values"));
    const values = yaml.load(await readFile(path.join(CHART, "values.yaml"), "utf8")) as Record<string, unknown>;
    const leaves: string[] = [];
    const walk = (v: unknown, at: string[]) => {
      if (v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length > 0) {
        for (const [k, x] of Object.entries(v)) walk(x, [...at, k]);
      } else leaves.push(at.join("."));
    };
    walk(values, []);
    const missing = leaves.filter((leaf) => !leaf.split(".").some((_, i, parts) => table.includes(`| \`${parts.slice(0, i + 1).join(".")}\` |`)));
    expect(missing).toEqual([]);
  });
});
