// The monitoring listener: /healthz, /varz, /connz, /subsz in nats-server's JSON shapes (so
// NATS tooling can read them) and /metrics for Prometheus.
import http from "node:http";
import type { Registry } from "prom-client";
import { createMetricsRegistry, scrapedCounter } from "../../common/metrics.js";
import { hostPort, listenOn } from "../../common/address.js";
import { send, sendJson } from "../../common/http-reply.js";
import type { HttpInfo, MonitorContext } from "../context.js";
import { connz, healthz, pageLimit, sublistStats, subsz, varz, type ConnzOptions, type SubszOptions } from "./reports.js";

export class MonitorServer {
  private readonly server: http.Server;
  private readonly metrics: Registry;
  private readonly requests: Record<string, number> = {};
  private boundPort: number | undefined;

  constructor(private readonly edge: MonitorContext) {
    this.metrics = createMetricsRegistry({
      connectionsByType: () => {
        const byType: Record<string, number> = {};
        for (const c of edge.openConnections()) byType[c.connectionType] = (byType[c.connectionType] ?? 0) + 1;
        return byType;
      },
      totalConnections: () => edge.totalConnections,
      traffic: () => edge.stats,
      subscriptions: async () => (await edge.link.stats()).subscriptions,
      authFailures: () => edge.authFailures,
      connectionErrors: () => edge.faults.entries(),
    }, edge.cluster ? "edge" : "embedded");
    if (edge.cluster) {
      edge.cluster.registerMetrics(this.metrics);
      scrapedCounter(this.metrics, "meshbroker_rebalance_evictions_total",
        "Clients this edge moved to other edges because it was above the mean (edge { rebalance }).", () => edge.rebalancer?.evictions ?? 0);
    }
    // The monitoring boundary: the http server owns its sockets' 'error' listeners and answers a
    // malformed request itself (400, 431 over 16 KB of headers); a handler's failure is a 500
    // for that request only.
    this.server = http.createServer({ maxHeaderSize: 16 * 1024 }, (req, res) => {
      this.handle(req, res).catch((err: Error) => {
        edge.log.error(`monitoring: ${err.message}`);
        if (!res.headersSent) res.writeHead(500).end();
      });
    });
  }

  get port(): number {
    return this.boundPort ?? 0;
  }

  /** For /varz, over HTTP or through the system account. */
  get httpInfo(): HttpInfo {
    return { port: this.port, requests: this.requests };
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
      case "/healthz": {
        const health = healthz(this.edge);
        return sendJson(res, health, health.status === "ok" ? 200 : 503);
      }
      case "/varz": return sendJson(res, await varz(this.edge, this.httpInfo));
      case "/connz": return sendJson(res, connz(this.edge, connzOptions(q)));
      case "/subsz":
      case "/subscriptionsz": {
        let report: Record<string, unknown>;
        try {
          report = await subsz(this.edge, subszOptions(q));
        } catch (err) {
          return send(res, 400, "text/plain", (err as Error).message);
        }
        // As nats-server: the bare sublist counters unless there are subscriptions to list.
        return sendJson(res, report.subscriptions_list ? report : sublistStats(await this.edge.link.stats()));
      }
      case "/metrics": return send(res, 200, this.metrics.contentType, await this.metrics.metrics());
      default: return send(res, 404, "text/plain", "404 page not found\n");
    }
  }
}

/** /connz query parameters, as nats-server reads them. */
function connzOptions(q: URLSearchParams): ConnzOptions {
  const state = q.get("state");
  const subs = q.get("subs");
  const cid = q.get("cid");
  return {
    state: state === "closed" ? "closed" : state === "all" || state === "any" ? "all" : "open",
    cid: cid === null ? undefined : Number(cid),
    account: q.get("acc") ?? undefined,
    user: q.get("user") ?? undefined,
    sort: q.get("sort") ?? "cid",
    offset: Math.max(0, Number(q.get("offset") ?? 0) || 0),
    limit: pageLimit(Number(q.get("limit") ?? 0)),
    subs: subs === "detail" ? "detail" : isTrue(subs) ? "list" : false,
    auth: isTrue(q.get("auth")),
  };
}

/** /subsz query parameters. */
function subszOptions(q: URLSearchParams): SubszOptions {
  const subs = q.get("subs");
  return {
    subs: isTrue(subs) || subs === "detail",
    test: q.get("test") ?? undefined,
    account: q.get("acc") ?? undefined,
    offset: Math.max(0, Number(q.get("offset") ?? 0) || 0),
    limit: pageLimit(Number(q.get("limit") ?? 0)),
  };
}

const isTrue = (v: string | null) => v === "1" || v === "true";
