/**
 * Host paths a caller names: the one check every surface applies to a parameter that names a
 * file or directory on the host (seed and sync sources, secret, text and patch files, export
 * outputs, import sources, project paths, the state directory), and the one rule for what an
 * export may replace. An empty string resolves to the current directory, so `--output ""
 * --force` would replace the user's working directory: empty and blank values are refused, never
 * resolved. `hostPath` is pure; `checkReplaceable` reads the filesystem only to resolve real paths.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { PyroError } from "./errors.js";

/**
 * The absolute path a host-path parameter names. Refuses anything that is not a string, is
 * empty or only whitespace, or contains a NUL byte, with `invalid_argument` naming `parameter`
 * as the caller spelled it (`--output`, `outputPath`, `output_path`).
 */
export function hostPath(value: unknown, parameter: string): string {
  if (typeof value !== "string") throw new PyroError("invalid_argument", `${parameter} must be a host path (a string), got ${value === null ? "null" : typeof value}`);
  if (value.trim() === "") {
    throw new PyroError("invalid_argument", `${parameter} is ${value === "" ? "empty" : "blank"}; it must name a host path`, {
      hint: `Give ${parameter} the path of a host file or directory.`,
      details: { parameter },
    });
  }
  if (value.includes("\0")) throw new PyroError("invalid_argument", `${parameter} contains a NUL byte`, { details: { parameter } });
  return path.resolve(value);
}

/** `a` is `b` or one of its ancestors (both absolute and normalised). */
function isSameOrAncestor(a: string, b: string): boolean {
  return a === b || a === "/" || b.startsWith(`${a}/`);
}

/** The current directory, or none when it has been removed (process.cwd() then throws). */
function currentDirectory(): string[] {
  try {
    return [process.cwd()];
  } catch {
    return [];
  }
}

function realOrSelf(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return p;
  }
}

/** A directory `checkReplaceable` protects: it, its ancestors, and with `inside` everything below it. */
export interface GuardedPath {
  path: string;
  what: string;
  inside?: boolean;
}

/**
 * Refuses an output path that writing or replacing could destroy more than the caller means:
 * `/`, the current directory or any ancestor of it, the user's home directory or any ancestor of
 * it, and each `guarded` directory (its ancestors too; with `inside`, anything below it). Checked
 * on the path as named and on its real location (the parent's symlinks resolved; the last
 * component is never followed, since a symlink output is replaced, not followed), so
 * `/tmp/link-to-root/home` is refused like `/home`.
 */
export function checkReplaceable(out: string, guarded: GuardedPath[] = []): void {
  const candidates = new Set([out]);
  if (out !== "/") candidates.add(path.join(realOrSelf(path.dirname(out)), path.basename(out)));
  const homes = [os.homedir(), process.env.HOME].filter((h): h is string => typeof h === "string" && path.isAbsolute(h));
  const rules: GuardedPath[] = [
    ...currentDirectory().map((p) => ({ path: p, what: "the current directory" })),
    ...homes.map((h) => ({ path: h, what: "your home directory" })),
    ...guarded,
  ];
  for (const candidate of candidates) {
    if (candidate === "/") throw refusal(out, "the filesystem root");
    for (const rule of rules) {
      for (const p of new Set([path.resolve(rule.path), realOrSelf(path.resolve(rule.path))])) {
        if (candidate === p) throw refusal(out, rule.what);
        if (isSameOrAncestor(candidate, p)) throw refusal(out, `an ancestor of ${rule.what} (${p})`);
        if (rule.inside && candidate.startsWith(`${p}/`)) throw refusal(out, `inside ${rule.what} (${p})`);
      }
    }
  }
}

function refusal(out: string, what: string): PyroError {
  return new PyroError("invalid_argument", `the output ${out} is ${what}; an export never writes to or replaces that`, {
    hint: "Choose an output path of its own, e.g. a new subdirectory name; --force (MCP: force=true) replaces only such a path.",
    details: { output_path: out },
  });
}
