// Building and driving the native load generator (loadgen.c).
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { aptInstall, assertNotShuttingDown, trackChild } from "./servers.js";

export const LOADGEN_DESCRIPTION =
  "test/bench/loadgen.c: native C (gcc -O2, pthreads, zlib, OpenSSL), NATS text protocol over loopback TCP or " +
  "WebSocket (masked binary frames, optional permessage-deflate) and MQTT 3.1.1 or 5 over TCP, TLS for the idle and connect cases, " +
  "one connection per publisher/subscriber; the publisher writes ~64 KB batches (one WebSocket frame " +
  "each) and stays at most 20000 NATS / 2000 MQTT QoS 0 / 1000 MQTT QoS 1 messages ahead of delivery";

/** A header loadgen includes, from a Debian package (installed with apt when missing and we are root). */
function ensureHeader(header: string, pkg: string, lib: string): void {
  const found = ["/usr/include", "/usr/local/include"].some((d) => fs.existsSync(path.join(d, header)));
  if (found) return;
  if (process.getuid?.() !== 0) {
    throw new Error(`${header} not found: install it with \`apt-get install -y ${pkg}\` (loadgen links ${lib})`);
  }
  console.error(`bench: ${header} not found; running \`apt-get install -y ${pkg}\``);
  aptInstall(pkg);
}

/** Compiles loadgen.c into `outDir` unless an up-to-date binary is already there. */
export function ensureLoadgen(root: string, outDir: string): string {
  const src = path.join(root, "test/bench/loadgen.c");
  const bin = path.join(outDir, "loadgen");
  const srcTime = fs.statSync(src).mtimeMs;
  if (fs.existsSync(bin) && fs.statSync(bin).mtimeMs >= srcTime) return bin;
  ensureHeader("zlib.h", "zlib1g-dev", "-lz");
  ensureHeader("openssl/ssl.h", "libssl-dev", "-lssl");
  fs.mkdirSync(outDir, { recursive: true });
  const tmp = `${bin}.${process.pid}.tmp`;
  console.error(`bench: building ${path.relative(root, bin)} from ${path.relative(root, src)}`);
  execFileSync("gcc", ["-O2", "-Wall", "-o", tmp, src, "-lpthread", "-lz", "-lssl", "-lcrypto"], { stdio: "inherit" });
  fs.renameSync(tmp, bin); // atomic: a concurrent run never sees a half-written binary
  return bin;
}

export type LoadgenResult = Record<string, number | boolean | string | number[]>;

function lastJson(stdout: string, what: string): LoadgenResult {
  const line = stdout.trim().split("\n").filter((l) => l.startsWith("{")).pop();
  if (!line) throw new Error(`${what}: no result line in output: ${stdout.slice(0, 300)}`);
  return JSON.parse(line) as LoadgenResult;
}

type Exit = [code: number | null, signal: NodeJS.Signals | null];

/** Resolves when the child has exited and its output is drained; a failed spawn counts as exit 127. */
function closed(child: ChildProcess): Promise<Exit> {
  return new Promise((resolve) => {
    child.once("close", (code: number | null, signal: NodeJS.Signals | null) => resolve([code, signal]));
    child.once("error", (err) => {
      if (child.pid === undefined) resolve([127, null]);
      else console.error(`bench: loadgen: ${err.message}`);
    });
  });
}

/** Runs one loadgen invocation to completion and returns its JSON result. */
export async function runLoadgen(bin: string, args: string[], timeoutMs = 120_000): Promise<LoadgenResult> {
  assertNotShuttingDown();
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
  trackChild(child);
  let out = "";
  let err = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const [code, signal] = await closed(child);
  clearTimeout(timer);
  const what = `loadgen ${args.join(" ")}`;
  if (code !== 0) throw new Error(`${what} failed (${signal ?? `exit ${code}`}): ${err.trim() || out.trim()}`);
  return lastJson(out, what);
}

/**
 * idle / mqttidle mode (`args` starts with the mode): starts loadgen, waits for "READY", runs
 * `whileHeld` (which measures the server), then closes loadgen's stdin so it drops the
 * connections and exits. Returns what `whileHeld` returned and loadgen's result line.
 */
export async function holdIdle<T>(bin: string, args: string[], whileHeld: () => Promise<T> | T): Promise<{ held: T; result: LoadgenResult }> {
  assertNotShuttingDown();
  const child = spawn(bin, args, { stdio: ["pipe", "pipe", "pipe"] });
  trackChild(child);
  let err = "";
  child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
  child.stdin.on("error", () => {}); // EPIPE if it already died: reported via its exit status
  const done = closed(child);
  const lines = readline.createInterface({ input: child.stdout });
  const out: string[] = [];
  const ready = new Promise<void>((resolve, reject) => {
    lines.on("line", (l) => {
      out.push(l);
      if (l.startsWith("READY")) resolve();
    });
    void done.then(([code, sig]) =>
      reject(new Error(`loadgen ${args.join(" ")} exited before READY (${sig ?? `exit ${code}`}): ${err.trim()}`)),
    );
  });
  // Generous: whileHeld may hold further bursts (thousands of TLS handshakes on a loaded machine).
  const timer = setTimeout(() => child.kill("SIGKILL"), 600_000);
  let held: T;
  try {
    await ready;
    held = await whileHeld();
  } finally {
    child.stdin.end();
    const [code, sig] = await done;
    clearTimeout(timer);
    if (code !== 0) throw new Error(`loadgen ${args[0]} failed (${sig ?? `exit ${code}`}): ${err.trim()}`);
  }
  return { held, result: lastJson(out.join("\n"), `loadgen ${args.join(" ")}`) };
}
