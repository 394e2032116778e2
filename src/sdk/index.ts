/**
 * The package entry point: `import { Pyro } from "pyro-mcp"`.
 */
export { Pyro } from "./pyro.js";
export type { PyroOptions, ExecWorkspaceOptions, RunInVmOptions, RunResult, CreateWorkspaceInput, BackendOption } from "./pyro.js";
export { Workspace } from "./workspace.js";
export { PyroError, ERROR_CODES } from "../shared/errors.js";
export type { ErrorCode } from "../shared/errors.js";
export type { WorkspaceInfo, ExecResult, CommandRecord, WorkspaceSeed, WorkspaceState } from "../core/types.js";
export type { EnvironmentDetails, EnvironmentListEntry, PullProgress } from "../environments/index.js";
export type { DoctorReport } from "../core/doctor.js";
export type { WorkspaceSummary } from "../core/summary.js";
export type { NetworkOptions, NetworkChange, NetworkShowResult, WorkspaceNetworkInfo, PublishedPortInfo, PublishInput } from "../core/network.js";
export { CONTRACT, MCP_PROFILES, MCP_MODES } from "../contract.js";
export type { McpProfile, McpMode } from "../contract.js";
export type { McpServerOptions } from "../mcp/surfaces.js";
import type { McpServerOptions } from "../mcp/surfaces.js";

/** An MCP server over a new `Pyro` (state directory `home`, else the default); see `Pyro.createServer`. */
export async function createServer(options: McpServerOptions & { home?: string } = {}) {
  const { Pyro } = await import("./pyro.js");
  const { home, ...serverOptions } = options;
  return new Pyro(home ? { home } : {}).createServer(serverOptions);
}
