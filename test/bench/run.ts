// meshbroker vs nats-server, measured in the same run with the same native load generator.
//
//   npx tsc -p tsconfig.json && node dist/test/bench/run.js [--case fanout[,idle]] [--rounds 5]
//
// Environment:
//   BENCH_MESHBROKER_CMD  server command for the meshbroker column, `{port}`, `{host}` and
//                         `{config}` substituted (default: node bin/meshbroker -c {config});
//                         set it to "/usr/sbin/nats-server -a {host} -p {port}" to check the harness
//   BENCH_NATS_SERVER     nats-server binary (default: from PATH or /usr/sbin, else apt-get install)
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { CASES, findCase, type BenchCase, type RoundResult } from "./cases.js";
import { ensureLoadgen, LOADGEN_DESCRIPTION } from "./loadgen.js";
import { renderMarkdown, type CaseOutcome, type SlotOutcome } from "./report.js";
import {
  isShuttingDown,
  killAll,
  killAllSync,
  natsServerVersion,
  parseCommand,
  resolveNatsServer,
  startServer,
  tail,
  type RunningServer,
  type ServerSlot,
} from "./servers.js";

interface Args {
  cases: BenchCase[];
  rounds: number;
  scale: number;
  out?: string;
}

const USAGE = `usage: node dist/test/bench/run.js [options]
  --case NAME[,NAME]  run only these cases: ${CASES.map((c) => c.id).join(", ")}
  --rounds N          rounds per case, alternating the servers (default 5)
  --scale F           multiply message counts by F (default 1)
  --out FILE          report path (default dist/bench/results.md)
  --list              list the cases`;

function parseArgs(argv: string[]): Args {
  const args: Args = { cases: [...CASES], rounds: 5, scale: 1 };
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
          .map((n) => {
            const c = findCase(n.trim());
            if (!c) throw new UsageError(`unknown case '${n}'`);
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
        for (const c of CASES) console.log(`${c.id.padEnd(8)} ${c.metrics.map((m) => m.name).join("; ")}`);
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

async function runCase(
  bench: BenchCase,
  args: Args,
  slots: [ServerSlot, ServerSlot],
  loadgen: string,
  workDir: string,
  root: string,
): Promise<CaseOutcome> {
  const outcome: CaseOutcome = { bench, mesh: { rounds: [] }, nats: { rounds: [] } };
  const results: [SlotOutcome, SlotOutcome] = [outcome.mesh, outcome.nats];
  const servers: (RunningServer | undefined)[] = [undefined, undefined];
  const stop = async (k: number): Promise<void> => {
    await servers[k]?.stop();
    servers[k] = undefined;
  };
  const fail = (k: number, round: number, message: string): void => {
    results[k].error = message;
    if (!isShuttingDown()) console.error(`bench: ${bench.id} round ${round} ${slots[k].label} FAILED: ${message}`);
  };
  try {
    for (let round = 1; round <= args.rounds; round++) {
      // Both servers run side by side; one that cannot start only loses its own column.
      const starting = await Promise.allSettled(
        [0, 1].map(async (k) => {
          if (results[k].error === undefined && !servers[k]) servers[k] = await startServer(slots[k], workDir, root);
        }),
      );
      starting.forEach((s, k) => {
        if (s.status === "rejected") fail(k, round, (s.reason as Error).message);
      });
      for (let k = 0; k < 2; k++) {
        const server = servers[k];
        if (results[k].error !== undefined || !server) continue; // a server that failed once is not measured again
        try {
          const r: RoundResult = await bench.round({ loadgen, server, scale: args.scale });
          results[k].rounds.push(r);
          console.error(`bench: ${bench.id} round ${round}/${args.rounds} ${server.label}: ${r.detail}`);
        } catch (err) {
          fail(k, round, `${(err as Error).message}\n${tail(server.logFile, 5)}`);
          await stop(k);
        }
      }
      if (bench.freshServerPerRound) await Promise.all([stop(0), stop(1)]);
      if (results.every((s) => s.error !== undefined)) break;
    }
  } finally {
    await Promise.all([stop(0), stop(1)]);
  }
  return outcome;
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const root = repoRoot();
  const outDir = path.join(root, "dist/bench");
  const natsBin = resolveNatsServer();
  const meshCmd = process.env.BENCH_MESHBROKER_CMD ?? "node bin/meshbroker -c {config}";
  const slots: [ServerSlot, ServerSlot] = [
    { label: "meshbroker", argv: parseCommand(meshCmd), configTemplate: "port: {port}\nhost: {host}\n" },
    { label: "nats-server", argv: [natsBin, "-a", "{host}", "-p", "{port}"] },
  ];
  const loadgen = ensureLoadgen(root, outDir);
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), "meshbroker-bench-"));
  const outcomes: CaseOutcome[] = [];
  const t0 = Date.now();
  try {
    for (const bench of args.cases) outcomes.push(await runCase(bench, args, slots, loadgen, workDir, root));
  } finally {
    fs.rmSync(workDir, { recursive: true, force: true });
  }
  if (interrupted) return 130; // the signal handler stops everything; keep the last report
  const cpu = os.cpus()[0]?.model.trim() ?? "unknown CPU";
  const report = renderMarkdown(
    {
      date: new Date().toISOString(),
      machine: `${os.cpus().length} cores (${cpu}), Linux ${os.release()}`,
      node: process.version,
      natsVersion: natsServerVersion(natsBin),
      meshCommand: meshCmd,
      natsCommand: `${natsBin} -a {host} -p {port}`,
      loadgen: LOADGEN_DESCRIPTION,
      rounds: args.rounds,
      scale: args.scale,
    },
    outcomes,
  );
  const outFile = args.out ?? path.join(outDir, "results.md");
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  fs.writeFileSync(outFile, report);
  process.stdout.write(report);
  console.error(`bench: wrote ${path.relative(process.cwd(), outFile) || outFile} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const failed = outcomes.some((o) => o.mesh.error !== undefined || o.nats.error !== undefined);
  return failed ? 1 : 0;
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
