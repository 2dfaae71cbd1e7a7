// Bounded waits on events (never sleeps) or event-loop turns, and cleanup after each test,
// shared by the tests.
import { afterAll, afterEach, beforeAll, expect } from "vitest";
import { Events, StringCodec, type NatsConnection } from "nats";

const sc = StringCodec();

/** The next event-loop turn (check phase): what setImmediate scheduled before this has run. */
export const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Waits turn by turn until `done()` and returns how many turns that took; past `maxTurns`,
 *  fails naming `state()`. For tests that count in turns, not time. */
export async function turnsUntil(done: () => boolean, maxTurns: number, state: () => string = () => "not done"): Promise<number> {
  let turns = 0;
  while (!done()) {
    if (++turns > maxTurns) throw new Error(`after ${maxTurns} turns: ${state()}`);
    await nextTurn();
  }
  return turns;
}

/** `work`, or a rejection naming what was still missing after `timeoutMs`. */
export async function withTimeout<T>(work: Promise<T>, timeoutMs: number, missing: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${missing()} within ${timeoutMs}ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The next `n` messages of a nats.js subscription, as "subject:payload". */
export async function take(sub: AsyncIterable<{ subject: string; data: Uint8Array }>, n: number, timeoutMs = 2_000): Promise<string[]> {
  const got: string[] = [];
  if (n === 0) return got;
  return withTimeout((async () => {
    for await (const m of sub) {
      got.push(`${m.subject}:${sc.decode(m.data)}`);
      if (got.length === n) return got;
    }
    throw new Error(`subscription ended after ${JSON.stringify(got)}`);
  })(), timeoutMs, () => `only ${JSON.stringify(got)}`);
}

/** The decoded data of a subscription's next message (nats.js or nats.ws). */
export function firstData(sub: AsyncIterable<{ data: Uint8Array }>, timeoutMs = 3_000): Promise<string> {
  return withTimeout((async () => {
    for await (const m of sub) return sc.decode(m.data);
    throw new Error("subscription ended");
  })(), timeoutMs, () => "no message");
}

/** Awaits a connect that must be refused (nats.js or nats.ws); resolves with the error the
 *  client rejected with, and fails when the connect was accepted. */
export async function refusal(connecting: Promise<{ close(): Promise<void> }>): Promise<{ code?: string; message: string }> {
  let nc: { close(): Promise<void> };
  try {
    nc = await connecting;
  } catch (err) {
    return err as { code?: string; message: string };
  }
  await nc.close();
  throw new Error("the connect was accepted");
}

/** The next permission error nats.js reports on the connection's status stream. */
export function nextPermissionError(nc: NatsConnection, timeoutMs = 2_000): Promise<{ operation: string; subject: string }> {
  return withTimeout((async () => {
    for await (const s of nc.status()) {
      if (s.type === Events.Error && s.permissionContext) return s.permissionContext;
    }
    throw new Error("status stream ended without a permission error");
  })(), timeoutMs, () => "no permission error");
}

/**
 * Asks again until `pred` holds, for state a server changes on its own schedule (it notices a
 * client's close when the socket event comes); fails after `timeoutMs` with the last answer.
 */
export async function askUntil<T>(ask: () => Promise<T>, pred: (v: T) => boolean, timeoutMs = 3_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await ask();
    if (pred(v)) return v;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs}ms; last: ${JSON.stringify(v)}`);
  }
}

/** Teardowns a test registers (stop a server, close a client, remove a dir); they run last
 *  first, and one that fails (its object already gone) does not keep the rest from running. */
export class Cleanups {
  private readonly stack: Array<() => unknown> = [];
  push(...fns: Array<() => unknown>): void {
    this.stack.push(...fns);
  }
  async run(): Promise<void> {
    for (const fn of this.stack.splice(0).reverse()) {
      try {
        await fn();
      } catch {
        // already gone
      }
    }
  }
}

/** Cleanups that run after each test of the file. */
export function cleanupAfterEach(): Cleanups {
  const cleanups = new Cleanups();
  afterEach(() => cleanups.run());
  return cleanups;
}

/**
 * For tests that run the broker in-process and must prove a fault stayed inside its connection:
 * any uncaught exception or unhandled rejection during a test of the file fails that test.
 */
export function failOnEscapedFaults(): void {
  const escaped: unknown[] = [];
  const record = (err: unknown) => { escaped.push(err); };
  beforeAll(() => {
    process.on("uncaughtException", record);
    process.on("unhandledRejection", record);
  });
  afterAll(() => {
    process.off("uncaughtException", record);
    process.off("unhandledRejection", record);
  });
  afterEach(() => {
    const errs = escaped.splice(0).map((e) => (e instanceof Error ? e.stack : String(e)));
    expect(errs, "faults that escaped their connection").toEqual([]);
  });
}
