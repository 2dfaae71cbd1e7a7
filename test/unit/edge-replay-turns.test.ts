// An edge that re-attached to another router replays its MQTT connections' attaches a share per
// event-loop turn (18,000 at once held an edge 150-180 ms), and an op of a connection not replayed
// yet sends that connection's attach first, so the router never sees its op before its attach.
// Its NATS subscriptions go a share per turn too (100,000 at once held an edge 100-155 ms), with
// the edge's publishes and syncs held until the last.
// Real Router and SessionService ends on the memory store, over the wire codec (as the
// serialised link), with the edge's carrier moved from router A to router B.
import { describe, expect, it } from "vitest";
import { EdgeEnd } from "../../services/router/wire/edge-end.js";
import { RouterEnd } from "../../services/router/wire/router-end.js";
import { edgeFrames, WireError } from "../../services/router/wire/codec.js";
import type { EdgeOp } from "../../services/router/wire/frames.js";
import { carryFrames, createSerialisedLink } from "../../services/router/link-serialised.js";
import type { Connection, MessageData, SessionAttach, Subscriber } from "../../services/router/link.js";
import { recordingClient, sessionRouter } from "../helpers/session-client.js";
import { turnsUntil } from "../helpers/wait.js";

const N = 3_000;
/** REPLAYS_PER_TURN in edge-end.ts. */
const PER_TURN = 1_024;

function routerSide() {
  const { router, service } = sessionRouter();
  return { router, service, end: new RouterEnd(router, () => {}) };
}

/** INTEREST_REPLAYS_PER_TURN in edge-end.ts. */
const INTEREST_PER_TURN = 8_192;

/** From now on, the number of `counted` ops in each frame the edge sends. */
function opsPerFrame(edge: EdgeEnd, counted: (op: EdgeOp) => boolean): number[] {
  const perFrame: number[] = [];
  const write = edge.carrier!.write;
  edge.carrier = {
    write: (bytes) => {
      const decoded = edgeFrames.decode(bytes);
      if (decoded instanceof WireError) throw decoded;
      perFrame.push(decoded.ops.filter(counted).length);
      write(bytes);
    },
  };
  return perFrame;
}

const payload = (text: string): MessageData => {
  const buf = Buffer.from(text);
  return { buf, start: 0, end: buf.length, hdrLen: 0 };
};

describe("an edge's replay after moving to another router", () => {
  it(`${N} MQTT connections attach again a share per turn; an op of the last one goes behind its attach at once`, async () => {
    const a = routerSide();
    const edge = new EdgeEnd(() => {});
    carryFrames(edge, a.end);
    const clients = Array.from({ length: N }, () => recordingClient());
    const conns = Array.from({ length: N }, (_, i): Connection => ({ edgeId: "e1", cid: i + 1, echo: true }));
    await Promise.all(conns.map((conn, i) => {
      const req: SessionAttach = { conn, clientId: `c${i}`, account: "$G", clean: true, subscribe: undefined, will: undefined };
      return edge.sessions.attach(req, clients[i].c);
    }));

    // Router A is lost; the edge attaches to B, where a NATS client listens.
    const b = routerSide();
    const seen: string[] = [];
    const watcher = createSerialisedLink(b.router);
    watcher.subscribe("$G", { subject: "check", queue: undefined, sid: "1", conn: { edgeId: "w", cid: 1, echo: true },
      deliver: (_s, _r, msg) => void seen.push(msg.buf.subarray(msg.start + msg.hdrLen, msg.end).toString()) });
    await new Promise<void>((resolve) => watcher.sync(resolve));
    let attached = 0;
    const attach = b.service.attach.bind(b.service);
    b.service.attach = (req, client) => { attached++; return attach(req, client); };
    edge.detach();
    carryFrames(edge, b.end);
    const perFrame = opsPerFrame(edge, (op) => Boolean(op.session?.attach));
    edge.attach();
    // The last connection is not replayed yet: its QoS 0 publish sends its attach first.
    edge.sessions.publish(conns[N - 1], "check", { topic: "check", payload: Buffer.from("from the last"), qos: 0, retain: false });

    await turnsUntil(() => attached >= N && seen.length > 0, 2_000, () => `${attached} attached, ${seen.length} seen`);
    expect(seen).toEqual(["from the last"]);
    expect(perFrame.reduce((x, y) => x + y, 0)).toBe(N);
    expect(Math.max(...perFrame)).toBeLessThanOrEqual(PER_TURN + 1);
    expect(perFrame.filter((n) => n > 0).length).toBeGreaterThanOrEqual(Math.ceil(N / PER_TURN));
    expect(clients.reduce((sum, c) => sum + c.closed(), 0)).toBe(0);
    edge.close();
    watcher.close();
    await Promise.all([a.service.close(), b.service.close()]);
  });
});

describe("an edge's NATS subscriptions replayed to another router", () => {
  const SUBS = 20_000;

  it(`${SUBS} go a share per turn; publishes and syncs wait for the last; an UNSUB meanwhile leaves none`, async () => {
    const a = routerSide();
    const edge = new EdgeEnd(() => {});
    carryFrames(edge, a.end);
    const conn: Connection = { edgeId: "e1", cid: 1, echo: true };
    const got: string[] = [];
    const subs: Subscriber[] = Array.from({ length: SUBS }, (_, i) => ({
      subject: `s.${i}`, queue: undefined, sid: String(i + 1), conn,
      deliver: (subject, _r, msg) => void got.push(`${subject} ${msg.buf.subarray(msg.start + msg.hdrLen, msg.end)}`),
    }));
    for (const sub of subs) edge.subscribe("$G", sub);
    await new Promise<void>((resolve) => edge.sync(resolve));

    // Router A is lost; the edge attaches to B.
    const b = routerSide();
    edge.detach();
    carryFrames(edge, b.end);
    const perFrame = opsPerFrame(edge, (op) => Boolean(op.interest));
    edge.attach();
    // Both in the last share: the publish waits for its subscription, the UNSUB goes with it.
    const last = subs[SUBS - 1], gone = subs[SUBS - 2];
    edge.publish("$G", last.subject, undefined, payload("held"), conn);
    edge.unsubscribe("$G", gone);
    edge.publish("$G", gone.subject, undefined, payload("nobody"), conn);
    expect(edge.stall(() => {})).toBe(true); // a publisher stops reading until the replay ends
    let synced = -1;
    edge.sync(() => { synced = got.length; });

    await turnsUntil(() => synced >= 0, 200, () => `${perFrame.length} frames, ${got.length} delivered`);
    expect(got).toEqual([`${last.subject} held`]);
    expect(synced).toBe(1);
    expect(perFrame.reduce((x, y) => x + y, 0)).toBe(SUBS - 1);
    expect(Math.max(...perFrame)).toBeLessThanOrEqual(INTEREST_PER_TURN);
    expect(perFrame.filter((n) => n > 0).length).toBe(Math.ceil(SUBS / INTEREST_PER_TURN));
    expect((await b.router.stats()).subscriptions).toBe(SUBS - 1);
    expect(edge.stall(() => {})).toBe(false);
    edge.close();
    await Promise.all([a.service.close(), b.service.close()]);
  });
});
