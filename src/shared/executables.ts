/**
 * Finding host programs: `$PATH` first, then the standard system directories (root's tools live
 * in sbin, which a user's PATH may lack). The one lookup every host-side module uses.
 */
import fs from "node:fs";
import path from "node:path";

const SYSTEM_DIRS = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/**
 * `$PATH` with the system directories after it: what pyro's helper processes run with, since
 * an ordinary user's PATH usually lacks the sbin directories (debootstrap, mkfs.ext4, setcap).
 */
export function systemPath(): string {
  const dirs = (process.env.PATH ?? "").split(":").filter(Boolean);
  return [...new Set([...dirs, ...SYSTEM_DIRS])].join(":");
}

/**
 * The absolute path of an executable `name`, or null. `first`: directories searched before
 * anything else (e.g. /usr/lib/qemu for helpers packages keep off PATH); `pathOnly`: $PATH
 * alone, for programs the user chose by putting them there (chat hosts).
 */
export function findExecutable(name: string, options: { first?: string[]; pathOnly?: boolean } = {}): string | null {
  const fromPath = (process.env.PATH ?? "").split(":").filter(Boolean);
  const dirs = [...(options.first ?? []), ...fromPath, ...(options.pathOnly ? [] : SYSTEM_DIRS)];
  for (const dir of new Set(dirs)) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  return null;
}
