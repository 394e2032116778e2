/**
 * How MCP tool results and errors look. A result is structured content plus a short text
 * rendering; an error is an `isError` result whose text starts with the stable code and ends
 * with one sentence telling the model what to do next, in MCP terms (tool names, not CLI
 * commands). Pure; no I/O.
 */
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { asPyroError, PyroError } from "../shared/errors.js";
import type { ErrorCode } from "../shared/errors.js";
import type * as z from "zod";

/**
 * Errors carry the structured error under `_meta["pyro/error"]`. Not in `structuredContent`:
 * MCP clients validate that against the tool's output schema even for errors, and an error is
 * not the tool's output.
 */
export const ERROR_META_KEY = "pyro/error";

export function ok(structured: object, text: string): CallToolResult {
  return { content: [{ type: "text", text }], structuredContent: structured as Record<string, unknown> };
}

/**
 * The next step for each error code, written for a model talking MCP. Used when the error
 * carries no hint of its own, and instead of it for the codes in `MCP_FIRST`, whose own hints
 * are written for the CLI (`pyro workspace list`). One sentence each. Keyed by plain strings so
 * that codes added or renamed in src/shared/errors.ts never break the build here;
 * test/unit/mcp-surfaces.test.ts requires exactly one entry per code.
 */
export const MCP_NEXT_STEPS: Readonly<Record<string, string>> = {
  invalid_argument: "Fix the argument the message names and call again.",
  usage_error: "Fix the command line as the message says.",
  invalid_label: "Use labels like {\"issue\": \"123\"}: keys of letters, digits, '.', '_', '/' or '-', one-line values.",
  invalid_name: "Use a name of letters, digits, '.', '_' or '-' (at most 63), starting with a letter or digit.",
  invalid_timeout: "Give a positive number of seconds, at most 86400.",
  workspace_not_found: "Call workspace_list to find the workspace's id or name.",
  workspace_name_ambiguous: "Use the full workspace_id from workspace_list.",
  workspace_name_taken: "Choose another name, or find the workspace that has it with workspace_list.",
  workspace_stopped: "Call workspace_start with this workspace_id (its files are kept), then retry.",
  workspace_busy: "Another call is changing this workspace; retry the same call in a moment.",
  workspace_failed: "Call workspace_start to recover; /workspace is intact.",
  workspace_expired: "Create a new workspace with workspace_create.",
  workspace_incompatible: "This workspace cannot start for this user: create a new one with workspace_create (workspace_delete removes the old one).",
  seed_path_not_found: "Give an existing host directory or .tar/.tar.gz/.tgz archive, preferably as an absolute path.",
  seed_path_invalid: "Give a directory or a readable .tar/.tar.gz/.tgz archive.",
  archive_unsafe_entry: "Repack the archive without the entry named (no absolute paths, '..', devices, or links leading outside).",
  archive_too_large: "Use a smaller archive (at most 200000 entries and 4 GiB).",
  path_outside_workspace: "Use a path under /workspace; relative paths resolve against it.",
  path_not_found: "Call workspace_file_list on the parent directory to see what exists.",
  patch_failed: "Read the file's current lines with workspace_file_read and rebuild the hunk from them (details shows expected versus actual).",
  output_exists: "Choose another output_path, or pass force=true to replace it.",
  snapshot_not_found: "Call snapshot_list to see this workspace's snapshots.",
  snapshot_exists: "Choose another snapshot name.",
  disk_limit_exceeded: "Delete files in /workspace with workspace_exec (e.g. rm -rf a build directory), or call workspace_reset; a larger disk limit needs a new workspace.",
  shell_not_found: "Use the shell_id that shell_open returned, or open a new shell with shell_open.",
  service_not_found: "Call service_list to see this workspace's services.",
  service_exists: "Choose another service name, or stop the running one with service_stop first.",
  secret_not_found: "Name only secrets the workspace was created with (secret_names in workspace_status).",
  invalid_secret: "Give secrets as {\"NAME\": \"value\"} with NAME like API_TOKEN and a value of 4 to 65536 bytes.",
  port_in_use: "Choose another host port, or leave the host port out so a free one is picked.",
  publish_not_allowed: "Publish ports only from a workspace created with the egress+published-ports network policy.",
  network_unavailable: "Ask the user to run `pyro doctor` on the host; workspaces without networking still work.",
  environment_unknown: "Use one of debian:12, debian:12-base or debian:12-build.",
  environment_not_installed: "Ask the user to run `pyro env pull` for this environment on the host, then retry.",
  environment_in_use: "Delete the workspaces that use this environment first.",
  environment_build_failed: "Ask the user to run `pyro env pull` on the host and read its output.",
  image_not_found: "Check the image reference (REGISTRY/REPOSITORY:TAG, e.g. docker.io/library/node:22) and retry.",
  image_unauthorized: "Ask the user to log in to this registry on the host (docker login REGISTRY), then retry.",
  image_invalid: "Use another image or tag: this one is not a usable linux/amd64 container image.",
  image_platform_missing: "Use an image or tag built for linux/amd64.",
  image_digest_mismatch: "Retry once; if it fails again, tell the user the registry's content does not match its digests.",
  image_too_large: "Use a smaller image (the limits are in details).",
  registry_unreachable: "Retry in a moment; if it fails again, ask the user to check the registry and the host's network.",
  host_unsupported: "Ask the user to run `pyro doctor` on the host and fix what it reports.",
  backend_unavailable: "Use backend \"namespace\" instead, or ask the user to run `pyro doctor` on the host and fix what its VM section reports.",
  sandbox_start_failed: "Retry once; if it fails again, ask the user to run `pyro doctor` on the host.",
  agent_unreachable: "Call workspace_status: if the workspace is stopped or failed call workspace_start, otherwise retry the call.",
  agent_protocol_error: "Ask the user to restart pyro (its sandboxes and host side may be different versions).",
  exec_failed: "Check that the command exists in the environment, e.g. with `command -v NAME`.",
  internal_error: "Retry once; if it fails again, report the message to the user as a bug in pyro.",
};

/** Codes whose own hints name CLI commands; MCP says the same in tool terms instead. */
const MCP_FIRST = new Set<ErrorCode>(["workspace_not_found", "workspace_name_ambiguous", "workspace_stopped", "workspace_busy", "snapshot_not_found", "shell_not_found", "service_not_found", "output_exists", "agent_unreachable"]);

const FALLBACK_NEXT_STEP = "Read the message, fix what it names, and retry.";

/** The hint an MCP error shows: MCP-first codes and hintless errors get the table's sentence. */
export function mcpHint(e: PyroError): string {
  if (MCP_FIRST.has(e.code) || !e.hint) return MCP_NEXT_STEPS[e.code] ?? e.hint ?? FALLBACK_NEXT_STEP;
  return e.hint;
}

/**
 * An error as a tool result: the text is `[code] message` and `Next: ` the MCP-worded next step;
 * `_meta["pyro/error"]` is the error exactly as the SDK throws it and `--json` prints it, so
 * the structured error is one shape on every surface.
 */
export function errorResult(err: unknown): CallToolResult {
  const e = asPyroError(err);
  const text = `[${e.code}] ${e.message}\nNext: ${mcpHint(e)}`;
  return { isError: true, content: [{ type: "text", text }], _meta: { [ERROR_META_KEY]: e.toJSON() } };
}

/** Wraps a tool body: any thrown error becomes an isError result with its code. */
export function tool<A, E = unknown>(fn: (args: A, extra: E) => Promise<CallToolResult>) {
  return async (args: A, extra: E): Promise<CallToolResult> => {
    try {
      return await fn(args, extra);
    } catch (err) {
      return errorResult(err);
    }
  };
}

/**
 * Arguments that fail a tool's input schema as a pyro error: code `invalid_argument`, the zod
 * issues one per line (`message at path`), and for an argument the tool does not take, the
 * arguments it does take (`params`), so a model using a name from another profile learns the
 * right one.
 */
export function validationError(toolName: string, issues: readonly z.core.$ZodIssue[], params: readonly string[], surfaceLabel: string): PyroError {
  const lines = issues.map((i) => (i.path.length ? `${i.message} at ${i.path.map(String).join(".")}` : i.message));
  const unknown = issues.flatMap((i) => (i.code === "unrecognized_keys" ? i.keys : []));
  const hint = unknown.length
    ? `Drop ${unknown.map((k) => JSON.stringify(k)).join(", ")}: ${toolName} on this server (${surfaceLabel}) takes ${params.length ? params.join(", ") : "no arguments"}.`
    : "Fix the arguments to match the tool's input schema and call again.";
  return new PyroError("invalid_argument", `invalid arguments for ${toolName}: ${lines.join("; ")}`, { hint, details: { tool: toolName, ...(unknown.length ? { unknown_arguments: unknown } : {}) } });
}

/**
 * Adds a note to an error's text when it names tools this server does not offer (a hint written
 * for the full tool set, read on a narrowed one), so the model is never sent to a tool it cannot
 * call. Successful results are left alone: their renderings ask `register.has` themselves, and
 * their text holds command output that may mention anything.
 */
export function noteUnavailable(result: CallToolResult, allTools: Iterable<string>, has: (name: string) => boolean, surfaceLabel: string): CallToolResult {
  if (!result.isError) return result;
  const text = result.content.map((c) => (c.type === "text" ? c.text : "")).join("\n");
  const missing = [...allTools].filter((name) => !has(name) && new RegExp(`\\b${name}\\b`).test(text));
  if (missing.length === 0) return result;
  const note = `(${missing.join(", ")} ${missing.length === 1 ? "is" : "are"} not offered by this server (${surfaceLabel}); the user can start it with \`pyro mcp serve --profile workspace-full\` to get ${missing.length === 1 ? "it" : "them"}.)`;
  return { ...result, content: [...result.content, { type: "text", text: note }] };
}
