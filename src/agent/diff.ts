/**
 * Whole-tree comparison of a baseline (or snapshot) tree with the live /workspace, run by the
 * agent in a utility sandbox that sees both read-only. Reports every added, deleted, modified,
 * type-changed and mode-changed entry (empty directories, symlinks, binary files and non-UTF-8
 * names included) and renders a git-style patch of text files and symlinks that `git apply`
 * accepts against the baseline, bounded by a byte budget. Binary files are listed, not patched.
 */
import fs from "node:fs";
import path from "node:path/posix";
import { formatPatch, structuredPatch } from "diff";
import type { StructuredPatch } from "diff";
import { displayName, entryType, isText } from "./paths.js";
import { AgentFailure } from "./failure.js";
import { num, str } from "./handler.js";
import type { Handlers } from "./handler.js";
import { DIFF_CHANGES_MAX, DIFF_CHANGES_MAX_BYTES, DIFF_OMITTED_MAX, DIFF_OMITTED_MAX_BYTES } from "../protocol/messages.js";
import type { DiffChange, EntryType, TreeDiffRequest, TreeDiffResult } from "../protocol/messages.js";

interface Node {
  type: EntryType;
  mode: number;
  size: number;
}

/** Largest file the diff reads to render a text patch; bigger ones are compared and reported, not rendered. */
const MAX_RENDER_BYTES = 4 * 1024 * 1024;

function walk(root: string, sub: string | null): Map<string, Node> {
  const out = new Map<string, Node>();
  const visit = (rel: string) => {
    const abs = rel ? `${root}/${rel}` : root;
    let names: string[];
    try {
      names = fs.readdirSync(Buffer.from(abs, "latin1"), { encoding: "latin1" });
    } catch {
      return;
    }
    for (const name of names) {
      const childRel = rel ? `${rel}/${name}` : name;
      let st: fs.Stats;
      try {
        st = fs.lstatSync(Buffer.from(`${root}/${childRel}`, "latin1"));
      } catch {
        continue;
      }
      out.set(childRel, { type: entryType(st), mode: st.mode & 0o7777, size: st.size });
      if (st.isDirectory()) visit(childRel);
    }
  };
  if (sub) {
    const abs = `${root}/${sub}`;
    try {
      const st = fs.lstatSync(Buffer.from(abs, "latin1"));
      out.set(sub, { type: entryType(st), mode: st.mode & 0o7777, size: st.size });
      if (st.isDirectory()) visit(sub);
    } catch {
      // absent on this side
    }
  } else {
    visit("");
  }
  return out;
}

function read(root: string, rel: string): Buffer {
  return fs.readFileSync(Buffer.from(`${root}/${rel}`, "latin1"));
}

function readLink(root: string, rel: string): string {
  return fs.readlinkSync(Buffer.from(`${root}/${rel}`, "latin1"), { encoding: "utf8" });
}

function sameContent(a: string, b: string, rel: string, size: number): boolean {
  if (size > 64 * 1024 * 1024) {
    // Stream-compare very large files rather than hold both in memory.
    const fa = fs.openSync(Buffer.from(`${a}/${rel}`, "latin1"), "r");
    const fb = fs.openSync(Buffer.from(`${b}/${rel}`, "latin1"), "r");
    try {
      const ba = Buffer.alloc(1 << 20);
      const bb = Buffer.alloc(1 << 20);
      for (;;) {
        const na = fs.readSync(fa, ba);
        const nb = fs.readSync(fb, bb);
        if (na !== nb || ba.compare(bb, 0, nb, 0, na) !== 0) return false;
        if (na === 0) return true;
      }
    } finally {
      fs.closeSync(fa);
      fs.closeSync(fb);
    }
  }
  return read(a, rel).equals(read(b, rel));
}

const gitMode = (n: Node) => (n.type === "symlink" ? "120000" : n.mode & 0o111 ? "100755" : "100644");
const patchable = (t: EntryType) => t === "file" || t === "symlink";

/**
 * A list that stops growing at `maxItems` or `maxBytes` (as JSON), counting what it refused:
 * what travels in a frame header stays far under the header limit whatever the tree holds.
 * Once an item is refused every later one is too, so the items are always the first ones.
 */
class BoundedList<T> {
  readonly items: T[] = [];
  total = 0;
  private bytes = 0;
  private full = false;
  constructor(
    private readonly maxItems: number,
    private readonly maxBytes: number,
  ) {}
  get isFull(): boolean {
    return this.full;
  }
  add(item: T): void {
    this.total++;
    if (this.full) return;
    const size = JSON.stringify(item).length + 1;
    if (this.items.length >= this.maxItems || this.bytes + size > this.maxBytes) this.full = true;
    else {
      this.items.push(item);
      this.bytes += size;
    }
  }
  /** Counts one more item without building it: only once the list is full. */
  count(): void {
    this.total++;
    this.full = true;
  }
}

/**
 * The fewest bytes a file's patch can take: `diff --git a/N b/N`, `--- a/N`, `+++ b/N`, and for
 * a creation or deletion the whole content (one line each side holds it all).
 */
const minPatchBytes = (name: string, whole: number) => 4 * name.length + 30 + whole;

export function treeDiff(req: TreeDiffRequest): TreeDiffResult & { patch: string } {
  if (req.path !== null && (req.path.startsWith("/") || req.path.split("/").includes(".."))) {
    throw new AgentFailure("path_outside_workspace", `${req.path} must be a path relative to /workspace`);
  }
  const sub = req.path ? req.path.replace(/\/+$/, "") || null : null;
  const base = walk(req.base, sub ? Buffer.from(sub, "utf8").toString("latin1") : null);
  const live = walk(req.live, sub ? Buffer.from(sub, "utf8").toString("latin1") : null);
  const names = [...new Set([...base.keys(), ...live.keys()])].sort();
  const changes = new BoundedList<DiffChange>(DIFF_CHANGES_MAX, DIFF_CHANGES_MAX_BYTES);
  const omitted = new BoundedList<string>(DIFF_OMITTED_MAX, DIFF_OMITTED_MAX_BYTES);
  const counts = { added: 0, deleted: 0, modified: 0, type_changed: 0, mode_changed: 0 };
  // The patch is rendered as the walk goes, a file at a time, so memory stays within the budget
  // however many files changed; a file that does not fit is named in `omitted`, not kept.
  let text = "";
  // The budget is in bytes (what the host receives), not UTF-16 units.
  let textBytes = 0;
  let lastOmitted: string | null = null;
  // Whether the budget left something out (a name a patch cannot carry is omitted, not truncated).
  let truncated = false;
  const omit = (rel: string, overBudget = true) => {
    truncated ||= overBudget;
    if (rel === lastOmitted) return;
    lastOmitted = rel;
    omitted.add(displayName(rel));
  };
  const append = (rel: string, patch: StructuredPatch) => {
    const formatted = formatPatch(patch);
    const piece = formatted.endsWith("\n") ? formatted : `${formatted}\n`;
    const size = Buffer.byteLength(piece, "utf8");
    if (textBytes + size > req.maxBytes) omit(rel);
    else {
      text += piece;
      textBytes += size;
    }
  };

  for (const rel of names) {
    const b = base.get(rel);
    const l = live.get(rel);
    let change: DiffChange["change"] | null = null;
    let contentChanged = false;
    if (!b) change = "added";
    else if (!l) change = "deleted";
    else if (b.type !== l.type) change = "type_changed";
    else if (l.type === "file") {
      contentChanged = b.size !== l.size || !sameContent(req.base, req.live, rel, l.size);
      change = contentChanged ? "modified" : b.mode !== l.mode ? "mode_changed" : null;
    } else if (l.type === "symlink") {
      contentChanged = readLink(req.base, rel) !== readLink(req.live, rel);
      change = contentChanged ? "modified" : null;
    } else if (b.mode !== l.mode) change = "mode_changed";
    if (!change) continue;
    counts[change]++;

    const oldPatchable = b !== undefined && patchable(b.type);
    const newPatchable = l !== undefined && patchable(l.type);
    // Past the listed changes and too big for what is left of the patch budget: counted and
    // named in `omitted_files` without reading it, so a tree where everything changed costs a
    // comparison per file, not a rendering.
    const whole = oldPatchable !== newPatchable ? ((oldPatchable ? b : l)!.type === "file" ? (oldPatchable ? b : l)!.size : 0) : 0;
    if (changes.isFull && (oldPatchable || newPatchable) && textBytes + minPatchBytes(displayName(rel), whole) > req.maxBytes) {
      changes.count();
      omit(rel);
      continue;
    }

    // Render: text files and symlinks as unified hunks; binary files as git's "Binary files" line.
    let binary = false;
    const sides: { node: Node | undefined; root: string }[] = [
      { node: b, root: req.base },
      { node: l, root: req.live },
    ];
    const texts: (string | null)[] = sides.map(({ node, root }) => {
      if (!node || !patchable(node.type)) return null;
      if (node.type === "symlink") return readLink(root, rel);
      if (node.size > MAX_RENDER_BYTES) {
        binary = true;
        return null;
      }
      const bytes = read(root, rel);
      if (!isText(bytes)) binary = true;
      return bytes.toString("utf8");
    });
    changes.add({
      path: displayName(rel),
      change,
      type: (l ?? b)!.type,
      old_type: b?.type ?? null,
      old_mode: b ? b.mode.toString(8).padStart(4, "0") : null,
      new_mode: l ? l.mode.toString(8).padStart(4, "0") : null,
      binary,
      size: l?.size ?? null,
    });
    if (!oldPatchable && !newPatchable) continue;
    // A name that is not UTF-8 cannot be written into a patch without changing it; such a file
    // is listed in `changes` and in `omitted_files`, never patched under a mangled name.
    if (!isText(Buffer.from(rel, "latin1"))) {
      omit(rel, false);
      continue;
    }
    // A type change that involves a directory is two patch entries in git; we render the file side.
    const oldText = oldPatchable && !binary ? (texts[0] ?? "") : "";
    const newText = newPatchable && !binary ? (texts[1] ?? "") : "";
    // jsdiff quotes names the way git does (octal escapes) when they need it.
    const aName = `a/${displayName(rel)}`;
    const bName = `b/${displayName(rel)}`;
    // Binary content is reported in `changes`, never dumped into the patch; the patch stays
    // something `git apply` accepts for every text file and symlink.
    if (binary) continue;
    if (oldPatchable && newPatchable && b!.type !== l!.type) {
      // file <-> symlink: git shows a deletion and a creation.
      append(rel, makePatch(aName, "/dev/null", oldText, "", { isDelete: true, oldMode: gitMode(b!) }));
      append(rel, makePatch("/dev/null", bName, "", newText, { isCreate: true, newMode: gitMode(l!) }));
      continue;
    }
    const extra: Partial<StructuredPatch> = {};
    if (!oldPatchable) Object.assign(extra, { isCreate: true, newMode: gitMode(l!) });
    else if (!newPatchable) Object.assign(extra, { isDelete: true, oldMode: gitMode(b!) });
    else if (gitMode(b!) !== gitMode(l!)) Object.assign(extra, { oldMode: gitMode(b!), newMode: gitMode(l!) });
    if (!contentChanged && oldPatchable && newPatchable && extra.oldMode === undefined) continue;
    append(rel, makePatch(oldPatchable ? aName : "/dev/null", newPatchable ? bName : "/dev/null", oldText, newText, extra));
  }

  return {
    changes: changes.items,
    changes_omitted: changes.total - changes.items.length,
    summary: { ...counts, total: changes.total },
    patch: text,
    patch_truncated: truncated,
    omitted_files: omitted.items,
    omitted_files_total: omitted.total,
  };
}

function makePatch(oldName: string, newName: string, oldText: string, newText: string, extra: Partial<StructuredPatch>): StructuredPatch {
  const p = structuredPatch(oldName, newName, oldText, newText, undefined, undefined, { context: 3 });
  return { ...p, oldFileName: oldName, newFileName: newName, isGit: true, ...extra };
}

export const diffHandlers: Handlers<"tree_diff"> = {
  tree_diff: (h) => {
    // The patch can be megabytes: it travels as the payload, not in the header.
    const { patch, ...result } = treeDiff({ base: str(h.base, "base"), live: str(h.live, "live"), path: typeof h.path === "string" ? h.path : null, maxBytes: num(h.maxBytes, 65536) });
    return { result, payload: Buffer.from(patch, "utf8") };
  },
};

/** Relative path helper for callers that pass absolute paths under /workspace. */
export function relativeToWorkspace(p: string | null): string | null {
  if (p === null) return null;
  const abs = path.resolve("/workspace", p);
  if (abs === "/workspace") return null;
  if (!abs.startsWith("/workspace/")) throw new AgentFailure("path_outside_workspace", `${p} is outside /workspace`);
  return abs.slice("/workspace/".length);
}
