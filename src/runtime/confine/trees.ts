/**
 * Removing trees that sandboxes wrote: workspace state, snapshots, environment layers and build
 * scratch. Their files belong to the sandbox identity's ids, so an ordinary user cannot remove
 * those owned by its subordinate ids (nor enter overlayfs's mode-000 work directory) from the
 * host: what the host cannot remove itself is removed from inside the user namespace, where
 * guest root may. Never follows a symlink and never removes anything outside `dir`.
 */
import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import { promisify } from "node:util";
import { PyroError } from "../../shared/errors.js";
import { runConfined } from "./launch.js";
import { sandboxIdentity } from "./identity.js";
import { systemPath } from "../../shared/executables.js";

const run = promisify(execFile);

/**
 * Removes `dir` and everything in it; a missing `dir` is fine, an empty one costs no exec. Root
 * removes it with `rm -rf --one-file-system`: GNU rm walks by directory descriptor and never
 * follows a symbolic link or enters another filesystem (a workspace's disk still mounted), and
 * a tree of 100 000 files takes it a fraction of what Node's recursive fs.rm takes — which also
 * starts every removal of a large tree at once and leaves the process hundreds of megabytes
 * larger, making every later spawn slower. An ordinary user empties it from inside the user
 * namespace first (from the host it could not remove what its subordinate ids own).
 */
export async function removeTree(dir: string): Promise<void> {
  await removeTrees([dir]);
}

/** Removes several trees (see `removeTree`) with one exec between them. */
export async function removeTrees(dirs: string[]): Promise<void> {
  const left: string[] = [];
  for (const dir of dirs) {
    try {
      await fs.rmdir(dir);
    } catch (err) {
      // Anything but a missing directory (not empty, not a directory) is the walk's to settle.
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") left.push(dir);
    }
  }
  if (left.length === 0) return;
  if (sandboxIdentity().kind !== "root-range") {
    await emptyConfined(left);
    for (const dir of left) await fs.rm(dir, { recursive: true, force: true });
    return;
  }
  try {
    await run("rm", ["-rf", "--one-file-system", "--", ...left], { env: { ...process.env, PATH: systemPath() }, timeout: 600_000 });
  } catch (err) {
    throw new PyroError("internal_error", `cannot remove ${left.join(", ")}: ${String((err as { stderr?: string }).stderr ?? (err as Error).message).trim().slice(-300)}`);
  }
}

/**
 * Deletes everything below each of `dirs` as guest root: `find -delete` works depth-first, never
 * follows a link, and first makes each directory searchable (overlayfs leaves `work/work` at
 * mode 000).
 */
async function emptyConfined(dirs: string[]): Promise<void> {
  const r = await runConfined((launch) => [
    "/bin/sh", "-c", 'for d; do find "$d" -mindepth 1 -type d ! -perm -u=rwx -exec chmod u+rwx {} + ; find "$d" -mindepth 1 -delete || exit; done', "pyro-remove", ...dirs.map((d) => launch.bind(d)),
  ]);
  if (r.code !== 0) throw new PyroError("internal_error", `cannot remove ${dirs.join(", ")}: ${r.stderr.trim().slice(-300)}`);
}

/**
 * Gives a tree a sandbox wrote for the user (an export, a disk image) to the user running pyro.
 * Needed when pyro is root: guest root's files belong to the reserved range, and what lands at
 * a path the user named must be theirs. Only for trees in pyro's own scratch space that no
 * sandbox can reach any more; never follows a symlink.
 */
export async function giveToHostUser(target: string): Promise<void> {
  const identity = sandboxIdentity();
  if (identity.kind !== "root-range") return;
  const visit = async (p: string): Promise<void> => {
    const st = await fs.lstat(p);
    await fs.lchown(p, identity.hostUid, identity.hostGid);
    if (st.isDirectory()) for (const name of await fs.readdir(p)) await visit(`${p}/${name}`);
  };
  await visit(target);
}
