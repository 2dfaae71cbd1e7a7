// The TypeScript shapes of proto/meshbroker/v1/*.proto, as the codec (codec.ts) encodes and
// decodes them: field names in camelCase, uint64 as number (ids and microsecond timestamps stay
// below 2^53), bytes as Buffer. A decoded message has every scalar (defaults are "", 0, false);
// the optional fields below are the message fields, which are absent when not sent, and the
// members of a oneof, of which one is set and named by the oneof's own field (`op`, `kind`, …).
// Keep this file in step with the .proto files: one contract, written twice.

// ---- common.proto ----

export interface Message { subject: string; reply: string; headers: Buffer; payload: Buffer }
export interface SubscriptionRef { connectionId: number; sid: string }
export interface InterestEntry { account: string; subject: string; queue: string; weight: number }

export enum ExportKind { Unspecified = 0, Stream = 1, Service = 2 }
export enum ResponseType { Singleton = 0, Stream = 1, Chunked = 2 }
export interface Export { kind: ExportKind; subject: string; accounts: string[]; responseType: ResponseType; tokenRequired: boolean }
export interface Activation { subject: string; expiresAtMs: number }
export interface Import { kind: ExportKind; account: string; subject: string; to: string; prefix: string; activation?: Activation }
export interface AccountDefinition { name: string; exports: Export[]; imports: Import[] }
export interface AccountSet { accounts: AccountDefinition[]; version: string; systemAccount: string }

export enum ErrorCode {
  Unspecified = 0, BadRequest = 1, NotAuthorized = 2, UnknownAccount = 3, StoreUnavailable = 4,
  SessionTakenOver = 5, Overloaded = 6, Internal = 7,
}
export interface WireErrorInfo { code: ErrorCode; text: string }

export interface NkeyProof { publicKey: string; signature: Buffer; signed: Buffer }
export interface Credential { kind?: "token" | "nkey"; token?: string; nkey?: NkeyProof }
export interface Ping { sentAtUs: number; seq: number }
export interface Pong { sentAtUs: number; seq: number; receivedAtUs: number }
export interface StoredMessage { topic: string; payload: Buffer; qos: number; retain: boolean; properties?: MqttProperties }
export interface UserProperty { name: string; value: string }
export interface MqttProperties {
  userProperties: UserProperty[]; contentType: string; correlationData: Buffer; hasCorrelationData: boolean;
  responseTopic: string; payloadUtf8: boolean; messageExpiry?: { seconds: number }; subscriptionIdentifier: number;
}
export interface MqttSubscription {
  filter: string; qos: number; noLocal: boolean; retainAsPublished: boolean; retainHandling: number; identifier: number;
}
export interface RouterStats {
  subscriptions: number; cacheEntries: number; matches: number; cacheHits: number;
  inserts: number; removes: number; maxFanout: number; avgFanout: number;
}

// ---- edge.proto: edge → router ----

export interface EdgeFrame { ops: EdgeOp[] }
export interface EdgeOp {
  op?: "hello" | "interest" | "publish" | "unsubscribe" | "connectionClosed" | "session" | "statsQuery"
    | "ping" | "pong" | "accounts" | "urls" | "clients";
  hello?: Hello; interest?: InterestChange; publish?: Publish; unsubscribe?: Unsubscribe;
  connectionClosed?: ConnectionClosed; session?: SessionOp; statsQuery?: StatsQuery;
  ping?: Ping; pong?: Pong; accounts?: AccountsUpdate; urls?: ClientUrls; clients?: ClientCount;
}
export interface ClientCount { count: number }
export interface Hello {
  edgeId: string; credential?: Credential; configVersion: string; accounts?: AccountSet; version: string; sentAtUs: number;
  urls?: ClientUrls;
}
export interface ClientUrls { nats: string[]; websocket: string[] }
export interface AccountsUpdate { accounts?: AccountSet }
export interface InterestChange {
  account: string; subject: string; queue: string; weightDelta: number; sub?: SubscriptionRef; noEcho: boolean;
}
export interface Publish {
  account: string; message?: Message; originConnection: number; noResponders: boolean; correlationId: number;
  qos: number; retain: boolean; topic: string; properties?: MqttProperties;
}
export interface Unsubscribe { account: string; sub?: SubscriptionRef; max: number }
export interface ConnectionClosed { connectionId: number }
export interface SessionOp {
  correlationId: number; clientId: string; connectionId: number;
  op?: "attach" | "detach" | "subscribe" | "unsubscribe" | "puback" | "pubrec" | "incoming" | "pubrel"
    | "pubcomp" | "resume" | "permissions";
  attach?: SessionAttach; detach?: SessionDetach; subscribe?: SessionSubscribe; unsubscribe?: SessionUnsubscribe;
  puback?: SessionAck; pubrec?: SessionAck; incoming?: SessionIncoming; pubrel?: SessionAck;
  pubcomp?: SessionAck; resume?: SessionResume; permissions?: SessionPermissions;
}
export interface SubjectPermission { allow: string[]; deny: string[] }
export interface SessionWill { message?: StoredMessage; subject: string; delay: number }
export interface SessionExpiry { seconds: number }
export interface SessionAttach {
  clean: boolean; account: string; subscribe?: SubjectPermission; will?: SessionWill; expiry?: SessionExpiry; receiveMaximum: number;
  ackWaitMs: number; maxAckPending: number;
}
export interface SessionDetach { publishWill: boolean; expiry?: SessionExpiry }
export interface SessionSubscribe { subscriptions: MqttSubscription[] }
export interface SessionUnsubscribe { filters: string[] }
export interface SessionAck { packetId: number }
export interface SessionIncoming { packetId: number; message?: StoredMessage; subject: string }
export type SessionResume = Record<string, never>;
export interface SessionPermissions { subscribe?: SubjectPermission; will?: SessionWill }
export interface StatsQuery { correlationId: number; account: string }

// ---- edge.proto: router → edge ----

export interface RouterFrame { ops: RouterOp[] }
export interface RouterOp {
  op?: "helloReply" | "deliver" | "completion" | "sessionEvent" | "statsReply" | "ping" | "pong" | "clusterUrls" | "goAway" | "load";
  helloReply?: HelloReply; deliver?: Deliver; completion?: Completion; sessionEvent?: SessionEvent;
  statsReply?: StatsReply; ping?: Ping; pong?: Pong; clusterUrls?: ClusterUrls; goAway?: GoAway; load?: ClusterLoad;
}
export interface ClusterLoad { edges: EdgeLoad[] }
export interface EdgeLoad { edgeId: string; clients: number }
export interface ClusterUrls { edges: EdgeUrls[] }
export interface EdgeUrls { edgeId: string; urls?: ClientUrls }
export interface GoAway { reason: string; router: string }
/** An edge told to go away ends the stream within this, moved or not (edge-link.ts); routers
 *  wait for it on that bound (router-end.ts, grpc/spread.ts). */
export const GO_AWAY_TIMEOUT_MS = 5_000;
export interface HelloReply { routerId: string; accountsVersion: string; version: string }
export interface Deliver { account: string; message?: Message; targets: SubscriptionRef[] }
export interface Completion {
  correlationId: number; error?: WireErrorInfo;
  result?: "attached" | "delivered";
  attached?: SessionAttached; delivered?: number;
}
export interface SessionAttached { sessionPresent: boolean; subscriptions: MqttSubscription[] }
export interface SessionEvent {
  connectionId: number; event?: "takeover" | "publish" | "pubrel";
  takeover?: boolean; publish?: SessionPublish; pubrel?: number;
}
export interface SessionPublish { message?: StoredMessage; packetId: number; dup: boolean }
export interface StatsReply { correlationId: number; stats?: RouterStats }

// ---- mesh.proto ----

export interface MeshFrame { ops: MeshOp[] }
export interface MeshOp {
  op?: "hello" | "interest" | "resyncRequest" | "snapshot" | "forward" | "ping" | "pong";
  hello?: MeshHello; interest?: InterestUpdate; resyncRequest?: ResyncRequest; snapshot?: InterestSnapshot;
  forward?: Forward; ping?: Ping; pong?: Pong;
}
export interface MeshHello {
  routerId: string; version: string; credential?: Credential; accountsVersion: string; interestSeq: number; sentAtUs: number;
  lastForwardId: number;
}
export interface InterestUpdate { seq: number; entries: InterestEntry[] }
export interface ResyncRequest { haveSeq: number }
export interface InterestSnapshot { seq: number; entries: InterestEntry[]; last: boolean }
export interface Forward {
  account: string; message?: Message; queues: string[]; originEdge: string; originConnection: number; qos: number;
  retain: boolean; msgId: number;
}

/** What an encoder accepts: any field may be left out (it then carries its default). */
export type Draft<T> = T extends Buffer ? T
  : T extends (infer E)[] ? Draft<E>[]
  : T extends object ? { [K in keyof T]?: Draft<T[K]> }
  : T;

/** The error text of a session op sent to a router without its session service yet (its Redis
 *  not answering): the edge asks again a little later. */
export const NO_SESSION_SERVICE = "no MQTT session service";
