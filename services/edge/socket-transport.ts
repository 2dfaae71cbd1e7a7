// A TCP (or TLS) socket as a client transport, for NATS and MQTT connections alike.
import type net from "node:net";
import type tls from "node:tls";
import type { CloseReason } from "../common/errors.js";
import { Timeouts } from "../common/deadline.js";
import type { ClientTransport } from "./nats/client.js";

/** What a client connection hears from its TCP (or TLS) socket. */
export interface SocketSink {
  receive(chunk: Buffer): void;
  /** A read error or reset: the connection counts it, logs it and closes. */
  socketFailed(err: Error): void;
  socketClosed(): void;
}

const SINK = Symbol("meshbroker.socketSink");
type SinkSocket = net.Socket & { [SINK]?: SocketSink };

/**
 * Feeds a socket's events to its connection (the TCP/TLS boundary of NATS and MQTT clients)
 * through listeners shared by every socket: a connection costs no closures for them.
 */
export function bindSocket(socket: net.Socket, sink: SocketSink): void {
  (socket as SinkSocket)[SINK] = sink;
  socket.on("data", onData);
  socket.on("error", onError);
  socket.on("close", onClose);
}

function onData(this: SinkSocket, chunk: Buffer): void {
  this[SINK]!.receive(chunk);
}

function onError(this: SinkSocket, err: Error): void {
  this[SINK]!.socketFailed(err);
}

function onClose(this: SinkSocket): void {
  this[SINK]!.socketClosed();
}

/** How long a connection we closed may wait for the peer to take what is queued and close
 *  (TCP, TLS and WebSocket alike). */
export const LINGER_MS = 2_000;
/** Destroys ended sockets the peer has not closed in time (one timer, no closure per close). */
const LINGER = new Timeouts<net.Socket>((socket) => socket.destroy());

const EMPTY = Buffer.alloc(0);

/**
 * `cb` once the socket wrote everything handed to it so far. Node emits 'drain' only after a
 * write() that returned false (past the high-water mark); a write that merely waits (TLS
 * encrypts on the next turn, a partial write below the mark) never gets one. An empty write's
 * callback comes after every write before it, in both cases.
 */
export function onceWritten(socket: net.Socket, cb: () => void): void {
  if (socket.writableNeedDrain) socket.once("drain", cb);
  else socket.write(EMPTY, () => cb());
}

/** A TCP (or TLS) socket as a client transport; the socket is swapped once TLS starts. */
export class SocketTransport implements ClientTransport {
  /** TLS: what onDrain() waits with, told by the write callbacks. */
  private drained: (() => void) | undefined;
  private afterTlsWrite: (() => void) | undefined;

  constructor(public socket: net.Socket) {}

  write(data: Buffer): void {
    const socket = this.socket;
    // TLS holds every write until its callback (plain TCP mostly takes it at once): the callback
    // tells a waiting onDrain(), where onceWritten's empty write would cost a syscall per flush.
    if ((socket as tls.TLSSocket).encrypted) socket.write(data, this.afterTlsWrite ??= () => this.tlsWritten());
    else socket.write(data);
  }

  get pendingBytes(): number { return this.socket.writableLength; }

  onDrain(cb: () => void): void {
    const socket = this.socket;
    if (!(socket as tls.TLSSocket).encrypted || socket.writableNeedDrain || socket.writableLength === 0) return onceWritten(socket, cb);
    this.drained = cb;
  }

  private tlsWritten(): void {
    const cb = this.drained;
    if (cb === undefined || this.socket.writableLength > 0) return;
    this.drained = undefined;
    cb();
  }

  pause(): void { this.socket.pause(); }
  resume(): void { this.socket.resume(); }

  /** end() lets the kernel send what is queued; destroy if the peer never takes it. */
  close(_reason?: CloseReason): void {
    const socket = this.socket;
    if (socket.destroyed) return; // the peer closed it (or it failed): nothing left to send
    socket.end();
    LINGER.set(socket, LINGER_MS);
  }

  ended(): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.socket.destroyed) resolve();
      else this.socket.once("close", () => resolve());
    });
  }
}
