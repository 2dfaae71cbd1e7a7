// A router's aggregated interest (mesh/interest.ts): what one turn's changes send to the peers,
// and a peer's copy applied to a sink, keyed by (account, queue group, subject) without a key
// string per lookup.
import { describe, expect, it } from "vitest";
import { EntryTable, LocalInterest, RemoteInterest, type InterestUpdateData } from "../../services/router/mesh/interest.js";
import type { InterestEntry } from "../../services/router/wire/frames.js";
import { nextTurn } from "../helpers/wait.js";

function local() {
  const updates: InterestUpdateData[] = [];
  return { interest: new LocalInterest((u) => void updates.push(u)), updates };
}

const weights = (u: InterestUpdateData) => u.entries.map((e) => `${e.account} ${e.subject} ${e.queue}=${e.weight}`);

describe("EntryTable", () => {
  it("keeps values apart by account, group and subject, counts them, and drops emptied groups", () => {
    const t = new EntryTable<number>();
    t.set("A", "x", "", 1);
    t.set("A", "x", "q", 2);
    t.set("B", "x", "", 3);
    t.set("A", "x", "", 4); // replaced, not added
    expect(t.size).toBe(3);
    expect([t.get("A", "x", ""), t.get("A", "x", "q"), t.get("B", "x", ""), t.get("B", "x", "q")]).toEqual([4, 2, 3, undefined]);
    t.delete("A", "x", "q");
    t.delete("A", "y", ""); // not there: nothing changes
    expect(t.size).toBe(2);
    expect([...t.values()].sort()).toEqual([3, 4]);
    t.delete("A", "x", "");
    t.delete("B", "x", "");
    expect(t.size).toBe(0);
    expect([...t.values()]).toEqual([]);
    t.set("A", "x", "q", 5); // an account and group emptied before work again
    expect(t.get("A", "x", "q")).toBe(5);
  });
});

describe("LocalInterest", () => {
  it("sends each entry changed in a turn once, with its weight at the turn's end", async () => {
    const { interest, updates } = local();
    interest.change("A", "x", undefined, 1);
    interest.change("A", "x", undefined, 1);
    interest.change("A", "x", "q", 1);
    interest.change("A", "y", undefined, 1);
    interest.change("A", "y", undefined, -1);
    interest.change("A", "y", undefined, 1); // removed and made again: one entry, not an RS- and an RS+
    await nextTurn();
    expect(updates.map(weights)).toEqual([["A x =2", "A x q=1", "A y =1"]]);
    expect(updates[0].seq).toBe(1);
    expect(interest.size).toBe(3);

    interest.change("A", "x", undefined, -2);
    interest.change("A", "y", undefined, -1);
    interest.change("A", "y", undefined, 1);
    interest.change("A", "y", undefined, -1);
    interest.change("A", "z", undefined, -1); // never there: an RS- all the same, and no entry left
    await nextTurn();
    expect(updates.map(weights)[1]).toEqual(["A x =0", "A y =0", "A z =0"]);
    expect(updates[1].seq).toBe(2);
    expect(interest.size).toBe(1);
    expect(weights(interest.snapshot())).toEqual(["A x q=1"]);
  });
});

describe("RemoteInterest", () => {
  it("applies updates to the sink and replaces the copy with a snapshot", () => {
    const sink: string[] = [];
    const remote = new RemoteInterest<string>({
      add: (e: InterestEntry) => (sink.push(`add ${e.subject}`), e.subject),
      setWeight: (h, w) => void sink.push(`weight ${h}=${w}`),
      remove: (_e, h) => void sink.push(`remove ${h}`),
    });
    const entry = (subject: string, weight: number): InterestEntry => ({ account: "A", subject, queue: "", weight });
    expect(remote.apply({ seq: 1, entries: [entry("x", 1)] })).toBe("waiting");
    remote.snapshotChunk(4, [entry("x", 1)], false);
    remote.snapshotChunk(4, [entry("y", 2)], true);
    expect(remote.apply({ seq: 5, entries: [entry("x", 3), entry("y", 0), entry("z", 1)] })).toBe("applied");
    expect(remote.size).toBe(2);
    remote.snapshotChunk(9, [entry("z", 1)], true); // x is gone from the peer
    expect(remote.size).toBe(1);
    expect(remote.apply({ seq: 11, entries: [] })).toBe("gap");
    expect(sink).toEqual(["add x", "add y", "weight x=3", "remove y", "add z", "weight z=1", "remove x"]);
  });
});
