// The NATS client protocol parser: incremental over Buffers, no socket. A control line is
// found with indexOf (native); the operation and its arguments are read as byte offsets, and
// only the strings the sink needs are decoded. A payload is handed to the sink as a view
// into the chunk, copied only when it spans two chunks. Every transport framing (TCP,
// WebSocket) feeds this one parser.
import { ERR, ProtocolError } from "../../common/errors.js";
import type { MessageData } from "../../router/link.js";

export interface ParserSink {
  onConnect(json: string): void;
  /** `msg` = header block (`hdrLen` = 0 for PUB) + payload, a view into the chunk that the
   *  parser reuses for every message: valid only during the call. */
  onPub(subject: string, reply: string | undefined, msg: MessageData): void;
  onSub(subject: string, queue: string | undefined, sid: string): void;
  onUnsub(sid: string, max: number | undefined): void;
  onPing(): void;
  onPong(): void;
}

export interface ProtocolLimits {
  maxControlLine: number;
  maxPayload: number;
}

const CONTROL = 0, PAYLOAD = 1;
/** A payload split across reads is assembled in a buffer that starts at this size (or the
 *  payload's, if smaller) and doubles as bytes arrive, up to the announced size: a client that
 *  announces 1 MB and sends a few bytes holds 64 KB, not 1 MB. Sized in advance, the fuzzer's
 *  such payloads were the broker's largest allocations (up to 70 MB outstanding), freed into
 *  the malloc heap where glibc keeps them (it has no Node binding for malloc_trim). */
const PAYLOAD_FIRST = 64 * 1024;
const LF = 10, CR = 13, SPACE = 32, TAB = 9;

const OP_CONNECT = 0, OP_PUB = 1, OP_HPUB = 2, OP_SUB = 3, OP_UNSUB = 4, OP_PING = 5, OP_PONG = 6,
  OP_ERR = 9;
/** Operation names (clients may send them in any case), indexed by the OP_ constants. INFO and
 *  +OK from a client are ignored; -ERR closes the connection, as nats-server does. */
const OPS = ["CONNECT", "PUB", "HPUB", "SUB", "UNSUB", "PING", "PONG", "INFO", "+OK", "-ERR"]
  .map((s) => Buffer.from(s, "latin1"));
/** Most arguments any operation takes (HPUB: subject reply hdr total). */
const MAX_ARGS = 4;
/** Both buffers a parser starts with (zero bytes, so sharing one is safe): none per connection. */
const EMPTY = Buffer.alloc(0);

export class NatsParser {
  state = CONTROL;
  /** HPUB is a protocol violation until the client's CONNECT says `headers: true`. */
  headersAllowed = false;
  /** Bytes of a control line that has not ended yet. */
  private spill: Buffer | undefined;
  /** The payload being assembled across chunks, and how much of it (with its CRLF) has arrived. */
  private payload: Buffer | undefined;
  private payloadFilled = 0;
  private payloadSize = 0;
  private pubSubject = "";
  private pubReply: string | undefined;
  private pubHdrLen = 0;
  /** Handed to onPub for every message: no allocation per message. */
  private readonly msg: MessageData = { buf: EMPTY, start: 0, end: 0, hdrLen: 0 };
  private halted = false;
  /** Input that arrived while suspended (waiting for an asynchronous CONNECT check). */
  private held: Buffer | undefined;
  private suspended = false;
  /** Argument offsets of the current control line (no per-line arrays). */
  private readonly argStart = new Int32Array(MAX_ARGS + 1);
  private readonly argEnd = new Int32Array(MAX_ARGS + 1);
  /** Publishers mostly repeat a subject: reuse its string instead of decoding it again. */
  private lastSubjectBytes = EMPTY;
  private lastSubjectLen = -1;
  private lastSubject = "";

  constructor(private readonly sink: ParserSink, public limits: ProtocolLimits) {}

  /** Parse one chunk; throws ProtocolError on a violation (the caller closes the connection). */
  parse(chunk: Buffer): void {
    if (this.suspended) {
      this.hold(chunk, 0);
      return;
    }
    let pos = 0;
    const n = chunk.length;
    while (pos < n && !this.halted) {
      if (this.suspended) {
        this.hold(chunk, pos);
        return;
      }
      if (this.state === PAYLOAD) {
        pos = this.readPayload(chunk, pos);
        continue;
      }
      const nl = chunk.indexOf(LF, pos);
      if (nl < 0) {
        this.keepPartialLine(chunk, pos);
        return;
      }
      if (this.spill) {
        const line = Buffer.concat([this.spill, chunk.subarray(pos, nl)]);
        this.spill = undefined;
        this.controlLine(line, 0, line.length);
      } else {
        this.controlLine(chunk, pos, nl);
      }
      pos = nl + 1;
    }
  }

  /** Stop parsing (the connection is closing); the rest of the current chunk is dropped. */
  halt(): void {
    this.halted = true;
  }

  /** Called by the sink during a callback: keep what follows until resume() (async auth). */
  suspend(): void {
    this.suspended = true;
  }

  /** Parse what arrived while suspended; throws like parse(). */
  resume(): void {
    this.suspended = false;
    const held = this.held;
    this.held = undefined;
    if (held) this.parse(held);
  }

  private hold(chunk: Buffer, pos: number): void {
    const rest = chunk.subarray(pos);
    this.held = this.held ? Buffer.concat([this.held, rest]) : Buffer.from(rest);
  }

  private keepPartialLine(chunk: Buffer, pos: number): void {
    const part = chunk.subarray(pos);
    const line = this.spill ? Buffer.concat([this.spill, part]) : Buffer.from(part);
    // Fail early on garbage, as a byte-wise parser would, instead of waiting for a newline.
    const wordEnd = skipToSpace(line, 0, line.length);
    if (!isOpPrefix(line, wordEnd, wordEnd < line.length)) {
      throw new ProtocolError(`unknown operation: ${snippet(line, 0)}`, ERR.unknownOp);
    }
    // The CR of a CRLF split across reads is not part of the arguments.
    const argEnd = line[line.length - 1] === CR ? line.length - 1 : line.length;
    if (wordEnd < line.length && argEnd - wordEnd - 1 > this.limits.maxControlLine) {
      throw new ProtocolError("maximum control line exceeded", ERR.maxControlLine, "Maximum Control Line Exceeded");
    }
    this.spill = line;
  }

  /** One control line, buf[start, end) without its LF. */
  private controlLine(buf: Buffer, start: number, end: number): void {
    if (end > start && buf[end - 1] === CR) end--;
    const wordEnd = skipToSpace(buf, start, end);
    const op = opCode(buf, start, wordEnd);
    // PUB, HPUB, SUB and UNSUB need a space after the name, as a byte-wise parser reads them
    // (a bare CONNECT is a JSON error instead).
    if (op < 0 || (op >= OP_PUB && op <= OP_UNSUB && wordEnd === end)) {
      throw new ProtocolError(`unknown operation: ${snippet(buf, start)}`, ERR.unknownOp);
    }
    const argsFrom = skipSpaces(buf, wordEnd, end);
    if (end - argsFrom > this.limits.maxControlLine) {
      throw new ProtocolError("maximum control line exceeded", ERR.maxControlLine, "Maximum Control Line Exceeded");
    }
    switch (op) {
      case OP_PUB: return this.startPub(buf, argsFrom, end);
      case OP_HPUB: return this.startHpub(buf, argsFrom, end);
      case OP_SUB: {
        const n = this.splitArgs(buf, argsFrom, end);
        if (n === 2) return this.sink.onSub(this.arg(buf, 0), undefined, this.arg(buf, 1));
        if (n === 3) return this.sink.onSub(this.arg(buf, 0), this.arg(buf, 1), this.arg(buf, 2));
        throw new ProtocolError(`processSub Parse Error: ${snippet(buf, argsFrom)}`, undefined);
      }
      case OP_UNSUB: {
        const n = this.splitArgs(buf, argsFrom, end);
        if (n !== 1 && n !== 2) throw new ProtocolError(`processUnsub Parse Error: ${snippet(buf, argsFrom)}`, undefined);
        // A max that is not a number means none: unsubscribe now, as nats-server does.
        const max = n === 2 ? this.argInt(buf, 1) : -1;
        return this.sink.onUnsub(this.arg(buf, 0), max >= 0 ? max : undefined);
      }
      case OP_PING: return this.sink.onPing();
      case OP_PONG: return this.sink.onPong();
      case OP_CONNECT: return this.sink.onConnect(buf.toString("utf8", argsFrom, end));
      case OP_ERR: throw new ProtocolError(`client sent -ERR: ${snippet(buf, argsFrom)}`, undefined, "Parse Error");
      default: return; // INFO, +OK
    }
  }

  private startPub(buf: Buffer, from: number, end: number): void {
    const n = this.splitArgs(buf, from, end);
    if (n !== 2 && n !== 3) throw new ProtocolError(`processPub Parse Error: ${snippet(buf, from)}`, undefined);
    const size = this.argInt(buf, n - 1);
    if (size < 0) throw new ProtocolError(`processPub Bad or Missing Size: ${snippet(buf, from)}`, undefined);
    this.expectPayload(this.subject(buf), n === 3 ? this.arg(buf, 1) : undefined, 0, size);
  }

  private startHpub(buf: Buffer, from: number, end: number): void {
    if (!this.headersAllowed) throw new ProtocolError("message headers not supported", undefined);
    const n = this.splitArgs(buf, from, end);
    if (n !== 3 && n !== 4) throw new ProtocolError(`processHeaderPub Parse Error: ${snippet(buf, from)}`, undefined);
    const hdr = this.argInt(buf, n - 2), size = this.argInt(buf, n - 1);
    if (hdr < 0 || size < 0 || hdr > size) {
      throw new ProtocolError(`processHeaderPub Bad or Missing Size: ${snippet(buf, from)}`, undefined);
    }
    this.expectPayload(this.subject(buf), n === 4 ? this.arg(buf, 1) : undefined, hdr, size);
  }

  private expectPayload(subject: string, reply: string | undefined, hdrLen: number, size: number): void {
    if (size > this.limits.maxPayload) {
      throw new ProtocolError(`maximum payload exceeded: ${size} vs ${this.limits.maxPayload}`, ERR.maxPayload,
        "Maximum Message Payload Exceeded");
    }
    this.pubSubject = subject;
    this.pubReply = reply;
    this.pubHdrLen = hdrLen;
    this.payloadSize = size;
    this.payloadFilled = 0;
    this.state = PAYLOAD;
  }

  private readPayload(chunk: Buffer, pos: number): number {
    const need = this.payloadSize + 2; // payload + CRLF
    if (this.payload === undefined) {
      if (chunk.length - pos >= need) {
        this.endPayload(chunk, pos, pos + this.payloadSize);
        return pos + need;
      }
      this.payload = Buffer.allocUnsafe(Math.min(need, Math.max(PAYLOAD_FIRST, chunk.length - pos)));
    }
    let buf = this.payload;
    const take = Math.min(need - this.payloadFilled, chunk.length - pos);
    if (this.payloadFilled + take > buf.length) {
      const bigger = Buffer.allocUnsafe(Math.min(need, Math.max(buf.length * 2, this.payloadFilled + take)));
      buf.copy(bigger, 0, 0, this.payloadFilled);
      this.payload = buf = bigger;
    }
    chunk.copy(buf, this.payloadFilled, pos, pos + take);
    this.payloadFilled += take;
    // The byte after the payload must start its CRLF: fail as soon as it is known.
    const complete = this.payloadFilled === need;
    if (complete || (this.payloadFilled > this.payloadSize && buf[this.payloadSize] !== CR)) {
      this.payload = undefined;
      this.endPayload(buf, 0, this.payloadSize);
    }
    return pos + take;
  }

  private endPayload(buf: Buffer, start: number, end: number): void {
    this.state = CONTROL;
    if (buf[end] !== CR || buf[end + 1] !== LF) {
      throw new ProtocolError(`payload not followed by CRLF: ${snippet(buf, end)}`, ERR.unknownOp);
    }
    const msg = this.msg;
    msg.buf = buf;
    msg.start = start;
    msg.end = end;
    msg.hdrLen = this.pubHdrLen;
    this.sink.onPub(this.pubSubject, this.pubReply, msg);
  }

  /** Splits buf[from, end) on spaces/tabs into argStart/argEnd; returns the count (MAX_ARGS+1 = too many). */
  private splitArgs(buf: Buffer, from: number, end: number): number {
    let n = 0, i = skipSpaces(buf, from, end);
    while (i < end) {
      if (n > MAX_ARGS) return n;
      const e = skipToSpace(buf, i, end);
      this.argStart[n] = i;
      this.argEnd[n] = e;
      n++;
      i = skipSpaces(buf, e, end);
    }
    return n;
  }

  private arg(buf: Buffer, i: number): string {
    return buf.toString("latin1", this.argStart[i], this.argEnd[i]);
  }

  /** Argument 0 as the subject, reusing the previous string when the bytes are the same. */
  private subject(buf: Buffer): string {
    const s = this.argStart[0], e = this.argEnd[0], len = e - s;
    let last = this.lastSubjectBytes;
    if (this.lastSubjectLen === len) {
      let same = true;
      for (let i = 0; i < len; i++) if (last[i] !== buf[s + i]) { same = false; break; }
      if (same) return this.lastSubject;
    }
    // The bytes go into one buffer kept for them: a subject that changes on every publish (a
    // responder's replies) costs no Buffer each.
    if (last.length < len) last = this.lastSubjectBytes = Buffer.allocUnsafe(Math.max(len, 2 * last.length, 32));
    buf.copy(last, 0, s, e);
    this.lastSubjectLen = len;
    return this.lastSubject = buf.toString("latin1", s, e);
  }

  /** A non-negative decimal argument of at most 9 digits (as nats-server), or -1. */
  private argInt(buf: Buffer, i: number): number {
    const s = this.argStart[i], e = this.argEnd[i];
    if (e === s || e - s > 9) return -1;
    let v = 0;
    for (let k = s; k < e; k++) {
      const d = buf[k] - 48;
      if (d < 0 || d > 9) return -1;
      v = v * 10 + d;
    }
    return v;
  }
}

function skipSpaces(buf: Buffer, i: number, end: number): number {
  while (i < end && (buf[i] === SPACE || buf[i] === TAB)) i++;
  return i;
}

function skipToSpace(buf: Buffer, i: number, end: number): number {
  while (i < end && buf[i] !== SPACE && buf[i] !== TAB) i++;
  return i;
}

/** The OP_ code of buf[start, end) compared case-insensitively, or -1. */
function opCode(buf: Buffer, start: number, end: number): number {
  const len = end - start;
  for (let op = 0; op < OPS.length; op++) {
    const name = OPS[op];
    if (name.length !== len) continue;
    let k = 0;
    while (k < len && upper(buf[start + k]) === name[k]) k++;
    if (k === len) return op;
  }
  // nats-server reads PING/PONG and skips whatever else is on the line ("PINGX" is a PING).
  if (len > 4 && startsWith(buf, start, OPS[OP_PING])) return OP_PING;
  if (len > 4 && startsWith(buf, start, OPS[OP_PONG])) return OP_PONG;
  return -1;
}

function startsWith(buf: Buffer, start: number, name: Buffer): boolean {
  for (let k = 0; k < name.length; k++) if (upper(buf[start + k]) !== name[k]) return false;
  return true;
}

/** Could buf[0, end) begin a known operation (complete = a space already followed it)? */
function isOpPrefix(buf: Buffer, end: number, complete: boolean): boolean {
  if (complete) return opCode(buf, 0, end) >= 0;
  let word = end;
  if (word > 0 && buf[word - 1] === CR) word--;
  if (word > 4 && (startsWith(buf, 0, OPS[OP_PING]) || startsWith(buf, 0, OPS[OP_PONG]))) return true;
  return OPS.some((name) => {
    if (word > name.length) return false;
    for (let k = 0; k < word; k++) if (upper(buf[k]) !== name[k]) return false;
    return true;
  });
}

function upper(c: number): number {
  return c >= 97 && c <= 122 ? c - 32 : c;
}

function snippet(b: Buffer, from: number): string {
  return JSON.stringify(b.toString("latin1", from, Math.min(b.length, from + 32)));
}
