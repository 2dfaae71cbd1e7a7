// MQTT test clients and servers:
// - `mqttTargets` starts meshbroker or the reference nats-server 2.9.10 (JetStream in a temp dir,
//   fixed free ports) with the same `mqtt {}` block, for differential CONNACK / SUBACK checks;
// - `RawMqtt` is an mqtt-packet client on a plain socket for exact packets (no automatic
//   PUBACK, DUP re-sends, silent keep-alive, MQTT 5 CONNECT bytes);
// - `connectMqtt` / `connack` / `nextMessage` wrap MQTT.js (protocolVersion 4, no reconnect);
// - `mosquitto` spawns Debian's mosquitto_pub / mosquitto_sub and kills them on cleanup;
// Everything is event-driven; the only timed waits are `RawMqtt.none` and `noMessage`, which
// prove that something does NOT happen and are bounded by the caller (≤ 300 ms).
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { expect } from "vitest";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import mqttPacket, { type Packet } from "mqtt-packet";
import { Redis } from "ioredis";
import { mqttTopologies, startBroker, type SuiteTopology, type TestBroker } from "./broker.js";
import { roundRobin, releaseShared, sharedCluster } from "./shared-cluster.js";
import { loadConfigText } from "../../services/common/config/index.js";
import { startNatsServer, type RealNatsServer } from "./nats-server.js";
import type { Cleanups } from "./wait.js";
import { freePorts } from "./process.js";

// ---- cleanup ----

/** A temp dir removed on cleanup. */
export async function tempDir(c: Cleanups, prefix = "meshbroker-mqtt-"): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  c.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

// ---- servers ----

export interface MqttServerOptions {
  /** Lines inside `mqtt {}` besides port/host (e.g. `ack_wait: "500ms"`). */
  mqtt?: string;
  /** Top-level config lines (authorization, accounts, operator...). */
  config?: string;
  /** Add `websocket { no_tls: true }` (MQTT over ws://…/mqtt); "compression" adds `compression: true`. */
  websocket?: boolean | "compression";
  /** meshbroker only: the monitoring listener. */
  monitoring?: boolean;
}

export interface MqttServer {
  kind: "meshbroker" | "nats-server" | "mosquitto";
  mqttPort: number;
  natsPort: number;
  wsPort: number | undefined;
  httpPort: number | undefined;
  /** meshbroker only. */
  broker?: TestBroker;
  /** nats-server only. */
  real?: RealNatsServer;
  /** Reloads the server with its config text changed by `edit` (SIGHUP for nats-server). */
  reload(edit: (text: string) => string): Promise<void>;
  stop(): Promise<void>;
}

export interface MqttTarget {
  name: string;
  kind: MqttServer["kind"];
  start(opts?: MqttServerOptions): Promise<MqttServer>;
}

/** The topologies of the MQTT suites: every in-process one, and the cluster. */
export const mqttSuiteTopologies: SuiteTopology[] = [...mqttTopologies, "cluster"];

function wsBlock(opts: MqttServerOptions, port: number): string {
  return `websocket {\n  host: 127.0.0.1\n  port: ${port}\n  no_tls: true\n${opts.websocket === "compression" ? "  compression: true\n" : ""}}`;
}

/** The config text of an MQTT test server; listeners on free ports. */
function mqttConfig(opts: MqttServerOptions, top = true): string {
  // The top-level port first: the helpers look for a `port:` line to decide whether to add one,
  // and the one in the mqtt block must not count.
  return [
    top ? "port: -1\nhost: 127.0.0.1\nserver_name: mb_mqtt" : "",
    opts.config ?? "",
    `mqtt {\n  host: 127.0.0.1\n  port: -1\n  ${opts.mqtt ?? ""}\n}`,
    opts.websocket ? wsBlock(opts, -1) : "",
  ].join("\n");
}

/** meshbroker in a topology, started with `server_name` and the MQTT (and optional WS) block. */
export async function startMqttBroker(topology: SuiteTopology, opts: MqttServerOptions = {}): Promise<MqttServer> {
  if (topology === "cluster") return startMqttCluster(opts);
  const text = mqttConfig(opts);
  const broker = await startBroker({ topology, config: text, monitoring: opts.monitoring });
  let current = text;
  return {
    kind: "meshbroker",
    async reload(edit) {
      current = edit(current);
      broker.broker.reload(loadConfigText(current, "test.conf", {}).options);
    },
    mqttPort: broker.mqttPort!,
    natsPort: broker.natsPort,
    wsPort: broker.wsPort,
    httpPort: broker.httpPort,
    broker,
    stop: () => broker.stop(),
  };
}

/** nats-server 2.9.10 with JetStream (MQTT needs it) in a temp dir and fixed free ports. */
export async function startMqttNatsServer(opts: MqttServerOptions = {}): Promise<MqttServer> {
  const jsDir = await mkdtemp(path.join(os.tmpdir(), "meshbroker-js-"));
  const [mqttPort, wsPort] = await freePorts(opts.websocket ? 2 : 1);
  const text = [
    "port: -1",
    "host: 127.0.0.1",
    "server_name: ns_mqtt",
    `jetstream {\n  store_dir: "${jsDir}"\n}`,
    opts.config ?? "",
    `mqtt {\n  host: 127.0.0.1\n  port: ${mqttPort}\n  ${opts.mqtt ?? ""}\n}`,
    wsPort ? wsBlock(opts, wsPort) : "",
  ].join("\n");
  let real: RealNatsServer;
  try {
    real = await startNatsServer(text);
    await real.waitForLog(/Listening for MQTT clients on/);
  } catch (err) {
    await rm(jsDir, { recursive: true, force: true });
    throw err;
  }
  return {
    kind: "nats-server",
    mqttPort,
    natsPort: real.port,
    wsPort,
    httpPort: undefined,
    real,
    reload: (edit) => real.reload(edit),
    async stop() {
      await real.stop();
      await rm(jsDir, { recursive: true, force: true });
    },
  };
}

/**
 * The cluster (redis-server, 2 routers, 2 edges homed on different routers) as an MQTT server.
 * Each read of `mqttPort`, `natsPort` or `wsPort` names the next edge, so a test's clients
 * alternate over the edges. Tests with the same options share the cluster, so they must not
 * depend on what an earlier test left (sessions, retained messages): `reload()` gives a test its
 * own cluster, stopped with the test. There is no `broker` (the edges are processes).
 */
async function startMqttCluster(opts: MqttServerOptions): Promise<MqttServer> {
  const shared = await sharedCluster({ edgeConfig: mqttConfig(opts, false), monitoring: opts.monitoring });
  let cluster = shared;
  const next = roundRobin(cluster.edges);
  let own = false, current = opts;
  return {
    kind: "meshbroker",
    get mqttPort() { return next().mqttPort!; },
    get natsPort() { return next().natsPort; },
    get wsPort() { return next().wsPort; },
    get httpPort() { return next().httpPort; },
    async reload(edit) {
      if (!own) {
        // A reload changes the edges' config: the test takes the cluster out of the shared set.
        cluster = await releaseShared(shared);
        own = true;
      }
      current = { ...current, config: edit(mqttConfig(current, false)), mqtt: undefined, websocket: undefined };
      await cluster.reloadEdges(current.config!);
    },
    // The next test must not see this one's retained messages (sessions it must not reuse: the
    // suites give each test its own client ids).
    stop: async () => (own ? cluster.stop() : clearRetained(cluster.redis.url)),
  };
}

async function clearRetained(url: string): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    const keys = await redis.keys("mb:retained*");
    if (keys.length > 0) await redis.del(...keys);
  } finally {
    redis.disconnect();
  }
}

/** Each topology of meshbroker, then the reference nats-server. */
export function mqttTargets(topologies: SuiteTopology[]): MqttTarget[] {
  return [
    ...topologies.map((t): MqttTarget => ({ name: `meshbroker (${t})`, kind: "meshbroker", start: (o) => startMqttBroker(t, o) })),
    { name: "nats-server 2.9.10", kind: "nats-server", start: (o) => startMqttNatsServer(o) },
  ];
}

// ---- raw mqtt-packet client ----

type Cmd = Packet["cmd"];

/** mqtt-packet on a TCP socket: every packet received is kept in order and taken with `next`. */
export class RawMqtt {
  readonly packets: Packet[] = [];
  private readonly taken = new Set<Packet>();
  private readonly waiters = new Set<() => void>();
  private isClosed = false;
  readonly closed: Promise<void>;
  /** When the socket closed (Date.now()), for timing checks. */
  closedAt = 0;
  parseError: Error | undefined;

  /** The protocol level this client parses and generates (5: MQTT 5 properties and reason codes). */
  private constructor(readonly socket: net.Socket, readonly level: 4 | 5) {
    const parser = mqttPacket.parser({ protocolVersion: level });
    parser.on("packet", (p: Packet) => {
      this.packets.push(p);
      this.wake();
    });
    parser.on("error", (err: Error) => {
      this.parseError = err;
      this.wake();
    });
    socket.on("data", (b: Buffer) => parser.parse(b));
    socket.on("error", () => {});
    this.closed = new Promise((resolve) => {
      socket.once("close", () => {
        this.isClosed = true;
        this.closedAt = Date.now();
        resolve();
        this.wake();
      });
    });
  }

  static async connect(port: number, host = "127.0.0.1", level: 4 | 5 = 4): Promise<RawMqtt> {
    const socket = net.connect({ port, host, noDelay: true });
    await once(socket, "connect");
    return new RawMqtt(socket, level);
  }

  /** CONNECT (MQTT 3.1.1 unless `protocolVersion` says otherwise), then the CONNACK. */
  static async open(port: number, connect: Partial<mqttPacket.IConnectPacket> = {}): Promise<{ c: RawMqtt; connack: mqttPacket.IConnackPacket }> {
    const c = await RawMqtt.connect(port, "127.0.0.1", connect.protocolVersion === 5 ? 5 : 4);
    c.send({ cmd: "connect", protocolId: "MQTT", protocolVersion: 4, clean: true, clientId: "", keepalive: 0, ...connect } as Packet, c.level);
    const connack = (await c.next("connack")) as mqttPacket.IConnackPacket;
    return { c, connack };
  }

  /** open() for a CONNECT that must be accepted; the client is closed by the cleanups. */
  static async accepted(cleanups: Cleanups, port: number, connect: Partial<mqttPacket.IConnectPacket> = {}):
      Promise<{ c: RawMqtt; sessionPresent: boolean }> {
    const { c, connack } = await RawMqtt.open(port, connect);
    cleanups.push(() => c.close());
    expect(connack.returnCode, "CONNACK return code").toBe(0);
    return { c, sessionPresent: !!connack.sessionPresent };
  }

  get closedNow(): boolean {
    return this.isClosed;
  }

  send(packet: Packet, protocolVersion: number = this.level): void {
    if (!this.socket.writable) return;
    this.socket.write(mqttPacket.generate(packet, { protocolVersion }));
  }

  /** Bytes as they are (packets mqtt-packet refuses to generate). */
  sendRaw(bytes: Buffer): void {
    if (this.socket.writable) this.socket.write(bytes);
  }

  /** The first packet (of `cmd`, if given) not taken yet; rejects on timeout or close. */
  next<C extends Cmd>(cmd?: C, timeoutMs = 3_000): Promise<Extract<Packet, { cmd: C }>> {
    type P = Extract<Packet, { cmd: C }>;
    const find = () => this.packets.find((p) => !this.taken.has(p) && (cmd === undefined || p.cmd === cmd));
    return new Promise<P>((resolve, reject) => {
      const check = () => {
        const p = find();
        if (p) {
          this.taken.add(p);
          done();
          resolve(p as P);
        } else if (this.isClosed || this.parseError) {
          done();
          reject(new Error(`connection ${this.isClosed ? "closed" : `unparsable (${this.parseError?.message})`} waiting for ${cmd ?? "a packet"}; got ${this.describe()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no ${cmd ?? "packet"} within ${timeoutMs}ms; got ${this.describe()}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  /**
   * Resolves if no packet of `cmd` (besides those already taken) has arrived after `ms`; rejects
   * with it otherwise. It takes nothing, so a later `next` still sees it.
   */
  async none(cmd: Cmd, ms: number): Promise<void> {
    await new Promise((r) => setTimeout(r, ms));
    const p = this.packets.find((x) => !this.taken.has(x) && x.cmd === cmd);
    if (p) throw new Error(`unexpected ${cmd}: ${JSON.stringify(summary(p))}`);
  }

  /** Resolves when the server closes the connection, rejects after `timeoutMs`. */
  closedWithin(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      this.closed.then(() => clearTimeout(timer)),
      new Promise<void>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`connection still open after ${timeoutMs}ms; got ${this.describe()}`)), timeoutMs);
      }),
    ]);
  }

  async close(): Promise<void> {
    if (!this.isClosed) {
      this.socket.destroy();
      await this.closed;
    }
  }

  describe(): string {
    return JSON.stringify(this.packets.map(summary));
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}

/** The MQTT "remaining length" varint. */
export function remainingLength(n: number): Buffer {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}

function mqttString(s: string | Buffer): Buffer {
  const b = typeof s === "string" ? Buffer.from(s, "utf8") : s;
  const len = Buffer.alloc(2);
  len.writeUInt16BE(b.length);
  return Buffer.concat([len, b]);
}

/**
 * A CONNECT packet byte by byte, for what mqtt-packet will not generate (an empty client id
 * without a clean session).
 */
export function connectBytes(o: {
  clientId: string; clean?: boolean; keepalive?: number; protocolName?: string; level?: number;
  username?: string; password?: string | Buffer;
}): Buffer {
  let flags = o.clean === false ? 0 : 0x02;
  if (o.username !== undefined) flags |= 0x80;
  if (o.password !== undefined) flags |= 0x40;
  const keep = Buffer.alloc(2);
  keep.writeUInt16BE(o.keepalive ?? 0);
  const body = Buffer.concat([
    mqttString(o.protocolName ?? "MQTT"), Buffer.from([o.level ?? 4, flags]), keep, mqttString(o.clientId),
    ...(o.username !== undefined ? [mqttString(o.username)] : []),
    ...(o.password !== undefined ? [mqttString(o.password)] : []),
  ]);
  return Buffer.concat([Buffer.from([0x10]), remainingLength(body.length), body]);
}

/** A packet without its raw buffers, for messages. */
function summary(p: Packet): Record<string, unknown> {
  const o: Record<string, unknown> = { ...p };
  delete o.length;
  if ("payload" in p && p.payload != null && typeof p.payload !== "string") o.payload = Buffer.from(p.payload).toString("utf8");
  return o;
}

// ---- MQTT.js ----

/** MQTT.js options every test uses: 3.1.1, no reconnects, short connect timeout. */
export function clientOptions(opts: IClientOptions = {}): IClientOptions {
  return { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5_000, keepalive: 30, ...opts };
}

/** Resolves with a connected MQTT.js client (ended on cleanup), rejects with the CONNACK error. */
export async function connectMqtt(c: Cleanups, url: string, opts: IClientOptions = {}): Promise<MqttClient> {
  return (await connectCollecting(c, url, opts)).client;
}

/**
 * connectMqtt, with an inbox that collects from before the CONNACK (a persistent session's queued
 * messages may arrive in the same read), and the CONNACK's sessionPresent.
 */
export async function connectCollecting(c: Cleanups, url: string, opts: IClientOptions = {}):
    Promise<{ client: MqttClient; inbox: Inbox; sessionPresent: boolean }> {
  const client = mqtt.connect(url, clientOptions(opts));
  c.push(() => client.endAsync(true));
  const inbox = collect(client);
  let sessionPresent = false;
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => { off(); reject(err); };
    const onClose = () => { off(); reject(new Error("closed before CONNACK")); };
    const onConnect = (p: mqttPacket.IConnackPacket) => { off(); sessionPresent = !!p.sessionPresent; resolve(); };
    const off = () => {
      client.off("connect", onConnect);
      client.off("error", onError);
      client.off("close", onClose);
    };
    client.on("connect", onConnect);
    client.on("error", onError);
    client.on("close", onClose);
  });
  return { client, inbox, sessionPresent };
}

/** The CONNACK an MQTT.js client gets: its return code and sessionPresent. */
export async function connack(c: Cleanups, url: string, opts: IClientOptions = {}): Promise<{ returnCode: number; sessionPresent: boolean }> {
  const client = mqtt.connect(url, clientOptions(opts));
  c.push(() => client.endAsync(true));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no CONNACK")), 5_000);
    client.once("packetreceive", (p: Packet) => {
      if (p.cmd !== "connack") return;
      clearTimeout(timer);
      resolve({ returnCode: p.returnCode ?? (p as { reasonCode?: number }).reasonCode ?? -1, sessionPresent: !!p.sessionPresent });
    });
    client.on("error", () => {});
    client.once("close", () => setImmediate(() => { clearTimeout(timer); reject(new Error("closed without CONNACK")); }));
  });
}

export interface Received {
  topic: string;
  payload: string;
  packet: mqttPacket.IPublishPacket;
}

export interface Inbox {
  /** Every message received, in order. */
  all: Received[];
  /** Messages received but not taken with `next` yet. */
  pending(): Received[];
  /** The next message not taken yet (in arrival order); rejects after `timeoutMs`. */
  next(timeoutMs?: number): Promise<Received>;
}

/** Collects every message an MQTT.js client receives; `next` takes them in order. */
export function collect(client: MqttClient): Inbox {
  const all: Received[] = [];
  let taken = 0;
  const waiters = new Set<() => void>();
  client.on("message", (topic, payload, packet) => {
    all.push({ topic, payload: payload.toString("utf8"), packet });
    for (const w of [...waiters]) w();
  });
  return {
    all,
    pending: () => all.slice(taken),
    next(timeoutMs = 3_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (taken < all.length) {
            done();
            resolve(all[taken++]);
          }
        };
        const timer = setTimeout(() => { done(); reject(new Error(`no message within ${timeoutMs}ms (received ${all.length})`)); }, timeoutMs);
        const done = () => { clearTimeout(timer); waiters.delete(check); };
        waiters.add(check);
        check();
      });
    },
  };
}

/**
 * Proves that nothing beyond the messages the test has taken with `next` arrives: waits `ms`
 * (≤ 300), then fails if any message is pending (including one that came before the call).
 */
export async function noMessage(inbox: Inbox, ms = 250): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
  const extra = inbox.pending();
  if (extra.length > 0) {
    throw new Error(`unexpected message(s): ${JSON.stringify(extra.map((m) => [m.topic, m.payload]))}`);
  }
}

/**
 * The SUBACK return codes an MQTT.js client gets for `subs` (MQTT.js turns a 0x80 into an error,
 * so the packet itself is read).
 */
export function suback(client: MqttClient, subs: Record<string, { qos: 0 | 1 | 2 }>, timeoutMs = 3_000): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { client.off("packetreceive", onPacket); reject(new Error("no SUBACK")); }, timeoutMs);
    const onPacket = (p: Packet) => {
      if (p.cmd !== "suback") return;
      clearTimeout(timer);
      client.off("packetreceive", onPacket);
      // 3.1.1 SUBACKs carry plain return codes.
      resolve(p.granted.map((g) => (typeof g === "number" ? g : (g as { qos: number }).qos)));
    };
    client.on("packetreceive", onPacket);
    client.subscribe(subs, () => {});
  });
}

/** Resolves when the MQTT.js client's connection closes. */
export function closeOf(client: MqttClient, timeoutMs = 3_000): Promise<void> {
  return new Promise((resolve, reject) => {
    // Closed already (by the server, before this call): MQTT.js sets `disconnected` only on
    // end(), so `connected` alone says it; the clients here never reconnect (reconnectPeriod 0).
    if (!client.connected) return resolve();
    const timer = setTimeout(() => reject(new Error(`client still connected after ${timeoutMs}ms`)), timeoutMs);
    client.once("close", () => { clearTimeout(timer); resolve(); });
  });
}

// ---- mosquitto_pub / mosquitto_sub ----

export const MOSQUITTO_PUB = process.env.MOSQUITTO_PUB ?? "/usr/bin/mosquitto_pub";
export const MOSQUITTO_SUB = process.env.MOSQUITTO_SUB ?? "/usr/bin/mosquitto_sub";

export interface Spawned {
  child: ChildProcess;
  output(): string;
  /** Resolves with the first output line matching `re`; rejects on timeout or exit first. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exitWithin(timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(): Promise<void>;
}

const spawned = new Set<ChildProcess>();
process.once("exit", () => {
  for (const p of spawned) p.kill("SIGKILL");
});

/** Line-buffers a child's stdio on a pipe (mosquitto_sub's -d lines would wait for its exit). */
export const STDBUF = "/usr/bin/stdbuf";

/**
 * Spawns a mosquitto client (killed on cleanup) with line-buffered output (stdbuf execs it, so
 * the pid is the client's); stdout and stderr collected as text.
 */
export function mosquitto(c: Cleanups, bin: string, args: string[]): Spawned {
  const child = spawn(STDBUF, ["-oL", "-eL", bin, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  spawned.add(child);
  let out = "";
  let done = false;
  const waiters = new Set<() => void>();
  const wake = () => { for (const w of [...waiters]) w(); };
  child.stdout!.on("data", (b: Buffer) => { out += b.toString("utf8"); wake(); });
  child.stderr!.on("data", (b: Buffer) => { out += b.toString("utf8"); wake(); });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("close", (code, signal) => {
      done = true;
      spawned.delete(child);
      resolve({ code, signal });
      wake();
    });
  });
  const kill = async () => {
    if (!done) {
      child.kill("SIGKILL");
      await exited;
    }
  };
  c.push(kill);
  return {
    child,
    output: () => out,
    exited,
    waitFor(re, timeoutMs = 5_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          for (const line of out.split("\n")) {
            const m = line.match(re);
            if (m) {
              finish();
              return resolve(m);
            }
          }
          if (done) {
            finish();
            reject(new Error(`${path.basename(bin)} exited before printing ${re}; output:\n${out}`));
          }
        };
        const timer = setTimeout(() => { finish(); reject(new Error(`${path.basename(bin)}: no ${re} within ${timeoutMs}ms; output:\n${out}`)); }, timeoutMs);
        const finish = () => { clearTimeout(timer); waiters.delete(check); };
        waiters.add(check);
        check();
      });
    },
    exitWithin(timeoutMs = 5_000) {
      let timer: NodeJS.Timeout | undefined;
      return Promise.race([
        exited.then((e) => { clearTimeout(timer); return e; }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`${path.basename(bin)} still running after ${timeoutMs}ms; output:\n${out}`)), timeoutMs);
        }),
      ]);
    },
    kill,
  };
}

/** Starts a target's server and stops it with the test's other cleanups. */
export async function startTarget(c: Cleanups, target: MqttTarget, opts: MqttServerOptions = {}): Promise<MqttServer> {
  const s = await target.start(opts);
  c.push(() => s.stop());
  return s;
}

/** The mqtt:// URL of a started server. */
export const mqttUrl = (s: MqttServer): string => `mqtt://127.0.0.1:${s.mqttPort}`;

// ---- mosquitto 2.0, the MQTT 5 reference ----

export const MOSQUITTO = process.env.MOSQUITTO ?? "/usr/sbin/mosquitto";

/** meshbroker in each topology, then mosquitto 2.0: the targets of MQTT 5 differential tests. */
export function mqtt5Targets(c: Cleanups, topologies: SuiteTopology[]): MqttTarget[] {
  const meshbrokers = mqttTargets(topologies).filter((t) => t.kind === "meshbroker");
  return [...meshbrokers, { name: "mosquitto 2.0", kind: "mosquitto", start: () => startMosquitto(c) }];
}

/**
 * mosquitto 2.0 on a free port (anonymous clients allowed, `extra` config lines), stopped on
 * cleanup: the reference for MQTT 5 behaviour nats-server does not have.
 */
export async function startMosquitto(c: Cleanups, extra = ""): Promise<MqttServer> {
  const dir = await tempDir(c, "meshbroker-mosquitto-");
  const [port] = await freePorts(1);
  const conf = path.join(dir, "mosquitto.conf");
  await writeFile(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\n${extra}\n`);
  const broker = mosquitto(c, MOSQUITTO, ["-c", conf, "-v"]);
  await broker.waitFor(/mosquitto version \S+ running/);
  return {
    kind: "mosquitto", mqttPort: port, natsPort: 0, wsPort: undefined, httpPort: undefined,
    reload: () => Promise.reject(new Error("mosquitto: no reload here")),
    stop: () => broker.kill(),
  };
}
