// The router mesh: one Router's peers. Routers find each other in Redis (registry.ts), link
// over one gRPC stream per pair (the router with the smaller id dials: ids are unique, so each
// pair agrees without talking), and exchange aggregated interest with sequences; a message
// crosses edge → router → router → edge at most, and only to peers whose interest matches
// (peers' entries sit in the router's sublists, see router.ts RemoteSubscriber).
//
// Redis away: routing continues on the interest the links carry (Redis never sits on the
// message path), membership stays as last seen, and when Redis is back this router registers
// again and rewrites its summary.
//
// Wiring a router: `new Mesh(router, options)` before any edge attaches (the router then
// reports every local subscription), `mesh.addTo(server)` on a grpc.Server created with
// meshChannelOptions, `mesh.registerMetrics(registry)`, and `await mesh.close()` on stop.
import * as grpc from "@grpc/grpc-js";
import type { Cluster, Redis } from "ioredis";
import type { Duplex } from "node:stream";
import { Gauge, type Registry } from "prom-client";
import { scrapedCounter } from "../../common/metrics.js";
import { linkCounters } from "../link-metrics.js";
import type { Connection, MessageData, QueuePick } from "../link.js";
import type { MeshHooks, Router } from "../router.js";
import type { ClusterAuthorization } from "../../common/config/options.js";
import { checkCredential, credentialSource, type CredentialSource } from "../grpc/credential.js";
import { widenServerWindow } from "../grpc/window.js";
import { createRedisClient } from "../store/redis.js";
import type { RedisConnection } from "../store/redis-url.js";
import type { Draft, MeshHello } from "../wire/frames.js";
import { Barriers, type BarrierWaiter } from "./barrier.js";
import { LocalInterest, type InterestUpdateData } from "./interest.js";
import { MAX_BACKLOG_BYTES, MESH_VERSION, nowUs, PeerLink, type LinkOwner } from "./peer.js";
import { MeshRegistry, REGISTRATION_TTL_MS, type RouterRecord } from "./registry.js";
import { dialLink, meshService } from "./transport.js";

/** One message sent again to a peer (Mesh.replaying): its bytes are read during the call only;
 *  `picks`: its account's queue groups that got a member when it was routed. */
export type ReplaySend = (account: string, subject: string, reply: string | undefined, msg: MessageData, retain: boolean,
                          msgId: number, picks: readonly QueuePick[] | undefined) => void;

export interface MeshLog {
  info(message: string): void;
  warn(message: string): void;
}

export interface MeshOptions {
  /** This router's id, unique in the cluster (its server name). */
  id: string;
  /** host:port peers dial, registered in Redis. */
  advertise: string;
  /** The cluster credential (`router { authorization {} }`: a token, or NKEYs with this router's
   *  seed_file), checked as an edge's (grpc/credential.ts). */
  authorization?: ClusterAuthorization;
  /** No credential: the gRPC server verifies peers' certificates (`tls { verify: true }`). One of
   *  the two is required, since the mesh port is a way around client authentication... */
  mtls?: boolean;
  /** ...unless the operator chose an open cluster (no router authorization, no TLS; the
   *  router role warns about it). */
  unauthenticated?: boolean;
  /** Where membership and interest summaries live; none: peers only by dial(). */
  redis?: RedisConnection | Redis | Cluster;
  /** Redis key prefix. Default "mb". */
  prefix?: string;
  /** Bytes a link may queue while its stream waits for 'drain'. Default 64 MB (MAX_BACKLOG_BYTES). */
  maxBacklogBytes?: number;
  /** Channel credentials for dialing peers. Default: insecure (plain TCP). */
  credentials?: grpc.ChannelCredentials;
  /** Edges attached to this router now (-1: stopping), registered with it (peers even out
   *  edges: spread.ts). */
  edges?: () => number;
  log: MeshLog;
}

/** How often the registration is renewed and membership read. */
export const HEARTBEAT_MS = 1_000;
/** For its first STARTUP_MS a router reads membership every STARTUP_HEARTBEAT_MS: of routers
 *  started together, the one that registered first (and dials, having the smaller id) would
 *  otherwise find the others only a heartbeat later. Absences are not counted meanwhile. */
const STARTUP_MS = 2_000;
const STARTUP_HEARTBEAT_MS = 100;
/** Consecutive heartbeats a linked peer may be absent from Redis before it is dropped (its
 *  registration expired). A restarted Redis has lost every key, and each router registers again
 *  only once its own client has reconnected (ioredis retries up to 2 s apart): absences are not
 *  counted until a registration's lifetime after this router saw Redis back. */
const ABSENT_HEARTBEATS = 2;
/** A refusal is logged once per this interval and reason. */
const REFUSAL_LOG_MS = 60_000;

export class Mesh implements MeshHooks, LinkOwner {
  readonly id: string;
  /** Mount on the router's grpc.Server: `server.addService(mesh.service, mesh.implementation)`. */
  readonly service = meshService;
  readonly implementation: grpc.UntypedServiceImplementation = {
    Link: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => { this.accept(call); },
  };
  generation = 0;
  origin: Connection | undefined;
  /** The current publish is an MQTT message with the retain flag (its Forwards say so). */
  retain = false;
  /** The current publish's id (0: none; Router.msgId), carried on its Forwards. */
  msgId = 0;
  readonly maxBacklogBytes: number;
  /** When each refused peer was last logged: a misconfigured peer redials every second. */
  private readonly refusals = new Map<string, number>();
  private readonly local: LocalInterest;
  /** Up links by peer id. */
  private readonly linksById = new Map<string, PeerLink>();
  /** Links not up yet: dialed (by peer id, or by address for dial()) and accepted. */
  private readonly pending = new Set<PeerLink>();
  private readonly clients = new Map<PeerLink, grpc.Client>();
  /** Addresses given to dial(), kept linked. */
  private readonly statics = new Map<string, PeerLink | undefined>();
  private readonly absent = new Map<string, number>();
  /** Absences from Redis count from this time on (Date.now(); see ABSENT_HEARTBEATS). */
  private countAbsenceFrom = 0;
  private readonly registry: MeshRegistry | undefined;
  private readonly ownsRedis: boolean;
  private readonly timer: NodeJS.Timeout;
  private startupTimer: NodeJS.Timeout | undefined;
  private redisDown = false;
  private redisSeen = false;
  /** Live routers (this one included) as the last heartbeat read them. */
  private lastMembers: RouterRecord[] = [];
  /** The summary in Redis missed updates: rewrite it whole. */
  private summaryStale = true;
  private closed = false;
  /** Called when a linked peer's link goes down (its interest is already gone): the MQTT session
   *  service adopts its sessions. */
  peerDown: ((id: string) => void) | undefined;
  /** Sends again, through `send`, the QoS 1/2 messages published here with an id above `afterId`
   *  that are still kept (the MQTT session service's recent ones); absent: nothing kept. */
  replaying: ((afterId: number, send: ReplaySend) => void) | undefined;
  /** The last forward id applied from each peer on links that ended (PeerLink.lastForwardId). */
  private readonly lastForwardIds = new Map<string, number>();
  /** Redis calls of the mesh (heartbeats, summary writes): count, seconds, failures (metrics). */
  readonly redisCalls = { count: 0, seconds: 0, errors: 0 };
  /** Flush barriers waiting for peers' pongs. */
  readonly barriers = new Barriers();

  private auth: ClusterAuthorization | undefined;
  private credential: CredentialSource | undefined;

  constructor(readonly router: Router, private readonly opts: MeshOptions) {
    this.setAuthorization(opts.authorization);
    if (this.credential === undefined && !opts.mtls && !opts.unauthenticated) {
      throw new Error("mesh: no cluster credential: set router { authorization { token } } (or nkeys with seed_file) or tls with verify");
    }
    this.id = opts.id;
    this.maxBacklogBytes = opts.maxBacklogBytes ?? MAX_BACKLOG_BYTES;
    this.local = new LocalInterest((u) => this.broadcast(u));
    router.attachMesh(this);
    if (opts.redis !== undefined) {
      const isClient = typeof opts.redis === "object" && "status" in opts.redis;
      const redis = isClient ? opts.redis as Redis | Cluster : createRedisClient(opts.redis as RedisConnection);
      this.ownsRedis = !isClient;
      redis.on("error", () => {}); // reported once per outage by the heartbeat
      redis.on("ready", () => void this.heartbeat()); // at once, not a tick later
      this.registry = new MeshRegistry(redis, opts.prefix ?? "mb", { id: opts.id, address: opts.advertise });
    } else {
      this.ownsRedis = false;
    }
    this.timer = setInterval(() => void this.heartbeat(), HEARTBEAT_MS).unref();
    const startupUntil = Date.now() + STARTUP_MS;
    this.countAbsenceFrom = startupUntil;
    const early = (): void => {
      if (this.closed || !this.registry || Date.now() >= startupUntil) return;
      this.startupTimer = setTimeout(() => void this.heartbeat().then(early), STARTUP_HEARTBEAT_MS).unref();
    };
    void this.heartbeat().then(early);
  }

  /** Mounts the service on a grpc.Server (create it with meshChannelOptions). */
  addTo(server: grpc.Server): void {
    server.addService(this.service, this.implementation);
  }

  /** Keeps a link to the router at `address` (host:port), without Redis: redialed while down. */
  dial(address: string): void {
    if (this.statics.has(address)) return;
    this.statics.set(address, undefined);
    this.dialStatic(address);
  }

  /** The peers linked now, with their RTT and how many interest entries each holds here. */
  peers(): { id: string; rttMs: number; interestEntries: number; interestSeq: number; backlogBytes: number }[] {
    return [...this.linksById.values()].map((l) => ({
      id: l.peerId, rttMs: l.rttMs, interestEntries: l.interestEntries, interestSeq: l.interestSeq, backlogBytes: l.backlogBytes,
    }));
  }

  /** The live routers (this one included) with their edge counts, as Redis last told them;
   *  none while Redis is away (the counts would be stale). */
  members(): readonly RouterRecord[] {
    return this.redisDown ? [] : this.lastMembers;
  }

  /** The up links (/routez). */
  links(): PeerLink[] {
    return [...this.linksById.values()];
  }

  /** "up" once Redis answered the last heartbeat; "waiting" before it ever did; else "down". */
  get redisState(): "up" | "down" | "waiting" {
    if (this.registry === undefined) return "up"; // peers by dial() only: nothing to wait for
    return !this.redisSeen ? "waiting" : this.redisDown ? "down" : "up";
  }

  /** This router's own aggregated entries and their sequence. */
  interestStats(): { entries: number; seq: number } {
    return { entries: this.local.size, seq: this.local.seq };
  }

  /** Gauges for /metrics: links, interest entries, RTT and backlog per peer. */
  registerMetrics(register: Registry): void {
    const mesh = this;
    new Gauge({
      name: "meshbroker_mesh_peers", help: "Peer routers linked now.", registers: [register],
      collect() { this.set(mesh.linksById.size); },
    });
    new Gauge({
      name: "meshbroker_mesh_interest_entries", help: "Aggregated interest entries: this router's (peer=\"\") and each peer's.",
      labelNames: ["peer"], registers: [register],
      collect() {
        this.reset();
        this.set({ peer: "" }, mesh.local.size);
        for (const p of mesh.peers()) this.set({ peer: p.id }, p.interestEntries);
      },
    });
    new Gauge({
      name: "meshbroker_mesh_peer_rtt_seconds", help: "Round trip to each peer router, from the mesh pings.",
      labelNames: ["peer"], registers: [register],
      collect() {
        this.reset();
        for (const p of mesh.peers()) this.set({ peer: p.id }, p.rttMs / 1000);
      },
    });
    const calls = this.redisCalls;
    scrapedCounter(register, "meshbroker_redis_calls_total",
      "Redis calls of the mesh (heartbeats, interest summary writes) that succeeded.", () => calls.count);
    scrapedCounter(register, "meshbroker_redis_call_seconds_total",
      "Time spent in those Redis calls: divided by the calls, the mean latency.", () => calls.seconds);
    scrapedCounter(register, "meshbroker_redis_errors_total",
      "Redis calls of the mesh that failed (Redis down or refusing).", () => calls.errors);
    scrapedCounter(register, "meshbroker_mesh_barrier_timeouts_total",
      "Flush barriers released by their 2 s bound rather than every peer's pong.", () => mesh.barriers.timeouts);
    linkCounters(register, "mesh", "peer", () => mesh.links().map((l) => ({ name: l.peerId, link: l })));
    new Gauge({
      name: "meshbroker_mesh_backlog_bytes", help: "Bytes waiting for 'drain' on each peer link.",
      labelNames: ["peer"], registers: [register],
      collect() {
        this.reset();
        for (const p of mesh.peers()) this.set({ peer: p.id }, p.backlogBytes);
      },
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    clearTimeout(this.startupTimer);
    for (const l of [...this.linksById.values(), ...this.pending]) l.close("router stopping");
    this.barriers.releaseAll();
    if (this.registry) {
      if (this.registry.ready) await this.registry.deregister().catch(() => {});
      if (this.ownsRedis) this.registry.redis.disconnect();
    }
  }

  // ---- MeshHooks: the router's side ----

  interestChanged(account: string, subject: string, queue: string | undefined, delta: number): void {
    this.local.change(account, subject, queue, delta);
  }

  /** Interest changed so far leaves now, each peer is pinged after it: `done` once all answered. */
  barrier(done: () => void): void {
    if (this.linksById.size === 0) return done();
    this.local.flush();
    this.barriers.start(this.linksById.values(), done);
  }

  publishing(origin: Connection | undefined, retain: boolean, msgId: number): void {
    this.generation++;
    this.origin = origin;
    this.retain = retain;
    this.msgId = msgId;
  }

  // ---- LinkOwner: the links' side ----

  /** The credential this router sends and accepts; links already up stay (a reload: the next
   *  links use it). Reads a seed_file now, so a bad one throws before anything changed. */
  setAuthorization(auth: ClusterAuthorization | undefined): void {
    this.credential = credentialSource(auth);
    this.auth = auth;
  }

  hello(peerId: string): Draft<MeshHello> {
    const sentAtUs = nowUs();
    const lastForwardId = Math.max(this.lastForwardIds.get(peerId) ?? 0, this.linksById.get(peerId)?.lastForwardId ?? 0);
    return {
      routerId: this.id, version: MESH_VERSION, interestSeq: this.local.seq, sentAtUs, accountsVersion: this.router.accountsVersion,
      credential: this.credential?.(this.id, sentAtUs), lastForwardId,
    };
  }

  replay(link: PeerLink, afterId: number): void {
    let sent = 0;
    this.replaying?.(afterId, (account, subject, reply, msg, retain, msgId, picks) => {
      if (link.state !== "up") return;
      const missed = link.missed(account, subject, picks);
      if (missed === undefined) return;
      this.publishing(undefined, retain, msgId);
      // One Forward: a second queue group joins the first's (PeerLink.forward).
      if (missed.length === 0) link.forward(account, subject, reply, msg, undefined);
      for (const queue of missed) link.forward(account, subject, reply, msg, queue);
      sent++;
    });
    if (sent > 0) this.opts.log.warn(`mesh: sent router ${link.peerId} again ${sent} QoS 1/2 message(s) it missed while its link was down`);
  }

  authorize(hello: MeshHello): string | undefined {
    return checkCredential(this.auth, hello.credential, hello.routerId, hello.sentAtUs);
  }

  up(link: PeerLink): void {
    this.pending.delete(link);
    const old = this.linksById.get(link.peerId);
    this.linksById.set(link.peerId, link);
    if (old && old !== link) old.close("replaced by a newer stream");
    this.absent.delete(link.peerId);
    this.opts.log.info(`mesh: linked to router ${link.peerId} (${link.dialed ? "dialed" : "accepted"})`);
    this.router.compareAccounts(`router ${link.peerId}`, link.peerAccountsVersion);
  }

  down(link: PeerLink, reason: string): void {
    this.pending.delete(link);
    if (link.lastForwardId > (this.lastForwardIds.get(link.peerId) ?? 0)) this.lastForwardIds.set(link.peerId, link.lastForwardId);
    this.clients.get(link)?.close();
    this.clients.delete(link);
    for (const [address, l] of this.statics) if (l === link) this.statics.set(address, undefined);
    if (this.linksById.get(link.peerId) === link) {
      this.linksById.delete(link.peerId);
      this.router.forgetAccounts(`router ${link.peerId}`);
      if (!this.closed) this.opts.log.warn(`mesh: link to router ${link.peerId} down: ${reason}`);
      if (!this.closed) this.peerDown?.(link.peerId);
    } else if (!this.closed && reason.startsWith("refused")) {
      // Once per peer address (not per port: a refused peer redials from a new one), whatever
      // router id it claims.
      const from = link.remote.replace(/:\d+$/, "");
      const last = this.refusals.get(from);
      if (last === undefined || Date.now() - last > REFUSAL_LOG_MS) {
        if (this.refusals.size >= 1_000) this.refusals.clear();
        this.refusals.set(from, Date.now());
        this.opts.log.warn(`mesh: ${reason} (from ${link.remote})`);
      }
    }
  }

  snapshot(): InterestUpdateData {
    return this.local.snapshot();
  }

  interestFirst(): void {
    if (this.local.pending) this.local.flush();
  }

  warn(message: string): void {
    this.opts.log.warn(`mesh: ${message}`);
  }

  passed(waiter: BarrierWaiter): void {
    this.barriers.passed(waiter);
  }

  // ---- internals ----

  private accept(call: grpc.ServerDuplexStream<Buffer, Buffer>): void {
    if (this.closed) return void call.end();
    const warning = widenServerWindow(call);
    if (warning !== undefined) this.opts.log.warn(`mesh: ${warning}`);
    this.pending.add(new PeerLink(this, call as unknown as Duplex, false, "", call.getPeer()));
  }

  private dialPeer(peer: RouterRecord): void {
    const { stream, client } = dialLink(peer.address, this.opts.credentials ?? grpc.credentials.createInsecure());
    const link = new PeerLink(this, stream, true, peer.id, peer.address);
    this.pending.add(link);
    this.clients.set(link, client);
  }

  private dialStatic(address: string): void {
    const { stream, client } = dialLink(address, this.opts.credentials ?? grpc.credentials.createInsecure());
    const link = new PeerLink(this, stream, true, "", address);
    this.pending.add(link);
    this.clients.set(link, client);
    this.statics.set(address, link);
  }

  private broadcast(update: InterestUpdateData): void {
    for (const l of this.linksById.values()) l.sendInterest(update);
    const reg = this.registry;
    if (!reg || this.summaryStale) return;
    if (!reg.ready) {
      this.summaryStale = true;
      return;
    }
    const started = performance.now();
    reg.writeUpdate(update).then(() => {
      this.redisCalls.count++;
      this.redisCalls.seconds += (performance.now() - started) / 1000;
    }, () => {
      this.redisCalls.errors++;
      this.summaryStale = true;
    });
  }

  private async heartbeat(): Promise<void> {
    if (this.closed) return;
    for (const [address, link] of this.statics) if (!link) this.dialStatic(address);
    const reg = this.registry;
    if (!reg) return;
    let members: RouterRecord[];
    const started = performance.now();
    const attempted = reg.ready; // else no call is made: not a Redis error
    try {
      if (!attempted) throw new Error(`Redis is ${reg.redis.status}`);
      members = await reg.heartbeat(this.opts.edges?.() ?? 0);
      if (this.summaryStale) {
        this.summaryStale = false;
        await reg.writeSnapshot(this.local.snapshot());
      }
      this.redisCalls.count++;
      this.redisCalls.seconds += (performance.now() - started) / 1000;
    } catch (err) {
      if (attempted) this.redisCalls.errors++;
      this.summaryStale = true;
      if (!this.redisDown) {
        this.redisDown = true;
        this.opts.log.warn(this.redisSeen
          ? `mesh: Redis unavailable (${(err as Error).message}): routing continues on the last known interest`
          : `mesh: waiting for Redis (${(err as Error).message}) to register and find peers`);
      }
      return;
    }
    if (this.redisDown) {
      this.redisDown = false;
      this.absent.clear();
      this.countAbsenceFrom = Date.now() + REGISTRATION_TTL_MS;
      this.opts.log.info(this.redisSeen ? "mesh: Redis is back: registered again, interest summary rewritten" : "mesh: registered in Redis");
    }
    this.redisSeen = true;
    if (this.closed) return;
    this.lastMembers = members;
    this.reconcile(members);
  }

  /** Dials the live routers this one must dial; drops linked ones whose registration expired. */
  private reconcile(members: RouterRecord[]): void {
    const live = new Set<string>();
    for (const m of members) {
      if (m.id === this.id) continue;
      live.add(m.id);
      this.absent.delete(m.id);
      if (m.id > this.id && !this.linksById.has(m.id) && ![...this.pending].some((l) => l.peerId === m.id)) this.dialPeer(m);
    }
    if (Date.now() < this.countAbsenceFrom) return;
    for (const [id, link] of this.linksById) {
      if (live.has(id) || [...this.statics.values()].includes(link)) continue;
      const n = (this.absent.get(id) ?? 0) + 1;
      this.absent.set(id, n);
      if (n >= ABSENT_HEARTBEATS) link.close("its registration expired in Redis");
    }
  }
}
