// The WebSocket HTTP upgrade, byte for byte: each rejection path of nats-server's wsUpgrade
// (405, 400s, 403s) and the acceptances around them, sent as raw bytes on a TCP socket to
// meshbroker and to nats-server 2.9.10 with the same `websocket {}` block. The status line, the
// `Sec-Websocket-Version: 13` header and the body (the bare status text) must be the same.
// Where meshbroker deliberately differs, the difference is pinned in KNOWN_DIFFERENCES, so a
// change on either side fails the test. Also: handshake_timeout closes a silent or half-sent
// request within about the timeout, on both servers.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { topologies } from "../helpers/broker.js";
import { closedWithin, rawConnect } from "../helpers/raw.js";
import {
  clientFrame, httpExchange, INFO_LINE, upgradeRequest, wsOpen, wsTargets,
  type HttpResponse, type UpgradeRequest, type WsServer,
} from "../helpers/ws-raw.js";

interface Case {
  name: string;
  /** The request, given the server's websocket port (for Host and same-origin Origins). */
  request: (port: number) => string;
  /** The status both servers must answer with (unless the case is a known difference). */
  status: number;
  /** 101 response headers that must be the same on both (present or absent alike). */
  compare?: string[];
}

const req = (r: UpgradeRequest = {}) => (port: number) => upgradeRequest(`127.0.0.1:${port}`, r);

/** Plain ws, no origin checks. */
const OPEN_CASES: Case[] = [
  { name: "a valid upgrade", request: req(), status: 101 },
  { name: "POST", request: req({ method: "POST" }), status: 405 },
  { name: "PUT", request: req({ method: "PUT" }), status: 405 },
  {
    name: "no Host (HTTP/1.0)",
    request: req({ version: "HTTP/1.0", headers: { Host: undefined } }),
    status: 400,
  },
  { name: "no Upgrade header", request: req({ headers: { Upgrade: undefined } }), status: 400 },
  { name: "Upgrade: h2c", request: req({ headers: { Upgrade: "h2c" } }), status: 400 },
  { name: "Upgrade token in a list", request: req({ headers: { Upgrade: "foo, WebSocket" } }), status: 101 },
  { name: "no Connection header", request: req({ headers: { Connection: undefined } }), status: 400 },
  { name: "Connection: keep-alive", request: req({ headers: { Connection: "keep-alive" } }), status: 400 },
  { name: "Connection: keep-alive, Upgrade", request: req({ headers: { Connection: "keep-alive, Upgrade" } }), status: 101 },
  { name: "no Sec-WebSocket-Key", request: req({ headers: { "Sec-WebSocket-Key": undefined } }), status: 400 },
  { name: "Sec-WebSocket-Version: 12", request: req({ headers: { "Sec-WebSocket-Version": "12" } }), status: 400 },
  { name: "Sec-WebSocket-Version list with 13", request: req({ headers: { "Sec-WebSocket-Version": "8, 13" } }), status: 101 },
  { name: "no Sec-WebSocket-Version", request: req({ headers: { "Sec-WebSocket-Version": undefined } }), status: 400 },
  // The first failing check wins: the method comes before the headers.
  { name: "POST without Upgrade", request: req({ method: "POST", headers: { Upgrade: undefined } }), status: 405 },
  { name: "any Origin when no origin checks are configured", request: req({ headers: { Origin: "http://evil.example" } }), status: 101 },
  // A page from file://, a sandboxed iframe or a redirect sends "Origin: null".
  { name: "Origin: null when no origin checks are configured", request: req({ headers: { Origin: "null" } }), status: 101 },
  { name: "a browser extension's Origin when no origin checks are configured", request: req({ headers: { Origin: "chrome-extension://abcdefghijklmnop" } }), status: 101 },
  { name: "/mqtt without MQTT configured", request: req({ path: "/mqtt" }), status: 101 },
  { name: "malformed Sec-WebSocket-Key", request: req({ headers: { "Sec-WebSocket-Key": "abc" } }), status: 101 },
  // nats-server: "client sent data before handshake is complete"; it has hijacked the
  // connection by then, so its 400 never gets out: the client sees the connection close.
  {
    name: "data sent before the handshake completes",
    request: (p) => upgradeRequest(`127.0.0.1:${p}`) + clientFrame("CONNECT {}\r\nPING\r\n").toString("latin1"),
    status: 0,
  },
  { name: "Nats-No-Masking: true", request: req({ headers: { "Nats-No-Masking": "true" } }), status: 101 },
  {
    name: "offered permessage-deflate without compression configured",
    request: req({ headers: { "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits" } }),
    status: 101,
    compare: ["sec-websocket-extensions"],
  },
  {
    name: "offered a subprotocol",
    request: req({ headers: { "Sec-WebSocket-Protocol": "nats" } }),
    status: 101,
    compare: ["sec-websocket-protocol"],
  },
];

const SAME_ORIGIN_CASES: Case[] = [
  { name: "no Origin header", request: req(), status: 101 },
  { name: "same origin", request: (p) => upgradeRequest(`127.0.0.1:${p}`, { headers: { Origin: `http://127.0.0.1:${p}` } }), status: 101 },
  { name: "another host", request: (p) => upgradeRequest(`127.0.0.1:${p}`, { headers: { Origin: `http://localhost:${p}` } }), status: 403 },
  { name: "another port", request: (p) => upgradeRequest(`127.0.0.1:${p}`, { headers: { Origin: `http://127.0.0.1:${p + 1}` } }), status: 403 },
  { name: "Origin: null", request: req({ headers: { Origin: "null" } }), status: 403 },
  {
    name: "default port on both sides (Host without port, Origin :80)",
    request: () => upgradeRequest("example.com", { headers: { Origin: "http://example.com:80" } }),
    status: 101,
  },
  {
    name: "default port on both sides (Host :80, Origin without port)",
    request: () => upgradeRequest("example.com:80", { headers: { Origin: "http://example.com" } }),
    status: 101,
  },
];

const ALLOWED_ORIGINS = `allowed_origins: ["http://example.com", "https://secure.example.com", "http://example.org:80", "http://app.example.com:8080"]`;
const origin = (o: string): Case["request"] => req({ headers: { Origin: o } });
const ALLOWED_ORIGIN_CASES: Case[] = [
  { name: "no Origin header", request: req(), status: 101 },
  { name: "listed origin", request: origin("http://example.com"), status: 101 },
  { name: "listed origin with its default port spelled out", request: origin("http://example.com:80"), status: 101 },
  { name: "listed :80 origin without its port", request: origin("http://example.org"), status: 101 },
  { name: "listed https origin with :443", request: origin("https://secure.example.com:443"), status: 101 },
  { name: "listed origin with another port", request: origin("http://example.com:8080"), status: 403 },
  { name: "listed host with another scheme", request: origin("https://example.com"), status: 403 },
  { name: "listed https host over http", request: origin("http://secure.example.com"), status: 403 },
  { name: "listed non-default port", request: origin("http://app.example.com:8080"), status: 101 },
  { name: "that host on the default port", request: origin("http://app.example.com"), status: 403 },
  { name: "unlisted origin", request: origin("http://evil.example"), status: 403 },
  { name: "host case does not matter", request: origin("http://EXAMPLE.com"), status: 101 },
  { name: "Origin: null", request: origin("null"), status: 403 },
];

/**
 * The accepted differences from 2.9.10: case → the status line each side sends (and a 101
 * header where that is what differs), each with its reason. Some follow nats-server 2.10+.
 */
const KNOWN_DIFFERENCES: Record<string, {
  natsServer: string;
  meshbroker: string;
  /** A 101 header that differs: its value on each side (undefined = absent). */
  header?: { name: string; natsServer?: string; meshbroker?: string };
  why: string;
}> = {
  "Nats-No-Masking: true": {
    natsServer: "HTTP/1.1 101 Switching Protocols",
    meshbroker: "HTTP/1.1 101 Switching Protocols",
    header: { name: "nats-no-masking", natsServer: "true", meshbroker: undefined },
    why: "meshbroker (the ws library) always wants masked client frames, so it does not agree to the " +
      "NATS no-masking extension; clients (nats.go) mask unless the server echoes the header",
  },
  "/mqtt without MQTT configured": {
    natsServer: "HTTP/1.1 101 Switching Protocols",
    meshbroker: "HTTP/1.1 404 Not Found",
    header: { name: "sec-websocket-protocol", natsServer: "mqtt", meshbroker: undefined },
    why: "2.9.10 upgrades any /mqtt… path to an MQTT client even when MQTT is off; main answers 404",
  },
  "malformed Sec-WebSocket-Key": {
    natsServer: "HTTP/1.1 101 Switching Protocols",
    meshbroker: "HTTP/1.1 400 Bad Request",
    why: "2.9.10 takes any key; 2.10+ rejects one that is not 16 bytes of base64",
  },
  "no Host (HTTP/1.0)": {
    natsServer: "HTTP/1.0 400 Bad Request",
    meshbroker: "HTTP/1.1 400 Bad Request",
    why: "Go answers an HTTP/1.0 request in HTTP/1.0; Node in HTTP/1.1 (RFC 9110 §6.2 allows both)",
  },
};

/** Each group starts both servers once, sends every case to each, and compares. */
describe.each([
  { group: "no origin checks", ws: "no_tls: true", cases: OPEN_CASES },
  { group: "same_origin: true", ws: "no_tls: true\nsame_origin: true", cases: SAME_ORIGIN_CASES },
  { group: ALLOWED_ORIGINS, ws: `no_tls: true\n${ALLOWED_ORIGINS}`, cases: ALLOWED_ORIGIN_CASES },
])("upgrade checks with $group", ({ ws, cases }) => {
  const servers: WsServer[] = [];
  beforeAll(async () => {
    servers.push(...(await Promise.all(wsTargets(topologies).map((t) => t.start({ ws })))));
  });
  afterAll(async () => {
    await Promise.all(servers.splice(0).map((s) => s.stop()));
  });

  async function responses(c: Case): Promise<{ server: WsServer; res: HttpResponse }[]> {
    return Promise.all(servers.map(async (server) => ({ server, res: await httpExchange(server.wsPort, c.request(server.wsPort)) })));
  }

  it.each(cases.map((c) => ({ ...c, outcome: c.status === 0 ? "closed, no response" : String(c.status) })))("$name → $outcome", async (c) => {
    const all = await responses(c);
    const ref = all.find((r) => r.server.reference)!;
    const known = KNOWN_DIFFERENCES[c.name];
    expect(ref.res.statusLine, `${ref.server.name} (the reference itself changed?)`)
      .toBe(known ? known.natsServer : statusLine(c.status, ref.res.statusLine));
    for (const { server, res } of all) {
      if (server.reference) continue;
      if (known) {
        expect(res.statusLine, `${server.name}: known difference (${known.why})`).toBe(known.meshbroker);
        if (res.status >= 400) expectRefusalShape(server, res);
        if (known.header) {
          expect(ref.res.headers[known.header.name], ref.server.name).toBe(known.header.natsServer);
          expect(res.headers[known.header.name], `${server.name}: known difference (${known.why})`).toBe(known.header.meshbroker);
        }
        continue;
      }
      expect(res.statusLine, server.name).toBe(ref.res.statusLine);
      if (c.status === 0) {
        expect(res.after, server.name).toBe("");
      } else if (c.status === 101) {
        expect(res.headers["sec-websocket-accept"], server.name).toBe(ref.res.headers["sec-websocket-accept"]);
        for (const h of c.compare ?? []) expect(res.headers[h], `${server.name}: ${h}`).toBe(ref.res.headers[h]);
        expect(res.after, `${server.name}: INFO in the first frame`).toMatch(/INFO \{/);
      } else {
        expectRefusalShape(ref.server, ref.res);
        expectRefusalShape(server, res);
        expect(res.body, server.name).toBe(ref.res.body);
      }
    }
  });
});

/** nats-server's refusal: the bare status text as the body, and `Sec-Websocket-Version: 13`. */
function expectRefusalShape(server: WsServer, res: HttpResponse): void {
  expect(res.headers["sec-websocket-version"], `${server.name}: Sec-Websocket-Version`).toBe("13");
  expect(res.body, `${server.name}: body`).toBe(`${res.statusLine.replace(/^HTTP\/1\.[01] \d+ /, "")}\n`);
}

/** "HTTP/1.1 <status> <text>" with the version the response used ("" for a close without a response). */
function statusLine(status: number, actual: string): string {
  if (status === 0) return "";
  const text: Record<number, string> = { 101: "Switching Protocols", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed" };
  return `${actual.split(" ")[0]} ${status} ${text[status]}`;
}

describe.each(wsTargets(topologies))("handshake_timeout on $name", (target) => {
  let server: WsServer;
  beforeAll(async () => {
    server = await target.start({ ws: `no_tls: true\nhandshake_timeout: "500ms"` });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("closes a client that opens TCP and sends nothing within about the timeout", async () => {
    const c = await rawConnect(server.wsPort);
    const started = Date.now();
    await closedWithin(c, 3_000);
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(400);
    expect(elapsed).toBeLessThan(2_500);
  });

  it("closes a client that sends half a request within about the timeout", async () => {
    const c = await rawConnect(server.wsPort);
    const started = Date.now();
    const half = upgradeRequest(`127.0.0.1:${server.wsPort}`);
    await c.send(half.slice(0, half.indexOf("Sec-WebSocket-Key")));
    await closedWithin(c, 3_000);
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(400);
    expect(elapsed).toBeLessThan(2_500);
    expect(c.received(), "no HTTP response, no INFO").not.toMatch(/INFO/);
  });

  it("does not cut a connection that completed its handshake in time", async () => {
    const peer = await wsOpen(`ws://127.0.0.1:${server.wsPort}`);
    try {
      await peer.expect(INFO_LINE);
      // A silent client opened after it is cut first: by then the timeout has passed for the peer too.
      const silent = await rawConnect(server.wsPort);
      await closedWithin(silent, 3_000);
      await peer.send("CONNECT {\"verbose\":false}\r\nPING\r\n");
      await peer.expect("PONG\r\n");
      expect(peer.isClosed()).toBe(false);
    } finally {
      await peer.close();
    }
  });
});
