// The `mqtt {}` block: what buildOptions makes of it (nats-server opts.go parseMQTT, plus
// meshbroker's store_dir), the checks nats-server 2.9 makes when it starts (mqtt.go
// validateMQTTOptions), and the same configs through the real nats-server when it is installed.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  buildOptions,
  loadConfigText,
  parseConfigText,
  validateOptions,
  type MqttConfig,
} from "../../services/common/config/index.js";
import { applyDefaults } from "../../services/common/config/build.js";
import { newOperator, operatorConfig, type TestOperator } from "../helpers/creds.js";
import { NATS_SERVER_BIN } from "../helpers/nats-server.js";
import { errorOf, expectSameVerdict, meshbrokerVerdict, natsServerVerdict, selfSignedPair } from "../helpers/config.js";

const FILE = "mqtt.conf";
const build = (text: string) => buildOptions(parseConfigText(text, FILE, {}), FILE);
const load = (text: string) => loadConfigText(text, FILE, {});


const NKEY_USER = "UAS4VJSAFF67OL7O3Q72GW2D6HFRVZOYXJYIQBJTKPARIICN6SGME6MT";
const JS_WARNING = "JetStream settings of nats-server's MQTT, unused by meshbroker, ignored";

// Certificate files: only nats-server reads their contents, so the comparison tests write a real
// pair (openssl) while the others only need files that exist.
let dir: string;
let cert: string, key: string;
let op: TestOperator;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "meshbroker-config-mqtt-"));
  writeFileSync((cert = join(dir, "cert.pem")), "cert");
  writeFileSync((key = join(dir, "key.pem")), "key");
  op = await newOperator();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const DEFAULT_MQTT: MqttConfig = { host: "0.0.0.0", port: 1883, ackWaitMs: 30_000, maxAckPending: 1024 };

describe("mqtt block: buildOptions", () => {
  // [name, config, the expected mqtt options (undefined: no listener)]
  type Expected = Partial<MqttConfig> | undefined;
  const cases: [string, () => string, Expected | (() => Expected)][] = [
    ["port only: host 0.0.0.0, defaults", () => "mqtt { port: 1883 }", {}],
    ["listen host:port", () => 'mqtt { listen: "127.0.0.1:8883" }', { host: "127.0.0.1", port: 8883 }],
    ["listen :port", () => 'mqtt { listen: ":8883" }', { port: 8883 }],
    ["listen IPv6", () => 'mqtt { listen: "[::1]:8883" }', { host: "::1", port: 8883 }],
    ["listen as a port number", () => "mqtt { listen: 8883 }", { port: 8883 }],
    ["host and port", () => "mqtt { host: 127.0.0.1, port: 1883 }", { host: "127.0.0.1" }],
    ["net is host", () => "mqtt { net: 10.0.0.1, port: 1883 }", { host: "10.0.0.1" }],
    ["MQTT in capitals", () => "MQTT { Port: 1883 }", {}],
    ["a later key wins", () => 'mqtt { listen: "127.0.0.1:1234", port: 1883 }', { host: "127.0.0.1" }],
    ["port -1 is a random port", () => "mqtt { port: -1 }", { port: 0 }],
    ["no port: no listener", () => "mqtt { host: 127.0.0.1, ack_wait: \"1m\", no_auth_user: bob }", undefined],
    ["port 0: no listener", () => "mqtt { port: 0 }", undefined],
    ['listen "host:0": no listener', () => 'mqtt { listen: "127.0.0.1:0" }', undefined],
    ["tls", () => `mqtt { port: 1883, tls { cert_file: "${cert}", key_file: "${key}", ca_file: "${cert}", verify_and_map: true, timeout: 3 } }`, () => ({
      tls: { certFile: cert, keyFile: key, caFile: cert, verify: true, verifyAndMap: true, timeoutMs: 3000 },
    })],
    ["tls verify", () => `mqtt { port: 1883, tls { cert_file: "${cert}", key_file: "${key}", verify: true } }`, () => ({
      tls: { certFile: cert, keyFile: key, verify: true, verifyAndMap: false, timeoutMs: 2000 },
    })],
    ["no_auth_user", () => "mqtt { port: 1883, no_auth_user: bob }", { noAuthUser: "bob" }],
    ["authorization user/pass", () => "mqtt { port: 1883, authorization { user: u, pass: p } }", {
      authorization: { user: "u", password: "p" },
    }],
    ["authentication username/password/timeout", () => "mqtt { port: 1883, authentication { username: u, password: p, timeout: 1.5 } }", {
      authorization: { user: "u", password: "p", timeoutMs: 1500 },
    }],
    ["authorization token, timeout 0 = the main one", () => "mqtt { port: 1883, authorization { token: t, timeout: 0 } }", {
      authorization: { token: "t" },
    }],
    ["ack_wait", () => 'mqtt { port: 1883, ack_wait: "1m" }', { ackWaitMs: 60_000 }],
    ["ackwait", () => 'mqtt { port: 1883, ackwait: "1.5s" }', { ackWaitMs: 1500 }],
    ["ack_wait 0 is the default", () => 'mqtt { port: 1883, ack_wait: "0s" }', { ackWaitMs: 30_000 }],
    // Refused when it starts (validateOptions), as nats-server.
    ["negative ack_wait is kept for validateOptions", () => 'mqtt { port: 1883, ack_wait: "-5s" }', { ackWaitMs: -5000 }],
    ["max_ack_pending", () => "mqtt { port: 1883, max_ack_pending: 10 }", { maxAckPending: 10 }],
    ["max_pending", () => "mqtt { port: 1883, max_pending: 100 }", { maxAckPending: 100 }],
    ["max_inflight", () => "mqtt { port: 1883, max_inflight: 65535 }", { maxAckPending: 65535 }],
    ["max_ack_pending 0 is the default", () => "mqtt { port: 1883, max_ack_pending: 0 }", { maxAckPending: 1024 }],
    ["store_dir", () => 'mqtt { port: 1883, store_dir: "/data/mqtt" }', { storeDir: "/data/mqtt" }],
    ['store_dir ""', () => 'mqtt { port: 1883, store_dir: "" }', {}],
    ["a variable defined in the block", () => "mqtt { p = 1883, port: $p }", {}],
  ];
  it.each(cases)("%s", (_n, text, want) => {
    const expected = typeof want === "function" ? want() : want;
    const { options, warnings } = build(text());
    expect(warnings).toEqual([]);
    expect(options.pending).toEqual({});
    if (expected === undefined) expect(options.mqtt).toBeUndefined();
    else expect(options.mqtt).toEqual({ ...DEFAULT_MQTT, ...expected });
  });

  it("keeps nats-server's JetStream settings, with one warning", () => {
    const { options, warnings } = build(`mqtt {
  port: 1883
  js_domain: hub, stream_replicas: 3, consumer_replicas: 1
  consumer_memory_storage: true, consumer_inactive_threshold: "1h"
}`);
    expect(options.mqtt).toEqual({
      ...DEFAULT_MQTT, jsDomain: "hub", streamReplicas: 3, consumerReplicas: 1, consumerMemoryStorage: true,
      consumerInactiveThresholdMs: 3_600_000,
    });
    expect(warnings).toEqual([
      `${FILE}:3: "js_domain", "stream_replicas", "consumer_replicas", "consumer_memory_storage", "consumer_inactive_threshold": ${JS_WARNING}`,
    ]);
    expect(build('mqtt { port: 1883, consumer_auto_cleanup: "5m" }').options.mqtt!.consumerInactiveThresholdMs).toBe(300_000);
    // No listener: nothing to warn about.
    expect(build("mqtt { js_domain: hub }").warnings).toEqual([]);
  });

  it("takes an integer duration as seconds, with nats-server's warning", () => {
    const { options, warnings } = build("mqtt {\n  port: 1883\n  ack_wait: 5\n  consumer_inactive_threshold: 60\n}");
    expect(options.mqtt).toMatchObject({ ackWaitMs: 5000, consumerInactiveThresholdMs: 60_000 });
    expect(warnings).toEqual([
      `${FILE}:3: invalid use of field "ack_wait": ack_wait should be converted to a duration`,
      `${FILE}:4: invalid use of field "consumer_inactive_threshold": consumer_inactive_threshold should be converted to a duration`,
      `${FILE}:4: "consumer_inactive_threshold": ${JS_WARNING}`,
    ]);
  });

  it("warns about tls keys it ignores, naming the mqtt listener", () => {
    const { warnings } = build(`mqtt {\n  port: 1883\n  tls { cert_file: "${cert}", key_file: "${key}", insecure: true }\n}`);
    expect(warnings).toEqual([`${FILE}:3: "insecure" has no effect on the mqtt listener, ignored`]);
  });

  it("is no longer pending", () => {
    const { options, warnings } = build("mqtt { port: 1883 }\nleaf { port: 7422 }");
    expect(Object.keys(options.pending)).toEqual(["leafnodes"]);
    expect(warnings).toEqual([`${FILE}:2: "leaf" is not implemented yet, ignored`]);
  });
});

describe("mqtt block: store_dir", () => {
  // [name, config, storeDir]; jetstream {} and the top-level store_dir stay pending (with a warning).
  const cases: [string, string, string | undefined][] = [
    ["none", "mqtt { port: 1883 }", undefined],
    ["the block's", 'mqtt { port: 1883, store_dir: "/m" }', "/m"],
    ["jetstream's", 'mqtt { port: 1883 }\njetstream { store_dir: "/js" }', "/js"],
    ["jetstream's storedir", 'jetstream { storedir: "/js" }\nmqtt { port: 1883 }', "/js"],
    ["jetstream's store", 'jetstream { store: "/js", max_mem: 1G }\nmqtt { port: 1883 }', "/js"],
    ["jetstream's STORE_DIR", 'jetstream { STORE_DIR: "/js" }\nmqtt { port: 1883 }', "/js"],
    ["the block's over jetstream's", 'jetstream { store_dir: "/js" }\nmqtt { port: 1883, store_dir: "/m" }', "/m"],
    ['the block\'s "" falls back', 'jetstream { store_dir: "/js" }\nmqtt { port: 1883, store_dir: "" }', "/js"],
    ["the top-level store_dir", 'store_dir: "/top"\nmqtt { port: 1883 }', "/top"],
    ["storedir", 'storedir: "/top"\nmqtt { port: 1883 }', "/top"],
    ["jetstream without a store_dir", "jetstream: enabled\nmqtt { port: 1883 }", undefined],
    ["jetstream {} without a store_dir", "jetstream { max_mem: 1G }\nmqtt { port: 1883 }", undefined],
  ];
  it.each(cases)("%s", (_n, text, storeDir) => {
    const { options } = build(text);
    expect(options.mqtt!.storeDir).toBe(storeDir);
    expect(Object.hasOwn(options.mqtt!, "storeDir")).toBe(storeDir !== undefined);
  });

  it("leaves jetstream pending, with its warning", () => {
    const { options, warnings } = build('mqtt { port: 1883 }\njetstream { store_dir: "/js" }');
    expect(options.pending).toEqual({ jetstream: { store_dir: "/js" } });
    expect(warnings).toEqual([`${FILE}:2: "jetstream" is not implemented yet, ignored`]);
  });

  it("refuses a jetstream store_dir that is not a string when the mqtt block uses it", () => {
    expect(errorOf(() => build("mqtt { port: 1883 }\njetstream {\n  store_dir: 5\n}")).message).toBe(
      `${FILE}:3: "store_dir" must be a string, got integer 5`,
    );
    expect(() => build("mqtt { port: 1883, store_dir: /m }\njetstream { store_dir: 5 }")).not.toThrow();
  });
});

describe("mqtt block: errors from buildOptions", () => {
  // [name, config, line, reason]
  const errors: [string, () => string, number, string | (() => string)][] = [
    ["not a map", () => "mqtt: 1883", 1, '"mqtt" must be a map, got integer 1883'],
    ["unknown key", () => "mqtt {\n  port: 1883\n  ack_wiat: \"1m\"\n}", 3, 'unknown field "ack_wiat" in mqtt'],
    ["websocket's keys are unknown", () => "mqtt {\n  no_tls: true\n}", 2, 'unknown field "no_tls" in mqtt'],
    ["users in its authorization", () => "mqtt {\n  authorization {\n    users: [ {user: a, password: b} ]\n  }\n}", 3,
      'unknown field "users" in mqtt.authorization'],
    ["unknown tls key", () => "mqtt {\n  tls {\n    cert: x\n  }\n}", 3, 'unknown field "cert" in mqtt.tls'],
    ["port not a number", () => 'mqtt {\n  port: "x"\n}', 2, '"port" must be an integer, got string "x"'],
    ["port out of range", () => "mqtt {\n  port: 70000\n}", 2, "invalid port 70000 (use 0 for the default, -1 for a random port)"],
    ["listen without a port", () => 'mqtt {\n  listen: "127.0.0.1"\n}', 2, 'could not parse address string "127.0.0.1"'],
    ["host not a string", () => "mqtt {\n  host: 1\n}", 2, '"host" must be a string, got integer 1'],
    ["no_auth_user not a string", () => "mqtt {\n  no_auth_user: 1\n}", 2, '"no_auth_user" must be a string, got integer 1'],
    ["max_ack_pending over 65535", () => "mqtt {\n  max_ack_pending: 65536\n}", 2, "invalid value 65536, should in [0..65535] range"],
    ["max_inflight negative", () => "mqtt {\n  max_inflight: -1\n}", 2, "invalid value -1, should in [0..65535] range"],
    ["max_ack_pending not an integer", () => 'mqtt {\n  max_ack_pending: "10"\n}', 2, '"max_ack_pending" must be an integer, got string "10"'],
    ["ack_wait invalid", () => 'mqtt {\n  ack_wait: "x"\n}', 2, 'error parsing ack_wait: time: invalid duration "x"'],
    ["ackwait without a unit", () => 'mqtt {\n  ackwait: "30"\n}', 2, 'error parsing ack_wait: time: missing unit in duration "30"'],
    ["ack_wait a boolean", () => "mqtt {\n  ack_wait: true\n}", 2, '"ack_wait" must be a duration string such as "2s" or "1m30s", got boolean true'],
    ["consumer_inactive_threshold bad unit", () => 'mqtt {\n  consumer_inactive_threshold: "2x"\n}', 2,
      'error parsing consumer_inactive_threshold: time: unknown unit "x" in duration "2x"'],
    ["stream_replicas not an integer", () => "mqtt {\n  stream_replicas: 1.5\n}", 2, '"stream_replicas" must be an integer, got float 1.5'],
    ["consumer_memory_storage not a boolean", () => "mqtt {\n  consumer_memory_storage: 1\n}", 2,
      '"consumer_memory_storage" must be a boolean (true/false, yes/no, on/off), got integer 1'],
    ["js_domain not a string", () => "mqtt {\n  js_domain: 1\n}", 2, '"js_domain" must be a string, got integer 1'],
    ["store_dir not a string", () => "mqtt {\n  store_dir: 1\n}", 2, '"store_dir" must be a string, got integer 1'],
    // The tls block is checked as the main one, with or without a port (as nats-server).
    ["tls without key_file", () => `mqtt {\n  port: 1883\n  tls {\n    cert_file: "${cert}"\n  }\n}`, 3, "missing 'key_file' in TLS configuration"],
    ["tls cert_file missing", () => `mqtt {\n  tls { cert_file: "${dir}/nope.pem", key_file: "${key}" }\n}`, 2,
      () => `error parsing X509 certificate/key pair: open ${dir}/nope.pem: no such file or directory`],
    ["authorization timeout a duration", () => 'mqtt {\n  authorization {\n    timeout: "5s"\n  }\n}', 3, '"timeout" must be a number of seconds, got string "5s"'],
  ];
  it.each(errors)("error: %s", (_n, text, line, reason) => {
    expect(errorOf(() => build(text())).message).toBe(`${FILE}:${line}: ${typeof reason === "function" ? reason() : reason}`);
  });
});

describe("mqtt block: validateOptions (nats-server's checks at start)", () => {
  const opConfig = () => operatorConfig(op, []);
  // [name, config, line, reason]; the mqtt block first so lines do not depend on the rest.
  const errors: [string, () => string, number, string][] = [
    ["no server_name", () => "mqtt {\n  port: 1883\n}", 1, "mqtt requires server name to be explicitly set"],
    ["empty server_name", () => 'mqtt {\n  port: 1883\n}\nserver_name: ""', 1, "mqtt requires server name to be explicitly set"],
    ["no_auth_user without users", () => "mqtt {\n  port: 1883\n  no_auth_user: bob\n}\nserver_name: s", 3,
      'no_auth_user: "bob" present, but users are not defined'],
    ["no_auth_user with only nkey users", () => `mqtt {\n  port: 1883\n  no_auth_user: bob\n}\nserver_name: s\nauthorization { users: [ {nkey: ${NKEY_USER}} ] }`, 3,
      'no_auth_user: "bob" present, but users are not defined'],
    ["no_auth_user not a user", () => "mqtt {\n  port: 1883\n  no_auth_user: bob\n}\nserver_name: s\nauthorization { users: [ {user: a, password: b} ] }", 3,
      'no_auth_user: "bob" not present as user in authorization block or account configuration'],
    ["no_auth_user in operator mode", () => `mqtt {\n  port: 1883\n  no_auth_user: bob\n}\nserver_name: s\n${opConfig()}`, 3,
      "no_auth_user not compatible with Trusted Operator"],
    ["username with users", () => "mqtt {\n  port: 1883\n  authorization { user: x, pass: y }\n}\nserver_name: s\nauthorization { users: [ {user: a, password: b} ] }", 3,
      "mqtt authentication username not compatible with presence of users/nkeys"],
    ["username with account users", () => "mqtt {\n  port: 1883\n  authorization { username: x }\n}\nserver_name: s\naccounts { A { users: [ {user: a} ] } }", 3,
      "mqtt authentication username not compatible with presence of users/nkeys"],
    ["token with nkey users", () => `mqtt {\n  port: 1883\n  authentication { token: t }\n}\nserver_name: s\nauthorization { users: [ {nkey: ${NKEY_USER}} ] }`, 3,
      "mqtt authentication token not compatible with presence of users/nkeys"],
    ["negative ack_wait", () => 'mqtt {\n  port: 1883\n  ack_wait: "-1s"\n}\nserver_name: s', 3, "ack wait must be a positive value"],
    ["negative ack_wait in seconds", () => "mqtt {\n  port: 1883\n  ack_wait: -1\n}\nserver_name: s", 3, "ack wait must be a positive value"],
    ["consumer_replicas over stream_replicas", () => "mqtt {\n  port: 1883\n  stream_replicas: 1\n  consumer_replicas: 3\n}\nserver_name: s", 4,
      "mqtt: consumer_replicas (3) cannot be higher than stream_replicas (1)"],
    // In nats-server's order: server name first, then no_auth_user, then the block's auth.
    ["server name before no_auth_user", () => "mqtt {\n  port: 1883\n  no_auth_user: bob\n}", 1, "mqtt requires server name to be explicitly set"],
    ["no_auth_user before the block's auth", () => "mqtt {\n  port: 1883\n  no_auth_user: bob\n  authorization { user: x }\n}\nserver_name: s\nauthorization { users: [ {user: a} ] }", 3,
      'no_auth_user: "bob" not present as user in authorization block or account configuration'],
    // The main checks come first, then mqtt, then websocket.
    ["main checks first", () => "mqtt {\n  port: 1883\n}\nmax_pending: 1MB\nmax_payload: 2MB", 5,
      "max_payload (2097152) cannot be higher than max_pending (1048576)"],
    ["the main no_auth_user first", () => "mqtt {\n  port: 1883\n}\nno_auth_user: bob", 4, 'no_auth_user: "bob" present, but users are not defined'],
    ["mqtt before websocket", () => "mqtt {\n  port: 1883\n}\nwebsocket {\n  port: 8080\n}", 1, "mqtt requires server name to be explicitly set"],
  ];
  it.each(errors)("error: %s", (_n, text, line, reason) => {
    expect(errorOf(() => load(text())).message).toBe(`${FILE}:${line}: ${reason}`);
  });

  const valid: [string, () => string][] = [
    ["server_name", () => "server_name: s\nmqtt { port: 1883 }"],
    // nats-server 2.9 also needs JetStream (or a cluster, gateway or leafnodes); meshbroker does not.
    ["without jetstream", () => "server_name: s\nmqtt { port: 1883 }"],
    ["with jetstream", () => 'server_name: s\nmqtt { port: 1883 }\njetstream { store_dir: "/tmp/js" }'],
    ["no port: nothing is checked", () => 'mqtt { no_auth_user: bob, authorization { user: u }, ack_wait: "-1s", stream_replicas: 1, consumer_replicas: 3 }\nauthorization { users: [ {user: a} ] }'],
    ["no_auth_user in authorization users", () => "server_name: s\nmqtt { port: 1883, no_auth_user: a }\nauthorization { users: [ {user: a, password: b} ] }"],
    ["no_auth_user in an account", () => "server_name: s\nmqtt { port: 1883, no_auth_user: a }\naccounts { A { users: [ {user: a, password: b} ] } }"],
    ["only a password with users", () => "server_name: s\nmqtt { port: 1883, authorization { pass: p, timeout: 3 } }\nauthorization { users: [ {user: a} ] }"],
    ["user/pass when the main block has a single user", () => "server_name: s\nmqtt { port: 1883, authorization { user: x, pass: y } }\nauthorization { user: a, password: b }"],
    ["user and token together", () => "server_name: s\nmqtt { port: 1883, authorization { user: x, token: t } }"],
    ["user/pass in operator mode", () => `server_name: s\nmqtt { port: 1883, authorization { user: x, pass: y } }\n${opConfig()}`],
    ["ack_wait 0", () => 'server_name: s\nmqtt { port: 1883, ack_wait: "0s" }'],
    ["consumer_replicas equal to stream_replicas", () => "server_name: s\nmqtt { port: 1883, stream_replicas: 3, consumer_replicas: 3 }"],
    ["consumer_replicas without stream_replicas", () => "server_name: s\nmqtt { port: 1883, consumer_replicas: 3 }"],
    ["stream_replicas 0", () => "server_name: s\nmqtt { port: 1883, stream_replicas: 0, consumer_replicas: 3 }"],
  ];
  it.each(valid)("valid: %s", (_n, text) => {
    expect(() => load(text())).not.toThrow();
  });

  it("checks options built in code, without positions", () => {
    expect(() => validateOptions(applyDefaults({ mqtt: DEFAULT_MQTT }))).toThrow("<options>:0: mqtt requires server name to be explicitly set");
    expect(() => validateOptions(applyDefaults({ serverName: "s", mqtt: DEFAULT_MQTT }))).not.toThrow();
    expect(() => validateOptions(applyDefaults({ serverName: "s", mqtt: { ...DEFAULT_MQTT, ackWaitMs: -1 } }))).toThrow(
      "<options>:0: ack wait must be a positive value",
    );
  });

  it("freezes the mqtt options", () => {
    const { options } = load("server_name: s\nmqtt { port: 1883, authorization { user: u } }");
    expect(Object.isFrozen(options.mqtt)).toBe(true);
    expect(Object.isFrozen(options.mqtt!.authorization)).toBe(true);
  });
});

// The same configs through the real nats-server 2.9: `-t` for what it checks while parsing, a
// start (stopped once ready) for what it only checks when it starts.
describe.skipIf(!existsSync(NATS_SERVER_BIN))("mqtt block compared with nats-server", () => {
  let realCert: string, realKey: string;
  beforeAll(async () => {
    ({ cert: realCert, key: realKey } = await selfSignedPair(dir));
  });


  // Each start gets its own JetStream directory; `jetstream {}` is pending (ignored) in meshbroker.
  let stores = 0;
  const jsDir = () => join(dir, `js-${++stores}`);
  const JS = () => `jetstream { store_dir: "${jsDir()}" }`;
  const TLS = () => `tls { cert_file: "${realCert}", key_file: "${realKey}" }`;
  const SN = "server_name: s";
  // [name, config, how nats-server checks it, our reason when it differs from nats-server's]
  const cases: [string, () => string, "t" | "start", string?][] = [
    ["no port, anything goes", () => 'mqtt { no_auth_user: bob, ack_wait: "-1s", authorization { user: u } }\nauthorization { users: [ {user: a} ] }', "start"],
    ["no port, tls still read", () => `mqtt {\n  tls { cert_file: "${dir}/nope.pem", key_file: "${realKey}" }\n}`, "t"],
    ["no server_name", () => `mqtt {\n  port: -1\n}\n${JS()}`, "start"],
    ["server_name and jetstream", () => `${SN}\nmqtt {\n  port: -1\n}\n${JS()}`, "start"],
    ["listen", () => `${SN}\nmqtt { listen: "127.0.0.1:-1" }\n${JS()}`, "start"],
    ["jetstream: enabled", () => `${SN}\nmqtt { port: -1 }\njetstream: enabled\nstore_dir: "${jsDir()}"`, "start"],
    // nats-server 2.9 keeps MQTT state in JetStream; meshbroker has its own store.
    ["no jetstream", () => `${SN}\nmqtt {\n  port: -1\n}`, "start", "valid"],
    ["tls", () => `${SN}\nmqtt {\n  port: -1\n  ${TLS()}\n}\n${JS()}`, "start"],
    ["tls verify_and_map", () => `${SN}\nmqtt {\n  port: -1\n  tls { cert_file: "${realCert}", key_file: "${realKey}", ca_file: "${realCert}", verify_and_map: true }\n}\n${JS()}`, "start"],
    ["tls without key_file", () => `mqtt {\n  port: -1\n  tls { cert_file: "${realCert}" }\n}`, "t"],
    ["tls file missing", () => `mqtt {\n  port: -1\n  tls { cert_file: "${dir}/nope.pem", key_file: "${realKey}" }\n}`, "t"],
    ["listen without a port", () => 'mqtt {\n  listen: "127.0.0.1"\n}', "t"],
    ["every option", () => `${SN}\nmqtt {\n  port: -1, host: 127.0.0.1, ${TLS()}\n` +
      '  authentication { username: u, password: p, timeout: 2 }\n  ack_wait: "1m", max_ack_pending: 100, js_domain: ""\n' +
      `  stream_replicas: 1, consumer_replicas: 1, consumer_memory_storage: true, consumer_inactive_threshold: "1h"\n}\n${JS()}`, "start"],
    ["aliases", () => `${SN}\nmqtt {\n  net: 127.0.0.1, port: -1, ackwait: "5s", max_inflight: 10, consumer_auto_cleanup: "1h"\n}\n${JS()}`, "start"],
    ["integer ack_wait (a warning)", () => `${SN}\nmqtt {\n  port: -1\n  ack_wait: 5\n}\n${JS()}`, "start"],
    ["ack_wait 0", () => `${SN}\nmqtt { port: -1, ack_wait: "0s" }\n${JS()}`, "start"],
    ["negative ack_wait", () => `${SN}\nmqtt {\n  port: -1\n  ack_wait: "-1s"\n}\n${JS()}`, "start"],
    ["ack_wait invalid", () => 'mqtt {\n  port: -1\n  ack_wait: "x"\n}', "t"],
    ["consumer_inactive_threshold bad unit", () => 'mqtt {\n  consumer_inactive_threshold: "2x"\n}', "t"],
    ["max_ack_pending 65535", () => `${SN}\nmqtt { port: -1, max_ack_pending: 65535 }\n${JS()}`, "start"],
    ["max_ack_pending over 65535", () => "mqtt {\n  port: -1\n  max_ack_pending: 65536\n}", "t"],
    ["max_pending negative", () => "mqtt {\n  max_pending: -1\n}", "t"],
    ["consumer_replicas over stream_replicas", () => `${SN}\nmqtt {\n  port: -1\n  stream_replicas: 1\n  consumer_replicas: 3\n}\n${JS()}`, "start"],
    ["consumer_replicas without stream_replicas", () => `${SN}\nmqtt { port: -1, consumer_replicas: 3 }\n${JS()}`, "start"],
    ["username with users", () => `${SN}\nauthorization { users: [ {user: a, password: b} ] }\nmqtt { port: -1, authorization { user: x, pass: y } }\n${JS()}`, "start"],
    ["token with account users", () => `${SN}\naccounts { A: { users: [ {user: a, password: b} ] } }\nmqtt { port: -1, authentication { token: t } }\n${JS()}`, "start"],
    ["token with nkey users", () => `${SN}\nauthorization { users: [ {nkey: ${NKEY_USER}} ] }\nmqtt { port: -1, authentication { token: t } }\n${JS()}`, "start"],
    ["password only with users", () => `${SN}\nauthorization { users: [ {user: a, password: b} ] }\nmqtt { port: -1, authorization { pass: y, timeout: 3 } }\n${JS()}`, "start"],
    ["user and token", () => `${SN}\nmqtt { port: -1, authorization { user: a, token: t } }\n${JS()}`, "start"],
    ["auth timeout as a duration (nats-server: 1s)", () => `${SN}\nmqtt {\n  port: -1\n  authorization { user: a, timeout: "5s" }\n}\n${JS()}`, "start",
      '"timeout" must be a number of seconds, got string "5s"'],
    ["no_auth_user without users", () => `${SN}\nmqtt { port: -1, no_auth_user: bob }\n${JS()}`, "start"],
    ["no_auth_user not a user", () => `${SN}\nauthorization { users: [ {user: a, password: b} ] }\nmqtt { port: -1, no_auth_user: bob }\n${JS()}`, "start"],
    ["no_auth_user in an account", () => `${SN}\naccounts { A: { jetstream: enabled, users: [ {user: a, password: b} ] } }\nmqtt { port: -1, no_auth_user: a }\n${JS()}`, "start"],
    ["no_auth_user in operator mode", () => `${SN}\n${operatorConfig(op, [])}\nmqtt { port: -1, no_auth_user: bob }`, "start"],
    ["server name before no_auth_user", () => "mqtt { port: -1, no_auth_user: bob }", "start"],
    ["mqtt before websocket", () => "mqtt { port: -1 }\nwebsocket { port: -1 }", "start"],
    ["the main no_auth_user before mqtt", () => "mqtt { port: -1 }\nno_auth_user: bob", "start"],
    // meshbroker names the block in unknown-key errors.
    ["unknown key", () => "mqtt {\n  port: -1\n  ack_wiat: \"1m\"\n}", "t", 'unknown field "ack_wiat" in mqtt'],
    ["users in its authorization", () => "mqtt {\n  authorization {\n    users: [ {user: a, password: b} ]\n  }\n}", "t",
      'unknown field "users" in mqtt.authorization'],
    // meshbroker's own key.
    ["store_dir", () => `${SN}\nmqtt {\n  port: -1\n  store_dir: "${dir}/m"\n}\n${JS()}`, "t", "valid"],
  ];
  it.each(cases)("%s", async (_n, text, how, differs) => {
    expectSameVerdict(await natsServerVerdict(dir, text(), how === "start"), meshbrokerVerdict(load, text()), differs);
  }, 15_000);
});
