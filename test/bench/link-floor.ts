// What one hop of the cluster's link costs at one message in flight, without the broker: a
// 100-byte message echoed back and forth between two processes over a grpc-js bidirectional
// stream (the edge link's service definition and channel options), and over a plain TCP socket
// for comparison. Prints the round trip and the CPU time (user + system) of each side per round
// trip. A cluster request crosses 6 such messages (edge -> router -> router -> edge and back):
// this is the floor under the cluster request/reply cases that grpc-js sets.
//   npx tsc -p tsconfig.json && node dist/test/bench/link-floor.js [ROUND_TRIPS]
import { fork, type ChildProcess } from "node:child_process";
import net from "node:net";
import * as grpc from "@grpc/grpc-js";
import { EDGE_LINK_SERVICE, LINK_OPTIONS } from "../../services/router/grpc/service.js";

type Kind = "grpc" | "tcp";
const MESSAGE = Buffer.alloc(100, 120);

/** The echoing side: prints its port, answers "cpu" with its CPU time in microseconds. */
function serve(kind: Kind): void {
  const report = (port: number): void => void process.send!({ port });
  if (kind === "grpc") {
    const server = new grpc.Server(LINK_OPTIONS);
    server.addService(EDGE_LINK_SERVICE, {
      Attach: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => call.on("data", (b: Buffer) => call.write(b)),
    });
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => {
      if (err) throw err;
      report(port);
    });
  } else {
    const server = net.createServer({ noDelay: true }, (s) => s.on("data", (b) => s.write(b)));
    server.listen(0, "127.0.0.1", () => report((server.address() as net.AddressInfo).port));
  }
  process.on("message", (m) => {
    if (m !== "cpu") process.exit(0);
    const c = process.cpuUsage();
    process.send!({ cpu: c.user + c.system });
  });
}

const reply = <T>(child: ChildProcess, key: string): Promise<T> =>
  new Promise((resolve) => child.once("message", (m: Record<string, T>) => resolve(m[key])));

async function measure(kind: Kind, roundTrips: number): Promise<void> {
  const child = fork(process.argv[1], ["--serve", kind]);
  const port = await reply<number>(child, "port");
  let send: () => void;
  let onReply = (): void => undefined;
  let close: () => void;
  if (kind === "grpc") {
    const Client = grpc.makeGenericClientConstructor(EDGE_LINK_SERVICE, "EdgeLink");
    const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), LINK_OPTIONS);
    const call = (client as unknown as { Attach(): grpc.ClientDuplexStream<Buffer, Buffer> }).Attach();
    call.on("data", () => onReply());
    call.on("error", () => undefined);
    send = () => call.write(MESSAGE);
    close = () => { call.cancel(); client.close(); };
  } else {
    const socket = net.connect(port, "127.0.0.1");
    socket.setNoDelay(true);
    await new Promise((resolve) => socket.once("connect", resolve));
    socket.on("data", () => onReply());
    send = () => socket.write(MESSAGE);
    close = () => socket.destroy();
  }
  const run = (n: number): Promise<void> => new Promise((done) => {
    let back = 0;
    onReply = () => (++back === n ? done() : send());
    send();
  });
  const childCpu = (): Promise<number> => {
    child.send("cpu");
    return reply<number>(child, "cpu");
  };
  await run(5_000); // warm-up: V8 optimises both sides' paths
  for (let round = 1; round <= 3; round++) {
    const [server0, own0, t0] = [await childCpu(), process.cpuUsage(), performance.now()];
    await run(roundTrips);
    const [t1, own1, server1] = [performance.now(), process.cpuUsage(), await childCpu()];
    const per = (us: number): string => (us / roundTrips).toFixed(1);
    console.log(`${kind} round ${round}: round trip ${per((t1 - t0) * 1000)} µs; CPU per round trip: ` +
      `client ${per(own1.user + own1.system - own0.user - own0.system)} µs, server ${per(server1 - server0)} µs`);
  }
  close();
  child.send("exit");
}

if (process.argv[2] === "--serve") serve(process.argv[3] as Kind);
else {
  const roundTrips = Number(process.argv[2] ?? 20_000);
  for (const kind of ["tcp", "grpc"] as const) await measure(kind, roundTrips);
}
