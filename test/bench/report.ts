// Medians, ratios and the Markdown report.
import type { BenchCase, Metric, RoundResult } from "./cases.js";
import { SERVER_KINDS, type ServerKind } from "./slots.js";

/** Results of one case for one server: successful rounds, then the error that stopped it, if any. */
export interface SlotOutcome {
  readonly rounds: RoundResult[];
  /** The uncounted first round (BenchCase.warmupRound). */
  warmup?: RoundResult;
  error?: string;
  /** What the server printed when it stopped (a cluster's ops per frame). */
  notes?: string[];
}

export interface CaseOutcome {
  readonly bench: BenchCase;
  /** One entry per server of `bench.servers`. */
  readonly results: Partial<Record<ServerKind, SlotOutcome>>;
}

export interface ReportMeta {
  readonly date: string;
  readonly machine: string;
  readonly node: string;
  /** Versions of the reference servers used, e.g. "nats-server: v2.9.10". */
  readonly versions: readonly string[];
  /** One line per server: command and config, per kind of listener. */
  readonly servers: readonly string[];
  readonly loadgen: string;
  readonly rounds: number;
  readonly scale: number;
  /** BENCH_SAME_SERVER: one server ran in every column. */
  readonly sameServer?: ServerKind;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function cell(slot: SlotOutcome | undefined, i: number, fmt: (v: number) => string): { text: string; value?: number } {
  if (!slot) return { text: "—" };
  if (slot.error !== undefined || slot.rounds.length === 0) return { text: "error" };
  const value = median(slot.rounds.map((r) => r.values[i]));
  return { text: fmt(value), value };
}

function ratioOf(o: CaseOutcome, i: number, m: Metric, other: ServerKind, of: ServerKind = "meshbroker"): number | undefined {
  const a = cell(o.results[of], i, m.format).value;
  const b = cell(o.results[other], i, m.format).value;
  return a !== undefined && b !== undefined && b !== 0 ? a / b : undefined;
}

/** The "embedded" column is only in cluster cases: there meshbroker's column is its cluster. */
const mine = (other: ServerKind): string => (other === "embedded" ? "cluster" : "meshbroker");

function ratioCell(o: CaseOutcome, i: number, m: Metric, other: ServerKind): string {
  if (!o.results[other]) return "—";
  const r = ratioOf(o, i, m, other);
  if (r === undefined) return "—";
  const meshAhead = m.better === "higher" ? r > 1 : r < 1;
  const verdict = Math.abs(r - 1) < 0.03 ? "within 3%" : meshAhead ? `${mine(other)} ahead` : `${other} ahead`;
  return `${r.toFixed(2)} (${m.better} is better: ${verdict})`;
}

function oneLine(s: string, max = 160): string {
  const flat = s.replace(/\s+/g, " ").replace(/\|/g, "\\|").trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}

/** "0.62: **met**": `value` against `goal` in the metric's direction. */
function verdict(m: Metric, value: number | undefined, goal: number, fmt: (v: number) => string): string {
  if (value === undefined) return "not measured (see Errors)";
  const met = m.better === "higher" ? value >= goal : value <= goal;
  return `${fmt(value)}: ${met ? "**met**" : "**not met**"}`;
}

export function renderMarkdown(meta: ReportMeta, outcomes: readonly CaseOutcome[]): string {
  // Columns: meshbroker and nats-server always (the original layout); mosquitto, embedded and
  // node only when a case of this run has them.
  const others: ServerKind[] = ["nats-server"];
  for (const k of ["mosquitto", "embedded", "node"] as const) if (outcomes.some((o) => o.bench.servers.includes(k))) others.push(k);
  const columns: ServerKind[] = ["meshbroker", ...others];

  const out: string[] = [];
  out.push(`# meshbroker vs ${others.filter((k) => k !== "embedded" && k !== "node").join(" and ")}`, "");
  out.push(`- date: ${meta.date}`);
  out.push(`- machine: ${meta.machine}; Node ${meta.node}; ${meta.versions.join("; ")}`);
  if (meta.sameServer) {
    out.push(`- **harness check: ${meta.sameServer} runs in every column** (BENCH_SAME_SERVER); ratios should be ≈ 1`);
  }
  out.push(...meta.servers);
  out.push(`- load generator: ${meta.loadgen}`);
  out.push(
    `- method: the servers of a case run side by side on loopback; ${meta.rounds} round(s) per case, alternating ` +
      `${columns.join(" / ")}; each figure is the median over rounds` +
      (meta.scale !== 1 ? `; message counts scaled by ${meta.scale}` : ""),
  );
  if (outcomes.some((o) => o.bench.warmupRound)) {
    out.push("- warm-up: in the throughput cases each server first runs one round that is not counted (shown in Rounds): " +
      "it measures a freshly started process, whose JIT has not yet optimised the message path");
  }
  if (others.includes("embedded")) {
    out.push("- embedded: a cluster case's load on one meshbroker process, in the same rounds; its ratio is the cluster's figure over it");
  }
  if (others.includes("node")) {
    out.push("- node: Node's floor in the connect and idle cases: the handshakes alone on Node's own sockets (net, tls, ws), " +
      "no broker (test/bench/node-floor.ts); meshbroker/node is what the broker adds, and the Targets give node's own ratio " +
      "to the reference: how near Node itself comes to it");
  }
  out.push("");
  const head = ["case", "meshbroker"];
  const align = ["---", "---:"];
  for (const k of others) {
    head.push(k, `ratio (${mine(k)}/${k})`);
    align.push("---:", "---");
  }
  out.push(`| ${head.join(" | ")} |`, `| ${align.join(" | ")} |`);
  for (const o of outcomes) {
    o.bench.metrics.forEach((m, i) => {
      const row = [m.name, cell(o.results.meshbroker, i, m.format).text];
      for (const k of others) row.push(cell(o.results[k], i, m.format).text, ratioCell(o, i, m, k));
      out.push(`| ${row.join(" | ")} |`);
    });
  }

  const targets: string[] = [];
  for (const o of outcomes) {
    o.bench.metrics.forEach((m, i) => {
      for (const t of m.targets ?? []) {
        const r = ratioOf(o, i, m, t.vs);
        const goal = `meshbroker/${t.vs} ${m.better === "higher" ? "≥" : "≤"} ${t.ratio.toFixed(2)}`;
        const floor = o.results.node ? ratioOf(o, i, m, t.vs, "node") : undefined;
        targets.push(`- ${m.name}: ${goal}; measured ${verdict(m, r, t.ratio, (v) => v.toFixed(2))}` +
          (floor !== undefined ? ` (Node's floor: node/${t.vs} ${floor.toFixed(2)})` : ""));
      }
      if (m.limit !== undefined) {
        const goal = `meshbroker ${m.better === "higher" ? "≥" : "≤"} ${m.format(m.limit)}`;
        targets.push(`- ${m.name}: ${goal}; measured ${verdict(m, cell(o.results.meshbroker, i, m.format).value, m.limit, m.format)}`);
      }
    });
  }
  if (targets.length) out.push("", "## Targets", "", ...targets);

  out.push("", "What the figures are:", "");
  for (const o of outcomes) out.push(`- ${o.bench.metrics.map((m) => m.name).join(", ")}: ${o.bench.measure}`);

  const errors = outcomes.flatMap((o) =>
    SERVER_KINDS.filter((k) => o.results[k]?.error !== undefined).map(
      (k) => `- ${o.bench.id} / ${k}: ${oneLine(o.results[k]!.error!, 600)}`,
    ),
  );
  if (errors.length) out.push("", "## Errors", "", ...errors);

  out.push("", "## Rounds", "", `| case | round | ${columns.join(" | ")} |`, `| --- | ---: |${" --- |".repeat(columns.length)}`);
  for (const o of outcomes) {
    const n = Math.max(...columns.map((k) => o.results[k]?.rounds.length ?? 0));
    if (columns.some((k) => o.results[k]?.warmup)) {
      const cells = columns.map((k) => oneLine(o.results[k]?.warmup?.detail ?? "—"));
      out.push(`| ${o.bench.id} | warm-up, not counted | ${cells.join(" | ")} |`);
    }
    for (let i = 0; i < n; i++) {
      const cells = columns.map((k) => oneLine(o.results[k]?.rounds[i]?.detail ?? "—"));
      out.push(`| ${o.bench.id} | ${i + 1} | ${cells.join(" | ")} |`);
    }
  }
  const notes = outcomes.flatMap((o) =>
    SERVER_KINDS.flatMap((k) => (o.results[k]?.notes ?? []).map((n) => `- ${o.bench.id} / ${k} ${n}`)),
  );
  if (notes.length) out.push("", "## Link frames (ops per frame, each process over the whole case)", "", ...notes);
  return out.join("\n") + "\n";
}
