/**
 * Runs one command inside the sandbox: argv or shell form, separate capped stdout/stderr,
 * stdin bytes, and a timeout that kills the whole process tree — including children that
 * changed process group or session: in a VM guest the command runs in a cgroup of its own,
 * killed whole (expendable.ts); everywhere every process of the exec is tagged with an
 * environment marker, and /proc is swept for it. The host may name the marker, so that it can
 * kill the same processes from outside when the agent itself is starved (a fork bomb shares the
 * workspace's CPU quota with it). Every command starts as the OOM killer's first choice
 * (expendable.ts), and its result says whether the OOM killer struck while it ran.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import { HeadTailBuffer } from "../shared/output-cap.js";
import type { ExecRequest, ExecResultHeader } from "../protocol/messages.js";
import { EXEC_MARKER_VAR } from "../protocol/guest.js";
import { argvOf, invalid, num, stringRecord } from "./handler.js";
import type { Handlers, Incoming } from "./handler.js";
import { requireDirectory } from "./paths.js";
import { currentRedactor, secretEnv } from "./secrets.js";
import { commandGroup, oomKillCount, spawnExpendable } from "./expendable.js";

export { EXEC_MARKER_VAR };
/** After the command exits, how long to wait for background children to release stdout/stderr. */
const STDIO_DRAIN_MS = 200;
/**
 * After a timeout's kill, how long the answer waits for the command to be gone. Every process
 * has its SIGKILL by then, but a tree that filled its memory limit can take half a minute to
 * die in an emulated guest; the result (timed out, killed) is known, and the host's deadline
 * for the answer runs.
 */
const KILLED_ANSWER_MS = 2000;

/** Checks an exec request; the secrets it maps are resolved separately (secrets.ts). */
function parseExec(h: Incoming<"exec">): ExecRequest {
  const argv = argvOf(h.argv);
  const shell = typeof h.shell === "string" && h.shell.length > 0 ? h.shell : undefined;
  if ((argv === undefined) === (shell === undefined)) throw invalid("exec needs exactly one of argv or shell");
  if (typeof h.cwd !== "string" || !h.cwd.startsWith("/")) throw invalid("exec cwd must be absolute");
  if (typeof h.timeoutMs !== "number" || !Number.isFinite(h.timeoutMs) || h.timeoutMs <= 0) throw invalid("exec timeout must be positive");
  if (typeof h.maxOutputBytes !== "number" || !Number.isSafeInteger(h.maxOutputBytes) || h.maxOutputBytes <= 0) throw invalid("bad maxOutputBytes");
  return {
    ...(argv ? { argv } : { shell: shell! }),
    cwd: h.cwd,
    env: stringRecord(h.env ?? {}, "exec env must map names to strings"),
    timeoutMs: h.timeoutMs,
    maxOutputBytes: h.maxOutputBytes,
    ...(h.marker === undefined ? {} : { marker: parseMarker(h.marker) }),
    // Absent or not a count: no stdin (/dev/null), as an empty payload would be.
    stdinBytes: Math.max(0, Math.floor(num(h.stdinBytes, 0))),
  };
}

/** A host-chosen exec marker: hex only, so it can never collide with another variable's text. */
function parseMarker(value: unknown): string {
  if (typeof value !== "string" || !/^[0-9a-f]{16,64}$/.test(value)) throw invalid("exec marker must be 16 to 64 hex digits");
  return value;
}

/**
 * Every pid in this sandbox whose environment carries `varName=marker` (they all belong to one
 * exec, or to one service when called with the service marker variable).
 */
export function markedPids(marker: string, varName = EXEC_MARKER_VAR): number[] {
  const needle = Buffer.from(`${varName}=${marker}\0`);
  const pids: number[] = [];
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${name}/environ`).includes(needle)) pids.push(pid);
    } catch {
      // The process exited while we looked: nothing to kill.
    }
  }
  return pids;
}

export function killExecTree(rootPid: number | undefined, marker: string, varName = EXEC_MARKER_VAR): void {
  if (rootPid !== undefined) {
    try {
      process.kill(-rootPid, "SIGKILL");
    } catch {
      // group already gone
    }
  }
  // Processes that left the group (setsid, double fork) still carry the marker.
  for (let round = 0; round < 3; round++) {
    const pids = markedPids(marker, varName);
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
}

/** Runs a checked request; `secrets` are the environment entries of its secretEnv mapping. */
export async function runExec(req: ExecRequest, stdin: Buffer, secrets: Record<string, string>): Promise<{ header: ExecResultHeader; payload: Buffer }> {
  const marker = req.marker ?? randomBytes(8).toString("hex");
  const argv = req.argv && req.argv.length > 0 ? req.argv : ["/bin/sh", "-c", req.shell!];
  const stdout = new HeadTailBuffer(req.maxOutputBytes);
  const stderr = new HeadTailBuffer(req.maxOutputBytes);
  // Secret values never reach the capture buffers, even when split across chunks.
  const redactOut = currentRedactor().stream();
  const redactErr = currentRedactor().stream();
  const env = { ...req.env, ...secrets, [EXEC_MARKER_VAR]: marker };
  const startedAt = new Date();
  const t0 = performance.now();
  const oomKillsBefore = oomKillCount();

  const group = commandGroup(marker);
  let killedWhole = false;
  const result = await new Promise<Pick<ExecResultHeader, "exitCode" | "signal" | "timedOut" | "startError">>((resolve) => {
    let settled = false;
    let timedOut = false;
    let dying: NodeJS.Timeout | undefined;
    const child = spawnExpendable(
      () =>
        spawn(argv[0]!, argv.slice(1), {
          cwd: req.cwd,
          env,
          stdio: [req.stdinBytes > 0 ? "pipe" : "ignore", "pipe", "pipe"],
          detached: true,
        }),
      group,
    );
    const finish = (value: Pick<ExecResultHeader, "exitCode" | "signal" | "timedOut" | "startError">) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(dying);
      resolve(value);
    };
    const timer = setTimeout(() => {
      timedOut = true;
      // The group takes the whole tree at once; without one, the sweep finds it.
      killedWhole = group?.kill() ?? false;
      if (!killedWhole) killExecTree(child.pid, marker);
      dying = setTimeout(() => {
        child.stdout!.destroy();
        child.stderr!.destroy();
        finish({ exitCode: null, signal: "SIGKILL", timedOut: true, startError: null });
      }, KILLED_ANSWER_MS);
    }, req.timeoutMs);
    child.stdout!.on("data", (d: Buffer) => stdout.push(redactOut.push(d)));
    child.stderr!.on("data", (d: Buffer) => stderr.push(redactErr.push(d)));
    if (child.stdin) {
      child.stdin.on("error", () => {
        // The command may exit without reading its input; that is not our failure.
      });
      child.stdin.end(stdin.subarray(0, req.stdinBytes));
    }
    child.on("error", (err: NodeJS.ErrnoException) => {
      const startError = err.code === "ENOENT" ? "command_not_found" : err.code === "EACCES" ? "permission_denied" : `spawn_failed: ${err.message}`;
      const message = startError === "command_not_found" ? `pyro: command not found: ${argv[0]}\n` : `pyro: cannot start ${argv[0]}: ${err.message}\n`;
      // pyro's own message names the command, which may be a secret's value typed as argv[0].
      stderr.push(redactErr.push(Buffer.from(message)));
      finish({ exitCode: startError === "command_not_found" ? 127 : 126, signal: null, timedOut: false, startError });
    });
    child.on("exit", (code, signal) => {
      // Killed after its deadline but before our timer ran (a starved agent, the host's own
      // kill): still a timeout, not a crash.
      if (signal !== null && performance.now() - t0 >= req.timeoutMs) timedOut = true;
      // Background children may still hold the pipes; give them a moment, then stop reading
      // so one `cmd &` does not hold the call open until the timeout.
      const done = () => finish({ exitCode: code, signal: signal ?? null, timedOut, startError: null });
      if (child.stdout!.readableEnded && child.stderr!.readableEnded) return done();
      let closed = 0;
      const onClose = () => {
        if (++closed === 2) done();
      };
      child.stdout!.once("close", onClose);
      child.stderr!.once("close", onClose);
      setTimeout(() => {
        child.stdout!.destroy();
        child.stderr!.destroy();
        done();
      }, STDIO_DRAIN_MS).unref();
    });
  });
  // What a sweep-killed tree forked meanwhile. A group's kill needs no sweep: it failed the
  // forks under way, and only guest root can leave a VM guest's group, which can end the agent
  // too (the guest is its own; the host's boundary is the VM). Sweeping thousands of dying
  // processes' environments there took seconds.
  if (result.timedOut && !killedWhole) killExecTree(undefined, marker);
  group?.release();
  stdout.push(redactOut.end());
  stderr.push(redactErr.end());

  const oomKillsAfter = oomKillCount();
  const header: ExecResultHeader = {
    ...result,
    oomKills: oomKillsBefore === null || oomKillsAfter === null ? null : oomKillsAfter - oomKillsBefore,
    durationMs: Math.round((performance.now() - t0) * 1000) / 1000,
    startedAt: startedAt.toISOString(),
    stdout: stdout.info(),
    stderr: stderr.info(),
  };
  return { header, payload: Buffer.concat([stdout.bytes(), stderr.bytes()]) };
}

export const execHandlers: Handlers<"exec"> = {
  exec: async (h, payload) => {
    const req = parseExec(h);
    requireDirectory(req.cwd);
    const { header, payload: output } = await runExec(req, payload, secretEnv(h.secretEnv));
    return { result: header, payload: output };
  },
};
