// MQTT 5 message properties ↔ NATS headers, one mapping for both directions:
//   - user properties ↔ headers of the same name and value (a repeated name: several values);
//   - content type ↔ `Nmqtt-Content-Type`, correlation data ↔ `Nmqtt-Correlation-Data` (base64),
//     payload format indicator 1 ↔ `Nmqtt-Format: utf-8`, message expiry interval ↔ `Nmqtt-Expiry`
//     (seconds left when routed);
//   - the response topic is the NATS reply subject (mapped like any topic), not a header.
// `Nmqtt-*` headers are meshbroker's own: they never become user properties. A user property
// that cannot be a NATS header (a name with ":", whitespace or control characters, a value with
// CR or LF) is not carried.

/** The properties of an MQTT 5 PUBLISH that travel with the message (mqtt-packet's names). */
export interface MqttProperties {
  userProperties?: Record<string, string | string[]>;
  contentType?: string;
  correlationData?: Buffer;
  responseTopic?: string;
  payloadFormatIndicator?: boolean;
  messageExpiryInterval?: number;
  /** Outbound only: the identifier of the subscription a delivery matched (not a header). */
  subscriptionIdentifier?: number;
}

const CONTENT_TYPE = "Nmqtt-Content-Type", CORRELATION = "Nmqtt-Correlation-Data", FORMAT = "Nmqtt-Format",
  EXPIRY = "Nmqtt-Expiry", OWN = "nmqtt-";

const BAD_NAME = /[\x00-\x20:\x7f]/;
const BAD_VALUE = /[\r\n]/;

/** The properties of a PUBLISH worth carrying (undefined: none), from mqtt-packet's decoded ones. */
export function carriedProperties(p: Omit<MqttProperties, "subscriptionIdentifier"> | undefined): MqttProperties | undefined {
  if (!p) return undefined;
  const out: MqttProperties = {};
  let any = false;
  if (p.userProperties && Object.keys(p.userProperties).length > 0) { out.userProperties = p.userProperties; any = true; }
  if (p.contentType !== undefined) { out.contentType = p.contentType; any = true; }
  if (p.correlationData !== undefined) { out.correlationData = p.correlationData; any = true; }
  if (p.responseTopic !== undefined) { out.responseTopic = p.responseTopic; any = true; }
  if (p.payloadFormatIndicator) { out.payloadFormatIndicator = true; any = true; }
  if (p.messageExpiryInterval !== undefined) { out.messageExpiryInterval = p.messageExpiryInterval; any = true; }
  return any ? out : undefined;
}

/** Adds a user property (a repeated name collects its values in order). */
export function addUserProperty(p: MqttProperties, name: string, value: string): void {
  const user = p.userProperties ??= {};
  const had = user[name];
  user[name] = had === undefined ? value : Array.isArray(had) ? [...had, value] : [had, value];
}

/** The header lines ("Name: value\r\n" each) that carry `p` (the response topic excepted). */
export function propertiesToHeaderLines(p: MqttProperties): string {
  let s = "";
  for (const [name, values] of Object.entries(p.userProperties ?? {})) {
    if (BAD_NAME.test(name) || name.toLowerCase().startsWith(OWN)) continue;
    for (const v of Array.isArray(values) ? values : [values]) if (!BAD_VALUE.test(v)) s += `${name}: ${v}\r\n`;
  }
  if (p.contentType !== undefined && !BAD_VALUE.test(p.contentType)) s += `${CONTENT_TYPE}: ${p.contentType}\r\n`;
  if (p.correlationData !== undefined) s += `${CORRELATION}: ${p.correlationData.toString("base64")}\r\n`;
  if (p.payloadFormatIndicator) s += `${FORMAT}: utf-8\r\n`;
  if (p.messageExpiryInterval !== undefined) s += `${EXPIRY}: ${p.messageExpiryInterval}\r\n`;
  return s;
}

/**
 * The MQTT 5 properties a NATS header block (`NATS/1.0…\r\n\r\n`, `buf[start, start + len)`)
 * carries; undefined when none.
 */
export function headersToProperties(buf: Buffer, start: number, len: number): MqttProperties | undefined {
  const text = buf.toString("utf8", start, start + len);
  let out: MqttProperties | undefined;
  const lines = text.split("\r\n");
  for (let i = 1; i < lines.length; i++) { // lines[0] is the NATS/1.0 status line
    const line = lines[i];
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    const lower = name.toLowerCase();
    out ??= {};
    if (lower === CONTENT_TYPE.toLowerCase()) out.contentType = value;
    else if (lower === CORRELATION.toLowerCase()) out.correlationData = Buffer.from(value, "base64");
    else if (lower === FORMAT.toLowerCase()) out.payloadFormatIndicator = value === "utf-8";
    else if (lower === EXPIRY.toLowerCase()) {
      const n = Number(value);
      if (Number.isInteger(n) && n >= 0) out.messageExpiryInterval = n;
    } else if (!lower.startsWith(OWN)) {
      addUserProperty(out, name, value);
    }
  }
  return out && Object.keys(out).length > 0 ? out : undefined;
}
