// permessage-deflate (RFC 7692) on the event loop. The `ws` library runs every message through
// its own zlib stream on libuv's thread pool: a trip there and back per message each way, and
// a compressed send finishes on a later turn. With no context takeover either way (what the
// listener asks for), each message is a deflate stream of its own, so one zlib context per
// direction serves every connection: it is driven synchronously, as node:zlib's own *Sync
// functions drive it, and reset after each message (they make a new context per call instead).
// takeOverDeflate() swaps that in for ws's extension on a connection that agreed to it.
import zlib from "node:zlib";
import type { WebSocket } from "ws";

const { Z_SYNC_FLUSH } = zlib.constants;
/** [RFC 7692 7.2.1] a sync flush ends with this empty stored block: the sender drops it and
 *  the receiver appends it again. */
export const SYNC_TRAILER = Buffer.from([0x00, 0x00, 0xff, 0xff]);
/** What the scratch output of a direction starts at; it grows to the largest message seen
 *  (inflate: to its bound at most). */
const FIRST_SCRATCH = 64 * 1024;

/** The close codes an inflate failure maps to. */
export const TOO_LARGE = 1009;
export const INVALID_DATA = 1007;

/** node:zlib's native handle, the calls its sync path makes (`processChunkSync` in lib/zlib.js). */
interface ZlibHandle {
  writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void;
  reset(): void;
  onerror: (message: string, errno: number, code?: string) => void;
}

/**
 * One zlib context, driven synchronously: feed() runs input through with a sync flush into a
 * scratch buffer shared by every message, finish() copies the message out and resets the context.
 */
class SyncZlib {
  private scratch = Buffer.allocUnsafe(FIRST_SCRATCH);
  private len = 0;
  private failure: string | undefined;

  constructor(
    private readonly handle: ZlibHandle,
    /** [output room left, input left] after each writeSync. */
    private readonly state: Uint32Array,
  ) {
    // node's own handler destroys the stream (and closes the handle) on the first bad input;
    // this one notes it, and finish() resets the context for the next message.
    handle.onerror = (message) => { this.failure = message; };
  }

  /** The scratch's size (tests: what a zip bomb made inflate allocate). */
  get capacity(): number { return this.scratch.length; }

  /**
   * Runs `input` through (all of it, flushed). Returns 0, or TOO_LARGE once the output passed
   * `limit` (it stops there: the scratch never grows past limit + 1), or INVALID_DATA.
   */
  feed(input: Uint8Array, limit: number): number {
    let inOff = 0;
    let inLen = input.length;
    for (;;) {
      if (this.len > limit) return TOO_LARGE;
      if (this.len === this.scratch.length) this.grow(limit);
      const room = Math.min(this.scratch.length, limit + 1) - this.len;
      this.handle.writeSync(Z_SYNC_FLUSH, input, inOff, inLen, this.scratch, this.len, room);
      if (this.failure !== undefined) return INVALID_DATA;
      const roomLeft = this.state[0];
      const inLeft = this.state[1];
      this.len += room - roomLeft;
      // Room left: zlib took all it could and flushed (a stream's final block may leave input).
      if (roomLeft !== 0) return this.len > limit ? TOO_LARGE : 0;
      inOff += inLen - inLeft;
      inLen = inLeft;
    }
  }

  /** The message's output (a copy, `trim` bytes fewer), and the context reset for the next. */
  finish(trim = 0): Buffer {
    // Buffer's copy (a memcpy): Buffer.from(view) copied a 64 KB message 4× slower, 9 % of the
    // broker's busy time in the wsdeflate bench (--cpu-prof).
    const out = Buffer.allocUnsafe(Math.max(0, this.len - trim));
    this.scratch.copy(out, 0, 0, out.length);
    this.reset();
    return out;
  }

  /** Drops the message (failed or not), ready for the next. */
  reset(): void {
    this.len = 0;
    this.failure = undefined;
    this.handle.reset();
  }

  private grow(limit: number): void {
    const bigger = Buffer.allocUnsafe(Math.min(this.scratch.length * 2, limit + 1));
    this.scratch.copy(bigger, 0, 0, this.len);
    this.scratch = bigger;
  }

  /** The handle of a node:zlib stream (never written to as a stream; the handle keeps it),
   *  when this Node has the internals used here. */
  static of(stream: zlib.DeflateRaw | zlib.InflateRaw): SyncZlib | undefined {
    const s = stream as unknown as { _handle?: Partial<ZlibHandle>; _writeState?: unknown };
    const h = s._handle;
    if (!h || typeof h.writeSync !== "function" || typeof h.reset !== "function" || !(s._writeState instanceof Uint32Array)) return undefined;
    return new SyncZlib(h as ZlibHandle, s._writeState);
  }
}

/** The two shared contexts, made on first use; null when this Node's zlib lacks what they use. */
let codec: { deflater: SyncZlib; inflater: SyncZlib } | null | undefined;

function sharedCodec(): { deflater: SyncZlib; inflater: SyncZlib } | null {
  if (codec !== undefined) return codec;
  // Level 1, as nats-server compresses (throughput over ratio); window 15 inflates any window.
  const deflater = SyncZlib.of(zlib.createDeflateRaw({ level: 1 }));
  const inflater = SyncZlib.of(zlib.createInflateRaw());
  codec = deflater && inflater ? { deflater, inflater } : null;
  if (codec) {
    // A round trip at start: internals that changed shape fall back to ws, not garbage.
    try {
      const probe = Buffer.from("permessage-deflate probe ".repeat(8));
      const back = inflateParts(deflateMessage(probe), probe.length);
      if (!(back instanceof Buffer) || !back.equals(probe)) codec = null;
    } catch {
      codec = null;
    }
  }
  return codec;
}

/** A message compressed as RFC 7692 sends it: a sync flush, the trailer dropped from the last
 *  (`fin`) frame. Each call is a stream of its own; that is also valid as a later fragment. */
export function deflateMessage(data: Uint8Array, fin = true): Buffer {
  const { deflater } = sharedCodec()!;
  if (deflater.feed(data, Infinity) !== 0) {
    deflater.reset();
    throw new Error("deflate failed");
  }
  return deflater.finish(fin ? SYNC_TRAILER.length : 0);
}

/**
 * A message's compressed frames (the trailer appended) inflated into one buffer of at most
 * `limit` bytes; else the close code: TOO_LARGE past the limit, INVALID_DATA for bad data. An
 * unfragmented message (the usual one) is its one frame, with no array made for it.
 */
export function inflateParts(parts: Uint8Array | readonly Uint8Array[], limit: number): Buffer | number {
  const { inflater } = sharedCodec()!;
  let status = 0;
  if (parts instanceof Uint8Array) status = inflater.feed(parts, limit);
  else for (let i = 0; i < parts.length && status === 0; i++) status = inflater.feed(parts[i], limit);
  if (status === 0) status = inflater.feed(SYNC_TRAILER, limit);
  if (status !== 0) {
    inflater.reset();
    return status;
  }
  return inflater.finish();
}

/** The output capacity the shared inflater holds (tests: a zip bomb stops at its bound). */
export function inflaterCapacity(): number {
  return sharedCodec()?.inflater.capacity ?? 0;
}

/** The agreed parameters (ws's `PerMessageDeflate#params`). */
export interface DeflateParams {
  server_no_context_takeover?: boolean;
  client_no_context_takeover?: boolean;
  server_max_window_bits?: number | boolean;
  client_max_window_bits?: number | boolean;
}

/**
 * Whether the shared contexts can serve a connection that agreed to `params`: no context
 * takeover either way (each message its own stream), and our deflate's window (15) allowed.
 * The client's window does not matter: a window of 15 inflates any smaller one.
 */
export function canTakeOver(params: DeflateParams | null | undefined): boolean {
  if (!params) return false;
  if (params.server_no_context_takeover !== true || params.client_no_context_takeover !== true) return false;
  const bits = params.server_max_window_bits;
  return bits === undefined || bits === true || bits === 15;
}

/** ws's permessage-deflate extension and receiver, as far as takeOverDeflate uses them. */
interface WsExtension {
  params: DeflateParams | null;
  _isServer: boolean;
  compress: (data: Buffer, fin: boolean, cb: (err: Error | null, out?: Buffer) => void) => void;
  decompress: unknown;
}
interface WsReceiver {
  _fin: boolean;
  _maxPayload: number;
  _messageLength: number;
  _fragments: Buffer[];
  decompress: (data: Buffer, cb: (err?: Error) => void) => void;
  dataMessage(cb: (err?: Error) => void): void;
  createError(ctor: ErrorConstructor | RangeErrorConstructor, message: string, prefix: boolean, status: number, code: string): Error;
  /** The compressed frames of a fragmented message, until its last. */
  [PARTS]?: Buffer[];
}
const PARTS = Symbol("meshbroker.deflateParts");

/**
 * Takes compression over from ws on a server connection whose agreed parameters allow it
 * (canTakeOver). ws keeps the framing: its Sender calls `compress` (answered in the same turn,
 * so a send is on the socket when ws.send returns) and its Receiver calls `decompress` (answered
 * in place: ws's own callback would restart its parse loop from inside it). Returns false, and
 * leaves ws's extension in charge, when the parameters or ws's internals do not fit.
 */
export function takeOverDeflate(ws: WebSocket): boolean {
  const internals = ws as unknown as { _extensions?: Record<string, Partial<WsExtension>>; _receiver?: Partial<WsReceiver> };
  const ext = internals._extensions?.["permessage-deflate"];
  const receiver = internals._receiver;
  if (!ext || !receiver || ext._isServer !== true || !canTakeOver(ext.params)) return false;
  if (typeof ext.compress !== "function" || typeof ext.decompress !== "function") return false;
  if (typeof receiver.decompress !== "function" || typeof receiver.dataMessage !== "function" ||
    typeof receiver.createError !== "function" || !Array.isArray(receiver._fragments) ||
    typeof receiver._maxPayload !== "number" || typeof receiver._messageLength !== "number") return false;
  if (!sharedCodec()) return false;
  ext.compress = compress;
  receiver.decompress = decompress;
  return true;
}

/** The Sender's compress, done now. */
function compress(data: Buffer, fin: boolean, cb: (err: Error | null, out?: Buffer) => void): void {
  let out: Buffer;
  try {
    out = deflateMessage(data, fin);
  } catch (err) {
    return cb(err as Error);
  }
  cb(null, out);
}

/**
 * The Receiver's decompress, in place of ws's: a fragment waits for the message's last one (the
 * shared context must not hold a message across turns), which inflates them all, bounded by the
 * connection's frame bound (1009 past it, as ws's own inflate), 1007 for data that is not deflate.
 */
function decompress(this: WsReceiver, data: Buffer, cb: (err?: Error) => void): void {
  if (!this._fin) {
    (this[PARTS] ??= []).push(data);
    return this.dataMessage(cb);
  }
  const parts = this[PARTS];
  this[PARTS] = undefined;
  if (parts) parts.push(data);
  const limit = this._maxPayload > 0 ? this._maxPayload : Number.MAX_SAFE_INTEGER;
  const out = inflateParts(parts ?? data, limit);
  if (out === TOO_LARGE) {
    return cb(this.createError(RangeError, "Max payload size exceeded", false, 1009, "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH"));
  }
  if (typeof out === "number") {
    return cb(this.createError(Error, "invalid compressed data", false, 1007, "WS_ERR_INVALID_COMPRESSED_DATA"));
  }
  if (out.length > 0) {
    this._messageLength = out.length;
    this._fragments.push(out);
  }
  this.dataMessage(cb);
}
