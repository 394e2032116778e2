/**
 * What this package's own CLI and tests need beyond the public API, reached from a `Pyro`
 * without widening it: exec output as raw bytes, the raw one-shot run, aborting runs in flight
 * on a signal, and the core composition root itself. Not exported from the package entry;
 * nothing here is part of the public contract (src/contract.ts).
 */
import type { Workspaces } from "../core/workspaces.js";
import type { RawExecResult } from "../core/types.js";
import { boundCore } from "./core-binding.js";
import { toExecOptions, toOneShotOptions } from "./options.js";
import type { ExecWorkspaceOptions, RunInVmOptions } from "./options.js";
import type { Pyro } from "./pyro.js";

/** The core composition root a `Pyro` forwards to. */
export function coreOf(pyro: Pyro): Workspaces {
  return boundCore(pyro);
}

/** `execWorkspace` with output as bytes, exactly as written (head and tail kept). */
export function execWorkspaceRaw(pyro: Pyro, workspace: string, options: ExecWorkspaceOptions): Promise<RawExecResult> {
  return coreOf(pyro).exec.execRaw(workspace, toExecOptions(options));
}

/** `runInVm` with output as bytes, exactly as written (head and tail kept). */
export function runInVmRaw(pyro: Pyro, options: RunInVmOptions): Promise<RawExecResult & { environment: string }> {
  return coreOf(pyro).runs.run(toOneShotOptions(options));
}

/** Deletes the workspaces of one-shot runs still in flight (used on SIGINT/SIGTERM). */
export function abortRuns(pyro: Pyro): Promise<void> {
  return coreOf(pyro).runs.abort();
}
