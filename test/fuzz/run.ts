// `make fuzz`: the long pass, from plain node (compiled by tsconfig.fuzz.json into dist/).
//
//   node dist/test/fuzz/run.js
//
// Environment:
//   FUZZ_SEED=N          seed (default: the current time; printed, so a run can be repeated)
//   FUZZ_INPUTS=N        inputs per surface (default 1000000)
//   FUZZ_SECONDS=N       time budget per surface (default 300); whichever ends first
//   FUZZ_SURFACES=a,b    only these surfaces (nats, websocket, mqtt, connect, cookies, jwt, config, decoders)
//   FUZZ_PROBE_EVERY=N   probe every N inputs (default 300)
//   FUZZ_REPLAY=FILE     play one crash file from test/fuzz/corpus/ and say whether the broker survives
//   FUZZ_MINIMIZE=1      with FUZZ_REPLAY: shrink the file in place to fewer inputs that still crash
import { reclaimDoneMs } from "../../services/common/memory.js";
import { minimizeFile, replayFile, runSurface, type VariantStats } from "./harness.js";
import { SURFACES } from "./surfaces.js";

const env = process.env;
const num = (name: string, dflt: number): number => {
  const v = env[name];
  if (v === undefined || v === "") return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) {
    console.error(`${name}=${v}: not a number`);
    process.exit(2);
  }
  return n;
};

async function main(): Promise<number> {
  if (env.FUZZ_REPLAY && env.FUZZ_MINIMIZE) {
    const kept = await minimizeFile(env.FUZZ_REPLAY, SURFACES, (line) => console.log(line));
    console.log(`${env.FUZZ_REPLAY}: ${kept} input(s) still crash the broker`);
    return 0;
  }
  if (env.FUZZ_REPLAY) {
    const why = await replayFile(env.FUZZ_REPLAY, SURFACES);
    console.log(why === undefined ? `${env.FUZZ_REPLAY}: survived` : `${env.FUZZ_REPLAY}: ${why}`);
    return why === undefined ? 0 : 1;
  }
  const seed = num("FUZZ_SEED", Date.now() % 2 ** 31);
  const names = env.FUZZ_SURFACES ? env.FUZZ_SURFACES.split(",").map((s) => s.trim()) : SURFACES.map((s) => s.name);
  const unknown = names.filter((n) => !SURFACES.some((s) => s.name === n));
  if (unknown.length > 0) {
    console.error(`unknown surface(s): ${unknown.join(", ")}; known: ${SURFACES.map((s) => s.name).join(", ")}`);
    return 2;
  }
  const opts = {
    seed,
    inputs: num("FUZZ_INPUTS", 1_000_000),
    seconds: num("FUZZ_SECONDS", 300),
    probeEvery: Math.max(1, num("FUZZ_PROBE_EVERY", 300)),
    // The end RSS is read after the broker's reclaim following the burst (both its GCs + slack).
    memorySettleMs: reclaimDoneMs() + 1_500,
    log: (line: string) => console.log(line),
  };
  console.log(`fuzz: seed ${seed}, up to ${opts.inputs} inputs or ${opts.seconds}s per surface, probe every ${opts.probeEvery}`);
  const rows: VariantStats[] = [];
  for (const surface of SURFACES.filter((s) => names.includes(s.name))) {
    const got = await runSurface(surface, opts);
    for (const r of got) console.log(format(r));
    rows.push(...got);
  }
  console.log(`\n${HEADER}\n${rows.map(format).join("\n")}`);
  return rows.some((r) => r.crashes.length > 0) ? 1 : 0;
}

const HEADER = "surface/variant           inputs  inputs/s  probes  probe p99  RSS warm-up → end (ratio)  crashes";

function format(r: VariantStats): string {
  const mb = (kb: number) => `${(kb / 1024).toFixed(0)} MB`;
  const rss = r.rssWarmKb > 0 ? `${mb(r.rssWarmKb)} → ${mb(r.rssEndKb)} (${(r.rssEndKb / r.rssWarmKb).toFixed(2)}×)` : "in-process";
  return [
    `${r.surface}/${r.variant}`.padEnd(24),
    String(r.inputs).padStart(8),
    (r.inputs / Math.max(r.seconds, 1e-3)).toFixed(0).padStart(9),
    String(r.probes).padStart(7),
    r.rssWarmKb > 0 ? `${r.probeP99Ms.toFixed(0).padStart(7)} ms` : "        -",
    `  ${rss}`.padEnd(27),
    `${r.crashes.length}${r.lingering > 0 ? ` (${r.lingering} connections left)` : ""}`.padStart(8),
  ].join(" ");
}

main().then((code) => process.exit(code), (err) => {
  console.error(err);
  process.exit(1);
});
