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
import { BUILD_SECCOMP, runConfinedBuildStep } from "./command.js";
import { tarReader } from "../shared/tar-stream.js";
import type { CommandResult } from "./command.js";
import { ConfinedLaunch } from "../runtime/confine/launch.js";
import { GUEST_ID_COUNT, sandboxIdentity } from "../runtime/confine/identity.js";
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
 * Extracts a tar stream into `target` with GNU tar in a sandbox, as guest root of the sandbox
 * identity: no network, no host paths except read-only /usr (and the host's /bin, /lib links
 * into it), only the capabilities tar needs to restore ownership and modes of a root
 * filesystem. Ownership lands shifted into the sandbox's id range, so the layer means the same
 * inside a workspace. Hostile names or symlink tricks can at worst write into `target` or the
 * sandbox's throwaway root; device nodes cannot be made in a user namespace at all, and tar
 * reports those entries and carries on (accepted below: a sandbox gets a fresh /dev anyway).
 */
export async function extractConfined(environment: string, stream: Readable, target: string, signal?: AbortSignal): Promise<void> {
  const libraryLinks = await hostLibraryLinks();
  await runConfinedBuildStep(
    environment,
    "tar extract",
    (launch) => [
      "bwrap",
      ...BUILD_SECCOMP,
      "--die-with-parent",
      "--new-session",
      "--unshare-ipc",
      "--unshare-pid",
      "--unshare-net",
      "--unshare-uts",
      "--unshare-cgroup-try",
      "--cap-drop",
      "ALL",
      ...["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_SETFCAP"].flatMap((cap) => ["--cap-add", cap]),
      "--ro-bind",
      "/usr",
      "/usr",
      ...libraryLinks,
      "--dev",
      "/dev",
      "--bind",
      launch.bind(target),
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
      // Overlay metadata is pyro's to write (whiteouts, opaque directories), never an archive's.
      "--xattrs-exclude=user.overlay.*",
      "-f",
      "-",
    ],
    {
      signal,
      stdin: stream,
      acceptFailure: onlyDeviceNodesRefused,
      failureHint: "GNU tar could not extract the archive (see details.output); fix or re-create the archive and import again.",
    },
  );
}

/** tar's exit status 2 when the only errors were device nodes it may not create here. */
function onlyDeviceNodesRefused(result: CommandResult): boolean {
  if (result.exitCode !== 2 || result.signal) return false;
  return result.tail.every((line) => /Cannot mknod|Exiting with failure status due to previous errors/.test(line));
}

/** Extracts `archive` (.tar, .tar.gz) into `target`; see `extractConfined`. */
export async function extractArchiveSandboxed(environment: string, archive: string, target: string, signal?: AbortSignal): Promise<void> {
  await extractConfined(environment, await archiveStream(archive), target, signal);
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
 * Copies a host directory in as a tar stream: pyro reads the source as itself (the user named
 * it), with numeric owners, and the confined extractor writes it, so ownership is shifted into
 * the sandbox's range exactly as for an archive. For an ordinary user the reading side runs as
 * guest root too: the user's own files then count as root's, as they would inside. Refuses a
 * source that contains the destination, which would copy forever.
 */
export async function copyDirectory(environment: string, source: string, target: string, signal?: AbortSignal): Promise<void> {
  const realSource = await fs.realpath(source);
  const realTarget = await fs.realpath(target);
  if (realTarget === realSource || realTarget.startsWith(realSource + path.sep)) {
    throw new PyroError("invalid_argument", `Import source ${source} contains pyro's own environment cache.`, {
      hint: "Import a directory that holds only the root filesystem.",
    });
  }
  // Root reads a host tree with its real ids, unless the tree already belongs to the sandbox
  // range (another pyro layer, a sandbox's output): that one is read as guest root, so its ids
  // are not shifted twice.
  const identity = sandboxIdentity();
  const owner = (await fs.lstat(realSource)).uid;
  const alreadyShifted = owner >= identity.rootUid && owner < identity.rootUid + GUEST_ID_COUNT;
  const launch = identity.kind === "root-range" && !alreadyShifted ? null : await ConfinedLaunch.open(3);
  try {
    const argv = launch
      ? launch.argv(["tar", "-c", "--numeric-owner", "--xattrs", "-f", "-", "-C", launch.bind(realSource, { readOnly: true }), "."])
      : { argv: ["tar", "-c", "--numeric-owner", "--xattrs", "-f", "-", "-C", realSource, "."], fds: [] };
    const reader = tarReader(argv.argv, argv.fds);
    const [extracted, readFailure] = await Promise.allSettled([extractConfined(environment, reader.stream, target, signal), reader.done]);
    if (readFailure.status === "fulfilled" && readFailure.value !== null) {
      throw new PyroError("environment_build_failed", `Reading ${source} failed: ${readFailure.value.slice(-300)}`, {
        hint: "Check that the directory is readable, then import again.",
      });
    }
    if (extracted.status === "rejected") throw extracted.reason;
  } finally {
    launch?.release();
  }
}
