// The router role's monitoring listener (`http`/`http_port` in a router config): /healthz
// (ready once Redis answered and the gRPC listener is up), /varz (role "router", its peers and
// edges), /routez (nats-server's shape for the peer routers, plus the attached edges) and
// /metrics. A router has no clients, so there is no /connz or /subsz.
import http from "node:http";
import os from "node:os";
import { collectDefaultMetrics, Gauge, Registry } from "prom-client";
import { hostPort, listenOn } from "../common/address.js";
import { send, sendJson } from "../common/http-reply.js";
import type { Logger } from "../common/log.js";
import { NATS_COMPAT_VERSION } from "../edge/context.js";
import { goDuration } from "../edge/monitor/reports.js";
import type { RouterServer } from "./grpc/server.js";
import { roleInfo } from "../common/metrics.js";
import { linkCounters } from "./link-metrics.js";
import type { Mesh } from "./mesh/mesh.js";

export interface RouterMonitorDeps {
  routerId: string;
  /** host:port peers and edges dial. */
  advertise: string;
  grpc: RouterServer;
  mesh: Mesh;
  log: Logger;
  /** false once the router stops (the gRPC listener is closing). */
  serving(): boolean;
}

export class RouterMonitor {
  private readonly server: http.Server;
  private readonly metrics = new Registry();
  private readonly startTime = new Date();
  private readonly requests: Record<string, number> = {};
  private boundPort = 0;
  private host = "";

  constructor(private readonly deps: RouterMonitorDeps) {
    collectDefaultMetrics({ register: this.metrics });
    roleInfo(this.metrics, "router");
    deps.mesh.registerMetrics(this.metrics);
    const register = this.metrics;
    new Gauge({
      name: "meshbroker_router_edges", help: "Edges attached to this router.", registers: [register],
      collect() { this.set(deps.grpc.edges().length); },
    });
    new Gauge({
      name: "meshbroker_link_queue_bytes", help: "Bytes waiting for 'drain' on each edge's link.",
      labelNames: ["peer"], registers: [register],
      collect() {
        this.reset();
        for (const e of deps.grpc.edgeLinks()) this.set({ peer: e.id }, e.queueBytes);
      },
    });
    linkCounters(register, "link", "edge", () => deps.grpc.edgeLinks().map((e) => ({ name: e.id, link: e })));
    this.server = http.createServer({ maxHeaderSize: 16 * 1024 }, (req, res) => {
      this.handle(req, res).catch((err: Error) => {
        deps.log.error(`monitoring: ${err.message}`);
        if (!res.headersSent) res.writeHead(500).end();
      });
    });
  }

  get port(): number { return this.boundPort; }

  async listen(host: string, port: number): Promise<void> {
    this.host = host;
    this.boundPort = await listenOn(this.server, port, host, (err) => this.deps.log.error(`monitoring listener: ${err.message}`));
    this.deps.log.notice(`listening for monitoring on ${hostPort(host, this.boundPort)}`);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** nats-server's /healthz: ok, or unavailable with the reason (HTTP 503). */
  healthz(): { status: "ok" } | { status: "unavailable"; error: string } {
    if (!this.deps.serving()) return { status: "unavailable", error: "router stopping" };
    switch (this.deps.mesh.redisState) {
      case "waiting": return { status: "unavailable", error: "waiting for Redis" };
      case "down": return { status: "unavailable", error: "Redis unavailable" };
      default: return { status: "ok" };
    }
  }

  varz(): Record<string, unknown> {
    const { routerId, advertise, grpc, mesh } = this.deps;
    const now = new Date();
    const interest = mesh.interestStats();
    return {
      server_id: routerId,
      server_name: routerId,
      version: NATS_COMPAT_VERSION,
      go: `node${process.version}`,
      role: "router",
      http_host: this.host,
      http_port: this.boundPort,
      cluster: {
        name: routerId,
        addr: advertise,
        peers: mesh.links().map((l) => l.peerId),
        edges: grpc.edges(),
        interest_entries: interest.entries,
        interest_seq: interest.seq,
        redis: mesh.redisState,
      },
      start: this.startTime.toISOString(),
      now: now.toISOString(),
      uptime: goDuration(now.getTime() - this.startTime.getTime(), true),
      mem: process.memoryUsage.rss(),
      cores: os.cpus().length,
      routes: mesh.links().length,
      http_req_stats: { ...this.requests },
    };
  }

  /** nats-server's /routez fields where they mean the same here, plus the attached edges. */
  routez(): Record<string, unknown> {
    const { routerId, grpc, mesh } = this.deps;
    const now = Date.now();
    const routes = mesh.links().map((l, i) => ({
      rid: i + 1,
      remote_id: l.peerId,
      remote_name: l.peerId,
      did_solicit: l.dialed,
      is_configured: false,
      start: new Date(l.upSince).toISOString(),
      rtt: goDuration(l.rttMs, false),
      uptime: goDuration(now - l.upSince, true),
      pending_size: l.backlogBytes,
      in_msgs: l.inMsgs,
      out_msgs: l.outMsgs,
      in_bytes: l.inBytes,
      out_bytes: l.outBytes,
      subscriptions: l.interestEntries,
      interest_seq: l.interestSeq,
    }));
    const edges = grpc.edgeLinks().map((e) => ({
      edge_id: e.id,
      addr: e.peer,
      start: new Date(e.since).toISOString(),
      uptime: goDuration(now - e.since, true),
      subscriptions: e.subscriptions,
      pending_size: e.queueBytes,
      frames_in: e.framesIn, ops_in: e.opsIn, frames_out: e.framesOut, ops_out: e.opsOut,
    }));
    return {
      server_id: routerId, server_name: routerId, now: new Date(now).toISOString(),
      num_routes: routes.length, routes, num_edges: edges.length, edges,
    };
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", "http://localhost").pathname.replace(/\/+$/, "") || "/";
    if (req.method !== "GET" && req.method !== "HEAD") return send(res, 405, "text/plain", "Method Not Allowed\n");
    this.requests[path] = (this.requests[path] ?? 0) + 1;
    switch (path) {
      case "/": return send(res, 200, "text/html",
        `<html><body><h1>meshbroker router</h1><a href="varz">varz</a> <a href="routez">routez</a> ` +
        `<a href="healthz">healthz</a> <a href="metrics">metrics</a></body></html>\n`);
      case "/healthz": {
        const health = this.healthz();
        return sendJson(res, health, health.status === "ok" ? 200 : 503);
      }
      case "/varz": return sendJson(res, this.varz());
      case "/routez": return sendJson(res, this.routez());
      case "/metrics": return send(res, 200, this.metrics.contentType, await this.metrics.metrics());
      default: return send(res, 404, "text/plain", "404 page not found\n");
    }
  }
}
