// The subject index: literal and wildcard matching, queue grouping, removal and pruning, and
// the match cache staying correct as subscriptions come and go.
import { describe, expect, it } from "vitest";
import { Sublist, type MatchResult } from "../../services/router/sublist.js";
import type { Connection, Subscriber } from "../../services/router/link.js";

let nextCid = 1, nextSid = 1;

function sub(subject: string, queue?: string, conn?: Connection): Subscriber & { name: string } {
  const c = conn ?? { edgeId: "E", cid: nextCid++, echo: true };
  return { subject, queue, sid: String(nextSid++), conn: c, name: queue ? `${subject}|${queue}#${c.cid}` : `${subject}#${c.cid}`, deliver() {} };
}

type Named = Subscriber & { name: string };

/** A result as sorted names: plain subscribers, then each queue group. */
function view(r: MatchResult): { psubs: string[]; qsubs: string[][] } {
  const names = (xs: Subscriber[]) => xs.map((s) => (s as Named).name).sort();
  return { psubs: names(r.psubs), qsubs: groups(...r.qsubs.map(names)) };
}

const names = (...xs: Named[]) => xs.map((s) => s.name).sort();
/** Queue groups in a stable order (the index does not promise one). */
const groups = (...gs: string[][]) => [...gs].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));

/** The trie, for the pruning tests. */
function rootOf(sl: Sublist): { nodes: Map<string, unknown>; pwc?: unknown; fwc?: unknown } {
  return (sl as unknown as { root: { nodes: Map<string, unknown>; pwc?: unknown; fwc?: unknown } }).root;
}

/** The subjects the cache holds, for the admission test. */
function cacheKeys(sl: Sublist): Set<string> {
  return new Set((sl as unknown as { cache: Map<string, unknown> }).cache.keys());
}

describe("Sublist", () => {
  describe("matching", () => {
    it("literal subjects match only themselves", () => {
      const sl = new Sublist();
      const a = sub("foo.bar");
      const b = sub("foo");
      const c = sub("foo.bar.baz");
      for (const s of [a, b, c]) sl.insert(s);
      expect(view(sl.match("foo.bar")).psubs).toEqual(names(a));
      expect(view(sl.match("foo")).psubs).toEqual(names(b));
      expect(view(sl.match("foo.bar.baz")).psubs).toEqual(names(c));
      expect(view(sl.match("foo.baz")).psubs).toEqual([]);
      expect(view(sl.match("bar")).psubs).toEqual([]);
    });

    it("'*' matches exactly one token, in any position", () => {
      const sl = new Sublist();
      const a = sub("foo.*");
      const b = sub("*.bar");
      const c = sub("*");
      const d = sub("foo.*.baz");
      for (const s of [a, b, c, d]) sl.insert(s);
      expect(view(sl.match("foo.bar")).psubs).toEqual(names(a, b));
      expect(view(sl.match("foo")).psubs).toEqual(names(c));
      expect(view(sl.match("foo.x.baz")).psubs).toEqual(names(d));
      expect(view(sl.match("foo.bar.baz")).psubs).toEqual(names(d));
      expect(view(sl.match("foo.x.y")).psubs).toEqual([]);
    });

    it("'>' matches one or more trailing tokens, never zero", () => {
      const sl = new Sublist();
      const a = sub("foo.>");
      const b = sub(">");
      const c = sub("*.>");
      for (const s of [a, b, c]) sl.insert(s);
      expect(view(sl.match("foo")).psubs).toEqual(names(b));
      expect(view(sl.match("foo.bar")).psubs).toEqual(names(a, b, c));
      expect(view(sl.match("foo.bar.baz.qux")).psubs).toEqual(names(a, b, c));
      expect(view(sl.match("bar.baz")).psubs).toEqual(names(b, c));
    });

    it("a literal '*' or '>' token in a published subject only meets wildcard filters", () => {
      const sl = new Sublist();
      const lit = sub("foo.bar");
      const star = sub("foo.*");
      const full = sub("foo.>");
      for (const s of [lit, star, full]) sl.insert(s);
      expect(view(sl.match("foo.*")).psubs).toEqual(names(star, full));
    });

    it("subjects with empty tokens match nothing, not even '>' (as nats-server)", () => {
      const sl = new Sublist();
      const all = sub(">");
      const star = sub("foo.*.bar");
      sl.insert(all);
      sl.insert(star);
      for (const s of ["foo..bar", ".foo", "foo.", ""]) {
        expect(view(sl.match(s)), JSON.stringify(s)).toEqual({ psubs: [], qsubs: [] });
      }
    });

    it("every matching subscriber appears once, on overlapping filters", () => {
      const sl = new Sublist();
      const conn = { edgeId: "E", cid: 99, echo: true };
      const subs = ["a.b.c", "a.b.*", "a.*.c", "*.b.c", "a.>", "a.b.>", ">", "*.*.*"].map((s) => sub(s, undefined, conn));
      for (const s of subs) sl.insert(s);
      const r = sl.match("a.b.c");
      expect(r.psubs).toHaveLength(subs.length);
      expect(new Set(r.psubs).size).toBe(subs.length);
    });
  });

  describe("queue groups", () => {
    it("queue subscribers are grouped by queue name, apart from plain ones", () => {
      const sl = new Sublist();
      const p = sub("work");
      const q1 = sub("work", "g1");
      const q2 = sub("work", "g1");
      const r1 = sub("work", "g2");
      for (const s of [p, q1, q2, r1]) sl.insert(s);
      expect(view(sl.match("work"))).toEqual({ psubs: names(p), qsubs: groups(names(q1, q2), names(r1)) });
    });

    it("members of one group on different filters form one group (one message per group)", () => {
      const sl = new Sublist();
      const a = sub("work.a", "g");
      const b = sub("work.*", "g");
      const c = sub("work.>", "g");
      const d = sub(">", "other");
      for (const s of [a, b, c, d]) sl.insert(s);
      expect(view(sl.match("work.a")).qsubs).toEqual(groups(names(a, b, c), names(d)));
      expect(view(sl.match("work.b")).qsubs).toEqual(groups(names(b, c), names(d)));
    });

    it("removing the last member removes the group", () => {
      const sl = new Sublist();
      const a = sub("work", "g");
      const b = sub("work", "g");
      sl.insert(a);
      sl.insert(b);
      expect(sl.remove(a)).toBe(true);
      expect(view(sl.match("work")).qsubs).toEqual([names(b)]);
      expect(sl.remove(b)).toBe(true);
      expect(view(sl.match("work"))).toEqual({ psubs: [], qsubs: [] });
    });

    it("a queue subscriber and a plain one on the same subject are removed independently", () => {
      const sl = new Sublist();
      const conn = { edgeId: "E", cid: 5, echo: true };
      const q = sub("x", "g", conn);
      const p = sub("x", undefined, conn);
      sl.insert(q);
      sl.insert(p);
      expect(sl.remove(p)).toBe(true);
      expect(view(sl.match("x"))).toEqual({ psubs: [], qsubs: [names(q)] });
    });
  });

  describe("removal", () => {
    it("a removed subscriber is no longer matched; removing it again returns false", () => {
      const sl = new Sublist();
      const a = sub("foo.bar");
      const b = sub("foo.bar");
      sl.insert(a);
      sl.insert(b);
      expect(sl.count).toBe(2);
      expect(sl.remove(a)).toBe(true);
      expect(view(sl.match("foo.bar")).psubs).toEqual(names(b));
      expect(sl.remove(a)).toBe(false);
      expect(sl.count).toBe(1);
    });

    it("removing a subscriber that was never inserted returns false and changes nothing", () => {
      const sl = new Sublist();
      const a = sub("foo.bar");
      sl.insert(a);
      expect(sl.remove(sub("foo.bar"))).toBe(false);
      expect(sl.remove(sub("foo.baz"))).toBe(false);
      expect(sl.remove(sub("foo.bar.baz"))).toBe(false);
      expect(sl.remove(sub("foo.bar", "q"))).toBe(false);
      expect(sl.count).toBe(1);
      expect(view(sl.match("foo.bar")).psubs).toEqual(names(a));
    });

    it("removing everything prunes the trie back to empty", () => {
      const sl = new Sublist();
      const subs = ["a", "a.b", "a.b.c", "a.*.c", "a.>", "*", ">", "x.y.z", "a.b", "q.*"].map((s, i) =>
        sub(s, i % 3 === 0 ? "grp" : undefined));
      for (const s of subs) sl.insert(s);
      for (const s of [...subs].reverse()) expect(sl.remove(s)).toBe(true);
      expect(sl.count).toBe(0);
      const root = rootOf(sl);
      expect(root.nodes.size).toBe(0);
      expect(root.pwc).toBeUndefined();
      expect(root.fwc).toBeUndefined();
    });

    it("a leaf grows children later, and a missing longer subject under a leaf is not found", () => {
      const sl = new Sublist();
      const leaf = sub("a");
      sl.insert(leaf);
      expect(sl.remove(sub("a.b"))).toBe(false); // "a" has no level below it
      const child = sub("a.b");
      sl.insert(child);
      expect(view(sl.match("a.b")).psubs).toEqual(names(child));
      expect(sl.remove(leaf)).toBe(true);
      expect(view(sl.match("a.b")).psubs).toEqual(names(child));
      expect(view(sl.match("a")).psubs).toEqual([]);
      expect(sl.remove(child)).toBe(true);
      expect(rootOf(sl).nodes.size).toBe(0);
    });

    it("pruning a leaf keeps its parent when the parent still has subscribers or children", () => {
      const sl = new Sublist();
      const parent = sub("a");
      const sibling = sub("a.c");
      const leaf = sub("a.b");
      for (const s of [parent, sibling, leaf]) sl.insert(s);
      sl.remove(leaf);
      expect(view(sl.match("a")).psubs).toEqual(names(parent));
      expect(view(sl.match("a.c")).psubs).toEqual(names(sibling));
      expect(view(sl.match("a.b")).psubs).toEqual([]);
      sl.remove(sibling);
      expect(view(sl.match("a")).psubs).toEqual(names(parent));
      sl.remove(parent);
      expect(rootOf(sl).nodes.size).toBe(0);
    });
  });

  describe("cache", () => {
    it("a cached match sees a wildcard subscription added afterwards", () => {
      const sl = new Sublist();
      const lit = sub("foo.bar");
      sl.insert(lit);
      expect(view(sl.match("foo.bar")).psubs).toEqual(names(lit));
      expect(sl.cacheEntries).toBe(1);
      const star = sub("foo.*");
      sl.insert(star);
      expect(view(sl.match("foo.bar")).psubs).toEqual(names(lit, star));
      const full = sub(">");
      sl.insert(full);
      expect(view(sl.match("foo.bar")).psubs).toEqual(names(lit, star, full));
    });

    it("a cached match forgets a wildcard subscription removed afterwards", () => {
      const sl = new Sublist();
      const star = sub("foo.*");
      const full = sub("foo.>");
      sl.insert(star);
      sl.insert(full);
      expect(view(sl.match("foo.bar")).psubs).toEqual(names(star, full));
      expect(view(sl.match("foo.bar.baz")).psubs).toEqual(names(full));
      sl.remove(star);
      expect(view(sl.match("foo.bar")).psubs).toEqual(names(full));
      sl.remove(full);
      expect(view(sl.match("foo.bar")).psubs).toEqual([]);
      expect(view(sl.match("foo.bar.baz")).psubs).toEqual([]);
    });

    it("a cached empty result sees the first subscription", () => {
      const sl = new Sublist();
      expect(view(sl.match("a.b"))).toEqual({ psubs: [], qsubs: [] });
      const s = sub("a.*");
      sl.insert(s);
      expect(view(sl.match("a.b")).psubs).toEqual(names(s));
      const q = sub("a.b", "g");
      sl.insert(q);
      expect(view(sl.match("a.b")).qsubs).toEqual([names(q)]);
    });

    it("a cached match sees queue members come and go", () => {
      const sl = new Sublist();
      const a = sub("jobs.*", "w");
      sl.insert(a);
      expect(view(sl.match("jobs.1")).qsubs).toEqual([names(a)]);
      const b = sub("jobs.>", "w");
      sl.insert(b);
      expect(view(sl.match("jobs.1")).qsubs).toEqual([names(a, b)]);
      sl.remove(a);
      expect(view(sl.match("jobs.1")).qsubs).toEqual([names(b)]);
    });

    it("a subscription on another subject leaves cached results valid and correct", () => {
      const sl = new Sublist();
      const a = sub("a.b");
      sl.insert(a);
      sl.match("a.b");
      const hits = sl.cacheHits;
      sl.insert(sub("x.y"));
      sl.insert(sub("x.*"));
      expect(view(sl.match("a.b")).psubs).toEqual(names(a));
      expect(sl.cacheHits).toBe(hits + 1);
    });

    it("the cache stays bounded and correct over many distinct subjects", () => {
      const sl = new Sublist();
      const all = sub(">");
      sl.insert(all);
      for (let i = 0; i < 5_000; i++) expect(sl.match(`s.${i}`).psubs).toHaveLength(1);
      expect(sl.cacheEntries).toBeLessThanOrEqual(1024);
      const late = sub("s.*");
      sl.insert(late);
      for (const i of [0, 1_000, 4_999]) expect(view(sl.match(`s.${i}`)).psubs).toEqual(names(all, late));
    });

    it("once full, the cache takes a subject on its second miss only (unique reply subjects stay out)", () => {
      const sl = new Sublist();
      const inbox = sub("_INBOX.a.*");
      sl.insert(inbox);
      for (let i = 0; i < 1024; i++) sl.match(`_INBOX.a.${i}`);
      expect(sl.cacheEntries).toBe(1024);
      const before = [...cacheKeys(sl)];
      // Replies, each to a new subject: results are right, and the cache is not swept for them.
      for (let i = 1024; i < 5_000; i++) expect(view(sl.match(`_INBOX.a.${i}`)).psubs).toEqual(names(inbox));
      expect([...cacheKeys(sl)]).toEqual(before);
      // A subject that comes back is cached at its second miss.
      sl.match("_INBOX.a.again");
      expect(cacheKeys(sl).has("_INBOX.a.again")).toBe(false);
      sl.match("_INBOX.a.again");
      expect(cacheKeys(sl).has("_INBOX.a.again")).toBe(true);
      const hits = sl.cacheHits;
      expect(view(sl.match("_INBOX.a.again")).psubs).toEqual(names(inbox));
      expect(sl.cacheHits).toBe(hits + 1);
    });
  });

  it("many unrelated subscriptions do not change results", () => {
    const sl = new Sublist();
    const tracked = [sub("orders.eu.new"), sub("orders.*.new"), sub("orders.>"), sub("orders.eu.new", "g"), sub(">", "h")];
    for (const s of tracked) sl.insert(s);
    const subjects = ["orders.eu.new", "orders.us.new", "orders.eu.old", "orders", "other"];
    const before = subjects.map((s) => view(sl.match(s)));
    const noise: Named[] = [];
    for (let i = 0; i < 10_000; i++) {
      const n = [`noise.${i}`, `noise.*.${i}`, `n${i}.>`, `ord.${i}`, `orders${i}.eu.new`][i % 5];
      const s = sub(n, i % 7 === 0 ? `q${i % 3}` : undefined);
      noise.push(s);
      sl.insert(s);
    }
    expect(subjects.map((s) => view(sl.match(s)))).toEqual(before);
    for (const s of noise) sl.remove(s);
    expect(subjects.map((s) => view(sl.match(s)))).toEqual(before);
    expect(sl.count).toBe(tracked.length);
  });
});
