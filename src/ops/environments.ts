/**
 * The host and its environments: doctor, prepare, and the environment commands (list, pull,
 * inspect, prune, import), declared once (see op.ts). CLI and SDK only for now: a model in a chat
 * has no use for building Debian roots by hand.
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
    environment: field(z.string().optional().describe("Also say whether the daily loop for this environment is warm, cold or stale."), { value: "<env>" }),
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
    environment: field(z.string().optional().describe("Environment name (default debian:12)."), { arg: "[environment]", label: "environment name (default debian:12)" }),
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
  summary: "Build an environment from Debian packages (debootstrap) and cache it; fast when already cached",
  input: {
    environment: environmentArg("<environment>", "environment name, e.g. debian:12"),
    mirror: field(z.string().optional().describe("Debian mirror (default: PYRO_DEBIAN_MIRROR, else the host's apt sources)."), { value: "<url>" }),
    force: field(z.boolean().optional().describe("Rebuild even if cached.")),
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
  summary: "Show an environment's manifest: packages, size, created, digest",
  input: { environment: environmentArg("<environment>", "environment name") },
  run: (pyro, a) => pyro.inspectEnvironment(a.environment),
  text: (m) => render.manifest(m, true),
});

export const envPrune = op({
  sdk: "pruneEnvironments",
  cli: "env prune",
  summary: "Remove cached environments that no workspace uses",
  input: {},
  run: (pyro) => pyro.pruneEnvironments(),
  text: (r) => (r.removed.length ? `Removed: ${r.removed.join(", ")} (${render.bytes(r.freed_bytes)} freed)` : "Nothing to prune."),
});

export const envImport = op({
  sdk: "importEnvironment",
  cli: "env import",
  summary: "Import a root filesystem from a directory or .tar/.tar.gz/.tgz as an environment (for hosts without a Debian mirror)",
  input: {
    environment: environmentArg("<environment>", "name to import as"),
    source_path: field(z.string().describe("Directory or archive."), { arg: "<path>", label: "directory or archive", parse: "hostPath" }),
  },
  run: (pyro, a) => pyro.importEnvironment(a.environment, hostPath(a.source_path, "source_path")),
  text: (m) => render.manifest(m),
});
