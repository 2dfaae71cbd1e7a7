// MQTT session data as wire data (edge.proto's SessionOp pieces) and back, for both ends.
import type { SubjectPermission } from "../../common/config/options.js";
import { subscriptionOf, type MqttSubscription, type QoS, type SessionWill, type StoredMessage } from "../link.js";
import { addUserProperty, type MqttProperties } from "../../common/mqtt-properties.js";
import type {
  Draft, MqttProperties as WireProperties, MqttSubscription as WireSubscription, SessionWill as WireWill,
  StoredMessage as WireStored, SubjectPermission as WirePermission,
} from "./frames.js";

/** Absent stays absent (no restriction); empty lists mean what absent ones do. */
export function permissionToWire(p: SubjectPermission | undefined): Draft<WirePermission> | undefined {
  return p && { allow: p.allow ?? [], deny: p.deny ?? [] };
}

export function permissionFromWire(p: WirePermission | undefined): SubjectPermission | undefined {
  return p && { allow: p.allow, deny: p.deny };
}

export function storedFromWire(m: WireStored): StoredMessage {
  const msg: StoredMessage = { topic: m.topic, payload: m.payload, qos: m.qos as QoS, retain: m.retain };
  const props = propertiesFromWire(m.properties);
  if (props) msg.props = props;
  return msg;
}

/** A message as wire data; `copy` copies the payload (a view the caller's buffer reuses). */
export function storedToWire(m: StoredMessage, copy = false): Draft<WireStored> {
  return {
    topic: m.topic, payload: copy ? Buffer.from(m.payload) : m.payload, qos: m.qos, retain: m.retain,
    properties: propertiesToWire(m.props),
  };
}

export function willToWire(w: SessionWill | undefined): Draft<WireWill> | undefined {
  return w && { subject: w.subject, message: storedToWire(w.message), delay: w.delay ?? 0 };
}

export function propertiesToWire(p: MqttProperties | undefined): Draft<WireProperties> | undefined {
  if (!p) return undefined;
  const user: { name: string; value: string }[] = [];
  for (const [name, v] of Object.entries(p.userProperties ?? {})) for (const value of Array.isArray(v) ? v : [v]) user.push({ name, value });
  return {
    userProperties: user, contentType: p.contentType ?? "", correlationData: p.correlationData,
    hasCorrelationData: p.correlationData !== undefined, responseTopic: p.responseTopic ?? "",
    payloadUtf8: p.payloadFormatIndicator ?? false,
    messageExpiry: p.messageExpiryInterval === undefined ? undefined : { seconds: p.messageExpiryInterval },
    subscriptionIdentifier: p.subscriptionIdentifier ?? 0,
  };
}

export function propertiesFromWire(w: WireProperties | undefined): MqttProperties | undefined {
  if (!w) return undefined;
  const p: MqttProperties = {};
  for (const { name, value } of w.userProperties) addUserProperty(p, name, value);
  if (w.contentType !== "") p.contentType = w.contentType;
  if (w.hasCorrelationData) p.correlationData = Buffer.from(w.correlationData);
  if (w.responseTopic !== "") p.responseTopic = w.responseTopic;
  if (w.payloadUtf8) p.payloadFormatIndicator = true;
  if (w.messageExpiry) p.messageExpiryInterval = w.messageExpiry.seconds;
  if (w.subscriptionIdentifier) p.subscriptionIdentifier = w.subscriptionIdentifier;
  return p;
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
  return subs.map(subscriptionOf);
}
