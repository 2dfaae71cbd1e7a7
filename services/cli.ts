// The meshbroker command: parses arguments, loads the config, starts the role(s), and wires
// signals (SIGTERM/SIGUSR2 lame duck then stop, SIGINT stop now, SIGHUP reload).
import { readFileSync } from "node:fs";
import { ConfigError, defaultOptions, loadConfigFile, type Options } from "./common/config/index.js";
import { Logger } from "./common/log.js";
import type { EdgeBroker } from "./embedded.js";
import type { RouterBroker } from "./router-role.js";
import { describeFrameStats } from "./router/wire/batcher.js";

const USAGE = `Usage: meshbroker [role] [options]

Roles:
  (none)            embedded: edge and router in one process (default)
  edge              client listeners, linked to the routers of edge { routers: [...] }
  router            routing for edges over gRPC (router { listen, redis })

Options:
  -c, --config FILE   configuration file (NATS config format)
  -t                  check the configuration and exit (0 ok, 1 with the error)
  -a, --addr HOST     client listen host (overrides the config)
  -p, --port PORT     client port (overrides the config; -1 = any free port)
  -m, --http_port P   monitoring port (overrides the config)
  -D, --debug         debug logging
  -V, --trace         trace logging
  -h, --help          this help
  -v, --version       print the version

Signals:
  SIGTERM, SIGUSR2  lame duck: stop accepting, tell clients to reconnect elsewhere, close them
                    spread over lame_duck_duration (after lame_duck_grace_period), then exit;
                    a router asks its edges to move to other routers first, then exits
  SIGINT            stop now: clients get what they have pending, then exit
  SIGHUP            reload the configuration
`;

interface Args {
  role: "embedded" | "edge" | "router";
  config?: string;
  check: boolean;
  overrides: Partial<Options>;
  debug: boolean;
  trace: boolean;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}

function parseArgs(argv: string[]): Args | "help" | "version" {
  const args: Args = { role: "embedded", check: false, overrides: {}, debug: false, trace: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value`);
      return v;
    };
    const port = (v: string): number => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < -1 || n > 65535) throw new UsageError(`${a}: invalid port "${v}"`);
      return n === -1 ? 0 : n;
    };
    switch (a) {
      case "edge": case "router": args.role = a; break;
      case "-c": case "--config": args.config = value(); break;
      case "-t": args.check = true; break;
      case "-a": case "--addr": case "--net": args.overrides.host = value(); break;
      case "-p": case "--port": args.overrides.port = port(value()); break;
      case "-m": case "--http_port": args.overrides.httpPort = port(value()); break;
      case "-D": case "--debug": args.debug = true; break;
      case "-V": case "--trace": args.trace = true; break;
      case "-h": case "--help": return "help";
      case "-v": case "--version": return "version";
      default: throw new UsageError(`unknown argument "${a}"`);
    }
  }
  return args;
}

class UsageError extends Error {}

export async function main(argv: string[]): Promise<number> {
  let args: Args | "help" | "version";
  try {
    args = parseArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`meshbroker: ${err.message}\n\n${USAGE}`);
    return 2;
  }
  if (args === "help") { process.stdout.write(USAGE); return 0; }
  if (args === "version") { process.stdout.write(`meshbroker ${version()}\n`); return 0; }

  const load = (a: Args): Options => {
    const base = a.config ? loadConfigFile(a.config) : { options: defaultOptions(), warnings: [] };
    for (const w of base.warnings) process.stderr.write(`warning: ${w}\n`);
    const o: Options = { ...base.options, ...a.overrides };
    o.log = { ...o.log, debug: o.log.debug || a.debug, trace: o.log.trace || a.trace };
    return Object.freeze(o);
  };

  let options: Options;
  try {
    options = load(args);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    throw err;
  }
  if (args.check) {
    process.stdout.write(`configuration ${args.config ?? "(defaults)"} is valid\n`);
    return 0;
  }
  const log = new Logger(options.log);
  const role = args.role;
  log.notice(`Starting meshbroker ${version()} (${role === "embedded" ? "embedded: edge + router" : role})`);
  if (options.configFile) log.notice(`Using configuration file: ${options.configFile}`);
  // Signals are trapped before the listeners open: a signal in between must not kill us.
  const parsed = args;
  // A router has no clients: its SIGTERM moves its edges to other routers, then stops it.
  let broker: (EdgeBroker | (RouterBroker & { edge?: undefined })) | undefined;
  let stopRequested: { signal: string; lameDuck: boolean } | undefined;
  let finished: ((code: number) => void) | undefined;
  const done = new Promise<number>((resolve) => { finished = resolve; });
  // Lame duck first (a pod leaving gently); an impatient SIGINT meanwhile stops at once.
  const stop = (signal: string, asked: boolean) => {
    const lameDuck = asked;
    if (stopRequested && (lameDuck || !stopRequested.lameDuck)) return;
    stopRequested = { signal, lameDuck };
    log.notice(`Trapped "${signal}" signal, ${lameDuck ? "entering lame duck mode" : "stopping"}`);
    if (!broker) return; // startup finishes, then stops
    (lameDuck && broker.lameDuck ? broker.lameDuck() : broker.stop()).then(() => {
      if (!finished) return; // a SIGINT during lame duck got here first
      // Ops per frame on the links, for whoever tunes batching (the bench reads this line).
      const frames = role === "embedded" ? "" : describeFrameStats();
      if (frames) log.notice(`link frames sent: ${frames}`);
      log.notice("Server Exiting..");
      finished(0);
      finished = undefined;
    });
  };
  // The last resort: each connection has its own fault boundary (services/edge/boundary.ts), so
  // reaching these is a bug outside any connection. Log it loudly, count it, keep serving.
  process.on("uncaughtException", (err) => {
    broker?.edge?.faults.count("process", "uncaught");
    log.error(`uncaught exception (a bug; the broker carries on): ${err.stack ?? String(err)}`);
  });
  process.on("unhandledRejection", (reason) => {
    broker?.edge?.faults.count("process", "unhandled_rejection");
    log.error(`unhandled rejection (a bug; the broker carries on): ${reason instanceof Error ? reason.stack : String(reason)}`);
  });
  process.on("SIGTERM", () => stop("SIGTERM", true));
  process.on("SIGUSR2", () => stop("SIGUSR2", true));
  process.on("SIGINT", () => stop("SIGINT", false));
  process.on("SIGHUP", () => {
    if (!broker) return log.notice("Reload requested during startup: the configuration just loaded is used");
    try {
      const changed = broker.reload(load(parsed));
      log.notice(changed.length ? `Reloaded: ${changed.join(", ")}` : "Reloaded: no changes");
    } catch (err) {
      log.error(`Failed to reload configuration: ${(err as Error).message}`);
    }
  });

  try {
    // Each role loads only its own modules: the embedded broker never loads gRPC or the Redis
    // client, whose heap every full GC would otherwise mark again (README "Performance").
    broker = role === "router" ? await (await import("./router-role.js")).startRouterRole(options, log)
      : role === "edge" ? await (await import("./edge-role.js")).startEdgeRole(options, log)
      : await (await import("./embedded.js")).startEmbedded(options, log);
  } catch (err) {
    log.fatal(`cannot start: ${(err as Error).message}`);
    return 1;
  }
  log.notice("Server is ready");
  if (stopRequested) {
    const { signal, lameDuck } = stopRequested;
    stopRequested = undefined;
    stop(signal, lameDuck);
  }
  return done;
}
