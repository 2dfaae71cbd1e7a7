// The monitoring listener: /healthz, /varz, /connz, /subsz in nats-server's JSON shapes (so
// NATS tooling can read them) and /metrics for Prometheus.
import http from "node:http";
import os from "node:os";
import type { Registry } from "prom-client";
import { createMetricsRegistry } from "../../common/metrics.js";
import { subjectMatches } from "../../common/subject.js";
import type { ConnectionView, SubscriptionView } from "../connection-view.js";
import { hostPort, listenOn } from "../../common/address.js";
import { NATS_COMPAT_VERSION, type EdgeServer } from "../server.js";

const NS_PER_MS = 1_000_000;

export class MonitorServer {
  private readonly server: http.Server;
  private readonly metrics: Registry;
  private readonly requests: Record<string, number> = {};
  private boundPort: number | undefined;

  constructor(private readonly edge: EdgeServer) {
    this.metrics = createMetricsRegistry({
      connectionsByType: () => {
        const byType: Record<string, number> = {};
        for (const c of edge.openConnections()) byType[c.connectionType] = (byType[c.connectionType] ?? 0) + 1;
        return byType;
      },
      totalConnections: () => edge.totalConnections,
      traffic: () => edge.stats,
      subscriptions: () => edge.link.stats().subscriptions,
      authFailures: () => edge.authFailures,
    });
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: Error) => {
        edge.log.error(`monitoring: ${err.message}`);
        if (!res.headersSent) res.writeHead(500).end();
      });
    });
  }

  get port(): number {
    return this.boundPort ?? 0;
  }

  async listen(host: string, port: number): Promise<void> {
    this.boundPort = await listenOn(this.server, port, host, (err) => this.edge.log.error(`monitoring listener: ${err.message}`));
    this.edge.log.notice(`listening for monitoring on ${hostPort(host, this.port)}`);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const path = url.pathname.replace(/\/+$/, "") || "/";
    if (req.method !== "GET" && req.method !== "HEAD") return send(res, 405, "text/plain", "Method Not Allowed\n");
    this.requests[path] = (this.requests[path] ?? 0) + 1;
    const q = url.searchParams;
    switch (path) {
      case "/": return send(res, 200, "text/html",
        `<html><body><h1>meshbroker</h1><a href="varz">varz</a> <a href="connz">connz</a> ` +
        `<a href="subsz">subsz</a> <a href="healthz">healthz</a> <a href="metrics">metrics</a></body></html>\n`);
      case "/healthz": return sendJson(res, { status: "ok" });
      case "/varz": return sendJson(res, this.varz());
      case "/connz": return sendJson(res, this.connz(q));
      case "/subsz":
      case "/subscriptionsz": return sendJson(res, this.subsz(q));
      case "/metrics": return send(res, 200, this.metrics.contentType, await this.metrics.metrics());
      default: return send(res, 404, "text/plain", "404 page not found\n");
    }
  }

  private varz(): Record<string, unknown> {
    const e = this.edge, o = e.options, now = new Date();
    const mem = process.memoryUsage();
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
      http_port: this.port,
      http_base_path: "",
      https_port: 0,
      auth_timeout: (o.authorization?.timeoutMs ?? o.authTimeoutMs) / 1000,
      max_control_line: o.maxControlLine,
      max_payload: o.maxPayload,
      max_pending: o.maxPending,
      cluster: {},
      gateway: {},
      leaf: {},
      mqtt: this.mqttVarz(),
      websocket: this.websocketVarz(),
      jetstream: {},
      tls_timeout: 2,
      write_deadline: o.writeDeadlineMs * NS_PER_MS,
      start: e.startTime.toISOString(),
      now: now.toISOString(),
      uptime: goDuration(now.getTime() - e.startTime.getTime(), true),
      mem: mem.rss,
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
      subscriptions: e.link.stats().subscriptions,
      http_req_stats: { ...this.requests },
      config_load_time: e.configLoadTime.toISOString(),
    };
  }

  /** nats-server's /varz "websocket" object: empty when there is no listener. */
  private websocketVarz(): Record<string, unknown> {
    const ws = this.edge.options.websocket;
    if (!ws) return {};
    const out: Record<string, unknown> = { host: ws.host, port: this.edge.websocket?.port ?? ws.port };
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
  private mqttVarz(): Record<string, unknown> {
    const m = this.edge.options.mqtt;
    if (!m) return {};
    const out: Record<string, unknown> = { host: m.host, port: this.edge.mqtt?.port ?? m.port };
    if (m.noAuthUser) out.no_auth_user = m.noAuthUser;
    if (m.authorization?.timeoutMs) out.auth_timeout = m.authorization.timeoutMs / 1000;
    if (m.tls) out.tls_map = m.tls.verifyAndMap;
    out.ack_wait = m.ackWaitMs * NS_PER_MS;
    out.max_ack_pending = m.maxAckPending;
    return out;
  }

  private connz(q: URLSearchParams): Record<string, unknown> {
    const e = this.edge, now = new Date();
    const state = q.get("state") ?? "open";
    const open = e.openConnections();
    let list: ConnectionView[] = state === "closed" ? [...e.closed]
      : state === "all" || state === "any" ? [...open, ...e.closed]
      : open;
    const cid = q.get("cid");
    if (cid !== null) list = list.filter((c) => c.cid === Number(cid));
    const sort = q.get("sort") ?? "cid";
    const key = SORTS[sort];
    if (key) list.sort(key);
    const offset = Math.max(0, Number(q.get("offset") ?? 0) || 0);
    const limit = Math.max(0, Number(q.get("limit") ?? 1024) || 1024);
    const page = list.slice(offset, offset + limit);
    const subs = q.get("subs");
    const withSubs = subs === "1" || subs === "true";
    const authParam = q.get("auth");
    const auth = authParam === "1" || authParam === "true";
    return {
      server_id: e.serverId,
      now: now.toISOString(),
      num_connections: page.length,
      total: list.length,
      offset,
      limit,
      connections: page.map((c) => {
        const end = c.stopTime ?? now;
        const info: Record<string, unknown> = {
          cid: c.cid,
          kind: "Client",
          type: c.connectionType === "STANDARD" ? "nats" : c.connectionType.toLowerCase(),
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
        if (auth) {
          if (c.userName) info.authorized_user = c.userName;
          if (c.account) info.account = c.account;
        }
        if (c.mqttClientId !== undefined) info.mqtt_client = c.mqttClientId;
        if (subs === "detail" && c.subscriptionCount > 0) {
          info.subscriptions_list_detail = c.subscriptionList().map((s) => subDetail(c, s, false));
        } else if (withSubs && c.subscriptionCount > 0) {
          info.subscriptions_list = c.subscriptionList().map((s) => s.subject);
        }
        return info;
      }),
    };
  }

  private subsz(q: URLSearchParams): Record<string, unknown> {
    const e = this.edge, st = e.link.stats();
    const subs = q.get("subs");
    const list = subs === "1" || subs === "true" || subs === "detail";
    // nats-server names itself and the time only when it lists subscriptions.
    const out: Record<string, unknown> = list ? { server_id: e.serverId, now: new Date().toISOString() } : {};
    Object.assign(out, {
      num_subscriptions: st.subscriptions,
      num_cache: st.cacheEntries,
      num_inserts: st.inserts,
      num_removes: st.removes,
      num_matches: st.matches,
      cache_hit_rate: st.matches === 0 ? 0 : st.cacheHits / st.matches,
      max_fanout: st.maxFanout,
      avg_fanout: st.avgFanout,
    });
    if (list) {
      const test = q.get("test");
      let all = e.openConnections().flatMap((c) => c.subscriptionList().map((s) => subDetail(c, s, true)));
      if (test) all = all.filter((s) => subjectMatches(s.subject, test));
      const offset = Math.max(0, Number(q.get("offset") ?? 0) || 0);
      const limit = Math.max(0, Number(q.get("limit") ?? 1024) || 1024);
      out.total = all.length;
      out.offset = offset;
      out.limit = limit;
      out.subscriptions_list = all.slice(offset, offset + limit);
    }
    return out;
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
  if (withAccount) d.account = c.account || "$G";
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

function send(res: http.ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { "Content-Type": type, "Content-Length": Buffer.byteLength(body) });
  res.end(body);
}

function sendJson(res: http.ServerResponse, body: unknown): void {
  send(res, 200, "application/json", JSON.stringify(body, null, 2) + "\n");
}
