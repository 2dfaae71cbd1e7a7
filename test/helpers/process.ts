// Runs the real `bin/meshbroker` command in a child process, for tests of the CLI contract
// (arguments, exit codes, startup lines, signals), and other commands the same way
// (`spawnCommand`, `runCommand`). Output is collected line by line and `waitForLine` resolves
// on the data event that completes a matching line; nothing sleeps.
// Call `stopAllBrokers()` from `afterEach` so a failed test leaves no process behind.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

// The compiled copy (dist/test/helpers/, for the plain-node fuzz runner) names the same repository.
export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url)).replace(/\/dist\/$/, "/");
export const BIN = path.join(REPO_ROOT, "bin/meshbroker");
export const CLI_JS = path.join(REPO_ROOT, "dist/services/cli.js");

/** Throws a clear error when the CLI has not been compiled (bin/meshbroker runs dist/). */
export function assertBuilt(): void {
  if (!existsSync(CLI_JS)) {
    throw new Error(
      `${CLI_JS} is missing: bin/meshbroker runs the compiled CLI. ` +
        "Build first with `npx tsc -p tsconfig.json` (`make test` does this before vitest).",
    );
  }
}

export interface OutputLine {
  stream: "stdout" | "stderr";
  text: string;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface BrokerProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Complete lines so far, both streams, in arrival order. */
  readonly lines: readonly OutputLine[];
  stdout(): string;
  stderr(): string;
  /** A cursor for `waitForLine(…, since)`: only lines that arrive after this call count. */
  mark(): number;
  /**
   * Resolves with the match of the first line (from index `since`, on either stream unless
   * `stream` says which) that matches; rejects after `timeoutMs` or when the process exits
   * first, with everything it printed in the message.
   */
  waitForLine(re: RegExp, timeoutMs?: number, opts?: { since?: number; stream?: OutputLine["stream"] }): Promise<RegExpMatchArray>;
  signal(sig: NodeJS.Signals): void;
  /** Resolves once the process has exited and both output streams are drained. */
  readonly exited: Promise<Exit>;
  /** Like `exited`, but rejects after `timeoutMs`. */
  exitWithin(timeoutMs?: number): Promise<Exit>;
  /** SIGKILL unless already gone; resolves when it has exited. */
  kill(): Promise<Exit>;
}

const live = new Set<BrokerProcess>();
const SETPRIV = existsSync("/usr/bin/setpriv") ? "/usr/bin/setpriv" : undefined;
// A worker that dies mid-test must not leave brokers behind either.
process.once("exit", () => {
  for (const p of live) p.child.kill("SIGKILL");
});

/** The node flags of bin/meshbroker's first line, `#!/usr/bin/env -S node FLAGS`: the broker's
 *  one place for them, passed here too because the helpers start this node with BIN as argument. */
export const BIN_NODE_FLAGS: readonly string[] = (() => {
  const words = readFileSync(BIN, "utf8").split("\n", 1)[0].split(" ").filter((w) => w !== "");
  const node = words.indexOf("node");
  return node < 0 ? [] : words.slice(node + 1);
})();

/** `node FLAGS bin/meshbroker ...args`, with the repository as working directory. MESHBROKER_NODE_ARGS
 *  (space-separated) go to node after FLAGS (so they win): `--cpu-prof --cpu-prof-dir=/tmp/prof`
 *  profiles every broker of a bench or test run (node refuses --cpu-prof in NODE_OPTIONS). */
export function spawnBroker(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): BrokerProcess {
  assertBuilt();
  return spawnCommand(process.execPath, brokerArgv(args), { ...opts, name: "meshbroker" });
}

/** node's arguments for `bin/meshbroker ...args`: its flags, then MESHBROKER_NODE_ARGS. */
function brokerArgv(args: string[]): string[] {
  const nodeArgs = process.env.MESHBROKER_NODE_ARGS?.split(" ").filter((a) => a !== "") ?? [];
  return [...BIN_NODE_FLAGS, ...nodeArgs, BIN, ...args];
}

/** Any command, watched like the broker (lines, `waitForLine`, `exitWithin`, killed on cleanup);
 *  `name` is what error messages call it (the command's base name by default). */
export function spawnCommand(command: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; name?: string } = {}): BrokerProcess {
  const name = opts.name ?? command.slice(command.lastIndexOf("/") + 1);
  // setpriv (util-linux) execs the command with a parent-death signal: if the test worker is
  // killed (a timeout, SIGKILL) before its cleanup runs, the kernel kills its brokers too.
  const [file, argv] = SETPRIV ? [SETPRIV, ["--pdeathsig", "KILL", "--", command, ...args]] : [command, args];
  const child = spawn(file, argv, {
    cwd: opts.cwd ?? REPO_ROOT,
    env: opts.env ?? process.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: OutputLine[] = [];
  const raw = { stdout: "", stderr: "" };
  const partial = { stdout: "", stderr: "" };
  const waiters = new Set<() => void>();
  const wake = () => { for (const w of [...waiters]) w(); };
  let done = false;
  let exit: Exit | undefined;

  const collect = (stream: OutputLine["stream"]) => (chunk: Buffer) => {
    const text = chunk.toString("utf8");
    raw[stream] += text;
    const parts = (partial[stream] + text).split("\n");
    partial[stream] = parts.pop()!;
    for (const p of parts) lines.push({ stream, text: p.replace(/\r$/, "") });
    if (parts.length > 0) wake();
  };
  child.stdout!.on("data", collect("stdout"));
  child.stderr!.on("data", collect("stderr"));
  // A command that cannot start (ENOENT, EACCES) still gets 'close'; keep why in its stderr.
  child.once("error", (err) => { raw.stderr += `${err.message}\n`; });

  // 'close' comes after 'exit' and after both pipes have ended, so all output is in.
  const exited = new Promise<Exit>((resolve) => {
    child.once("close", (code, signal) => {
      for (const stream of ["stdout", "stderr"] as const) {
        if (partial[stream] !== "") lines.push({ stream, text: partial[stream] });
        partial[stream] = "";
      }
      done = true;
      exit = { code, signal };
      live.delete(proc);
      resolve({ code, signal });
      wake();
    });
  });

  const describeOutput = () =>
    (exit ? ` [exit code ${exit.code}, signal ${exit.signal}]` : "") +
    `\n--- stdout ---\n${raw.stdout}--- stderr ---\n${raw.stderr}--------------`;

  const proc: BrokerProcess = {
    child,
    pid: child.pid ?? -1,
    lines,
    stdout: () => raw.stdout,
    stderr: () => raw.stderr,
    mark: () => lines.length,
    waitForLine(re, timeoutMs = 5_000, { since = 0, stream } = {}) {
      return new Promise((resolve, reject) => {
        let scanned = since;
        const check = () => {
          for (; scanned < lines.length; scanned++) {
            const l = lines[scanned];
            if (stream && l.stream !== stream) continue;
            const m = l.text.match(re);
            if (m) {
              finish();
              return resolve(m);
            }
          }
          if (done) {
            finish();
            reject(new Error(`${name} exited (pid ${proc.pid}) before printing a line matching ${re}${describeOutput()}`));
          }
        };
        const timer = setTimeout(() => {
          finish();
          reject(new Error(`no line matching ${re} within ${timeoutMs}ms (pid ${proc.pid})${describeOutput()}`));
        }, timeoutMs);
        const finish = () => { clearTimeout(timer); waiters.delete(check); };
        waiters.add(check);
        check();
      });
    },
    signal(sig) {
      if (!done) child.kill(sig);
    },
    exited,
    exitWithin(timeoutMs = 5_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${name} (pid ${proc.pid}) still running after ${timeoutMs}ms${describeOutput()}`)),
          timeoutMs,
        );
        exited.then((e) => { clearTimeout(timer); resolve(e); });
      });
    },
    async kill() {
      if (!done) child.kill("SIGKILL");
      return exited;
    },
  };
  live.add(proc);
  return proc;
}

/** Kills every broker process a test left running (use in afterEach). */
export async function stopAllBrokers(): Promise<void> {
  await Promise.all([...live].map((p) => p.kill()));
}

/** Runs `bin/meshbroker ...args` to completion (for -t, --help, --version). */
export function runBroker(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}):
  Promise<Exit & { stdout: string; stderr: string }> {
  assertBuilt();
  return runCommand(process.execPath, brokerArgv(args), { ...opts, name: "meshbroker" });
}

/** Runs a command to completion; one still running after `timeoutMs` is killed and the
 *  promise rejects with its output. */
export async function runCommand(command: string, args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; name?: string; timeoutMs?: number } = {}): Promise<Exit & { stdout: string; stderr: string }> {
  const p = spawnCommand(command, args, opts);
  try {
    const exit = await p.exitWithin(opts.timeoutMs ?? 10_000);
    return { ...exit, stdout: p.stdout(), stderr: p.stderr() };
  } finally {
    await p.kill();
  }
}

/**
 * A port that was free a moment ago (bind :0, read it, close), for configs that must name a
 * fixed port. Prefer `port: -1` and reading the startup line when the test allows it.
 */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = addr && typeof addr === "object" ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** `n` distinct free ports: every probe listener stays bound until all are chosen, so two
 *  calls in a row cannot hand out the same port (freePort twice can). */
export async function freePorts(n: number, host = "127.0.0.1"): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const srv = net.createServer();
      servers.push(srv);
      await new Promise<void>((resolve, reject) => {
        srv.once("error", reject);
        srv.listen(0, host, () => resolve());
      });
    }
    return servers.map((srv) => (srv.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((srv) => new Promise((resolve) => srv.close(resolve))));
  }
}

/** Resolves true if something accepts TCP connections on host:port, false if refused. */
export function isListening(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host });
    s.once("connect", () => { s.destroy(); resolve(true); });
    s.once("error", () => { s.destroy(); resolve(false); });
  });
}

/** The `listening for NATS clients on HOST:PORT` / `listening for monitoring on HOST:PORT` lines. */
export const LISTEN_NATS = /listening for NATS clients on (\S+):(\d+)$/;
export const LISTEN_MONITORING = /listening for monitoring on (\S+):(\d+)$/;

/** SIGHUP to a broker process: resolves with the line it logged for that reload (ending in
 *  "Reloaded: <what changed>" or "Failed to reload configuration: <why>"). */
export async function reload(proc: BrokerProcess, timeoutMs = 5_000): Promise<string> {
  const since = proc.mark();
  proc.signal("SIGHUP");
  return (await proc.waitForLine(/(?:Reloaded|Failed to reload configuration): .*$/, timeoutMs, { since })).input!;
}

/**
 * Spawns the broker, waits for its listener lines (the monitoring one too with `monitoring`),
 * then proves it serves: a TCP client gets the INFO line. The broker answers that only in a
 * later event-loop turn than the one that finished its startup, so by then it has also set up
 * its signal handlers (meshbroker currently does that after printing the listener lines; a
 * signal sent in between takes the default action and kills it, see cli.test.ts).
 */
export async function startBrokerProcess(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; monitoring?: boolean; timeoutMs?: number } = {},
): Promise<{ proc: BrokerProcess; natsPort: number; httpPort?: number }> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const proc = spawnBroker(args, opts);
  const nats = await proc.waitForLine(LISTEN_NATS, timeoutMs);
  const http = opts.monitoring ? await proc.waitForLine(LISTEN_MONITORING, timeoutMs) : undefined;
  const natsPort = Number(nats[2]);
  await readInfo(natsPort, nats[1] === "0.0.0.0" || nats[1] === "::" ? "127.0.0.1" : nats[1], timeoutMs);
  return { proc, natsPort, httpPort: http ? Number(http[2]) : undefined };
}

/** Connects, reads up to the end of the INFO line, closes. */
function readInfo(port: number, host: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host });
    let text = "";
    const timer = setTimeout(() => finish(new Error(`no INFO from ${host}:${port} within ${timeoutMs}ms`)), timeoutMs);
    const finish = (err?: Error) => {
      clearTimeout(timer);
      s.destroy();
      if (err) reject(err);
      else resolve(text.slice(0, text.indexOf("\r\n")));
    };
    s.on("data", (b: Buffer) => {
      text += b.toString("latin1");
      if (text.includes("\r\n")) finish();
    });
    s.once("error", (err) => finish(err));
    s.once("close", () => finish(new Error(`${host}:${port} closed before INFO: ${JSON.stringify(text)}`)));
  });
}
