// A client's write side: protocol lines and payloads are appended to a slab and written with
// one socket write per event-loop turn. Pending bytes (slab + what the socket still holds)
// are bounded by max_pending; a write the kernel does not take within write_deadline marks a
// slow consumer too.
import type { CloseReason } from "../common/errors.js";

/** The transport below a client: a TCP socket, or a WebSocket adapter later. */
export interface Transport {
  write(data: Buffer): void;
  /** Bytes handed to write() that the kernel has not taken yet. */
  readonly pendingBytes: number;
  onDrain(cb: () => void): void;
}

const SLAB = 64 * 1024;

export interface OutboundOwner {
  /** Called once when a limit is hit; the owner closes the connection. */
  slowConsumer(reason: CloseReason): void;
}

export class Outbound {
  private slab = Buffer.allocUnsafe(SLAB);
  private len = 0;
  private scheduled = false;
  private deadline: NodeJS.Timeout | undefined;
  private failed = false;

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

  /** Append a latin1/ASCII protocol string (control lines are ASCII by construction). */
  appendString(s: string): void {
    const bytes = s.length; // latin1: one byte per char
    if (!this.reserve(bytes)) return;
    this.slab.write(s, this.len, "latin1");
    this.len += bytes;
    this.schedule();
  }

  /** Append bytes; the caller's buffer may be reused after this returns. */
  appendBytes(b: Buffer, start = 0, end = b.length): void {
    const bytes = end - start;
    if (!this.reserve(bytes)) return;
    b.copy(this.slab, this.len, start, end);
    this.len += bytes;
    this.schedule();
  }

  /** Write now, e.g. before closing the connection. */
  flush(): void {
    this.scheduled = false;
    if (this.len === 0 || this.failed) return;
    const data = this.slab.subarray(0, this.len);
    this.transport.write(data);
    this.len = 0;
    if (this.transport.pendingBytes === 0) return; // written synchronously: the slab is free again
    // The socket still holds a view of the slab: start a fresh one.
    this.slab = Buffer.allocUnsafe(SLAB);
    if (this.transport.pendingBytes > this.maxPending) return this.fail("Slow Consumer (Pending Bytes)");
    if (!this.deadline && this.writeDeadlineMs > 0) {
      this.deadline = setTimeout(() => this.fail("Slow Consumer (Write Deadline)"), this.writeDeadlineMs);
      this.deadline.unref();
      this.transport.onDrain(() => this.clearDeadline());
    }
  }

  dispose(): void {
    this.clearDeadline();
    this.failed = true;
    this.len = 0;
  }

  private clearDeadline(): void {
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = undefined;
  }

  private fail(reason: CloseReason): void {
    if (this.failed) return;
    this.failed = true;
    this.len = 0;
    this.clearDeadline();
    this.owner.slowConsumer(reason);
  }

  /** Makes room for `bytes` more; false when the connection is over its limit (or closed). */
  private reserve(bytes: number): boolean {
    if (this.failed) return false;
    const need = this.len + bytes;
    if (need + this.transport.pendingBytes > this.maxPending) {
      this.fail("Slow Consumer (Pending Bytes)");
      return false;
    }
    if (need > this.slab.length) {
      const bigger = Buffer.allocUnsafe(Math.max(need, this.slab.length * 2));
      this.slab.copy(bigger, 0, 0, this.len);
      this.slab = bigger;
    }
    return true;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    pendingFlush.push(this);
    if (pendingFlush.length === 1) setImmediate(flushAll);
  }
}

/** Every Outbound written to in this turn; flushed together once the turn's reads are done. */
const pendingFlush: Outbound[] = [];

function flushAll(): void {
  // Flushing can trigger writes on other clients (e.g. a close); take the list first.
  const list = pendingFlush.splice(0);
  for (const o of list) o.flush();
}
