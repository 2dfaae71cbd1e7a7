import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { generateKeyPairSync, sign, type KeyObject } from "node:crypto";
import { existsSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  DEFAULTS,
  buildOptions,
  defaultOptions,
  isUsedVariable,
  loadConfigFile,
  loadConfigText,
  parseConfigText,
  parseGoDuration,
  positionOf,
  validateOptions,
  type ConfigMap,
  type Options,
} from "../../services/common/config/index.js";
import { applyDefaults } from "../../services/common/config/build.js";
import { encodePublicNkey, type NkeyRole } from "../../services/common/nkeys.js";
import { errorOf, expectSameVerdict, meshbrokerVerdict, natsServerVerdict } from "../helpers/config.js";
import { NATS_SERVER_BIN } from "../helpers/nats-server.js";

const FILE = "test.conf";
const parse = (text: string, env: NodeJS.ProcessEnv = {}) => parseConfigText(text, FILE, env);
/** Plain JSON view of a tree (maps have a null prototype). */
const plain = (v: unknown) => JSON.parse(JSON.stringify(v));
const build = (text: string, env: NodeJS.ProcessEnv = {}) => buildOptions(parse(text, env), FILE);
const load = (text: string, env: NodeJS.ProcessEnv = {}) => loadConfigText(text, FILE, env);


const VALID_USER_NKEY = "UAS4VJSAFF67OL7O3Q72GW2D6HFRVZOYXJYIQBJTKPARIICN6SGME6MT";

// The two configs from the issue.
const ISSUE_AUTH = `
mqtt_perms = { publish: ["a.>"], subscribe: { allow: ["$MQTT.sub.>", "b.>"], deny: "b.secret" } }
authorization {
  users [
    {user: foo password: foopwd, permission: {publish: "foo.>", subscribe: ["bar.>", "_INBOX.>"]}}
    {user: bar, password: barpwd, allowed_connection_types: ["MQTT"], permissions: $mqtt_perms}
  ]
}
`;
const ISSUE_WEBSOCKET = `
websocket {
  # listen: "host:port"
  listen: "127.0.0.1:8080"
  advertise: "10.0.0.1:8080"
  tls { cert_file: "/path/server.pem", key_file: "/path/key.pem" }
  no_tls: true
  same_origin: true
  allowed_origins [ "http://www.example.com", "https://www.other-example.com" ]
  compression: true
  handshake_timeout: "2s"
  jwt_cookie: "my_jwt_cookie_name"
  no_auth_user: "my_username_for_apps_not_providing_credentials"
  authorization { username: "u", password: "p", token: "t", timeout: 2.0 }
}
`;

describe("parseConfigText: syntax", () => {
  const cases: [string, string, unknown][] = [
    // separators
    ["colon", "a: 1", { a: 1 }],
    ["equals", "a = 1", { a: 1 }],
    ["space", "a 1", { a: 1 }],
    ["no spaces", "a:1\nb=2", { a: 1, b: 2 }],
    ["tab", "a\t1", { a: 1 }],
    ["top-level ; and , end values", "a: 1; b: 2, c: 3", { a: 1, b: 2, c: 3 }],
    ["CRLF lines", "a: 1\r\nb: two\r\n", { a: 1, b: "two" }],
    ["quoted keys", `"a b": 1\n'c': 2`, { "a b": 1, c: 2 }],
    ["later key wins", "a: 1\na: 2", { a: 2 }],
    ["whole file in braces", "{\n  a: 1\n  b: 2\n}\n", { a: 1, b: 2 }],
    ["trailing key without value is ignored (as nats-server 2.9)", "a: 1\nb", { a: 1 }],
    ["empty value at end of file", "a:", { a: "" }],
    // comments
    ["hash comment", "# c\na: 1 # trailing\n", { a: 1 }],
    ["slash comment", "// c\na: 1 // trailing\n", { a: 1 }],
    ["comments in blocks", "b {\n # c\n a: 1 // d\n}", { b: { a: 1 } }],
    ["comments in arrays", "a [\n 1 # one\n // x\n 2, 3\n]", { a: [1, 2, 3] }],
    // blocks
    ["block without separator", "ws { a: 1 }", { ws: { a: 1 } }],
    ["block with colon", "ws: { a: 1 }", { ws: { a: 1 } }],
    ["block with equals", "ws = {\n a: 1\n}", { ws: { a: 1 } }],
    ["brace on next line", "ws\n{\n a: 1\n}", { ws: { a: 1 } }],
    ["map value on next line", "ws {\n a:\n  1\n}", { ws: { a: 1 } }],
    ["map entries with , ; and new lines", "m { a: 1, b: 2; c: 3\n d: 4 }", { m: { a: 1, b: 2, c: 3, d: 4 } }],
    ["nested maps", "a { b { c { d: x } } }", { a: { b: { c: { d: "x" } } } }],
    ["empty map", "a {}", { a: {} }],
    // meshbroker extension: entries separated by spaces only (nats-server rejects this)
    ["map entries separated by spaces", "m {user: foo password: bar}", { m: { user: "foo", password: "bar" } }],
    ["... also before = and quoted keys", `m {a: 1 b = 2 "c d": 3 e: {f: 4} g: x}`, { m: { a: 1, b: 2, "c d": 3, e: { f: 4 }, g: "x" } }],
    // arrays
    // meshbroker extension: nats-server fails on `3]` (it lexes it as a string).
    ["array with commas", "a: [1, 2, 3]\n", { a: [1, 2, 3] }],
    ["sizes in arrays", "a: [1k, 2KB ]", { a: [1000, 2048] }],
    // nats-server quirk, kept: a size directly followed by ']' is a string.
    ["size before ] is a string", "a: [1K]", { a: ["1K"] }],
    ["integer before ]x is a string (as nats-server)", "a: [1]x\n]", { a: ["1]x"] }],
    ["array with new lines", "a [\n  x\n  y\n]", { a: ["x", "y"] }],
    ["array trailing comma", `a: ["x", "y",]`, { a: ["x", "y"] }],
    ["empty array", "a: []", { a: [] }],
    ["nested arrays", `a: [["x"], ["y", "z"]]`, { a: [["x"], ["y", "z"]] }],
    ["array of maps", "a [\n {n: 1}\n {n: 2}\n]", { a: [{ n: 1 }, { n: 2 }] }],
    ["mixed array", `a: ["s", 1, 1.5, true, {k: v}]`, { a: ["s", 1, 1.5, true, { k: "v" }] }],
    // strings
    ["double quotes", `a: "x y"`, { a: "x y" }],
    ["double-quote escapes", String.raw`a: "t\tn\nr\rq\"b\\x\x41"`, { a: 't\tn\nr\rq"b\\xA' }],
    ["\\x bytes form UTF-8", String.raw`a: "caf\xc3\xa9"`, { a: "café" }],
    ["single quotes keep backslashes", String.raw`a: 'c:\temp\n'`, { a: "c:\\temp\\n" }],
    ["bare string", "a: hello", { a: "hello" }],
    ["bare string ends at blank", "a: hello # c", { a: "hello" }],
    ["bare string keeps : and /", "a: nats://u:p@host:4222/x", { a: "nats://u:p@host:4222/x" }],
    ["quoted strings are not booleans or numbers", `a: "true"\nb: "4222"`, { a: "true", b: "4222" }],
    ["multi-line double quotes", `a: "x\ny"`, { a: "x\ny" }],
    ["( ) block string", "a (\n  raw $text\n)\nb: 1", { a: "\n  raw $text\n", b: 1 }],
    // numbers
    ["integers", "a: 0\nb: 4222\nc: -1", { a: 0, b: 4222, c: -1 }],
    ["floats", "a: 1.5\nb: -0.25\nc: 2.0", { a: 1.5, b: -0.25, c: 2 }],
    ["booleans", "a: true\nb: false\nc: yes\nd: no\ne: on\nf: off\ng: TRUE\nh: Off", {
      a: true, b: false, c: true, d: false, e: true, f: false, g: true, h: false,
    }],
    // addresses lex as strings
    ["ip:port", "listen: 0.0.0.0:4222", { listen: "0.0.0.0:4222" }],
    ["loopback:port", "listen: 127.0.0.1:4222", { listen: "127.0.0.1:4222" }],
    ["name:port", "listen: localhost:4222", { listen: "localhost:4222" }],
    [":port", "listen: :4222", { listen: ":4222" }],
    ["bare ip", "a: 10.0.0.1", { a: "10.0.0.1" }],
    ["`key :port` makes the colon the separator", "listen :4222", { listen: 4222 }],
    // durations: bare ones follow nats-server's lexer
    ["bare 2s is a string", "a: 2s", { a: "2s" }],
    ["bare 500ms is a string", "a: 500ms", { a: "500ms" }],
    ["bare 1h is a string", "a: 1h", { a: "1h" }],
    ["bare 2m is a size: 2 million", "a: 2m", { a: 2_000_000 }],
    ["quoted durations are strings", `a: "2m"`, { a: "2m" }],
    ["digits then letters", "a: 4222abc", { a: "4222abc" }],
    ["outside arrays ']' does not end a number", "a: 4]x", { a: "4]x" }],
  ];
  it.each(cases)("%s", (_name, text, expected) => {
    expect(plain(parse(text))).toEqual(expected);
  });

  const sizes: [string, number][] = [
    ["1k", 1000], ["1K", 1000], ["2kb", 2048], ["2KB", 2048], ["1Ki", 1024], ["1KiB", 1024], ["1kib", 1024],
    ["1m", 1e6], ["1M", 1e6], ["1MB", 1024 ** 2], ["1mb", 1024 ** 2], ["1Mi", 1024 ** 2], ["64MB", 64 * 1024 ** 2],
    ["1g", 1e9], ["1GB", 1024 ** 3], ["1t", 1e12], ["1TB", 1024 ** 4], ["1p", 1e15], ["1PB", 1024 ** 5],
    ["1e", 1e18], ["-1k", -1000], ["0KB", 0],
  ];
  it.each(sizes)("size %s = %d", (text, n) => {
    expect(parse(`a: ${text}`).a).toBe(n);
  });

  it("lexes a datetime as a Date", () => {
    expect(parse("a: 2016-05-04T18:53:41Z").a).toEqual(new Date("2016-05-04T18:53:41Z"));
  });

  it("gives maps a null prototype, so __proto__ is plain data", () => {
    const t = parse("__proto__: 1\nconstructor: 2");
    expect(Object.getPrototypeOf(t)).toBe(null);
    expect(Object.keys(t)).toEqual(["__proto__", "constructor"]);
  });
});

describe("parseConfigText: errors carry file:line", () => {
  const cases: [string, string, number, RegExp][] = [
    ["value on the next line at top level", "a:\n1", 1, /expected a value but found a new line/],
    ["two values on one top-level line", "port: 4222 debug: true", 1, /expected a new line/],
    ["two bare words in a map", "m {\n a: x y\n}", 2, /expected ',' or '}' after a map value, got 'y'/],
    ["unclosed map", "a {\n b: 1\n", 3, /end of file in a map/],
    ["unclosed array", "a [\n 1,\n", 3, /end of file in an array/],
    ["unclosed string", 'a: 1\nb: "abc\n\n', 2, /end of file in a quoted string/],
    ["leading comma in array", "a: [, 1]", 1, /unexpected ','/],
    ["junk after array value", `a: ["x" "y"]`, 1, /expected ',' or '\]'/],
    ["key separator without key", "b: 1\n: 2", 2, /unexpected key separator/],
    ["missing map value", "a {\n b: \n}", 2, /missing value for key "b"/],
    ["bad escape", String.raw`a: "\q"`, 1, /invalid escape character 'q'/],
    ["bad hex escape", String.raw`a: "\xZZ"`, 1, /hexadecimal/],
    ["float starting with dot", "a: .5", 1, /floats must start with a digit/],
    ["float without fraction", "a: 1.x", 1, /digit after '.'/],
    ["bad date", "a: 12-3", 1, /ISO8601/],
    ["1m30s (nats-server reads 1m then junk)", "a: 1m30s", 1, /expected a new line/],
    ["unknown size suffix", "a: 1kbb", 1, /invalid size suffix/],
    ["integer out of int64 range", "a: 9223372036854775808", 1, /out of range/],
    ["size out of int64 range", "a: 9000000000EB", 1, /out of range/],
    ["unknown variable", "x: 1\n\ny: $nope", 3, /variable reference for 'nope' can not be found/],
    ["variable defined later", "a { b: $v }\nv: 1", 1, /'v' can not be found/],
    ["unterminated ( block", "a (\n x\n", 1, /'\(' block/],
    ["lone slash", "/ a: 1", 1, /unexpected '\/'/],
    // Found by test/fuzz (config surface): 5,000 levels overflowed the stack with a RangeError.
    ["maps nested 20,000 deep", `a: ${"{b: ".repeat(20_000)}1${"}".repeat(20_000)}`, 1, /nest deeper than 128 levels/],
    ["arrays nested 20,000 deep, on line 2", `x: 1\na: ${"[".repeat(20_000)}`, 2, /nest deeper than 128 levels/],
  ];
  it.each(cases)("%s", (_name, text, line, re) => {
    const err = errorOf(() => parse(text));
    expect(err.file).toBe(FILE);
    expect(err.line).toBe(line);
    expect(err.message).toMatch(new RegExp(`^${FILE}:${line}: `));
    expect(err.reason).toMatch(re);
    expect(err.name).toBe("ConfigError");
    expect(err.code).toBe("CONFIG");
  });
});

describe("parseConfigText: variables", () => {
  it("resolves a value defined earlier in the same block", () => {
    expect(plain(parse("p = 4222\nport: $p"))).toEqual({ p: 4222, port: 4222 });
  });

  it("resolves through enclosing blocks, innermost first", () => {
    const t = parse("v: outer\na { v: inner, b { x: $v } }\nc { y: $v }");
    expect(plain(t)).toMatchObject({ a: { b: { x: "inner" } }, c: { y: "outer" } });
  });

  it("resolves inside arrays of maps", () => {
    expect(plain(parse("pw: secret\nusers: [ {user: a, password: $pw} ]")).users).toEqual([{ user: "a", password: "secret" }]);
  });

  it("substitutes any type: maps and arrays too", () => {
    const t = parse("perms = { publish: [\"a.>\"] }\nsubs = [x, y]\nu { permissions: $perms, s: $subs }");
    expect(plain(t.u)).toEqual({ permissions: { publish: ["a.>"] }, s: ["x", "y"] });
  });

  it("does not look into sibling blocks", () => {
    expect(errorOf(() => parse("a { v: 1 }\nb { x: $v }")).reason).toMatch(/'v' can not be found/);
  });

  it("falls back to the environment, parsing the value like a config value", () => {
    const env = { PORT_X: "4222", HOST_X: "127.0.0.1:4222", FLAG_X: "yes", SIZE_X: "1MB", LIST_X: "[a, b]", Q_X: '"4222"' };
    const t = parse("a: $PORT_X\nb: $HOST_X\nc: $FLAG_X\nd: $SIZE_X\ne: $LIST_X\nf: $Q_X", env);
    expect(plain(t)).toEqual({ a: 4222, b: "127.0.0.1:4222", c: true, d: 1024 * 1024, e: ["a", "b"], f: "4222" });
  });

  it("prefers a config value over the environment", () => {
    expect(parse("X: 1\na: $X", { X: "2" }).a).toBe(1);
  });

  it("reports an environment value that does not parse", () => {
    const err = errorOf(() => parse("\na: $BAD", { BAD: "4222 x" }));
    expect(err.line).toBe(2);
    expect(err.reason).toMatch(/variable reference for 'BAD' could not be parsed/);
  });

  it("stops environment loops", () => {
    expect(errorOf(() => parse("a: $LOOP", { LOOP: "$LOOP" })).reason).toMatch(/circular/);
  });

  it("does not expand variables in quoted strings", () => {
    expect(plain(parse(`v: 1\na: "$v"\nb: '$v'`))).toEqual({ v: 1, a: "$v", b: "$v" });
  });

  it("keeps a bare bcrypt hash as a string", () => {
    expect(parse("password: $2a$11$W2zko751KUvVy59mUTWmpOdWjpEm5qhcCZRd05GjI/sSOT.xtiHyG").password).toBe(
      "$2a$11$W2zko751KUvVy59mUTWmpOdWjpEm5qhcCZRd05GjI/sSOT.xtiHyG",
    );
  });

  it("marks keys used as variables", () => {
    const t = parse("v: 1\nw: 2\na: $v");
    expect(isUsedVariable(t, "v")).toBe(true);
    expect(isUsedVariable(t, "w")).toBe(false);
  });
});

describe("parseConfigText: include", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "meshbroker-config-"));
    mkdirSync(join(dir, "sub"));
    writeFileSync(join(dir, "sub", "limits.conf"), "# limits\nmax_payload: 2MB\nping_max: 3\n");
    writeFileSync(join(dir, "sub", "auth.conf"), "user: a\n\npassword: b\n");
    writeFileSync(join(dir, "sub", "nested.conf"), "include limits.conf\nfrom_nested: 1\n");
    writeFileSync(join(dir, "sub", "bad.conf"), "ok: 1\n\nbroken: [\n");
    writeFileSync(join(dir, "sub", "vars.conf"), "perms: { publish: \"x\" }\n");
    writeFileSync(join(dir, "sub", "uses_outer.conf"), "y: $outer\n");
    writeFileSync(join(dir, "loop.conf"), "include loop.conf\n");
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const main = () => join(dir, "main.conf");

  it.each([
    ["bare", "include sub/limits.conf"],
    ["double quoted", 'include "sub/limits.conf"'],
    ["single quoted", "include 'sub/limits.conf'"],
    ["upper case keyword", "INCLUDE sub/limits.conf"],
  ])("merges the keys of an included file (%s)", (_n, line) => {
    const t = parseConfigText(`port: 1\n${line}\nhost: h`, main());
    expect(plain(t)).toEqual({ port: 1, max_payload: 2 * 1024 * 1024, ping_max: 3, host: "h" });
  });

  it("includes into a block and records the included file's lines", () => {
    const t = parseConfigText("authorization {\n  include 'sub/auth.conf'\n}", main());
    const auth = t.authorization as ConfigMap;
    expect(plain(auth)).toEqual({ user: "a", password: "b" });
    expect(positionOf(auth, "password")).toEqual({ file: join(dir, "sub", "auth.conf"), line: 3 });
  });

  it("resolves nested includes relative to the including file", () => {
    const t = parseConfigText("include sub/nested.conf", main());
    expect(plain(t)).toEqual({ max_payload: 2 * 1024 * 1024, ping_max: 3, from_nested: 1 });
  });

  it("takes even an absolute name relative to the file (like Go's filepath.Join)", () => {
    expect(parseConfigText("include /sub/limits.conf", main()).ping_max).toBe(3);
  });

  it("lets later lines use variables from an included file, but not the other way round", () => {
    expect(plain(parseConfigText("include sub/vars.conf\np: $perms", main()).p)).toEqual({ publish: "x" });
    const err = errorOf(() => parseConfigText("outer: 1\ninclude sub/uses_outer.conf", main()));
    expect(err.file).toBe(join(dir, "sub", "uses_outer.conf"));
  });

  it("reports errors with the included file and its line", () => {
    const err = errorOf(() => parseConfigText("a: 1\ninclude sub/bad.conf", main()));
    expect(err.file).toBe(join(dir, "sub", "bad.conf"));
    expect(err.line).toBe(4);
    expect(err.message).toMatch(new RegExp(`^${join(dir, "sub", "bad.conf")}:4: `));
  });

  it("reports a missing include at the include line", () => {
    const err = errorOf(() => parseConfigText("a: 1\n\ninclude sub/nope.conf", main()));
    expect(err.file).toBe(main());
    expect(err.line).toBe(3);
    expect(err.reason).toMatch(/error opening include file 'sub\/nope.conf'/);
  });

  it("stops include cycles", () => {
    expect(errorOf(() => parseConfigText("include loop.conf", main())).reason).toMatch(/nested too deeply/);
  });

  it("loadConfigFile reads a file and its includes and reports positions in them", () => {
    writeFileSync(main(), "port: 4333\ninclude sub/limits.conf\n");
    const { options } = loadConfigFile(main(), {});
    expect(options.port).toBe(4333);
    expect(options.maxPayload).toBe(2 * 1024 * 1024);
    expect(options.pingMax).toBe(3);
    expect(options.configFile).toBe(main());
    writeFileSync(join(dir, "sub", "typo.conf"), "\nmax_payloda: 1\n");
    writeFileSync(main(), "include sub/typo.conf\n");
    expect(() => loadConfigFile(main(), {})).toThrow(`${join(dir, "sub", "typo.conf")}:2: unknown field "max_payloda"`);
  });

  it("loadConfigFile reports a missing file", () => {
    const err = errorOf(() => loadConfigFile(join(dir, "missing.conf"), {}));
    expect(err.message).toMatch(/missing\.conf:0: error opening config file/);
  });
});

describe("positionOf", () => {
  it("knows the line of every key and array element", () => {
    const t = parse("a: 1\n\nb {\n  c: 2\n  d: [\n    x\n    y\n  ]\n}");
    const b = t.b as ConfigMap;
    expect(positionOf(t, "a")).toEqual({ file: FILE, line: 1 });
    expect(positionOf(t, "b")).toEqual({ file: FILE, line: 3 });
    expect(positionOf(b, "c")).toEqual({ file: FILE, line: 4 });
    expect(positionOf(b.d as string[], 1)).toEqual({ file: FILE, line: 7 });
    expect(positionOf(t, "nope")).toBeUndefined();
  });
});

describe("buildOptions", () => {
  it("gives DEFAULTS for an empty config", () => {
    const { options, warnings } = build("");
    expect(warnings).toEqual([]);
    expect(options).toEqual(applyDefaults());
    expect(options).toMatchObject({
      host: "0.0.0.0", port: 4222, maxPayload: 1024 * 1024, maxPending: 64 * 1024 * 1024, maxControlLine: 4096,
      maxConnections: 65536, pingIntervalMs: 120_000, pingMax: 2, writeDeadlineMs: 10_000, httpPort: undefined,
      authTimeoutMs: 2000, log: { debug: false, trace: false, logtime: true, format: "text" }, pending: {},
    });
  });

  const cases: [string, string, Partial<Options> | Record<string, unknown>][] = [
    ["host", "host: 127.0.0.1", { host: "127.0.0.1", httpHost: "127.0.0.1" }],
    ["net alias", "net: 10.0.0.1", { host: "10.0.0.1" }],
    ["port", "port: 4333", { port: 4333 }],
    ["port -1 is random (0)", "port: -1", { port: 0 }],
    ["port 0 is the default", "port: 0", { port: 4222 }],
    ["listen host:port", "listen: 127.0.0.1:4333", { host: "127.0.0.1", port: 4333 }],
    ["listen quoted", 'listen: "localhost:4333"', { host: "localhost", port: 4333 }],
    ["listen :port", "listen: :4333", { host: "0.0.0.0", port: 4333 }],
    ["listen port only", "listen: 4333", { port: 4333 }],
    ["listen ipv6", 'listen: "[::1]:4333"', { host: "::1", port: 4333 }],
    ["listen random port", 'listen: "0.0.0.0:-1"', { port: 0 }],
    ["case-insensitive keys", "PORT: 4333\nServer_Name: n1", { port: 4333, serverName: "n1" }],
    ["server_name", "server_name: n1", { serverName: "n1" }],
    ["client_advertise", "client_advertise: nats.example.com:4222", { clientAdvertise: "nats.example.com:4222" }],
    ["max_payload size", "max_payload: 2MB", { maxPayload: 2 * 1024 * 1024 }],
    ["max_payload 0 is the default", "max_payload: 0", { maxPayload: 1024 * 1024 }],
    ["max_connections", "max_connections: 100", { maxConnections: 100 }],
    ["max_conn alias", "max_conn: 100", { maxConnections: 100 }],
    ["max_control_line", "max_control_line: 8KB", { maxControlLine: 8192 }],
    ["max_pending", "max_pending: 128MB", { maxPending: 128 * 1024 * 1024 }],
    ["max_subscriptions", "max_subscriptions: 10", { maxSubscriptions: 10 }],
    ["max_subs alias", "max_subs: 10", { maxSubscriptions: 10 }],
    ["ping_interval string", `ping_interval: "2m"`, { pingIntervalMs: 120_000 }],
    ["ping_interval 1m30s", `ping_interval: "1m30s"`, { pingIntervalMs: 90_000 }],
    ["ping_interval 500ms", `ping_interval: "500ms"`, { pingIntervalMs: 500 }],
    ["ping_interval bare 2s", "ping_interval: 2s", { pingIntervalMs: 2000 }],
    ["ping_interval int seconds", "ping_interval: 30", { pingIntervalMs: 30_000 }],
    ["ping_max", "ping_max: 5", { pingMax: 5 }],
    ["write_deadline", `write_deadline: "5s"`, { writeDeadlineMs: 5000 }],
    ["write_deadline int seconds", "write_deadline: 3", { writeDeadlineMs: 3000 }],
    ["lame_duck_duration", `lame_duck_duration: "45s"`, { lameDuckDurationMs: 45_000 }],
    ["lame_duck_grace_period", `lame_duck_grace_period: "5s"`, { lameDuckGracePeriodMs: 5000 }],
    ["no_auth_user", "no_auth_user: a", { noAuthUser: "a" }],
    ["http host:port", "http: 127.0.0.1:8222", { httpHost: "127.0.0.1", httpPort: 8222 }],
    ["http port", "http: 8222", { httpHost: "0.0.0.0", httpPort: 8222 }],
    ["http_port", "http_port: 8222", { httpPort: 8222 }],
    ["monitor_port alias", "monitor_port: 8222", { httpPort: 8222 }],
    ["http_port -1 is random (0)", "http_port: -1", { httpPort: 0 }],
    ["http_port 0 disables monitoring", "http_port: 0", { httpPort: undefined }],
    ["http host follows host", "host: 127.0.0.1\nhttp_port: 8222", { httpHost: "127.0.0.1" }],
    ["logging", "debug: true\ntrace: yes\nlogtime: false\nlog_file: /tmp/x.log\nlog_format: json", {
      log: { debug: true, trace: true, logtime: false, file: "/tmp/x.log", format: "json" },
    }],
    ["logfile alias", "logfile: /tmp/y.log", { log: { debug: false, trace: false, logtime: true, format: "text", file: "/tmp/y.log" } }],
    // Typed since issue #10 (test/unit/config-cluster.test.ts has every key); no longer pending.
    ["router and edge blocks", `router { listen: "0.0.0.0:7100", redis: "redis://r" }\nedge { routers: ["r:7100"] }`, {
      router: { host: "0.0.0.0", port: 7100, redis: { url: "redis://r" } },
      edge: { discovery: { routers: [{ host: "r", port: 7100 }] } },
      pending: {},
    }],
    ["a variable definition is not an unknown field", "p = 4333\nport: $p", { port: 4333 }],
  ];
  it.each(cases)("%s", (_name, text, expected) => {
    expect(plain(build(text).options)).toMatchObject(plain(expected));
  });

  it("warns when a duration is given as plain seconds", () => {
    expect(build("\nping_interval: 30").warnings).toEqual([
      `${FILE}:2: invalid use of field "ping_interval": ping_interval should be converted to a duration`,
    ]);
  });

  it("keeps nats-server features meshbroker lacks in pending, with one warning each", () => {
    const { options, warnings } = build(
      "jetstream { store_dir: /tmp/js }\ngateway { port: 7222 }\nleaf { port: 7422 }\nno_sys_acc: true\nmax_traced_msg_len: 10\n",
    );
    expect(plain(options.pending)).toEqual({
      jetstream: { store_dir: "/tmp/js" },
      gateway: { port: 7222 },
      leafnodes: { port: 7422 },
      no_system_account: true,
      max_traced_msg_len: 10,
    });
    expect(warnings).toEqual([
      `${FILE}:1: "jetstream" is not implemented yet, ignored`,
      `${FILE}:2: "gateway" is not implemented yet, ignored`,
      `${FILE}:3: "leaf" is not implemented yet, ignored`,
      `${FILE}:4: "no_sys_acc" is not implemented yet, ignored`,
      `${FILE}:5: "max_traced_msg_len" is not implemented yet, ignored`,
    ]);
  });

  it("accepts the issue's authorization example", () => {
    const { options, warnings } = build(ISSUE_AUTH);
    expect(warnings).toEqual([]);
    expect(plain(options.authorization)).toEqual({
      users: [
        { user: "foo", password: "foopwd", permissions: { publish: { allow: ["foo.>"] }, subscribe: { allow: ["bar.>", "_INBOX.>"] } } },
        {
          user: "bar", password: "barpwd", allowedConnectionTypes: ["MQTT"],
          permissions: { publish: { allow: ["a.>"] }, subscribe: { allow: ["$MQTT.sub.>", "b.>"], deny: ["b.secret"] } },
        },
      ],
    });
    expect(() => load(ISSUE_AUTH)).not.toThrow();
  });

  it("parses the issue's websocket example; loading it checks its TLS files, as nats-server does", () => {
    const tree = parseConfigText(ISSUE_WEBSOCKET, FILE, {});
    expect(plain(tree.websocket)).toMatchObject({
      listen: "127.0.0.1:8080", no_tls: true, compression: true, handshake_timeout: "2s",
      allowed_origins: ["http://www.example.com", "https://www.other-example.com"],
      authorization: { username: "u", password: "p", token: "t", timeout: 2 },
      tls: { cert_file: "/path/server.pem", key_file: "/path/key.pem" },
    });
    expect(() => load(ISSUE_WEBSOCKET)).toThrow(/error parsing X509 certificate\/key pair: open \/path\/server\.pem/);
  });

  it("reads authorization: single user, token, timeout", () => {
    expect(build("authorization { username: a, pass: b, timeout: 1.5 }").options.authorization).toEqual({
      user: "a", password: "b", users: [], timeoutMs: 1500,
    });
    expect(build("authorization { token: s3cr3t, timeout: 3 }").options.authorization).toEqual({
      token: "s3cr3t", users: [], timeoutMs: 3000,
    });
  });

  it("reads users with every alias, nkeys and default permissions", () => {
    const { options } = build(`
authorization {
  default_permissions: { publish: "pub.>", subscribe: { deny: ">" } }
  users: [
    { username: a, pass: x, connection_types: websocket }
    { user: b, password: y, clients: [standard, MQTT_WS], permissions: { pub: { allow: "b.>", deny: ["b.x"] }, sub: "b.>" } }
    { nkey: ${VALID_USER_NKEY}, authorization: { import: "i.>", export: "e.>" } }
  ]
}`);
    const [a, b, n] = options.authorization!.users;
    expect(a).toEqual({
      user: "a", password: "x", allowedConnectionTypes: ["WEBSOCKET"],
      permissions: { publish: { allow: ["pub.>"] }, subscribe: { deny: [">"] } },
    });
    expect(b.allowedConnectionTypes).toEqual(["STANDARD", "MQTT_WS"]);
    expect(b.permissions).toEqual({ publish: { allow: ["b.>"], deny: ["b.x"] }, subscribe: { allow: ["b.>"] } });
    expect(n).toEqual({ nkey: VALID_USER_NKEY, permissions: { publish: { allow: ["i.>"] }, subscribe: { allow: ["e.>"] } } });
  });

  it("reads allow_responses", () => {
    const perms = (p: string) => build(`authorization { users: [ { user: a, permissions: ${p} } ] }`).options.authorization!.users[0].permissions;
    expect(perms("{ allow_responses: true }")).toEqual({ publish: { allow: [] }, allowResponses: { maxMsgs: 1, expiresMs: 120_000 } });
    expect(perms('{ publish: "x", allow_responses: { max: 5, expires: "1m" } }')).toEqual({
      publish: { allow: ["x"] }, allowResponses: { maxMsgs: 5, expiresMs: 60_000 },
    });
    expect(perms("{ allow_responses: false }")).toEqual({});
    expect(perms('{ subscribe: "q.> workers" }')).toEqual({ subscribe: { allow: ["q.> workers"] } });
  });

  const errors: [string, string, number, string][] = [
    ["unknown top-level key", "port: 1\nkye: 1", 2, 'unknown field "kye"'],
    ["port given a string", 'port: "abc"', 1, '"port" must be an integer, got string "abc"'],
    ["port given a quoted number", 'port: "4222"', 1, '"port" must be an integer, got string "4222"'],
    ["port out of range", "port: 70000", 1, "invalid port 70000 (use 0 for the default, -1 for a random port)"],
    ["debug given a quoted bool", 'debug: "true"', 1, '"debug" must be a boolean (true/false, yes/no, on/off), got string "true"'],
    ["max_payload given a float", "max_payload: 1.5", 1, '"max_payload" must be an integer, got float 1.5'],
    ["max_payload too big", "max_payload: 4GB", 1, "max_payload value is too big"],
    ["negative max_pending", "max_pending: -1", 1, '"max_pending" can not be negative'],
    ["listen without port", "listen: localhost", 1, 'could not parse address string "localhost"'],
    ["listen bad port", 'listen: "localhost:abc"', 1, 'could not parse port "abc"'],
    ["listen bool", "listen: true", 1, '"listen" must be a port or "host:port", got boolean true'],
    ["bad duration", 'ping_interval: "2x"', 1, 'error parsing ping_interval: time: unknown unit "x" in duration "2x"'],
    ["duration without unit", 'write_deadline: "10"', 1, 'error parsing write_deadline: time: missing unit in duration "10"'],
    ["lame_duck_duration as int", "lame_duck_duration: 60", 1, '"lame_duck_duration" must be a duration string such as "2s" or "1m30s", got integer 60'],
    ["lame_duck_duration too short", 'lame_duck_duration: "10s"', 1, "invalid lame_duck_duration of 10s, minimum is 30 seconds"],
    ["negative grace period", 'lame_duck_grace_period: "-1s"', 1, "invalid lame_duck_grace_period, needs to be positive"],
    ["log_format", "log_format: xml", 1, 'log_format must be "text" or "json", got "xml"'],
    ["authorization not a map", "authorization: 5", 1, '"authorization" must be a map, got integer 5'],
    ["unknown authorization key", "authorization {\n  usr: a\n}", 2, 'unknown field "usr"'],
    ["users not an array", "authorization { users: {user: a} }", 1, '"users" must be an array of users, got a map'],
    ["user entry not a map", "authorization { users: [\n  5\n] }", 2, "array element must be a user map, got integer 5"],
    ["user without name", "authorization { users: [\n {password: b} ] }", 2, "User entry requires a user"],
    ["unknown user key", "authorization { users: [\n {user: a,\n passwd: b} ] }", 3, 'unknown field "passwd"'],
    ["bad nkey", "authorization { users: [ {nkey: UABC} ] }", 1, "Not a valid public nkey for a user"],
    ["nkey with user", `authorization { users: [ {nkey: ${VALID_USER_NKEY}, user: x} ] }`, 1, "Nkey users do not take usernames or passwords"],
    ["permissions not a map", "authorization { users: [ {user: a, permissions: 5} ] }", 1, '"permissions" must be a map, got integer 5'],
    ["unknown permission key", "authorization { users: [ {user: a, permissions: {\n publishx: a } } ] }", 2, 'Unknown field "publishx" parsing permissions'],
    ["unknown subject permission key", "authorization { users: [ {user: a, permissions: { publish: { allowx: a } } } ] }", 1,
      `Unknown field name "allowx" parsing subject permissions, only 'allow' or 'deny' are permitted`],
    ["invalid subject", 'authorization { users: [ {user: a, permissions: { publish: "a..b" } } ] }', 1, 'subject "a..b" is not a valid subject'],
    ["non-string subject", "authorization { users: [ {user: a, permissions: { publish: [a, 1.5] } } ] }", 1, "array element must be a string (subjects), got float 1.5"],
    ["allow_responses bad type", 'authorization { users: [ {user: a, permissions: { allow_responses: "x" } } ] }', 1,
      "error parsing response permissions, expected a boolean or a map"],
    ["websocket not a map", "websocket: 8080", 1, '"websocket" must be a map, got integer 8080'],
    ["misspelt websocket key", "websocket {\n  port: 8080\n  no_tsl: true\n}", 3, 'unknown field "no_tsl" in websocket'],
    ["misspelt websocket tls key", "websocket {\n tls {\n  cert: x\n }\n}", 3, 'unknown field "cert" in websocket.tls'],
    ["misspelt websocket auth key", "ws { authorization { usr: a } }", 1, 'unknown field "usr" in ws.authorization'],
    ["misspelt mqtt key", "mqtt {\n  port: 1883\n  ack_wiat: \"1m\"\n}", 3, 'unknown field "ack_wiat" in mqtt'],
    ["misspelt tls key", "tls { cert_fil: x }", 1, 'unknown field "cert_fil" in tls'],
  ];
  it.each(errors)("error: %s", (_name, text, line, reason) => {
    const err = errorOf(() => build(text));
    expect(err.message).toBe(`${FILE}:${line}: ${reason}`);
  });

  it("accepts every mqtt key nats-server 2.9 knows", () => {
    const text = `mqtt {
      listen: "0.0.0.0:1883", host: h, net: n, port: 1883, authentication { user: u, pass: p, token: t, timeout: 1 }
      no_auth_user: u, ack_wait: "30s", ackwait: "1m", max_ack_pending: 10, max_pending: 10, max_inflight: 10, js_domain: d
      stream_replicas: 1, consumer_replicas: 1, consumer_memory_storage: true, consumer_inactive_threshold: "1h", consumer_auto_cleanup: "1h"
    }`;
    const { options, warnings } = build(text);
    expect(options.mqtt).toMatchObject({ port: 1883, ackWaitMs: 60_000, maxAckPending: 10 });
    expect(warnings).toHaveLength(1); // the JetStream-only keys, kept but unused
  });

  it("lets a variable defined inside a pending block be used there", () => {
    expect(() => build("websocket { p = 8080, port: $p, no_tls: true }")).not.toThrow();
  });
});

describe("validateOptions", () => {
  const errors: [string, string, string][] = [
    ["no_auth_user without users", "\nno_auth_user: bob", `${FILE}:2: no_auth_user: "bob" present, but users are not defined`],
    ["no_auth_user not a user", "authorization { users: [ {user: a, password: b} ] }\nno_auth_user: bob",
      `${FILE}:2: no_auth_user: "bob" not present as user in authorization block or account configuration`],
    ["duplicate users", "authorization { users: [\n {user: a, password: b}\n {user: a, password: c}\n] }", `${FILE}:3: Duplicate user "a" detected`],
    ["unknown connection type", "authorization { users: [\n {user: a, password: b,\n  allowed_connection_types: [STANDARD, mqttx, foo]} ] }",
      `${FILE}:3: invalid connection types ["MQTTX" "FOO"]`],
    ["max_payload above max_pending", "max_pending: 1MB\nmax_payload: 2MB", `${FILE}:2: max_payload (2097152) cannot be higher than max_pending (1048576)`],
    ["lame duck grace not below duration", 'lame_duck_duration: "30s"\nlame_duck_grace_period: "40s"',
      `${FILE}:2: lame duck grace period (40s) should be strictly lower than lame duck duration (30s)`],
    ["user and token", "authorization { user: a, token: b }", `${FILE}:1: Cannot have a user/pass and token`],
    ["user and users", "authorization { user: a, users: [ {user: b} ] }", `${FILE}:1: Can not have a single user/pass and a users array`],
    ["token and users", "authorization { token: a, users: [ {user: b} ] }", `${FILE}:1: Can not have a token and a users array`],
  ];
  it.each(errors)("error: %s", (_name, text, message) => {
    expect(() => load(text)).toThrow(message);
  });

  it("accepts every connection type, in any case", () => {
    expect(() =>
      load("authorization { users: [ {user: a, allowed_connection_types: [standard, WEBSOCKET, leafnode, LEAFNODE_WS, mqtt, MQTT_WS, in_process]} ] }"),
    ).not.toThrow();
  });

  it("accepts a no_auth_user that names a user", () => {
    expect(load("authorization { users: [ {user: a, password: b} ] }\nno_auth_user: a").options.noAuthUser).toBe("a");
  });

  it("checks options built in code, without positions", () => {
    const o = applyDefaults({ maxPayload: 10, maxPending: 5 });
    expect(() => validateOptions(o)).toThrow("<options>:0: max_payload (10) cannot be higher than max_pending (5)");
  });
});

describe("loadConfigText / defaultOptions", () => {
  it("deep-freezes the options and returns warnings", () => {
    const { options, warnings } = load("authorization { users: [ {user: a, permissions: { publish: x } } ] }\nleafnodes { port: 7422 }");
    expect(Object.isFrozen(options)).toBe(true);
    expect(Object.isFrozen(options.authorization!.users[0].permissions!.publish!.allow)).toBe(true);
    expect(Object.isFrozen(options.pending.leafnodes)).toBe(true);
    expect(warnings).toHaveLength(1);
  });

  it("passes the environment in", () => {
    expect(load("port: $MB_TEST_PORT", { MB_TEST_PORT: "4999" }).options.port).toBe(4999);
    expect(errorOf(() => load("port: $MB_TEST_PORT", {})).message).toBe(`${FILE}:1: variable reference for 'MB_TEST_PORT' can not be found`);
  });

  it("defaultOptions applies DEFAULTS and overrides, frozen", () => {
    const o = defaultOptions();
    expect(Object.isFrozen(o)).toBe(true);
    expect(o.port).toBe(DEFAULTS.port);
    expect(o.httpPort).toBeUndefined();
    const p = defaultOptions({ port: 0, host: "127.0.0.1", log: { debug: true, trace: false, logtime: false, format: "json" } });
    expect(p).toMatchObject({ port: 0, host: "127.0.0.1", httpHost: "127.0.0.1", log: { debug: true, format: "json" } });
    expect(defaultOptions({ port: -1 }).port).toBe(0);
  });
});

describe("parseGoDuration", () => {
  it.each([
    ["0", 0], ["2s", 2000], ["1m30s", 90_000], ["500ms", 500], ["1.5h", 5_400_000], ["-1s", -1000], ["+2m", 120_000],
    ["100us", 0.1], ["1µs", 0.001], ["1h2m3s4ms", 3_723_004], [".5s", 500],
  ])("%s → %d ms", (text, ms) => {
    expect(parseGoDuration(text)).toBeCloseTo(ms, 9);
  });
  it.each(["", "1", "s", "1x", "1.s.", "-", "1 s"])("rejects %j", (text) => {
    expect(() => parseGoDuration(text)).toThrow(/^time: /);
  });
});

// ---- TLS, accounts, operator mode, OIDC ----

interface TestKey {
  pub: string;
  priv: KeyObject;
}

function newKey(role: NkeyRole): TestKey {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const raw = Buffer.from(publicKey.export({ format: "jwk" }).x!, "base64url");
  return { pub: encodePublicNkey(raw, role), priv: privateKey };
}

/** A NATS v2 JWT for `sub`, signed by `signer` (as nsc makes them). */
function mintJwt(signer: TestKey, sub: string, nats: Record<string, unknown>): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const claims = { jti: "TESTJTI", iat: 1_700_000_000, iss: signer.pub, sub, name: "test", nats: { version: 2, ...nats } };
  const body = `${b64({ typ: "JWT", alg: "ed25519-nkey" })}.${b64(claims)}`;
  return `${body}.${sign(null, Buffer.from(body), signer.priv).toString("base64url")}`;
}

const OP = newKey("operator");
const SYS = newKey("account");
const ACC = newKey("account");
const OP_JWT = mintJwt(OP, OP.pub, { type: "operator", system_account: SYS.pub });
const OP_JWT_NO_SYS = mintJwt(OP, OP.pub, { type: "operator" });
const SYS_JWT = mintJwt(OP, SYS.pub, { type: "account" });
const ACC_JWT = mintJwt(OP, ACC.pub, { type: "account" });

describe("TLS, accounts, operator mode and OIDC", () => {
  let dir: string;
  let cert: string, key: string, ca: string, jwks: string, opFile: string, opBare: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "meshbroker-config-sec-"));
    // Contents are not parsed at load time; only that the files exist.
    writeFileSync((cert = join(dir, "cert.pem")), "cert");
    writeFileSync((key = join(dir, "key.pem")), "key");
    writeFileSync((ca = join(dir, "ca.pem")), "ca");
    writeFileSync((jwks = join(dir, "jwks.json")), '{"keys": []}');
    writeFileSync(
      (opFile = join(dir, "op.jwt")),
      `-----BEGIN NATS OPERATOR JWT-----\n${OP_JWT}\n------END NATS OPERATOR JWT------\n\n` +
        "************************* IMPORTANT *************************\nNKEY Seed printed below...\n",
    );
    writeFileSync((opBare = join(dir, "op_bare.jwt")), `${OP_JWT}\n`);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const TLS = () => `tls {\n  cert_file: "${cert}"\n  key_file: "${key}"\n}`;

  describe("tls", () => {
    it("reads every key nats-server knows", () => {
      const { options, warnings } = build(`tls {
  cert_file: "${cert}", key_file: "${key}", ca_file: "${ca}"
  verify: true, timeout: 0.5
  cipher_suites: [TLS_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]
  curve_preferences: [X25519, CurveP256]
  pinned_certs: ["${"AB".repeat(32)}"]
  insecure: true
  connection_rate_limit: 10
}`);
      expect(options.tls).toEqual({
        certFile: cert, keyFile: key, caFile: ca, verify: true, verifyAndMap: false, timeoutMs: 500,
        ciphers: ["TLS_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"], curvePreferences: ["X25519", "CurveP256"],
        pinnedCerts: ["ab".repeat(32)],
      });
      expect(options.authTimeoutMs).toBe(1500);
      expect(options.pending).toEqual({});
      expect(warnings).toEqual([
        `${FILE}:7: "insecure" has no effect on the client listener, ignored`,
        `${FILE}:8: "connection_rate_limit" is not implemented yet, ignored`,
      ]);
    });

    const cases: [string, string, Partial<Options["tls"]> & object, number][] = [
      ["defaults: 2s, auth timeout 3s", "", { verify: false, verifyAndMap: false, timeoutMs: 2000 }, 3000],
      ["timeout in seconds", "timeout: 3", { timeoutMs: 3000 }, 4000],
      ["timeout as a duration", 'timeout: "1500ms"', { timeoutMs: 1500 }, 2500],
      ["timeout 0 is the default", "timeout: 0", { timeoutMs: 2000 }, 3000],
      ["verify_and_map turns verify on", "verify_and_map: true", { verify: true, verifyAndMap: true }, 3000],
    ];
    it.each(cases)("%s", (_n, extra, tls, authTimeoutMs) => {
      const { options } = build(`tls { cert_file: "${cert}", key_file: "${key}"\n${extra}\n}`);
      expect(options.tls).toMatchObject(tls);
      expect(options.authTimeoutMs).toBe(authTimeoutMs);
    });

    it("takes an empty pinned_certs list as none", () => {
      expect(build(`tls { cert_file: "${cert}", key_file: "${key}", pinned_certs: [] }`).options.tls!.pinnedCerts).toBeUndefined();
    });

    it("keeps authorization.timeout, which overrides the derived auth timeout", () => {
      const { options } = build(`${TLS()}\nauthorization { token: t, timeout: 5 }`);
      expect(options.authorization!.timeoutMs).toBe(5000);
      expect(options.authTimeoutMs).toBe(3000);
    });

    const errors: [string, () => string, number, () => string][] = [
      ["missing key_file", () => `port: 1\ntls {\n  cert_file: "${cert}"\n}`, 2, () => "missing 'key_file' in TLS configuration"],
      ["missing cert_file", () => `tls {\n  key_file: "${key}"\n}`, 1, () => "missing 'cert_file' in TLS configuration"],
      ["no certificate at all", () => "tls { verify: true }", 1, () => "missing 'cert_file' in TLS configuration"],
      ["cert_file does not exist", () => `tls {\n  cert_file: "${dir}/nope.pem"\n  key_file: "${key}"\n}`, 2,
        () => `error parsing X509 certificate/key pair: open ${dir}/nope.pem: no such file or directory`],
      ["key_file does not exist", () => `tls {\n  cert_file: "${cert}"\n\n  key_file: "${dir}/nope.pem"\n}`, 4,
        () => `error parsing X509 certificate/key pair: open ${dir}/nope.pem: no such file or directory`],
      ["cert_file is a directory", () => `tls { cert_file: "${dir}", key_file: "${key}" }`, 1,
        () => `error parsing X509 certificate/key pair: read ${dir}: is a directory`],
      ["ca_file does not exist", () => `tls {\n cert_file: "${cert}", key_file: "${key}"\n ca_file: "${dir}/ca2.pem"\n}`, 3,
        () => `open ${dir}/ca2.pem: no such file or directory`],
      ["unknown cipher", () => `tls { cert_file: "${cert}", key_file: "${key}"\n cipher_suites: [FOO] }`, 2, () => "unrecognized cipher FOO"],
      ["unknown curve", () => `tls { cert_file: "${cert}", key_file: "${key}", curve_preferences: [P256] }`, 1, () => "unrecognized curve preference P256"],
      ["empty curve list", () => `tls { cert_file: "${cert}", key_file: "${key}", curve_preferences: [] }`, 1,
        () => "error parsing tls config, 'curve_preferences' cannot be empty"],
      ["bad pinned cert", () => `tls { cert_file: "${cert}", key_file: "${key}", pinned_certs: [abc] }`, 1,
        () => "error parsing tls config, 'pinned_certs' key abc does not look like hex-encoded sha256 of DER encoded SubjectPublicKeyInfo"],
      ["verify_cert_and_check_known_urls", () => `tls { cert_file: "${cert}", key_file: "${key}"\n verify_cert_and_check_known_urls: true }`, 2,
        () => "verify_cert_and_check_known_urls not supported in this context"],
      ["verify not a bool", () => `tls { cert_file: "${cert}", key_file: "${key}", verify: 1 }`, 1,
        () => '"verify" must be a boolean (true/false, yes/no, on/off), got integer 1'],
      ["bad timeout", () => `tls { cert_file: "${cert}", key_file: "${key}", timeout: "2x" }`, 1,
        () => 'error parsing tls timeout: time: unknown unit "x" in duration "2x"'],
      ["tls not a map", () => "tls: true", 1, () => '"tls" must be a map, got boolean true'],
    ];
    it.each(errors)("error: %s", (_n, text, line, reason) => {
      expect(errorOf(() => load(text())).message).toBe(`${FILE}:${line}: ${reason()}`);
    });
  });

  describe("authorization extras", () => {
    it("keeps bcrypt passwords and tokens as they are", () => {
      const hash = "$2a$11$W2zko751KUvVy59mUTWmpOdWjpEm5qhcCZRd05GjI/sSOT.xtiHyG";
      const y = "$2y$10$Oe3cRSb0fD1jQ9E3Ae3ELewzxhzoEhkrM8r0mT3c8.EqDO1t2PdCW";
      expect(load(`authorization { users: [ {user: a, password: ${hash}}, {user: b, password: "${y}"} ] }`).options.authorization!.users
        .map((u) => u.password)).toEqual([hash, y]);
      expect(load(`authorization { token: "${y}" }`).options.authorization!.token).toBe(y);
    });

    it("accepts nkey users without a name, and no_auth_user still needs a named user", () => {
      const { options } = load(`authorization { users: [ {nkey: ${VALID_USER_NKEY}} ] }`);
      expect(options.authorization!.users).toEqual([{ nkey: VALID_USER_NKEY }]);
      expect(errorOf(() => load(`authorization { users: [ {nkey: ${VALID_USER_NKEY}} ] }\nno_auth_user: x`)).message).toBe(
        `${FILE}:2: no_auth_user: "x" present, but users are not defined`,
      );
    });

    it("rejects an account or operator key as a user nkey", () => {
      expect(errorOf(() => load(`authorization { users: [\n {nkey: ${ACC.pub}} ] }`)).message).toBe(`${FILE}:2: Not a valid public nkey for a user`);
    });

    it("allow_responses: true is max 1 response within 2 minutes (nats-server's defaults)", () => {
      const p = load("authorization { default_permissions: { allow_responses: true }, users: [ {user: a} ] }").options.authorization!;
      expect(p.defaultPermissions!.allowResponses).toEqual({ maxMsgs: 1, expiresMs: 120_000 });
      expect(p.users[0].permissions).toBe(p.defaultPermissions);
    });
  });

  describe("accounts", () => {
    const ACCOUNTS = `
accounts {
  ENG: {
    users: [
      {user: alice, password: a}
      {nkey: ${VALID_USER_NKEY}, permissions: {publish: "n.>"}}
    ]
    default_permissions: { publish: "eng.>", subscribe: ">" }
    exports: [
      {stream: "eng.events.>"}
      {stream: "eng.private.>", accounts: [OPS]}
      {service: "eng.api.*", accounts: [OPS], response_type: stream}
      {service: "eng.health", response: chunked}
    ]
  }
  OPS: {
    users: [ {user: bob, password: b} ]
    imports: [
      {stream: {account: ENG, subject: "eng.events.>"}, prefix: "from_eng"}
      {stream: {account: ENG, subject: "eng.private.x"}, to: "priv.x"}
      {service: {account: ENG, subject: "eng.api.get"}, to: "api.get"}
      {service: {account: ENG, subject: "eng.health"}}
    ]
  }
  "$SYS": { users: [ {user: admin, password: s} ] }
}
authorization { users: [ {user: global, password: g} ] }
no_auth_user: bob
`;

    it("reads accounts, users, exports and imports in declaration order", () => {
      const { options, warnings } = load(ACCOUNTS);
      expect(warnings).toEqual([]);
      expect(options.accounts.map((a) => a.name)).toEqual(["ENG", "OPS", "$SYS"]);
      const [eng, ops] = options.accounts;
      expect(plain(eng.users)).toEqual([
        { account: "ENG", user: "alice", password: "a", permissions: { publish: { allow: ["eng.>"] }, subscribe: { allow: [">"] } } },
        { account: "ENG", nkey: VALID_USER_NKEY, permissions: { publish: { allow: ["n.>"] } } },
      ]);
      expect(eng.defaultPermissions).toEqual({ publish: { allow: ["eng.>"] }, subscribe: { allow: [">"] } });
      expect(eng.exports).toEqual([
        { kind: "stream", subject: "eng.events.>" },
        { kind: "stream", subject: "eng.private.>", accounts: ["OPS"] },
        { kind: "service", subject: "eng.api.*", accounts: ["OPS"], responseType: "Stream" },
        { kind: "service", subject: "eng.health", responseType: "Chunked" },
      ]);
      expect(ops.imports).toEqual([
        { kind: "stream", account: "ENG", subject: "eng.events.>", prefix: "from_eng" },
        { kind: "stream", account: "ENG", subject: "eng.private.x", to: "priv.x" },
        { kind: "service", account: "ENG", subject: "eng.api.get", to: "api.get" },
        { kind: "service", account: "ENG", subject: "eng.health" },
      ]);
      expect(ops.users[0]).toEqual({ account: "OPS", user: "bob", password: "b" });
      // Users of the authorization block stay in the global account.
      expect(options.authorization!.users).toEqual([{ user: "global", password: "g" }]);
      expect(options.systemAccount).toBe("$SYS");
      expect(options.noAuthUser).toBe("bob");
    });

    const cases: [string, string, Record<string, unknown>][] = [
      ["a list of names", "accounts: [A, B]", {
        accounts: [{ name: "A", users: [], exports: [], imports: [] }, { name: "B", users: [], exports: [], imports: [] }],
        systemAccount: "$SYS",
      }],
      ["system_account", "accounts { A {} }\nsystem_account: A", { systemAccount: "A" }],
      ["system alias", "accounts { A {} }\nsystem: A", { systemAccount: "A" }],
      ["no accounts: no system account", "port: 4222", { accounts: [], systemAccount: undefined }],
      ["no_system_account keeps it unset", "accounts { A {} }\nno_system_account: true", { systemAccount: undefined }],
      ["an empty accounts list in an export is public", 'accounts { A { exports: [ {stream: "a.>", accounts: []} ] } }', {
        accounts: [{ name: "A", users: [], exports: [{ kind: "stream", subject: "a.>" }], imports: [] }],
      }],
      ["wildcard import of a wildcard export", 'accounts { A { exports: [{stream: "a.*.>"}] }, B { imports: [{stream: {account: A, subject: "a.*.x"}, to: "b.*.x"}] } }', {}],
      ["a prefix may end in a dot", 'accounts { A { exports: [{stream: "a.>"}] }, B { imports: [{stream: {account: A, subject: "a.x"}, prefix: "p."}] } }', {}],
      ["variables defined in the accounts block", 'accounts { perms = {publish: "x"}\n A { default_permissions: $perms } }', {
        accounts: [{ name: "A", users: [], exports: [], imports: [], defaultPermissions: { publish: { allow: ["x"] } } }],
      }],
      ["users in both the authorization block and accounts", "accounts { A { users: [{user: a}] } }\nauthorization { users: [{user: g}] }\nno_auth_user: g", {
        noAuthUser: "g",
      }],
    ];
    it.each(cases)("%s", (_n, text, expected) => {
      const { options } = load(text);
      expect(plain(options)).toMatchObject(plain(expected));
      if ("systemAccount" in expected && expected.systemAccount === undefined) expect(options.systemAccount).toBeUndefined();
    });

    it("warns for account features not implemented yet", () => {
      const { warnings } = load(`accounts {\n A {\n  jetstream: enabled\n  limits: {max_conn: 5}\n  mappings: {a: b}\n  nkey: ${ACC.pub}\n }\n}`);
      expect(warnings).toEqual([3, 4, 5, 6].map((l, i) => `${FILE}:${l}: "${["jetstream", "limits", "mappings", "nkey"][i]}" in account "A" is not implemented yet, ignored`));
    });

    it("warns for export and import options not implemented yet", () => {
      const { warnings } = load(`accounts {
  A { exports: [ {service: "s", latency: "lat.s", threshold: "1s"} ] }
  B { imports: [ {service: {account: A, subject: "s"}, share: true} ] }
}`);
      expect(warnings).toEqual([
        `${FILE}:2: "latency" in exports is not implemented yet, ignored`,
        `${FILE}:2: "threshold" in exports is not implemented yet, ignored`,
        `${FILE}:3: "share" in imports is not implemented yet, ignored`,
      ]);
    });

    const errors: [string, string, number, string][] = [
      // build
      ["accounts not a map or list", "accounts: 5", 1, '"accounts" must be a map of accounts or an array of account names, got integer 5'],
      ["reserved $G (map)", 'accounts {\n "$G": {}\n}', 2, '"$G" is a Reserved Account'],
      ["reserved $G (list)", 'accounts: [A, "$G"]', 1, '"$G" is a Reserved Account'],
      ["duplicate list entry", "accounts: [\n A\n B\n A\n]", 4, "Duplicate Account Entry: A"],
      ["account not a map", "accounts {\n A: 5\n}", 2, "Expected map entries for accounts"],
      ["unknown account key", "accounts {\n A {\n  permissions: {}\n }\n}", 3, 'unknown field "permissions" in account "A"'],
      ["exports not an array", "accounts { A { exports: {stream: a} } }", 1, '"exports" must be an array of exports, got a map'],
      ["export entry not a map", 'accounts { A { exports: [\n "a.>"\n] } }', 2, 'array element must be a map, got string "a.>"'],
      ["export without subject", "accounts { A { exports: [\n {accounts: [A]}\n] } }", 2, 'an export needs a "stream" or a "service" subject'],
      ["export with stream and service", 'accounts { A { exports: [ {stream: "a", service: "b"} ] } }', 1, 'Detected service "b" but already saw a stream'],
      ["unknown response type", "accounts { A { exports: [\n {service: s, response_type: many}\n] } }", 2, 'Unknown response type: "many"'],
      ["response type on a stream", "accounts { A { exports: [ {stream: s, response_type: stream} ] } }", 1, "Detected response directive on non-service"],
      ["account_token_position", "accounts { A { exports: [ {stream: \"a.*\", account_token_position: 2} ] } }", 1, '"account_token_position" is not supported yet'],
      ["invalid export subject", 'accounts { A { exports: [ {service: "s..x"} ] } }', 1, 'subject "s..x" is not a valid subject'],
      ["unknown export key", "accounts { A { exports: [\n {stream: s,\n  foo: 1}\n] } }", 3, 'unknown field "foo"'],
      ["import without subject", "accounts { A { imports: [\n {stream: {account: B}}\n] } }", 2, "Expect an account name and a subject"],
      ["import source not a map", "accounts { A { imports: [ {service: B} ] } }", 1, '"service" must be a map, got string "B"'],
      ["unknown key in import source", "accounts { A { imports: [ {stream: {account: B, subject: s, sbj: x}} ] } }", 1, 'unknown field "sbj"'],
      ["import with prefix and to", "accounts { A { imports: [\n {stream: {account: B, subject: s}, prefix: p, to: t}\n] } }", 2,
        "Stream import can not have a 'prefix' and a 'to' property"],
      ["wildcard prefix", 'accounts { A { imports: [ {stream: {account: B, subject: s},\n prefix: "p.*"} ] } }', 2,
        'Error adding stream import "s": stream import prefix can not contain wildcard tokens'],
      ["service import with prefix", "accounts { A { imports: [ {service: {account: B, subject: s}, prefix: p} ] } }", 1,
        "a service import takes 'to', not 'prefix'"],
      ["empty import", "accounts { A { imports: [ {to: x} ] } }", 1, 'an import needs a "stream" or a "service" map'],
      ["duplicate stream import", "accounts { A { imports: [\n {stream: {account: B, subject: s}}\n {stream: {account: B, subject: s}, to: t}\n] } }", 3,
        'Error adding stream import "s": stream import already exists'],
      ["duplicate service import subject", "accounts { A { imports: [\n {service: {account: B, subject: x}, to: l}\n {service: {account: C, subject: y}, to: l}\n] } }", 3,
        'Duplicate service import subject "l", previously used in import for account "B", subject "x"'],
      // validate
      ["import from an unknown account", "accounts {\n A { imports: [\n  {stream: {account: B, subject: s}}\n ] }\n}", 3, '"B" account not defined for stream import'],
      ["export to an unknown account", "accounts { A { exports: [\n {service: s, accounts: [C]}\n] } }", 2, '"C" account not defined for service export'],
      ["import without a matching export", "accounts { A {}\n B { imports: [ {service: {account: A, subject: s}} ] } }", 2,
        'Error adding service import "s": service import not authorized'],
      ["import of a private export", 'accounts { A { exports: [{stream: "a.>", accounts: [C]}] }\n B { imports: [ {stream: {account: A, subject: "a.x"}} ] }\n C {} }', 2,
        'Error adding stream import "a.x": stream import not authorized'],
      ["import wider than the export", 'accounts { A { exports: [{stream: "a.*"}] }\n B { imports: [ {stream: {account: A, subject: "a.>"}} ] } }', 2,
        'Error adding stream import "a.>": stream import not authorized'],
      ["stream import of a service export", 'accounts { A { exports: [{service: "a"}] }\n B { imports: [ {stream: {account: A, subject: "a"}} ] } }', 2,
        'Error adding stream import "a": stream import not authorized'],
      ["user in two accounts", "accounts {\n A { users: [ {user: u} ] }\n B { users: [\n  {user: u} ] }\n}", 4, 'Duplicate user "u" detected'],
      ["user in authorization and an account", "authorization { users: [ {user: u} ] }\naccounts { A { users: [\n {user: u} ] } }", 3, 'Duplicate user "u" detected'],
      ["nkey in two accounts", `accounts {\n A { users: [ {nkey: ${VALID_USER_NKEY}} ] }\n B { users: [ {nkey: ${VALID_USER_NKEY}} ] }\n}`, 3,
        `Duplicate nkey "${VALID_USER_NKEY}" detected`],
      ["single user and accounts", "authorization { user: a, password: b }\naccounts { A {\n users: [ {user: u} ] } }", 3, "Can not have a single user/pass and accounts"],
      ["token and accounts", "authorization { token: t }\naccounts { A {\n users: [ {user: u} ] } }", 3, "Can not have a token and accounts"],
      ["system_account not configured", "accounts { A {} }\n\nsystem_account: B", 3, 'error resolving system account: account missing (no account "B" in accounts)'],
      ["system_account $SYS not configured", 'system_account: "$SYS"', 1, 'error resolving system account: account missing (no account "$SYS" in accounts)'],
      ["system_account not a string", "system_account: 5", 1, "system account name must be a string"],
      ["no_auth_user not among account users", "accounts { A { users: [ {user: a} ] } }\nno_auth_user: b", 2,
        'no_auth_user: "b" not present as user in authorization block or account configuration'],
      ["connection types of account users", "accounts { A { users: [\n {user: a, clients: [foo]} ] } }", 2, 'invalid connection types ["FOO"]'],
    ];
    it.each(errors)("error: %s", (_n, text, line, reason) => {
      expect(errorOf(() => load(text)).message).toBe(`${FILE}:${line}: ${reason}`);
    });
  });

  describe("operator mode", () => {
    const preload = () => `resolver_preload {\n  ${SYS.pub}: "${SYS_JWT}"\n  ${ACC.pub}: "${ACC_JWT}"\n}`;

    it("reads an inline operator JWT, the memory resolver and preloads", () => {
      const { options, warnings } = load(`operator: "${OP_JWT}"\nresolver: MEMORY\n${preload()}`);
      expect(warnings).toEqual([]);
      expect(options.operatorJwts).toEqual([OP_JWT]);
      expect(options.resolver).toBe("MEMORY");
      expect(options.resolverPreload).toEqual({ [SYS.pub]: SYS_JWT, [ACC.pub]: ACC_JWT });
      // The operator's system account.
      expect(options.systemAccount).toBe(SYS.pub);
      expect(options.pending).toEqual({});
    });

    const cases: [string, () => string, () => Partial<Options>][] = [
      ["an armored operator file", () => `operator: "${opFile}"`, () => ({ operatorJwts: [OP_JWT] })],
      ["a bare operator file", () => `operators: "${opBare}"`, () => ({ operatorJwts: [OP_JWT] })],
      ["a list (inline and file)", () => `root_operators: ["${opBare}", "${OP_JWT_NO_SYS}"]`, () => ({ operatorJwts: [OP_JWT, OP_JWT_NO_SYS] })],
      ["resolver: MEM", () => `operator: "${OP_JWT}"\naccount_resolver: mem`, () => ({ resolver: "MEMORY" })],
      ["system_account given too", () => `operator: "${OP_JWT_NO_SYS}"\nsystem_account: ${ACC.pub}`, () => ({ systemAccount: ACC.pub })],
    ];
    it.each(cases)("%s", (_n, text, expected) => {
      const { options } = load(`${text()}\nresolver: MEMORY\n${preload()}`);
      expect(options).toMatchObject(expected());
    });

    it("keeps other resolvers pending, with a warning", () => {
      for (const r of ['URL("http://localhost:9090/jwt/v1/accounts/")', `{ type: full, dir: "${dir}" }`, `{ TYPE: cache, DIR: "${dir}" }`]) {
        const { options, warnings } = load(`operator: "${OP_JWT}"\n\nresolver: ${r}`);
        expect(options.resolver).toBeUndefined();
        expect(options.pending.resolver).toBeDefined();
        expect(warnings).toEqual([`${FILE}:3: "resolver" of this type is not implemented yet (only MEMORY is), ignored`]);
      }
    });

    it("warns about what nats-server warns about or silently ignores", () => {
      expect(load(`operator: "${OP_JWT_NO_SYS}"\nresolver: MEMORY`).warnings).toEqual([`${FILE}:1: Trusted Operators should utilize a System Account`]);
      expect(load(`operator: "${OP_JWT}"\nresolver: MEMORY\n${preload()}\nauthorization { token: t }`).warnings).toEqual([
        `${FILE}:7: authorization user/token is ignored in operator mode (clients authenticate with JWTs)`,
      ]);
    });

    const errors: [string, () => string, number, () => string][] = [
      ["operator file missing", () => `\noperator: "${dir}/nope.jwt"`, 2, () => `error parsing operator JWT: open ${dir}/nope.jwt: no such file or directory`],
      ["operator not a JWT", () => "operator: eyJhbc.x.y", 1, () => "error parsing operator JWT: invalid JWT segment"],
      ["operator is an account JWT", () => `operator: "${ACC_JWT}"`, 1, () => "error parsing operator JWT: not operator claim"],
      ["operator JWT tampered", () => `operator: "${OP_JWT.slice(0, -4)}AAAA"`, 1, () => "error parsing operator JWT: claim failed V2 signature verification"],
      ["operator JWT signed by an account key", () => `operator: "${mintJwt(ACC, OP.pub, { type: "operator" })}"`, 1,
        () => "error parsing operator JWT: claim failed V2 signature verification"],
      ["operator JWT with a bad header", () => `operator: "${Buffer.from('{"typ":"JWS","alg":"ed25519-nkey"}').toString("base64url")}.${OP_JWT.split(".").slice(1).join(".")}"`, 1,
        () => 'error parsing operator JWT: not supported type "JWS"'],
      ["operator list element", () => `operator: [\n "${OP_JWT}"\n 5\n]`, 3, () => "error parsing operators: unsupported type integer 5"],
      ["operator not a string", () => "operator: 5", 1, () => "error parsing operators: unsupported type integer 5"],
      ["unknown resolver", () => "resolver: FOO", 1, () => 'error parsing account resolver, should be MEM or URL("url") or a map containing dir and type state=[FULL|CACHE])'],
      ["memory resolver as a map", () => `resolver: { type: memory, dir: "${dir}" }`, 1,
        () => 'error parsing account resolver, should be MEM or URL("url") or a map containing dir and type state=[FULL|CACHE])'],
      ["dir resolver without dir", () => "resolver: { type: full }", 1, () => "dir has no value and needs to point to a directory"],
      ["resolver of a wrong type", () => "resolver: 5", 1, () => "error parsing operator resolver, wrong type integer 5"],
      ["preload not a map", () => "resolver_preload: 5", 1, () => "preload should be a map of account_public_key:account_jwt"],
      ["preload value not a string", () => `resolver_preload {\n ${ACC.pub}: 5\n}`, 2, () => "preload map value should be a string JWT"],
      ["preload value not an account JWT", () => `resolver_preload {\n ${ACC.pub}: "${OP_JWT}"\n}`, 2, () => "invalid account JWT"],
      ["preload account JWT not issued by an operator", () => `resolver_preload {\n ${ACC.pub}: "${mintJwt(ACC, ACC.pub, { type: "account" })}"\n}`, 2,
        () => "invalid account JWT"],
      // validate
      ["no resolver", () => `operator: "${OP_JWT}"`, 1, () => "operators require an account resolver to be configured"],
      ["accounts", () => `operator: "${OP_JWT}"\nresolver: MEMORY\n${preload()}\naccounts {\n A {}\n}`, 7,
        () => "operators do not allow Accounts to be configured directly"],
      ["users", () => `operator: "${OP_JWT}"\nresolver: MEMORY\n${preload()}\nauthorization { users: [ {user: a} ] }`, 7,
        () => "operators do not allow users to be configured directly"],
      ["trusted keys too", () => `operator: "${OP_JWT}"\nresolver: MEMORY\ntrusted: ${OP.pub}`, 1,
        () => "conflicting options for 'TrustedKeys' and 'TrustedOperators'"],
      ["system_account differs from the operator's", () => `operator: "${OP_JWT}"\nresolver: MEMORY\n${preload()}\nsystem_account: ${ACC.pub}`, 7,
        () => "system_account in config and operator JWT must be identical"],
      ["system account not preloaded", () => `operator: "${OP_JWT}"\n\nresolver: MEMORY`, 3,
        () => `error resolving system account: account missing (${SYS.pub} is not in resolver_preload)`],
      ["no_auth_user", () => `operator: "${OP_JWT}"\nresolver: MEMORY\n${preload()}\nno_auth_user: a`, 7,
        () => "no_auth_user not compatible with Trusted Operator"],
    ];
    it.each(errors)("error: %s", (_n, text, line, reason) => {
      expect(errorOf(() => load(text())).message).toBe(`${FILE}:${line}: ${reason()}`);
    });
  });

  describe("oidc", () => {
    it("reads every key, with defaults", () => {
      const { options, warnings } = load(`oidc {
  jwks_file: "${jwks}"
  issuer: "https://id.example.com/"
  audience: meshbroker
  user_claim: email
  account_claim: tenant
  permissions_claim: nats
  default_permissions: { publish: "pub.>", subscribe: "sub.>" }
  clock_tolerance: 30
}`);
      expect(warnings).toEqual([]);
      expect(options.oidc).toEqual({
        jwksFile: jwks, issuer: "https://id.example.com/", audience: "meshbroker", userClaim: "email", accountClaim: "tenant",
        permissionsClaim: "nats", defaultPermissions: { publish: { allow: ["pub.>"] }, subscribe: { allow: ["sub.>"] } },
        clockToleranceSec: 30,
      });
      expect(load(`oidc { jwks_file: "${jwks}" }`).options.oidc).toEqual({ jwksFile: jwks, userClaim: "sub", clockToleranceSec: 60 });
      expect(load(`oidc { jwks_file: "${jwks}", clock_tolerance: "1m30s" }`).options.oidc!.clockToleranceSec).toBe(90);
      expect(load(`accounts { T {} }\noidc { jwks_file: "${jwks}", account: T }`).options.oidc!.account).toBe("T");
      expect(load(`oidc { jwks_file: "${jwks}", account: "$G" }`).options.oidc!.account).toBe("$G");
    });

    const errors: [string, () => string, number, () => string][] = [
      ["no jwks_file", () => "port: 1\noidc { issuer: x }", 2, () => 'oidc requires "jwks_file"'],
      ["jwks_file missing", () => `oidc {\n  jwks_file: "${dir}/nope.json"\n}`, 2, () => `error reading jwks_file: open ${dir}/nope.json: no such file or directory`],
      ["unknown key", () => `oidc {\n  jwks_file: "${jwks}"\n  audiance: x\n}`, 3, () => 'unknown field "audiance" in oidc'],
      ["bad clock_tolerance", () => `oidc { jwks_file: "${jwks}", clock_tolerance: -1 }`, 1, () => '"clock_tolerance" must be a number of seconds, got integer -1'],
      ["bad default_permissions", () => `oidc { jwks_file: "${jwks}", default_permissions: { pub: "a..b" } }`, 1, () => 'subject "a..b" is not a valid subject'],
      ["account not configured", () => `oidc {\n  jwks_file: "${jwks}"\n  account: T\n}`, 3, () => 'oidc account "T" is not a configured account'],
    ];
    it.each(errors)("error: %s", (_n, text, line, reason) => {
      expect(errorOf(() => load(text())).message).toBe(`${FILE}:${line}: ${reason()}`);
    });
  });

  // The same configs through the real nats-server 2.9 (`-t` checks parsing; the checks nats-server
  // only makes when it starts are compared by starting it, for configs it refuses).
  describe.skipIf(!existsSync(NATS_SERVER_BIN))("compared with nats-server", () => {
    // [name, config, how nats-server checks it, our reason when it differs from nats-server's]
    const cases: [string, () => string, "t" | "start", string?][] = [
      ["missing key_file", () => `tls { cert_file: "${cert}" }`, "t"],
      ["missing cert_file", () => `tls { key_file: "${key}" }`, "t"],
      ["cert_file does not exist", () => `tls { cert_file: "${dir}/nope.pem", key_file: "${key}" }`, "t"],
      ["unknown cipher", () => `tls { cert_file: "${dir}/nope.pem", key_file: "${key}", cipher_suites: [FOO] }`, "t"],
      ["bad pinned cert", () => `tls { cert_file: "${dir}/nope.pem", key_file: "${key}", pinned_certs: [abc] }`, "t"],
      ["accounts, exports, imports", () => "accounts { A { exports: [{stream: \"a.>\"}, {service: \"s.*\", accounts: [B]}] }\n" +
        "B { users: [{user: b}], imports: [{stream: {account: A, subject: \"a.x\"}, prefix: p}, {service: {account: A, subject: \"s.x\"}, to: l}] } }", "t"],
      ["import from an unknown account", () => "accounts { A { imports: [{stream: {account: B, subject: x}}] } }", "t"],
      ["export to an unknown account", () => 'accounts { A { exports: [{stream: "a.>", accounts: [C]}] } }', "t"],
      ["import not authorized", () => 'accounts { A { exports: [{stream: "a.>", accounts: [C]}] }, B { imports: [{stream: {account: A, subject: "a.x"}}] }, C {} }', "t"],
      ["service import not authorized", () => 'accounts { A {}, B { imports: [{service: {account: A, subject: "s"}}] } }', "t"],
      ["user in two accounts", () => "accounts { A { users: [{user: a}] }, B { users: [{user: a}] } }", "t"],
      ["reserved $G", () => 'accounts { "$G": {} }', "t"],
      ["duplicate account in a list", () => "accounts [ A, B, A ]", "t"],
      // (Not compared: prefix + to, which nats-server 2.9 refuses or accepts depending on map order.)
      ["wildcard prefix", () => 'accounts { A { exports: [{stream: "a.>"}] }, B { imports: [{stream: {account: A, subject: "a.x"}, prefix: "p.*"}] } }', "t"],
      ["duplicate service import", () => 'accounts { A { exports: [{service: "s.>"}] }, B { imports: [{service: {account: A, subject: "s.x"}, to: l}, {service: {account: A, subject: "s.y"}, to: l}] } }', "t"],
      ["unknown response type", () => 'accounts { A { exports: [{service: "s", response_type: foo}] } }', "t"],
      ["operator mode", () => `operator: "${opFile}"\nresolver: MEMORY\nresolver_preload { ${SYS.pub}: "${SYS_JWT}", ${ACC.pub}: "${ACC_JWT}" }`, "t"],
      ["operator file missing", () => `operator: "${dir}/nope.jwt"`, "t"],
      ["operator is an account JWT", () => `operator: "${ACC_JWT}"`, "t"],
      ["unknown resolver", () => "resolver: FOO", "t",
        'error parsing account resolver, should be MEM or URL("url") or a map containing dir and type state=[FULL|CACHE])'],
      ["invalid preload", () => `resolver_preload { ${ACC.pub}: "${OP_JWT}" }`, "t"],
      ["system_account not configured", () => "accounts { A {} }\nsystem_account: B", "start",
        'error resolving system account: account missing (no account "B" in accounts)'],
      ["operator with accounts", () => `operator: "${opFile}"\nresolver: MEMORY\naccounts { A {} }`, "start"],
      ["operator with users", () => `operator: "${opFile}"\nresolver: MEMORY\nauthorization { users: [{user: a}] }`, "start"],
      ["operator and a different system_account", () => `operator: "${opFile}"\nresolver: MEMORY\nsystem_account: ${ACC.pub}`, "start"],
      ["system account not preloaded", () => `operator: "${opFile}"\nresolver: MEMORY`, "start",
        `error resolving system account: account missing (${SYS.pub} is not in resolver_preload)`],
      ["operator and trusted", () => `operator: "${opFile}"\nresolver: MEMORY\ntrusted: ${OP.pub}`, "start"],
      ["no_auth_user in operator mode", () => `operator: "${opFile}"\nresolver: MEMORY\nresolver_preload { ${SYS.pub}: "${SYS_JWT}" }\nno_auth_user: a`, "start"],
    ];
    it.each(cases)("%s", async (_n, text, how, differs) => {
      expectSameVerdict(await natsServerVerdict(dir, text(), how === "start"), meshbrokerVerdict(load, text()), differs);
    }, 15_000);
  });
});

describe("validateOptions: accounts built in code", () => {
  it("checks a system account and imports without positions", () => {
    expect(() => validateOptions(applyDefaults({ systemAccount: "X" }))).toThrow(
      '<options>:0: error resolving system account: account missing (no account "X" in accounts)',
    );
    expect(() => validateOptions(applyDefaults({ systemAccount: "$SYS", accounts: [{ name: "A", users: [], exports: [], imports: [] }] }))).not.toThrow();
    const accounts = [
      { name: "A", users: [], exports: [{ kind: "service" as const, subject: "svc.>", accounts: ["B"] }], imports: [] },
      { name: "B", users: [], exports: [], imports: [{ kind: "service" as const, account: "A", subject: "svc.x" }] },
      { name: "C", users: [], exports: [], imports: [{ kind: "service" as const, account: "A", subject: "svc.x" }] },
    ];
    expect(() => validateOptions(applyDefaults({ accounts: accounts.slice(0, 2) }))).not.toThrow();
    expect(() => validateOptions(applyDefaults({ accounts }))).toThrow('<options>:0: Error adding service import "svc.x": service import not authorized');
  });
});
