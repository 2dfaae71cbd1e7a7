// The gRPC service definitions of proto/meshbroker/v1/edge.proto, with identity serializers:
// frames are already bytes from the wire codec (wire/codec.ts), so grpc-js only frames them.
// Keepalive and channel options sit here, in one commented object, for both ends.
import type * as grpc from "@grpc/grpc-js";
import { meshChannelOptions } from "../mesh/transport.js";

export const ATTACH_PATH = "/meshbroker.v1.EdgeLink/Attach";

const identity = (b: Buffer): Buffer => b;

/** meshbroker.v1.EdgeLink: Attach(stream EdgeFrame) returns (stream RouterFrame). */
export const EDGE_LINK_SERVICE: grpc.ServiceDefinition = {
  Attach: {
    path: ATTACH_PATH,
    requestStream: true,
    responseStream: true,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

/** Options of both ends (grpc-js channel and server options). */
export const LINK_OPTIONS: grpc.ChannelOptions = {
  // An HTTP/2 PING every quarter second, and a peer that has not answered one within 1.5 s is
  // dead: a frozen or vanished peer is noticed within 1.75 s, as the mesh's 1.5 s of silence
  // (mesh/peer.ts). A busy peer gets 1.5 s to answer: on a loaded 2-core machine a router
  // adopting a lost router's sessions went a second without running, and a 1 s timeout took it
  // for dead. grpc-js servers accept pings this often.
  "grpc.keepalive_time_ms": 250,
  "grpc.keepalive_timeout_ms": 1_500,
  // The stream may carry nothing for a while (an idle cluster): keep probing anyway.
  "grpc.keepalive_permit_without_calls": 1,
  "grpc.http2.max_pings_without_data": 0,
  // A frame is one batch of operations, and one message may be as large as max_pending (64 MB
  // by default): allow large frames (the default receive limit is 4 MB). The router's server
  // carries the mesh too, whose limit is the same (mesh/transport.ts).
  ...meshChannelOptions,
};

/**
 * What one side of a link may queue while the peer's flow control holds its frames back, in
 * bytes, on top of the peer's receive window (grpc/window.ts) and the 16 frames grpc-js itself
 * accepts before write() returns false. Past it the link is reset (RESOURCE_EXHAUSTED): the edge
 * re-attaches and replays its interest, and what was queued is lost, as NATS core messages to a
 * slow route are.
 */
export const LINK_QUEUE_BYTES = 32 * 1024 * 1024;
