/**
 * The agent's whole-tree diff on plain directories: the order changes come in, exact counts past
 * the listed changes, and a live tree that changes while it is compared (a build still writing)
 * answered with what is there rather than failing the whole diff.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { treeDiff } from "../../src/agent/diff.js";
import { DIFF_CHANGES_MAX } from "../../src/protocol/messages.js";

let root: string;
let base: string;
let live: string;

function write(tree: string, rel: string, text = "x\n"): void {
  fs.mkdirSync(path.dirname(path.join(tree, rel)), { recursive: true });
  fs.writeFileSync(path.join(tree, rel), text);
}

const diff = (sub: string | null = null) => treeDiff({ base, live, path: sub, maxBytes: 65536 });

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-tree-diff-"));
  base = path.join(root, "base");
  live = path.join(root, "live");
  fs.mkdirSync(base);
  fs.mkdirSync(live);
});

afterEach(() => {
  vi.restoreAllMocks();
  fs.rmSync(root, { recursive: true, force: true });
});

describe("tree diff", () => {
  it("lists changes in name order, depth first: a directory, what it holds, then the next name", () => {
    for (const rel of ["a/x.txt", "a.txt", "b/c/d.txt", "ab"]) write(live, rel);
    expect(diff().changes.map((c) => c.path)).toEqual(["a", "a/x.txt", "a.txt", "ab", "b", "b/c", "b/c/d.txt"]);
  });

  it("a directory replaced by a file is a type change, and what the directory held is deleted", () => {
    write(base, "pkg/one.js");
    write(base, "pkg/two.js");
    write(live, "pkg", "now a file\n");
    const d = diff();
    expect(d.summary).toEqual({ added: 0, deleted: 2, modified: 0, type_changed: 1, mode_changed: 0, total: 3 });
    expect(d.changes.map((c) => [c.path, c.change])).toEqual([
      ["pkg", "type_changed"],
      ["pkg/one.js", "deleted"],
      ["pkg/two.js", "deleted"],
    ]);
  });

  it("counts every change past the listed ones, and a path narrows to what is under it", () => {
    const files = DIFF_CHANGES_MAX + 500;
    for (let i = 0; i < files; i++) write(live, `gen/f${String(i).padStart(5, "0")}.txt`);
    write(base, "src/main.c", "int main;\n");
    write(live, "src/main.c", "int main(void);\n");
    const d = diff();
    expect(d.summary).toEqual({ added: files + 1, deleted: 0, modified: 1, type_changed: 0, mode_changed: 0, total: files + 2 });
    expect(d.changes).toHaveLength(DIFF_CHANGES_MAX);
    expect(d.changes_omitted).toBe(files + 2 - DIFF_CHANGES_MAX);
    const narrowed = diff("src");
    expect(narrowed.summary.total).toBe(1);
    expect(narrowed.patch).toContain("+int main(void);");
  });

  it("a file that vanishes while it is compared is reported as deleted, not as a failed diff", () => {
    write(base, "build/out.o", "old\n");
    write(live, "build/out.o", "new\n");
    write(live, "keep.txt");
    const real = fs.readFileSync;
    // The build removes out.o between the walk's lstat and the diff's read of it.
    vi.spyOn(fs, "readFileSync").mockImplementation(((p: fs.PathOrFileDescriptor, o?: unknown) => {
      if (Buffer.isBuffer(p) && p.toString("latin1") === path.join(live, "build/out.o")) fs.rmSync(path.join(live, "build/out.o"));
      return real(p, o as undefined);
    }) as typeof fs.readFileSync);
    const d = diff();
    expect(d.changes.map((c) => [c.path, c.change])).toEqual([
      ["build/out.o", "deleted"],
      ["keep.txt", "added"],
    ]);
    expect(d.summary.total).toBe(2);
  });
});

describe("tree diff restricted to the layers two overlays do not share", () => {
  const layered = (layers: string[], sub: string | null = null) => treeDiff({ base, live, path: sub, maxBytes: 65536, layers });
  let layer: string;
  beforeEach(() => {
    layer = path.join(root, "layer");
    fs.mkdirSync(layer);
  });

  it("looks only where a layer holds an entry, so an unchanged tree costs nothing however large", () => {
    for (let i = 0; i < 50; i++) {
      write(base, `deep/d${i}/f.txt`, "same\n");
      write(live, `deep/d${i}/f.txt`, "same\n");
    }
    // Differs, but no layer holds it: the precondition says the trees cannot differ there.
    write(base, "untouched.txt", "a\n");
    write(live, "untouched.txt", "b\n");
    write(base, "deep/d7/f.txt", "old\n");
    write(live, "deep/d7/f.txt", "new\n");
    write(layer, "deep/d7/f.txt", "new\n");
    const names = vi.spyOn(fs, "readdirSync");
    const r = layered([layer]);
    expect(r.changes.map((c) => [c.path, c.change])).toEqual([["deep/d7/f.txt", "modified"]]);
    // Root, deep and deep/d7 of both trees and the layer: never the 49 other directories.
    expect(names.mock.calls.length).toBeLessThanOrEqual(9);
  });

  it("reports what one side alone has even where no layer names it (a deleted or replaced directory's contents)", () => {
    write(base, "gone/a.txt");
    write(base, "gone/sub/b.txt");
    write(base, "kept/old.txt");
    write(live, "kept/new.txt");
    // A whiteout or an opaque directory in the layer: only the name is there.
    fs.writeFileSync(path.join(layer, "gone"), "");
    fs.mkdirSync(path.join(layer, "kept"));
    fs.writeFileSync(path.join(layer, "kept", "new.txt"), "x\n");
    const r = layered([layer]);
    expect(r.changes.map((c) => [c.path, c.change])).toEqual([
      ["gone", "deleted"],
      ["gone/a.txt", "deleted"],
      ["gone/sub", "deleted"],
      ["gone/sub/b.txt", "deleted"],
      ["kept/new.txt", "added"],
      ["kept/old.txt", "deleted"],
    ]);
  });

  it("gives exactly the whole-tree answer when the layers hold every changed path", () => {
    for (const rel of ["a/1.txt", "a/2.txt", "b/c/3.txt", "d.txt", "e/f/g.txt"]) write(base, rel, `${rel}\n`);
    for (const rel of ["a/1.txt", "b/c/3.txt", "d.txt", "e/f/g.txt"]) write(live, rel, `${rel}\n`);
    write(live, "a/1.txt", "changed\n");
    write(live, "new/x.txt", "new\n");
    fs.chmodSync(path.join(live, "d.txt"), 0o755);
    const second = path.join(root, "layer2");
    for (const rel of ["a/1.txt", "new/x.txt"]) write(layer, rel);
    fs.writeFileSync(path.join(layer, "a", "2.txt"), "");
    write(second, "d.txt");
    expect(layered([layer, second])).toEqual(diff());
  });
});

describe("tree diff within a limit", () => {
  const limited = (entries: number, bytes: number) => treeDiff({ base, live, path: null, maxBytes: 65536, limit: { entries, bytes } });

  it("answers as without one while the work stays within it", () => {
    for (let i = 0; i < 20; i++) write(live, `d/f${i}.txt`, "0123456789\n");
    const r = limited(21, 20 * 11);
    expect(r.over_limit).toBeUndefined();
    expect(r).toEqual(diff());
  });

  it("stops with over_limit and nothing else once it would compare more entries or bytes", () => {
    for (let i = 0; i < 20; i++) write(live, `d/f${i}.txt`, "0123456789\n");
    for (const r of [limited(20, 1 << 20), limited(1000, 20 * 11 - 1)]) {
      expect(r.over_limit).toBe(true);
      expect(r.changes).toEqual([]);
      expect(r.summary.total).toBe(0);
      expect(r.patch).toBe("");
    }
  });
});
