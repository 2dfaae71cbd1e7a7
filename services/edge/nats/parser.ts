// The NATS client protocol parser: incremental over Buffers, no socket. A control line is
// found with indexOf (native) and decoded once; a payload is handed to the sink as a view
// into the chunk, copied only when it spans two chunks. Transport framings (TCP, WebSocket)
// feed the same parser.
import { ERR, ProtocolError } from "../../common/errors.js";

export interface ParserSink {
  onConnect(json: string): void;
  /** `data` = header block + payload; `hdrLen` = 0 for PUB. The view is valid only during the call. */
  onPub(subject: string, reply: string | undefined, data: Buffer, hdrLen: number): void;
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
const LF = 10, CR = 13, SPACE = 32, TAB = 9;

/** Operation names, upper case; clients may send them in any case. */
const OPS = ["CONNECT", "PUB", "HPUB", "SUB", "UNSUB", "PING", "PONG", "INFO", "+OK", "-ERR"];

export class NatsParser {
  state = CONTROL;
  /** Bytes of a control line that has not ended yet. */
  private spill: Buffer | undefined;
  /** The payload being assembled across chunks, and how much of it has arrived. */
  private payload: Buffer | undefined;
  private payloadFilled = 0;
  private pubSubject = "";
  private pubReply: string | undefined;
  private pubHdrLen = 0;
  private payloadSize = 0;
  private halted = false;
  /** HPUB is a protocol violation until the client's CONNECT says `headers: true`. */
  headersAllowed = false;

  constructor(private readonly sink: ParserSink, public limits: ProtocolLimits) {}

  /** Parse one chunk; throws ProtocolError on a violation (the caller closes the connection). */
  parse(chunk: Buffer): void {
    let pos = 0;
    const n = chunk.length;
    while (pos < n && !this.halted) {
      if (this.state === PAYLOAD) {
        pos = this.readPayload(chunk, pos);
        continue;
      }
      const nl = chunk.indexOf(LF, pos);
      if (nl < 0) {
        this.keepPartialLine(chunk.subarray(pos));
        return;
      }
      let line: Buffer;
      if (this.spill) {
        line = Buffer.concat([this.spill, chunk.subarray(pos, nl)]);
        this.spill = undefined;
      } else {
        line = chunk.subarray(pos, nl);
      }
      pos = nl + 1;
      this.controlLine(line);
    }
  }

  private keepPartialLine(part: Buffer): void {
    const line = this.spill ? Buffer.concat([this.spill, part]) : Buffer.from(part);
    checkOpPrefix(line);
    const argStart = opLength(line);
    if (argStart >= 0 && line.length - argStart > this.limits.maxControlLine) {
      throw new ProtocolError("maximum control line exceeded", ERR.maxControlLine, "Maximum Control Line Exceeded");
    }
    this.spill = line;
  }

  private controlLine(raw: Buffer): void {
    let end = raw.length;
    if (end > 0 && raw[end - 1] === CR) end--;
    const opEnd = opLength(raw);
    const op = (opEnd < 0 ? raw.toString("latin1", 0, end) : raw.toString("latin1", 0, opEnd)).toUpperCase();
    if (!OPS.includes(op)) throw new ProtocolError(`unknown operation: ${snippet(raw)}`, ERR.unknownOp);
    const args = opEnd < 0 ? "" : raw.toString("latin1", opEnd, end).trim();
    if (args.length > this.limits.maxControlLine) {
      throw new ProtocolError("maximum control line exceeded", ERR.maxControlLine, "Maximum Control Line Exceeded");
    }
    switch (op) {
      case "PUB": return this.startPayload(args, false);
      case "HPUB": return this.startPayload(args, true);
      case "SUB": {
        const a = splitArgs(args);
        if (a.length === 2) return this.sink.onSub(a[0], undefined, a[1]);
        if (a.length === 3) return this.sink.onSub(a[0], a[1], a[2]);
        throw new ProtocolError(`processSub Parse Error: "${args}"`, undefined);
      }
      case "UNSUB": {
        const a = splitArgs(args);
        if (a.length === 1) return this.sink.onUnsub(a[0], undefined);
        if (a.length === 2) {
          const max = parseSize(a[1]);
          if (max >= 0) return this.sink.onUnsub(a[0], max);
        }
        throw new ProtocolError(`processUnsub Parse Error: "${args}"`, undefined);
      }
      case "PING": return this.sink.onPing();
      case "PONG": return this.sink.onPong();
      case "CONNECT": {
        // The JSON is taken as is, starting at its first byte (the op may be followed by tabs).
        return this.sink.onConnect(args);
      }
      default: return; // INFO, +OK, -ERR from a client: ignored, as nats-server does
    }
  }

  private startPayload(args: string, headers: boolean): void {
    const a = splitArgs(args);
    let subject: string, reply: string | undefined, hdr = 0, size: number;
    if (headers) {
      if (!this.headersAllowed) throw new ProtocolError("message headers not supported", undefined);
      if (a.length !== 3 && a.length !== 4) throw new ProtocolError(`processHeaderPub Parse Error: "${args}"`, undefined);
      subject = a[0];
      reply = a.length === 4 ? a[1] : undefined;
      hdr = parseSize(a[a.length - 2]);
      size = parseSize(a[a.length - 1]);
      if (hdr < 0 || size < 0 || hdr > size) {
        throw new ProtocolError(`processHeaderPub Bad or Missing Size: "${args}"`, undefined);
      }
    } else {
      if (a.length !== 2 && a.length !== 3) throw new ProtocolError(`processPub Parse Error: "${args}"`, undefined);
      subject = a[0];
      reply = a.length === 3 ? a[1] : undefined;
      size = parseSize(a[a.length - 1]);
      if (size < 0) throw new ProtocolError(`processPub Bad or Missing Size: "${args}"`, undefined);
    }
    if (size > this.limits.maxPayload) {
      throw new ProtocolError(`maximum payload exceeded: ${size} vs ${this.limits.maxPayload}`, ERR.maxPayload,
        "Maximum Payload Exceeded");
    }
    this.pubSubject = subject;
    this.pubReply = reply;
    this.pubHdrLen = hdr;
    this.payloadFilled = 0;
    this.payload = undefined;
    // The payload and its CRLF; `payloadFilled` counts both.
    this.state = PAYLOAD;
    this.payloadSize = size;
  }

  /** Stop parsing (the connection is closing); the rest of the current chunk is dropped. */
  halt(): void {
    this.halted = true;
  }

  private readPayload(chunk: Buffer, pos: number): number {
    const need = this.payloadSize + 2;
    if (this.payload === undefined) {
      if (chunk.length - pos >= need) {
        this.endPayload(chunk, pos, pos + this.payloadSize);
        return pos + need;
      }
      this.payload = Buffer.allocUnsafe(need);
    }
    const take = Math.min(need - this.payloadFilled, chunk.length - pos);
    chunk.copy(this.payload, this.payloadFilled, pos, pos + take);
    this.payloadFilled += take;
    if (this.payloadFilled === need) {
      const buf = this.payload;
      this.payload = undefined;
      this.endPayload(buf, 0, this.payloadSize);
    }
    return pos + take;
  }

  private endPayload(buf: Buffer, start: number, end: number): void {
    if (buf[end] !== CR || buf[end + 1] !== LF) {
      this.state = CONTROL;
      throw new ProtocolError(`payload not followed by CRLF: ${snippet(buf.subarray(end))}`, ERR.unknownOp);
    }
    this.state = CONTROL;
    this.sink.onPub(this.pubSubject, this.pubReply, buf.subarray(start, end), this.pubHdrLen);
  }
}

/** Length of the operation word, or -1 if the line has no space/tab yet. */
function opLength(line: Buffer): number {
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === SPACE || c === TAB) return i;
  }
  return -1;
}

/** Fail early on garbage, as a byte-wise parser would, instead of waiting for a newline. */
function checkOpPrefix(line: Buffer): void {
  const end = opLength(line);
  const word = line.toString("latin1", 0, end < 0 ? Math.min(line.length, 8) : end).toUpperCase().replace(/\r$/, "");
  const ok = end < 0 ? OPS.some((op) => op.startsWith(word)) : OPS.includes(word);
  if (!ok) throw new ProtocolError(`unknown operation: ${snippet(line)}`, ERR.unknownOp);
}

function splitArgs(args: string): string[] {
  return args.length === 0 ? [] : args.split(/[ \t]+/);
}

/** A non-negative decimal integer, or -1. */
function parseSize(s: string): number {
  if (s.length === 0 || s.length > 15) return -1;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

function snippet(b: Buffer): string {
  return JSON.stringify(b.toString("latin1", 0, Math.min(b.length, 32)));
}
