// A client's write side: protocol lines and payloads are appended to a slab and written with
// one socket write per event-loop turn (per task when the connection was idle: common/flush.ts).
// Pending bytes (slab + what the socket still holds) are bounded by max_pending; a write the
// kernel does not take within write_deadline marks a slow consumer too.
import { copyBytes } from "../common/byte-range.js";
import type { CloseReason } from "../common/errors.js";
import { Timeouts } from "../common/deadline.js";
import { isIdle } from "../common/flush.js";

/** The transport below a client: a TCP socket, or a WebSocket adapter. */
export interface Transport {
  write(data: Buffer): void;
  /** Bytes handed to write() that the kernel has not taken yet. */
  readonly pendingBytes: number;
  onDrain(cb: () => void): void;
}

export interface OutboundOwner {
  /** Called once when a limit is hit; the owner closes the connection. */
  slowConsumer(reason: CloseReason): void;
}

const SLAB = 64 * 1024;
/** A connection's first slab is small (from Node's shared pool) and grows on its first burst.
 *  While it is that small it is let go once written, so an idle connection holds none. */
const FIRST_SLAB = 1024;
/** Busy writes in a row after which a connection keeps its first slab between writes. */
const KEEP_SLAB_AFTER = 3;
/** The slab of a connection that holds none: begin() finds it too small. */
const NO_SLAB = Buffer.alloc(0);
/** Below this size a byte loop beats a call into Buffer's native copy/encode. */
const SMALL = 64;

export class Outbound {
  private slab = NO_SLAB;
  private len = 0;
  private scheduled = false;
  /** The write deadline running (its length, for writeDeadlines), or 0. */
  private deadlineMs = 0;
  /** Write deadlines of every connection on one timer per length (a TLS client waits on each
   *  write: a Timeout and closure per write would be garbage per flush). */
  private static readonly writeDeadlines = new Timeouts<Outbound>((o) => o.fail("Slow Consumer (Write Deadline)"));
  private failed = false;
  /** The last slab handed to the transport while it was not done with it (until it drains),
   *  and one it is done with: reused, so that a connection the transport is always behind on
   *  (compressed WebSocket: deflate runs on the thread pool) does not allocate a slab a turn. */
  private handed: typeof NO_SLAB | undefined;
  private spare: typeof NO_SLAB | undefined;
  private whenDrained: (() => void) | undefined;
  /** When the last write left (performance.now()). */
  private flushedAt = 0;
  /** Writes in a row that each left soon after the one before (common/flush.ts's rule). */
  private busyRun = 0;

  constructor(
    private readonly transport: Transport,
    private readonly owner: OutboundOwner,
    private maxPending: number,
    private writeDeadlineMs: number,
  ) {}

  setLimits(maxPending: number, writeDeadlineMs: number): void {
    this.maxPending = maxPending;
    this.writeDeadlineMs = writeDeadlineMs;
  }

  get pendingBytes(): number {
    return this.len + this.transport.pendingBytes;
  }

  /** Append an ASCII protocol string. */
  appendString(s: string): void {
    if (!this.begin(s.length)) return;
    this.putAscii(s);
    this.done();
  }

  /**
   * Frame writing in three steps: begin(upper bound of the bytes) → put*() → done().
   * begin() returns false when the connection is over its limits; then write nothing.
   */
  begin(maxBytes: number): boolean {
    if (this.failed) return false;
    const need = this.len + maxBytes;
    if (need + this.transport.pendingBytes > this.maxPending) {
      this.fail("Slow Consumer (Pending Bytes)");
      return false;
    }
    if (need > this.slab.length) {
      const len = this.slab.length;
      const bigger = Buffer.allocUnsafe(Math.max(need, len === 0 ? FIRST_SLAB : len < SLAB ? Math.min(len * 8, SLAB) : len * 2));
      this.slab.copy(bigger, 0, 0, this.len);
      this.slab = bigger;
    }
    return true;
  }

  putAscii(s: string): void {
    const n = s.length;
    if (n > SMALL) {
      this.len += this.slab.write(s, this.len, "latin1");
      return;
    }
    const slab = this.slab;
    let at = this.len;
    for (let i = 0; i < n; i++) slab[at++] = s.charCodeAt(i);
    this.len = at;
  }

  /** A UTF-8 string (MQTT topics); begin() must have reserved 3 bytes per character. */
  putUtf8(s: string): void {
    this.len += this.slab.write(s, this.len, "utf8");
  }

  putBytes(b: Buffer, start = 0, end = b.length): void {
    copyBytes(this.slab, this.len, b, start, end);
    this.len += end - start;
  }

  /** A non-negative integer in decimal. */
  putUint(v: number): void {
    const slab = this.slab;
    let digits = 1;
    for (let t = v; t >= 10; t = Math.floor(t / 10)) digits++;
    let at = this.len + digits;
    this.len = at;
    do {
      slab[--at] = 48 + (v % 10);
      v = Math.floor(v / 10);
    } while (v > 0);
  }

  putByte(c: number): void {
    this.slab[this.len++] = c;
  }

  done(): void {
    if (this.scheduled || this.failed) return;
    this.scheduled = true;
    if (isIdle(this.flushedAt)) {
      // Idle: a lone message (a request, its reply) leaves once the current task is done.
      idleFlush.push(this);
      if (idleFlush.length === 1) queueMicrotask(flushIdle);
      return;
    }
    pendingFlush.push(this);
    if (pendingFlush.length === 1) setImmediate(flushAll);
  }

  /** Write now, e.g. before closing the connection. */
  flush(): void {
    this.scheduled = false;
    if (this.len === 0 || this.failed) return;
    const now = performance.now();
    this.busyRun = isIdle(this.flushedAt, now) ? 0 : this.busyRun + 1;
    this.flushedAt = now;
    this.transport.write(this.slab.subarray(0, this.len));
    this.len = 0;
    if (this.transport.pendingBytes === 0) { // taken synchronously: the slab is free again
      // A quiet connection holds 1 KB less. One that keeps writing (a requester, a responder)
      // keeps it, instead of allocating a slab per message; it lets it go at its next write
      // after a pause. A handshake's few writes do not count as keeping on.
      if (this.busyRun < KEEP_SLAB_AFTER && this.slab.length === FIRST_SLAB) this.slab = NO_SLAB;
      return;
    }
    // The transport still holds a view of the slab: continue in the spare one, or a fresh one as
    // large as this one grew (a connection that writes 100 KB a turn would otherwise grow and
    // copy every turn). A first slab still that small is replaced only when next written to:
    // TLS holds every write until its callback, so a handshake's PONG would otherwise leave each
    // idle TLS client with a 64 KB slab.
    const handed = this.slab;
    const spare = this.spare;
    this.spare = undefined;
    this.slab = spare && spare.length >= handed.length ? spare
      : handed.length <= FIRST_SLAB ? NO_SLAB : Buffer.allocUnsafe(Math.max(SLAB, handed.length));
    if (this.transport.pendingBytes > this.maxPending) return this.fail("Slow Consumer (Pending Bytes)");
    if (this.deadlineMs === 0 && this.writeDeadlineMs > 0) {
      this.deadlineMs = this.writeDeadlineMs;
      Outbound.writeDeadlines.set(this, this.deadlineMs);
    }
    if (this.handed === undefined) this.transport.onDrain(this.whenDrained ??= () => this.drained());
    this.handed = handed;
  }

  /** The transport wrote everything: the last slab handed over is free. */
  private drained(): void {
    this.clearDeadline();
    this.spare = this.handed;
    this.handed = undefined;
  }

  dispose(): void {
    this.clearDeadline();
    this.failed = true;
    this.len = 0;
  }

  private clearDeadline(): void {
    if (this.deadlineMs === 0) return;
    Outbound.writeDeadlines.clear(this, this.deadlineMs);
    this.deadlineMs = 0;
  }

  private fail(reason: CloseReason): void {
    if (this.failed) return;
    this.failed = true;
    this.len = 0;
    this.clearDeadline();
    this.owner.slowConsumer(reason);
  }
}

/** Every busy Outbound written to in this turn; flushed together once the turn's reads are done. */
const pendingFlush: Outbound[] = [];
/** Every idle Outbound written to in this task; flushed once it is done. */
const idleFlush: Outbound[] = [];

const flushAll = (): void => flushList(pendingFlush);
const flushIdle = (): void => flushList(idleFlush);

function flushList(pending: Outbound[]): void {
  // Flushing can close connections and so schedule more: those join this pass (the length is
  // read on each step). No copy of the list, which would be an allocation a turn.
  try {
    for (let i = 0; i < pending.length; i++) pending[i].flush();
  } finally {
    pending.length = 0;
  }
}
