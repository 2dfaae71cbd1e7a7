// Starting, probing, measuring and stopping the servers under test. Every process started
// here is registered so that an error or Ctrl-C can still stop it.
import { spawn, spawnSync, execFileSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { freePorts } from "../helpers/process.js";
import { REDIS_SERVER_BIN } from "../helpers/redis.js";
import { STORM_USER } from "./slots.js";

export interface ServerSlot {
  /** Column name in the report ("meshbroker", "nats-server", "mosquitto"). */
  readonly label: string;
  /**
   * argv template. Substituted here and in the config: `{host}`, `{config}`, `{store_dir}` (a
   * fresh directory), and the ports `{port}` (NATS), `{ws_port}`, `{mqtt_port}`: each one used
   * gets a free port, and the server is ready once every one of them answers.
   */
  readonly argv: readonly string[];
  /** Written to the file named by `{config}`, placeholders substituted. */
  readonly configTemplate?: string;
  /** A server made of several processes (a cluster) starts itself; `argv` is then unused. */
  readonly start?: (workDir: string, cwd: string) => Promise<RunningServer>;
  /** The report's description of such a server. */
  readonly describe?: string;
}

/** The client listeners of a server, or of one node of a cluster. */
export interface NodePorts {
  /** NATS client port (0 if the server has none, e.g. mosquitto). */
  readonly port: number;
  /** WebSocket listener port, when the slot has `{ws_port}`. */
  readonly wsPort?: number;
  /** MQTT listener port, when the slot has `{mqtt_port}`. */
  readonly mqttPort?: number;
}

/** A server; for a cluster, its ports and `pid` are those of node 1 (the one clients connect to). */
export interface RunningServer extends NodePorts {
  readonly label: string;
  readonly pid: number;
  readonly logFile: string;
  /** A cluster: each node's listeners (node 1 first). */
  readonly nodes?: readonly NodePorts[];
  /** A cluster: its processes, each measured apart (CPU per message, cases.ts). */
  readonly processes?: readonly { readonly name: string; readonly pid: number }[];
  /** Figures the server printed when it stopped, for the report. */
  readonly notes?: readonly string[];
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

/** A binary from `envVar`, PATH or /usr/sbin; else, as root, `apt-get install -y <pkg>`. */
function resolveBinary(name: string, envVar: string, pkg: string): string {
  const fromEnv = process.env[envVar];
  if (fromEnv) return fromEnv;
  const found = findOnPath(name) ?? (fs.existsSync(`/usr/sbin/${name}`) ? `/usr/sbin/${name}` : undefined);
  if (found) return found;
  installMissing(name, envVar, pkg);
  const installed = findOnPath(name) ?? `/usr/sbin/${name}`;
  if (!fs.existsSync(installed)) throw new Error(`${name} still missing after apt-get install ${pkg}`);
  return installed;
}

/** As root, `apt-get install -y <pkg>` for a missing binary; otherwise an error saying how. */
function installMissing(name: string, envVar: string, pkg: string): void {
  if (process.getuid?.() !== 0) {
    throw new Error(`${name} not found: install it with \`apt-get install -y ${pkg}\` or set ${envVar}`);
  }
  console.error(`bench: ${name} not found; running \`apt-get install -y ${pkg}\``);
  aptInstall(pkg);
}

/** The cluster cases' redis-server, at the path test/helpers/redis.ts spawns. */
export function ensureRedisServer(): void {
  if (fs.existsSync(REDIS_SERVER_BIN)) return;
  installMissing("redis-server", "REDIS_SERVER_BIN", "redis-server");
  if (!fs.existsSync(REDIS_SERVER_BIN)) throw new Error(`${REDIS_SERVER_BIN} still missing after apt-get install redis-server`);
}

export function aptInstall(pkg: string): void {
  try {
    execFileSync("apt-get", ["install", "-y", pkg], { stdio: ["ignore", 2, 2] });
  } catch {
    execFileSync("apt-get", ["update"], { stdio: ["ignore", 2, 2] });
    execFileSync("apt-get", ["install", "-y", pkg], { stdio: ["ignore", 2, 2] });
  }
}

export function resolveNatsServer(): string {
  return resolveBinary("nats-server", "BENCH_NATS_SERVER", "nats-server");
}

export function resolveMosquitto(): string {
  return resolveBinary("mosquitto", "BENCH_MOSQUITTO", "mosquitto");
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

/** "mosquitto version 2.0.11": the first line of `mosquitto -h` (which exits non-zero). */
export function mosquittoVersion(bin: string): string {
  const r = spawnSync(bin, ["-h"], { encoding: "utf8" });
  const line = `${r.stdout ?? ""}${r.stderr ?? ""}`.split("\n").find((l) => /version/i.test(l));
  return line?.trim() ?? "mosquitto (version unknown)";
}

/** Splits a command line on whitespace (no quoting); a leading `node` means this Node binary. */
export function parseCommand(cmd: string): string[] {
  const argv = cmd.trim().split(/\s+/).filter(Boolean);
  if (argv.length === 0) throw new Error(`empty server command: '${cmd}'`);
  if (argv[0] === "node") argv[0] = process.execPath;
  return argv;
}

const PORT_VARS = ["port", "ws_port", "mqtt_port"] as const;
type PortVar = (typeof PORT_VARS)[number];

function substitute(s: string, vars: Record<string, string>): string {
  return s.replace(/\{(port|ws_port|mqtt_port|host|config|store_dir|tls_cert|tls_key|passwd_file)\}/g, (m, k: string) => vars[k] ?? m);
}

export async function startServer(slot: ServerSlot, workDir: string, cwd: string): Promise<RunningServer> {
  assertNotShuttingDown();
  if (slot.start) return slot.start(workDir, cwd);
  const text = [...slot.argv, slot.configTemplate ?? ""].join("\n");
  const ports: Partial<Record<PortVar, number>> = {};
  const used = PORT_VARS.filter((v) => text.includes(`{${v}}`));
  const free = await freePorts(used.length);
  used.forEach((v, i) => { ports[v] = free[i]; });
  const first = ports.port ?? ports.ws_port ?? ports.mqtt_port;
  if (first === undefined) throw new Error(`${slot.label}: the command and config use no port placeholder`);
  const tag = `${slot.label.replace(/[^\w.-]+/g, "_")}-${first}`;
  const config = path.join(workDir, `${tag}.conf`);
  const vars: Record<string, string> = { host: HOST, config };
  for (const v of PORT_VARS) if (ports[v] !== undefined) vars[v] = String(ports[v]);
  let storeDir: string | undefined;
  if (text.includes("{store_dir}")) {
    storeDir = path.join(workDir, `${tag}.store`);
    fs.mkdirSync(storeDir, { recursive: true });
    vars.store_dir = storeDir;
  }
  const tls = text.includes("{tls_cert}");
  if (tls) Object.assign(vars, selfSignedCert(workDir));
  if (text.includes("{passwd_file}")) vars.passwd_file = mosquittoPasswd(workDir);
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
    if (storeDir) fs.rmSync(storeDir, { recursive: true, force: true });
  };

  try {
    const deadline = Date.now() + 20_000;
    if (ports.port !== undefined) await waitReady("NATS", ports.port, probeInfo, () => exited, deadline);
    if (ports.ws_port !== undefined) await waitReady("WebSocket", ports.ws_port, probeAccept, () => exited, deadline);
    if (ports.mqtt_port !== undefined) await waitReady("MQTT", ports.mqtt_port, tls ? probeAccept : probeMqtt, () => exited, deadline);
  } catch (err) {
    await stop();
    throw new Error(`${slot.label} (${argv.join(" ")}) did not become ready: ${(err as Error).message}\n` + tail(logFile));
  }
  return { label: slot.label, port: ports.port ?? 0, wsPort: ports.ws_port, mqttPort: ports.mqtt_port, pid, logFile, stop };
}

/** mosquitto's password file with the storm's user (mosquitto_passwd hashes it). */
function mosquittoPasswd(workDir: string): string {
  const file = path.join(workDir, "mosquitto.passwd");
  if (!fs.existsSync(file)) {
    execFileSync("mosquitto_passwd", ["-c", "-b", file, STORM_USER.user, STORM_USER.pass], { stdio: ["ignore", "ignore", "pipe"] });
    readableByServers(workDir, file);
  }
  return file;
}

/** A self-signed EC P-256 certificate for 127.0.0.1, made once per work directory with openssl. */
function selfSignedCert(workDir: string): { tls_cert: string; tls_key: string } {
  const files = { tls_cert: path.join(workDir, "tls-cert.pem"), tls_key: path.join(workDir, "tls-key.pem") };
  if (fs.existsSync(files.tls_cert)) return files;
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
    "-keyout", files.tls_key, "-out", files.tls_cert], { stdio: ["ignore", "ignore", "pipe"] });
  readableByServers(workDir, files.tls_key, files.tls_cert);
  return files;
}

/** mosquitto started as root drops to its own user, which must still read these throwaway files. */
function readableByServers(dir: string, ...files: string[]): void {
  fs.chmodSync(dir, 0o755);
  for (const f of files) fs.chmodSync(f, 0o644);
}

export function tail(file: string, lines = 15): string {
  try {
    const text = fs.readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
    return text ? `--- last lines of ${file} ---\n${text}` : `(${file} is empty)`;
  } catch {
    return "";
  }
}

type Probe = (port: number, timeoutMs: number) => Promise<void>;

/** Retries `probe` until it succeeds, the server exits, or the deadline passes. */
async function waitReady(
  what: string,
  port: number,
  probe: Probe,
  hasExited: () => string | undefined,
  deadline: number,
): Promise<void> {
  let lastErr = "";
  for (;;) {
    const exit = hasExited();
    if (exit) throw new Error(`server process exited (${exit})`);
    try {
      await probe(port, Math.max(100, Math.min(2000, deadline - Date.now())));
      return;
    } catch (err) {
      lastErr = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`${what} port ${port} not ready in time (${lastErr})`);
    // connection refused: the listener is not up yet; retry shortly
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** WebSocket port: accepting a TCP connection is enough (the cases check the upgrade). */
function probeAccept(port: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host: HOST });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error("connect timed out"));
    }, timeoutMs);
    sock.on("connect", () => {
      clearTimeout(timer);
      sock.destroy();
      resolve();
    });
    sock.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** MQTT port: an MQTT 3.1.1 CONNECT (clean session) is answered by CONNACK 0. */
function probeMqtt(port: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host: HOST });
    let buf = Buffer.alloc(0);
    let settled = false;
    const done = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        sock.destroy();
        reject(err);
      } else {
        sock.end(Buffer.from([0xe0, 0])); // DISCONNECT, so no will and no error is logged
        resolve();
      }
    };
    const timer = setTimeout(() => done(new Error("timed out waiting for CONNACK")), timeoutMs);
    const id = Buffer.from(`bench-probe-${process.pid}`, "latin1");
    const body = Buffer.concat([Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 2, 0, 30, 0, id.length]), id]);
    sock.on("connect", () => {
      sock.write(Buffer.concat([Buffer.from([0x10, body.length]), body]));
    });
    sock.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 4) return;
      if (buf[0] !== 0x20 || buf[1] !== 2) done(new Error(`expected CONNACK, got ${buf.subarray(0, 8).toString("hex")}`));
      // 5 (not authorized): a server that requires a user is ready too.
      else if (buf[3] !== 0 && buf[3] !== 5) done(new Error(`CONNACK return code ${buf[3]}`));
      else done();
    });
    sock.on("error", (err) => done(err));
    sock.on("close", () => done(new Error("closed before CONNACK")));
  });
}

/** NATS port: accepts a TCP connection and sends a complete INFO line. */
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

/** A process and all its descendants (a server may fork helpers). */
function processTree(pid: number): number[] {
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
  const out: number[] = [];
  const stack = [pid];
  while (stack.length) {
    const p = stack.pop()!;
    out.push(p);
    stack.push(...(children.get(p) ?? []));
  }
  return out;
}

/** Resident memory in KB of a process plus all its descendants. */
export function rssKB(pid: number): number {
  let total = 0;
  for (const p of processTree(pid)) {
    try {
      const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${p}/status`, "utf8"));
      if (m) total += Number(m[1]);
    } catch {
      if (p === pid) throw new Error(`process ${pid} is gone`);
    }
  }
  return total;
}

/**
 * Resolves once the server's processes have used at most one clock tick (10 ms) of CPU over
 * 200 ms, or after `maxMs`: what a step before left running (the closes of a warm-up's
 * connections) is not charged to the step after it.
 */
export async function untilQuiet(server: RunningServer, maxMs = 3_000): Promise<void> {
  const pids = server.processes?.map((p) => p.pid) ?? [server.pid];
  const used = (): number => pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
  const end = Date.now() + maxMs;
  let before = used();
  while (Date.now() < end) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    const now = used();
    if (now - before <= 0.01) return;
    before = now;
  }
}

/** CPU seconds (user + system) used so far by a process plus all its descendants: a cost that
 *  survives a loaded machine, unlike wall time. */
export function cpuSeconds(pid: number): number {
  const tick = 100; // USER_HZ on Linux
  let total = 0;
  for (const p of processTree(pid)) {
    try {
      const stat = fs.readFileSync(`/proc/${p}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // f[0] is field 3 (state)
      total += (Number(f[11]) + Number(f[12])) / tick; // utime, stime: fields 14 and 15
    } catch {
      if (p === pid) throw new Error(`process ${pid} is gone`);
    }
  }
  return total;
}
