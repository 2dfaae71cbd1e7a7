// Aggregated interest, as nats-server's routes send RS+/RS-: one entry per (account, subject,
// queue group) with the number of subscriptions behind it, never one per client subscription.
// LocalInterest is this router's own, versioned by a sequence that grows by one per update;
// RemoteInterest is one peer's, applied to the router's sublists, with the gap check that
// turns a missed update into a resync instead of drift.
import { forEachInTurns } from "../../common/turn-budget.js";
import type { InterestEntry } from "../wire/frames.js";

/** The key of one aggregated entry. Subjects and queue names hold no spaces (the parsers refuse
 *  them), so the key is unambiguous whatever the account's name. */
export function interestKey(account: string, subject: string, queue: string): string {
  return `${account} ${subject} ${queue}`;
}

/** Entries per InterestUpdate (and snapshot chunk): a turn that changed more sends several, of
 *  about 100 KB each, which the peer applies a slice per turn (wire/slices.ts). */
export const UPDATE_ENTRIES = 4_000;

export interface InterestUpdateData {
  seq: number;
  entries: InterestEntry[];
}

/**
 * Values by (account, queue group, subject), looked up without building interestKey(): a key
 * made per lookup is a new string to flatten and hash, and a SUB burst or a peer's update is one
 * lookup per subscription (in a router taking 100,000 SUBs, a third of its CPU went to such
 * lookups). Here the account and queue strings are few and their hashes cached; only the
 * subject is hashed.
 */
export class EntryTable<V> {
  private readonly accounts = new Map<string, Map<string, Map<string, V>>>();
  size = 0;

  get(account: string, subject: string, queue: string): V | undefined {
    return this.accounts.get(account)?.get(queue)?.get(subject);
  }

  set(account: string, subject: string, queue: string, value: V): void {
    let queues = this.accounts.get(account);
    if (!queues) this.accounts.set(account, queues = new Map());
    let subjects = queues.get(queue);
    if (!subjects) queues.set(queue, subjects = new Map());
    const before = subjects.size;
    subjects.set(subject, value);
    this.size += subjects.size - before;
  }

  delete(account: string, subject: string, queue: string): void {
    const queues = this.accounts.get(account);
    const subjects = queues?.get(queue);
    if (!subjects?.delete(subject)) return;
    this.size--;
    // An emptied group or account goes too: queue names come and go.
    if (subjects.size > 0) return;
    queues!.delete(queue);
    if (queues!.size === 0) this.accounts.delete(account);
  }

  *values(): IterableIterator<V> {
    for (const queues of this.accounts.values()) for (const subjects of queues.values()) yield* subjects.values();
  }

  clear(): void {
    this.accounts.clear();
    this.size = 0;
  }
}

/** This router's interest: local subscriptions counted per entry, changes sent once per turn. */
export class LocalInterest {
  private readonly weights = new EntryTable<InterestEntry>();
  /** Entries changed this turn, each once; they leave as one update on the next. A removed one
   *  keeps weight 0, and its place in `weights` until then, so one made again in the same turn
   *  is the same entry (an update never holds a key twice: the registry writes its removals
   *  after its additions). */
  private readonly changed = new Set<InterestEntry>();
  private scheduled = false;
  seq = 0;

  constructor(private readonly onUpdate: (update: InterestUpdateData) => void) {}

  /** Entries (one removed this turn counts until the turn's update). */
  get size(): number { return this.weights.size; }
  /** Changes wait for this turn's end. */
  get pending(): boolean { return this.changed.size > 0; }

  change(account: string, subject: string, queue: string | undefined, delta: number): void {
    const q = queue ?? "";
    let e = this.weights.get(account, subject, q);
    if (!e) this.weights.set(account, subject, q, e = { account, subject, queue: q, weight: 0 });
    e.weight = Math.max(0, e.weight + delta); // 0: RS-
    this.changed.add(e);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  /** Sends what changed now (the turn's batch, in updates of at most UPDATE_ENTRIES, each with
   *  its own seq), so that a snapshot taken after it is consistent. */
  flush(): void {
    this.scheduled = false;
    if (this.changed.size === 0) return;
    let entries: InterestEntry[] = [];
    for (const e of this.changed) {
      if (e.weight === 0) this.weights.delete(e.account, e.subject, e.queue);
      entries.push({ ...e });
      if (entries.length === UPDATE_ENTRIES) {
        this.onUpdate({ seq: ++this.seq, entries });
        entries = [];
      }
    }
    this.changed.clear();
    if (entries.length > 0) this.onUpdate({ seq: ++this.seq, entries });
  }

  /** Every entry, consistent with `seq` (pending changes are flushed first). */
  snapshot(): InterestUpdateData {
    this.flush();
    return { seq: this.seq, entries: [...this.weights.values()].map((e) => ({ ...e })) };
  }
}

/** What a peer's entries become in the router: sublist entries that forward to that peer. */
export interface RemoteEntrySink<E> {
  add(entry: InterestEntry): E;
  setWeight(handle: E, weight: number): void;
  remove(entry: InterestEntry, handle: E): void;
}

/** Why an update was not applied. */
export type ApplyResult = "applied" | "gap" | "waiting";

/** One peer's interest as this router holds it. */
export class RemoteInterest<E> {
  private readonly entries = new EntryTable<{ entry: InterestEntry; handle: E }>();
  /** The peer's sequence this copy is consistent with; -1: none yet (a snapshot is due). */
  seq = -1;
  /** Snapshot chunks received so far. */
  private incoming: InterestEntry[] | undefined;

  constructor(private readonly sink: RemoteEntrySink<E>) {}

  get size(): number { return this.entries.size; }

  /** An incremental update; a gap (or no snapshot yet) leaves the copy as is. */
  apply(update: InterestUpdateData): ApplyResult {
    if (this.seq < 0) return "waiting";
    if (update.seq !== this.seq + 1) {
      this.seq = -1; // updates wait for the snapshot asked for now
      return "gap";
    }
    for (const e of update.entries) this.set(e);
    this.seq = update.seq;
    return "applied";
  }

  /** A snapshot chunk; the copy is replaced when the last one arrives. */
  snapshotChunk(seq: number, entries: InterestEntry[], last: boolean): void {
    (this.incoming ??= []).push(...entries);
    if (!last) return;
    const next = new EntryTable<true>();
    for (const e of this.incoming) {
      next.set(e.account, e.subject, e.queue, true);
      this.set(e);
    }
    for (const { entry, handle } of [...this.entries.values()]) {
      if (!next.get(entry.account, entry.subject, entry.queue)) {
        this.entries.delete(entry.account, entry.subject, entry.queue);
        this.sink.remove(entry, handle);
      }
    }
    this.incoming = undefined;
    this.seq = seq;
  }

  /** The peer is gone: its entries leave the router, a slice per event-loop turn (100,000 in one
   *  turn held a router 0.3 s). Until its turn, an entry is matched, and its link forwards nothing. */
  clear(): void {
    const gone = [...this.entries.values()];
    this.entries.clear();
    this.incoming = undefined;
    this.seq = -1;
    forEachInTurns(gone, ({ entry, handle }) => this.sink.remove(entry, handle));
  }

  private set(e: InterestEntry): void {
    const have = this.entries.get(e.account, e.subject, e.queue);
    if (e.weight === 0) {
      if (have) {
        this.entries.delete(e.account, e.subject, e.queue);
        this.sink.remove(have.entry, have.handle);
      }
    } else if (have) {
      this.sink.setWeight(have.handle, e.weight);
    } else {
      this.entries.set(e.account, e.subject, e.queue, { entry: e, handle: this.sink.add(e) });
    }
  }
}
