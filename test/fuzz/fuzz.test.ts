// The short fuzz pass `make test` runs: each surface for a few seconds on a fixed seed (FUZZ_SEED
// overrides it), then every saved crash input in test/fuzz/corpus/ replayed. A crash here is saved
// there too, for FUZZ_REPLAY. `make fuzz` runs the
// long pass (test/fuzz/run.ts).
import { readdirSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { CORPUS_DIR, replayFile, runSurface } from "./harness.js";
import { SURFACES } from "./surfaces.js";

const SEED = Number(process.env.FUZZ_SEED ?? 8);

/** Saved crashes whose fix is not merged yet: replayed once it is (each names its file). */
const OPEN_CRASHES = new Set<string>([]);

describe("short fuzz pass", () => {
  it.each(SURFACES.map((s) => [s.name, s] as const))("%s: no crash, probes answer, connections all closed", async (_name, surface) => {
    const rows = await runSurface(surface, { seed: SEED, inputs: 1_500, seconds: 5, probeEvery: 150 });
    for (const r of rows) {
      expect(r.crashes, `${r.surface}/${r.variant} (seed ${SEED}); replay with FUZZ_REPLAY=<file>`).toEqual([]);
      expect(r.lingering, `${r.surface}/${r.variant}: connections the broker still counts`).toBe(0);
      expect(r.inputs).toBeGreaterThan(0);
      // Bounded growth: a short pass settles well within this.
      if (r.rssWarmKb > 0) expect(r.rssEndKb, `${r.surface}/${r.variant} RSS (KB)`).toBeLessThan(r.rssWarmKb * 2.5);
    }
  }, 90_000);
});

const saved = readdirSync(CORPUS_DIR, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".json")).sort();
const replay = async (file: string) => expect(await replayFile(path.join(CORPUS_DIR, file), SURFACES)).toBeUndefined();

describe.skipIf(saved.length === 0)("saved crash inputs", () => {
  it.each(saved.filter((f) => !OPEN_CRASHES.has(f)))("%s no longer crashes the broker", replay, 30_000);
  it.skip.each(saved.filter((f) => OPEN_CRASHES.has(f)))("%s (fix not merged yet)", replay, 30_000);
});
