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

/** This router's interest: local subscriptions counted per entry, changes sent once per turn. */
export class LocalInterest {
  private readonly weights = new Map<string, InterestEntry>();
  /** Entries changed this turn (a removed one keeps weight 0); they leave as one update on the next. */
  private readonly changed = new Map<string, InterestEntry>();
  private scheduled = false;
  seq = 0;

  constructor(private readonly onUpdate: (update: InterestUpdateData) => void) {}

  get size(): number { return this.weights.size; }
  /** Changes wait for this turn's end. */
  get pending(): boolean { return this.changed.size > 0; }

  change(account: string, subject: string, queue: string | undefined, delta: number): void {
    const q = queue ?? "";
    const key = interestKey(account, subject, q);
    let e = this.weights.get(key);
    if (!e) this.weights.set(key, e = { account, subject, queue: q, weight: 0 });
    e.weight += delta;
    if (e.weight <= 0) {
      e.weight = 0; // RS-
      this.weights.delete(key);
    }
    this.changed.set(key, e);
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
    for (const e of this.changed.values()) {
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
  private readonly entries = new Map<string, { entry: InterestEntry; handle: E }>();
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
    const next = new Set<string>();
    for (const e of this.incoming) {
      next.add(interestKey(e.account, e.subject, e.queue));
      this.set(e);
    }
    for (const [key, { entry, handle }] of this.entries) {
      if (!next.has(key)) {
        this.entries.delete(key);
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
    const key = interestKey(e.account, e.subject, e.queue);
    const have = this.entries.get(key);
    if (e.weight === 0) {
      if (have) {
        this.entries.delete(key);
        this.sink.remove(have.entry, have.handle);
      }
    } else if (have) {
      this.sink.setWeight(have.handle, e.weight);
    } else {
      this.entries.set(key, { entry: e, handle: this.sink.add(e) });
    }
  }
}
