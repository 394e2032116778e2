/**
 * Deletes root-owned build and layer trees. Never follows symlinks (fs.rm does not), and never
 * deletes anything outside the directory it is given.
 */
import fs from "node:fs/promises";
import path from "node:path";

/**
 * `fs.rm` first; if that is refused (overlayfs leaves its `work/work` directory with mode 000,
 * which only a process with CAP_DAC_OVERRIDE can enter, e.g. not root in a user namespace),
 * give every directory owner rwx and try again.
 */
export async function removeTree(dir: string): Promise<void> {
  try {
    await fs.rm(dir, { recursive: true, force: true });
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "EACCES" && code !== "EPERM" && code !== "ENOTEMPTY") throw err;
  }
  await makeDirectoriesWritable(dir);
  await fs.rm(dir, { recursive: true, force: true });
}

async function makeDirectoriesWritable(dir: string): Promise<void> {
  let stats;
  try {
    stats = await fs.lstat(dir);
  } catch {
    return;
  }
  if (!stats.isDirectory()) return;
  await fs.chmod(dir, (stats.mode & 0o7777) | 0o700);
  for (const name of await fs.readdir(dir)) await makeDirectoriesWritable(path.join(dir, name));
}
