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
const WORKLOAD = "/sys/fs/cgroup/pyro-workload";
const GUEST_WORKLOAD_PROCS = `${WORKLOAD}/cgroup.procs`;

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
 * score and, in a VM guest, starts in the workload's cgroup (or in `group`, a command's own
 * cgroup inside it): the agent steps in for the spawn and back out, so not even the first fork
 * of the command happens on the agent's side.
 */
export function spawnExpendable<T>(start: () => T, group?: CommandGroup | null): T {
  const moved = ownKernel && join(group ? `${group.dir}/cgroup.procs` : GUEST_WORKLOAD_PROCS);
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

/**
 * A command's own cgroup inside the workload's, in a VM guest: a timeout then ends the command
 * with one write to `cgroup.kill`, which takes every process in it at once and fails the forks
 * still under way. Sweeping /proc for the command's marker cannot keep up with a fork bomb in
 * an emulated guest: each round reads thousands of environments while the bomb refills them.
 * The workload's limits still hold (they are its parent's); memory pressure is counted at the
 * workload's level only (`cgroup.pressure` off here), so a busy command pays no third level of
 * accounting on every task switch.
 */
export interface CommandGroup {
  dir: string;
  /** Kills every process in the group; false when the kernel could not (the caller sweeps). */
  kill(): boolean;
  /** Removes the group once empty; one a background process still holds is retried later. */
  release(): void;
}

/** Groups whose commands left background processes behind, removed once those are gone. */
const lingering = new Set<string>();

function removeEmpty(dir: string): boolean {
  try {
    fs.rmdirSync(dir);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ENOENT";
  }
}

/** A command group named for `marker` (hex), or null outside a VM guest. */
export function commandGroup(marker: string): CommandGroup | null {
  if (!ownKernel) return null;
  for (const dir of lingering) if (removeEmpty(dir)) lingering.delete(dir);
  const dir = `${WORKLOAD}/command-${marker}`;
  try {
    fs.mkdirSync(dir);
  } catch {
    return null;
  }
  try {
    fs.writeFileSync(`${dir}/cgroup.pressure`, "0");
  } catch {
    // A kernel without per-group pressure switches: the level is counted, nothing else changes.
  }
  return {
    dir,
    kill: () => {
      try {
        fs.writeFileSync(`${dir}/cgroup.kill`, "1");
        return true;
      } catch {
        return false;
      }
    },
    release: () => {
      if (!removeEmpty(dir)) lingering.add(dir);
    },
  };
}

let ownKernel = false;
/** Workload processes the pressure guard killed (they count as OOM kills). */
let guardKills = 0;

/**
 * Called once by a VM guest's agent: its kernel is the guest's own, so the kernel-wide OOM kill
 * counter counts only the workspace's processes. In a namespace sandbox it would count the
 * whole host's, so there the host answers from the workspace's cgroup instead. It also starts
 * the guard against thrashing.
 */
export function countOomKillsHere(): void {
  ownKernel = true;
  guardWorkloadMemory();
}

/** The kernel's OOM kill count (`/proc/vmstat` oom_kill), or null where it is not the workspace's own. */
export function oomKillCount(): number | null {
  if (!ownKernel) return null;
  try {
    const m = /^oom_kill (\d+)$/m.exec(fs.readFileSync("/proc/vmstat", "utf8"));
    return m ? Number(m[1]) + guardKills : null;
  } catch {
    return null;
  }
}

/**
 * The guard against thrashing: the kernel's OOM killer acts only when reclaim makes no
 * progress, and in a guest without swap reclaim keeps making a little by evicting the
 * command's own program pages, which it then reads back from disk. A 700 MiB balloon in a
 * 512 MiB emulated guest was seen to go on like that for five minutes, until its timeout. So
 * the agent watches the workload cgroup's memory pressure (PSI; the guest's kernel command line
 * turns it on with `psi=1`) and, when every workload task has been stalled on memory for over
 * half of the last several seconds while the cgroup is at its limit, does what the OOM killer
 * would: kills the workload process with the highest `oom_score`. Such a command was making no
 * progress; its result says `oom_killed`.
 */
export const PRESSURE_GUARD = { tickMs: 1000, windowTicks: 8, stallShare: 0.5, nearLimitShare: 0.9 };

/** Microseconds all of a cgroup's tasks were stalled on memory, from its `memory.pressure`. */
export function fullStallMicros(pressure: string): number | null {
  const m = /^full .*total=(\d+)/m.exec(pressure);
  return m ? Number(m[1]) : null;
}

/** Whether the stalls over a window of samples say the workload is thrashing. */
export function thrashing(samples: Array<{ stallUs: number; wallUs: number }>): boolean {
  if (samples.length < PRESSURE_GUARD.windowTicks) return false;
  const stall = samples.reduce((n, s) => n + s.stallUs, 0);
  const wall = samples.reduce((n, s) => n + s.wallUs, 0);
  return wall > 0 && stall / wall >= PRESSURE_GUARD.stallShare;
}

function readText(file: string): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return "";
  }
}

function readNumber(file: string): number | null {
  try {
    const text = fs.readFileSync(file, "utf8").trim();
    return /^\d+$/.test(text) ? Number(text) : null;
  } catch {
    return null;
  }
}

function guardWorkloadMemory(): void {
  let last: { stallUs: number; at: number } | null = null;
  const samples: Array<{ stallUs: number; wallUs: number }> = [];
  const tick = (): void => {
    let stallUs: number | null;
    try {
      stallUs = fullStallMicros(fs.readFileSync(`${WORKLOAD}/memory.pressure`, "utf8"));
    } catch {
      stallUs = null;
    }
    if (stallUs === null) {
      // No PSI in this kernel: the OOM killer alone decides, as before.
      clearInterval(timer);
      return;
    }
    const at = performance.now();
    if (last) {
      samples.push({ stallUs: stallUs - last.stallUs, wallUs: (at - last.at) * 1000 });
      if (samples.length > PRESSURE_GUARD.windowTicks) samples.shift();
    }
    last = { stallUs, at };
    if (!thrashing(samples)) return;
    const current = readNumber(`${WORKLOAD}/memory.current`);
    const max = readNumber(`${WORKLOAD}/memory.max`);
    if (current === null || max === null || current < max * PRESSURE_GUARD.nearLimitShare) return;
    const victim = likeliestVictim();
    if (victim === null) return;
    try {
      process.kill(victim.pid, "SIGKILL");
      guardKills++;
      process.stderr.write(`pyro-agent: the workload thrashed at its memory limit; killed process ${victim.pid}\n`);
    } catch {
      // It exited on its own meanwhile.
    }
    samples.length = 0;
  };
  const timer = setInterval(tick, PRESSURE_GUARD.tickMs);
  timer.unref();
}

/** The workload process the OOM killer would choose: the highest `oom_score`. */
function likeliestVictim(): { pid: number } | null {
  let best: { pid: number; score: number } | null = null;
  for (const pid of workloadPids()) {
    // One killed already (dying or unreaped) would be chosen again and again.
    if (/^\d+ \(.*\) [ZX]/s.test(readText(`/proc/${pid}/stat`))) continue;
    const score = readNumber(`/proc/${pid}/oom_score`);
    if (score !== null && (!best || score > best.score)) best = { pid, score };
  }
  return best;
}

/** Every process in the workload's cgroup and the groups below it (commands' own, any the workload made). */
function workloadPids(dir = WORKLOAD, depth = 0): number[] {
  const pids: number[] = [];
  try {
    pids.push(...fs.readFileSync(`${dir}/cgroup.procs`, "utf8").split("\n").filter(Boolean).map(Number));
  } catch {
    return pids;
  }
  if (depth >= 8) return pids;
  try {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) pids.push(...workloadPids(`${dir}/${e.name}`, depth + 1));
  } catch {
    // The group went away while we looked.
  }
  return pids;
}
