// bcrypt checks off the event loop. bcryptjs' own async compare yields only every 100 ms slice,
// so N concurrent checks cost the loop N × 100 ms per turn (20 bad CONNECTs measured: two turns
// in 1.5 s). Worker threads run bcryptjs' compareSync instead; if a worker can not run, the check
// falls back to bcryptjs' async compare on this thread.
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { compare as bcryptCompare } from "bcryptjs";

const POOL_MAX = 4;

// An eval'd CommonJS worker, so it runs the same from the TypeScript sources and from dist/.
const workerSource = (bcryptPath: string) => `
const { parentPort } = require("node:worker_threads");
const bcrypt = require(${JSON.stringify(bcryptPath)});
parentPort.on("message", (m) => {
  let ok = false;
  try { ok = bcrypt.compareSync(m.password, m.hash); } catch { ok = false; }
  parentPort.postMessage({ id: m.id, ok });
});
`;

interface Job { password: string; hash: string; resolve: (ok: boolean) => void }

class PooledWorker {
  readonly pending = new Map<number, Job>();
  /** Whether it ever answered: one that dies before that means workers can not run here. */
  answered = false;
  private readonly worker: Worker;

  constructor(source: string, private readonly onGone: (w: PooledWorker) => void) {
    this.worker = new Worker(source, { eval: true });
    this.worker.unref();
    this.worker.on("message", (m: { id: number; ok: boolean }) => {
      this.answered = true;
      const job = this.pending.get(m.id);
      if (!job) return;
      this.pending.delete(m.id);
      if (this.pending.size === 0) this.worker.unref();
      job.resolve(m.ok === true);
    });
    const gone = () => {
      this.onGone(this);
      for (const job of this.pending.values()) fallback(job);
      this.pending.clear();
    };
    this.worker.on("error", gone);
    this.worker.on("exit", gone);
  }

  run(id: number, job: Job): void {
    this.pending.set(id, job);
    this.worker.ref(); // a check in flight keeps the process alive until it answers
    this.worker.postMessage({ id, password: job.password, hash: job.hash });
  }
}

function fallback(job: Job): void {
  bcryptCompare(job.password, job.hash).then(job.resolve, () => job.resolve(false));
}

let source: string | undefined;
let workersBroken = false;
const workers: PooledWorker[] = [];
let nextId = 1;

/** Whether `password` matches the bcrypt `hash`; a malformed hash is a mismatch. */
export function bcryptMatches(password: string, hash: string): Promise<boolean> {
  return new Promise((resolve) => {
    const job: Job = { password, hash, resolve };
    const w = workersBroken ? undefined : pickWorker();
    if (w) w.run(nextId++, job);
    else fallback(job);
  });
}

function pickWorker(): PooledWorker | undefined {
  let best = workers.reduce<PooledWorker | undefined>((b, w) => (!b || w.pending.size < b.pending.size ? w : b), undefined);
  const size = Math.min(POOL_MAX, Math.max(1, availableParallelism() - 1));
  if ((!best || best.pending.size > 0) && workers.length < size) {
    try {
      source ??= workerSource(createRequire(import.meta.url).resolve("bcryptjs"));
      best = new PooledWorker(source, (gone) => {
        const i = workers.indexOf(gone);
        if (i >= 0) workers.splice(i, 1);
        if (!gone.answered) workersBroken = true;
      });
      workers.push(best);
    } catch {
      workersBroken = workers.length === 0;
    }
  }
  return best;
}
