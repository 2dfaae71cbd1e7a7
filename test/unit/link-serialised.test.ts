import { describe, expect, it } from "vitest";
import { loadConfigText } from "../../services/common/config/index.js";
import { silentLogger } from "../../services/common/log.js";
import type { MqttProperties } from "../../services/common/mqtt-properties.js";
import { startRouterSide } from "../../services/embedded.js";
import {
  accountSet, type Connection, type MessageData, type RouterLink, type SessionClient, type StoredMessage, type Subscriber,
} from "../../services/router/link.js";
import { createSerialisedLink } from "../../services/router/link-serialised.js";
import { Router } from "../../services/router/router.js";
import type { AccountConfig } from "../../services/common/config/options.js";

const data = (text: string, hdr = ""): MessageData => {
  const buf = Buffer.from(`xx${hdr}${text}yy`); // the bytes sit inside a larger buffer, as in a read
  return { buf, start: 2, end: buf.length - 2, hdrLen: hdr.length };
};

function recorder(subject: string, cid: number, sid: string, echo = true) {
  const got: string[] = [];
  const sub: Subscriber = {
    subject, queue: undefined, sid, conn: { edgeId: "E1", cid, echo },
    deliver: (s, reply, msg) => got.push(`${s} ${reply ?? "-"} ${msg.hdrLen} ${msg.buf.toString("latin1", msg.start, msg.end)}`),
  };
  return { sub, got };
}

const synced = (link: { sync(done: () => void): void }) => new Promise<void>((resolve) => link.sync(resolve));

describe("serialised link", () => {
  it("delivers on a later turn, in order, with headers and reply, and sync() waits for it", async () => {
    const link = createSerialisedLink(new Router());
    const a = recorder("a.*", 1, "s1");
    link.subscribe("$G", a.sub);
    const msg = data("one");
    link.publish("$G", "a.1", "r.1", msg, { edgeId: "E1", cid: 2, echo: true });
    msg.buf.fill(0); // the sender reuses its buffer: the link copied the bytes
    link.publish("$G", "a.2", undefined, data("two", "NATS/1.0\r\n\r\n"), { edgeId: "E1", cid: 2, echo: true });
    expect(a.got).toEqual([]);
    await synced(link);
    expect(a.got).toEqual(["a.1 r.1 0 one", "a.2 - 12 NATS/1.0\r\n\r\ntwo"]);
    link.close();
  });

  it("the same message bytes routed again on a later turn reach the edge again", async () => {
    // Deliveries of one routing call share a Deliver op; one from a later call (here the
    // router's own, as a mesh or the no-responders status reuse their bytes) must not join an
    // op already sent.
    const router = new Router();
    const link = createSerialisedLink(router);
    const a = recorder("again", 1, "s1");
    link.subscribe("$G", a.sub);
    await synced(link);
    const msg = data("same");
    for (let turn = 0; turn < 3; turn++) {
      router.publish("$G", "again", undefined, msg, { edgeId: "E9", cid: 1, echo: true });
      await new Promise((r) => setImmediate(r)); // the frame leaves; nothing comes from the edge
    }
    await synced(link);
    expect(a.got).toEqual(["again - 0 same", "again - 0 same", "again - 0 same"]);
    link.close();
  });

  it("one MessageData reused for the next message in the same task (the MQTT session service's) is not taken for the same message", async () => {
    const router = new Router();
    const link = createSerialisedLink(router);
    const a = recorder("reused", 1, "s1");
    const b = recorder("reused", 2, "s2");
    link.subscribe("$G", a.sub);
    link.subscribe("$G", b.sub);
    await synced(link);
    const routed = data("first");
    router.publish("$G", "reused", undefined, routed, { edgeId: "E9", cid: 1, echo: true });
    const next = data("other"); // as long: only the bytes differ
    routed.buf = next.buf; // same object, new bytes, no turn in between
    routed.end = next.end;
    router.publish("$G", "reused", undefined, routed, { edgeId: "E9", cid: 1, echo: true });
    await synced(link);
    // Each message reaches both subscriptions (one Deliver per message, two targets each).
    expect(a.got).toEqual(["reused - 0 first", "reused - 0 other"]);
    expect(b.got).toEqual(["reused - 0 first", "reused - 0 other"]);
    link.close();
  });

  it("two messages on one subject in one edge frame stay two (the cursor reuses one MessageData)", async () => {
    // Both PUBs cross in the same frame; the router end reads them into one reused MessageData
    // over the same frame bytes, so only their offsets tell them apart.
    const link = createSerialisedLink(new Router());
    const a = recorder("twice", 1, "s1");
    const b = recorder("twice", 2, "s2");
    link.subscribe("$G", a.sub);
    link.subscribe("$G", b.sub);
    await synced(link);
    const from = { edgeId: "E1", cid: 3, echo: true };
    link.publish("$G", "twice", undefined, data("first"), from);
    link.publish("$G", "twice", undefined, data("other"), from); // as long: only the bytes differ
    await synced(link);
    expect(a.got).toEqual(["twice - 0 first", "twice - 0 other"]);
    expect(b.got).toEqual(["twice - 0 first", "twice - 0 other"]);
    link.close();
  });

  it("echo, no-responders, unsubscribe and stats work from ids alone", async () => {
    const link = createSerialisedLink(new Router());
    const own = recorder("x", 1, "1", false);
    const inbox = recorder("_INBOX.1", 1, "2");
    link.subscribe("$G", own.sub);
    link.subscribe("$G", inbox.sub);
    link.publish("$G", "x", undefined, data("self"), { edgeId: "E1", cid: 1, echo: false });
    link.publish("$G", "nobody", "_INBOX.1", data(""), { edgeId: "E1", cid: 1, echo: false }, { noResponders: true });
    expect((await link.stats()).subscriptions).toBe(2);
    await synced(link);
    expect(own.got).toEqual([]);
    expect(inbox.got).toEqual(["_INBOX.1 - 16 NATS/1.0 503\r\n\r\n"]);
    link.unsubscribe("$G", inbox.sub);
    expect((await link.stats()).subscriptions).toBe(1);
    link.close();
  });

  /** Account B imports A's token-required stream "s.>" (with `activation`, if given) over a
   *  serialised link; A publishes s.1. What B's subscriber got, and the router's warnings. */
  async function tokenImport(activation?: { subject: string }) {
    const warnings: string[] = [];
    const link = createSerialisedLink(new Router((m) => warnings.push(m)));
    const accounts = [
      { name: "A", users: [], exports: [{ kind: "stream", subject: "s.>", tokenRequired: true }], imports: [] },
      { name: "B", users: [], exports: [], imports: [{ kind: "stream", account: "A", subject: "s.>", activation }] },
    ] as AccountConfig[];
    link.configureAccounts("E1", accountSet(accounts));
    const b = recorder("s.>", 1, "1");
    link.subscribe("B", b.sub);
    link.publish("A", "s.1", undefined, data("x"), { edgeId: "E1", cid: 2, echo: true });
    await synced(link);
    link.close();
    return { got: b.got, warnings };
  }

  it("carries the account set, operator-mode activations included", async () => {
    expect(await tokenImport({ subject: "s.>" })).toEqual({ got: ["s.1 - 0 x"], warnings: [] });
  });

  it("an import without an activation (the edge dropped an expired one) is ignored, not a fault", async () => {
    // The wire decodes an absent activation as null; the router took null for a token (a
    // TypeError on attach: an operator-mode edge whose activation expired never attached).
    expect(await tokenImport()).toEqual({ got: [], warnings: [expect.stringMatching(/has no valid activation token for it, ignored$/)] });
  });

  /**
   * MQTT through the session service on the router side (memory store): publishes of every
   * QoS (retain, empty payloads, unicode topics, MQTT 5 properties) from one connection, the
   * PUBLISH events another connection's client gets (DUP on a resume, PUBREL, takeover), as
   * the client saw them; `link` is the router itself (embedded) or a serialised link to it.
   */
  /** Properties as JSON, keys sorted (the order they were set in does not matter). */
  const sorted = (p: MqttProperties | undefined): string =>
    (p === undefined ? "-" : JSON.stringify(Object.fromEntries(Object.entries(p).sort(([a], [b]) => a.localeCompare(b)))));

  async function mqttExchange(serialised: boolean): Promise<string[]> {
    const config = "server_name: router\nhost: 127.0.0.1\nport: -1\nmqtt { host: 127.0.0.1, port: -1 }\n";
    const { options } = loadConfigText(config, "router.conf", {});
    const side = await startRouterSide(options, silentLogger());
    const link: RouterLink & { close?(): void } = serialised ? createSerialisedLink(side.router) : side.router;
    const sessions = link.sessions!;
    const got: string[] = [];
    const client = (name: string): SessionClient => ({
      sendPublish: (topic, payload, qos, retain, dup, packetId, props) =>
        got.push(`${name} ${topic} ${Buffer.from(payload).toString("utf8")} q${qos} r${retain} d${dup} ${packetId} ${sorted(props)}`),
      sendPubrel: (packetId) => got.push(`${name} pubrel ${packetId}`),
      takenOver: () => got.push(`${name} taken over`),
    });
    const conn = (cid: number): Connection => ({ edgeId: "E1", cid, echo: true });
    const settled = () => new Promise<void>((resolve) => link.sync(resolve));
    try {
      const sub = conn(1), pub = conn(2);
      await sessions.attach({ conn: sub, clientId: "sub", account: "$G", clean: false, expiry: 600, subscribe: undefined, will: undefined }, client("sub"));
      await sessions.attach({ conn: pub, clientId: "pub", account: "$G", clean: true, expiry: 0, subscribe: undefined, will: undefined }, client("pub"));
      sessions.subscribe(sub, [{ filter: "t/#", qos: 2 }, { filter: "日本/+", qos: 1, identifier: 7 }]);
      sessions.resume(sub);
      await settled();
      const props: MqttProperties = {
        userProperties: { k: ["v1", "v2"], ü: "ß" }, contentType: "text/plain", correlationData: Buffer.from([0, 1, 255]),
        responseTopic: "reply/here", payloadFormatIndicator: true, messageExpiryInterval: 3600,
      };
      const msg = (topic: string, payload: string, qos: 0 | 1 | 2, retain = false, p?: MqttProperties): StoredMessage =>
        ({ topic, payload: Buffer.from(payload), qos, retain, props: p });
      sessions.publish(pub, "t.a", msg("t/a", "zero", 0));
      sessions.publish(pub, "t.empty", msg("t/empty", "", 0));
      await sessions.publish(pub, "t.one", msg("t/one", "one", 1, false, props));
      await sessions.publish(pub, "日本.x", msg("日本/x", "ünïcödé 😀", 1, true));
      await sessions.incoming(pub, 9, "t.two", msg("t/two", "two", 2, false, { userProperties: { a: "b" } }));
      await settled();
      // Unacknowledged: resent with DUP on the next resume; one PUBREC'd QoS 2 comes back as a PUBREL.
      sessions.pubrec(sub, 3);
      sessions.resume(sub);
      await settled();
      // A new subscription gets the retained message, retain set.
      sessions.subscribe(sub, [{ filter: "日本/#", qos: 0 }]);
      await settled();
      await sessions.attach({ conn: conn(3), clientId: "sub", account: "$G", clean: false, expiry: 600, subscribe: undefined, will: undefined }, client("sub2"));
      await settled();
    } finally {
      link.close?.();
      await side.close();
    }
    return got;
  }

  it("MQTT publishes and session events (QoS 0-2, retain, DUP, PUBREL, takeover, properties) arrive as over the embedded link", async () => {
    const embedded = await mqttExchange(false);
    expect(embedded.length).toBeGreaterThan(8);
    // The same events in the same order, but for the PUBREL: the service sends it after the
    // store's write of the PUBREC and again on the resume if that came first (a promise whose
    // turn differs between the two links), so when and how often differ.
    const serialised = await mqttExchange(true);
    const inOrder = (events: string[]) => events.filter((e) => !e.includes(" pubrel "));
    expect(inOrder(serialised)).toEqual(inOrder(embedded));
    expect(new Set(serialised)).toEqual(new Set(embedded));
  });
});
