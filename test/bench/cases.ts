// The benchmark cases. Each names its payload size; each row of the report is one metric.
import { holdIdle, runLoadgen } from "./loadgen.js";
import { HOST, rssKB, type RunningServer } from "./servers.js";

export type Better = "higher" | "lower";

export interface Metric {
  /** Row name in the report, payload size included. */
  readonly name: string;
  readonly better: Better;
  format(v: number): string;
}

export interface RoundResult {
  /** One value per metric, in `metrics` order. */
  readonly values: number[];
  /** Extra figures for the per-round details. */
  readonly detail: string;
}

export interface CaseContext {
  readonly loadgen: string;
  readonly server: RunningServer;
  /** Multiplies message counts (`--scale`). */
  readonly scale: number;
}

export interface BenchCase {
  readonly id: string;
  readonly aliases: readonly string[];
  readonly metrics: readonly Metric[];
  /** What a value means, for the report. */
  readonly measure: string;
  /** Memory cases need a fresh process each round: memory freed by an earlier round is reused. */
  readonly freshServerPerRound: boolean;
  round(ctx: CaseContext): Promise<RoundResult>;
}

const PAYLOAD = 128;

export function formatRate(v: number): string {
  if (v >= 1e6) return `${(v / 1e6).toFixed(2)}M msgs/s`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(1)}k msgs/s`;
  return `${v.toFixed(0)} msgs/s`;
}

const formatMicros = (v: number): string => `${v.toFixed(1)} µs`;

function scaled(count: number, scale: number): string {
  return String(Math.max(1, Math.round(count * scale)));
}

function base(server: RunningServer): string[] {
  return ["--host", HOST, "--port", String(server.port), "--size", String(PAYLOAD)];
}

function pubsubCase(id: string, aliases: string[], name: string, subs: number, queue: boolean, count: number): BenchCase {
  return {
    id,
    aliases,
    metrics: [{ name, better: "higher", format: formatRate }],
    measure:
      `${count} published; messages received per second, summed over ${subs} subscriber(s), ` +
      "from the first publish to the last receive",
    freshServerPerRound: false,
    async round({ loadgen, server, scale }) {
      const args = ["pubsub", ...base(server), "--subs", String(subs), "--count", scaled(count, scale)];
      if (queue) args.push("--queue", "q");
      const r = await runLoadgen(loadgen, args);
      const recv = r.recv_rate as number;
      const pub = r.pub_rate as number;
      // loadgen CPU as a share of one core over the run: far below 100% means it was not the limit
      const lgCpu = (100 * (r.cpu_s as number)) / (r.elapsed_s as number);
      return { values: [recv], detail: `recv ${formatRate(recv)}, pub ${formatRate(pub)}, loadgen CPU ${lgCpu.toFixed(0)}%` };
    },
  };
}

const REQUESTS = 5000;
const WARMUP = 500;
const IDLE_CONNS = 1000;

export const CASES: readonly BenchCase[] = [
  pubsubCase("pub", ["1:1", "pubsub", "pub1"], `pub ${PAYLOAD}B 1:1`, 1, false, 500_000),
  pubsubCase("fanout", ["fan-out", "fanout8"], `pub ${PAYLOAD}B fan-out 1→8`, 8, false, 100_000),
  pubsubCase("queue", ["qgroup", "queue4"], `pub ${PAYLOAD}B queue group x4`, 4, true, 500_000),
  {
    id: "reqrep",
    aliases: ["req", "latency"],
    metrics: [
      { name: `req/rep ${PAYLOAD}B p50`, better: "lower", format: formatMicros },
      { name: `req/rep ${PAYLOAD}B p99`, better: "lower", format: formatMicros },
    ],
    measure: `${REQUESTS} sequential requests after ${WARMUP} warm-up; round-trip latency`,
    freshServerPerRound: false,
    async round({ loadgen, server, scale }) {
      const r = await runLoadgen(loadgen, [
        "reqrep", ...base(server), "--subject", "req", "--count", scaled(REQUESTS, scale), "--warmup", String(WARMUP),
      ]);
      const [p50, p99] = [r.p50_us as number, r.p99_us as number];
      return {
        values: [p50, p99],
        detail: `p50 ${formatMicros(p50)}, p99 ${formatMicros(p99)}, mean ${formatMicros(r.mean_us as number)}, max ${formatMicros(r.max_us as number)}`,
      };
    },
  },
  {
    id: "idle",
    aliases: ["rss", "memory", "conns"],
    metrics: [
      {
        name: `RSS per ${IDLE_CONNS} idle conns`,
        better: "lower",
        format: (kb) => `${(kb / 1024).toFixed(1)} MB (${(kb / IDLE_CONNS).toFixed(1)} KB/conn)`,
      },
    ],
    measure:
      `server RSS (VmRSS, process and descendants) with ${IDLE_CONNS} connections open ` +
      "(CONNECT + PING/PONG each) minus RSS before them; fresh server each round",
    freshServerPerRound: true,
    async round({ loadgen, server }) {
      const before = rssKB(server.pid);
      const after = await holdIdle(loadgen, ["--host", HOST, "--port", String(server.port), "--conns", String(IDLE_CONNS)], () =>
        rssKB(server.pid),
      );
      return { values: [after - before], detail: `RSS ${before} KB → ${after} KB` };
    },
  },
];

export function findCase(name: string): BenchCase | undefined {
  const n = name.toLowerCase();
  return CASES.find((c) => c.id === n || c.aliases.includes(n));
}
