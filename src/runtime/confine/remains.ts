/**
 * Finding the processes of a sandbox nobody recorded, by what cannot be faked or reused: every
 * sandbox pyro starts (workspace, VM jail, utility sandbox, the holder of its namespaces) lives
 * in a mount namespace holding bind mounts of the host directories it was given, and the kernel
 * names each bind's source in that namespace's mount table. A pid can be reused; a mount
 * namespace that holds a workspace's directory belongs to that workspace. Host-side; reads
 * /proc only, and never signals a process in pyro's own mount namespace.
 */
import fs from "node:fs";
import path from "node:path";
import { processStartTime, waitForExit } from "../../shared/process.js";

/** mountinfo escapes space, tab, newline and backslash as three octal digits. */
function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/**
 * `dir` as a mount table names a bind of it: its path inside the filesystem it lives on (the
 * mount table's "root" field), which is its host path only when that filesystem is mounted at
 * `/`. Resolved from this process's own mount table; null when `dir` is a mount's root itself
 * (a bind of it could not be told from any other mount of that filesystem).
 */
function mountRootOf(dir: string): string | null {
  let real: string;
  try {
    real = fs.realpathSync(dir);
  } catch {
    // Already removed or renamed: its parent still says which filesystem it was on.
    try {
      real = path.join(fs.realpathSync(path.dirname(dir)), path.basename(dir));
    } catch {
      return null;
    }
  }
  let best: { mountPoint: string; root: string } | null = null;
  for (const line of fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const fields = line.split(" ");
    if (fields.length < 5) continue;
    const mountPoint = unescapeMountPath(fields[4]!);
    const inside = mountPoint === "/" || real === mountPoint || real.startsWith(`${mountPoint}/`);
    if (inside && (best === null || mountPoint.length >= best.mountPoint.length)) best = { mountPoint, root: unescapeMountPath(fields[3]!) };
  }
  if (best === null) return null;
  const rel = best.mountPoint === "/" ? real : real.slice(best.mountPoint.length);
  const root = path.posix.join(best.root, rel);
  return root === "/" ? null : root;
}

interface Holder {
  pid: number;
  startTime: number;
}

/** Processes outside pyro's mount namespace whose namespace holds a mount from one of `roots`. */
function findHolders(roots: string[]): Holder[] {
  let own: string;
  try {
    own = fs.readlinkSync("/proc/self/ns/mnt");
  } catch {
    return [];
  }
  const byNamespace = new Map<string, number[]>();
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    try {
      const ns = fs.readlinkSync(`/proc/${pid}/ns/mnt`);
      if (ns === own) continue;
      const pids = byNamespace.get(ns);
      if (pids) pids.push(pid);
      else byNamespace.set(ns, [pid]);
    } catch {
      // exited, or not ours to inspect (a guest user's process dies with the sandbox's init)
    }
  }
  const found: Holder[] = [];
  for (const pids of byNamespace.values()) {
    let table: string | null = null;
    for (const pid of pids) {
      try {
        table = fs.readFileSync(`/proc/${pid}/mountinfo`, "utf8");
        break;
      } catch {
        // try another process of the namespace
      }
    }
    if (table === null) continue;
    const holds = table.split("\n").some((line) => {
      const root = unescapeMountPath(line.split(" ")[3] ?? "");
      return roots.some((r) => root === r || root.startsWith(`${r}/`));
    });
    if (!holds) continue;
    for (const pid of pids) {
      const startTime = processStartTime(pid);
      if (startTime !== null) found.push({ pid, startTime });
    }
  }
  return found;
}

/**
 * SIGKILLs every process whose mount namespace holds a mount of one of `dirs` (or of anything
 * below them) and waits until they are gone, scanning again until a scan finds none or
 * `timeoutMs` has passed. Returns how many processes were killed.
 */
export async function killProcessesHolding(dirs: string[], timeoutMs = 5000): Promise<number> {
  const roots = dirs.map(mountRootOf).filter((r): r is string => r !== null);
  if (roots.length === 0) return 0;
  const deadline = Date.now() + timeoutMs;
  let killed = 0;
  for (;;) {
    const holders = findHolders(roots);
    if (holders.length === 0 || Date.now() > deadline) return killed;
    for (const h of holders) {
      // Checked again just before the signal: the pid must still be the process found.
      if (processStartTime(h.pid) !== h.startTime) continue;
      try {
        process.kill(h.pid, "SIGKILL");
        killed++;
      } catch {
        // gone, or a guest user's process (it dies with the sandbox's init)
      }
    }
    for (const h of holders) await waitForExit(h.pid, h.startTime, Math.max(0, deadline - Date.now()));
  }
}
