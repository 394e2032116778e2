/**
 * The operation catalogue: every public operation declared in src/ops/, grouped by capability and
 * in the order CLI help and the MCP `workspace-full` profile list them. The CLI builds its commands
 * from it (cli/commands.ts), the MCP server registers its tools from it (mcp/registry.ts), and the
 * contract is derived from it (contract.ts).
 */
import type { AnyOperation } from "./op.js";
import { doctor, envImport, envInspect, envList, envPrune, envPull, prepare } from "./environments.js";
import { vmRun, workspaceCreate, workspaceDelete, workspaceFork, workspaceExec, workspaceList, workspaceLogs, workspaceReap, workspaceStart, workspaceStatus, workspaceStop, workspaceUpdate } from "./workspace.js";
import {
  snapshotCreate,
  snapshotDelete,
  snapshotList,
  workspaceDiff,
  workspaceDiskExport,
  workspaceDiskList,
  workspaceDiskRead,
  workspaceExport,
  workspaceFileList,
  workspaceFileRead,
  workspaceFileWrite,
  workspacePatchApply,
  workspaceReset,
  workspaceSummaryOp,
  workspaceSyncPush,
} from "./content.js";
import { serviceList, serviceLogs, serviceStart, serviceStatusOp, serviceStop, shellClose, shellList, shellOpen, shellRead, shellResize, shellSignal, shellWrite } from "./sessions.js";
import { workspaceNetworkSet, workspaceNetworkShow } from "./network.js";

/** The host and its environments. */
export const HOST_OPERATIONS: readonly AnyOperation[] = [doctor, prepare];
export const ENVIRONMENT_OPERATIONS: readonly AnyOperation[] = [envList, envPull, envInspect, envPrune, envImport];

/** The one-shot run and the workspace lifecycle, with exec. */
export const WORKSPACE_OPERATIONS: readonly AnyOperation[] = [vmRun, workspaceCreate, workspaceFork, workspaceList, workspaceStatus, workspaceUpdate, workspaceExec, workspaceLogs, workspaceStop, workspaceStart, workspaceDelete, workspaceReap];

/** What is in /workspace: moving it in and out, editing, reviewing, checkpoints. */
export const CONTENT_OPERATIONS: readonly AnyOperation[] = [
  workspaceSyncPush,
  workspaceFileList,
  workspaceFileRead,
  workspaceFileWrite,
  workspacePatchApply,
  workspaceExport,
  workspaceDiff,
  snapshotCreate,
  snapshotList,
  snapshotDelete,
  workspaceReset,
  workspaceSummaryOp,
  workspaceDiskList,
  workspaceDiskRead,
  workspaceDiskExport,
];

/** What runs in a workspace over time: services and shells. */
export const SESSION_OPERATIONS: readonly AnyOperation[] = [serviceStart, serviceList, serviceStatusOp, serviceLogs, serviceStop, shellOpen, shellRead, shellWrite, shellSignal, shellResize, shellClose, shellList];

/** A workspace's network, live. */
export const NETWORK_OPERATIONS: readonly AnyOperation[] = [workspaceNetworkShow, workspaceNetworkSet];

export const OPERATIONS: readonly AnyOperation[] = [...HOST_OPERATIONS, ...ENVIRONMENT_OPERATIONS, ...WORKSPACE_OPERATIONS, ...CONTENT_OPERATIONS, ...SESSION_OPERATIONS, ...NETWORK_OPERATIONS];
