/**
 * Makes every process the agent starts — commands, services, shells — the out-of-memory
 * killer's first choice, so a command that exhausts the workspace's memory is the one that dies
 * and the agent (which every later call needs) lives on. It also tells an exec whether the
 * kernel's OOM killer struck while it ran, where the agent has a kernel of its own to ask.
 *
 * How: a process inherits its parent's `oom_score_adj` at fork. Raising one's own score is
 * allowed unprivileged, and so is lowering it back down to the floor a privileged writer left
 * (none: 0, or the -1000 a VM guest's init gives the agent), so the agent raises its own score
 * to the maximum for the instant of the (synchronous) spawn, then restores it: the child and
 * everything it forks start at 1000, the agent never stays there. A namespace sandbox's guest
 * root cannot lower the agent below 0; a score of 1000 against 0 still decides every choice.
 */
import fs from "node:fs";

const OWN_SCORE = "/proc/self/oom_score_adj";
/** The highest score there is: such a process is killed before any process at a lower one. */
export const EXPENDABLE_OOM_SCORE_ADJ = 1000;

/** A VM guest's cgroups (runtime/vm/guest-init.ts sets them up; the agent may not import it). */
const GUEST_AGENT_PROCS = "/sys/fs/cgroup/pyro-agent/cgroup.procs";
const GUEST_WORKLOAD_PROCS = "/sys/fs/cgroup/pyro-workload/cgroup.procs";

/** Moves the agent into a guest cgroup; false where there is none (a namespace sandbox). */
function join(procs: string): boolean {
  try {
    fs.writeFileSync(procs, String(process.pid));
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs `start` (a synchronous spawn) so that the process it starts inherits the highest OOM
 * score and, in a VM guest, starts in the workload's cgroup: the agent steps in for the spawn
 * and back out, so not even the first fork of the command happens on the agent's side.
 */
export function spawnExpendable<T>(start: () => T): T {
  const moved = ownKernel && join(GUEST_WORKLOAD_PROCS);
  try {
    return withHighestScore(start);
  } finally {
    if (moved) join(GUEST_AGENT_PROCS);
  }
}

function withHighestScore<T>(start: () => T): T {
  let previous: string | null;
  try {
    previous = fs.readFileSync(OWN_SCORE, "utf8").trim();
    fs.writeFileSync(OWN_SCORE, String(EXPENDABLE_OOM_SCORE_ADJ));
  } catch {
    // No writable /proc: the child starts at the agent's own score, as before.
    previous = null;
  }
  try {
    return start();
  } finally {
    if (previous !== null) {
      try {
        fs.writeFileSync(OWN_SCORE, previous);
      } catch {
        // Cannot happen (the previous value is at or above our floor); nothing better to do.
      }
    }
  }
}

let ownKernel = false;

/**
 * Called once by a VM guest's agent: its kernel is the guest's own, so the kernel-wide OOM kill
 * counter counts only the workspace's processes. In a namespace sandbox it would count the
 * whole host's, so there the host answers from the workspace's cgroup instead.
 */
export function countOomKillsHere(): void {
  ownKernel = true;
}

/** The kernel's OOM kill count (`/proc/vmstat` oom_kill), or null where it is not the workspace's own. */
export function oomKillCount(): number | null {
  if (!ownKernel) return null;
  try {
    const m = /^oom_kill (\d+)$/m.exec(fs.readFileSync("/proc/vmstat", "utf8"));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}
