// The router's gRPC server: meshbroker.v1.EdgeLink/Attach, one stream per edge. Each stream is a
// RouterEnd (wire/router-end.ts) driving the routing core, with this carrier around it: Hello
// authentication, one stream per edge id, bounded writes, and the edge's interest dropped when
// its stream ends (keepalive notices a dead edge within 2 s). Built here, bound by the caller,
// so other services (the router mesh) can be added to the same server.
import * as grpc from "@grpc/grpc-js";
import { hostPort } from "../../common/address.js";
import type { ClusterAuthorization } from "../../common/config/options.js";
import type { Logger } from "../../common/log.js";
import { RouterEnd, type RoutingCore } from "../wire/router-end.js";
import type { Hello } from "../wire/frames.js";
import type { Cluster, Redis } from "ioredis";
import { checkCredential } from "./credential.js";
import { edgeLoadDirectory, edgeUrlDirectory } from "./edge-urls.js";
import { EDGE_LINK_SERVICE, LINK_OPTIONS, LINK_QUEUE_BYTES } from "./service.js";
import { ATTACH_TIMEOUT_MS } from "../link.js";
import type { LinkCounts } from "../link-metrics.js";
import { widenServerWindow } from "./window.js";
import { FrameWriter } from "./writer.js";

export interface RouterServerDeps {
  router: RoutingCore;
  log: Logger;
  /** The router's name in HelloReply and logs. */
  routerId: string;
  authorization?: ClusterAuthorization;
  /** The bound on frames waiting for a slow edge (LINK_QUEUE_BYTES by default). */
  queueBytes?: number;
  /** Where the cluster's edge client URLs are shared (edge-urls.ts); without it, only this
   *  router's edges are known to each other. */
  redis?: Redis | Cluster;
}

/** One attached edge, for /routez and metrics. */
export interface EdgeLinkInfo extends LinkCounts {
  id: string;
  /** The edge's address as the gRPC server sees it. */
  peer: string;
  /** When it attached (ms). */
  since: number;
  subscriptions: number;
  /** Bytes waiting for 'drain' towards the edge. */
  queueBytes: number;
}

export interface RouterServer {
  readonly server: grpc.Server;
  /** Edge ids with a live stream, in the order they attached. */
  edges(): string[];
  /** Asks edge `edgeId` to move to the router at `address` (evening out edges, spread.ts). */
  moveEdge(edgeId: string, address: string): void;
  /** The attached edges with their link's counters. */
  edgeLinks(): EdgeLinkInfo[];
  /** Binds host:port (0 = any free port); resolves with the bound port. */
  bind(host: string, port: number, credentials?: grpc.ServerCredentials): Promise<number>;
  /**
   * Asks every attached edge to move to another router and refuses new attaches; resolves once
   * every edge has left, or after `timeoutMs`.
   */
  moveEdges(timeoutMs: number): Promise<void>;
  /** The credential new attaches are checked against (a reload); attached edges stay. */
  setAuthorization(auth: ClusterAuthorization | undefined): void;
  /** Ends every stream and stops the server. */
  close(): Promise<void>;
}

type Duplex = grpc.ServerDuplexStream<Buffer, Buffer>;

export function createRouterServer(deps: RouterServerDeps): RouterServer {
  const { router, log, routerId, queueBytes = LINK_QUEUE_BYTES } = deps;
  let authorization = deps.authorization;
  const server = new grpc.Server(LINK_OPTIONS);
  const attached = new Map<string, { end: RouterEnd; call: Duplex; peer: string; since: number; writer: FrameWriter; helloAtUs: number }>();
  const streams = new Map<Duplex, RouterEnd>();
  const urls = edgeUrlDirectory({
    routerId, redis: deps.redis,
    push: (edges) => { for (const { end } of attached.values()) end.sendClusterUrls(edges); },
  });
  const load = edgeLoadDirectory({
    routerId, redis: deps.redis,
    push: (edges) => { for (const { end } of attached.values()) end.sendClusterLoad(edges); },
  });
  /** A Hello the edge sent before the one of its attached stream: read late (this router stalled
   *  or its sockets were read in another order), from a stream the edge has given up already.
   *  Accepted, it would end the edge's live stream and send it round again. */
  const olderThanAttached = (hello: Hello): string | undefined => {
    const current = attached.get(hello.edgeId);
    const at = Number(hello.sentAtUs ?? 0);
    return current && at > 0 && at < current.helloAtUs ? "an older stream of the edge than the one attached" : undefined;
  };
  /** Set by moveEdges: new attaches are refused, and `left` runs when the last edge is gone. */
  let moving: { left: () => void } | undefined;

  /** Ends a stream with a status (OK: a plain end) and forgets it. */
  const finish = (call: Duplex, end: RouterEnd, code = grpc.status.OK, details = "", left = false) => {
    if (!streams.delete(call)) return;
    end.close(left);
    const edge = end.edge;
    if (edge !== "" && attached.get(edge)?.call === call) {
      attached.delete(edge);
      urls.set(edge, undefined);
      load.set(edge, undefined);
      log.notice(`edge ${edge} detached${details ? `: ${details}` : ""}`);
      if (moving && attached.size === 0) moving.left();
    }
    if (code === grpc.status.OK) call.end();
    else call.emit("error", { code, details });
  };

  const attach = (call: Duplex) => {
    const peer = call.getPeer();
    log.debug(`edge link stream opened from ${peer}`);
    if (moving) return void call.emit("error", { code: grpc.status.UNAVAILABLE, details: "router stopping" });
    const warning = widenServerWindow(call);
    if (warning !== undefined) log.warn(`edge link ${peer}: ${warning}`);
    const end: RouterEnd = new RouterEnd(router, (m) => log.warn(`edge link ${peer}: ${m}`), {
      routerId,
      authenticate: (hello) => checkCredential(authorization, hello.credential, hello.edgeId, hello.sentAtUs) ?? olderThanAttached(hello),
      refused: (reason) => {
        log.error(`refused an attach from ${peer} (edge id "${end.edge}"): ${reason}`);
        finish(call, end, grpc.status.UNAUTHENTICATED, reason);
      },
      accepted: (edgeId, helloAtUs) => {
        clearTimeout(helloTimer);
        const previous = attached.get(edgeId);
        // A re-attach of the same edge wins over a stream not yet known dead.
        if (previous) finish(previous.call, previous.end, grpc.status.ABORTED, "replaced by a newer stream of the same edge");
        attached.set(edgeId, { end, call, peer, since: Date.now(), writer, helloAtUs });
        log.notice(`edge ${edgeId} attached from ${peer}`);
      },
      urls: (edgeId, list) => {
        urls.set(edgeId, list && { nats: [...list.nats], websocket: [...list.websocket] });
        end.sendClusterUrls(urls.current()); // a newcomer gets the set even when it did not change
      },
      clients: (edgeId, count) => load.set(edgeId, { clients: count }),
    }, true); // the FrameWriter below gives frames back
    const writer = new FrameWriter(call, (bytes) =>
      finish(call, end, grpc.status.RESOURCE_EXHAUSTED, `edge too slow: over ${queueBytes} bytes queued (${bytes})`), end.frameDone, queueBytes);
    end.carrier = writer;
    streams.set(call, end);
    // A peer that says nothing holds no stream.
    const helloTimer = setTimeout(() => {
      if (end.edge !== "" || !streams.has(call)) return;
      log.error(`refused an attach from ${peer}: no Hello within ${ATTACH_TIMEOUT_MS} ms`);
      finish(call, end, grpc.status.UNAUTHENTICATED, "no Hello");
    }, ATTACH_TIMEOUT_MS);
    call.once("close", () => clearTimeout(helloTimer));
    call.on("data", (bytes: Buffer) => end.receive(bytes));
    call.on("end", () => finish(call, end, grpc.status.OK, "", true)); // the edge ended it
    call.on("error", (err: Error) => finish(call, end, grpc.status.CANCELLED, err.message));
    call.on("cancelled", () => finish(call, end, grpc.status.CANCELLED, "cancelled (the edge went away)"));
    call.on("close", () => finish(call, end, grpc.status.CANCELLED, "stream closed"));
  };

  server.addService(EDGE_LINK_SERVICE, { Attach: attach });

  return {
    server,
    edges: () => [...attached.keys()],
    moveEdge(edgeId, address) {
      attached.get(edgeId)?.end.goAway("evening out edges over the routers", address);
    },
    edgeLinks: () => [...attached].map(([id, { end, peer, since, writer }]) => ({
      id, peer, since, subscriptions: end.subscriptions, queueBytes: writer.pending,
      framesIn: end.framesIn, opsIn: end.opsIn, framesOut: end.framesOut, opsOut: end.opsOut,
    })),
    bind(host, port, credentials = grpc.ServerCredentials.createInsecure()) {
      return new Promise((resolve, reject) => {
        server.bindAsync(hostPort(host, port), credentials, (err, bound) => (err ? reject(err) : resolve(bound)));
      });
    },
    setAuthorization(auth) {
      authorization = auth;
    },
    moveEdges(timeoutMs) {
      return new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          if (attached.size > 0) log.warn(`${attached.size} edges did not move within ${timeoutMs} ms: their streams end now`);
          resolve();
        }, timeoutMs);
        moving = { left: () => { clearTimeout(timer); resolve(); } };
        if (attached.size === 0) return moving.left();
        log.notice(`asking ${attached.size} edges to move to other routers`);
        for (const { end } of attached.values()) end.goAway("router stopping");
      });
    },
    close() {
      urls.close();
      load.close();
      for (const [call, end] of [...streams]) finish(call, end);
      // Edges keep their HTTP/2 sessions open to re-attach: give them a moment, then cut them.
      return new Promise((resolve) => {
        const force = setTimeout(() => server.forceShutdown(), 1_000);
        server.tryShutdown(() => { clearTimeout(force); resolve(); });
      });
    },
  };
}
