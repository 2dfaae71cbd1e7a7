// The embedded topology: edge and router in one process, joined by the in-process link.
import type { Options } from "./common/config/options.js";
import type { Logger } from "./common/log.js";
import type { EdgeCluster } from "./edge/context.js";
import { EdgeServer } from "./edge/server.js";
import { MonitorServer } from "./edge/monitor/http.js";
import type { RouterLink } from "./router/link.js";
import { createLocalLink } from "./router/link-local.js";
import { createSerialisedLink } from "./router/link-serialised.js";
import { Router } from "./router/router.js";
import { SessionService } from "./router/sessions/service.js";
import { openStore, type MqttStore } from "./router/store/index.js";

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

/** The router side of a process: routing, and the MQTT session service when MQTT is served. */
export interface RouterSide {
  readonly router: Router;
  readonly sessions: SessionService | undefined;
  /** After the edges stopped: lets the session service's writes land, closes the store. */
  close(): Promise<void>;
}

/**
 * Starts the router side: the MQTT session service on its store (LevelDB in the MQTT
 * store_dir, else memory with a warning; or `givenStore`, which the caller closes), which
 * restores the persistent sessions of an earlier run, once.
 */
export async function startRouterSide(options: Options, log: Logger, givenStore?: MqttStore): Promise<RouterSide> {
  const router = new Router((m) => log.warn(m));
  if (!options.mqtt) return { router, sessions: undefined, close: async () => router.close() };
  const store = givenStore ?? await openStore({ dir: options.mqtt.storeDir, log });
  if (!givenStore && options.mqtt.storeDir) log.notice(`MQTT state stored in ${options.mqtt.storeDir}`);
  const { ackWaitMs, maxAckPending } = options.mqtt;
  const sessions = new SessionService(router, store, { ackWaitMs, maxAckPending }, log);
  router.sessions = sessions;
  const close = async () => {
    await sessions.close();
    router.close();
    if (!givenStore) await store.close();
  };
  try {
    await sessions.start();
  } catch (err) {
    await close();
    throw err;
  }
  return { router, sessions, close };
}

export async function startEmbedded(options: Options, log: Logger,
                                    topology = (process.env.MESHBROKER_TEST_TOPOLOGY ?? "embedded") as Topology,
                                    /** An MQTT store the caller opened (and closes), instead of the config's. */
                                    givenStore?: MqttStore): Promise<EmbeddedBroker> {
  if (topology !== "serialised" && topology !== "embedded") {
    throw new Error(`unknown topology "${String(topology)}" (MESHBROKER_TEST_TOPOLOGY: embedded or serialised)`);
  }
  const side = await startRouterSide(options, log, givenStore);
  const router = side.router;
  const link: RouterLink & { close?(): void } = topology === "serialised"
    ? createSerialisedLink(router, (m) => log.warn(m)) : createLocalLink(router).link;
  const broker = await serveEdge(options, log, link, () => side.close());
  return { ...broker, router };
}

/**
 * Starts an edge on `link`: client listeners, monitoring, reload and stop. `closeRouter` runs
 * once the edge has stopped and the link is closed (the embedded router side closes then), and
 * also when the edge fails to start.
 */
export async function serveEdge(options: Options, log: Logger, link: RouterLink & { close?(): void } & Partial<EdgeCluster>,
                                closeRouter: () => Promise<void> | void = () => {}): Promise<EdgeBroker> {
  // The edge role's link knows its router: /healthz and /varz report it.
  const cluster = link.attachedRouter && link.registerMetrics ? link as EdgeCluster : undefined;
  const edge = new EdgeServer({ options, link, log, cluster });
  try {
    await edge.listen();
  } catch (err) {
    await closeRouter();
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
      await closeRouter();
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
        // What the edge's last calls sent (detaches, wills) reaches the router before the link
        // closes; bounded, since a remote router may be gone.
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, LINK_DRAIN_MS).unref();
          link.sync(() => { clearTimeout(timer); resolve(); });
        });
        link.close?.();
        await closeRouter();
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

/** How long a stopping edge waits for the router to confirm its last calls. */
const LINK_DRAIN_MS = 2_000;

/** Listener addresses are bound once, and the system account's services start once (nats-server
 *  refuses to reload it too); changing them needs a restart. So does the cluster edge's link
 *  (`edge {}`: routers, credential, tls paths). The tls {} files are read again on every reload. */
const NOT_RELOADABLE = new Set(["host", "port", "httpHost", "httpPort", "serverName", "websocket", "mqtt", "systemAccount", "edge"]);

/** Top-level option names whose values differ (listeners are not rebound on reload). */
function changedKeys(prev: Options, next: Options): string[] {
  const keys = new Set([...Object.keys(prev), ...Object.keys(next)]);
  return [...keys].filter((k) => k !== "configFile" &&
    JSON.stringify((prev as unknown as Record<string, unknown>)[k]) !==
    JSON.stringify((next as unknown as Record<string, unknown>)[k]));
}
