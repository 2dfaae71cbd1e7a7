// The store without persistence: everything lives in this process and is gone after a restart
// (index.ts warns at startup when it is chosen). Every method completes synchronously, so call
// order is also apply order.
import { checkPacketId } from "./codec.js";
import type { MqttStore, QueuedMessage, SessionRecord, StoredMessage } from "./store.js";
import { TopicTree } from "./topic.js";

interface ClientState {
  session?: SessionRecord;
  lastSeq: number;
  /** seq -> message; a Map iterates in insertion order, which is seq order. */
  queue: Map<number, QueuedMessage>;
  incoming: Map<number, StoredMessage>;
  /** A Set iterates in first-insertion order: the order PUBRELs must be resent in. */
  released: Set<number>;
}

/** Keeps its own copy: the caller's buffer may be a view into a socket chunk. */
function copyMessage(m: StoredMessage): StoredMessage {
  return { topic: m.topic, payload: Buffer.from(m.payload), qos: m.qos, retain: m.retain };
}

function copySession(s: SessionRecord): SessionRecord {
  const copy: SessionRecord = { clientId: s.clientId, subscriptions: s.subscriptions.map((x) => ({ filter: x.filter, qos: x.qos })), updatedAt: s.updatedAt };
  if (s.account !== undefined) copy.account = s.account;
  return copy;
}

export class MemoryStore implements MqttStore {
  readonly kind = "memory";
  private readonly clients = new Map<string, ClientState>();
  private readonly retained = new TopicTree<StoredMessage>();

  private state(clientId: string): ClientState {
    let s = this.clients.get(clientId);
    if (!s) {
      s = { lastSeq: 0, queue: new Map(), incoming: new Map(), released: new Set() };
      this.clients.set(clientId, s);
    }
    return s;
  }

  async getSession(clientId: string): Promise<SessionRecord | undefined> {
    const s = this.clients.get(clientId)?.session;
    return s && copySession(s);
  }

  async putSession(session: SessionRecord): Promise<void> {
    this.state(session.clientId).session = copySession(session);
  }

  async deleteSession(clientId: string): Promise<void> {
    this.clients.delete(clientId);
  }

  async listSessions(): Promise<SessionRecord[]> {
    const out: SessionRecord[] = [];
    for (const s of this.clients.values()) if (s.session) out.push(copySession(s.session));
    return out;
  }

  async enqueue(clientId: string, msg: StoredMessage): Promise<number> {
    return this.push(this.state(clientId), msg);
  }

  async enqueueMany(entries: { clientId: string; msg: StoredMessage }[]): Promise<void> {
    for (const e of entries) this.push(this.state(e.clientId), e.msg);
  }

  private push(s: ClientState, msg: StoredMessage): number {
    const seq = ++s.lastSeq;
    s.queue.set(seq, { ...copyMessage(msg), seq });
    return seq;
  }

  async queued(clientId: string, limit: number): Promise<QueuedMessage[]> {
    const out: QueuedMessage[] = [];
    const s = this.clients.get(clientId);
    if (!s || limit <= 0) return out;
    for (const m of s.queue.values()) {
      out.push({ ...m });
      if (out.length >= limit) break;
    }
    return out;
  }

  async setPacketId(clientId: string, seq: number, packetId: number): Promise<void> {
    checkPacketId(packetId);
    const m = this.clients.get(clientId)?.queue.get(seq);
    if (m) m.packetId = packetId;
  }

  async ack(clientId: string, seq: number): Promise<void> {
    this.clients.get(clientId)?.queue.delete(seq);
  }

  async putIncoming(clientId: string, packetId: number, msg: StoredMessage): Promise<boolean> {
    checkPacketId(packetId);
    const s = this.state(clientId);
    if (s.incoming.has(packetId)) return false;
    s.incoming.set(packetId, copyMessage(msg));
    return true;
  }

  async takeIncoming(clientId: string, packetId: number): Promise<StoredMessage | undefined> {
    const s = this.clients.get(clientId);
    const m = s?.incoming.get(packetId);
    if (!s || !m) return undefined;
    s.incoming.delete(packetId);
    return m;
  }

  async markReleased(clientId: string, packetId: number): Promise<void> {
    checkPacketId(packetId);
    this.state(clientId).released.add(packetId);
  }

  async released(clientId: string): Promise<number[]> {
    return [...(this.clients.get(clientId)?.released ?? [])];
  }

  async completeReleased(clientId: string, packetId: number): Promise<void> {
    this.clients.get(clientId)?.released.delete(packetId);
  }

  async setRetained(msg: StoredMessage): Promise<void> {
    // [MQTT-3.3.1-10] a retained PUBLISH with an empty payload removes the retained message.
    if (msg.payload.length === 0) this.retained.delete(msg.topic);
    else this.retained.set(msg.topic, copyMessage(msg));
  }

  async matchRetained(filter: string): Promise<StoredMessage[]> {
    const out: StoredMessage[] = [];
    this.retained.match(filter, (_t, m) => out.push({ ...m }));
    return out;
  }

  async close(): Promise<void> {
    this.clients.clear();
  }
}
