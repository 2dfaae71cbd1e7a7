// The cluster's edge role (`meshbroker edge`): the embedded broker's edge (listeners, auth,
// monitoring, reload, lame duck) on a gRPC link to the routers of `edge { routers: [...] }`.
import type { Options } from "./common/config/options.js";
import type { Logger } from "./common/log.js";
import { serveEdge, type EdgeBroker } from "./embedded.js";
import { DnsRouters, KubernetesRouters, staticRouters, type RouterSource } from "./router/grpc/discovery.js";
import { createGrpcLink } from "./router/grpc/edge-link.js";
import { channelCredentials } from "./router/grpc/tls.js";

export async function startEdgeRole(options: Options, log: Logger): Promise<EdgeBroker> {
  const cfg = options.edge;
  if (!cfg) throw new Error("the edge role needs an edge {} block (edge { routers: [\"host:7100\"] })");
  const d = cfg.discovery;
  let routers: RouterSource;
  if ("kubernetes" in d) {
    routers = await KubernetesRouters.start(d.kubernetes, log); // a failed list is logged and retried
  } else if ("dns" in d) {
    const dns = new DnsRouters(d.dns, d.refreshMs, log);
    await dns.resolve(); // a failure is logged; the link retries until the name resolves
    routers = dns;
  } else {
    if (d.routers.length === 0) throw new Error("the edge needs at least one router address");
    routers = staticRouters(d.routers);
  }
  const dialTls = channelCredentials(cfg.tls);
  const link = createGrpcLink({ routers, authorization: cfg.authorization, log, credentials: dialTls.credentials });
  try {
    const broker = await serveEdge(options, log, link);
    // A reload also reads edge { tls } files again (new router links use them); their paths
    // and the rest of edge {} are bound at start, as serveEdge's reload says.
    const reload = broker.reload;
    broker.reload = (next) => {
      const apply = dialTls.tls?.prepareReload();
      const changed = reload(next);
      apply?.();
      return changed;
    };
    return broker;
  } catch (err) {
    link.close();
    throw err;
  }
}
