import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 600_000,
    // Integration files start real sandboxes; two workers match the 2-core machines we run on.
    maxWorkers: 2,
    globalSetup: ["test/global-setup.ts"],
  },
});
