// The mesh's flush barrier (services/router/mesh/barrier.ts): done once every link passed it,
// in the order barriers were made, a link gone counts as passed, and a deadline bounds it.
import { describe, expect, it } from "vitest";
import { Barriers, type BarrierLink, type BarrierWaiter } from "../../services/router/mesh/barrier.js";

/** A link whose barriers pass when the test says so. */
class HeldLink implements BarrierLink {
  readonly held: BarrierWaiter[] = [];
  constructor(private readonly barriers: () => Barriers) {}
  barrier(w: BarrierWaiter): void { this.held.push(w); }
  pass(): void { for (const w of this.held.splice(0)) this.barriers().passed(w); }
}

describe("mesh flush barrier", () => {
  it("no links: done at once", () => {
    let done = 0;
    new Barriers().start([], () => done++);
    expect(done).toBe(1);
  });

  it("done once every link passed, and in the order the barriers were made", () => {
    const b = new Barriers();
    const l1 = new HeldLink(() => b), l2 = new HeldLink(() => b);
    const order: string[] = [];
    b.start([l1, l2], () => order.push("first"));
    b.start([l2], () => order.push("second"));
    l2.pass(); // the second is ready, the first still waits for l1
    expect(order).toEqual([]);
    l1.pass();
    expect(order).toEqual(["first", "second"]);
  });

  it("a deadline releases a barrier a link never passes; a late pass is harmless", async () => {
    const b = new Barriers(30);
    const stuck = new HeldLink(() => b);
    const started = Date.now();
    await new Promise<void>((resolve) => b.start([stuck], resolve));
    expect(Date.now() - started).toBeGreaterThanOrEqual(25);
    expect(b.timeouts).toBe(1);
    stuck.pass();
    let done = 0;
    b.start([], () => done++);
    expect(done).toBe(1);
  });
});
