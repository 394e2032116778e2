/**
 * The MCP server: pyro's tools registered with the official MCP TypeScript SDK, each with a
 * description written for a model, a typed input schema, an output schema, structured content
 * and a short text rendering. Every tool is a direct call into the SDK; errors come back as
 * `isError` results carrying the stable error code and what to do next. Tools are defined once
 * (here and in the *-tools.ts files); the profile or mode (surfaces.ts) decides which of them a
 * server shows, with which arguments and descriptions. Transports live apart (stdio.ts, http.ts).
 */
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult, ToolAnnotations } from "@modelcontextprotocol/sdk/types.js";
import * as z from "zod";
import type { Pyro } from "../sdk/pyro.js";
import { PyroError } from "../shared/errors.js";
import { hostPath } from "../shared/host-path.js";
import type { ExecResult, WorkspaceInfo } from "../core/types.js";
import type { BackendRequest } from "../runtime/backend.js";
import { MCP_TOOLS } from "../contract.js";
import { backendInput, commandInput, commandRecord, execResult, networkInput, runResult, workspaceInfo, workspaceRef } from "./schemas.js";
import { registerContentTools } from "./content-tools.js";
import { registerSessionTools } from "./session-tools.js";
import { registerSummaryTool } from "./summary-tool.js";
import { networkArgs, noticeLines, registerNetworkTools } from "./network-tools.js";
import type { NetworkArgs } from "./network-tools.js";
import { errorResult, noteUnavailable, ok, tool, validationError } from "./results.js";
import { resolveSurface } from "./surfaces.js";
import type { McpServerOptions, Surface } from "./surfaces.js";
import { capLines, cleanTerminalOutput, humanBytes } from "./text.js";
import { MAX_OUTPUT_BYTES_LIMIT } from "../shared/output-cap.js";

export { ERROR_META_KEY, ok, tool } from "./results.js";
export type { McpServerOptions } from "./surfaces.js";

const VERSION = "0.1.0";
/** workspace_list returns at most this many workspaces (most recent activity first). */
export const MCP_LIST_LIMIT = 50;

export interface ToolConfig {
  title: string;
  description: string;
  inputSchema: z.ZodRawShape;
  outputSchema: z.ZodRawShape;
  annotations?: ToolAnnotations;
}

type Handler = (args: never) => Promise<CallToolResult>;

/**
 * How tool files add their tools. `has(name)` says whether this server offers a tool (for text
 * renderings that point at another tool); it is meaningful at call time.
 */
export type Register = ((name: string, config: ToolConfig, handler: Handler) => void) & { has: (name: string) => boolean };

function workspaceText(w: WorkspaceInfo): string {
  return `workspace ${w.workspace_id}${w.name ? ` (${w.name})` : ""}: ${w.state}, ${w.environment}, ${w.backend} backend, ${w.command_count} commands${w.state_reason ? ` — ${w.state_reason}` : ""}`;
}

/**
 * Exec output for a model: control sequences resolved (in the text and in the structured
 * stdout/stderr alike; the SDK and `--json` keep the bytes), and how it ended in words.
 */
export function cleanExec<T extends ExecResult>(r: T): T {
  return { ...r, stdout: cleanTerminalOutput(r.stdout), stderr: cleanTerminalOutput(r.stderr) };
}

/** The first line of an exec rendering: what happened, classified, and what to do about it. */
function outcomeLine(r: ExecResult): string {
  const ms = `${Math.round(r.duration_ms)} ms`;
  switch (r.outcome) {
    case "timed_out":
      return `outcome=timed_out after ${ms}: the whole process tree was killed. Raise timeout_seconds (at most 86400), or run long processes as a service.`;
    case "signaled":
      return `outcome=signaled signal=${r.signal} after ${ms}${r.signal === "SIGKILL" ? " (a SIGKILL nobody sent is usually the workspace's memory limit)" : ""}`;
    case "not_started":
      return `outcome=not_started exit_code=${r.exit_code}: ${r.exit_code === 127 ? "command not found in the workspace" : "the command could not be executed"}`;
    default:
      return `outcome=exited exit_code=${r.exit_code} in ${ms}${r.exit_code === 0 ? "" : " (failed)"}`;
  }
}

/**
 * The text rendering of an exec or one-shot run. Output is already capped (head and tail); when
 * it was, the last line says how much was left out and the exact way to see it.
 */
export function execText(r: ExecResult, more: { readFile: boolean }): string {
  const parts = [outcomeLine(r)];
  if (r.stdout) parts.push(`--- stdout ---\n${r.stdout}`);
  if (r.stderr) parts.push(`--- stderr ---\n${r.stderr}`);
  if (r.truncated) {
    const cut = [r.stdout_info.omitted_bytes ? `stdout ${humanBytes(r.stdout_info.omitted_bytes)} of ${humanBytes(r.stdout_info.total_bytes)}` : "", r.stderr_info.omitted_bytes ? `stderr ${humanBytes(r.stderr_info.omitted_bytes)} of ${humanBytes(r.stderr_info.total_bytes)}` : ""]
      .filter(Boolean)
      .join(", ");
    const bigger = Math.min(MAX_OUTPUT_BYTES_LIMIT, 2 ** Math.ceil(Math.log2(Math.max(r.stdout_info.total_bytes, r.stderr_info.total_bytes) + 1)));
    const how = more.readFile
      ? `rerun with the output sent to a file (\`CMD > /workspace/out.log 2>&1\`) and page it with workspace_file_read(path="out.log", offset=...), or rerun with max_output_bytes=${bigger}`
      : `rerun with max_output_bytes=${bigger}, or filter the output in the command (\`| tail -n 200\`, \`| grep PATTERN\`)`;
    parts.push(`[output capped, middle left out (${cut}). To see more: ${how}.]`);
  }
  return parts.join("\n");
}

const limitsInput = {
  vcpu_count: z.number().int().positive().optional().describe("CPU limit in vCPUs (default 1)."),
  mem_mib: z.number().int().positive().optional().describe("Memory limit in MiB (default 1024)."),
  ttl_seconds: z.number().positive().optional().describe("Delete the workspace after this many seconds (never while a call is running)."),
};

const execInput = {
  command: commandInput,
  timeout_seconds: z.number().positive().optional().describe("Kill the command's whole process tree after this many seconds (default 30)."),
  env: z.record(z.string(), z.string()).optional().describe("Extra environment variables."),
  cwd: z.string().optional().describe("Working directory; relative paths resolve against /workspace (default)."),
  stdin: z.string().optional().describe("Text given to the command's standard input."),
  max_output_bytes: z.number().int().positive().optional().describe("Cap per output stream; the head and tail are kept (default 65536)."),
};

export const secretEnvInput = z
  .record(z.string(), z.string())
  .optional()
  .describe("Workspace secrets to export into the environment: {SECRET_NAME: ENV_VAR}. Values are never shown; output containing them reads [REDACTED].");

type BackendArgs = { backend?: string };

/** The backend argument as the SDK option; the SDK checks it, as it does the CLI's `--backend`. */
function backendArgs(a: BackendArgs): { backend?: BackendRequest } {
  return a.backend !== undefined ? { backend: a.backend as BackendRequest } : {};
}

type ExecArgs = { command: string | string[]; timeout_seconds?: number; env?: Record<string, string>; cwd?: string; stdin?: string; max_output_bytes?: number; secret_env?: Record<string, string> };

function execOptions(a: ExecArgs) {
  return {
    command: a.command,
    ...(a.timeout_seconds !== undefined ? { timeoutSeconds: a.timeout_seconds } : {}),
    ...(a.env !== undefined ? { env: a.env } : {}),
    ...(a.cwd !== undefined ? { cwd: a.cwd } : {}),
    ...(a.stdin !== undefined ? { stdin: a.stdin } : {}),
    ...(a.max_output_bytes !== undefined ? { maxOutputBytes: a.max_output_bytes } : {}),
    ...(a.secret_env !== undefined ? { secretEnv: a.secret_env } : {}),
  };
}

/**
 * Builds a server showing the tools of one profile (default `workspace-core`) or mode. Not
 * connected: give it to a transport (stdio.ts, http.ts) or an in-memory pair. `defineMore`
 * defines further tools (internal: tests use it to show that a tool no surface knows appears in
 * `workspace-full` only).
 */
export function createMcpServer(pyro: Pyro, options: McpServerOptions = {}, defineMore?: (register: Register) => void): McpServer {
  const surface = resolveSurface(options);
  const seedNote = options.projectSourceDescription ? ` If seed_path is omitted, the workspace is seeded from ${options.projectSourceDescription}.` : "";
  const server = new McpServer({ name: "pyro", version: VERSION }, { instructions: surface.instructions + seedNote });
  const defined = new Map<string, { config: ToolConfig; handler: Handler }>();
  const offered = (name: string) => (surface.tools === null ? defined.has(name) : surface.tools.has(name));
  const register: Register = Object.assign(
    (name: string, config: ToolConfig, handler: Handler) => {
      if (defined.has(name)) throw new Error(`MCP tool ${name} is defined twice`);
      defined.set(name, { config, handler });
    },
    { has: offered },
  );

  register(
    "vm_run",
    {
      title: "Run one command in a fresh sandbox",
      description:
        "Run one command in a brand-new isolated Linux sandbox (network off unless network_policy says otherwise) and delete the sandbox afterwards. Use for a quick, stateless check (e.g. `git --version`, running a script once). For anything that needs files to persist between commands, use workspace_create + workspace_exec instead. Returns exit code, outcome, duration and capped stdout/stderr.",
      inputSchema: { environment: z.string().describe("Environment name, e.g. debian:12."), ...execInput, ...limitsInput, ...backendInput, ...networkInput },
      outputSchema: runResult,
      annotations: { openWorldHint: false },
    },
    tool(async (a: ExecArgs & NetworkArgs & BackendArgs & { environment: string; vcpu_count?: number; mem_mib?: number; ttl_seconds?: number }) => {
      const r = await pyro.runInVm({
        environment: a.environment,
        ...execOptions(a),
        ...backendArgs(a),
        ...networkArgs(a),
        ...(a.vcpu_count !== undefined ? { vcpuCount: a.vcpu_count } : {}),
        ...(a.mem_mib !== undefined ? { memMib: a.mem_mib } : {}),
        ...(a.ttl_seconds !== undefined ? { ttlSeconds: a.ttl_seconds } : {}),
      });
      const clean = cleanExec(r);
      return ok(clean, execText(clean, { readFile: false }) + noticeLines(clean.network_notices, register));
    }),
  );

  register(
    "workspace_create",
    {
      title: "Create a persistent workspace",
      description:
        "Create and start a persistent, isolated Linux workspace whose /workspace survives between calls. Optionally seed /workspace from a host directory or .tar/.tar.gz/.tgz (seed_path), and give it a name and labels so it can be found again with workspace_list. Returns the workspace (keep its workspace_id).",
      inputSchema: {
        environment: z.string().describe("Environment name, e.g. debian:12 (git preinstalled), debian:12-base, debian:12-build."),
        name: z.string().optional().describe("Unique name, e.g. fix-123."),
        labels: z.record(z.string(), z.string()).optional().describe("Key/value labels, e.g. {\"issue\": \"123\"}."),
        seed_path: z.string().optional().describe("Host directory or archive copied into /workspace."),
        secrets: z.record(z.string(), z.string()).optional().describe("Secret values by name, e.g. {\"API_TOKEN\": \"...\"}; available in /run/pyro-secrets and via secret_env, redacted from all output."),
        secret_files: z.record(z.string(), z.string()).optional().describe("Secrets read from host files: {NAME: host_path}."),
        ...limitsInput,
        ...backendInput,
        ...networkInput,
      },
      outputSchema: workspaceInfo.shape,
    },
    tool(async (a: NetworkArgs & BackendArgs & { environment: string; name?: string; labels?: Record<string, string>; seed_path?: string; vcpu_count?: number; mem_mib?: number; ttl_seconds?: number; secrets?: Record<string, string>; secret_files?: Record<string, string> }) => {
      const w = await pyro.createWorkspace({
        ...backendArgs(a),
        ...networkArgs(a),
        ...(a.secrets !== undefined ? { secrets: a.secrets } : {}),
        ...(a.secret_files !== undefined ? { secretFiles: Object.fromEntries(Object.entries(a.secret_files).map(([name, file]) => [name, hostPath(file, `secret_files.${name}`)])) } : {}),
        environment: a.environment,
        ...(a.name !== undefined ? { name: a.name } : {}),
        ...(a.labels !== undefined ? { labels: a.labels } : {}),
        ...(a.seed_path !== undefined ? { seedPath: hostPath(a.seed_path, "seed_path") } : {}),
        ...(a.vcpu_count !== undefined ? { vcpuCount: a.vcpu_count } : {}),
        ...(a.mem_mib !== undefined ? { memMib: a.mem_mib } : {}),
        ...(a.ttl_seconds !== undefined ? { ttlSeconds: a.ttl_seconds } : {}),
      });
      return ok(w, workspaceText(w));
    }),
  );

  register(
    "workspace_list",
    {
      title: "List workspaces",
      description: "List workspaces with their names, labels, state and last activity, most recent first. Use it to find a workspace again when you no longer have its id.",
      inputSchema: {},
      outputSchema: { count: z.number(), workspaces: z.array(workspaceInfo), reaped: z.array(z.string()), omitted: z.number() },
      annotations: { readOnlyHint: true },
    },
    tool(async () => {
      const r = await pyro.listWorkspaces();
      // Bounded for a context window: the most recently active ones, and how many more exist.
      const shown = r.workspaces.slice(0, MCP_LIST_LIMIT);
      const omitted = r.count - shown.length;
      const more = () => "find one by name or id with workspace_status(workspace_id=NAME)";
      const text = r.count === 0 ? "no workspaces" : capLines(shown.map(workspaceText), 50, more) + (omitted ? `\n[${omitted} less recently active workspaces not listed; ${more()}]` : "");
      return ok({ ...r, workspaces: shown, omitted }, text);
    }),
  );

  register(
    "workspace_status",
    {
      title: "Show a workspace",
      description: "Show one workspace: state (running/stopped/failed and why), backend and enforced limits, seed, command count and last command.",
      inputSchema: { workspace_id: workspaceRef },
      outputSchema: workspaceInfo.shape,
      annotations: { readOnlyHint: true },
    },
    tool(async (a: { workspace_id: string }) => {
      const w = await pyro.statusWorkspace(a.workspace_id);
      return ok(w, workspaceText(w));
    }),
  );

  register(
    "workspace_update",
    {
      title: "Rename or relabel a workspace",
      description: "Change a workspace's name and labels. labels are set (merged), clear_labels removes keys.",
      inputSchema: {
        workspace_id: workspaceRef,
        name: z.string().optional(),
        labels: z.record(z.string(), z.string()).optional(),
        clear_labels: z.array(z.string()).optional(),
      },
      outputSchema: workspaceInfo.shape,
    },
    tool(async (a: { workspace_id: string; name?: string; labels?: Record<string, string>; clear_labels?: string[] }) => {
      const w = await pyro.updateWorkspace(a.workspace_id, {
        ...(a.name !== undefined ? { name: a.name } : {}),
        ...(a.labels !== undefined ? { labels: a.labels } : {}),
        ...(a.clear_labels !== undefined ? { clearLabels: a.clear_labels } : {}),
      });
      return ok(w, workspaceText(w));
    }),
  );

  register(
    "workspace_exec",
    {
      title: "Run a command in a workspace",
      description:
        "Run a command in a running workspace (cwd /workspace; files persist between calls). Returns exit_code, outcome (exited/signaled/timed_out/not_started), duration and stdout/stderr capped to max_output_bytes with head and tail kept; `truncated` says when output was cut. Terminal control sequences are resolved to plain text.",
      inputSchema: { workspace_id: workspaceRef, ...execInput, secret_env: secretEnvInput },
      outputSchema: execResult,
    },
    tool(async (a: ExecArgs & { workspace_id: string }) => {
      const r = cleanExec(await pyro.execWorkspace(a.workspace_id, execOptions(a)));
      return ok(r, execText(r, { readFile: register.has("workspace_file_read") }) + noticeLines(r.network_notices, register));
    }),
  );

  register(
    "workspace_logs",
    {
      title: "Command history of a workspace",
      description: "List the commands run in a workspace: argv, exit code, duration, start time, output sizes (not the output itself).",
      inputSchema: { workspace_id: workspaceRef, limit: z.number().int().positive().optional().describe("Most recent N commands (default 50).") },
      outputSchema: { workspace_id: z.string(), count: z.number(), total: z.number(), commands: z.array(commandRecord) },
      annotations: { readOnlyHint: true },
    },
    tool(async (a: { workspace_id: string; limit?: number }) => {
      const r = await pyro.logsWorkspace(a.workspace_id, a.limit !== undefined ? { limit: a.limit } : {});
      const lines = r.commands.map((c) => `#${c.sequence} ${c.timed_out ? "timed_out" : c.signal ? `signaled ${c.signal}` : `exit=${c.exit_code}`} ${Math.round(c.duration_ms)} ms: ${cleanTerminalOutput(c.command.join(" ")).slice(0, 300)}`);
      const more = r.total > r.count ? `\n[last ${r.count} of ${r.total} commands shown: call workspace_logs with limit=${r.total} to see all]` : "";
      const text = (lines.join("\n") || "no commands yet") + more;
      return ok(r, text);
    }),
  );

  for (const [name, description] of [
    ["workspace_stop", "Stop a workspace's sandbox and all its processes. /workspace and installed packages are kept; workspace_start brings it back."],
    ["workspace_start", "Start a stopped or failed workspace again, with /workspace and installed packages unchanged. Call it after workspace_stop, or when a call fails with workspace_stopped."],
  ] as const) {
    register(
      name,
      { title: name.replace("_", " "), description, inputSchema: { workspace_id: workspaceRef }, outputSchema: workspaceInfo.shape },
      tool(async (a: { workspace_id: string }) => {
        const w = name === "workspace_stop" ? await pyro.stopWorkspace(a.workspace_id) : await pyro.startWorkspace(a.workspace_id);
        return ok(w, workspaceText(w));
      }),
    );
  }

  register(
    "workspace_delete",
    {
      title: "Delete a workspace",
      description: "Stop a workspace and remove everything it had: files, history, snapshots. Cannot be undone; export anything you need first. Use it when the work in the workspace is finished.",
      inputSchema: { workspace_id: workspaceRef },
      outputSchema: { workspace_id: z.string(), deleted: z.boolean() },
      annotations: { destructiveHint: true },
    },
    tool(async (a: { workspace_id: string }) => {
      const r = await pyro.deleteWorkspace(a.workspace_id);
      return ok(r, `deleted workspace ${r.workspace_id}`);
    }),
  );

  registerContentTools(register, pyro);
  registerSessionTools(register, pyro);
  registerSummaryTool(register, pyro);
  registerNetworkTools(register, pyro);
  defineMore?.(register);

  for (const name of MCP_TOOLS) {
    if (!defined.has(name)) throw new Error(`MCP tool ${name} is in the contract but not defined`);
  }
  applySurface(server, surface, defined, seedNote);
  return server;
}

/**
 * Registers the tools a surface offers, in its order: each with only the arguments it allows
 * (as a strict object, so an argument the tool does not take is an error, not silently
 * dropped) and its description for the surface; an error whose hint names a tool this server
 * lacks gets a note saying so. Bad arguments get pyro's `invalid_argument` with the arguments
 * the tool takes.
 */
function applySurface(server: McpServer, surface: Surface, defined: Map<string, { config: ToolConfig; handler: Handler }>, seedNote = ""): void {
  // workspace-full: the contract's order, then tools the contract does not list yet.
  const names = surface.tools === null ? [...MCP_TOOLS.filter((n) => defined.has(n)), ...[...defined.keys()].filter((n) => !(MCP_TOOLS as readonly string[]).includes(n))] : [...surface.tools.keys()];
  const has = (name: string) => names.includes(name);
  const params = new Map<string, string[]>();
  // registerTool's generic signature cannot follow schemas built at run time; the SDK still
  // validates every call against them.
  const registerTool = server.registerTool.bind(server) as unknown as (name: string, config: object, handler: Handler) => void;
  for (const name of names) {
    const tool = defined.get(name);
    if (!tool) throw new Error(`MCP ${surface.label} lists ${name}, which no tool file defines`);
    const variant = surface.tools?.get(name);
    const shape = variant ? pick(tool.config.inputSchema, variant.params, name) : tool.config.inputSchema;
    params.set(name, Object.keys(shape));
    const description = (variant?.description ?? tool.config.description) + (name === "workspace_create" ? seedNote : "");
    registerTool(name, { ...tool.config, description, inputSchema: z.strictObject(shape) }, (async (args: never) =>
      noteUnavailable(await tool.handler(args), defined.keys(), has, surface.label)) as Handler);
  }
  // Input that fails schema validation is reported by the MCP SDK itself; give it the stable
  // code and a next step, like every other bad input.
  (server as unknown as { createToolError: (message: string) => CallToolResult }).createToolError = (message: string) => {
    if (message.includes("Input validation error")) return errorResult(validationError(message, (t) => params.get(t), surface.label));
    if (/Tool .* not found/.test(message)) {
      return errorResult(new PyroError("invalid_argument", message.replace(/^MCP error -?\d+: /, ""), { hint: `Call tools/list: this server (${surface.label}) offers ${names.join(", ")}.` }));
    }
    return errorResult(new PyroError("internal_error", message));
  };
}

function pick(shape: z.ZodRawShape, keys: readonly string[], tool: string): z.ZodRawShape {
  for (const key of keys) {
    if (!(key in shape)) throw new Error(`MCP tool ${tool} has no argument ${key} to offer`);
  }
  return Object.fromEntries(keys.map((key) => [key, shape[key]!]));
}
