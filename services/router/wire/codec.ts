// Frames of the edge↔router and router↔router streams to bytes and back, from the .proto files
// themselves (proto/meshbroker/v1), with protobufjs: the library @grpc/proto-loader builds on,
// so the serialised test link and the gRPC link encode the same way. The .proto files are read
// at run time (tsc does not copy them), found from the package root, from dist/ too.
//
// Decoding never throws: a malformed frame is a WireError value the caller logs and answers.
// Decoded `bytes` fields (payloads, headers) are views into the frame's buffer, not copies: a
// receiver that keeps one past the frame copies it. Unknown fields, and operations of a kind this
// version does not know (`op` undefined), are skipped, so a newer peer can add them.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import protobuf from "protobufjs";
import type { Draft, EdgeFrame, MeshFrame, RouterFrame } from "./frames.js";

export const PROTO_PACKAGE = "meshbroker.v1";
export const PROTO_FILES = ["meshbroker/v1/common.proto", "meshbroker/v1/edge.proto", "meshbroker/v1/mesh.proto"];

export class WireError extends Error {
  override readonly name = "WireError";
  constructor(message: string, readonly code: "MALFORMED" | "UNENCODABLE", options?: { cause?: unknown }) {
    super(message, options);
  }
}

export interface FrameCodec<T> {
  /** The frame's bytes. Values are not verified (they come from typed code, and this is a hot
   *  path); one that cannot be encoded at all throws a WireError (a bug of the caller). */
  encode(frame: Draft<T>): Buffer;
  /** The frame, or a WireError when the bytes are not one. */
  decode(bytes: Uint8Array): T | WireError;
}

/** The directory holding `meshbroker/v1/*.proto`: proto/ at the package root, found by walking
 *  up from this module (services/router/wire/ in the sources, dist/services/router/wire/ built). */
export function protoRoot(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const candidate = join(dir, "proto");
    if (existsSync(join(candidate, PROTO_FILES[0]))) return candidate;
    if (dirname(dir) === dir) throw new Error(`meshbroker: ${PROTO_FILES[0]} not found above ${fileURLToPath(import.meta.url)}`);
  }
}

let root: protobuf.Root | undefined;

/** The loaded .proto files (once per process). */
export function protoTypes(): protobuf.Root {
  if (root) return root;
  // uint64 fields (connection ids, sequence numbers, microsecond timestamps) as plain numbers:
  // they stay below 2^53, and a Long object per field would allocate on every decode.
  (protobuf.util as { Long: unknown }).Long = undefined;
  protobuf.configure();
  const dir = protoRoot();
  const r = new protobuf.Root();
  r.resolvePath = (_origin, target) => join(dir, target);
  r.loadSync(PROTO_FILES, { keepCase: false });
  r.resolveAll();
  emptyBytesAreBuffers(r);
  return (root = r);
}

const EMPTY = Buffer.alloc(0);

/** protobufjs gives an absent `bytes` field an empty array; make it an empty Buffer, as typed. */
function emptyBytesAreBuffers(ns: protobuf.NamespaceBase): void {
  for (const nested of ns.nestedArray) {
    if (nested instanceof protobuf.Type) {
      for (const f of nested.fieldsArray) {
        if (f.type === "bytes" && !f.repeated) (nested.ctor.prototype as Record<string, unknown>)[f.name] = EMPTY;
      }
    }
    if (nested instanceof protobuf.Namespace) emptyBytesAreBuffers(nested);
  }
}

function codecOf<T>(name: string): FrameCodec<T> {
  let type: protobuf.Type | undefined;
  const typeOf = () => (type ??= protoTypes().lookupType(`${PROTO_PACKAGE}.${name}`));
  return {
    encode(frame) {
      try {
        return typeOf().encode(frame as protobuf.Message).finish() as Buffer;
      } catch (err) {
        throw new WireError(`cannot encode ${name}: ${(err as Error).message}`, "UNENCODABLE", { cause: err });
      }
    },
    decode(bytes) {
      try {
        return typeOf().decode(bytes) as unknown as T;
      } catch (err) {
        return new WireError(`malformed ${name}: ${(err as Error).message}`, "MALFORMED", { cause: err });
      }
    },
  };
}

export const edgeFrames = codecOf<EdgeFrame>("EdgeFrame");
export const routerFrames = codecOf<RouterFrame>("RouterFrame");
export const meshFrames = codecOf<MeshFrame>("MeshFrame");
