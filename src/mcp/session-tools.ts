/**
 * MCP tools for what runs inside a workspace over time: services with readiness and PTY
 * shells. Shell reads default to what serves a model best — rendered plain text and a 300 ms
 * idle wait — where the SDK and CLI default to raw bytes and no wait.
 */
import * as z from "zod";
import type { Pyro } from "../sdk/pyro.js";
import { secretEnvField } from "../ops/fields.js";
import type { Register } from "./registry.js";
import { ok, tool } from "./results.js";
import { cleanTerminalOutput, escapeControls } from "../ops/text.js";
import { commandInput, networkNotices, publishedPort, workspaceRef } from "../ops/schemas.js";
import { noticeLines, publishInput } from "./network-tools.js";

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

export function registerSessionTools(register: Register, pyro: Pyro): void {
  register(
    "service_start",
    {
      title: "Start a service in a workspace",
      description:
        "Start a long-running process (dev server, database) under a name and wait until it is ready by the given readiness check. Returns state ready, or exited (with exit code and log tail), or failed (not ready within ready_timeout_seconds; the service was stopped). Without readiness it returns at once with state running. Logs live outside /workspace.",
      inputSchema: {
        workspace_id: workspaceRef,
        service_name: z.string(),
        command: commandInput,
        cwd: z.string().optional().describe("Working directory, relative to /workspace."),
        readiness: readiness.optional(),
        ready_timeout_seconds: z.number().positive().optional().describe("Default 30."),
        ready_interval_ms: z.number().int().positive().optional().describe("Default 500."),
        env: z.record(z.string(), z.string()).optional(),
        secret_env: secretEnvField.schema,
        publish: publishInput,
      },
      outputSchema: serviceStatus,
    },
    tool(async (a: { workspace_id: string; service_name: string; command: string | string[]; cwd?: string; readiness?: never; ready_timeout_seconds?: number; ready_interval_ms?: number; env?: Record<string, string>; secret_env?: Record<string, string>; publish?: (number | string | { guest_port: number; host_port?: number })[] }) => {
      const r = await pyro.startService(a.workspace_id, a.service_name, {
        command: a.command,
        ...(a.cwd !== undefined ? { cwd: a.cwd } : {}),
        ...(a.readiness !== undefined ? { readiness: a.readiness } : {}),
        ...(a.ready_timeout_seconds !== undefined ? { readyTimeoutSeconds: a.ready_timeout_seconds } : {}),
        ...(a.ready_interval_ms !== undefined ? { readyIntervalMs: a.ready_interval_ms } : {}),
        ...(a.env !== undefined ? { env: a.env } : {}),
        ...(a.secret_env !== undefined ? { secretEnv: a.secret_env } : {}),
        ...(a.publish !== undefined ? { publish: a.publish } : {}),
      });
      const clean = cleanTail(r);
      const published = r.published_ports.map((p) => `published: guest port ${p.guest_port} is reachable from the host at ${p.address}`);
      return ok(clean, [serviceText(clean), ...published].join("\n"));
    }),
  );

  register(
    "service_list",
    {
      title: "List a workspace's services",
      description: "List the services of a workspace with their state (ready/running/exited/stopped/failed) and why. Services stopped by a workspace stop or reset are listed as stopped, never restarted silently.",
      inputSchema: { workspace_id: workspaceRef },
      outputSchema: { workspace_id: z.string(), count: z.number(), running_count: z.number(), services: z.array(z.object(serviceFields)) },
      annotations: { readOnlyHint: true },
    },
    tool(async (a: { workspace_id: string }) => {
      const r = await pyro.listServices(a.workspace_id);
      const clean = { ...r, services: r.services.map(cleanTail) };
      return ok(clean, r.count ? clean.services.map(serviceText).join("\n") : "no services");
    }),
  );

  register(
    "service_status",
    {
      title: "Show one service",
      description: "Show one service of a workspace: pid, state, when it became ready, uptime, exit code or signal, and the reason for its state.",
      inputSchema: { workspace_id: workspaceRef, service_name: z.string() },
      outputSchema: serviceStatus,
      annotations: { readOnlyHint: true },
    },
    tool(async (a: { workspace_id: string; service_name: string }) => {
      const r = cleanTail(await pyro.statusService(a.workspace_id, a.service_name));
      return ok(r, serviceText(r));
    }),
  );

  register(
    "service_logs",
    {
      title: "Read a service's logs",
      description: "Read a service's stdout and stderr: the last tail_lines lines (default 50), or all=true for everything retained (bounded). Works while the service runs and after it exits. Secret values read [REDACTED].",
      inputSchema: { workspace_id: workspaceRef, service_name: z.string(), tail_lines: z.number().int().positive().optional(), all: z.boolean().optional() },
      outputSchema: { workspace_id: z.string(), name: z.string(), stdout: z.string(), stderr: z.string(), tail_lines: z.number().nullable(), stdout_bytes: z.number(), stderr_bytes: z.number(), truncated: z.boolean(), network_notices: networkNotices },
      annotations: { readOnlyHint: true },
    },
    tool(async (a: { workspace_id: string; service_name: string; tail_lines?: number; all?: boolean }) => {
      const r = await pyro.logsService(a.workspace_id, a.service_name, { ...(a.tail_lines !== undefined ? { tailLines: a.tail_lines } : {}), ...(a.all !== undefined ? { all: a.all } : {}) });
      const clean = { ...r, stdout: cleanTerminalOutput(r.stdout), stderr: cleanTerminalOutput(r.stderr) };
      const scope = r.tail_lines !== null ? `last ${r.tail_lines} lines of each stream` : "all retained output";
      const more = r.tail_lines !== null ? "call service_logs with all=true for everything retained" : "older output was rotated away and is gone";
      return ok(clean, `${scope} (stdout ${r.stdout_bytes} bytes, stderr ${r.stderr_bytes} bytes in total)\n--- stdout ---\n${clean.stdout}\n--- stderr ---\n${clean.stderr}${r.truncated ? `\n[truncated: ${more}]` : ""}${noticeLines(r.network_notices, register)}`);
    }),
  );

  register(
    "service_stop",
    {
      title: "Stop a service",
      description: "Stop a service and every process it started: SIGTERM, a grace period, then SIGKILL. Its logs stay readable with service_logs.",
      inputSchema: { workspace_id: workspaceRef, service_name: z.string() },
      outputSchema: serviceStatus,
    },
    tool(async (a: { workspace_id: string; service_name: string }) => {
      const r = cleanTail(await pyro.stopService(a.workspace_id, a.service_name));
      return ok(r, serviceText(r));
    }),
  );

  register(
    "shell_open",
    {
      title: "Open an interactive shell",
      description:
        "Open an interactive bash shell on a real PTY in a workspace (job control works, programs see a terminal). Use it for REPLs, interactive tools and full-screen programs; for one command, workspace_exec is simpler. Returns the shell_id for shell_write / shell_read.",
      inputSchema: {
        workspace_id: workspaceRef,
        cwd: z.string().optional(),
        cols: z.number().int().positive().optional().describe("Default 120."),
        rows: z.number().int().positive().optional().describe("Default 30."),
        secret_env: secretEnvField.schema,
      },
      outputSchema: { workspace_id: z.string(), ...shellInfo },
    },
    tool(async (a: { workspace_id: string; cwd?: string; cols?: number; rows?: number; secret_env?: Record<string, string> }) => {
      const r = await pyro.openShell(a.workspace_id, {
        ...(a.cwd !== undefined ? { cwd: a.cwd } : {}),
        ...(a.cols !== undefined ? { cols: a.cols } : {}),
        ...(a.rows !== undefined ? { rows: a.rows } : {}),
        ...(a.secret_env !== undefined ? { secretEnv: a.secret_env } : {}),
      });
      return ok(r, `shell ${r.shell_id} open (${r.cols}x${r.rows}, cwd ${r.cwd})`);
    }),
  );

  register(
    "shell_read",
    {
      title: "Read a shell's screen",
      description:
        "Read what a shell printed since `cursor` (pass next_cursor from the previous read). By default the output is rendered like a terminal screen (plain=true: colours, progress bars and cursor movement collapsed; full-screen programs return the current screen) and the call waits until output has been quiet for 300 ms (wait_for_idle_ms). wait_for_pattern waits for a regex instead; wait.ended_by says what ended the wait.",
      inputSchema: {
        workspace_id: workspaceRef,
        shell_id: z.string(),
        cursor: z.number().int().min(0).optional().describe("Byte offset to read from; default 0."),
        max_chars: z.number().int().positive().optional().describe("Default 65536; the most recent output is kept."),
        plain: z.boolean().optional().describe("Default true here. false returns raw bytes with control sequences."),
        wait_for_idle_ms: z.number().int().positive().optional().describe("Default 300 here."),
        wait_for_pattern: z.string().optional().describe("Regular expression to wait for, e.g. '[$#] $' for a shell prompt (root's prompt ends in '# ')."),
        timeout_ms: z.number().int().positive().optional().describe("Upper bound of a wait; default 10000 (2000 for the default idle wait)."),
      },
      outputSchema: {
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
    },
    tool(async (a: { workspace_id: string; shell_id: string; cursor?: number; max_chars?: number; plain?: boolean; wait_for_idle_ms?: number; wait_for_pattern?: string; timeout_ms?: number }) => {
      const r = await pyro.readShell(a.workspace_id, a.shell_id, {
        plain: a.plain ?? MCP_SHELL_READ_DEFAULTS.plain,
        ...(a.cursor !== undefined ? { cursor: a.cursor } : {}),
        ...(a.max_chars !== undefined ? { maxChars: a.max_chars } : {}),
        ...(a.wait_for_pattern !== undefined ? { waitForPattern: a.wait_for_pattern } : { waitForIdleMs: a.wait_for_idle_ms ?? MCP_SHELL_READ_DEFAULTS.wait_for_idle_ms }),
        ...(a.wait_for_pattern !== undefined && a.wait_for_idle_ms !== undefined ? { waitForIdleMs: a.wait_for_idle_ms } : {}),
        // The default idle wait must not hold a model for the full 10 s when nothing new comes.
        ...(a.timeout_ms !== undefined ? { timeoutMs: a.timeout_ms } : a.wait_for_pattern === undefined && a.wait_for_idle_ms === undefined ? { timeoutMs: MCP_SHELL_READ_DEFAULTS.idle_timeout_ms } : {}),
      });
      // Plain output is already what a screen shows; raw output (plain=false) is shown with its
      // control characters escaped, so the text never carries a live escape sequence.
      const output = r.plain ? cleanTerminalOutput(r.output) : escapeControls(r.output);
      const ended = r.state === "exited" ? `exited${r.signal ? ` by ${r.signal}` : ` with exit_code=${r.exit_code}`}` : "running";
      const notes = [
        `shell ${ended}; waited ${r.wait.waited_ms} ms (ended by ${r.wait.ended_by}); next read: shell_read with cursor=${r.next_cursor}`,
        ...(r.truncated ? [`${r.omitted_chars} earlier characters left out (the most recent are kept): call shell_read with cursor=${r.cursor} and a larger max_chars to see them`] : []),
        ...(r.dropped_bytes ? [`${r.dropped_bytes} bytes before cursor ${r.start_cursor} were dropped from the shell's buffer and are gone`] : []),
      ];
      return ok(r, `${output}\n[${notes.join("; ")}]${noticeLines(r.network_notices, register)}`);
    }),
  );

  register(
    "shell_write",
    {
      title: "Type into a shell",
      description: "Type input into a shell; Enter is pressed after it unless append_newline=false. Then call shell_read with the previous next_cursor to see the result.",
      inputSchema: { workspace_id: workspaceRef, shell_id: z.string(), input: z.string(), append_newline: z.boolean().optional().describe("Default true.") },
      outputSchema: { workspace_id: z.string(), shell_id: z.string(), bytes_written: z.number() },
    },
    tool(async (a: { workspace_id: string; shell_id: string; input: string; append_newline?: boolean }) => {
      const r = await pyro.writeShell(a.workspace_id, a.shell_id, { input: a.input, ...(a.append_newline !== undefined ? { appendNewline: a.append_newline } : {}) });
      return ok(r, `wrote ${r.bytes_written} bytes`);
    }),
  );

  register(
    "shell_signal",
    {
      title: "Signal a shell's program",
      description: "Send a signal to the program running in the foreground of a shell: INT (Ctrl-C, the default) to interrupt, TERM or KILL to end it, HUP to hang up.",
      inputSchema: { workspace_id: workspaceRef, shell_id: z.string(), signal: z.enum(["HUP", "INT", "TERM", "KILL"]).optional() },
      outputSchema: { workspace_id: z.string(), shell_id: z.string(), signal: z.string() },
    },
    tool(async (a: { workspace_id: string; shell_id: string; signal?: string }) => {
      const r = await pyro.signalShell(a.workspace_id, a.shell_id, a.signal !== undefined ? { signalName: a.signal } : {});
      return ok(r, `sent SIG${r.signal}`);
    }),
  );

  register(
    "shell_close",
    {
      title: "Close a shell",
      description: "Close a shell and kill every process it started. Close shells you no longer need; they are also closed when the workspace stops, resets or is deleted.",
      inputSchema: { workspace_id: workspaceRef, shell_id: z.string() },
      outputSchema: { workspace_id: z.string(), shell_id: z.string(), closed: z.boolean() },
    },
    tool(async (a: { workspace_id: string; shell_id: string }) => {
      const r = await pyro.closeShell(a.workspace_id, a.shell_id);
      return ok(r, `closed ${r.shell_id}`);
    }),
  );
}
