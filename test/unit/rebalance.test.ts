// The rebalancing policy (services/edge/rebalance.ts) on a stand-in edge: which clients an edge
// moves for given reported counts. The cluster test (cluster-rebalance.test.ts) runs it for real.
import { afterEach, expect, it, vi } from "vitest";
import { REBALANCE_PERIOD_MS, Rebalancer, type RebalancedEdge } from "../../services/edge/rebalance.js";
import type { ConnectionView } from "../../services/edge/connection-view.js";

afterEach(() => { vi.useRealTimers(); });

function edgeWith(live: number, reported: { edgeId: string; clients: number }[], rate = 40, minExcess = 10) {
  const moved: number[] = [];
  const conns = Array.from({ length: live }, (_, i) => ({ cid: i + 1 }) as ConnectionView);
  const edge = {
    serverId: "self", accepting: true,
    options: { edge: { rebalance: { enabled: true, maxEvictionsPerSecond: rate, tolerance: 0.1, minExcess } } },
    link: { reportClients: (_n: number, onLoad: (e: typeof reported) => void) => onLoad(reported) },
    log: { notice() {} },
    connectionCount: () => conns.length - moved.length,
    openConnections: () => conns.filter((c) => !moved.includes(c.cid)),
    moveClient: (c: ConnectionView) => moved.push(c.cid),
  } as unknown as RebalancedEdge;
  return { edge, moved };
}

it("clients that arrived after the last report are not taken for an excess (reports lag)", () => {
  vi.useFakeTimers();
  const { edge, moved } = edgeWith(3, [{ edgeId: "self", clients: 0 }, { edgeId: "other", clients: 0 }], 40, 0);
  const r = new Rebalancer(edge);
  vi.advanceTimersByTime(3 * REBALANCE_PERIOD_MS);
  r.close();
  // Live 3 against another edge's 0: mean 1.5, ceil(1.65) = 2, so at most 1 moves.
  expect(moved.length).toBeLessThanOrEqual(1);
});

it("an edge far above the mean moves its newest clients at the configured rate", () => {
  vi.useFakeTimers();
  const { edge, moved } = edgeWith(200, [{ edgeId: "self", clients: 200 }, { edgeId: "other", clients: 0 }], 40);
  const r = new Rebalancer(edge);
  vi.advanceTimersByTime(REBALANCE_PERIOD_MS);
  r.close();
  expect(moved).toHaveLength(40);
  expect(Math.min(...moved)).toBe(161); // the newest 40 of cids 1..200
});

it("a small excess is left alone (min_excess): 6 clients against 2 move nobody", () => {
  vi.useFakeTimers();
  const { edge, moved } = edgeWith(6, [{ edgeId: "self", clients: 6 }, { edgeId: "other", clients: 2 }]);
  const r = new Rebalancer(edge);
  vi.advanceTimersByTime(3 * REBALANCE_PERIOD_MS);
  r.close();
  expect(moved).toHaveLength(0);
});
