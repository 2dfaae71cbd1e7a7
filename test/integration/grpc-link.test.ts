// The gRPC carrier in process, with a real grpc-js server and client: an edge that stops
// reading costs the router a bounded queue, then its link is reset (RESOURCE_EXHAUSTED) and
// its interest dropped; the edge link replays interest on a new stream.
import * as grpc from "@grpc/grpc-js";
import { afterEach, expect, it } from "vitest";
import { Logger } from "../../services/common/log.js";
import { staticRouters } from "../../services/router/grpc/discovery.js";
import { createGrpcLink } from "../../services/router/grpc/edge-link.js";
import { createRouterServer, type RouterServer } from "../../services/router/grpc/server.js";
import { ATTACH_PATH } from "../../services/router/grpc/service.js";
import type { MessageData, Subscriber } from "../../services/router/link.js";
import { Router } from "../../services/router/router.js";
import { edgeFrames } from "../../services/router/wire/codec.js";
import { askUntil, Cleanups, withTimeout } from "../helpers/wait.js";

const cleanups = new Cleanups();
afterEach(() => cleanups.run());

async function routerServer(queueBytes?: number): Promise<{ rs: RouterServer; router: Router; port: number; log: string[] }> {
  const log: string[] = [];
  const logger = new Logger({ debug: false, trace: false, logtime: false, format: "text" }, (l) => log.push(l));
  const router = new Router();
  const rs = createRouterServer({ router, log: logger, routerId: "r1", queueBytes });
  const port = await rs.bind("127.0.0.1", 0);
  cleanups.push(() => rs.close());
  return { rs, router, port, log };
}

/** The router's subscription count, read on a later turn: the router's stats answer at once,
 *  and askUntil must let the streams' I/O run between questions. */
async function subscriptions(router: Router): Promise<number> {
  await new Promise((r) => setTimeout(r, 5));
  return (await router.stats()).subscriptions;
}

const ORIGIN = { edgeId: "local", cid: 1, echo: true };
function message(size: number): MessageData {
  const buf = Buffer.alloc(size, 0x61);
  return { buf, start: 0, end: size, hdrLen: 0 };
}

it("an edge that stops reading: the router queues up to its bound, then resets the link and drops the edge's interest", async () => {
  const BOUND = 256 * 1024;
  const { rs, router, port, log } = await routerServer(BOUND);
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  cleanups.push(() => client.close());
  const call = client.makeBidiStreamRequest(ATTACH_PATH, (b: Buffer) => b, (b: Buffer) => b);
  call.on("error", () => {});
  call.write(edgeFrames.encode({ ops: [
    { op: "hello", hello: { edgeId: "slow-edge" } },
    { op: "interest", interest: { account: "A", subject: "big", weightDelta: 1, sub: { connectionId: 1, sid: "1" } } },
  ] }));
  let frames = 0;
  call.on("data", () => { if (++frames === 1) call.pause(); }); // HelloReply, then it stops reading
  await askUntil(() => subscriptions(router), (n) => n === 1);
  const SIZE = 32 * 1024;
  let published = 0;
  await withTimeout((async () => {
    while (rs.edges().length > 0) {
      // One message object per publish, as a real edge's: one Deliver op each.
      for (let i = 0; i < 8; i++, published++) router.publish("A", "big", undefined, message(SIZE), ORIGIN);
      await new Promise((r) => setImmediate(r));
    }
  })(), 10_000, () => `the link of the slow edge still up after ${published} messages`);
  // What reached the queue: grpc-js's 16 frames, HTTP/2 windows, then at most the bound.
  expect(published * SIZE).toBeLessThan(BOUND + 16 * 8 * SIZE + 4 * 1024 * 1024);
  expect(log.join("\n")).toMatch(/edge slow-edge detached: edge too slow: over 262144 bytes queued/);
  expect((await router.stats()).subscriptions).toBe(0);
});

it("the edge link re-attaches after its router restarts, replays its subscriptions, then sends what was published meanwhile", async () => {
  const first = await routerServer();
  const lines: string[] = [];
  const link = createGrpcLink({
    routers: staticRouters([{ host: "127.0.0.1", port: first.port }]),
    log: new Logger({ debug: false, trace: false, logtime: false, format: "text" }, (l) => lines.push(l)),
  });
  cleanups.push(() => link.close());
  link.configureAccounts("edge-1", { version: "v", accounts: [], systemAccount: "" });
  const got: string[] = [];
  const sub: Subscriber = {
    subject: "replayed", queue: undefined, sid: "7", conn: { edgeId: "edge-1", cid: 3, echo: true },
    deliver: (subject, _reply, msg) => got.push(`${subject}:${msg.buf.toString("latin1", msg.start, msg.end)}`),
  };
  link.subscribe("A", sub);
  await askUntil(() => subscriptions(first.router), (n) => n === 1);
  await first.rs.close();
  await askUntil(async () => { await new Promise((r) => setTimeout(r, 5)); return link.attachedTo(); }, (a) => a === undefined);
  const origin = { edgeId: "other", cid: 1, echo: true };
  // Published while detached: buffered, and sent after the replay.
  link.publish("A", "replayed", undefined, { buf: Buffer.from("kept"), start: 0, end: 4, hdrLen: 0 }, origin);
  // A new router on the same port: the edge finds it on its next round.
  const second = createRouterServer({ router: new Router(), log: new Logger({ debug: false, trace: false, logtime: false, format: "text" }, () => {}), routerId: "r2" });
  cleanups.push(() => second.close());
  await askUntil(() => second.bind("127.0.0.1", first.port).then(() => true, () => false), (ok) => ok);
  await askUntil(async () => { await new Promise((r) => setTimeout(r, 5)); return link.attachedTo(); }, (a) => a !== undefined, 5_000);
  expect(lines.join("\n")).toMatch(/attached to router r2 at 127\.0\.0\.1:\d+ \(re-attached \d+ ms after the loss\)/);
  // The replayed interest is on the new router: a publish there reaches the edge.
  await askUntil(async () => {
    link.publish("A", "replayed", undefined, message(3), origin);
    await new Promise<void>((r) => link.sync(r));
    return got.length;
  }, (n) => n > 0, 3_000);
  expect(got[0]).toBe("replayed:kept");
});

it("a Hello read late from a stream the edge gave up (sent before its attached stream's) is refused; the attached stream stays", async () => {
  const { rs, router, port, log } = await routerServer();
  const open = () => {
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    const call = client.makeBidiStreamRequest(ATTACH_PATH, (b: Buffer) => b, (b: Buffer) => b);
    const errors: string[] = [];
    call.on("error", (err: grpc.ServiceError) => errors.push(err.details));
    call.on("data", () => {});
    return { call, errors };
  };
  const sentAtUs = Date.now() * 1000;
  const live = open();
  live.call.write(edgeFrames.encode({ ops: [{ op: "hello", hello: { edgeId: "e1", sentAtUs } }] }));
  await askUntil(async () => { await new Promise((r) => setTimeout(r, 5)); return rs.edges(); }, (e) => e.includes("e1"));
  const stale = open();
  const refused = new Promise<void>((resolve) => stale.call.once("error", () => resolve()));
  stale.call.write(edgeFrames.encode({ ops: [{ op: "hello", hello: { edgeId: "e1", sentAtUs: sentAtUs - 2_000_000 } }] }));
  await withTimeout(refused, 3_000, () => `the stale stream was not refused; the live one got ${JSON.stringify(live.errors)}`);
  expect(log.join("\n")).toMatch(/refused an attach .*: an older stream of the edge than the one attached/);
  // The live stream still carries the edge: its interest reaches the router.
  live.call.write(edgeFrames.encode({ ops: [
    { op: "interest", interest: { account: "A", subject: "still", weightDelta: 1, sub: { connectionId: 1, sid: "1" } } },
  ] }));
  await askUntil(() => subscriptions(router), (n) => n === 1);
  expect(live.errors).toEqual([]);
  expect(rs.edges()).toEqual(["e1"]);
});
