// The cluster interest case: how long after a client's last SUB is flushed (its PONG) the
// other node routes messages to it, with N subscriptions sent at once.
import { rawConnect, type RawClient } from "../helpers/raw.js";

const CONNECT = 'CONNECT {"verbose":false,"pedantic":false,"echo":false}\r\nPING\r\n';
/** How often the publisher on the other node tries the last subscription's subject. */
const PROBE_EVERY_MS = 1;

async function connect(port: number, timeoutMs: number): Promise<RawClient> {
  const c = await rawConnect(port);
  await c.expect(/^INFO .*\r\n/, timeoutMs);
  await c.send(CONNECT);
  await c.expect(/PONG\r\n/, timeoutMs);
  return c;
}

export interface InterestResult {
  /** From the first SUB written to the PONG after the last. */
  flushMs: number;
  /** From that PONG to the first message delivered on the last subject from the other node. */
  reachMs: number;
}

export async function measureInterest(subPort: number, pubPort: number, count: number, timeoutMs: number): Promise<InterestResult> {
  const [sub, pub] = await Promise.all([connect(subPort, timeoutMs), connect(pubPort, timeoutMs)]);
  let timer: NodeJS.Timeout | undefined;
  try {
    const lines: string[] = [];
    for (let i = 0; i < count; i++) lines.push(`SUB interest.${i} ${i + 1}\r\n`);
    const from = sub.received().length;
    const t0 = performance.now();
    await sub.send(lines.join("") + "PING\r\n");
    await sub.expect(/PONG\r\n/, timeoutMs, from);
    const flushed = performance.now();
    const last = `interest.${count - 1}`;
    const seen = sub.expect(new RegExp(`MSG ${last.replace(".", "\\.")} `), timeoutMs, from);
    const probe = `PUB ${last} 1\r\nx\r\n`;
    void pub.send(probe);
    timer = setInterval(() => void pub.send(probe), PROBE_EVERY_MS);
    await seen;
    return { flushMs: flushed - t0, reachMs: performance.now() - flushed };
  } finally {
    clearInterval(timer);
    await Promise.all([sub.close(), pub.close()]);
  }
}
