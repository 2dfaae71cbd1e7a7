// The `websocket {}` block (alias `ws`): what buildOptions makes of it, the checks nats-server 2.9
// makes when it starts (websocket.go validateWebsocketOptions), and the same configs through the
// real nats-server when it is installed.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  buildOptions,
  loadConfigText,
  parseConfigText,
  validateOptions,
  type WebsocketConfig,
} from "../../services/common/config/index.js";
import { applyDefaults } from "../../services/common/config/build.js";
import { parseAllowedOrigin } from "../../services/common/config/origin.js";
import { newOperator, operatorConfig, type TestOperator } from "../helpers/creds.js";
import { NATS_SERVER_BIN } from "../helpers/nats-server.js";
import { errorOf, expectSameVerdict, meshbrokerVerdict, natsServerVerdict, selfSignedPair } from "../helpers/config.js";

const FILE = "ws.conf";
const build = (text: string) => buildOptions(parseConfigText(text, FILE, {}), FILE);
const load = (text: string) => loadConfigText(text, FILE, {});


const NKEY_USER = "UAS4VJSAFF67OL7O3Q72GW2D6HFRVZOYXJYIQBJTKPARIICN6SGME6MT";

// Certificate files: their contents are only read by nats-server, so the differential tests
// write a real pair (openssl) while the others only need files that exist.
let dir: string;
let cert: string, key: string;
let op: TestOperator;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "meshbroker-config-ws-"));
  writeFileSync((cert = join(dir, "cert.pem")), "cert");
  writeFileSync((key = join(dir, "key.pem")), "key");
  op = await newOperator();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const DEFAULT_WS: WebsocketConfig = {
  host: "0.0.0.0", port: 8080, noTls: true, sameOrigin: false, allowedOrigins: [], compression: false, handshakeTimeoutMs: 0,
};

describe("websocket block: buildOptions", () => {
  // [name, config, the expected websocket options (undefined: no listener)]
  type Expected = Partial<WebsocketConfig> | undefined;
  const cases: [string, () => string, Expected | (() => Expected)][] = [
    ["port only: host 0.0.0.0", () => "websocket { port: 8080, no_tls: true }", {}],
    ["ws alias", () => "ws { port: 8080, no_tls: true }", {}],
    ["listen host:port", () => 'websocket { listen: "127.0.0.1:8443", no_tls: true }', { host: "127.0.0.1", port: 8443 }],
    ["listen :port", () => 'websocket { listen: ":8443", no_tls: true }', { port: 8443 }],
    ["listen IPv6", () => 'websocket { listen: "[::1]:8443", no_tls: true }', { host: "::1", port: 8443 }],
    ["listen as a port number", () => "websocket { listen: 8443, no_tls: true }", { port: 8443 }],
    ["host and port", () => "websocket { host: 127.0.0.1, port: 8080, no_tls: true }", { host: "127.0.0.1" }],
    ["net is host", () => "websocket { net: 10.0.0.1, port: 8080, no_tls: true }", { host: "10.0.0.1" }],
    ["a later key wins", () => 'websocket { listen: "127.0.0.1:1234", port: 8080, no_tls: true }', { host: "127.0.0.1" }],
    ["port -1 is a random port", () => "websocket { port: -1, no_tls: true }", { port: 0 }],
    ["no port: no listener", () => "websocket { host: 127.0.0.1, no_tls: true, compression: true }", undefined],
    ["port 0: no listener", () => "websocket { port: 0 }", undefined],
    ['listen "host:0": no listener', () => 'websocket { listen: "127.0.0.1:0" }', undefined],
    ["advertise", () => 'websocket { port: 8080, no_tls: true, advertise: "ws.example.com:443" }', { advertise: "ws.example.com:443" }],
    ["tls", () => `websocket { port: 8080, tls { cert_file: "${cert}", key_file: "${key}", verify_and_map: true, timeout: 3 } }`, () => ({
      noTls: false,
      tls: { certFile: cert, keyFile: key, verify: true, verifyAndMap: true, timeoutMs: 3000 },
    })],
    ["tls and no_tls: both kept (tls wins at run time)", () => `websocket { port: 8080, no_tls: true, tls { cert_file: "${cert}", key_file: "${key}" } }`, () => ({
      tls: { certFile: cert, keyFile: key, verify: false, verifyAndMap: false, timeoutMs: 2000 },
    })],
    ["no_tls: false", () => "websocket { port: 8080, no_tls: false }", { noTls: false }],
    ["same_origin", () => "websocket { port: 8080, no_tls: true, same_origin: true }", { sameOrigin: true }],
    ["compression", () => "websocket { port: 8080, no_tls: true, compression: true }", { compression: true }],
    ["compress", () => "websocket { port: 8080, no_tls: true, compress: yes }", { compression: true }],
    ["handshake_timeout in seconds", () => "websocket { port: 8080, no_tls: true, handshake_timeout: 3 }", { handshakeTimeoutMs: 3000 }],
    ["handshake_timeout as a duration", () => 'websocket { port: 8080, no_tls: true, handshake_timeout: "2.5s" }', { handshakeTimeoutMs: 2500 }],
    ["handshake_timeout 0", () => 'websocket { port: 8080, no_tls: true, handshake_timeout: "0" }', { handshakeTimeoutMs: 0 }],
    ["negative handshake_timeout is none", () => 'websocket { port: 8080, no_tls: true, handshake_timeout: "-2s" }', { handshakeTimeoutMs: 0 }],
    ["jwt_cookie", () => "websocket { port: 8080, no_tls: true, jwt_cookie: my_jwt }", { jwtCookie: "my_jwt" }],
    ["no_auth_user", () => "websocket { port: 8080, no_tls: true, no_auth_user: bob }", { noAuthUser: "bob" }],
    ["authorization user/pass", () => "websocket { port: 8080, no_tls: true, authorization { user: u, pass: p } }", {
      authorization: { user: "u", password: "p" },
    }],
    ["authentication username/password/timeout", () => "websocket { port: 8080, no_tls: true, authentication { username: u, password: p, timeout: 1.5 } }", {
      authorization: { user: "u", password: "p", timeoutMs: 1500 },
    }],
    ["authorization token, timeout 0 = the main one", () => "websocket { port: 8080, no_tls: true, authorization { token: t, timeout: 0 } }", {
      authorization: { token: "t" },
    }],
    ["a variable defined in the block", () => "websocket { p = 8080, port: $p, no_tls: true }", {}],
  ];
  it.each(cases)("%s", (_n, text, want) => {
    const expected = typeof want === "function" ? want() : want;
    const { options, warnings } = build(text());
    expect(warnings).toEqual([]);
    expect(options.pending).toEqual({});
    if (expected === undefined) expect(options.websocket).toBeUndefined();
    else expect(options.websocket).toEqual({ ...DEFAULT_WS, ...expected });
  });

  it("warns about tls keys it ignores, naming the websocket listener", () => {
    const { warnings } = build(`websocket {\n  port: 8080\n  tls { cert_file: "${cert}", key_file: "${key}", insecure: true }\n}`);
    expect(warnings).toEqual([`${FILE}:3: "insecure" has no effect on the websocket listener, ignored`]);
  });

  it("reads every allowed_origins alias, a string or a list", () => {
    const aliases = ["allowed_origins", "allowed_origin", "allow_origins", "allow_origin", "origins", "origin"];
    for (const alias of aliases) {
      const one = build(`websocket { port: 8080, no_tls: true, ${alias}: "https://a.com" }`).options.websocket!;
      expect(one.allowedOrigins).toEqual([{ scheme: "https", host: "a.com", port: 443 }]);
      const two = build(`websocket { port: 8080, no_tls: true, ${alias}: ["http://a.com", "http://b.com:8080"] }`).options.websocket!;
      expect(two.allowedOrigins).toEqual([{ scheme: "http", host: "a.com", port: 80 }, { scheme: "http", host: "b.com", port: 8080 }]);
    }
    expect(build("websocket { port: 8080, no_tls: true, allowed_origins: [] }").options.websocket!.allowedOrigins).toEqual([]);
  });
});

describe("parseAllowedOrigin", () => {
  // [origin, scheme, host, port]
  const ok: [string, "http" | "https", string, number][] = [
    ["http://www.example.com", "http", "www.example.com", 80],
    ["https://www.example.com", "https", "www.example.com", 443],
    ["https://www.example.com:8443", "https", "www.example.com", 8443],
    ["http://Www.Example.COM", "http", "www.example.com", 80],
    ["HTTPS://X.com", "https", "x.com", 443],
    ["https://x.com:8443/path?q=1#frag", "https", "x.com", 8443],
    ["http://user:pass@x.com", "http", "x.com", 80],
    ["http://[::1]:8080", "http", "::1", 8080],
    ["https://[::1]", "https", "::1", 443],
    ["http://127.0.0.1", "http", "127.0.0.1", 80],
    ["http://h.com:", "http", "h.com", 80],
    ["http://bücher.de", "http", "bücher.de", 80],
  ];
  it.each(ok)("%s", (origin, scheme, host, port) => {
    expect(parseAllowedOrigin(origin)).toEqual({ scheme, host, port });
  });

  // Go's url.Parse errors, as nats-server reports them when it starts.
  const errors: [string, string][] = [
    ["http://[::1", `unable to parse allowed origin: parse "http://[::1": missing ']' in host`],
    ["http://a b", `unable to parse allowed origin: parse "http://a b": invalid character " " in host name`],
    ["http://a{b}", `unable to parse allowed origin: parse "http://a{b}": invalid character "{" in host name`],
    ["http://host:abc", `unable to parse allowed origin: parse "http://host:abc": invalid port ":abc" after host`],
    ["http://[::1]x", `unable to parse allowed origin: parse "http://[::1]x": invalid port "x" after host`],
    [":nope", `unable to parse allowed origin: parse ":nope": missing protocol scheme`],
    ["http://%zz", `unable to parse allowed origin: parse "http://%zz": invalid URL escape "%zz"`],
    ["http://%41.com", `unable to parse allowed origin: parse "http://%41.com": invalid URL escape "%41"`],
    ["http://x/%zz", `unable to parse allowed origin: parse "http://x/%zz": invalid URL escape "%zz"`],
    ["http://x/#%zz", `unable to parse allowed origin: parse "http://x/#%zz": invalid URL escape "%zz"`],
    ["http://a\tb", `unable to parse allowed origin: parse "http://a\\tb": net/url: invalid control character in URL`],
    ["1a:b", `unable to parse allowed origin: parse "1a:b": first path segment in URL cannot contain colon`],
    ["http://a b@x.com", `unable to parse allowed origin: parse "http://a b@x.com": net/url: invalid userinfo`],
    // nats-server logs these and skips them (every origin is then allowed if none is left).
    ["www.example.com", `error parsing allowed origin: parse "www.example.com": invalid URI for request`],
    ["null", `error parsing allowed origin: parse "null": invalid URI for request`],
    ["http://x.com#a b", `error parsing allowed origin: parse "http://x.com#a b": invalid character "#" in host name`],
    // nats-server keeps these, and no browser origin ever matches them.
    ["ftp://x.com", `allowed origin "ftp://x.com" is not an http:// or https:// origin with a host`],
    ["http://", `allowed origin "http://" is not an http:// or https:// origin with a host`],
    ["http:x.com", `allowed origin "http:x.com" is not an http:// or https:// origin with a host`],
    ["/path", `allowed origin "/path" is not an http:// or https:// origin with a host`],
    ["http://::1", `allowed origin "http://::1" is not an http:// or https:// origin with a host`],
  ];
  it.each(errors)("error: %s", (origin, message) => {
    expect(() => parseAllowedOrigin(origin)).toThrow(new Error(message));
  });
});

describe("websocket block: errors from buildOptions", () => {
  // [name, config, line, reason]
  const errors: [string, () => string, number, string | (() => string)][] = [
    ["not a map", () => "websocket: 8080", 1, '"websocket" must be a map, got integer 8080'],
    ["unknown key", () => "ws {\n  port: 8080\n  no_tsl: true\n}", 3, 'unknown field "no_tsl" in ws'],
    ["users in its authorization", () => "websocket {\n  authorization {\n    users: [ {user: a, password: b} ]\n  }\n}", 3,
      'unknown field "users" in websocket.authorization'],
    ["nkeys in its authorization", () => "websocket {\n  authorization {\n    nkeys: []\n  }\n}", 3,
      'unknown field "nkeys" in websocket.authorization'],
    ["unknown tls key", () => "websocket {\n  tls {\n    cert: x\n  }\n}", 3, 'unknown field "cert" in websocket.tls'],
    ["port not a number", () => 'websocket {\n  port: "x"\n}', 2, '"port" must be an integer, got string "x"'],
    ["port out of range", () => "websocket {\n  port: 70000\n}", 2, "invalid port 70000 (use 0 for the default, -1 for a random port)"],
    ["listen without a port", () => 'websocket {\n  listen: "127.0.0.1"\n}', 2, 'could not parse address string "127.0.0.1"'],
    ["listen with a bad port", () => 'websocket {\n  listen: "127.0.0.1:x"\n}', 2, 'could not parse port "x"'],
    ["host not a string", () => "websocket {\n  host: 1\n}", 2, '"host" must be a string, got integer 1'],
    ["no_tls not a boolean", () => "websocket {\n  no_tls: 1\n}", 2, '"no_tls" must be a boolean (true/false, yes/no, on/off), got integer 1'],
    ["same_origin not a boolean", () => 'websocket {\n  same_origin: "x"\n}', 2, '"same_origin" must be a boolean (true/false, yes/no, on/off), got string "x"'],
    ["compression not a boolean", () => "websocket {\n  compression: 1\n}", 2, '"compression" must be a boolean (true/false, yes/no, on/off), got integer 1'],
    ["advertise not a string", () => "websocket {\n  advertise: 1\n}", 2, '"advertise" must be a string, got integer 1'],
    ["jwt_cookie not a string", () => "websocket {\n  jwt_cookie: true\n}", 2, '"jwt_cookie" must be a string, got boolean true'],
    // The tls block is checked as the main one, with or without a port (as nats-server).
    ["tls without key_file", () => `websocket {\n  port: 8080\n  tls {\n    cert_file: "${cert}"\n  }\n}`, 3, "missing 'key_file' in TLS configuration"],
    ["tls without cert_file", () => `websocket {\n  tls { key_file: "${key}" }\n}`, 2, "missing 'cert_file' in TLS configuration"],
    ["tls cert_file missing", () => `websocket {\n  tls { cert_file: "${dir}/nope.pem", key_file: "${key}" }\n}`, 2,
      () => `error parsing X509 certificate/key pair: open ${dir}/nope.pem: no such file or directory`],
    ["tls bad pinned cert", () => `websocket {\n  tls { cert_file: "${cert}", key_file: "${key}", pinned_certs: [abc] }\n}`, 2,
      "error parsing tls config, 'pinned_certs' key abc does not look like hex-encoded sha256 of DER encoded SubjectPublicKeyInfo"],
    ["handshake_timeout a float", () => "websocket {\n  handshake_timeout: 1.5\n}", 2, "error parsing handshake timeout: unsupported type float64"],
    ["handshake_timeout a boolean", () => "websocket {\n  handshake_timeout: true\n}", 2, "error parsing handshake timeout: unsupported type bool"],
    ["handshake_timeout bad unit", () => 'websocket {\n  handshake_timeout: "2x"\n}', 2, 'time: unknown unit "x" in duration "2x"'],
    ["handshake_timeout no unit", () => 'websocket {\n  handshake_timeout: "2"\n}', 2, 'time: missing unit in duration "2"'],
    ["allowed_origins not a list", () => "websocket {\n  allowed_origins: 5\n}", 2,
      '"allowed_origins" must be a string or an array of strings (allowed origins), got integer 5'],
    ["allowed_origins with a number", () => 'websocket {\n  origins: [\n    "http://a.com"\n    1\n  ]\n}', 4,
      "array element must be a string (allowed origins), got integer 1"],
    ["authorization not a map", () => "websocket {\n  authorization: x\n}", 2, '"authorization" must be a map, got string "x"'],
    ["authorization timeout a duration", () => 'websocket {\n  authorization {\n    timeout: "5s"\n  }\n}', 3, '"timeout" must be a number of seconds, got string "5s"'],
    ["authorization user not a string", () => "websocket {\n  authorization {\n    user: 1\n  }\n}", 3, '"user" must be a string, got integer 1'],
    // Origins are parsed only for a listener (nats-server checks them when it starts one); the
    // error points at the entry.
    ["unparsable origin", () => 'websocket {\n  port: 8080\n  no_tls: true\n  allowed_origins: [\n    "http://a.com"\n    "http://[::1"\n  ]\n}', 6,
      `unable to parse allowed origin: parse "http://[::1": missing ']' in host`],
    ["unparsable origin as a string", () => 'websocket {\n  port: 8080\n  no_tls: true\n  origin: "http://a b"\n}', 4,
      `unable to parse allowed origin: parse "http://a b": invalid character " " in host name`],
    ["origin without a scheme", () => 'websocket {\n  port: 8080\n  no_tls: true\n  origin: "www.example.com"\n}', 4,
      `error parsing allowed origin: parse "www.example.com": invalid URI for request`],
  ];
  it.each(errors)("error: %s", (_n, text, line, reason) => {
    expect(errorOf(() => build(text())).message).toBe(`${FILE}:${line}: ${typeof reason === "function" ? reason() : reason}`);
  });

  it("does not parse origins when there is no listener", () => {
    expect(build('websocket { allowed_origins: ["http://[::1", "www.example.com"] }').options.websocket).toBeUndefined();
  });

  it("is no longer pending", () => {
    const { options, warnings } = build("ws { port: 8080, no_tls: true }\nleafnodes { port: 7422 }");
    expect(Object.keys(options.pending)).toEqual(["leafnodes"]);
    expect(warnings).toEqual([`${FILE}:2: "leafnodes" is not implemented yet, ignored`]);
  });
});

describe("websocket block: validateOptions (nats-server's checks at start)", () => {
  const opConfig = () => operatorConfig(op, []);
  // [name, config, line, reason]; the websocket block first so lines do not depend on the rest.
  const errors: [string, () => string, number, string][] = [
    ["no tls and no no_tls", () => "port: 4222\nwebsocket {\n  port: 8080\n}", 2, "websocket requires TLS configuration"],
    ["no_tls: false", () => "ws {\n  listen: \"0.0.0.0:8080\"\n  no_tls: false\n}", 1, "websocket requires TLS configuration"],
    ["no_auth_user without users", () => "websocket {\n  port: 8080\n  no_tls: true\n  no_auth_user: bob\n}", 4,
      'no_auth_user: "bob" present, but users are not defined'],
    ["no_auth_user with only nkey users", () => `websocket {\n  port: 8080\n  no_tls: true\n  no_auth_user: bob\n}\nauthorization { users: [ {nkey: ${NKEY_USER}} ] }`, 4,
      'no_auth_user: "bob" present, but users are not defined'],
    ["no_auth_user not a user", () => "websocket {\n  port: 8080\n  no_tls: true\n  no_auth_user: bob\n}\nauthorization { users: [ {user: a, password: b} ] }", 4,
      'no_auth_user: "bob" not present as user in authorization block or account configuration'],
    ["no_auth_user in operator mode", () => `websocket {\n  port: 8080\n  no_tls: true\n  no_auth_user: bob\n}\n${opConfig()}`, 4,
      "no_auth_user not compatible with Trusted Operator"],
    ["username with users", () => "websocket {\n  port: 8080\n  no_tls: true\n  authorization { user: x, pass: y }\n}\nauthorization { users: [ {user: a, password: b} ] }", 4,
      "websocket authentication username not compatible with presence of users/nkeys"],
    ["username with account users", () => "websocket {\n  port: 8080\n  no_tls: true\n  authorization { username: x }\n}\naccounts { A { users: [ {user: a} ] } }", 4,
      "websocket authentication username not compatible with presence of users/nkeys"],
    ["token with nkey users", () => `websocket {\n  port: 8080\n  no_tls: true\n  authentication { token: t }\n}\nauthorization { users: [ {nkey: ${NKEY_USER}} ] }`, 4,
      "websocket authentication token not compatible with presence of users/nkeys"],
    ["jwt_cookie without operators or trusted keys", () => "websocket {\n  port: 8080\n  no_tls: true\n  jwt_cookie: my_jwt\n}", 4,
      'trusted operators or trusted keys configuration is required for JWT authentication via cookie "my_jwt"'],
    // After the main checks, as nats-server.
    ["main checks come first", () => "websocket {\n  port: 8080\n}\nmax_pending: 1MB\nmax_payload: 2MB", 5,
      "max_payload (2097152) cannot be higher than max_pending (1048576)"],
    // The TLS check comes first among the websocket ones.
    ["tls before no_auth_user", () => "websocket {\n  port: 8080\n  no_auth_user: bob\n}", 1, "websocket requires TLS configuration"],
  ];
  it.each(errors)("error: %s", (_n, text, line, reason) => {
    expect(errorOf(() => load(text())).message).toBe(`${FILE}:${line}: ${reason}`);
  });

  const valid: [string, () => string][] = [
    ["no_tls", () => "websocket { port: 8080, no_tls: true }"],
    ["tls", () => `websocket { port: 8080, tls { cert_file: "${cert}", key_file: "${key}" } }`],
    ["no port: nothing is checked", () => 'websocket { no_auth_user: bob, jwt_cookie: c, authorization { user: u }, origins: ["http://[::1"] }\nauthorization { users: [ {user: a} ] }'],
    ["no_auth_user in authorization users", () => "websocket { port: 8080, no_tls: true, no_auth_user: a }\nauthorization { users: [ {user: a, password: b} ] }"],
    ["no_auth_user in an account", () => "websocket { port: 8080, no_tls: true, no_auth_user: a }\naccounts { A { users: [ {user: a, password: b} ] } }"],
    ["only a password with users", () => "websocket { port: 8080, no_tls: true, authorization { pass: p, timeout: 3 } }\nauthorization { users: [ {user: a} ] }"],
    ["user/pass when the main block has a single user", () => "websocket { port: 8080, no_tls: true, authorization { user: x, pass: y } }\nauthorization { user: a, password: b }"],
    ["user and token together", () => "websocket { port: 8080, no_tls: true, authorization { user: x, token: t } }"],
    ["jwt_cookie in operator mode", () => `websocket { port: 8080, no_tls: true, jwt_cookie: my_jwt }\n${opConfig()}`],
    ["jwt_cookie with trusted keys", () => `websocket { port: 8080, no_tls: true, jwt_cookie: my_jwt }\ntrusted: [${op.kp.getPublicKey()}]`],
    ["user/pass in operator mode", () => `websocket { port: 8080, no_tls: true, authorization { user: x, pass: y } }\n${opConfig()}`],
  ];
  it.each(valid)("valid: %s", (_n, text) => {
    expect(() => load(text())).not.toThrow();
  });

  it("checks options built in code, without positions", () => {
    const ws: WebsocketConfig = { ...DEFAULT_WS, noTls: false };
    expect(() => validateOptions(applyDefaults({ websocket: ws }))).toThrow("<options>:0: websocket requires TLS configuration");
    expect(() => validateOptions(applyDefaults({ websocket: { ...ws, noTls: true } }))).not.toThrow();
    expect(() => validateOptions(applyDefaults({ websocket: { ...ws, noTls: true, jwtCookie: "c" } }))).toThrow(
      '<options>:0: trusted operators or trusted keys configuration is required for JWT authentication via cookie "c"',
    );
  });

  it("freezes the websocket options", () => {
    const { options } = load('websocket { port: 8080, no_tls: true, origins: ["http://a.com"], authorization { user: u } }');
    expect(Object.isFrozen(options.websocket)).toBe(true);
    expect(Object.isFrozen(options.websocket!.allowedOrigins[0])).toBe(true);
    expect(Object.isFrozen(options.websocket!.authorization)).toBe(true);
  });
});

// The same configs through the real nats-server 2.9: `-t` for what it checks while parsing, a
// start (stopped once ready) for what it only checks when it starts.
describe.skipIf(!existsSync(NATS_SERVER_BIN))("websocket block compared with nats-server", () => {
  let realCert: string, realKey: string;
  beforeAll(async () => {
    ({ cert: realCert, key: realKey } = await selfSignedPair(dir));
  });


  const TLS = () => `tls { cert_file: "${realCert}", key_file: "${realKey}" }`;
  const NO = "port: -1, no_tls: true";
  // [name, config, how nats-server checks it, our reason when it differs from nats-server's]
  const cases: [string, () => string, "t" | "start", string?][] = [
    ["no port, anything goes", () => 'websocket { no_auth_user: bob, jwt_cookie: c, origins: ["http://[::1"] }', "start"],
    ["no port, tls still read", () => `websocket {\n  tls { cert_file: "${dir}/nope.pem", key_file: "${realKey}" }\n}`, "t"],
    ["no tls", () => "websocket {\n  port: -1\n}", "start"],
    ["no_tls", () => `websocket { ${NO} }`, "start"],
    ["tls", () => `websocket {\n  port: -1\n  ${TLS()}\n}`, "start"],
    ["tls without key_file", () => `websocket {\n  port: -1\n  tls { cert_file: "${realCert}" }\n}`, "t"],
    ["tls file missing", () => `websocket {\n  port: -1\n  tls { cert_file: "${dir}/nope.pem", key_file: "${realKey}" }\n}`, "t"],
    ["listen", () => 'websocket { listen: "127.0.0.1:-1", no_tls: true }', "start"],
    ["listen without a port", () => 'websocket {\n  listen: "127.0.0.1"\n}', "t"],
    ["every option", () => `websocket {\n  port: -1, host: 127.0.0.1, advertise: "x:1", ${TLS()}, same_origin: true\n` +
      '  allowed_origins: ["http://a.com", "https://b.com:8443/x"], compress: true, handshake_timeout: "2s"\n' +
      "  authentication { username: u, password: p, timeout: 2 }\n}", "start"],
    ["origin: missing ]", () => `websocket { ${NO}, allowed_origins: ["http://[::1"] }`, "start"],
    ["origin: bad host character", () => `websocket { ${NO}, origins: "http://a b" }`, "start"],
    ["origin: bad port", () => `websocket { ${NO}, origin: ["http://host:abc"] }`, "start"],
    ["origin: no scheme before :", () => `websocket { ${NO}, allow_origin: ["ftp://x.com", ":nope"] }`, "start",
      `allowed origin "ftp://x.com" is not an http:// or https:// origin with a host`],
    ["origin: bad escape", () => `websocket { ${NO}, allow_origins: ["http://%zz"] }`, "start"],
    ["origin: control character", () => `websocket { ${NO}, allow_origins: ["http://a\\tb"] }`, "start"],
    ["origin: not a string", () => `websocket {\n  ${NO}\n  allowed_origin: 5\n}`, "t",
      '"allowed_origin" must be a string or an array of strings (allowed origins), got integer 5'],
    ["origin without a scheme (nats-server logs and skips it)", () => `websocket { ${NO}, allowed_origins: "www.example.com" }`, "start",
      'error parsing allowed origin: parse "www.example.com": invalid URI for request'],
    ["handshake_timeout float", () => `websocket {\n  ${NO}\n  handshake_timeout: 1.5\n}`, "t"],
    ["handshake_timeout bool", () => `websocket {\n  ${NO}\n  handshake_timeout: true\n}`, "t"],
    ["handshake_timeout unit", () => `websocket {\n  ${NO}\n  handshake_timeout: "2x"\n}`, "t"],
    ["negative handshake_timeout", () => `websocket { ${NO}, handshake_timeout: "-2s" }`, "start"],
    ["users in its authorization", () => `websocket {\n  ${NO}\n  authorization {\n    users: [ {user: a, password: b} ]\n  }\n}`, "t",
      'unknown field "users" in websocket.authorization'],
    ["username with users", () => `authorization { users: [ {user: a, password: b} ] }\nwebsocket { ${NO}, authorization { user: x, pass: y } }`, "start"],
    ["token with account users", () => `accounts { A: { users: [ {user: a, password: b} ] } }\nwebsocket { ${NO}, authentication { token: t } }`, "start"],
    ["token with nkey users", () => `authorization { users: [ {nkey: ${NKEY_USER}} ] }\nwebsocket { ${NO}, authentication { token: t } }`, "start"],
    ["password only with users", () => `authorization { users: [ {user: a, password: b} ] }\nwebsocket { ${NO}, authorization { pass: y, timeout: 3 } }`, "start"],
    ["user and token", () => `websocket { ${NO}, authorization { user: a, token: t } }`, "start"],
    ["auth timeout as a duration (nats-server: 1s)", () => `websocket {\n  ${NO}\n  authorization { user: a, timeout: "5s" }\n}`, "start",
      '"timeout" must be a number of seconds, got string "5s"'],
    ["no_auth_user without users", () => `websocket { ${NO}, no_auth_user: bob }`, "start"],
    ["no_auth_user not a user", () => `authorization { users: [ {user: a, password: b} ] }\nwebsocket { ${NO}, no_auth_user: bob }`, "start"],
    ["no_auth_user in an account", () => `accounts { A: { users: [ {user: a, password: b} ] } }\nwebsocket { ${NO}, no_auth_user: a }`, "start"],
    ["no_auth_user in operator mode", () => `${operatorConfig(op, [])}\nwebsocket { ${NO}, no_auth_user: bob }`, "start"],
    ["jwt_cookie", () => `websocket { ${NO}, jwt_cookie: my_jwt }`, "start"],
    ["jwt_cookie in operator mode", () => `${operatorConfig(op, [])}\nwebsocket { ${NO}, jwt_cookie: my_jwt }`, "start"],
    ["jwt_cookie with trusted keys", () => `trusted: [${op.kp.getPublicKey()}]\nwebsocket { ${NO}, jwt_cookie: my_jwt }`, "start"],
    ["user/pass in operator mode", () => `${operatorConfig(op, [])}\nwebsocket { ${NO}, authorization { user: x, pass: y } }`, "start"],
    // The example (docs): refused for its no_auth_user (and then its jwt_cookie).
    ["the documentation example", () => `websocket {\n  listen: "127.0.0.1:-1"\n  advertise: "10.0.0.1:8080"\n  ${TLS()}\n  no_tls: true\n` +
      '  same_origin: true\n  allowed_origins [ "http://www.example.com", "https://www.other-example.com" ]\n  compression: true\n' +
      '  handshake_timeout: "2s"\n  jwt_cookie: "my_jwt_cookie_name"\n  no_auth_user: "my_username_for_apps_not_providing_credentials"\n' +
      '  authorization { username: "u", password: "p", token: "t", timeout: 2.0 }\n}', "start"],
  ];
  it.each(cases)("%s", async (_n, text, how, differs) => {
    expectSameVerdict(await natsServerVerdict(dir, text(), how === "start"), meshbrokerVerdict(load, text()), differs);
  }, 15_000);
});
