// The gRPC side of the mesh: meshbroker.v1.RouterMesh/Link, a bidirectional stream of
// MeshFrames carried as bytes (identity serializers: the codec encodes them, once), and the
// channel options both ends need.
import * as grpc from "@grpc/grpc-js";
import type { Duplex } from "node:stream";

const identity = (b: Buffer): Buffer => b;
const LINK_PATH = "/meshbroker.v1.RouterMesh/Link";

/** The service definition to mount on a router's grpc.Server. */
export const meshService: grpc.ServiceDefinition = {
  Link: {
    path: LINK_PATH, requestStream: true, responseStream: true, originalName: "link",
    requestSerialize: identity, requestDeserialize: identity,
    responseSerialize: identity, responseDeserialize: identity,
  },
};

/**
 * Options for the grpc.Server that carries the mesh (and for the dialing channel): a frame
 * holds one event-loop turn of operations, which can pass gRPC's default 4 MB limit (an
 * interest snapshot of 100,000 entries is about 3 MB, a turn of forwards more); the bounded
 * backlog (peer.ts) is the limit that counts.
 */
export const meshChannelOptions: grpc.ChannelOptions = {
  "grpc.max_receive_message_length": -1,
  "grpc.max_send_message_length": -1,
};

/** Opens the Link stream to a peer router at `address` (host:port). */
export function dialLink(address: string, credentials: grpc.ChannelCredentials): { stream: Duplex; client: grpc.Client } {
  const client = new grpc.Client(address, credentials, meshChannelOptions);
  const stream = client.makeBidiStreamRequest<Buffer, Buffer>(LINK_PATH, identity, identity);
  // Quietly: the link reports its own end (peer.ts); a refused dial is an ordinary error event.
  return { stream: stream as unknown as Duplex, client };
}
