// meshbroker's own blocks, `router {}` and `edge {}` (DESIGN.md): every key, its default, and
// each error as `file:line: message`.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createUser } from "@nats-io/nkeys";
import { afterAll, describe, expect, it } from "vitest";
import { DEFAULTS, loadConfigText, type Options } from "../../services/common/config/index.js";
import { errorOf } from "../helpers/config.js";

const FILE = "cluster.conf";
const load = (text: string, env: NodeJS.ProcessEnv = {}) => loadConfigText(text, FILE, env).options;
const plain = (v: unknown) => JSON.parse(JSON.stringify(v));
const REDIS = `redis: "redis://redis:6379"`;

const user = createUser();
const SEED = new TextDecoder().decode(user.getSeed());
const PUB = user.getPublicKey();
const PUB2 = createUser().getPublicKey();
// Written when the module loads, as the case tables below name the paths. Certificates are
// not parsed at load time; only that the files exist.
const dir = mkdtempSync(join(tmpdir(), "meshbroker-config-cluster-"));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const cert = file("cert.pem", "cert");
const key = file("key.pem", "key");
const ca = file("ca.pem", "ca");
const seed = file("edge.nk", `${SEED}\n`);
const creds = file("edge.creds", `-----BEGIN USER NKEY SEED-----\n${SEED}\n------END USER NKEY SEED------\n`);
const notSeed = file("not.nk", "hello\n");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("router {}", () => {
  // balance_edges: its default unless the case says
  type Expected = Omit<NonNullable<Options["router"]>, "balanceEdgesMs"> & { balanceEdgesMs?: number };
  const cases: Array<[string, () => string, NodeJS.ProcessEnv, Expected]> = [
    ["defaults: listen on 0.0.0.0:7100", () => `router { ${REDIS} }`, {},
      { host: DEFAULTS.router.host, port: 7100, redis: { url: "redis://redis:6379" } }],
    ["listen host:port", () => `router { listen: "127.0.0.1:7200", ${REDIS} }`, {},
      { host: "127.0.0.1", port: 7200, redis: { url: "redis://redis:6379" } }],
    ["listen: -1 is a random port", () => `router { listen: -1, ${REDIS} }`, {},
      { host: "0.0.0.0", port: 0, redis: { url: "redis://redis:6379" } }],
    ["host and port, as other listener blocks", () => `router { host: 10.0.0.2, port: 7300, ${REDIS} }`, {},
      { host: "10.0.0.2", port: 7300, redis: { url: "redis://redis:6379" } }],
    ["advertise from the environment", () => `router { advertise: "$POD_IP:7100", ${REDIS} }`, { POD_IP: "10.1.2.3" },
      { host: "0.0.0.0", port: 7100, advertise: "10.1.2.3:7100", redis: { url: "redis://redis:6379" } }],
    ["advertise with \${NAME}", () => `router { advertise: "\${POD_IP}:7100", ${REDIS} }`, { POD_IP: "10.1.2.3" },
      { host: "0.0.0.0", port: 7100, advertise: "10.1.2.3:7100", redis: { url: "redis://redis:6379" } }],
    ["rediss:// (TLS)", () => `router { redis: "rediss://user:pw@redis:6380/2" }`, {},
      { host: "0.0.0.0", port: 7100, redis: { url: "rediss://user:pw@redis:6380/2" } }],
    ["Sentinel URL", () => `router { redis: "redis-sentinel://s1:26379,s2/mymaster" }`, {},
      { host: "0.0.0.0", port: 7100, redis: { url: "redis-sentinel://s1:26379,s2/mymaster" } }],
    ["Cluster URL", () => `router { redis: "rediss-cluster://n1:7000,n2:7001" }`, {},
      { host: "0.0.0.0", port: 7100, redis: { url: "rediss-cluster://n1:7000,n2:7001" } }],
    ["redis { url }", () => `router { redis { url: "redis://r:1" } }`, {},
      { host: "0.0.0.0", port: 7100, redis: { url: "redis://r:1" } }],
    ["Sentinel block", () => `router { redis { sentinels: ["s1:26379", "s2:26380"], name: mymaster, password: pw, db: 3, tls: true } }`, {},
      { host: "0.0.0.0", port: 7100, redis: {
        sentinels: [{ host: "s1", port: 26379 }, { host: "s2", port: 26380 }], name: "mymaster", password: "pw", db: 3, tls: true,
      } }],
    ["Cluster block", () => `router { redis { cluster: ["n1:7000", "[::1]:7001"], username: u } }`, {},
      { host: "0.0.0.0", port: 7100, redis: { cluster: [{ host: "n1", port: 7000 }, { host: "::1", port: 7001 }], username: "u", tls: false } }],
    ["tls", () => `router { ${REDIS}, tls { cert_file: "${cert}", key_file: "${key}", ca_file: "${ca}", verify: true } }`, {},
      { host: "0.0.0.0", port: 7100, redis: { url: "redis://redis:6379" },
        tls: { certFile: cert, keyFile: key, caFile: ca, verify: true, verifyAndMap: false, timeoutMs: 2000 } }],
    ["authorization token", () => `router { ${REDIS}, authorization { token: "s3cret" } }`, {},
      { host: "0.0.0.0", port: 7100, redis: { url: "redis://redis:6379" }, authorization: { token: "s3cret" } }],
    ["authorization nkeys", () => `router { ${REDIS}, authorization { nkeys: ["${PUB}", "${PUB2}"], seed_file: "${seed}" } }`, {},
      { host: "0.0.0.0", port: 7100, redis: { url: "redis://redis:6379" }, authorization: { nkeys: [PUB, PUB2], seedFile: seed } }],
    ["keys are case-insensitive", () => `ROUTER { LISTEN: "127.0.0.1:7101", REDIS: "redis://r" }`, {},
      { host: "127.0.0.1", port: 7101, redis: { url: "redis://r" } }],
    ["balance_edges", () => `router { ${REDIS}, balance_edges: "1m30s" }`, {},
      { host: "0.0.0.0", port: 7100, redis: { url: "redis://redis:6379" }, balanceEdgesMs: 90_000 }],
    ["balance_edges: 0s turns it off", () => `router { ${REDIS}, balance_edges: "0s" }`, {},
      { host: "0.0.0.0", port: 7100, redis: { url: "redis://redis:6379" }, balanceEdgesMs: 0 }],
  ];
  it.each(cases)("%s", (_name, text, env, expected) => {
    const o = load(text(), env);
    expect(plain(o.router)).toEqual(plain({ balanceEdgesMs: DEFAULTS.router.balanceEdgesMs, ...expected }));
    expect(o.pending.router).toBeUndefined();
  });

  it("is absent without the block", () => {
    expect(load("port: 4222").router).toBeUndefined();
  });

  const errors: Array<[string, () => string, number, string]> = [
    ["no redis", () => `port: 4222\nrouter {\n  listen: "0.0.0.0:7100"\n}`, 2, `router needs "redis"`],
    ["unknown key", () => `router {\n  ${REDIS}\n  lisen: 7100\n}`, 3, `unknown field "lisen" in router`],
    ["not a map", () => `router: 7100`, 1, `"router" must be a map`],
    ["bad listen", () => `router {\n  ${REDIS}\n  listen: "nope"\n}`, 3, `could not parse address string "nope"`],
    ["advertise without a port", () => `router {\n  ${REDIS}\n  advertise: "10.0.0.1"\n}`, 3, `expected "host:port", got "10.0.0.1"`],
    ["advertise with an unset variable", () => `router {\n  ${REDIS}\n  advertise: "$POD_IP:7100"\n}`, 3,
      "environment variable POD_IP is not set"],
    ["redis not a URL", () => `router {\n  redis: "localhost:6379"\n}`, 2, `invalid Redis URL: unsupported Redis URL "localhost:6379"`],
    ["redis URL without a host", () => `router {\n  redis: "redis://"\n}`, 2, "invalid Redis URL"],
    ["Sentinel URL without a master name", () => `router {\n  redis: "redis-sentinel://s1:26379"\n}`, 2, "needs the master name"],
    ["redis block with two kinds", () => `router {\n  redis { url: "redis://r", cluster: ["n:1"] }\n}`, 2, `redis needs one of "url"`],
    ["redis block with none", () => `router {\n  redis { password: x }\n}`, 2, `redis needs one of "url"`],
    ["redis block: unknown key", () => `router {\n  redis {\n    url: "redis://r"\n    pasword: x\n  }\n}`, 4, `unknown field "pasword" in redis`],
    ["redis url with password key", () => `router {\n  redis {\n    url: "redis://r"\n    password: x\n  }\n}`, 4, `"password" does not go with "url"`],
    ["sentinels without name", () => `router {\n  redis { sentinels: ["s:26379"] }\n}`, 2, `"sentinels" needs "name"`],
    ["sentinels entry without port", () => `router {\n  redis {\n    sentinels: [\n      "s1"\n    ]\n    name: m\n  }\n}`, 4,
      `expected "host:port", got "s1"`],
    ["empty cluster", () => `router {\n  redis { cluster: [] }\n}`, 2, `"cluster" can not be empty`],
    ["cluster with db", () => `router {\n  redis {\n    cluster: ["n:1"]\n    db: 1\n  }\n}`, 4, `"db" does not apply to a Redis Cluster`],
    ["tls without files", () => `router {\n  ${REDIS}\n  tls { verify: true }\n}`, 3, "missing 'cert_file'"],
    ["tls unknown key", () => `router {\n  ${REDIS}\n  tls { cert_fil: x }\n}`, 3, `unknown field "cert_fil" in tls`],
    ["empty token", () => `router {\n  ${REDIS}\n  authorization {\n    token: ""\n  }\n}`, 4, "the cluster token can not be empty"],
    ["token and nkeys", () => `router {\n  ${REDIS}\n  authorization {\n    token: t\n    nkeys: ["${PUB}"]\n    seed_file: "${seed}"\n  }\n}`, 3,
      "a token or NKEYs, not both"],
    ["nkeys without seed_file", () => `router {\n  ${REDIS}\n  authorization { nkeys: ["${PUB}"] }\n}`, 3, "needs both 'nkeys' and 'seed_file'"],
    ["a bad nkey", () => `router {\n  ${REDIS}\n  authorization {\n    nkeys: [\n      "UNOPE"\n    ]\n  }\n}`, 5, "Not a valid public nkey"],
    ["a seed file without a seed", () => `router {\n  ${REDIS}\n  authorization {\n    nkeys: ["${PUB}"]\n    seed_file: "${notSeed}"\n  }\n}`, 5,
      "holds no user NKEY seed"],
    ["a missing seed file", () => `router {\n  ${REDIS}\n  authorization {\n    nkeys: ["${PUB}"]\n    seed_file: "/nonexistent/x.nk"\n  }\n}`, 5,
      "open /nonexistent/x.nk: no such file or directory"],
    ["an empty authorization", () => `router {\n  ${REDIS}\n  authorization {}\n}`, 3, "needs a 'token' or NKEYs"],
    ["authorization: unknown key", () => `router {\n  ${REDIS}\n  authorization {\n    user: a\n  }\n}`, 4, `unknown field "user" in router.authorization`],
    ["balance_edges not a duration", () => `router {\n  ${REDIS}\n  balance_edges: "soon"\n}`, 3, "error parsing balance_edges"],
    ["balance_edges negative", () => `router {\n  ${REDIS}\n  balance_edges: "-1s"\n}`, 3, "balance_edges can not be negative"],
    ["balance_edges a number", () => `router {\n  ${REDIS}\n  balance_edges: 10\n}`, 3, "a duration string"],
  ];
  it.each(errors)("%s", (_name, text, line, message) => {
    const err = errorOf(() => load(text()));
    expect(err.line).toBe(line);
    expect(err.message).toContain(message);
    expect(err.message.startsWith(`${FILE}:${line}: `)).toBe(true);
  });
});

describe("edge {}", () => {
  const rebalance = { ...DEFAULTS.edge.rebalance };
  const cases: Array<[string, () => string, Options["edge"]]> = [
    ["routers", () => `edge { routers: ["router-0.router:7100", "10.0.0.1:7101"] }`,
      { discovery: { routers: [{ host: "router-0.router", port: 7100 }, { host: "10.0.0.1", port: 7101 }] }, rebalance }],
    ["dns discovery", () => `edge { discovery: { dns: "meshbroker-router.default.svc:7100" } }`,
      { discovery: { dns: { host: "meshbroker-router.default.svc", port: 7100 }, refreshMs: 5_000 }, rebalance }],
    ["no_advertise", () => `edge { routers: ["r:7100"], no_advertise: true }`,
      { discovery: { routers: [{ host: "r", port: 7100 }] }, noAdvertise: true, rebalance }],
    ["dns discovery with a refresh period", () => `edge { discovery: { dns: "r.svc:7100", refresh: "2s" } }`,
      { discovery: { dns: { host: "r.svc", port: 7100 }, refreshMs: 2_000 }, rebalance }],
    ["kubernetes discovery", () => `edge { discovery: { kubernetes: { service: "meshbroker-router", namespace: "default", port: 7200 } } }`,
      { discovery: { kubernetes: { service: "meshbroker-router", namespace: "default", port: 7200 } }, rebalance }],
    ["kubernetes discovery defaults: the pod's namespace, the slice's port", () => `edge { discovery { kubernetes { service: routers } } }`,
      { discovery: { kubernetes: { service: "routers" } }, rebalance }],
    ["client tls (mTLS)", () => `edge { routers: ["r:7100"], tls { cert_file: "${cert}", key_file: "${key}", ca_file: "${ca}", timeout: 3 } }`,
      { discovery: { routers: [{ host: "r", port: 7100 }] }, rebalance,
        tls: { certFile: cert, keyFile: key, caFile: ca, insecure: false, timeoutMs: 3000 } }],
    ["client tls: a CA only", () => `edge { routers: ["r:7100"], tls { ca_file: "${ca}" } }`,
      { discovery: { routers: [{ host: "r", port: 7100 }] }, rebalance, tls: { caFile: ca, insecure: false, timeoutMs: 2000 } }],
    ["authorization token", () => `edge { routers: ["r:7100"], authorization { token: "s3cret" } }`,
      { discovery: { routers: [{ host: "r", port: 7100 }] }, rebalance, authorization: { token: "s3cret" } }],
    ["authorization seed in a creds file", () => `edge { routers: ["r:7100"], authorization { seed_file: "${creds}" } }`,
      { discovery: { routers: [{ host: "r", port: 7100 }] }, rebalance, authorization: { seedFile: creds } }],
    ["rebalance", () => `edge { routers: ["r:7100"], rebalance { max_evictions_per_second: 2.5, tolerance: 0.25, min_excess: 3 } }`,
      { discovery: { routers: [{ host: "r", port: 7100 }] }, rebalance: { enabled: true, maxEvictionsPerSecond: 2.5, tolerance: 0.25, minExcess: 3 } }],
    ["rebalance: one key keeps the other's default", () => `edge { routers: ["r:7100"], rebalance { tolerance: 0 } }`,
      { discovery: { routers: [{ host: "r", port: 7100 }] }, rebalance: { enabled: true, maxEvictionsPerSecond: 10, tolerance: 0, minExcess: 10 } }],
  ];
  it.each(cases)("%s", (_name, text, expected) => {
    const o = load(text());
    expect(plain(o.edge)).toEqual(plain(expected));
    expect(o.pending.edge).toBeUndefined();
  });

  it("an edge config is also a full single-node config (the same file serves the embedded role)", () => {
    const o = load(`port: 4333\nwebsocket { port: 8443, no_tls: true }\nedge { routers: ["r:7100"] }\nrouter { ${REDIS} }`);
    expect(o.port).toBe(4333);
    expect(o.websocket?.port).toBe(8443);
    expect(o.edge?.discovery).toEqual({ routers: [{ host: "r", port: 7100 }] });
    expect(o.router?.port).toBe(7100);
  });

  const errors: Array<[string, () => string, number, string]> = [
    ["routers and discovery", () => `edge {\n  routers: ["r:7100"]\n  discovery: { dns: "x:7100" }\n}`, 3, `"routers" or "discovery", not both`],
    ["neither", () => `port: 4222\nedge {\n  rebalance { tolerance: 0.1 }\n}`, 2, `edge needs "routers" or "discovery"`],
    ["unknown key", () => `edge {\n  routers: ["r:7100"]\n  router: ["r:7100"]\n}`, 3, `unknown field "router" in edge`],
    ["routers not a list", () => `edge {\n  routers: "r:7100"\n}`, 2, `"routers" must be a list of "host:port"`],
    ["empty routers", () => `edge {\n  routers: []\n}`, 2, `"routers" can not be empty`],
    ["a router without a port", () => `edge {\n  routers: [\n    "r:7100",\n    "r2"\n  ]\n}`, 4, `expected "host:port", got "r2"`],
    ["a router with port 0", () => `edge {\n  routers: ["r:0"]\n}`, 2, `expected "host:port", got "r:0"`],
    ["a router without a host", () => `edge {\n  routers: [":7100"]\n}`, 2, `expected "host:port", got ":7100"`],
    ["a router that is a number", () => `edge {\n  routers: [7100]\n}`, 2, `expected "host:port", got integer 7100`],
    ["discovery with both kinds", () => `edge {\n  discovery {\n    dns: "x:1"\n    kubernetes { service: s }\n  }\n}`, 2,
      `discovery takes one of "dns" or "kubernetes"`],
    ["discovery: unknown kind", () => `edge {\n  discovery {\n    consul: "x"\n  }\n}`, 3, `unknown field "consul" in edge.discovery`],
    ["dns without a port", () => `edge {\n  discovery { dns: "routers.svc" }\n}`, 2, `expected "host:port", got "routers.svc"`],
    ["kubernetes without service", () => `edge {\n  discovery {\n    kubernetes { namespace: default }\n  }\n}`, 3,
      `kubernetes discovery needs "service"`],
    ["kubernetes: a bad service name", () => `edge {\n  discovery {\n    kubernetes {\n      service: "Router_0"\n    }\n  }\n}`, 4,
      `invalid Service name "Router_0"`],
    ["kubernetes: unknown key", () => `edge {\n  discovery {\n    kubernetes {\n      service: s\n      label: x\n    }\n  }\n}`, 5,
      `unknown field "label" in edge.discovery.kubernetes`],
    ["tls: only a certificate", () => `edge {\n  routers: ["r:7100"]\n  tls { cert_file: "${cert}" }\n}`, 3,
      "needs both 'cert_file' and 'key_file'"],
    ["tls: a server-only key", () => `edge {\n  routers: ["r:7100"]\n  tls {\n    verify: true\n  }\n}`, 4, `unknown field "verify" in tls`],
    ["tls: a missing CA file", () => `edge {\n  routers: ["r:7100"]\n  tls {\n    ca_file: "/nonexistent/ca.pem"\n  }\n}`, 4,
      "open /nonexistent/ca.pem: no such file or directory"],
    ["authorization: nkeys are the router's", () => `edge {\n  routers: ["r:7100"]\n  authorization {\n    nkeys: ["${PUB}"]\n  }\n}`, 4,
      `unknown field "nkeys" in edge.authorization`],
    ["authorization: token and seed", () => `edge {\n  routers: ["r:7100"]\n  authorization { token: t, seed_file: "${seed}" }\n}`, 3,
      "a token or NKEYs, not both"],
    ["rebalance: negative", () => `edge {\n  routers: ["r:7100"]\n  rebalance {\n    max_evictions_per_second: -1\n  }\n}`, 4,
      `"max_evictions_per_second" must be a number, 0 or more`],
    ["rebalance: tolerance over 1", () => `edge {\n  routers: ["r:7100"]\n  rebalance {\n    tolerance: 1.5\n  }\n}`, 4,
      `"tolerance" is a fraction of the mean, from 0 to 1`],
    ["rebalance: unknown key", () => `edge {\n  routers: ["r:7100"]\n  rebalance {\n    max_evictions: 1\n  }\n}`, 4,
      `unknown field "max_evictions" in edge.rebalance`],
  ];
  it.each(errors)("%s", (_name, text, line, message) => {
    const err = errorOf(() => load(text()));
    expect(err.line).toBe(line);
    expect(err.message).toContain(message);
    expect(err.message.startsWith(`${FILE}:${line}: `)).toBe(true);
  });
});

describe("client URLs an edge advertises", () => {
  it("client_advertise and websocket { advertise } take $NAME from the environment, as router { advertise }", () => {
    const o = load('client_advertise: "$POD_IP:4222"\nwebsocket { port: 8080, no_tls: true, advertise: "${POD_IP}:443" }', { POD_IP: "10.1.2.3" });
    expect([o.clientAdvertise, o.websocket?.advertise]).toEqual(["10.1.2.3:4222", "10.1.2.3:443"]);
  });

  it("an unset variable is a file:line error", () => {
    expect(errorOf(() => load('client_advertise: "$NOPE:4222"')).message).toBe(`${FILE}:1: environment variable NOPE is not set (in "$NOPE:4222")`);
  });
});
