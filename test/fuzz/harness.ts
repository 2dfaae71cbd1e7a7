// The one harness every fuzzer shares. A surface generates inputs from a seeded Rng; the
// harness plays them and decides what counts as a crash:
// - network surfaces: against a real `bin/meshbroker` process on free ports, each input a few
//   steps (fresh or reused connection, its bytes cut into 1–4 writes, then kept, closed or reset);
//   every `probeEvery` inputs a real client (nats.js, nats.ws, MQTT.js) must make a round trip
//   within PROBE_MS, and the process must still run. RSS is read from /proc at warm-up and at the
//   end, once every fuzz connection is gone.
// - unit surfaces: in-process, each input either succeeds or fails the way the API promises.
// A crash saves the inputs since the last good probe to test/fuzz/corpus/<surface>/, and
// `replayFile` plays such a file again.
import { once, type EventEmitter } from "node:events";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import mqtt from "mqtt";
import { connect as natsConnect, credsAuthenticator, nkeyAuthenticator, type ConnectionOptions } from "nats";
import { connect as wsConnect } from "nats.ws";
import { clientOptions } from "../helpers/mqtt.js";
import { REPO_ROOT, spawnBroker, type BrokerProcess, type OutputLine } from "../helpers/process.js";
import { withTimeout } from "../helpers/wait.js";
import { wsFactory } from "../helpers/ws-raw.js";
import { Rng } from "./rng.js";

export const CORPUS_DIR = path.join(REPO_ROOT, "test/fuzz/corpus");
/** A probe's round trip (connect, subscribe, publish, receive) must finish within this. */
export const PROBE_MS = 1_000;

export type PortKind = "nats" | "ws" | "mqtt";

/** One connection's share of an input. */
export interface Step {
  to: PortKind;
  /** A new connection, or the latest still-open one to the same port. */
  fresh: boolean;
  /** Each chunk is one socket write. */
  chunks: Buffer[];
  /** What happens to the connection afterwards. */
  end: "keep" | "close" | "reset";
}
export type NetInput = Step[];

/** How a NATS probe authenticates (plain data, so a crash file can keep it). */
export interface ProbeAuth {
  user?: string;
  pass?: string;
  token?: string;
  /** A .creds file's text (user JWT + seed). */
  creds?: string;
  /** An NKEY user's seed. */
  nkeySeed?: string;
}

/** How each transport is probed; a transport without an entry is not probed. */
export interface ProbeSpec {
  nats?: ProbeAuth;
  ws?: ProbeAuth;
  mqtt?: { username?: string; password?: string };
}

/** One broker configuration a network surface runs against. */
export interface Variant {
  name: string;
  /** Config text without the main listener and monitoring (the harness adds them on free ports);
   *  `websocket {}` and `mqtt {}` blocks should use `port: -1`. */
  config: string;
  /** Extra files (name → contents) written beside the config, e.g. a JWKS. */
  files?: Record<string, string>;
  probe: ProbeSpec;
}

export interface NetSurface {
  kind: "net";
  name: string;
  /** The configurations, with any identities they need; `dir` is the run's temp dir. */
  variants(rng: Rng, dir: string): Promise<Variant[]>;
  input(rng: Rng, variant: Variant): NetInput;
}

export interface UnitSurface<T = unknown> {
  kind: "unit";
  name: string;
  /** One input, as JSON-able data (what a crash file stores). */
  input(rng: Rng, dir: string): T;
  /** Runs one input; throws only when the code under test broke its contract. */
  check(input: T, dir: string): void;
}

export type Surface = NetSurface | UnitSurface;

/** Inputs every variant of a surface plays, even past its time share. */
const MIN_INPUTS_PER_VARIANT = 50;

export interface RunOptions {
  seed: number;
  /** Stop after this many inputs per surface (all variants together)… */
  inputs: number;
  /** …or after this many seconds, whichever comes first. */
  seconds: number;
  /** Probe and check the process every this many inputs. */
  probeEvery: number;
  /** Where crash files go (default CORPUS_DIR). */
  corpusDir?: string;
  /** Wait this long once every connection is gone before reading the end RSS, so the broker's
   *  reclaim after a burst (services/common/memory.ts) has run; 0 reads it at once. */
  memorySettleMs?: number;
  log?: (line: string) => void;
}

export interface VariantStats {
  surface: string;
  variant: string;
  inputs: number;
  seconds: number;
  probes: number;
  probeP99Ms: number;
  /** KB, after the first probe interval (connections closed); 0 for unit surfaces. */
  rssWarmKb: number;
  /** KB, at the end once every fuzz connection is gone. */
  rssEndKb: number;
  /** Connections the broker still counted at the end (should be 0). */
  lingering: number;
  /** Crash files written. */
  crashes: string[];
}

// ---------------------------------------------------------------------------------------------
// The broker under test

const LISTEN = {
  nats: /listening for NATS clients on \S+:(\d+)$/,
  http: /listening for monitoring on \S+:(\d+)$/,
  ws: /listening for websocket clients on wss?:\/\/\S+:(\d+)$/,
  mqtt: /listening for MQTT clients on tcp:\/\/\S+:(\d+)$/,
};
const POOL_MAX = 16;
const WRITE_MS = 2_000;

export class Target {
  private readonly pools: Record<PortKind, net.Socket[]> = { nats: [], ws: [], mqtt: [] };
  private constructor(
    readonly proc: BrokerProcess,
    readonly ports: { nats: number; http: number; ws?: number; mqtt?: number },
    readonly configText: string,
  ) {}

  static async start(variant: Variant, dir: string): Promise<Target> {
    for (const [name, text] of Object.entries(variant.files ?? {})) writeFileSync(path.join(dir, name), text);
    const configText = `host: 127.0.0.1\nport: -1\nhttp: "127.0.0.1:-1"\n${variant.config}\n`;
    const file = path.join(dir, `${variant.name}.conf`);
    writeFileSync(file, configText);
    const proc = spawnBroker(["-c", file], { cwd: dir });
    const port = async (re: RegExp) => Number((await proc.waitForLine(re, 15_000))[1]);
    const ports = {
      nats: await port(LISTEN.nats),
      http: await port(LISTEN.http),
      ws: /^\s*websocket\s*\{/m.test(variant.config) ? await port(LISTEN.ws) : undefined,
      mqtt: /^\s*mqtt\s*\{/m.test(variant.config) ? await port(LISTEN.mqtt) : undefined,
    };
    return new Target(proc, ports, configText);
  }

  /** The exit, when the process has gone. */
  exitedWith(): string | undefined {
    const c = this.proc.child;
    return c.exitCode !== null || c.signalCode !== null ? `exit code ${c.exitCode}, signal ${c.signalCode}` : undefined;
  }

  /** Plays one input. Socket errors are the point, so they are ignored here. */
  async play(input: NetInput): Promise<void> {
    for (const step of input) {
      const port = this.ports[step.to];
      if (port === undefined) continue;
      const pool = this.pools[step.to];
      let s = step.fresh ? undefined : latestOpen(pool);
      if (!s) {
        s = await openSocket(port);
        if (!s) continue;
        pool.push(s);
        if (pool.length > POOL_MAX) pool.shift()!.destroy();
      }
      for (const chunk of step.chunks) if (!(await writeBounded(s, chunk))) break;
      if (step.end === "close") s.end();
      else if (step.end === "reset") s.resetAndDestroy();
    }
    for (const kind of Object.keys(this.pools) as PortKind[]) {
      this.pools[kind] = this.pools[kind].filter((p) => !p.destroyed);
    }
  }

  async closeAll(): Promise<void> {
    const all = Object.values(this.pools).flat();
    for (const kind of Object.keys(this.pools) as PortKind[]) this.pools[kind] = [];
    await Promise.all(all.map((s) => {
      if (s.destroyed) return;
      const closed = once(s, "close");
      s.destroy();
      return closed;
    }));
  }

  /** Connections the broker counts (NATS, WebSocket and MQTT), from /connz. */
  async connections(): Promise<number> {
    const res = await fetch(`http://127.0.0.1:${this.ports.http}/connz?limit=1`, { signal: AbortSignal.timeout(2_000) });
    return ((await res.json()) as { num_connections: number }).num_connections;
  }

  /** Closes every fuzz connection and waits (bounded) until the broker has seen them go. */
  async settle(timeoutMs = 5_000): Promise<number> {
    await this.closeAll();
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const n = await this.connections().catch(() => -1);
      if (n === 0 || Date.now() > deadline) return n;
      await new Promise((r) => setTimeout(r, 50)); // the broker closes on its own schedule
    }
  }

  rssKb(): number {
    try {
      const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${this.proc.pid}/status`, "utf8"));
      return m ? Number(m[1]) : 0;
    } catch {
      return 0;
    }
  }

  /** One round trip per probed transport: its milliseconds, or an Error. */
  async probe(spec: ProbeSpec, n: number): Promise<number[] | Error> {
    const times: number[] = [];
    try {
      if (spec.nats) times.push(await natsRoundTrip(this.ports.nats, spec.nats, n));
      if (spec.ws && this.ports.ws) times.push(await wsRoundTrip(this.ports.ws, spec.ws, n));
      if (spec.mqtt && this.ports.mqtt) times.push(await mqttRoundTrip(this.ports.mqtt, spec.mqtt, n));
      return times;
    } catch (err) {
      return err as Error;
    }
  }

  async stop(): Promise<void> {
    await this.closeAll();
    await this.proc.kill();
  }
}

function latestOpen(pool: net.Socket[]): net.Socket | undefined {
  for (let i = pool.length - 1; i >= 0; i--) if (!pool[i].destroyed && pool[i].writable) return pool[i];
  return undefined;
}

function openSocket(port: number): Promise<net.Socket | undefined> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: "127.0.0.1", noDelay: true });
    s.on("error", () => {});
    s.on("data", () => {}); // read and drop, so the broker never blocks on us
    const timer = setTimeout(() => { s.destroy(); resolve(undefined); }, WRITE_MS);
    s.once("connect", () => { clearTimeout(timer); resolve(s); });
    s.once("close", () => { clearTimeout(timer); resolve(undefined); });
  });
}

/** Writes one chunk; false when the socket closed or did not take it within WRITE_MS. */
function writeBounded(s: net.Socket, chunk: Buffer): Promise<boolean> {
  if (s.destroyed || !s.writable) return Promise.resolve(false);
  return new Promise((resolve) => {
    const timer = setTimeout(() => { s.destroy(); resolve(false); }, WRITE_MS);
    s.write(chunk, (err) => { clearTimeout(timer); resolve(!err); });
  });
}

async function timed(what: string, work: (subject: string) => Promise<void>, n: number): Promise<number> {
  const start = performance.now();
  await withTimeout(work(`fuzz.probe.${n}`), PROBE_MS, () => `${what} probe: no round trip`);
  return performance.now() - start;
}

function natsOptions(a: ProbeAuth): Partial<ConnectionOptions> {
  const enc = new TextEncoder();
  return {
    user: a.user, pass: a.pass, token: a.token,
    authenticator: a.creds ? credsAuthenticator(enc.encode(a.creds)) : a.nkeySeed ? nkeyAuthenticator(enc.encode(a.nkeySeed)) : undefined,
  };
}

async function natsRoundTrip(port: number, auth: ProbeAuth, n: number): Promise<number> {
  let nc: Awaited<ReturnType<typeof natsConnect>> | undefined;
  try {
    return await timed("nats.js", async (subject) => {
      nc = await natsConnect({ servers: `127.0.0.1:${port}`, reconnect: false, timeout: PROBE_MS, ...natsOptions(auth) });
      const sub = nc.subscribe(subject, { max: 1 });
      nc.publish(subject, "ping");
      for await (const _ of sub) return;
    }, n);
  } finally {
    await nc?.close().catch(() => {});
  }
}

async function wsRoundTrip(port: number, auth: ProbeAuth, n: number): Promise<number> {
  let nc: Awaited<ReturnType<typeof wsConnect>> | undefined;
  try {
    return await timed("nats.ws", async (subject) => {
      nc = await wsConnect({ servers: `ws://127.0.0.1:${port}`, reconnect: false, timeout: PROBE_MS, ...wsFactory(), ...natsOptions(auth) } as never);
      const sub = nc.subscribe(subject, { max: 1 });
      nc.publish(subject, new TextEncoder().encode("ping"));
      for await (const _ of sub) return;
    }, n);
  } finally {
    await nc?.close().catch(() => {});
  }
}

async function mqttRoundTrip(port: number, opts: ProbeSpec["mqtt"], n: number): Promise<number> {
  const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, clientOptions({ connectTimeout: PROBE_MS, ...opts }));
  client.on("error", () => {});
  const events = client as unknown as EventEmitter;
  try {
    return await timed("MQTT.js", async (subject) => {
      const topic = subject.replaceAll(".", "/");
      await once(events, "connect");
      await client.subscribeAsync(topic, { qos: 0 });
      const got = once(events, "message");
      await client.publishAsync(topic, "ping");
      await got;
    }, n);
  } finally {
    client.end(true);
  }
}

// ---------------------------------------------------------------------------------------------
// Running and replaying

interface CrashFile {
  surface: string;
  variant?: string;
  seed: number;
  /** Index of the last input of the file in the run. */
  n: number;
  reason: string;
  output?: string;
  config?: string;
  files?: Record<string, string>;
  probe?: ProbeSpec;
  /** Network: the inputs since the last good probe, chunks base64. Unit: one input. */
  inputs: unknown[];
}

const encodeInput = (input: NetInput) => input.map((s) => ({ ...s, chunks: s.chunks.map((c) => c.toString("base64")) }));
const decodeInput = (raw: unknown): NetInput =>
  (raw as Array<Omit<Step, "chunks"> & { chunks: string[] }>).map((s) => ({ ...s, chunks: s.chunks.map((c) => Buffer.from(c, "base64")) }));

function saveCrash(dir: string, crash: CrashFile): string {
  const surfaceDir = path.join(dir, crash.surface);
  mkdirSync(surfaceDir, { recursive: true });
  const file = path.join(surfaceDir, `crash-${crash.seed}-${crash.n}.json`);
  writeFileSync(file, JSON.stringify(crash, null, 1) + "\n");
  return file;
}

function p99(xs: number[]): number {
  if (xs.length === 0) return 0;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)];
}

/** Runs one surface for the budget in `o`: one stats row per variant (one for a unit surface). */
export async function runSurface(surface: Surface, o: RunOptions): Promise<VariantStats[]> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `meshbroker-fuzz-${surface.name}-`));
  try {
    return surface.kind === "unit" ? [runUnit(surface, o, dir)] : await runNet(surface, o, dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function runUnit(surface: UnitSurface, o: RunOptions, dir: string): VariantStats {
  const rng = new Rng(o.seed);
  const stats = emptyStats(surface.name, "in-process");
  const start = performance.now();
  const deadline = start + o.seconds * 1000;
  for (let n = 0; n < o.inputs && (n % 64 !== 0 || performance.now() < deadline); n++) {
    const input = surface.input(rng, dir);
    stats.inputs++;
    try {
      surface.check(input, dir);
    } catch (err) {
      const file = saveCrash(o.corpusDir ?? CORPUS_DIR, { surface: surface.name, seed: o.seed, n, reason: describe(err), inputs: [input] });
      stats.crashes.push(file);
      o.log?.(`${surface.name}: crash at input ${n}: ${describe(err)} → ${file}`);
    }
  }
  stats.seconds = (performance.now() - start) / 1000;
  return stats;
}

async function runNet(surface: NetSurface, o: RunOptions, dir: string): Promise<VariantStats[]> {
  const rng = new Rng(o.seed);
  const variants = await surface.variants(rng.fork(), dir);
  const rows: VariantStats[] = [];
  let n = 0;
  for (const [i, variant] of variants.entries()) {
    // Each variant gets an equal share of what is left of the budget.
    const share = (o.inputs - n) / (variants.length - i);
    const stats = emptyStats(surface.name, variant.name);
    const times: number[] = [];
    const start = performance.now();
    let target = await Target.start(variant, dir);
    // The time share starts once the broker is up (a loaded machine may take a share to start
    // it), and every variant plays at least a few inputs whatever the clock says.
    const deadline = performance.now() + (o.seconds * 1000) / variants.length;
    const atLeast = Math.min(share, MIN_INPUTS_PER_VARIANT);
    let recent: NetInput[] = [];
    const crash = async (reason: string) => {
      const file = saveCrash(o.corpusDir ?? CORPUS_DIR, {
        surface: surface.name, variant: variant.name, seed: o.seed, n, reason,
        output: target.proc.stderr().slice(-4000), config: target.configText, files: variant.files, probe: variant.probe,
        inputs: recent.map(encodeInput),
      });
      stats.crashes.push(file);
      o.log?.(`${surface.name}/${variant.name}: ${reason} after input ${n} → ${path.relative(REPO_ROOT, file)}`);
      await target.stop();
      target = await Target.start(variant, dir);
      recent = [];
    };
    const check = async (): Promise<void> => {
      const exited = target.exitedWith();
      if (exited) return crash(`process exited (${exited})`);
      let res = await target.probe(variant.probe, n);
      if (res instanceof Error) res = await target.probe(variant.probe, n); // a hang fails twice
      if (res instanceof Error) return crash(target.exitedWith() ? `process exited (${target.exitedWith()})` : res.message);
      stats.probes++;
      times.push(...res);
      recent = [];
    };
    try {
      for (let k = 0; k < share && (k < atLeast || performance.now() < deadline); k++, n++) {
        const input = surface.input(rng, variant);
        recent.push(input);
        await target.play(input);
        stats.inputs++;
        if (target.exitedWith()) await check();
        else if ((k + 1) % o.probeEvery === 0) {
          await check();
          if (stats.rssWarmKb === 0) {
            await target.settle();
            stats.rssWarmKb = target.rssKb();
          }
          (target.proc.lines as OutputLine[]).length = 0; // the harness reads no output after startup
        }
      }
      await check();
      stats.lingering = await target.settle();
      if (o.memorySettleMs) await new Promise((r) => setTimeout(r, o.memorySettleMs));
      stats.rssEndKb = target.rssKb();
      if (stats.rssWarmKb === 0) stats.rssWarmKb = stats.rssEndKb;
    } finally {
      await target.stop();
    }
    stats.seconds = (performance.now() - start) / 1000;
    stats.probeP99Ms = p99(times);
    rows.push(stats);
  }
  return rows;
}

function emptyStats(surface: string, variant: string): VariantStats {
  return { surface, variant, inputs: 0, seconds: 0, probes: 0, probeP99Ms: 0, rssWarmKb: 0, rssEndKb: 0, lingering: 0, crashes: [] };
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}`.slice(0, 500) : String(err);
}

/** Plays a crash file again: undefined when the broker (or the unit) survives it, else why not. */
export async function replayFile(file: string, surfaces: readonly Surface[]): Promise<string | undefined> {
  const crash = readCrash(file, surfaces);
  return withDir((dir) => replayInputs(crash, crash.inputs, dir));
}

/**
 * Shrinks a crash file in place to fewer inputs that still crash (delta debugging over the
 * inputs, at most `maxTrials` broker runs): what is left is what a fix's regression test needs.
 * Returns the number of inputs kept.
 */
export async function minimizeFile(file: string, surfaces: readonly Surface[], log?: (line: string) => void, maxTrials = 60): Promise<number> {
  const crash = readCrash(file, surfaces);
  let inputs = crash.inputs;
  let trials = 0;
  await withDir(async (dir) => {
    const crashes = async (list: unknown[]) => (trials++, (await replayInputs(crash, list, dir)) !== undefined);
    // Some crashes are races (a reset while the broker still writes): give the whole file three tries.
    if (!(await crashes(inputs)) && !(await crashes(inputs)) && !(await crashes(inputs))) {
      throw new Error(`${file}: does not crash the broker (any more)`);
    }
    // The input that crashed is usually one of the last: try the shortest tails first.
    for (let k = 1; k < inputs.length && trials < maxTrials; k *= 2) {
      if (await crashes(inputs.slice(-k))) {
        inputs = inputs.slice(-k);
        break;
      }
    }
    for (let parts = 2; inputs.length >= 2 && trials < maxTrials;) {
      const size = Math.ceil(inputs.length / parts);
      let cut = false;
      for (let start = 0; start < inputs.length && trials < maxTrials; start += size) {
        const rest = [...inputs.slice(0, start), ...inputs.slice(start + size)];
        if (rest.length > 0 && (await crashes(rest))) {
          inputs = rest;
          parts = Math.max(parts - 1, 2);
          cut = true;
          break;
        }
      }
      if (!cut) {
        if (parts >= inputs.length) break;
        parts = Math.min(inputs.length, parts * 2);
      }
      log?.(`${path.basename(file)}: ${inputs.length} inputs after ${trials} trials`);
    }
  });
  writeFileSync(file, JSON.stringify({ ...crash, inputs }, null, 1) + "\n");
  return inputs.length;
}

function readCrash(file: string, surfaces: readonly Surface[]): CrashFile & { target: Surface } {
  const crash = JSON.parse(readFileSync(file, "utf8")) as CrashFile;
  const target = surfaces.find((s) => s.name === crash.surface);
  if (!target) throw new Error(`${file}: unknown surface '${crash.surface}'`);
  return { ...crash, target };
}

async function withDir<T>(work: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "meshbroker-replay-"));
  try {
    return await work(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function replayInputs(crash: CrashFile & { target: Surface }, inputs: unknown[], dir: string): Promise<string | undefined> {
  const surface = crash.target;
  if (surface.kind === "unit") {
    try {
      for (const input of inputs) surface.check(input, dir);
      return undefined;
    } catch (err) {
      return describe(err);
    }
  }
  // The saved config runs as it was, identities included, and so does its probe.
  const probe = crash.probe ?? {};
  const config = (crash.config ?? "").replace(/^host: 127\.0\.0\.1\nport: -1\nhttp: "127\.0\.0\.1:-1"\n/, "");
  const target = await Target.start({ name: "replay", config, files: crash.files, probe }, dir);
  try {
    for (const input of inputs) {
      await target.play(decodeInput(input));
      if (target.exitedWith()) break;
    }
    const exited = target.exitedWith();
    if (exited) return `process exited (${exited})`;
    const res = await target.probe(probe, 0);
    if (res instanceof Error) return target.exitedWith() ? `process exited (${target.exitedWith()})` : res.message;
    return undefined;
  } finally {
    await target.stop();
  }
}
