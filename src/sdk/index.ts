/**
 * The package entry point: `import { Pyro } from "pyro-mcp"`.
 */
export { Pyro } from "./pyro.js";
export type { PyroOptions, ExecWorkspaceOptions, RunInVmOptions, RunResult, CreateWorkspaceInput } from "./pyro.js";
export { Workspace } from "./workspace.js";
export { PyroError, ERROR_CODES } from "../shared/errors.js";
export type { ErrorCode } from "../shared/errors.js";
export type { WorkspaceInfo, ExecResult, CommandRecord, WorkspaceSeed, WorkspaceState } from "../core/types.js";
export type { EnvironmentDetails, EnvironmentListEntry, PullProgress } from "../environments/index.js";
export type { DoctorReport } from "../core/doctor.js";
export { CONTRACT } from "../contract.js";
export async function createServer(options: { profile?: string; home?: string } = {}) {
  const { Pyro } = await import("./pyro.js");
  return new Pyro(options.home ? { home: options.home } : {}).createServer(options);
}
