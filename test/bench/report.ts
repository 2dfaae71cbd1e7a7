// Medians, ratios and the Markdown report.
import type { BenchCase, RoundResult } from "./cases.js";

/** Results of one case for one server: successful rounds, then the error that stopped it, if any. */
export interface SlotOutcome {
  readonly rounds: RoundResult[];
  error?: string;
}

export interface CaseOutcome {
  readonly bench: BenchCase;
  readonly mesh: SlotOutcome;
  readonly nats: SlotOutcome;
}

export interface ReportMeta {
  readonly date: string;
  readonly machine: string;
  readonly node: string;
  readonly natsVersion: string;
  readonly meshCommand: string;
  readonly natsCommand: string;
  readonly loadgen: string;
  readonly rounds: number;
  readonly scale: number;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function cell(slot: SlotOutcome, i: number, fmt: (v: number) => string): { text: string; value?: number } {
  if (slot.error !== undefined || slot.rounds.length === 0) return { text: "error" };
  const value = median(slot.rounds.map((r) => r.values[i]));
  return { text: fmt(value), value };
}

function oneLine(s: string, max = 160): string {
  const flat = s.replace(/\s+/g, " ").replace(/\|/g, "\\|").trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}

export function renderMarkdown(meta: ReportMeta, outcomes: readonly CaseOutcome[]): string {
  const out: string[] = [];
  out.push("# meshbroker vs nats-server", "");
  out.push(`- date: ${meta.date}`);
  out.push(`- machine: ${meta.machine}; Node ${meta.node}; ${meta.natsVersion}`);
  out.push(`- meshbroker: \`${meta.meshCommand}\``);
  out.push(`- nats-server: \`${meta.natsCommand}\``);
  out.push(`- load generator: ${meta.loadgen}`);
  out.push(
    `- method: both servers run side by side on loopback; ${meta.rounds} round(s) per case, alternating ` +
      `meshbroker / nats-server; each figure is the median over rounds` +
      (meta.scale !== 1 ? `; message counts scaled by ${meta.scale}` : ""),
  );
  out.push("");
  out.push("| case | meshbroker | nats-server | ratio (meshbroker/nats-server) |");
  out.push("| --- | ---: | ---: | --- |");
  for (const o of outcomes) {
    o.bench.metrics.forEach((m, i) => {
      const a = cell(o.mesh, i, m.format);
      const b = cell(o.nats, i, m.format);
      let ratio = "—";
      if (a.value !== undefined && b.value !== undefined && b.value !== 0) {
        const r = a.value / b.value;
        const meshAhead = m.better === "higher" ? r > 1 : r < 1;
        const verdict = Math.abs(r - 1) < 0.03 ? "within 3%" : meshAhead ? "meshbroker ahead" : "nats-server ahead";
        ratio = `${r.toFixed(2)} (${m.better} is better: ${verdict})`;
      }
      out.push(`| ${m.name} | ${a.text} | ${b.text} | ${ratio} |`);
    });
  }
  out.push("", "What the figures are:", "");
  for (const o of outcomes) out.push(`- ${o.bench.metrics.map((m) => m.name).join(", ")}: ${o.bench.measure}`);

  const errors = outcomes.flatMap((o) =>
    [
      ["meshbroker", o.mesh],
      ["nats-server", o.nats],
    ]
      .filter(([, s]) => (s as SlotOutcome).error !== undefined)
      .map(([label, s]) => `- ${o.bench.id} / ${label}: ${oneLine((s as SlotOutcome).error!, 600)}`),
  );
  if (errors.length) out.push("", "## Errors", "", ...errors);

  out.push("", "## Rounds", "", "| case | round | meshbroker | nats-server |", "| --- | ---: | --- | --- |");
  for (const o of outcomes) {
    const n = Math.max(o.mesh.rounds.length, o.nats.rounds.length);
    for (let i = 0; i < n; i++) {
      const a = o.mesh.rounds[i]?.detail ?? "—";
      const b = o.nats.rounds[i]?.detail ?? "—";
      out.push(`| ${o.bench.id} | ${i + 1} | ${oneLine(a)} | ${oneLine(b)} |`);
    }
  }
  return out.join("\n") + "\n";
}
