// The system account's services and events, as nats-server 2.9 offers them to its users (the
// `nats server ...` commands, nats-box): monitoring reports on request ($SYS.REQ.SERVER.PING,
// $SYS.REQ.SERVER.PING.<KIND>, $SYS.REQ.SERVER.<id>.<KIND>), connect and disconnect advisories
// ($SYS.ACCOUNT.<acc>.CONNECT|DISCONNECT) and the shutdown event. It talks to the system
// account's subscribers through the router link, like any client.
import { randomBytes } from "node:crypto";
import { GLOBAL_ACCOUNT } from "../common/config/options.js";
import type { Connection, Subscriber } from "../router/link.js";
import type { ConnectionView } from "./connection-view.js";
import {
  clientType, connz, DEFAULT_CONNZ, DEFAULT_SUBSZ, healthz, pageLimit, statsz, subsz, varz,
  type ConnzOptions, type SubszOptions,
} from "./monitor/reports.js";
import { NATS_COMPAT_VERSION, type SystemContext } from "./context.js";

const NS_PER_MS = 1_000_000;

type Body = Record<string, unknown>;
/** Reports that reach the router (its counters) are asynchronous. */
type Report = (edge: SystemContext, body: Body) => Record<string, unknown> | Promise<Record<string, unknown>>;

/** The reports a server answers under $SYS.REQ.SERVER.PING.<KIND> and $SYS.REQ.SERVER.<id>.<KIND>. */
const REPORTS: Record<string, Report> = {
  VARZ: (e) => varz(e, e.httpInfo?.()),
  CONNZ: (e, b) => connz(e, connzOptions(b)),
  SUBSZ: (e, b) => subsz(e, subszOptions(b)),
  HEALTHZ: (e) => healthz(e),
};

/** CONNZ of one account, whatever account the request names. */
const accountConnz = (account: string): Report => (e, b) => connz(e, { ...connzOptions(b), account });

class BadRequest extends Error {}

export class SystemAccount implements Connection {
  /** Edge connection ids start at 1: 0 is the system account's. */
  readonly cid = 0;
  readonly edgeId: string;
  readonly echo = false;
  private readonly subs: { account: string; sub: Subscriber }[] = [];
  /** Accounts whose clients may ask for their own connections (see serveAccount). */
  private readonly served = new Set<string>();
  /** Messages sent, numbered as nats-server numbers them (ServerInfo.seq). */
  private seq = 0;
  private running = false;

  constructor(private readonly edge: SystemContext, readonly account: string) {
    this.edgeId = edge.serverId;
  }

  start(): void {
    this.running = true;
    this.on("$SYS.REQ.SERVER.PING", (reply, body) => this.statszRequest(reply, body));
    const direct = `$SYS.REQ.SERVER.${this.edge.serverId}`;
    for (const prefix of ["$SYS.REQ.SERVER.PING", direct]) {
      this.on(`${prefix}.STATSZ`, (reply, body) => this.statszRequest(reply, body));
      for (const [kind, report] of Object.entries(REPORTS)) {
        this.on(`${prefix}.${kind}`, (reply, body) => this.reportRequest(reply, body, report));
      }
    }
    this.on("$SYS.REQ.ACCOUNT.*.CONNZ", (reply, body, subject) =>
      this.reportRequest(reply, body, accountConnz(subject.split(".")[3])));
  }

  /**
   * nats-server imports $SYS.REQ.SERVER.PING.CONNZ and $SYS.REQ.ACCOUNT.PING.CONNZ into every
   * other account: its clients get their own account's connections. Served from the account's
   * first client on, which is before any of its clients can ask.
   */
  private serveAccount(account: string): void {
    if (account === this.account || this.served.has(account)) return;
    this.served.add(account);
    for (const subject of ["$SYS.REQ.SERVER.PING.CONNZ", "$SYS.REQ.ACCOUNT.PING.CONNZ"]) {
      this.on(subject, (reply, body) => this.reportRequest(reply, body, accountConnz(account), account), account);
    }
  }

  /** Announces the shutdown and stops answering; later disconnects send no events (as nats-server). */
  stop(): void {
    if (!this.running) return;
    this.send(`$SYS.SERVER.${this.edge.serverId}.SHUTDOWN`, this.serverInfo());
    this.running = false;
    for (const { account, sub } of this.subs.splice(0)) this.edge.link.unsubscribe(account, sub);
    this.served.clear();
  }

  connected(c: ConnectionView): void {
    if (!this.running) return;
    this.serveAccount(c.account || GLOBAL_ACCOUNT);
    if (isGlobal(c)) return;
    this.send(`$SYS.ACCOUNT.${c.account}.CONNECT`, {
      type: "io.nats.server.advisory.v1.client_connect",
      id: eventId(),
      timestamp: new Date().toISOString(),
      server: this.serverInfo(),
      client: clientInfo(c, false),
    });
  }

  disconnected(c: ConnectionView): void {
    if (!this.running || isGlobal(c)) return;
    this.send(`$SYS.ACCOUNT.${c.account}.DISCONNECT`, {
      type: "io.nats.server.advisory.v1.client_disconnect",
      id: eventId(),
      timestamp: (c.stopTime ?? new Date()).toISOString(),
      server: this.serverInfo(),
      client: clientInfo(c, true),
      // From the client's side: what it sent is what the server received from it.
      sent: { msgs: c.inMsgs, bytes: c.inBytes },
      received: { msgs: c.outMsgs, bytes: c.outBytes },
      reason: c.closeReason ?? "",
    });
  }

  private on(subject: string, handle: (reply: string | undefined, body: string, subject: string) => void,
             account = this.account): void {
    const sub: Subscriber = {
      subject, queue: undefined, sid: String(this.subs.length + 1), conn: this,
      deliver: (to, reply, msg) => {
        // `msg` is only valid during the call; answer after the publish that brought it.
        const body = msg.buf.toString("utf8", msg.start + msg.hdrLen, msg.end);
        queueMicrotask(() => { if (this.running) handle(reply, body, to); });
      },
    };
    this.subs.push({ account, sub });
    this.edge.link.subscribe(account, sub);
  }

  /** With no reply subject, the answer goes to the server's STATSZ subject (nats-server). */
  private statszRequest(reply: string | undefined, text: string): void {
    void this.answer(reply ?? `$SYS.SERVER.${this.edge.serverId}.STATSZ`, text, async () => ({ statsz: await statsz(this.edge) }));
  }

  private reportRequest(reply: string | undefined, text: string, report: Report, account = this.account): void {
    if (reply !== undefined) void this.answer(reply, text, async (body) => ({ data: await report(this.edge, body) }), account);
  }

  /** `{server, <what respond returns>}`, or `{server, error: {code, description}}`; nothing
   *  when the request's filter leaves this server out. */
  private async answer(to: string, text: string, respond: (body: Body) => Promise<Record<string, unknown>>,
                       account = this.account): Promise<void> {
    let response: Record<string, unknown>;
    try {
      const body = parseBody(text);
      if (this.filteredOut(body)) return;
      response = await respond(body);
    } catch (err) {
      const code = err instanceof BadRequest ? 400 : 500;
      response = { error: { code, description: (err as Error).message } };
    }
    // The system account may have stopped while the router answered.
    if (this.running) this.send(to, { server: this.serverInfo(), ...response }, account);
  }

  /** nats-server's EventFilterOptions: a request may name the servers that should answer. */
  private filteredOut(body: Body): boolean {
    const name = optional(body, "server_name", "string"), host = optional(body, "host", "string");
    if (name && !this.edge.serverName.includes(name)) return true;
    if (host && !this.edge.options.host.includes(host)) return true;
    // No cluster, tags or JetStream domain here: a filter on any of them matches nothing.
    if (optional(body, "cluster", "string") || optional(body, "domain", "string")) return true;
    const tags = body.tags;
    return Array.isArray(tags) && tags.length > 0;
  }

  private serverInfo(): Record<string, unknown> {
    return {
      name: this.edge.serverName,
      host: this.edge.options.host,
      id: this.edge.serverId,
      ver: NATS_COMPAT_VERSION,
      seq: ++this.seq, // one ServerInfo per message sent
      jetstream: false,
      time: new Date().toISOString(),
    };
  }

  private send(subject: string, message: unknown, account = this.account): void {
    if (!this.running) return;
    const data = Buffer.from(JSON.stringify(message));
    this.edge.link.publish(account, subject, undefined, { buf: data, start: 0, end: data.length, hdrLen: 0 }, this);
  }
}

/** The request's JSON options; an empty body means none. */
function parseBody(text: string): Body {
  if (text.length === 0) return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new BadRequest((err as Error).message);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new BadRequest("json: request options must be an object");
  return v as Body;
}

function isGlobal(c: ConnectionView): boolean {
  return !c.account || c.account === GLOBAL_ACCOUNT;
}

/** nats-server's ClientInfo, in its field order. */
function clientInfo(c: ConnectionView, closed: boolean): Record<string, unknown> {
  const info: Record<string, unknown> = { start: c.startTime.toISOString(), host: c.remoteAddress, id: c.cid, acc: c.account };
  if (c.userName) info.user = c.userName;
  if (c.name) info.name = c.name;
  if (c.lang) info.lang = c.lang;
  if (c.version) info.ver = c.version;
  if (closed && c.rttMs > 0) info.rtt = Math.round(c.rttMs * NS_PER_MS);
  if (closed) info.stop = (c.stopTime ?? new Date()).toISOString();
  info.kind = "Client";
  info.client_type = clientType(c);
  if (c.mqttClientId) info.client_id = c.mqttClientId;
  return info;
}

/** A unique event id, 22 characters like nats-server's NUIDs. */
function eventId(): string {
  return randomBytes(16).toString("base64url").slice(0, 22);
}

/** CONNZ request options (nats-server's ConnzOptions JSON). */
function connzOptions(b: Body): ConnzOptions {
  const state = optional(b, "state", "number");
  const detail = optional(b, "subscriptions_detail", "boolean"), list = optional(b, "subscriptions", "boolean");
  return {
    ...DEFAULT_CONNZ,
    state: state === 1 ? "closed" : state === 2 ? "all" : "open",
    cid: optional(b, "cid", "number") || undefined,
    account: optional(b, "acc", "string") || undefined,
    user: optional(b, "user", "string") || undefined,
    sort: optional(b, "sort", "string") || DEFAULT_CONNZ.sort,
    offset: Math.max(0, optional(b, "offset", "number") ?? 0),
    limit: pageLimit(optional(b, "limit", "number")),
    subs: detail ? "detail" : list ? "list" : false,
    auth: optional(b, "auth", "boolean") ?? false,
  };
}

/** SUBSZ request options (nats-server's SubszOptions JSON). */
function subszOptions(b: Body): SubszOptions {
  return {
    ...DEFAULT_SUBSZ,
    subs: optional(b, "subscriptions", "boolean") ?? false,
    test: optional(b, "test", "string") || undefined,
    account: optional(b, "account", "string") || undefined,
    offset: Math.max(0, optional(b, "offset", "number") ?? 0),
    limit: pageLimit(optional(b, "limit", "number")),
  };
}

type JsonType = { string: string; number: number; boolean: boolean };

/** A field of the request, which must have the given JSON type when present (else 400). */
function optional<K extends keyof JsonType>(b: Body, key: string, type: K): JsonType[K] | undefined {
  const v = b[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== type) throw new BadRequest(`json: cannot unmarshal ${typeof v} into field ${key} of type ${type}`);
  return v as JsonType[K];
}
