// The seam between edge and router, the TypeScript statement of proto/meshbroker/v1/edge.proto.
// The edge only ever calls a RouterLink; the embedded topology links in-process
// (link-local.ts), the cluster over gRPC. Everything the router learns is data that can cross
// a wire: connections are named by (edge id, connection id), subscriptions by (edge id,
// connection id, sid), accounts arrive as an AccountSet; replies (stats) are asynchronous.
import { createHash } from "node:crypto";
import type { AccountConfig } from "../common/config/options.js";

/**
 * The edge connection a subscription or a publish belongs to, as far as routing needs to know
 * it. Routing compares the ids (sameConnection), never the objects, so a remote link can
 * rebuild it from a frame.
 */
export interface Connection {
  /** The edge the connection lives on (its server id). */
  readonly edgeId: string;
  /** Unique within its edge, across every protocol (NATS, WebSocket, MQTT, system account). */
  readonly cid: number;
  /** false: do not deliver this connection's own publishes back to it (CONNECT echo). */
  readonly echo: boolean;
}

/** One connection, named by ids. */
export function sameConnection(a: Connection, b: Connection): boolean {
  return a.cid === b.cid && a.edgeId === b.edgeId;
}

/**
 * A message's bytes, `buf[start, end)`: the header block (`hdrLen` bytes, 0 = none), then the
 * payload. It points into the sender's read buffer and is valid only during the call: a
 * receiver that keeps the bytes copies them. Senders reuse the object, so routing a message
 * allocates nothing.
 */
export interface MessageData {
  buf: Buffer;
  start: number;
  end: number;
  hdrLen: number;
}

/**
 * One subscription, owned by the edge: its interest as data (account is the call's, subject,
 * queue, sid, and the connection's ids), plus the edge's opaque delivery handle. The embedded
 * link keeps the object and calls deliver directly (allocation-free); a remote link sends the
 * data and delivers by (edge, cid, sid).
 */
export interface Subscriber {
  readonly subject: string;
  readonly queue: string | undefined;
  /** The subscription's id within its connection (NATS sid; MQTT: one per sublist entry). */
  readonly sid: string;
  readonly conn: Connection;
  /** Deliver one message (its bytes are only valid during the call). */
  deliver(subject: string, reply: string | undefined, msg: MessageData): void;
}

export interface PublishOptions {
  /** The publisher asked for a 503 status reply when nobody is subscribed. */
  noResponders: boolean;
}

export interface RouterStats {
  subscriptions: number;
  cacheEntries: number;
  matches: number;
  cacheHits: number;
  inserts: number;
  removes: number;
  /** Over the cached match results: the largest fan-out and the average. */
  maxFanout: number;
  avgFanout: number;
}

/** An account as the router needs it: its name and its exports/imports (no users, no secrets). */
export type RouterAccount = Pick<AccountConfig, "name" | "exports" | "imports">;

/**
 * The account set an edge routes with (config accounts and operator-mode accounts decoded),
 * versioned by a hash of its content: edges with different versions route differently.
 */
export interface AccountSet {
  readonly version: string;
  readonly accounts: RouterAccount[];
  /** The edge's system account ("" = none): routers learn it with the accounts. */
  readonly systemAccount: string;
}

export function accountSet(accounts: AccountConfig[], systemAccount = ""): AccountSet {
  const data: RouterAccount[] = accounts.map(({ name, exports, imports }) => ({ name, exports, imports }));
  const version = createHash("sha256").update(JSON.stringify([data, systemAccount])).digest("hex").slice(0, 16);
  return { version, accounts: data, systemAccount };
}

export interface RouterLink {
  subscribe(account: string, sub: Subscriber): void;
  /**
   * Removes the subscription now, or with `max` > 0 (NATS `UNSUB sid max`) once it has had `max`
   * deliveries in all, counted where deliveries are decided: a remote link counts at the router,
   * so deliveries in flight on the wire still count. In process the subscriber counts its own
   * deliveries (it is called on the router's stack), so the embedded router ignores `max`.
   */
  unsubscribe(account: string, sub: Subscriber, max?: number): void;
  publish(
    account: string, subject: string, reply: string | undefined,
    msg: MessageData, origin: Connection, options?: PublishOptions,
  ): void;
  /**
   * Calls `done` once the router applied every call made before it on this link and what they
   * delivered has reached the edge: a client's PONG waits on it, so that after its flush its
   * publishes reached their subscribers (nats-server's guarantee). The embedded link calls it at once.
   */
  sync(done: () => void): void;
  /** The edge's account set (at start and on every reload). */
  configureAccounts(edge: string, set: AccountSet): void;
  /** Routing counters over every account, for monitoring (/varz, /subsz, STATSZ). */
  stats(): Promise<RouterStats>;
}
