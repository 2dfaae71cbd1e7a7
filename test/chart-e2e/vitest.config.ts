import { defineConfig } from "vitest/config";

// `make test-chart` only: the chart on kube-sim (root; 46 s here), apart from `make test`.
export default defineConfig({
  test: {
    include: ["test/chart-e2e/**/*.test.ts"],
    testTimeout: 180_000,
    hookTimeout: 300_000,
  },
});
