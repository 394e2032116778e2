/**
 * The host and its environments: doctor, prepare, and the environment commands (list, pull,
 * inspect, prune, import), declared once (see op.ts). CLI and SDK only for now: a model in a chat
 * has no use for building Debian roots by hand. An image reference (a name with a registry or
 * namespace part) is an environment like the others: pull, inspect and prune cover it.
 */
import * as z from "zod";
import { hostPath } from "../shared/host-path.js";
import { field, given, op } from "./op.js";
import * as render from "./render.js";

const environmentArg = (arg: string, label: string) => field(z.string().describe(label), { arg, label });

export const doctor = op({
  sdk: "doctor",
  cli: "doctor",
  summary: "Check this host: bubblewrap, namespaces, overlayfs, cgroups, state directory, the optional VM backend (QEMU, KVM); show the backend and limits that will be used",
  input: {
    environment: field(z.string().optional().describe("Also say whether the daily loop for this environment (a name or a pulled image reference) is warm, cold or stale."), { value: "<env>" }),
  },
  run: (pyro, a) => pyro.doctor(given({ environment: a.environment })),
  text: render.doctor,
  exitCode: (r) => (r.ok ? 0 : 1),
});

export const prepare = op({
  sdk: "prepare",
  cli: "prepare",
  summary: "Warm the daily loop: build the environment if needed and prove create → exec → reset → exec → delete once",
  input: {
    environment: field(z.string().optional().describe("Environment name or pulled image reference (default debian:12)."), { arg: "[environment]", label: "environment name or image reference (default debian:12)" }),
    force: field(z.boolean().optional().describe("Prove the cycle again even when warm.")),
  },
  run: (pyro, a, ctx) => pyro.prepare(a.environment ?? "debian:12", { force: a.force === true, ...given({ onProgress: ctx.progress }) }),
  text: (r) => `${r.environment}: ${r.state} — ${r.reason}\nCycle (ms): ${Object.entries(r.cycle_ms).map(([k, v]) => `${k} ${v}`).join(", ")}`,
});

export const envList = op({
  sdk: "listEnvironments",
  cli: "env list",
  summary: "List environments, installed or not, with their size",
  input: {},
  run: async (pyro) => {
    const environments = await pyro.listEnvironments();
    return { count: environments.length, environments };
  },
  text: (r) => render.environments(r.environments),
});

export const envPull = op({
  sdk: "pullEnvironment",
  cli: "env pull",
  summary: "Build a catalog environment from Debian packages (debootstrap), or pull an image by reference (REGISTRY/REPOSITORY[:TAG][@sha256:DIGEST]) and install its layers; fast when already installed",
  input: {
    environment: environmentArg("<environment>", "environment name (e.g. debian:12) or image reference (e.g. docker.io/library/node:22)"),
    mirror: field(z.string().optional().describe("Debian mirror (default: PYRO_DEBIAN_MIRROR, else the host's apt sources)."), { value: "<url>" }),
    force: field(z.boolean().optional().describe("Rebuild even if cached (an image: resolve its tag again and install what it names now).")),
  },
  run: (pyro, a, ctx) =>
    pyro.pullEnvironment(a.environment, {
      ...given({ mirror: a.mirror, force: a.force || undefined }),
      ...(ctx.progress ? { onProgress: (e: { phase: string; environment: string; message: string }) => ctx.progress?.(`[pull] phase=${e.phase} environment=${e.environment} ${e.message}`) } : {}),
    }),
  text: (m) => render.manifest(m),
});

export const envInspect = op({
  sdk: "inspectEnvironment",
  cli: "env inspect",
  summary: "Show an environment's manifest: packages, size, created, digest; for an image also its layers and config (env, user, working dir)",
  input: { environment: environmentArg("<environment>", "environment name or image reference") },
  run: (pyro, a) => pyro.inspectEnvironment(a.environment),
  text: (m) => render.manifest(m, true),
});

export const envPrune = op({
  sdk: "pruneEnvironments",
  cli: "env prune",
  summary: "Remove cached environments that no workspace uses, and the layers and image blobs nothing installed or running uses",
  input: {},
  run: (pyro) => pyro.pruneEnvironments(),
  text: (r) => (r.removed.length ? `Removed: ${r.removed.join(", ")} (${render.bytes(r.freed_bytes)} freed)` : "Nothing to prune."),
});

export const envImport = op({
  sdk: "importEnvironment",
  cli: "env import",
  summary:
    "Import a root filesystem from a directory or .tar/.tar.gz/.tgz as an environment (for hosts without a Debian mirror); under an image reference, an image from a docker save tarball or an OCI layout directory or tar, installed as a pull would (offline)",
  input: {
    environment: environmentArg("<environment>", "name to import as, or image reference (e.g. docker.io/library/node:22)"),
    source_path: field(z.string().describe("Root filesystem directory or archive; for an image reference a docker save tarball, an OCI layout directory or an OCI layout tar."), {
      arg: "<path>",
      label: "directory or archive (image: docker save tar or OCI layout)",
      parse: "hostPath",
    }),
  },
  run: (pyro, a) => pyro.importEnvironment(a.environment, hostPath(a.source_path, "source_path")),
  text: (m) => render.manifest(m),
});
