import { defineConfig } from "vitest/config";

// `make test-image` only: builds the container image (minutes when cold), so `make test` skips it.
export default defineConfig({
  test: {
    include: ["test/image/**/*.test.ts"],
    testTimeout: 60_000,
    // the image build in beforeAll: about 3 min here with cached base images, 5 min cold
    hookTimeout: 15 * 60_000,
  },
});
