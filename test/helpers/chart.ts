// The Helm chart (charts/meshbroker) under the shared offline tools: `chart-check` renders and
// schema-checks it (Helm's template engine), `k8s-validate` checks plain manifests, and
// `kube-sim` runs the rendered pods as local processes in network namespaces (root only).
// Tools come from $IMAGE_TOOLS or ../shared/tools, as in the Makefile.
import { mkdir, mkdtemp, readFile, rm, symlink } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import yaml from "js-yaml";
import { REPO_ROOT, runCommand } from "./process.js";

export const TOOLS = process.env.IMAGE_TOOLS ? path.resolve(REPO_ROOT, process.env.IMAGE_TOOLS) : path.join(REPO_ROOT, "../shared/tools");
export const CHART = path.join(REPO_ROOT, "charts/meshbroker");
/** The first chart-check run builds its Go renderer (45–85 s here), later runs take about 2 s. */
export const CHART_CHECK_FIRST_RUN_MS = 180_000;

export interface ToolRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function chartCheck(args: string[], timeoutMs = CHART_CHECK_FIRST_RUN_MS): Promise<ToolRun> {
  return runCommand(path.join(TOOLS, "chart-check"), args, { cwd: REPO_ROOT, timeoutMs, name: "chart-check" });
}

export function k8sValidate(args: string[]): Promise<ToolRun> {
  return runCommand(path.join(TOOLS, "k8s-validate"), args, { cwd: REPO_ROOT, timeoutMs: CHART_CHECK_FIRST_RUN_MS, name: "k8s-validate" });
}

/** A Kubernetes object as rendered (only the fields the tests read are typed). */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  spec?: Record<string, unknown>;
}

export interface Rendered {
  file: string;
  objects: K8sObject[];
  /** The one object of this kind and name suffix; throws when absent. */
  get(kind: string, nameSuffix: string): K8sObject;
}

/** `chart-check CHART -o FILE ...args` into `dir`: fails with chart-check's output on an error. */
export async function renderChart(dir: string, args: string[], release = "mb"): Promise<Rendered> {
  const file = path.join(dir, `rendered-${Math.random().toString(36).slice(2)}.yaml`);
  const run = await chartCheck([CHART, "--release", release, "-o", file, ...args]);
  if (run.code !== 0) throw new Error(`chart-check ${args.join(" ")} failed:\n${run.stdout}${run.stderr}`);
  const objects = yaml.loadAll(await readFile(file, "utf8")).filter((o): o is K8sObject => !!o && typeof o === "object");
  return {
    file,
    objects,
    get(kind, suffix) {
      const o = objects.find((x) => x.kind === kind && x.metadata.name.endsWith(suffix));
      if (!o) throw new Error(`no ${kind} named *${suffix} in ${file}`);
      return o;
    },
  };
}

export interface SimPod {
  name: string;
  ready: boolean;
  phase: string;
  ip: string;
  /** Restarts of all its containers. */
  restarts: number;
}

/**
 * One kube-sim cluster in its own state folder and subnet. The checkout stands in for the
 * meshbroker image's /app (through a partial root holding an `app` link to it: the
 * `DIR:/app` form needs /app to exist on the host), Debian's redis-server for the Redis image.
 */
export class KubeSim {
  private constructor(readonly dir: string, private readonly env: NodeJS.ProcessEnv) {}

  static async create(prefix = "meshbroker-kube-sim-"): Promise<KubeSim> {
    const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
    await mkdir(path.join(dir, "image-root"));
    await symlink(REPO_ROOT.replace(/\/$/, ""), path.join(dir, "image-root/app"));
    return new KubeSim(dir, { ...process.env, KUBE_SIM_STATE: path.join(dir, "state") });
  }

  async run(args: string[], timeoutMs = 30_000): Promise<ToolRun> {
    const r = await runCommand(path.join(TOOLS, "kube-sim"), args, { env: this.env, timeoutMs, name: "kube-sim" });
    if (r.code !== 0) throw new Error(`kube-sim ${args.join(" ")} exited ${r.code}:\n${r.stdout}${r.stderr}`);
    return r;
  }

  /** `up` with the image mappings; resolves once every pod is ready (or fails after waitS). */
  up(rendered: string, subnet: string, waitS = 150): Promise<ToolRun> {
    return this.run([
      "up", rendered, "--no-expose", "--subnet", subnet, "--wait", String(waitS),
      "--image", `meshbroker=${path.join(this.dir, "image-root")}`,
      "--image", "redis=/", "--entrypoint", "redis=redis-server",
    ], (waitS + 30) * 1000);
  }

  async pods(): Promise<SimPod[]> {
    const r = await this.run(["status", "--json"]);
    const pods = (JSON.parse(r.stdout) as { pods: Array<Omit<SimPod, "restarts"> & { containers: Array<{ restarts: number }> }> }).pods;
    return pods.map(({ containers, ...p }) => ({ ...p, restarts: containers.reduce((n, c) => n + c.restarts, 0) }));
  }

  async podLog(name: string): Promise<string> {
    return readFile(path.join(this.dir, "state/logs", `${name}.log`), "utf8").catch(() => "");
  }

  /**
   * Everything every pod printed, for a failure message, then one line per pod (its state and
   * last line): CI shows only the end of a failure, so the end must say which pod is stuck.
   */
  async logs(): Promise<string> {
    const pods = await this.pods().catch(() => [] as SimPod[]);
    const texts = await Promise.all(pods.map((p) => this.podLog(p.name)));
    const lastLine = (t: string) => t.trimEnd().split("\n").pop()?.slice(0, 200) ?? "";
    return [
      ...pods.map((p, i) => `==> ${p.name}\n${texts[i].slice(-4000)}`),
      "pods at the failure:",
      ...pods.map((p, i) => `  ${p.name} ${p.phase} ready=${p.ready} restarts=${p.restarts}: ${lastLine(texts[i])}`),
    ].join("\n");
  }

  /** Polls `status` until `pred` holds; rejects after `timeoutMs` with the last status. */
  async waitPods(pred: (pods: SimPod[]) => boolean, timeoutMs: number, what: string): Promise<SimPod[]> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const pods = await this.pods();
      if (pred(pods)) return pods;
      if (Date.now() > until) throw new Error(`${what}: not within ${timeoutMs} ms: ${JSON.stringify(pods)}`);
      await new Promise((r) => setTimeout(r, 250)); // kube-sim has no watch: poll its status
    }
  }

  async down(): Promise<void> {
    try {
      await this.run(["down", "--grace", "5"], 120_000);
    } finally {
      await rm(this.dir, { recursive: true, force: true });
    }
  }
}
