/**
 * Workspace lifecycle and exec: the one-shot run, create, list, status, update, exec, logs, stop,
 * start, delete and reap, each declared once (see op.ts).
 */
import * as z from "zod";
import type { ExecResult, WorkspaceInfo } from "../core/types.js";
import type { BackendRequest } from "../runtime/backend.js";
import { hostPath } from "../shared/host-path.js";
import { MAX_OUTPUT_BYTES_LIMIT } from "../shared/output-cap.js";
import { backendField, execFields, limitFields, networkFields, secretEnvField, SHELL_FLAG, workspaceField } from "./fields.js";
import { execOptions, networkOptions } from "./cli-values.js";

export { execOptions, networkOptions };
import { field, given, op } from "./op.js";
import type { RunContext, TextContext } from "./op.js";
import type { Pyro } from "../sdk/pyro.js";
import { PyroError } from "../shared/errors.js";
import { CATALOG, isImageReference } from "../environments/index.js";
import * as render from "./render.js";
import { commandRecord, execResult, runResult, workspaceInfo } from "./schemas.js";
import { capLines, cleanTerminalOutput, humanBytes } from "./text.js";

/** workspace_list returns at most this many workspaces to a model (most recent activity first). */
export const MCP_LIST_LIMIT = 50;

export function workspaceText(w: WorkspaceInfo): string {
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
  const oom = r.oom_killed ? " oom_killed=true: the workspace ran out of memory and the out-of-memory killer killed the command (the workspace goes on). Use less memory, or create the workspace with a larger mem_mib" : "";
  if (oom) return `outcome=${r.outcome}${r.outcome === "exited" ? ` exit_code=${r.exit_code}` : ` signal=${r.signal}`} after ${ms}${oom}.`;
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

/**
 * Network notices as the last lines of a text result. A server that does not offer
 * workspace_network_set says so, because the notice names it as the way to allow access.
 */
export function noticeLines(notices: string[] | undefined, ctx: TextContext): string {
  if (!notices || notices.length === 0) return "";
  const lines = [...notices];
  if (!ctx.offers("workspace_network_set")) lines.push("network: this MCP server cannot change the network; ask the user to run the pyro command above.");
  return `\n${lines.join("\n")}`;
}

const environmentField = (description: string) => field(z.string().describe(description), { arg: "<environment>", label: "environment name (e.g. debian:12) or pulled image reference (e.g. docker.io/library/node:22)" });

export const vmRun = op({
  mcp: "vm_run",
  sdk: "runInVm",
  cli: "run",
  summary: "One-shot: create a workspace, run one command, delete the workspace; exits with the command's exit code",
  title: "Run one command in a fresh sandbox",
  description:
    "Run one command in a brand-new isolated Linux sandbox (network off unless network_policy says otherwise) and delete the sandbox afterwards. Use for a quick, stateless check (e.g. `git --version`, running a script once). For anything that needs files to persist between commands, use workspace_create + workspace_exec instead. The environment may be an image reference (e.g. docker.io/library/python:3.12). An environment not here yet is installed first (an image pulled, a catalog environment built from Debian packages), with progress notifications when the request asks for them, for at most 300 s (then registry_unreachable for an image, environment_build_failed for a build). Returns exit code, outcome, duration and capped stdout/stderr.",
  input: { environment: environmentField("Environment name, e.g. debian:12, or the reference of a pulled image (it has a registry or namespace part), e.g. docker.io/library/python:3.12."), ...execFields, ...limitFields, backend: backendField, ...networkFields },
  cliFlags: { shell: SHELL_FLAG, stdin: { flag: "--stdin", help: "forward this process's stdin to the command" } },
  cliAdjust: { command: true },
  output: runResult,
  annotations: { openWorldHint: false },
  run: async (pyro, a, ctx) => {
    if (ctx.surface === "mcp") await installForChat(pyro, a.environment, ctx, "vm_run");
    return pyro.runInVm({
      environment: a.environment,
      ...execOptions(a),
      ...given({ vcpuCount: a.vcpu_count, memMib: a.mem_mib, diskMib: a.disk_mib, ttlSeconds: a.ttl_seconds, backend: a.backend as BackendRequest | undefined }),
      ...networkOptions(a),
    });
  },
  forModel: (r) => cleanExec(r),
  text: (r, ctx) => {
    const clean = cleanExec(r);
    return execText(clean, { readFile: false }) + noticeLines(clean.network_notices, ctx);
  },
});

/**
 * How long `workspace_create` or `vm_run` may spend pulling an image or building a catalog
 * environment: a model waits on the call. `$PYRO_CHAT_INSTALL_TIMEOUT_SECONDS` (1 to 3600) sets
 * another bound for a host with a slow link or mirror.
 */
export const CHAT_PULL_TIMEOUT_SECONDS = 300;
const CHAT_INSTALL_TIMEOUT_ENV = "PYRO_CHAT_INSTALL_TIMEOUT_SECONDS";

function chatInstallTimeoutSeconds(): number {
  const raw = process.env[CHAT_INSTALL_TIMEOUT_ENV];
  if (raw === undefined || raw === "") return CHAT_PULL_TIMEOUT_SECONDS;
  const seconds = Number(raw);
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > 3600) {
    throw new PyroError("invalid_argument", `${CHAT_INSTALL_TIMEOUT_ENV} must be a whole number of seconds from 1 to 3600, got ${JSON.stringify(raw.slice(0, 40))}`, {
      hint: `Fix or unset ${CHAT_INSTALL_TIMEOUT_ENV} in the MCP server's environment (default ${CHAT_PULL_TIMEOUT_SECONDS}).`,
    });
  }
  return seconds;
}

/**
 * From a chat there is no host shell to run `pyro env pull` in, so `workspace_create` and
 * `vm_run` (`tool`, named in the timeout's error) install an environment that is not here yet —
 * pull an image reference, build a catalog environment from Debian packages — reporting each
 * step as progress, for at most chatInstallTimeoutSeconds(). Installed environments, and names
 * pyro cannot install itself (an import that is gone, a typo), go straight to the create, which
 * says what is wrong.
 */
async function installForChat(pyro: Pyro, environment: string, ctx: RunContext, tool: "workspace_create" | "vm_run"): Promise<void> {
  const image = isImageReference(environment);
  if (!image && !CATALOG.some((entry) => entry.name === environment)) return;
  if (await pyro.inspectEnvironment(environment).then(() => true, () => false)) return;
  const timeoutSeconds = chatInstallTimeoutSeconds();
  const signal = AbortSignal.timeout(timeoutSeconds * 1000);
  try {
    await pyro.pullEnvironment(environment, { signal, ...given({ onProgress: ctx.progress ? (e: { message: string }) => ctx.progress?.(e.message) : undefined }) });
  } catch (err) {
    if (!signal.aborted) throw err;
    const what = image ? "pulling" : "building";
    throw new PyroError(image ? "registry_unreachable" : "environment_build_failed", `${what} ${environment} took longer than ${timeoutSeconds} s, the limit of ${what} from ${tool}`, {
      hint: `Ask the user to run \`pyro env pull ${environment}\` on the host, then call ${tool} again.`,
      details: { ...(image ? { reference: environment } : { environment }), timeout_seconds: timeoutSeconds },
    });
  }
}

export const workspaceCreate = op({
  mcp: "workspace_create",
  sdk: "createWorkspace",
  cli: "workspace create",
  summary: "Create and start a workspace, optionally seeded from a host directory or archive",
  title: "Create a persistent workspace",
  description:
    "Create and start a persistent, isolated Linux workspace whose /workspace survives between calls. Optionally seed /workspace from a host directory or .tar/.tar.gz/.tgz (seed_path), and give it a name and labels so it can be found again with workspace_list. The environment may be an image reference (e.g. docker.io/library/python:3.12). An environment not here yet is installed first (an image pulled, a catalog environment built from Debian packages), with progress notifications when the request asks for them, for at most 300 s (then registry_unreachable for an image, environment_build_failed for a build). Returns the workspace (keep its workspace_id).",
  input: {
    environment: environmentField("Environment name, e.g. debian:12 (git preinstalled), debian:12-base, debian:12-build; or the reference of a pulled image (it has a registry or namespace part), e.g. docker.io/library/node:22."),
    name: field(z.string().optional().describe("Unique name to find the workspace by, e.g. fix-123."), { value: "<name>" }),
    labels: field(z.record(z.string(), z.string()).optional().describe("Key/value labels, e.g. {\"issue\": \"123\"} (CLI: --label KEY=VALUE, repeatable)."), {
      flag: "--label <KEY=VALUE>",
      parse: "labels",
    }),
    seed_path: field(z.string().optional().describe("Host directory or .tar/.tar.gz/.tgz archive copied into /workspace."), { value: "<path>", parse: "hostPath" }),
    ...limitFields,
    secrets: field(
      z.record(z.string(), z.string()).optional().describe("Secret values by name, e.g. {\"API_TOKEN\": \"...\"}; available in /run/pyro-secrets and via secret_env, redacted from all output (CLI: --secret NAME=VALUE, repeatable; prefer --secret-file, command lines are visible to other users)."),
      { flag: "--secret <NAME=VALUE>", parse: "secretPairs" },
    ),
    secret_files: field(z.record(z.string(), z.string()).optional().describe("Secrets read from host files: {NAME: host_path} (CLI: --secret-file NAME=PATH, repeatable)."), {
      flag: "--secret-file <NAME=PATH>",
      parse: "hostPathPairs",
    }),
    backend: backendField,
    ...networkFields,
  },
  cliFlags: { idOnly: { flag: "--id-only", help: "print only the workspace id" } },
  output: workspaceInfo.shape,
  run: async (pyro, a, ctx) => {
    if (ctx.surface === "mcp") await installForChat(pyro, a.environment, ctx, "workspace_create");
    return pyro.createWorkspace({
      environment: a.environment,
      ...given({
        name: a.name,
        labels: a.labels,
        seedPath: a.seed_path === undefined ? undefined : hostPath(a.seed_path, "seed_path"),
        vcpuCount: a.vcpu_count,
        memMib: a.mem_mib,
        diskMib: a.disk_mib,
        ttlSeconds: a.ttl_seconds,
        secrets: a.secrets,
        secretFiles: a.secret_files === undefined ? undefined : Object.fromEntries(Object.entries(a.secret_files).map(([name, file]) => [name, hostPath(file, `secret_files.${name}`)])),
        backend: a.backend as BackendRequest | undefined,
      }),
      ...networkOptions(a),
    });
  },
  cliPrint: (w, cliOnly) => (cliOnly.idOnly ? w.workspace_id : undefined),
  text: workspaceText,
  human: render.workspace,
});

export const workspaceFork = op({
  mcp: "workspace_fork",
  sdk: "forkWorkspace",
  cli: "workspace fork",
  summary: "Copy a workspace into a new, independent one (files, installed packages, snapshots, settings)",
  title: "Fork a workspace",
  description:
    "Fork a workspace: a new, independent, started workspace with the source's /workspace, installed packages, snapshots (baseline included, so workspace_diff on the fork shows everything since the seed), environment, backend, limits, network policy and secrets. Processes, services, shells, command history and published ports are not copied. Use it to try several fixes from the same state: fork once per attempt, keep the best, delete the rest. Without a name, a named source's fork is called <name>-fork-N. A running vm-backend workspace must be stopped first. Returns the fork (keep its workspace_id).",
  input: {
    workspace_id: workspaceField,
    name: field(z.string().optional().describe("Unique name for the fork; default <source name>-fork-N (none when the source has no name)."), { value: "<name>" }),
    labels: field(z.record(z.string(), z.string()).optional().describe("Labels for the fork, added to the source's, e.g. {\"attempt\": \"2\"} (CLI: --label KEY=VALUE, repeatable)."), {
      flag: "--label <KEY=VALUE>",
      parse: "labels",
    }),
  },
  cliFlags: { idOnly: { flag: "--id-only", help: "print only the fork's workspace id" } },
  output: workspaceInfo.shape,
  run: (pyro, a) => pyro.forkWorkspace(a.workspace_id, given({ name: a.name, labels: a.labels })),
  cliPrint: (w, cliOnly) => (cliOnly.idOnly ? w.workspace_id : undefined),
  text: workspaceText,
  human: render.workspace,
});

export const workspaceList = op({
  mcp: "workspace_list",
  sdk: "listWorkspaces",
  cli: "workspace list",
  summary: "List workspaces, most recent activity first",
  title: "List workspaces",
  description:
    "List workspaces with their names, labels, state and last activity, most recent first. Use it to find a workspace again when you no longer have its id; labels narrows the list to workspaces carrying every given label.",
  input: {
    labels: field(z.record(z.string(), z.string()).optional().describe("Only workspaces carrying every one of these labels, e.g. {\"issue\": \"123\"} (CLI: --label KEY=VALUE, repeatable)."), {
      flag: "--label <KEY=VALUE>",
      parse: "labels",
    }),
  },
  output: { count: z.number(), workspaces: z.array(workspaceInfo), reaped: z.array(z.string()), omitted: z.number() },
  annotations: { readOnlyHint: true },
  run: (pyro, a) => pyro.listWorkspaces(given({ labels: a.labels })),
  // Bounded for a context window: the most recently active ones, and how many more exist.
  forModel: (r) => {
    const shown = r.workspaces.slice(0, MCP_LIST_LIMIT);
    return { ...r, workspaces: shown, omitted: r.count - shown.length };
  },
  text: (r) => {
    const shown = r.workspaces.slice(0, MCP_LIST_LIMIT);
    const omitted = r.count - shown.length;
    const more = () => "find one by name or id with workspace_status(workspace_id=NAME)";
    return r.count === 0 ? "no workspaces" : capLines(shown.map(workspaceText), 50, more) + (omitted ? `\n[${omitted} less recently active workspaces not listed; ${more()}]` : "");
  },
  human: render.workspaceList,
});

export const workspaceStatus = op({
  mcp: "workspace_status",
  sdk: "statusWorkspace",
  cli: "workspace status",
  summary: "Show one workspace: state, backend, limits, seed, last command",
  title: "Show a workspace",
  description: "Show one workspace: state (running/stopped/failed and why), backend and enforced limits, seed, command count and last command.",
  input: { workspace_id: workspaceField },
  output: workspaceInfo.shape,
  annotations: { readOnlyHint: true },
  run: (pyro, a) => pyro.statusWorkspace(a.workspace_id),
  text: workspaceText,
  human: render.workspace,
});

export const workspaceUpdate = op({
  mcp: "workspace_update",
  sdk: "updateWorkspace",
  cli: "workspace update",
  summary: "Rename a workspace or change its labels",
  title: "Rename or relabel a workspace",
  description: "Change a workspace's name and labels. labels are set (merged), clear_labels removes keys.",
  input: {
    workspace_id: workspaceField,
    name: field(z.string().optional().describe("New unique name."), { value: "<name>" }),
    labels: field(z.record(z.string(), z.string()).optional().describe("Labels to set, merged with the existing ones (CLI: --label KEY=VALUE, repeatable)."), { flag: "--label <KEY=VALUE>", parse: "labels" }),
    clear_labels: field(z.array(z.string()).optional().describe("Label keys to remove."), { flag: "--clear-label <KEY>", repeat: true }),
  },
  output: workspaceInfo.shape,
  run: (pyro, a) => pyro.updateWorkspace(a.workspace_id, given({ name: a.name, labels: a.labels, clearLabels: a.clear_labels })),
  text: workspaceText,
  human: render.workspace,
});

export const workspaceExec = op({
  mcp: "workspace_exec",
  sdk: "execWorkspace",
  cli: "workspace exec",
  summary: "Run a command in /workspace; exits with the command's exit code (124 on timeout)",
  title: "Run a command in a workspace",
  description:
    "Run a command in a running workspace (cwd /workspace; files persist between calls). Returns exit_code, outcome (exited/signaled/timed_out/not_started), duration and stdout/stderr capped to max_output_bytes with head and tail kept; `truncated` says when output was cut. Terminal control sequences are resolved to plain text.",
  input: { workspace_id: workspaceField, ...execFields, secret_env: secretEnvField },
  cliFlags: { shell: SHELL_FLAG, stdin: { flag: "--stdin", help: "forward this process's stdin to the command" } },
  cliAdjust: { command: true },
  output: execResult,
  run: (pyro, a) => pyro.execWorkspace(a.workspace_id, execOptions(a)),
  forModel: (r) => cleanExec(r),
  text: (r, ctx) => {
    const clean = cleanExec(r);
    return execText(clean, { readFile: ctx.offers("workspace_file_read") }) + noticeLines(clean.network_notices, ctx);
  },
});

export const workspaceLogs = op({
  mcp: "workspace_logs",
  sdk: "logsWorkspace",
  cli: "workspace logs",
  summary: "Command history: argv, exit code, duration, time, output sizes",
  title: "Command history of a workspace",
  description: "List the commands run in a workspace: argv, exit code, duration, start time, output sizes (not the output itself).",
  input: { workspace_id: workspaceField, limit: field(z.number().int().positive().optional().describe("Most recent N commands (default 50).")) },
  output: { workspace_id: z.string(), count: z.number(), total: z.number(), commands: z.array(commandRecord) },
  annotations: { readOnlyHint: true },
  run: (pyro, a) => pyro.logsWorkspace(a.workspace_id, given({ limit: a.limit })),
  text: (r) => {
    const lines = r.commands.map((c) => `#${c.sequence} ${c.timed_out ? "timed_out" : c.signal ? `signaled ${c.signal}` : `exit=${c.exit_code}`} ${Math.round(c.duration_ms)} ms: ${cleanTerminalOutput(c.command.join(" ")).slice(0, 300)}`);
    const more = r.total > r.count ? `\n[last ${r.count} of ${r.total} commands shown: call workspace_logs with limit=${r.total} to see all]` : "";
    return (lines.join("\n") || "no commands yet") + more;
  },
  human: render.logs,
});

export const workspaceStop = op({
  mcp: "workspace_stop",
  sdk: "stopWorkspace",
  cli: "workspace stop",
  summary: "Stop the sandbox; /workspace and installed packages are kept",
  title: "workspace stop",
  description: "Stop a workspace's sandbox and all its processes. /workspace and installed packages are kept; workspace_start brings it back.",
  input: { workspace_id: workspaceField },
  output: workspaceInfo.shape,
  run: (pyro, a) => pyro.stopWorkspace(a.workspace_id),
  text: workspaceText,
  human: render.workspace,
});

export const workspaceStart = op({
  mcp: "workspace_start",
  sdk: "startWorkspace",
  cli: "workspace start",
  summary: "Start a stopped or failed workspace again, /workspace unchanged",
  title: "workspace start",
  description: "Start a stopped or failed workspace again, with /workspace and installed packages unchanged. Call it after workspace_stop, or when a call fails with workspace_stopped.",
  input: { workspace_id: workspaceField },
  output: workspaceInfo.shape,
  run: (pyro, a) => pyro.startWorkspace(a.workspace_id),
  text: workspaceText,
  human: render.workspace,
});

export const workspaceDelete = op({
  mcp: "workspace_delete",
  sdk: "deleteWorkspace",
  cli: "workspace delete",
  summary: "Stop the workspace and remove everything it had",
  title: "Delete a workspace",
  description: "Stop a workspace and remove everything it had: files, history, snapshots. Cannot be undone; export anything you need first. Use it when the work in the workspace is finished.",
  input: { workspace_id: workspaceField },
  output: { workspace_id: z.string(), deleted: z.boolean() },
  annotations: { destructiveHint: true },
  run: (pyro, a) => pyro.deleteWorkspace(a.workspace_id),
  text: (r) => `deleted workspace ${r.workspace_id}`,
  human: (r) => `Deleted workspace ${r.workspace_id}`,
});

export const workspaceReap = op({
  sdk: "reapExpired",
  cli: "workspace reap",
  summary: "Delete workspaces whose TTL has passed (never one with a call in flight)",
  input: {},
  output: { reaped: z.array(z.string()) },
  run: (pyro) => pyro.reapExpired(),
  text: (r) => (r.reaped.length ? `Reaped: ${r.reaped.join(", ")}` : "Nothing to reap."),
});
