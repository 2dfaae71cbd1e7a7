// Listen addresses: binding them, and formatting them for logs and INFO.
import type net from "node:net";
import os from "node:os";

/** "host:port", with IPv6 hosts in brackets. */
export function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * An advertise value (`client_advertise`) as host and port: "host:port", "[v6]:port", or a bare
 * host, which takes the listener's port (as nats-server).
 */
export function advertisedAddress(advertise: string, listenPort: number): { host: string; port: number } {
  const m = advertise.match(/^\[([^\]]+)\](?::(\d+))?$/) ?? advertise.match(/^([^:]+)(?::(\d+))?$/);
  if (!m) return { host: advertise, port: listenPort }; // a bare IPv6 address
  return { host: m[1], port: m[2] === undefined ? listenPort : Number(m[2]) };
}

/**
 * The address others dial to reach a listener on `host:port`: the host itself, or for a
 * wildcard host (0.0.0.0, ::) this machine's first non-loopback IPv4 address (nats-server
 * advertises its interfaces' addresses the same way), else 127.0.0.1.
 */
export function reachableAddress(host: string, port: number): string {
  if (host !== "0.0.0.0" && host !== "::" && host !== "") return hostPort(host, port);
  for (const addrs of Object.values(os.networkInterfaces())) {
    const a = addrs?.find((x) => x.family === "IPv4" && !x.internal);
    if (a) return hostPort(a.address, port);
  }
  return hostPort("127.0.0.1", port);
}

/**
 * Binds a listener and resolves with the port it got (the configured one may be 0). A bind
 * error rejects; later errors go to `onError`. The port is returned rather than read from
 * `server.address()` later, which is null once the listener is closed (lame duck).
 */
export function listenOn(server: net.Server, port: number, host: string, onError: (err: Error) => void): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    // A burst of connections must not overflow the accept queue: the kernel caps the backlog at
    // net.core.somaxconn, as for nats-server (Go asks for that). With Node's default of 511 the
    // handshakes past it are dropped and retried by the peer after 1 s, 3 s, 7 s...
    server.listen({ port, host, backlog: 65_535 }, () => {
      server.off("error", reject);
      server.on("error", onError);
      const addr = server.address();
      resolve(addr && typeof addr === "object" ? addr.port : port);
    });
  });
}
