/**
 * The package entry point: `import { Pyro } from "pyro-mcp"`. It sits above both the SDK and the
 * MCP server, so neither imports the other: `Pyro` here is the SDK facade plus `createServer`,
 * which builds an MCP server over it (the MCP code loads only when a server is made).
 */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { Pyro as PyroFacade } from "./sdk/pyro.js";
import type { McpServerOptions } from "./mcp/surfaces.js";

export class Pyro extends PyroFacade {
  /**
   * An MCP server over this `Pyro`, showing one profile's tools (default `workspace-core`) or one
   * mode's. Not connected: give it to a transport or an in-memory pair.
   */
  async createServer(options: McpServerOptions = {}): Promise<McpServer> {
    const { createMcpServer } = await import("./mcp/server.js");
    return createMcpServer(this, options);
  }
}

/** An MCP server over a new `Pyro` (state directory `home`, else the default); see `Pyro.createServer`. */
export async function createServer(options: McpServerOptions & { home?: string } = {}): Promise<McpServer> {
  const { home, ...serverOptions } = options;
  return new Pyro(home ? { home } : {}).createServer(serverOptions);
}

export type { PyroOptions, ExecWorkspaceOptions, RunInVmOptions, RunResult, CreateWorkspaceInput, BackendOption } from "./sdk/pyro.js";
export { Workspace } from "./sdk/workspace.js";
export { PyroError, ERROR_CODES } from "./shared/errors.js";
export type { ErrorCode } from "./shared/errors.js";
export type { WorkspaceInfo, ExecResult, CommandRecord, WorkspaceSeed, WorkspaceState } from "./core/types.js";
export type { EnvironmentDetails, EnvironmentListEntry, PullProgress } from "./environments/index.js";
export type { DoctorReport } from "./core/doctor.js";
export type { WorkspaceSummary } from "./core/summary.js";
export type { NetworkOptions, NetworkChange, NetworkShowResult, WorkspaceNetworkInfo, PublishedPortInfo, PublishInput } from "./core/network.js";
export { CONTRACT, MCP_PROFILES, MCP_MODES } from "./contract.js";
export type { McpProfile, McpMode } from "./contract.js";
export type { McpServerOptions } from "./mcp/surfaces.js";
