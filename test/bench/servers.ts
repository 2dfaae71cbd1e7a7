// Starting, probing, measuring and stopping the servers under test. Every process started
// here is registered so that an error or Ctrl-C can still stop it.
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";

export interface ServerSlot {
  /** Column name in the report ("meshbroker", "nats-server"). */
  readonly label: string;
  /** argv template; `{port}`, `{host}` and `{config}` are substituted. */
  readonly argv: readonly string[];
  /** Written to the file named by `{config}` (with `{port}`/`{host}` substituted). */
  readonly configTemplate?: string;
}

export interface RunningServer {
  readonly label: string;
  readonly port: number;
  readonly pid: number;
  readonly logFile: string;
  stop(): Promise<void>;
}

export const HOST = "127.0.0.1";

/** Process groups we started and have not seen stopped. */
const liveGroups = new Set<number>();
/** Every child process we started (servers and load generators) that has not exited. */
const liveChildren = new Set<ChildProcess>();

/** Set once we are tearing everything down: nothing new may be started after that. */
let shuttingDown = false;

export function isShuttingDown(): boolean {
  return shuttingDown;
}

/** Call right before spawning anything. */
export function assertNotShuttingDown(): void {
  if (shuttingDown) throw new Error("shutting down");
}

export function trackChild(child: ChildProcess): void {
  child.on("error", () => {}); // spawn/kill failures surface through exit status or spawn checks
  if (child.pid === undefined) return; // spawn failed: nothing runs
  liveChildren.add(child);
  child.once("exit", () => liveChildren.delete(child));
}

/** Last resort, synchronous (usable from process.on("exit")): SIGKILL everything we started. */
export function killAllSync(): void {
  for (const child of liveChildren) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
  for (const pgid of liveGroups) killGroup(pgid, "SIGKILL");
  liveGroups.clear();
}

/** SIGKILLs everything we started and waits (up to `waitMs`) until each child is reaped. */
export async function killAll(waitMs = 3000): Promise<void> {
  shuttingDown = true;
  const exits = [...liveChildren]
    .filter((c) => c.exitCode === null && c.signalCode === null)
    .map((c) => new Promise((resolve) => c.once("exit", resolve)));
  killAllSync();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.all(exits), new Promise((r) => (timer = setTimeout(r, waitMs)))]);
  clearTimeout(timer);
}

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: the group is already gone
  }
}

/** A port the kernel says is free right now (the server binds it a moment later). */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  srv.listen(0, HOST);
  await once(srv, "listening");
  const { port } = srv.address() as net.AddressInfo;
  srv.close();
  await once(srv, "close");
  return port;
}

export function resolveNatsServer(): string {
  const fromEnv = process.env.BENCH_NATS_SERVER;
  if (fromEnv) return fromEnv;
  const found = findOnPath("nats-server") ?? (fs.existsSync("/usr/sbin/nats-server") ? "/usr/sbin/nats-server" : undefined);
  if (found) return found;
  if (process.getuid?.() !== 0) {
    throw new Error("nats-server not found: install it with `apt-get install -y nats-server` or set BENCH_NATS_SERVER");
  }
  console.error("bench: nats-server not found; running `apt-get install -y nats-server`");
  try {
    execFileSync("apt-get", ["install", "-y", "nats-server"], { stdio: "inherit" });
  } catch {
    execFileSync("apt-get", ["update"], { stdio: "inherit" });
    execFileSync("apt-get", ["install", "-y", "nats-server"], { stdio: "inherit" });
  }
  const installed = findOnPath("nats-server") ?? "/usr/sbin/nats-server";
  if (!fs.existsSync(installed)) throw new Error("nats-server still missing after apt-get install");
  return installed;
}

function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(":").concat(["/usr/sbin", "/usr/local/sbin"])) {
    if (!dir) continue;
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

export function natsServerVersion(bin: string): string {
  try {
    return execFileSync(bin, ["--version"], { encoding: "utf8" }).trim();
  } catch {
    return "nats-server (version unknown)";
  }
}

/** Splits a command line on whitespace (no quoting); a leading `node` means this Node binary. */
export function parseCommand(cmd: string): string[] {
  const argv = cmd.trim().split(/\s+/).filter(Boolean);
  if (argv.length === 0) throw new Error(`empty server command: '${cmd}'`);
  if (argv[0] === "node") argv[0] = process.execPath;
  return argv;
}

function substitute(s: string, vars: Record<string, string>): string {
  return s.replace(/\{(port|host|config)\}/g, (_, k: string) => vars[k]);
}

export async function startServer(slot: ServerSlot, workDir: string, cwd: string): Promise<RunningServer> {
  assertNotShuttingDown();
  const port = await freePort();
  const tag = `${slot.label.replace(/[^\w.-]+/g, "_")}-${port}`;
  const config = path.join(workDir, `${tag}.conf`);
  const vars = { port: String(port), host: HOST, config };
  if (slot.configTemplate !== undefined) fs.writeFileSync(config, substitute(slot.configTemplate, vars));
  const argv = slot.argv.map((a) => substitute(a, vars));
  const logFile = path.join(workDir, `${tag}.log`);
  const logFd = fs.openSync(logFile, "w");
  assertNotShuttingDown();
  // Own process group: stopping it also stops anything the server forked.
  const child = spawn(argv[0], argv.slice(1), { cwd, detached: true, stdio: ["ignore", logFd, logFd] });
  fs.closeSync(logFd);
  trackChild(child);
  if (child.pid !== undefined) liveGroups.add(child.pid);
  let exited: string | undefined;
  const exitP = new Promise<void>((resolve) =>
    child.once("exit", (code, signal) => {
      exited = signal ? `killed by ${signal}` : `exit code ${code}`;
      resolve();
    }),
  );
  const spawned = await new Promise<Error | undefined>((resolve) => {
    child.once("spawn", () => resolve(undefined));
    child.once("error", resolve);
  });
  if (spawned) throw new Error(`${slot.label}: cannot start '${argv.join(" ")}': ${spawned.message}`);
  const pid = child.pid!;

  const stop = async (): Promise<void> => {
    if (!liveGroups.has(pid)) return;
    if (!exited) {
      killGroup(pid, "SIGTERM");
      const timer = setTimeout(() => killGroup(pid, "SIGKILL"), 3000);
      await exitP;
      clearTimeout(timer);
    }
    killGroup(pid, "SIGKILL"); // leftovers the leader did not take down with it
    liveGroups.delete(pid);
  };

  try {
    await waitReady(port, () => exited, 20_000);
  } catch (err) {
    await stop();
    throw new Error(`${slot.label} (${argv.join(" ")}) did not become ready: ${(err as Error).message}\n` + tail(logFile));
  }
  return { label: slot.label, port, pid, logFile, stop };
}

export function tail(file: string, lines = 15): string {
  try {
    const text = fs.readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
    return text ? `--- last lines of ${file} ---\n${text}` : `(${file} is empty)`;
  } catch {
    return "";
  }
}

/** Ready means: accepts a TCP connection and sends a complete INFO line. */
async function waitReady(port: number, hasExited: () => string | undefined, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastErr = "";
  for (;;) {
    const exit = hasExited();
    if (exit) throw new Error(`server process exited (${exit})`);
    try {
      await probeInfo(port, Math.max(100, Math.min(2000, deadline - Date.now())));
      return;
    } catch (err) {
      lastErr = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`no INFO within ${timeoutMs} ms (${lastErr})`);
    // connection refused: the listener is not up yet; retry shortly
    await new Promise((r) => setTimeout(r, 20));
  }
}

function probeInfo(port: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host: HOST });
    let buf = "";
    const done = (err?: Error): void => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve();
    };
    const timer = setTimeout(() => done(new Error("timed out waiting for INFO")), timeoutMs);
    sock.setEncoding("latin1");
    sock.on("data", (d: string) => {
      buf += d;
      const eol = buf.indexOf("\r\n");
      if (eol < 0) return;
      if (buf.startsWith("INFO ")) done();
      else done(new Error(`expected INFO, got '${buf.slice(0, Math.min(eol, 80))}'`));
    });
    sock.on("error", (err) => done(err));
    sock.on("close", () => done(new Error("closed before INFO")));
  });
}

/** Resident memory in KB of a process plus all its descendants (a server may fork helpers). */
export function rssKB(pid: number): number {
  const children = new Map<number, number[]>();
  for (const ent of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(ent)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${ent}/stat`, "utf8");
      // "pid (comm) state ppid ...": comm may contain spaces and parentheses
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(ent));
      children.set(ppid, list);
    } catch {
      // the process went away while we looked
    }
  }
  let total = 0;
  const stack = [pid];
  while (stack.length) {
    const p = stack.pop()!;
    try {
      const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${p}/status`, "utf8"));
      if (m) total += Number(m[1]);
    } catch {
      if (p === pid) throw new Error(`process ${pid} is gone`);
    }
    stack.push(...(children.get(p) ?? []));
  }
  return total;
}
