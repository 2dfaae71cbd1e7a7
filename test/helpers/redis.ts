// Starts a real redis-server for tests: no persistence, 127.0.0.1 only, a free port, its working
// directory in a temp dir removed at stop. Readiness is the server's own "Ready to accept
// connections" line, confirmed by a PING. `{ cluster: true }` makes it a one-node Redis Cluster
// owning all 16384 slots: enough for Redis to refuse cross-slot commands, which is the point.
// Call `stop()` in afterAll; a worker that dies kills its servers on exit.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Redis } from "ioredis";

export const REDIS_SERVER_BIN = process.env.REDIS_SERVER_BIN ?? "/usr/bin/redis-server";

export interface RedisServer {
  port: number;
  /** redis://127.0.0.1:PORT, or redis-cluster://127.0.0.1:PORT for a cluster. */
  url: string;
  cluster: boolean;
  /** The redis-server process (the bench reads its CPU time and memory). */
  pid: number;
  /** The server's output so far. */
  log(): string;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.once("exit", () => {
  for (const p of running) p.kill("SIGKILL");
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

interface Started {
  child: ChildProcess;
  log: () => string;
  exited: Promise<void>;
}

/** Spawns the server and resolves on its ready line; rejects with its output if it exits first. */
function spawnRedis(args: string[], timeoutMs: number): Promise<Started> {
  const child = spawn(REDIS_SERVER_BIN, args, { stdio: ["ignore", "pipe", "pipe"] });
  running.add(child);
  let out = "";
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  exited.then(() => running.delete(child));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`redis-server not ready after ${timeoutMs}ms:\n${out}`));
    }, timeoutMs);
    const onData = (b: Buffer) => {
      out += b.toString("utf8");
      if (/Ready to accept connections/.test(out)) {
        clearTimeout(timer);
        resolve({ child, log: () => out, exited });
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited before it was ready:\n${out}`));
    });
  });
}

/** `port`: that port (a restart of a stopped server), else a free one. */
export async function startRedis(opts: { cluster?: boolean; timeoutMs?: number; port?: number } = {}): Promise<RedisServer> {
  const cluster = opts.cluster ?? false;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const dir = await mkdtemp(path.join(os.tmpdir(), "meshbroker-redis-"));
  let started: Started | undefined;
  let port = 0;
  // The free port can be taken between probe and bind by a parallel test file: try another.
  for (let attempt = 0; !started; attempt++) {
    port = opts.port ?? await freePort();
    const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir];
    if (cluster) args.push("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-announce-ip", "127.0.0.1");
    try {
      started = await spawnRedis(args, timeoutMs);
    } catch (err) {
      if (attempt >= 4 || opts.port !== undefined || !/Address already in use/.test(String(err))) {
        await rm(dir, { recursive: true, force: true });
        throw err;
      }
    }
  }
  const { child, log, exited } = started;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(t);
    }
    await rm(dir, { recursive: true, force: true });
  };

  const admin = new Redis({ port, host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    await admin.connect();
    if ((await admin.ping()) !== "PONG") throw new Error("redis-server did not answer PING");
    if (cluster) {
      await admin.call("CLUSTER", "ADDSLOTSRANGE", "0", "16383");
      // A fresh master waits up to 2s before it declares the cluster ok; there is no event for it.
      const deadline = Date.now() + timeoutMs;
      while (!/cluster_state:ok/.test(String(await admin.call("CLUSTER", "INFO")))) {
        if (Date.now() > deadline) throw new Error(`cluster_state not ok after ${timeoutMs}ms`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  } catch (err) {
    await stop();
    throw err;
  } finally {
    admin.disconnect();
  }
  return {
    port,
    url: cluster ? `redis-cluster://127.0.0.1:${port}` : `redis://127.0.0.1:${port}`,
    cluster,
    pid: child.pid!,
    log,
    stop,
  };
}
