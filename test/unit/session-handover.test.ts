// The merge at the end of a persistent session's handover between routers (MqttSession.restore):
// the messages routed to the new owner while the old one still held the session (the shadow)
// join the queue the old owner stored, less the ones it stored too. A real Router routes into
// the shadow and gives each message its id; the store is the memory store (the Redis one runs
// the same contract in store.test.ts).
import { describe, expect, it } from "vitest";
import { Router } from "../../services/router/router.js";
import { MqttSession, NMQTT_HEADERS, type SessionHost } from "../../services/router/sessions/session.js";
import { MemoryStore } from "../../services/router/store/memory.js";
import type { MqttStore, StoredMessage } from "../../services/router/store/store.js";
import { filterInterest } from "../../services/common/mqtt-topic.js";

const ACCOUNT = "$G";

function setup() {
  const store = new MemoryStore();
  const router = new Router();
  const host: SessionHost = {
    id: "mqtt-sessions", publishing: { session: undefined }, limits: { ackWaitMs: 60_000, maxAckPending: 100 }, router,
    keepsDelivered: true, journal: <T>(op: (s: MqttStore) => Promise<T>) => op(store),
  };
  const session = new MqttSession(1, "mover", true, ACCOUNT, host);
  session.shadow = []; // a new owner, the old one not released yet
  session.addSubscription({ filter: "h/t", qos: 1 }, filterInterest("h/t")!);
  const delivered: string[] = [];
  /** A QoS 1 publish reaching this router (the new owner): into the shadow. Returns its id. */
  const routeHere = (payload: string): number => {
    const data = Buffer.concat([NMQTT_HEADERS[1], Buffer.from(payload)]);
    router.publish(ACCOUNT, "h.t", undefined, { buf: data, start: 0, end: data.length, hdrLen: NMQTT_HEADERS[1].length },
      { edgeId: "e1", cid: 7, echo: true });
    return router.msgId;
  };
  /** What the old owner queued in the store. */
  const queuedThere = (payload: string, id: number | undefined) => {
    const m: StoredMessage = { topic: "h/t", payload: Buffer.from(payload), qos: 1, retain: false };
    if (id !== undefined) m.id = id;
    return store.enqueue(session.key, m);
  };
  /** The client attaches after the merge: what it gets. */
  const attach = async (since: number | undefined) => {
    await session.restore(store, since);
    session.client = {
      sendPublish: (_topic, payload) => void delivered.push(payload.toString()), sendPubrel: () => {}, takenOver: () => {},
    };
    session.pump();
    return delivered;
  };
  return { routeHere, queuedThere, attach };
}

describe("handover merge by message id", () => {
  it("two equal messages, one stored by the old owner only and one routed here only, both arrive", async () => {
    const { routeHere, queuedThere, attach } = setup();
    const since = await queuedThere("same", 1_000); // published on another router, reached the old owner only
    routeHere("same"); // published right after, reached this router only
    expect(await attach(since)).toEqual(["same", "same"]);
  });

  it("a message both routers got is delivered once, also one the old owner stored before it was asked to prepare", async () => {
    const { routeHere, queuedThere, attach } = setup();
    const early = routeHere("early");
    const both = routeHere("both");
    await queuedThere("early", early); // before `since`: the comparison by content missed it
    const since = await queuedThere("both", both);
    routeHere("new");
    expect(await attach(since)).toEqual(["early", "both", "new"]);
  });

  it("records without an id (an earlier version's) are still compared by content from `since` on", async () => {
    const { routeHere, queuedThere, attach } = setup();
    const since = await queuedThere("old", undefined);
    routeHere("old");
    expect(await attach(since)).toEqual(["old"]);
  });
});
