// The links' HTTP/2 receive windows (grpc/window.ts): a router widens the windows of a stream it
// accepts (grpc-js has no server option for them), a dialer asks for wide ones with its channel
// options, and a grpc-js whose internals moved degrades to a warning. Windows are read from the
// server's HTTP/2 session and stream, behind the grpc-js call (the internals window.ts reaches).
import * as grpc from "@grpc/grpc-js";
import type { ServerHttp2Session, ServerHttp2Stream } from "node:http2";
import { afterEach, describe, expect, it } from "vitest";
import { ATTACH_PATH, EDGE_LINK_SERVICE, LINK_OPTIONS } from "../../services/router/grpc/service.js";
import { LINK_WINDOW_BYTES, widenServerWindow } from "../../services/router/grpc/window.js";
import { meshChannelOptions } from "../../services/router/mesh/transport.js";
import { withTimeout } from "../helpers/wait.js";

const identity = (b: Buffer): Buffer => b;
type Call = grpc.ServerDuplexStream<Buffer, Buffer>;
const streamOf = (call: Call) => (call as unknown as { call: { stream: ServerHttp2Stream } }).call.stream;
const sessionOf = (call: Call) => streamOf(call).session as ServerHttp2Session;

/** Resolves once `holds()`, checked now and after each of `session`'s `event`s (its SETTINGS
 *  exchange); fails after 2 s. */
function settled(session: ServerHttp2Session, event: "localSettings" | "remoteSettings", holds: () => boolean, what: string): Promise<void> {
  if (holds()) return Promise.resolve();
  return withTimeout(new Promise<void>((resolve) => {
    const check = () => {
      if (!holds()) return;
      session.off(event, check);
      resolve();
    };
    session.on(event, check);
  }), 2_000, () => `${what} not seen`);
}

describe("link HTTP/2 windows", () => {
  let server: grpc.Server | undefined;
  let client: grpc.Client | undefined;
  afterEach(() => {
    client?.close();
    server?.forceShutdown();
  });

  /** A server whose Attach handler runs `onCall`, and one stream to it from a client with
   *  `options`; resolves with the server's call once the client's first frame arrived. */
  async function link(options: grpc.ChannelOptions, onCall: (call: Call) => void): Promise<Call> {
    let arrived!: (call: Call) => void;
    const got = new Promise<Call>((resolve) => { arrived = resolve; });
    server = new grpc.Server(LINK_OPTIONS);
    server.addService(EDGE_LINK_SERVICE, { Attach: (call: Call) => {
      onCall(call);
      call.once("data", () => arrived(call));
    } });
    const port = await new Promise<number>((resolve, reject) =>
      server!.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), options);
    const stream = client.makeBidiStreamRequest(ATTACH_PATH, identity, identity);
    stream.on("error", () => {});
    stream.write(Buffer.from("hello"));
    return got;
  }

  it("a router widens the receive windows of a stream it accepts, the stream's own included", async () => {
    const warnings: (string | undefined)[] = [];
    const call = await link({}, (c) => warnings.push(widenServerWindow(c)));
    expect(warnings).toEqual([undefined]);
    const session = sessionOf(call);
    // The stream's window moves once the client acknowledged the new SETTINGS.
    await settled(session, "localSettings", () => session.localSettings.initialWindowSize === LINK_WINDOW_BYTES, "the client's SETTINGS ack");
    expect(streamOf(call).state.localWindowSize).toBeGreaterThan(LINK_WINDOW_BYTES / 2);
    expect(session.state.localWindowSize).toBeGreaterThan(LINK_WINDOW_BYTES / 2);
  });

  it("a dialer with the link options asks for wide windows", async () => {
    for (const options of [LINK_OPTIONS, meshChannelOptions]) {
      const call = await link(options, () => {});
      const session = sessionOf(call);
      await settled(session, "remoteSettings", () => session.remoteSettings.initialWindowSize === LINK_WINDOW_BYTES, "the dialer's SETTINGS");
      client!.close();
      server!.forceShutdown();
    }
  });

  it("grpc-js internals that moved give a warning, not an exception", () => {
    expect(widenServerWindow({})).toMatch(/cannot widen the HTTP\/2 window/);
    expect(widenServerWindow({ call: { stream: { session: { setLocalWindowSize: () => { throw new Error("no"); },
      settings: () => {}, state: {}, localSettings: {} } } } })).toMatch(/cannot widen the HTTP\/2 window: no/);
  });
});
