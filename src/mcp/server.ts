/**
 * The MCP server: pyro's tools registered with the official MCP TypeScript SDK, each with a
 * description written for a model, a typed input schema, an output schema, structured content
 * and a short text rendering. Every tool is a direct call into the SDK; errors come back as
 * `isError` results carrying the stable error code and what to do next. The transport is
 * separate (stdio here).
 */
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import type { CallToolResult, ToolAnnotations } from "@modelcontextprotocol/sdk/types.js";
import * as z from "zod";
import type { Pyro } from "../sdk/pyro.js";
import { asPyroError, PyroError } from "../shared/errors.js";
import type { ExecResult, WorkspaceInfo } from "../core/types.js";
import { MCP_TOOLS } from "../contract.js";
import type { McpToolName } from "../contract.js";
import { commandInput, commandRecord, execResult, runResult, workspaceInfo, workspaceRef } from "./schemas.js";
import { registerContentTools } from "./content-tools.js";
import { registerSessionTools } from "./session-tools.js";

const VERSION = "0.1.0";

export interface ToolConfig {
  title: string;
  description: string;
  inputSchema: z.ZodRawShape;
  outputSchema: z.ZodRawShape;
  annotations?: ToolAnnotations;
}

export function ok(structured: object, text: string): CallToolResult {
  return { content: [{ type: "text", text }], structuredContent: structured as Record<string, unknown> };
}

/**
 * Errors are results with `isError`, the stable code first in the text, and the structured
 * error under `_meta["pyro/error"]`. Not in `structuredContent`: MCP clients validate that
 * against the tool's output schema even for errors, and an error is not the tool's output.
 */
export const ERROR_META_KEY = "pyro/error";

function errorResult(err: unknown): CallToolResult {
  const e = asPyroError(err);
  const text = `[${e.code}] ${e.message}${e.hint ? `\nNext: ${e.hint}` : ""}`;
  return { isError: true, content: [{ type: "text", text }], _meta: { [ERROR_META_KEY]: e.toJSON() } };
}

/** Wraps a tool body: any thrown error becomes an isError result with its code. */
export function tool<A>(fn: (args: A) => Promise<CallToolResult>) {
  return async (args: A): Promise<CallToolResult> => {
    try {
      return await fn(args);
    } catch (err) {
      return errorResult(err);
    }
  };
}

function workspaceText(w: WorkspaceInfo): string {
  return `workspace ${w.workspace_id}${w.name ? ` (${w.name})` : ""}: ${w.state}, ${w.environment}, ${w.command_count} commands${w.state_reason ? ` — ${w.state_reason}` : ""}`;
}

function execText(r: ExecResult): string {
  const status = r.timed_out ? `timed out after ${r.duration_ms.toFixed(0)} ms (process tree killed)` : r.signal ? `killed by ${r.signal}` : `exit_code=${r.exit_code}`;
  const parts = [`${status} in ${r.duration_ms.toFixed(0)} ms`];
  if (r.stdout) parts.push(`--- stdout ---\n${r.stdout}`);
  if (r.stderr) parts.push(`--- stderr ---\n${r.stderr}`);
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

export type Register = (name: McpToolName, config: ToolConfig, handler: (args: never) => Promise<CallToolResult>) => void;

export function createMcpServer(pyro: Pyro, _options: { profile?: string } = {}): McpServer {
  const server = new McpServer({ name: "pyro", version: VERSION });
  // Input that fails schema validation is reported by the MCP SDK itself; give it the same
  // stable code every other bad input gets, instead of a bare message.
  (server as unknown as { createToolError: (message: string) => CallToolResult }).createToolError = (message: string) => {
    if (message.includes("Input validation error")) {
      return errorResult(new PyroError("invalid_argument", message, { hint: "Fix the arguments to match the tool's input schema and call again." }));
    }
    if (/Tool .* not found/.test(message)) return errorResult(new PyroError("invalid_argument", message, { hint: "Call tools/list to see the tools this server offers." }));
    return errorResult(new PyroError("internal_error", message));
  };

  const registered = new Set<McpToolName>();
  // registerTool's generic signature cannot follow shapes built from spreads; the schemas are
  // still zod and still validated by the SDK at call time.
  const registerTool = server.registerTool.bind(server) as unknown as (name: string, config: ToolConfig, handler: (args: never) => Promise<CallToolResult>) => void;
  const register = (name: McpToolName, config: ToolConfig, handler: (args: never) => Promise<CallToolResult>) => {
    registerTool(name, config, handler);
    registered.add(name);
  };

  register(
    "vm_run",
    {
      title: "Run one command in a fresh sandbox",
      description:
        "Run one command in a brand-new isolated Linux sandbox (network off) and delete the sandbox afterwards. Use for a quick, stateless check (e.g. `git --version`, running a script once). For anything that needs files to persist between commands, use workspace_create + workspace_exec instead. Returns exit code, outcome, duration and capped stdout/stderr.",
      inputSchema: { environment: z.string().describe("Environment name, e.g. debian:12."), ...execInput, ...limitsInput },
      outputSchema: runResult,
      annotations: { openWorldHint: false },
    },
    tool(async (a: ExecArgs & { environment: string; vcpu_count?: number; mem_mib?: number; ttl_seconds?: number }) => {
      const r = await pyro.runInVm({
        environment: a.environment,
        ...execOptions(a),
        ...(a.vcpu_count !== undefined ? { vcpuCount: a.vcpu_count } : {}),
        ...(a.mem_mib !== undefined ? { memMib: a.mem_mib } : {}),
        ...(a.ttl_seconds !== undefined ? { ttlSeconds: a.ttl_seconds } : {}),
      });
      return ok(r, execText(r));
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
      },
      outputSchema: workspaceInfo.shape,
    },
    tool(async (a: { environment: string; name?: string; labels?: Record<string, string>; seed_path?: string; vcpu_count?: number; mem_mib?: number; ttl_seconds?: number; secrets?: Record<string, string>; secret_files?: Record<string, string> }) => {
      const w = await pyro.createWorkspace({
        ...(a.secrets !== undefined ? { secrets: a.secrets } : {}),
        ...(a.secret_files !== undefined ? { secretFiles: a.secret_files } : {}),
        environment: a.environment,
        ...(a.name !== undefined ? { name: a.name } : {}),
        ...(a.labels !== undefined ? { labels: a.labels } : {}),
        ...(a.seed_path !== undefined ? { seedPath: a.seed_path } : {}),
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
      outputSchema: { count: z.number(), workspaces: z.array(workspaceInfo), reaped: z.array(z.string()) },
      annotations: { readOnlyHint: true },
    },
    tool(async () => {
      const r = await pyro.listWorkspaces();
      const text = r.count === 0 ? "no workspaces" : r.workspaces.map(workspaceText).join("\n");
      return ok(r, text);
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
        "Run a command in a running workspace (cwd /workspace; files persist between calls). Returns exit_code, outcome (exited/signaled/timed_out/not_started), duration and stdout/stderr capped to max_output_bytes with head and tail kept; `truncated` says when output was cut.",
      inputSchema: { workspace_id: workspaceRef, ...execInput, secret_env: secretEnvInput },
      outputSchema: execResult,
    },
    tool(async (a: ExecArgs & { workspace_id: string }) => {
      const r = await pyro.execWorkspace(a.workspace_id, execOptions(a));
      return ok(r, execText(r));
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
      const text = r.commands.map((c) => `#${c.sequence} exit=${c.exit_code ?? "-"}${c.timed_out ? " timed_out" : ""} ${c.command.join(" ")}`).join("\n") || "no commands yet";
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

  for (const name of MCP_TOOLS) {
    if (!registered.has(name)) throw new Error(`MCP tool ${name} is in the contract but not registered`);
  }
  return server;
}

/** Serves over stdio until the client disconnects. */
export async function serveStdio(pyro: Pyro): Promise<void> {
  const server = createMcpServer(pyro);
  const transport = new StdioServerTransport();
  await server.connect(transport);
  await new Promise<void>((resolve) => {
    transport.onclose = () => resolve();
    process.stdin.on("end", () => resolve());
  });
  pyro.close();
}
