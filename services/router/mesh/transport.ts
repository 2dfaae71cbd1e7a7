// The gRPC side of the mesh: meshbroker.v1.RouterMesh/Link, a bidirectional stream of
// MeshFrames carried as bytes (identity serializers: the codec encodes them, once), and the
// channel options both ends need.
import * as grpc from "@grpc/grpc-js";
import type { Duplex } from "node:stream";
import { LINK_WINDOW_OPTIONS } from "../grpc/window.js";

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
 * Options for the grpc.Server that carries the mesh (and for the dialing channel). Frames are
 * cut at about 1 MB (peer.ts), but one forwarded message is as large as the client's payload
 * (`max_payload`, at most `max_pending`, 64 MB by default), past gRPC's default 4 MB. The
 * limit still bounds what a peer can make this router buffer before its hello is checked.
 */
export const meshChannelOptions: grpc.ChannelOptions = {
  "grpc.max_receive_message_length": 80 * 1024 * 1024,
  "grpc.max_send_message_length": 80 * 1024 * 1024,
  // A dialer's receive windows (the accepting side widens its own: grpc/window.ts).
  ...LINK_WINDOW_OPTIONS,
};

/** Opens the Link stream to a peer router at `address` (host:port). */
export function dialLink(address: string, credentials: grpc.ChannelCredentials): { stream: Duplex; client: grpc.Client } {
  const client = new grpc.Client(address, credentials, meshChannelOptions);
  const stream = client.makeBidiStreamRequest<Buffer, Buffer>(LINK_PATH, identity, identity);
  // Quietly: the link reports its own end (peer.ts); a refused dial is an ordinary error event.
  return { stream: stream as unknown as Duplex, client };
}
