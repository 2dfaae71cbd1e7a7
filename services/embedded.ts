// The embedded topology: edge and router in one process, joined by the in-process link.
import type { Options } from "./common/config/options.js";
import type { Logger } from "./common/log.js";
import { EdgeServer } from "./edge/server.js";
import { MonitorServer } from "./edge/monitor/http.js";
import type { RouterLink } from "./router/link.js";
import { createLocalLink } from "./router/link-local.js";
import { createSerialisedLink } from "./router/link-serialised.js";
import { Router } from "./router/router.js";
import { openStore } from "./router/store/index.js";

/** An edge with its listeners and monitoring: the embedded broker, or the cluster's edge role. */
export interface EdgeBroker {
  readonly edge: EdgeServer;
  readonly monitor: MonitorServer | undefined;
  readonly natsPort: number;
  readonly httpPort: number | undefined;
  /** The WebSocket port, when the config has a `websocket {}` block. */
  readonly wsPort: number | undefined;
  /** The MQTT port, when the config has an `mqtt {}` block. */
  readonly mqttPort: number | undefined;
  /** Apply a reloaded config; returns what changed, for the log. */
  reload(options: Options): string[];
  /** Graceful stop: clients get their pending data, then listeners close. Idempotent. */
  stop(): Promise<void>;
  /** Lame duck mode (the edge's), then stop. A stop() meanwhile cuts it short. */
  lameDuck(): Promise<void>;
}

export interface EmbeddedBroker extends EdgeBroker {
  readonly router: Router;
}

/**
 * How edge and router are joined: "embedded" calls the router directly; "serialised" (for tests)
 * sends every call through the wire codec, answered on a later turn (link-serialised.ts). The
 * test-only variable MESHBROKER_TEST_TOPOLOGY selects it for `bin/meshbroker` processes.
 */
export type Topology = "embedded" | "serialised";

export async function startEmbedded(options: Options, log: Logger,
                                    topology = (process.env.MESHBROKER_TEST_TOPOLOGY ?? "embedded") as Topology): Promise<EmbeddedBroker> {
  const warn = (m: string) => log.warn(m);
  const router = new Router(warn);
  let link: RouterLink & { close?(): void };
  if (topology === "serialised") link = createSerialisedLink(router, warn);
  else if (topology === "embedded") link = createLocalLink(router).link;
  else throw new Error(`unknown topology "${String(topology)}" (MESHBROKER_TEST_TOPOLOGY: embedded or serialised)`);
  const broker = await serveEdge(options, log, link, () => router.close());
  return { ...broker, router };
}

/**
 * Starts an edge on `link`: client listeners, the MQTT store, monitoring, reload and stop.
 * `closeLink` runs once the edge has stopped (the link itself is closed before it).
 */
export async function serveEdge(options: Options, log: Logger, link: RouterLink & { close?(): void },
                                closeLink: () => void = () => {}): Promise<EdgeBroker> {
  // The embedded store: LevelDB in the MQTT store_dir, else memory (with a warning).
  const mqttStore = options.mqtt ? await openStore({ dir: options.mqtt.storeDir, log }) : undefined;
  if (mqttStore && options.mqtt?.storeDir) log.notice(`MQTT state stored in ${options.mqtt.storeDir}`);
  const edge = new EdgeServer({ options, link, log, mqttStore });
  try {
    await edge.listen();
  } catch (err) {
    await mqttStore?.close();
    throw err;
  }
  let monitor: MonitorServer | undefined;
  if (options.httpPort !== undefined) {
    monitor = new MonitorServer(edge);
    try {
      await monitor.listen(options.httpHost, options.httpPort);
      edge.httpInfo = () => monitor!.httpInfo;
    } catch (err) {
      await edge.shutdown();
      throw err;
    }
  }
  let stopped: Promise<void> | undefined;
  const broker: EdgeBroker = {
    edge, monitor,
    natsPort: edge.port,
    httpPort: monitor?.port,
    wsPort: edge.websocket?.port,
    mqttPort: edge.mqtt?.port,
    reload(next) {
      const changed = changedKeys(edge.options, next);
      const fixed = changed.filter((k) => NOT_RELOADABLE.has(k));
      if (fixed.length > 0) {
        // As nats-server: the whole reload is refused, the running config stays.
        throw new Error(`config reload not supported for ${fixed.join(", ")} (a restart applies them)`);
      }
      edge.reload(next); // sends the edge's new account set over the link
      return changed;
    },
    stop() {
      stopped ??= (async () => {
        await edge.shutdown();
        await monitor?.close();
        link.close?.();
        closeLink();
        await mqttStore?.close();
      })();
      return stopped;
    },
    async lameDuck() {
      await edge.lameDuck();
      await broker.stop();
    },
  };
  return broker;
}

/** Listener addresses are bound once, and the system account's services start once (nats-server
 *  refuses to reload it too); changing them needs a restart. */
const NOT_RELOADABLE = new Set(["host", "port", "httpHost", "httpPort", "serverName", "websocket", "mqtt", "systemAccount"]);

/** Top-level option names whose values differ (listeners are not rebound on reload). */
function changedKeys(prev: Options, next: Options): string[] {
  const keys = new Set([...Object.keys(prev), ...Object.keys(next)]);
  return [...keys].filter((k) => k !== "configFile" &&
    JSON.stringify((prev as unknown as Record<string, unknown>)[k]) !==
    JSON.stringify((next as unknown as Record<string, unknown>)[k]));
}
