// What monitoring (/connz, /subsz) reads of a client connection, whatever its protocol.
import type { CloseReason } from "../common/errors.js";
import type { ConnectionType } from "./auth/index.js";

export interface SubscriptionView {
  subject: string;
  queue: string | undefined;
  sid: string;
  /** Messages delivered so far. */
  delivered: number;
  /** Auto-unsubscribe limit; 0 = none. */
  max: number;
}

export interface ConnectionView {
  readonly cid: number;
  readonly connectionType: ConnectionType;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly startTime: Date;
  readonly lastActivityMs: number;
  readonly stopTime: Date | undefined;
  readonly rttMs: number;
  readonly closed: boolean;
  readonly closeReason: CloseReason | undefined;
  readonly pendingBytes: number;
  readonly inMsgs: number;
  readonly outMsgs: number;
  readonly inBytes: number;
  readonly outBytes: number;
  readonly name: string;
  readonly lang: string;
  readonly version: string;
  readonly account: string;
  /** The authenticated user's name, if any. */
  readonly userName: string | undefined;
  /** MQTT connections: the client id (nats-server's `mqtt_client`). */
  readonly mqttClientId?: string;
  subscriptionList(): SubscriptionView[];
  readonly subscriptionCount: number;
  /** Closes the connection after what it has pending (lame duck). */
  close(reason: CloseReason): void;
}
