// Clients for tests, nats.js over TCP and nats.ws over WebSocket: no reconnects (a client the
// server closes must end, not retry in the background), a bounded connect, and closed by the
// test's cleanups.
import { connect, type ConnectionOptions, type NatsConnection } from "nats";
import { connect as connectWs, type ConnectionOptions as WsOptions, type NatsConnection as WsConnection } from "nats.ws";
import { refusal, type Cleanups } from "./wait.js";

const TEST_OPTIONS = { reconnect: false, timeout: 3_000 };

/** A nats.js client of 127.0.0.1:`port`. */
export async function natsClient(cleanups: Cleanups, port: number, opts: Partial<ConnectionOptions> = {}): Promise<NatsConnection> {
  const nc = await connect({ servers: `127.0.0.1:${port}`, ...TEST_OPTIONS, ...opts });
  cleanups.push(() => nc.close());
  return nc;
}

/** A nats.js connect to 127.0.0.1:`port` that must be refused: the error it got. */
export function natsRefusal(port: number, opts: Partial<ConnectionOptions> = {}): Promise<{ code?: string; message: string }> {
  return refusal(connect({ servers: `127.0.0.1:${port}`, ...TEST_OPTIONS, ...opts }));
}

/** A nats.ws client of `url` (ws:// or wss://; pass a `wsFactory` to run it on the ws library). */
export async function wsClient(cleanups: Cleanups, url: string, opts: Partial<WsOptions> = {}): Promise<WsConnection> {
  const nc = await connectWs({ servers: url, ...TEST_OPTIONS, ...opts } as WsOptions);
  cleanups.push(() => nc.close());
  return nc;
}

/** A nats.ws connect to `url` that must be refused: the error it got. */
export function wsRefusal(url: string, opts: Partial<WsOptions> = {}): Promise<{ code?: string; message: string }> {
  return refusal(connectWs({ servers: url, ...TEST_OPTIONS, ...opts } as WsOptions));
}
