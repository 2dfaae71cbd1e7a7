// The MQTT state that must survive a reconnect (and, for the level and redis stores, a restart):
// sessions, outbound QoS 1/2 queues, inbound QoS 2 packet ids, outbound PUBRELs, retained
// messages. One interface, three implementations (memory.ts, level.ts, redis.ts); index.ts picks.
//
// Contract shared by every implementation (test/unit/store.test.ts runs one table against all):
// - Every method is async; operations take effect in the order they are called on one store,
//   even when the caller does not await between calls.
// - Payloads are Buffers. A store copies what it keeps (callers may pass parser views); the
//   Buffers it returns are read-only (the memory store hands out the ones it keeps).
// - Every piece of a session's state is keyed by its SessionKey (account + client id), and
//   retained messages by account + topic: two accounts never read or replace each other's.
// - Sequence numbers are per session key, strictly increasing and never reused while any state of
//   that client exists, across restarts too (level, redis). They are consecutive within one run;
//   after a restart the level store may skip ahead. `deleteSession` starts them over at 1.

import { GLOBAL_ACCOUNT } from "../../common/config/options.js";
import type { MqttSubscription, QoS, StoredMessage } from "../link.js";

// The message and subscription shapes are the link contract's (the edge sees them too).
export type { QoS, StoredMessage };
export type Subscription = MqttSubscription;

/**
 * What names an MQTT session: its account and its client id, as one opaque string (a branded
 * type, so a bare client id cannot be passed by mistake). This is the one place that builds it;
 * the registry map and every store key use it. For the global account it is the client id
 * itself, so state stored before sessions were per account stays the global account's.
 * Otherwise it is "\u0001" + the URI-encoded account + "\u0001" + the client id (a global
 * client id that starts with "\u0001" takes that form too), so two different pairs never
 * share a key.
 */
export type SessionKey = string & { readonly __sessionKey: true };

const MARK = "\u0001";

export function sessionKey(account: string, clientId: string): SessionKey {
  if (account === GLOBAL_ACCOUNT && !clientId.startsWith(MARK)) return clientId as SessionKey;
  return `${MARK}${encodeURIComponent(account)}${MARK}${clientId}` as SessionKey;
}

/** The key of a stored session record (records written before accounts were stored have none: global). */
export function keyOf(s: { account?: string; clientId: string }): SessionKey {
  return sessionKey(s.account ?? GLOBAL_ACCOUNT, s.clientId);
}

export interface SessionRecord {
  clientId: string;
  subscriptions: Subscription[];
  /** ms epoch of the last write: for a session with an `expiry`, when its connection ended
   *  (or, after a crash, its last change), which the expiry counts from. */
  updatedAt: number;
  /** MQTT 5 session expiry interval in seconds (absent: never expires). */
  expiry?: number;
  /** Its last client spoke MQTT 5: messages queued before that client is back keep their
   *  properties (absent: 3.1.1, or a record of an earlier version). */
  mqtt5?: boolean;
  /** The account the session belongs to (absent in old records: the global one); with
   *  clientId it makes the session's key. */
  account?: string;
}

/** How long a message id stays in a session's delivered record (MqttStore.received): longer
 *  than an adopting router keeps messages for the lost router's sessions (SessionService hold). */
export const DELIVERED_KEEP_MS = 10_000;

export interface QueuedMessage extends StoredMessage {
  seq: number;
  /** packet id once sent; undefined = not sent yet */
  packetId?: number;
}

export type StoreKind = "memory" | "level" | "redis";

export interface MqttStore {
  /** Which implementation this is; "memory" loses everything on restart. */
  readonly kind: StoreKind;

  getSession(id: SessionKey): Promise<SessionRecord | undefined>;
  putSession(session: SessionRecord): Promise<void>;
  /** Deletes the session, its queue, its inflight and incoming QoS 2 state. */
  deleteSession(id: SessionKey): Promise<void>;
  listSessions(): Promise<SessionRecord[]>;

  /** Outbound QoS 1/2 messages for a session, in order, until acknowledged. Returns seq. */
  enqueue(id: SessionKey, msg: StoredMessage): Promise<number>;
  /** One write (one round trip) for a fan-out; per session, entries keep their array order. */
  enqueueMany(entries: { id: SessionKey; msg: StoredMessage }[]): Promise<void>;
  /** The oldest `limit` queued messages of a session, sent or not, in seq order. */
  queued(id: SessionKey, limit: number): Promise<QueuedMessage[]>;
  /** Records the packet id a queued message was sent with; no-op if `seq` is not queued. */
  setPacketId(id: SessionKey, seq: number, packetId: number): Promise<void>;
  /** Removes a queued message (PUBACK, or PUBREC for QoS 2); no-op if not queued. */
  ack(id: SessionKey, seq: number): Promise<void>;

  /** QoS 2 inbound (exactly once): a PUBLISH received (PUBREC sent) but not yet released (PUBREL). */
  putIncoming(id: SessionKey, packetId: number, msg: StoredMessage): Promise<boolean /* false if already there */>;
  takeIncoming(id: SessionKey, packetId: number): Promise<StoredMessage | undefined>;

  /** QoS 2 outbound: PUBREC received for packetId, waiting for PUBCOMP. */
  markReleased(id: SessionKey, packetId: number): Promise<void>;
  /**
   * QoS 2 outbound, the client's PUBREC of a queued message, as one atomic write: `seq` (when
   * given) leaves the queue as with ack(), `packetId` is marked released as with markReleased(),
   * and `msgId` (when given) joins the session's delivered record for DELIVERED_KEEP_MS. A
   * router that adopts the session after a crash reads the record, so it does not hand the
   * client again a message the client already has (exactly once).
   */
  received(id: SessionKey, packetId: number, seq: number | undefined, msgId: number | undefined): Promise<void>;
  /** The message ids of the delivered record written in the last DELIVERED_KEEP_MS (any order,
   *  older ones may be there too). */
  delivered(id: SessionKey): Promise<number[]>;
  /** Packet ids marked released and not completed, in the order they were first marked. */
  released(id: SessionKey): Promise<number[]>;
  completeReleased(id: SessionKey, packetId: number): Promise<void>;

  /** Retained messages: one per account and topic; an empty payload clears it. */
  setRetained(account: string, msg: StoredMessage): Promise<void>;
  /** The account's retained messages whose topic matches an MQTT filter (+, #); in no particular order. */
  matchRetained(account: string, filter: string): Promise<StoredMessage[]>;

  /** A store on a server (Redis): undefined while connected, else settles once it is back.
   *  An MQTT ack waits on it even when the message wrote nothing here (its subscribers' sessions
   *  live on other routers), so nothing is acked while the store is down. */
  available?(): Promise<void> | undefined;

  close(): Promise<void>;
}

/** Internal store failures (a corrupt record, a bad Redis URL). */
export class StoreError extends Error {
  override readonly name = "StoreError";
  constructor(message: string, readonly code: "BAD_RECORD" | "BAD_CONFIG" | "CLOSED", options?: { cause?: unknown }) {
    super(message, options);
  }
}
