// The edge's end of a link that carries bytes: RouterLink calls become EdgeOps, batched per
// event-loop turn; RouterOps (deliveries, replies) reach the subscription handles by ids. The
// serialised test link and the gRPC link differ only in what carries the bytes (`sendTo`).
import type { AccountSet, Connection, MessageData, PublishOptions, RouterLink, RouterStats, Subscriber } from "../link.js";
import { toWire } from "./accounts.js";
import { Batcher } from "./batcher.js";
import { edgeFrames, routerFrames, WireError } from "./codec.js";
import type { Deliver, Draft, EdgeOp, Message } from "./frames.js";

type Warn = (message: string) => void;

/** The edge's side: RouterLink calls become EdgeOps; Deliver ops reach the subscription handles by ids. */
export class EdgeEnd implements RouterLink {
  readonly sessions = undefined;
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

