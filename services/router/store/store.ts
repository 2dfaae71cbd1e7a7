// The MQTT state that must survive a reconnect (and, for the level and redis stores, a restart):
// sessions, outbound QoS 1/2 queues, inbound QoS 2 packet ids, outbound PUBRELs, retained
// messages. One interface, three implementations (memory.ts, level.ts, redis.ts); index.ts picks.
//
// Contract shared by every implementation (test/unit/store.test.ts runs one table against all):
// - Every method is async; operations take effect in the order they are called on one store,
//   even when the caller does not await between calls.
// - Payloads are Buffers. A store copies what it keeps (callers may pass parser views); the
//   Buffers it returns are read-only (the memory store hands out the ones it keeps).
// - Sequence numbers are per client id, strictly increasing and never reused while any state of
//   that client exists, across restarts too (level, redis). They are consecutive within one run;
//   after a restart the level store may skip ahead. `deleteSession` starts them over at 1.

export type QoS = 0 | 1 | 2;

export interface StoredMessage {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
}

export interface Subscription {
  filter: string;
  qos: QoS;
}

export interface SessionRecord {
  clientId: string;
  subscriptions: Subscription[];
  /** ms epoch, for expiry policies later */
  updatedAt: number;
  /** The account the session's subscriptions live in (absent in old records: the global one). */
  account?: string;
}

export interface QueuedMessage extends StoredMessage {
  seq: number;
  /** packet id once sent; undefined = not sent yet */
  packetId?: number;
}

export type StoreKind = "memory" | "level" | "redis";

export interface MqttStore {
  /** Which implementation this is; "memory" loses everything on restart. */
  readonly kind: StoreKind;

  getSession(clientId: string): Promise<SessionRecord | undefined>;
  putSession(session: SessionRecord): Promise<void>;
  /** Deletes the session, its queue, its inflight and incoming QoS 2 state. */
  deleteSession(clientId: string): Promise<void>;
  listSessions(): Promise<SessionRecord[]>;

  /** Outbound QoS 1/2 messages for a client, in order, until acknowledged. Returns seq. */
  enqueue(clientId: string, msg: StoredMessage): Promise<number>;
  /** One write (one round trip) for a fan-out; per client, entries keep their array order. */
  enqueueMany(entries: { clientId: string; msg: StoredMessage }[]): Promise<void>;
  /** The oldest `limit` queued messages of a client, sent or not, in seq order. */
  queued(clientId: string, limit: number): Promise<QueuedMessage[]>;
  /** Records the packet id a queued message was sent with; no-op if `seq` is not queued. */
  setPacketId(clientId: string, seq: number, packetId: number): Promise<void>;
  /** Removes a queued message (PUBACK, or PUBREC for QoS 2); no-op if not queued. */
  ack(clientId: string, seq: number): Promise<void>;

  /** QoS 2 inbound (exactly once): a PUBLISH received (PUBREC sent) but not yet released (PUBREL). */
  putIncoming(clientId: string, packetId: number, msg: StoredMessage): Promise<boolean /* false if already there */>;
  takeIncoming(clientId: string, packetId: number): Promise<StoredMessage | undefined>;

  /** QoS 2 outbound: PUBREC received for packetId, waiting for PUBCOMP. */
  markReleased(clientId: string, packetId: number): Promise<void>;
  /** Packet ids marked released and not completed, in the order they were first marked. */
  released(clientId: string): Promise<number[]>;
  completeReleased(clientId: string, packetId: number): Promise<void>;

  /** Retained messages: one per topic; an empty payload clears it. */
  setRetained(msg: StoredMessage): Promise<void>;
  /** Retained messages whose topic matches an MQTT filter (+, #); in no particular order. */
  matchRetained(filter: string): Promise<StoredMessage[]>;

  close(): Promise<void>;
}

/** Internal store failures (a corrupt record, a bad Redis URL). */
export class StoreError extends Error {
  override readonly name = "StoreError";
  constructor(message: string, readonly code: "BAD_RECORD" | "BAD_CONFIG" | "CLOSED", options?: { cause?: unknown }) {
    super(message, options);
  }
}
