// The one typed configuration model. Everything below the CLI reads an Options object
// (frozen), never the raw config tree or process.env.

/** The account of clients when no account is configured for them (nats-server's global account). */
export const GLOBAL_ACCOUNT = "$G";

/** A permission set as nats-server reads it: a list means allow-only. */
export interface SubjectPermission {
  allow?: string[];
  deny?: string[];
}

export interface ResponsePermission {
  maxMsgs: number; // 0 → default 1
  expiresMs: number; // 0 → default 2m
}

export interface Permissions {
  publish?: SubjectPermission;
  subscribe?: SubjectPermission;
  allowResponses?: ResponsePermission;
}

export interface UserConfig {
  user?: string;
  password?: string;
  nkey?: string;
  permissions?: Permissions;
  allowedConnectionTypes?: string[];
  account?: string;
}

export interface AuthorizationConfig {
  user?: string;
  password?: string;
  token?: string;
  users: UserConfig[];
  timeoutMs?: number; // auth timeout; undefined → derived default
  defaultPermissions?: Permissions;
}

/** A `tls {}` block (main listener now; websocket and mqtt blocks reuse the type). */
export interface TlsConfig {
  certFile: string;
  keyFile: string;
  caFile?: string;
  /** Require and verify a client certificate. */
  verify: boolean;
  /** verify + map the certificate's subject DN / SAN e-mail / SAN DNS to a configured user. */
  verifyAndMap: boolean;
  /** TLS handshake timeout (nats-server `timeout`, seconds in the file); default 2s. */
  timeoutMs: number;
  /** Optional restrictions, as nats-server: cipher suite names and curve preferences. */
  ciphers?: string[];
  curvePreferences?: string[];
  /** SHA-256 hex fingerprints of accepted client certificates (nats-server `pinned_certs`). */
  pinnedCerts?: string[];
}

/** What an account makes available to others (nats-server `exports`). */
export interface ExportConfig {
  kind: "stream" | "service";
  subject: string;
  /** Accounts allowed to import; undefined = public. */
  accounts?: string[];
  /** Services only: "Singleton" (default), "Stream" or "Chunked". */
  responseType?: "Singleton" | "Stream" | "Chunked";
  /** Operator mode (JWT `token_req`): an import needs an activation token (ImportConfig.activation). */
  tokenRequired?: boolean;
}

/** What an account takes from another (nats-server `imports`). */
export interface ImportConfig {
  kind: "stream" | "service";
  account: string;
  subject: string;
  /** Streams: subject prefix/remap in the importing account (`prefix` or `to`);
   *  services: the local subject clients request on (`to`), default = subject. */
  to?: string;
  prefix?: string;
  /** Operator mode: the import's activation token, once its signature, importer, times and
   *  revocation were checked. Its subject must contain the import's; at `expiresAt` (ms epoch)
   *  the import stops, as nats-server's activation expiry timer stops it. */
  activation?: { subject: string; expiresAt?: number };
}

export interface AccountConfig {
  name: string;
  users: UserConfig[];
  exports: ExportConfig[];
  imports: ImportConfig[];
  defaultPermissions?: Permissions;
}

/** meshbroker extension: standard OIDC JWTs (RS256/ES256/EdDSA) verified against a JWKS file. */
export interface OidcConfig {
  jwksFile: string;
  issuer?: string;
  audience?: string;
  /** Claim naming the user (default "sub"). */
  userClaim: string;
  /** Claim naming the account; absent claim → `account`. */
  accountClaim?: string;
  /** Account for tokens without the account claim (default "$G" / global). */
  account?: string;
  /** Claim holding NATS-style permissions ({publish, subscribe} with allow/deny lists). */
  permissionsClaim?: string;
  /** Permissions for tokens whose permissions claim is absent. */
  defaultPermissions?: Permissions;
  /** Allowed clock skew in seconds (default 60). */
  clockToleranceSec: number;
}

/** A listener block's own auth settings (`websocket { authorization {} }`, `mqtt { authorization {} }`). */
export interface ListenerAuthorization {
  user?: string;
  password?: string;
  token?: string;
  /** Auth timeout for this listener's clients; undefined → the main one. */
  timeoutMs?: number;
}

/** An allowed WebSocket origin, parsed at load time: scheme, host and port (80/443 filled in).
 *  The host is lowercased, an IPv6 address without its brackets. */
export interface AllowedOrigin {
  scheme: "http" | "https";
  host: string;
  port: number;
}

/** The `websocket {}` block, as nats-server 2.9 reads it. */
export interface WebsocketConfig {
  host: string;
  /** 0 = pick a free port (config -1). */
  port: number;
  /** host:port other servers give WebSocket clients (connect_urls); cluster use. */
  advertise?: string;
  tls?: TlsConfig;
  noTls: boolean;
  sameOrigin: boolean;
  /** Empty = any origin. */
  allowedOrigins: AllowedOrigin[];
  compression: boolean;
  /** 0 = no limit (nats-server's default). */
  handshakeTimeoutMs: number;
  jwtCookie?: string;
  noAuthUser?: string;
  authorization?: ListenerAuthorization;
}

/** The `mqtt {}` block, as nats-server 2.9 reads it (opts.go parseMQTT), plus meshbroker's
 *  `store_dir`. Undefined in Options when the block has no port (no MQTT listener). */
export interface MqttConfig {
  host: string;
  /** 0 = pick a free port (config -1). */
  port: number;
  tls?: TlsConfig;
  noAuthUser?: string;
  /** Replaces the main single user / token for MQTT clients (`users` are not allowed there). */
  authorization?: ListenerAuthorization;
  /** How long a QoS 1 delivery waits for its PUBACK before it is sent again (DUP); default 30s. */
  ackWaitMs: number;
  /** QoS 1 messages in flight per subscription, 1..65535; default 1024. */
  maxAckPending: number;
  /** meshbroker: the directory for MQTT sessions, QoS 1 queues and retained messages: the block's
   *  `store_dir`, else `jetstream { store_dir }`, else the top-level `store_dir`; undefined when
   *  none is set. */
  storeDir?: string;
  /** nats-server tunes the JetStream streams and consumers behind MQTT with these; meshbroker keeps
   *  its MQTT state in its own store, so they are kept (set only when given) but unused. */
  jsDomain?: string;
  streamReplicas?: number;
  consumerReplicas?: number;
  consumerMemoryStorage?: boolean;
  consumerInactiveThresholdMs?: number;
}

/** TLS for a link this process dials (an edge to its routers): a client certificate for mTLS,
 *  the CA that signed the routers' certificates. */
export interface ClientTlsConfig {
  certFile?: string;
  keyFile?: string;
  caFile?: string;
  /** Skip verifying the server's certificate (tests only). */
  insecure: boolean;
  /** TLS handshake timeout; default 2s. */
  timeoutMs: number;
}

/** The cluster credential a member presents and a router checks, so that the router's port is
 *  no way around client authentication: one shared `token`, or NKEYs (`seedFile` signs this
 *  member's attach; a router accepts the public keys in `nkeys`). None: rely on mTLS. */
export interface ClusterAuthorization {
  token?: string;
  /** Routers: the public NKEYs (U...) allowed to attach, edges' and peer routers'. */
  nkeys?: string[];
  /** The file holding this member's NKEY seed (SU...). */
  seedFile?: string;
}

/**
 * Where the cluster's Redis is (services/router/store/redis.ts RedisConnection):
 * - `url`: `redis://` or `rediss://` (one server), `redis-sentinel://h:p,h:p/master[/db]`,
 *   `redis-cluster://h:p,h:p` (and their `rediss-` forms, with TLS);
 * - `sentinels` + `name`: the block form of Sentinel;
 * - `cluster`: the block form of Cluster seed nodes.
 */
export type RedisConfig =
  | { url: string }
  | { sentinels: { host: string; port: number }[]; name: string; username?: string; password?: string; db: number; tls: boolean }
  | { cluster: { host: string; port: number }[]; username?: string; password?: string; tls: boolean };

/** meshbroker's `router {}`: what `meshbroker router` listens on and shares state through. */
export interface RouterConfig {
  host: string;
  /** gRPC port for edges and peer routers; 0 = pick a free port (config -1). */
  port: number;
  /** host:port edges and peers dial (registered in Redis); default: the listen address. */
  advertise?: string;
  redis: RedisConfig;
  tls?: TlsConfig;
  authorization?: ClusterAuthorization;
  /** `balance_edges`: how long this router must have more than one edge more than the least
   *  loaded live router before it moves one there; 0 = never (spread.ts). */
  balanceEdgesMs: number;
}

/** How an edge finds its routers: a fixed list, every address of a DNS name (re-resolved), or
 *  the endpoints of a Kubernetes Service (watched). */
export type RouterDiscovery =
  | { routers: { host: string; port: number }[] }
  | { dns: { host: string; port: number }; refreshMs: number }
  /** No port: the slice's port named "grpc", or its only port, or 7100. */
  | { kubernetes: { service: string; namespace?: string; port?: number } };

/** meshbroker's `edge {}`: how `meshbroker edge` reaches the routers. */
export interface EdgeConfig {
  discovery: RouterDiscovery;
  /** Keep this edge's client URLs out of the cluster's connect_urls, and give its clients none
   *  (nats-server's cluster no_advertise). */
  noAdvertise?: boolean;
  tls?: ClientTlsConfig;
  authorization?: ClusterAuthorization;
  rebalance: {
    /** The `rebalance {}` block is there: this edge moves clients (every edge reports its count). */
    enabled: boolean;
    /** At most this many clients per second are moved off an over-loaded edge. */
    maxEvictionsPerSecond: number;
    /** How far above the mean (a fraction) an edge's client count may be before it moves clients. */
    tolerance: number;
    /** …and by at least this many clients (moving 1 of 3 clients helps nobody). */
    minExcess: number;
  };
}

export interface LogOptions {
  debug: boolean;
  trace: boolean;
  logtime: boolean;
  /** meshbroker: "text" (nats-server style) or "json" (one object per line). */
  format: "text" | "json";
  file?: string;
}

export interface Options {
  /** Absolute path of the main config file, when loaded from one. */
  configFile?: string;
  serverName: string;
  host: string;
  /** Client port; 0 = pick a free port (config value -1). */
  port: number;
  clientAdvertise?: string;
  noAdvertise: boolean;

  maxPayload: number;
  maxConnections: number;
  maxControlLine: number;
  maxPending: number;
  maxSubscriptions: number;
  pingIntervalMs: number;
  pingMax: number;
  writeDeadlineMs: number;
  lameDuckDurationMs: number;
  lameDuckGracePeriodMs: number;

  authorization?: AuthorizationConfig;
  /** Auth timeout when `authorization.timeoutMs` is unset (nats-server: 2s, tls timeout + 1s with TLS). */
  authTimeoutMs: number;
  noAuthUser?: string;
  /** `accounts {}`: named accounts with their users, exports and imports. */
  accounts: AccountConfig[];
  /** `system_account` / `system`. Default: in operator mode the first operator JWT's system
   *  account (none if it names none, as nats-server); otherwise "$SYS" when accounts are used
   *  (unless `no_system_account`). An explicit name must be a configured account. */
  systemAccount?: string;
  /** Operator mode: operator JWTs (inline or read from the files named), `resolver: MEMORY`,
   *  and `resolver_preload { ACCOUNT_PUBKEY: "account JWT" }`. */
  operatorJwts: string[];
  resolver?: "MEMORY";
  resolverPreload: Record<string, string>;
  /** meshbroker extension: `oidc {}`. */
  oidc?: OidcConfig;
  /** Main client listener TLS (`tls {}`). */
  tls?: TlsConfig;
  /** NATS over WebSocket (`websocket {}`); undefined = no WebSocket listener. */
  websocket?: WebsocketConfig;
  /** MQTT 3.1.1 listener (`mqtt {}`); undefined = no MQTT listener. */
  mqtt?: MqttConfig;

  /** Monitoring listener; undefined port = disabled, 0 = pick a free port. */
  httpHost: string;
  httpPort?: number;

  log: LogOptions;

  /** `router {}`: read and checked by every role; used by `meshbroker router`. */
  router?: RouterConfig;
  /** `edge {}`: read and checked by every role; used by `meshbroker edge`. */
  edge?: EdgeConfig;

  /** Blocks meshbroker parses but later issues implement (jetstream, resolvers
   *  other than MEMORY, trusted keys, ...).
   *  Kept as plain JS values so those issues can type them without reparsing. */
  pending: Record<string, unknown>;
}

export const DEFAULTS = {
  serverName: "",
  host: "0.0.0.0",
  port: 4222,
  noAdvertise: false,
  maxPayload: 1024 * 1024,
  maxConnections: 64 * 1024,
  maxControlLine: 4096,
  maxPending: 64 * 1024 * 1024,
  maxSubscriptions: 0,
  pingIntervalMs: 2 * 60_000,
  pingMax: 2,
  writeDeadlineMs: 10_000,
  lameDuckDurationMs: 2 * 60_000,
  lameDuckGracePeriodMs: 10_000,
  authTimeoutMs: 2_000,
  httpHost: "0.0.0.0",
  log: { debug: false, trace: false, logtime: true, format: "text" },
  /** nats-server's mqttDefaultAckWait and mqttDefaultMaxAckPending; 0 in the file means these. */
  mqtt: { host: "0.0.0.0", ackWaitMs: 30_000, maxAckPending: 1024 },
  /** `router { listen }` when it names no port, and the port of kubernetes discovery when neither config nor slice names one. */
  router: { host: "0.0.0.0", port: 7100, balanceEdgesMs: 10_000 },
  edge: { rebalance: { enabled: false, maxEvictionsPerSecond: 10, tolerance: 0.1, minExcess: 10 } },
} as const;
