/**
 * Kills one exec's processes from the host, for when the agent inside cannot: a fork bomb shares
 * the workspace's CPU quota with the agent, so the agent's own timeout fires late and its sweep
 * of /proc crawls. The host is not throttled: it finds every process of the sandbox (its cgroup,
 * or without one every process in the sandbox's pid namespace), reads each one's environment for
 * the exec's marker, and SIGKILLs the marked ones, round after round until none is left — a dying
 * process forks nothing, so the rounds converge. Never touches a process outside the sandbox:
 * the sandbox's init is checked against its recorded start time first, and a pid is killed only
 * when it carries the marker. Host-side.
 */
import fs from "node:fs";
import type { SandboxRecord } from "./record.js";
import { cgroupPids } from "./cgroups.js";
import { EXEC_MARKER_VAR } from "../../protocol/guest.js";
import { processStartTime, readBootId } from "../../shared/process.js";

/** How long the host keeps sweeping; a pids-limited sandbox empties in well under a second. */
const SWEEP_LIMIT_MS = 10_000;

/** The sandbox's processes: its cgroup's, or every process sharing its init's pid namespace. */
function sandboxPids(record: SandboxRecord): number[] {
  if (record.cgroupDirs.length > 0) return cgroupPids(record.cgroupDirs);
  let ns: string;
  try {
    ns = fs.readlinkSync(`/proc/${record.sandboxPid}/ns/pid_for_children`);
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (fs.readlinkSync(`/proc/${name}/ns/pid`) === ns) pids.push(Number(name));
    } catch {
      // exited, or not ours to inspect
    }
  }
  return pids;
}

/** A process's group (field 5 of /proc/PID/stat, as the host's pid namespace numbers it). */
function processGroup(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
  } catch {
    return null;
  }
}

/**
 * SIGKILLs every process of the sandbox whose environment holds `PYRO_EXEC_ID=marker`; returns
 * how many were killed, or null when the sandbox is not the recorded one (nothing is touched).
 *
 * Reading a process's environment takes its memory map's lock, which a process in the middle of
 * a fork holds — and a throttled fork bomb holds it for whole CPU periods, so one read per bomb
 * process takes minutes. So the environment is read once per process group (the command runs
 * in its own; the agent and services are in others), and a marked group dies at once by a
 * group kill; only then are the stragglers that left the group (setsid) swept one by one.
 */
export async function killExecProcesses(record: SandboxRecord, marker: string): Promise<number | null> {
  if (record.bootId !== readBootId() || record.sandboxPid === null || !record.sandboxStartTime) return null;
  if (processStartTime(record.sandboxPid) !== record.sandboxStartTime) return null;
  const needle = Buffer.from(`${EXEC_MARKER_VAR}=${marker}\0`);
  const marked = (pid: number) => {
    try {
      return fs.readFileSync(`/proc/${pid}/environ`).includes(needle);
    } catch {
      return false;
    }
  };
  const deadline = Date.now() + SWEEP_LIMIT_MS;
  let killed = 0;
  while (Date.now() < deadline) {
    const groups = new Map<number, number[]>();
    for (const pid of sandboxPids(record)) {
      const group = processGroup(pid);
      if (group !== null) groups.set(group, [...(groups.get(group) ?? []), pid]);
    }
    let found = 0;
    for (const [group, pids] of groups) {
      if (Date.now() > deadline) break;
      // The group's leader when it lives (it is the command itself), else any member.
      if (!marked(pids.includes(group) ? group : pids[0]!)) continue;
      try {
        process.kill(-group, "SIGKILL");
      } catch {
        // gone meanwhile
      }
      found += pids.length;
    }
    if (found === 0) {
      // Only what left the command's group is left: few processes, read one by one.
      for (const pid of sandboxPids(record)) {
        if (Date.now() > deadline) break;
        if (!marked(pid)) continue;
        try {
          process.kill(pid, "SIGKILL");
          found++;
        } catch {
          // already gone
        }
      }
    }
    killed += found;
    if (found === 0) break;
    // Let the killed die (and their parents see it) before the next round.
    await new Promise((r) => setTimeout(r, 20));
  }
  return killed;
}
