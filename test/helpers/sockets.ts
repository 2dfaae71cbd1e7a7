// Aborting a process's TCP connections from outside, as a network blip does: `ss -K` makes the
// kernel reset them at both ends (ECONNABORTED here, a reset at the peer). It needs CAP_NET_ADMIN
// and a kernel built with INET_DIAG_DESTROY; `cannotAbortSockets` says why not, if so.
import { execFileSync } from "node:child_process";
import { once } from "node:events";
import net from "node:net";

/** Why `ss -K` cannot abort a TCP connection here, tried on one of this process; undefined: it can. */
export async function cannotAbortSockets(): Promise<string | undefined> {
  const server = net.createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as net.AddressInfo).port;
  const client = net.connect(port, "127.0.0.1");
  const accepted = once(server, "connection") as Promise<[net.Socket]>;
  let peer: net.Socket | undefined;
  try {
    await once(client, "connect");
    [peer] = await accepted;
    peer.on("error", () => {}); // ECONNRESET: the abort seen from the other end
    client.on("error", () => {}); // ECONNABORTED: what is expected
    client.resume(); // reading, so that the abort is seen
    const closed = new Promise((resolve) => client.once("close", resolve));
    kill(client.localPort!, port);
    const timer = new Promise((r) => setTimeout(r, 1_000));
    return (await Promise.race([closed.then(() => "closed"), timer])) === "closed" ? undefined : "ss -K left the connection open";
  } catch (err) {
    return `ss -K failed: ${(err as Error).message}`;
  } finally {
    client.destroy();
    peer?.destroy();
    server.close();
  }
}

/** Aborts the established loopback TCP connections of process `pid` to port `peerPort`;
 *  returns how many. */
export function abortConnections(pid: number, peerPort: number): number {
  const out = execFileSync("ss", ["-tnpH", "state", "established"], { encoding: "utf8" });
  let n = 0;
  for (const line of out.split("\n")) {
    const m = /\S+:(\d+)\s+\S+:(\d+)\s+users:\(\(.*?pid=(\d+),/.exec(line);
    if (!m || Number(m[3]) !== pid || Number(m[2]) !== peerPort) continue;
    kill(Number(m[1]), peerPort);
    n++;
  }
  return n;
}

function kill(localPort: number, peerPort: number): void {
  execFileSync("ss", ["-K", "-t", "dst", "127.0.0.1", "dport", "=", `:${peerPort}`, "sport", "=", `:${localPort}`], { stdio: "pipe" });
}
