// TLS for client listeners: the secure context from a `tls {}` block, and the verified client
// certificate as the auth pipeline sees it.
import { readFileSync } from "node:fs";
import type net from "node:net";
import tls from "node:tls";
import type { TlsConfig } from "../common/config/options.js";
import { tlsPeerFromCertificate, type TlsPeer } from "./auth/index.js";

/** Options for a TLS server (tls, https) of a listener with this config; reads the files. */
export function serverOptions(cfg: TlsConfig): tls.TlsOptions {
  const verify = cfg.verify || cfg.verifyAndMap;
  return {
    cert: readFileSync(cfg.certFile),
    key: readFileSync(cfg.keyFile),
    ca: cfg.caFile ? readFileSync(cfg.caFile) : undefined,
    requestCert: verify,
    rejectUnauthorized: verify,
    handshakeTimeout: cfg.timeoutMs,
  };
}

/** A listener's tls {} files read again for a reload (throws, changing nothing, when one is
 *  missing or unusable); the function returned gives new connections the new certificates. */
export function prepareTlsReload(server: unknown, cfg: TlsConfig | undefined): (() => void) | undefined {
  if (!cfg || !(server instanceof tls.Server)) return undefined;
  const options = serverOptions(cfg);
  tls.createSecureContext(options);
  return () => server.setSecureContext(options);
}

export interface VerifiedPeer {
  peer: TlsPeer;
  /** SHA-256 fingerprint, lower-case hex without separators (the form of nats-server pinned_certs). */
  fingerprint: string;
}

/** The client certificate of a finished handshake, or undefined when the client sent none. */
export function peerOf(socket: tls.TLSSocket): VerifiedPeer | undefined {
  const cert = socket.getPeerX509Certificate();
  if (!cert) return undefined;
  return { peer: tlsPeerFromCertificate(cert), fingerprint: cert.fingerprint256.replace(/:/g, "").toLowerCase() };
}

/** The plain socket a TLS socket runs over (Node's TLSSocket keeps it as `_parent`), or the
 *  socket itself when it is plain. */
export function plainOf(socket: net.Socket): net.Socket {
  return (socket as net.Socket & { _parent?: net.Socket | null })._parent ?? socket;
}
