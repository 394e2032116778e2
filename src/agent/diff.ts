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
import { nonNegativeInteger, num, str } from "./handler.js";
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

/**
 * One entry's metadata, or undefined when the entry is not there (never was, or vanished: the
 * live tree may change while it is compared).
 */
function stat(root: string, rel: string): Node | undefined {
  let st: fs.Stats | undefined;
  try {
    st = fs.lstatSync(Buffer.from(rel ? `${root}/${rel}` : root, "latin1"), { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
  return st && { type: entryType(st), mode: st.mode & 0o7777, size: st.size };
}

function names(root: string, rel: string): string[] {
  try {
    return fs.readdirSync(Buffer.from(rel ? `${root}/${rel}` : root, "latin1"), { encoding: "latin1" });
  } catch {
    return [];
  }
}

/**
 * Every entry of either tree once, with what each side has there: in name order, depth first
 * (a directory, then what it holds), as `file list` walks. Both trees are walked side by side
 * a directory at a time, so memory holds the names of the directories on the current path,
 * never the whole tree: a hundred thousand files cost time, not the agent's heap.
 *
 * `layers`, when given, are the overlay layers (raw directories) the two trees do not share:
 * both trees are overlays whose other layers are the same ones, beneath these. Then an entry
 * both sides have can differ only where one of these layers holds its path, so in a directory
 * both sides have, only the names these layers hold there (plus the names one side alone has)
 * are looked at: the walk costs what changed, not the tree. An opaque directory or a deleted
 * one in a layer needs no reading of overlay metadata: what it hides is absent on that side,
 * so it is a name one side alone has, and what it shows comes from the layer itself.
 */
function* bothTrees(base: string, live: string, sub: string | null, layers: string[] | null): Generator<[string, Node | undefined, Node | undefined]> {
  const childNames = (rel: string, inBase: boolean, inLive: boolean): string[] => {
    const b = inBase ? names(base, rel) : [];
    const l = inLive ? names(live, rel) : [];
    if (!layers || !inBase || !inLive) return [...new Set([...b, ...l])].sort();
    const inL = new Set(l);
    const onBoth = new Set(b.filter((n) => inL.has(n)));
    const chosen = new Set([...b, ...l].filter((n) => !onBoth.has(n)));
    for (const layer of layers) for (const n of names(layer, rel)) if (onBoth.has(n)) chosen.add(n);
    return [...chosen].sort();
  };
  function* children(rel: string, inBase: boolean, inLive: boolean): Generator<[string, Node | undefined, Node | undefined]> {
    for (const name of childNames(rel, inBase, inLive)) {
      const child = rel ? `${rel}/${name}` : name;
      const b = inBase ? stat(base, child) : undefined;
      const l = inLive ? stat(live, child) : undefined;
      if (!b && !l) continue;
      yield [child, b, l];
      if (b?.type === "directory" || l?.type === "directory") yield* children(child, b?.type === "directory", l?.type === "directory");
    }
  }
  if (!sub) {
    yield* children("", true, true);
    return;
  }
  const b = stat(base, sub);
  const l = stat(live, sub);
  if (!b && !l) return;
  yield [sub, b, l];
  if (b?.type === "directory" || l?.type === "directory") yield* children(sub, b?.type === "directory", l?.type === "directory");
}

/** An entry of the tree at `root` changed between its lstat and a read of it. */
class Vanished extends Error {
  constructor(readonly root: string) {
    super("entry changed while it was compared");
  }
}

/** Runs a read of an entry under `root`; a file-system error means it changed under us. */
function reading<T>(root: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (typeof (err as NodeJS.ErrnoException).code === "string") throw new Vanished(root);
    throw err;
  }
}

function read(root: string, rel: string): Buffer {
  return reading(root, () => fs.readFileSync(Buffer.from(`${root}/${rel}`, "latin1")));
}

function readLink(root: string, rel: string): string {
  return reading(root, () => fs.readlinkSync(Buffer.from(`${root}/${rel}`, "latin1"), { encoding: "utf8" }));
}

function sameContent(a: string, b: string, rel: string, size: number): boolean {
  if (size > 64 * 1024 * 1024) {
    // Stream-compare very large files rather than hold both in memory.
    const fa = reading(a, () => fs.openSync(Buffer.from(`${a}/${rel}`, "latin1"), "r"));
    let fb: number | undefined;
    try {
      fb = reading(b, () => fs.openSync(Buffer.from(`${b}/${rel}`, "latin1"), "r"));
      const ba = Buffer.alloc(1 << 20);
      const bb = Buffer.alloc(1 << 20);
      for (;;) {
        const na = reading(a, () => fs.readSync(fa, ba));
        const nb = reading(b, () => fs.readSync(fb!, bb));
        if (na !== nb || ba.compare(bb, 0, nb, 0, na) !== 0) return false;
        if (na === 0) return true;
      }
    } finally {
      fs.closeSync(fa);
      if (fb !== undefined) fs.closeSync(fb);
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

  // One entry, both sides as the walk saw them. Everything it reads comes before anything is
  // counted or listed, so an entry that changes under a read can be compared again.
  const compare = (rel: string, b: Node | undefined, l: Node | undefined): void => {
    if (!b && !l) return;
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
    if (!change) return;

    const oldPatchable = b !== undefined && patchable(b.type);
    const newPatchable = l !== undefined && patchable(l.type);
    // Past the listed changes and too big for what is left of the patch budget: counted and
    // named in `omitted_files` without reading it, so a tree where everything changed costs a
    // comparison per file, not a rendering.
    const whole = oldPatchable !== newPatchable ? ((oldPatchable ? b : l)!.type === "file" ? (oldPatchable ? b : l)!.size : 0) : 0;
    if (changes.isFull && (oldPatchable || newPatchable) && textBytes + minPatchBytes(displayName(rel), whole) > req.maxBytes) {
      counts[change]++;
      changes.count();
      omit(rel);
      return;
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
    counts[change]++;
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
    if (!oldPatchable && !newPatchable) return;
    // A name that is not UTF-8 cannot be written into a patch without changing it; such a file
    // is listed in `changes` and in `omitted_files`, never patched under a mangled name.
    if (!isText(Buffer.from(rel, "latin1"))) {
      omit(rel, false);
      return;
    }
    // A type change that involves a directory is two patch entries in git; we render the file side.
    const oldText = oldPatchable && !binary ? (texts[0] ?? "") : "";
    const newText = newPatchable && !binary ? (texts[1] ?? "") : "";
    // jsdiff quotes names the way git does (octal escapes) when they need it.
    const aName = `a/${displayName(rel)}`;
    const bName = `b/${displayName(rel)}`;
    // Binary content is reported in `changes`, never dumped into the patch; the patch stays
    // something `git apply` accepts for every text file and symlink.
    if (binary) return;
    if (oldPatchable && newPatchable && b!.type !== l!.type) {
      // file <-> symlink: git shows a deletion and a creation.
      append(rel, makePatch(aName, "/dev/null", oldText, "", { isDelete: true, oldMode: gitMode(b!) }));
      append(rel, makePatch("/dev/null", bName, "", newText, { isCreate: true, newMode: gitMode(l!) }));
      return;
    }
    const extra: Partial<StructuredPatch> = {};
    if (!oldPatchable) Object.assign(extra, { isCreate: true, newMode: gitMode(l!) });
    else if (!newPatchable) Object.assign(extra, { isDelete: true, oldMode: gitMode(b!) });
    else if (gitMode(b!) !== gitMode(l!)) Object.assign(extra, { oldMode: gitMode(b!), newMode: gitMode(l!) });
    if (!contentChanged && oldPatchable && newPatchable && extra.oldMode === undefined) return;
    append(rel, makePatch(oldPatchable ? aName : "/dev/null", newPatchable ? bName : "/dev/null", oldText, newText, extra));
  };

  const subLatin1 = sub ? Buffer.from(sub, "utf8").toString("latin1") : null;
  // The work so far against `limit`: entries compared, and bytes of the files among them (what a
  // comparison may read).
  let entries = 0;
  let bytes = 0;
  for (const [rel, b, l] of bothTrees(req.base, req.live, subLatin1, req.layers ?? null)) {
    if (req.limit) {
      entries++;
      bytes += (b?.type === "file" ? b.size : 0) + (l?.type === "file" ? l.size : 0);
      if (entries > req.limit.entries || bytes > req.limit.bytes) {
        return { changes: [], changes_omitted: 0, summary: { added: 0, deleted: 0, modified: 0, type_changed: 0, mode_changed: 0, total: 0 }, patch: "", patch_truncated: false, omitted_files: [], omitted_files_total: 0, over_limit: true };
      }
    }
    // The live tree can change while it is compared (a build still running): an entry that
    // vanished or changed type between its lstat and a read is looked at again, and past that
    // taken as absent on that side — never an error for the whole diff.
    // A side is stat'ed again once, then dropped, so this ends after at most four tries.
    const sides = { [req.base]: b, [req.live]: l };
    const retried = new Set<string>();
    for (;;) {
      try {
        compare(rel, sides[req.base], sides[req.live]);
        break;
      } catch (err) {
        if (!(err instanceof Vanished)) throw err;
        sides[err.root] = retried.has(err.root) ? undefined : stat(err.root, rel);
        retried.add(err.root);
      }
    }
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
    const { patch, ...result } = treeDiff({ base: str(h.base, "base"), live: str(h.live, "live"), path: typeof h.path === "string" ? h.path : null,
      maxBytes: num(h.maxBytes, 65536),
      ...(Array.isArray(h.layers) ? { layers: h.layers.map((v, i) => str(v, `layers[${i}]`)) } : {}),
      ...(h.limit !== undefined && h.limit !== null ? { limit: diffLimit(h.limit) } : {}),
    });
    return { result, payload: Buffer.from(patch, "utf8") };
  },
};

function diffLimit(v: unknown): { entries: number; bytes: number } {
  const o = (typeof v === "object" && v !== null ? v : {}) as Record<string, unknown>;
  return { entries: nonNegativeInteger(o.entries, "limit.entries"), bytes: nonNegativeInteger(o.bytes, "limit.bytes") };
}

/** Relative path helper for callers that pass absolute paths under /workspace. */
export function relativeToWorkspace(p: string | null): string | null {
  if (p === null) return null;
  const abs = path.resolve("/workspace", p);
  if (abs === "/workspace") return null;
  if (!abs.startsWith("/workspace/")) throw new AgentFailure("path_outside_workspace", `${p} is outside /workspace`);
  return abs.slice("/workspace/".length);
}
