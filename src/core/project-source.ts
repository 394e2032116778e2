/**
 * Project sources: what a server started inside a project seeds new workspaces from when the
 * caller gives no seed path. A Git checkout contributes its tracked files with their working-tree
 * contents (uncommitted edits included, deletions honoured) — never ignored build output, never
 * files the user cannot read; `--repo-url` makes a clean clone; a plain directory is copied whole.
 * The result is a host archive checked by the same archive policy as any seed.
 */
import { execFile } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { PyroError } from "../shared/errors.js";
import { hostPath } from "../shared/host-path.js";

const run = promisify(execFile);

export type ProjectSourceKind = "git_checkout" | "directory" | "repo_url";

export interface ProjectSource {
  kind: ProjectSourceKind;
  /** Checkout or directory on the host (null for repo_url). */
  path: string | null;
  repo_url: string | null;
  repo_ref: string | null;
}

export interface ProjectSourceOptions {
  /** Where the server was started; used to detect a Git checkout. */
  cwd?: string;
  projectPath?: string;
  repoUrl?: string;
  repoRef?: string;
  /** Turn project seeding off entirely. */
  noProjectSource?: boolean;
}

export interface MaterializedSource {
  /** A .tar archive to seed from. */
  archive: string;
  origin_kind: ProjectSourceKind;
  origin_ref: string;
  files: number;
  bytes: number;
  skipped: { path: string; reason: string }[];
  cleanup(): Promise<void>;
}

async function git(args: string[], cwd?: string): Promise<string> {
  try {
    const { stdout } = await run("git", args, { cwd, maxBuffer: 256 * 1024 * 1024, encoding: "utf8" });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; code?: string; message: string };
    if (e.code === "ENOENT") throw new PyroError("host_unsupported", "git is not installed on this host", { hint: "Install git, or pass an explicit seed_path." });
    throw new PyroError("invalid_argument", `git ${args[0]} failed: ${(e.stderr ?? e.message).trim().split("\n").slice(-2).join(" ")}`);
  }
}

async function gitRoot(dir: string): Promise<string | null> {
  try {
    const { stdout } = await run("git", ["rev-parse", "--show-toplevel"], { cwd: dir, encoding: "utf8" });
    return stdout.trim() || null;
  } catch {
    return null;
  }
}

/**
 * Decides the project source from the server's options: explicit flags win, then the Git
 * checkout around `cwd`. Returns null when there is none (or it was turned off).
 */
export async function resolveProjectSource(options: ProjectSourceOptions): Promise<ProjectSource | null> {
  if (options.noProjectSource) return null;
  if (options.repoUrl) return { kind: "repo_url", path: null, repo_url: options.repoUrl, repo_ref: options.repoRef ?? null };
  if (options.projectPath !== undefined) {
    const abs = hostPath(options.projectPath, "project path");
    let stat: fs.Stats;
    try {
      stat = await fsp.stat(abs);
    } catch {
      throw new PyroError("seed_path_not_found", `project path ${abs} does not exist`, { hint: "Pass an existing directory with --project-path, or use --repo-url." });
    }
    if (!stat.isDirectory()) throw new PyroError("seed_path_invalid", `project path ${abs} is not a directory`);
    const root = await gitRoot(abs);
    return root ? { kind: "git_checkout", path: root, repo_url: null, repo_ref: null } : { kind: "directory", path: abs, repo_url: null, repo_ref: null };
  }
  const root = await gitRoot(options.cwd ?? process.cwd());
  return root ? { kind: "git_checkout", path: root, repo_url: null, repo_ref: null } : null;
}

/** One line describing the source, for tool descriptions and `doctor`. */
export function describeProjectSource(source: ProjectSource | null): string {
  if (!source) return "no project source (workspaces start empty unless seed_path is given)";
  if (source.kind === "repo_url") return `a clean clone of ${source.repo_url}${source.repo_ref ? ` at ${source.repo_ref}` : ""}`;
  if (source.kind === "git_checkout") return `the Git-tracked files of ${source.path} (with uncommitted changes)`;
  return `the directory ${source.path}`;
}

/** Builds the seed archive for a project source in a temporary directory. */
export async function materializeProjectSource(source: ProjectSource): Promise<MaterializedSource> {
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), "pyro-project-"));
  const cleanup = () => fsp.rm(tmp, { recursive: true, force: true });
  try {
    let root: string;
    let originRef: string;
    if (source.kind === "repo_url") {
      root = path.join(tmp, "clone");
      await git(["clone", "--quiet", "--depth", "1", ...(source.repo_ref ? ["--branch", source.repo_ref] : []), "--", source.repo_url!, root]);
      originRef = `${source.repo_url}@${(await git(["rev-parse", "HEAD"], root)).trim()}`;
    } else {
      root = source.path!;
      originRef = root;
    }
    const archive = path.join(tmp, "project.tar");
    const skipped: { path: string; reason: string }[] = [];
    let files: string[];
    if (source.kind === "directory") {
      files = ["."];
    } else {
      if (source.kind === "git_checkout") {
        const head = (await git(["rev-parse", "--verify", "--quiet", "HEAD"], root).catch(() => "")).trim();
        const dirty = (await git(["status", "--porcelain", "--untracked-files=no"], root)).trim() !== "";
        originRef = `${root}@${head ? head.slice(0, 12) : "no-commits"}${dirty ? "+uncommitted" : ""}`;
      }
      // Tracked files only; each must still exist and be readable in the working tree.
      const listed = (await git(["ls-files", "-z", "--cached"], root)).split("\0").filter(Boolean);
      files = [];
      for (const rel of [...new Set(listed)]) {
        const abs = path.join(root, rel);
        let st: fs.Stats;
        try {
          st = await fsp.lstat(abs);
        } catch {
          continue; // deleted in the working tree: the seed reflects the deletion
        }
        if (st.isFile()) {
          try {
            await fsp.access(abs, fs.constants.R_OK);
          } catch {
            skipped.push({ path: rel, reason: "not readable" });
            continue;
          }
        } else if (!st.isSymbolicLink()) {
          if (!st.isDirectory()) skipped.push({ path: rel, reason: "not a regular file or symlink" });
          continue; // directories (submodules) are skipped
        }
        files.push(rel);
      }
    }
    const listFile = path.join(tmp, "files");
    await fsp.writeFile(listFile, files.join("\0") + "\0");
    try {
      // Git sources list every file, so tar must not recurse into directories it is given.
      await run("tar", ["-cf", archive, "-C", root, "--null", ...(source.kind === "directory" ? [] : ["--no-recursion"]), "-T", listFile], { maxBuffer: 16 * 1024 * 1024 });
    } catch (err) {
      throw new PyroError("seed_path_invalid", `cannot archive the project: ${((err as { stderr?: string }).stderr ?? String(err)).trim().slice(-300)}`);
    }
    const { size } = await fsp.stat(archive);
    return { archive, origin_kind: source.kind, origin_ref: originRef, files: source.kind === "directory" ? -1 : files.length, bytes: size, skipped, cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** Where a seed made from a project came from, as the workspace record keeps it. */
export interface ProjectSeed {
  /** The seed archive; gone once `seedFromProject`'s callback returns. */
  seedPath: string;
  origin: { kind: ProjectSourceKind; ref: string; path: string | null };
}

/**
 * Builds the seed archive for `source`, hands it to `create`, and removes it afterwards
 * whatever happened. A source that cannot be archived fails before anything is made, with
 * the source named and the ways around it (another source, none, or an explicit seed path).
 */
export async function seedFromProject<T>(source: ProjectSource, create: (seed: ProjectSeed) => Promise<T>): Promise<T> {
  let material: MaterializedSource;
  try {
    material = await materializeProjectSource(source);
  } catch (err) {
    const e = err instanceof PyroError ? err : new PyroError("seed_path_invalid", String(err));
    throw new PyroError(e.code, `cannot seed from ${describeProjectSource(source)}: ${e.message}`, {
      hint: "Start the server with --project-path DIR or --repo-url URL, turn seeding off with --no-project-source, or pass seed_path.",
    });
  }
  try {
    return await create({ seedPath: material.archive, origin: { kind: material.origin_kind, ref: material.origin_ref, path: source.path ?? source.repo_url } });
  } finally {
    await material.cleanup();
  }
}
