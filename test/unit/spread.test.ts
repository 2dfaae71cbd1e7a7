// EdgeSpread's rule (services/router/grpc/spread.ts): a router with more than one edge more than
// the least loaded live router, for the configured delay, asks one edge at a time to move there.
import { afterEach, describe, expect, it } from "vitest";
import { ASK_INTERVAL_MS, EdgeSpread } from "../../services/router/grpc/spread.js";

interface Setup { spread: EdgeSpread; asks: Array<[string, string]>; edges: string[]; members: { id: string; address: string; edges: number }[] }

const made: EdgeSpread[] = [];
afterEach(() => { for (const s of made.splice(0)) s.close(); });

function setup(edges: string[], others: Record<string, number>, delayMs = 1_000): Setup {
  const asks: Array<[string, string]> = [];
  const members = [{ id: "r1", address: "10.0.0.1:7100", edges: edges.length },
    ...Object.entries(others).map(([id, n], i) => ({ id, address: `10.0.0.${i + 2}:7100`, edges: n }))];
  const spread = new EdgeSpread({
    selfId: "r1", members: () => members, edges: () => edges, ask: (e, a) => asks.push([e, a]), log: () => {},
  }, delayMs);
  made.push(spread);
  return { spread, asks, edges, members };
}

describe("EdgeSpread", () => {
  it("leaves an even spread alone (one edge more is even)", () => {
    const { spread, asks } = setup(["e1", "e2"], { r2: 1 });
    for (let t = 0; t <= 20_000; t += 1_000) spread.tick(t);
    expect(asks).toEqual([]);
  });

  it("moves the last attached edge to the least loaded router once the spread stayed uneven for the delay", () => {
    const { spread, asks } = setup(["e1", "e2", "e3"], { r2: 2, r3: 0 });
    spread.tick(0);
    spread.tick(999);
    expect(asks).toEqual([]);
    spread.tick(1_000);
    expect(asks).toEqual([["e3", "10.0.0.3:7100"]]);
  });

  it("asks one edge at a time: the next once the last left and the interval passed", () => {
    const { spread, asks, edges } = setup(["e1", "e2", "e3", "e4", "e5"], { r2: 0 }, 1);
    spread.tick(0);
    spread.tick(1);
    expect(asks.map(([e]) => e)).toEqual(["e5"]);
    spread.tick(ASK_INTERVAL_MS + 1); // e5 is still moving
    expect(asks.map(([e]) => e)).toEqual(["e5"]);
    edges.pop();
    spread.tick(ASK_INTERVAL_MS + 2);
    expect(asks.map(([e]) => e)).toEqual(["e5", "e4"]);
  });

  it("an edge that stays is not asked again: after the wait, the next one is", () => {
    const { spread, asks } = setup(["e1", "e2", "e3", "e4"], { r2: 0 }, 1);
    spread.tick(0);
    spread.tick(1);
    spread.tick(9_000);
    expect(asks.map(([e]) => e)).toEqual(["e4"]);
    spread.tick(10_001);
    spread.tick(20_000);
    expect(asks.map(([e]) => e)).toEqual(["e4", "e3"]);
  });

  it("forgets the unevenness once evened out, and never moves with delay 0", () => {
    const { spread, asks, edges, members } = setup(["e1", "e2", "e3"], { r2: 0 }, 5_000);
    spread.tick(0);
    members[1].edges = 1; // a new edge attached to r2
    edges.pop();
    spread.tick(3_000);
    edges.push("e4");
    members[1].edges = 0;
    spread.tick(6_000);
    expect(asks).toEqual([]); // uneven again only since 6 s
    spread.tick(11_000);
    expect(asks).toEqual([["e4", "10.0.0.2:7100"]]);
    spread.delayMs = 0;
    spread.tick(60_000);
    expect(asks.length).toBe(1);
  });

  it("sends no edge to a stopping router (count -1)", () => {
    const { spread, asks } = setup(["e1", "e2", "e3"], { r2: -1, r3: 1 }, 1);
    spread.tick(0);
    spread.tick(10_000);
    expect(asks).toEqual([["e3", "10.0.0.3:7100"]]);
  });

  it("does nothing without other live routers", () => {
    const { spread, asks, members } = setup(["e1", "e2", "e3"], {}, 1);
    spread.tick(0);
    spread.tick(10_000);
    members.length = 0; // Redis away: no counts
    spread.tick(20_000);
    expect(asks).toEqual([]);
  });
});
