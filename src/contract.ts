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
    flags: ["--name", "--label", "--seed-path", "--vcpu-count", "--mem-mib", "--ttl-seconds", JSON_FLAG, "--id-only"],
  },
  { command: "workspace list", flags: [JSON_FLAG] },
  { command: "workspace status", flags: [JSON_FLAG] },
  { command: "workspace update", flags: ["--name", "--label", "--clear-label", JSON_FLAG] },
  { command: "workspace exec", flags: ["--timeout-seconds", "--env", "--cwd", "--shell", "--stdin", "--max-output-bytes", JSON_FLAG] },
  { command: "workspace logs", flags: ["--limit", JSON_FLAG] },
  { command: "workspace stop", flags: [JSON_FLAG] },
  { command: "workspace start", flags: [JSON_FLAG] },
  { command: "workspace delete", flags: [JSON_FLAG] },
  { command: "workspace reap", flags: [JSON_FLAG] },
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
] as const;

export type McpToolName = (typeof MCP_TOOLS)[number];

export const CONTRACT = { cli: CLI_COMMANDS, sdk: SDK_METHODS, mcp: MCP_TOOLS } as const;
