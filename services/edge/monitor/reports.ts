// The monitoring reports in nats-server's JSON shapes: varz, connz, subsz, healthz, statsz.
// The HTTP listener serves them from query parameters, the system account ($SYS.REQ.SERVER...)
// from JSON request bodies; both build the options below and call the same functions.
import os from "node:os";
import { GLOBAL_ACCOUNT } from "../../common/config/options.js";
import { isValidLiteralSubject, subjectMatches } from "../../common/subject.js";
import type { RouterStats } from "../../router/link.js";
import type { ConnectionView, SubscriptionView } from "../connection-view.js";
import { NATS_COMPAT_VERSION, type EdgeView, type HttpInfo } from "../context.js";

const NS_PER_MS = 1_000_000;
const DEFAULT_LIMIT = 1024;

/** What only the HTTP listener knows, for /varz. */
export interface ConnzOptions {
  state: "open" | "closed" | "all";
  cid?: number;
  /** Only connections of this account / user. */
  account?: string;
  user?: string;
  sort: string;
  offset: number;
  limit: number;
  subs: false | "list" | "detail";
  /** Show authorized_user and account. */
  auth: boolean;
}

export interface SubszOptions {
  /** List the subscriptions (else only the counters). */
  subs: boolean;
  test?: string;
  account?: string;
  offset: number;
  limit: number;
}

export const DEFAULT_CONNZ: ConnzOptions = { state: "open", sort: "cid", offset: 0, limit: DEFAULT_LIMIT, subs: false, auth: false };
export const DEFAULT_SUBSZ: SubszOptions = { subs: false, offset: 0, limit: DEFAULT_LIMIT };

/** A limit as nats-server reads it: 0 or less means the default. */
export function pageLimit(n: number | undefined): number {
  return n !== undefined && n > 0 ? Math.floor(n) : DEFAULT_LIMIT;
}

/** nats-server's /healthz: {"status":"ok"}, or "unavailable" with an error (HTTP 503). An edge
 *  of the cluster is ready only while attached to a router: without one it routes nothing. */
export function healthz(e: EdgeView): { status: "ok" } | { status: "unavailable"; error: string } {
  if (e.cluster && e.cluster.attachedRouter() === undefined) return { status: "unavailable", error: "not attached to a router" };
  return { status: "ok" };
}

export async function varz(e: EdgeView, http: HttpInfo | undefined): Promise<Record<string, unknown>> {
  const routing = await e.link.stats();
  const o = e.options, now = new Date();
  return {
    server_id: e.serverId,
    server_name: e.serverName,
    version: NATS_COMPAT_VERSION,
    proto: 1,
    go: `node${process.version}`,
    host: o.host,
    port: e.port,
    max_connections: o.maxConnections,
    ping_interval: o.pingIntervalMs * NS_PER_MS,
    ping_max: o.pingMax,
    http_host: o.httpHost,
    http_port: http?.port ?? 0,
    http_base_path: "",
    https_port: 0,
    auth_timeout: (o.authorization?.timeoutMs ?? o.authTimeoutMs) / 1000,
    max_control_line: o.maxControlLine,
    max_payload: o.maxPayload,
    max_pending: o.maxPending,
    cluster: clusterVarz(e),
    gateway: {},
    leaf: {},
    mqtt: mqttVarz(e),
    websocket: websocketVarz(e),
    jetstream: {},
    tls_timeout: 2,
    write_deadline: o.writeDeadlineMs * NS_PER_MS,
    start: e.startTime.toISOString(),
    now: now.toISOString(),
    uptime: goDuration(now.getTime() - e.startTime.getTime(), true),
    mem: process.memoryUsage.rss(),
    cores: os.cpus().length,
    gomaxprocs: 1,
    cpu: 0,
    connections: e.openConnections().length,
    total_connections: e.totalConnections,
    routes: 0,
    remotes: 0,
    leafnodes: 0,
    in_msgs: e.stats.inMsgs,
    out_msgs: e.stats.outMsgs,
    in_bytes: e.stats.inBytes,
    out_bytes: e.stats.outBytes,
    slow_consumers: e.stats.slowConsumers,
    subscriptions: routing.subscriptions,
    http_req_stats: { ...http?.requests },
    config_load_time: e.configLoadTime.toISOString(),
    ...systemAccountOf(e),
    ...(e.cluster ? { role: "edge" } : {}),
  };
}

/** The edge role's cluster state ({} when embedded, as nats-server without a cluster). */
function clusterVarz(e: EdgeView): Record<string, unknown> {
  if (!e.cluster) return {};
  const r = e.cluster.attachedRouter();
  return { router: r?.id ?? "", router_address: r?.address ?? "" };
}

/** nats-server always has a system account ("$SYS" unless configured otherwise or disabled). */
function systemAccountOf(e: EdgeView): { system_account?: string } {
  const o = e.options;
  const sys = e.auth.systemAccount ?? (o.operatorJwts.length === 0 && o.pending.no_system_account !== true ? "$SYS" : undefined);
  return sys ? { system_account: sys } : {};
}

/** nats-server's /varz "websocket" object: empty when there is no listener. */
function websocketVarz(e: EdgeView): Record<string, unknown> {
  const ws = e.options.websocket;
  if (!ws) return {};
  const out: Record<string, unknown> = { host: ws.host, port: e.websocket?.port ?? ws.port };
  if (ws.advertise) out.advertise = ws.advertise;
  if (ws.noAuthUser) out.no_auth_user = ws.noAuthUser;
  if (ws.jwtCookie) out.jwt_cookie = ws.jwtCookie;
  if (ws.handshakeTimeoutMs > 0) out.handshake_timeout = ws.handshakeTimeoutMs * NS_PER_MS;
  if (ws.authorization?.timeoutMs) out.auth_timeout = ws.authorization.timeoutMs / 1000;
  if (ws.noTls) out.no_tls = true;
  if (ws.tls) out.tls_map = ws.tls.verifyAndMap;
  if (ws.sameOrigin) out.same_origin = true;
  if (ws.allowedOrigins.length > 0) {
    out.allowed_origins = ws.allowedOrigins.map((o) =>
      `${o.scheme}://${o.host.includes(":") ? `[${o.host}]` : o.host}${o.port === (o.scheme === "https" ? 443 : 80) ? "" : `:${o.port}`}`);
  }
  if (ws.compression) out.compression = true;
  return out;
}

/** nats-server's /varz "mqtt" object: empty when there is no listener. */
function mqttVarz(e: EdgeView): Record<string, unknown> {
  const m = e.options.mqtt;
  if (!m) return {};
  const out: Record<string, unknown> = { host: m.host, port: e.mqtt?.port ?? m.port };
  if (m.noAuthUser) out.no_auth_user = m.noAuthUser;
  if (m.authorization?.timeoutMs) out.auth_timeout = m.authorization.timeoutMs / 1000;
  if (m.tls) out.tls_map = m.tls.verifyAndMap;
  out.ack_wait = m.ackWaitMs * NS_PER_MS;
  out.max_ack_pending = m.maxAckPending;
  return out;
}

export function connz(e: EdgeView, q: ConnzOptions): Record<string, unknown> {
  const now = new Date();
  const open = e.openConnections();
  let list: ConnectionView[] = q.state === "closed" ? [...e.closed] : q.state === "all" ? [...open, ...e.closed] : open;
  if (q.cid !== undefined) list = list.filter((c) => c.cid === q.cid);
  if (q.account !== undefined) list = list.filter((c) => c.account === q.account);
  if (q.user !== undefined) list = list.filter((c) => c.userName === q.user);
  const key = SORTS[q.sort];
  if (key) list.sort(key);
  const page = list.slice(q.offset, q.offset + q.limit);
  return {
    server_id: e.serverId,
    now: now.toISOString(),
    num_connections: page.length,
    total: list.length,
    offset: q.offset,
    limit: q.limit,
    connections: page.map((c) => {
      const end = c.stopTime ?? now;
      const info: Record<string, unknown> = {
        cid: c.cid,
        kind: "Client",
        type: clientType(c),
        ip: c.remoteAddress,
        port: c.remotePort,
        start: c.startTime.toISOString(),
        last_activity: new Date(c.lastActivityMs).toISOString(),
      };
      if (c.stopTime) info.stop = c.stopTime.toISOString();
      info.rtt = goDuration(c.rttMs, false);
      info.uptime = goDuration(end.getTime() - c.startTime.getTime(), true);
      info.idle = goDuration(now.getTime() - c.lastActivityMs, true);
      info.pending_bytes = c.closed ? 0 : c.pendingBytes;
      info.in_msgs = c.inMsgs;
      info.out_msgs = c.outMsgs;
      info.in_bytes = c.inBytes;
      info.out_bytes = c.outBytes;
      info.subscriptions = c.subscriptionCount;
      if (c.name) info.name = c.name;
      if (c.lang) info.lang = c.lang;
      if (c.version) info.version = c.version;
      if (c.closeReason && c.closed) info.reason = c.closeReason;
      if (q.auth) {
        if (c.userName) info.authorized_user = c.userName;
        if (c.account) info.account = c.account;
      }
      if (c.mqttClientId !== undefined) info.mqtt_client = c.mqttClientId;
      if (q.subs === "detail" && c.subscriptionCount > 0) {
        info.subscriptions_list_detail = c.subscriptionList().map((s) => subDetail(c, s, false));
      } else if (q.subs === "list" && c.subscriptionCount > 0) {
        info.subscriptions_list = c.subscriptionList().map((s) => s.subject);
      }
      return info;
    }),
  };
}

/** The sublist counters, and with `subs` the (filtered, paged) subscriptions: nats-server's
 *  Subsz, `total` being the size of the page as there. An invalid `test` subject throws. */
export async function subsz(e: EdgeView, q: SubszOptions): Promise<Record<string, unknown>> {
  if (q.test !== undefined && !isValidLiteralSubject(q.test)) {
    throw new Error(`invalid test subject, must be valid publish subject: ${q.test}`);
  }
  const st = await e.link.stats();
  let page: ReturnType<typeof subDetail>[] = [];
  if (q.subs) {
    let conns = e.openConnections();
    if (q.account !== undefined) conns = conns.filter((c) => (c.account || GLOBAL_ACCOUNT) === q.account);
    let all = conns.flatMap((c) => c.subscriptionList().map((s) => subDetail(c, s, true)));
    if (q.test) all = all.filter((s) => subjectMatches(s.subject, q.test!));
    page = all.slice(q.offset, q.offset + q.limit);
  }
  const out: Record<string, unknown> = {
    server_id: e.serverId,
    now: new Date().toISOString(),
    ...sublistStats(st),
    total: page.length,
    offset: q.offset,
    limit: q.limit,
  };
  if (page.length > 0) out.subscriptions_list = page;
  return out;
}

/** nats-server's SublistStats, what /subsz shows when it lists no subscriptions. */
export function sublistStats(st: RouterStats): Record<string, unknown> {
  return {
    num_subscriptions: st.subscriptions,
    num_cache: st.cacheEntries,
    num_inserts: st.inserts,
    num_removes: st.removes,
    num_matches: st.matches,
    cache_hit_rate: st.matches === 0 ? 0 : st.cacheHits / st.matches,
    max_fanout: st.maxFanout,
    avg_fanout: st.avgFanout,
  };
}

/** The statsz of nats-server's $SYS.REQ.SERVER.PING answers and STATSZ events. */
export async function statsz(e: EdgeView): Promise<Record<string, unknown>> {
  const routing = await e.link.stats();
  const accounts = new Set<string>();
  for (const c of e.openConnections()) accounts.add(c.account || GLOBAL_ACCOUNT);
  return {
    start: e.startTime.toISOString(),
    mem: process.memoryUsage.rss(),
    cores: os.cpus().length,
    cpu: 0,
    connections: e.openConnections().length,
    total_connections: e.totalConnections,
    active_accounts: accounts.size,
    subscriptions: routing.subscriptions,
    sent: { msgs: e.stats.outMsgs, bytes: e.stats.outBytes },
    received: { msgs: e.stats.inMsgs, bytes: e.stats.inBytes },
    slow_consumers: e.stats.slowConsumers,
    active_servers: 1,
  };
}

/** nats-server's client type names: "nats", "websocket", "mqtt". */
export function clientType(c: ConnectionView): string {
  switch (c.connectionType) {
    case "STANDARD": return "nats";
    case "WEBSOCKET": return "websocket";
    default: return "mqtt";
  }
}

type Sorter = (a: ConnectionView, b: ConnectionView) => number;
const SORTS: Record<string, Sorter> = {
  cid: (a, b) => a.cid - b.cid,
  start: (a, b) => a.startTime.getTime() - b.startTime.getTime(),
  subs: (a, b) => b.subscriptionCount - a.subscriptionCount,
  pending: (a, b) => b.pendingBytes - a.pendingBytes,
  msgs_to: (a, b) => b.outMsgs - a.outMsgs,
  msgs_from: (a, b) => b.inMsgs - a.inMsgs,
  bytes_to: (a, b) => b.outBytes - a.outBytes,
  bytes_from: (a, b) => b.inBytes - a.inBytes,
  last: (a, b) => b.lastActivityMs - a.lastActivityMs,
  idle: (a, b) => a.lastActivityMs - b.lastActivityMs,
  uptime: (a, b) => a.startTime.getTime() - b.startTime.getTime(),
  stop: (a, b) => (b.stopTime?.getTime() ?? 0) - (a.stopTime?.getTime() ?? 0),
  reason: (a, b) => (a.closeReason ?? "").localeCompare(b.closeReason ?? ""),
};

/** nats-server's SubDetail; /subsz names the account, /connz (per connection) does not. */
function subDetail(c: ConnectionView, s: SubscriptionView, withAccount: boolean) {
  const d: { account?: string; subject: string; qgroup?: string; sid: string; msgs: number; max?: number; cid: number } = {
    subject: s.subject, sid: s.sid, msgs: s.delivered, cid: c.cid,
  };
  if (withAccount) d.account = c.account || GLOBAL_ACCOUNT;
  if (s.queue !== undefined) d.qgroup = s.queue;
  if (s.max > 0) d.max = s.max;
  return d;
}

/** Go's time.Duration text: "1.129708ms" for rtt, and nats-server's "1d2h3m4s" for uptime/idle. */
export function goDuration(ms: number, coarse: boolean): string {
  if (coarse) {
    let s = Math.floor(ms / 1000);
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    if (d > 0) return `${d}d${h}h${m}m${s}s`;
    if (h > 0) return `${h}h${m}m${s}s`;
    if (m > 0) return `${m}m${s}s`;
    return `${s}s`;
  }
  if (ms === 0) return "0s";
  if (ms < 1) return `${+(ms * 1000).toFixed(3)}µs`;
  if (ms < 1000) return `${+ms.toFixed(6)}ms`;
  return `${+(ms / 1000).toFixed(9)}s`;
}
