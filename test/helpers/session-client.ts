// The session service for unit tests: a real Router and SessionService on a store (the memory
// store unless given), and a client that notes the payloads delivered to it and how often it
// was taken over.
import { Router } from "../../services/router/router.js";
import { SessionService } from "../../services/router/sessions/service.js";
import { MemoryStore } from "../../services/router/store/memory.js";
import type { MqttStore } from "../../services/router/store/store.js";
import type { SessionClient } from "../../services/router/link.js";

/** A Router whose sessions are a SessionService on `store`, as a router process pairs them. */
export function sessionRouter(store: MqttStore = new MemoryStore()): { router: Router; service: SessionService } {
  const router = new Router();
  const service = new SessionService(router, store, { ackWaitMs: 60_000, maxAckPending: 100 }, { error: () => {} });
  router.sessions = service;
  return { router, service };
}

export function recordingClient(): { c: SessionClient; got: string[]; closed: () => number } {
  const got: string[] = [];
  let closed = 0;
  const c: SessionClient = {
    sendPublish: (_topic, payload) => void got.push(payload.toString()), sendPubrel: () => {}, takenOver: () => void closed++,
  };
  return { c, got, closed: () => closed };
}
