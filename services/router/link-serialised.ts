// The serialised topology's link, for tests: edge and router in one process, but every call
// crosses as bytes, encoded with the wire codec (EdgeFrame / RouterFrame, batched per event
// loop turn), and every delivery and reply arrives on a later turn. The router side rebuilds
// connections and subscriptions from ids alone, so the integration suite run against it shows
// what the edge still assumes of a synchronous, shared-memory router (the gRPC link has the
// same shape). Order is kept: one FIFO each way, as one gRPC stream per edge keeps it.
import type { ExportConfig, ImportConfig } from "../common/config/options.js";
import type {
  AccountSet, Connection, MessageData, PublishOptions, RouterAccount, RouterLink, RouterStats, Subscriber,
} from "./link.js";
import type { Router } from "./router.js";
import { edgeFrames, routerFrames, WireError } from "./wire/codec.js";
import {
  ExportKind, ResponseType, type AccountSet as WireAccountSet, type Deliver, type Draft, type EdgeOp,
  type Export, type Import, type Message, type RouterOp,
} from "./wire/frames.js";

type Warn = (message: string) => void;

/** One edge's link to `router` through bytes. */
export function createSerialisedLink(router: Router, warn: Warn = () => {}): RouterLink & { close(): void } {
  const routerEnd = new RouterEnd(router, warn);
  const edgeEnd = new EdgeEnd(warn);
  edgeEnd.sendTo = (bytes) => routerEnd.receive(bytes);
  routerEnd.sendTo = (bytes) => edgeEnd.receive(bytes);
  return edgeEnd;
}

/** Ops queued this turn, sent as one frame on the next. */
class Batcher<Op> {
  private ops: Draft<Op>[] = [];
  private scheduled = false;
  constructor(private readonly encode: (ops: Draft<Op>[]) => Buffer, private readonly send: () => ((bytes: Buffer) => void) | undefined) {}

  push(op: Draft<Op>): void {
    this.ops.push(op);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      const ops = this.ops;
      this.ops = [];
      const bytes = this.encode(ops);
      // The receiver decodes on a later turn still: nothing crosses within the sender's call.
      setImmediate(() => this.send()?.(bytes));
    });
  }
}

/** The edge's side: RouterLink calls become EdgeOps; Deliver ops reach the subscription handles by ids. */
class EdgeEnd implements RouterLink {
  sendTo: ((bytes: Buffer) => void) | undefined;
  private readonly out = new Batcher<EdgeOp>((ops) => edgeFrames.encode({ ops }), () => this.sendTo);
  /** Subscription handles by connection id, then sid. */
  private readonly handles = new Map<number, Map<string, Subscriber>>();
  private readonly statsWaits = new Map<number, (stats: RouterStats) => void>();
  /** sync() callbacks in the order of their Ping ops (the router answers in order). */
  private readonly syncWaits: (() => void)[] = [];
  private pingSeq = 0;
  private nextCorrelation = 1;
  private hello = false;
  private closed = false;

  constructor(private readonly warn: Warn) {}

  subscribe(account: string, sub: Subscriber): void {
    let byCid = this.handles.get(sub.conn.cid);
    if (!byCid) this.handles.set(sub.conn.cid, byCid = new Map());
    byCid.set(sub.sid, sub);
    this.out.push({ op: "interest", interest: {
      account, subject: sub.subject, queue: sub.queue ?? "", weightDelta: 1,
      sub: { connectionId: sub.conn.cid, sid: sub.sid }, noEcho: !sub.conn.echo,
    } });
  }

  unsubscribe(account: string, sub: Subscriber): void {
    this.out.push({ op: "unsubscribe", unsubscribe: { account, sub: { connectionId: sub.conn.cid, sid: sub.sid } } });
    // Messages the router matched before the UNSUB are still on their way (nats-server delivers
    // them): the handle goes once the router has answered everything before it.
    this.sync(() => {
      const byCid = this.handles.get(sub.conn.cid);
      if (byCid?.get(sub.sid) !== sub) return; // the sid was reused meanwhile
      byCid.delete(sub.sid);
      if (byCid.size === 0) this.handles.delete(sub.conn.cid);
    });
  }

  publish(account: string, subject: string, reply: string | undefined, msg: MessageData, origin: Connection,
          options?: PublishOptions): void {
    // The bytes are only valid during the call: the op keeps copies until the frame is encoded.
    const message: Draft<Message> = {
      subject, reply: reply ?? "",
      headers: Buffer.from(msg.buf.subarray(msg.start, msg.start + msg.hdrLen)),
      payload: Buffer.from(msg.buf.subarray(msg.start + msg.hdrLen, msg.end)),
    };
    this.out.push({ op: "publish", publish: {
      account, message, originConnection: origin.cid, noResponders: options?.noResponders ?? false,
    } });
  }

  configureAccounts(edge: string, set: AccountSet): void {
    const accounts = toWire(set);
    if (!this.hello) {
      this.hello = true;
      this.out.push({ op: "hello", hello: { edgeId: edge, accounts } });
    } else {
      this.out.push({ op: "accounts", accounts: { accounts } });
    }
  }

  sync(done: () => void): void {
    this.syncWaits.push(done);
    this.out.push({ op: "ping", ping: { seq: ++this.pingSeq } });
  }

  stats(): Promise<RouterStats> {
    const correlationId = this.nextCorrelation++;
    return new Promise((resolve) => {
      this.statsWaits.set(correlationId, resolve);
      this.out.push({ op: "statsQuery", statsQuery: { correlationId } });
    });
  }

  close(): void {
    this.closed = true;
  }

  receive(bytes: Buffer): void {
    if (this.closed) return;
    const frame = routerFrames.decode(bytes);
    if (frame instanceof WireError) return this.warn(`serialised link: ${frame.message}`);
    for (const op of frame.ops) {
      if (op.op === "deliver") this.deliver(op.deliver!);
      else if (op.op === "pong") this.syncWaits.shift()?.();
      else if (op.op === "statsReply") {
        const r = op.statsReply!;
        this.statsWaits.get(r.correlationId)?.(r.stats!);
        this.statsWaits.delete(r.correlationId);
      }
    }
  }

  private readonly data: MessageData = { buf: Buffer.alloc(0), start: 0, end: 0, hdrLen: 0 };

  private deliver(d: Deliver): void {
    const m = d.message!;
    const data = this.data;
    data.buf = m.headers.length === 0 ? m.payload : Buffer.concat([m.headers, m.payload]);
    data.start = 0;
    data.end = data.buf.length;
    data.hdrLen = m.headers.length;
    const reply = m.reply === "" ? undefined : m.reply;
    for (const t of d.targets) this.handles.get(t.connectionId)?.get(t.sid)?.deliver(m.subject, reply, data);
  }
}

/** The router's side: EdgeOps become Router calls on subscriptions rebuilt from ids. */
class RouterEnd {
  sendTo: ((bytes: Buffer) => void) | undefined;
  private readonly out = new Batcher<RouterOp>((ops) => routerFrames.encode({ ops }), () => this.sendTo);
  private edgeId = "";
  /** The router's view of the edge's subscriptions, by connection id, then sid. */
  private readonly subs = new Map<number, Map<string, Subscriber>>();
  /** The Deliver op being filled: the router delivers one message to several subscriptions in a row. */
  private current: { msg: MessageData; subject: string; reply: string | undefined; op: Draft<Deliver> } | undefined;

  constructor(private readonly router: Router, private readonly warn: Warn) {}

  receive(bytes: Buffer): void {
    const frame = edgeFrames.decode(bytes);
    if (frame instanceof WireError) return this.warn(`serialised link: ${frame.message}`);
    for (const op of frame.ops) this.apply(op);
    this.current = undefined;
  }

  private apply(op: EdgeOp): void {
    switch (op.op) {
      case "hello":
        this.edgeId = op.hello!.edgeId;
        if (op.hello!.accounts) this.router.configureAccounts(this.edgeId, fromWire(op.hello!.accounts));
        return;
      case "accounts":
        if (op.accounts!.accounts) this.router.configureAccounts(this.edgeId, fromWire(op.accounts!.accounts));
        return;
      case "interest": {
        const i = op.interest!;
        const ref = i.sub!;
        if (i.weightDelta <= 0) return; // aggregated interest is the cluster's; this edge names subscriptions
        let byCid = this.subs.get(ref.connectionId);
        if (!byCid) this.subs.set(ref.connectionId, byCid = new Map());
        const conn = { edgeId: this.edgeId, cid: ref.connectionId, echo: !i.noEcho };
        const target = { connectionId: ref.connectionId, sid: ref.sid };
        const sub: Subscriber = {
          subject: i.subject, queue: i.queue === "" ? undefined : i.queue, sid: ref.sid, conn,
          deliver: (subject, reply, msg) => this.deliver(i.account, target, subject, reply, msg),
        };
        byCid.set(ref.sid, sub);
        this.router.subscribe(i.account, sub);
        return;
      }
      case "unsubscribe": {
        const u = op.unsubscribe!;
        const byCid = this.subs.get(u.sub!.connectionId);
        const sub = byCid?.get(u.sub!.sid);
        if (!sub) return;
        byCid!.delete(u.sub!.sid);
        if (byCid!.size === 0) this.subs.delete(u.sub!.connectionId);
        this.router.unsubscribe(u.account, sub);
        return;
      }
      case "publish": {
        const p = op.publish!;
        const m = p.message!;
        // Decoded bytes are views of this frame, which nothing reuses: no copy needed.
        const buf = m.headers.length === 0 ? m.payload : Buffer.concat([m.headers, m.payload]);
        const msg: MessageData = { buf, start: 0, end: buf.length, hdrLen: m.headers.length };
        const origin = { edgeId: this.edgeId, cid: p.originConnection, echo: true };
        this.router.publish(p.account, m.subject, m.reply === "" ? undefined : m.reply, msg, origin,
          p.noResponders ? { noResponders: true } : undefined);
        return;
      }
      case "statsQuery": {
        const correlationId = op.statsQuery!.correlationId;
        void this.router.stats().then((stats) => this.out.push({ op: "statsReply", statsReply: { correlationId, stats } }));
        return;
      }
      case "ping":
        // Ops are applied in order and their deliveries queued before this: a barrier.
        this.out.push({ op: "pong", pong: { seq: op.ping!.seq } });
        return;
      default:
        return; // session ops: not carried by this link yet
    }
  }

  private deliver(account: string, target: { connectionId: number; sid: string }, subject: string,
                  reply: string | undefined, msg: MessageData): void {
    const c = this.current;
    if (c && c.msg === msg && c.subject === subject && c.reply === reply) {
      c.op.targets!.push(target);
      return;
    }
    const op: Draft<Deliver> = {
      account, targets: [target],
      message: {
        subject, reply: reply ?? "",
        headers: msg.buf.subarray(msg.start, msg.start + msg.hdrLen),
        payload: msg.buf.subarray(msg.start + msg.hdrLen, msg.end),
      },
    };
    this.current = { msg, subject, reply, op };
    this.out.push({ op: "deliver", deliver: op });
  }
}

// ---- accounts as wire data ----

const KIND = { stream: ExportKind.Stream, service: ExportKind.Service } as const;
const RESPONSE = { Singleton: ResponseType.Singleton, Stream: ResponseType.Stream, Chunked: ResponseType.Chunked } as const;
const RESPONSE_NAME = ["Singleton", "Stream", "Chunked"] as const;

function toWire(set: AccountSet): Draft<WireAccountSet> {
  return {
    version: set.version,
    accounts: set.accounts.map((a) => ({
      name: a.name,
      exports: a.exports.map((e): Draft<Export> => ({
        kind: KIND[e.kind], subject: e.subject, accounts: e.accounts ?? [],
        responseType: RESPONSE[e.responseType ?? "Singleton"], tokenRequired: e.tokenRequired ?? false,
      })),
      imports: a.imports.map((i): Draft<Import> => ({
        kind: KIND[i.kind], account: i.account, subject: i.subject, to: i.to ?? "", prefix: i.prefix ?? "",
        activation: i.activation && { subject: i.activation.subject, expiresAtMs: i.activation.expiresAt ?? 0 },
      })),
    })),
  };
}

function fromWire(set: WireAccountSet): AccountSet {
  const kind = (k: ExportKind) => (k === ExportKind.Service ? "service" : "stream");
  const accounts = set.accounts.map((a): RouterAccount => ({
    name: a.name,
    exports: a.exports.map((e): ExportConfig => ({
      kind: kind(e.kind), subject: e.subject,
      // An empty list is public, as in the .proto.
      accounts: e.accounts.length === 0 ? undefined : e.accounts,
      responseType: e.kind === ExportKind.Service ? RESPONSE_NAME[e.responseType] : undefined,
      tokenRequired: e.tokenRequired || undefined,
    })),
    imports: a.imports.map((i): ImportConfig => ({
      kind: kind(i.kind), account: i.account, subject: i.subject,
      to: i.to === "" ? undefined : i.to, prefix: i.prefix === "" ? undefined : i.prefix,
      activation: i.activation && {
        subject: i.activation.subject, expiresAt: i.activation.expiresAtMs === 0 ? undefined : i.activation.expiresAtMs,
      },
    })),
  }));
  return { version: set.version, accounts };
}
