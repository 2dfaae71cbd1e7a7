// What the parts of an edge (listeners, the system account, monitoring) need of the edge, as
// narrow interfaces: they depend on these, never on EdgeServer, so server.ts can import them
// without a cycle (NatsClient's ClientContext is the same pattern).
import type { Registry } from "prom-client";
import type { Options } from "../common/config/options.js";
import type { CloseReason } from "../common/errors.js";
import type { LogContext, Logger } from "../common/log.js";
import type { RouterLink } from "../router/link.js";
import type { AuthContext, AuthPipeline, ConnectionType, TlsPeer } from "./auth/index.js";
import type { FaultCounter, FaultReason, IsolatedConnection } from "./boundary.js";
import type { ConnectionView } from "./connection-view.js";
import type { ClientTransport, NatsClient, TrafficStats } from "./nats/client.js";

/** The nats-server version whose client-visible behaviour the edge follows (INFO, /varz). */
export const NATS_COMPAT_VERSION = "2.9.10";

/** The monitoring listener's part of /varz. */
export interface HttpInfo {
  port: number;
  requests: Record<string, number>;
}

/** The router an edge of the cluster is attached to. */
export interface AttachedRouter {
  id: string;
  address: string;
}

/** An edge of the cluster (`meshbroker edge`): its link says which router it is attached to. */
export interface EdgeCluster {
  attachedRouter(): AttachedRouter | undefined;
  /** The link's metrics (state, RTT, frames, queue, re-attaches) on the edge's /metrics. */
  registerMetrics(register: Registry): void;
}

/** What the monitoring reports (HTTP and system account) read of an edge. */
export interface EdgeView {
  /** Set on the edge role only (embedded: undefined). */
  readonly cluster: EdgeCluster | undefined;
  readonly serverId: string;
  readonly serverName: string;
  readonly options: Options;
  readonly auth: Pick<AuthPipeline, "systemAccount">;
  readonly link: Pick<RouterLink, "stats">;
  readonly startTime: Date;
  readonly configLoadTime: Date;
  readonly port: number;
  readonly websocket: { readonly port: number } | undefined;
  readonly mqtt: { readonly port: number } | undefined;
  readonly stats: TrafficStats;
  readonly totalConnections: number;
  /** Recently closed connections of every protocol. */
  readonly closed: readonly ConnectionView[];
  openConnections(): ConnectionView[];
  /** The monitoring listener's part of /varz, once it listens. */
  readonly httpInfo: (() => HttpInfo) | undefined;
}

/** The monitoring HTTP listener: the reports, plus what /metrics counts and a log. */
export interface MonitorContext extends EdgeView {
  readonly log: Logger;
  readonly authFailures: ReadonlyMap<string, number>;
  readonly faults: FaultCounter;
  /** Cluster edges: clients moved by rebalancing so far. */
  readonly rebalancer?: { readonly evictions: number };
}

/** The system account: the reports, and a link to talk to the account's subscribers. */
export interface SystemContext extends EdgeView {
  readonly link: RouterLink;
}

/** The MQTT part of an edge, as a WebSocket listener hands it MQTT-over-WebSocket connections. */
export interface MqttAcceptor {
  connect(transport: ClientTransport, remoteAddress: string, remotePort: number, type: "MQTT" | "MQTT_WS",
          peer: TlsPeer | undefined): { receive(data: Buffer): void; socketError(): void; logContext(): LogContext; close(reason: CloseReason): void };
}

/** What the WebSocket listener needs of its edge. */
export interface WebsocketContext {
  readonly options: Options;
  readonly log: Logger;
  readonly mqtt: MqttAcceptor | undefined;
  socketError(type: string): void;
  /** A socket closed before it became a client connection (upgrade refused or timed out): the
   *  memory reclaim counts it, as it counts the connections the edge remembers. */
  handshakeClosed(): void;
  /** A NATS client over this transport; `ready` wires it before it starts. */
  connect(transport: ClientTransport, remoteAddress: string, remotePort: number, type: ConnectionType,
          extras?: Partial<AuthContext>, ready?: (client: NatsClient) => void): unknown;
}

/** What the MQTT listener and its connections need of their edge. */
export interface MqttEdgeContext {
  readonly options: Options;
  readonly auth: AuthPipeline;
  readonly log: Logger;
  readonly link: RouterLink;
  readonly serverId: string;
  readonly stats: TrafficStats;
  readonly faults: FaultCounter;
  readonly accepting: boolean;
  totalConnections: number;
  /** The system account's disconnect advisories, when there is one. */
  readonly system: { disconnected(conn: ConnectionView): void } | undefined;
  newConnectionId(): number;
  connectionCount(): number;
  accountConnections(account: string): number;
  clientConnected(conn: ConnectionView): void;
  /** A closed connection, for /connz?state=closed. */
  remember(conn: ConnectionView): void;
  authFailed(conn: { logContext(): LogContext }, reason: string): void;
  connectionFault(conn: IsolatedConnection, reason: FaultReason, err: unknown): void;
  socketError(type: string): void;
}
