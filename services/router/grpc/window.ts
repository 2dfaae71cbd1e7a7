// HTTP/2 receive windows of the links. A link carries frames of hundreds of KB (a turn's
// batch), and HTTP/2's default window is 64 KB per stream and per connection: a frame then
// crosses in many window round trips, each waiting for the receiving process's event loop to
// run and send a WINDOW_UPDATE, so on a busy machine the links wait far more than they work.
// A dialer sets its windows with the channel option (LINK_WINDOW_OPTIONS); grpc-js has no server
// option for them, so the accepting side widens its session's windows when a stream arrives.
import type * as grpc from "@grpc/grpc-js";
import type { ServerHttp2Session } from "node:http2";

/** Each link's receive window, per stream and per connection: several frames in flight. The
 *  slow-consumer bounds (LINK_QUEUE_BYTES, the mesh's backlog) count only what waits beyond it. */
export const LINK_WINDOW_BYTES = 4 * 1024 * 1024;

/** grpc-js channel option: a dialer's stream and connection receive windows. */
export const LINK_WINDOW_OPTIONS: grpc.ChannelOptions = { "grpc-node.flow_control_window": LINK_WINDOW_BYTES };

/** The HTTP/2 session under a grpc-js server call (grpc-js 1.14's internals: call.call.stream),
 *  or undefined when they changed. */
function sessionOf(call: unknown): ServerHttp2Session | undefined {
  const stream = (call as { call?: { stream?: { session?: unknown } } }).call?.stream;
  const session = stream?.session as ServerHttp2Session | undefined;
  return typeof session?.setLocalWindowSize === "function" && typeof session.settings === "function" ? session : undefined;
}

/**
 * Widens the receive windows of the session carrying a server call to `bytes`: the connection's
 * (setLocalWindowSize) and every stream's (SETTINGS_INITIAL_WINDOW_SIZE, which also moves the
 * window of the streams already open, this one included). Returns a warning when grpc-js's
 * internals no longer look as expected: the link then works with the default windows.
 */
export function widenServerWindow(call: unknown, bytes = LINK_WINDOW_BYTES): string | undefined {
  const session = sessionOf(call);
  if (session === undefined) return "cannot widen the HTTP/2 window: grpc-js's server call has no session where expected";
  if (session.destroyed || session.closed) return undefined;
  try {
    if ((session.state.localWindowSize ?? 0) < bytes) session.setLocalWindowSize(bytes);
    if (session.localSettings.initialWindowSize !== bytes) session.settings({ initialWindowSize: bytes });
  } catch (err) {
    return `cannot widen the HTTP/2 window: ${(err as Error).message}`;
  }
  return undefined;
}
