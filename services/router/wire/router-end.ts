// The router's end of a link that carries bytes: EdgeOps become calls on the routing core, on
// connections and subscriptions rebuilt from ids alone; what the router delivers to the edge
// goes back as batched RouterOps. Shared by the serialised test link and the gRPC link.
import type { MessageData, RouterLink, Subscriber } from "../link.js";
import { fromWire } from "./accounts.js";
import { Batcher } from "./batcher.js";
import { edgeFrames, routerFrames, WireError } from "./codec.js";
import type { Deliver, Draft, EdgeOp, RouterOp } from "./frames.js";

type Warn = (message: string) => void;

/** The router's side: EdgeOps become Router calls on subscriptions rebuilt from ids. */
export class RouterEnd {
  sendTo: ((bytes: Buffer) => void) | undefined;
  private readonly out = new Batcher<RouterOp>((ops) => routerFrames.encode({ ops }), () => this.sendTo);
  private edgeId = "";
  /** The router's view of the edge's subscriptions, by connection id, then sid. */
  private readonly subs = new Map<number, Map<string, Subscriber>>();
  /** The Deliver op being filled: the router delivers one message to several subscriptions in a row. */
  private current: { msg: MessageData; subject: string; reply: string | undefined; op: Draft<Deliver> } | undefined;

  constructor(/** The routing core it drives: the Router, or a mesh around it. */
              private readonly router: RouterLink, private readonly warn: Warn) {}

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

