// The edge's gRPC link: an EdgeEnd (wire/edge-end.ts) whose frames travel on one Attach stream
// to one router of the configured list. When the stream is lost the edge detaches (in-flight
// operations are lost, waiters released, publishes buffered up to a bound), then attaches to
// the next router in the list (wrapping round, so the same one when it is the only one back)
// and replays its accounts and every live subscription; clients stay connected throughout.
// The edge attaches to the first router of its list that answers and stays there until it loses
// it: the list's order is the operator's preference (routers reach each other's edges through
// the mesh, so edges may be homed on different routers). With DNS discovery the list is what the
// name resolved to last (discovery.ts), and the edge starts at a random place in it.
import * as grpc from "@grpc/grpc-js";
import type { ClusterAuthorization } from "../../common/config/options.js";
import type { Logger } from "../../common/log.js";
import { ATTACH_TIMEOUT_MS, type RouterLink } from "../link.js";
import { EdgeEnd } from "../wire/edge-end.js";
import { GO_AWAY_TIMEOUT_MS } from "../wire/frames.js";
import { credentialSource } from "./credential.js";
import type { RouterSource } from "./discovery.js";
import { ATTACH_PATH, LINK_OPTIONS, LINK_QUEUE_BYTES } from "./service.js";
import { Gauge, type Registry } from "prom-client";
import { scrapedCounter } from "../../common/metrics.js";
import { linkCounters } from "../link-metrics.js";
import { FrameWriter } from "./writer.js";

export interface GrpcLinkOptions {
  routers: RouterSource;
  authorization?: ClusterAuthorization;
  log: Logger;
  credentials?: grpc.ChannelCredentials;
}

export interface GrpcRouterLink extends RouterLink {
  /** The address of the router attached to, or undefined while detached. */
  attachedTo(): string | undefined;
  /** The router attached to (its id from HelloReply), or undefined while detached. */
  attachedRouter(): { id: string; address: string } | undefined;
  /** meshbroker_link_* on the edge's /metrics. */
  registerMetrics(register: Registry): void;
  close(): void;
}

const identity = (b: Buffer): Buffer => b;
/** While attached, a sync every this often keeps the link's RTT current (and cheap: one op). */
const RTT_PROBE_MS = 1_000;
const noop = (): void => {};
/** Wait before a new round of the list once every router failed, growing to the cap. */
const RETRY_BASE_MS = 100, RETRY_MAX_MS = 2_000;

export function createGrpcLink(opts: GrpcLinkOptions): GrpcRouterLink {
  const { routers, log } = opts;
  const end = new EdgeEnd((m) => log.warn(`router link: ${m}`), true);
  end.credential = credentialSource(opts.authorization);
  end.detach(); // until the first stream is up
  let next = -1; // the first router of the list that answers; the others are standbys
  let failedInRound = 0;
  let closed = false;
  let current: {
    address: string; client: grpc.Client; call: grpc.ClientDuplexStream<Buffer, Buffer>; attached: boolean; routerId: string;
  } | undefined;
  let lostAt: number | undefined;
  let reattaches = 0;
  let writer: FrameWriter | undefined;
  /** Stalls on the writers of earlier streams (metrics). */
  let stalls = 0;
  let retry: NodeJS.Timeout | undefined;
  /** The stream of a router that asked us to move: still read (deliveries in flight arrive),
   *  ended once the next router has our interest cluster-wide. */
  let leaving: { stream: NonNullable<typeof current>; timer: NodeJS.Timeout } | undefined;

  const drop = (stream: NonNullable<typeof current>) => {
    stream.call.removeAllListeners("data");
    stream.call.cancel();
    stream.client.close();
  };

  /** Half-closes the stream being left: its router drops our interest, sends what it still
   *  had for us, and ends the stream (then dropped). */
  const leave = () => {
    if (!leaving) return;
    const { stream, timer } = leaving;
    leaving = undefined;
    clearTimeout(timer);
    stream.call.end();
    const gone = setTimeout(() => drop(stream), GO_AWAY_TIMEOUT_MS).unref();
    stream.call.once("end", () => { clearTimeout(gone); drop(stream); });
  };

  /**
   * The router is stopping, or evens out edges: attach to router `to` (else the next of the
   * list), replay there, and leave this one only once the new router's sync passed (its
   * barrier: every router has our interest again), so messages keep arriving throughout. A
   * message may arrive twice meanwhile.
   */
  const move = (stream: NonNullable<typeof current>, reason: string, to: string) => {
    if (current !== stream || closed) return;
    const from = stream.routerId || stream.address;
    if (to !== "") {
      const i = routers.current().indexOf(to);
      if (i < 0) return log.notice(`router ${from} asks the edge to move to ${to} (${reason}), which is not in its list of routers: staying`);
      next = i;
    }
    log.notice(`router ${from} asks the edge to move (${reason}): attaching to ${to || "the next router"}`);
    end.out.flush(); // what this turn queued still goes to the router we leave: it routes it
    current = undefined;
    unplug();
    end.detach();
    if (leaving) leave();
    leaving = { stream, timer: setTimeout(leave, GO_AWAY_TIMEOUT_MS).unref() };
    lostAt = Date.now();
    failedInRound = 0;
    connect();
  };

  /** Nothing more goes to the current stream: producers stalled on its writer read again. */
  const unplug = () => {
    end.carrier = undefined;
    writer?.release();
  };

  const lose = (stream: typeof current, why: string) => {
    if (stream && leaving?.stream === stream) return leave();
    if (!stream || current !== stream) return;
    current = undefined;
    unplug();
    end.detach();
    drop(stream);
    if (closed) return;
    if (stream.attached) {
      lostAt = Date.now();
      failedInRound = 0;
      log.warn(`lost router ${stream.address}: ${why}; re-attaching`);
    } else {
      failedInRound++;
      log.warn(`cannot attach to router ${stream.address}: ${why}`);
    }
    retryLater();
  };

  /** Every router of the list failed in a row: wait a little before the next round. */
  const retryLater = () => {
    const n = Math.max(routers.current().length, 1);
    const delay = failedInRound >= n ? Math.min(RETRY_BASE_MS * 2 ** (failedInRound / n - 1), RETRY_MAX_MS) : 0;
    retry = setTimeout(connect, delay);
  };

  const connect = () => {
    retry = undefined;
    if (closed) return;
    const addresses = routers.current();
    if (addresses.length === 0) { // DNS has not answered yet
      failedInRound++;
      return retryLater();
    }
    if (next < 0) next = routers.randomStart ? Math.floor(Math.random() * addresses.length) : 0;
    const address = addresses[next % addresses.length];
    next = (next % addresses.length + 1) % addresses.length;
    const client = new grpc.Client(address, opts.credentials ?? grpc.credentials.createInsecure(), LINK_OPTIONS);
    const call = client.makeBidiStreamRequest(ATTACH_PATH, identity, identity);
    const stream = { address, client, call, attached: false, routerId: "" };
    current = stream;
    const timer = setTimeout(() => lose(stream, `no answer within ${ATTACH_TIMEOUT_MS} ms`), ATTACH_TIMEOUT_MS);
    stalls += writer?.stalls ?? 0;
    writer = new FrameWriter(call, (bytes) =>
      lose(stream, `router too slow: over ${LINK_QUEUE_BYTES} bytes queued (${bytes})`), end.out.done);
    end.onAttached = (reply) => {
      if (current !== stream) return;
      clearTimeout(timer);
      stream.attached = true;
      stream.routerId = reply.routerId;
      failedInRound = 0;
      const again = lostAt === undefined ? "" : ` (re-attached ${Date.now() - lostAt} ms after the loss)`;
      if (lostAt !== undefined) reattaches++;
      lostAt = undefined;
      log.notice(`attached to router ${reply.routerId || "?"} at ${address}${again}`);
      // Our replay went before this sync: once it passes, the router we leave may drop us.
      if (leaving) end.sync(leave);
    };
    end.onGoAway = (reason, to) => move(stream, reason, to);
    call.on("data", (bytes: Buffer) => end.receive(bytes));
    call.on("error", (err: grpc.ServiceError) => { clearTimeout(timer); lose(stream, (err.details || err.message).replace(/\.?\s*Resolution note:\s*$/, "")); });
    call.on("end", () => { clearTimeout(timer); lose(stream, "the router ended the stream"); });
    end.carrier = writer; // a FrameWriter: its stall() stops the edge's publishers (read-stall.ts)
    end.attach();
  };

  connect();
  const probe = setInterval(() => { if (current?.attached) end.sync(noop); }, RTT_PROBE_MS).unref();
  const attachedRouter = () => (current?.attached ? { id: current.routerId, address: current.address } : undefined);
  const closeEnd = end.close.bind(end);
  return Object.assign(end, {
    attachedTo: () => (current?.attached ? current.address : undefined),
    attachedRouter,
    registerMetrics(register: Registry) {
      const peer = () => attachedRouter()?.id ?? "";
      new Gauge({
        name: "meshbroker_link_attached", help: "1 while the edge is attached to a router (label: that router).",
        labelNames: ["peer"], registers: [register],
        collect() { this.reset(); this.set({ peer: peer() }, current?.attached ? 1 : 0); },
      });
      new Gauge({
        name: "meshbroker_link_rtt_seconds", help: "Round trip of the last sync through the router (with its barrier over its peers).",
        registers: [register], collect() { this.set(end.rttMs / 1000); },
      });
      new Gauge({
        name: "meshbroker_link_queue_bytes", help: "Bytes waiting for 'drain' towards the router.",
        labelNames: ["peer"], registers: [register],
        collect() { this.reset(); this.set({ peer: peer() }, current ? writer?.pending ?? 0 : 0); },
      });
      scrapedCounter(register, "meshbroker_link_stalls_total",
        "Times a publishing client stopped being read while the link to the router was congested.", () => stalls + (writer?.stalls ?? 0));
      scrapedCounter(register, "meshbroker_link_reattaches_total",
        "Times the edge attached again after losing (or moving from) its router.", () => reattaches);
      linkCounters(register, "link", "router", () => [{ name: peer(), link: {
        framesIn: end.framesIn, opsIn: end.opsIn, framesOut: end.out.framesSent, opsOut: end.out.opsSent,
      } }]);
    },
    close() {
      closed = true;
      clearInterval(probe);
      if (leaving) drop(leaving.stream);
      clearTimeout(retry);
      routers.close();
      lose(current, "closing");
      closeEnd();
    },
  });
}
