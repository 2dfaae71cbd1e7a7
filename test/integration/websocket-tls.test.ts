// wss: the websocket block's `tls {}` with a throwaway CA (test/helpers/certs.ts, openssl).
// Without `tls` and without `no_tls` the config is refused ("websocket requires TLS
// configuration"), as nats-server refuses to start. nats.ws over the `ws` library (its `ca`,
// `cert`, `key` options) talks to nats.js over TCP; `verify` requires a client certificate; and
// `verify_and_map` maps the certificate (SAN e-mail or subject DN) to a configured user whose
// permissions then apply. Each scenario runs against meshbroker and nats-server 2.9.10.
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket, { type ClientOptions } from "ws";
import { connect as connectTcp, StringCodec, type NatsConnection as TcpConnection } from "nats";
import { type ConnectionOptions as WsOptions, type NatsConnection as WsConnection } from "nats.ws";
import { loadConfigText } from "../../services/common/config/index.js";
import { topologies } from "../helpers/broker.js";
import { acmeClients, createPki, type CertPair, type TestPki } from "../helpers/certs.js";
import { startNatsServer } from "../helpers/nats-server.js";
import { freePort } from "../helpers/process.js";
import { closedWithin, rawConnect } from "../helpers/raw.js";
import {
  afterInfo, closeWithin, httpExchange, INFO_LINE, infoOf, upgradeRequest, wsFactory, wsOpen, wsTargets,
  serverFor, type WsPeer, type WsServer,
} from "../helpers/ws-raw.js";
import { cleanupAfterEach, take } from "../helpers/wait.js";
import { natsClient, wsClient, wsRefusal } from "../helpers/clients.js";

Object.assign(globalThis, { WebSocket });

const sc = StringCodec();

let pki: TestPki;
let ca: Buffer;
let alice: CertPair, bob: CertPair, nobody: CertPair, rogue: CertPair; // see AcmeClients

beforeAll(async () => {
  pki = await createPki();
  ca = readFileSync(pki.caFile);
  ({ alice, bob, nobody, rogue } = await acmeClients(pki));
}, 30_000);

afterAll(async () => {
  await pki?.cleanup();
});

const cleanups = cleanupAfterEach();

const tlsBlock = (extra = "") => `tls {
  cert_file: "${pki.server.certFile}"
  key_file: "${pki.server.keyFile}"
  ca_file: "${pki.caFile}"
  ${extra}
}`;

/** ws options: trust the test CA; present `cert` if given. */
function wsTls(cert?: CertPair): ClientOptions {
  return cert ? { ca, cert: readFileSync(cert.certFile), key: readFileSync(cert.keyFile) } : { ca };
}

async function wss(server: WsServer, tlsOpts: ClientOptions, opts: WsOptions = {}): Promise<WsConnection> {
  return wsClient(cleanups, `wss://127.0.0.1:${server.wsPort}`, { ...opts, ...wsFactory(tlsOpts) });
}

async function wssRefused(server: WsServer, tlsOpts: ClientOptions, opts: WsOptions = {}): Promise<{ code?: string; message: string }> {
  return wsRefusal(`wss://127.0.0.1:${server.wsPort}`, { ...opts, ...wsFactory(tlsOpts) });
}

async function tcp(server: WsServer, opts: Parameters<typeof connectTcp>[0] = {}): Promise<TcpConnection> {
  return natsClient(cleanups, server.natsPort, opts);
}

async function peer(server: WsServer, tlsOpts: ClientOptions): Promise<WsPeer> {
  const p = await wsOpen(`wss://127.0.0.1:${server.wsPort}`, tlsOpts);
  cleanups.push(() => p.close());
  await p.expect(INFO_LINE);
  return p;
}

describe("a websocket block without tls and without no_tls", () => {
  it("meshbroker refuses the config: websocket requires TLS configuration", () => {
    expect(() => loadConfigText("port: -1\nwebsocket { port: -1 }\n", "test.conf", {}))
      .toThrow(/websocket requires TLS configuration/);
    // no_tls: false is the same as leaving it out.
    expect(() => loadConfigText("port: -1\nwebsocket { port: 8080, no_tls: false }\n", "test.conf", {}))
      .toThrow(/websocket requires TLS configuration/);
    // A block without a port is no listener: nothing to secure.
    expect(() => loadConfigText("port: -1\nwebsocket { compression: true }\n", "test.conf", {})).not.toThrow();
  });

  it("nats-server 2.9.10 refuses to start with the same message", async () => {
    const port = await freePort();
    await expect(startNatsServer(`port: -1\nhost: 127.0.0.1\nwebsocket { host: 127.0.0.1, port: ${port} }\n`))
      .rejects.toThrow(/websocket requires TLS configuration/);
  });
});

describe.each(wsTargets(topologies))("wss on $name", (target) => {
  describe("server TLS only", () => {
    const server = serverFor(target, () => tlsBlock());

    it("nats.ws over wss (trusting the test CA) talks to nats.js over TCP", async () => {
      const w = await wss(server(), wsTls());
      const t = await tcp(server());
      const toTcp = t.subscribe("secure.up", { max: 1 });
      const toWs = w.subscribe("secure.down", { max: 1 });
      await Promise.all([t.flush(), w.flush()]);
      w.publish("secure.up", sc.encode("over wss"));
      t.publish("secure.down", sc.encode("over tcp"));
      expect(await take(toTcp, 1, 3_000)).toEqual(["secure.up:over wss"]);
      expect(await take(toWs, 1, 3_000)).toEqual(["secure.down:over tcp"]);
      // And request/reply through it.
      t.subscribe("secure.echo", { callback: (_e, m) => m.respond(m.data) });
      await t.flush();
      expect(sc.decode((await w.request("secure.echo", sc.encode("ping"), { timeout: 3_000 })).data)).toBe("ping");
    });

    it("a client that does not trust the CA fails the TLS handshake", async () => {
      await wssRefused(server(), {});
      await expect(wsOpen(`wss://127.0.0.1:${server().wsPort}`)).rejects.toThrow(/certificate/);
    });

    it("plain ws:// (no TLS) to the wss port: no upgrade, no INFO, closed", async () => {
      const c = await rawConnect(server().wsPort);
      cleanups.push(() => c.close());
      await c.send(upgradeRequest(`127.0.0.1:${server().wsPort}`));
      await closedWithin(c, 3_000);
      expect(c.received()).not.toMatch(/101|INFO/);
      // Go's TLS server answers such a request in plain HTTP; meshbroker (Node) just closes.
      if (target.reference) expect(c.received()).toBe("HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n");
      else expect(c.received()).toBe("");
    });

    it("the upgrade checks apply inside TLS too (POST → 405)", async () => {
      const res = await httpExchange(server().wsPort, upgradeRequest(`127.0.0.1:${server().wsPort}`, { method: "POST" }), { tls: { ca, servername: "localhost" } });
      expect(res.statusLine).toBe("HTTP/1.1 405 Method Not Allowed");
      expect(res.headers["sec-websocket-version"]).toBe("13");
      expect(res.body).toBe("Method Not Allowed\n");
    });
  });

  describe("same_origin and handshake_timeout over TLS", () => {
    const server = serverFor(target, () => `${tlsBlock()}\nsame_origin: true\nhandshake_timeout: "500ms"`);
    const exchange = (host: string, origin: string) =>
      httpExchange(server().wsPort, upgradeRequest(host, { headers: { Origin: origin } }), { tls: { ca, servername: "localhost" } });

    it("same origin over https: 443 is the default port on both sides", async () => {
      expect((await exchange("localhost", "https://localhost:443")).status).toBe(101);
      expect((await exchange("localhost:443", "https://localhost")).status).toBe(101);
      expect((await exchange(`localhost:${server().wsPort}`, `https://localhost:${server().wsPort}`)).status).toBe(101);
      const refused = await exchange("localhost", "http://localhost");
      expect(refused.statusLine).toBe("HTTP/1.1 403 Forbidden");
      expect(refused.body).toBe("Forbidden\n");
      expect((await exchange("localhost", "https://127.0.0.1")).status).toBe(403);
    });

    it("a wss client that completed its handshake is not cut by the handshake timeout", async () => {
      const w = await wss(server(), wsTls(), { reconnect: false });
      cleanups.push(() => w.close());
      let closed = false;
      void w.closed().then(() => { closed = true; });
      // A silent client opened after it is cut first: by then the timeout has passed for the wss client too.
      const silent = await rawConnect(server().wsPort);
      await closedWithin(silent, 3_000);
      await w.flush();
      expect(closed).toBe(false);
    });

    it("a client that never starts TLS is closed within about the handshake timeout", async () => {
      const c = await rawConnect(server().wsPort);
      cleanups.push(() => c.close());
      const started = Date.now();
      await closedWithin(c, 3_000);
      expect(Date.now() - started).toBeGreaterThanOrEqual(400);
      expect(Date.now() - started).toBeLessThan(2_500);
    });
  });

  describe("write_deadline over TLS", () => {
    const server = serverFor(target, () => tlsBlock(), () => `write_deadline: "300ms"`);

    it("a wss client that reads everything stays open past write_deadline", async () => {
      const w = await wss(server(), wsTls(), { reconnect: false });
      let closed = false;
      void w.closed().then(() => { closed = true; });
      const sub = w.subscribe("secure.twice", { max: 2 });
      await w.flush();
      w.publish("secure.twice", sc.encode("first"));
      await w.flush();
      // Three deadlines after a write the client took at once.
      await new Promise((r) => setTimeout(r, 1_000));
      expect(closed).toBe(false);
      w.publish("secure.twice", sc.encode("second"));
      expect(await take(sub, 2, 3_000)).toEqual(["secure.twice:first", "secure.twice:second"]);
    });
  });

  describe("verify: true", () => {
    const server = serverFor(target, () => tlsBlock("verify: true"));

    it("a client certificate from the CA is required", async () => {
      await (await wss(server(), wsTls(alice))).flush();
      await wssRefused(server(), wsTls());
      await wssRefused(server(), wsTls(rogue));
    });
  });

  describe("verify_and_map", () => {
    const server = serverFor(target, () => tlsBlock("verify_and_map: true"), () => `authorization { users: [
      { user: "CN=alice,OU=eng,O=Acme", permissions: { publish: "alice.>", subscribe: ["alice.>", "_INBOX.>"] } }
      { user: "bob@acme.example", permissions: { publish: "bob.>", subscribe: ["bob.>", "_INBOX.>"] } }
      { user: observer, password: pw }
    ] }`);

    it("the subject DN maps to alice: her publish permissions apply", async () => {
      const observer = await tcp(server(), { user: "observer", pass: "pw" });
      const seen = observer.subscribe(">", { max: 1 });
      await observer.flush();
      const w = await wss(server(), wsTls(alice));
      w.publish("bob.x", sc.encode("not allowed"));
      w.publish("alice.x", sc.encode("from alice"));
      await w.flush();
      expect(await take(seen, 1, 3_000)).toEqual(["alice.x:from alice"]);
    });

    it("the SAN e-mail maps to bob: exact -ERR for the rest, and the connection stays", async () => {
      const p = await peer(server(), wsTls(bob));
      await p.send(`CONNECT {"verbose":false,"pedantic":false}\r\nPUB alice.x 1\r\nx\r\nSUB alice.> 1\r\nSUB bob.> 2\r\nPUB bob.y 2\r\nhi\r\nPING\r\n`);
      await p.expect("PONG\r\n");
      expect(afterInfo(p)).toBe(
        `-ERR 'Permissions Violation for Publish to "alice.x"'\r\n` +
        `-ERR 'Permissions Violation for Subscription to "alice.>"'\r\n` +
        "MSG bob.y 2 2\r\nhi\r\n" +
        "PONG\r\n",
      );
      expect(p.isClosed()).toBe(false);
    });

    it("a certificate that maps to no user: -ERR 'Authorization Violation', then close 1008", async () => {
      const p = await peer(server(), wsTls(nobody));
      await p.send(`CONNECT {"verbose":false}\r\nPING\r\n`);
      const close = await closeWithin(p);
      expect(afterInfo(p)).toBe("-ERR 'Authorization Violation'\r\n");
      expect(close).toEqual({ code: 1008, reason: "Authentication Failure" });
    });

    it("no client certificate: the TLS handshake fails", async () => {
      await wssRefused(server(), wsTls());
    });

    it("INFO over wss offers TLS (nats-server 2.9.19+; the Debian 2.9.10 sends no tls_* fields)", async () => {
      const info = infoOf(await peer(server(), wsTls(alice)));
      expect(info).toMatchObject({ auth_required: true });
      expect(info).not.toHaveProperty("tls_verify"); // that is the main tls block's
      if (target.reference) {
        expect(info).not.toHaveProperty("tls_required");
        expect(info).not.toHaveProperty("tls_available");
      } else {
        expect(info).toMatchObject({ tls_required: true, tls_available: true });
      }
    });
  });
});
