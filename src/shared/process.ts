/**
 * Host processes as pyro tracks them across its own restarts: a pid is only trusted together
 * with its kernel start time and the boot it belongs to, because pids are reused. Also the one
 * reader of a log's tail that error details quote. Host-side; reads /proc and nothing else.
 */
import fs from "node:fs";

/** This boot's id: a record from another boot names processes that no longer exist. */
export function readBootId(): string {
  try {
    return fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    return "unknown";
  }
}

/**
 * Kernel start time of a live pid (field 22 of /proc/PID/stat), or null if there is no such
 * process or it has exited and waits to be reaped (a zombie is not a running sandbox).
 */
export function processStartTime(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may contain spaces and parentheses; fields restart after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (rest[0] === "Z" || rest[0] === "X") return null;
    return Number(rest[19]);
  } catch {
    return null;
  }
}

/** Whether a pid exists at all (EPERM: it does, owned by someone else). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Waits until the process `pid` started at `startTime` is gone (exited, reaped, or the pid
 * reused); true if it went within `timeoutMs`.
 */
export async function waitForExit(pid: number, startTime: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (processStartTime(pid) !== startTime) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return processStartTime(pid) !== startTime;
}

/**
 * The last `lines` lines of a log, at most `maxChars` characters of them, for an error's
 * details; empty when the log cannot be read (the error is still worth reporting).
 */
export function logTail(file: string, lines = 20, maxChars = 4000): string {
  try {
    return fs.readFileSync(file, "utf8").split("\n").slice(-lines).join("\n").slice(-maxChars);
  } catch {
    return "";
  }
}
