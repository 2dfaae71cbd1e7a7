// What a router drops when a link ends goes a slice per event-loop turn: an edge's stream that
// ended (its subscriptions) and a lost peer's interest. Done in one turn, 100,000 of them held a
// router 0.3–0.4 s (its other links' requests waited as long); a million would pass the links'
// keepalives and make them flap too.
import { describe, expect, it } from "vitest";
import type { Subscriber } from "../../services/router/link.js";
import { createSerialisedLink } from "../../services/router/link-serialised.js";
import { RemoteInterest } from "../../services/router/mesh/interest.js";
import { Router } from "../../services/router/router.js";
import { turnsUntil } from "../helpers/wait.js";

const N = 10_000;

describe("a link's end, a slice per turn", () => {
  it("an edge stream's subscriptions leave the router over several turns, the first at once", async () => {
    const router = new Router();
    const link = createSerialisedLink(router);
    for (let i = 0; i < N; i++) {
      const sub: Subscriber = { subject: `s.${i}`, queue: undefined, sid: String(i), conn: { edgeId: "E1", cid: 1, echo: true }, deliver: () => {} };
      link.subscribe("$G", sub);
    }
    await new Promise<void>((resolve) => link.sync(resolve));
    const matched = (i: number) => router.match("$G", `s.${i}`)?.psubs.length ?? 0;
    expect([matched(0), matched(N - 1)]).toEqual([1, 1]);
    link.close();
    expect(matched(0)).toBe(0);
    expect(matched(N - 1)).toBe(1); // its turn has not come
    const turns = await turnsUntil(() => matched(N - 1) === 0, 20);
    expect(turns).toBeGreaterThanOrEqual(2);
    for (let i = 0; i < N; i += 997) expect(matched(i)).toBe(0);
  });

  it("a lost peer's interest entries are removed over several turns", async () => {
    const removed: string[] = [];
    const interest = new RemoteInterest<string>({
      add: (e) => e.subject,
      setWeight: () => {},
      remove: (_e, handle) => removed.push(handle),
    });
    const entries = Array.from({ length: N }, (_, i) => ({ account: "$G", subject: `s.${i}`, queue: "", weight: 1 }));
    interest.snapshotChunk(1, entries, true);
    expect(interest.size).toBe(N);
    interest.clear();
    expect(interest.size).toBe(0); // the copy is gone at once
    expect(removed.length).toBeGreaterThan(0);
    expect(removed.length).toBeLessThan(N);
    const turns = await turnsUntil(() => removed.length === N, 20);
    expect(turns).toBeGreaterThanOrEqual(2);
    expect(new Set(removed).size).toBe(N);
  });
});
