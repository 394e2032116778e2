/**
 * Interactive PTY shells on the host side: open, read (cursor-based, raw or rendered as a
 * screen), write, signal, resize, list, close — each a call into the workspace's agent, which
 * owns the PTYs and their bounded, already-redacted output buffers. State lives in the agent,
 * so any CLI process, SDK instance or MCP server can continue a shell another one opened.
 */
import path from "node:path";
import type { WorkspaceManager } from "./manager.js";
import type { AgentLink } from "./agent-link.js";
import type { WorkspaceNetwork } from "./workspace-network.js";
import { PyroError } from "../shared/errors.js";
import { validateCommandSize, validateEnv, validatePositiveInt } from "./validate.js";
import { commandEnv } from "./command-env.js";
import { WORKSPACE_GUEST_PATH } from "../protocol/messages.js";
import type { ShellInfo, ShellOpenResult, ShellSignal } from "../protocol/messages.js";

export type { ShellInfo, ShellSignal } from "../protocol/messages.js";

export const DEFAULT_SHELL_COLS = 120;
export const DEFAULT_SHELL_ROWS = 30;
export const DEFAULT_SHELL_READ_MAX_CHARS = 65536;
export const SHELL_SIGNALS: readonly ShellSignal[] = ["HUP", "INT", "TERM", "KILL"];

export interface ShellReadOptions {
  cursor?: number;
  maxChars?: number;
  /** Render through a terminal emulator: the lines a person would see, no control sequences. */
  plain?: boolean;
  /** Return once output has been quiet this long. */
  waitForIdleMs?: number;
  /** Return once the output since `cursor` matches this regular expression. */
  waitForPattern?: string;
  /** Upper bound for either wait, default 10 s. */
  timeoutMs?: number;
}

export interface ShellReadResult {
  workspace_id: string;
  shell_id: string;
  output: string;
  cursor: number;
  next_cursor: number;
  start_cursor: number;
  dropped_bytes: number;
  state: "running" | "exited";
  exit_code: number | null;
  signal: string | null;
  plain: boolean;
  alt_screen: boolean;
  truncated: boolean;
  omitted_chars: number;
  wait: { ended_by: "none" | "idle" | "pattern" | "timeout" | "exited"; waited_ms: number };
  /** What the network policy blocked since the previous result, and how to allow it. */
  network_notices: string[];
}

const SHELL_ID_RE = /^sh[0-9a-f]{8}$/;

function checkShellId(shellId: string): string {
  if (typeof shellId !== "string" || !SHELL_ID_RE.test(shellId)) {
    throw new PyroError("shell_not_found", `${JSON.stringify(String(shellId).slice(0, 40))} is not a shell id`, { hint: "Shell ids look like sh0123abcd; list them with `pyro workspace shell list WS`." });
  }
  return shellId;
}

export class WorkspaceShells {
  constructor(
    private readonly manager: WorkspaceManager,
    private readonly link: AgentLink,
    private readonly network: WorkspaceNetwork,
  ) {}

  async open(ref: string, options: { cwd?: string; cols?: number; rows?: number; env?: Record<string, string>; secretEnv?: string[] | Record<string, string> } = {}): Promise<ShellInfo & { workspace_id: string }> {
    const cols = validatePositiveInt(options.cols ?? DEFAULT_SHELL_COLS, "cols", 1000);
    const rows = validatePositiveInt(options.rows ?? DEFAULT_SHELL_ROWS, "rows", 1000);
    const env = validateEnv({ ...(options.env ?? {}) });
    const cwd = path.posix.resolve(WORKSPACE_GUEST_PATH, options.cwd ?? ".");
    validateCommandSize({ command: [], env, cwd });
    const { id, record, client, secretEnv } = await this.link.running(ref, options.secretEnv);
    const { header: h } = await client.request({ type: "shell_open", cwd, cols, rows, env: commandEnv(record, env), secretEnv });
    await this.manager.touch(id, "shell_open", { shell_id: h.shell_id });
    return { workspace_id: id, ...pickShell(h) };
  }

  async read(ref: string, shellId: string, options: ShellReadOptions = {}): Promise<ShellReadResult> {
    checkShellId(shellId);
    const cursor = options.cursor ?? 0;
    if (!Number.isSafeInteger(cursor) || cursor < 0) throw new PyroError("invalid_argument", `cursor must be a whole number >= 0, got ${cursor}`);
    const maxChars = validatePositiveInt(options.maxChars ?? DEFAULT_SHELL_READ_MAX_CHARS, "max_chars", 4 * 1024 * 1024);
    if (options.waitForIdleMs !== undefined) validatePositiveInt(options.waitForIdleMs, "wait_for_idle_ms", 120_000);
    if (options.timeoutMs !== undefined) validatePositiveInt(options.timeoutMs, "timeout_ms", 120_000);
    if (options.waitForPattern !== undefined) {
      try {
        new RegExp(options.waitForPattern);
      } catch (err) {
        throw new PyroError("invalid_argument", `wait_for_pattern is not a valid regular expression: ${(err as Error).message}`);
      }
    }
    const { id, record, client } = await this.link.running(ref);
    const { header: h, payload } = await client.request({
      type: "shell_read",
      shell_id: shellId,
      cursor,
      max_chars: maxChars,
      plain: options.plain === true,
      ...(options.waitForIdleMs !== undefined ? { wait_for_idle_ms: options.waitForIdleMs } : {}),
      ...(options.waitForPattern !== undefined ? { wait_for_pattern: options.waitForPattern } : {}),
      ...(options.timeoutMs !== undefined ? { timeout_ms: options.timeoutMs } : {}),
    });
    // Reads never count as activity: only what changes a workspace does.
    return {
      workspace_id: id,
      shell_id: shellId,
      output: payload.subarray(0, maxChars * 4).toString("utf8"),
      cursor: h.cursor,
      next_cursor: h.next_cursor,
      start_cursor: h.start_cursor,
      dropped_bytes: h.dropped_bytes,
      state: h.state,
      exit_code: h.exit_code,
      signal: h.signal,
      plain: h.plain,
      alt_screen: h.alt_screen,
      truncated: h.truncated,
      omitted_chars: h.omitted_chars,
      wait: h.wait,
      network_notices: await this.network.notices(record),
    };
  }

  async write(ref: string, shellId: string, input: string, options: { appendNewline?: boolean } = {}): Promise<{ workspace_id: string; shell_id: string; bytes_written: number }> {
    checkShellId(shellId);
    if (typeof input !== "string") throw new PyroError("invalid_argument", "input must be a string");
    const { id, client } = await this.link.running(ref);
    const payload = Buffer.from(input, "utf8");
    if (payload.length > 1024 * 1024) throw new PyroError("invalid_argument", "input larger than 1 MiB");
    const { header: h } = await client.request({ type: "shell_write", shell_id: shellId, append_newline: options.appendNewline !== false }, payload);
    await this.manager.touch(id, "shell_write", { shell_id: shellId, bytes: payload.length });
    return { workspace_id: id, shell_id: shellId, bytes_written: h.bytes_written };
  }

  async signal(ref: string, shellId: string, signal: string = "INT"): Promise<{ workspace_id: string; shell_id: string; signal: string }> {
    checkShellId(shellId);
    const name = SHELL_SIGNALS.find((s) => s === signal.toUpperCase().replace(/^SIG/, ""));
    if (name === undefined) throw new PyroError("invalid_argument", `signal must be one of ${SHELL_SIGNALS.join(", ")}`);
    const { id, client } = await this.link.running(ref);
    await client.request({ type: "shell_signal", shell_id: shellId, signal: name });
    await this.manager.touch(id, "shell_signal", { shell_id: shellId, signal: name });
    return { workspace_id: id, shell_id: shellId, signal: name };
  }

  async resize(ref: string, shellId: string, cols: number, rows: number): Promise<{ workspace_id: string; shell_id: string; cols: number; rows: number }> {
    checkShellId(shellId);
    validatePositiveInt(cols, "cols", 1000);
    validatePositiveInt(rows, "rows", 1000);
    const { id, client } = await this.link.running(ref);
    await client.request({ type: "shell_resize", shell_id: shellId, cols, rows });
    return { workspace_id: id, shell_id: shellId, cols, rows };
  }

  async close(ref: string, shellId: string): Promise<{ workspace_id: string; shell_id: string; closed: true }> {
    checkShellId(shellId);
    const { id, client } = await this.link.running(ref);
    await client.request({ type: "shell_close", shell_id: shellId });
    await this.manager.touch(id, "shell_close", { shell_id: shellId });
    return { workspace_id: id, shell_id: shellId, closed: true };
  }

  async list(ref: string): Promise<{ workspace_id: string; count: number; shells: ShellInfo[] }> {
    const { id, client } = await this.link.running(ref);
    const { header: h } = await client.request({ type: "shell_list" });
    const shells = h.shells.map(pickShell);
    return { workspace_id: id, count: shells.length, shells };
  }
}

/** The shell fields in their documented order; a new shell has not exited (exit_code null). */
function pickShell(h: ShellInfo | ShellOpenResult): ShellInfo {
  return {
    shell_id: h.shell_id,
    pid: h.pid,
    cols: h.cols,
    rows: h.rows,
    cwd: h.cwd,
    state: h.state,
    exit_code: "exit_code" in h ? h.exit_code : null,
    started_at: h.started_at,
    ...("cursor" in h && h.cursor !== undefined ? { cursor: h.cursor } : {}),
  };
}
