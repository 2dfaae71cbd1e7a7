// The container image (deploy/Dockerfile), built once with ../shared/tools/image-build and run
// with image-run (buildah, chroot isolation). That is not a container: no network namespace (the
// broker listens on the host's ports, so the test's config asks for free ones), no PID
// namespace, no read-only root. What the image promises is checked as closely as that allows:
// - read-only root: the broker runs as the image's user with /tmp, /var/tmp and /run/lock (the
//   only other paths that user could write) mounted read-only, so /data is its one writable path;
// - PID 1: node as PID 1 of a real PID namespace (unshare) gets SIGTERM, as in a container.
import { chmod, chown, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { StringCodec } from "nats";
import { natsClient } from "../helpers/clients.js";
import { collect, connectMqtt, suback, tempDir } from "../helpers/mqtt.js";
import { BIN, BIN_NODE_FLAGS, REPO_ROOT, runCommand, spawnCommand, type BrokerProcess } from "../helpers/process.js";
import { cleanupAfterEach, firstData } from "../helpers/wait.js";

const TOOLS = process.env.IMAGE_TOOLS ?? join(REPO_ROOT, "../shared/tools");
const IMAGE_BUILD = join(TOOLS, "image-build");
const IMAGE_RUN = join(TOOLS, "image-run");
const IMAGE = process.env.TEST_IMAGE ?? "meshbroker:test";
const UID = 10001;
const sc = StringCodec();

const cleanups = cleanupAfterEach();

/** A temp dir removed after the test; `owner` chowns it (the image's user must write it). */
async function ownedDir(prefix: string, owner?: number): Promise<string> {
  const dir = await tempDir(cleanups, prefix);
  if (owner !== undefined) await chown(dir, owner, owner);
  return dir;
}

/** `image-run` options that leave the image's user no writable path but a host dir on /data,
 *  as a read-only root filesystem with a /data volume does. */
async function readOnlyRoot(): Promise<{ args: string[]; data: string }> {
  const empty = await ownedDir("meshbroker-image-ro-");
  await chmod(empty, 0o1777); // as /tmp is: only the read-only mount keeps the user out
  const data = await ownedDir("meshbroker-image-data-", UID);
  const args = ["/tmp", "/var/tmp", "/run/lock"].flatMap((p) => ["-v", `${empty}:${p}:ro`]);
  return { args: [...args, "-v", `${data}:/data`], data };
}

function imageRun(args: string[], timeoutMs = 60_000) {
  return runCommand(IMAGE_RUN, args, { timeoutMs });
}

/** The lines of the broker's startup that name the ports it took. */
const LISTEN = {
  nats: /listening for NATS clients on \S+:(\d+)$/,
  mqtt: /listening for MQTT clients on tcp:\/\/\S+:(\d+)$/,
  http: /listening for monitoring on \S+:(\d+)$/,
};

async function ports(proc: BrokerProcess, timeoutMs: number): Promise<{ nats: number; mqtt: number; http: number }> {
  const [nats, mqtt, http] = await Promise.all(
    [LISTEN.nats, LISTEN.mqtt, LISTEN.http].map(async (re) => Number((await proc.waitForLine(re, timeoutMs))[1])),
  );
  return { nats, mqtt, http };
}

/** The test config: the image's own ports would clash on the host's network. */
const TEST_CONFIG = `
host: 127.0.0.1
port: -1
http: "127.0.0.1:-1"
server_name: image-test
mqtt { host: 127.0.0.1, port: -1, store_dir: "/data/mqtt" }
`;

beforeAll(async () => {
  const started = Date.now();
  const build = await runCommand(IMAGE_BUILD, ["-f", "deploy/Dockerfile", "-t", IMAGE, "-q", "."], { timeoutMs: 14 * 60_000 });
  if (build.code !== 0) throw new Error(`image-build failed (${build.code}):\n${build.stdout}${build.stderr}`);
  const size = `${build.stdout}${build.stderr}`.match(/built, (\d+ MB)/)?.[1];
  process.stdout.write(`image ${IMAGE}: ${size ?? "size not reported"}, built in ${Math.round((Date.now() - started) / 1000)} s\n`);
});

describe("container image", () => {
  it("runs as UID 10001 and, with a read-only root, can write /data only", async () => {
    const { args } = await readOnlyRoot();
    const r = await imageRun([...args, "--entrypoint", "", IMAGE, "--", "sh", "-c",
      "id -u; find / -xdev \\( -path /proc -o -path /sys -o -path /dev \\) -prune -o -writable -print 2>/dev/null || true"]);
    expect(r.stdout.trim().split("\n")).toEqual([String(UID), "/data"]);
    expect(r.code).toBe(0);
  });

  it("loads the native addons from their prebuilt binaries, and its default config is valid", async () => {
    const addons = await imageRun(["--entrypoint", "", IMAGE, "--", "node", "-e",
      `const { dirname } = require("path");
       for (const m of ["classic-level", "bufferutil"]) {
         const dir = dirname(require.resolve(m + "/package.json"));
         require("node-gyp-build")(dir);
         console.log(m, require("node-gyp-build").path(dir));
       }`]);
    expect(addons.stderr).toBe("");
    expect(addons.stdout).toMatch(/^classic-level \/app\/node_modules\/classic-level\/prebuilds\/linux-x64\/\S+\.node$/m);
    expect(addons.stdout).toMatch(/^bufferutil \/app\/node_modules\/bufferutil\/prebuilds\/linux-x64\/\S+\.node$/m);

    const check = await imageRun([IMAGE, "--", "-t", "-c", "/etc/meshbroker/meshbroker.conf"]);
    expect(check.stdout).toBe("configuration /etc/meshbroker/meshbroker.conf is valid\n");
    expect(check.code).toBe(0);
  });

  it("serves NATS and MQTT clients with its default command, keeps MQTT state in /data, and exits 0 on SIGTERM", async () => {
    const conf = await ownedDir("meshbroker-image-conf-");
    await writeFile(join(conf, "meshbroker.conf"), TEST_CONFIG);
    await chmod(conf, 0o755);
    const { args, data } = await readOnlyRoot();
    // The config mounted where the image's CMD reads it (as the chart's ConfigMap is); no
    // arguments, so ENTRYPOINT + CMD run unchanged.
    const run = spawnCommand(IMAGE_RUN, [...args, "-v", `${conf}:/etc/meshbroker:ro`, IMAGE]);
    cleanups.push(async () => { run.signal("SIGTERM"); await run.exitWithin(20_000); }); // image-run stops its container
    const port = await ports(run, 30_000);
    await run.waitForLine(/Server is ready$/, 10_000);

    const health = await fetch(`http://127.0.0.1:${port.http}/healthz`);
    expect(health.status).toBe(200);

    const nc = await natsClient(cleanups, port.nats);
    const natsSub = nc.subscribe("image.nats");
    const fromMqtt = nc.subscribe("image.mqtt");
    nc.publish("image.nats", sc.encode("over NATS"));
    expect(await firstData(natsSub)).toBe("over NATS");

    // MQTT QoS 1 into a persistent session (LevelDB in /data), seen by MQTT and NATS subscribers
    const url = `mqtt://127.0.0.1:${port.mqtt}`;
    const subscriber = await connectMqtt(cleanups, url, { clientId: "image-sub", clean: false });
    expect(await suback(subscriber, { "image/mqtt": { qos: 1 } })).toEqual([1]);
    const inbox = collect(subscriber);
    const publisher = await connectMqtt(cleanups, url, { clientId: "image-pub" });
    await publisher.publishAsync("image/mqtt", "over MQTT", { qos: 1 });
    expect((await inbox.next()).payload).toBe("over MQTT");
    expect(await firstData(fromMqtt)).toBe("over MQTT");
    expect(await readdir(join(data, "mqtt"))).toContain("CURRENT");

    // With no client left, lame duck ends at once. The signal goes to the broker alone, as a
    // runtime sends it to PID 1: `image-run --stop` also signals buildah's chroot helper, whose
    // death SIGKILLs the command (its parent-death signal), so it cannot show a clean exit.
    const [, pid] = run.lines.map((l) => l.text.match(/^\[(\d+)\] .*Server is ready$/)).find((m) => m) ?? [];
    // The ENTRYPOINT is bin/meshbroker itself: its shebang's node flags apply, env exec'd node.
    const argv = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0");
    expect(argv[0]).toMatch(/(^|\/)node$/);
    expect(argv.slice(1)).toEqual([...BIN_NODE_FLAGS, "/app/bin/meshbroker", "-c", "/etc/meshbroker/meshbroker.conf", ""]);
    await Promise.all([nc.close(), subscriber.endAsync(), publisher.endAsync()]);
    process.kill(Number(pid), "SIGTERM");
    const exit = await run.exitWithin(15_000); // image-run exits with the command's status
    expect(run.stdout() + run.stderr()).toMatch(/Trapped "SIGTERM" signal, entering lame duck mode[\s\S]*Server Exiting\.\./);
    expect(exit).toEqual({ code: 0, signal: null });
  });

  it("node as PID 1 of a PID namespace (as in a container) traps SIGTERM and exits 0: no init needed", async () => {
    const conf = await ownedDir("meshbroker-image-pid1-");
    await writeFile(join(conf, "pid1.conf"), "host: 127.0.0.1\nport: -1\n");
    // the image's ENTRYPOINT, bin/meshbroker (its shebang execs node), as PID 1 of a new PID namespace
    const ns = spawnCommand("unshare", ["--pid", "--fork", "--kill-child", BIN, "-c", join(conf, "pid1.conf")]);
    cleanups.push(() => ns.kill());
    await ns.waitForLine(/Server is ready/, 10_000);
    const pid1 = Number((await readFile(`/proc/${ns.pid}/task/${ns.pid}/children`, "utf8")).trim().split(" ")[0]);
    expect(await readFile(`/proc/${pid1}/status`, "utf8")).toMatch(new RegExp(`^NSpid:\\s+${pid1}\\s+1$`, "m"));
    // From the parent namespace, as the runtime sends it: the kernel drops signals to a PID 1
    // that has no handler for them, so this exit proves meshbroker's own handler ran.
    process.kill(pid1, "SIGTERM");
    const exit = await ns.exitWithin(10_000);
    expect(ns.stdout() + ns.stderr()).toMatch(/Trapped "SIGTERM" signal[\s\S]*Server Exiting\.\./);
    expect(exit).toEqual({ code: 0, signal: null });
  });
});
