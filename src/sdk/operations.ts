/**
 * `WorkspaceOperations`: the id-first operations on one workspace, as `Pyro` offers them. The
 * `Workspace` handle is written against this interface rather than the `Pyro` class, so the
 * facade can hand out handles without the two files importing each other. Types only.
 */
import type { ForkWorkspaceOptions, UpdateWorkspaceOptions } from "../core/manager.js";
import type { NetworkChange, NetworkShowResult } from "../core/network.js";
import type { StartServiceOptions, WorkspaceServices } from "../core/services.js";
import type { ShellReadOptions, WorkspaceShells } from "../core/shells.js";
import type { WorkspaceSummary } from "../core/summary.js";
import type { CommandRecord, ExecResult, WorkspaceInfo } from "../core/types.js";
import type { WorkspaceContent } from "../core/workspace-content.js";
import type { DiffOptions, ExecWorkspaceOptions, ListFilesOptions, OpenShellOptions, ReadFileOptions } from "./options.js";

/** What core's capability method `K` resolves to: the facade returns core's results unchanged. */
type ContentResult<K extends "syncPush" | "fileList" | "fileRead" | "fileWrite" | "patchApply" | "export" | "diff" | "snapshotCreate" | "snapshotList" | "snapshotDelete" | "diskList" | "diskRead" | "diskExport"> = ReturnType<WorkspaceContent[K]>;
type ServiceResult<K extends "start" | "list" | "status" | "logs" | "stop"> = ReturnType<WorkspaceServices[K]>;
type ShellResult<K extends "open" | "read" | "write" | "signal" | "resize" | "close" | "list"> = ReturnType<WorkspaceShells[K]>;

export interface WorkspaceOperations {
  statusWorkspace(workspace: string): Promise<WorkspaceInfo>;
  updateWorkspace(workspace: string, options: UpdateWorkspaceOptions): Promise<WorkspaceInfo>;
  execWorkspace(workspace: string, options: ExecWorkspaceOptions): Promise<ExecResult>;
  logsWorkspace(workspace: string, options?: { limit?: number }): Promise<{ workspace_id: string; count: number; total: number; commands: CommandRecord[] }>;
  stopWorkspace(workspace: string): Promise<WorkspaceInfo>;
  startWorkspace(workspace: string): Promise<WorkspaceInfo>;
  deleteWorkspace(workspace: string): Promise<{ workspace_id: string; deleted: true }>;
  forkWorkspace(workspace: string, options?: ForkWorkspaceOptions): Promise<WorkspaceInfo>;
  resetWorkspace(workspace: string, options?: { snapshot?: string }): Promise<WorkspaceInfo & { reset_to: string }>;
  summarizeWorkspace(workspace: string): Promise<WorkspaceSummary>;

  pushWorkspaceSync(workspace: string, source: string, options?: { dest?: string }): ContentResult<"syncPush">;
  listWorkspaceFiles(workspace: string, options?: ListFilesOptions): ContentResult<"fileList">;
  readWorkspaceFile(workspace: string, path: string, options?: ReadFileOptions): ContentResult<"fileRead">;
  writeWorkspaceFile(workspace: string, path: string, options: { text: string; mode?: string | number }): ContentResult<"fileWrite">;
  applyWorkspacePatch(workspace: string, options: { patch: string }): ContentResult<"patchApply">;
  exportWorkspace(workspace: string, path: string, options: { outputPath: string; force?: boolean }): ContentResult<"export">;
  diffWorkspace(workspace: string, options?: DiffOptions): ContentResult<"diff">;

  createSnapshot(workspace: string, snapshotName: string): ContentResult<"snapshotCreate">;
  listSnapshots(workspace: string): ContentResult<"snapshotList">;
  deleteSnapshot(workspace: string, snapshotName: string): ContentResult<"snapshotDelete">;

  listWorkspaceDisk(workspace: string, options?: ListFilesOptions): ContentResult<"diskList">;
  readWorkspaceDisk(workspace: string, path: string, options?: ReadFileOptions): ContentResult<"diskRead">;
  exportWorkspaceDisk(workspace: string, options: { outputPath: string; force?: boolean }): ContentResult<"diskExport">;

  startService(workspace: string, serviceName: string, options: StartServiceOptions): ServiceResult<"start">;
  listServices(workspace: string): ServiceResult<"list">;
  statusService(workspace: string, serviceName: string): ServiceResult<"status">;
  logsService(workspace: string, serviceName: string, options?: { tailLines?: number; all?: boolean }): ServiceResult<"logs">;
  stopService(workspace: string, serviceName: string, options?: { graceSeconds?: number }): ServiceResult<"stop">;

  openShell(workspace: string, options?: OpenShellOptions): ShellResult<"open">;
  readShell(workspace: string, shellId: string, options?: ShellReadOptions): ShellResult<"read">;
  writeShell(workspace: string, shellId: string, options: { input: string; appendNewline?: boolean }): ShellResult<"write">;
  signalShell(workspace: string, shellId: string, options?: { signalName?: string }): ShellResult<"signal">;
  resizeShell(workspace: string, shellId: string, options: { cols: number; rows: number }): ShellResult<"resize">;
  closeShell(workspace: string, shellId: string): ShellResult<"close">;
  listShells(workspace: string): ShellResult<"list">;

  showWorkspaceNetwork(workspace: string): Promise<NetworkShowResult>;
  setWorkspaceNetwork(workspace: string, change: NetworkChange): Promise<NetworkShowResult>;
}
