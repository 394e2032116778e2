/**
 * Exec with history: checking a command's options, running it through the workspace's agent,
 * recording it in the workspace's history (with secret values redacted from the command line)
 * and shaping the result every surface returns. Several execs run at once — the long-running
 * request holds no lock; only the history append and the record update are serialized. An
 * operation marker is held while a command runs, so the reaper never deletes a busy workspace.
 *
 * The timeout is the host's promise too, not only the agent's: the agent enforces it, but a
 * command that starves the agent (a fork bomb shares its CPU quota) could hold the call for a
 * minute. So the host names the exec's marker, kills its processes itself a moment after the
 * deadline (where the backend can see them), and if the agent still does not answer, restarts
 * the workspace and says so with `agent_unreachable` rather than waiting forever.
 */
import path from "node:path";
import { randomBytes } from "node:crypto";
import type { ExecResultHeader } from "../protocol/messages.js";
import { commandEnv } from "./command-env.js";
import { WORKSPACE_GUEST_PATH } from "../protocol/messages.js";
import { PyroError } from "../shared/errors.js";
import { DEFAULT_MAX_OUTPUT_BYTES, MAX_OUTPUT_BYTES_LIMIT, renderCapped } from "../shared/output-cap.js";
import type { AgentLink } from "./agent-link.js";
import type { WorkspaceManager } from "./manager.js";
import type { StateStore } from "./store.js";
import type { CommandRecord, ExecResult, RawExecResult } from "./types.js";
import type { SandboxRecord } from "../runtime/backend.js";
import { validateCommandSize, validateEnv, validatePositive, validatePositiveInt } from "./validate.js";
import type { WorkspaceNetwork } from "./workspace-network.js";

export const DEFAULT_TIMEOUT_SECONDS = 30;
export const MAX_TIMEOUT_SECONDS = 24 * 3600;
/** stdin is carried in one frame; larger inputs belong in a file (sync push / file write). */
export const MAX_STDIN_BYTES = 16 * 1024 * 1024;
/**
 * After the deadline, when the host kills the command's processes itself. A namespace sandbox's
 * agent shares the workspace's CPU with the command, so a fork bomb delays its timer by seconds
 * (measured: 2.7–3.5 s past a 5 s deadline): the host, which the bomb does not starve, kills at
 * the deadline. A VM guest's processes are out of the host's reach; there the kill only starts
 * the wait for the agent's answer.
 */
const HOST_KILL_GRACE_MS = { namespace: 0, vm: 2000 };
/**
 * After that, how long the agent has to answer before the workspace is restarted: a VM guest's
 * agent kills the command itself (its kernel is out of the host's sight) and a TCG guest under
 * load answers slowly.
 */
const AGENT_ANSWER_GRACE_MS = { namespace: 10_000, vm: 30_000 };

export interface ExecOptions {
  /** argv form (no shell). Exactly one of command / shell. */
  command?: string[];
  /** Shell-string form, run by /bin/sh -c. */
  shell?: string;
  timeoutSeconds?: number;
  env?: Record<string, string>;
  cwd?: string;
  stdin?: Uint8Array;
  maxOutputBytes?: number;
  /** Secrets to export into the command's environment: names, or { SECRET_NAME: ENV_VAR }. */
  secretEnv?: string[] | Record<string, string>;
}

const nowIso = () => new Date().toISOString();

/** Checks exec options without touching any workspace (so `run` can refuse before creating one). */
export function prepareExec(opts: ExecOptions) {
  const hasCommand = Array.isArray(opts.command) && opts.command.length > 0;
  const hasShell = typeof opts.shell === "string" && opts.shell.length > 0;
  if (hasCommand === hasShell) {
    throw new PyroError("invalid_argument", "give exactly one of command (argv) or shell (a shell string)", {
      hint: "CLI: `pyro workspace exec WS -- CMD ARGS…` or `--shell 'CMD | CMD'`.",
    });
  }
  const stdin = opts.stdin ? Buffer.from(opts.stdin) : Buffer.alloc(0);
  if (stdin.length > MAX_STDIN_BYTES) throw new PyroError("invalid_argument", `stdin larger than ${MAX_STDIN_BYTES} bytes`);
  const env = validateEnv({ ...(opts.env ?? {}) });
  const cwd = path.posix.resolve(WORKSPACE_GUEST_PATH, opts.cwd ?? ".");
  validateCommandSize({ command: hasCommand ? opts.command! : [opts.shell!], env, cwd });
  return {
    hasCommand,
    hasShell,
    timeoutSeconds: validatePositive(opts.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS, "timeout_seconds", MAX_TIMEOUT_SECONDS, "invalid_timeout"),
    maxOutputBytes: validatePositiveInt(opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES, "max_output_bytes", MAX_OUTPUT_BYTES_LIMIT),
    env,
    cwd,
    stdin,
  };
}

export class WorkspaceExec {
  constructor(
    private readonly manager: WorkspaceManager,
    private readonly store: StateStore,
    private readonly link: AgentLink,
    private readonly network: WorkspaceNetwork,
  ) {}

  async exec(ref: string, opts: ExecOptions): Promise<ExecResult> {
    return (await this.execRaw(ref, opts)).result;
  }

  async execRaw(ref: string, opts: ExecOptions): Promise<RawExecResult> {
    const { hasCommand, hasShell, timeoutSeconds, maxOutputBytes, env, cwd, stdin } = prepareExec(opts);
    const { id, record, client, secretEnv } = await this.link.running(ref, opts.secretEnv);
    const redactor = await this.link.redactor(record);
    const endOperation = await this.store.beginOperation(id);
    const diskMark = this.manager.disk.mark(record);
    const backend = await this.manager.backendOf(record);
    const marker = randomBytes(16).toString("hex");
    // The host's kill can land before the agent's own timer fires (the agent started its clock
    // later and may be starved): a command it killed ended by its timeout all the same.
    let hostKilled = false;
    const oomKillsBefore = record.sandbox ? backend.oomKills(record.sandbox) : null;
    let frame;
    try {
      const request = client.request(
        {
          type: "exec",
          ...(hasCommand ? { argv: opts.command } : { shell: opts.shell }),
          cwd,
          env: commandEnv(record, { HOSTNAME: record.name ?? id, ...env }),
          timeoutMs: Math.round(timeoutSeconds * 1000),
          maxOutputBytes,
          stdinBytes: stdin.length,
          secretEnv,
          marker,
        },
        stdin,
      );
      frame = await this.withDeadline(id, record, request, timeoutSeconds * 1000, (sandbox) => {
        hostKilled = true;
        return backend.killExec(sandbox, marker);
      });
    } finally {
      await endOperation();
    }
    const header = frame.header;
    const timedOut = header.timedOut || (hostKilled && header.signal === "SIGKILL");
    const oomKillsAfter = record.sandbox ? backend.oomKills(record.sandbox) : null;
    const oomKills = header.oomKills ?? (oomKillsBefore === null || oomKillsAfter === null ? 0 : oomKillsAfter - oomKillsBefore);
    // The OOM killer struck while the command ran, and the command died of a SIGKILL (or its
    // shell reports a child that did): the command ran out of the workspace's memory.
    const oomKilled = !timedOut && oomKills > 0 && (header.signal === "SIGKILL" || header.exitCode === 137);
    const { stdoutBytes, stderrBytes } = splitOutput(frame.payload, header);
    // The command line itself may carry a secret (`curl -H "token: $VALUE"` typed literally).
    const command = redactor.redactValue(hasCommand ? opts.command! : [opts.shell!]);

    const entry = await this.store.withLock(id, async () => {
      const current = await this.store.load(id);
      current.command_count += 1;
      current.last_activity_at = nowIso();
      const e: CommandRecord = {
        sequence: current.command_count,
        command,
        shell: hasShell,
        cwd: redactor.redact(cwd),
        exit_code: header.exitCode,
        signal: header.signal,
        timed_out: timedOut,
        duration_ms: header.durationMs,
        started_at: header.startedAt,
        stdout_bytes: header.stdout.total_bytes,
        stderr_bytes: header.stderr.total_bytes,
      };
      current.last_command = { sequence: e.sequence, command: command.join(" ").slice(0, 200), exit_code: e.exit_code, timed_out: e.timed_out, at: current.last_activity_at };
      await this.store.write(current);
      await this.store.appendHistory(id, e);
      return e;
    });
    const result: ExecResult = {
      workspace_id: id,
      sequence: entry.sequence,
      command,
      shell: hasShell,
      cwd,
      exit_code: header.exitCode,
      signal: header.signal,
      timed_out: timedOut,
      oom_killed: oomKilled,
      outcome: timedOut ? "timed_out" : header.startError ? "not_started" : header.signal ? "signaled" : "exited",
      duration_ms: header.durationMs,
      started_at: header.startedAt,
      stdout: renderCapped(stdoutBytes, header.stdout),
      stderr: renderCapped(stderrBytes, header.stderr),
      stdout_info: header.stdout,
      stderr_info: header.stderr,
      truncated: header.stdout.omitted_bytes > 0 || header.stderr.omitted_bytes > 0,
      network_notices: await this.network.notices(record),
    };
    // A watched disk limit (core/disk-limit.ts) is measured after every command: one that left
    // /workspace over it is reported with the code; the command itself has run and is in history.
    await this.manager.disk.checkAfter(record, diskMark, `command ${entry.sequence} (exit code ${header.exitCode ?? "none"})`, { sequence: entry.sequence, exit_code: header.exitCode, outcome: result.outcome });
    return { result, stdoutBytes, stderrBytes };
  }

  /**
   * The agent's answer, bounded: past the deadline plus a grace the host kills the command's
   * processes itself; past a further grace it gives up on the agent, restarts the workspace
   * (the only way left to free it) and fails with `agent_unreachable`.
   */
  private async withDeadline<T>(id: string, record: { sandbox: SandboxRecord | null; backend: string }, answer: Promise<T>, timeoutMs: number, kill: (sandbox: SandboxRecord) => Promise<boolean>): Promise<T> {
    const timers: NodeJS.Timeout[] = [];
    const kind = record.backend === "vm" ? "vm" : "namespace";
    const late = new Promise<"late">((resolve) => {
      timers.push(
        setTimeout(() => {
          if (record.sandbox) void kill(record.sandbox).catch(() => false);
          timers.push(setTimeout(() => resolve("late"), AGENT_ANSWER_GRACE_MS[kind]));
        }, timeoutMs + HOST_KILL_GRACE_MS[kind]),
      );
    });
    try {
      const first = await Promise.race([answer, late]);
      if (first !== "late") return first;
    } finally {
      for (const t of timers) clearTimeout(t);
    }
    // The answer may still come; nobody waits for it any more.
    answer.catch(() => undefined);
    const restarted = await this.manager
      .stop(id)
      .then(() => this.manager.start(id))
      .then(() => true, () => false);
    throw new PyroError("agent_unreachable", `the command ran past its timeout and the workspace's agent stopped answering; the workspace was ${restarted ? "restarted" : "stopped"}`, {
      details: { workspace_id: id, restarted },
      hint: restarted
        ? "Processes, services and shells of the workspace are gone; /workspace is kept. Run the command again with a smaller workload or a larger --mem-mib."
        : "Start it again: `pyro workspace start WS` (MCP: workspace_start).",
    });
  }

  async logs(ref: string, limit = 50): Promise<{ workspace_id: string; count: number; total: number; commands: CommandRecord[] }> {
    validatePositiveInt(limit, "limit", 100_000);
    const id = await this.manager.resolve(ref);
    const all = await this.store.readHistory(id);
    const commands = all.slice(-limit);
    return { workspace_id: id, count: commands.length, total: all.length, commands };
  }
}

/** Splits an exec payload into stdout and stderr, trusting no length the agent claims. */
export function splitOutput(payload: Buffer, header: ExecResultHeader): { stdoutBytes: Buffer; stderrBytes: Buffer } {
  const so = header.stdout?.head_bytes + header.stdout?.tail_bytes;
  const se = header.stderr?.head_bytes + header.stderr?.tail_bytes;
  if (!Number.isSafeInteger(so) || !Number.isSafeInteger(se) || so < 0 || se < 0 || so + se !== payload.length) {
    throw new PyroError("agent_protocol_error", "exec result lengths do not match its payload");
  }
  return { stdoutBytes: payload.subarray(0, so), stderrBytes: payload.subarray(so) };
}
