/**
 * The operation catalogue: every public operation declared in src/ops/, in the order the MCP
 * `workspace-full` profile lists tools and CLI help lists commands. The CLI builds commands from
 * it, the MCP server registers tools from it, and the contract is derived from it.
 */
import type { AnyOperation } from "./op.js";
import { vmRun, workspaceCreate, workspaceDelete, workspaceExec, workspaceList, workspaceLogs, workspaceReap, workspaceStart, workspaceStatus, workspaceStop, workspaceUpdate } from "./workspace.js";

export const OPERATIONS: readonly AnyOperation[] = [
  vmRun,
  workspaceCreate,
  workspaceList,
  workspaceStatus,
  workspaceUpdate,
  workspaceExec,
  workspaceLogs,
  workspaceStop,
  workspaceStart,
  workspaceDelete,
  workspaceReap,
];
