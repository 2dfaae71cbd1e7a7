// MQTT session data as wire data (edge.proto's SessionOp pieces) and back, for both ends.
import type { SubjectPermission } from "../../common/config/options.js";
import type { MqttSubscription, QoS, SessionWill, StoredMessage } from "../link.js";
import type {
  Draft, MqttSubscription as WireSubscription, SessionWill as WireWill, StoredMessage as WireStored,
  SubjectPermission as WirePermission,
} from "./frames.js";

/** Absent stays absent (no restriction); empty lists mean what absent ones do. */
export function permissionToWire(p: SubjectPermission | undefined): Draft<WirePermission> | undefined {
  return p && { allow: p.allow ?? [], deny: p.deny ?? [] };
}

export function permissionFromWire(p: WirePermission | undefined): SubjectPermission | undefined {
  return p && { allow: p.allow, deny: p.deny };
}

export function storedFromWire(m: WireStored): StoredMessage {
  return { topic: m.topic, payload: m.payload, qos: m.qos as QoS, retain: m.retain };
}

export function willFromWire(w: WireWill | undefined): SessionWill | undefined {
  if (!w) return undefined;
  const will: SessionWill = { subject: w.subject, message: storedFromWire(w.message!) };
  if (w.delay > 0) will.delay = w.delay;
  return will;
}

/** MQTT 5 session expiry: absent stays absent (3.1.1). */
export function expiryToWire(seconds: number | undefined): { seconds: number } | undefined {
  return seconds === undefined ? undefined : { seconds };
}

export function subscriptionsFromWire(subs: WireSubscription[]): MqttSubscription[] {
  return subs.map((s) => ({ filter: s.filter, qos: s.qos as QoS }));
}
