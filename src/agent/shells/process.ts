/**
 * Process plumbing for PTY shells: which process group is in the terminal's foreground (where
 * Ctrl-C goes), and killing a shell's whole tree — its job process groups and anything that
 * left them (setsid, double fork) — found by an environment marker, as exec.ts does for execs.
 * Reads /proc and sends signals; never spawns.
 */
import fs from "node:fs";
import { markedPids as markedPidsFor } from "../exec.js";

/** Environment variable carried by every process a shell starts; its value is the shell id. */
export const SHELL_MARKER_VAR = "PYRO_SHELL_ID";
/** After SIGHUP, how long the tree gets to exit on its own before SIGKILL. */
const HANGUP_GRACE_MS = 300;

/**
 * The terminal's foreground process group (tpgid, field 8 of /proc/PID/stat) of the shell
 * whose session leader is `pid`: the running job, or the shell itself at its prompt.
 */
export function foregroundGroup(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name may contain spaces and ')'; fields restart after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const tpgid = Number(fields[5]);
    return Number.isSafeInteger(tpgid) && tpgid > 0 ? tpgid : null;
  } catch {
    return null;
  }
}

/** Every live pid in this sandbox whose environment carries the shell's marker. */
export function markedPids(shellId: string): number[] {
  return markedPidsFor(shellId, SHELL_MARKER_VAR);
}

function signal(target: number, sig: NodeJS.Signals): void {
  try {
    process.kill(target, sig);
  } catch {
    // already gone
  }
}

/**
 * Hangs up the shell's session (its group, each job's group, every marked process), waits
 * briefly for it to exit as a terminal closing would make it, then SIGKILLs what is left.
 */
export async function killShellTree(shellPid: number | null, shellId: string): Promise<void> {
  const groups = new Set<number>();
  if (shellPid !== null) {
    groups.add(shellPid);
    const fg = foregroundGroup(shellPid);
    if (fg !== null) groups.add(fg);
  }
  for (const g of groups) signal(-g, "SIGHUP");
  for (const pid of markedPids(shellId)) {
    signal(pid, "SIGHUP");
    // A stopped job only acts on SIGHUP once continued.
    signal(pid, "SIGCONT");
  }
  const deadline = Date.now() + HANGUP_GRACE_MS;
  while (Date.now() < deadline && markedPids(shellId).length > 0) await new Promise((r) => setTimeout(r, 20));
  for (const g of groups) signal(-g, "SIGKILL");
  for (let round = 0; round < 3; round++) {
    const pids = markedPids(shellId);
    if (pids.length === 0) return;
    for (const pid of pids) signal(pid, "SIGKILL");
  }
}
