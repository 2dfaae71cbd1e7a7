// Shared by the config loader's tests, including the comparisons with nats-server.
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "vitest";
import { ConfigError } from "../../services/common/config/index.js";
import { NATS_SERVER_BIN } from "./nats-server.js";

/** The ConfigError `fn` throws; fails the test when it throws something else or nothing. */
export function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

// ---- the same config through the real nats-server 2.9 ----

/** What a server says of a config: "valid", or its error (without `file:line:col: `) and line. */
export interface Verdict {
  reason: string;
  line?: number;
}

let configs = 0;

/**
 * nats-server's verdict on `text`, written to a file in `dir`: `-t` for what it checks while
 * parsing, or a start (stopped once ready) for what it checks only when it starts.
 */
export async function natsServerVerdict(dir: string, text: string, start: boolean): Promise<Verdict> {
  const file = join(dir, `ns-${++configs}.conf`);
  writeFileSync(file, text + "\n");
  const args = start ? ["-c", file, "-p", "-1", "-a", "127.0.0.1"] : ["-t", "-c", file];
  const out = await run(NATS_SERVER_BIN, args, /Server is ready/);
  if (/configuration file .* is valid/.test(out) || /Server is ready/.test(out)) return { reason: "valid" };
  const m = /nats-server: (?:\S+:(\d+):\d+: )?(.*)/.exec(out);
  return m ? { reason: m[2].trim(), line: m[1] === undefined ? undefined : Number(m[1]) } : { reason: `no verdict (${out.slice(0, 300)})` };
}

/** meshbroker's verdict on the same text, through the test file's loader. */
export function meshbrokerVerdict(load: (text: string) => unknown, text: string): Verdict {
  try {
    load(text);
    return { reason: "valid" };
  } catch (err) {
    return { reason: (err as ConfigError).reason, line: (err as ConfigError).line };
  }
}

/** Same reason as nats-server (and line, when it names one); or, where meshbroker differs on
 *  purpose, `differs`, which nats-server must not say. */
export function expectSameVerdict(theirs: Verdict, mine: Verdict, differs?: string): void {
  expect(theirs.reason).not.toMatch(/^no verdict/);
  if (differs === undefined) {
    expect(mine.reason).toBe(theirs.reason);
    if (theirs.line !== undefined) expect(mine.line).toBe(theirs.line);
  } else {
    expect(mine.reason).toBe(differs);
    expect(theirs.reason).not.toBe(differs);
  }
}

/** A self-signed EC certificate and key in `dir`, for configs nats-server must really load. */
export async function selfSignedPair(dir: string): Promise<{ cert: string; key: string }> {
  const cert = join(dir, "real-cert.pem"), key = join(dir, "real-key.pem");
  await run("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost"]);
  return { cert, key };
}

/** Runs a command; with `readyWhen`, stops it once its output matches. Resolves with stdout + stderr. */
function run(cmd: string, args: string[], readyWhen?: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      if (readyWhen?.test(out)) child.kill("SIGTERM");
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("error", reject);
    child.on("close", () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}
