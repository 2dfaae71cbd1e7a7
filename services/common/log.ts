// Leveled logging in nats-server's text shape ("[pid] 2026/01/02 15:04:05.000000 [INF] msg")
// or one JSON object per line. Hot paths check `log.traceOn` before formatting anything.
import { appendFileSync } from "node:fs";
import type { LogOptions } from "./config/options.js";

type Level = "INF" | "WRN" | "ERR" | "FTL" | "DBG" | "TRC";
const JSON_LEVEL: Record<Level, string> = {
  INF: "info", WRN: "warn", ERR: "error", FTL: "fatal", DBG: "debug", TRC: "trace",
};

export type LogContext = Record<string, string | number | boolean | undefined>;

export class Logger {
  debugOn: boolean;
  traceOn: boolean;
  private options: LogOptions;

  constructor(options: LogOptions, private readonly write: (line: string) => void = defaultWriter(options)) {
    this.options = options;
    this.debugOn = options.debug || options.trace;
    this.traceOn = options.trace;
  }

  /** Applies new levels/format after a config reload. */
  reconfigure(options: LogOptions): void {
    this.options = options;
    this.debugOn = options.debug || options.trace;
    this.traceOn = options.trace;
  }

  notice(msg: string, ctx?: LogContext): void { this.emit("INF", msg, ctx); }
  warn(msg: string, ctx?: LogContext): void { this.emit("WRN", msg, ctx); }
  error(msg: string, ctx?: LogContext): void { this.emit("ERR", msg, ctx); }
  fatal(msg: string, ctx?: LogContext): void { this.emit("FTL", msg, ctx); }
  debug(msg: string, ctx?: LogContext): void { if (this.debugOn) this.emit("DBG", msg, ctx); }
  trace(msg: string, ctx?: LogContext): void { if (this.traceOn) this.emit("TRC", msg, ctx); }

  private emit(level: Level, msg: string, ctx?: LogContext): void {
    if (this.options.format === "json") {
      const rec: Record<string, unknown> = { time: new Date().toISOString(), level: JSON_LEVEL[level], msg };
      if (ctx) for (const k in ctx) if (ctx[k] !== undefined) rec[k] = ctx[k];
      this.write(JSON.stringify(rec));
      return;
    }
    let prefix = `[${process.pid}] `;
    if (this.options.logtime) prefix += `${textTime(new Date())} `;
    let where = "";
    if (ctx) {
      // nats-server puts the connection first: "127.0.0.1:5555 - cid:4 - msg"
      if (ctx.remote !== undefined) where += `${ctx.remote} - `;
      if (ctx.cid !== undefined) where += `cid:${ctx.cid} - `;
      for (const k in ctx) {
        if (k === "remote" || k === "cid" || ctx[k] === undefined) continue;
        msg += ` ${k}=${ctx[k]}`;
      }
    }
    this.write(`${prefix}[${level}] ${where}${msg}`);
  }
}

function defaultWriter(options: LogOptions): (line: string) => void {
  const file = options.file;
  const batch = file ? batchFor(`file:${file}`, (text) => appendFileSync(file, text))
    : batchFor("stderr", (text) => process.stderr.write(text));
  return (line) => batch.push(line);
}

/**
 * The lines logged in one event-loop turn go out in one write, at the end of the turn (and at
 * exit). A flood of bad clients logs a line for each, and one synchronous write per line was
 * 6.6% of the broker's CPU in the flood test. What a crash of the process itself (not of a
 * connection) loses is at most that turn's lines.
 */
class LineBatch {
  private pending = "";
  constructor(private readonly out: (text: string) => void) {}

  push(line: string): void {
    if (this.pending === "") setImmediate(this.flush).unref();
    this.pending += line + "\n";
  }

  readonly flush = (): void => {
    const text = this.pending;
    if (text === "") return;
    this.pending = "";
    this.out(text);
  };
}

/** One batch per destination, shared by every Logger writing there (tests make many). */
const batches = new Map<string, LineBatch>();

function batchFor(key: string, out: (text: string) => void): LineBatch {
  let b = batches.get(key);
  if (!b) {
    if (batches.size === 0) process.once("exit", () => { for (const x of batches.values()) x.flush(); });
    b = new LineBatch(out);
    batches.set(key, b);
  }
  return b;
}

function textTime(d: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}/${p(d.getMonth() + 1)}/${p(d.getDate())} ` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds() * 1000, 6)}`;
}

/** A logger that drops everything (tests that do not care about output). */
export const silentLogger = (): Logger =>
  new Logger({ debug: false, trace: false, logtime: false, format: "text" }, () => {});
