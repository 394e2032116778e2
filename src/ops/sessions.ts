/**
 * What runs inside a workspace over time: services with readiness checks and PTY shells, each
 * declared once (see op.ts). Shell reads default to what serves a model best on MCP — rendered
 * plain text and a 300 ms idle wait — where the SDK and the CLI default to raw bytes and no wait.
 */
import * as z from "zod";
import type { Pyro } from "../sdk/pyro.js";
import { execFields, secretEnvField, SHELL_FLAG, workspaceField } from "./fields.js";
import { field, given, op } from "./op.js";
import * as render from "./render.js";
import { commandInput, networkNotices, publishedPort } from "./schemas.js";
import { cleanTerminalOutput, escapeControls } from "./text.js";
import { noticeLines } from "./workspace.js";

/** MCP's shell_read defaults (documented in docs/public-contract.md). */
export const MCP_SHELL_READ_DEFAULTS = { plain: true, wait_for_idle_ms: 300, idle_timeout_ms: 2000 } as const;

const readiness = z
  .union([
    z.object({ type: z.literal("file"), path: z.string() }),
    z.object({ type: z.literal("tcp"), port: z.number().int().min(1).max(65535), host: z.string().optional() }),
    z.object({ type: z.literal("http"), url: z.string() }),
    z.object({ type: z.literal("command"), command: z.string() }),
  ])
  .describe('How to know the service is up: {"type":"http","url":"http://127.0.0.1:8000/"}, {"type":"tcp","port":5432}, {"type":"file","path":".ready"} or {"type":"command","command":"pg_isready"}.');

const serviceStatus = {
  workspace_id: z.string(),
  name: z.string(),
  state: z.string(),
  pid: z.number().nullable(),
  command: z.array(z.string()),
  shell: z.boolean(),
  cwd: z.string(),
  readiness: z.record(z.string(), z.unknown()).nullable(),
  started_at: z.string().nullable(),
  ready_at: z.string().nullable(),
  ended_at: z.string().nullable(),
  uptime_ms: z.number().nullable(),
  exit_code: z.number().nullable(),
  signal: z.string().nullable(),
  reason: z.string().nullable(),
  log_tail: z.object({ stdout: z.string(), stderr: z.string() }).optional(),
  published_ports: z.array(publishedPort),
};
const { workspace_id: _ignored, ...serviceFields } = serviceStatus;

const shellInfo = {
  shell_id: z.string(),
  pid: z.number(),
  cols: z.number(),
  rows: z.number(),
  cwd: z.string(),
  state: z.string(),
  exit_code: z.number().nullable().optional(),
  started_at: z.string(),
  cursor: z.number().optional(),
};

type ServiceRow = { name: string; state: string; reason: string | null; exit_code?: number | null; signal?: string | null; log_tail?: { stdout: string; stderr: string } };
const serviceText = (s: ServiceRow) => {
  const ended = s.state === "exited" ? ` (${s.signal ? `signal ${s.signal}` : `exit_code=${s.exit_code}`})` : "";
  const tail = s.log_tail ? `${s.log_tail.stdout ? `\n--- stdout tail ---\n${s.log_tail.stdout}` : ""}${s.log_tail.stderr ? `\n--- stderr tail ---\n${s.log_tail.stderr}` : ""}` : "";
  return `service ${s.name}: ${s.state}${ended}${s.reason ? ` — ${s.reason}` : ""}${tail}`;
};
/** Service logs for a model: control sequences resolved, in the text and the structured result. */
const cleanTail = <T extends { log_tail?: { stdout: string; stderr: string } }>(s: T): T =>
  s.log_tail ? { ...s, log_tail: { stdout: cleanTerminalOutput(s.log_tail.stdout), stderr: cleanTerminalOutput(s.log_tail.stderr) } } : s;


/**
 * Guest ports a service publishes on the host's 127.0.0.1 (MCP: numbers, "GUEST:HOST" strings or
 * objects; CLI: --publish GUEST_PORT[:HOST_PORT], repeatable).
 */
export const publishField = field(
  z
    .array(z.union([z.number().int(), z.string(), z.object({ guest_port: z.number().int(), host_port: z.number().int().optional() })]))
    .optional()
    .describe(
      'Guest TCP ports to make reachable on the host\'s 127.0.0.1: 8000 (a free host port is picked), "8000:18000", or {"guest_port": 8000, "host_port": 18000}. Needs network_policy egress+published-ports. The result lists the real host address.',
    ),
  { flag: "--publish <GUEST_PORT[:HOST_PORT]>", repeat: true, help: "make a guest TCP port reachable on the host's 127.0.0.1 (a free host port when HOST_PORT is left out; repeatable; needs --network-policy egress+published-ports)" },
);

const serviceName = field(z.string().describe("The service's name."), { arg: "<name>", label: "service name" });
const shellId = field(z.string().describe("The shell's id, as shell_open returned it."), { arg: "<shell>", label: "shell id" });
const READY_FLAGS = {
  readyFile: { flag: "--ready-file <path>", help: "ready when this file exists (relative to --cwd)" },
  readyTcp: { flag: "--ready-tcp <port>", help: "ready when 127.0.0.1:PORT accepts connections", parse: "integer" as const },
  readyHttp: { flag: "--ready-http <url>", help: "ready when GET URL answers with a status below 400" },
  readyCommand: { flag: "--ready-command <cmd>", help: "ready when this shell command exits 0" },
};

export const serviceStart = op({
  mcp: "service_start",
  sdk: "startService",
  cli: "workspace service start",
  summary: "Start a named service; returns when it is ready, has exited, or readiness timed out",
  title: "Start a service in a workspace",
  description:
    "Start a long-running process (dev server, database) under a name and wait until it is ready by the given readiness check. Returns state ready, or exited (with exit code and log tail), or failed (not ready within ready_timeout_seconds; the service was stopped). Without readiness it returns at once with state running. Logs live outside /workspace.",
  input: {
    workspace_id: workspaceField,
    service_name: serviceName,
    command: field(commandInput, { arg: "[command...]", label: "command and arguments after `--`" }),
    cwd: field(z.string().optional().describe("Working directory, relative to /workspace."), { value: "<dir>" }),
    readiness: field(readiness.optional(), false),
    ready_timeout_seconds: field(z.number().positive().optional().describe("Give up (and stop the service) after this long (default 30).")),
    ready_interval_ms: field(z.number().int().positive().optional().describe("How often to check readiness (default 500).")),
    env: execFields.env,
    secret_env: secretEnvField,
    publish: publishField,
  },
  cliFlags: { shell: SHELL_FLAG, ...READY_FLAGS },
  cliAdjust: { command: true, readiness: true },
  output: serviceStatus,
  run: (pyro, a) =>
    pyro.startService(a.workspace_id, a.service_name, {
      command: a.command,
      ...given({ cwd: a.cwd, readiness: a.readiness, readyTimeoutSeconds: a.ready_timeout_seconds, readyIntervalMs: a.ready_interval_ms, env: a.env, secretEnv: a.secret_env, publish: a.publish }),
    }),
  forModel: cleanTail,
  text: (r) => {
    const clean = cleanTail(r);
    const published = r.published_ports.map((p) => `published: guest port ${p.guest_port} is reachable from the host at ${p.address}`);
    return [serviceText(clean), ...published].join("\n");
  },
  human: render.service,
  exitCode: (r) => (r.state === "ready" || r.state === "running" ? 0 : 1),
});

export const serviceList = op({
  mcp: "service_list",
  sdk: "listServices",
  cli: "workspace service list",
  summary: "List the workspace's services with their state",
  title: "List a workspace's services",
  description: "List the services of a workspace with their state (ready/running/exited/stopped/failed) and why. Services stopped by a workspace stop or reset are listed as stopped, never restarted silently.",
  input: { workspace_id: workspaceField },
  output: { workspace_id: z.string(), count: z.number(), running_count: z.number(), services: z.array(z.object(serviceFields)) },
  annotations: { readOnlyHint: true },
  run: (pyro, a) => pyro.listServices(a.workspace_id),
  forModel: (r) => ({ ...r, services: r.services.map(cleanTail) }),
  text: (r) => (r.count ? r.services.map(cleanTail).map(serviceText).join("\n") : "no services"),
  human: (r) => (r.count ? r.services.map((x) => render.serviceLine(x)).join("\n") : "No services."),
});

export const serviceStatusOp = op({
  mcp: "service_status",
  sdk: "statusService",
  cli: "workspace service status",
  summary: "One service: pid, state, ready time, uptime, exit code",
  title: "Show one service",
  description: "Show one service of a workspace: pid, state, when it became ready, uptime, exit code or signal, and the reason for its state.",
  input: { workspace_id: workspaceField, service_name: serviceName },
  output: serviceStatus,
  annotations: { readOnlyHint: true },
  run: (pyro, a) => pyro.statusService(a.workspace_id, a.service_name),
  forModel: cleanTail,
  text: (r) => serviceText(cleanTail(r)),
  human: render.service,
});

export const serviceLogs = op({
  mcp: "service_logs",
  sdk: "logsService",
  cli: "workspace service logs",
  summary: "A service's stdout and stderr (last 50 lines by default)",
  title: "Read a service's logs",
  description: "Read a service's stdout and stderr: the last tail_lines lines (default 50), or all=true for everything retained (bounded). Works while the service runs and after it exits. Secret values read [REDACTED].",
  input: {
    workspace_id: workspaceField,
    service_name: serviceName,
    tail_lines: field(z.number().int().positive().optional().describe("The last N lines of each stream (default 50).")),
    all: field(z.boolean().optional().describe("Everything retained (bounded) instead of the last lines.")),
  },
  output: { workspace_id: z.string(), name: z.string(), stdout: z.string(), stderr: z.string(), tail_lines: z.number().nullable(), stdout_bytes: z.number(), stderr_bytes: z.number(), truncated: z.boolean(), network_notices: networkNotices },
  annotations: { readOnlyHint: true },
  run: (pyro, a) => pyro.logsService(a.workspace_id, a.service_name, given({ tailLines: a.tail_lines, all: a.all })),
  forModel: (r) => ({ ...r, stdout: cleanTerminalOutput(r.stdout), stderr: cleanTerminalOutput(r.stderr) }),
  text: (r, ctx) => {
    const scope = r.tail_lines !== null ? `last ${r.tail_lines} lines of each stream` : "all retained output";
    const more = r.tail_lines !== null ? "call service_logs with all=true for everything retained" : "older output was rotated away and is gone";
    return `${scope} (stdout ${r.stdout_bytes} bytes, stderr ${r.stderr_bytes} bytes in total)\n--- stdout ---\n${cleanTerminalOutput(r.stdout)}\n--- stderr ---\n${cleanTerminalOutput(r.stderr)}${r.truncated ? `\n[truncated: ${more}]` : ""}${noticeLines(r.network_notices, ctx)}`;
  },
  human: (r) => ({ stdout: r.stdout, stderr: r.stderr + render.networkNotices(r.network_notices) }),
});

export const serviceStop = op({
  mcp: "service_stop",
  sdk: "stopService",
  cli: "workspace service stop",
  summary: "Stop a service's whole process tree (SIGTERM, grace period, SIGKILL)",
  title: "Stop a service",
  description: "Stop a service and every process it started: SIGTERM, a grace period, then SIGKILL. Its logs stay readable with service_logs.",
  input: { workspace_id: workspaceField, service_name: serviceName },
  output: serviceStatus,
  run: (pyro, a) => pyro.stopService(a.workspace_id, a.service_name),
  forModel: cleanTail,
  text: (r) => serviceText(cleanTail(r)),
  human: render.service,
});

export const shellOpen = op({
  mcp: "shell_open",
  sdk: "openShell",
  cli: "workspace shell open",
  summary: "Open a shell; prints its id",
  title: "Open an interactive shell",
  description:
    "Open an interactive bash shell on a real PTY in a workspace (job control works, programs see a terminal). Use it for REPLs, interactive tools and full-screen programs; for one command, workspace_exec is simpler. Returns the shell_id for shell_write / shell_read.",
  input: {
    workspace_id: workspaceField,
    cwd: field(z.string().optional().describe("Working directory, relative to /workspace."), { value: "<dir>" }),
    cols: field(z.number().int().positive().optional().describe("Terminal width (default 120).")),
    rows: field(z.number().int().positive().optional().describe("Terminal height (default 30).")),
    secret_env: secretEnvField,
  },
  cliFlags: { idOnly: { flag: "--id-only", help: "print only the shell id" } },
  output: { workspace_id: z.string(), ...shellInfo },
  run: (pyro, a) => pyro.openShell(a.workspace_id, given({ cwd: a.cwd, cols: a.cols, rows: a.rows, secretEnv: a.secret_env })),
  cliPrint: (r, cliOnly) => (cliOnly.idOnly ? r.shell_id : undefined),
  text: (r) => `shell ${r.shell_id} open (${r.cols}x${r.rows}, cwd ${r.cwd})`,
  human: (r) => `Shell ${r.shell_id} (pid ${r.pid}, ${r.cols}x${r.rows}, cwd ${r.cwd})`,
});

export const shellRead = op({
  mcp: "shell_read",
  sdk: "readShell",
  cli: "workspace shell read",
  summary: "Read a shell's output from --cursor; --plain renders it as the screen a person would see",
  title: "Read a shell's screen",
  description:
    "Read what a shell printed since `cursor` (pass next_cursor from the previous read). By default the output is rendered like a terminal screen (plain=true: colours, progress bars and cursor movement collapsed; full-screen programs return the current screen) and the call waits until output has been quiet for 300 ms (wait_for_idle_ms). wait_for_pattern waits for a regex instead; wait.ended_by says what ended the wait.",
  input: {
    workspace_id: workspaceField,
    shell_id: shellId,
    cursor: field(z.number().int().min(0).optional().describe("Byte offset to read from (default 0; use next_cursor).")),
    max_chars: field(z.number().int().positive().optional().describe("At most this much output (default 65536); the most recent output is kept.")),
    plain: field(z.boolean().optional().describe("Render through a terminal emulator: no colours or control sequences (default: true on MCP, false on the CLI and SDK, which return raw bytes).")),
    wait_for_idle_ms: field(z.number().int().positive().optional().describe("Return once output has been quiet this long (MCP default 300; CLI and SDK: no wait).")),
    wait_for_pattern: field(z.string().optional().describe("Return once the output matches this regular expression, e.g. '[$#] $' for a shell prompt (root's prompt ends in '# ')."), { value: "<regex>" }),
    timeout_ms: field(z.number().int().positive().optional().describe("Upper bound of a wait (default 10000; 2000 for MCP's default idle wait).")),
  },
  output: {
    workspace_id: z.string(),
    shell_id: z.string(),
    output: z.string(),
    cursor: z.number(),
    next_cursor: z.number(),
    start_cursor: z.number(),
    dropped_bytes: z.number(),
    state: z.string(),
    exit_code: z.number().nullable(),
    signal: z.string().nullable(),
    plain: z.boolean(),
    alt_screen: z.boolean(),
    truncated: z.boolean(),
    omitted_chars: z.number(),
    wait: z.object({ ended_by: z.string(), waited_ms: z.number() }),
    network_notices: networkNotices,
  },
  annotations: { readOnlyHint: true },
  run: (pyro, a, ctx): ReturnType<Pyro["readShell"]> => {
    const options = given({ cursor: a.cursor, maxChars: a.max_chars, waitForIdleMs: a.wait_for_idle_ms, waitForPattern: a.wait_for_pattern, timeoutMs: a.timeout_ms });
    if (ctx.surface !== "mcp") return pyro.readShell(a.workspace_id, a.shell_id, { ...options, plain: a.plain === true });
    // A model is best served by the screen and a short idle wait; the default idle wait must
    // not hold it for the full 10 s when nothing new comes.
    const idleDefault = a.wait_for_pattern === undefined && a.wait_for_idle_ms === undefined;
    return pyro.readShell(a.workspace_id, a.shell_id, {
      ...options,
      plain: a.plain ?? MCP_SHELL_READ_DEFAULTS.plain,
      ...(idleDefault ? { waitForIdleMs: MCP_SHELL_READ_DEFAULTS.wait_for_idle_ms } : {}),
      ...(a.timeout_ms === undefined && idleDefault ? { timeoutMs: MCP_SHELL_READ_DEFAULTS.idle_timeout_ms } : {}),
    });
  },
  text: (r, ctx) => {
    // Plain output is already what a screen shows; raw output (plain=false) is shown with its
    // control characters escaped, so the text never carries a live escape sequence.
    const output = r.plain ? cleanTerminalOutput(r.output) : escapeControls(r.output);
    const ended = r.state === "exited" ? `exited${r.signal ? ` by ${r.signal}` : ` with exit_code=${r.exit_code}`}` : "running";
    const notes = [
      `shell ${ended}; waited ${r.wait.waited_ms} ms (ended by ${r.wait.ended_by}); next read: shell_read with cursor=${r.next_cursor}`,
      ...(r.truncated ? [`${r.omitted_chars} earlier characters left out (the most recent are kept): call shell_read with cursor=${r.cursor} and a larger max_chars to see them`] : []),
      ...(r.dropped_bytes ? [`${r.dropped_bytes} bytes before cursor ${r.start_cursor} were dropped from the shell's buffer and are gone`] : []),
    ];
    return `${output}\n[${notes.join("; ")}]${noticeLines(r.network_notices, ctx)}`;
  },
  human: (r) => ({
    stdout: r.output && !r.output.endsWith("\n") ? `${r.output}\n` : r.output,
    stderr: `[shell ${r.shell_id} ${r.state}; next_cursor=${r.next_cursor}${r.truncated ? " (truncated)" : ""}${r.wait.ended_by !== "none" ? `; wait ended by ${r.wait.ended_by}` : ""}]\n${render.networkNotices(r.network_notices)}`,
  }),
});

export const shellWrite = op({
  mcp: "shell_write",
  sdk: "writeShell",
  cli: "workspace shell write",
  summary: "Type input into a shell (a newline is appended unless --no-newline)",
  title: "Type into a shell",
  description: "Type input into a shell; Enter is pressed after it unless append_newline=false. Then call shell_read with the previous next_cursor to see the result.",
  input: {
    workspace_id: workspaceField,
    shell_id: shellId,
    input: field(z.string().describe("Text to type."), { flag: "--input <text>", required: true }),
    append_newline: field(z.boolean().optional().describe("Press Enter after the input (default true; CLI: --no-newline to not)."), { flag: "--no-newline", help: "do not press Enter after the input" }),
  },
  output: { workspace_id: z.string(), shell_id: z.string(), bytes_written: z.number() },
  run: (pyro, a) => pyro.writeShell(a.workspace_id, a.shell_id, { input: a.input, ...given({ appendNewline: a.append_newline }) }),
  text: (r) => `wrote ${r.bytes_written} bytes`,
  human: (r) => `Wrote ${r.bytes_written} bytes to ${r.shell_id}`,
});

export const shellSignal = op({
  mcp: "shell_signal",
  sdk: "signalShell",
  cli: "workspace shell signal",
  summary: "Send a signal to the shell's foreground process (INT is Ctrl-C)",
  title: "Signal a shell's program",
  description: "Send a signal to the program running in the foreground of a shell: INT (Ctrl-C, the default) to interrupt, TERM or KILL to end it, HUP to hang up.",
  input: {
    workspace_id: workspaceField,
    shell_id: shellId,
    signal: field(z.enum(["HUP", "INT", "TERM", "KILL"]).optional().describe("HUP, INT, TERM or KILL (default INT)."), { value: "<name>" }),
  },
  output: { workspace_id: z.string(), shell_id: z.string(), signal: z.string() },
  run: (pyro, a) => pyro.signalShell(a.workspace_id, a.shell_id, given({ signalName: a.signal })),
  text: (r) => `sent SIG${r.signal}`,
  human: (r) => `Sent SIG${r.signal} to ${r.shell_id}`,
});

export const shellResize = op({
  sdk: "resizeShell",
  cli: "workspace shell resize",
  summary: "Change a shell's terminal size",
  input: {
    workspace_id: workspaceField,
    shell_id: shellId,
    cols: field(z.number().int().positive().describe("Terminal width."), { required: true }),
    rows: field(z.number().int().positive().describe("Terminal height."), { required: true }),
  },
  output: { workspace_id: z.string(), shell_id: z.string(), cols: z.number(), rows: z.number() },
  run: (pyro, a) => pyro.resizeShell(a.workspace_id, a.shell_id, { cols: a.cols, rows: a.rows }),
  text: (r) => `Resized ${r.shell_id} to ${r.cols}x${r.rows}`,
});

export const shellList = op({
  sdk: "listShells",
  cli: "workspace shell list",
  summary: "List the workspace's shells",
  input: { workspace_id: workspaceField },
  output: { workspace_id: z.string(), count: z.number(), shells: z.array(z.object(shellInfo)) },
  run: (pyro, a) => pyro.listShells(a.workspace_id),
  text: (r) => (r.count ? r.shells.map((x) => `${x.shell_id}  ${x.state.padEnd(8)} pid=${x.pid} ${x.cols}x${x.rows} ${x.cwd}`).join("\n") : "No shells."),
});

export const shellClose = op({
  mcp: "shell_close",
  sdk: "closeShell",
  cli: "workspace shell close",
  summary: "Close a shell and kill everything it started",
  title: "Close a shell",
  description: "Close a shell and kill every process it started. Close shells you no longer need; they are also closed when the workspace stops, resets or is deleted.",
  input: { workspace_id: workspaceField, shell_id: shellId },
  output: { workspace_id: z.string(), shell_id: z.string(), closed: z.boolean() },
  run: (pyro, a) => pyro.closeShell(a.workspace_id, a.shell_id),
  text: (r) => `closed ${r.shell_id}`,
  human: (r) => `Closed ${r.shell_id}`,
});
