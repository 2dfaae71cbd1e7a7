// The session service's attach without a promise: a clean session on a single router, whose key
// has no session here and no attach running, is attached within the call (most CONNECTs of a
// single node). Everything else still goes through the queued attach. A real Router and
// SessionService on the memory store.
import { describe, expect, it } from "vitest";
import { MemoryStore } from "../../services/router/store/memory.js";
import { sessionKey } from "../../services/router/store/store.js";
import type { Connection, SessionAttach } from "../../services/router/link.js";
import { recordingClient as client, sessionRouter } from "../helpers/session-client.js";

function setup() {
  const store = new MemoryStore();
  const { service } = sessionRouter(store);
  const req = (cid: number, clean: boolean, clientId = "id"): SessionAttach =>
    ({ conn: { edgeId: "e1", cid, echo: true }, clientId, account: "$G", clean, subscribe: undefined, will: undefined });
  const pub: Connection = { edgeId: "e2", cid: 1, echo: true };
  /** A QoS 1 message to `t/x` from a clean publisher session. */
  const publish = async (payload: string) => {
    await service.attach({ conn: pub, clientId: "pub", account: "$G", clean: true, subscribe: undefined, will: undefined }, client().c);
    await service.publish(pub, "t.x", { topic: "t/x", payload: Buffer.from(payload), qos: 1, retain: false });
  };
  return { service, store, req, publish };
}

describe("a clean session attached at once", () => {
  it("on a single router: the attach returns its result, and the session works", async () => {
    const { service, req, publish } = setup();
    const first = client();
    const attached = service.attach(req(1, true), first.c);
    expect(attached).not.toBeInstanceOf(Promise);
    expect(attached).toEqual({ present: false, subscriptions: [] });
    service.resume(req(1, true).conn);
    service.subscribe(req(1, true).conn, [{ filter: "t/x", qos: 1 }]);
    await publish("m");
    expect(first.got).toEqual(["m"]);
    await service.close();
  });

  it("a second CONNECT of the client id takes the session over through the queued attach", async () => {
    const { service, req, publish } = setup();
    const first = client(), second = client();
    service.attach(req(1, true), first.c);
    service.resume(req(1, true).conn);
    service.subscribe(req(1, true).conn, [{ filter: "t/x", qos: 1 }]);
    const again = service.attach(req(2, true), second.c);
    expect(again).toBeInstanceOf(Promise); // a session of the key is here: the takeover is queued
    expect((await again).present).toBe(false);
    expect(first.closed()).toBe(1);
    service.resume(req(2, true).conn);
    await publish("m"); // the clean takeover dropped the old subscription
    expect([...first.got, ...second.got]).toEqual([]);
    await service.close();
  });

  it("a persistent session, or a clean one after it, is queued, and the clean one discards the stored state", async () => {
    const { service, store, req } = setup();
    const kept = service.attach(req(1, false), client().c);
    expect(kept).toBeInstanceOf(Promise);
    await kept;
    service.subscribe(req(1, false).conn, [{ filter: "t/x", qos: 1 }]);
    service.detach(req(1, false).conn, false);
    expect(await store.getSession(sessionKey("$G", "id"))).toBeDefined();
    const clean = service.attach(req(2, true), client().c);
    expect(clean).toBeInstanceOf(Promise);
    expect(await clean).toEqual({ present: false, subscriptions: [] });
    expect(await store.getSession(sessionKey("$G", "id"))).toBeUndefined();
    await service.close();
  });

  it("behind a running attach of the same key, a clean one waits for it and ends as the holder", async () => {
    const { service, req } = setup();
    const first = client(), second = client();
    const persistent = service.attach(req(1, false), first.c);
    const clean = service.attach(req(2, true), second.c);
    expect(clean).toBeInstanceOf(Promise);
    await persistent;
    expect((await clean).present).toBe(false);
    expect(first.closed()).toBe(1);
    await service.close();
  });

  it("in a cluster (an owner to claim), every attach is queued", async () => {
    const { service, req } = setup();
    service.owners = { claim: async () => undefined, release: () => {}, lost: () => {} };
    const attached = service.attach(req(1, true), client().c);
    expect(attached).toBeInstanceOf(Promise);
    expect(await attached).toEqual({ present: false, subscriptions: [] });
    await service.close();
  });
});
