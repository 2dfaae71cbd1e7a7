// A session service's client for unit tests: it notes the payloads delivered to it and how
// often it was taken over.
import type { SessionClient } from "../../services/router/link.js";

export function recordingClient(): { c: SessionClient; got: string[]; closed: () => number } {
  const got: string[] = [];
  let closed = 0;
  const c: SessionClient = {
    sendPublish: (_topic, payload) => void got.push(payload.toString()), sendPubrel: () => {}, takenOver: () => void closed++,
  };
  return { c, got, closed: () => closed };
}
