/**
 * The public contract in one place: every CLI command and flag, SDK method and MCP tool. The
 * contract test checks CLI help, the SDK class, the MCP tool list and docs/public-contract.md
 * against this module, so a surface can never drift from the others unnoticed. Pure data.
 */

export interface CliCommandContract {
  /** Words after `pyro`, e.g. "workspace exec". */
  command: string;
  /** Long flags the command accepts (besides --help). */
  flags: string[];
}

const JSON_FLAG = "--json";

export const CLI_COMMANDS: readonly CliCommandContract[] = [
  { command: "doctor", flags: [JSON_FLAG] },
  { command: "demo", flags: [JSON_FLAG] },
  { command: "env list", flags: [JSON_FLAG] },
  { command: "env pull", flags: ["--mirror", "--force", JSON_FLAG] },
  { command: "env inspect", flags: [JSON_FLAG] },
  { command: "env prune", flags: [JSON_FLAG] },
  { command: "env import", flags: [JSON_FLAG] },
  {
    command: "run",
    flags: ["--vcpu-count", "--mem-mib", "--timeout-seconds", "--ttl-seconds", "--env", "--shell", "--stdin", "--max-output-bytes", JSON_FLAG],
  },
  {
    command: "workspace create",
    flags: ["--name", "--label", "--seed-path", "--vcpu-count", "--mem-mib", "--ttl-seconds", "--secret", "--secret-file", JSON_FLAG, "--id-only"],
  },
  { command: "workspace list", flags: [JSON_FLAG] },
  { command: "workspace status", flags: [JSON_FLAG] },
  { command: "workspace update", flags: ["--name", "--label", "--clear-label", JSON_FLAG] },
  { command: "workspace exec", flags: ["--timeout-seconds", "--env", "--cwd", "--shell", "--stdin", "--max-output-bytes", "--secret-env", JSON_FLAG] },
  { command: "workspace logs", flags: ["--limit", JSON_FLAG] },
  { command: "workspace stop", flags: [JSON_FLAG] },
  { command: "workspace start", flags: [JSON_FLAG] },
  { command: "workspace delete", flags: [JSON_FLAG] },
  { command: "workspace reap", flags: [JSON_FLAG] },
  { command: "workspace sync push", flags: ["--dest", JSON_FLAG] },
  { command: "workspace file list", flags: ["--recursive", "--max-entries", JSON_FLAG] },
  { command: "workspace file read", flags: ["--max-bytes", "--offset", "--content-only", JSON_FLAG] },
  { command: "workspace file write", flags: ["--text", "--text-file", "--mode", JSON_FLAG] },
  { command: "workspace patch apply", flags: ["--patch", "--patch-file", JSON_FLAG] },
  { command: "workspace export", flags: ["--output", "--force", JSON_FLAG] },
  { command: "workspace diff", flags: ["--path", "--snapshot", "--max-bytes", JSON_FLAG] },
  { command: "workspace snapshot create", flags: [JSON_FLAG] },
  { command: "workspace snapshot list", flags: [JSON_FLAG] },
  { command: "workspace snapshot delete", flags: [JSON_FLAG] },
  { command: "workspace reset", flags: ["--snapshot", JSON_FLAG] },
  { command: "workspace disk list", flags: ["--recursive", JSON_FLAG] },
  { command: "workspace disk read", flags: ["--max-bytes", "--offset", "--content-only", JSON_FLAG] },
  { command: "workspace disk export", flags: ["--output", "--force", JSON_FLAG] },
  { command: "mcp serve", flags: [] },
];

export const SDK_METHODS = [
  "doctor",
  "listEnvironments",
  "pullEnvironment",
  "inspectEnvironment",
  "importEnvironment",
  "pruneEnvironments",
  "runInVm",
  "createWorkspace",
  "listWorkspaces",
  "statusWorkspace",
  "updateWorkspace",
  "execWorkspace",
  "logsWorkspace",
  "stopWorkspace",
  "startWorkspace",
  "deleteWorkspace",
  "reapExpired",
  "pushWorkspaceSync",
  "listWorkspaceFiles",
  "readWorkspaceFile",
  "writeWorkspaceFile",
  "applyWorkspacePatch",
  "exportWorkspace",
  "diffWorkspace",
  "createSnapshot",
  "listSnapshots",
  "deleteSnapshot",
  "resetWorkspace",
  "listWorkspaceDisk",
  "readWorkspaceDisk",
  "exportWorkspaceDisk",
  "workspace",
  "createServer",
  "close",
] as const;

export const MCP_TOOLS = [
  "vm_run",
  "workspace_create",
  "workspace_list",
  "workspace_status",
  "workspace_update",
  "workspace_exec",
  "workspace_logs",
  "workspace_stop",
  "workspace_start",
  "workspace_delete",
  "workspace_sync_push",
  "workspace_file_list",
  "workspace_file_read",
  "workspace_file_write",
  "workspace_patch_apply",
  "workspace_export",
  "workspace_diff",
  "snapshot_create",
  "snapshot_list",
  "snapshot_delete",
  "workspace_reset",
  "workspace_disk_list",
  "workspace_disk_read",
  "workspace_disk_export",
] as const;

export type McpToolName = (typeof MCP_TOOLS)[number];

export const CONTRACT = { cli: CLI_COMMANDS, sdk: SDK_METHODS, mcp: MCP_TOOLS } as const;
