// A raw TCP client for exact protocol bytes: send what you like, await what comes back.
// Everything is event-driven: `expect` resolves on the data event that makes the text match,
// `closed` on the socket's close event. Nothing here sleeps.
import net from "node:net";
import { once } from "node:events";

export interface RawClient {
  readonly socket: net.Socket;
  /** Write a string (latin1) or bytes; resolves once the socket has taken them. */
  send(data: string | Buffer): Promise<void>;
  /**
   * Resolve when the text received so far (or, with `from`, the text after that offset)
   * matches; reject after `timeoutMs` or if the socket closes first without a match.
   */
  expect(pattern: RegExp | string, timeoutMs?: number, from?: number): Promise<RegExpMatchArray>;
  /** Everything received so far, decoded as latin1 (byte for byte). */
  received(): string;
  /** Resolves when the peer has closed the connection (or it errored). */
  readonly closed: Promise<void>;
  isClosed(): boolean;
  /** Close our side and wait until the socket is gone. */
  close(): Promise<void>;
}

export async function rawConnect(port: number, host = "127.0.0.1"): Promise<RawClient> {
  const socket = net.connect({ port, host, noDelay: true });
  await once(socket, "connect");
  let text = "";
  let isClosed = false;
  const waiters = new Set<() => void>();
  const wake = () => { for (const w of [...waiters]) w(); };
  socket.on("data", (chunk: Buffer) => {
    text += chunk.toString("latin1");
    wake();
  });
  // An RST from the server (it closed while we were still sending) counts as closed too.
  socket.on("error", () => {});
  const closed = new Promise<void>((resolve) => {
    socket.once("close", () => {
      isClosed = true;
      resolve();
      wake();
    });
  });

  const client: RawClient = {
    socket,
    send(data) {
      return new Promise<void>((resolve) => {
        if (socket.destroyed || !socket.writable) return resolve();
        socket.write(typeof data === "string" ? Buffer.from(data, "latin1") : data, () => resolve());
      });
    },
    expect(pattern, timeoutMs = 2_000, from = 0) {
      const test = (): RegExpMatchArray | null => {
        const t = text.slice(from);
        if (typeof pattern === "string") {
          const i = t.indexOf(pattern);
          if (i < 0) return null;
          const m = [pattern] as RegExpMatchArray;
          m.index = i;
          m.input = t;
          return m;
        }
        return t.match(pattern);
      };
      const now = test();
      if (now) return Promise.resolve(now);
      return new Promise((resolve, reject) => {
        const fail = (why: string) => {
          cleanup();
          reject(new Error(`${why} waiting for ${String(pattern)}; received: ${JSON.stringify(text)}`));
        };
        const check = () => {
          const m = test();
          if (m) {
            cleanup();
            resolve(m);
          } else if (isClosed) {
            fail("socket closed");
          }
        };
        const timer = setTimeout(() => fail(`timed out after ${timeoutMs}ms`), timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        if (isClosed) check();
      });
    },
    received: () => text,
    closed,
    isClosed: () => isClosed,
    async close() {
      if (!isClosed) {
        socket.destroy();
        await closed;
      }
    },
  };
  return client;
}

/** Resolve when the client's socket closes, or reject after `timeoutMs`. */
export function closedWithin(c: RawClient, timeoutMs = 2_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`socket not closed after ${timeoutMs}ms; received: ${JSON.stringify(c.received())}`)),
      timeoutMs,
    );
    c.closed.then(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
