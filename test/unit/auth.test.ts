import { describe, it, expect } from "vitest";
import bcrypt from "bcryptjs";
import { createUser } from "@nats-io/nkeys";
import { defaultOptions, type Options, type Permissions } from "../../services/common/config/index.js";
import {
  AuthPipeline, GLOBAL_ACCOUNT, isBcrypt,
  type AuthContext, type AuthResult, type Credentials,
} from "../../services/edge/auth/index.js";
import { checkSecret } from "../../services/edge/auth/users.js";
import { decodePublicNkey, decodeSignature } from "../../services/common/nkeys.js";

const STD: AuthContext = { connectionType: "STANDARD" };
const te = new TextEncoder();

function pipeline(o: Partial<Options>): AuthPipeline {
  return new AuthPipeline(defaultOptions(o));
}

async function auth(p: AuthPipeline, creds: Credentials, ctx: AuthContext = STD): Promise<AuthResult> {
  return p.authenticate(creds, ctx);
}

const pubOnlyFoo: Permissions = { publish: { allow: ["foo"] } };

describe("no authentication configured", () => {
  it("admits everyone to the global account, credentials or not", async () => {
    const p = pipeline({});
    expect(p.required).toBe(false);
    expect(p.needsNonce).toBe(false);
    expect(await auth(p, {})).toEqual({ ok: true, user: { name: "", account: GLOBAL_ACCOUNT } });
    expect((await auth(p, { user: "x", pass: "y" })).ok).toBe(true);
  });

  it("a websocket/mqtt override makes that transport require auth", async () => {
    const p = pipeline({});
    const ctx: AuthContext = { connectionType: "WEBSOCKET", override: { user: "ws", password: "pw" } };
    expect(p.requiredFor(ctx)).toBe(true);
    expect(p.requiredFor(STD)).toBe(false);
    expect(await auth(p, { user: "ws", pass: "pw" }, ctx)).toMatchObject({ ok: true, user: { name: "ws" } });
    expect(await auth(p, { user: "ws", pass: "nope" }, ctx)).toMatchObject({ ok: false });
    expect(await auth(p, {}, ctx)).toMatchObject({ ok: false });
  });
});

describe("single user and token", () => {
  it("single user: plain password, compared exactly", async () => {
    const p = pipeline({ authorization: { user: "derek", password: "s3cr3t", users: [] } });
    expect(p.required).toBe(true);
    expect(await auth(p, { user: "derek", pass: "s3cr3t" })).toEqual({ ok: true, user: { name: "derek", account: "$G" } });
    expect(await auth(p, { user: "derek", pass: "s3cr3" })).toEqual({ ok: false, reason: "bad user or password" });
    expect(await auth(p, { user: "derek", pass: "s3cr3t!" })).toMatchObject({ ok: false });
    expect(await auth(p, { user: "other", pass: "s3cr3t" })).toMatchObject({ ok: false });
    expect(await auth(p, { pass: "s3cr3t" })).toMatchObject({ ok: false });
    expect(await auth(p, {})).toMatchObject({ ok: false });
  });

  it("single user: bcrypt password (async)", async () => {
    const hash = bcrypt.hashSync("s3cr3t", 4);
    const p = pipeline({ authorization: { user: "derek", password: hash, users: [] } });
    const good = p.authenticate({ user: "derek", pass: "s3cr3t" }, STD);
    expect(good).toBeInstanceOf(Promise);
    expect(await good).toMatchObject({ ok: true, user: { name: "derek" } });
    expect(await auth(p, { user: "derek", pass: hash })).toMatchObject({ ok: false }); // the hash is not the password
    expect(await auth(p, { user: "derek", pass: "wrong" })).toEqual({ ok: false, reason: "bad user or password" });
  });

  it("single user gets the authorization block's default permissions", async () => {
    const p = pipeline({ authorization: { user: "u", password: "p", users: [], defaultPermissions: pubOnlyFoo } });
    expect(await auth(p, { user: "u", pass: "p" })).toMatchObject({ ok: true, user: { permissions: pubOnlyFoo } });
  });

  it("token: plain, synchronous", () => {
    const p = pipeline({ authorization: { token: "t0k3n", users: [] } });
    expect(p.required).toBe(true);
    expect(p.authenticate({ token: "t0k3n" }, STD)).toEqual({ ok: true, user: { name: "", account: "$G" } });
    expect(p.authenticate({ token: "t0k3" }, STD)).toEqual({ ok: false, reason: "bad token" });
    expect(p.authenticate({ user: "t0k3n" }, STD)).toMatchObject({ ok: false });
    expect(p.authenticate({}, STD)).toMatchObject({ ok: false });
  });

  it("token: bcrypt ($2a$, $2b$, $2y$)", async () => {
    for (const prefix of ["$2a$", "$2b$", "$2y$"]) {
      const hash = prefix + bcrypt.hashSync("t0k3n", 4).slice(4);
      expect(isBcrypt(hash)).toBe(true);
      const p = pipeline({ authorization: { token: hash, users: [] } });
      expect(await auth(p, { token: "t0k3n" })).toMatchObject({ ok: true });
      expect(await auth(p, { token: "t0k3" })).toEqual({ ok: false, reason: "bad token" });
    }
  });

  it("a websocket override replaces the main token", async () => {
    const p = pipeline({ authorization: { token: "main", users: [] } });
    const ws: AuthContext = { connectionType: "WEBSOCKET", override: { token: "wstoken" } };
    expect(await auth(p, { token: "wstoken" }, ws)).toMatchObject({ ok: true });
    expect(await auth(p, { token: "main" }, ws)).toMatchObject({ ok: false });
    expect(await auth(p, { token: "main" })).toMatchObject({ ok: true });
  });
});

describe("secrets", () => {
  it("recognises bcrypt hashes as nats-server does", () => {
    expect(isBcrypt("$2a$10$abcdefghijklmnopqrstuv")).toBe(true);
    expect(isBcrypt("$2x$10$abc")).toBe(true);
    expect(isBcrypt("$2c$10$abc")).toBe(false);
    expect(isBcrypt("$2a$1$abc")).toBe(false);
    expect(isBcrypt("2a$10$abc")).toBe(false);
    expect(isBcrypt("password")).toBe(false);
  });

  it("plain comparison: equal strings only, any lengths", () => {
    expect(checkSecret("abc", "abc")).toBe(true);
    expect(checkSecret("abc", "abcd")).toBe(false);
    expect(checkSecret("abc", "ab")).toBe(false);
    expect(checkSecret("", undefined)).toBe(true);
    expect(checkSecret("abc", undefined)).toBe(false);
    expect(checkSecret("é", "é")).toBe(true);
  });

  it("a bcrypt check does not block the event loop", async () => {
    const hash = bcrypt.hashSync("right", 10);
    // A setImmediate ticker: it ticks once per event-loop turn; the longest gap between two
    // ticks is the longest time the loop was held.
    let ticks = 0, maxGap = 0, last = performance.now();
    let running = true;
    const tick = () => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
      ticks++;
      if (running) setImmediate(tick);
    };
    setImmediate(tick);
    const checks = Array.from({ length: 20 }, (_, i) => checkSecret(hash, i === 7 ? "right" : "wrong"));
    expect(checks.every((c) => c instanceof Promise)).toBe(true);
    const results = await Promise.all(checks);
    running = false;
    expect(results.filter((r) => r)).toHaveLength(1);
    expect(results[7]).toBe(true);
    // bcryptjs' async compare on this thread would hold it ~100 ms per turn: about one tick per
    // 100 ms of hashing (some 20 in all), where worker threads leave thousands. The count tells
    // them apart on a loaded machine too; the longest gap is only printed (other test files
    // share the cores and stretch single turns).
    expect(ticks).toBeGreaterThan(1_000);
    console.log(`bcrypt x20 in workers: ${ticks} event-loop turns, longest ${maxGap.toFixed(0)} ms`);
  }, 60_000);
});

describe("users list", () => {
  const hash = bcrypt.hashSync("bpass", 4);
  const opts = (extra: Partial<Options> = {}): Partial<Options> => ({
    authorization: {
      users: [
        { user: "alice", password: "apass", permissions: pubOnlyFoo },
        { user: "bob", password: hash },
        { user: "carol", password: "cpass", account: "ENG" },
        { user: "mq", password: "mpass", allowedConnectionTypes: ["MQTT", "mqtt_ws"] },
        { user: "nopass" },
      ],
    },
    ...extra,
  });

  it("each user with its password, account and permissions", async () => {
    const p = pipeline(opts());
    expect(p.required).toBe(true);
    expect(p.needsNonce).toBe(false);
    expect(await auth(p, { user: "alice", pass: "apass" })).toEqual({
      ok: true, user: { name: "alice", account: "$G", permissions: pubOnlyFoo },
    });
    expect(await auth(p, { user: "alice", pass: "bpass" })).toEqual({ ok: false, reason: "bad user or password" });
    expect(await auth(p, { user: "bob", pass: "bpass" })).toEqual({ ok: true, user: { name: "bob", account: "$G" } });
    expect(await auth(p, { user: "bob", pass: "apass" })).toMatchObject({ ok: false });
    expect(await auth(p, { user: "carol", pass: "cpass" })).toMatchObject({ ok: true, user: { account: "ENG" } });
    expect(await auth(p, { user: "dave", pass: "x" })).toEqual({ ok: false, reason: "unknown user" });
    expect(await auth(p, {})).toEqual({ ok: false, reason: "no credentials" });
    // nats-server compares "" with "": a user without a password needs none.
    expect(await auth(p, { user: "nopass" })).toMatchObject({ ok: true, user: { name: "nopass" } });
    expect(await auth(p, { user: "nopass", pass: "x" })).toMatchObject({ ok: false });
  });

  it("allowed_connection_types", async () => {
    const p = pipeline(opts());
    expect(await auth(p, { user: "mq", pass: "mpass" })).toEqual({ ok: false, reason: "connection type STANDARD not allowed" });
    expect(await auth(p, { user: "mq", pass: "mpass" }, { connectionType: "WEBSOCKET" })).toEqual({
      ok: false, reason: "connection type WEBSOCKET not allowed",
    });
    expect(await auth(p, { user: "mq", pass: "mpass" }, { connectionType: "MQTT" })).toMatchObject({ ok: true });
    expect(await auth(p, { user: "mq", pass: "mpass" }, { connectionType: "MQTT_WS" })).toMatchObject({ ok: true });
    expect(await auth(p, { user: "alice", pass: "apass" }, { connectionType: "MQTT" })).toMatchObject({ ok: true });
  });

  it("no_auth_user applies only when the client sent no credentials at all", async () => {
    const p = pipeline(opts({ noAuthUser: "alice" }));
    expect(await auth(p, {})).toEqual({ ok: true, user: { name: "alice", account: "$G", permissions: pubOnlyFoo } });
    expect(await auth(p, { user: "bob", pass: "bpass" })).toMatchObject({ ok: true, user: { name: "bob" } });
    expect(await auth(p, { user: "bob", pass: "wrong" })).toMatchObject({ ok: false });
    expect(await auth(p, { pass: "x" })).toMatchObject({ ok: false });
    expect(await auth(p, { token: "x" })).toMatchObject({ ok: false });
    expect(await auth(p, { nkey: createUser().getPublicKey() })).toMatchObject({ ok: false });
    expect(await auth(p, { jwt: "eyJ.x.y" })).toMatchObject({ ok: false });
    expect(await auth(p, { user: "" , pass: "" })).toMatchObject({ ok: true, user: { name: "alice" } });
  });

  it("no_auth_user with a bcrypt password and with connection types", async () => {
    const p = pipeline(opts({ noAuthUser: "bob" }));
    expect(p.authenticate({}, STD)).toEqual({ ok: true, user: { name: "bob", account: "$G" } });
    const q = pipeline(opts({ noAuthUser: "mq" }));
    expect(await auth(q, {})).toEqual({ ok: false, reason: "connection type STANDARD not allowed" });
    expect(await auth(q, {}, { connectionType: "MQTT" })).toMatchObject({ ok: true, user: { name: "mq" } });
  });

  it("a transport's no_auth_user overrides the main one", async () => {
    const p = pipeline(opts({ noAuthUser: "alice" }));
    expect(await auth(p, {}, { connectionType: "WEBSOCKET", noAuthUser: "carol" })).toMatchObject({
      ok: true, user: { name: "carol", account: "ENG" },
    });
    // With an override block but no no_auth_user of its own, the main one does not apply.
    expect(await auth(p, {}, { connectionType: "WEBSOCKET", override: { token: "ws" } })).toMatchObject({ ok: false });
    expect(await auth(p, { token: "ws" }, { connectionType: "WEBSOCKET", override: { token: "ws" } })).toMatchObject({ ok: true });
  });

  it("users of accounts {} blocks: their account and its default permissions", async () => {
    const accPerms: Permissions = { subscribe: { deny: ["secret.>"] } };
    const authPerms: Permissions = { publish: { deny: [">"] } };
    const p = pipeline({
      authorization: { users: [{ user: "top", password: "t" }], defaultPermissions: authPerms },
      accounts: [
        { name: "A", users: [{ user: "a1", password: "p1" }, { user: "a2", password: "p2", permissions: pubOnlyFoo }],
          exports: [], imports: [], defaultPermissions: accPerms },
        { name: "B", users: [{ user: "b1", password: "p1" }], exports: [], imports: [] },
      ],
    });
    expect(await auth(p, { user: "a1", pass: "p1" })).toEqual({ ok: true, user: { name: "a1", account: "A", permissions: accPerms } });
    expect(await auth(p, { user: "a2", pass: "p2" })).toEqual({ ok: true, user: { name: "a2", account: "A", permissions: pubOnlyFoo } });
    expect(await auth(p, { user: "b1", pass: "p1" })).toEqual({ ok: true, user: { name: "b1", account: "B", permissions: authPerms } });
    expect(await auth(p, { user: "top", pass: "t" })).toEqual({ ok: true, user: { name: "top", account: "$G", permissions: authPerms } });
    expect(p.accounts().map((a) => a.name)).toEqual(["A", "B"]);
  });

  it("allow_responses gets nats-server's defaults and turns off publish-to-anything", async () => {
    const p = pipeline({ authorization: { users: [{ user: "r", password: "p", permissions: { allowResponses: { maxMsgs: 0, expiresMs: 0 } } }] } });
    expect(await auth(p, { user: "r", pass: "p" })).toEqual({
      ok: true,
      user: { name: "r", account: "$G", permissions: { publish: { allow: [] }, allowResponses: { maxMsgs: 1, expiresMs: 120_000 } } },
    });
  });
});

describe("nkey users", () => {
  const alice = createUser();
  const bob = createUser();
  const sign = (kp: ReturnType<typeof createUser>, nonce: string) => Buffer.from(kp.sign(te.encode(nonce))).toString("base64url");
  const opts: Partial<Options> = {
    authorization: {
      users: [
        { nkey: alice.getPublicKey(), permissions: pubOnlyFoo },
        { nkey: bob.getPublicKey(), account: "B", allowedConnectionTypes: ["WEBSOCKET"] },
        { user: "plain", password: "pw" },
      ],
    },
  };

  it("needs a nonce; nonces are 15 base64url characters and differ", () => {
    const p = pipeline(opts);
    expect(p.needsNonce).toBe(true);
    const a = p.newNonce(), b = p.newNonce();
    expect(a).toMatch(/^[A-Za-z0-9_-]{15}$/);
    expect(a).not.toBe(b);
  });

  it("accepts the nonce signed with the user's key (raw, padded and standard base64)", () => {
    const p = pipeline(opts);
    const nonce = p.newNonce();
    const sig = sign(alice, nonce);
    const ctx: AuthContext = { connectionType: "STANDARD", nonce };
    expect(p.authenticate({ nkey: alice.getPublicKey(), sig }, ctx)).toEqual({
      ok: true, user: { name: alice.getPublicKey(), account: "$G", permissions: pubOnlyFoo },
    });
    const raw = Buffer.from(alice.sign(te.encode(nonce)));
    expect(p.authenticate({ nkey: alice.getPublicKey(), sig: raw.toString("base64url") + "==" }, ctx)).toMatchObject({ ok: true });
    expect(p.authenticate({ nkey: alice.getPublicKey(), sig: raw.toString("base64") }, ctx)).toMatchObject({ ok: true });
  });

  it("refuses a bad, foreign, stale or missing signature and unknown keys", () => {
    const p = pipeline(opts);
    const nonce = p.newNonce();
    const ctx: AuthContext = { connectionType: "STANDARD", nonce };
    const nk = alice.getPublicKey();
    expect(p.authenticate({ nkey: nk }, ctx)).toEqual({ ok: false, reason: "signature missing" });
    expect(p.authenticate({ nkey: nk, sig: sign(bob, nonce) }, ctx)).toEqual({ ok: false, reason: "signature not verified" });
    expect(p.authenticate({ nkey: nk, sig: sign(alice, "another-nonce") }, ctx)).toEqual({ ok: false, reason: "signature not verified" });
    expect(p.authenticate({ nkey: nk, sig: "not base64!" }, ctx)).toEqual({ ok: false, reason: "signature not valid base64" });
    const tampered = Buffer.from(alice.sign(te.encode(nonce)));
    tampered[3] ^= 1;
    expect(p.authenticate({ nkey: nk, sig: tampered.toString("base64url") }, ctx)).toMatchObject({ ok: false });
    const stranger = createUser();
    expect(p.authenticate({ nkey: stranger.getPublicKey(), sig: sign(stranger, nonce) }, ctx)).toEqual({ ok: false, reason: "unknown nkey" });
    expect(p.authenticate({ nkey: nk, sig: sign(alice, nonce) }, { connectionType: "STANDARD" })).toMatchObject({ ok: false });
  });

  it("nkey users carry their account and connection types", () => {
    const p = pipeline(opts);
    const nonce = p.newNonce();
    const creds = { nkey: bob.getPublicKey(), sig: sign(bob, nonce) };
    expect(p.authenticate(creds, { connectionType: "STANDARD", nonce })).toEqual({ ok: false, reason: "connection type STANDARD not allowed" });
    expect(p.authenticate(creds, { connectionType: "WEBSOCKET", nonce })).toEqual({ ok: true, user: { name: bob.getPublicKey(), account: "B" } });
  });

  it("password users still work next to nkey users", async () => {
    const p = pipeline(opts);
    expect(await auth(p, { user: "plain", pass: "pw" }, { connectionType: "STANDARD", nonce: p.newNonce() })).toMatchObject({ ok: true });
  });

  it("decodes public NKEYs with their checksum and role", () => {
    const pk = alice.getPublicKey();
    expect(decodePublicNkey(pk, "user")).toHaveLength(32);
    expect(decodePublicNkey(pk, "account")).toBeUndefined();
    const broken = pk.slice(0, 10) + (pk[10] === "A" ? "B" : "A") + pk.slice(11);
    expect(decodePublicNkey(broken, "user")).toBeUndefined();
    expect(decodeSignature("abc")).toBeUndefined();
  });
});
