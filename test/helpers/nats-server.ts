// Starts the real nats-server (the reference implementation) for differential tests.
// It listens on a free port chosen by the server (`port: -1`); the port is read from its log,
// and readiness is proven by a client connection that gets its INFO. The server runs with
// debug logging so the probe's close can be awaited too (a later max_connections test must
// not race with it).
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { startTarget, type SuiteTopology } from "./broker.js";

export const NATS_SERVER_BIN = process.env.NATS_SERVER_BIN ?? "/usr/sbin/nats-server";

export interface RealNatsServer {
  port: number;
  /** The server's log so far (stderr). */
  log(): string;
  /** Resolve when the log matches (a regex, or a predicate over the whole log), or reject after `timeoutMs`. */
  waitForLog(pattern: RegExp | ((log: string) => boolean), timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Send the process a signal (SIGUSR2: lame duck mode; SIGHUP: reload). */
  signal(sig: NodeJS.Signals): void;
  /** Rewrites the config file (the `edit` of its text) and reloads it with SIGHUP. */
  reload(edit: (text: string) => string): Promise<void>;
  /** Terminate the server and wait for the process to exit. */
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
// A crashed or killed test worker must not leave servers behind.
process.once("exit", () => {
  for (const p of running) p.kill("SIGKILL");
});

export async function startNatsServer(configText = "", timeoutMs = 10_000): Promise<RealNatsServer> {
  let text = configText;
  if (!/^\s*(port|listen)\s*[:=\s]/m.test(text)) text = `port: -1\nhost: 127.0.0.1\n${text}`;
  const dir = await mkdtemp(path.join(os.tmpdir(), "meshbroker-nats-"));
  const file = path.join(dir, "server.conf");
  await writeFile(file, text + "\n");

  const child = spawn(NATS_SERVER_BIN, ["-c", file, "-D"], { stdio: ["ignore", "pipe", "pipe"] });
  running.add(child);
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once("exit", () => resolve());
  });
  exited.then(() => running.delete(child));

  let log = "";
  let hasExited = false;
  exited.then(() => { hasExited = true; wake(); });
  const waiters = new Set<() => void>();
  const wake = () => { for (const w of [...waiters]) w(); };
  const onData = (b: Buffer) => { log += b.toString("utf8"); wake(); };
  child.stdout!.on("data", onData);
  child.stderr!.on("data", onData);

  const waitForLog = (pattern: RegExp | ((log: string) => boolean), ms = timeoutMs): Promise<RegExpMatchArray> =>
    new Promise((resolve, reject) => {
      const check = () => {
        const m = typeof pattern === "function" ? (pattern(log) ? [log] as RegExpMatchArray : null) : log.match(pattern);
        if (m) {
          done();
          resolve(m);
        } else if (hasExited) {
          done();
          reject(new Error(`nats-server exited while waiting for ${pattern}; log:\n${log}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`nats-server: no ${pattern} after ${ms}ms; log:\n${log}`));
      }, ms);
      const done = () => { clearTimeout(timer); waiters.delete(check); };
      waiters.add(check);
      check();
    });

  const stop = async () => {
    if (!hasExited) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };

  try {
    const m = await waitForLog(/Listening for client connections on [^\s]*:(\d+)/);
    const port = Number(m[1]);
    const cid = await probe(port, timeoutMs);
    await waitForLog(new RegExp(`cid:${cid} - Client connection closed`));
    const signal = (sig: NodeJS.Signals) => { if (!hasExited) child.kill(sig); };
    let reloads = 0;
    const reload = async (edit: (text: string) => string) => {
      await writeFile(file, edit(await readFile(file, "utf8")));
      const seen = ++reloads;
      signal("SIGHUP");
      await waitForLog((l) => (l.match(/Reloaded server configuration/g)?.length ?? 0) >= seen);
    };
    return { port, log: () => log, waitForLog, stop, signal, reload };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Connect, read the INFO line, close; returns the probe's client_id. */
async function probe(port: number, timeoutMs: number): Promise<number> {
  const socket = net.connect({ port, host: "127.0.0.1" });
  socket.on("error", () => {});
  try {
    let text = "";
    const info = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("nats-server probe: no INFO")), timeoutMs);
      socket.on("data", (b: Buffer) => {
        text += b.toString("latin1");
        const nl = text.indexOf("\r\n");
        if (nl >= 0) {
          clearTimeout(timer);
          resolve(text.slice(0, nl));
        }
      });
      socket.once("close", () => reject(new Error(`nats-server probe closed: ${JSON.stringify(text)}`)));
    });
    const json = JSON.parse(info.replace(/^INFO\s+/, "")) as { client_id: number };
    return json.client_id;
  } finally {
    socket.destroy();
    if (!socket.closed) await once(socket, "close");
  }
}

/** A NATS server a differential test runs against: meshbroker in each topology, or the reference. */
export interface NatsTarget {
  name: string;
  /** `ports`: every edge's NATS port when the target is a cluster (clients may spread over them). */
  start(config: string): Promise<{ port: number; ports?: number[]; stop(): Promise<void> }>;
}

/** meshbroker in each topology, then nats-server 2.9.10 with the same config. With `shared`,
 *  the cluster topology's tests with the same config share one cluster (startTarget). */
export function natsTargets(topologies: readonly SuiteTopology[], opts: { shared?: boolean } = {}): NatsTarget[] {
  return [
    ...topologies.map((topology): NatsTarget => ({
      name: `meshbroker (${topology})`,
      async start(config) {
        const b = await startTarget({ topology, config, shared: opts.shared });
        return { port: b.natsPort, ports: b.natsPorts, stop: () => b.stop() };
      },
    })),
    {
      name: "nats-server 2.9.10 (reference)",
      async start(config) {
        const s = await startNatsServer(config);
        return { port: s.port, stop: () => s.stop() };
      },
    },
  ];
}
