// MQTT return and reason codes by protocol level: 3.1.1 (level 4) keeps nats-server's CONNACK
// return codes; MQTT 5 (level 5) uses the reason codes of the OASIS standard (section 2.4).
// The connection handler names an outcome once and asks here for the byte its level sends.
import type { CloseReason } from "../../common/errors.js";

export type MqttLevel = 4 | 5;

/** Why a CONNECT was refused, with the 3.1.1 return code and the MQTT 5 reason code. */
export const Refusal = {
  badProtocol: [1, 0x84],
  badClientId: [2, 0x85],
  serverUnavailable: [3, 0x88],
  badUserOrPassword: [4, 0x86],
  notAuthorized: [5, 0x87],
} as const satisfies Record<string, readonly [number, number]>;
export type Refusal = (typeof Refusal)[keyof typeof Refusal];

export const SUCCESS = 0x00;
/** DISCONNECT with will message: the client asks for its will to be published. */
export const DISCONNECT_WITH_WILL = 0x04;
export const NO_SUBSCRIPTION_EXISTED = 0x11;
export const UNSPECIFIED_ERROR = 0x80;
export const MALFORMED_PACKET = 0x81;
export const PROTOCOL_ERROR = 0x82;
export const IMPLEMENTATION_ERROR = 0x83;
export const NOT_AUTHORIZED = 0x87;
export const SERVER_SHUTTING_DOWN = 0x8b;
export const KEEP_ALIVE_TIMEOUT = 0x8d;
export const SESSION_TAKEN_OVER = 0x8e;
export const TOPIC_FILTER_INVALID = 0x8f;
export const TOPIC_NAME_INVALID = 0x90;
export const PACKET_ID_NOT_FOUND = 0x92;
export const TOPIC_ALIAS_INVALID = 0x94;
export const PACKET_TOO_LARGE = 0x95;
export const QUOTA_EXCEEDED = 0x97;
export const USE_ANOTHER_SERVER = 0x9c;
export const SUBACK_FAILURE_311 = 0x80;

/**
 * The auth pipeline refuses with a text; MQTT 5 tells "who you are is wrong" (0x86) from "you
 * may not connect this way" (0x87). The refusals of the second kind name a rule the user broke.
 */
export function authRefusal(reason: string): Refusal {
  return /not allowed|connect times|revoked|bearer/.test(reason) ? Refusal.notAuthorized : Refusal.badUserOrPassword;
}

/** The DISCONNECT reason code an MQTT 5 client gets when the server closes for `reason`
 *  (undefined: no DISCONNECT, the socket is gone or the client ended it). */
export function disconnectCode(reason: CloseReason): number | undefined {
  switch (reason) {
    case "Client Closed":
    case "Read Error":
    case "Write Error":
    case "Slow Consumer (Pending Bytes)":
    case "Slow Consumer (Write Deadline)":
      return undefined;
    case "Stale Connection": return KEEP_ALIVE_TIMEOUT;
    case "Server Shutdown":
    case "Lame Duck Mode": return SERVER_SHUTTING_DOWN;
    case "Authentication Failure":
    case "Authentication Expired": return NOT_AUTHORIZED;
    case "Maximum Message Payload Exceeded": return PACKET_TOO_LARGE;
    case "Internal Error": return IMPLEMENTATION_ERROR;
    case "Parse Error": return MALFORMED_PACKET;
    default: return PROTOCOL_ERROR;
  }
}
