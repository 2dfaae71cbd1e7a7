// The cluster's router role (`meshbroker router`): the routing core behind one gRPC listener
// for edges (router/grpc/server.ts) and peer routers (router/mesh/), membership and interest
// shared through Redis, and the MQTT store on the cluster's Redis, opened in the background: a
// router may start before Redis, and waits for it, logging why.
import { randomBytes } from "node:crypto";
import { hostPort, reachableAddress } from "./common/address.js";
import { DEFAULTS, type Options, type RedisConfig } from "./common/config/options.js";
import type { Logger } from "./common/log.js";
import { createRouterServer, type RouterServer } from "./router/grpc/server.js";
import { EdgeSpread } from "./router/grpc/spread.js";
import { channelCredentials, serverCredentials } from "./router/grpc/tls.js";
import { Mesh } from "./router/mesh/mesh.js";
import { RouterMonitor } from "./router/monitor.js";
import { Router } from "./router/router.js";
import { SessionOwnership } from "./router/sessions/ownership.js";
import { SessionService } from "./router/sessions/service.js";
import { openStore, type MqttStore, type RedisConnection } from "./router/store/index.js";
import { createRedisClient } from "./router/store/redis.js";
import { keyOf } from "./router/store/store.js";

export interface RouterBroker {
  readonly router: Router;
  readonly grpc: RouterServer;
  readonly mesh: Mesh;
  readonly port: number;
  /** The monitoring listener, when the config has `http`/`http_port`. */
  readonly monitor: RouterMonitor | undefined;
  /** The MQTT store on Redis, once Redis has answered (for the session service). */
  store(): MqttStore | undefined;
  reload(options: Options): string[];
  /** SIGTERM: the edges move to other routers first (bounded), then the router stops. */
  lameDuck(): Promise<void>;
  stop(): Promise<void>;
}

/** Wait between attempts to open the store, and between two reports of Redis being unreachable. */
const REDIS_RETRY_MS = 1_000, REDIS_REPORT_MS = 30_000;
/** How often sessions of routers whose registration expired are looked for (those of a peer
 *  whose link drops are adopted once it does not answer through Redis within PEER_ANSWER_MS). */
const ADOPT_SCAN_MS = 2_000;
/** How long a peer whose mesh link dropped has to answer through Redis to keep its sessions:
 *  a few Redis round trips on a loaded machine; a dead or frozen peer costs this much more of
 *  the hold before its sessions are adopted. */
const PEER_ANSWER_MS = 500;
/** How long after a peer router's loss its edges are expected to have re-attached (issue: 2 s). */
const REATTACH_GRACE_MS = 2_000;
/** How long a stopping router waits for its edges to move elsewhere. */
const EDGE_MOVE_MS = 5_000;

export async function startRouterRole(options: Options, log: Logger): Promise<RouterBroker> {
  const cfg = options.router;
  if (!cfg) throw new Error("the router role needs a router {} block (router { listen: \"0.0.0.0:7100\", redis: \"redis://…\" })");
  const routerId = options.serverName || `router-${randomBytes(4).toString("hex")}`;
  const router = new Router((m) => log.warn(m));
  // One command connection for the mesh (membership, interest summaries) and the edges' client
  // URLs (errors: the mesh's heartbeat reports them). The store and the session ownership keep
  // their own (ownership's subscriber cannot send commands).
  const redis = createRedisClient(redisConnection(cfg.redis));
  redis.on("error", () => {});
  const grpc = createRouterServer({ router, log, routerId, authorization: cfg.authorization, redis });
  const listenerTls = serverCredentials(cfg.tls);
  const port = await grpc.bind(cfg.host, cfg.port, listenerTls);
  log.notice(`listening for edges on ${cfg.tls ? "tls://" : ""}${hostPort(cfg.host, port)}`);
  const openCluster = !cfg.authorization && !cfg.tls?.verify;
  if (openCluster) {
    log.warn("router {} has no authorization and no tls { verify: true }: anyone reaching the router port can attach as an edge or a router");
  }
  checkPeerCredential(cfg);
  // The mesh hooks into the router before any edge attaches (its streams start after bind, but
  // the Hello of an edge is only read on a later turn).
  const advertise = cfg.advertise ?? reachableAddress(cfg.host, port);
  // A peer's certificate is checked against the same CA as an edge's.
  const peerTls = cfg.tls
    ? channelCredentials({ caFile: cfg.tls.caFile, certFile: cfg.tls.certFile, keyFile: cfg.tls.keyFile, insecure: false, timeoutMs: 2_000 })
    : undefined;
  const mesh = new Mesh(router, {
    id: routerId, advertise, authorization: cfg.authorization, mtls: cfg.tls?.verify, unauthenticated: openCluster,
    redis, log: { info: (m) => log.notice(m), warn: (m) => log.warn(m) },
    credentials: peerTls?.credentials, edges: () => (leaving ? -1 : grpc.edges().length),
  });
  let leaving = false; // lame duck: peers send no edges here
  const spread = new EdgeSpread({
    selfId: routerId, log: (m) => log.notice(m),
    members: () => mesh.members(), edges: () => grpc.edges(), ask: (edge, address) => grpc.moveEdge(edge, address),
  }, cfg.balanceEdgesMs);
  mesh.addTo(grpc.server);
  log.notice(`router ${routerId} advertises ${advertise} to its peers`);

  let store: MqttStore | undefined;
  let sessions: SessionService | undefined;
  let ownership: SessionOwnership | undefined;
  let stopped = false;
  let monitor: RouterMonitor | undefined;
  if (options.httpPort !== undefined) {
    monitor = new RouterMonitor({ routerId, advertise, grpc, mesh, log, serving: () => !stopped });
    try {
      await monitor.listen(options.httpHost, options.httpPort);
    } catch (err) {
      await grpc.close();
      await mesh.close();
      throw err;
    }
  }
  let retry: NodeJS.Timeout | undefined;
  let adoptTimer: NodeJS.Timeout | undefined;
  const redisName = describeRedis(cfg.redis);
  // ioredis reconnects by itself and reports each failed attempt: log at most one a period.
  let lastReport = 0;
  const onError = (err: Error) => {
    if (Date.now() - lastReport < REDIS_REPORT_MS) return;
    lastReport = Date.now();
    log.warn(`Redis at ${redisName} not reachable (${err.message}); retrying`);
  };
  const open = async () => {
    try {
      const s = await openStore({ redis: redisConnection(cfg.redis), redisOptions: { onError }, log });
      if (stopped) return void (await s.close());
      store = s;
      log.notice(`MQTT state stored in Redis at ${redisName}`);
      void startSessions(s).catch((err: Error) => log.error(`MQTT session service not started: ${err.message}`));
    } catch (err) {
      if (stopped) return;
      onError(err as Error);
      retry = setTimeout(() => void open(), REDIS_RETRY_MS);
    }
  };
  // The MQTT session service starts once Redis answered (until then the router refuses MQTT
  // attaches: CONNACK 0x03). Ownership (sessions/ownership.ts) makes this router the only one
  // holding each of its sessions; sessions of routers that left are adopted here.
  const startSessions = async (s: MqttStore) => {
    const linked = (id: string) => mesh.peers().some((p) => p.id === id);
    const own = new SessionOwnership(redisConnection(cfg.redis), routerId, "mb", linked, { warn: (m) => log.warn(m) });
    const service = new SessionService(router, s, {
      // For sessions restored before their client attaches: an attach brings its edge's mqtt {} limits.
      ackWaitMs: options.mqtt?.ackWaitMs ?? DEFAULTS.mqtt.ackWaitMs, maxAckPending: options.mqtt?.maxAckPending ?? DEFAULTS.mqtt.maxAckPending,
    }, log);
    service.owners = own;
    // Redis answered the store; a failure here is one more outage: try again.
    for (;;) {
      try {
        await own.start(service);
        break;
      } catch (err) {
        if (stopped) return void (await own.close());
        onError(err as Error);
        await new Promise((r) => setTimeout(r, REDIS_RETRY_MS));
      }
    }
    // Persistent sessions nobody owns (an earlier run, an embedded store) or whose router is gone: restored once, here.
    const live = await own.liveRouters();
    live.delete(routerId); // what this router's previous run owned is restored here
    const adopted = await own.adoptOrphans((o) => !live.has(o), (await s.listSessions()).map(keyOf));
    if (stopped) return void (await own.close());
    ownership = own;
    sessions = service;
    router.sessions = service;
    log.notice(`MQTT session service started${adopted > 0 ? ` (${adopted} sessions restored)` : ""}`);
    // A peer's link dropped. A peer that still answers through Redis is alive (a network blip):
    // it keeps its sessions and the mesh links again. Otherwise its sessions are adopted now,
    // and meanwhile the messages they would have queued are kept (SessionService.hold). The hold
    // lasts while the lost router's edges re-attach here too: a publisher's edge may come back
    // before the subscriber's, and its sessions may have been claimed by their attach.
    mesh.peerDown = (id) => {
      const grace = new Promise((r) => setTimeout(r, REATTACH_GRACE_MS).unref());
      service.hold((async () => {
        if (await own.answers(id, PEER_ANSWER_MS)) {
          return log.warn(`mesh: router ${id} answers through Redis: its link dropped, not the router; its MQTT sessions stay with it`);
        }
        await Promise.all([own.adoptOrphans((o) => o === id).catch((err: Error) => onError(err)), grace]);
      })());
    };
    // Its link back, a live peer gets again what it missed (its hello says from where).
    mesh.replaying = (afterId, send) => service.replaySince(afterId, send);
    // Routers that never linked here (or left while this one was down) expire from the registry.
    const scan = async () => {
      const alive = await own.liveRouters();
      const linked = new Set(mesh.peers().map((p) => p.id));
      await own.adoptOrphans((o) => !alive.has(o) && !linked.has(o));
    };
    const tick = () => {
      adoptTimer = setTimeout(() => void scan().catch((err: Error) => onError(err)).finally(() => { if (!stopped) tick(); }), ADOPT_SCAN_MS);
    };
    tick();
  };
  void open();

  let stopping: Promise<void> | undefined;
  let current = options;
  const broker: RouterBroker = {
    router, grpc, mesh, port, monitor,
    store: () => store,
    reload(next) {
      const changed = changedRouterKeys(current, next);
      // As nats-server: a reload that touches what only a restart applies is refused whole.
      const fixed = changed.filter((k) => !RELOADABLE.has(k));
      if (fixed.length > 0) throw new Error(`config reload not supported for ${fixed.join(", ")} (a restart applies them)`);
      // The same tls {} files read again (rotated certificates): read and checked before anything changes.
      const tlsUpdates = [listenerTls.prepareReload?.(), peerTls?.tls?.prepareReload()];
      const auth = next.router!.authorization;
      if (changed.includes("router.authorization")) {
        checkPeerCredential(next.router!);
        if (!auth && !cfg.tls?.verify) throw new Error("router {}: a reload cannot open the cluster (no authorization, no tls { verify: true }): restart for that");
        mesh.setAuthorization(auth); // reads a seed_file: throws before anything changed
        grpc.setAuthorization(auth);
      }
      for (const apply of tlsUpdates) apply?.();
      spread.delayMs = next.router!.balanceEdgesMs;
      log.reconfigure(next.log);
      current = next;
      return changed;
    },
    async lameDuck() {
      leaving = true;
      spread.close();
      if (!stopping) await grpc.moveEdges(EDGE_MOVE_MS);
      await broker.stop();
    },
    stop() {
      stopping ??= (async () => {
        stopped = true;
        spread.close();
        clearTimeout(retry);
        clearTimeout(adoptTimer);
        await monitor?.close();
        await grpc.close();
        await mesh.close();
        await sessions?.close();
        await ownership?.close();
        redis.disconnect();
        router.close();
        await store?.close();
      })();
      return stopping;
    },
  };
  return broker;
}

/** A router dials its peers with a credential of its own: a token, or an NKEY seed whose public
 *  key its peers list (or mTLS). */
function checkPeerCredential(cfg: NonNullable<Options["router"]>): void {
  const a = cfg.authorization;
  if (a && a.token === undefined && a.seedFile === undefined && !cfg.tls?.verify) {
    throw new Error("router {}: with nkeys, set seed_file too: peer routers authenticate with it (its public key in every router's nkeys), or use a token or tls { verify: true }");
  }
}

/** What of a router's config a SIGHUP applies: logging and the cluster credential (new attaches
 *  and peer links use it; those up stay), and the contents of the tls {} files. The rest (listen,
 *  advertise, redis, server_name, tls paths and options, http, mqtt) is bound or shared at start. */
const RELOADABLE = new Set(["log", "router.authorization", "router.balanceEdgesMs"]);

/** The top-level options that differ, with router {} split into its fields. */
function changedRouterKeys(prev: Options, next: Options): string[] {
  const differ = (a: unknown, b: unknown) => JSON.stringify(a) !== JSON.stringify(b);
  const flat = (o: Options): Record<string, unknown> => {
    const { router, configFile: _file, ...rest } = o as Options & { configFile?: unknown };
    const out: Record<string, unknown> = { ...rest };
    for (const [k, v] of Object.entries(router ?? {})) out[`router.${k}`] = v;
    return out;
  };
  const a = flat(prev), b = flat(next);
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => differ(a[k], b[k]));
}

function redisConnection(cfg: RedisConfig): RedisConnection {
  if ("url" in cfg) return cfg.url;
  const auth = { username: cfg.username, password: cfg.password, ...(cfg.tls ? { tls: {} } : {}) };
  if ("sentinels" in cfg) return { ...auth, sentinels: cfg.sentinels, name: cfg.name, db: cfg.db };
  return { cluster: cfg.cluster, options: { redisOptions: auth } };
}

/** For logs: the address without credentials. */
function describeRedis(cfg: RedisConfig): string {
  if ("url" in cfg) return cfg.url.replace(/\/\/[^@/]*@/, "//");
  if ("sentinels" in cfg) return `sentinel ${cfg.name} via ${cfg.sentinels.map((s) => hostPort(s.host, s.port)).join(",")}`;
  return `cluster ${cfg.cluster.map((n) => hostPort(n.host, n.port)).join(",")}`;
}
