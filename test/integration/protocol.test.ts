// Protocol behaviour seen through real clients (nats.js) and, where exact bytes matter,
// through the raw socket helper. Every test runs against each topology, the cluster included
// (clients spread over its two edges; one cluster for the file, so where a subscription an
// earlier test left behind could change the outcome — queue groups, no responders — each test
// has subjects of its own).
import { afterEach, describe, expect, it } from "vitest";
import { connect, Empty, headers, StringCodec, type NatsConnection, type Subscription } from "nats";
import { clusterTopologies, startTarget, type SuiteBroker } from "../helpers/broker.js";
import { closedWithin, rawConnect, type RawClient } from "../helpers/raw.js";
import { prng } from "../helpers/prng.js";

const sc = StringCodec();

/** Collect `n` messages from a subscription (resolves with their string payloads). */
function collect(sub: Subscription, n: number): Promise<string[]> {
  return (async () => {
    const out: string[] = [];
    if (n === 0) return out;
    for await (const m of sub) {
      out.push(sc.decode(m.data));
      if (out.length === n) break;
    }
    return out;
  })();
}


describe.each(clusterTopologies)("protocol with nats.js (%s)", (topology) => {
  let b: SuiteBroker | undefined;
  let conns: NatsConnection[] = [];
  let raws: RawClient[] = [];

  afterEach(async () => {
    await Promise.all(conns.map((nc) => (nc.isClosed() ? undefined : nc.close())));
    await Promise.all(raws.map((r) => r.close()));
    conns = [];
    raws = [];
    await b?.stop();
    b = undefined;
  });

  async function broker(config?: string): Promise<SuiteBroker> {
    b = await startTarget({ topology, config, shared: true });
    return b;
  }

  /** The next client's port: clients alternate over the edges of a cluster. */
  const port = () => b!.nextPort();

  async function nats(opts: Parameters<typeof connect>[0] = {}): Promise<NatsConnection> {
    const nc = await connect({ servers: `127.0.0.1:${port()}`, reconnect: false, ...opts });
    conns.push(nc);
    return nc;
  }

  async function raw(): Promise<RawClient> {
    const r = await rawConnect(port());
    raws.push(r);
    await r.expect(/^INFO .*\r\n/);
    return r;
  }

  it("publish/subscribe between two connections", async () => {
    await broker();
    const [a, c] = [await nats(), await nats()];
    const sub = a.subscribe("greet");
    const got = collect(sub, 2);
    await a.flush();
    c.publish("greet", sc.encode("hello"));
    c.publish("greet", sc.encode("world"));
    expect(await got).toEqual(["hello", "world"]);
  });

  it("wildcards: '*' matches exactly one token, '>' one or more", async () => {
    await broker();
    const [s, p] = [await nats(), await nats()];
    const star: string[] = [];
    const full: string[] = [];
    s.subscribe("a.*.c", { callback: (_e, m) => { star.push(m.subject); } });
    s.subscribe("a.>", { callback: (_e, m) => { full.push(m.subject); } });
    await s.flush();
    for (const subj of ["a.b.c", "a.x.c", "a.b", "a.b.c.d", "b.b.c", "a", "a.b.d"]) p.publish(subj, sc.encode(subj));
    await p.flush();
    // The server has routed every publish; a round trip on the subscriber's connection comes
    // back after everything it was sent.
    await s.flush();
    expect(star).toEqual(["a.b.c", "a.x.c"]);
    expect(full).toEqual(["a.b.c", "a.x.c", "a.b", "a.b.c.d", "a.b.d"]);
  });

  it("queue group: each message goes to exactly one member", async () => {
    await broker();
    const members = await Promise.all([nats(), nats(), nats()]);
    const plain = await nats();
    const subs = members.map((nc) => nc.subscribe("work", { queue: "q" }));
    const plainSub = plain.subscribe("work");
    const plainGot = collect(plainSub, 30);
    await Promise.all([...members, plain].map((nc) => nc.flush()));
    const p = await nats();
    for (let i = 0; i < 30; i++) p.publish("work", sc.encode(String(i)));
    await p.flush();
    expect(await plainGot).toHaveLength(30); // plain subscribers still get everything
    await Promise.all(members.map((nc) => nc.flush()));
    const total = subs.reduce((n, s) => n + s.getReceived(), 0);
    expect(total).toBe(30);
  });

  it("queue group: 400 messages over 4 members, every member gets some, none twice", async () => {
    await broker();
    const members = await Promise.all([nats(), nats(), nats(), nats()]);
    const seen: string[][] = members.map(() => []);
    let total = 0;
    let done!: () => void;
    const all = new Promise<void>((r) => { done = r; });
    members.forEach((nc, i) => nc.subscribe("jobs", {
      queue: "workers",
      callback: (_err, m) => {
        seen[i].push(sc.decode(m.data));
        if (++total === 400) done();
      },
    }));
    await Promise.all(members.map((nc) => nc.flush()));
    const p = await nats();
    for (let i = 0; i < 400; i++) p.publish("jobs", sc.encode(String(i)));
    await p.flush();
    await all;
    await Promise.all(members.map((nc) => nc.flush()));
    expect(total).toBe(400);
    for (const s of seen) expect(s.length).toBeGreaterThan(0);
    const union = seen.flat().map(Number).sort((x, y) => x - y);
    expect(union).toEqual([...Array(400).keys()]);
  });

  it("request/reply", async () => {
    await broker();
    const [svc, cli] = [await nats(), await nats()];
    const sub = svc.subscribe("svc.add");
    (async () => {
      for await (const m of sub) {
        const [x, y] = sc.decode(m.data).split("+").map(Number);
        m.respond(sc.encode(String(x + y)));
      }
    })();
    await svc.flush();
    const replies = await Promise.all([1, 2, 3].map((i) => cli.request("svc.add", sc.encode(`${i}+${i * 10}`), { timeout: 2_000 })));
    expect(replies.map((r) => sc.decode(r.data))).toEqual(["11", "22", "33"]);
  });

  it("headers round trip (HPUB → HMSG)", async () => {
    await broker();
    const [s, p] = [await nats(), await nats()];
    const sub = s.subscribe("h");
    const first = (async () => { for await (const m of sub) return m; })();
    await s.flush();
    const h = headers();
    h.append("X-Id", "42");
    h.append("X-Multi", "a");
    h.append("X-Multi", "b");
    p.publish("h", sc.encode("payload"), { headers: h, reply: "r.1" });
    const m = (await first)!;
    expect(sc.decode(m.data)).toBe("payload");
    expect(m.reply).toBe("r.1");
    expect(m.headers?.get("X-Id")).toBe("42");
    expect(m.headers?.values("X-Multi")).toEqual(["a", "b"]);
  });

  it("headers with an empty payload", async () => {
    await broker();
    const [s, p] = [await nats(), await nats()];
    const sub = s.subscribe("h.empty");
    const first = (async () => { for await (const m of sub) return m; })();
    await s.flush();
    const h = headers();
    h.set("K", "v");
    p.publish("h.empty", Empty, { headers: h });
    const m = (await first)!;
    expect(m.data.length).toBe(0);
    expect(m.headers?.get("K")).toBe("v");
  });

  it("a client without headers gets the payload only of a message published with headers", async () => {
    await broker();
    const r = await raw();
    await r.send('CONNECT {"verbose":false}\r\nSUB hdr 7\r\nPING\r\n');
    await r.expect("PONG\r\n");
    const from = r.received().length;
    const p = await nats();
    const h = headers();
    h.set("X-Secret", "yes");
    p.publish("hdr", sc.encode("hello"), { headers: h });
    await p.flush();
    await r.send("PING\r\n");
    await r.expect(/PONG\r\n$/, 2_000, from);
    expect(r.received().slice(from)).toBe("MSG hdr 7 5\r\nhello\r\nPONG\r\n");
  });

  it("request with no subscriber fails with the no-responders error (503)", async () => {
    await broker();
    const nc = await nats();
    const err = await nc.request("nobody.home", Empty, { timeout: 2_000 }).then(
      () => undefined,
      (e: unknown) => e as { code?: string },
    );
    expect(err?.code).toBe("503");
  });

  it("auto-unsubscribe: subscribe with max 3 gets 3 messages and the server sends no more", async () => {
    await broker();
    const [s, p] = [await nats(), await nats()];
    const sub = s.subscribe("auto", { max: 3 });
    const got = (async () => { const out: string[] = []; for await (const m of sub) out.push(sc.decode(m.data)); return out; })();
    await s.flush();
    for (let i = 0; i < 6; i++) p.publish("auto", sc.encode(String(i)));
    await p.flush();
    expect(await got).toEqual(["0", "1", "2"]);
    await s.flush();
    // Messages delivered to an unknown sid would still be counted here.
    expect(s.stats().inMsgs).toBe(3);
    expect(sub.isClosed()).toBe(true);
  });

  it("drain: queued messages are processed, then the connection closes", async () => {
    await broker();
    const [s, p] = [await nats(), await nats()];
    const got: number[] = [];
    s.subscribe("drain", { callback: (_e, m) => { got.push(Number(sc.decode(m.data))); } });
    await s.flush();
    for (let i = 0; i < 100; i++) p.publish("drain", sc.encode(String(i)));
    await p.flush();
    await s.drain();
    await s.closed();
    expect(s.isClosed()).toBe(true);
    expect(got).toEqual([...Array(100).keys()]);
    // After the drain the subscription is gone on the server: a request finds no responder.
    const err = await p.request("drain", Empty, { timeout: 2_000 }).then(() => undefined, (e: { code?: string }) => e);
    expect(err?.code).toBe("503");
  });

  it("subscription drain stops interest but the connection stays", async () => {
    await broker();
    const [s, p] = [await nats(), await nats()];
    const got: string[] = [];
    let done!: () => void;
    const five = new Promise<void>((r) => { done = r; });
    const sub = s.subscribe("sd", { callback: (_e, m) => { if (got.push(sc.decode(m.data)) === 5) done(); } });
    await s.flush();
    for (let i = 0; i < 5; i++) p.publish("sd", sc.encode(String(i)));
    await p.flush();
    await five;
    expect(got).toEqual(["0", "1", "2", "3", "4"]);
    await sub.drain();
    expect(sub.isClosed()).toBe(true);
    expect(s.isClosed()).toBe(false);
    const err = await p.request("sd", Empty, { timeout: 2_000 }).then(() => undefined, (e: { code?: string }) => e);
    expect(err?.code).toBe("503");
  });

  it("large payload (512 KB) arrives intact", async () => {
    await broker();
    const [s, p] = [await nats(), await nats()];
    const data = new Uint8Array(512 * 1024);
    const rnd = prng(7);
    for (let i = 0; i < data.length; i++) data[i] = (rnd() * 256) | 0;
    const sub = s.subscribe("big");
    const first = (async () => { for await (const m of sub) return m.data; })();
    await s.flush();
    p.publish("big", data);
    const got = (await first)!;
    expect(got.length).toBe(data.length);
    expect(Buffer.from(got).equals(Buffer.from(data))).toBe(true);
  });

  it("10,000 small numbered messages arrive in order, none lost", async () => {
    await broker();
    const [s, p] = [await nats(), await nats()];
    const N = 10_000;
    const sub = s.subscribe("seq");
    const got = (async () => {
      let next = 0;
      for await (const m of sub) {
        const n = Number(sc.decode(m.data));
        if (n !== next) return `expected ${next}, got ${n}`;
        if (++next === N) return "ok";
      }
      return `stopped at ${next}`;
    })();
    await s.flush();
    for (let i = 0; i < N; i++) p.publish("seq", sc.encode(String(i)));
    await p.flush();
    expect(await got).toBe("ok");
  });

  it.each([
    ["a PUB", '{"verbose":false}', "PUB foo 5\r\nhello\r\n", "MSG foo 1 5\r\nhello\r\n"],
    ["an HPUB", '{"verbose":false,"headers":true}', "HPUB foo 18 23\r\nNATS/1.0\r\nA: b\r\n\r\nhello\r\n",
      "HMSG foo 1 18 23\r\nNATS/1.0\r\nA: b\r\n\r\nhello\r\n"],
  ])("%s split across two TCP writes at every byte offset is delivered", async (_name, connect, sent, delivered) => {
    await broker();
    const sub = await raw();
    await sub.send(`CONNECT ${connect}\r\nSUB foo 1\r\nPING\r\n`);
    await sub.expect("PONG\r\n");
    const pub = await raw();
    await pub.send(`CONNECT ${connect}\r\n`);
    const msg = Buffer.from(sent);
    for (let cut = 0; cut <= msg.length; cut++) {
      await pub.send(msg.subarray(0, cut));
      await pub.send(msg.subarray(cut));
      // A round trip per split keeps each one separate and proves the parser is back in step.
      const from = pub.received().length;
      await pub.send("PING\r\n");
      await pub.expect("PONG\r\n", 2_000, from);
    }
    const n = msg.length + 1;
    await sub.expect(delivered.repeat(n), 3_000, sub.received().indexOf("PONG\r\n") + 6);
    expect(sub.received().replace(/^INFO .*\r\nPONG\r\n/, "")).toBe(delivered.repeat(n));
  });

  it("garbage input closes the connection and the server keeps serving others", async () => {
    await broker();
    for (let seed = 1; seed <= 25; seed++) {
      const r = await raw();
      const rnd = prng(seed);
      const junk = Buffer.alloc(256 + ((rnd() * 4096) | 0));
      for (let i = 0; i < junk.length; i++) junk[i] = (rnd() * 256) | 0;
      // Some inputs start out valid, so the parser has to fail in the middle of a command.
      const prefix = ["", "PUB foo 3\r\n", "SUB ", "CONNECT {", "HPUB x 1 2\r\n", "PING\r\n"][seed % 6];
      await r.send(Buffer.concat([Buffer.from(prefix), junk]));
      await closedWithin(r, 3_000);
    }
    const [s, p] = [await nats(), await nats()];
    const sub = s.subscribe("still.alive");
    const got = collect(sub, 1);
    await s.flush();
    p.publish("still.alive", sc.encode("yes"));
    expect(await got).toEqual(["yes"]);
  });
});
