// One fuzzer per input surface. Network surfaces run against a real bin/meshbroker (harness.ts);
// the config parser and the JWT/NKEY decoders run in-process.
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { ConfigError, loadConfigText } from "../../services/common/config/index.js";
import { decodeNatsJwt, isNatsJwt, NatsJwtError, natsClaimsOf, unarmorNatsJwt } from "../../services/common/nats-jwt.js";
import { base32Decode, decodePublicNkey, decodeSignature, isPublicNkey, verifyNkeySignature } from "../../services/common/nkeys.js";
import { hasWildcard, isValidLiteralSubject, isValidSubject, subjectMatches } from "../../services/common/subject.js";
import {
  connectJson, frames, mqttPackets, mutateToken, natsCommand, natsStream, OPEN, oidcVariant, operatorVariant, step,
  upgrade, userVariants,
} from "./generators.js";
import type { NetSurface, Surface, UnitSurface, Variant } from "./harness.js";
import { jsonValue, mutateBytes, TOKENS, type Rng } from "./rng.js";

/** NATS protocol over TCP: mutated PUB/HPUB/SUB/UNSUB/CONNECT/PING streams. */
const nats: NetSurface = {
  kind: "net",
  name: "nats",
  variants: async () => [OPEN],
  input: (rng) => Array.from({ length: rng.range(1, 3) }, () => step(rng, "nats", natsStream(rng))),
};

/** WebSocket upgrade requests and frames, on the NATS path and on /mqtt. */
const websocket: NetSurface = {
  kind: "net",
  name: "websocket",
  variants: async () => [{ ...OPEN, config: OPEN.config.replace("no_tls: true", "no_tls: true, compression: true") }],
  input: (rng) => {
    const mqtt = rng.chance(0.4);
    const inner = mqtt ? () => mqttPackets(rng) : () => Buffer.from(natsCommand(rng), "latin1");
    const bytes = Buffer.concat([upgrade(rng, mqtt ? "/mqtt" : "/"), frames(rng, inner)]);
    return [step(rng, "ws", bytes, 0.9)];
  },
};

/** MQTT 3.1.1 packets, structure-aware, over TCP. */
const mqtt: NetSurface = {
  kind: "net",
  name: "mqtt",
  variants: async () => [OPEN],
  input: (rng) => Array.from({ length: rng.range(1, 3) }, () => step(rng, "mqtt", mqttPackets(rng))),
};

type AuthVariant = Variant & { base: Record<string, unknown> };

/** CONNECT with every field of every JSON type, against every auth method, over TCP and WebSocket. */
const connect: NetSurface = {
  kind: "net",
  name: "connect",
  variants: async () => {
    const [users, token] = userVariants();
    const op = await operatorVariant("jwt", false);
    const list: AuthVariant[] = [
      { ...users, base: { user: "u1", pass: "p1" } },
      { ...users, name: "bcrypt", base: { user: "u2", pass: "bcrypt-pw" } },
      { ...users, name: "nkey", base: { nkey: users.nkey, sig: "AAAA" } },
      { ...token, base: { auth_token: "s3cret" } },
      { ...op, base: { jwt: op.user.jwt, sig: "AAAA" } },
      { ...oidcVariant(), base: { auth_token: "eyJhbGciOiJSUzI1NiJ9.e30.AAAA" } },
    ];
    return list;
  },
  input: (rng, v) => {
    const base = { verbose: false, pedantic: false, protocol: 1, headers: true, ...(v as AuthVariant).base };
    const text = `CONNECT ${connectJson(rng, base)}\r\n${rng.chance(0.7) ? "PING\r\n" : ""}${rng.chance(0.3) ? natsCommand(rng) : ""}`;
    const bytes = Buffer.from(text, "latin1");
    return [rng.chance(0.7) ? step(rng, "nats", bytes) : step(rng, "ws", Buffer.concat([upgrade(rng, "/"), frames(rng, () => bytes)]), 0.9)];
  },
};

/** WebSocket upgrades with `jwt_cookie` configured: cookies and headers. */
const cookies: NetSurface = {
  kind: "net",
  name: "cookies",
  variants: async () => [await operatorVariant("jwt-cookie", true)],
  input: (rng, v) => {
    const { bearer } = v as Awaited<ReturnType<typeof operatorVariant>>;
    const value = rng.pick([
      () => bearer.jwt,
      () => mutateToken(rng, bearer.jwt),
      () => encodeURIComponent(bearer.jwt),
      () => `"${bearer.jwt}"`,
      () => rng.pick(["%E0%A4%A", "%", "%%", "%zz", "%C0%80", "%ED%A0%80", ""]),
      () => rng.bytes(rng.range(1, 40)).toString("latin1"),
      () => "a".repeat(rng.pick([1_000, 100_000])),
    ])();
    const sep = rng.pick(["; ", ";", ", ", " ;", "\t"]);
    const cookie = rng.pick([`jwt=${value}`, `theme=dark${sep}jwt=${value}`, `jwt=${value}${sep}jwt=x`, `JWT=${value}`, `jwt${value}`, value]);
    const extra: Record<string, string> = { Cookie: cookie };
    if (rng.chance(0.3)) extra[rng.pick(["Cookie2", "cookie", "Authorization", "X-Forwarded-For"])] = rng.pick(TOKENS);
    const connectLine = `CONNECT ${connectJson(rng, { verbose: false, pedantic: false, protocol: 1 })}\r\nPING\r\n`;
    const bytes = Buffer.concat([upgrade(rng, "/", extra), frames(rng, () => Buffer.from(connectLine, "latin1"))]);
    return [step(rng, "ws", bytes, 0.95)];
  },
};

/** Mutated user JWTs, NKEYs and signatures in CONNECT (operator mode and NKEY users). */
const jwt: NetSurface = {
  kind: "net",
  name: "jwt",
  variants: async () => [await operatorVariant("jwt", false), userVariants()[0]],
  input: (rng, v) => {
    const op = v as Partial<Awaited<ReturnType<typeof operatorVariant>>> & { nkey?: string };
    const fields: Record<string, unknown> = { verbose: false, pedantic: false, protocol: 1 };
    if (op.user) fields.jwt = rng.chance(0.8) ? mutateToken(rng, rng.chance(0.5) ? op.user.jwt : op.bearer!.jwt) : op.user.jwt;
    fields.nkey = rng.chance(0.7) ? mutateToken(rng, op.user?.pub ?? op.nkey ?? "") : (op.user?.pub ?? op.nkey);
    fields.sig = rng.pick([
      () => rng.bytes(64).toString("base64url"),
      () => rng.bytes(64).toString("base64"),
      () => rng.bytes(rng.range(0, 100)).toString("base64"),
      () => jsonValue(rng, 1),
      () => "=".repeat(rng.range(1, 8)),
    ])();
    const bytes = Buffer.from(`CONNECT ${JSON.stringify(fields)}\r\nPING\r\n`, "latin1");
    return [step(rng, "nats", rng.chance(0.1) ? mutateBytes(rng, bytes) : bytes)];
  },
};

// ---- in-process ----

const SEED_CONFIGS = [
  `port: 4222\nmax_payload: 1MB\nping_interval: "2m"\nauthorization { users: [{user: a, password: b, permissions: {publish: "x.>", subscribe: ["y", "z.*"]}}] }\n`,
  `accounts {\n  A: { users: [{user: a, password: a}], exports: [{stream: "s.>"}] }\n  B: { users: [{user: b, password: b}], imports: [{stream: {account: A, subject: "s.>"}}] }\n}\nno_auth_user: a\n`,
  `pw = "secret"\nperms = { publish: ">" }\nauthorization { user: u, password: $pw, permissions: $perms, timeout: 2 }\n`,
  `websocket { port: 8080, no_tls: true, same_origin: true, allowed_origins: ["http://x"], compression: true, jwt_cookie: "jwt" }\nmqtt { port: 1883, ack_wait: "30s", max_ack_pending: 100 }\n`,
  `include "inc.conf"\nlisten: "127.0.0.1:4222"\nhttp: 8222\ntls { cert_file: "c.pem", key_file: "k.pem", verify: true, timeout: 2 }\n`,
  `server_name: $HOME\nlame_duck_duration: "2m"\nlame_duck_grace_period: "10s"\nwrite_deadline: 10\nmax_connections: 1K\nmax_pending: 64MB\n`,
  `operator: "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.AAAA"\nresolver: MEMORY\nresolver_preload { AAAA: "x.y.z" }\n`,
  `oidc { jwks_file: "j.json", issuer: "https://i", audience: "a", user_claim: "u" }\njetstream { store_dir: "/tmp/x" }\ncluster { port: 6222 }\n`,
];

interface ConfigInput {
  text: string;
  /** Files beside it (name → text), for includes. */
  files: Record<string, string>;
}

/** The config parser: random and mutated nats-server configs, with includes and variables. Each
 *  either loads or throws a ConfigError whose message is `file:line: message`. */
const config: UnitSurface<ConfigInput> = {
  kind: "unit",
  name: "config",
  input: (rng: Rng) => {
    const gen = () => {
      let text = rng.pick(SEED_CONFIGS);
      if (rng.chance(0.3)) text += rng.pick(SEED_CONFIGS);
      if (rng.chance(0.2)) text = `${"{a: ".repeat(rng.pick([10, 1_000, 20_000]))}1`; // deep nesting
      if (rng.chance(0.1)) text = `include ${rng.pick(['"inc.conf"', "self.conf", '"../x"', '""', "inc.conf\ninclude inc.conf"])}\n${text}`;
      return mutateBytes(rng, Buffer.from(text, "latin1"), rng.range(0, 6)).toString(rng.chance(0.5) ? "latin1" : "utf8");
    };
    const files = { "inc.conf": rng.chance(0.2) ? 'include "inc.conf"\n' : gen(), "self.conf": 'include "self.conf"\n' };
    return { text: gen(), files };
  },
  check: ({ text, files }, dir) => {
    const sub = path.join(dir, "config");
    mkdirSync(sub, { recursive: true });
    for (const [name, body] of Object.entries(files)) writeFileSync(path.join(sub, name), body);
    try {
      loadConfigText(text, path.join(sub, "main.conf"), { HOME: "/home/x" });
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      if (!/^[^\n]+:\d+: \S/.test(err.message)) throw new Error(`not file:line: message: ${JSON.stringify(err.message.slice(0, 200))}`);
    }
  },
};

/** The JWT, NKEY, signature and subject decoders in services/common, called directly. */
const decoders: UnitSurface<{ token: string }> = {
  kind: "unit",
  name: "decoders",
  input: (rng) => {
    const sample = rng.pick([
      "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJpc3MiOiJBQUFBIiwibmF0cyI6eyJ2ZXJzaW9uIjoyfX0.AAAA",
      "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4",
      "-----BEGIN NATS USER JWT-----\neyJ0.eyJ1.AAAA\n------END NATS USER JWT------\n",
      "foo.*.bar.>",
      "dGhlIHNhbXBsZSBub25jZQ==",
    ]);
    return { token: rng.chance(0.1) ? String(jsonValue(rng, 0)) : mutateToken(rng, sample) };
  },
  check: ({ token }) => {
    try {
      decodeNatsJwt(token, "account", "operator");
    } catch (err) {
      if (!(err instanceof NatsJwtError)) throw err;
    }
    isNatsJwt(token);
    natsClaimsOf(token);
    unarmorNatsJwt(token);
    decodePublicNkey(token);
    isPublicNkey(token, "user");
    base32Decode(token);
    const sig = decodeSignature(token);
    verifyNkeySignature(token, token, sig ?? Buffer.from(token));
    isValidSubject(token);
    isValidLiteralSubject(token);
    hasWildcard(token);
    subjectMatches(token, token);
    subjectMatches("a.>", token);
  },
};

export const SURFACES: readonly Surface[] = [nats, websocket, mqtt, connect, cookies, jwt, config as UnitSurface, decoders as UnitSurface];
