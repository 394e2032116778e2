import { configDefaults, defineConfig } from "vitest/config";

/**
 * The workspace feature files — exec and lifecycle, files, patch, diff, snapshots, reset, disk
 * tools, services, shells, secrets — run once per backend: the same tests, with PYRO_BACKEND
 * choosing where the workspaces live. The VM run uses TCG emulation on hosts without working
 * KVM, so its guests boot in seconds rather than milliseconds: it gets longer timeouts.
 */
const PER_BACKEND = [
  "test/integration/workspace-sdk.test.ts",
  "test/integration/content.test.ts",
  "test/integration/agent-services.test.ts",
  "test/integration/agent-shells.test.ts",
  "test/integration/services-secrets.test.ts",
];

/** Files about the VM backend alone (its guests, image environments booted as VMs). */
const VM_ONLY = ["test/integration/vm.test.ts", "test/integration/vm-images.test.ts"];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 600_000,
    // Integration files start real sandboxes; two workers match the 2-core machines we run on.
    maxWorkers: 2,
    globalSetup: ["test/global-setup.ts"],
    projects: [
      // The projects run one after the other: emulated guests keep both cores busy, and the
      // namespace files' timing-sensitive tests (terminal echo, idle waits) should not share them.
      { extends: true, test: { name: "namespace", include: ["test/**/*.test.ts"], exclude: [...configDefaults.exclude, ...VM_ONLY], env: { PYRO_BACKEND: "namespace" }, sequence: { groupOrder: 0 } } },
      { extends: true, test: { name: "vm", include: [...PER_BACKEND, ...VM_ONLY], env: { PYRO_BACKEND: "vm" }, testTimeout: 300_000, sequence: { groupOrder: 1 } } },
    ],
  },
});
