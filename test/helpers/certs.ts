// A throwaway PKI for TLS tests, made with the `openssl` CLI in a temp dir: a CA, a server
// certificate for 127.0.0.1 / localhost, and client certificates with any subject and SAN
// e-mail. EC P-256 keys keep generation fast. `cleanup()` removes the directory.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
export const OPENSSL_BIN = process.env.OPENSSL_BIN ?? "openssl";

export interface CertPair {
  certFile: string;
  keyFile: string;
}

export interface ClientCertOptions {
  /** openssl -subj form, most significant RDN first: "/O=Acme/OU=eng/CN=alice". */
  subject: string;
  /** SAN e-mail address(es). */
  emails?: string[];
  /** Sign with this other CA instead of the PKI's own (an untrusted certificate). */
  ca?: CertPair;
}

export interface TestPki {
  dir: string;
  /** The CA certificate (PEM) clients and the server trust. */
  caFile: string;
  ca: CertPair;
  /** Server certificate with SAN IP:127.0.0.1 and DNS:localhost. */
  server: CertPair;
  /** A cluster member's certificate (a router: it serves edges and dials peer routers), for
   *  both server and client authentication, same SAN. */
  peer: CertPair;
  /** Another certificate like `peer` (new key and serial, same CA and SAN): a rotated one. */
  rotated(name: string): Promise<CertPair>;
  /** A client certificate signed by the CA (or `opts.ca`). */
  client(name: string, opts: ClientCertOptions): Promise<CertPair>;
  /** Another self-signed CA in the same directory (its certificates are not trusted). */
  otherCa(name: string): Promise<CertPair>;
  cleanup(): Promise<void>;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run(OPENSSL_BIN, args, { cwd });
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`openssl ${args.join(" ")} failed: ${e.stderr ?? e.message}`, { cause: err });
  }
}

const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

async function selfSignedCa(dir: string, name: string): Promise<CertPair> {
  const pair = { certFile: path.join(dir, `${name}.pem`), keyFile: path.join(dir, `${name}.key`) };
  await openssl([
    "req", "-x509", ...EC_KEY, "-keyout", pair.keyFile, "-out", pair.certFile, "-days", "2",
    "-subj", `/O=meshbroker tests/CN=${name}`,
    "-addext", "basicConstraints=critical,CA:TRUE",
    "-addext", "keyUsage=critical,keyCertSign,cRLSign",
  ], dir);
  return pair;
}

/** A key and a certificate signed by `ca`, with the given extensions (openssl extfile lines). */
async function signed(dir: string, name: string, subject: string, ca: CertPair, extensions: string[]): Promise<CertPair> {
  const pair = { certFile: path.join(dir, `${name}.pem`), keyFile: path.join(dir, `${name}.key`) };
  const csr = path.join(dir, `${name}.csr`);
  const ext = path.join(dir, `${name}.ext`);
  await openssl(["req", ...EC_KEY, "-keyout", pair.keyFile, "-out", csr, "-subj", subject], dir);
  await writeFile(ext, extensions.join("\n") + "\n");
  await openssl([
    "x509", "-req", "-in", csr, "-CA", ca.certFile, "-CAkey", ca.keyFile, "-set_serial", `0x${randomBytes(8).toString("hex")}`,
    "-out", pair.certFile, "-days", "2", "-extfile", ext,
  ], dir);
  return pair;
}

/** The client certificates the TLS tests share. */
export interface AcmeClients {
  /** subject CN=alice,OU=eng,O=Acme */
  alice: CertPair;
  /** SAN e-mail bob@acme.example */
  bob: CertPair;
  /** maps to no user */
  nobody: CertPair;
  /** alice's subject, signed by a CA the server does not trust */
  rogue: CertPair;
}

export async function acmeClients(pki: TestPki): Promise<AcmeClients> {
  return {
    alice: await pki.client("alice", { subject: "/O=Acme/OU=eng/CN=alice" }),
    bob: await pki.client("bob", { subject: "/O=Acme/CN=bob", emails: ["bob@acme.example"] }),
    nobody: await pki.client("nobody", { subject: "/O=Acme/CN=nobody", emails: ["nobody@acme.example"] }),
    rogue: await pki.client("rogue", { subject: "/O=Acme/OU=eng/CN=alice", ca: await pki.otherCa("rogue-ca") }),
  };
}

export async function createPki(): Promise<TestPki> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "meshbroker-pki-"));
  try {
    const ca = await selfSignedCa(dir, "ca");
    const server = await signed(dir, "server", "/CN=localhost", ca, [
      "basicConstraints=CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth",
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
    ]);
    const member = (name: string) => signed(dir, name, "/CN=meshbroker-router", ca, [
      "basicConstraints=CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth,clientAuth",
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
    ]);
    const peer = await member("peer");
    const names = new Set<string>(["ca", "server", "peer"]);
    const unique = (name: string) => {
      if (names.has(name)) throw new Error(`certificate name ${name} already used`);
      names.add(name);
    };
    return {
      dir,
      caFile: ca.certFile,
      ca,
      server,
      peer,
      async rotated(name) {
        unique(name);
        return member(name);
      },
      async client(name, opts) {
        unique(name);
        const ext = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature", "extendedKeyUsage=clientAuth"];
        if (opts.emails && opts.emails.length > 0) ext.push(`subjectAltName=${opts.emails.map((e) => `email:${e}`).join(",")}`);
        return signed(dir, name, opts.subject, opts.ca ?? ca, ext);
      },
      async otherCa(name) {
        unique(name);
        return selfSignedCa(dir, name);
      },
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
