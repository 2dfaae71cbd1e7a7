// TLS for the cluster's gRPC links, from the usual tls {} blocks: `router { tls {} }` is the
// server side (verify: true asks every edge for a certificate signed by ca_file: mTLS), and
// `edge { tls {} }` the client side (ca_file to trust the routers, a certificate pair for mTLS).
import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import type { ClientTlsConfig, TlsConfig } from "../../common/config/options.js";

export function serverCredentials(cfg: TlsConfig | undefined): grpc.ServerCredentials {
  if (!cfg) return grpc.ServerCredentials.createInsecure();
  if (cfg.verify && !cfg.caFile) throw new Error("router { tls { verify: true } } needs ca_file to verify edges' certificates");
  return grpc.ServerCredentials.createSsl(
    cfg.caFile ? readFileSync(cfg.caFile) : null,
    [{ private_key: readFileSync(cfg.keyFile), cert_chain: readFileSync(cfg.certFile) }],
    cfg.verify,
  );
}

export function channelCredentials(cfg: ClientTlsConfig | undefined): grpc.ChannelCredentials {
  if (!cfg) return grpc.credentials.createInsecure();
  return grpc.credentials.createSsl(
    cfg.caFile ? readFileSync(cfg.caFile) : null,
    cfg.keyFile ? readFileSync(cfg.keyFile) : null,
    cfg.certFile ? readFileSync(cfg.certFile) : null,
    cfg.insecure ? { rejectUnauthorized: false, checkServerIdentity: () => undefined } : {},
  );
}
