// The `mqtt {}` block (nats-server parseMQTT), and where MQTT state is kept.

import { DEFAULTS, type MqttConfig } from "../options.js";
import { isConfigMap, type ConfigMap, type ConfigValue } from "../parser.js";
import { noteSource, type Reader } from "../reader.js";
import { readListenerAuthorization } from "./authorization.js";
import { checkListenerBlock, listenerField, listenerFields, resolvePort } from "./listener.js";

// Sub-keys nats-server 2.9 accepts, so a misspelt one fails before any value is read.
const MQTT_KEYS = new Set([
  "listen", "port", "host", "net", "tls", "authorization", "authentication", "no_auth_user",
  "ack_wait", "ackwait", "max_ack_pending", "max_pending", "max_inflight", "js_domain",
  "stream_replicas", "consumer_replicas", "consumer_memory_storage",
  "consumer_inactive_threshold", "consumer_auto_cleanup",
  "store_dir", // meshbroker's: where MQTT state is kept (nats-server keeps it in JetStream)
]);

/** The `mqtt {}` block (nats-server parseMQTT). Undefined without a port, as websocket: no
 *  listener then, and validateOptions skips the block; its keys and values are still checked.
 *  nats-server keeps MQTT state in JetStream and tunes it with js_domain, *_replicas and
 *  consumer_*; meshbroker keeps it in its own store (`store_dir`), so those are kept, unused. */
export function readMqtt(r: Reader, m: ConfigMap, key: string): MqttConfig | undefined {
  checkListenerBlock(r, m, key, MQTT_KEYS);
  const mm = m[key] as ConfigMap;
  const c: MqttConfig = { host: "", port: 0, ackWaitMs: 0, maxAckPending: 0 };
  noteSource(c, "entry", r.pos(m, key));
  const l = listenerFields();
  const unused: string[] = []; // JetStream-only keys given, for one warning
  for (const k of Object.keys(mm)) {
    const lk = k.toLowerCase();
    const setSource = (field: string) => noteSource(c, field, r.pos(mm, k));
    if (listenerField(r, mm, k, l, "mqtt listener")) continue;
    switch (lk) {
      case "authorization":
      case "authentication":
        c.authorization = readListenerAuthorization(r, mm, k);
        setSource("authorization");
        break;
      case "no_auth_user":
        c.noAuthUser = r.str(mm, k);
        setSource("noAuthUser");
        break;
      case "ack_wait":
      case "ackwait":
        // A negative value is refused when the listener starts (validateOptions), as there.
        c.ackWaitMs = r.signedDuration(mm, k, "ack_wait");
        setSource("ackWaitMs");
        break;
      case "max_ack_pending":
      case "max_pending":
      case "max_inflight": {
        const v = r.int(mm, k);
        if (v < 0 || v > 0xffff) r.fail(mm, k, `invalid value ${v}, should in [0..${0xffff}] range`);
        c.maxAckPending = v;
        break;
      }
      case "store_dir":
        // "" is unset: the jetstream / top-level store_dir, if any, applies.
        c.storeDir = r.str(mm, k) || undefined;
        break;
      case "js_domain":
        c.jsDomain = r.str(mm, k);
        unused.push(k);
        break;
      case "stream_replicas":
        c.streamReplicas = r.int(mm, k);
        unused.push(k);
        break;
      case "consumer_replicas":
        c.consumerReplicas = r.int(mm, k);
        setSource("consumerReplicas");
        unused.push(k);
        break;
      case "consumer_memory_storage":
        c.consumerMemoryStorage = r.bool(mm, k);
        unused.push(k);
        break;
      case "consumer_inactive_threshold":
      case "consumer_auto_cleanup":
        c.consumerInactiveThresholdMs = r.signedDuration(mm, k, "consumer_inactive_threshold");
        unused.push(k);
        break;
    }
  }
  if (l.port === 0) return undefined;
  if (unused.length > 0) {
    r.warn(mm, unused[0], `${unused.map((k) => `"${k}"`).join(", ")}: JetStream settings of nats-server's MQTT, unused by meshbroker, ignored`);
  }
  c.host = l.host || DEFAULTS.mqtt.host;
  c.port = resolvePort(l.port, 0);
  if (l.tls) c.tls = l.tls;
  // 0 means the default, as nats-server; a negative ack_wait stays for validateOptions.
  c.ackWaitMs ||= DEFAULTS.mqtt.ackWaitMs;
  c.maxAckPending ||= DEFAULTS.mqtt.maxAckPending;
  return c;
}

/** The store_dir of a pending `jetstream {}` block (`store_dir`, `storedir` or `store`), else
 *  the top-level one: where the MQTT block keeps its state when it names no directory. */
export function pendingStoreDir(r: Reader, pending: Record<string, unknown>): string | undefined {
  const js = pending.jetstream as ConfigValue | undefined;
  if (isConfigMap(js)) {
    for (const k of Object.keys(js)) {
      if (["store_dir", "storedir", "store"].includes(k.toLowerCase())) {
        const dir = r.str(js, k);
        if (dir) return dir;
      }
    }
  }
  const top = pending.store_dir;
  return typeof top === "string" && top !== "" ? top : undefined;
}
