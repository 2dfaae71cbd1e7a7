// Publish and subscribe permissions with real clients: allow and deny lists, wildcards, queue
// permissions ("subject queue"), allow_responses, messages a wildcard subscription must not be
// given (subscribe deny), the exact -ERR texts of nats-server 2.9, and that a violation leaves
// the connection open.
import { describe, expect, it } from "vitest";
import { Events, StringCodec, type ConnectionOptions, type Msg, type NatsConnection, type Subscription } from "nats";
import { clusterTopologies, startTarget, type SuiteBroker, type SuiteTopology } from "../helpers/broker.js";
import { rawConnect, type RawClient } from "../helpers/raw.js";
import { cleanupAfterEach } from "../helpers/wait.js";
import { natsClient } from "../helpers/clients.js";

const sc = StringCodec();
const INFO_LINE = /^INFO \{.*\} ?\r\n/;

const cleanups = cleanupAfterEach();

const CONFIG = `authorization { users: [
  { user: pub, password: pw, permissions: {
      publish: { allow: ["orders.>", "metrics.*"], deny: ["orders.secret", "orders.admin.>"] }
      subscribe: { allow: ["orders.*", "updates.>", "work.* workers"], deny: ["orders.secret"] }
  } }
  { user: lists, password: pw, permissions: { publish: ["a.b", "c.*"], subscribe: ["in.>"] } }
  { user: responder, password: pw, permissions: { subscribe: "svc.>", allow_responses: true } }
  { user: responder2, password: pw, permissions: { subscribe: "svc.>", allow_responses: { max: 2 } } }
  { user: admin, password: pw }
] }`;

/** The server; on the cluster, one for the file (the tests leave nothing behind but closed clients). */
async function broker(topology: SuiteTopology): Promise<SuiteBroker> {
  const b = await startTarget({ topology, config: CONFIG, shared: true });
  cleanups.push(() => b.stop());
  return b;
}

async function client(b: SuiteBroker, user: string, opts: Partial<ConnectionOptions> = {}): Promise<NatsConnection> {
  return natsClient(cleanups, b.nextPort(), { user, pass: "pw", ...opts });
}

async function raw(b: SuiteBroker, user: string): Promise<RawClient> {
  const c = await rawConnect(b.nextPort());
  cleanups.push(() => c.close());
  await c.expect(INFO_LINE);
  await c.send(`CONNECT ${JSON.stringify({ verbose: false, pedantic: false, user, pass: "pw" })}\r\nPING\r\n`);
  await c.expect(/\r\nPONG\r\n$/);
  return c;
}

/** Send, then PING, and return what the server answered up to that PONG. */
async function exchange(c: RawClient, text: string): Promise<string> {
  const from = c.received().length;
  await c.send(text + "PING\r\n");
  await c.expect(/PONG\r\n$/, 2_000, from);
  return c.received().slice(from);
}

type PermissionContext = { operation: string; subject: string; queue?: string };

/** Records what nats.js reports as permission errors on this connection; `first(n)` resolves
 *  with the first n of them once they have arrived (the status stream is asynchronous). */
function permissionErrors(nc: NatsConnection): { first(n: number, timeoutMs?: number): Promise<string[]> } {
  const seen: PermissionContext[] = [];
  const waiters = new Set<() => void>();
  (async () => {
    for await (const s of nc.status()) {
      if (s.type === Events.Error && s.permissionContext) {
        seen.push(s.permissionContext);
        for (const w of [...waiters]) w();
      }
    }
  })().catch(() => undefined);
  const text = () => seen.map((e) => `${e.operation} ${e.subject}${e.queue ? ` ${e.queue}` : ""}`);
  return {
    first: (n, timeoutMs = 2_000) => new Promise((resolve, reject) => {
      const check = () => {
        if (seen.length < n) return;
        done();
        resolve(text().slice(0, n));
      };
      const timer = setTimeout(() => { done(); reject(new Error(`only ${JSON.stringify(text())} within ${timeoutMs}ms`)); }, timeoutMs);
      const done = () => { clearTimeout(timer); waiters.delete(check); };
      waiters.add(check);
      check();
    }),
  };
}

/** Subjects of the messages a subscription gets, up to and including `until`. */
async function subjectsUntil(sub: Subscription, until: string, timeoutMs = 2_000): Promise<string[]> {
  const got: string[] = [];
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${until} within ${timeoutMs}ms; got ${JSON.stringify(got)}`)), timeoutMs);
  });
  try {
    return await Promise.race([(async () => {
      for await (const m of sub) {
        got.push(m.subject);
        if (m.subject === until) return got;
      }
      throw new Error(`subscription ended; got ${JSON.stringify(got)}`);
    })(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const pubErr = (s: string) => `-ERR 'Permissions Violation for Publish to "${s}"'\r\n`;
const subErr = (s: string, q?: string) =>
  `-ERR 'Permissions Violation for Subscription to "${s}"${q ? ` using queue "${q}"` : ""}'\r\n`;

describe.each(clusterTopologies)("permissions (%s)", (topology) => {
  describe("publish", () => {
    it("delivers what the allow list admits, minus the deny list, wildcards included (nats.js)", async () => {
      const b = await broker(topology);
      const admin = await client(b, "admin");
      const watch = admin.subscribe(">");
      await admin.flush();
      const nc = await client(b, "pub");
      const errors = permissionErrors(nc);
      for (const s of ["orders.new", "orders.secret", "orders.admin.x", "orders.a.b", "metrics.cpu", "metrics.cpu.x", "other", "done.x"]) {
        nc.publish(s, sc.encode(s));
      }
      await nc.flush();
      admin.publish("done.x"); // after everything pub sent: admin's marker comes last
      expect(await subjectsUntil(watch, "done.x")).toEqual(["orders.new", "orders.a.b", "metrics.cpu", "done.x"]);
      expect(await errors.first(5)).toEqual([
        "publish orders.secret", "publish orders.admin.x", "publish metrics.cpu.x", "publish other", "publish done.x",
      ]);
      expect(nc.isClosed()).toBe(false);
    });

    it("sends the exact -ERR for each denied publish and keeps the connection open (raw)", async () => {
      const b = await broker(topology);
      const c = await raw(b, "pub");
      expect(await exchange(c,
        "PUB orders.new 1\r\nx\r\n" +
        "PUB orders.secret 1\r\nx\r\n" +
        "PUB orders.admin.x 1\r\nx\r\n" +
        "PUB metrics.cpu.x 1\r\nx\r\n" +
        "PUB other 1\r\nx\r\n")).toBe(
        pubErr("orders.secret") + pubErr("orders.admin.x") + pubErr("metrics.cpu.x") + pubErr("other") + "PONG\r\n");
      expect(await exchange(c, "PUB orders.ok 2\r\nok\r\n")).toBe("PONG\r\n");
      expect(c.isClosed()).toBe(false);
    });

    it("a publish list is an allow list", async () => {
      const b = await broker(topology);
      const c = await raw(b, "lists");
      expect(await exchange(c, "PUB a.b 0\r\n\r\nPUB a.c 0\r\n\r\nPUB c.d 0\r\n\r\nPUB c.d.e 0\r\n\r\n"))
        .toBe(pubErr("a.c") + pubErr("c.d.e") + "PONG\r\n");
    });

    it("refuses a reserved reply subject with 'Publish with Reply of'", async () => {
      // nats-server 2.9 (client.go processInboundClientMsg): a client may not use a gateway
      // reply prefix "_GR_." as its reply subject, whatever its permissions.
      const b = await broker(topology);
      const c = await raw(b, "admin");
      expect(await exchange(c, "PUB foo _GR_.abc 1\r\nx\r\n"))
        .toBe(`-ERR 'Permissions Violation for Publish with Reply of "_GR_.abc"'\r\nPONG\r\n`);
    });
  });

  describe("subscribe", () => {
    it("refuses subscriptions outside the allow list or in the deny list (nats.js)", async () => {
      const b = await broker(topology);
      const nc = await client(b, "pub");
      const refusedSub = (subject: string, queue?: string) => new Promise<Error>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`subscription to ${subject} not refused`)), 2_000);
        nc.subscribe(subject, { queue, callback: (err) => { if (err) { clearTimeout(timer); resolve(err); } } });
      });
      expect((await refusedSub("orders.secret")).message).toContain('Permissions Violation for Subscription to "orders.secret"');
      expect((await refusedSub("elsewhere")).message).toContain('Permissions Violation for Subscription to "elsewhere"');
      expect((await refusedSub("work.x", "others")).message)
        .toContain('Permissions Violation for Subscription to "work.x" using queue "others"');

      // Allowed ones work, on the same connection.
      const ok = nc.subscribe("updates.a.b");
      const admin = await client(b, "admin");
      await nc.flush();
      admin.publish("updates.a.b", sc.encode("hi"));
      expect(await subjectsUntil(ok, "updates.a.b")).toEqual(["updates.a.b"]);
    });

    it("sends the exact -ERR for each denied subscription, queue permissions included (raw)", async () => {
      const b = await broker(topology);
      const c = await raw(b, "pub");
      expect(await exchange(c,
        "SUB orders.new 1\r\n" +
        "SUB orders.secret 2\r\n" +
        "SUB orders.a.b 3\r\n" +
        "SUB updates.x.y 4\r\n" +
        "SUB work.x workers 5\r\n" +
        "SUB work.x 6\r\n" +
        "SUB work.x others 7\r\n" +
        "SUB orders.new anyqueue 8\r\n")).toBe(
        subErr("orders.secret") + subErr("orders.a.b") + subErr("work.x") + subErr("work.x", "others") + "PONG\r\n");
      expect(c.isClosed()).toBe(false);
    });

    it("a queue permission admits that queue group only", async () => {
      const b = await broker(topology);
      const nc = await client(b, "pub");
      const member = nc.subscribe("work.job", { queue: "workers" });
      const admin = await client(b, "admin");
      await nc.flush();
      admin.publish("work.job", sc.encode("do it"));
      expect(await subjectsUntil(member, "work.job")).toEqual(["work.job"]);
    });

    it("a wildcard subscription is not given messages on denied subjects", async () => {
      const b = await broker(topology);
      const nc = await client(b, "pub");
      const sub = nc.subscribe("orders.*");
      await nc.flush();
      const admin = await client(b, "admin");
      admin.publish("orders.secret", sc.encode("classified"));
      admin.publish("orders.public", sc.encode("news"));
      // Same publisher, same order: had orders.secret been delivered, it would come first.
      expect(await subjectsUntil(sub, "orders.public")).toEqual(["orders.public"]);

      const c = await raw(b, "pub");
      await exchange(c, "SUB orders.* 1\r\n");
      admin.publish("orders.secret", sc.encode("classified"));
      admin.publish("orders.public", sc.encode("news"));
      await c.expect("MSG orders.public 1 4\r\nnews\r\n");
      expect(c.received()).not.toContain("orders.secret");
    });
  });

  describe("allow_responses", () => {
    it("a responder without publish permission answers a request it received, once", async () => {
      const b = await broker(topology);
      const responder = await client(b, "responder");
      const errors = permissionErrors(responder);
      let replyTo = "";
      const answered = new Promise<void>((resolve) => {
        responder.subscribe("svc.echo", {
          callback: (_err, m: Msg) => {
            replyTo = m.reply ?? "";
            m.respond(sc.encode(`echo ${sc.decode(m.data)}`));
            m.respond(sc.encode("second answer"));
            resolve();
          },
        });
      });
      await responder.flush();
      const requester = await client(b, "admin");
      const reply = await requester.request("svc.echo", sc.encode("hi"), { timeout: 2_000 });
      expect(sc.decode(reply.data)).toBe("echo hi");
      await answered;
      responder.publish("svc.other", sc.encode("not a response"));
      await responder.flush();
      expect(await errors.first(2)).toEqual([`publish ${replyTo}`, "publish svc.other"]);
      expect(responder.isClosed()).toBe(false);
    });

    it("exact bytes: first reply passes, the second and an unrelated publish are refused", async () => {
      const b = await broker(topology);
      const requester = await raw(b, "admin");
      const responder = await raw(b, "responder");
      await exchange(requester, "SUB rep.1 1\r\n");
      await exchange(responder, "SUB svc.echo 1\r\n");
      await requester.send("PUB svc.echo rep.1 2\r\nhi\r\n");
      await responder.expect("MSG svc.echo 1 rep.1 2\r\nhi\r\n");
      expect(await exchange(responder, "PUB rep.1 2\r\nok\r\nPUB rep.1 3\r\nok2\r\nPUB svc.x 1\r\nx\r\n"))
        .toBe(pubErr("rep.1") + pubErr("svc.x") + "PONG\r\n");
      await requester.expect("MSG rep.1 1 2\r\nok\r\n");
      expect(await exchange(requester, "")).toBe("PONG\r\n");
      expect(requester.received()).not.toContain("ok2");
    });

    it("allow_responses { max: 2 } allows two replies per request", async () => {
      const b = await broker(topology);
      const requester = await raw(b, "admin");
      const responder = await raw(b, "responder2");
      await exchange(requester, "SUB rep.2 1\r\n");
      await exchange(responder, "SUB svc.echo 1\r\n");
      await requester.send("PUB svc.echo rep.2 2\r\nhi\r\n");
      await responder.expect("MSG svc.echo 1 rep.2 2\r\nhi\r\n");
      expect(await exchange(responder, "PUB rep.2 1\r\n1\r\nPUB rep.2 1\r\n2\r\nPUB rep.2 1\r\n3\r\n"))
        .toBe(pubErr("rep.2") + "PONG\r\n");
      await requester.expect("MSG rep.2 1 1\r\n1\r\nMSG rep.2 1 1\r\n2\r\n");
    });

    it("a reply subject the responder never received stays forbidden", async () => {
      const b = await broker(topology);
      const responder = await raw(b, "responder");
      expect(await exchange(responder, "PUB _INBOX.guess 1\r\nx\r\n")).toBe(pubErr("_INBOX.guess") + "PONG\r\n");
    });
  });
});
