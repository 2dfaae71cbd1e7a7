// The router's end of a link that carries bytes: EdgeOps become calls on the routing core, on
// connections and subscriptions rebuilt from ids alone; what the router delivers to the edge
// goes back as batched RouterOps. Shared by the serialised test link and the gRPC link.
import type { Connection, MessageData, RouterLink, Subscriber } from "../link.js";
import { fromWire } from "./accounts.js";
import { Batcher } from "./batcher.js";
import { edgeFrames, routerFrames, WireError } from "./codec.js";
import type { Deliver, Draft, EdgeOp, Hello, RouterOp } from "./frames.js";

type Warn = (message: string) => void;

/** The routing core an end drives: the Router, or a mesh around it. */
export type RoutingCore = RouterLink & { forgetEdge?(edge: string): void };

/** What a network carrier adds: peer authentication and the router's name for HelloReply. */
export interface RouterEndHooks {
  routerId: string;
  /** undefined: accepted; else why not (the end then ignores the stream, the carrier ends it). */
  authenticate(hello: Hello): string | undefined;
  refused(reason: string): void;
  /** The Hello was accepted (the carrier keeps one stream per edge id). */
  accepted?(edgeId: string): void;
}

type Target = { connectionId: number; sid: string };

/** An edge's subscription as the router sees it; counts deliveries for UNSUB max here, where
 *  they are decided, so those still on the wire count too. */
class RemoteSubscriber implements Subscriber {
  delivered = 0;
  max = 0;
  constructor(readonly subject: string, readonly queue: string | undefined, readonly sid: string,
              readonly conn: Connection, readonly account: string, private readonly end: RouterEnd,
              readonly target: Target) {}

  deliver(subject: string, reply: string | undefined, msg: MessageData): void {
    this.delivered++;
    this.end.deliver(this, subject, reply, msg);
    if (this.max > 0 && this.delivered >= this.max) this.end.drop(this);
  }
}

/** The router's side: EdgeOps become Router calls on subscriptions rebuilt from ids. */
export class RouterEnd {
  sendTo: ((bytes: Buffer) => void) | undefined;
  private readonly out = new Batcher<RouterOp>((ops) => routerFrames.encode({ ops }), () => this.sendTo);
  private edgeId = "";
  /** The router's view of the edge's subscriptions, by connection id, then sid. */
  private readonly subs = new Map<number, Map<string, RemoteSubscriber>>();
  /** Before the Hello is accepted nothing is applied (always accepted without hooks). */
  private accepted: boolean;
  private closed = false;
  /** The Deliver op being filled: the router delivers one message to several subscriptions in a row. */
  private current: { msg: MessageData; subject: string; reply: string | undefined; op: Draft<Deliver> } | undefined;

  constructor(private readonly router: RoutingCore, private readonly warn: Warn,
              private readonly hooks?: RouterEndHooks) {
    this.accepted = hooks === undefined;
  }

  /** The edge's id from its Hello ("" before). */
  get edge(): string { return this.edgeId; }

  /** The stream ended: the edge's subscriptions and account version go (nothing more is applied). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const byCid of this.subs.values()) for (const sub of byCid.values()) this.router.unsubscribe(sub.account, sub);
    this.subs.clear();
    if (this.edgeId !== "") this.router.forgetEdge?.(this.edgeId);
  }

  receive(bytes: Buffer): void {
    if (this.closed) return;
    const frame = edgeFrames.decode(bytes);
    if (frame instanceof WireError) return this.warn(`serialised link: ${frame.message}`);
    for (const op of frame.ops) {
      if (this.closed) break;
      if (this.accepted) this.apply(op);
      else if (op.op === "hello") this.authenticate(op.hello!);
      else return this.refuse("the first operation was not a Hello");
    }
    this.current = undefined;
  }

  private authenticate(hello: Hello): void {
    const refusal = this.hooks!.authenticate(hello);
    if (refusal !== undefined) return this.refuse(refusal);
    this.accepted = true;
    this.apply({ op: "hello", hello });
  }

  /** Nothing more is applied; the carrier ends the stream. */
  private refuse(reason: string): void {
    this.closed = true;
    this.hooks!.refused(reason);
  }

  private apply(op: EdgeOp): void {
    switch (op.op) {
      case "hello":
        this.edgeId = op.hello!.edgeId;
        this.hooks?.accepted?.(this.edgeId);
        if (op.hello!.accounts) this.router.configureAccounts(this.edgeId, fromWire(op.hello!.accounts));
        this.out.push({ op: "helloReply", helloReply: {
          routerId: this.hooks?.routerId ?? "", accountsVersion: op.hello!.accounts?.version ?? "",
        } });
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
        const sub = new RemoteSubscriber(i.subject, i.queue === "" ? undefined : i.queue, ref.sid, conn, i.account, this, target);
        const previous = byCid.get(ref.sid);
        if (previous) this.router.unsubscribe(previous.account, previous); // a replay names it again
        byCid.set(ref.sid, sub);
        this.router.subscribe(i.account, sub);
        return;
      }
      case "unsubscribe": {
        const u = op.unsubscribe!;
        const byCid = this.subs.get(u.sub!.connectionId);
        const sub = byCid?.get(u.sub!.sid);
        if (!sub) return;
        if (u.max > 0 && u.max > sub.delivered) {
          sub.max = u.max;
          return;
        }
        this.drop(sub);
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

  private readonly forgetCurrent = (): void => { this.current = undefined; };

  /** Removes one subscription (UNSUB, or its max reached). */
  drop(sub: RemoteSubscriber): void {
    const byCid = this.subs.get(sub.conn.cid);
    if (byCid?.get(sub.sid) !== sub) return;
    byCid.delete(sub.sid);
    if (byCid.size === 0) this.subs.delete(sub.conn.cid);
    this.router.unsubscribe(sub.account, sub);
  }

  /** Queues a delivery to one subscription, joining the Deliver op of the same message. */
  deliver(sub: RemoteSubscriber, subject: string, reply: string | undefined, msg: MessageData): void {
    const { account, target } = sub;
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
    // Only the deliveries of one routing call join: a later one (another edge's publish of the
    // same bytes, the shared no-responders status) may find this op already sent.
    if (this.current === undefined) queueMicrotask(this.forgetCurrent);
    this.current = { msg, subject, reply, op };
    this.out.push({ op: "deliver", deliver: op });
  }
}

