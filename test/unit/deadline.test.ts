// Timeouts (services/common/deadline.ts): many owners' timeouts on one timer per length, each
// fired on time, in order, once; set again restarts, clear cancels. Fake timers: the test is
// about the moments. The NATS and MQTT integration tests (limits, auth, mqtt-connect) run it
// for real.
import { afterEach, beforeEach, expect, it, vi } from "vitest";
import { Timeouts } from "../../services/common/deadline.js";

beforeEach(() => { vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] }); });
afterEach(() => { vi.useRealTimers(); });

function recorder() {
  const fired: { owner: string; at: number }[] = [];
  const t0 = performance.now();
  const timeouts = new Timeouts<string>((owner) => fired.push({ owner, at: performance.now() - t0 }));
  return { fired, timeouts };
}

it("fires each owner's timeout on time, in order, with one timer per length", () => {
  const { fired, timeouts } = recorder();
  timeouts.set("a", 100);
  vi.advanceTimersByTime(30);
  timeouts.set("b", 100);
  timeouts.set("c", 50);
  expect(vi.getTimerCount()).toBe(2);
  vi.advanceTimersByTime(1_000);
  expect(fired).toEqual([{ owner: "c", at: 80 }, { owner: "a", at: 100 }, { owner: "b", at: 130 }]);
  expect(vi.getTimerCount()).toBe(0);
});

it("set again restarts a timeout; clear cancels it; a cleared first owner does not delay the next", () => {
  const { fired, timeouts } = recorder();
  timeouts.set("a", 100);
  timeouts.set("b", 100);
  vi.advanceTimersByTime(10);
  timeouts.set("c", 100);
  vi.advanceTimersByTime(50);
  timeouts.set("a", 100); // restarted at 60: due at 160
  timeouts.clear("b", 100);
  timeouts.clear("x", 100); // never set: nothing happens
  vi.advanceTimersByTime(1_000);
  expect(fired).toEqual([{ owner: "c", at: 110 }, { owner: "a", at: 160 }]);
});

it("an owner set again from its own expiry repeats every period (a ping interval)", () => {
  const t0 = performance.now();
  const fired: number[] = [];
  const periodic: Timeouts<string> = new Timeouts<string>((owner) => {
    fired.push(performance.now() - t0);
    if (fired.length < 3) periodic.set(owner, 40);
  });
  periodic.set("p", 40);
  vi.advanceTimersByTime(1_000);
  expect(fired).toEqual([40, 80, 120]);
  expect(vi.getTimerCount()).toBe(0);
});

it("an owner whose expiry throws does not stop the others' timeouts", async () => {
  const fired: string[] = [];
  const timeouts = new Timeouts<string>((owner) => {
    fired.push(owner);
    if (owner === "bad") throw new Error("bug in one connection");
  });
  const thrown: unknown[] = [];
  const queued = vi.spyOn(globalThis, "queueMicrotask").mockImplementation((fn) => { try { fn(); } catch (err) { thrown.push(err); } });
  try {
    timeouts.set("bad", 10);
    timeouts.set("good", 10);
    vi.advanceTimersByTime(10);
    timeouts.set("later", 10);
    vi.advanceTimersByTime(10);
  } finally {
    queued.mockRestore();
  }
  expect(fired).toEqual(["bad", "good", "later"]);
  expect(thrown).toHaveLength(1);
});

it("timeouts set together fire a share per event-loop turn, the rest in the next turns, in order", async () => {
  const fired: number[] = [];
  const timeouts = new Timeouts<number>((owner) => fired.push(owner), 100);
  for (let i = 0; i < 250; i++) timeouts.set(i, 5); // due at the same (fake) moment
  vi.advanceTimersByTime(5);
  // The rest wait for the check phases (setImmediate is not faked): one share each.
  const perTurn = [fired.length];
  while (fired.length < 250 && perTurn.length < 10) {
    const before = fired.length;
    await new Promise<void>((resolve) => setImmediate(resolve));
    perTurn.push(fired.length - before);
  }
  expect(perTurn).toEqual([100, 100, 50]);
  expect(fired).toEqual(Array.from({ length: 250 }, (_, i) => i));
});
