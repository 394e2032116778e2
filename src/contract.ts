/**
 * The public contract in one place: every CLI command and flag, SDK method and MCP tool, derived
 * from the operation declarations (src/ops/) plus the few commands that are no operation, and the
 * MCP profiles and modes. The contract test checks CLI help, the SDK class, the MCP tool list and
 * docs/public-contract.md against this module, so a surface can never drift from the others
 * unnoticed. Pure data.
 */
import { OPERATIONS } from "./ops/index.js";
import { cliFlagNames, cliManifest } from "./ops/manifest.js";

export interface CliCommandContract {
  /** Words after `pyro`, e.g. "workspace exec". */
  command: string;
  /** Long flags the command accepts (besides --help). */
  flags: string[];
}

const JSON_FLAG = "--json";
/** The serve flags every `pyro host` command passes through to the canonical serve command. */
const HOST_FLAGS = ["--profile", "--mode", "--project-path", "--repo-url", "--repo-ref", "--no-project-source", JSON_FLAG];

/**
 * Commands that are no operation of the SDK: connecting chat hosts, the demo, and serving MCP
 * itself. Written by hand in cli/ (hosts.ts, serve.ts), so listed by hand here.
 */
const CLI_ONLY_COMMANDS: readonly CliCommandContract[] = [
  { command: "host connect", flags: HOST_FLAGS },
  { command: "host print-config", flags: HOST_FLAGS },
  { command: "host doctor", flags: HOST_FLAGS },
  { command: "host repair", flags: HOST_FLAGS },
  { command: "demo", flags: [JSON_FLAG] },
  { command: "mcp serve", flags: ["--profile", "--mode", "--http", "--host", "--port", "--token", "--project-path", "--repo-url", "--repo-ref", "--no-project-source"] },
];

/** Every CLI command: one per operation that has CLI words, with its flags, then the CLI-only ones. */
export const CLI_COMMANDS: readonly CliCommandContract[] = [
  ...cliManifest(OPERATIONS).map((spec) => ({ command: spec.words, flags: cliFlagNames(spec) })),
  ...CLI_ONLY_COMMANDS,
];

/** Every public method of `Pyro`: one per operation, and the ones that are no operation. */
export const SDK_METHODS: readonly string[] = [...OPERATIONS.flatMap((o) => (o.sdk ? [o.sdk] : [])), "projectSource", "workspace", "createServer", "close"];

/** Every MCP tool, in the order the workspace-full profile lists them. */
export const MCP_TOOLS: readonly string[] = OPERATIONS.flatMap((o) => (o.mcp ? [o.mcp] : []));

export type McpToolName = string;

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
    "workspace_fork",
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
  sdk: { option: string; methods: readonly string[] };
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
