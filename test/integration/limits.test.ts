// Connection limits that depend on time or on a peer that stops reading: stale connections,
// the auth timeout, slow consumers (max_pending) and write_deadline. Each test runs against
// meshbroker in every topology and against the real nats-server as the reference; on the
// cluster (one for the file, reloaded to each test's config) a test's clients alternate over the two edges.
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { connect, StringCodec, type NatsConnection } from "nats";
import { startBroker, startTarget, topologies } from "../helpers/broker.js";
import { startNatsServer } from "../helpers/nats-server.js";
import { closedWithin, rawConnect, type RawClient } from "../helpers/raw.js";
import { roundRobin } from "../helpers/shared-cluster.js";

const sc = StringCodec();

type SlowKind = "Pending Bytes" | "Write Deadline";

interface Running {
  /** Every NATS port (a cluster's edges); clients alternate over them. */
  ports: number[];
  stop(): Promise<void>;
  /** The kind of the first slow consumer the server flagged, if any yet. */
  slowConsumer(): SlowKind | undefined;
}

interface Target {
  name: string;
  start(config: string): Promise<Running>;
  /** Starts what the tests share, before them (a cluster: up to 15 s on a loaded machine). */
  setUp?(): Promise<unknown>;
}

const targets: Target[] = [
  ...topologies.map((topology): Target => ({
    name: `meshbroker (${topology})`,
    async start(config) {
      const b = await startBroker({ topology, config });
      // The first slow consumer among the closed connections the edge keeps for /connz.
      const slowConsumer = () => {
        for (const c of b.broker.edge.closed) {
          const m = /^Slow Consumer \((.*)\)$/.exec(c.closeReason ?? "");
          if (m) return m[1] as SlowKind;
        }
        return undefined;
      };
      return { ports: [b.natsPort], stop: b.stop, slowConsumer };
    },
  })),
  {
    name: "nats-server 2.9.10 (reference)",
    async start(config) {
      const s = await startNatsServer(config);
      return {
        ports: [s.port],
        stop: s.stop,
        slowConsumer() {
          const m = /Slow Consumer Detected: (MaxPending|WriteDeadline)/i.exec(s.log());
          if (!m) return undefined;
          return m[1].toLowerCase() === "maxpending" ? "Pending Bytes" : "Write Deadline";
        },
      };
    },
  },
  // Last: its cluster (one for the file, its edges reloaded to each test's config) stays up
  // until the file ends.
  {
    name: "meshbroker (cluster)",
    setUp: () => startTarget({ topology: "cluster", config: "", shared: "reload" }),
    async start(config) {
      const b = await startTarget({ topology: "cluster", config, shared: "reload" });
      // The edge processes log each slow consumer; only lines of this test count.
      const edges = b.cluster!.edges.map((e) => ({ proc: e.proc, since: e.proc.mark() }));
      const slowConsumer = () => {
        for (const { proc, since } of edges) {
          for (const l of proc.lines.slice(since)) {
            const m = /Slow Consumer Detected: Slow Consumer \((.*)\)/.exec(l.text);
            if (m) return m[1] as SlowKind;
          }
        }
        return undefined;
      };
      return { ports: b.natsPorts, stop: b.stop, slowConsumer };
    },
  },
];

describe.each(targets)("limits: $name", (target) => {
  let server: Running | undefined;
  let raws: RawClient[] = [];
  let conns: NatsConnection[] = [];

  beforeAll(() => target.setUp?.(), 30_000);

  afterEach(async () => {
    await Promise.all(conns.map((nc) => (nc.isClosed() ? undefined : nc.close())));
    await Promise.all(raws.map((r) => r.close()));
    conns = [];
    raws = [];
    await server?.stop();
    server = undefined;
  });

  /** The next client's port: clients alternate over the edges of a cluster. */
  let port: () => number;
  async function start(config: string): Promise<Running> {
    server = await target.start(config);
    port = roundRobin(server.ports);
    return server;
  }

  async function raw(): Promise<RawClient> {
    const r = await rawConnect(port());
    raws.push(r);
    await r.expect(/^INFO .*\r\n/);
    return r;
  }

  async function nats(): Promise<NatsConnection> {
    const nc = await connect({ servers: `127.0.0.1:${port()}`, reconnect: false });
    conns.push(nc);
    return nc;
  }

  const afterInfo = (r: RawClient) => r.received().replace(/^INFO .*\r\n/, "");

  // ---- stale connections (ping_interval / ping_max) ----

  it("a client that never answers PING gets PING, then -ERR 'Stale Connection', then close", async () => {
    await start('ping_interval: "100ms"\nping_max: 1');
    const r = await raw();
    await r.send('CONNECT {"verbose":false}\r\n');
    await r.expect("PING\r\n", 2_000);
    await closedWithin(r, 2_000);
    expect(afterInfo(r)).toBe("PING\r\n-ERR 'Stale Connection'\r\n");
  });

  it("a client that answers every PING stays connected", async () => {
    await start('ping_interval: "100ms"\nping_max: 1');
    const r = await raw();
    await r.send('CONNECT {"verbose":false}\r\n');
    for (let n = 1; n <= 3; n++) {
      await r.expect(new RegExp(`(PING\\r\\n){${n}}`), 2_000);
      await r.send("PONG\r\n");
    }
    expect(r.isClosed()).toBe(false);
    await r.send("PING\r\n");
    await r.expect(/PONG\r\n/, 2_000);
    expect(afterInfo(r)).not.toContain("-ERR");
  });

  // ---- auth timeout ----

  it("auth timeout: no CONNECT within the timeout gets -ERR 'Authentication Timeout' and close", async () => {
    await start("authorization { user: a, password: b, timeout: 0.5 }");
    const t0 = Date.now();
    const r = await raw();
    await closedWithin(r, 3_000);
    const elapsed = Date.now() - t0;
    expect(afterInfo(r)).toBe("-ERR 'Authentication Timeout'\r\n");
    expect(elapsed).toBeGreaterThanOrEqual(400);
    expect(elapsed).toBeLessThan(2_000);
  });

  it("auth timeout: a CONNECT still being typed does not stop the timer", async () => {
    await start("authorization { user: a, password: b, timeout: 0.5 }");
    const r = await raw();
    await r.send('CONNECT {"user":"a",');
    await closedWithin(r, 3_000);
    expect(afterInfo(r)).toBe("-ERR 'Authentication Timeout'\r\n");
  });

  it("auth timeout: a client that authenticated in time is not closed by the timer", async () => {
    await start("authorization { user: a, password: b, timeout: 0.3 }");
    const r = await raw();
    await r.send('CONNECT {"verbose":false,"user":"a","pass":"b"}\r\nPING\r\n');
    await r.expect("PONG\r\n");
    // The behaviour under test is a timer: let it pass, then prove the connection still works.
    await new Promise((res) => setTimeout(res, 600));
    await r.send("PING\r\n");
    await r.expect(/PONG\r\nPONG\r\n$/, 2_000);
    expect(r.isClosed()).toBe(false);
  });

  // ---- slow consumers ----

  /**
   * A raw subscriber that stops reading and a nats.js subscriber that keeps up, both on
   * `flood`; a publisher sends numbered messages of `size` bytes in flushed batches until the
   * server flags a slow consumer (or `maxBytes` is reached), then a few batches more.
   */
  async function floodWithSlowReader(size: number, batch: number, maxBytes: number) {
    const slow = await raw();
    await slow.send('CONNECT {"verbose":false}\r\nSUB flood 1\r\nPING\r\n');
    await slow.expect("PONG\r\n");
    slow.socket.pause();

    const fast = await nats();
    let fastNext = 0;
    let fastError: string | undefined;
    fast.subscribe("flood", {
      callback: (_e, m) => {
        const n = Number(sc.decode(m.data.subarray(0, 10)));
        if (n !== fastNext && !fastError) fastError = `fast subscriber: expected ${fastNext}, got ${n}`;
        fastNext = n + 1;
      },
    });
    await fast.flush();

    const pub = await nats();
    let sent = 0;
    let extraBatches = 5;
    while (sent * size < maxBytes && extraBatches > 0) {
      for (let i = 0; i < batch; i++) {
        const body = Buffer.alloc(size, 120);
        body.write(String(sent).padStart(10, "0"), 0, "latin1");
        pub.publish("flood", body);
        sent++;
      }
      await pub.flush();
      if (server!.slowConsumer()) extraBatches--;
    }
    // Everything published has been processed; the fast subscriber's round trip proves it has
    // been sent everything the server had for it.
    await fast.flush();
    return { slow, fast, sent, fastReceived: () => fastNext, fastError: () => fastError };
  }

  it("max_pending: a subscriber that stops reading is closed without -ERR; others get everything", async () => {
    // nats-server stalls a fast producer once a consumer is 3/4 full, so only a message that
    // does not fit any more trips the pending limit: 48 KB messages, one per round trip.
    await start("max_pending: 65536\nmax_payload: 65536");
    const size = 48 * 1024;
    const { slow, fast, sent, fastReceived, fastError } = await floodWithSlowReader(size, 1, 64 * 1024 * 1024);
    expect(server!.slowConsumer()).toBe("Pending Bytes");
    expect(fastError()).toBeUndefined();
    expect(fastReceived()).toBe(sent);
    expect(fast.isClosed()).toBe(false);
    // Let the slow one read what reached it: then it sees the close, and never an -ERR.
    slow.socket.resume();
    await closedWithin(slow, 5_000);
    expect(slow.received()).not.toContain("-ERR");
    const got = slow.received().split(`MSG flood 1 ${size}\r\n`).length - 1;
    expect(got).toBeLessThan(sent);
  });

  it("write_deadline: a subscriber whose socket stays full past the deadline is closed without -ERR", async () => {
    await start('write_deadline: "200ms"');
    const { slow, sent, fastReceived, fastError } = await floodWithSlowReader(1024, 32, 48 * 1024 * 1024);
    expect(server!.slowConsumer()).toBe("Write Deadline");
    expect(fastError()).toBeUndefined();
    expect(fastReceived()).toBe(sent);
    slow.socket.resume();
    await closedWithin(slow, 5_000);
    expect(slow.received()).not.toContain("-ERR");
  }, 40_000);
});
