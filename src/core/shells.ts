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
import { validateEnv, validatePositiveInt } from "./validate.js";
import { SANDBOX_PATH } from "../runtime/namespace/backend.js";
import { WORKSPACE_GUEST_PATH } from "../protocol/messages.js";

export const DEFAULT_SHELL_COLS = 120;
export const DEFAULT_SHELL_ROWS = 30;
export const DEFAULT_SHELL_READ_MAX_CHARS = 65536;
export const SHELL_SIGNALS = ["HUP", "INT", "TERM", "KILL"] as const;
export type ShellSignal = (typeof SHELL_SIGNALS)[number];

export interface ShellInfo {
  shell_id: string;
  pid: number;
  cols: number;
  rows: number;
  cwd: string;
  state: "running" | "exited";
  exit_code?: number | null;
  started_at: string;
  cursor?: number;
}

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
    const { id, client, secretEnv } = await this.link.running(ref, options.secretEnv);
    const h = (
      await client.request({ type: "shell_open", cwd, cols, rows, env: { PATH: SANDBOX_PATH, HOME: "/root", LANG: "C.UTF-8", ...env }, secretEnv })
    ).header;
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
    const frame = await client.request({
      type: "shell_read",
      shell_id: shellId,
      cursor,
      max_chars: maxChars,
      plain: options.plain === true,
      ...(options.waitForIdleMs !== undefined ? { wait_for_idle_ms: options.waitForIdleMs } : {}),
      ...(options.waitForPattern !== undefined ? { wait_for_pattern: options.waitForPattern } : {}),
      ...(options.timeoutMs !== undefined ? { timeout_ms: options.timeoutMs } : {}),
    });
    const h = frame.header;
    // Reads never count as activity: only what changes a workspace does.
    return {
      workspace_id: id,
      shell_id: shellId,
      output: frame.payload.subarray(0, maxChars * 4).toString("utf8"),
      cursor: Number(h.cursor) || 0,
      next_cursor: Number(h.next_cursor) || 0,
      start_cursor: Number(h.start_cursor) || 0,
      dropped_bytes: Number(h.dropped_bytes) || 0,
      state: h.state === "exited" ? "exited" : "running",
      exit_code: typeof h.exit_code === "number" ? h.exit_code : null,
      signal: typeof h.signal === "string" ? h.signal : null,
      plain: h.plain === true,
      alt_screen: h.alt_screen === true,
      truncated: h.truncated === true,
      omitted_chars: Number(h.omitted_chars) || 0,
      wait: (h.wait as ShellReadResult["wait"]) ?? { ended_by: "none", waited_ms: 0 },
      network_notices: await this.network.notices(record),
    };
  }

  async write(ref: string, shellId: string, input: string, options: { appendNewline?: boolean } = {}): Promise<{ workspace_id: string; shell_id: string; bytes_written: number }> {
    checkShellId(shellId);
    if (typeof input !== "string") throw new PyroError("invalid_argument", "input must be a string");
    const { id, client } = await this.link.running(ref);
    const payload = Buffer.from(input, "utf8");
    if (payload.length > 1024 * 1024) throw new PyroError("invalid_argument", "input larger than 1 MiB");
    const h = (await client.request({ type: "shell_write", shell_id: shellId, append_newline: options.appendNewline !== false }, payload)).header;
    await this.manager.touch(id, "shell_write", { shell_id: shellId, bytes: payload.length });
    return { workspace_id: id, shell_id: shellId, bytes_written: Number(h.bytes_written) || 0 };
  }

  async signal(ref: string, shellId: string, signal: string = "INT"): Promise<{ workspace_id: string; shell_id: string; signal: string }> {
    checkShellId(shellId);
    const name = signal.toUpperCase().replace(/^SIG/, "");
    if (!(SHELL_SIGNALS as readonly string[]).includes(name)) throw new PyroError("invalid_argument", `signal must be one of ${SHELL_SIGNALS.join(", ")}`);
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
    const h = (await client.request({ type: "shell_list" })).header;
    const shells = Array.isArray(h.shells) ? (h.shells as Record<string, unknown>[]).map(pickShell) : [];
    return { workspace_id: id, count: shells.length, shells };
  }
}

function pickShell(h: Record<string, unknown>): ShellInfo {
  return {
    shell_id: String(h.shell_id),
    pid: Number(h.pid) || 0,
    cols: Number(h.cols) || 0,
    rows: Number(h.rows) || 0,
    cwd: String(h.cwd ?? WORKSPACE_GUEST_PATH),
    state: h.state === "exited" ? "exited" : "running",
    exit_code: typeof h.exit_code === "number" ? h.exit_code : null,
    started_at: String(h.started_at ?? ""),
    ...(typeof h.cursor === "number" ? { cursor: h.cursor } : {}),
  };
}
