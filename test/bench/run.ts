// meshbroker vs nats-server (and mosquitto for MQTT), measured in the same run with the same
// native load generator.
//
//   npx tsc -p tsconfig.json && node dist/test/bench/run.js [--case fanout[,idle]] [--rounds 5]
//
// Environment:
//   BENCH_MESHBROKER_CMD  server command for the meshbroker column, `{port}`, `{host}` and
//                         `{config}` substituted (default: bin/meshbroker -c {config});
//                         set it to "/usr/sbin/nats-server -a {host} -p {port}" to check the harness
//                         on the NATS cases
//   BENCH_SAME_SERVER     nats-server | mosquitto: run that server, with its own config, in every
//                         column (harness check: every ratio should be close to 1.00)
//   BENCH_NATS_SERVER     nats-server binary (default: from PATH or /usr/sbin, else apt-get install)
//   BENCH_MOSQUITTO       mosquitto binary (default: from PATH or /usr/sbin, else apt-get install)
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { CASES, DEFAULT_CASES, findCases, type BenchCase, type RoundResult } from "./cases.js";
import { ensureLoadgen, LOADGEN_DESCRIPTION } from "./loadgen.js";
import { renderMarkdown, type CaseOutcome, type SlotOutcome } from "./report.js";
import {
  isShuttingDown,
  killAll,
  killAllSync,
  mosquittoVersion,
  natsServerVersion,
  resolveMosquitto,
  resolveNatsServer,
  startServer,
  tail,
  type RunningServer,
  type ServerSlot,
} from "./servers.js";
import {
  describeSlot,
  meshCommandFromEnv,
  sameServerFromEnv,
  SERVER_KINDS,
  slotFor,
  type Binaries,
  type Listener,
  type ServerKind,
} from "./slots.js";

interface Args {
  cases: BenchCase[];
  rounds: number;
  scale: number;
  out?: string;
}

const USAGE = `usage: node dist/test/bench/run.js [options]
  --case NAME[,NAME]  run only these cases: ${CASES.map((c) => c.id).join(", ")};
                      "cluster": every cluster case; "storms": every storm case
                      (default: every case but the storms)
  --rounds N          rounds per case, alternating the servers (default 5)
  --scale F           multiply message counts by F (default 1)
  --out FILE          report path (default dist/bench/results.md)
  --list              list the cases`;

function parseArgs(argv: string[]): Args {
  const args: Args = { cases: [...DEFAULT_CASES], rounds: 5, scale: 1 };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2);
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case "--case":
      case "--cases":
        args.cases = value()
          .split(",")
          .flatMap((n) => {
            const c = findCases(n.trim());
            if (c.length === 0) throw new UsageError(`unknown case '${n}'`);
            return c;
          });
        break;
      case "--rounds":
        args.rounds = Number(value());
        if (!Number.isInteger(args.rounds) || args.rounds < 1) throw new UsageError("--rounds must be a positive integer");
        break;
      case "--scale":
        args.scale = Number(value());
        if (!(args.scale > 0)) throw new UsageError("--scale must be positive");
        break;
      case "--out":
        args.out = value();
        break;
      case "--list":
        for (const c of CASES) {
          const tag = DEFAULT_CASES.includes(c) ? "" : " (only when named: --case storms)";
          console.log(`${c.id.padEnd(15)} ${c.metrics.map((m) => m.name).join("; ")}${tag}`);
        }
        process.exit(0);
        break;
      case "--help":
      case "-h":
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        throw new UsageError(`unknown option '${argv[i]}'`);
    }
  }
  return args;
}

class UsageError extends Error {
  override name = "UsageError";
}

/** The repository root: three levels above dist/test/bench/run.js, else the working directory. */
function repoRoot(): string {
  const fromUrl = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
  for (const dir of [fromUrl, process.cwd()]) {
    if (fs.existsSync(path.join(dir, "test/bench/loadgen.c"))) return dir;
  }
  throw new Error("cannot find test/bench/loadgen.c (run from the repository root)");
}

/** The slot per column of a case; a server that cannot serve the case fails its column only. */
type SlotOrError = { slot: ServerSlot } | { error: string };

async function runCase(
  bench: BenchCase,
  args: Args,
  slots: SlotOrError[],
  loadgen: string,
  workDir: string,
  root: string,
): Promise<CaseOutcome> {
  const kinds = bench.servers;
  const results: SlotOutcome[] = kinds.map(() => ({ rounds: [] }));
  const outcome: CaseOutcome = { bench, results: Object.fromEntries(kinds.map((k, i) => [k, results[i]])) };
  const servers: (RunningServer | undefined)[] = kinds.map(() => undefined);
  const stop = async (k: number): Promise<void> => {
    const server = servers[k];
    servers[k] = undefined;
    await server?.stop();
    if (server?.notes?.length) results[k].notes = [...(results[k].notes ?? []), ...server.notes];
  };
  const stopAll = () => Promise.all(kinds.map((_, k) => stop(k)));
  const fail = (k: number, round: number, message: string): void => {
    results[k].error = message;
    if (!isShuttingDown()) console.error(`bench: ${bench.id} round ${round} ${kinds[k]} FAILED: ${message}`);
  };
  slots.forEach((s, k) => {
    if ("error" in s) fail(k, 0, s.error);
  });
  try {
    for (let round = 1; round <= args.rounds; round++) {
      // The servers run side by side; one that cannot start only loses its own column.
      const starting = await Promise.allSettled(
        kinds.map(async (_, k) => {
          const s = slots[k];
          if (results[k].error === undefined && !servers[k] && "slot" in s) servers[k] = await startServer(s.slot, workDir, root);
        }),
      );
      starting.forEach((s, k) => {
        if (s.status === "rejected") fail(k, round, (s.reason as Error).message);
      });
      for (let k = 0; k < kinds.length; k++) {
        const server = servers[k];
        if (results[k].error !== undefined || !server) continue; // a server that failed once is not measured again
        try {
          if (round === 1 && bench.warmupRound) {
            const w = await bench.round({ loadgen, server, scale: args.scale });
            results[k].warmup = w;
            console.error(`bench: ${bench.id} warm-up round (not counted) ${server.label}: ${w.detail}`);
          }
          const r: RoundResult = await bench.round({ loadgen, server, scale: args.scale });
          results[k].rounds.push(r);
          console.error(`bench: ${bench.id} round ${round}/${args.rounds} ${server.label}: ${r.detail}`);
        } catch (err) {
          fail(k, round, `${(err as Error).message}\n${tail(server.logFile, 5)}`);
          await stop(k);
        }
      }
      if (bench.freshServerPerRound) await stopAll();
      if (results.every((s) => s.error !== undefined)) break;
    }
  } finally {
    await stopAll();
  }
  return outcome;
}

/** Resolves a reference server's binary once, on first use; remembers a failure too. */
function lazyBinary(resolve: () => string): () => string {
  let value: { bin: string } | { err: Error } | undefined;
  return () => {
    value ??= (() => {
      try {
        return { bin: resolve() };
      } catch (err) {
        return { err: err as Error };
      }
    })();
    if ("err" in value) throw value.err;
    return value.bin;
  };
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const root = repoRoot();
  const outDir = path.join(root, "dist/bench");
  const mesh = meshCommandFromEnv();
  const same = sameServerFromEnv();
  const bins: Binaries = { meshCmd: mesh.argv, natsServer: lazyBinary(resolveNatsServer), mosquitto: lazyBinary(resolveMosquitto) };
  // Which command and config each column runs, per case; described once per server and listener.
  const used = new Map<string, string>();
  const slotsOf = (bench: BenchCase): SlotOrError[] =>
    bench.servers.map((column) => {
      const run = same ?? column;
      try {
        const slot = slotFor(column, run, bench.listener, bench.cluster === true, bins);
        const key = `${run} (${bench.cluster && column !== "embedded" ? "cluster, " : ""}${LISTENER_TEXT[bench.listener]})`;
        if (!used.has(key)) used.set(key, describeSlot(slot, process.execPath));
        return { slot };
      } catch (err) {
        return { error: (err as Error).message };
      }
    });
  const loadgen = ensureLoadgen(root, outDir);
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), "meshbroker-bench-"));
  const outcomes: CaseOutcome[] = [];
  const t0 = Date.now();
  try {
    for (const bench of args.cases) outcomes.push(await runCase(bench, args, slotsOf(bench), loadgen, workDir, root));
  } finally {
    fs.rmSync(workDir, { recursive: true, force: true });
  }
  if (interrupted) return 130; // the signal handler stops everything; keep the last report
  const runs = new Set<ServerKind>(args.cases.flatMap((c) => c.servers.map((k) => same ?? k)));
  const versions: string[] = [];
  if (runs.has("nats-server")) tryPush(versions, () => natsServerVersion(bins.natsServer()));
  if (runs.has("mosquitto")) tryPush(versions, () => mosquittoVersion(bins.mosquitto()));
  const cpu = os.cpus()[0]?.model.trim() ?? "unknown CPU";
  const report = renderMarkdown(
    {
      date: new Date().toISOString(),
      machine: `${os.cpus().length} cores (${cpu}), Linux ${os.release()}`,
      node: process.version,
      versions,
      servers: [...used].sort(([a], [b]) => kindOrder(a) - kindOrder(b)).map(([key, text]) => `- ${key}: ${text}`),
      loadgen: LOADGEN_DESCRIPTION,
      rounds: args.rounds,
      scale: args.scale,
      sameServer: same,
    },
    outcomes,
  );
  const outFile = args.out ?? path.join(outDir, "results.md");
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  fs.writeFileSync(outFile, report);
  process.stdout.write(report);
  console.error(`bench: wrote ${path.relative(process.cwd(), outFile) || outFile} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const failed = outcomes.some((o) => Object.values(o.results).some((s) => s.error !== undefined));
  return failed ? 1 : 0;
}

const LISTENER_TEXT: Record<Listener, string> = {
  nats: "NATS cases",
  ws: "WebSocket cases",
  "ws-deflate": "compressed WebSocket cases",
  mqtt: "MQTT cases",
  "nats-tls": "NATS with TLS cases",
  "ws-tls": "WebSocket with TLS cases",
  "mqtt-tls": "MQTT with TLS cases",
  storm: "connection storm",
  "storm-tls": "connection storm with TLS",
};

function kindOrder(key: string): number {
  const i = SERVER_KINDS.findIndex((k) => key.startsWith(`${k} `));
  return i < 0 ? SERVER_KINDS.length : i;
}

function tryPush(list: string[], f: () => string): void {
  try {
    list.push(f());
  } catch {
    // the binary is missing: the Errors section already says so
  }
}

// Leave no server behind: on Ctrl-C, kill, or any exit path.
process.on("exit", killAllSync);
let interrupted = false;
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(sig, () => {
    if (interrupted) return;
    interrupted = true;
    console.error(`bench: ${sig}, stopping servers`);
    void killAll().finally(() => process.exit(128 + os.constants.signals[sig]));
  });
}

main().then(
  (code) => {
    if (!interrupted) process.exit(code);
  },
  (err: Error) => {
    if (interrupted) return;
    console.error(err instanceof UsageError ? `${err.message}\n${USAGE}` : `bench: ${err.stack ?? err.message}`);
    void killAll().finally(() => process.exit(err instanceof UsageError ? 2 : 1));
  },
);
