// One router↔router stream, whichever side dialed: the hello and its credential check, MeshOps
// batched per event-loop turn, 'drain' honoured with a bounded backlog, pings that detect a
// dead peer and measure the RTT, and the peer's interest applied to the router.
import type { Duplex } from "node:stream";
import { OriginCache, type Carrier, type Connection, type MessageData, type QueuePick } from "../link.js";
import type { RemoteSubscriber, Router } from "../router.js";
import { Batcher, FRAME_STATS } from "../wire/batcher.js";
import { addForwardQueue, MeshFrameCursor, messageData, Next, writeForwardOf, writeMeshOp } from "../wire/fast.js";
import { FrameQueue } from "../wire/slices.js";
import type { Draft, InterestEntry, InterestUpdate, MeshHello, MeshOp } from "../wire/frames.js";
import type { BarrierWaiter } from "./barrier.js";
import { RemoteInterest, UPDATE_ENTRIES, type InterestUpdateData } from "./interest.js";

/** Default for LinkOwner.maxBacklogBytes. */
export const MAX_BACKLOG_BYTES = 64 * 1024 * 1024;
export const PING_INTERVAL_MS = 250;
/** Silence after which the peer is dead: with the ping interval, detected within 2 s. */
export const DEAD_AFTER_MS = 1_500;
/** Entries per InterestSnapshot chunk, as per update. */
const SNAPSHOT_CHUNK = UPDATE_ENTRIES;
/** A frame leaves once its ops reach about this size, well below gRPC's default 4 MB message
 *  limit: only a single message larger than that (max_payload above 4 MB) needs the server's
 *  limit raised (meshChannelOptions). */
const FRAME_BYTES = 1024 * 1024;
/** About what one interest entry adds to a frame. */
const ENTRY_BYTES = 32;
const VERSION = "meshbroker/0.1";

/** What a link needs of the mesh that owns it. */
export interface LinkOwner {
  readonly id: string;
  readonly router: Router;
  /** The hello to send to router `peerId` ("": not known yet): id, credential, current
   *  interest seq, the last forward id applied from that router. */
  hello(peerId: string): Draft<MeshHello>;
  /** Is the hello's credential the cluster's? */
  /** undefined when the hello's credential is accepted, else why not. */
  authorize(hello: MeshHello): string | undefined;
  /** The hello exchange succeeded: the link carries interest and forwards from now. */
  up(link: PeerLink): void;
  /** The link ended (after up or not). */
  down(link: PeerLink, reason: string): void;
  /** This router's interest now, for a snapshot. */
  snapshot(): InterestUpdateData;
  /** Sends the interest changed this turn now, ahead of a forward: a reply to the message must
   *  find the subscription its requester made just before publishing (nats.js's request inbox),
   *  as nats-server's RS+ travels ahead of the RMSG on the same route. */
  interestFirst(): void;
  /** Increases with each publish the router starts: forwards of one publish share a Forward. */
  readonly generation: number;
  readonly origin: Connection | undefined;
  /** The current publish is an MQTT message with the retain flag. */
  readonly retain: boolean;
  /** The current publish's id (0: none). */
  readonly msgId: number;
  /** Past this many bytes waiting for 'drain', the peer is a slow consumer: the link closes
   *  (its queued forwards are lost, as nats-server drops a slow route) and is dialed again,
   *  with a fresh interest snapshot. */
  readonly maxBacklogBytes: number;
  warn(message: string): void;
  /** A barrier's ping on this link was answered, or the link went away (barrier.ts). */
  passed(waiter: BarrierWaiter): void;
  /** The peer's interest is complete on a link whose peer applied our forwards up to id
   *  `afterId` before (its hello): send again what it missed since. */
  replay(link: PeerLink, afterId: number): void;
}

/** A peer's entry in the router's sublist: delivering to it queues a forward to the peer. */
class PeerEntry implements RemoteSubscriber {
  readonly sid = "";
  readonly queue: string | undefined;
  constructor(readonly link: PeerLink, readonly account: string, readonly subject: string, queue: string,
              public weight: number, readonly conn: Connection) {
    this.queue = queue === "" ? undefined : queue;
  }

  deliver(subject: string, reply: string | undefined, msg: MessageData): void {
    this.link.forward(this.account, subject, reply, msg, this.queue);
  }
}

type State = "hello" | "up" | "closed";

export class PeerLink {
  state: State = "hello";
  /** The peer's router id, once its hello arrived (or the one dialed). */
  peerId: string;
  rttMs = 0;
  backlogBytes = 0;
  /** When the link came up (ms), and the messages and frames it carried (/routez, metrics). */
  upSince = 0;
  inMsgs = 0;
  outMsgs = 0;
  inBytes = 0;
  outBytes = 0;
  /** Frames go to a grpc-js stream, which copies each before it calls back (grpc/writer.ts),
   *  through write(): its 'drain' and backlog, not a FrameWriter's (routers do not stall). */
  private readonly carrier: Carrier = { write: (bytes) => this.write(bytes) };
  private readonly out = new Batcher<MeshOp>(writeMeshOp, () => this.carrier, FRAME_STATS["router→router"],
    { givesBack: true, maxBytes: FRAME_BYTES });
  private readonly backlog: Buffer[] = [];
  private writable = true;
  private lastHeard = Date.now();
  private lastTick = Date.now();
  private pingSeq = 0;
  /** Barriers waiting for the pong of their ping, in ping order (pongs come back in order). */
  private readonly barrierSeqs: number[] = [];
  private readonly barrierWaiters: BarrierWaiter[] = [];
  private readonly timer: NodeJS.Timeout;
  private readonly interest: RemoteInterest<PeerEntry>;
  /** The Forward written last (forward()): its publish, message, and where its queue names end
   *  in the frame, while `out.last` is still `fwdLast`. */
  private fwdGeneration = -1;
  private fwdLast = -1;
  private fwdAccount = "";
  private fwdSubject = "";
  private fwdReply: string | undefined;
  private fwdQueuesEnd = 0;
  private readonly conn: Connection;
  private readonly origins = new OriginCache();

  /** The account set version the peer serves (its MeshHello). */
  peerAccountsVersion = "";
  /** The id of the last Forward with an id applied from the peer (its hello on the next link
   *  names it, so the peer sends again what came later). */
  lastForwardId = 0;
  /** The peer's hello named the last of our forwards it applied: once its interest snapshot is
   *  complete, what came later is sent again (0: nothing to send). */
  private replayAfter = 0;

  constructor(private readonly owner: LinkOwner, private readonly stream: Duplex, readonly dialed: boolean, peerId = "",
              /** The other end's address (host:port), for logs. */
              readonly remote = "") {
    this.peerId = peerId;
    this.conn = { edgeId: `mesh:${peerId}`, cid: 0, echo: true };
    const router = owner.router;
    this.interest = new RemoteInterest<PeerEntry>({
      add: (e) => {
        const entry = new PeerEntry(this, e.account, e.subject, e.queue, e.weight, this.conn);
        router.addRemote(e.account, entry);
        return entry;
      },
      setWeight: (entry, w) => { entry.weight = w; },
      remove: (e, entry) => router.removeRemote(e.account, entry),
    });
    stream.on("data", (bytes: Buffer) => this.receive(bytes));
    stream.on("drain", () => this.drained());
    stream.on("error", (err: Error) => this.close(`stream error: ${err.message}`));
    stream.on("end", () => this.close("stream ended"));
    stream.on("close", () => this.close("stream closed"));
    this.timer = setInterval(() => this.tick(), PING_INTERVAL_MS).unref();
    if (dialed) this.out.push({ op: "hello", hello: owner.hello(peerId) });
  }

  /** Entries of the peer's interest held in the router. */
  get interestEntries(): number { return this.interest.size; }
  get interestSeq(): number { return this.interest.seq; }
  get framesIn(): number { return this.frames.framesIn; }
  get opsIn(): number { return this.frames.opsIn; }
  get framesOut(): number { return this.out.framesSent; }
  get opsOut(): number { return this.out.opsSent; }

  /** A local interest update, for this peer. */
  sendInterest(update: InterestUpdateData): void {
    if (this.state === "up") this.out.push({ op: "interest", interest: update }, update.entries.length * ENTRY_BYTES);
  }

  /** Queues the message for the peer: one Forward per message, naming every queue group picked
   *  here (later groups of the same message join the Forward while it is the frame's last op).
   *  The bytes go into the frame now: `msg` may be a view of a buffer its owner reuses. */
  forward(account: string, subject: string, reply: string | undefined, msg: MessageData, queue: string | undefined): void {
    if (this.state !== "up") return;
    const owner = this.owner;
    owner.interestFirst();
    const out = this.out;
    if (this.fwdGeneration === owner.generation && this.fwdLast === out.last && this.fwdAccount === account &&
        this.fwdSubject === subject && this.fwdReply === reply) {
      if (queue !== undefined) this.fwdQueuesEnd = addForwardQueue(out.frameOfLast(), this.fwdQueuesEnd, queue);
      return;
    }
    const origin = owner.origin;
    const bytes = msg.end - msg.start;
    this.fwdQueuesEnd = writeForwardOf(out.frameForOp(), account, subject, reply ?? "", msg, queue, origin?.edgeId ?? "",
      origin?.cid ?? 0, owner.retain, owner.msgId);
    out.wrote(bytes + subject.length + (reply?.length ?? 0));
    this.fwdGeneration = owner.generation;
    this.fwdLast = out.last;
    this.fwdAccount = account;
    this.fwdSubject = subject;
    this.fwdReply = reply;
    this.outMsgs++;
    this.outBytes += bytes;
  }

  /**
   * What the peer should get of a message sent again (replay): undefined, nothing; else the
   * names of its queue groups that no member outside it had (`picks`, made when the message was
   * routed: a group picked here or behind another peer had it; one picked for this peer lost it
   * with the link, and one with no member then had the peer's interest dropped while the link was
   * down), and its plain subscribers, if it has any (a forward names no group: an empty list).
   */
  missed(account: string, subject: string, picks: readonly QueuePick[] | undefined): string[] | undefined {
    const found = this.owner.router.match(account, subject);
    if (found === undefined) return undefined;
    const plain = found.psubs.some((s) => s instanceof PeerEntry && s.link === this);
    const queues: string[] = [];
    for (const group of found.qsubs) {
      const queue = group[0].queue!;
      if (!group.some((s) => s instanceof PeerEntry && s.link === this)) continue;
      if (picks?.some((p) => p.queue === queue && p.to !== this.conn.edgeId)) continue;
      queues.push(queue);
    }
    return plain || queues.length > 0 ? queues : undefined;
  }

  /**
   * Pings the peer after everything queued so far (interest updates included): the peer applies
   * ops in order, so its pong means it applied them. A link not up passes at once.
   */
  barrier(waiter: BarrierWaiter): void {
    if (this.state !== "up") return this.owner.passed(waiter);
    const seq = ++this.pingSeq;
    this.barrierSeqs.push(seq);
    this.barrierWaiters.push(waiter);
    this.out.push({ op: "ping", ping: { sentAtUs: nowUs(), seq } });
  }

  close(reason: string): void {
    if (this.state === "closed") return;
    this.state = "closed";
    clearInterval(this.timer);
    this.releaseBarriers(Infinity); // a peer that went away holds nobody
    this.frames.clear();
    this.interest.clear();
    this.backlog.length = 0;
    this.backlogBytes = 0;
    try {
      this.stream.end();
    } catch {
      // already gone
    }
    this.stream.destroy();
    this.owner.down(this, reason);
  }

  private write(bytes: Buffer): void {
    if (this.state === "closed") return;
    if (!this.writable) {
      this.backlog.push(bytes);
      this.backlogBytes += bytes.length;
      const max = this.owner.maxBacklogBytes;
      if (this.backlogBytes > max) this.close(`slow peer: over ${max} bytes waiting for it`);
      return;
    }
    this.writable = this.stream.write(bytes, () => this.out.done(bytes));
  }

  private drained(): void {
    this.writable = true;
    while (this.writable && this.backlog.length > 0) {
      const b = this.backlog.shift()!;
      this.backlogBytes -= b.length;
      this.writable = this.stream.write(b, () => this.out.done(b));
    }
  }

  private tick(): void {
    const now = Date.now();
    // This process was busy (timers run before pending reads after a stall): the silence may
    // be ours, so the peer gets one more interval to be heard.
    if (now - this.lastTick > 2 * PING_INTERVAL_MS) this.lastHeard = Math.max(this.lastHeard, now - PING_INTERVAL_MS);
    this.lastTick = now;
    if (now - this.lastHeard > DEAD_AFTER_MS) return this.close(`no frame for ${DEAD_AFTER_MS} ms`);
    if (this.state === "up") this.out.push({ op: "ping", ping: { sentAtUs: nowUs(), seq: ++this.pingSeq } });
  }

  private readonly cursor = new MeshFrameCursor();
  /** Frames applied in order, a slice per turn (slices.ts): a peer's burst of interest does not
   *  keep this router from answering pings on its other links. */
  private readonly frames = new FrameQueue(this.cursor, {
    stopped: () => this.state === "closed",
    op: (next) => this.applyOp(next),
    malformed: (err) => this.close(this.state === "hello" ? `refused a peer before its hello: ${err.message}` : `peer ${this.peerId}: ${err.message}`),
  });

  private receive(bytes: Buffer): void {
    if (this.state === "closed") return;
    this.lastHeard = Date.now();
    this.frames.push(bytes);
  }

  /** Applies the op the cursor read; returns its cost beyond 1 (interest entries count one each). */
  private applyOp(next: Next.Hot | Next.Cold | Next.Hot2): number {
    const cur = this.cursor;
    if (this.state === "hello") {
      const op = next === Next.Cold ? cur.cold! : undefined;
      if (op?.op !== "hello") this.close(`refused a peer: its first operation is ${op ? op.op ?? "unknown" : "forward"}, not a hello`);
      else this.hello(op.hello!);
      return 0;
    }
    if (next === Next.Hot) {
      this.forwarded(cur.account, cur.subject, cur.reply, cur.msg, cur.queues, cur.originEdge, cur.originConnection, cur.retain, cur.msgId);
      return 0;
    }
    if (next === Next.Hot2) {
      this.interestUpdate(cur.interest);
      return cur.interest.entries.length;
    }
    const op = cur.cold!;
    this.apply(op);
    return op.interest?.entries.length ?? op.snapshot?.entries.length ?? 0;
  }

  /** A Forward, as the cursor read it (its message is a view of the frame) or protobufjs did. */
  private forwarded(account: string, subject: string, reply: string, msg: MessageData, queues: readonly string[], originEdge: string,
                    originConnection: number, retain: boolean, msgId: number): void {
    this.inMsgs++;
    this.inBytes += msg.end - msg.start;
    if (msgId !== 0) this.lastForwardId = msgId;
    this.owner.router.deliverForwarded(account, subject, reply === "" ? undefined : reply, msg, queues,
      this.origins.of(originEdge, originConnection), retain, msgId);
  }

  private hello(h: MeshHello): void {
    const refused = this.owner.authorize(h);
    if (refused !== undefined) return this.close(`refused peer "${h.routerId}": ${refused}`);
    if (h.routerId === "" || h.routerId === this.owner.id) return this.close(`refused peer "${h.routerId}": bad router id`);
    if (this.dialed && this.peerId !== "" && h.routerId !== this.peerId) {
      return this.close(`dialed router "${this.peerId}" but "${h.routerId}" answered`);
    }
    if (h.version !== VERSION) this.owner.warn(`peer ${h.routerId} runs ${h.version}, this router ${VERSION}`);
    this.peerId = h.routerId;
    this.peerAccountsVersion = h.accountsVersion;
    (this.conn as { edgeId: string }).edgeId = `mesh:${h.routerId}`;
    this.replayAfter = h.lastForwardId ?? 0;
    if (!this.dialed) this.out.push({ op: "hello", hello: this.owner.hello(h.routerId) });
    this.state = "up";
    this.upSince = Date.now();
    this.owner.up(this);
    this.sendSnapshot();
  }

  /** An InterestUpdate, from the cursor or decoded by protobufjs. */
  private interestUpdate(update: InterestUpdate): void {
    const haveSeq = this.interest.seq;
    if (this.interest.apply(update) === "gap") {
      this.owner.warn(`peer ${this.peerId}: interest update ${update.seq} arrived after ${haveSeq}: updates were missed; resync`);
      this.out.push({ op: "resyncRequest", resyncRequest: { haveSeq } });
    }
  }

  private apply(op: MeshOp): void {
    switch (op.op) {
      case "interest":
        return this.interestUpdate(op.interest!);
      case "snapshot": {
        const s = op.snapshot!;
        this.interest.snapshotChunk(s.seq, s.entries, s.last);
        if (s.last && this.replayAfter !== 0) {
          // Before any forward of the new link: the messages sent again keep their order.
          const after = this.replayAfter;
          this.replayAfter = 0;
          this.owner.replay(this, after);
        }
        return;
      }
      case "resyncRequest":
        return this.sendSnapshot();
      case "forward": {
        const f = op.forward!;
        return this.forwarded(f.account, f.message?.subject ?? "", f.message?.reply ?? "", messageData(f.message), f.queues, f.originEdge,
          f.originConnection, f.retain, f.msgId ?? 0);
      }
      case "ping":
        this.out.push({ op: "pong", pong: { sentAtUs: op.ping!.sentAtUs, seq: op.ping!.seq, receivedAtUs: nowUs() } });
        return;
      case "pong":
        this.rttMs = (nowUs() - op.pong!.sentAtUs) / 1000;
        if (this.barrierSeqs.length > 0) this.releaseBarriers(op.pong!.seq);
        return;
      default:
        return; // a newer peer's operation, or a second hello: ignored
    }
  }

  /** Barriers whose ping was answered by the pong of `seq` (or an earlier ping's) pass. */
  private releaseBarriers(seq: number): void {
    let n = 0;
    while (n < this.barrierSeqs.length && this.barrierSeqs[n] <= seq) n++;
    if (n === 0) return;
    this.barrierSeqs.splice(0, n);
    for (const w of this.barrierWaiters.splice(0, n)) this.owner.passed(w);
  }

  private sendSnapshot(): void {
    const { seq, entries } = this.owner.snapshot();
    for (let i = 0; i === 0 || i < entries.length; i += SNAPSHOT_CHUNK) {
      const chunk: InterestEntry[] = entries.slice(i, i + SNAPSHOT_CHUNK);
      this.out.push({ op: "snapshot", snapshot: { seq, entries: chunk, last: i + SNAPSHOT_CHUNK >= entries.length } }, chunk.length * ENTRY_BYTES);
    }
  }
}

/** Wall-clock microseconds, at performance.now()'s resolution (a local RTT is well under 1 ms). */
export function nowUs(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

export { VERSION as MESH_VERSION };
