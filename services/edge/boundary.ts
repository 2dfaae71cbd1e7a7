// The fault boundary of a client connection, one per transport: the socket's (or WebSocket's)
// 'error' event, and an exception thrown while one connection's input is handled, including the
// asynchronous continuations of that handling (auth decisions, store writes). Either closes THAT
// connection with its protocol's error, is logged once with the connection id and counted in
// meshbroker_connection_errors_total{type,reason}; the process and the other connections carry on.
import type { ConnectionType } from "./auth/index.js";
import type { LogContext, Logger } from "../common/log.js";

/**
 * Why a connection met its boundary (the metric's `reason` label):
 * - `exception`: its input handler threw;
 * - `rejection`: an asynchronous continuation of its handling failed;
 * - `socket`: its socket, TLS socket or WebSocket reported an error (ECONNRESET, bad frame...).
 */
export type FaultReason = "exception" | "rejection" | "socket";

/** A connection as the boundary sees it. */
export interface IsolatedConnection {
  readonly cid: number;
  readonly connectionType: ConnectionType;
  readonly closed: boolean;
  logContext(): LogContext;
  /** Closes with the protocol's error for an internal fault: NATS `-ERR` (over WebSocket, close
   *  1011), MQTT a plain close (3.1.1 has no server DISCONNECT). */
  closeOnFault(): void;
}

/** Counts faults by connection type and reason; read by /metrics. */
export class FaultCounter {
  private readonly counts = new Map<string, { type: string; reason: string; n: number }>();

  count(type: string, reason: string): void {
    const key = `${type}/${reason}`;
    const entry = this.counts.get(key);
    if (entry) entry.n++;
    else this.counts.set(key, { type, reason, n: 1 });
  }

  entries(): Iterable<{ type: string; reason: string; n: number }> {
    return this.counts.values();
  }
}

/**
 * A connection's handler failed: log once (with the stack, it is a bug), count, close it. A
 * connection that is closed already (an asynchronous continuation finishing late) is only
 * logged and counted.
 */
export function connectionFault(log: Logger, faults: FaultCounter, conn: IsolatedConnection, reason: FaultReason, err: unknown): void {
  faults.count(conn.connectionType, reason);
  const e = err instanceof Error ? err : new Error(String(err));
  log.error(`connection handler failed (${reason}), closing: ${e.stack ?? e.message}`, conn.logContext());
  if (conn.closed) return;
  try {
    conn.closeOnFault();
  } catch (again) {
    log.error(`closing after a fault failed too: ${(again as Error).message}`, conn.logContext());
  }
}

/** Runs one piece of a connection's input handling inside its boundary. */
export function isolate(log: Logger, faults: FaultCounter, conn: IsolatedConnection, work: () => void,
                        reason: FaultReason = "exception"): void {
  try {
    work();
  } catch (err) {
    connectionFault(log, faults, conn, reason, err);
  }
}
