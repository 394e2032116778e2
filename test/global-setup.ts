/**
 * Builds the shared debian:12 environment once before any test file runs (files then share it
 * read-only), so parallel test files never race to build it.
 */
import { SHARED_HOME, TEST_ENVIRONMENT } from "./helpers.js";
import { EnvironmentStore } from "../src/environments/index.js";

export default async function setup(): Promise<void> {
  const store = new EnvironmentStore(SHARED_HOME);
  // debian:12-build (python3, build tools) is derived from debian:12: one more layer, for the
  // tests that drive a Python REPL.
  for (const environment of [TEST_ENVIRONMENT, "debian:12-build"]) {
    await store.pull(environment, {
      onProgress: (e) => process.stderr.write(`[test setup] ${e.phase} ${e.environment} ${e.message}\n`),
    });
  }
}
