/**
 * Brings a user-supplied root filesystem (a host directory or a .tar/.tar.gz/.tgz) into a
 * fresh directory. Archives are untrusted: their member names are vetted up front, and GNU
 * tar then runs inside a bwrap sandbox that sees nothing of the host but read-only /usr and
 * the target, without network. Never follows a symlink inside the source on the host side.
 */
import fs from "node:fs/promises";
import { createReadStream } from "node:fs";
import path from "node:path";
import { createGunzip } from "node:zlib";
import type { Readable } from "node:stream";
import { list as listTar } from "tar";
import type { ReadEntry } from "tar";
import { runBuildStep } from "./command.js";
import { PyroError } from "../shared/errors.js";

export type ImportSourceKind = "directory" | "archive";

const ARCHIVE_SUFFIXES = [".tar", ".tar.gz", ".tgz"];

/** Member types a root filesystem legitimately contains; device nodes are removed after extraction. */
const ALLOWED_ENTRY_TYPES = new Set([
  "File",
  "OldFile",
  "ContiguousFile",
  "SparseFile",
  "Directory",
  "SymbolicLink",
  "Link",
  "CharacterDevice",
  "BlockDevice",
  "FIFO",
]);

/** What `sourcePath` is, or `invalid_argument` saying what it should have been. */
export async function classifyImportSource(sourcePath: string): Promise<ImportSourceKind> {
  let stats;
  try {
    stats = await fs.stat(sourcePath);
  } catch {
    throw new PyroError("invalid_argument", `Import source ${sourcePath} does not exist.`, {
      hint: "Pass a root filesystem directory or a .tar, .tar.gz or .tgz archive of one.",
    });
  }
  if (stats.isDirectory()) return "directory";
  if (stats.isFile() && ARCHIVE_SUFFIXES.some((suffix) => sourcePath.endsWith(suffix))) return "archive";
  throw new PyroError("invalid_argument", `Import source ${sourcePath} is neither a directory nor a .tar/.tar.gz/.tgz archive.`, {
    hint: "Pass a root filesystem directory or a .tar, .tar.gz or .tgz archive of one.",
  });
}

/** Why an archive member would be refused, or undefined when it is acceptable. */
export function unsafeEntryReason(entry: { path: string; type: string; linkpath?: string }): string | undefined {
  if (!ALLOWED_ENTRY_TYPES.has(entry.type)) return `entry type ${entry.type} is not allowed`;
  if (escapes(entry.path)) return "path is absolute or contains '..'";
  // A hard link's target is a path in the archive, resolved against the extraction directory;
  // a symlink's target is resolved inside the environment at run time, so any target is fine.
  if (entry.type === "Link" && escapes(entry.linkpath ?? "")) return "hard link target is absolute or contains '..'";
  return undefined;
}

function escapes(memberPath: string): boolean {
  return memberPath.startsWith("/") || memberPath.split("/").includes("..");
}

/** Lists every member with node-tar and throws `archive_unsafe_entry` on the first bad one. */
export async function assertArchiveSafe(archive: string): Promise<number> {
  let count = 0;
  let rejection: PyroError | undefined;
  try {
    await listTar({
      file: archive,
      onReadEntry: (entry: ReadEntry) => {
        count += 1;
        const reason = rejection ? undefined : unsafeEntryReason(entry);
        if (reason) {
          rejection = new PyroError("archive_unsafe_entry", `Archive member ${JSON.stringify(entry.path)} is not allowed: ${reason}.`, {
            hint: "Import an archive whose members are relative paths inside the root filesystem.",
            details: { entry: entry.path, type: entry.type, reason },
          });
        }
      },
    });
  } catch (err) {
    throw new PyroError("invalid_argument", `${archive} is not a readable tar archive.`, {
      hint: "Pass a .tar, .tar.gz or .tgz archive of a root filesystem.",
      cause: err,
    });
  }
  if (rejection) throw rejection;
  if (count === 0) {
    throw new PyroError("invalid_argument", `${archive} contains no entries.`, {
      hint: "Pass a .tar, .tar.gz or .tgz archive of a root filesystem.",
    });
  }
  return count;
}

/**
 * Extracts `archive` into `target` with GNU tar in a sandbox: no network, no host paths except
 * read-only /usr (and the host's /bin, /lib links into it), only the capabilities tar needs to
 * restore ownership, modes and device nodes of a root filesystem. Hostile names or symlink
 * tricks can at worst write into `target` or the sandbox's throwaway root.
 */
export async function extractArchiveSandboxed(environment: string, archive: string, target: string, signal?: AbortSignal): Promise<void> {
  const argv = [
    "bwrap",
    "--die-with-parent",
    "--new-session",
    "--unshare-ipc",
    "--unshare-pid",
    "--unshare-net",
    "--unshare-uts",
    "--unshare-cgroup-try",
    "--cap-drop",
    "ALL",
    ...["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_MKNOD", "CAP_SETFCAP"].flatMap((cap) => [
      "--cap-add",
      cap,
    ]),
    "--ro-bind",
    "/usr",
    "/usr",
    ...(await hostLibraryLinks()),
    "--dev",
    "/dev",
    "--bind",
    target,
    "/target",
    "--chdir",
    "/target",
    "--setenv",
    "PATH",
    "/usr/bin:/bin",
    "--",
    "tar",
    "-x",
    "-p",
    "--numeric-owner",
    "--same-owner",
    "--xattrs",
    "--xattrs-include=user.*",
    "--xattrs-include=security.capability",
    "-f",
    "-",
  ];
  await runBuildStep(environment, "tar extract", argv, {
    signal,
    stdin: await archiveStream(archive),
    failureHint: "GNU tar could not extract the archive (see details.output); fix or re-create the archive and import again.",
  });
}

/** Plain tar bytes: gzip is undone here, by magic number, so the sandbox needs no gzip binary. */
async function archiveStream(archive: string): Promise<Readable> {
  const handle = await fs.open(archive, "r");
  const magic = Buffer.alloc(2);
  try {
    await handle.read(magic, 0, 2, 0);
  } finally {
    await handle.close();
  }
  const raw = createReadStream(archive);
  if (magic[0] !== 0x1f || magic[1] !== 0x8b) return raw;
  const gunzip = createGunzip();
  raw.on("error", (err) => gunzip.destroy(err));
  return raw.pipe(gunzip);
}

/**
 * /bin, /lib, /lib64… as the host has them: symlinks into /usr on merged-/usr hosts (recreated
 * as symlinks), real directories on older ones (bound read-only), so `tar` finds its loader.
 */
async function hostLibraryLinks(): Promise<string[]> {
  const args: string[] = [];
  for (const name of ["bin", "sbin", "lib", "lib32", "lib64", "libx32"]) {
    const hostPath = `/${name}`;
    let stats;
    try {
      stats = await fs.lstat(hostPath);
    } catch {
      continue;
    }
    if (stats.isSymbolicLink()) args.push("--symlink", await fs.readlink(hostPath), hostPath);
    else if (stats.isDirectory()) args.push("--ro-bind", hostPath, hostPath);
  }
  return args;
}

/**
 * `cp -a` keeps owners, modes, links, device nodes and xattrs and never dereferences a symlink
 * inside the source; `--reflink=auto` makes it nearly free on btrfs/xfs. Refuses a source that
 * contains the destination, which would copy forever.
 */
export async function copyDirectory(environment: string, source: string, target: string, signal?: AbortSignal): Promise<void> {
  const realSource = await fs.realpath(source);
  const realTarget = await fs.realpath(target);
  if (realTarget === realSource || realTarget.startsWith(realSource + path.sep)) {
    throw new PyroError("invalid_argument", `Import source ${source} contains pyro's own environment cache.`, {
      hint: "Import a directory that holds only the root filesystem.",
    });
  }
  await runBuildStep(environment, "cp -a", ["cp", "-a", "--reflink=auto", "--", `${realSource}/.`, realTarget], {
    signal,
    failureHint: "Copying the directory failed (see details.output); check that it is readable and the disk has space.",
  });
}
