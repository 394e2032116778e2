/**
 * The operation catalogue: every public operation declared in src/ops/, in the order the MCP
 * `workspace-full` profile lists tools and CLI help lists commands. The CLI builds commands from
 * it, the MCP server registers tools from it, and the contract is derived from it.
 */
import type { AnyOperation } from "./op.js";
import { vmRun, workspaceCreate, workspaceDelete, workspaceExec, workspaceList, workspaceLogs, workspaceReap, workspaceStart, workspaceStatus, workspaceStop, workspaceUpdate } from "./workspace.js";

import { snapshotCreate, snapshotDelete, snapshotList, workspaceDiff, workspaceDiskExport, workspaceDiskList, workspaceDiskRead, workspaceExport, workspaceFileList, workspaceFileRead, workspaceFileWrite, workspacePatchApply, workspaceReset, workspaceSummaryOp, workspaceSyncPush } from "./content.js";

/** Content operations, in the order the CLI and MCP list them. */
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

import { serviceList, serviceLogs, serviceStart, serviceStatusOp, serviceStop, shellClose, shellList, shellOpen, shellRead, shellResize, shellSignal, shellWrite } from "./sessions.js";
import { workspaceNetworkSet, workspaceNetworkShow } from "./network.js";

/** Services and shells: what runs in a workspace over time. */
export const SESSION_OPERATIONS: readonly AnyOperation[] = [serviceStart, serviceList, serviceStatusOp, serviceLogs, serviceStop, shellOpen, shellRead, shellWrite, shellSignal, shellResize, shellClose, shellList];

export const NETWORK_OPERATIONS: readonly AnyOperation[] = [workspaceNetworkShow, workspaceNetworkSet];

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
  ...CONTENT_OPERATIONS,
  ...SESSION_OPERATIONS,
  ...NETWORK_OPERATIONS,
];
