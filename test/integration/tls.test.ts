// TLS on the client listener with real clients and a throwaway PKI (test/helpers/certs.ts):
// INFO before the handshake, server verification by the client, `verify` (client certificates
// required), `verify_and_map` (the certificate's e-mail SAN or subject DN names the user, whose
// permissions then apply). Each scenario also runs against nats-server 2.9.10 with the same config.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StringCodec, type ConnectionOptions, type NatsConnection } from "nats";
import { clusterTopologies } from "../helpers/broker.js";
import { acmeClients, createPki, type CertPair, type TestPki } from "../helpers/certs.js";
import { natsTargets } from "../helpers/nats-server.js";
import { closedWithin, rawConnect } from "../helpers/raw.js";
import { take, nextPermissionError, cleanupAfterEach } from "../helpers/wait.js";
import { natsClient, natsRefusal } from "../helpers/clients.js";

const sc = StringCodec();
const INFO_LINE = /^INFO (\{.*\}) ?\r\n/;

let pki: TestPki;
let alice: CertPair, bob: CertPair, nobody: CertPair, rogue: CertPair; // see AcmeClients

beforeAll(async () => {
  pki = await createPki();
  ({ alice, bob, nobody, rogue } = await acmeClients(pki));
}, 30_000);

afterAll(async () => {
  await pki?.cleanup();
});

const cleanups = cleanupAfterEach();

// One cluster per config for the file: each test's clients are its own and closed after it.
const targets = natsTargets(clusterTopologies, { shared: true });

const tlsBlock = (extra = "") => `tls {
  cert_file: "${pki.server.certFile}"
  key_file: "${pki.server.keyFile}"
  ca_file: "${pki.caFile}"
  timeout: 2
  ${extra}
}`;

const MAPPED_USERS = `authorization { users: [
  { user: "CN=alice,OU=eng,O=Acme", permissions: { publish: "alice.>", subscribe: "alice.>" } }
  { user: "bob@acme.example", permissions: { publish: "bob.>", subscribe: "bob.>" } }
] }`;

/** nats.js TLS options: trust the test CA, present `cert` if given. */
function tls(cert?: CertPair): ConnectionOptions["tls"] {
  return cert ? { caFile: pki.caFile, certFile: cert.certFile, keyFile: cert.keyFile } : { caFile: pki.caFile };
}

async function open(port: number, opts: Partial<ConnectionOptions>): Promise<NatsConnection> {
  return natsClient(cleanups, port, opts);
}

async function refused(port: number, opts: Partial<ConnectionOptions>): Promise<{ code?: string; message: string }> {
  return natsRefusal(port, opts);
}

/** The INFO a plain TCP client gets before any TLS handshake. */
async function plainInfo(port: number): Promise<Record<string, unknown>> {
  const c = await rawConnect(port);
  try {
    const m = await c.expect(INFO_LINE);
    return JSON.parse(m[1]) as Record<string, unknown>;
  } finally {
    await c.close();
  }
}


async function roundTrip(nc: NatsConnection, subject: string): Promise<void> {
  const sub = nc.subscribe(subject, { max: 1 });
  nc.publish(subject, sc.encode("ping"));
  expect(await take(sub, 1)).toEqual([`${subject}:ping`]);
}


describe.each(targets)("TLS: $name", (target) => {
  async function server(config: string) {
    const s = await target.start(config);
    cleanups.push(() => s.stop());
    return s;
  }

  describe("server certificate only", () => {
    it("INFO, sent before the handshake, says tls_required", async () => {
      const s = await server(tlsBlock());
      const info = await plainInfo(s.port);
      expect(info.tls_required).toBe(true);
      expect(info.tls_verify).toBeUndefined();
    });

    it("a client trusting the CA connects over TLS", async () => {
      const s = await server(tlsBlock());
      const nc = await open(s.port, { tls: tls() });
      await roundTrip(nc, "secure.hello");
    });

    it("a TLS client that reads everything stays open past write_deadline (the deadline is for writes the client does not take)", async () => {
      const s = await server(`write_deadline: "300ms"\n${tlsBlock()}`);
      const nc = await open(s.port, { tls: tls(), reconnect: false });
      let closed = false;
      void nc.closed().then(() => { closed = true; });
      await roundTrip(nc, "secure.first");
      // Three deadlines after a write the client took at once.
      await new Promise((r) => setTimeout(r, 1_000));
      expect(closed).toBe(false);
      await roundTrip(nc, "secure.second");
    });

    it("a client that sends plain text instead of a TLS handshake is closed without a reply", async () => {
      const s = await server(tlsBlock());
      const c = await rawConnect(s.port);
      cleanups.push(() => c.close());
      await c.expect(INFO_LINE);
      await c.send(`CONNECT {"verbose":false}\r\nPING\r\n`);
      await closedWithin(c, 3_000);
      expect(c.received().replace(INFO_LINE, "")).toBe("");
    });

    it("a client that starts no handshake is closed after the TLS timeout", async () => {
      const s = await server(tlsBlock().replace("timeout: 2", "timeout: 0.5"));
      const c = await rawConnect(s.port);
      cleanups.push(() => c.close());
      await c.expect(INFO_LINE);
      const t0 = Date.now();
      await closedWithin(c, 3_000);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(400);
      expect(c.received().replace(INFO_LINE, "")).toBe("");
    });

    it("a client that does not trust the server's CA refuses the server", async () => {
      const s = await server(tlsBlock());
      const err = await refused(s.port, { tls: {} });
      expect(err.message).toMatch(/certificate/i);
    });
  });

  describe("verify: true", () => {
    it("INFO says tls_verify; a client with a certificate from the CA connects", async () => {
      const s = await server(tlsBlock("verify: true"));
      const info = await plainInfo(s.port);
      expect(info).toMatchObject({ tls_required: true, tls_verify: true });
      await roundTrip(await open(s.port, { tls: tls(alice) }), "verified.hello");
    });

    it("refuses a client without a certificate", async () => {
      const s = await server(tlsBlock("verify: true"));
      await refused(s.port, { tls: tls() });
    });

    it("refuses a certificate from a CA it does not trust", async () => {
      const s = await server(tlsBlock("verify: true"));
      await refused(s.port, { tls: tls(rogue) });
    });
  });

  describe("verify_and_map: true", () => {
    const config = () => `${tlsBlock("verify_and_map: true")}\n${MAPPED_USERS}`;

    it("maps the subject DN (RFC 2253) to a user whose permissions then apply", async () => {
      const s = await server(config());
      const nc = await open(s.port, { tls: tls(alice) });
      await roundTrip(nc, "alice.inbox");
      const violation = nextPermissionError(nc);
      nc.publish("bob.inbox", sc.encode("not mine"));
      expect(await violation).toMatchObject({ operation: "publish", subject: "bob.inbox" });
      await roundTrip(nc, "alice.still-open");
    });

    it("maps the e-mail SAN to a user whose permissions then apply", async () => {
      const s = await server(config());
      const nc = await open(s.port, { tls: tls(bob) });
      await roundTrip(nc, "bob.inbox");
      const violation = nextPermissionError(nc);
      nc.publish("alice.inbox", sc.encode("not mine"));
      expect(await violation).toMatchObject({ operation: "publish", subject: "alice.inbox" });
    });

    it("the mapped users are kept apart by their permissions", async () => {
      const s = await server(config());
      const a = await open(s.port, { tls: tls(alice) });
      const b = await open(s.port, { tls: tls(bob) });
      const inA = a.subscribe("alice.>");
      await a.flush();
      const violation = nextPermissionError(b);
      b.publish("alice.inbox", sc.encode("from bob"));
      await violation;
      a.publish("alice.self", sc.encode("own"));
      expect(await take(inA, 1)).toEqual(["alice.self:own"]);
    });

    it("refuses a certificate that maps to no user", async () => {
      const s = await server(config());
      const err = await refused(s.port, { tls: tls(nobody) });
      expect(err.code).toBe("AUTHORIZATION_VIOLATION");
    });

    it("refuses a certificate from an untrusted CA even though its subject names a user", async () => {
      const s = await server(config());
      await refused(s.port, { tls: tls(rogue) });
    });

    it("refuses a client without a certificate, and user/password does not replace it", async () => {
      const s = await server(config());
      await refused(s.port, { tls: tls() });
      await refused(s.port, { tls: tls(nobody), user: "CN=alice,OU=eng,O=Acme", pass: "" });
    });
  });
});
