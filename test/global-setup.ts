/**
 * Builds the shared debian:12 environment once before any test file runs (files then share it
 * read-only), so parallel test files never race to build it.
 */
import { SHARED_HOME, TEST_ENVIRONMENT } from "./helpers.js";
import { EnvironmentStore } from "../src/environments/index.js";
import { agentImage, guestKit, rootImage } from "../src/runtime/vm/kit.js";

export default async function setup(): Promise<void> {
  const store = new EnvironmentStore(SHARED_HOME);
  // debian:12-build (python3, build tools) is derived from debian:12: one more layer, for the
  // tests that drive a Python REPL.
  for (const environment of [TEST_ENVIRONMENT, "debian:12-build"]) {
    await store.pull(environment, {
      onProgress: (e) => process.stderr.write(`[test setup] ${e.phase} ${e.environment} ${e.message}\n`),
    });
  }
  // The VM run's guest kit (Debian's cloud kernel, an initramfs), agent image and debian:12 root
  // image, built once here rather than inside the first test that boots a guest.
  process.stderr.write("[test setup] vm guest kit and images\n");
  await guestKit(SHARED_HOME);
  await agentImage(SHARED_HOME);
  await rootImage(SHARED_HOME, await store.layers(TEST_ENVIRONMENT));
}
