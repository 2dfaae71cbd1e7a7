// `tls {}` blocks (nats-server parseTLS), for the client listener and every listener block.
// Files are checked at load time, relative to the working directory, as nats-server does.

import type { ClientTlsConfig, TlsConfig } from "../options.js";
import type { ConfigMap } from "../parser.js";
import type { Reader } from "../reader.js";

export const TLS_KEYS = new Set([
  "cert_file", "key_file", "ca_file", "insecure", "verify", "verify_and_map",
  "verify_cert_and_check_known_urls", "cipher_suites", "curve_preferences", "timeout",
  "connection_rate_limit", "pinned_certs",
]);

/** nats-server 2.9's cipher suite names (Go's crypto/tls) and curve names. */
const CIPHER_SUITES = new Set([
  "TLS_RSA_WITH_RC4_128_SHA", "TLS_RSA_WITH_3DES_EDE_CBC_SHA", "TLS_RSA_WITH_AES_128_CBC_SHA",
  "TLS_RSA_WITH_AES_128_CBC_SHA256", "TLS_RSA_WITH_AES_256_CBC_SHA", "TLS_RSA_WITH_AES_256_GCM_SHA384",
  "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
  "TLS_ECDHE_RSA_WITH_RC4_128_SHA", "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
  "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
  "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
  "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
  "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
  "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
]);
const CURVES = new Set(["X25519", "CurveP256", "CurveP384", "CurveP521"]);
const TLS_TIMEOUT_MS = 2000;

/** A `tls {}` block; `listener` names what it secures in warnings. */
export function readTls(r: Reader, m: ConfigMap, key: string, listener = "client listener"): TlsConfig {
  const tm = r.map(m, key);
  r.checkKeys(tm, TLS_KEYS, key);
  const t: Partial<TlsConfig> & { verify: boolean; verifyAndMap: boolean; timeoutMs: number } = {
    verify: false,
    verifyAndMap: false,
    timeoutMs: TLS_TIMEOUT_MS,
  };
  const files: { cert?: string; key?: string; ca?: string } = {}; // their keys in tm
  for (const k of Object.keys(tm)) {
    switch (k.toLowerCase()) {
      case "cert_file":
        t.certFile = r.str(tm, k);
        files.cert = k;
        break;
      case "key_file":
        t.keyFile = r.str(tm, k);
        files.key = k;
        break;
      case "ca_file":
        t.caFile = r.str(tm, k);
        files.ca = k;
        break;
      case "verify":
        t.verify ||= r.bool(tm, k);
        break;
      case "verify_and_map":
        // As nats-server: true turns verify on too; false leaves verify alone.
        t.verifyAndMap = r.bool(tm, k);
        t.verify ||= t.verifyAndMap;
        break;
      case "verify_cert_and_check_known_urls":
        if (r.bool(tm, k)) r.fail(tm, k, "verify_cert_and_check_known_urls not supported in this context");
        break;
      case "insecure":
        // Skips verification of a server's certificate: meaningless on a listener.
        r.bool(tm, k);
        r.warn(tm, k, `"${k}" has no effect on the ${listener}, ignored`);
        break;
      case "timeout":
        // 0 keeps the default.
        t.timeoutMs = r.secondsOrDuration(tm, k, "tls timeout") || TLS_TIMEOUT_MS;
        break;
      case "cipher_suites":
        t.ciphers = nonEmptyNames(r, tm, k, CIPHER_SUITES, "unrecognized cipher");
        break;
      case "curve_preferences":
        t.curvePreferences = nonEmptyNames(r, tm, k, CURVES, "unrecognized curve preference");
        break;
      case "pinned_certs": {
        const pins = r.strings(tm, k, "hex-encoded sha256 of DER encoded SubjectPublicKeyInfo").map((p) => p.toLowerCase());
        for (const p of pins) {
          if (!/^[0-9a-f]{64}$/.test(p)) {
            r.fail(tm, k, `error parsing tls config, 'pinned_certs' key ${p} does not look like hex-encoded sha256 of DER encoded SubjectPublicKeyInfo`);
          }
        }
        if (pins.length > 0) t.pinnedCerts = pins;
        break;
      }
      case "connection_rate_limit":
        r.int(tm, k);
        r.warn(tm, k, `"${k}" is not implemented yet, ignored`);
        break;
    }
  }
  // Then, as nats-server: the pair must be given, then readable, then the CA.
  if (t.certFile === undefined) r.fail(m, key, "missing 'cert_file' in TLS configuration");
  if (t.keyFile === undefined) r.fail(m, key, "missing 'key_file' in TLS configuration");
  r.readableFile(tm, files.cert!, "error parsing X509 certificate/key pair: ");
  r.readableFile(tm, files.key!, "error parsing X509 certificate/key pair: ");
  if (files.ca !== undefined) r.readableFile(tm, files.ca);
  return t as TlsConfig;
}

/** A non-empty list of names from a known set (cipher suites, curves). */
export function nonEmptyNames(r: Reader, m: ConfigMap, key: string, known: Set<string>, unknownReason: string): string[] {
  const names = r.strings(m, key, "names");
  if (names.length === 0) r.fail(m, key, `error parsing tls config, '${key}' cannot be empty`);
  for (const n of names) if (!known.has(n)) r.fail(m, key, `${unknownReason} ${n}`);
  return names;
}

const CLIENT_TLS_KEYS = new Set(["cert_file", "key_file", "ca_file", "insecure", "timeout"]);

/** A `tls {}` block of a link this process dials (edge → router): a certificate pair only for
 *  mTLS (both or neither), the CA the server's certificate is checked against. */
export function readClientTls(r: Reader, m: ConfigMap, key: string): ClientTlsConfig {
  const tm = r.map(m, key);
  r.checkKeys(tm, CLIENT_TLS_KEYS, key);
  const t: ClientTlsConfig = { insecure: false, timeoutMs: TLS_TIMEOUT_MS };
  for (const k of Object.keys(tm)) {
    switch (k.toLowerCase()) {
      case "cert_file":
        t.certFile = r.readableFile(tm, k, "error parsing X509 certificate/key pair: ");
        break;
      case "key_file":
        t.keyFile = r.readableFile(tm, k, "error parsing X509 certificate/key pair: ");
        break;
      case "ca_file":
        t.caFile = r.readableFile(tm, k);
        break;
      case "insecure":
        t.insecure = r.bool(tm, k);
        break;
      case "timeout":
        t.timeoutMs = r.secondsOrDuration(tm, k, "tls timeout") || TLS_TIMEOUT_MS;
        break;
    }
  }
  if ((t.certFile === undefined) !== (t.keyFile === undefined)) {
    r.fail(m, key, "a client certificate needs both 'cert_file' and 'key_file'");
  }
  return t;
}
