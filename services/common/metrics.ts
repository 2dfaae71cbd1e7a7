// Prometheus metrics (prom-client). Values are read from the broker's own counters at scrape
// time, so the message path only bumps plain numbers.
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";

export interface MetricsSource {
  connectionsByType(): Record<string, number>;
  totalConnections(): number;
  traffic(): { inMsgs: number; outMsgs: number; inBytes: number; outBytes: number; slowConsumers: number };
  /** Asynchronous: the count comes from the router, over the link. */
  subscriptions(): Promise<number>;
  authFailures(): ReadonlyMap<string, number>;
  /** Connection faults (socket errors, handler exceptions) by connection type and reason. */
  connectionErrors(): Iterable<{ type: string; reason: string; n: number }>;
}

/** A counter whose value is read from a plain field at scrape time. */
export function scrapedCounter(register: Registry, name: string, help: string, read: () => number): Counter {
  return new Counter({
    name, help, registers: [register],
    collect() { this.reset(); this.inc(read()); },
  });
}

/** `meshbroker_info{role}` = 1: dashboards and alerts tell the roles apart by it, whatever the scrape job is called. */
export function roleInfo(register: Registry, role: "embedded" | "edge" | "router"): void {
  new Gauge({
    name: "meshbroker_info", help: "Always 1; role is embedded, edge or router.", labelNames: ["role"], registers: [register],
  }).set({ role }, 1);
}

export function createMetricsRegistry(source: MetricsSource, role: "embedded" | "edge"): Registry {
  const register = new Registry();
  collectDefaultMetrics({ register });
  roleInfo(register, role);

  const counter = (name: string, help: string, read: () => number) => scrapedCounter(register, name, help, read);

  new Gauge({
    name: "meshbroker_connections", help: "Open client connections by connection type.",
    labelNames: ["type"], registers: [register],
    collect() {
      this.reset();
      for (const [type, n] of Object.entries(source.connectionsByType())) this.set({ type }, n);
    },
  });
  counter("meshbroker_connections_total", "Client connections accepted since start.", source.totalConnections);
  counter("meshbroker_messages_received_total", "Messages received from clients.", () => source.traffic().inMsgs);
  counter("meshbroker_messages_sent_total", "Messages delivered to clients.", () => source.traffic().outMsgs);
  counter("meshbroker_bytes_received_total", "Payload bytes received from clients.", () => source.traffic().inBytes);
  counter("meshbroker_bytes_sent_total", "Payload bytes delivered to clients.", () => source.traffic().outBytes);
  counter("meshbroker_slow_consumers_total", "Connections closed as slow consumers.", () => source.traffic().slowConsumers);
  new Gauge({
    name: "meshbroker_subscriptions", help: "Active subscriptions.", registers: [register],
    async collect() { this.set(await source.subscriptions()); },
  });
  new Counter({
    name: "meshbroker_auth_failures_total", help: "Failed authentications by reason.",
    labelNames: ["reason"], registers: [register],
    collect() {
      this.reset();
      for (const [reason, n] of source.authFailures()) this.inc({ reason }, n);
    },
  });
  new Counter({
    name: "meshbroker_connection_errors_total", help: "Connections that met their fault boundary, by connection type and reason.",
    labelNames: ["type", "reason"], registers: [register],
    collect() {
      this.reset();
      for (const { type, reason, n } of source.connectionErrors()) this.inc({ type, reason }, n);
    },
  });
  return register;
}
