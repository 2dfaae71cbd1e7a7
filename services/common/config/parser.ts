// Parser for the NATS configuration format: tokens → a plain tree of maps, arrays and scalars.
// Semantics follow nats-server 2.9's conf/parse.go: sizes multiply (1k = 1000, 1KB = 1024),
// `include` merges another file's keys into the current map, and `$name` resolves to a key
// defined earlier in the same or an enclosing map, else to the environment (whose value is
// parsed as a config value, so FOO=4222 gives a number).
//
// Every map and array remembers where each key / element came from (positionOf), so later
// stages can report `file:line: message`.

import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { ConfigError, type Position } from "./errors.js";
import { lex, type Token } from "./lexer.js";

export type ConfigValue = string | number | boolean | Date | ConfigValue[] | ConfigMap;
/** A config map. Maps have a null prototype, so any key ("__proto__" too) is plain data. */
export interface ConfigMap {
  [key: string]: ConfigValue;
}
export type { Position };

interface Source extends Position {
  /** The key was read through `$key`: it defines a variable, so it is no unknown field. */
  usedAsVariable?: boolean;
}

const sources = new WeakMap<object, Map<string | number, Source>>();

/** Where `key` of a parsed map (or index of a parsed array) was written. */
export function positionOf(container: ConfigMap | ConfigValue[], key: string | number): Position | undefined {
  const s = sources.get(container)?.get(key);
  return s && { file: s.file, line: s.line };
}

/** True when the map key was referenced as `$key` somewhere (nats-server then does not report
 *  it as an unknown field). */
export function isUsedVariable(map: ConfigMap, key: string): boolean {
  return sources.get(map)?.get(key)?.usedAsVariable === true;
}

export function isConfigMap(v: unknown): v is ConfigMap {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** Parses config text. `file` names the text in errors and anchors relative includes. */
export function parseConfigText(text: string, file: string, env: NodeJS.ProcessEnv = {}): ConfigMap {
  return new Parser(text, file, env, new Set(), 0).parse();
}

/** Limits include nesting, which also stops include cycles. */
const MAX_INCLUDE_DEPTH = 16;

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const SIZE_MULTIPLIERS: Record<string, bigint> = { "": 1n };
for (const [i, p] of ["k", "m", "g", "t", "p", "e"].entries()) {
  SIZE_MULTIPLIERS[p] = 1000n ** BigInt(i + 1);
  for (const s of ["b", "i", "ib"]) SIZE_MULTIPLIERS[p + s] = 1024n ** BigInt(i + 1);
}

class Parser {
  private readonly tokens: Token[];
  private i = 0;
  /** Maps being built, outermost first: the scopes `$variables` resolve in. */
  private readonly scopes: ConfigMap[] = [];

  constructor(
    text: string,
    private readonly file: string,
    private readonly env: NodeJS.ProcessEnv,
    /** Environment variables being expanded, to stop FOO=$FOO loops. */
    private readonly envChain: Set<string>,
    private readonly depth: number,
  ) {
    this.tokens = lex(text, file);
  }

  parse(): ConfigMap {
    const root = newMap();
    this.members(root, "eof");
    return root;
  }

  private fail(line: number, reason: string): never {
    throw new ConfigError(this.file, line, reason);
  }

  /** Reads `key value` pairs and includes into `map` until the `end` token. */
  private members(map: ConfigMap, end: "eof" | "mapEnd"): void {
    this.scopes.push(map);
    for (;;) {
      const t = this.tokens[this.i++];
      if (t.kind === end) break;
      if (t.kind === "include") {
        this.include(map, t);
        continue;
      }
      if (t.kind !== "key") this.fail(t.line, `unexpected ${t.kind} token`); // lexer guarantees keys here
      if (this.tokens[this.i].kind === "eof") break; // trailing key without a value (see lexer)
      const value = this.value();
      setEntry(map, t.text, value, { file: this.file, line: t.line });
    }
    this.scopes.pop();
  }

  private value(): ConfigValue {
    const t = this.tokens[this.i++];
    switch (t.kind) {
      case "string":
        return t.text;
      case "bool":
        return ["true", "yes", "on"].includes(t.text.toLowerCase());
      case "integer":
        return this.integer(t);
      case "float": {
        const n = Number(t.text);
        if (!Number.isFinite(n)) this.fail(t.line, `float '${t.text}' is out of range`);
        return n;
      }
      case "datetime": {
        const d = new Date(t.text);
        // Date silently rolls 2021-02-30 over to March; Go's time.Parse rejects it.
        if (Number.isNaN(d.getTime()) || d.toISOString().slice(0, 19) !== t.text.slice(0, 19)) {
          this.fail(t.line, `invalid datetime '${t.text}'`);
        }
        return d;
      }
      case "variable":
        return this.variable(t);
      case "arrayStart": {
        const arr: ConfigValue[] = [];
        while (this.tokens[this.i].kind !== "arrayEnd") {
          const line = this.tokens[this.i].line;
          setEntry(arr, arr.length, this.value(), { file: this.file, line });
        }
        this.i++;
        return arr;
      }
      case "mapStart": {
        const map = newMap();
        this.members(map, "mapEnd");
        return map;
      }
      default:
        return this.fail(t.line, `unexpected ${t.kind} token`);
    }
  }

  /** "64KB" → 65536, "1k" → 1000, as nats-server multiplies them. */
  private integer(t: Token): number {
    const m = /^(-?\d+)(.*)$/.exec(t.text)!;
    const n = BigInt(m[1]);
    const mult = SIZE_MULTIPLIERS[m[2].toLowerCase()];
    // nats-server silently drops a value with an unknown suffix such as "1kbb"; we refuse it.
    if (mult === undefined) this.fail(t.line, `invalid size suffix in '${t.text}' (use k, KB, Ki, KiB, M, MB, ...)`);
    const v = n * mult;
    if (n < INT64_MIN || n > INT64_MAX || v < INT64_MIN || v > INT64_MAX) {
      this.fail(t.line, `integer '${t.text}' is out of range`);
    }
    return Number(v);
  }

  private variable(t: Token): ConfigValue {
    const name = t.text;
    // A bcrypt hash ($2a$...) written bare is a string, not a variable.
    if (name.startsWith("2a$")) return "$" + name;
    for (let s = this.scopes.length - 1; s >= 0; s--) {
      const scope = this.scopes[s];
      if (Object.hasOwn(scope, name)) {
        const src = sources.get(scope)?.get(name);
        if (src) src.usedAsVariable = true;
        return scope[name];
      }
    }
    const raw = this.env[name];
    if (raw !== undefined) {
      if (this.envChain.has(name)) this.fail(t.line, `variable reference for '${name}' is circular`);
      try {
        const chain = new Set(this.envChain).add(name);
        const parsed = new Parser(`pk=${raw}`, `environment variable ${name}`, this.env, chain, this.depth).parse();
        if (Object.hasOwn(parsed, "pk")) return parsed.pk;
      } catch (err) {
        const reason = err instanceof ConfigError ? err.reason : String(err);
        throw new ConfigError(this.file, t.line, `variable reference for '${name}' could not be parsed: ${reason}`, {
          cause: err,
        });
      }
    }
    return this.fail(t.line, `variable reference for '${name}' can not be found`);
  }

  /** Merges the included file's top-level keys into `map`, keeping their own positions. */
  private include(map: ConfigMap, t: Token): void {
    // Like Go's filepath.Join, even an absolute name is taken relative to this file's directory.
    const path = join(dirname(this.file), t.text);
    if (this.depth >= MAX_INCLUDE_DEPTH) this.fail(t.line, `includes nested too deeply (a cycle?) at '${t.text}'`);
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      return this.fail(t.line, `error opening include file '${t.text}' (${path}): ${code}`);
    }
    const included = new Parser(text, path, this.env, this.envChain, this.depth + 1).parse();
    const src = sources.get(included);
    for (const key of Object.keys(included)) {
      setEntry(map, key, included[key], src?.get(key) ?? { file: path, line: 0 });
    }
  }
}

function newMap(): ConfigMap {
  return Object.create(null) as ConfigMap;
}

function setEntry(container: ConfigMap | ConfigValue[], key: string | number, value: ConfigValue, src: Source): void {
  (container as Record<string | number, ConfigValue>)[key] = value;
  let m = sources.get(container);
  if (!m) sources.set(container, (m = new Map()));
  m.set(key, { ...src });
}
