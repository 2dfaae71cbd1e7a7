// SIGHUP on a router process (`meshbroker router`): logging and the cluster credential apply
// live (attached edges stay; new attaches need the new credential); what is bound or shared at
// start (listen, redis, server_name, tls, ...) refuses the whole reload with a clear line, and
// nothing of that file applies.
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { StringCodec } from "nats";
import { afterAll, beforeAll, expect, it } from "vitest";
import { natsClient } from "../helpers/clients.js";
import { ATTACHED, CLUSTER_TOKEN, startCluster, type TestCluster } from "../helpers/cluster.js";
import { reload, spawnBroker } from "../helpers/process.js";
import { cleanupAfterEach, firstData } from "../helpers/wait.js";

const sc = StringCodec();
let cluster: TestCluster;
beforeAll(async () => { cluster = await startCluster({ routers: 1, edges: 1 }); }, 30_000);
afterAll(() => cluster?.stop());
const c = cleanupAfterEach();

/** Rewrites router 0's config with `edit`, sends SIGHUP, resolves with the line it logged. */
async function reloadRouter(edit: (text: string) => string): Promise<string> {
  const r = cluster.routers[0];
  await writeFile(r.file, edit(await readFile(r.file, "utf8")));
  return reload(r.proc);
}

/** An edge process with `token`, on router 0: resolves with the first line saying whether it attached. */
async function edgeWithToken(token: string): Promise<string> {
  const file = path.join(path.dirname(cluster.routers[0].file), `extra-${token}.conf`);
  const r = cluster.routers[0];
  await writeFile(file, `server_name: extra-${token}\nhost: 127.0.0.1\nport: -1\nedge { routers: ["${r.host}:${r.port}"], authorization { token: "${token}" } }\n`);
  const proc = spawnBroker(["edge", "-c", file]);
  c.push(() => proc.kill());
  return (await proc.waitForLine(new RegExp(`${ATTACHED.source}|cannot attach to router .*`), 10_000))[0];
}

/** A message across the attached edge still flows. */
async function stillRouting(): Promise<void> {
  const nc = await natsClient(c, cluster.edges[0].natsPort);
  const sub = nc.subscribe("reload.check", { max: 1 });
  await nc.flush();
  nc.publish("reload.check", sc.encode("ok"));
  expect(await firstData(sub)).toBe("ok");
}

it("a new cluster token and debug logging apply live: the attached edge stays, new attaches need the new token", async () => {
  const mark = cluster.edges[0].proc.mark();
  const line = await reloadRouter((t) => `debug: true\n${t.replace(CLUSTER_TOKEN, "rotated-token")}`);
  expect(line).toMatch(/Reloaded: log, router\.authorization$/);
  await stillRouting();
  expect(cluster.edges[0].proc.lines.slice(mark).map((l) => l.text).join("\n")).not.toMatch(/lost router|re-attach/);
  // The two edges start side by side (a process start is most of this test's time).
  const [old, rotated] = await Promise.all([edgeWithToken(CLUSTER_TOKEN), edgeWithToken("rotated-token")]);
  expect(old).toMatch(/cannot attach to router .*wrong cluster token/);
  expect(rotated).toMatch(ATTACHED);
  // Debug lines now appear ([DBG]), as nats-server's -D would give.
  expect(cluster.routers[0].proc.lines.slice(mark).some((l) => /\[DBG\]/.test(l.text))).toBe(true);
}, 30_000);

it.each([
  ["router.redis", (t: string) => t.replace(/redis: "redis:\/\/127\.0\.0\.1:(\d+)"/, 'redis: "redis://127.0.0.1:1"')],
  ["router.port", (t: string) => t.replace(/listen: "127\.0\.0\.1:-1"/, 'listen: "127.0.0.1:1"')],
  ["serverName", (t: string) => t.replace(/^server_name: r1$/m, "server_name: r9")],
])("changing %s is refused whole: logged, and the new token in the same file does not apply", async (key, edit) => {
  const before = await readFile(cluster.routers[0].file, "utf8");
  c.push(() => writeFile(cluster.routers[0].file, before));
  const line = await reloadRouter((t) => {
    const changed = edit(t);
    expect(changed).not.toBe(t);
    return changed.replace("rotated-token", "never-applied");
  });
  expect(line).toContain(`Failed to reload configuration: config reload not supported for ${key}`);
  const [never, rotated] = await Promise.all([edgeWithToken("never-applied"), edgeWithToken("rotated-token")]);
  expect(never).toMatch(/cannot attach to router .*wrong cluster token/);
  expect(rotated).toMatch(ATTACHED);
  await stillRouting();
}, 30_000);
