// FrameWriter gives each frame back to its builder on grpc-js's write callback, and the builder
// then writes over the frame's bytes: this holds only if grpc-js has copied the frame by then,
// on a client stream (its compression filter copies before the retry layer calls back) as on a
// server stream. Frames from two reused slabs cross a real grpc-js stream each way, the first
// ones written before the call is even ready, and every one must arrive intact.
import * as grpc from "@grpc/grpc-js";
import { once } from "node:events";
import type { Duplex } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { ATTACH_PATH, EDGE_LINK_SERVICE } from "../../services/router/grpc/service.js";
import { FrameWriter } from "../../services/router/grpc/writer.js";
import { FrameBuilder } from "../../services/router/wire/fast.js";

const FRAMES = 120;
const FRAME_BYTES = 100_000;
const WINDOW = 3;
const identity = (b: Buffer): Buffer => b;

/** Frame `i`: one field of FRAME_BYTES bytes, all `i`. */
function write(w: FrameBuilder, i: number): Buffer {
  w.raw((9 << 3) | 2, Buffer.alloc(FRAME_BYTES, i));
  return w.finish();
}

/** Frame `i` as it arrived (its last bytes are its field's content). */
const intact = (f: Buffer, i: number): boolean => f.length > FRAME_BYTES && f.subarray(f.length - FRAME_BYTES).every((b) => b === i);

/** Sends FRAMES frames through `stream` with a builder that takes them back, WINDOW at most not
 *  back at a time (so that the builder writes again where frames just were); returns the slabs. */
async function sendAll(stream: Duplex): Promise<Set<ArrayBufferLike>> {
  const w = new FrameBuilder(true);
  let back = 0;
  let wake: (() => void) | undefined;
  const writer = new FrameWriter(stream, (bytes) => { throw new Error(`overflow at ${bytes}`); }, (f) => {
    w.done(f);
    back++;
    wake?.();
  });
  const slabs = new Set<ArrayBufferLike>();
  for (let i = 0; i < FRAMES; i++) {
    while (i - back >= WINDOW) await new Promise<void>((resolve) => { wake = resolve; });
    const f = write(w, i);
    slabs.add(f.buffer);
    writer.write(f);
  }
  return slabs;
}

/** Collects FRAMES frames from `stream`, within 10 s. */
async function receiveAll(stream: Duplex): Promise<Buffer[]> {
  const got: Buffer[] = [];
  const timer = setTimeout(() => stream.destroy(new Error(`received ${got.length} of ${FRAMES} frames in 10 s`)), 10_000);
  try {
    stream.on("data", (b: Buffer) => got.push(b));
    while (got.length < FRAMES) await once(stream, "data");
    return got;
  } finally {
    clearTimeout(timer);
  }
}

describe("FrameWriter over grpc-js", () => {
  let server: grpc.Server | undefined;
  let client: grpc.Client | undefined;
  afterEach(() => {
    client?.close();
    server?.forceShutdown();
  });

  it("gives frames back only once grpc-js copied them, client and server side", async () => {
    const calls: Duplex[] = [];
    const callArrived = new Promise<Duplex>((resolve) => {
      server = new grpc.Server();
      server.addService(EDGE_LINK_SERVICE, { Attach: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
        calls.push(call as unknown as Duplex);
        resolve(call as unknown as Duplex);
      } });
    });
    const port = await new Promise<number>((resolve, reject) =>
      server!.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const call = client.makeBidiStreamRequest(ATTACH_PATH, identity, identity) as unknown as Duplex;
    call.on("error", () => {}); // closing the client at the end cancels the call
    // The first frames go before the call is ready: grpc-js holds them meanwhile.
    const [clientSlabs, toServer] = await Promise.all([sendAll(call), callArrived.then(receiveAll)]);
    const [serverSlabs, toClient] = await Promise.all([sendAll(await callArrived), receiveAll(call)]);
    // Reused slabs: 12 MB went through two 2 MB slabs (a builder that never reused would need 6).
    expect(clientSlabs.size).toBeLessThanOrEqual(2);
    expect(serverSlabs.size).toBeLessThanOrEqual(2);
    toServer.forEach((f, i) => expect(intact(f, i), `frame ${i} to the server`).toBe(true));
    toClient.forEach((f, i) => expect(intact(f, i), `frame ${i} to the client`).toBe(true));
    expect(calls.length).toBe(1);
  });
});
