// The subject index: a trie of tokens with "*" and ">" branches, plus a bounded cache of
// match results keyed by literal subject. Matching walks only the branches the subject can
// reach, so its cost does not grow with unrelated subscriptions.
import { subjectMatches } from "../common/subject.js";
import type { Subscriber } from "./link.js";

export interface MatchResult {
  /** Plain subscribers. */
  readonly psubs: Subscriber[];
  /** One array per queue group; each message goes to one member of each. */
  readonly qsubs: Subscriber[][];
}

const EMPTY: MatchResult = Object.freeze({ psubs: [], qsubs: [] }) as MatchResult;
const CACHE_MAX = 1024;
/** How many entries to drop when the cache is full (cheaper than an LRU on every hit). */
const CACHE_SWEEP = 256;
/** Slots of the admission filter (a power of two): the hashes of recent misses. */
const SEEN_SLOTS = 1024;

class Node {
  next: Level | undefined;
  /** Created on first use: most nodes are inner tokens of other subjects. */
  psubs: Set<Subscriber> | undefined;
  qsubs: Map<string, Set<Subscriber>> | undefined;

  isEmpty(): boolean {
    return (this.psubs === undefined || this.psubs.size === 0) && (this.qsubs === undefined || this.qsubs.size === 0) &&
      (this.next === undefined || this.next.isEmpty());
  }
}

class Level {
  nodes = new Map<string, Node>();
  pwc: Node | undefined; // "*"
  fwc: Node | undefined; // ">"

  isEmpty(): boolean {
    return this.nodes.size === 0 && this.pwc === undefined && this.fwc === undefined;
  }
}

export class Sublist {
  private readonly root = new Level();
  private readonly cache = new Map<string, MatchResult>();
  /**
   * Once the cache is full, a result enters it only on its subject's second miss: this holds a
   * hash of each recent miss. Request/reply sends every reply to a new subject; caching each one
   * swept the cache and left every result for the garbage collector to copy, then to
   * promote (made on first use: a cache that never fills needs none).
   */
  private seen: Int32Array | undefined;
  count = 0;
  matches = 0;
  cacheHits = 0;
  inserts = 0;
  removes = 0;

  get cacheEntries(): number { return this.cache.size; }

  insert(sub: Subscriber): void {
    const tokens = sub.subject.split(".");
    let level = this.root;
    let node: Node | undefined;
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i];
      if (t === "*") node = level.pwc ??= new Node();
      else if (t === ">") node = level.fwc ??= new Node();
      else {
        node = level.nodes.get(t);
        if (!node) level.nodes.set(t, node = new Node());
      }
      if (i < tokens.length - 1) level = node.next ??= new Level(); // a leaf gets no empty level
    }
    if (sub.queue === undefined) (node!.psubs ??= new Set()).add(sub);
    else {
      const qsubs = node!.qsubs ??= new Map();
      let group = qsubs.get(sub.queue);
      if (!group) qsubs.set(sub.queue, group = new Set());
      group.add(sub);
    }
    this.count++;
    this.inserts++;
    this.invalidate(sub.subject);
  }

  /** Returns false when the subscription was not in the index. */
  remove(sub: Subscriber): boolean {
    const tokens = sub.subject.split(".");
    const path: Array<[Level, string, Node]> = [];
    let level: Level | undefined = this.root;
    let node: Node | undefined;
    for (const t of tokens) {
      if (!level) return false;
      node = t === "*" ? level.pwc : t === ">" ? level.fwc : level.nodes.get(t);
      if (!node) return false;
      path.push([level, t, node]);
      level = node.next;
    }
    let removed: boolean;
    if (sub.queue === undefined) removed = node!.psubs?.delete(sub) ?? false;
    else {
      const group = node!.qsubs?.get(sub.queue);
      removed = group?.delete(sub) ?? false;
      if (group && group.size === 0) node!.qsubs!.delete(sub.queue);
    }
    if (!removed) return false;
    // Prune empty branches so the trie does not keep the shape of every subject ever seen.
    for (let i = path.length - 1; i >= 0; i--) {
      const [lvl, t, n] = path[i];
      if (!n.isEmpty()) break;
      if (t === "*") lvl.pwc = undefined;
      else if (t === ">") lvl.fwc = undefined;
      else lvl.nodes.delete(t);
    }
    this.count--;
    this.removes++;
    this.invalidate(sub.subject);
    return true;
  }

  /** Subscribers whose filter matches the literal subject. */
  match(subject: string): MatchResult {
    this.matches++;
    const cached = this.cache.get(subject);
    if (cached) {
      this.cacheHits++;
      return cached;
    }
    const found: Found = { psubs: [], groups: undefined };
    const tokens = subject.split(".");
    // A subject with an empty token matches nothing, not even ">" (nats-server).
    if (!tokens.includes("")) matchLevel(this.root, tokens, 0, found);
    const { psubs, groups } = found;
    const result: MatchResult = psubs.length === 0 && groups === undefined
      ? EMPTY
      : { psubs, qsubs: groups === undefined ? [] : [...groups.values()] };
    if (this.cache.size >= CACHE_MAX) {
      if (!this.admit(subject)) return result;
      let n = 0;
      for (const key of this.cache.keys()) {
        this.cache.delete(key);
        if (++n >= CACHE_SWEEP) break;
      }
    }
    this.cache.set(subject, result);
    return result;
  }

  /** The subject missed before, recently (or its hash collides with one that did). */
  private admit(subject: string): boolean {
    const seen = this.seen ??= new Int32Array(SEEN_SLOTS);
    let h = 0x811c9dc5; // FNV-1a over the UTF-16 code units
    for (let i = 0; i < subject.length; i++) h = Math.imul(h ^ subject.charCodeAt(i), 0x01000193);
    h |= 1; // 0 marks an empty slot
    const slot = h & (SEEN_SLOTS - 1);
    if (seen[slot] === h) return true;
    seen[slot] = h;
    return false;
  }

  /** Largest and total fan-out over the cached results (for /subsz max_fanout, avg_fanout). */
  cacheFanout(): { max: number; total: number } {
    let max = 0, total = 0;
    for (const r of this.cache.values()) {
      const n = r.psubs.length + r.qsubs.length;
      if (n > max) max = n;
      total += n;
    }
    return { max, total };
  }

  /** Drop cached results the changed filter could affect. */
  private invalidate(filter: string): void {
    if (this.cache.size === 0) return;
    if (filter.indexOf("*") < 0 && filter.indexOf(">") < 0) {
      this.cache.delete(filter);
      return;
    }
    for (const key of this.cache.keys()) {
      if (subjectMatches(filter, key)) this.cache.delete(key);
    }
  }
}

/** A match being gathered; the groups map is made only when a queue group matches. */
interface Found {
  psubs: Subscriber[];
  groups: Map<string, Subscriber[]> | undefined;
}

function matchLevel(level: Level, tokens: string[], i: number, found: Found): void {
  if (level.fwc) addNode(level.fwc, found);
  const last = i === tokens.length - 1;
  const literal = level.nodes.get(tokens[i]);
  if (literal) {
    if (last) addNode(literal, found);
    else if (literal.next) matchLevel(literal.next, tokens, i + 1, found);
  }
  if (level.pwc) {
    if (last) addNode(level.pwc, found);
    else if (level.pwc.next) matchLevel(level.pwc.next, tokens, i + 1, found);
  }
}

function addNode(node: Node, found: Found): void {
  if (node.psubs) for (const s of node.psubs) found.psubs.push(s);
  if (node.qsubs && node.qsubs.size > 0) {
    const groups = found.groups ??= new Map();
    for (const [queue, members] of node.qsubs) {
      let g = groups.get(queue);
      if (!g) groups.set(queue, g = []);
      for (const s of members) g.push(s);
    }
  }
}
