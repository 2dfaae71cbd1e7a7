// Many sessions restored at once (an edge re-attaching with its clients' attaches, sessions
// adopted or restored at start) are restored a share per event-loop turn (TurnBudget), not all
// in the turn their store reads answer: a router doing that for a thousand sessions went 0.5–0.9 s
// without answering its edges' pings. The memory store answers in microtasks, so without the
// budget every attach below finishes in one turn. Counted in turns (setImmediate ticks), not time.
import { afterEach, describe, expect, it } from "vitest";
import { MemoryStore } from "../../services/router/store/memory.js";
import { TurnBudget } from "../../services/common/turn-budget.js";
import type { Connection, SessionClient } from "../../services/router/link.js";
import { sessionRouter } from "../helpers/session-client.js";

const N = 600;
/** The service's budget per turn (SESSION_TURN_BUDGET), a restored session costing at least 1. */
const PER_TURN = 64;

/** Counts event-loop turns (check phases) until stopped. */
function turnCounter() {
  let turn = 0, on = true;
  const tick = () => { turn++; if (on) setImmediate(tick); };
  setImmediate(tick);
  return { now: () => turn, stop: () => { on = false; } };
}

const service = (store: MemoryStore) => sessionRouter(store).service;

function client(got: string[]): SessionClient {
  return { sendPublish: (topic) => void got.push(topic), sendPubrel: () => {}, takenOver: () => {} };
}

/** N persistent sessions left in `store`, each subscribed to its own topic. */
async function stored(store: MemoryStore): Promise<void> {
  const s = service(store);
  for (let i = 0; i < N; i++) {
    const conn: Connection = { edgeId: "old", cid: i + 1, echo: true };
    await s.attach({ conn, clientId: `c${i}`, account: "$G", clean: false, subscribe: undefined, will: undefined }, client([]));
    s.subscribe(conn, [{ filter: `t/${i}`, qos: 1 }]);
    s.detach(conn, false);
  }
  await s.close();
}

/** How many of `work` settled in the busiest turn. */
async function busiestTurn(work: Promise<unknown>[]): Promise<number> {
  const turns = turnCounter();
  const perTurn = new Map<number, number>();
  try {
    await Promise.all(work.map((p) => p.then(() => perTurn.set(turns.now(), (perTurn.get(turns.now()) ?? 0) + 1))));
  } finally {
    turns.stop();
  }
  return Math.max(...perTurn.values());
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

describe("sessions restored a share per turn", () => {
  it(`${N} replayed attaches of persistent sessions: at most a turn's budget finish per turn, each with its session`, async () => {
    const store = new MemoryStore();
    await stored(store);
    const s = service(store);
    cleanups.push(() => s.close());
    const got: string[] = [];
    const attaches = Array.from({ length: N }, (_, i) => Promise.resolve(s.attach({
      conn: { edgeId: "e1", cid: i + 1, echo: true }, clientId: `c${i}`, account: "$G", clean: false, subscribe: undefined, will: undefined,
    }, client(got))));
    const busiest = await busiestTurn(attaches);
    expect(busiest).toBeLessThanOrEqual(PER_TURN);
    for (const [i, a] of (await Promise.all(attaches)).entries()) {
      expect(a.present).toBe(true);
      expect(a.subscriptions.map((sub) => sub.filter)).toEqual([`t/${i}`]);
    }
    // Each is subscribed again: a QoS 1 message reaches every one.
    for (let i = 0; i < N; i++) s.resume({ edgeId: "e1", cid: i + 1, echo: true });
    const pub: Connection = { edgeId: "e2", cid: 1, echo: true };
    await s.attach({ conn: pub, clientId: "pub", account: "$G", clean: true, subscribe: undefined, will: undefined }, client([]));
    await Promise.all(Array.from({ length: N }, (_, i) => s.publish(pub, `t.${i}`, { topic: `t/${i}`, payload: Buffer.from("m"), qos: 1, retain: false })));
    expect(got.sort()).toEqual(Array.from({ length: N }, (_, i) => `t/${i}`).sort());
  });

  it(`during a hold (a peer router lost): QoS 1 messages published while ${N} attaches wait their turn reach every session`, async () => {
    const store = new MemoryStore();
    await stored(store);
    const s = service(store);
    cleanups.push(() => s.close());
    s.owners = { claim: async () => undefined, release: () => {}, lost: () => {} }; // a cluster: routed messages are kept in a hold
    let adopted!: () => void;
    s.hold(new Promise<void>((resolve) => { adopted = resolve; }));
    const got: string[] = [];
    const pub: Connection = { edgeId: "e2", cid: 1, echo: true };
    await s.attach({ conn: pub, clientId: "pub", account: "$G", clean: true, subscribe: undefined, will: undefined }, client([]));
    const attaches = Array.from({ length: N }, (_, i) => s.attach({
      conn: { edgeId: "e1", cid: i + 1, echo: true }, clientId: `c${i}`, account: "$G", clean: false, subscribe: undefined, will: undefined,
    }, client(got)));
    await attaches[0]; // the others still wait for their turn (or their subscriptions)
    const acks = Array.from({ length: N }, (_, i) => s.publish(pub, `t.${i}`, { topic: `t/${i}`, payload: Buffer.from("m"), qos: 1, retain: false }));
    await Promise.all(attaches);
    adopted();
    await Promise.all(acks);
    for (let i = 0; i < N; i++) s.resume({ edgeId: "e1", cid: i + 1, echo: true });
    expect(new Set(got).size).toBe(N);
  });

  it(`${N} sessions restored at start: over several turns`, async () => {
    const store = new MemoryStore();
    await stored(store);
    const s = service(store);
    cleanups.push(() => s.close());
    const turns = turnCounter();
    const first = turns.now();
    await s.start();
    turns.stop();
    expect(turns.now() - first).toBeGreaterThanOrEqual(Math.floor(N / PER_TURN) - 1);
  });

  it(`${N} sessions that expire together (one interval, detached at once) end over several turns`, async () => {
    const store = new MemoryStore();
    const s = service(store);
    cleanups.push(() => s.close());
    const conns = Array.from({ length: N }, (_, i): Connection => ({ edgeId: "e1", cid: i + 1, echo: true }));
    for (const [i, conn] of conns.entries()) {
      await s.attach({ conn, clientId: `c${i}`, account: "$G", clean: false, expiry: 1, subscribe: undefined, will: undefined }, client([]));
      s.subscribe(conn, [{ filter: `t/${i}`, qos: 1 }]);
    }
    const deleted = new Map<number, number>();
    let turns: ReturnType<typeof turnCounter> | undefined;
    const all = new Promise<void>((resolve) => {
      const remove = store.deleteSession.bind(store);
      let n = 0;
      store.deleteSession = async (key) => {
        const t = turns?.now() ?? -1;
        deleted.set(t, (deleted.get(t) ?? 0) + 1);
        if (++n === N) resolve();
        return remove(key);
      };
    });
    for (const conn of conns) s.detach(conn, false);
    turns = turnCounter();
    try {
      await all; // a second later
    } finally {
      turns.stop();
    }
    expect(Math.max(...deleted.values())).toBeLessThanOrEqual(PER_TURN);
    expect(deleted.size).toBeGreaterThanOrEqual(Math.floor(N / PER_TURN));
  });
});

describe("TurnBudget", () => {
  it("lets the turn's budget through at once, the rest in later turns, in the order asked", async () => {
    const budget = new TurnBudget(3);
    const turns = turnCounter();
    const order: [number, number][] = [];
    await Promise.all(Array.from({ length: 8 }, async (_, i) => {
      const share = budget.take(1);
      if (share) await share;
      order.push([i, turns.now()]);
    }));
    turns.stop();
    expect(order.map(([i]) => i)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    const byTurn = new Map<number, number>();
    for (const [, t] of order) byTurn.set(t, (byTurn.get(t) ?? 0) + 1);
    expect([...byTurn.values()]).toEqual([3, 3, 2]);
    expect(budget.deferred).toBe(5);
  });
});
