/**
 * Interactive shells inside the sandbox: `bash -i` on a real PTY (node-pty), whose output is
 * redacted, kept in a bounded cursor-addressed log and mirrored into a headless terminal so
 * reads can be raw bytes or the rendered screen, optionally waiting for quiet or a pattern.
 * Shells live in the agent, so separate host calls (CLI, SDK, MCP) continue the same shell.
 * Serves the shell_* requests; never writes to the workspace itself.
 */
import fs from "node:fs";
import os from "node:os";
import { randomBytes } from "node:crypto";
import type * as NodePtyModule from "node-pty";
import type { IPty } from "node-pty";
import { AgentFailure } from "../failure.js";
import { bool, int, invalid, isRecord, optionalInt } from "../handler.js";
import type { Handlers } from "../handler.js";
import type { ShellInfo, ShellReadResult, ShellSignal, ShellState, ShellWaitEnd } from "../../protocol/messages.js";
import { currentRedactor, secretEnv } from "../secrets.js";
import { MIN_SECRET_LENGTH } from "../../shared/redact.js";
import { requireDirectory } from "../paths.js";
import { spawnExpendable } from "../expendable.js";
import { OutputLog, ShellRedaction } from "./output.js";
import { ScreenModel } from "./terminal.js";
import { SHELL_MARKER_VAR, foregroundGroup, killShellTree } from "./process.js";

export const MAX_SHELLS = 16;
const MAX_COLS = 1000;
const MAX_ROWS = 1000;
const MAX_INPUT_BYTES = 1024 * 1024;
const MAX_READ_CHARS = 4 * 1024 * 1024;
const DEFAULT_WAIT_TIMEOUT_MS = 10_000;
const MAX_WAIT_MS = 120_000;
/**
 * Quiet time after which bytes held back as a possible secret prefix are released. A short
 * tail (under MIN_SECRET_LENGTH bytes) is almost always coincidence — a prompt ending in a
 * letter a secret starts with — and goes as it is after 50 ms. A longer one is likely a secret
 * printed in pieces: after a second it goes out as [REDACTED], and the rest of the value is
 * dropped when it comes (see ShellRedaction).
 */
const FLUSH_SHORT_MS = 50;
const FLUSH_LONG_MS = 1000;
/** Flow control: stop reading the PTY while the emulator lags this far behind, resume below the low mark. */
const BACKLOG_HIGH = 2 * 1024 * 1024;
const BACKLOG_LOW = 256 * 1024;
/** Pattern waits re-render at most this often while output streams in. */
const PATTERN_CHECK_MS = 25;
/** Raw pattern waits look at no more than this much of the newest output. */
const PATTERN_RAW_WINDOW = 1024 * 1024;
const SIGNALS: readonly ShellSignal[] = ["HUP", "INT", "TERM", "KILL"];
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

type NodePty = typeof NodePtyModule;

let nodePty: Promise<NodePty> | undefined;

/** node-pty is a native addon mounted next to the agent; loaded only when the first shell opens. */
function loadNodePty(): Promise<NodePty> {
  nodePty ??= import("node-pty").then((m) => {
    const mod = m as NodePty & { default?: NodePty };
    return typeof mod.spawn === "function" ? mod : mod.default!;
  });
  nodePty.catch(() => (nodePty = undefined));
  return nodePty;
}

function signalName(signal: number | undefined): string | null {
  if (!signal) return null;
  const entry = Object.entries(os.constants.signals).find(([, n]) => n === signal);
  return entry ? entry[0] : String(signal);
}

interface WaitOptions {
  cursor: number;
  idleMs: number | undefined;
  pattern: RegExp | undefined;
  plain: boolean;
  timeoutMs: number;
}

class Shell {
  state: ShellState = "running";
  exitCode: number | null = null;
  signal: string | null = null;
  readonly startedAt = new Date().toISOString();
  private readonly log = new OutputLog();
  private readonly redaction = new ShellRedaction(currentRedactor);
  private flushTimer: NodeJS.Timeout | null = null;
  /** When the PTY last produced anything (held-back bytes included). */
  private lastOutputAt = performance.now();
  private paused = false;
  /** The shell process has exited (its state flips once the last output is rendered). */
  private ptyGone = false;
  private closed = false;
  private readonly listeners = new Set<() => void>();

  constructor(
    readonly id: string,
    private readonly pty: IPty,
    private readonly screen: ScreenModel,
    readonly cwd: string,
    public cols: number,
    public rows: number,
  ) {
    // With encoding null node-pty hands over raw Buffers (its typings say string).
    pty.onData((data) => this.onOutput(Buffer.isBuffer(data) ? data : Buffer.from(data)));
    pty.onExit(({ exitCode, signal }) => this.onExit(exitCode, signal));
    // Answers to terminal queries in the output go back into the PTY, as from a real terminal.
    screen.onAnswer = (answer) => {
      if (!this.ptyGone && !this.closed) pty.write(answer);
    };
    screen.onParsed = () => {
      if (this.paused && screen.backlog < BACKLOG_LOW) {
        this.paused = false;
        this.pty.resume();
      }
      this.notify();
    };
  }

  get pid(): number {
    return this.pty.pid;
  }

  get end(): number {
    return this.log.end;
  }

  info(): ShellInfo {
    return {
      shell_id: this.id,
      pid: this.pid,
      cols: this.cols,
      rows: this.rows,
      cwd: this.cwd,
      state: this.state,
      exit_code: this.exitCode,
      started_at: this.startedAt,
      cursor: this.log.end,
    };
  }

  private onOutput(data: Buffer): void {
    if (this.closed) return;
    this.lastOutputAt = performance.now();
    this.append(this.redaction.push(data));
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    const held = this.redaction.held;
    if (held > 0) {
      this.flushTimer = setTimeout(
        () => {
          this.flushTimer = null;
          this.append(this.redaction.flush());
          this.notify();
        },
        held >= MIN_SECRET_LENGTH ? FLUSH_LONG_MS : FLUSH_SHORT_MS,
      );
    }
    this.notify();
  }

  private append(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.log.append(bytes);
    this.screen.write(bytes);
    if (!this.paused && this.screen.backlog > BACKLOG_HIGH) {
      this.paused = true;
      this.pty.pause();
    }
  }

  private onExit(exitCode: number, signal: number | undefined): void {
    this.ptyGone = true;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    const sig = signalName(signal);
    const exited = () => {
      this.state = "exited";
      this.signal = sig;
      this.exitCode = sig ? null : exitCode;
      this.notify();
    };
    if (this.closed) return exited();
    this.append(this.redaction.flush());
    // node-pty reports the exit only after the PTY is drained; wait for the emulator too, so a
    // read that sees "exited" also sees the last output rendered.
    void this.screen.caughtUp(this.log.end).then(exited);
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }

  write(input: Buffer): void {
    if (this.ptyGone || this.closed) throw new AgentFailure("invalid_request", `shell ${this.id} has exited`, { state: "exited" });
    this.pty.write(input);
  }

  sendSignal(sig: ShellSignal): number {
    if (this.ptyGone || this.closed) throw new AgentFailure("invalid_request", `shell ${this.id} has exited`, { state: "exited" });
    // Like a terminal's Ctrl-C: to the job in the foreground, or the shell at its prompt.
    const pgid = foregroundGroup(this.pid) ?? this.pid;
    try {
      process.kill(-pgid, `SIG${sig}`);
    } catch (err) {
      if (pgid === this.pid) throw new AgentFailure("invalid_request", `cannot signal shell ${this.id}: ${(err as Error).message}`);
      process.kill(-this.pid, `SIG${sig}`);
      return this.pid;
    }
    return pgid;
  }

  resize(cols: number, rows: number): void {
    this.cols = cols;
    this.rows = rows;
    if (!this.ptyGone && !this.closed) {
      try {
        this.pty.resize(cols, rows);
      } catch {
        // the PTY closed under us: the terminal still follows
      }
    }
    this.screen.resize(cols, rows);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    // Once the shell itself has exited its pid may be reused: only the marker finds what is left.
    await killShellTree(this.ptyGone ? null : this.pid, this.id);
    try {
      this.pty.kill("SIGKILL");
    } catch {
      // already gone
    }
    (this.pty as IPty & { destroy?: () => void }).destroy?.();
    this.notify();
    this.screen.dispose();
  }

  /** Ends when the wait condition holds; see the shell_read protocol. */
  wait(options: WaitOptions): Promise<ShellWaitEnd> {
    const { cursor, idleMs, pattern, plain, timeoutMs } = options;
    return new Promise<ShellWaitEnd>((resolve) => {
      let idleTimer: NodeJS.Timeout | null = null;
      let patternTimer: NodeJS.Timeout | null = null;
      let lastPatternCheck = -Infinity;
      // Rendering a long scrollback costs time: check no more often than 4x what a check costs.
      let checkInterval = PATTERN_CHECK_MS;
      let patternCheckedAt = -1;
      const finish = (how: ShellWaitEnd) => {
        clearTimeout(timeout);
        if (idleTimer) clearTimeout(idleTimer);
        if (patternTimer) clearTimeout(patternTimer);
        this.listeners.delete(evaluate);
        resolve(how);
      };
      const patternMatches = (): boolean => {
        const now = performance.now();
        if (now - lastPatternCheck < checkInterval) {
          patternTimer ??= setTimeout(
            () => {
              patternTimer = null;
              evaluate();
            },
            checkInterval - (now - lastPatternCheck),
          );
          return false;
        }
        let text: string;
        if (plain) {
          // Only a fully parsed screen is worth matching; the parse callback comes back here.
          if (this.screen.parsed < this.log.end || this.screen.parsed === patternCheckedAt) return false;
          patternCheckedAt = this.screen.parsed;
          text = this.screen.render(Math.max(cursor, this.log.start), { keepCursorColumn: true }).text;
        } else {
          if (this.log.end === patternCheckedAt) return false;
          patternCheckedAt = this.log.end;
          const from = Math.max(cursor, this.log.start, this.log.end - PATTERN_RAW_WINDOW);
          text = this.log.slice(from, this.log.end).toString("utf8");
        }
        const matched = pattern!.test(text);
        lastPatternCheck = performance.now();
        checkInterval = Math.max(PATTERN_CHECK_MS, 4 * (lastPatternCheck - now));
        return matched;
      };
      const evaluate = () => {
        if (this.closed) return finish("exited");
        // Only output that arrived after the cursor can satisfy a wait: in plain mode the text
        // starts at the cursor's line, and a prompt already on it must not match at once.
        if (pattern && this.log.end > cursor && patternMatches()) return finish("pattern");
        if (this.state === "exited") return finish("exited");
        if (idleMs !== undefined && this.log.end > cursor && this.redaction.held === 0) {
          const quiet = performance.now() - this.lastOutputAt;
          if (quiet >= idleMs) return finish("idle");
          if (idleTimer) clearTimeout(idleTimer);
          idleTimer = setTimeout(evaluate, idleMs - quiet + 1);
        }
      };
      const timeout = setTimeout(() => finish("timeout"), timeoutMs);
      this.listeners.add(evaluate);
      evaluate();
    });
  }

  async read(cursor: number, maxChars: number, plain: boolean): Promise<{ header: Pick<ShellReadResult, "cursor" | "next_cursor" | "start_cursor" | "dropped_bytes" | "alt_screen" | "truncated" | "omitted_chars">; payload: Buffer }> {
    if (plain) {
      if (!this.closed) await this.screen.caughtUp(this.log.end);
      const from = Math.max(cursor, this.log.start);
      const rendered = this.closed ? { text: "", altScreen: false, end: this.log.end } : this.screen.render(from);
      let text = rendered.text;
      let omitted = 0;
      if (text.length > maxChars) {
        omitted = text.length - maxChars;
        // Never start inside a surrogate pair.
        const code = text.charCodeAt(omitted);
        if (code >= 0xdc00 && code <= 0xdfff) omitted++;
        text = text.slice(omitted);
      }
      return {
        header: { cursor: from, next_cursor: rendered.end, start_cursor: this.log.start, dropped_bytes: from - cursor, alt_screen: rendered.altScreen, truncated: omitted > 0, omitted_chars: omitted },
        payload: Buffer.from(text, "utf8"),
      };
    }
    const from = Math.max(cursor, this.log.start);
    const end = this.log.end;
    const to = Math.min(end, from + maxChars);
    return {
      header: { cursor: from, next_cursor: to, start_cursor: this.log.start, dropped_bytes: from - cursor, alt_screen: this.screen.altScreen, truncated: to < end, omitted_chars: end - to },
      payload: this.log.slice(from, to),
    };
  }
}

const shells = new Map<string, Shell>();

// ---------- validation ----------

/** A shell's environment: names a shell can export, values without NUL. */
function envMap(v: unknown): Record<string, string> {
  if (!isRecord(v)) throw invalid("env must be an object of strings");
  const env: Record<string, string> = {};
  for (const [k, value] of Object.entries(v)) {
    if (!ENV_NAME_RE.test(k)) throw invalid(`bad environment variable name ${JSON.stringify(k.slice(0, 100))}`);
    if (typeof value !== "string" || value.includes("\0")) throw invalid(`environment variable ${k} must be a string without NUL`);
    env[k] = value;
  }
  return env;
}

function shellFor(id: unknown): Shell {
  if (typeof id !== "string") throw invalid("shell_id must be a string");
  const shell = shells.get(id);
  if (!shell) throw new AgentFailure("shell_not_found", `no shell ${id.slice(0, 40)} in this workspace`);
  return shell;
}

function newShellId(): string {
  for (;;) {
    const id = `sh${randomBytes(4).toString("hex")}`;
    if (!shells.has(id)) return id;
  }
}

// ---------- handlers ----------

type ShellRequest = "shell_open" | "shell_write" | "shell_read" | "shell_signal" | "shell_resize" | "shell_close" | "shell_list";

export const shellHandlers: Handlers<ShellRequest> = {
  shell_open: async (h) => {
    if (typeof h.cwd !== "string" || !h.cwd.startsWith("/") || h.cwd.includes("\0")) throw invalid("cwd must be an absolute path");
    const cols = int(h.cols, "cols", 1, MAX_COLS);
    const rows = int(h.rows, "rows", 1, MAX_ROWS);
    const env = envMap(h.env);
    const secrets = secretEnv(h.secretEnv);
    if (shells.size >= MAX_SHELLS) throw invalid(`a workspace has at most ${MAX_SHELLS} shells; close one first`);
    requireDirectory(h.cwd);

    const id = newShellId();
    const [pty, screen] = await Promise.all([loadNodePty(), ScreenModel.create(cols, rows)]);
    if (shells.size >= MAX_SHELLS) {
      screen.dispose();
      throw invalid(`a workspace has at most ${MAX_SHELLS} shells; close one first`);
    }
    const file = fs.existsSync("/bin/bash") ? "/bin/bash" : "/bin/sh";
    let proc: IPty;
    const cwd = h.cwd;
    try {
      // Like a command, a shell (and all it runs) is the OOM killer's choice before the agent.
      proc = spawnExpendable(() =>
        pty.spawn(file, ["-i"], {
          name: "xterm-256color",
          cols,
          rows,
          cwd,
          env: { ...env, ...secrets, TERM: "xterm-256color", [SHELL_MARKER_VAR]: id },
          encoding: null,
        }),
      );
    } catch (err) {
      screen.dispose();
      throw new AgentFailure("internal", `cannot start ${file}: ${(err as Error).message}`);
    }
    const shell = new Shell(id, proc, screen, h.cwd, cols, rows);
    shells.set(id, shell);
    return { result: { shell_id: id, pid: shell.pid, cols, rows, cwd: h.cwd, state: "running", started_at: shell.startedAt } };
  },

  shell_write: (h, payload) => {
    const shell = shellFor(h.shell_id);
    const newline = bool(h.append_newline, "append_newline");
    if (payload.length > MAX_INPUT_BYTES) throw invalid(`input larger than ${MAX_INPUT_BYTES} bytes`);
    // Enter on a terminal sends CR; the line discipline turns it into NL for cooked-mode programs.
    const input = newline ? Buffer.concat([payload, Buffer.from("\r")]) : payload;
    if (input.length > 0) shell.write(input);
    return { result: { shell_id: shell.id, bytes_written: input.length } };
  },

  shell_read: async (h) => {
    const shell = shellFor(h.shell_id);
    const cursor = int(h.cursor, "cursor", 0, Number.MAX_SAFE_INTEGER);
    const maxChars = int(h.max_chars, "max_chars", 1, MAX_READ_CHARS);
    const plain = bool(h.plain, "plain");
    const idleMs = optionalInt(h.wait_for_idle_ms, "wait_for_idle_ms", 1, MAX_WAIT_MS);
    const timeoutMs = optionalInt(h.timeout_ms, "timeout_ms", 1, MAX_WAIT_MS) ?? DEFAULT_WAIT_TIMEOUT_MS;
    let pattern: RegExp | undefined;
    if (h.wait_for_pattern !== undefined && h.wait_for_pattern !== null) {
      if (typeof h.wait_for_pattern !== "string" || h.wait_for_pattern.length > 10_000) throw invalid("wait_for_pattern must be a string of at most 10000 characters");
      try {
        // Multiline: ^ and $ match at line boundaries, as a reader of a screen expects.
        pattern = new RegExp(h.wait_for_pattern, "m");
      } catch (err) {
        throw invalid(`wait_for_pattern is not a valid regular expression: ${(err as Error).message}`);
      }
    }
    if (cursor > shell.end) throw invalid(`cursor ${cursor} is past the end of the output (${shell.end})`);

    const t0 = performance.now();
    const endedBy: ShellWaitEnd = idleMs !== undefined || pattern ? await shell.wait({ cursor, idleMs, pattern, plain, timeoutMs }) : "none";
    const waitedMs = Math.round(performance.now() - t0);
    const { header, payload } = await shell.read(cursor, maxChars, plain);
    return {
      result: {
        shell_id: shell.id,
        ...header,
        state: shell.state,
        exit_code: shell.exitCode,
        signal: shell.signal,
        plain,
        wait: { ended_by: endedBy, waited_ms: waitedMs },
      },
      payload,
    };
  },

  shell_signal: (h) => {
    const shell = shellFor(h.shell_id);
    const signal = h.signal;
    const known = SIGNALS.find((s) => s === signal);
    if (known === undefined) throw invalid(`signal must be one of ${SIGNALS.join(", ")}`);
    const pgid = shell.sendSignal(known);
    return { result: { shell_id: shell.id, signal: known, delivered_to: pgid } };
  },

  shell_resize: (h) => {
    const shell = shellFor(h.shell_id);
    const cols = int(h.cols, "cols", 1, MAX_COLS);
    const rows = int(h.rows, "rows", 1, MAX_ROWS);
    shell.resize(cols, rows);
    return { result: { shell_id: shell.id, cols, rows } };
  },

  shell_close: async (h) => {
    const shell = shellFor(h.shell_id);
    shells.delete(shell.id);
    await shell.close();
    return { result: { shell_id: shell.id, closed: true } };
  },

  shell_list: () => {
    const list = [...shells.values()].map((s) => s.info());
    return { result: { shells: list, count: list.length } };
  },
};
