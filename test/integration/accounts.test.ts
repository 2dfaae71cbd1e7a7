// Accounts with real clients: isolation, stream exports/imports (public, restricted to a list,
// with a prefix), service exports/imports (request/reply across accounts), imports the exporter
// does not allow, in config mode and in operator mode (account JWTs).
// Every scenario also runs against the real nats-server 2.9.10 with the same config, so the
// expectations are the reference's, not guesses.
import { describe, expect, it } from "vitest";
import {
  credsAuthenticator, StringCodec,
  type ConnectionOptions, type NatsConnection,
} from "nats";
import { clusterTopologies } from "../helpers/broker.js";
import { encodeActivation } from "@nats-io/jwt";
import { newAccount, newOperator, newUser, operatorConfig, reissueAccount } from "../helpers/creds.js";
import { natsTargets } from "../helpers/nats-server.js";
import { roundRobin } from "../helpers/shared-cluster.js";
import { askUntil, take, cleanupAfterEach } from "../helpers/wait.js";
import { natsClient } from "../helpers/clients.js";

const sc = StringCodec();

const cleanups = cleanupAfterEach();

// One cluster per config for the file: each test's clients are its own and closed after it.
const targets = natsTargets(clusterTopologies, { shared: true });

const CONFIG = `accounts {
  A: {
    users: [{ user: a, password: pw }, { user: a2, password: pw }]
    exports: [
      { stream: "public.>" }
      { stream: "restricted.>", accounts: [B] }
      { service: "svc.echo" }
      { service: "svc.private", accounts: [C] }
    ]
  }
  B: {
    users: [{ user: b, password: pw }]
    imports: [
      { stream: { account: A, subject: "public.>" } }
      { stream: { account: A, subject: "restricted.>" } }
      { service: { account: A, subject: "svc.echo" }, to: "echo" }
    ]
  }
  C: {
    users: [{ user: c, password: pw }]
    imports: [
      { stream: { account: A, subject: "public.>" }, prefix: "from_a" }
      { service: { account: A, subject: "svc.echo" } }
      { service: { account: A, subject: "svc.private" } }
    ]
  }
  D: {
    users: [{ user: d, password: pw }]
    imports: [
      { stream: { account: A, subject: "public.>" }, prefix: "dotted." }
    ]
  }
  E: { users: [{ user: e, password: pw }] }
}`;

async function open(port: number, opts: Partial<ConnectionOptions>): Promise<NatsConnection> {
  return natsClient(cleanups, port, opts);
}

/** The next `n` messages of a subscription as "subject:payload". */

describe.each(targets)("accounts: $name", (target) => {
  /** How long this target's last start took (ms): a cluster on a loaded machine takes seconds. */
  let lastStartMs = 0;
  async function server(config = CONFIG) {
    const t0 = Date.now();
    const s = await target.start(config);
    lastStartMs = Date.now() - t0;
    cleanups.push(() => s.stop());
    // On a cluster, clients alternate over its edges.
    const port = roundRobin(s.ports ?? [s.port]);
    const as = (user: string) => open(port(), { user, pass: "pw" });
    return { ...s, as };
  }

  it("isolates accounts: the same subject in another account is another subject", async () => {
    const s = await server();
    const [a, a2, b] = [await s.as("a"), await s.as("a2"), await s.as("b")];
    const subA = a.subscribe("orders");
    const subB = b.subscribe("orders");
    await a.flush();
    await b.flush();

    b.publish("orders", sc.encode("from B"));
    await b.flush(); // B's message has been routed before A's below is sent
    a2.publish("orders", sc.encode("from A"));
    await a2.flush();
    b.publish("orders", sc.encode("B again"));

    // Had B's message leaked into A, it would come before A's own; same for A's into B.
    expect(await take(subA, 1)).toEqual(["orders:from A"]);
    expect(await take(subB, 2)).toEqual(["orders:from B", "orders:B again"]);
  });

  it("a public stream export reaches every importer, under its prefix; others see nothing", async () => {
    const s = await server();
    const [a, b, c, e] = [await s.as("a"), await s.as("b"), await s.as("c"), await s.as("e")];
    const inB = b.subscribe(">");
    const inC = c.subscribe(">");
    const inE = e.subscribe(">");
    await Promise.all([b.flush(), c.flush(), e.flush()]);

    a.publish("public.news", sc.encode("extra"));
    a.publish("private.news", sc.encode("not exported"));
    await a.flush();
    for (const nc of [b, c, e]) nc.publish("marker", sc.encode("end"));

    expect(await take(inB, 2)).toEqual(["public.news:extra", "marker:end"]);
    expect(await take(inC, 2)).toEqual(["from_a.public.news:extra", "marker:end"]);
    expect(await take(inE, 1)).toEqual(["marker:end"]);
  });

  it("a stream import prefix that ends in '.' is not given a second one", async () => {
    // nats-server (AddStreamImportWithClaim) appends the "." only when the prefix lacks it.
    const s = await server();
    const [a, d] = [await s.as("a"), await s.as("d")];
    const inD = d.subscribe(">");
    await d.flush();
    a.publish("public.news", sc.encode("extra"));
    await a.flush();
    d.publish("marker", sc.encode("end"));
    expect(await take(inD, 2)).toEqual(["dotted.public.news:extra", "marker:end"]);
  });

  it("a stream export restricted to an account list reaches only those accounts", async () => {
    const s = await server();
    const [a, b, c] = [await s.as("a"), await s.as("b"), await s.as("c")];
    const inB = b.subscribe("restricted.>");
    const inC = c.subscribe(">");
    await Promise.all([b.flush(), c.flush()]);
    a.publish("restricted.x", sc.encode("for B only"));
    await a.flush();
    c.publish("marker", sc.encode("end"));
    expect(await take(inB, 1)).toEqual(["restricted.x:for B only"]);
    expect(await take(inC, 1)).toEqual(["marker:end"]);
  });

  it("a service import carries a request to the exporter and its reply back", async () => {
    const s = await server();
    const a = await s.as("a");
    const seen: string[] = [];
    for (const subject of ["svc.echo", "svc.private"]) {
      a.subscribe(subject, {
        callback: (_err, m) => {
          seen.push(m.subject);
          m.respond(sc.encode(`A answers ${m.subject}: ${sc.decode(m.data)}`));
        },
      });
    }
    await a.flush();

    const b = await s.as("b");
    const viaTo = await b.request("echo", sc.encode("hi from B"), { timeout: 2_000 });
    expect(sc.decode(viaTo.data)).toBe("A answers svc.echo: hi from B");

    const c = await s.as("c");
    const same = await c.request("svc.echo", sc.encode("hi from C"), { timeout: 2_000 });
    expect(sc.decode(same.data)).toBe("A answers svc.echo: hi from C");
    const restricted = await c.request("svc.private", sc.encode("secret"), { timeout: 2_000 });
    expect(sc.decode(restricted.data)).toBe("A answers svc.private: secret");
    expect(seen).toEqual(["svc.echo", "svc.echo", "svc.private"]);

    // B did not import svc.private (and may not): nobody answers there.
    await expect(b.request("svc.private", sc.encode("x"), { timeout: 2_000 })).rejects.toMatchObject({ code: "503" });
    // Nor does the exporter's subject exist in an account that did not import it.
    const e = await s.as("e");
    await expect(e.request("svc.echo", sc.encode("x"), { timeout: 2_000 })).rejects.toMatchObject({ code: "503" });
  });

  it("several requests through a service import each get their own reply", async () => {
    const s = await server();
    const a = await s.as("a");
    a.subscribe("svc.echo", { callback: (_err, m) => m.respond(m.data) });
    await a.flush();
    const b = await s.as("b");
    const replies = await Promise.all(
      Array.from({ length: 20 }, (_, i) => b.request("echo", sc.encode(`n${i}`), { timeout: 2_000 })),
    );
    expect(replies.map((r) => sc.decode(r.data))).toEqual(Array.from({ length: 20 }, (_, i) => `n${i}`));
  });

  it("refuses a config whose stream import the exporter does not allow", async () => {
    const config = `accounts {
      A: { users: [{ user: a, password: pw }], exports: [{ stream: "restricted.>", accounts: [B] }] }
      B: { users: [{ user: b, password: pw }] }
      C: { users: [{ user: c, password: pw }], imports: [{ stream: { account: A, subject: "restricted.>" } }] }
    }`;
    await expect(target.start(config)).rejects.toThrow();
  });

  it("refuses a config whose service import is not exported at all", async () => {
    const config = `accounts {
      A: { users: [{ user: a, password: pw }] }
      B: { users: [{ user: b, password: pw }], imports: [{ service: { account: A, subject: "svc.hidden" } }] }
    }`;
    await expect(target.start(config)).rejects.toThrow();
  });

  it("operator mode: account JWT exports/imports work; an import of what is not exported is ignored", async () => {
    const op = await newOperator();
    const A = await newAccount(op, "A", {
      exports: [
        { name: "public", type: "stream", subject: "public.>" },
        { name: "echo", type: "service", subject: "svc.echo" },
      ],
    });
    const B = await newAccount(op, "B", {
      imports: [
        { name: "public", type: "stream", account: A.pub, subject: "public.>" },
        { name: "secret", type: "stream", account: A.pub, subject: "secret.>" }, // not exported
        { name: "echo", type: "service", account: A.pub, subject: "svc.echo" },
        { name: "hidden", type: "service", account: A.pub, subject: "svc.hidden" }, // not exported
      ],
    });
    const s = await server(operatorConfig(op, [A, B]));
    const userA = await newUser(A, "a");
    const userB = await newUser(B, "b");
    const a = await open(s.port, { authenticator: credsAuthenticator(userA.creds) });
    const b = await open(s.port, { authenticator: credsAuthenticator(userB.creds) });

    const inB = b.subscribe("*.>");
    a.subscribe("svc.*", { callback: (_err, m) => m.respond(sc.encode(`A: ${m.subject}`)) });
    await Promise.all([a.flush(), b.flush()]);
    a.publish("secret.plans", sc.encode("no"));
    a.publish("public.news", sc.encode("yes"));
    await a.flush();
    b.publish("b.marker", sc.encode("end"));
    expect(await take(inB, 2)).toEqual(["public.news:yes", "b.marker:end"]);

    const r = await b.request("svc.echo", sc.encode("?"), { timeout: 2_000 });
    expect(sc.decode(r.data)).toBe("A: svc.echo");
    await expect(b.request("svc.hidden", sc.encode("?"), { timeout: 2_000 })).rejects.toMatchObject({ code: "503" });
  });

  it("operator mode: an import wider than its export is ignored; an activation token must contain its import; an expired activation stops delivery", async () => {
    const op = await newOperator();
    const A0 = await newAccount(op, "A");
    const [B0, C0, D0] = [await newAccount(op, "B"), await newAccount(op, "C"), await newAccount(op, "D")];
    const act = (to: string, subject: string, exp?: number) =>
      encodeActivation("act", { getPublicKey: () => to } as never, A0.kp, "stream", { subject }, exp ? { exp } : {});
    const A = await reissueAccount(op, A0, {
      exports: [
        { name: "pub", type: "stream", subject: "pub.*" },
        { name: "svc", type: "service", subject: "svc.*" },
        { name: "tok", type: "stream", subject: "tok.>", token_req: true },
      ],
    });
    const B = await reissueAccount(op, B0, {
      imports: [
        { name: "pub", type: "stream", account: A.pub, subject: "pub.>" }, // wider than pub.*
        { name: "svc", type: "service", account: A.pub, subject: "svc.>" }, // wider than svc.*
      ],
    });
    // D's token grants tok.public.> only, not the tok.> it imports.
    const D = await reissueAccount(op, D0, {
      imports: [{ name: "tok", type: "stream", account: A.pub, subject: "tok.>", token: await act(D0.pub, "tok.public.>") }],
    });

    // C's activation must outlive the server's start and C's first delivery, and then expire. A
    // short one first (about 1.5 times the previous start of this target, a fresh config too, plus
    // 2-3 s: the wait for its expiry is most of this test); when the start outlasted it on a loaded
    // machine (a cluster took 10-15 s at a load average of 15), again with a longer one.
    let activationS = Math.max(3, Math.ceil((1.5 * lastStartMs) / 1000) + 2);
    for (let attempt = 1; ; attempt++) {
      const expiresAt = (Math.floor(Date.now() / 1000) + activationS) * 1000;
      const C = await reissueAccount(op, C0, {
        imports: [{ name: "tok", type: "stream", account: A.pub, subject: "tok.public.>", token: await act(C0.pub, "tok.public.>", expiresAt / 1000) }],
      });
      const s = await server(operatorConfig(op, [A, B, C, D]));
      const as = async (acc: typeof A, name: string) => open(s.port, { authenticator: credsAuthenticator((await newUser(acc, name)).creds) });
      const [a, c] = [await as(A, "a"), await as(C, "c")];
      const inC = c.subscribe(">", { max: 2 });
      await Promise.all([a.flush(), c.flush()]);
      a.publish("tok.private.x", sc.encode("a"));
      a.publish("tok.public.x", sc.encode("a"));
      await a.flush();
      c.publish("c.marker", sc.encode("end"));
      const beforeExpiry = await take(inC, 2).catch((e: Error) => e);
      if (beforeExpiry instanceof Error && Date.now() >= expiresAt && attempt < 3) {
        // Not a verdict: the setup outlasted the activation. This start's time says how long.
        activationS = Math.max(8, Math.ceil((2 * lastStartMs) / 1000) + 4) * attempt;
        continue;
      }
      if (beforeExpiry instanceof Error) throw beforeExpiry;
      expect(beforeExpiry).toEqual(["tok.public.x:a", "c.marker:end"]);

      // While C's activation runs out: B's wider imports are skipped, D's users refused.
      const b = await as(B, "b");
      const d = await as(D, "d").catch((e: Error) => e);
      const inB = b.subscribe(">");
      a.subscribe("svc.>", { callback: (_err, m) => m.respond(sc.encode(`A: ${m.subject}`)) });
      await Promise.all([a.flush(), b.flush()]);
      for (const subj of ["pub.secret.x", "pub.x", "tok.private.x", "tok.public.x"]) a.publish(subj, sc.encode("a"));
      await a.flush();
      b.publish("b.marker", sc.encode("end"));
      expect(await take(inB, 1)).toEqual(["b.marker:end"]); // the whole pub.> import is skipped, not narrowed
      await expect(b.request("svc.admin.x", sc.encode("?"), { timeout: 2_000 })).rejects.toMatchObject({ code: "503" });
      // An activation that does not contain its import makes D's account JWT invalid: its users are refused.
      expect(d instanceof Error ? d.message : "connected").toBe("'Authorization Violation'");

      // C's activation expires: its import stops. The expiry is a time, so this waits for it; then
      // asks again until the server has acted on it (nats-server on a timer), at most 3 s.
      await new Promise((r) => setTimeout(r, Math.max(0, expiresAt - Date.now())));
      const iterC2 = c.subscribe(">")[Symbol.asyncIterator]();
      const inC2 = { [Symbol.asyncIterator]: () => ({ next: () => iterC2.next() }) }; // one iterator for every take
      await c.flush();
      let n = 0;
      const seen = await askUntil(async () => {
        a.publish("tok.public.y", sc.encode(`late${n}`));
        await a.flush();
        c.publish("c.marker", sc.encode(`end${n}`));
        const got = await take(inC2, 1);
        if (got[0] !== `c.marker:end${n}`) await take(inC2, 1); // the marker after the late one
        n++;
        return got;
      }, (got) => got[0].startsWith("c.marker:"), 3_000);
      expect(seen).toEqual([`c.marker:end${n - 1}`]);
      return;
    }
  }, 90_000);
});
