// Listen addresses: binding them, and formatting them for logs and INFO.
import type net from "node:net";

/** "host:port", with IPv6 hosts in brackets. */
export function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
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
