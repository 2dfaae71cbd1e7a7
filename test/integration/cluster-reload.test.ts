// SIGHUP on an edge of the cluster: a changed account definition reaches its router, which
// applies it to what its edge's clients publish, across the mesh too.
import { readFile, writeFile } from "node:fs/promises";
import { StringCodec } from "nats";
import { afterAll, beforeAll, expect, it } from "vitest";
import { natsClient } from "../helpers/clients.js";
import { startCluster, type TestCluster } from "../helpers/cluster.js";
import { reload } from "../helpers/process.js";
import { cleanupAfterEach, firstData } from "../helpers/wait.js";

const sc = StringCodec();
const ACCOUNTS = `
accounts {
  A: { users: [{ user: a, password: pw }], exports: [{ stream: "news.>" }] }
  B: { users: [{ user: b, password: pw }] }
}`;
let cluster: TestCluster;
beforeAll(async () => { cluster = await startCluster({ edgeConfig: ACCOUNTS }); }, 30_000);
afterAll(() => cluster?.stop());
const cleanups = cleanupAfterEach();

it("an import added by SIGHUP on edge 1 applies to its publishers, for subscribers behind the other router", async () => {
  const e1 = cluster.edges[0];
  const file = e1.proc.child.spawnargs[e1.proc.child.spawnargs.length - 1];
  const pubA = await natsClient(cleanups, e1.natsPort, { user: "a", pass: "pw" });
  const subB = await natsClient(cleanups, cluster.edges[1].natsPort, { user: "b", pass: "pw" });
  const got: string[] = [];
  subB.subscribe("news.>", { callback: (_, m) => got.push(sc.decode(m.data)) });
  await subB.flush();
  pubA.publish("news.x", sc.encode("before"));
  await pubA.flush();
  await subB.flush();
  expect(got).toEqual([]); // B imports nothing yet

  const text = await readFile(file, "utf8");
  await writeFile(file, text.replace("B: { users: [{ user: b, password: pw }] }",
    'B: { users: [{ user: b, password: pw }], imports: [{ stream: { account: A, subject: "news.>" } }] }'));
  expect(await reload(e1.proc)).toMatch(/Reloaded: .*accounts/);
  // The reload's account set went to router 1 before this flush's ping.
  await pubA.flush();
  const sub2 = subB.subscribe("news.y", { max: 1 });
  await subB.flush();
  pubA.publish("news.y", sc.encode("after"));
  expect(await firstData(sub2)).toBe("after");
});
