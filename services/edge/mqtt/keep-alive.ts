// Keep-alive for every MQTT connection with one timer: a Timeout and its closure per connection
// cost about 200 bytes of an idle connection. The sweep runs while any connection has a
// keep-alive, and closes each one silent for its limit, at most SWEEP_MS late.

/** How often silent connections are looked for (the lateness of a keep-alive close). */
const SWEEP_MS = 250;

export interface KeptAlive {
  readonly lastActivityMs: number;
  /** [MQTT-3.1.2-24] one and a half keep-alive periods, in milliseconds. */
  readonly keepAliveMs: number;
  /** Closes the connection (which then calls unwatch). */
  keepAliveExpired(): void;
}

const watched = new Set<KeptAlive>();
let timer: NodeJS.Timeout | undefined;

export function watchKeepAlive(c: KeptAlive): void {
  watched.add(c);
  // Unreferenced: the connections' sockets keep the process alive, not their keep-alive.
  timer ??= setInterval(sweep, SWEEP_MS).unref();
}

export function unwatchKeepAlive(c: KeptAlive): void {
  if (!watched.delete(c) || watched.size > 0 || !timer) return;
  clearInterval(timer);
  timer = undefined;
}

function sweep(): void {
  const now = Date.now();
  // Deleting the entry being visited (close → unwatch) is safe in a Set iteration.
  for (const c of watched) if (now - c.lastActivityMs >= c.keepAliveMs) c.keepAliveExpired();
}
