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
import type { RouterLink } from "../link.js";
import { EdgeEnd } from "../wire/edge-end.js";
import { credentialSource } from "./credential.js";
import type { RouterSource } from "./discovery.js";
import { ATTACH_PATH, ATTACH_TIMEOUT_MS, LINK_OPTIONS, LINK_QUEUE_BYTES } from "./service.js";
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
  close(): void;
}

const identity = (b: Buffer): Buffer => b;
/** Wait before a new round of the list once every router failed, growing to the cap. */
const RETRY_BASE_MS = 100, RETRY_MAX_MS = 2_000;

export function createGrpcLink(opts: GrpcLinkOptions): GrpcRouterLink {
  const { routers, log } = opts;
  const end = new EdgeEnd((m) => log.warn(`router link: ${m}`));
  end.credential = credentialSource(opts.authorization);
  end.detach(); // until the first stream is up
  let next = -1; // the first router of the list that answers; the others are standbys
  let failedInRound = 0;
  let closed = false;
  let current: { address: string; client: grpc.Client; call: grpc.ClientDuplexStream<Buffer, Buffer>; attached: boolean } | undefined;
  let lostAt: number | undefined;
  let retry: NodeJS.Timeout | undefined;

  const lose = (stream: typeof current, why: string) => {
    if (!stream || current !== stream) return;
    current = undefined;
    end.sendTo = undefined;
    end.detach();
    stream.call.removeAllListeners("data");
    stream.call.cancel();
    stream.client.close();
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
    const stream = { address, client, call, attached: false };
    current = stream;
    const timer = setTimeout(() => lose(stream, `no answer within ${ATTACH_TIMEOUT_MS} ms`), ATTACH_TIMEOUT_MS);
    const writer = new FrameWriter(call, (bytes) =>
      lose(stream, `router too slow: over ${LINK_QUEUE_BYTES} bytes queued (${bytes})`));
    end.onAttached = (reply) => {
      if (current !== stream) return;
      clearTimeout(timer);
      stream.attached = true;
      failedInRound = 0;
      const again = lostAt === undefined ? "" : ` (re-attached ${Date.now() - lostAt} ms after the loss)`;
      lostAt = undefined;
      log.notice(`attached to router ${reply.routerId || "?"} at ${address}${again}`);
    };
    call.on("data", (bytes: Buffer) => end.receive(bytes));
    call.on("error", (err: grpc.ServiceError) => { clearTimeout(timer); lose(stream, (err.details || err.message).replace(/\.?\s*Resolution note:\s*$/, "")); });
    call.on("end", () => { clearTimeout(timer); lose(stream, "the router ended the stream"); });
    end.sendTo = (bytes) => writer.write(bytes);
    end.attach();
  };

  connect();
  const closeEnd = end.close.bind(end);
  return Object.assign(end, {
    attachedTo: () => (current?.attached ? current.address : undefined),
    close() {
      closed = true;
      clearTimeout(retry);
      routers.close();
      lose(current, "closing");
      closeEnd();
    },
  });
}
