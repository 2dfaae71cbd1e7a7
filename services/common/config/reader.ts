// Typed reads of config tree values, shared by every block reader (blocks/*.ts): each error
// names the file and line of the key, in nats-server's wording where it has one. Also where
// option fields came from (sourceOf), for validateOptions' messages.

import { accessSync, constants, statSync } from "node:fs";
import { isValidSubject } from "../subject.js";
import { parseGoDuration } from "./duration.js";
import { ConfigError, type Position } from "./errors.js";
import { isConfigMap, isUsedVariable, positionOf, type ConfigMap, type ConfigValue } from "./parser.js";

/** Positions of option fields, for validateOptions' messages: sourceOf(options, "maxPayload"),
 *  sourceOf(user, "entry"). Kept aside so Options stays a plain model. */
const optionSources = new WeakMap<object, Map<string, Position>>();

export function sourceOf(obj: object, field: string): Position | undefined {
  return optionSources.get(obj)?.get(field);
}

export function noteSource(obj: object, field: string, pos: Position): void {
  let m = optionSources.get(obj);
  if (!m) optionSources.set(obj, (m = new Map()));
  m.set(field, pos);
}

/** Go's text for the errno of a failed open, so messages read like nats-server's. */
export const ERRNO_TEXT: Record<string, string> = {
  ENOENT: "no such file or directory",
  EACCES: "permission denied",
  ENOTDIR: "not a directory",
  ELOOP: "too many levels of symbolic links",
};

const INT32_MAX = 2 ** 31 - 1;

export class Reader {
  readonly warnings: string[] = [];

  /** `env` is the environment the config was loaded with (for `expandEnv`). */
  constructor(private readonly file: string, private readonly env: NodeJS.ProcessEnv = {}) {}

  /** A string with `$NAME` / `${NAME}` taken from the environment: for meshbroker's addresses
   *  such as `advertise: "$POD_IP:7100"`, where the config format's own variables (bare values
   *  only) cannot build a host:port. An unset variable is an error. */
  expandEnv(m: ConfigMap, key: string): string {
    return this.str(m, key).replace(/\$(?:\{(\w+)\}|(\w+))/g, (_, braced: string | undefined, bare: string | undefined) => {
      const name = (braced ?? bare)!;
      const v = this.env[name];
      return v !== undefined && v !== "" ? v : this.fail(m, key, `environment variable ${name} is not set (in ${JSON.stringify(m[key])})`);
    });
  }

  pos(c: ConfigMap | ConfigValue[], key: string | number): Position {
    return positionOf(c, key) ?? { file: this.file, line: 0 };
  }

  fail(c: ConfigMap | ConfigValue[], key: string | number, reason: string): never {
    throw ConfigError.at(this.pos(c, key), reason);
  }

  warn(c: ConfigMap, key: string, reason: string): void {
    const p = this.pos(c, key);
    this.warnings.push(`${p.file}:${p.line}: ${reason}`);
  }

  /** A key nats-server does not know: an error, unless it only defines a `$variable`. */
  unknown(m: ConfigMap, key: string, reason = `unknown field "${key}"`): void {
    if (!isUsedVariable(m, key)) this.fail(m, key, reason);
  }

  checkKeys(m: ConfigMap, allowed: Set<string>, block: string): void {
    for (const k of Object.keys(m)) {
      if (!allowed.has(k.toLowerCase())) this.unknown(m, k, `unknown field "${k}" in ${block}`);
    }
  }

  typeError(c: ConfigMap | ConfigValue[], key: string | number, expected: string): never {
    const what = typeof key === "number" ? "array element" : `"${key}"`;
    return this.fail(c, key, `${what} must be ${expected}, got ${describe((c as Record<string | number, ConfigValue>)[key])}`);
  }

  str(m: ConfigMap, key: string): string {
    const v = m[key];
    return typeof v === "string" ? v : this.typeError(m, key, "a string");
  }

  bool(m: ConfigMap, key: string): boolean {
    const v = m[key];
    return typeof v === "boolean" ? v : this.typeError(m, key, "a boolean (true/false, yes/no, on/off)");
  }

  int(m: ConfigMap, key: string): number {
    const v = m[key];
    return typeof v === "number" && Number.isInteger(v) ? v : this.typeError(m, key, "an integer");
  }

  /** A non-negative integer, sizes like 64MB included. */
  size(m: ConfigMap, key: string): number {
    const v = this.int(m, key);
    if (v < 0) this.fail(m, key, `"${key}" can not be negative`);
    return v;
  }

  /** nats-server keeps these in an int32. */
  int32(m: ConfigMap, key: string): number {
    const v = this.size(m, key);
    if (v > INT32_MAX) this.fail(m, key, `${key} value is too big`);
    return v;
  }

  port(m: ConfigMap, key: string): number {
    const v = this.int(m, key);
    if (v < -1 || v > 65535) this.fail(m, key, `invalid port ${v} (use 0 for the default, -1 for a random port)`);
    return v;
  }

  /** An integer port, or "host:port" / ":port" (Go's net.SplitHostPort). */
  hostPort(m: ConfigMap, key: string): { host: string; port: number } {
    const v = m[key];
    if (typeof v === "number" && Number.isInteger(v)) return { host: "", port: this.port(m, key) };
    if (typeof v !== "string") return this.typeError(m, key, 'a port or "host:port"');
    const hp = splitHostPort(v);
    if (!hp) this.fail(m, key, `could not parse address string ${JSON.stringify(v)}`);
    if (!/^[+-]?\d+$/.test(hp.port)) this.fail(m, key, `could not parse port ${JSON.stringify(hp.port)}`);
    const port = Number(hp.port);
    if (port < -1 || port > 65535) this.fail(m, key, `invalid port ${port}`);
    return { host: hp.host, port };
  }

  /** A Go duration string ("2m", "1m30s", "500ms") or, for compatibility, an integer number of
   *  seconds, which nats-server accepts with a warning. Milliseconds. */
  duration(m: ConfigMap, key: string, field: string): number {
    const v = m[key];
    if (typeof v === "number" && Number.isInteger(v)) {
      this.warn(m, key, `invalid use of field "${field}": ${field} should be converted to a duration`);
      if (v < 0) this.fail(m, key, `${field} can not be negative`);
      return v * 1000;
    }
    const ms = this.durationString(m, key, field);
    if (ms < 0) this.fail(m, key, `${field} can not be negative`);
    return ms;
  }

  /** A Go duration string only. Milliseconds. */
  durationString(m: ConfigMap, key: string, field: string): number {
    const v = m[key];
    if (typeof v !== "string") return this.typeError(m, key, 'a duration string such as "2s" or "1m30s"');
    try {
      return parseGoDuration(v);
    } catch (err) {
      return this.fail(m, key, `error parsing ${field}: ${(err as Error).message}`);
    }
  }

  /** nats-server's parseDuration without a sign check: a Go duration string, or (with its
   *  warning) an integer number of seconds. Milliseconds. */
  signedDuration(m: ConfigMap, key: string, field: string): number {
    const v = m[key];
    if (typeof v === "number" && Number.isInteger(v)) {
      this.warn(m, key, `invalid use of field "${field}": ${field} should be converted to a duration`);
      return v * 1000;
    }
    return this.durationString(m, key, field);
  }

  /** A number of seconds (integer or float). Milliseconds. */
  seconds(m: ConfigMap, key: string): number {
    const v = m[key];
    if (typeof v !== "number" || v < 0) return this.typeError(m, key, "a number of seconds");
    return v * 1000;
  }

  /** A number of seconds, or a Go duration string (as nats-server's tls timeout). Milliseconds. */
  secondsOrDuration(m: ConfigMap, key: string, field: string): number {
    if (typeof m[key] === "number") return this.seconds(m, key);
    const ms = this.durationString(m, key, field);
    if (ms < 0) this.fail(m, key, `${field} can not be negative`);
    return ms;
  }

  /** A readable regular file, else an error with Go's `open PATH: reason` wording. */
  readableFile(m: ConfigMap, key: string, prefix = ""): string {
    const path = this.str(m, key);
    try {
      if (statSync(path).isDirectory()) this.fail(m, key, `${prefix}read ${path}: is a directory`);
      accessSync(path, constants.R_OK);
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      const code = (err as NodeJS.ErrnoException).code ?? "";
      this.fail(m, key, `${prefix}open ${path}: ${ERRNO_TEXT[code] ?? code}`);
    }
    return path;
  }

  map(m: ConfigMap, key: string): ConfigMap {
    const v = m[key];
    return isConfigMap(v) ? v : this.typeError(m, key, "a map");
  }

  /** A string or an array of strings. */
  strings(m: ConfigMap, key: string, what: string): string[] {
    const v = m[key];
    if (typeof v === "string") return [v];
    if (!Array.isArray(v)) return this.typeError(m, key, `a string or an array of strings (${what})`);
    return v.map((s, i) => (typeof s === "string" ? s : this.typeError(v, i, `a string (${what})`)));
  }

  subject(m: ConfigMap, key: string): string {
    const s = this.str(m, key);
    if (!isValidSubject(s)) this.fail(m, key, `subject ${JSON.stringify(s)} is not a valid subject`);
    return s;
  }
}

export function describe(v: ConfigValue | undefined): string {
  if (typeof v === "string") return `string ${JSON.stringify(v)}`;
  if (typeof v === "number") return Number.isInteger(v) ? `integer ${v}` : `float ${v}`;
  if (typeof v === "boolean") return `boolean ${v}`;
  if (v instanceof Date) return `datetime ${v.toISOString()}`;
  if (Array.isArray(v)) return "an array";
  return v === undefined ? "nothing" : "a map";
}

/** Go's %T of a config value, for messages nats-server words that way. */
export function goTypeOf(v: ConfigValue | undefined): string {
  if (typeof v === "string") return "string";
  if (typeof v === "number") return Number.isInteger(v) ? "int64" : "float64";
  if (typeof v === "boolean") return "bool";
  if (v instanceof Date) return "time.Time";
  if (Array.isArray(v)) return "[]interface {}";
  return v === undefined ? "<nil>" : "map[string]interface {}";
}

/** Go's net.SplitHostPort: "host:port", "[::1]:port", ":port". */
export function splitHostPort(s: string): { host: string; port: string } | undefined {
  if (s.startsWith("[")) {
    const end = s.indexOf("]");
    if (end < 0 || s[end + 1] !== ":") return undefined;
    return { host: s.slice(1, end), port: s.slice(end + 2) };
  }
  const colon = s.lastIndexOf(":");
  if (colon < 0 || s.slice(0, colon).includes(":")) return undefined;
  return { host: s.slice(0, colon), port: s.slice(colon + 1) };
}
