/**
 * What a fork copies and how its name is chosen. `copyWorkspaceState` is the one place that
 * knows how a workspace's state lies on disk for a fork: /workspace, the backend's root
 * filesystem changes and the snapshot trees (baseline included), copied in one utility sandbox
 * with `cp -a --reflink=auto` (shared blocks where the filesystem has reflinks, a full copy
 * elsewhere), as snapshots are. When /workspace becomes layered (read-only seed and snapshot
 * layers under a live upper), only this function changes: the fork then shares the read-only
 * layers and copies the live upper. It never writes to the source (every source bind is
 * read-only) and the host never walks either tree. The lifecycle around it (records, locks,
 * crash safety) is the manager's (manager.ts `fork`).
 */
import fsp from "node:fs/promises";
import { copyMeasuringScript, parseTreeSize, runUtilityChecked } from "../runtime/confine/utility.js";
import type { UtilityBind } from "../runtime/confine/utility.js";
import { ownByGuestRoot } from "../runtime/confine/launch.js";
import type { RootChanges } from "../runtime/backend.js";

/** Names a derived fork name may take before the fork is made without one: `<name>-fork-1` … `-fork-999`. */
const MAX_FORK_SUFFIX = 999;
/** Workspace names are at most this long (validate.ts). */
const MAX_NAME = 63;

/**
 * The name a fork gets when none is given: `<source name>-fork-N` with the smallest N that is
 * free (the source name shortened so the whole stays a valid name); none when the source has
 * none. `taken` says whether a name is in use (or otherwise refused).
 */
export function derivedForkName(sourceName: string | null, taken: (name: string) => boolean): string | null {
  if (sourceName === null) return null;
  for (let n = 1; n <= MAX_FORK_SUFFIX; n++) {
    const suffix = `-fork-${n}`;
    const candidate = `${sourceName.slice(0, MAX_NAME - suffix.length)}${suffix}`;
    if (!taken(candidate)) return candidate;
  }
  return null;
}

/** One snapshot tree to copy: the source's complete tree and the fork's empty staging directory. */
export interface SnapshotCopy {
  from: string;
  to: string;
}

export interface ForkCopyPlan {
  /** The source's /workspace directory (mounted, for a kernel disk limit) and the fork's. */
  workspace: { from: string; to: string };
  /** The backend's root filesystem changes: the source's (absent when it never started) and where the fork's go. */
  root: { from: RootChanges | null; to: string };
  snapshots: SnapshotCopy[];
}

/**
 * Copies a workspace's state into a fork's directories, which exist, belong to guest root and
 * are empty. Returns the entries and bytes of the copied /workspace. A VM root disk is copied
 * into `root.to` as a directory holding `root.qcow2`; the caller moves it into place.
 */
export async function copyWorkspaceState(plan: ForkCopyPlan): Promise<{ entries: number; bytes: number }> {
  const binds: UtilityBind[] = [
    { source: plan.workspace.from, target: "/from/workspace", readOnly: true },
    { source: plan.workspace.to, target: "/to/workspace", readOnly: false },
  ];
  // Fixed paths only: no name from a record or a tree ever reaches the shell. The other copies
  // run beside /workspace's.
  const steps: string[] = [];
  if (plan.root.from) {
    binds.push({ source: plan.root.to, target: "/to/root", readOnly: false });
    if (plan.root.from.kind === "directory") {
      binds.push({ source: plan.root.from.path, target: "/from/root", readOnly: true });
      steps.push("cp -a --reflink=auto /from/root/. /to/root/");
    } else {
      binds.push({ source: plan.root.from.path, target: "/from/root.disk", readOnly: true });
      steps.push("cp --reflink=auto --sparse=always --preserve=mode,timestamps /from/root.disk /to/root/root.qcow2");
    }
  }
  plan.snapshots.forEach((s, i) => {
    binds.push({ source: s.from, target: `/from/snapshots/${i}`, readOnly: true });
    binds.push({ source: s.to, target: `/to/snapshots/${i}`, readOnly: false });
    steps.push(`cp -a --reflink=auto /from/snapshots/${i}/. /to/snapshots/${i}/`);
  });
  const script = copyMeasuringScript("/from/workspace", "/to/workspace", "-a --reflink=auto", steps);
  return parseTreeSize(await runUtilityChecked(binds, ["sh", "-c", `set -e\n${script}`], "fork copy"));
}

/** An empty directory for the copy to fill, owned by guest root like the tree it will hold. */
export async function copyTarget(dir: string, mode = 0o755): Promise<string> {
  await fsp.mkdir(dir, { recursive: true, mode });
  await fsp.chmod(dir, mode);
  ownByGuestRoot(dir);
  return dir;
}

