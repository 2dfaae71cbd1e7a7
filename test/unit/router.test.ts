import { describe, expect, it } from "vitest";
import { accountSet, type Connection, type MessageData, type Subscriber } from "../../services/router/link.js";
import { Router } from "../../services/router/router.js";
import type { AccountConfig } from "../../services/common/config/options.js";

const data = (text: string): MessageData => {
  const buf = Buffer.from(text);
  return { buf, start: 0, end: buf.length, hdrLen: 0 };
};

/** A subscription whose connection is a fresh object carrying the given ids. */
function recorder(subject: string, edgeId: string, cid: number, sid: string, echo = true) {
  const got: { subject: string; text: string }[] = [];
  const sub: Subscriber = {
    subject, queue: undefined, sid, conn: { edgeId, cid, echo },
    deliver: (s, _reply, msg) => got.push({ subject: s, text: msg.buf.toString("latin1", msg.start, msg.end) }),
  };
  return { sub, got };
}

const account = (name: string, extra: Partial<AccountConfig> = {}): AccountConfig =>
  ({ name, users: [{ user: `${name}-user`, password: "secret" }], exports: [], imports: [], ...extra }) as AccountConfig;

describe("router: connections and subscriptions are named by ids", () => {
  it("echo suppression compares (edge id, cid), not objects", () => {
    const r = new Router();
    const own = recorder("x", "E1", 7, "1", false);
    const sameCidOtherEdge = recorder("x", "E2", 7, "1");
    r.subscribe("$G", own.sub);
    r.subscribe("$G", sameCidOtherEdge.sub);
    // The publisher is another object with the subscriber's ids: what a remote link rebuilds.
    const origin: Connection = { edgeId: "E1", cid: 7, echo: false };
    r.publish("$G", "x", undefined, data("hi"), origin);
    expect(own.got).toEqual([]);
    expect(sameCidOtherEdge.got).toEqual([{ subject: "x", text: "hi" }]);
  });

  it("no-responders reaches only the requester's reply subscription, found by ids", () => {
    const r = new Router();
    const requester = recorder("_INBOX.a", "E1", 3, "9");
    const other = recorder("_INBOX.a", "E2", 3, "9");
    r.subscribe("$G", requester.sub);
    r.subscribe("$G", other.sub);
    r.publish("$G", "nobody", "_INBOX.a", data(""), { edgeId: "E1", cid: 3, echo: true }, { noResponders: true });
    expect(requester.got).toHaveLength(1);
    expect(other.got).toEqual([]);
  });

  it("stats are asynchronous", async () => {
    const r = new Router();
    r.subscribe("$G", recorder("a", "E1", 1, "1").sub);
    const st = r.stats();
    expect(st).toBeInstanceOf(Promise);
    expect((await st).subscriptions).toBe(1);
  });
});

describe("router: accounts arrive as data", () => {
  it("the account set carries no users and a content version", () => {
    const a = accountSet([account("A"), account("B")]);
    expect(a.accounts).toEqual([{ name: "A", exports: [], imports: [] }, { name: "B", exports: [], imports: [] }]);
    expect(JSON.stringify(a)).not.toContain("secret");
    // Users do not change routing: same version; an import does.
    expect(accountSet([account("A", { users: [] }), account("B")]).version).toBe(a.version);
    expect(accountSet([account("A"), account("B", {
      imports: [{ kind: "stream", account: "A", subject: "s" }],
    } as Partial<AccountConfig>)]).version).not.toBe(a.version);
  });

  it("wires imports from the set, and logs two edges with different versions", () => {
    const warnings: string[] = [];
    const r = new Router((m) => warnings.push(m));
    const wired = accountSet([
      account("A", { exports: [{ kind: "stream", subject: "s.>" }] } as Partial<AccountConfig>),
      account("B", { imports: [{ kind: "stream", account: "A", subject: "s.>" }] } as Partial<AccountConfig>),
    ]);
    r.configureAccounts("E1", wired);
    const b = recorder("s.>", "E1", 1, "1");
    r.subscribe("B", b.sub);
    r.publish("A", "s.1", undefined, data("x"), { edgeId: "E1", cid: 2, echo: true });
    expect(b.got).toEqual([{ subject: "s.1", text: "x" }]);

    r.configureAccounts("E2", wired);
    expect(warnings).toEqual([]);
    r.configureAccounts("E2", accountSet([account("A"), account("B")]));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/edge E2 .* edge E1 .*differ/);
  });
});
