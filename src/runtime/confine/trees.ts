/**
 * Removing trees that sandboxes wrote: workspace state, snapshots, environment layers and build
 * scratch. Their files belong to the sandbox identity's ids, so an ordinary user cannot remove
 * those owned by its subordinate ids (nor enter overlayfs's mode-000 work directory) from the
 * host: what the host cannot remove itself is removed from inside the user namespace, where
 * guest root may. Never follows a symlink and never removes anything outside `dir`.
 */
import { spawn } from "node:child_process";
import fs from "node:fs/promises";
import { PyroError } from "../../shared/errors.js";
import { ConfinedLaunch } from "./launch.js";

function refused(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === "EACCES" || code === "EPERM" || code === "ENOTEMPTY";
}

/** Removes `dir` and everything in it; a missing `dir` is fine. */
export async function removeTree(dir: string): Promise<void> {
  try {
    await fs.rm(dir, { recursive: true, force: true });
    return;
  } catch (err) {
    if (!refused(err)) throw err;
  }
  await emptyConfined(dir);
  await fs.rm(dir, { recursive: true, force: true });
}

/**
 * Deletes everything below `dir` as guest root: `find -delete` works depth-first, never follows
 * a link, and first makes each directory searchable (overlayfs leaves `work/work` at mode 000).
 */
async function emptyConfined(dir: string): Promise<void> {
  const launch = await ConfinedLaunch.open(3);
  try {
    const staged = launch.bind(dir);
    const { argv, fds } = launch.argv([
      "/bin/sh", "-c", 'find "$1" -mindepth 1 -type d ! -perm -u=rwx -exec chmod u+rwx {} + ; find "$1" -mindepth 1 -delete', "pyro-remove", staged,
    ]);
    const stderr: Buffer[] = [];
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "ignore", "pipe", ...fds] });
      child.stderr!.on("data", (d: Buffer) => stderr.push(d));
      child.on("error", reject);
      child.on("close", resolve);
    });
    if (code !== 0) {
      throw new PyroError("internal_error", `cannot remove ${dir}: ${Buffer.concat(stderr).toString("utf8").trim().slice(-300)}`);
    }
  } finally {
    launch.release();
  }
}
