// The store without persistence: everything lives in this process and is gone after a restart
// (index.ts warns at startup when it is chosen). Every method completes synchronously, so call
// order is also apply order.
import { checkPacketId, toStored } from "./codec.js";
import { DELIVERED_KEEP_MS, keyOf, type MqttStore, type QueuedMessage, type SessionKey, type SessionRecord, type StoredMessage } from "./store.js";
import { TopicTree } from "./topic.js";
import { subscriptionOf } from "../link.js";

interface ClientState {
  session?: SessionRecord;
  lastSeq: number;
  /** seq -> message; a Map iterates in insertion order, which is seq order. */
  queue: Map<number, QueuedMessage>;
  incoming: Map<number, StoredMessage>;
  /** A Set iterates in first-insertion order: the order PUBRELs must be resent in. */
  released: Set<number>;
  /** The delivered record: message id -> when it was written (a Map iterates oldest first). */
  delivered?: Map<number, number>;
}

/** Keeps its own copy: the caller's buffer may be a view into a socket chunk. */
function copyMessage(m: StoredMessage): StoredMessage {
  const copy = toStored(m);
  copy.payload = Buffer.from(m.payload);
  return copy;
}

function copySession(s: SessionRecord): SessionRecord {
  const copy: SessionRecord = { clientId: s.clientId, subscriptions: s.subscriptions.map(subscriptionOf), updatedAt: s.updatedAt };
  if (s.account !== undefined) copy.account = s.account;
  if (s.expiry !== undefined) copy.expiry = s.expiry;
  if (s.mqtt5) copy.mqtt5 = true;
  return copy;
}

export class MemoryStore implements MqttStore {
  readonly kind = "memory";
  private readonly clients = new Map<SessionKey, ClientState>();
  /** Retained messages: one topic tree per account. */
  private readonly retained = new Map<string, TopicTree<StoredMessage>>();

  private state(id: SessionKey): ClientState {
    let s = this.clients.get(id);
    if (!s) {
      s = { lastSeq: 0, queue: new Map(), incoming: new Map(), released: new Set() };
      this.clients.set(id, s);
    }
    return s;
  }

  async getSession(id: SessionKey): Promise<SessionRecord | undefined> {
    const s = this.clients.get(id)?.session;
    return s && copySession(s);
  }

  async putSession(session: SessionRecord): Promise<void> {
    this.state(keyOf(session)).session = copySession(session);
  }

  async deleteSession(id: SessionKey): Promise<void> {
    this.clients.delete(id);
  }

  async listSessions(): Promise<SessionRecord[]> {
    const out: SessionRecord[] = [];
    for (const s of this.clients.values()) if (s.session) out.push(copySession(s.session));
    return out;
  }

  async enqueue(id: SessionKey, msg: StoredMessage): Promise<number> {
    return this.push(this.state(id), msg);
  }

  async enqueueMany(entries: { id: SessionKey; msg: StoredMessage }[]): Promise<void> {
    for (const e of entries) this.push(this.state(e.id), e.msg);
  }

  private push(s: ClientState, msg: StoredMessage): number {
    const seq = ++s.lastSeq;
    s.queue.set(seq, { ...copyMessage(msg), seq });
    return seq;
  }

  async queued(id: SessionKey, limit: number): Promise<QueuedMessage[]> {
    const out: QueuedMessage[] = [];
    const s = this.clients.get(id);
    if (!s || limit <= 0) return out;
    for (const m of s.queue.values()) {
      out.push({ ...m });
      if (out.length >= limit) break;
    }
    return out;
  }

  async setPacketId(id: SessionKey, seq: number, packetId: number): Promise<void> {
    checkPacketId(packetId);
    const m = this.clients.get(id)?.queue.get(seq);
    if (m) m.packetId = packetId;
  }

  async ack(id: SessionKey, seq: number): Promise<void> {
    this.clients.get(id)?.queue.delete(seq);
  }

  async putIncoming(id: SessionKey, packetId: number, msg: StoredMessage): Promise<boolean> {
    checkPacketId(packetId);
    const s = this.state(id);
    if (s.incoming.has(packetId)) return false;
    s.incoming.set(packetId, copyMessage(msg));
    return true;
  }

  async takeIncoming(id: SessionKey, packetId: number): Promise<StoredMessage | undefined> {
    const s = this.clients.get(id);
    const m = s?.incoming.get(packetId);
    if (!s || !m) return undefined;
    s.incoming.delete(packetId);
    return m;
  }

  async markReleased(id: SessionKey, packetId: number): Promise<void> {
    checkPacketId(packetId);
    this.state(id).released.add(packetId);
  }

  async received(id: SessionKey, packetId: number, seq: number | undefined, msgId: number | undefined): Promise<void> {
    checkPacketId(packetId);
    const s = this.state(id);
    if (seq !== undefined) s.queue.delete(seq);
    s.released.add(packetId);
    if (msgId === undefined) return;
    const now = Date.now();
    const delivered = s.delivered ??= new Map();
    delivered.delete(msgId);
    delivered.set(msgId, now);
    for (const [old, at] of delivered) {
      if (at > now - DELIVERED_KEEP_MS) break;
      delivered.delete(old);
    }
  }

  async delivered(id: SessionKey): Promise<number[]> {
    return [...this.clients.get(id)?.delivered?.keys() ?? []];
  }

  async released(id: SessionKey): Promise<number[]> {
    return [...(this.clients.get(id)?.released ?? [])];
  }

  async completeReleased(id: SessionKey, packetId: number): Promise<void> {
    this.clients.get(id)?.released.delete(packetId);
  }

  async setRetained(account: string, msg: StoredMessage): Promise<void> {
    // [MQTT-3.3.1-10] a retained PUBLISH with an empty payload removes the retained message.
    let tree = this.retained.get(account);
    if (msg.payload.length === 0) {
      tree?.delete(msg.topic);
      if (tree?.size === 0) this.retained.delete(account);
      return;
    }
    if (!tree) this.retained.set(account, tree = new TopicTree());
    tree.set(msg.topic, copyMessage(msg));
  }

  async matchRetained(account: string, filter: string): Promise<StoredMessage[]> {
    const out: StoredMessage[] = [];
    this.retained.get(account)?.match(filter, (_t, m) => out.push({ ...m }));
    return out;
  }

  async close(): Promise<void> {
    this.clients.clear();
  }
}
