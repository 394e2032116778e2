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
/** The serve flags every `pyro host` command passes through to the canonical serve command. */
const HOST_FLAGS = ["--profile", "--mode", "--project-path", "--repo-url", "--repo-ref", "--no-project-source", JSON_FLAG];

export const CLI_COMMANDS: readonly CliCommandContract[] = [
  { command: "doctor", flags: ["--environment", JSON_FLAG] },
  { command: "prepare", flags: ["--force", JSON_FLAG] },
  { command: "host connect", flags: HOST_FLAGS },
  { command: "host print-config", flags: HOST_FLAGS },
  { command: "host doctor", flags: HOST_FLAGS },
  { command: "host repair", flags: HOST_FLAGS },
  { command: "demo", flags: [JSON_FLAG] },
  { command: "env list", flags: [JSON_FLAG] },
  { command: "env pull", flags: ["--mirror", "--force", JSON_FLAG] },
  { command: "env inspect", flags: [JSON_FLAG] },
  { command: "env prune", flags: [JSON_FLAG] },
  { command: "env import", flags: [JSON_FLAG] },
  {
    command: "run",
    flags: ["--vcpu-count", "--mem-mib", "--timeout-seconds", "--ttl-seconds", "--env", "--cwd", "--shell", "--stdin", "--max-output-bytes", "--backend", "--network-policy", "--allow-host", "--allow-cidr", "--allow-host-loopback", JSON_FLAG],
  },
  {
    command: "workspace create",
    flags: ["--name", "--label", "--seed-path", "--vcpu-count", "--mem-mib", "--ttl-seconds", "--secret", "--secret-file", "--backend", "--network-policy", "--allow-host", "--allow-cidr", "--allow-host-loopback", JSON_FLAG, "--id-only"],
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
  { command: "workspace disk list", flags: ["--recursive", "--max-entries", JSON_FLAG] },
  { command: "workspace disk read", flags: ["--max-bytes", "--offset", "--content-only", JSON_FLAG] },
  { command: "workspace disk export", flags: ["--output", "--force", JSON_FLAG] },
  {
    command: "workspace service start",
    flags: ["--shell", "--cwd", "--ready-file", "--ready-tcp", "--ready-http", "--ready-command", "--ready-timeout-seconds", "--ready-interval-ms", "--env", "--secret-env", "--publish", JSON_FLAG],
  },
  { command: "workspace service list", flags: [JSON_FLAG] },
  { command: "workspace service status", flags: [JSON_FLAG] },
  { command: "workspace service logs", flags: ["--tail-lines", "--all", JSON_FLAG] },
  { command: "workspace service stop", flags: [JSON_FLAG] },
  { command: "workspace shell open", flags: ["--cwd", "--cols", "--rows", "--secret-env", JSON_FLAG, "--id-only"] },
  { command: "workspace shell read", flags: ["--cursor", "--max-chars", "--plain", "--wait-for-idle-ms", "--wait-for-pattern", "--timeout-ms", JSON_FLAG] },
  { command: "workspace shell write", flags: ["--input", "--no-newline", JSON_FLAG] },
  { command: "workspace shell signal", flags: ["--signal", JSON_FLAG] },
  { command: "workspace shell resize", flags: ["--cols", "--rows", JSON_FLAG] },
  { command: "workspace shell list", flags: [JSON_FLAG] },
  { command: "workspace shell close", flags: [JSON_FLAG] },
  { command: "workspace summary", flags: [JSON_FLAG] },
  { command: "workspace network show", flags: [JSON_FLAG] },
  {
    command: "workspace network set",
    flags: ["--network-policy", "--allow-host", "--allow-cidr", "--clear-allow-list", "--allow-host-loopback", "--no-allow-host-loopback", JSON_FLAG],
  },
  { command: "mcp serve", flags: ["--profile", "--mode", "--http", "--host", "--port", "--token", "--project-path", "--repo-url", "--repo-ref", "--no-project-source"] },
];

export const SDK_METHODS = [
  "doctor",
  "prepare",
  "projectSource",
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
  "summarizeWorkspace",
  "listWorkspaceDisk",
  "readWorkspaceDisk",
  "exportWorkspaceDisk",
  "startService",
  "listServices",
  "statusService",
  "logsService",
  "stopService",
  "openShell",
  "readShell",
  "writeShell",
  "signalShell",
  "resizeShell",
  "closeShell",
  "listShells",
  "showWorkspaceNetwork",
  "setWorkspaceNetwork",
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
  "workspace_summary",
  "workspace_disk_list",
  "workspace_disk_read",
  "workspace_disk_export",
  "service_start",
  "service_list",
  "service_status",
  "service_logs",
  "service_stop",
  "shell_open",
  "shell_read",
  "shell_write",
  "shell_signal",
  "shell_close",
  "workspace_network_show",
  "workspace_network_set",
] as const;

export type McpToolName = (typeof MCP_TOOLS)[number];

/**
 * MCP tool profiles (`pyro mcp serve --profile`, `createServer({ profile })`): how much of the
 * surface a chat host sees. A smaller list is easier for a model to choose from, so the default
 * is the workspace core, which covers the five core use cases; `workspace-full` adds shells,
 * services, snapshots, secrets, the disk tools and anything added later. Outside
 * `workspace-full`, tools take narrowed arguments: no secrets and no network fields.
 */
export const MCP_PROFILES = {
  "vm-run": ["vm_run"],
  "workspace-core": [
    "workspace_create",
    "workspace_list",
    "workspace_status",
    "workspace_update",
    "workspace_start",
    "workspace_exec",
    "workspace_logs",
    "workspace_sync_push",
    "workspace_file_list",
    "workspace_file_read",
    "workspace_file_write",
    "workspace_patch_apply",
    "workspace_diff",
    "workspace_export",
    "workspace_reset",
    "workspace_summary",
    "workspace_delete",
  ],
  "workspace-full": MCP_TOOLS,
} as const satisfies Record<string, readonly McpToolName[]>;

export type McpProfile = keyof typeof MCP_PROFILES;
export const MCP_DEFAULT_PROFILE: McpProfile = "workspace-core";

/**
 * MCP use-case modes (`pyro mcp serve --mode`, `createServer({ mode })`): one canonical tool set
 * per job, in the order the job uses them, with narrowed arguments and descriptions written for
 * that job. A mode is a complete tool set, so it is an alternative to a profile, never combined
 * with one. There is no way to define a mode of one's own: the no-mode profiles are the escape hatch.
 */
export const MCP_MODES = {
  "repro-fix": [
    "workspace_create",
    "workspace_list",
    "workspace_status",
    "workspace_update",
    "workspace_start",
    "workspace_exec",
    "workspace_file_list",
    "workspace_file_read",
    "workspace_patch_apply",
    "workspace_file_write",
    "workspace_diff",
    "workspace_export",
    "workspace_reset",
    "workspace_summary",
    "workspace_delete",
  ],
  inspect: [
    "workspace_create",
    "workspace_list",
    "workspace_status",
    "workspace_start",
    "workspace_file_list",
    "workspace_file_read",
    "workspace_exec",
    "workspace_diff",
    "workspace_export",
    "workspace_summary",
    "workspace_delete",
  ],
  "cold-start": [
    "workspace_create",
    "workspace_list",
    "workspace_status",
    "workspace_start",
    "workspace_file_list",
    "workspace_file_read",
    "workspace_exec",
    "service_start",
    "service_status",
    "service_logs",
    "service_list",
    "service_stop",
    "workspace_reset",
    "workspace_summary",
    "workspace_delete",
  ],
  "review-eval": [
    "workspace_create",
    "workspace_list",
    "workspace_status",
    "workspace_start",
    "snapshot_create",
    "snapshot_list",
    "workspace_file_list",
    "workspace_file_read",
    "shell_open",
    "shell_write",
    "shell_read",
    "shell_close",
    "workspace_exec",
    "workspace_diff",
    "workspace_summary",
    "workspace_export",
    "workspace_reset",
    "workspace_delete",
  ],
} as const satisfies Record<string, readonly McpToolName[]>;

export type McpMode = keyof typeof MCP_MODES;

/**
 * A choice offered on all three surfaces, each in its own spelling: the CLI flag on these
 * commands, the SDK option on these methods, the MCP argument on these tools (in every profile
 * and mode that lists the tool), each accepting exactly `values` and refusing anything else
 * with `invalid_argument`.
 */
export interface SurfaceOptionContract {
  cli: { flag: string; commands: readonly string[] };
  sdk: { option: string; methods: readonly (typeof SDK_METHODS)[number][] };
  mcp: { param: string; tools: readonly McpToolName[] };
  values: readonly string[];
}

export const SURFACE_OPTIONS: readonly SurfaceOptionContract[] = [
  {
    cli: { flag: "--backend", commands: ["run", "workspace create"] },
    sdk: { option: "backend", methods: ["runInVm", "createWorkspace"] },
    mcp: { param: "backend", tools: ["vm_run", "workspace_create"] },
    values: ["namespace", "vm", "auto"],
  },
];

export const CONTRACT = { cli: CLI_COMMANDS, sdk: SDK_METHODS, mcp: MCP_TOOLS, mcpProfiles: MCP_PROFILES, mcpModes: MCP_MODES, options: SURFACE_OPTIONS } as const;
