/**
 * Removing trees that sandboxes wrote: workspace state, snapshots, environment layers and build
 * scratch. Their files belong to the sandbox identity's ids, so an ordinary user cannot remove
 * those owned by its subordinate ids (nor enter overlayfs's mode-000 work directory) from the
 * host: what the host cannot remove itself is removed from inside the user namespace, where
 * guest root may. Never follows a symlink and never removes anything outside `dir`.
 */
import fs from "node:fs/promises";
import { PyroError } from "../../shared/errors.js";
import { runConfined } from "./launch.js";
import { sandboxIdentity } from "./identity.js";

/**
 * Removes `dir` and everything in it; a missing `dir` is fine. Root removes it directly; an
 * ordinary user empties it from inside the user namespace first (trying from the host first
 * would not save that: fs.rm removes siblings concurrently and goes on after the first refusal).
 */
export async function removeTree(dir: string): Promise<void> {
  if (sandboxIdentity().kind !== "root-range") {
    try {
      await fs.lstat(dir);
    } catch {
      return;
    }
    await emptyConfined(dir);
  }
  await fs.rm(dir, { recursive: true, force: true });
}

/**
 * Deletes everything below `dir` as guest root: `find -delete` works depth-first, never follows
 * a link, and first makes each directory searchable (overlayfs leaves `work/work` at mode 000).
 */
async function emptyConfined(dir: string): Promise<void> {
  const r = await runConfined((launch) => [
    "/bin/sh", "-c", 'find "$1" -mindepth 1 -type d ! -perm -u=rwx -exec chmod u+rwx {} + ; find "$1" -mindepth 1 -delete', "pyro-remove", launch.bind(dir),
  ]);
  if (r.code !== 0) throw new PyroError("internal_error", `cannot remove ${dir}: ${r.stderr.trim().slice(-300)}`);
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
