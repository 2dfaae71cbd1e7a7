// Authentication and authorization over WebSocket, with nats.ws (on the `ws` library) and, for
// exact bytes, a raw ws peer: user/password, token, NKEY, operator-mode JWTs in CONNECT and in
// the `jwt_cookie` cookie, the websocket block's own `no_auth_user` and `authorization {}`
// (which apply to WebSocket clients only), `allowed_connection_types`, and permission errors.
// A refused WebSocket client gets `-ERR 'Authorization Violation'` and then a close frame with
// code 1008 and the reason "Authentication Failure". Each scenario runs against meshbroker and
// nats-server 2.9.10 with the same config.
import { beforeAll, describe, expect, it } from "vitest";
import WebSocket, { type ClientOptions } from "ws";
import { createUser } from "@nats-io/nkeys";
import {
  connect as connectTcp, credsAuthenticator as tcpCreds, nkeyAuthenticator as tcpNkey, StringCodec,
  type NatsConnection as TcpConnection, type Subscription as TcpSubscription,
} from "nats";
import {
  credsAuthenticator, nkeyAuthenticator,
  type ConnectionOptions as WsOptions, type NatsConnection as WsConnection,
} from "nats.ws";
import { topologies } from "../helpers/broker.js";
import { newAccount, newOperator, newUser, operatorConfig, type TestAccount, type TestOperator, type TestUser } from "../helpers/creds.js";
import { rawConnect, type RawClient } from "../helpers/raw.js";
import {
  afterInfo, closeWithin, INFO_LINE, infoOf, wsFactory, wsOpen, wsTargets,
  serverFor, type WsPeer, type WsServer,
} from "../helpers/ws-raw.js";
import { cleanupAfterEach, firstData } from "../helpers/wait.js";
import { natsClient, natsRefusal, wsClient, wsRefusal } from "../helpers/clients.js";

Object.assign(globalThis, { WebSocket });

const sc = StringCodec();
const AUTH_VIOLATION = "-ERR 'Authorization Violation'\r\n";
const AUTH_CLOSE = { code: 1008, reason: "Authentication Failure" };

const cleanups = cleanupAfterEach();

type WsConnect = WsOptions & Partial<ReturnType<typeof wsFactory>>;

async function ws(server: WsServer, opts: WsConnect = {}): Promise<WsConnection> {
  return wsClient(cleanups, `ws://127.0.0.1:${server.wsPort}`, opts);
}

async function wsRefused(server: WsServer, opts: WsConnect = {}): Promise<{ code?: string; message: string }> {
  return wsRefusal(`ws://127.0.0.1:${server.wsPort}`, opts);
}

async function tcp(server: WsServer, opts: Parameters<typeof connectTcp>[0] = {}): Promise<TcpConnection> {
  return natsClient(cleanups, server.natsPort, opts);
}

async function tcpRefused(server: WsServer, opts: Parameters<typeof connectTcp>[0]): Promise<{ code?: string; message: string }> {
  return natsRefusal(server.natsPort, opts);
}

/** A raw WebSocket peer that has its INFO. */
async function peer(server: WsServer, opts: ClientOptions = {}): Promise<WsPeer> {
  const p = await wsOpen(`ws://127.0.0.1:${server.wsPort}`, opts);
  cleanups.push(() => p.close());
  await p.expect(INFO_LINE);
  return p;
}

/** A raw TCP client that has its INFO. */
async function rawTcp(server: WsServer): Promise<RawClient> {
  const c = await rawConnect(server.natsPort);
  cleanups.push(() => c.close());
  await c.expect(/^INFO \{.*\} ?\r\n/);
  return c;
}

/** CONNECT with `connect` over a raw WebSocket: must get the -ERR, then close code 1008. */
async function expectWsAuthFailure(server: WsServer, connect: Record<string, unknown>, opts: ClientOptions = {}): Promise<void> {
  const p = await peer(server, opts);
  await p.send(`CONNECT ${JSON.stringify({ verbose: false, pedantic: false, ...connect })}\r\nPING\r\n`);
  const close = await closeWithin(p);
  expect(afterInfo(p)).toBe(AUTH_VIOLATION);
  expect(close).toEqual(AUTH_CLOSE);
}

/** Publishes on `from` and proves `to` (subscribed to `subject`) receives it. */
async function delivers(from: { publish(s: string, d: Uint8Array): void; flush(): Promise<void> }, to: TcpConnection | WsConnection, subject: string): Promise<void> {
  const sub = to.subscribe(subject, { max: 1 });
  await to.flush();
  from.publish(subject, sc.encode(`to ${subject}`));
  await from.flush();
  expect(await firstData(sub as TcpSubscription)).toBe(`to ${subject}`);
}

describe.each(wsTargets(topologies))("WebSocket auth on $name", (target) => {
  describe("user/password", () => {
    const server = serverFor(target, () => "no_tls: true", () => "authorization { user: alice, password: s3cret }");

    it("INFO over WebSocket says auth_required", async () => {
      expect(infoOf(await peer(server()))).toMatchObject({ auth_required: true });
    });

    it("nats.ws with the right password talks to a TCP client", async () => {
      const w = await ws(server(), { user: "alice", pass: "s3cret" });
      const t = await tcp(server(), { user: "alice", pass: "s3cret" });
      await delivers(w, t, "up");
      await delivers(t, w, "down");
    });

    it("a wrong password: nats.ws is refused; on the wire -ERR, then close 1008 \"Authentication Failure\"", async () => {
      expect((await wsRefused(server(), { user: "alice", pass: "wrong" })).code).toBe("AUTHORIZATION_VIOLATION");
      await expectWsAuthFailure(server(), { user: "alice", pass: "wrong" });
      await expectWsAuthFailure(server(), {});
    });
  });

  describe("token", () => {
    const server = serverFor(target, () => "no_tls: true", () => `authorization { token: "t0k3n-for-ws" }`);

    it("nats.ws with the token is accepted, with another refused", async () => {
      const w = await ws(server(), { token: "t0k3n-for-ws" });
      await delivers(w, await tcp(server(), { token: "t0k3n-for-ws" }), "tok");
      expect((await wsRefused(server(), { token: "nope" })).code).toBe("AUTHORIZATION_VIOLATION");
      await expectWsAuthFailure(server(), { auth_token: "nope" });
    });
  });

  describe("NKEY", () => {
    const user = createUser();
    const stranger = createUser();
    const server = serverFor(target, () => "no_tls: true", () => `authorization { users: [ { nkey: ${user.getPublicKey()} } ] }`);

    it("nats.ws signs the nonce with the user's seed; an unknown key is refused", async () => {
      expect(infoOf(await peer(server()))).toHaveProperty("nonce");
      const w = await ws(server(), { authenticator: nkeyAuthenticator(user.getSeed()) });
      await delivers(w, await tcp(server(), { authenticator: tcpNkey(user.getSeed()) }), "nk");
      expect((await wsRefused(server(), { authenticator: nkeyAuthenticator(stranger.getSeed()) })).code).toBe("AUTHORIZATION_VIOLATION");
      await expectWsAuthFailure(server(), { nkey: stranger.getPublicKey(), sig: "AAAA" });
    });
  });

  describe("operator mode", () => {
    let op: TestOperator;
    let acme: TestAccount;
    let users: Record<"plain" | "bearer" | "expired" | "wsOnly" | "stdOnly", TestUser>;
    let config = "";
    beforeAll(async () => {
      op = await newOperator();
      acme = await newAccount(op, "ACME");
      const now = Math.floor(Date.now() / 1000);
      users = {
        plain: await newUser(acme, "plain"),
        bearer: await newUser(acme, "bearer", {
          bearer_token: true,
          pub: { allow: ["cookie.>"] },
          sub: { allow: ["cookie.>", "_INBOX.>"] },
        }),
        expired: await newUser(acme, "expired", { bearer_token: true }, { exp: now - 60 }),
        wsOnly: await newUser(acme, "ws-only", { allowed_connection_types: ["WEBSOCKET"] }),
        stdOnly: await newUser(acme, "std-only", { allowed_connection_types: ["STANDARD"] }),
      };
      config = operatorConfig(op, [acme]);
    });
    const server = serverFor(target, () => `no_tls: true\njwt_cookie: "jwt"`, () => config);

    const cookie = (jwt: string): ClientOptions => ({ headers: { Cookie: `theme=dark; jwt=${jwt}` } });

    it("a user JWT in CONNECT (nats.ws credsAuthenticator) talks to a TCP client of the account", async () => {
      const w = await ws(server(), { authenticator: credsAuthenticator(users.plain.creds) });
      const t = await tcp(server(), { authenticator: tcpCreds(users.plain.creds) });
      await delivers(w, t, "acct.up");
      await delivers(t, w, "acct.down");
    });

    it("a bearer user JWT in the jwt cookie authenticates a client that sends no credentials", async () => {
      const w = await ws(server(), wsFactory(cookie(users.bearer.jwt)));
      const t = await tcp(server(), { authenticator: tcpCreds(users.plain.creds) });
      await delivers(w, t, "cookie.up");
      await delivers(t, w, "cookie.down");
    });

    it("the cookie user's permissions apply (exact -ERR, the connection stays)", async () => {
      const p = await peer(server(), cookie(users.bearer.jwt));
      await p.send(`CONNECT {"verbose":false,"pedantic":false}\r\nPUB elsewhere 1\r\nx\r\nSUB elsewhere 1\r\nPUB cookie.ok 1\r\nx\r\nPING\r\n`);
      await p.expect("PONG\r\n");
      expect(afterInfo(p)).toBe(
        `-ERR 'Permissions Violation for Publish to "elsewhere"'\r\n` +
        `-ERR 'Permissions Violation for Subscription to "elsewhere"'\r\n` +
        "PONG\r\n",
      );
      expect(p.isClosed()).toBe(false);
    });

    it("an expired cookie JWT: -ERR 'Authorization Violation', then close 1008", async () => {
      await expectWsAuthFailure(server(), {}, cookie(users.expired.jwt));
    });

    it("a garbage cookie JWT: -ERR 'Authorization Violation', then close 1008", async () => {
      await expectWsAuthFailure(server(), {}, cookie("eyJhbGciOiJub25lIn0.garbage.garbage"));
      await expectWsAuthFailure(server(), {}, cookie("not-a-jwt-at-all"));
    });

    it("a non-bearer user JWT in the cookie without a nonce signature is refused", async () => {
      await expectWsAuthFailure(server(), {}, cookie(users.plain.jwt));
    });

    it("the CONNECT jwt wins over the cookie", async () => {
      const w = await ws(server(), {
        authenticator: credsAuthenticator(users.plain.creds),
        ...wsFactory(cookie("not-a-jwt-at-all")),
      });
      await w.flush();
    });

    it("without the cookie (and without credentials) nats.ws is refused", async () => {
      expect((await wsRefused(server(), wsFactory())).code).toBe("AUTHORIZATION_VIOLATION");
    });

    it("allowed_connection_types in the user JWT: WEBSOCKET only / STANDARD only", async () => {
      await (await ws(server(), { authenticator: credsAuthenticator(users.wsOnly.creds) })).flush();
      expect((await tcpRefused(server(), { authenticator: tcpCreds(users.wsOnly.creds) })).code).toBe("AUTHORIZATION_VIOLATION");
      await (await tcp(server(), { authenticator: tcpCreds(users.stdOnly.creds) })).flush();
      expect((await wsRefused(server(), { authenticator: credsAuthenticator(users.stdOnly.creds) })).code).toBe("AUTHORIZATION_VIOLATION");
    });
  });

  describe("the websocket block's no_auth_user overrides the main one", () => {
    const server = serverFor(target, () => "no_tls: true\nno_auth_user: ws-default", () => `
      authorization { users: [
        { user: tcp-default, password: pw, permissions: { publish: "tcp.>", subscribe: ["tcp.>", "_INBOX.>"] } }
        { user: ws-default, password: pw, permissions: { publish: "ws.>", subscribe: ["ws.>", "_INBOX.>"] } }
        { user: admin, password: pw }
      ] }
      no_auth_user: tcp-default`);

    it("a WebSocket client without credentials is ws-default", async () => {
      const admin = await tcp(server(), { user: "admin", pass: "pw" });
      const seen = admin.subscribe(">", { max: 1 });
      await admin.flush();
      const p = await peer(server());
      await p.send(`CONNECT {"verbose":false}\r\nPUB tcp.x 1\r\nx\r\nPUB ws.x 2\r\nok\r\nPING\r\n`);
      await p.expect("PONG\r\n");
      expect(afterInfo(p)).toBe(`-ERR 'Permissions Violation for Publish to "tcp.x"'\r\nPONG\r\n`);
      expect(await firstData(seen)).toBe("ok");
      // nats.ws too: it may publish to ws.> only.
      const w = await ws(server());
      await delivers(w, admin, "ws.nats-ws");
    });

    it("a TCP client without credentials is still tcp-default", async () => {
      const c = await rawTcp(server());
      await c.send(`CONNECT {"verbose":false}\r\nPUB ws.x 1\r\nx\r\nPUB tcp.x 1\r\nx\r\nPING\r\n`);
      await c.expect("PONG\r\n");
      expect(c.received().replace(/^INFO \{.*\} ?\r\n/, "")).toBe(`-ERR 'Permissions Violation for Publish to "ws.x"'\r\nPONG\r\n`);
    });

    it("credentials still pick the user over WebSocket", async () => {
      const w = await ws(server(), { user: "admin", pass: "pw" });
      await delivers(w, await tcp(server(), { user: "admin", pass: "pw" }), "anything.at.all");
    });
  });

  describe("the websocket block's authorization {} applies to WebSocket clients only", () => {
    describe("with no main auth", () => {
      const server = serverFor(target, () => "no_tls: true\nauthorization { username: webby, password: web-pw }", () => "");

      it("WebSocket clients need the block's user; TCP clients need nothing", async () => {
        expect(infoOf(await peer(server()))).toMatchObject({ auth_required: true });
        await expectWsAuthFailure(server(), {});
        expect((await wsRefused(server())).code).toBe("AUTHORIZATION_VIOLATION");
        const w = await ws(server(), { user: "webby", pass: "web-pw" });
        const t = await tcp(server());
        await delivers(w, t, "open.tcp");
        const c = await rawTcp(server());
        expect(c.received()).not.toMatch(/auth_required/);
      });
    });

    describe("with a main token", () => {
      const server = serverFor(target, () => "no_tls: true\nauthorization { username: webby, password: web-pw }", () => `authorization { token: main-token }`);

      it("WebSocket: the block's user, not the token; TCP: the token, not the block's user", async () => {
        const w = await ws(server(), { user: "webby", pass: "web-pw" });
        const t = await tcp(server(), { token: "main-token" });
        await delivers(t, w, "mixed");
        expect((await wsRefused(server(), { token: "main-token" })).code).toBe("AUTHORIZATION_VIOLATION");
        await expectWsAuthFailure(server(), { auth_token: "main-token" });
        expect((await tcpRefused(server(), { user: "webby", pass: "web-pw" })).code).toBe("AUTHORIZATION_VIOLATION");
      });
    });

    describe("with a block token", () => {
      const server = serverFor(target, () => "no_tls: true\nauthorization { token: ws-only-token }", () => "");

      it("WebSocket clients need the block's token; TCP clients need nothing", async () => {
        await (await ws(server(), { token: "ws-only-token" })).flush();
        expect((await wsRefused(server(), { token: "other" })).code).toBe("AUTHORIZATION_VIOLATION");
        await expectWsAuthFailure(server(), {});
        await (await tcp(server())).flush();
      });
    });
  });

  describe("allowed_connection_types", () => {
    const server = serverFor(target, () => "no_tls: true", () => `authorization { users: [
      { user: ws-only, password: pw, allowed_connection_types: ["WEBSOCKET"] }
      { user: std-only, password: pw, allowed_connection_types: ["STANDARD"] }
    ] }`);

    it("a WEBSOCKET user: accepted over WebSocket, refused over TCP", async () => {
      await (await ws(server(), { user: "ws-only", pass: "pw" })).flush();
      expect((await tcpRefused(server(), { user: "ws-only", pass: "pw" })).code).toBe("AUTHORIZATION_VIOLATION");
    });

    it("a STANDARD user: accepted over TCP, refused over WebSocket (-ERR, then close 1008)", async () => {
      await (await tcp(server(), { user: "std-only", pass: "pw" })).flush();
      expect((await wsRefused(server(), { user: "std-only", pass: "pw" })).code).toBe("AUTHORIZATION_VIOLATION");
      await expectWsAuthFailure(server(), { user: "std-only", pass: "pw" });
    });
  });

  describe("permission violations", () => {
    const server = serverFor(target, () => "no_tls: true", () => `authorization { users: [
      { user: limited, password: pw, permissions: {
          publish: { allow: ["ok.>"], deny: ["ok.secret"] }
          subscribe: { allow: ["ok.>"], deny: ["ok.hidden"] }
      } }
    ] }`);

    it("get the exact -ERR text over WebSocket and the connection stays", async () => {
      const p = await peer(server());
      await p.send(`CONNECT {"verbose":false,"user":"limited","pass":"pw"}\r\n` +
        `PUB nope 1\r\nx\r\nPUB ok.secret 1\r\nx\r\nSUB nope 1\r\nSUB ok.hidden 2\r\nSUB nope q 3\r\nSUB ok.> 4\r\nPING\r\n`);
      await p.expect("PONG\r\n");
      expect(afterInfo(p)).toBe(
        `-ERR 'Permissions Violation for Publish to "nope"'\r\n` +
        `-ERR 'Permissions Violation for Publish to "ok.secret"'\r\n` +
        `-ERR 'Permissions Violation for Subscription to "nope"'\r\n` +
        `-ERR 'Permissions Violation for Subscription to "ok.hidden"'\r\n` +
        `-ERR 'Permissions Violation for Subscription to "nope" using queue "q"'\r\n` +
        "PONG\r\n",
      );
      const from = p.received().length;
      await p.send("PUB ok.fine 2\r\nhi\r\nPING\r\n");
      await p.expect("MSG ok.fine 4 2\r\nhi\r\nPONG\r\n", 2_000, from);
      expect(p.isClosed()).toBe(false);
    });
  });
});
