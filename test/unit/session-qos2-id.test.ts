// A QoS 2 delivery of a persistent session leaves only once the store holds its packet id: a
// router lost between the send and that write would leave the message to the next router to
// send under a new id, and the client would take it for a second message. The store is the
// memory store, its setPacketId noted when it lands (a failing one for the last case).
import { describe, expect, it } from "vitest";
import { Router } from "../../services/router/router.js";
import { MqttSession, type SessionHost } from "../../services/router/sessions/session.js";
import { MemoryStore } from "../../services/router/store/memory.js";
import type { MqttStore, SessionKey, StoredMessage } from "../../services/router/store/store.js";
import type { SessionClient } from "../../services/router/link.js";

class NotingStore extends MemoryStore {
  /** Packet ids whose write has landed. */
  readonly stored = new Set<number>();
  failing = false;
  override async setPacketId(id: SessionKey, seq: number, packetId: number): Promise<void> {
    if (this.failing) throw new Error("store down");
    await super.setPacketId(id, seq, packetId);
    this.stored.add(packetId);
  }
}

interface Sent { payload: string; qos: number; dup: boolean; id: number | undefined; idStored: boolean }

function setup() {
  const store = new NotingStore();
  const errors: string[] = [];
  const host: SessionHost = {
    id: "mqtt-sessions", publishing: { session: undefined }, limits: { ackWaitMs: 60_000, maxAckPending: 100 }, router: new Router(),
    keepsDelivered: false,
    journal: <T>(op: (s: MqttStore) => Promise<T>) => {
      const p = op(store);
      p.catch((err: Error) => errors.push(err.message));
      return p;
    },
  };
  const session = new MqttSession(1, "q2", true, "$G", host);
  const sent: Sent[] = [];
  const client: SessionClient = {
    sendPublish: (_topic, payload, qos, _retain, dup, id) =>
      void sent.push({ payload: payload.toString(), qos, dup, id, idStored: id !== undefined && store.stored.has(id) }),
    sendPubrel: () => {}, takenOver: () => {},
  };
  const message = (payload: string, qos: 1 | 2): StoredMessage => ({ topic: "t", payload: Buffer.from(payload), qos, retain: false });
  /** Resolves once `n` sends were made (each checked as it happens). */
  const sends = async (n: number) => {
    for (let i = 0; i < 100 && sent.length < n; i++) await new Promise((resolve) => setImmediate(resolve));
    return sent;
  };
  return { store, session, client, sent, message, sends, errors };
}

describe("QoS 2 deliveries wait for their packet id in the store", () => {
  it("a QoS 2 message is sent after its id is stored, a QoS 1 one at once", async () => {
    const { session, client, sent, message, sends } = setup();
    session.client = client;
    session.enqueue(message("one", 1));
    session.enqueue(message("two", 2));
    expect(sent.map((s) => s.payload)).toEqual(["one"]); // the QoS 2 one waits for its write
    const all = await sends(2);
    expect(all).toEqual([
      { payload: "one", qos: 1, dup: false, id: 1, idStored: false },
      { payload: "two", qos: 2, dup: false, id: 2, idStored: true },
    ]);
  });

  it("a client gone before the id was stored gets it on its return, once, without DUP", async () => {
    const { store, session, client, sent, message, sends } = setup();
    session.client = client;
    session.enqueue(message("later", 2));
    session.detach(client);
    // The write lands while no client holds the session: nothing is sent then.
    for (let i = 0; i < 100 && !store.stored.has(1); i++) await new Promise((resolve) => setImmediate(resolve));
    expect(store.stored.has(1)).toBe(true);
    expect(sent).toEqual([]);
    session.client = client;
    session.redeliver(true);
    session.pump();
    expect(await sends(1)).toEqual([{ payload: "later", qos: 2, dup: false, id: 1, idStored: true }]);
    // The resend after ack_wait (or a reconnect) is a duplicate.
    session.redeliver(true);
    expect(sent[1]).toEqual({ payload: "later", qos: 2, dup: true, id: 1, idStored: true });
  });

  it("a failed id write is logged and the message still goes", async () => {
    const { store, session, client, message, sends, errors } = setup();
    store.failing = true;
    session.client = client;
    session.enqueue(message("anyway", 2));
    for (let i = 0; i < 100 && errors.length === 0; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(errors).toEqual(["store down"]);
    expect(await sends(1)).toEqual([{ payload: "anyway", qos: 2, dup: false, id: 1, idStored: false }]);
  });
});
