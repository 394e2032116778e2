/**
 * Applies a unified diff (from `git diff` or `diff -u`) to files under /workspace, all or
 * nothing: every file is patched in memory first; only when all hunks apply are the files
 * written, and if a write fails midway the files already written are restored. A hunk that
 * does not apply is reported with where it was expected and what is there instead.
 */
import fs from "node:fs";
import path from "node:path/posix";
import { randomBytes } from "node:crypto";
import { applyPatch, parsePatch } from "diff";
import type { StructuredPatch, StructuredPatchHunk } from "diff";
import { AgentFailure } from "./failure.js";
import { ROOT, safePath } from "./paths.js";
import type { Handlers } from "./handler.js";
import type { PatchApplyResult, PatchFileResult } from "../protocol/messages.js";

interface Planned {
  abs: string;
  action: PatchFileResult["action"];
  hunks: number;
  /** New content (null when deleting). */
  content: string | null;
  mode: number | null;
  symlink: boolean;
  /** A deletion and a creation of the same path, merged. */
  replaces?: boolean;
  /** What was there before, for rollback. */
  before: { kind: "absent" } | { kind: "file"; content: Buffer; mode: number } | { kind: "symlink"; target: string };
}

/** `a/x` / `b/x` (git, -p1) or plain names (-p0); `/dev/null` means no file. */
function targetName(p: StructuredPatch): { name: string; create: boolean; del: boolean } {
  const strip = (n: string | undefined) => (n ?? "").replace(/\t.*$/, "");
  const oldName = strip(p.oldFileName);
  const newName = strip(p.newFileName);
  const create = p.isCreate === true || oldName === "/dev/null";
  const del = p.isDelete === true || newName === "/dev/null";
  const git = p.isGit === true || (oldName.startsWith("a/") || oldName === "/dev/null") && (newName.startsWith("b/") || newName === "/dev/null");
  let name = del ? oldName : newName;
  if (git) name = name.replace(/^[ab]\//, "");
  if (!name || name === "/dev/null") throw new AgentFailure("invalid_request", "a file in the patch has no name");
  return { name, create, del };
}

function hunkHeader(h: StructuredPatchHunk): string {
  return `@@ -${h.oldStart},${h.oldLines} +${h.newStart},${h.newLines} @@`;
}

/** Finds the first hunk that does not apply and explains why. */
function explainFailure(name: string, source: string, p: StructuredPatch): AgentFailure {
  for (let i = 0; i < p.hunks.length; i++) {
    const partial = { ...p, hunks: p.hunks.slice(0, i + 1) };
    if (applyPatch(source, partial) === false) {
      const h = p.hunks[i]!;
      const expected = h.lines.filter((l) => l.startsWith(" ") || l.startsWith("-")).map((l) => l.slice(1));
      const actual = source.split("\n").slice(Math.max(0, h.oldStart - 1), Math.max(0, h.oldStart - 1) + Math.max(expected.length, 1));
      return new AgentFailure("patch_failed", `${name}: hunk ${i + 1} of ${p.hunks.length} (${hunkHeader(h)}) does not apply: the file's lines at ${h.oldStart} differ from the patch's context`, {
        file: name,
        hunk: i + 1,
        hunk_header: hunkHeader(h),
        expected: expected.slice(0, 20),
        actual: actual.slice(0, 20),
      });
    }
  }
  return new AgentFailure("patch_failed", `${name}: the patch does not apply`, { file: name });
}

function parseMode(mode: string | undefined): number | null {
  if (!mode) return null;
  const n = parseInt(mode, 8);
  return Number.isFinite(n) ? n : null;
}

/**
 * The file of the first binary change in a patch, or null. git writes binary changes as
 * `GIT binary patch` (with --binary) or `Binary files a/x and b/x differ`; the diff library
 * parses the first as a change with no hunks, so a binary new file would be created empty and a
 * binary edit would look like no change at all. Checked on the text, before parsing.
 */
function binaryChange(text: string): string | null {
  let current = "a file";
  for (const line of text.split("\n")) {
    const header = /^diff --git a\/(.*) b\/(.*)$/.exec(line);
    if (header) current = header[2]!;
    if (line === "GIT binary patch") return current;
    const binary = /^Binary files (.*) and (.*) differ$/.exec(line);
    if (binary) return binary[2] === "/dev/null" ? binary[1]!.replace(/^a\//, "") : binary[2]!.replace(/^b\//, "");
  }
  return null;
}

export function patchApply(text: string): PatchApplyResult {
  const binary = binaryChange(text);
  if (binary !== null) {
    throw new AgentFailure("patch_failed", `${binary}: binary patches are not supported; write the file with file_write or sync push instead`, { file: binary });
  }
  let patches: StructuredPatch[];
  try {
    patches = parsePatch(text);
  } catch (err) {
    throw new AgentFailure("patch_failed", `not a unified diff: ${(err as Error).message}`);
  }
  patches = patches.filter((p) => p.hunks.length > 0 || p.oldMode !== p.newMode || p.isCreate || p.isDelete);
  if (patches.length === 0) throw new AgentFailure("patch_failed", "the patch contains no file changes");

  // Deletions first, as git apply does: a patch may delete `d/x` and create a file `d`, or
  // delete a file and create a symlink of the same name.
  const parsed = patches.map((p) => {
    if (p.isBinary) throw new AgentFailure("patch_failed", `${p.newFileName}: binary patches are not supported; write the file with file_write instead`);
    if (p.isRename || p.isCopy) throw new AgentFailure("patch_failed", `${p.newFileName}: rename/copy patches are not supported; apply the content change and delete the old file`);
    return { p, ...targetName(p) };
  });
  parsed.sort((a, b) => Number(b.del) - Number(a.del));
  const deleted = new Set<string>();
  const plan: Planned[] = [];
  const seen = new Map<string, Planned>();
  for (const { p, name, create, del } of parsed) {
    const abs = safePath(name, { followFinal: false });
    if (abs === ROOT) throw new AgentFailure("patch_failed", "the patch targets /workspace itself");
    const earlier = seen.get(abs);
    // A deletion followed by a creation of the same path is one replacement (e.g. file -> symlink).
    if (earlier && !(earlier.action === "deleted" && create)) throw new AgentFailure("patch_failed", `${name} appears twice in the patch`);
    let st: fs.Stats | null = null;
    try {
      st = fs.lstatSync(abs);
    } catch {
      st = null;
    }
    if (st && deleted.has(abs)) st = null;
    if (st?.isDirectory() && create && directoryEmptiedBy(abs, deleted)) st = null;
    let before: Planned["before"] = earlier ? earlier.before : { kind: "absent" };
    let source = "";
    if (st) {
      if (st.isSymbolicLink()) {
        const target = fs.readlinkSync(abs);
        before = { kind: "symlink", target };
        source = `${target}`;
      } else if (st.isFile()) {
        const content = fs.readFileSync(abs);
        before = { kind: "file", content, mode: st.mode & 0o7777 };
        source = content.toString("utf8");
      } else {
        throw new AgentFailure("patch_failed", `${name} is not a regular file`, { file: name });
      }
    }
    if (create && st) throw new AgentFailure("patch_failed", `${name} already exists but the patch creates it`, { file: name });
    if (!create && !st) throw new AgentFailure("patch_failed", `${name} does not exist`, { file: name });
    // A change without mode lines keeps the entry's type (a retargeted symlink stays a symlink).
    const mode = p.newMode ?? p.oldMode;
    const symlink = mode !== undefined ? mode === "120000" : before.kind === "symlink";
    // git writes a symlink's target without a trailing newline ("\ No newline at end of file").
    const result = p.hunks.length === 0 ? source : applyPatch(source, p);
    if (result === false) throw explainFailure(name, source, p);
    const newMode = parseMode(p.newMode);
    const item: Planned = {
      abs,
      action: del ? "deleted" : create ? (earlier ? "modified" : "created") : p.hunks.length === 0 ? "mode_changed" : "modified",
      hunks: p.hunks.length + (earlier?.hunks ?? 0),
      content: del ? null : result,
      mode: newMode === null ? null : newMode & 0o7777,
      symlink,
      before,
    };
    if (del) deleted.add(abs);
    if (earlier) plan.splice(plan.indexOf(earlier), 1, { ...item, replaces: true });
    else plan.push(item);
    seen.set(abs, item);
  }

  const done: Planned[] = [];
  try {
    for (const item of plan) {
      write(item);
      done.push(item);
    }
  } catch (err) {
    for (const item of done.reverse()) restore(item);
    throw new AgentFailure("patch_failed", `writing ${item(done, plan)} failed, every file was restored: ${(err as Error).message}`);
  }
  return {
    files: plan.map((p) => ({ path: p.abs, action: p.action, hunks: p.hunks })),
    files_changed: plan.length,
  };
}

function item(done: Planned[], plan: Planned[]): string {
  return plan[done.length]?.abs ?? "a file";
}

/** True when every file below `dir` is deleted by the patch (so a file may take its place). */
function directoryEmptiedBy(dir: string, deleted: Set<string>): boolean {
  for (const name of fs.readdirSync(dir)) {
    const child = path.join(dir, name);
    const st = fs.lstatSync(child);
    if (st.isDirectory() ? !directoryEmptiedBy(child, deleted) : !deleted.has(child)) return false;
  }
  return true;
}

/** Removes directories a deletion left empty, up to /workspace, as git apply does. */
function pruneEmptyParents(file: string): void {
  for (let dir = path.dirname(file); dir !== ROOT && dir.startsWith(`${ROOT}/`); dir = path.dirname(dir)) {
    try {
      fs.rmdirSync(dir);
    } catch {
      return; // not empty (or already gone)
    }
  }
}

function write(p: Planned): void {
  if (p.content === null) {
    fs.rmSync(p.abs, { force: true });
    pruneEmptyParents(p.abs);
    return;
  }
  // A directory the patch emptied gives way to the file that replaces it.
  if (fs.lstatSync(p.abs, { throwIfNoEntry: false })?.isDirectory()) fs.rmdirSync(p.abs);
  fs.mkdirSync(path.dirname(p.abs), { recursive: true });
  safePath(path.dirname(p.abs));
  const tmp = path.join(path.dirname(p.abs), `.${path.basename(p.abs)}.pyro-${randomBytes(4).toString("hex")}`);
  if (p.symlink) {
    fs.symlinkSync(p.content, tmp);
  } else {
    const mode = p.mode ?? (p.before.kind === "file" ? p.before.mode : 0o644);
    fs.writeFileSync(tmp, p.content, { mode, flag: "wx" });
    fs.chmodSync(tmp, mode);
  }
  fs.renameSync(tmp, p.abs);
}

function restore(p: Planned): void {
  try {
    fs.rmSync(p.abs, { force: true });
    fs.mkdirSync(path.dirname(p.abs), { recursive: true });
    if (p.before.kind === "file") fs.writeFileSync(p.abs, p.before.content, { mode: p.before.mode });
    else if (p.before.kind === "symlink") fs.symlinkSync(p.before.target, p.abs);
  } catch {
    // Best effort: the failure report already says a write failed.
  }
}

export const patchHandlers: Handlers<"patch_apply"> = {
  patch_apply: (_h, payload) => ({ result: patchApply(payload.toString("utf8")) }),
};
