/**
 * Host-side checks and touch-ups of a root filesystem tree that pyro is building or importing.
 * Every lookup walks the path one component at a time with lstat and refuses symlinks on the
 * way, because an imported tree is untrusted: `bin -> /usr/bin` must never lead the host into
 * its own /usr. Never runs anything inside the tree.
 */
import fs from "node:fs/promises";
import type { Stats } from "node:fs";
import path from "node:path";
import { ownByGuestRoot } from "../runtime/confine/launch.js";

/** Where a lookup inside a layer ended. */
export type InsideLookup =
  | { kind: "found"; stats: Stats }
  | { kind: "missing" }
  /** A component on the way is a symlink or not a directory: the path does not exist *here*. */
  | { kind: "blocked" }
  /** A component is an overlay whiteout (0:0 character device): hidden in every lower layer too. */
  | { kind: "whiteout" };

/** lstat of `root/relative` without following any symlink, including intermediate ones. */
export async function lstatInside(root: string, relative: string): Promise<InsideLookup> {
  const parts = relative.split("/").filter((part) => part && part !== ".");
  if (parts.some((part) => part === "..")) return { kind: "blocked" };
  let current = root;
  for (let index = 0; index < parts.length; index += 1) {
    current = path.join(current, parts[index]!);
    let stats: Stats;
    try {
      stats = await fs.lstat(current);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return { kind: "missing" };
      throw err;
    }
    if (stats.isCharacterDevice() && stats.rdev === 0) return { kind: "whiteout" };
    if (index === parts.length - 1) return { kind: "found", stats };
    if (!stats.isDirectory()) return { kind: "blocked" };
  }
  return { kind: "found", stats: await fs.lstat(root) };
}

/**
 * A root filesystem has a shell: `bin/sh` (classic layout) or `usr/bin/sh` (merged /usr, where
 * `bin` is a symlink this check refuses to follow). The shell itself may be a symlink (dash).
 */
export async function looksLikeRootfs(root: string): Promise<boolean> {
  for (const candidate of ["bin/sh", "usr/bin/sh"]) {
    const found = await lstatInside(root, candidate);
    if (found.kind === "found" && (found.stats.isFile() || found.stats.isSymbolicLink())) return true;
  }
  return false;
}

/**
 * Guarantees a real `/workspace` directory (0755, guest root's) for the sandbox to mount the
 * workspace on. Anything else at that name (a planted symlink, a file) is replaced.
 */
export async function ensureWorkspaceDir(root: string): Promise<void> {
  const target = path.join(root, "workspace");
  const found = await lstatInside(root, "workspace");
  const isDir = found.kind === "found" && found.stats.isDirectory();
  if (!isDir) {
    if (found.kind !== "missing") await fs.rm(target, { force: true });
    await fs.mkdir(target, { mode: 0o755 });
  }
  await fs.chmod(target, 0o755);
  ownByGuestRoot(target);
}

/**
 * Empties package indexes and downloaded .debs (tens of MB that go stale within days), and
 * resets the files debootstrap copies from the build host (its DNS server, its hostname) so
 * the environment carries no host identity; the sandbox supplies its own resolv.conf.
 * Only for roots pyro built itself.
 */
export async function tidyDebootstrapRoot(root: string): Promise<void> {
  const clearDir = async (relative: string, keep: (name: string) => boolean) => {
    const dir = path.join(root, relative);
    let names: string[] = [];
    try {
      names = await fs.readdir(dir);
    } catch {
      return;
    }
    for (const name of names) if (!keep(name)) await fs.rm(path.join(dir, name), { recursive: true, force: true });
  };
  // Leave the lists directory empty, not even `partial/`: a derived layer's cleanup then
  // deletes only files of its own and never has to write whiteouts over these.
  await clearDir("var/lib/apt/lists", () => false);
  await clearDir("var/cache/apt/archives", (name) => !name.endsWith(".deb"));
  await clearDir("var/cache/apt", (name) => !name.endsWith(".bin"));
  await fs.writeFile(path.join(root, "etc/resolv.conf"), "");
  await fs.writeFile(path.join(root, "etc/hostname"), "pyro\n");
}
