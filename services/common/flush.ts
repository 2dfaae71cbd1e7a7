// When batched writes leave: the link batchers (router/wire/batcher.ts) and the client write
// buffers (edge/outbound.ts) follow one rule.

/**
 * A writer whose last write left longer ago than this (ms) is idle: its next write leaves as
 * soon as the code that queued it returns (a microtask), so that a lone message (a request, its
 * reply) crosses each hop without waiting for a turn of the event loop. A busy one writes once
 * per turn (setImmediate), gathering everything queued in the turn, as Nagle's rule does.
 */
const FLUSH_IDLE_MS = 0.25;

/** A writer whose last write left at `lastAt` (performance.now()) is idle: flush at the end of the task. */
export const isIdle = (lastAt: number, now = performance.now()): boolean => now - lastAt > FLUSH_IDLE_MS;
