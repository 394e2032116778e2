/**
 * Memory, pids and CPU limits for a sandbox through cgroups, v2 (unified) or v1 (per-controller
 * hierarchies), whichever this host offers and lets us write. Limits that cannot be enforced
 * are reported as such, never silently assumed. Host-side; touches only pyro's own subtree.
 *
 * Where that subtree is (`pyroGroup`): root uses `pyro` at the top of each hierarchy. An
 * ordinary user needs a subtree someone delegated to it: `$PYRO_CGROUP_PARENT` (a v2 directory,
 * or a name under each v1 controller), else `pyro-<user>` at the top (made and chowned by root,
 * see docs/isolation.md), else, on cgroup v2 with systemd, `pyro` under the user's own delegated
 * `user@UID.service`. Without one, workspaces run unlimited and say so.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const CGROUP_ROOT = "/sys/fs/cgroup";

/** The name of pyro's subtree under each hierarchy's top (v1), or its v2 directory. */
export function pyroGroup(): { v1: string; v2: string } {
  const env = process.env.PYRO_CGROUP_PARENT;
  if (env) return path.isAbsolute(env) ? { v1: path.basename(env), v2: env } : { v1: env, v2: path.join(CGROUP_ROOT, env) };
  if (process.getuid?.() === 0) return { v1: "pyro", v2: path.join(CGROUP_ROOT, "pyro") };
  const name = `pyro-${os.userInfo().username}`;
  const top = path.join(CGROUP_ROOT, name);
  if (fs.existsSync(top)) return { v1: name, v2: top };
  const uid = process.getuid?.() ?? 0;
  return { v1: name, v2: path.join(CGROUP_ROOT, "user.slice", `user-${uid}.slice`, `user@${uid}.service`, "pyro") };
}

/** What to tell a user whose limits are not enforced. */
export function delegationHint(): string {
  const user = os.userInfo().username;
  return fs.existsSync(path.join(CGROUP_ROOT, "cgroup.controllers"))
    ? `Delegate a cgroup subtree to ${user}: sudo mkdir /sys/fs/cgroup/pyro-${user} && sudo chown -R ${user} /sys/fs/cgroup/pyro-${user} && echo '+memory +pids +cpu' | sudo tee /sys/fs/cgroup/cgroup.subtree_control (or run pyro under systemd-run --user -p Delegate=yes); see docs/isolation.md.`
    : `Delegate cgroup subtrees to ${user}: for c in memory pids cpu; do sudo mkdir -p /sys/fs/cgroup/$c/pyro-${user} && sudo chown -R ${user} /sys/fs/cgroup/$c/pyro-${user}; done (see docs/isolation.md).`;
}

export interface Limits {
  vcpuCount: number;
  memMib: number;
  pidsMax: number;
}

export interface LimitEnforcement {
  cgroup_version: 1 | 2 | null;
  memory: boolean;
  pids: boolean;
  cpu: boolean;
  /** Why some or all limits are not enforced, in one sentence; null when all are. */
  note: string | null;
}

export interface SandboxCgroup {
  version: 1 | 2;
  /** Leaf directories created for this sandbox (one per v1 controller, one for v2). */
  dirs: string[];
  /** cgroup.procs files the launcher writes its pid into before starting the sandbox. */
  procsFiles: string[];
  enforcement: LimitEnforcement;
}

function writeable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

function tryWrite(file: string, value: string): boolean {
  try {
    fs.writeFileSync(file, value);
    return true;
  } catch {
    return false;
  }
}

/** The directory sandbox cgroups are made in for a v1 controller, if pyro may write there. */
function v1Parent(controller: string): string | null {
  const dir = path.join(CGROUP_ROOT, controller, pyroGroup().v1);
  if (writeable(dir)) return dir;
  // Root may create its subtree at the top of the hierarchy.
  return process.getuid?.() === 0 && writeable(path.join(CGROUP_ROOT, controller)) ? dir : null;
}

/** The v2 directory sandbox cgroups are made in, if pyro may write there. */
function v2Parent(): string | null {
  const dir = pyroGroup().v2;
  if (writeable(dir)) return dir;
  const parent = path.dirname(dir);
  return writeable(parent) && writeable(path.join(parent, "cgroup.subtree_control")) ? dir : null;
}

/** What this host can enforce, without creating anything. */
export function probeCgroups(): LimitEnforcement {
  if (fs.existsSync(path.join(CGROUP_ROOT, "cgroup.controllers"))) {
    const parent = v2Parent();
    // The controllers the parent's parent hands down are the ones a child can limit.
    const from = parent ? (fs.existsSync(parent) ? parent : path.dirname(parent)) : CGROUP_ROOT;
    const controllers = readControllers(from);
    const has = (c: string) => parent !== null && controllers.includes(c);
    return summarize(2, has("memory"), has("pids"), has("cpu"));
  }
  const v1 = (c: string) => v1Parent(c) !== null;
  if (["memory", "pids", "cpu"].some(v1)) return summarize(1, v1("memory"), v1("pids"), v1("cpu"));
  return summarize(null, false, false, false);
}

function readControllers(dir: string): string[] {
  try {
    return fs.readFileSync(path.join(dir, "cgroup.controllers"), "utf8").split(/\s+/).filter(Boolean);
  } catch {
    return [];
  }
}

function summarize(version: 1 | 2 | null, memory: boolean, pids: boolean, cpu: boolean): LimitEnforcement {
  const missing = [memory ? null : "memory", pids ? null : "pids", cpu ? null : "cpu"].filter(Boolean);
  const root = process.getuid?.() === 0;
  const note =
    missing.length === 0
      ? null
      : version === null || (!memory && !pids && !cpu)
        ? `no cgroup subtree is writable by pyro${root ? "" : " (none is delegated to this user)"}: memory, pids and CPU limits are not enforced`
        : `cgroup v${version} controllers not available to pyro: ${missing.join(", ")} limits are not enforced`;
  return { cgroup_version: version, memory, pids, cpu, note };
}

/** Creates the sandbox's cgroup(s) and writes its limits. Returns null when none can be made. */
export function createSandboxCgroup(sandboxId: string, limits: Limits): SandboxCgroup | null {
  const probe = probeCgroups();
  if (probe.cgroup_version === null) return null;
  const quota = Math.max(1000, Math.round(limits.vcpuCount * 100_000));
  const memBytes = String(limits.memMib * 1024 * 1024);
  if (probe.cgroup_version === 2) {
    const parent = v2Parent();
    if (parent === null) return null;
    fs.mkdirSync(parent, { recursive: true });
    for (const c of ["memory", "pids", "cpu"]) tryWrite(path.join(path.dirname(parent), "cgroup.subtree_control"), `+${c}`);
    for (const c of ["memory", "pids", "cpu"]) tryWrite(path.join(parent, "cgroup.subtree_control"), `+${c}`);
    const dir = path.join(parent, sandboxId);
    fs.mkdirSync(dir, { recursive: true });
    const enforcement = summarize(
      2,
      tryWrite(path.join(dir, "memory.max"), memBytes) && (tryWrite(path.join(dir, "memory.swap.max"), "0") || true),
      tryWrite(path.join(dir, "pids.max"), String(limits.pidsMax)),
      tryWrite(path.join(dir, "cpu.max"), `${quota} 100000`),
    );
    return { version: 2, dirs: [dir], procsFiles: [path.join(dir, "cgroup.procs")], enforcement };
  }
  const dirs: string[] = [];
  const make = (controller: string, settings: Record<string, string>): boolean => {
    const parent = v1Parent(controller);
    if (parent === null) return false;
    const dir = path.join(parent, sandboxId);
    try {
      fs.mkdirSync(dir, { recursive: true });
    } catch {
      return false;
    }
    dirs.push(dir);
    return Object.entries(settings).every(([file, value]) => tryWrite(path.join(dir, file), value));
  };
  const memory = make("memory", { "memory.limit_in_bytes": memBytes });
  // memsw is optional (only with swap accounting); without it swap is not limited.
  if (memory) tryWrite(path.join(CGROUP_ROOT, "memory", pyroGroup().v1, sandboxId, "memory.memsw.limit_in_bytes"), memBytes);
  const pids = make("pids", { "pids.max": String(limits.pidsMax) });
  const cpu = make("cpu", { "cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": String(quota) });
  return { version: 1, dirs, procsFiles: dirs.map((d) => path.join(d, "cgroup.procs")), enforcement: summarize(1, memory, pids, cpu) };
}

/** Pids currently in the sandbox's cgroup (the whole sandbox, wherever its processes wandered). */
export function cgroupPids(dirs: string[]): number[] {
  const pids = new Set<number>();
  for (const dir of dirs) {
    try {
      for (const line of fs.readFileSync(path.join(dir, "cgroup.procs"), "utf8").split("\n")) {
        if (line.trim()) pids.add(Number(line));
      }
    } catch {
      // directory already gone
    }
  }
  return [...pids];
}

/**
 * Kills every process in the cgroup and removes its directories. On cgroup v2 (5.14 and later)
 * `cgroup.kill` kills the whole group at once, processes forking meanwhile included; elsewhere
 * the members are killed one by one until the directory can be removed.
 */
export async function destroySandboxCgroup(dirs: string[]): Promise<void> {
  for (const dir of dirs) {
    const kill = path.join(dir, "cgroup.kill");
    if (fs.existsSync(kill)) tryWrite(kill, "1");
  }
  for (let attempt = 0; attempt < 50; attempt++) {
    for (const pid of cgroupPids(dirs)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    let remaining = 0;
    for (const dir of dirs) {
      try {
        fs.rmdirSync(dir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") remaining++;
      }
    }
    if (remaining === 0) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The cgroup directories a sandbox of this id has, whoever made them (e.g. a start a crash interrupted). */
export function cgroupDirsFor(sandboxId: string): string[] {
  const dirs: string[] = [];
  const group = pyroGroup();
  const v2 = path.join(group.v2, sandboxId);
  if (fs.existsSync(v2)) dirs.push(v2);
  for (const c of ["memory", "pids", "cpu"]) {
    const d = path.join(CGROUP_ROOT, c, group.v1, sandboxId);
    if (fs.existsSync(d)) dirs.push(d);
  }
  return dirs;
}

/**
 * How many processes the kernel's OOM killer has killed in the sandbox's memory cgroup since it
 * was made (v2 `memory.events`, v1 `memory.oom_control`); null without a memory cgroup.
 */
export function cgroupOomKills(dirs: string[]): number | null {
  for (const dir of dirs) {
    for (const file of ["memory.events", "memory.oom_control"]) {
      try {
        const m = /^oom_kill (\d+)$/m.exec(fs.readFileSync(path.join(dir, file), "utf8"));
        if (m) return Number(m[1]);
      } catch {
        // not this controller's directory, or v1 without the counter
      }
    }
  }
  return null;
}
