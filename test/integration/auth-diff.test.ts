// Differential auth tests: the same raw exchange against the real nats-server 2.9.10 and against
// meshbroker, with the same config; what each client received after its INFO line must be the
// same bytes. `want` pins nats-server's transcript, so a change of the reference shows up as such.
// A transcript ends in "<closed>" when the server closed the connection.
import { describe, expect, it } from "vitest";
import { hashSync } from "bcryptjs";
import { startBroker, topologies, type Topology } from "../helpers/broker.js";
import { startNatsServer } from "../helpers/nats-server.js";
import { rawConnect, type RawClient } from "../helpers/raw.js";
import { cleanupAfterEach } from "../helpers/wait.js";

const INFO_LINE = /^INFO \{.*\} ?\r\n/;
const CLOSE_WAIT_MS = 3_000;

const cleanups = cleanupAfterEach();

async function raw(port: number): Promise<RawClient> {
  const c = await rawConnect(port);
  cleanups.push(() => c.close());
  await c.expect(INFO_LINE);
  return c;
}

function transcript(c: RawClient): string {
  return c.received().replace(INFO_LINE, "") + (c.isClosed() ? "<closed>" : "");
}

/** After `text`, the transcript once the server closed the connection (or after a bound). */
async function untilClosed(c: RawClient, text: string, ms = CLOSE_WAIT_MS): Promise<string> {
  await c.send(text);
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([c.closed, new Promise<void>((r) => { timer = setTimeout(r, ms); })]);
  clearTimeout(timer);
  return transcript(c);
}

/** After `text` + PING, the transcript once that PONG came (or the connection closed). */
async function untilPong(c: RawClient, text: string): Promise<string> {
  const before = (c.received().match(/PONG\r\n/g) ?? []).length;
  await c.send(text + "PING\r\n");
  await c.expect(new RegExp(`^(?:[^]*?PONG\\r\\n){${before + 1}}$`), CLOSE_WAIT_MS).catch(() => undefined);
  return transcript(c);
}

const connectLine = (o: Record<string, unknown>) => `CONNECT ${JSON.stringify({ verbose: false, pedantic: false, ...o })}\r\n`;

interface Case {
  name: string;
  config: string;
  run(port: number): Promise<string[]>;
  /** nats-server 2.9.10's transcripts, one per client. */
  want: string[];
}

const AUTH_VIOLATION = "-ERR 'Authorization Violation'\r\n<closed>";
const pubErr = (s: string) => `-ERR 'Permissions Violation for Publish to "${s}"'\r\n`;
const subErr = (s: string, q?: string) =>
  `-ERR 'Permissions Violation for Subscription to "${s}"${q ? ` using queue "${q}"` : ""}'\r\n`;

const BCRYPT = hashSync("bcrypt-pw", 4);
// ~400 ms a check with bcryptjs, ~150 ms with Go: longer than the auth timeout below either way.
const SLOW_BCRYPT = hashSync("slow-pw", 12);

const PERMS = `authorization { users: [
  { user: pub, password: pw, permissions: {
      publish: { allow: ["orders.>", "metrics.*"], deny: ["orders.secret", "orders.admin.>"] }
      subscribe: { allow: ["orders.*", "updates.>", "work.* workers"], deny: ["orders.secret"] }
  } }
  { user: responder, password: pw, permissions: { subscribe: "svc.>", allow_responses: true } }
  { user: admin, password: pw }
] }`;

const single = (text: string) => async (port: number) => [await untilClosed(await raw(port), text)];
const singlePong = (text: string) => async (port: number) => [await untilPong(await raw(port), text)];

const cases: Case[] = [
  // ---- refused credentials ----
  {
    name: "single user, wrong password",
    config: "authorization { user: alice, password: wonderland }",
    run: single(connectLine({ user: "alice", pass: "nope" }) + "PING\r\n"),
    want: [AUTH_VIOLATION],
  },
  {
    name: "single user, no credentials",
    config: "authorization { user: alice, password: wonderland }",
    run: single(connectLine({}) + "PING\r\n"),
    want: [AUTH_VIOLATION],
  },
  {
    name: "single user, verbose CONNECT with the wrong password gets no +OK",
    config: "authorization { user: alice, password: wonderland }",
    run: single(`CONNECT {"verbose":true,"user":"alice","pass":"nope"}\r\nPING\r\n`),
    want: [AUTH_VIOLATION],
  },
  {
    name: "users list, bcrypt password, wrong password",
    config: `authorization { users: [{ user: bob, password: "${BCRYPT}" }] }`,
    run: single(connectLine({ user: "bob", pass: "nope" }) + "PING\r\n"),
    want: [AUTH_VIOLATION],
  },
  {
    name: "users list, unknown user",
    config: `authorization { users: [{ user: bob, password: pw }] }`,
    run: single(connectLine({ user: "carol", pass: "pw" }) + "PING\r\n"),
    want: [AUTH_VIOLATION],
  },
  {
    name: "token, wrong token",
    config: "authorization { token: letmein }",
    run: single(connectLine({ auth_token: "letmeout" }) + "PING\r\n"),
    want: [AUTH_VIOLATION],
  },
  {
    name: "bcrypt token, wrong token",
    config: `authorization { token: "${BCRYPT}" }`,
    run: single(connectLine({ auth_token: "nope" }) + "PING\r\n"),
    want: [AUTH_VIOLATION],
  },
  {
    name: "a user allowed only MQTT, over TCP",
    config: `authorization { users: [{ user: m, password: pw, allowed_connection_types: ["MQTT"] }] }`,
    run: single(connectLine({ user: "m", pass: "pw" }) + "PING\r\n"),
    want: [AUTH_VIOLATION],
  },
  {
    name: "a user allowed only WEBSOCKET, over TCP",
    config: `authorization { users: [{ user: w, password: pw, allowed_connection_types: ["WEBSOCKET"] }] }`,
    run: single(connectLine({ user: "w", pass: "pw" }) + "PING\r\n"),
    want: [AUTH_VIOLATION],
  },
  {
    name: "PUB before CONNECT when auth is required",
    config: "authorization { user: alice, password: wonderland }",
    run: single("PUB foo 1\r\nx\r\n"),
    want: [AUTH_VIOLATION],
  },

  // ---- auth timeout ----
  {
    name: "no CONNECT within the auth timeout",
    config: "authorization { user: a, password: b, timeout: 0.5 }",
    run: single(""),
    want: ["-ERR 'Authentication Timeout'\r\n<closed>"],
  },
  {
    name: "a bcrypt check longer than the auth timeout: the right password is accepted",
    config: `authorization { users: [{ user: slow, password: "${SLOW_BCRYPT}" }], timeout: 0.2 }`,
    run: singlePong(connectLine({ user: "slow", pass: "slow-pw" })),
    want: ["PONG\r\n"],
  },
  {
    name: "a bcrypt check longer than the auth timeout: a wrong password is an authorization violation",
    config: `authorization { users: [{ user: slow, password: "${SLOW_BCRYPT}" }], timeout: 0.2 }`,
    run: single(connectLine({ user: "slow", pass: "wrong" }) + "PING\r\n"),
    want: [AUTH_VIOLATION],
  },

  // ---- permission violations ----
  {
    name: "publish allow/deny with wildcards",
    config: PERMS,
    run: singlePong(connectLine({ user: "pub", pass: "pw" }) +
      "PUB orders.new 1\r\nx\r\nPUB orders.secret 1\r\nx\r\nPUB orders.admin.x 1\r\nx\r\n" +
      "PUB metrics.cpu 1\r\nx\r\nPUB metrics.cpu.x 1\r\nx\r\nPUB other 1\r\nx\r\n"),
    want: [pubErr("orders.secret") + pubErr("orders.admin.x") + pubErr("metrics.cpu.x") + pubErr("other") + "PONG\r\n"],
  },
  {
    name: "publish violations with verbose on: -ERR instead of +OK",
    config: PERMS,
    run: singlePong(`CONNECT {"verbose":true,"pedantic":false,"user":"pub","pass":"pw"}\r\n` +
      "PUB orders.new 1\r\nx\r\nPUB other 1\r\nx\r\nSUB orders.secret 1\r\nSUB orders.x 2\r\n"),
    want: ["+OK\r\n+OK\r\n" + pubErr("other") + subErr("orders.secret") + "+OK\r\nPONG\r\n"],
  },
  {
    name: "subscribe allow/deny, wildcards and queue permissions",
    config: PERMS,
    run: singlePong(connectLine({ user: "pub", pass: "pw" }) +
      "SUB orders.new 1\r\nSUB orders.secret 2\r\nSUB orders.a.b 3\r\nSUB orders.> 4\r\nSUB updates.x.y 5\r\n" +
      "SUB work.x workers 6\r\nSUB work.x 7\r\nSUB work.x others 8\r\nSUB orders.new anyqueue 9\r\nSUB elsewhere 10\r\n"),
    want: [subErr("orders.secret") + subErr("orders.a.b") + subErr("work.x") + subErr("work.x", "others") +
      subErr("elsewhere") + "PONG\r\n"],
  },
  {
    name: "reserved reply subjects (_GR_., _R_.) and publishing to a gateway reply subject",
    config: PERMS,
    run: singlePong(connectLine({ user: "admin", pass: "pw" }) +
      "PUB foo _GR_.abc 1\r\nx\r\nPUB foo _R_.abc 1\r\nx\r\nPUB foo $GR.abc 1\r\nx\r\nPUB _R_.y 1\r\nx\r\nPUB _GR_.x 1\r\nx\r\n"),
    want: [`-ERR 'Permissions Violation for Publish with Reply of "_GR_.abc"'\r\n` +
      `-ERR 'Permissions Violation for Publish with Reply of "_R_.abc"'\r\n` +
      pubErr("_GR_.x") + "PONG\r\n"],
  },
  {
    name: "a wildcard subscription is not given a denied subject",
    config: PERMS,
    async run(port) {
      const sub = await raw(port);
      const admin = await raw(port);
      await untilPong(sub, connectLine({ user: "pub", pass: "pw" }) + "SUB orders.* 1\r\n");
      await untilPong(admin, connectLine({ user: "admin", pass: "pw" }) +
        "PUB orders.secret 6\r\nsecret\r\nPUB orders.public 6\r\npublic\r\n");
      await sub.expect("MSG orders.public 1 6\r\npublic\r\n");
      return [await untilPong(sub, ""), await untilPong(admin, "")];
    },
    want: ["PONG\r\nMSG orders.public 1 6\r\npublic\r\nPONG\r\n", "PONG\r\nPONG\r\n"],
  },
  {
    name: "allow_responses: one reply to a received request, then refused",
    config: PERMS,
    async run(port) {
      const requester = await raw(port);
      const responder = await raw(port);
      await untilPong(requester, connectLine({ user: "admin", pass: "pw" }) + "SUB rep.1 1\r\n");
      await untilPong(responder, connectLine({ user: "responder", pass: "pw" }) + "SUB svc.echo 1\r\n");
      await requester.send("PUB svc.echo rep.1 2\r\nhi\r\n");
      await responder.expect("MSG svc.echo 1 rep.1 2\r\nhi\r\n");
      const r = await untilPong(responder, "PUB rep.1 2\r\nok\r\nPUB rep.1 3\r\nok2\r\nPUB svc.x 1\r\nx\r\n");
      await requester.expect("MSG rep.1 1 2\r\nok\r\n");
      return [await untilPong(requester, ""), r];
    },
    want: [
      "PONG\r\nMSG rep.1 1 2\r\nok\r\nPONG\r\n",
      "PONG\r\nMSG svc.echo 1 rep.1 2\r\nhi\r\n" + pubErr("rep.1") + pubErr("svc.x") + "PONG\r\n",
    ],
  },
  {
    name: "no_auth_user: a client without credentials gets that user's permissions",
    config: `authorization { users: [
      { user: guest, password: g, permissions: { publish: "public.>", subscribe: "public.>" } }
      { user: admin, password: a }
    ] }
    no_auth_user: guest`,
    run: singlePong(connectLine({}) + "PUB public.x 1\r\nx\r\nPUB private.x 1\r\nx\r\nSUB private.> 1\r\nSUB public.> 2\r\n"),
    want: [pubErr("private.x") + subErr("private.>") + "PONG\r\n"],
  },
];

describe.each(topologies)("auth differential vs nats-server 2.9 (%s)", (topology: Topology) => {
  it.each(cases)("$name", async (c) => {
    const [real, mesh] = await Promise.all([
      startNatsServer(c.config),
      startBroker({ topology, config: c.config }),
    ]);
    cleanups.push(() => real.stop(), () => mesh.stop());
    const [fromReal, fromMesh] = await Promise.all([c.run(real.port), c.run(mesh.natsPort)]);
    expect(fromReal, "nats-server 2.9.10 (the reference) changed").toEqual(c.want);
    expect(fromMesh).toEqual(fromReal);
  });
});
