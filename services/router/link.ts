// The seam between edge and router. The edge only ever calls a RouterLink; the embedded
// topology links in-process (link-local.ts), the cluster over gRPC. Calls are one-way and
// carry no per-message objects, so a remote link can batch them freely.

/** The edge connection a subscription belongs to, as far as routing needs to know it. */
export interface Connection {
  readonly cid: number;
  /** false: do not deliver this connection's own publishes back to it (CONNECT echo). */
  readonly echo: boolean;
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

/** One subscription, owned by the edge; the router indexes it and calls deliver on a match. */
export interface Subscriber {
  readonly subject: string;
  readonly queue: string | undefined;
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

export interface RouterLink {
  subscribe(account: string, sub: Subscriber): void;
  unsubscribe(account: string, sub: Subscriber): void;
  publish(
    account: string, subject: string, reply: string | undefined,
    msg: MessageData, origin: Connection, options?: PublishOptions,
  ): void;
  /** Every subscription of every account, for monitoring (/subsz, /connz subs). */
  stats(): RouterStats;
}
