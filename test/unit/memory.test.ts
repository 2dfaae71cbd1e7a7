// The reclaim policy of services/common/memory.ts: one major GC once a burst of closed
// connections is over, never during it, at most once per interval, and a second one later
// unless a new burst has begun; and the GC it uses is V8's.
import { expect, it } from "vitest";
import { MemoryReclaimer, majorGc } from "../../services/common/memory.js";
import { withTimeout } from "../helpers/wait.js";

/** A GC stand-in that records when it ran, and a way to await its n-th run. */
function recorder() {
  const runs: number[] = [];
  const waiting: { n: number; resolve: () => void }[] = [];
  const gc = () => {
    runs.push(Date.now());
    for (const w of waiting) if (runs.length >= w.n) w.resolve();
  };
  const ran = (n: number) => withTimeout(new Promise<void>((resolve) => {
    if (runs.length >= n) resolve();
    else waiting.push({ n, resolve });
  }), 2_000, () => `GC run ${n} (${runs.length} so far)`);
  return { runs, gc, ran };
}

/** Calls `f` `times` times, 30 ms apart; resolves with the time of the last call. */
async function every30ms(times: number, f: () => void): Promise<number> {
  let last = 0;
  for (let k = 0; k < times; k++) {
    f();
    last = Date.now();
    await new Promise((res) => setTimeout(res, 30));
  }
  return last;
}

it("runs one GC after the burst has been quiet, none during it or for a small one", async () => {
  const { runs, gc, ran } = recorder();
  const r = new MemoryReclaimer(gc, { burst: 5, quietMs: 80, minIntervalMs: 10_000 });
  for (let i = 0; i < 4; i++) r.connectionClosed();
  await new Promise((res) => setTimeout(res, 200));
  expect(runs, "4 closes are not a burst").toHaveLength(0);
  const lastClose = await every30ms(10, () => r.connectionClosed()); // the burst is not over
  expect(runs, "no GC while connections keep closing").toHaveLength(0);
  await ran(1);
  expect(runs[0] - lastClose, "quiet period after the last close").toBeGreaterThanOrEqual(80 - 5);
  r.close();
});

it("waits while connections open after the burst (a reconnect storm), then runs once", async () => {
  const { runs, gc, ran } = recorder();
  const r = new MemoryReclaimer(gc, { burst: 2, quietMs: 80, minIntervalMs: 10_000 });
  r.connectionClosed(); r.connectionClosed();
  const lastOpen = await every30ms(8, () => r.connectionOpened()); // the broker is busy
  expect(runs, "no GC while connections keep opening").toHaveLength(0);
  await ran(1);
  expect(runs[0] - lastOpen, "quiet period after the last open").toBeGreaterThanOrEqual(80 - 5);
  r.close();
});

it("a second burst within the interval waits for the interval", async () => {
  const { runs, gc, ran } = recorder();
  const r = new MemoryReclaimer(gc, { burst: 2, quietMs: 20, minIntervalMs: 400 });
  r.connectionClosed(); r.connectionClosed();
  await ran(1);
  r.connectionClosed(); r.connectionClosed();
  await ran(2);
  expect(runs[1] - runs[0]).toBeGreaterThanOrEqual(400 - 20);
  expect(r.runs).toBe(2);
  r.close();
});

it("a second GC follows the first after settleMs, unless a new burst has begun", async () => {
  const { runs, gc, ran } = recorder();
  const r = new MemoryReclaimer(gc, { burst: 2, quietMs: 20, minIntervalMs: 0, settleMs: 150 });
  r.connectionClosed(); r.connectionClosed();
  await ran(2);
  expect(runs[1] - runs[0], "the second GC waits settleMs").toBeGreaterThanOrEqual(150 - 5);
  expect(r.runs, "one reclaim").toBe(1);
  // A new burst in progress when the second GC is due: skipped, the burst's own reclaim follows.
  const q = recorder();
  const s = new MemoryReclaimer(q.gc, { burst: 1, quietMs: 300, minIntervalMs: 0, settleMs: 50 });
  s.connectionClosed();
  await q.ran(1);
  const closing = setInterval(() => s.connectionClosed(), 20);
  await new Promise((res) => setTimeout(res, 200));
  clearInterval(closing);
  expect(q.runs, "no GC while the new burst goes on").toHaveLength(1);
  await q.ran(2);
  expect(s.runs, "the second burst's reclaim").toBe(2);
  r.close();
  s.close();
});

it("close() cancels a pending GC", async () => {
  let runs = 0;
  const r = new MemoryReclaimer(() => runs++, { burst: 1, quietMs: 30, minIntervalMs: 0 });
  r.connectionClosed();
  r.close();
  await new Promise((res) => setTimeout(res, 120));
  expect(runs).toBe(0);
});

it("majorGc frees unreachable memory in a process started without --expose-gc", () => {
  const gc = majorGc();
  let garbage: number[][] | undefined = Array.from({ length: 200 }, () => new Array(10_000).fill(1));
  const before = process.memoryUsage().heapUsed;
  garbage = undefined;
  gc();
  expect(garbage).toBeUndefined();
  expect(process.memoryUsage().heapUsed).toBeLessThan(before - 10_000_000);
});
