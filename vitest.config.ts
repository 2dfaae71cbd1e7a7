import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/unit/**/*.test.ts", "test/integration/**/*.test.ts", "test/chart/**/*.test.ts", "test/prometheus/**/*.test.ts"],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Integration tests start real servers on port 0; files run in parallel, tests in a file in order.
    fileParallelism: true,
    // Tests of a describe.concurrent block (cli.test.ts: each its own bin/meshbroker) two at a time:
    // most of each is node's startup, one core's work.
    maxConcurrency: 2,
    // Workers: vitest's default (one on 2 cores). maxWorkers: 2 was tried (README "Tests"): the
    // timed and cluster tests then fail on a loaded 2-core machine.
  },
});
