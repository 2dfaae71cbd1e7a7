// A TCP (or TLS) socket as a client transport, for NATS and MQTT connections alike.
import type net from "node:net";
import type { CloseReason } from "../common/errors.js";
import type { ClientTransport } from "./nats/client.js";

/** A TCP (or TLS) socket as a client transport; the socket is swapped once TLS starts. */
export class SocketTransport implements ClientTransport {
  constructor(public socket: net.Socket) {}

  write(data: Buffer): void { this.socket.write(data); }
  get pendingBytes(): number { return this.socket.writableLength; }
  onDrain(cb: () => void): void { this.socket.once("drain", cb); }
  pause(): void { this.socket.pause(); }
  resume(): void { this.socket.resume(); }

  /** end() lets the kernel send what is queued; destroy if the peer never takes it. */
  close(_reason?: CloseReason): void {
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 2_000).unref();
  }

  ended(): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.socket.destroyed) resolve();
      else this.socket.once("close", () => resolve());
    });
  }
}
