// TLS for the cluster's gRPC links, from the usual tls {} blocks: `router { tls {} }` is the
// server side (verify: true asks every edge for a certificate signed by ca_file: mTLS), and
// `edge { tls {} }` the client side (ca_file to trust the routers, a certificate pair for mTLS).
// A SIGHUP reads the files again (a rotated certificate under the same path, as cert-manager
// writes it): new links use them, links up keep theirs.
import { readFileSync } from "node:fs";
import { createSecureContext, type SecureContextOptions } from "node:tls";
import * as grpc from "@grpc/grpc-js";
import type { ClientTlsConfig, TlsConfig } from "../../common/config/options.js";

/** Credentials whose files a reload reads again. prepareReload() reads and checks them (throws,
 *  changing nothing, when a file is missing or not a key/certificate); the function it returns
 *  puts them in use. */
export interface ReloadableTls {
  prepareReload(): () => void;
}

/** A listener's credentials; grpc-js sets the listener's secure context on each update. */
class ServerTls extends grpc.ServerCredentials implements ReloadableTls {
  constructor(private readonly cfg: TlsConfig) {
    super({ requestCert: cfg.verify }, readServerFiles(cfg));
  }

  prepareReload(): () => void {
    const files = readServerFiles(this.cfg);
    return () => this.updateSecureContextOptions(files);
  }

  _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}

function readServerFiles(cfg: TlsConfig): SecureContextOptions {
  const files = {
    ca: cfg.caFile ? readFileSync(cfg.caFile) : undefined,
    cert: readFileSync(cfg.certFile),
    key: readFileSync(cfg.keyFile),
  };
  // grpc-js drops every new connection after an update it cannot use: check first.
  createSecureContext(files);
  return files;
}

export function serverCredentials(cfg: TlsConfig | undefined): grpc.ServerCredentials & Partial<ReloadableTls> {
  if (!cfg) return grpc.ServerCredentials.createInsecure();
  if (cfg.verify && !cfg.caFile) throw new Error("router { tls { verify: true } } needs ca_file to verify edges' certificates");
  return new ServerTls(cfg);
}

type CaListener = (update: { caCertificate: Buffer } | null) => void;
type IdentityListener = (update: { certificate: Buffer; privateKey: Buffer } | null) => void;

/** The files of a dialling side, as grpc-js's certificate provider: every new connection of a
 *  channel takes the latest. */
class CertificateFiles implements ReloadableTls {
  private ca: { caCertificate: Buffer };
  private identity: { certificate: Buffer; privateKey: Buffer } | null;
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();

  constructor(private readonly cfg: ClientTlsConfig) {
    ({ ca: this.ca, identity: this.identity } = this.read());
  }

  private read(): { ca: { caCertificate: Buffer }; identity: { certificate: Buffer; privateKey: Buffer } | null } {
    const { caFile, certFile, keyFile } = this.cfg;
    // Without ca_file, Node's default roots (an empty update is "none given", not "failed").
    const ca = { caCertificate: caFile ? readFileSync(caFile) : (undefined as unknown as Buffer) };
    const identity = certFile && keyFile ? { certificate: readFileSync(certFile), privateKey: readFileSync(keyFile) } : null;
    createSecureContext({ ca: ca.caCertificate, cert: identity?.certificate, key: identity?.privateKey });
    return { ca, identity };
  }

  prepareReload(): () => void {
    const next = this.read();
    return () => {
      ({ ca: this.ca, identity: this.identity } = next);
      for (const l of this.caListeners) l(this.ca);
      for (const l of this.identityListeners) l(this.identity);
    };
  }

  hasIdentity(): boolean {
    return this.identity !== null;
  }

  addCaCertificateListener(l: CaListener): void {
    this.caListeners.add(l);
    l(this.ca);
  }
  removeCaCertificateListener(l: CaListener): void {
    this.caListeners.delete(l);
  }
  addIdentityCertificateListener(l: IdentityListener): void {
    this.identityListeners.add(l);
    l(this.identity);
  }
  removeIdentityCertificateListener(l: IdentityListener): void {
    this.identityListeners.delete(l);
  }
}

export function channelCredentials(cfg: ClientTlsConfig | undefined): { credentials: grpc.ChannelCredentials; tls?: ReloadableTls } {
  if (!cfg) return { credentials: grpc.credentials.createInsecure() };
  const files = new CertificateFiles(cfg);
  const credentials = grpc.experimental.createCertificateProviderChannelCredentials(
    files, files.hasIdentity() ? files : null,
    cfg.insecure ? { rejectUnauthorized: false, checkServerIdentity: () => undefined } : {},
  );
  return { credentials, tls: files };
}
