// The serialised topology's link, for tests: edge and router in one process, but every call
// crosses as bytes, encoded with the wire codec (EdgeFrame / RouterFrame, batched per event
// loop turn), and every delivery and reply arrives on a later turn. The router side rebuilds
// connections and subscriptions from ids alone, so the integration suite run against it shows
// what the edge still assumes of a synchronous, shared-memory router. The ends are the gRPC
// link's (wire/edge-end.ts, wire/router-end.ts); only the carrier differs. Order is kept: one
// FIFO each way, as one gRPC stream per edge keeps it.
import type { RouterLink } from "./link.js";
import { EdgeEnd } from "./wire/edge-end.js";
import { RouterEnd, type RoutingCore } from "./wire/router-end.js";

type Warn = (message: string) => void;

/** One edge's link to `router` through bytes. */
export function createSerialisedLink(router: RoutingCore, warn: Warn = () => {}): RouterLink & { close(): void } {
  const routerEnd = new RouterEnd(router, warn);
  const edgeEnd = new EdgeEnd(warn);
  carryFrames(edgeEnd, routerEnd);
  // Closing the link ends the edge's stream: the router side sees its connections lost.
  const close = edgeEnd.close.bind(edgeEnd);
  edgeEnd.close = () => {
    close();
    routerEnd.close();
  };
  return edgeEnd;
}

/** Frames between the two ends, one FIFO each way; the receiver decodes on a later turn still,
 *  so nothing crosses within the sender's call. */
export function carryFrames(edgeEnd: EdgeEnd, routerEnd: RouterEnd): void {
  edgeEnd.carrier = { write: (bytes) => setImmediate(() => routerEnd.receive(bytes)) };
  routerEnd.carrier = { write: (bytes) => setImmediate(() => edgeEnd.receive(bytes)) };
}
