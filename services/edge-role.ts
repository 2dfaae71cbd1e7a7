// The cluster's edge role (`meshbroker edge`): the embedded broker's edge (listeners, auth,
// monitoring, reload, lame duck) on a gRPC link to the routers of `edge { routers: [...] }`.
import type { Options } from "./common/config/options.js";
import type { Logger } from "./common/log.js";
import { serveEdge, type EdgeBroker } from "./embedded.js";
import { createGrpcLink } from "./router/grpc/edge-link.js";
import { channelCredentials } from "./router/grpc/tls.js";

export async function startEdgeRole(options: Options, log: Logger): Promise<EdgeBroker> {
  const cfg = options.edge;
  if (!cfg) throw new Error("the edge role needs an edge {} block (edge { routers: [\"host:7100\"] })");
  if (!("routers" in cfg.discovery)) {
    throw new Error("edge discovery by DNS or Kubernetes is not available yet: list the routers (edge { routers: [...] })");
  }
  const link = createGrpcLink({
    routers: cfg.discovery.routers, authorization: cfg.authorization, log, credentials: channelCredentials(cfg.tls),
  });
  try {
    return await serveEdge(options, log, link);
  } catch (err) {
    link.close();
    throw err;
  }
}
