import { defineConfig } from "vitest/config";

// The short fuzz pass (test/fuzz/*.test.ts), run by `make test` after the main suite: one file,
// surfaces one after another, each against its own broker process.
export default defineConfig({
  test: {
    include: ["test/fuzz/**/*.test.ts"],
    testTimeout: 90_000,
    hookTimeout: 30_000,
    fileParallelism: false,
  },
});
