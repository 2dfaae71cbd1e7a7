// The meshbroker command as the contract in DESIGN.md describes it: --help / --version, -t
// (exit 0, or 1 with `file:line: message`), one startup line per listener, SIGINT (stop now:
// pending data delivered, exit 0, ports closed) and SIGHUP (reload; a bad config is logged and
// the old one stays in force). SIGTERM's lame duck mode is in lame-duck.test.ts. Each test runs the real bin/meshbroker in a child
// process; `make test` builds dist/ first.
import { mkdtemp, readFile, rm, writeFile, mkdir } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { connect, type NatsConnection, type NatsError } from "nats";
import { rawConnect, closedWithin, type RawClient } from "../helpers/raw.js";
import { topologies } from "../helpers/broker.js";
import {
  assertBuilt,
  BIN,
  BIN_NODE_FLAGS,
  isListening,
  LISTEN_MONITORING,
  LISTEN_NATS,
  REPO_ROOT,
  reload,
  runBroker,
  runCommand,
  spawnBroker,
  spawnCommand,
  startBrokerProcess,
  stopAllBrokers,
} from "../helpers/process.js";

let dir: string;
const clients: Array<NatsConnection | RawClient> = [];

beforeAll(async () => {
  assertBuilt(); // a clear message instead of a module-not-found stack in every test
  dir = await mkdtemp(path.join(os.tmpdir(), "meshbroker-cli-"));
});
afterEach(async ({ task }) => {
  // Other concurrent tests' clients and processes may still be in use: theirs go after the file.
  if (task.concurrent) return;
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => {})));
  await stopAllBrokers();
});
afterAll(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => {})));
  await stopAllBrokers();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Writes `text` to a file in the test directory and returns its absolute path. */
async function conf(name: string, text: string): Promise<string> {
  const file = path.join(dir, name);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, text);
  return file;
}

async function nats(opts: Parameters<typeof connect>[0]): Promise<NatsConnection> {
  // reconnect off: a client the broker closes must end, not retry in the background.
  const nc = await connect({ reconnect: false, ...opts });
  clients.push(nc);
  return nc;
}

async function raw(port: number): Promise<{ c: RawClient; info: Record<string, unknown> }> {
  const c = await rawConnect(port);
  clients.push(c);
  const m = await c.expect(/^INFO (\{.*\}) ?\r\n/);
  return { c, info: JSON.parse(m[1]) as Record<string, unknown> };
}

const packageVersion = async () =>
  (JSON.parse(await readFile(path.join(REPO_ROOT, "package.json"), "utf8")) as { version: string }).version;

// The tests of the concurrent blocks share nothing (each its own process, config files and
// ports): two run at a time (maxConcurrency in vitest.config.ts), most of each being node's start.
describe.concurrent("meshbroker command line", () => {
  it.each(["--help", "-h"])("%s prints the usage and exits 0", async (flag) => {
    const r = await runBroker([flag]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: meshbroker/);
    for (const opt of ["-c", "-t", "--help", "--version"]) expect(r.stdout).toContain(opt);
    expect(r.stderr).toBe("");
  });

  it.each(["--version", "-v"])("%s prints `meshbroker <package.json version>` and exits 0", async (flag) => {
    const r = await runBroker([flag]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`meshbroker ${await packageVersion()}\n`);
    expect(r.stderr).toBe("");
  });

  it("an unknown flag exits non-zero with the usage on stderr", async () => {
    const r = await runBroker(["--no-such-flag"]);
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBeNull();
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("--no-such-flag");
    expect(r.stderr).toContain("Usage: meshbroker");
  });

  it("-c without a file name exits non-zero with the usage", async () => {
    const r = await runBroker(["-c"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("Usage: meshbroker");
  });
});

describe("meshbroker command line", () => {
  it("runs as an executable: its shebang gives node the broker's flags (a full-size young generation), as the test helper does", async () => {
    // The flags take effect: V8 starts with a larger young generation than its 1 MB default.
    const newSpace = async (flags: readonly string[]) => {
      const r = await runCommand(process.execPath, [...flags, "-p",
        'require("v8").getHeapSpaceStatistics().find((s) => s.space_name === "new_space").space_size']);
      expect(r.code).toBe(0);
      return Number(r.stdout);
    };
    expect(await newSpace(BIN_NODE_FLAGS)).toBeGreaterThanOrEqual(4 * (await newSpace([])));
    const file = await conf("shebang.conf", "host: 127.0.0.1\nport: -1\n");
    const direct = spawnCommand(BIN, ["-c", file]);
    const helper = spawnBroker(["-c", file]);
    await Promise.all([direct.waitForLine(/Server is ready/, 10_000), helper.waitForLine(/Server is ready/, 10_000)]);
    const argv = async (pid: number) => (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0");
    // env -S execs node itself: no extra process stays between the caller and the broker.
    expect(await argv(direct.pid)).toEqual(["node", ...BIN_NODE_FLAGS, BIN, "-c", file, ""]);
    expect((await argv(helper.pid)).slice(1, 1 + BIN_NODE_FLAGS.length)).toEqual(BIN_NODE_FLAGS);
  });
});

describe.concurrent("meshbroker -t (check the configuration)", () => {
  it("exits 0 for a good config and prints nothing on stderr", async () => {
    const file = await conf("good.conf", [
      "host: 127.0.0.1",
      "port: 4222",
      "http_port: 8222",
      "max_payload: 1MB",
      'ping_interval: "1m"',
      "authorization {",
      "  users: [ { user: a, password: b } ]",
      "}",
      "",
    ].join("\n"));
    const r = await runBroker(["-t", "-c", file]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
  });

  it("accepts the router {} and edge {} blocks of the cluster roles", async () => {
    const file = await conf("cluster.conf", [
      "server_name: e1",
      "router {",
      '  listen: "0.0.0.0:7100"',
      '  advertise: "$POD_IP:7100"',
      '  redis: "redis-sentinel://s1:26379,s2:26379/mymaster"',
      '  authorization { token: "s3cret" }',
      "}",
      'edge { discovery: { kubernetes: { service: "meshbroker-router", namespace: "default" } } }',
      "",
    ].join("\n"));
    const r = await runBroker(["-t", "-c", file], { env: { ...process.env, POD_IP: "10.0.0.7" } });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
  });

  it.each([
    ["edge", "port: -1\n", /cannot start: the edge role needs an edge \{\} block/],
    ["edge", 'port: -1\nedge { discovery: { kubernetes: { service: "r" } } }\n', /kubernetes discovery needs in-cluster credentials \(KUBERNETES_SERVICE_HOST and a service account token\) or env KUBECONFIG/],
    ["router", "port: -1\n", /cannot start: the router role needs a router \{\} block/],
  ])("the %s role without what it needs exits 1 and says why", async (role, text, why) => {
    const file = await conf(`role-${role}-${text.length}.conf`, text);
    const r = await runBroker([role, "-c", file]);
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toMatch(why);
  });

  it.each(["deploy/examples/cluster/router-1.conf", "deploy/examples/cluster/edge-1.conf"])(
    "accepts the cluster example %s",
    async (example) => {
      const r = await runBroker(["-t", "-c", path.join(REPO_ROOT, example)]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
    },
  );

  it.each(["deploy/examples/meshbroker.conf", "deploy/examples/full.conf"])(
    "accepts the shipped example %s (unimplemented keys only warn)",
    async (example) => {
      const file = path.join(REPO_ROOT, example);
      // From another working directory: includes resolve against the config file's directory.
      const r = await runBroker(["-t", "-c", file], { cwd: os.tmpdir() });
      expect(r.code, r.stderr).toBe(0);
      // Anything on stderr is a warning that names a key, at a file:line.
      for (const line of r.stderr.split("\n").filter(Boolean)) {
        expect(line).toMatch(/^warning: \S+:\d+: "[\w.]+" is not implemented yet/);
      }
    },
  );

  // Each bad config: the file text, the line the error must name, and a word the message must
  // contain. stderr must be exactly one `FILE:LINE: message` line.
  const BAD: Array<[string, string, number, string]> = [
    ["misspelt key", "host: 127.0.0.1\nmax_paylod: 1024\n", 2, "max_paylod"],
    ["bad value type", "host: 127.0.0.1\n\nmax_payload: \"big\"\n", 3, "max_payload"],
    ["bad value type in a block", "authorization {\n  user: a\n  timeout: \"soon\"\n}\n", 3, "timeout"],
    // The error is at the end of the file (line 5 after the last newline), as nats-server reports it.
    ["unterminated block", "port: 4222\nauthorization {\n  user: a\n  password: b\n", 5, "}"],
    ["missing include", "port: 4222\n# shared limits\ninclude ./nope/limits.conf\n", 3, "nope/limits.conf"],
    ["undefined variable", "port: 4222\nserver_name: $MESHBROKER_TEST_UNDEFINED\n", 2, "MESHBROKER_TEST_UNDEFINED"],
    ["cross-field check", "max_pending: 1MB\nmax_payload: 2MB\n", 2, "max_pending"],
    ["edge with routers and discovery", 'edge {\n  routers: ["r:7100"]\n  discovery { dns: "r.svc:7100" }\n}\n', 3, "not both"],
    ["router without redis", 'port: 4222\nrouter {\n  listen: "0.0.0.0:7100"\n}\n', 2, "redis"],
  ];

  it.each(BAD)("%s: exits 1 with FILE:LINE: message", async (name, text, line, word) => {
    const file = await conf(`bad-${name.replace(/\W+/g, "-")}.conf`, text);
    const env = { ...process.env };
    delete env.MESHBROKER_TEST_UNDEFINED;
    const r = await runBroker(["-t", "-c", file], { env });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    const prefix = `${file}:${line}: `;
    expect(r.stderr.startsWith(prefix), `stderr ${JSON.stringify(r.stderr)} should start with ${JSON.stringify(prefix)}`)
      .toBe(true);
    const message = r.stderr.slice(prefix.length);
    expect(message).toMatch(/^\S[^\n]*\n$/); // one line, nothing else
    expect(message).toContain(word);
  });

  it("an error in an included file names that file and its line", async () => {
    const inc = await conf("inc/limits.conf", "max_payload: 1MB\nmax_pendnig: 64MB\n");
    const file = await conf("with-include.conf", "port: 4222\ninclude ./inc/limits.conf\n");
    const r = await runBroker(["-t", "-c", file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^${escapeRe(inc)}:2: [^\\n]*max_pendnig[^\\n]*\\n$`));
  });

  it("a missing config file exits 1 naming the file", async () => {
    const file = path.join(dir, "does-not-exist.conf");
    const r = await runBroker(["-t", "-c", file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^${escapeRe(file)}:\\d+: [^\\n]+\\n$`));
  });
});

describe.concurrent.each(topologies)("meshbroker startup (%s)", (topology) => {
  const env = { ...process.env, MESHBROKER_TEST_TOPOLOGY: topology };
  it("prints one line per listener and serves on the ports it names", async () => {
    const file = await conf(`${topology}/startup.conf`, 'host: 127.0.0.1\nport: -1\nhttp: "127.0.0.1:-1"\n');
    const { proc, natsPort, httpPort } = await startBrokerProcess(["-c", file], { monitoring: true, env });
    await proc.waitForLine(/Server is ready/);
    const listening = proc.lines.filter((l) => /listening for/.test(l.text)).map((l) => l.text);
    expect(listening).toHaveLength(2);
    expect(listening.filter((l) => LISTEN_NATS.test(l))).toEqual([
      expect.stringMatching(new RegExp(`listening for NATS clients on 127\\.0\\.0\\.1:${natsPort}$`)),
    ]);
    expect(listening.filter((l) => LISTEN_MONITORING.test(l))).toEqual([
      expect.stringMatching(new RegExp(`listening for monitoring on 127\\.0\\.0\\.1:${httpPort}$`)),
    ]);

    const { info } = await raw(natsPort);
    expect(info.port).toBe(natsPort);
    const res = await fetch(`http://127.0.0.1:${httpPort}/healthz`);
    expect(await res.json()).toEqual({ status: "ok" });

    proc.signal("SIGINT");
    expect((await proc.exitWithin(10_000)).code).toBe(0);
  });

  it("without monitoring configured, prints only the NATS listener line", async () => {
    // Flags instead of a file: -a host, -p -1 (any free port).
    const { proc } = await startBrokerProcess(["-a", "127.0.0.1", "-p", "-1"], { env });
    await proc.waitForLine(/Server is ready/);
    expect(proc.lines.filter((l) => /listening for/.test(l.text))).toHaveLength(1);
    proc.signal("SIGINT");
    expect((await proc.exitWithin(10_000)).code).toBe(0);
  });
});

describe.concurrent.each(topologies)("SIGINT (%s)", (topology) => {
  const env = { ...process.env, MESHBROKER_TEST_TOPOLOGY: topology };
  it("delivers what a subscriber has pending, then exits 0 and closes the ports", async () => {
    const file = await conf(`${topology}/sigterm.conf`, 'host: 127.0.0.1\nport: -1\nhttp: "127.0.0.1:-1"\n');
    const { proc, natsPort, httpPort } = await startBrokerProcess(["-c", file], { monitoring: true, env });

    const COUNT = 2_000, SIZE = 4_096;
    const sub = await nats({ port: natsPort, name: "slow-reader" });
    let received = 0, bytes = 0;
    sub.subscribe("drain.me", { callback: (_err, m) => { received++; bytes += m.data.length; } });
    await sub.flush();

    // Stop reading on the subscriber's socket, so what the broker sends piles up there.
    const socket = (sub as unknown as { protocol?: { transport?: { socket?: { pause(): void; resume(): void } } } })
      .protocol?.transport?.socket;
    expect(socket, "nats.js internals changed: cannot reach the subscriber's socket").toBeDefined();
    socket!.pause();

    const pub = await nats({ port: natsPort });
    const payload = new Uint8Array(SIZE).fill(120);
    for (let i = 0; i < COUNT; i++) pub.publish("drain.me", payload);
    await pub.flush(); // the broker has taken every PUB, so every MSG is queued for the subscriber

    const connz = await (await fetch(`http://127.0.0.1:${httpPort}/connz?sort=pending`)).json() as
      { connections: Array<{ name?: string; pending_bytes: number }> };
    const pending = connz.connections.find((c) => c.name === "slow-reader")?.pending_bytes ?? 0;
    expect(pending, "the subscriber should have data pending at the broker").toBeGreaterThan(0);

    const mark = proc.mark();
    proc.signal("SIGINT");
    await proc.waitForLine(/SIGINT/, 5_000, { since: mark });
    socket!.resume();

    await sub.closed();
    expect(received).toBe(COUNT);
    expect(bytes).toBe(COUNT * SIZE);
    expect((await proc.exitWithin(10_000)).code).toBe(0);
    expect(await isListening(natsPort)).toBe(false);
    expect(await isListening(httpPort!)).toBe(false);
  });
});

describe.concurrent.each(topologies)("SIGHUP reload (%s)", (topology) => {
  const env = { ...process.env, MESHBROKER_TEST_TOPOLOGY: topology };
  const PAYLOAD_2000 = "x".repeat(2000);

  it("max_payload: a new connection gets the reloaded limit", async () => {
    const file = await conf(`${topology}/reload-payload.conf`, "host: 127.0.0.1\nport: -1\nmax_payload: 1024\n");
    const { proc, natsPort } = await startBrokerProcess(["-c", file], { env });

    const before = await raw(natsPort);
    expect(before.info.max_payload).toBe(1024);
    await before.c.send(`CONNECT {"verbose":false,"pedantic":false}\r\nPUB foo 2000\r\n${PAYLOAD_2000}\r\n`);
    await before.c.expect("-ERR 'Maximum Payload Violation'\r\n");
    await closedWithin(before.c);

    await writeFile(file, "host: 127.0.0.1\nport: -1\nmax_payload: 4096\n");
    expect(await reload(proc)).toMatch(/Reloaded: /);

    const after = await raw(natsPort);
    expect(after.info.max_payload).toBe(4096);
    await after.c.send(`CONNECT {"verbose":false,"pedantic":false}\r\nSUB foo 1\r\nPUB foo 2000\r\n${PAYLOAD_2000}\r\nPING\r\n`);
    await after.c.expect(`MSG foo 1 2000\r\n${PAYLOAD_2000}\r\nPONG\r\n`);
    expect(after.c.received()).not.toContain("-ERR");

    proc.signal("SIGINT");
    expect((await proc.exitWithin(10_000)).code).toBe(0);
  });

  it("authorization: new clients need the credentials after the reload", async () => {
    const file = await conf(`${topology}/reload-auth.conf`, "host: 127.0.0.1\nport: -1\n");
    const { proc, natsPort } = await startBrokerProcess(["-c", file], { env });
    const open = await nats({ port: natsPort });
    await open.flush();

    await writeFile(file, "host: 127.0.0.1\nport: -1\nauthorization { user: a, password: b }\n");
    expect(await reload(proc)).toMatch(/Reloaded: /);

    const anon = await raw(natsPort);
    expect(anon.info.auth_required).toBe(true);
    await anon.c.send('CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n');
    await anon.c.expect("-ERR 'Authorization Violation'\r\n");
    await closedWithin(anon.c);
    expect(anon.c.received()).not.toContain("PONG");

    const err = await nats({ port: natsPort }).then(() => undefined, (e: NatsError) => e);
    expect(err?.code).toBe("AUTHORIZATION_VIOLATION");

    const nc = await nats({ port: natsPort, user: "a", pass: "b" });
    const sub = nc.subscribe("auth.ok", { max: 1 });
    nc.publish("auth.ok", new TextEncoder().encode("in"));
    for await (const m of sub) expect(new TextDecoder().decode(m.data)).toBe("in");

    proc.signal("SIGINT");
    expect((await proc.exitWithin(10_000)).code).toBe(0);
  });

  it("authorization: a connected client without credentials is disconnected (as nats-server does)", async () => {
    const file = await conf(`${topology}/reload-auth-existing.conf`, "host: 127.0.0.1\nport: -1\n");
    const { proc, natsPort } = await startBrokerProcess(["-c", file], { env });
    const old = await raw(natsPort);
    await old.c.send('CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n');
    await old.c.expect("PONG\r\n");

    await writeFile(file, "host: 127.0.0.1\nport: -1\nauthorization { user: a, password: b }\n");
    expect(await reload(proc)).toMatch(/Reloaded: /);

    // nats-server 2.9 re-checks every client on reload and closes those no longer authorized.
    await old.c.send("PING\r\n");
    await old.c.expect("-ERR 'Authorization Violation'\r\n", 2_000);
    await closedWithin(old.c);
  });

  it("a reload that changes what needs a restart (system account, listener port) is refused whole", async () => {
    const accounts = "accounts { A: { users: [{user: a, password: a}] }, B: { users: [{user: b, password: b}] } }\n";
    const file = await conf(`${topology}/reload-fixed.conf`, `host: 127.0.0.1\nport: -1\nmax_payload: 1024\n${accounts}system_account: A\n`);
    const { proc, natsPort } = await startBrokerProcess(["-c", file], { env });

    for (const [changed, text] of [
      ["systemAccount", `host: 127.0.0.1\nport: -1\nmax_payload: 4096\n${accounts}system_account: B\n`],
      ["port", `host: 127.0.0.1\nport: ${natsPort + 1}\nmax_payload: 4096\n${accounts}system_account: A\n`],
    ]) {
      await writeFile(file, text);
      expect(await reload(proc)).toContain(`Failed to reload configuration: config reload not supported for ${changed}`);
      expect((await raw(natsPort)).info.max_payload, `${changed}: nothing of the reload applies`).toBe(1024);
    }
    proc.signal("SIGINT");
    expect((await proc.exitWithin(10_000)).code).toBe(0);
  });

  it("is handled as soon as the listener line is printed (the process must not die of it)", async () => {
    // With monitoring on, the broker prints the NATS line, then binds the monitoring port; a
    // SIGHUP in between must already reload (nats-server traps signals before it listens).
    const file = await conf(`${topology}/reload-early.conf`, 'host: 127.0.0.1\nport: -1\nhttp: "127.0.0.1:-1"\n');
    const proc = spawnBroker(["-c", file], { env });
    await proc.waitForLine(LISTEN_NATS, 10_000);
    proc.signal("SIGHUP");
    const reloaded = proc.waitForLine(/Reloaded/, 5_000).then(() => undefined);
    reloaded.catch(() => {}); // if the process died, `exited` wins the race below
    const exit = await Promise.race([proc.exited, reloaded]);
    expect(exit, "killed by a SIGHUP that arrived right after the listener line").toBeUndefined();
    await proc.waitForLine(/Server is ready/);
    proc.signal("SIGINT");
    expect((await proc.exitWithin(10_000)).code).toBe(0);
  });

  it("a bad config is logged with file:line and the old config stays in force", async () => {
    const file = await conf(`${topology}/reload-bad.conf`, "host: 127.0.0.1\nport: -1\nmax_payload: 1024\n");
    const { proc, natsPort } = await startBrokerProcess(["-c", file], { env });

    await writeFile(file, "host: 127.0.0.1\nport: -1\nmax_payload: \"lots\"\n");
    const mark = proc.mark();
    const logged = await reload(proc);
    expect(logged).toMatch(new RegExp(`\\[ERR\\] .*Failed to reload configuration: ${escapeRe(file)}:3: .*max_payload`));
    expect(proc.lines.slice(mark).some((l) => /Reloaded/.test(l.text))).toBe(false);
    expect(proc.child.exitCode).toBeNull();

    const still = await raw(natsPort);
    expect(still.info.max_payload).toBe(1024);
    await still.c.send(`CONNECT {"verbose":false,"pedantic":false}\r\nPUB foo 2000\r\n${PAYLOAD_2000}\r\n`);
    await still.c.expect("-ERR 'Maximum Payload Violation'\r\n");

    // A fixed file reloads normally afterwards.
    await writeFile(file, "host: 127.0.0.1\nport: -1\nmax_payload: 4096\n");
    expect(await reload(proc)).toMatch(/Reloaded: /);
    expect((await raw(natsPort)).info.max_payload).toBe(4096);

    proc.signal("SIGINT");
    expect((await proc.exitWithin(10_000)).code).toBe(0);
  });
});

describe("process helper", () => {
  it("waitForLine fails with the output when the process exits first", async () => {
    const p = spawnBroker(["--version"]);
    await expect(p.waitForLine(/never printed/)).rejects.toThrow(/exited .*meshbroker \d/s);
    expect((await p.exited).code).toBe(0);
  });
});

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
