// Input builders the surfaces share: valid NATS command streams, CONNECT JSON, WebSocket upgrade
// requests and frames, MQTT packets, and the configurations (with identities) they run against.
import { generateKeyPairSync } from "node:crypto";
import { hashSync } from "bcryptjs";
import mqttPacket, { type Packet } from "mqtt-packet";
import { createUser } from "@nats-io/nkeys";
import { newAccount, newOperator, newUser, operatorConfig, type TestUser } from "../helpers/creds.js";
import { clientFrame, upgradeRequest, WS_KEY } from "../helpers/ws-raw.js";
import type { PortKind, Step, Variant } from "./harness.js";
import { deepJson, INTERESTING_NUMBERS, jsonValue, mutateBytes, splitWrites, TOKENS, type Rng } from "./rng.js";

/** One step: `bytes` cut into 1–4 writes on a fresh or reused connection, then kept, closed or reset. */
export function step(rng: Rng, to: PortKind, bytes: Buffer, freshChance = 0.5): Step {
  const end = rng.int(10);
  return { to, fresh: rng.chance(freshChance), chunks: splitWrites(rng, bytes), end: end < 6 ? "keep" : end < 8 ? "close" : "reset" };
}

// ---- configurations ----

const LISTENERS = `server_name: fuzz\nwebsocket { port: -1, no_tls: true }\nmqtt { port: -1, store_dir: "mqtt" }`;

/** What `make run` serves (NATS, WebSocket, MQTT; no authentication), probed on all three. */
export const OPEN: Variant = { name: "open", config: LISTENERS, probe: { nats: {}, ws: {}, mqtt: {} } };

/** Operator mode (accounts preloaded, a user to probe with), optionally with a `jwt_cookie`. */
export async function operatorVariant(name: string, cookie: boolean): Promise<Variant & { user: TestUser; bearer: TestUser }> {
  const op = await newOperator();
  const acme = await newAccount(op, "ACME");
  const user = await newUser(acme, "probe");
  const bearer = await newUser(acme, "bearer", { bearer_token: true });
  const creds = new TextDecoder().decode(user.creds);
  return {
    name,
    config: `${operatorConfig(op, [acme])}websocket { port: -1, no_tls: true${cookie ? ', jwt_cookie: "jwt"' : ""} }`,
    probe: { nats: { creds }, ws: { creds } },
    user,
    bearer,
  };
}

/** Users (plain, bcrypt, NKEY) and a token: the non-operator auth methods. */
export function userVariants(): Array<Variant & { nkey: string }> {
  const nkeyUser = createUser();
  const bcrypt = hashSync("bcrypt-pw", 4); // cost 4: the minimum, keeps CONNECT checks fast
  const users = `authorization {
  users: [
    { user: u1, password: p1 }
    { user: u2, password: "${bcrypt}" }
    { nkey: ${nkeyUser.getPublicKey()} }
  ]
}
websocket { port: -1, no_tls: true }`;
  const seed = new TextDecoder().decode(nkeyUser.getSeed());
  return [
    { name: "users", config: users, probe: { nats: { user: "u1", pass: "p1" }, ws: { nkeySeed: seed } }, nkey: nkeyUser.getPublicKey() },
    { name: "token", config: `authorization { token: "s3cret" }\nwebsocket { port: -1, no_tls: true }`, probe: { nats: { token: "s3cret" }, ws: { token: "s3cret" } }, nkey: "" },
  ];
}

/** OIDC (a JWKS file) beside a plain account user, who probes. */
export function oidcVariant(): Variant {
  // The private half is dropped: every token the fuzzer sends can only be refused.
  const jwk = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({ format: "jwk" });
  const jwks = { keys: [{ ...jwk, kid: "k1", alg: "RS256", use: "sig" }] };
  return {
    name: "oidc",
    config: `oidc { jwks_file: "jwks.json", issuer: "https://idp.example.test", audience: "meshbroker", user_claim: "preferred_username" }
accounts { TEAM: { users: [{ user: team, password: pw }] } }
websocket { port: -1, no_tls: true }`,
    files: { "jwks.json": JSON.stringify(jwks) },
    probe: { nats: { user: "team", pass: "pw" }, ws: { user: "team", pass: "pw" } },
  };
}

// ---- NATS protocol ----

const SUBJECTS = ["foo", "foo.bar", "foo.*", "foo.>", ">", "*", "a.b.c.d.e.f", "", ".", "foo..bar", "$SYS.REQ.SERVER.PING", "_INBOX.x"];

function subject(rng: Rng): string {
  if (rng.chance(0.02)) return "s".repeat(rng.range(4_000, 1_100_000)); // past max_control_line
  return rng.chance(0.8) ? rng.pick(SUBJECTS) : rng.bytes(rng.range(1, 12)).toString("latin1");
}

function payload(rng: Rng): Buffer {
  return rng.chance(0.03) ? Buffer.alloc(rng.range(60_000, 1_200_000), 0x61) : rng.bytes(rng.range(0, 64));
}

/** One valid-looking NATS command (PUB/HPUB/SUB/UNSUB/CONNECT/PING/PONG). */
export function natsCommand(rng: Rng): string {
  switch (rng.int(8)) {
    case 0: {
      const p = payload(rng).toString("latin1");
      return `PUB ${subject(rng)}${rng.chance(0.3) ? " _INBOX.r" : ""} ${p.length}\r\n${p}\r\n`;
    }
    case 1: {
      const h = `NATS/1.0${rng.chance(0.2) ? " 503" : ""}\r\n${rng.chance(0.8) ? "K: V\r\n" : ""}\r\n`;
      const p = payload(rng).toString("latin1");
      return `HPUB ${subject(rng)} ${h.length} ${h.length + p.length}\r\n${h}${p}\r\n`;
    }
    case 2: return `SUB ${subject(rng)}${rng.chance(0.3) ? " q1" : ""} ${rng.range(1, 9)}\r\n`;
    case 3: return `UNSUB ${rng.range(1, 9)}${rng.chance(0.5) ? ` ${rng.pick(INTERESTING_NUMBERS)}` : ""}\r\n`;
    case 4: return `CONNECT ${connectJson(rng, { verbose: rng.chance(0.5), pedantic: rng.chance(0.5), protocol: 1, headers: true })}\r\n`;
    case 5: return "PING\r\n";
    case 6: return "PONG\r\n";
    default: return `PUB foo ${rng.pick(INTERESTING_NUMBERS)}\r\n`; // sizes that lie
  }
}

/** A stream of 1–8 commands, usually starting with CONNECT, then mutated. */
export function natsStream(rng: Rng): Buffer {
  let text = rng.chance(0.8) ? 'CONNECT {"verbose":false,"pedantic":true,"headers":true,"protocol":1}\r\n' : "";
  for (let i = rng.range(1, 8); i > 0; i--) text += natsCommand(rng);
  const bytes = Buffer.from(text, "latin1");
  return rng.chance(0.6) ? mutateBytes(rng, bytes) : bytes;
}

// ---- CONNECT JSON ----

/** Every field nats-server reads from CONNECT. */
export const CONNECT_FIELDS = [
  "verbose", "pedantic", "tls_required", "auth_token", "user", "pass", "name", "lang", "version", "protocol",
  "echo", "sig", "jwt", "nkey", "headers", "no_responders", "account", "new_account",
];

/** `base` with 0–4 fields set to JSON values of any type; sometimes nested 10,000 deep or broken as text. */
export function connectJson(rng: Rng, base: Record<string, unknown>): string {
  const o: Record<string, unknown> = { ...base };
  for (let i = rng.int(5); i > 0; i--) o[rng.pick(CONNECT_FIELDS)] = jsonValue(rng);
  let text = JSON.stringify(o);
  if (rng.chance(0.03)) text = text.replace(/}$/, `,"deep":${deepJson(rng.pick([100, 10_000, 100_000]), rng.chance(0.5))}}`);
  if (rng.chance(0.15)) text = mutateBytes(rng, Buffer.from(text, "latin1")).toString("latin1");
  return text;
}

// ---- WebSocket ----

const METHODS = ["GET", "GET", "GET", "POST", "HEAD", "OPTIONS", "get", "G\u00c9T", ""];
const ORIGINS = ["http://127.0.0.1", "null", "https://evil.example", "http://[::1]:99999", "\u0000", "http://a:b@c"];

/** An upgrade request to `path`, usually valid, with headers changed, added, repeated or huge. */
export function upgrade(rng: Rng, path: string, extra: Record<string, string> = {}): Buffer {
  const headers: Record<string, string | undefined> = { ...extra };
  const maybe = (name: string, values: string[]) => { if (rng.chance(0.15)) headers[name] = rng.chance(0.2) ? undefined : rng.pick(values); };
  maybe("Host", ["", "127.0.0.1:1", "x".repeat(10_000)]);
  maybe("Upgrade", ["WebSocket", "websocket, h2c", "", "websockets"]);
  maybe("Connection", ["keep-alive, Upgrade", "close", "upgrade"]);
  maybe("Sec-WebSocket-Key", ["", "short", WS_KEY.repeat(50), "!!!!!!!!!!!!!!!!!!!!!!=="]);
  maybe("Sec-WebSocket-Version", ["8", "14", "13, 8", "", "-1"]);
  maybe("Origin", ORIGINS);
  maybe("Sec-WebSocket-Extensions", ["permessage-deflate", "permessage-deflate; client_max_window_bits=8", "permessage-deflate; server_max_window_bits=99", "x-webkit-deflate-frame", "permessage-deflate; ;;"]);
  maybe("Sec-WebSocket-Protocol", ["mqtt", "mqttv3.1", "", "a, b, c"]);
  maybe("Cookie", ["jwt=%E0%A4%A", "a=b", ";;;", "jwt="]);
  let text = upgradeRequest("127.0.0.1", {
    method: rng.pick(METHODS),
    path: rng.chance(0.95) ? path : rng.pick(["/x", "*", "/" + "a".repeat(70_000), "/mqtt?x=1", "http://h/"]),
    version: rng.chance(0.95) ? "HTTP/1.1" : rng.pick(["HTTP/1.0", "HTTP/2", "HTTP/1.1 extra", ""]),
    headers,
  });
  if (rng.chance(0.02)) {
    const many = Array.from({ length: rng.pick([100, 10_000]) }, (_, i) => `X-${i}: v\r\n`).join("");
    text = text.replace(/\r\n\r\n$/, `\r\n${many}\r\n`);
  }
  const bytes = Buffer.from(text, "latin1");
  return rng.chance(0.2) ? mutateBytes(rng, bytes) : bytes;
}

const OPCODES = [0, 1, 2, 2, 2, 8, 9, 10, 3, 7, 11, 15];

/** 0–5 frames carrying `inner` (protocol bytes), with odd opcodes, RSV bits, masks, fragments and lying lengths. */
export function frames(rng: Rng, inner: () => Buffer): Buffer {
  const out: Buffer[] = [];
  for (let i = rng.int(6); i > 0; i--) {
    const opcode = rng.pick(OPCODES);
    let data = opcode >= 8 && rng.chance(0.8) ? rng.bytes(rng.range(0, 8)) : inner();
    if (opcode === 8 && rng.chance(0.5)) data = Buffer.concat([Buffer.from([rng.int(256), rng.int(256)]), data]);
    const lie = rng.chance(0.1)
      ? { length: rng.pick<number | bigint>([126, 65_535, 65_536, 2 ** 32, 48 * 2 ** 20, 2n ** 63n - 1n, 2n ** 64n - 1n, 0]) }
      : {};
    const fin = rng.chance(0.8);
    if (rng.chance(0.2) && data.length > 2) { // a fragmented message: first part, then a continuation
      const cut = rng.range(1, data.length - 1);
      out.push(clientFrame(data.subarray(0, cut), { opcode, fin: false, mask: rng.chance(0.95) }));
      out.push(clientFrame(data.subarray(cut), { opcode: 0, fin, mask: rng.chance(0.95) }));
    } else {
      out.push(clientFrame(data, { opcode, fin, mask: rng.chance(0.95), rsv: rng.chance(0.1) ? rng.int(8) : 0, ...lie }));
    }
  }
  return Buffer.concat(out);
}

// ---- MQTT ----

const TOPICS = ["a/b", "a/+", "a/#", "#", "+", "", "/", "$SYS/x", "a//b", "a/b#", "a\u0000b", "\ud800", "x".repeat(300)];

/** A valid MQTT 3.1.1 packet of any type, from mqtt-packet's generator. */
function mqttPacketOf(rng: Rng, cmd: Packet["cmd"]): Packet {
  const messageId = rng.chance(0.1) ? rng.pick([0, 65_535]) : rng.range(1, 20);
  const qos = rng.int(3) as 0 | 1 | 2;
  switch (cmd) {
    case "connect":
      return {
        cmd, protocolId: "MQTT", protocolVersion: 4, clean: rng.chance(0.7), keepalive: rng.pick([0, 1, 60, 65_535]),
        clientId: rng.chance(0.7) ? `c${rng.int(5)}` : "",
        ...(rng.chance(0.2) ? { will: { topic: rng.pick(TOPICS), payload: rng.bytes(rng.range(0, 10)), qos, retain: rng.chance(0.5) } } : {}),
        ...(rng.chance(0.2) ? { username: "u", password: rng.bytes(rng.range(0, 10)) } : {}),
      } as Packet;
    case "publish":
      return { cmd, topic: rng.pick(TOPICS.slice(0, 2)), payload: rng.bytes(rng.range(0, 32)), qos, retain: rng.chance(0.2), dup: rng.chance(0.1), messageId } as Packet;
    case "subscribe":
      return { cmd, messageId, subscriptions: Array.from({ length: rng.range(1, 3) }, () => ({ topic: rng.pick(TOPICS), qos })) } as Packet;
    case "unsubscribe":
      return { cmd, messageId, unsubscriptions: [rng.pick(TOPICS)] } as Packet;
    case "puback": case "pubrec": case "pubrel": case "pubcomp":
      return { cmd, messageId } as Packet;
    default:
      return { cmd } as Packet;
  }
}

const CMDS: Packet["cmd"][] = ["connect", "publish", "publish", "subscribe", "unsubscribe", "puback", "pubrec", "pubrel", "pubcomp", "pingreq", "disconnect"];

function generateSafely(p: Packet): Buffer {
  try {
    return mqttPacket.generate(p, { protocolVersion: 4 });
  } catch {
    return Buffer.from([0xc0, 0x00]); // a topic mqtt-packet refuses: send a PINGREQ instead
  }
}

/** 1–6 packets: usually CONNECT first, sometimes not (PUBLISH before CONNECT), two CONNECTs,
 *  packets after DISCONNECT; then lengths, flags, QoS bits, UTF-8 or ids broken. */
export function mqttPackets(rng: Rng): Buffer {
  const cmds: Packet["cmd"][] = rng.chance(0.85) ? ["connect"] : [];
  for (let i = rng.range(0, 5); i > 0; i--) cmds.push(rng.pick(CMDS));
  const packets = cmds.map((c) => generateSafely(mqttPacketOf(rng, c)));
  for (const [i, p] of packets.entries()) {
    if (!rng.chance(0.3) || p.length < 2) continue;
    const b = Buffer.from(p);
    switch (rng.int(5)) {
      case 0: b[0] = (b[0] & 0xf0) | rng.int(16); break; // flags, QoS bits (3 included), DUP, RETAIN
      case 1: b[1] = rng.pick([0x00, 0x7f, 0x80, 0xff]); break; // remaining length
      case 2: packets[i] = Buffer.concat([b.subarray(0, 1), Buffer.from([0xff, 0xff, 0xff, 0x7f]), b.subarray(2)]); continue; // 256 MB announced
      case 3: { const at = rng.range(2, b.length - 1); b[at] = rng.pick([0x00, 0xc0, 0xed, 0xff]); break; } // UTF-8 / ids
      default: packets[i] = mutateBytes(rng, b); continue;
    }
    packets[i] = b;
  }
  return Buffer.concat(packets);
}

/** A NATS JWT or NKEY-ish string broken in one of the ways decoders trip over. */
export function mutateToken(rng: Rng, token: string): string {
  const parts = token.split(".");
  switch (rng.int(7)) {
    case 0: return parts.slice(0, rng.int(parts.length)).join(".");
    case 1: return [...parts].reverse().join(".");
    case 2: { // claims re-encoded with fields of the wrong type (signature no longer matches)
      const claims = { iss: jsonValue(rng, 1), sub: jsonValue(rng, 1), exp: jsonValue(rng, 1), nats: jsonValue(rng, 2), type: jsonValue(rng, 1) };
      return [parts[0], Buffer.from(JSON.stringify(claims)).toString("base64url"), parts[2] ?? ""].join(".");
    }
    case 3: return `${parts[0]}.${Buffer.from(rng.pick(TOKENS) + "{").toString("base64url")}.${parts[2] ?? ""}`;
    case 4: return token + rng.pick(["=", "==", "\u0000", ".", "%", "+/"]);
    case 5: return rng.chance(0.5) ? token.toLowerCase() : token.repeat(rng.range(2, 50));
    default: return mutateBytes(rng, Buffer.from(token, "latin1"), rng.range(1, 3)).toString("latin1");
  }
}
