// Every text a NATS client can see in an -ERR, exactly as nats-server 2.9 sends it,
// and the one list of reasons a connection can close for (logs, /connz, metrics).

export const ERR = {
  authorization: "Authorization Violation",
  authTimeout: "Authentication Timeout",
  maxPayload: "Maximum Payload Violation",
  staleConnection: "Stale Connection",
  unknownOp: "Unknown Protocol Operation",
  maxConnections: "maximum connections exceeded",
  maxAccountConnections: "maximum account active connections exceeded",
  maxSubscriptions: "maximum subscriptions exceeded",
  maxControlLine: "maximum control line exceeded",
  invalidSubject: "Invalid Subject",
  invalidPublishSubject: "Invalid Publish Subject",
  tlsRequired: "Secure Connection - TLS Required",
  invalidProtocol: "invalid client protocol",
  userAuthExpired: "User Authentication Expired",
  accountAuthExpired: "Account Authentication Expired",
  userAuthRevoked: "User Authentication Revoked",
  noRespondersNeedsHeaders: "no responders requires headers support",
  /** meshbroker's own: the server failed handling this connection's input (nats-server has no such text). */
  internal: "Internal Server Error",
  pubPermission: (subject: string) => `Permissions Violation for Publish to "${subject}"`,
  replyPermission: (reply: string) => `Permissions Violation for Publish with Reply of "${reply}"`,
  subPermission: (subject: string, queue?: string) =>
    queue
      ? `Permissions Violation for Subscription to "${subject}" using queue "${queue}"`
      : `Permissions Violation for Subscription to "${subject}"`,
  /** A subscription dropped because a reload took its permission away. */
  subPermissionRevoked: (subject: string, sid: string) =>
    `Permissions Violation for Subscription to "${subject}" (sid "${sid}")`,
} as const;

/** Why a connection closed; the strings are nats-server's ClosedState names as /connz shows them. */
export type CloseReason =
  | "Client Closed"
  | "Authentication Timeout"
  | "Authentication Failure"
  | "Authentication Expired"
  | "TLS Handshake Error"
  | "Slow Consumer (Pending Bytes)"
  | "Slow Consumer (Write Deadline)"
  | "Stale Connection"
  | "Protocol Violation"
  | "Parse Error"
  | "Maximum Message Payload Exceeded"
  | "Bad Client Protocol Version"
  | "No Responders Requires Headers"
  | "Maximum Connections Exceeded"
  | "Maximum Account Connections Exceeded"
  | "Maximum Control Line Exceeded"
  | "Read Error"
  | "Write Error"
  | "Server Shutdown"
  | "Internal Error"
  | "Lame Duck Mode";

/** A violation of the client protocol found by the parser or a command handler. */
export class ProtocolError extends Error {
  override readonly name = "ProtocolError";
  constructor(
    message: string,
    /** The -ERR text to send before closing, if any (nats-server sends none for bad arguments). */
    readonly clientError: string | undefined,
    readonly reason: CloseReason = "Protocol Violation",
  ) {
    // The expected outcome of bad input, logged by its message: capturing a stack trace was 3%
    // of the broker's CPU in a flood of bad clients.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = limit;
  }
}
