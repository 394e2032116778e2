/**
 * Moving content into and out of workspaces on the host side: seeding and sync push (a host
 * directory or a checked archive copied in by a utility sandbox), and export (copied out by
 * the agent in a utility sandbox, then moved into place on the host without overwriting
 * anything unless asked). The host never opens a path inside the workspace itself. These are
 * the transfer primitives; the content capability built on them is workspace-content.ts.
 */
import type fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { randomBytes } from "node:crypto";
import * as tar from "tar";
import { createReadStream } from "node:fs";
import type { Readable } from "node:stream";
import { parseTreeSize, runUtility, treeSizeScript, withUtilityAgent } from "../runtime/confine/utility.js";
import type { UtilityBind, UtilityView } from "../runtime/confine/utility.js";
import { PyroError } from "../shared/errors.js";
import { archiveKind, checkArchiveEntry, DEFAULT_ARCHIVE_MAX_BYTES, DEFAULT_ARCHIVE_MAX_ENTRIES } from "../shared/archive.js";
import type { ArchiveProblem, ArchiveTally } from "../shared/archive.js";
import { hostPath, checkReplaceable } from "../shared/host-path.js";
import { tarReader } from "../shared/tar-stream.js";
import type { GuardedPath } from "../shared/host-path.js";
import { EXPORT_LIST_MAX, WORKSPACE_GUEST_PATH } from "../protocol/messages.js";
import type { ExportCopyResult } from "../protocol/messages.js";
import { ownByGuestRoot } from "../runtime/confine/launch.js";
import { giveToHostUser, removeTree } from "../runtime/confine/trees.js";

export interface SeedSource {
  path: string;
  kind: "directory" | "tar" | "tar.gz";
}

export interface ImportResult {
  source: string;
  kind: SeedSource["kind"];
  dest: string;
  entries: number;
  bytes: number;
}

/** The agent's copy result, with where it came from and where it landed on the host. */
export interface ExportOutcome extends Omit<ExportCopyResult, "source" | "secret_value_files"> {
  workspace_path: string;
  output_path: string;
  /** A secret's value is inside the exported files (they are copied byte for byte; `note` names them). */
  contains_secret_values: boolean;
}

/**
 * Checks a host seed/sync source before anything is changed; archives are scanned entry by
 * entry. `parameter` is the caller's name for it, for the message when it is empty.
 */
export async function inspectSource(sourcePath: string, parameter = "source path"): Promise<SeedSource> {
  const abs = hostPath(sourcePath, parameter);
  let stat: fs.Stats;
  try {
    stat = await fsp.stat(abs);
  } catch {
    throw new PyroError("seed_path_not_found", `${abs} does not exist`, { hint: "Pass an existing directory or .tar/.tar.gz/.tgz file." });
  }
  if (stat.isDirectory()) return { path: abs, kind: "directory" };
  const kind = archiveKind(abs);
  if (!stat.isFile() || kind === null) {
    throw new PyroError("seed_path_invalid", `${abs} is not a directory or a .tar/.tar.gz/.tgz archive`, {
      hint: "Pass a directory, or an archive whose name ends in .tar, .tar.gz or .tgz.",
    });
  }
  await scanArchive(abs);
  return { path: abs, kind };
}

/** Reads every header of a host archive and applies the archive policy; content is not extracted. */
export async function scanArchive(file: string): Promise<ArchiveTally> {
  const tally: ArchiveTally = { entries: 0, bytes: 0 };
  const found: { problem: ArchiveProblem | null } = { problem: null };
  try {
    await tar.t({
      file,
      strict: true,
      onReadEntry: (entry) => {
        found.problem ??= checkArchiveEntry(entry, tally, { maxEntries: DEFAULT_ARCHIVE_MAX_ENTRIES, maxBytes: DEFAULT_ARCHIVE_MAX_BYTES });
        entry.resume();
      },
    });
  } catch (err) {
    throw new PyroError("seed_path_invalid", `cannot read archive ${file}: ${(err as Error).message}`);
  }
  const p = found.problem;
  if (p) throw new PyroError(p.code, `archive ${path.basename(file)}: entry ${JSON.stringify(p.entry)}: ${p.reason}`, { details: { entry: p.entry } });
  return tally;
}

/** Destination inside /workspace, lexically; symlinks are checked inside the sandbox. */
export function guestDestination(dest: string | undefined): string {
  const resolved = path.posix.resolve(WORKSPACE_GUEST_PATH, dest ?? ".");
  if (resolved !== WORKSPACE_GUEST_PATH && !resolved.startsWith(`${WORKSPACE_GUEST_PATH}/`)) {
    throw new PyroError("path_outside_workspace", `${dest} is outside ${WORKSPACE_GUEST_PATH}`, { hint: "Use a path relative to /workspace or absolute under it." });
  }
  return resolved;
}

/**
 * The copy-in script, run in a utility sandbox. The source arrives on standard input as a tar
 * stream (pyro reads host paths itself: the sandbox identity may not be allowed to, and must
 * not be given the path). It resolves the destination with symlinks (in the sandbox's own
 * view, where only /workspace exists) and refuses one that leads outside; the stream is
 * extracted into a staging directory first, so a broken archive changes nothing. Files belong
 * to guest root whatever their owner on the host. With a room (bytes /workspace may still take)
 * the staged copy is measured first and refused whole when it does not fit, so a push past the
 * disk limit writes nothing. Prints the size of what was imported (treeSizeScript), then empties
 * the staging directory here, where deleting a large tree is one quick `find`, not a walk by
 * the host. A *fresh* destination (`fresh`: an empty tree that is thrown away whole if the
 * import fails, a new workspace's seed layer) takes the stream directly: no staging, no copy.
 */
const IMPORT_SCRIPT = `
set -e
dest=$(realpath -m -- "$1"); gz=$2; room=$3; fresh=$4
case "$dest" in /workspace|/workspace/*) ;; *) echo "destination leads outside /workspace" >&2; exit 3 ;; esac
if [ "$fresh" = fresh ]; then from=$dest; else from=/staging; fi
tar -x $gz -f - -C "$from" --no-same-owner --delay-directory-restore || { echo "archive extraction failed" >&2; exit 4; }
if [ -n "$room" ]; then need=$(du -s -B1 "$from" | cut -f1); if [ "$need" -gt "$room" ]; then echo "$need"; exit 6; fi; fi
if [ "$fresh" != fresh ]; then
  if [ -e "$dest" ] && [ ! -d "$dest" ]; then echo "destination is not a directory" >&2; exit 5; fi
  mkdir -p -- "$dest" 2>/dev/null || { echo "destination is not a directory" >&2; exit 5; }
  cp -R -P --preserve=mode,timestamps,links -- /staging/. "$dest"/
fi
${treeSizeScript('"$from"')}
if [ "$fresh" != fresh ]; then find /staging -mindepth 1 -delete; fi
`;

/** The seed as a tar stream read by pyro: a directory through host tar, an archive as it is. */
function sourceStream(source: SeedSource): { stream: Readable; gz: string; done: Promise<string | null> } {
  if (source.kind !== "directory") {
    return { stream: createReadStream(source.path), gz: source.kind === "tar.gz" ? "-z" : "", done: Promise.resolve(null) };
  }
  return { ...tarReader(["tar", "-c", "-f", "-", "-C", source.path, "."]), gz: "" };
}

/**
 * Copies a checked host source into a workspace (`view`: its whole tree at /workspace,
 * writable) at `dest` (guest path).
 * `room`: the bytes /workspace may still take under its disk limit (null: no limit); a source
 * that needs more is `disk_limit_exceeded` and nothing is copied.
 */
export async function importInto(view: UtilityView, scratchDir: string, source: SeedSource, dest: string, room: number | null = null, options: { fresh?: boolean } = {}): Promise<ImportResult> {
  const guestDest = guestDestination(dest);
  const staging = options.fresh ? null : path.join(scratchDir, `staging-${randomBytes(4).toString("hex")}`);
  if (staging) {
    await fsp.mkdir(staging, { recursive: true, mode: 0o700 });
    ownByGuestRoot(staging);
  }
  try {
    const binds: UtilityBind[] = [...view.binds, ...(staging ? [{ source: staging, target: "/staging", readOnly: false }] : [])];
    const input = sourceStream(source);
    const args = [guestDest, input.gz, room === null ? "" : String(Math.max(0, Math.floor(room))), options.fresh ? "fresh" : ""];
    const r = await runUtility(binds, ["sh", "-c", IMPORT_SCRIPT, "pyro-import", ...args], { input: input.stream, join: view.join });
    const readFailure = await input.done;
    if (readFailure !== null) throw new PyroError("seed_path_invalid", `cannot read ${source.path}: ${readFailure}`);
    if (r.code === 3) throw new PyroError("path_outside_workspace", `${dest} leads outside /workspace through a symbolic link`);
    if (r.code === 5) throw new PyroError("invalid_argument", `${dest} exists and is not a directory`);
    if (r.code === 6) {
      const need = Number(r.stdout.trim());
      throw new PyroError("disk_limit_exceeded", `${source.path} needs ${need} bytes and /workspace has room for ${Math.max(0, Math.floor(room ?? 0))}; nothing was copied`, { details: { bytes: need, room } });
    }
    if (r.code !== 0) {
      throw new PyroError(r.code === 4 ? "seed_path_invalid" : "internal_error", `copying ${source.path} into ${guestDest} failed: ${r.stderr.trim().slice(-500)}`, {
        ...(r.code === 4 ? {} : { hint: "Part of the source may have been written; check with workspace_file_list, or reset the workspace." }),
      });
    }
    return { source: source.path, kind: source.kind, dest: guestDest, ...parseTreeSize(r.stdout) };
  } finally {
    if (staging) await removeTree(staging);
  }
}

/** Where an export may write: the parameter's name for messages, and directories it must never replace. */
export interface OutputOptions {
  /** The caller's name for the output parameter (`--output`, `outputPath`, `output_path`). */
  parameter?: string;
  /** Besides `/`, the current directory, the home directory and their ancestors (see `checkReplaceable`). */
  guarded?: GuardedPath[];
  /** An export's workspace secrets: the copy is looked through for them (it stays byte-exact). */
  secretValues?: string[];
}

/**
 * Checks a host output path for an export: a real path (not empty; see `hostPath`) that names
 * nothing `force` could wrongly destroy (`checkReplaceable`), whose directory exists; an existing
 * entry is refused unless `force` (which later replaces the entry itself — a symlink, never its
 * target).
 */
export async function checkOutput(output: string, force: boolean, options: OutputOptions = {}): Promise<{ out: string; parent: string; exists: boolean }> {
  const parameter = options.parameter ?? "output path";
  const out = hostPath(output, parameter);
  checkReplaceable(out, options.guarded);
  const parent = path.dirname(out);
  try {
    if (!(await fsp.stat(parent)).isDirectory()) throw new Error();
  } catch {
    throw new PyroError("invalid_argument", `the output's directory ${parent} does not exist`, { hint: "Create it first or choose another --output." });
  }
  const exists = (await lstatOrNull(out)) !== null;
  if (exists && !force) throw outputExists(out);
  return { out, parent, exists };
}

function outputExists(out: string): PyroError {
  return new PyroError("output_exists", `${out} already exists`, { hint: "Choose another output path, or pass --force (MCP: force=true) to replace it." });
}

async function lstatOrNull(p: string): Promise<fs.Stats | null> {
  return fsp.lstat(p).catch(() => null);
}

/**
 * Moves a finished output `built` (made in a sibling directory of `out`, so on the same
 * filesystem) to exactly `out` — never to or over anything else. Without `replace` nothing is
 * clobbered, even if something appeared at `out` since it was checked: a file is hard-linked into
 * place (which fails if the name exists), a directory renamed (which fails over anything but an
 * empty directory). With `replace` the old entry is first renamed aside (a symlink is moved,
 * never followed), the new one renamed in, and only then is the old one removed; if the swap
 * fails the old one is put back, so a failed export never costs the user the old output.
 */
export async function placeOutput(built: string, out: string, replace: boolean): Promise<void> {
  const old = await lstatOrNull(out);
  if (old && !replace) throw outputExists(out);
  if (!old) {
    try {
      if ((await fsp.lstat(built)).isDirectory()) await fsp.rename(built, out);
      else {
        await fsp.link(built, out);
        await fsp.rm(built, { force: true });
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "EEXIST" || code === "ENOTEMPTY" || code === "ENOTDIR" || code === "EISDIR") throw outputExists(out);
      throw err;
    }
    return;
  }
  const aside = path.join(path.dirname(out), `.pyro-replaced-${randomBytes(4).toString("hex")}`);
  await fsp.rename(out, aside);
  try {
    await fsp.rename(built, out);
  } catch (err) {
    await fsp.rename(aside, out).catch(() => undefined);
    throw err;
  }
  await fsp.rm(aside, { recursive: true, force: true });
}

/**
 * Exports PATH from a workspace (`view`: its whole tree at /workspace) to a host path. The copy is made into a fresh
 * directory next to the output and moved into place (`placeOutput`), so a failure leaves no
 * partial output and the old output intact, and an existing output is never replaced unless
 * `force`. What the agent copies, strips and skips: src/agent/export.ts.
 */
export async function exportFrom(view: UtilityView, guestPath: string, output: string, force: boolean, options: OutputOptions = {}): Promise<ExportOutcome> {
  const { out, parent } = await checkOutput(output, force, options);
  const temp = path.join(parent, `.pyro-export-${randomBytes(4).toString("hex")}`);
  await fsp.mkdir(temp, { mode: 0o700 });
  ownByGuestRoot(temp);
  try {
    const result = await withUtilityAgent(
      [...view.binds, { source: temp, target: "/export", readOnly: false }],
      async (client) => (await client.request({ type: "export_copy", path: guestPath, name: "out", ...(options.secretValues?.length ? { secrets: options.secretValues } : {}) })).header,
      { join: view.join },
    );
    await giveToHostUser(path.join(temp, "out"));
    await placeOutput(path.join(temp, "out"), out, force);
    const entries = (list: ExportCopyResult["skipped"]) => list.slice(0, EXPORT_LIST_MAX).map(({ path, reason }) => ({ path, reason }));
    const secretFiles = result.secret_value_files;
    const found = secretFiles !== undefined && secretFiles.count > 0;
    const secretNote = found
      ? `${secretFiles.count} exported ${secretFiles.count === 1 ? "file holds" : "files hold"} a secret's value (${secretFiles.paths.slice(0, 5).join(", ")}${secretFiles.count > 5 ? ", …" : ""}); the export is byte-exact, so keep it as secret as the value.`
      : null;
    const note = [result.note?.slice(0, 1000), secretNote].filter((n): n is string => !!n).join(" ") || null;
    return {
      workspace_path: result.source,
      output_path: out,
      kind: result.kind,
      files: result.files,
      directories: result.directories,
      symlinks: result.symlinks,
      bytes: result.bytes,
      skipped: entries(result.skipped),
      stripped: entries(result.stripped),
      note,
      contains_secret_values: found,
    };
  } finally {
    await removeTree(temp);
  }
}
