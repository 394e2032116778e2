/**
 * Workspace content through the SDK, as the specification of issue 3: moving code in (sync
 * push), editing it without shell quoting (file write, patch apply), reading it back bounded
 * (file list/read), seeing exactly what changed (diff, and the diff → patch round trip),
 * checkpoints and roll-back (snapshots, reset), copying out (export, disk tools) — and every
 * refusal: paths that leave /workspace, hostile archives, existing export outputs.
 * Host-side fixtures (archives, git repositories) are made with python3, GNU tar and git.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createHash } from "node:crypto";
import { execFileSync, spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pyro, PyroError } from "../../src/index.js";
import { findLeaks, noLeaks, testHome, TEST_ENVIRONMENT } from "../helpers.js";

let home: string;
let pyro: Pyro;
/** Host scratch directory for seeds, archives, repositories and exports. */
let host: string;

beforeAll(() => {
  home = testHome("content");
  pyro = new Pyro({ home });
  host = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-content-host-"));
});

afterAll(async () => {
  for (const w of (await pyro.listWorkspaces()).workspaces) await pyro.deleteWorkspace(w.workspace_id);
  pyro.close();
  expect(findLeaks(home)).toEqual(noLeaks());
  fs.rmSync(host, { recursive: true, force: true });
  // The state directory's environments entry is a symlink to the shared cache; rm removes the link only.
  fs.rmSync(home, { recursive: true, force: true });
});

// ---------- helpers ----------

async function expectCode(promise: Promise<unknown>, code: string): Promise<PyroError> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err, `expected ${code}`).toBeInstanceOf(PyroError);
  expect({ code: (err as PyroError).code, message: (err as PyroError).message }).toMatchObject({ code });
  return err as PyroError;
}

/** Runs a shell command in the workspace; it must succeed. Returns stdout. */
async function sh(ws: string, command: string): Promise<string> {
  const r = await pyro.execWorkspace(ws, { command, timeoutSeconds: 60 });
  expect(r.exit_code, `${command}\n${r.stderr}`).toBe(0);
  return r.stdout;
}

/** A new directory under the host scratch directory. */
function hostDir(name: string): string {
  const dir = path.join(host, name);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/** Writes host files: { "a/b.txt": "text" }; parents created; mode 0644 unless given. */
function writeTree(root: string, files: Record<string, string | { text: string; mode: number }>): void {
  for (const [rel, spec] of Object.entries(files)) {
    const file = path.join(root, rel);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const { text, mode } = typeof spec === "string" ? { text: spec, mode: 0o644 } : spec;
    fs.writeFileSync(file, text);
    fs.chmodSync(file, mode);
  }
}

/**
 * Everything about a tree that a faithful copy must reproduce: every entry's path, type and
 * mode, symlink targets, file sizes and content hashes. The same command runs in a workspace
 * (in /workspace) and on the host (in a directory), so trees can be compared across the two.
 */
const FINGERPRINT = [
  "LC_ALL=C find . -mindepth 1 -path ./.git -prune -o \\(",
  "\\( -type f -printf '%p file %m %s\\n' \\) -o \\( -type l -printf '%p link -> %l\\n' \\) -o \\( -type d -printf '%p dir %m\\n' \\) -o -printf '%p %y %m\\n'",
  "\\) | LC_ALL=C sort;",
  "LC_ALL=C find . -path ./.git -prune -o -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum",
].join(" ");

async function fingerprint(ws: string): Promise<string> {
  return sh(ws, FINGERPRINT);
}

function hostFingerprint(dir: string): string {
  return execFileSync("sh", ["-c", FINGERPRINT], { cwd: dir, encoding: "utf8" });
}

/** Builds a tar on the host with python3's tarfile, so entries can be anything a hostile archive holds. */
function pythonTar(file: string, script: string): string {
  const program = `import tarfile, io, sys\nout = sys.argv[1]\nmode = "w:gz" if out.endswith((".tgz", ".tar.gz")) else "w"\nwith tarfile.open(out, mode, format=tarfile.GNU_FORMAT) as tf:\n    def add(name, data=b"ok\\n", **kw):\n        ti = tarfile.TarInfo(name)\n        ti.size = len(data)\n        ti.mode = 0o644\n        for k, v in kw.items(): setattr(ti, k, v)\n        tf.addfile(ti, io.BytesIO(data) if ti.isreg() else None)\n${script
    .split("\n")
    .map((l) => `    ${l}`)
    .join("\n")}\n`;
  const r = spawnSync("python3", ["-c", program, file], { encoding: "utf8" });
  expect(r.status, r.stderr).toBe(0);
  return file;
}

async function processes(ws: string): Promise<string> {
  return sh(ws, "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done");
}

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

// ---------- sync push ----------

describe("sync push", () => {
  let ws: string;
  let src: string;

  beforeAll(async () => {
    src = hostDir("sync-src");
    writeTree(src, { "lib/a.txt": "A\n", "lib/deep/b.txt": "B\n", "tool.sh": { text: "#!/bin/sh\necho tool\n", mode: 0o755 } });
    fs.symlinkSync("lib/a.txt", path.join(src, "link"));
    ws = (await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "sync" })).workspace_id;
    await pyro.writeWorkspaceFile(ws, "vendor/keep.txt", { text: "kept\n" });
    await pyro.writeWorkspaceFile(ws, "vendor/lib/a.txt", { text: "old A that sync replaces\n" });
    await sh(ws, "ln -s /etc /workspace/etclink && mkdir -p inside && ln -s inside insidelink && echo file > plainfile");
  });

  it("copies a host directory into /workspace under --dest, merging with what is there", async () => {
    const r = await pyro.pushWorkspaceSync("sync", src, { dest: "vendor" });
    expect(r).toEqual({ workspace_id: ws, source: src, kind: "directory", dest: "/workspace/vendor", entries: 6, bytes: expect.any(Number) });
    expect(await sh(ws, "cd vendor && cat keep.txt lib/a.txt lib/deep/b.txt link && ./tool.sh && readlink link")).toBe("kept\nA\nB\nA\ntool\nlib/a.txt\n");
  });

  it("imports a .tar, a .tar.gz and a .tgz, to a relative, an absolute and a symlinked-inside destination", async () => {
    const tarFile = path.join(host, "sync.tar");
    const tarGz = path.join(host, "sync.tar.gz");
    const tgz = path.join(host, "sync.tgz");
    execFileSync("tar", ["-cf", tarFile, "-C", src, "."]);
    execFileSync("tar", ["-czf", tarGz, "-C", src, "."]);
    execFileSync("tar", ["-czf", tgz, "-C", src, "."]);
    const fromTar = await pyro.pushWorkspaceSync(ws, tarFile, { dest: "from-tar" });
    expect(fromTar).toMatchObject({ kind: "tar", dest: "/workspace/from-tar", entries: 6 });
    const fromTarGz = await pyro.pushWorkspaceSync(ws, tarGz, { dest: "/workspace/from-tar-gz/x" });
    expect(fromTarGz).toMatchObject({ kind: "tar.gz", dest: "/workspace/from-tar-gz/x", entries: 6 });
    const fromTgz = await pyro.pushWorkspaceSync(ws, tgz, { dest: "insidelink" });
    expect(fromTgz).toMatchObject({ kind: "tar.gz", entries: 6 });
    for (const dir of ["from-tar", "from-tar-gz/x", "inside"]) {
      expect(await sh(ws, `cd ${dir} && cat lib/a.txt lib/deep/b.txt && ./tool.sh && readlink link && stat -c %a tool.sh`)).toBe("A\nB\ntool\nlib/a.txt\n755\n");
    }
  });

  it("imports into /workspace itself when no destination is given", async () => {
    const one = hostDir("sync-one");
    writeTree(one, { "top-level.txt": "top\n" });
    expect((await pyro.pushWorkspaceSync(ws, one)).dest).toBe("/workspace");
    expect((await pyro.readWorkspaceFile(ws, "top-level.txt")).content).toBe("top\n");
  });

  it.each([
    ["a '..' path", "../outside"],
    ["an absolute path elsewhere", "/etc"],
    ["a path through a symlink to /etc", "etclink"],
    ["a path below a symlink to /etc", "etclink/sub"],
  ])("refuses %s as destination and writes nothing", async (_what, dest) => {
    const before = await fingerprint(ws);
    await expectCode(pyro.pushWorkspaceSync(ws, src, { dest }), "path_outside_workspace");
    expect(await fingerprint(ws)).toBe(before);
    expect(await sh(ws, "ls /etc/lib /etc/sub /outside 2>&1 || true")).not.toMatch(/a\.txt|deep/);
  });

  it("refuses a destination that is an existing file, as a bad argument, and writes nothing", async () => {
    const before = await fingerprint(ws);
    const err = await expectCode(pyro.pushWorkspaceSync(ws, src, { dest: "plainfile" }), "invalid_argument");
    expect(err.message).toMatch(/not a directory/);
    expect(await fingerprint(ws)).toBe(before);
  });

  it("refuses a missing source and a file that is not an archive", async () => {
    await expectCode(pyro.pushWorkspaceSync(ws, path.join(host, "no-such-dir")), "seed_path_not_found");
    const notArchive = path.join(host, "notes.txt");
    fs.writeFileSync(notArchive, "hello");
    await expectCode(pyro.pushWorkspaceSync(ws, notArchive), "seed_path_invalid");
    const broken = path.join(host, "broken.tgz");
    fs.writeFileSync(broken, "this is not gzip data");
    await expectCode(pyro.pushWorkspaceSync(ws, broken), "seed_path_invalid");
  });
});

describe("hostile archives are refused before anything is written", () => {
  let ws: string;
  let archives: string;

  beforeAll(async () => {
    archives = hostDir("hostile");
    ws = (await pyro.createWorkspace({ environment: TEST_ENVIRONMENT })).workspace_id;
    await pyro.writeWorkspaceFile(ws, "existing.txt", { text: "before\n" });
  });

  // Each archive starts with a harmless entry, so a refusal that came after extracting would show.
  it.each([
    ["a '..' entry", "dotdot.tar", 'add("../evil.txt")', "../evil.txt"],
    ["a '..' entry hidden in the middle of a path", "middle.tar", 'add("a/../../evil.txt")', "a/../../evil.txt"],
    ["a '..' entry in a .tgz", "dotdot.tgz", 'add("../evil.txt")', "../evil.txt"],
    ["an absolute entry", "absolute.tar", 'add("/etc/evil.txt")', "/etc/evil.txt"],
    ["a symlink to an absolute path", "symlink-abs.tar", 'add("escape", type=tarfile.SYMTYPE, linkname="/etc", size=0)', "escape"],
    ["a symlink climbing out of the destination", "symlink-up.tar", 'add("sub/up", type=tarfile.SYMTYPE, linkname="../../..", size=0)', "sub/up"],
    ["a hard link to a path outside the archive", "hardlink-up.tar", 'add("hl", type=tarfile.LNKTYPE, linkname="../../etc/passwd", size=0)', "hl"],
    ["a hard link to an absolute path", "hardlink-abs.tar", 'add("hl", type=tarfile.LNKTYPE, linkname="/etc/passwd", size=0)', "hl"],
    ["a character device", "chardev.tar", 'add("null", type=tarfile.CHRTYPE, devmajor=1, devminor=3, size=0)', "null"],
    ["a block device", "blockdev.tar", 'add("disk", type=tarfile.BLKTYPE, devmajor=8, devminor=0, size=0)', "disk"],
    ["a FIFO", "fifo.tar", 'add("pipe", type=tarfile.FIFOTYPE, size=0)', "pipe"],
  ])("refuses %s with archive_unsafe_entry naming it, and /workspace is unchanged", async (_what, name, entry, shown) => {
    const file = pythonTar(path.join(archives, name), `add("ok.txt")\n${entry}`);
    const before = await pyro.diffWorkspace(ws);
    const err = await expectCode(pyro.pushWorkspaceSync(ws, file, { dest: "imported" }), "archive_unsafe_entry");
    expect(err.details).toEqual({ entry: shown });
    expect(await pyro.diffWorkspace(ws)).toEqual(before);
    await expectCode(pyro.listWorkspaceFiles(ws, { path: "imported" }), "path_not_found");
    expect((await pyro.readWorkspaceFile(ws, "existing.txt")).content).toBe("before\n");
  });

  it("refuses an archive with more than 200 000 entries (an entry-count bomb) with archive_too_large", async () => {
    // 200 001 empty-file headers: 100 MB of tar, a few hundred KB gzipped.
    const file = path.join(archives, "bomb.tgz");
    const r = spawnSync("python3", ["-c", 'import tarfile, gzip, sys\nh = tarfile.TarInfo("f").tobuf(format=tarfile.USTAR_FORMAT)\nopen(sys.argv[1], "wb").write(gzip.compress(h * 200001 + b"\\0" * 1024, 1))', file]);
    expect(r.status, String(r.stderr)).toBe(0);
    const before = await pyro.diffWorkspace(ws);
    const err = await expectCode(pyro.pushWorkspaceSync(ws, file), "archive_too_large");
    expect(err.message).toMatch(/200000 entries/);
    expect(await pyro.diffWorkspace(ws)).toEqual(before);
  });

  // A 4 GiB content bomb is not tested: even gzipped, producing and scanning it takes minutes.
  // The byte limit is the same check as the entry limit (src/shared/archive.ts).
});

// ---------- paths ----------

describe("every operation refuses paths outside /workspace", () => {
  let ws: string;
  let out: string;

  beforeAll(async () => {
    out = hostDir("paths-out");
    ws = (await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "paths" })).workspace_id;
    await sh(ws, "ln -s /etc /workspace/etclink && mkdir sub && echo inside > sub/f.txt && ln -s sub innerlink");
  });

  const patchFor = (name: string) => `--- ${name}\n+++ ${name}\n@@ -1 +1 @@\n-root\n+evil\n`;
  const createPatch = (name: string) => `--- /dev/null\n+++ ${name}\n@@ -0,0 +1 @@\n+evil\n`;
  const cases: [string, string, () => Promise<unknown>][] = [
    ["file read", "../x", () => pyro.readWorkspaceFile(ws, "../x")],
    ["file read", "/etc/passwd", () => pyro.readWorkspaceFile(ws, "/etc/passwd")],
    ["file read", "/workspace/../etc/passwd", () => pyro.readWorkspaceFile(ws, "/workspace/../etc/passwd")],
    ["file read", "etclink/passwd", () => pyro.readWorkspaceFile(ws, "etclink/passwd")],
    ["file write", "../x", () => pyro.writeWorkspaceFile(ws, "../x", { text: "evil" })],
    ["file write", "/etc/pyro-evil", () => pyro.writeWorkspaceFile(ws, "/etc/pyro-evil", { text: "evil" })],
    ["file write", "etclink/pyro-evil", () => pyro.writeWorkspaceFile(ws, "etclink/pyro-evil", { text: "evil" })],
    ["file write", "etclink/new-dir/pyro-evil", () => pyro.writeWorkspaceFile(ws, "etclink/new-dir/pyro-evil", { text: "evil" })],
    ["file list", "..", () => pyro.listWorkspaceFiles(ws, { path: ".." })],
    ["file list", "/etc", () => pyro.listWorkspaceFiles(ws, { path: "/etc" })],
    ["file list", "etclink", () => pyro.listWorkspaceFiles(ws, { path: "etclink" })],
    ["export", "../x", () => pyro.exportWorkspace(ws, "../x", { outputPath: path.join(out, "a") })],
    ["export", "/etc/passwd", () => pyro.exportWorkspace(ws, "/etc/passwd", { outputPath: path.join(out, "b") })],
    ["export", "etclink/passwd", () => pyro.exportWorkspace(ws, "etclink/passwd", { outputPath: path.join(out, "c") })],
    ["export", "etclink", () => pyro.exportWorkspace(ws, "etclink", { outputPath: path.join(out, "d") })],
    ["patch apply (modify)", "../etc/passwd", () => pyro.applyWorkspacePatch(ws, { patch: patchFor("../etc/passwd") })],
    ["patch apply (modify)", "/etc/passwd", () => pyro.applyWorkspacePatch(ws, { patch: patchFor("/etc/passwd") })],
    ["patch apply (modify)", "etclink/passwd", () => pyro.applyWorkspacePatch(ws, { patch: patchFor("etclink/passwd") })],
    ["patch apply (create)", "b/etclink/pyro-evil", () => pyro.applyWorkspacePatch(ws, { patch: createPatch("b/etclink/pyro-evil") })],
    ["sync push --dest", "../x", () => pyro.pushWorkspaceSync(ws, out, { dest: "../x" })],
    ["sync push --dest", "/etc", () => pyro.pushWorkspaceSync(ws, out, { dest: "/etc" })],
    ["sync push --dest", "etclink", () => pyro.pushWorkspaceSync(ws, out, { dest: "etclink" })],
    ["diff --path", "../x", () => pyro.diffWorkspace(ws, { path: "../x" })],
    ["diff --path", "/etc", () => pyro.diffWorkspace(ws, { path: "/etc" })],
  ];

  it.each(cases)("%s refuses %s with path_outside_workspace", async (_op, _path, call) => {
    await expectCode(call(), "path_outside_workspace");
  });

  it("changed nothing inside the sandbox's /etc or on the host while refusing", async () => {
    expect(await sh(ws, "ls /etc | grep -c pyro-evil || true")).toBe("0\n");
    expect(await sh(ws, "grep -c evil /etc/passwd || true")).toBe("0\n");
    expect(fs.readdirSync(out)).toEqual([]);
    expect(fs.existsSync("/etc/pyro-evil")).toBe(false);
  });

  it("follows symlinks that stay inside /workspace", async () => {
    expect((await pyro.readWorkspaceFile(ws, "innerlink/f.txt")).content).toBe("inside\n");
    await pyro.writeWorkspaceFile(ws, "innerlink/g.txt", { text: "through an inside link\n" });
    expect(await sh(ws, "cat sub/g.txt")).toBe("through an inside link\n");
    // Listing a link to a directory lists the directory, as `ls innerlink` does.
    expect((await pyro.listWorkspaceFiles(ws, { path: "innerlink" })).entries.map((e) => e.path)).toEqual(["/workspace/innerlink/f.txt", "/workspace/innerlink/g.txt"]);
  });

});

// ---------- files ----------

describe("file list", () => {
  it("lists entries with type, size, mode, mtime and symlink target, recursively and bounded", async () => {
    const ws = (await pyro.createWorkspace({ environment: TEST_ENVIRONMENT })).workspace_id;
    await sh(ws, "mkdir -p d/e && printf 12345 > d/five && chmod 600 d/five && ln -s five d/link && mkfifo d/pipe && touch d/e/deep");
    const top = await pyro.listWorkspaceFiles(ws, { path: "d" });
    expect(top).toMatchObject({ workspace_id: ws, path: "/workspace/d", recursive: false, count: 4, truncated: false, total_seen: 4 });
    expect(top.entries.map((e) => [e.path, e.type, e.type === "directory" ? null : e.size, e.mode, e.link_target])).toEqual([
      ["/workspace/d/e", "directory", null, "0755", null],
      ["/workspace/d/five", "file", 5, "0600", null],
      ["/workspace/d/link", "symlink", 4, "0777", "five"],
      ["/workspace/d/pipe", "fifo", 0, "0644", null],
    ]);
    expect(Date.parse(top.entries[1]!.mtime)).toBeGreaterThan(Date.now() - 600_000);

    const all = await pyro.listWorkspaceFiles(ws, { recursive: true });
    expect(all.entries.map((e) => e.path)).toEqual(["/workspace/d", "/workspace/d/e", "/workspace/d/e/deep", "/workspace/d/five", "/workspace/d/link", "/workspace/d/pipe"]);

    const bounded = await pyro.listWorkspaceFiles(ws, { recursive: true, maxEntries: 2 });
    expect(bounded).toMatchObject({ count: 2, truncated: true, total_seen: 6 });

    const one = await pyro.listWorkspaceFiles(ws, { path: "d/five" });
    expect(one.entries).toEqual([expect.objectContaining({ path: "/workspace/d/five", type: "file", size: 5 })]);
    await expectCode(pyro.listWorkspaceFiles(ws, { path: "missing" }), "path_not_found");
    await expectCode(pyro.listWorkspaceFiles(ws, { maxEntries: 0 }), "invalid_argument");
  });
});

describe("file read", () => {
  let ws: string;

  beforeAll(async () => {
    ws = (await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "reader" })).workspace_id;
  });

  it("reads 65536 bytes by default, says it truncated, and offset paging reconstructs the whole file", async () => {
    const text = Array.from({ length: 4000 }, (_, i) => `line ${i}: é ü 漢字 😀 ${"x".repeat(i % 17)}\n`).join("");
    await pyro.writeWorkspaceFile(ws, "big.txt", { text });
    const size = Buffer.byteLength(text);
    expect(size).toBeGreaterThan(65536 * 2);

    const first = await pyro.readWorkspaceFile(ws, "big.txt");
    expect(first).toMatchObject({ path: "/workspace/big.txt", size, offset: 0, truncated: true, binary: false });
    expect(first.bytes_returned).toBeLessThanOrEqual(65536);
    expect(first.bytes_returned).toBeGreaterThan(65536 - 4);
    expect(first.next_offset).toBe(first.bytes_returned);
    expect(first.continue_with).toContain(`--offset ${first.next_offset}`);
    expect(first.continue_with).toContain(`offset=${first.next_offset}`);

    // Odd page sizes land inside multi-byte characters again and again.
    let offset = 0;
    let pages = 0;
    let whole = "";
    for (;;) {
      const page = await pyro.readWorkspaceFile(ws, "big.txt", { offset, maxBytes: 7777 });
      expect(page.offset).toBe(offset);
      expect(Buffer.byteLength(page.content)).toBe(page.bytes_returned);
      expect(page.content).not.toContain("\uFFFD");
      whole += page.content;
      pages++;
      if (page.next_offset === null) {
        expect(page.truncated).toBe(false);
        expect(page.continue_with).toBeNull();
        break;
      }
      expect(page.truncated).toBe(true);
      offset = page.next_offset;
    }
    expect(whole).toBe(text);
    expect(pages).toBeGreaterThan(size / 7777 - 1);
  });

  it("never splits a UTF-8 character at a page boundary", async () => {
    await pyro.writeWorkspaceFile(ws, "utf8.txt", { text: "ab€cd😀" });
    const first = await pyro.readWorkspaceFile(ws, "utf8.txt", { maxBytes: 3 });
    expect(first).toMatchObject({ content: "ab", bytes_returned: 2, next_offset: 2, truncated: true });
    const second = await pyro.readWorkspaceFile(ws, "utf8.txt", { offset: 2, maxBytes: 3 });
    expect(second).toMatchObject({ content: "€", bytes_returned: 3, next_offset: 5 });
    const third = await pyro.readWorkspaceFile(ws, "utf8.txt", { offset: 5, maxBytes: 5 });
    expect(third).toMatchObject({ content: "cd", next_offset: 7 });
    const last = await pyro.readWorkspaceFile(ws, "utf8.txt", { offset: 7, maxBytes: 4 });
    expect(last).toMatchObject({ content: "😀", next_offset: null, truncated: false });
  });

  it("reports binary files without dumping them", async () => {
    await sh(ws, "printf 'ELF\\000\\001\\002binary' > blob.bin && printf 'caf\\351 latin1' > latin1.txt");
    for (const file of ["blob.bin", "latin1.txt"]) {
      const r = await pyro.readWorkspaceFile(ws, file);
      expect(r).toMatchObject({ binary: true, content: "", bytes_returned: 0, next_offset: null, truncated: false });
      expect(r.size).toBeGreaterThan(0);
    }
  });

  it("reads an empty file and past the end as empty content", async () => {
    await sh(ws, ": > empty.txt && echo short > short.txt");
    expect(await pyro.readWorkspaceFile(ws, "empty.txt")).toMatchObject({ size: 0, content: "", next_offset: null, truncated: false, binary: false });
    expect(await pyro.readWorkspaceFile(ws, "short.txt", { offset: 100 })).toMatchObject({ size: 6, content: "", next_offset: null });
  });

  it("refuses directories, missing files and bad budgets", async () => {
    await sh(ws, "mkdir -p adir && mkfifo apipe");
    await expectCode(pyro.readWorkspaceFile(ws, "adir"), "invalid_argument");
    await expectCode(pyro.readWorkspaceFile(ws, "apipe"), "invalid_argument");
    await expectCode(pyro.readWorkspaceFile(ws, "nope.txt"), "path_not_found");
    await expectCode(pyro.readWorkspaceFile(ws, "short.txt", { maxBytes: 8 * 1024 * 1024 + 1 }), "invalid_argument");
    await expectCode(pyro.readWorkspaceFile(ws, "short.txt", { maxBytes: 0 }), "invalid_argument");
    await expectCode(pyro.readWorkspaceFile(ws, "short.txt", { offset: -1 }), "invalid_argument");
  });

  it("does not count as activity", async () => {
    const before = (await pyro.statusWorkspace(ws)).last_activity_at;
    await pyro.readWorkspaceFile(ws, "short.txt");
    await pyro.listWorkspaceFiles(ws);
    expect((await pyro.statusWorkspace(ws)).last_activity_at).toBe(before);
  });
});

describe("file write", () => {
  let ws: string;

  beforeAll(async () => {
    ws = (await pyro.createWorkspace({ environment: TEST_ENVIRONMENT })).workspace_id;
  });

  it("creates a file and its parent directories, with text that needs no shell quoting", async () => {
    const text = "it's \"quoted\" $HOME `cmd` \\n\n<<EOF\n";
    const r = await pyro.writeWorkspaceFile(ws, "new/deeper/file.txt", { text });
    expect(r).toEqual({ workspace_id: ws, path: "/workspace/new/deeper/file.txt", bytes_written: Buffer.byteLength(text), created: true });
    expect((await pyro.readWorkspaceFile(ws, "/workspace/new/deeper/file.txt")).content).toBe(text);
    expect(await sh(ws, "stat -c '%a %F' new new/deeper new/deeper/file.txt")).toBe("755 directory\n755 directory\n644 regular file\n");
  });

  it("sets the mode when asked and keeps the existing mode otherwise", async () => {
    await pyro.writeWorkspaceFile(ws, "run.sh", { text: "#!/bin/sh\necho ran\n", mode: "0755" });
    expect(await sh(ws, "./run.sh && stat -c %a run.sh")).toBe("ran\n755\n");
    await pyro.writeWorkspaceFile(ws, "run.sh", { text: "#!/bin/sh\necho again\n" });
    expect(await sh(ws, "./run.sh && stat -c %a run.sh")).toBe("again\n755\n");
    await pyro.writeWorkspaceFile(ws, "private.txt", { text: "p", mode: 0o600 });
    expect(await sh(ws, "stat -c %a private.txt")).toBe("600\n");
    await expectCode(pyro.writeWorkspaceFile(ws, "bad-mode.txt", { text: "x", mode: "rwx" }), "invalid_argument");
    await expectCode(pyro.writeWorkspaceFile(ws, "bad-mode.txt", { text: "x", mode: "999" }), "invalid_argument");
    await expectCode(pyro.readWorkspaceFile(ws, "bad-mode.txt"), "path_not_found");
  });

  it("replaces a file completely and atomically: a concurrent reader sees the old or the new content, never a mix", async () => {
    const a = "a".repeat(300_000);
    const b = "b".repeat(100_000);
    await pyro.writeWorkspaceFile(ws, "atomic.txt", { text: a });
    const reader = pyro.execWorkspace(ws, { command: "while [ ! -e stop ]; do sha256sum < atomic.txt; done | sort | uniq -c", timeoutSeconds: 60 });
    for (let i = 0; i < 20; i++) {
      const r = await pyro.writeWorkspaceFile(ws, "atomic.txt", { text: i % 2 ? a : b });
      expect(r.created).toBe(false);
    }
    await pyro.writeWorkspaceFile(ws, "stop", { text: "" });
    const seen = (await reader).stdout
      .trim()
      .split("\n")
      .map((l) => l.trim().split(/\s+/)[1]);
    expect(seen.length).toBeGreaterThan(0);
    for (const hash of seen) expect([sha256(a), sha256(b)]).toContain(hash);

    // A shorter text replaces a longer one entirely (no stale tail), and no temporary file is left.
    await pyro.writeWorkspaceFile(ws, "atomic.txt", { text: "short\n" });
    expect(await pyro.readWorkspaceFile(ws, "atomic.txt")).toMatchObject({ size: 6, content: "short\n" });
    expect(await sh(ws, "ls -A | grep -c pyro || true")).toBe("0\n");
  });

  it("refuses to replace a directory, or /workspace itself", async () => {
    await sh(ws, "mkdir -p adir && echo keep > adir/inner");
    await expectCode(pyro.writeWorkspaceFile(ws, "adir", { text: "x" }), "invalid_argument");
    await expectCode(pyro.writeWorkspaceFile(ws, ".", { text: "x" }), "invalid_argument");
    expect(await sh(ws, "cat adir/inner")).toBe("keep\n");
  });

  it("refuses content over the 16 MiB frame budget", async () => {
    await expectCode(pyro.writeWorkspaceFile(ws, "huge.txt", { text: "x".repeat(16 * 1024 * 1024) }), "invalid_argument");
    await expectCode(pyro.readWorkspaceFile(ws, "huge.txt"), "path_not_found");
  });
});

// ---------- patch apply ----------

describe("patch apply", () => {
  const seedFiles = {
    "src/app.py": Array.from({ length: 30 }, (_, i) => `line ${i + 1}\n`).join(""),
    "src/old.py": "print('old')\n",
    "run.sh": "#!/bin/sh\necho run\n",
    "notes.txt": "no newline at the end",
    "keep.txt": "untouched\n",
  };
  let seed: string;
  let repo: string;
  let gitPatch: string;

  beforeAll(() => {
    seed = hostDir("patch-seed");
    writeTree(seed, seedFiles);
    // A real git repository on the host: commit the seed, edit, and let git write the patch.
    repo = hostDir("patch-repo");
    writeTree(repo, seedFiles);
    const git = (...args: string[]) => execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@t", "-c", "core.fileMode=true", ...args], { cwd: repo, encoding: "utf8" });
    git("init", "-q");
    git("add", "-A");
    git("commit", "-qm", "seed");
    const app = seedFiles["src/app.py"].replace("line 2\n", "line 2 changed\n").replace("line 25\n", "line 25\nline 25b added\n");
    writeTree(repo, { "src/app.py": app, "src/new/added.py": "print('new')\n", "notes.txt": "no newline at the end, edited" });
    fs.rmSync(path.join(repo, "src/old.py"));
    fs.chmodSync(path.join(repo, "run.sh"), 0o755);
    git("add", "-A");
    gitPatch = git("diff", "--cached");
    expect(gitPatch).toContain("old mode 100644");
    expect(gitPatch).toContain("deleted file mode");
    expect(gitPatch).toContain("new file mode");
    expect(gitPatch).toContain("\\ No newline at end of file");
  });

  it("applies a git diff with modifications, a new file, a deletion and a mode change, giving git's tree", async () => {
    const ws = (await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, seedPath: seed })).workspace_id;
    const r = await pyro.applyWorkspacePatch(ws, { patch: gitPatch });
    expect(r.files_changed).toBe(5);
    expect([...r.files].sort((x, y) => x.path.localeCompare(y.path))).toEqual([
      { path: "/workspace/notes.txt", action: "modified", hunks: 1 },
      { path: "/workspace/run.sh", action: "mode_changed", hunks: 0 },
      { path: "/workspace/src/app.py", action: "modified", hunks: 2 },
      { path: "/workspace/src/new/added.py", action: "created", hunks: 1 },
      { path: "/workspace/src/old.py", action: "deleted", hunks: 1 },
    ]);
    expect(await fingerprint(ws)).toBe(hostFingerprint(repo));
  });

  it("changes nothing when one hunk fails, and names the file, the hunk, and the expected and actual lines", async () => {
    const ws = (await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, seedPath: seed })).workspace_id;
    await pyro.writeWorkspaceFile(ws, "src/app.py", { text: seedFiles["src/app.py"].replace("line 24\n", "line 24 edited meanwhile\n") });
    const before = await fingerprint(ws);
    const err = await expectCode(pyro.applyWorkspacePatch(ws, { patch: gitPatch }), "patch_failed");
    expect(err.details).toMatchObject({ file: "src/app.py", hunk: 2, hunk_header: expect.stringMatching(/^@@ -2\d,6 \+2\d,7 @@$/) });
    expect(err.details!.expected).toContain("line 24");
    expect(err.details!.actual).toContain("line 24 edited meanwhile");
    expect(err.message).toMatch(/src\/app\.py: hunk 2 of 2/);
    // The other files of the patch (earlier and later in it) were not touched either.
    expect(await fingerprint(ws)).toBe(before);
  });

  it("applies a `diff -u` patch without a/ and b/ prefixes", async () => {
    const ws = (await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, seedPath: seed })).workspace_id;
    const dir = hostDir("diff-u");
    writeTree(dir, { "keep.txt.orig": "untouched\n", "keep.txt": "untouched\nand one more line\n" });
    const r = spawnSync("diff", ["-u", "keep.txt.orig", "keep.txt"], { cwd: dir, encoding: "utf8" });
    expect(r.status).toBe(1);
    const patch = r.stdout;
    expect(patch).toMatch(/^--- keep\.txt\.orig\t.*\n\+\+\+ keep\.txt\t/);
    const applied = await pyro.applyWorkspacePatch(ws, { patch });
    expect(applied.files).toEqual([{ path: "/workspace/keep.txt", action: "modified", hunks: 1 }]);
    expect((await pyro.readWorkspaceFile(ws, "keep.txt")).content).toBe("untouched\nand one more line\n");
  });

  it("refuses what it cannot apply exactly, changing nothing", async () => {
    const ws = (await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, seedPath: seed })).workspace_id;
    const before = await fingerprint(ws);
    const creating = "--- /dev/null\n+++ b/keep.txt\n@@ -0,0 +1 @@\n+again\n";
    const missing = "--- a/missing.txt\n+++ b/missing.txt\n@@ -1 +1 @@\n-a\n+b\n";
    const binary = "diff --git a/x.bin b/x.bin\nnew file mode 100644\nindex 0000000..1111111\nBinary files /dev/null and b/x.bin differ\n";
    for (const patch of [creating, missing, binary, "this is not a patch\n"]) {
      await expectCode(pyro.applyWorkspacePatch(ws, { patch }), "patch_failed");
    }
    await expectCode(pyro.applyWorkspacePatch(ws, { patch: "" }), "invalid_argument");
    expect(await fingerprint(ws)).toBe(before);
  });
});

// ---------- export ----------

describe("export", () => {
  let ws: string;
  let out: string;

  beforeAll(async () => {
    out = hostDir("export-out");
    ws = (await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "exporter" })).workspace_id;
    await sh(
      ws,
      [
        "mkdir -p tree/sub emptydir",
        "echo app > tree/app.py && chmod 750 tree/app.py && touch -d '2001-02-03 04:05:06' tree/app.py",
        "echo deep > tree/sub/deep.txt",
        "ln -s app.py tree/inside-link",
        "ln -s /etc tree/etc-link",
        "ln -s ../outside.txt tree/up-link && echo outside > outside.txt",
        "mkfifo tree/pipe",
      ].join(" && "),
    );
  });

  it("copies one file to the host with its content, mode and modification time", async () => {
    const target = path.join(out, "app.py");
    const r = await pyro.exportWorkspace(ws, "tree/app.py", { outputPath: target });
    expect(r).toEqual({ workspace_id: ws, workspace_path: "/workspace/tree/app.py", output_path: target, kind: "file", files: 1, directories: 0, symlinks: 0, bytes: 4, skipped: [], stripped: [], note: null, contains_secret_values: false });
    expect(fs.readFileSync(target, "utf8")).toBe("app\n");
    const st = fs.statSync(target);
    expect(st.mode & 0o777).toBe(0o750);
    expect(st.mtime.getUTCFullYear()).toBe(2001);
  });

  it("copies a directory, keeps symlinks inside it, and skips and reports a link to /etc, a link out of the tree and a FIFO", async () => {
    const target = path.join(out, "tree");
    const r = await pyro.exportWorkspace(ws, "tree", { outputPath: target });
    expect(r).toMatchObject({ kind: "directory", files: 2, directories: 2, symlinks: 1, bytes: 9 });
    expect([...r.skipped].sort((x, y) => x.path.localeCompare(y.path))).toEqual([
      { path: "/workspace/tree/etc-link", reason: expect.stringContaining("/etc") },
      { path: "/workspace/tree/pipe", reason: expect.stringMatching(/FIFO/) },
      { path: "/workspace/tree/up-link", reason: expect.stringContaining("outside the exported tree") },
    ]);
    expect(fs.readdirSync(target).sort()).toEqual(["app.py", "inside-link", "sub"]);
    expect(fs.readlinkSync(path.join(target, "inside-link"))).toBe("app.py");
    expect(fs.readFileSync(path.join(target, "sub", "deep.txt"), "utf8")).toBe("deep\n");
  });

  it("exports the whole of /workspace", async () => {
    const target = path.join(out, "all");
    const r = await pyro.exportWorkspace(ws, ".", { outputPath: target });
    expect(r.workspace_path).toBe("/workspace");
    expect(fs.readdirSync(target).sort()).toEqual(["emptydir", "outside.txt", "tree"]);
  });

  it("refuses an existing output without force, and replaces it with force", async () => {
    const target = path.join(out, "existing.txt");
    fs.writeFileSync(target, "mine\n");
    const err = await expectCode(pyro.exportWorkspace(ws, "tree/app.py", { outputPath: target }), "output_exists");
    expect(err.hint).toMatch(/force/);
    expect(fs.readFileSync(target, "utf8")).toBe("mine\n");
    await pyro.exportWorkspace(ws, "tree/app.py", { outputPath: target, force: true });
    expect(fs.readFileSync(target, "utf8")).toBe("app\n");

    const dirTarget = path.join(out, "existing-dir");
    fs.mkdirSync(dirTarget);
    fs.writeFileSync(path.join(dirTarget, "old.txt"), "old");
    await expectCode(pyro.exportWorkspace(ws, "tree/sub", { outputPath: dirTarget }), "output_exists");
    await pyro.exportWorkspace(ws, "tree/sub", { outputPath: dirTarget, force: true });
    expect(fs.readdirSync(dirTarget)).toEqual(["deep.txt"]);
  });

  it("never follows an output that is a symlink: it is refused, and with force the link itself is replaced", async () => {
    const victim = path.join(out, "victim.txt");
    fs.writeFileSync(victim, "do not touch\n");
    const link = path.join(out, "link-out");
    fs.symlinkSync(victim, link);
    await expectCode(pyro.exportWorkspace(ws, "tree/app.py", { outputPath: link }), "output_exists");
    await pyro.exportWorkspace(ws, "tree/app.py", { outputPath: link, force: true });
    expect(fs.lstatSync(link).isFile()).toBe(true);
    expect(fs.readFileSync(victim, "utf8")).toBe("do not touch\n");
  });

  it("refuses a missing path, a missing output directory, and leaves no partial output", async () => {
    await expectCode(pyro.exportWorkspace(ws, "no-such-file", { outputPath: path.join(out, "x") }), "path_not_found");
    await expectCode(pyro.exportWorkspace(ws, "tree/app.py", { outputPath: path.join(out, "no-dir", "x") }), "invalid_argument");
    expect(fs.readdirSync(out).filter((n) => n.startsWith(".pyro"))).toEqual([]);
    expect(fs.existsSync(path.join(out, "x"))).toBe(false);
  });
});

// ---------- diff ----------

describe("diff against the baseline", () => {
  let ws: string;

  beforeAll(async () => {
    const seed = hostDir("diff-seed");
    writeTree(seed, {
      "modify.txt": "one\ntwo\nthree\n",
      "delete.txt": "bye\n",
      "chmod.sh": "#!/bin/sh\n",
      "to-link.txt": "becomes a link\n",
      "nonl.txt": "no newline",
      "src/keep.py": "keep\n",
      "bin.dat": "text for now\n",
    });
    fs.mkdirSync(path.join(seed, "empty-to-delete"));
    fs.symlinkSync("modify.txt", path.join(seed, "retarget-link"));
    ws = (await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "differ", seedPath: seed })).workspace_id;
  });

  it("is empty right after create", async () => {
    expect(await pyro.diffWorkspace(ws)).toEqual({
      workspace_id: ws,
      against: "baseline",
      path: null,
      changes: [],
      changes_omitted: 0,
      summary: { added: 0, deleted: 0, modified: 0, type_changed: 0, mode_changed: 0, total: 0 },
      patch: "",
      patch_truncated: false,
      omitted_files: [],
      omitted_files_total: 0,
      continue_with: null,
      secrets_redacted: false,
    });
  });

  it("lists every kind of change; the patch carries text files and symlinks, and leaves out binary files, directories and FIFOs", async () => {
    await sh(
      ws,
      [
        "printf 'one\\n2\\nthree\\n' > modify.txt",
        "rm delete.txt && rmdir empty-to-delete",
        "chmod 755 chmod.sh",
        "rm to-link.txt && ln -s src/keep.py to-link.txt",
        "ln -sfn delete-me-not retarget-link",
        "printf 'no newline, changed' > nonl.txt",
        "echo added > added.txt && ln -s added.txt added-link",
        "mkdir -p new-empty-dir",
        "printf 'text\\000binary' > bin.dat && printf '\\000\\001\\002' > new.bin",
        "mkfifo a-fifo",
        "touch \"$(printf 'caf\\351')\"",
      ].join(" && "),
    );
    const d = await pyro.diffWorkspace(ws);
    expect(d.changes.map((c) => [c.path, c.change, c.type, c.old_type, c.binary])).toEqual([
      ["a-fifo", "added", "fifo", null, false],
      ["added-link", "added", "symlink", null, false],
      ["added.txt", "added", "file", null, false],
      ["bin.dat", "modified", "file", "file", true],
      ["caf\\xe9", "added", "file", null, false],
      ["chmod.sh", "mode_changed", "file", "file", false],
      ["delete.txt", "deleted", "file", "file", false],
      ["empty-to-delete", "deleted", "directory", "directory", false],
      ["modify.txt", "modified", "file", "file", false],
      ["new-empty-dir", "added", "directory", null, false],
      ["new.bin", "added", "file", null, true],
      ["nonl.txt", "modified", "file", "file", false],
      ["retarget-link", "modified", "symlink", "symlink", false],
      ["to-link.txt", "type_changed", "symlink", "file", false],
    ]);
    expect(d.summary).toEqual({ added: 6, deleted: 2, modified: 4, type_changed: 1, mode_changed: 1, total: 14 });
    expect(d.changes.find((c) => c.path === "chmod.sh")).toMatchObject({ old_mode: "0644", new_mode: "0755" });

    const patched = [...d.patch.matchAll(/^diff --git a\/(\S+) b\//gm)].map((m) => m[1]!).filter((n) => !n.startsWith("caf"));
    expect([...new Set(patched)].sort()).toEqual(["added-link", "added.txt", "chmod.sh", "delete.txt", "modify.txt", "nonl.txt", "retarget-link", "to-link.txt"]);
    // A name that is not UTF-8 is listed in changes but kept out of the patch (never mangled).
    expect(d.patch).not.toMatch(/^diff --git "?a\/caf/m);
    expect(d.omitted_files).toContain("caf\\xe9");
    expect(d.patch).not.toMatch(/bin\.dat|new\.bin|a-fifo|empty|GIT binary/);
    expect(d.patch).toContain("-two\n+2\n");
    expect(d.patch).toMatch(/-no newline\n\\ No newline at end of file\n\+no newline, changed\n\\ No newline at end of file\n/);
    expect(d.patch).toMatch(/diff --git a\/chmod\.sh b\/chmod\.sh\nold mode 100644\nnew mode 100755\n/);
    expect(d.patch).toMatch(/new file mode 120000\n--- \/dev\/null\n\+\+\+ b\/to-link\.txt\n@@ -0,0 \+1(,1)? @@\n\+src\/keep\.py\n\\ No newline at end of file/);
    expect(d.patch_truncated).toBe(false);
  });

  it("restricts changes and patch to --path", async () => {
    await sh(ws, "rm caf* && echo more >> src/keep.py && echo new > src/fresh.py");
    const sub = await pyro.diffWorkspace(ws, { path: "src" });
    expect(sub.path).toBe("src");
    expect(sub.changes.map((c) => [c.path, c.change])).toEqual([
      ["src/fresh.py", "added"],
      ["src/keep.py", "modified"],
    ]);
    expect([...sub.patch.matchAll(/^diff --git a\/(\S+)/gm)].map((m) => m[1])).toEqual(["src/fresh.py", "src/keep.py"]);
    const one = await pyro.diffWorkspace(ws, { path: "/workspace/src/keep.py" });
    expect(one.changes.map((c) => c.path)).toEqual(["src/keep.py"]);
  });

  it("stays within max_bytes, names the files it left out, and says how to see them", async () => {
    const d = await pyro.diffWorkspace(ws, { maxBytes: 300 });
    expect(d.patch_truncated).toBe(true);
    expect(Buffer.byteLength(d.patch)).toBeLessThanOrEqual(300);
    expect(d.omitted_files.length).toBeGreaterThan(0);
    expect(d.changes).toHaveLength((await pyro.diffWorkspace(ws)).changes.length);
    const first = d.omitted_files[0]!;
    expect(d.continue_with).toContain(`--path ${first}`);
    const followed = await pyro.diffWorkspace(ws, { path: first });
    expect(followed.patch).toContain(`b/${first}`);
    for (const name of d.omitted_files) expect(d.patch).not.toContain(`diff --git a/${name} `);
  });

  it("compares against a named snapshot instead of the baseline", async () => {
    await pyro.createSnapshot(ws, "checkpoint");
    await pyro.writeWorkspaceFile(ws, "after-checkpoint.txt", { text: "later\n" });
    const d = await pyro.diffWorkspace(ws, { snapshot: "checkpoint" });
    expect(d.against).toBe("checkpoint");
    expect(d.changes.map((c) => [c.path, c.change])).toEqual([["after-checkpoint.txt", "added"]]);
    await expectCode(pyro.diffWorkspace(ws, { snapshot: "no-such-snapshot" }), "snapshot_not_found");
  });
});

// ---------- diff → patch round trip ----------

describe("the diff of one workspace, applied as a patch, reproduces it", () => {
  let seed: string;

  beforeAll(() => {
    seed = hostDir("roundtrip-seed");
    writeTree(seed, {
      "README.md": "# project\n\nsome text\n",
      "src/app.py": Array.from({ length: 40 }, (_, i) => `def f${i}():\n    return ${i}\n`).join(""),
      "src/util.py": "import os\n",
      "scripts/run.sh": "#!/bin/sh\necho run\n",
      "scripts/tool.sh": { text: "#!/bin/sh\necho tool\n", mode: 0o755 },
      "notes.txt": "no trailing newline",
      "old.txt": "to be deleted\n",
      "to-link.txt": "file that becomes a symlink\n",
      "gone/a.txt": "a\n",
      "gone/b.txt": "b\n",
      "file2dir": "a file that becomes a directory\n",
      "dir2file/x.txt": "a directory that becomes a file\n",
    });
    fs.mkdirSync(path.join(seed, "stays-empty"));
    fs.symlinkSync("README.md", path.join(seed, "link"));
    fs.symlinkSync("src/util.py", path.join(seed, "link-to-file"));
  });

  /**
   * Seeds workspaces A and B from the same directory, changes A with `script`, applies
   * diff(A).patch to B with patch apply and to a copy of the seed with host `git apply`, and
   * checks all three trees and both diffs agree.
   */
  async function roundTrip(label: string, script: string) {
    const a = (await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, seedPath: seed })).workspace_id;
    const b = (await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, seedPath: seed })).workspace_id;
    try {
      await sh(a, script);
      const diffA = await pyro.diffWorkspace(a, { maxBytes: 1024 * 1024 });
      expect(diffA.patch_truncated).toBe(false);
      expect(diffA.changes.length).toBeGreaterThan(0);

      const treeA = await fingerprint(a);

      // The patch is what git itself accepts against the baseline …
      const copy = path.join(host, `roundtrip-git-${label}`);
      fs.cpSync(seed, copy, { recursive: true, verbatimSymlinks: true });
      const patchFile = path.join(host, `roundtrip-${label}.patch`);
      fs.writeFileSync(patchFile, diffA.patch);
      const git = spawnSync("git", ["apply", "--verbose", patchFile], { cwd: copy, encoding: "utf8" });
      expect(git.status, git.stderr).toBe(0);
      expect(hostFingerprint(copy)).toBe(treeA);

      // … and what patch apply turns into the same tree.
      await pyro.applyWorkspacePatch(b, { patch: diffA.patch });
      expect(await fingerprint(b)).toBe(treeA);
      const diffB = await pyro.diffWorkspace(b, { maxBytes: 1024 * 1024 });
      expect(diffB.changes).toEqual(diffA.changes);
      expect(diffB.patch).toBe(diffA.patch);
      return diffA;
    } finally {
      await pyro.deleteWorkspace(a);
      await pyro.deleteWorkspace(b);
    }
  }

  it("for added, modified and deleted files, mode changes, new symlinks, empty files and missing trailing newlines", async () => {
    const d = await roundTrip(
      "core",
      [
        "sed -i 's/return 3$/return 333/; s/return 37$/return 3737/' src/app.py",
        "printf 'import os\\nimport sys\\n' > src/util.py",
        "printf '# project\\n\\nsome text, edited, now without newline' > README.md",
        "printf 'no trailing newline, edited' > notes.txt",
        "echo 'echo more' >> scripts/run.sh && chmod 755 scripts/run.sh",
        "chmod 644 scripts/tool.sh",
        "rm old.txt",
        "mkdir -p new/deep && printf 'nested\\n' > new/deep/file.py && ln -s deep/file.py new/link",
        ": > empty-new.txt",
        "printf 'added without newline' > added-nonl.txt",
        "printf '#!/bin/sh\\necho hi\\n' > new/exec.sh && chmod 755 new/exec.sh",
      ].join(" && "),
    );
    expect(d.summary).toMatchObject({ deleted: 1, mode_changed: 1, type_changed: 0 });
    expect(d.summary.modified).toBe(5);
  });

  it("for a symlink pointed somewhere else", async () => {
    const d = await roundTrip("retarget", "ln -sfn src/app.py link");
    expect(d.changes.map((c) => [c.path, c.change, c.type])).toEqual([["link", "modified", "symlink"]]);
  });

  it("for a file that became a symlink and a symlink that became a file", async () => {
    await roundTrip("file-symlink", "rm to-link.txt && ln -s README.md to-link.txt && rm link-to-file && printf 'a link that became a file\\n' > link-to-file");
  });

  it("for a deleted directory of files", async () => {
    await roundTrip("deleted-dir", "rm -r gone");
  });

  it("for a file that became a directory and a directory that became a file", async () => {
    await roundTrip("file-dir", "rm file2dir && mkdir file2dir && echo inside > file2dir/child.txt && rm -r dir2file && echo now a file > dir2file");
  });

  it("reports a file whose name is not UTF-8, and keeps it out of the patch rather than mangling its name", async () => {
    const a = (await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, seedPath: seed })).workspace_id;
    try {
      await sh(a, "printf 'latin-1 name\\n' > \"$(printf 'caf\\351.txt')\" && echo ok > plain.txt");
      const d = await pyro.diffWorkspace(a);
      expect(d.changes.map((c) => c.path)).toEqual(expect.arrayContaining(["caf\\xe9.txt", "plain.txt"]));
      expect(d.patch).toContain("b/plain.txt");
      expect(d.patch).not.toContain("caf");
      expect(d.omitted_files).toContain("caf\\xe9.txt");
    } finally {
      await pyro.deleteWorkspace(a);
    }
  });
});

// ---------- snapshots and reset ----------

describe("snapshots", () => {
  let ws: string;

  beforeAll(async () => {
    const seed = hostDir("snap-seed");
    writeTree(seed, { "state.txt": "baseline\n" });
    ws = (await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "snapper", seedPath: seed })).workspace_id;
  });

  it("has a baseline from creation that cannot be replaced or deleted", async () => {
    const list = await pyro.listSnapshots(ws);
    expect(list).toMatchObject({ workspace_id: ws, count: 1 });
    expect(list.snapshots).toEqual([{ name: "baseline", created_at: expect.any(String), entries: 1, bytes: expect.any(Number), baseline: true }]);
    await expectCode(pyro.deleteSnapshot(ws, "baseline"), "invalid_argument");
    await expectCode(pyro.createSnapshot(ws, "baseline"), "invalid_argument");
    expect((await pyro.listSnapshots(ws)).count).toBe(1);
  });

  it("creates, lists oldest first, refuses duplicates and bad names, and deletes", async () => {
    await pyro.writeWorkspaceFile(ws, "state.txt", { text: "one\n" });
    const one = await pyro.createSnapshot(ws, "one");
    expect(one).toEqual({ workspace_id: ws, name: "one", created_at: expect.any(String), entries: 1, bytes: expect.any(Number), baseline: false });
    await pyro.writeWorkspaceFile(ws, "extra/two.txt", { text: "two\n" });
    const two = await pyro.createSnapshot(ws, "two");
    expect(two.entries).toBe(3);
    expect((await pyro.listSnapshots(ws)).snapshots.map((s) => s.name)).toEqual(["baseline", "one", "two"]);

    await expectCode(pyro.createSnapshot(ws, "one"), "snapshot_exists");
    await expectCode(pyro.createSnapshot(ws, "../escape"), "invalid_name");
    await expectCode(pyro.createSnapshot(ws, ".hidden"), "invalid_name");

    expect(await pyro.deleteSnapshot(ws, "one")).toEqual({ workspace_id: ws, name: "one", deleted: true });
    expect((await pyro.listSnapshots(ws)).snapshots.map((s) => s.name)).toEqual(["baseline", "two"]);
    await expectCode(pyro.deleteSnapshot(ws, "one"), "snapshot_not_found");
    // Deleting one snapshot never affects another.
    expect((await pyro.diffWorkspace(ws, { snapshot: "two" })).changes).toEqual([]);
  });

  it("keeps a snapshot whose name ends in .json apart from the others' manifests", async () => {
    // Its own workspace: what this test finds must not spill into the others.
    const ws = (await pyro.createWorkspace({ environment: TEST_ENVIRONMENT })).workspace_id;
    await pyro.writeWorkspaceFile(ws, "state.txt", { text: "v\n" });
    await pyro.createSnapshot(ws, "v");
    await pyro.writeWorkspaceFile(ws, "state.txt", { text: "v.json\n" });
    await pyro.createSnapshot(ws, "v.json");
    expect((await pyro.listSnapshots(ws)).snapshots.map((s) => s.name)).toEqual(expect.arrayContaining(["v", "v.json"]));
    await pyro.resetWorkspace(ws, { snapshot: "v" });
    expect((await pyro.readWorkspaceFile(ws, "state.txt")).content).toBe("v\n");
    await pyro.resetWorkspace(ws, { snapshot: "v.json" });
    expect((await pyro.readWorkspaceFile(ws, "state.txt")).content).toBe("v.json\n");
  });

  it("never lists, diffs against or resets to a snapshot whose copy was interrupted, and cleans it up on the next create", async () => {
    // A snapshot is a layer in the pool, named by a manifest written last. What a crash leaves:
    // a half-made copy (its process gone), and a complete layer no manifest ever named.
    const dir = path.join(home, "workspace-layers");
    const crashed = path.join(dir, ".tmp-4194000-crashed");
    const orphan = path.join(dir, "0123456789abcdef");
    fs.mkdirSync(path.join(crashed, "half"), { recursive: true });
    fs.writeFileSync(path.join(crashed, "half", "file"), "partial");
    fs.mkdirSync(orphan);
    fs.writeFileSync(path.join(orphan, "state.txt"), "orphan\n");
    const names = (await pyro.listSnapshots(ws)).snapshots.map((s) => s.name);
    expect(names).not.toContain("orphan");
    expect(names.some((n) => n.includes("tmp") || n.includes("crashed"))).toBe(false);

    const before = await fingerprint(ws);
    await expectCode(pyro.resetWorkspace(ws, { snapshot: "orphan" }), "snapshot_not_found");
    await expectCode(pyro.diffWorkspace(ws, { snapshot: "orphan" }), "snapshot_not_found");
    await expectCode(pyro.deleteSnapshot(ws, "orphan"), "snapshot_not_found");
    expect(await fingerprint(ws)).toBe(before);
    expect((await pyro.statusWorkspace(ws)).state).toBe("running");

    // The name is free: a real snapshot takes it, and the interrupted copy is swept away.
    await pyro.createSnapshot(ws, "orphan");
    expect(fs.existsSync(crashed)).toBe(false);
    expect(fs.existsSync(orphan)).toBe(false);
    expect((await pyro.diffWorkspace(ws, { snapshot: "orphan" })).changes).toEqual([]);
  });
});

describe("reset", () => {
  let ws: string;
  let historyBefore: number;

  beforeAll(async () => {
    const seed = hostDir("reset-seed");
    writeTree(seed, { "app.txt": "baseline\n" });
    ws = (await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "resetter", labels: { issue: "3" }, seedPath: seed })).workspace_id;
    await pyro.writeWorkspaceFile(ws, "app.txt", { text: "checkpointed\n" });
    await pyro.writeWorkspaceFile(ws, "kept-in-snapshot.txt", { text: "k\n" });
    await pyro.createSnapshot(ws, "good");
  });

  /** Things a reset must remove: a file outside /workspace (an installed "package"), a background process, a new file. */
  async function dirty() {
    await pyro.writeWorkspaceFile(ws, "app.txt", { text: "broken\n" });
    await pyro.writeWorkspaceFile(ws, "junk.txt", { text: "junk\n" });
    await sh(ws, "printf '#!/bin/sh\\necho installed\\n' > /usr/local/bin/pyro-pkg && chmod +x /usr/local/bin/pyro-pkg && mkdir -p /opt/pkg");
    await sh(ws, "nohup sleep 4242 > /dev/null 2>&1 &");
    expect(await sh(ws, "pyro-pkg")).toBe("installed\n");
    expect(await processes(ws)).toContain("sleep 4242");
    historyBefore = (await pyro.logsWorkspace(ws)).total;
  }

  it("goes back to a named snapshot with a fresh root layer, no processes, and the same identity", async () => {
    await dirty();
    const r = await pyro.resetWorkspace("resetter", { snapshot: "good" });
    expect(r).toMatchObject({ workspace_id: ws, name: "resetter", labels: { issue: "3" }, state: "running", reset_to: "good", reset_count: 1 });
    expect(r.last_reset_at).not.toBeNull();
    expect(await sh(ws, "cat app.txt kept-in-snapshot.txt; ls")).toBe("checkpointed\nk\napp.txt\nkept-in-snapshot.txt\n");
    expect(await sh(ws, "command -v pyro-pkg || echo gone; test -e /opt/pkg && echo opt-kept || echo opt-gone")).toBe("gone\nopt-gone\n");
    expect(await processes(ws)).not.toContain("sleep 4242");
    // History is kept: the commands before the reset are still there.
    expect((await pyro.logsWorkspace(ws)).total).toBeGreaterThanOrEqual(historyBefore);
    expect((await pyro.listSnapshots(ws)).snapshots.map((s) => s.name)).toEqual(["baseline", "good"]);
  });

  it("goes back to the baseline by default, and a diff against it is then empty", async () => {
    await dirty();
    const r = await pyro.resetWorkspace(ws);
    expect(r).toMatchObject({ reset_to: "baseline", reset_count: 2, name: "resetter", labels: { issue: "3" } });
    expect(await sh(ws, "ls; cat app.txt")).toBe("app.txt\nbaseline\n");
    expect(await sh(ws, "command -v pyro-pkg || echo gone")).toBe("gone\n");
    expect(await processes(ws)).not.toContain("sleep 4242");
    expect((await pyro.diffWorkspace(ws)).changes).toEqual([]);
  });

  it("refuses an unknown snapshot before changing anything", async () => {
    const resets = (await pyro.statusWorkspace(ws)).reset_count;
    await sh(ws, "nohup sleep 4343 > /dev/null 2>&1 &");
    await pyro.writeWorkspaceFile(ws, "app.txt", { text: "work in progress\n" });
    await expectCode(pyro.resetWorkspace(ws, { snapshot: "no-such" }), "snapshot_not_found");
    expect((await pyro.readWorkspaceFile(ws, "app.txt")).content).toBe("work in progress\n");
    expect(await processes(ws)).toContain("sleep 4343");
    expect((await pyro.statusWorkspace(ws)).reset_count).toBe(resets);
  });

  it("ends running services and shells; services are listed as stopped, shells are gone", async () => {
    const svc = await pyro.startService(ws, "web", { command: "sleep 4545", readiness: { type: "command", command: "true" } });
    expect(svc.state).toBe("ready");
    const shell = await pyro.openShell(ws);
    await pyro.writeShell(ws, shell.shell_id, { input: "sleep 4646" });
    await expect.poll(async () => processes(ws)).toMatch(/sleep 4646/);
    expect(await processes(ws)).toContain("sleep 4545");

    await pyro.resetWorkspace(ws, { snapshot: "good" });
    const services = await pyro.listServices(ws);
    expect(services).toMatchObject({ count: 1, running_count: 0 });
    expect(services.services[0]).toMatchObject({ name: "web", state: "stopped", pid: null });
    expect((await pyro.listShells(ws)).count).toBe(0);
    await expectCode(pyro.readShell(ws, shell.shell_id), "shell_not_found");
    expect(await processes(ws)).not.toMatch(/sleep 45|sleep 46/);
    expect((await pyro.statusWorkspace(ws)).running_service_count).toBe(0);
  });

  it("starts a stopped workspace", async () => {
    await pyro.stopWorkspace(ws);
    const r = await pyro.resetWorkspace(ws, { snapshot: "good" });
    expect(r.state).toBe("running");
    expect((await pyro.readWorkspaceFile(ws, "app.txt")).content).toBe("checkpointed\n");
  });
});

// ---------- stopped workspaces: disk tools ----------

describe("disk tools read a stopped workspace without starting it", () => {
  let ws: string;
  let out: string;

  beforeAll(async () => {
    out = hostDir("disk-out");
    ws = (await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "disky" })).workspace_id;
    await pyro.writeWorkspaceFile(ws, "report/result.txt", { text: "result: ok\n".repeat(10) });
    await sh(ws, "ln -s /etc etclink && printf '\\000' > report/blob.bin");
  });

  it("refuses while the workspace is running, pointing at the file tools", async () => {
    for (const call of [
      () => pyro.listWorkspaceDisk(ws),
      () => pyro.readWorkspaceDisk(ws, "report/result.txt"),
      () => pyro.exportWorkspaceDisk(ws, { outputPath: path.join(out, "running.tar") }),
    ]) {
      const err = await expectCode(call(), "invalid_argument");
      expect(err.message).toMatch(/stopped/);
      expect(err.hint).toMatch(/workspace_file_list|workspace_file_read/);
    }
    expect(fs.existsSync(path.join(out, "running.tar"))).toBe(false);
  });

  it("lists, reads and exports once stopped, and the workspace stays stopped", async () => {
    await pyro.stopWorkspace(ws);
    const list = await pyro.listWorkspaceDisk(ws, { recursive: true });
    expect(list.entries.map((e) => [e.path, e.type])).toEqual([
      ["/workspace/etclink", "symlink"],
      ["/workspace/report", "directory"],
      ["/workspace/report/blob.bin", "file"],
      ["/workspace/report/result.txt", "file"],
    ]);
    const read = await pyro.readWorkspaceDisk(ws, "report/result.txt", { maxBytes: 25 });
    expect(read).toMatchObject({ content: "result: ok\nresult: ok\nres", truncated: true, next_offset: 25, size: 110 });
    expect(read.continue_with).toContain("workspace disk read");
    expect(await pyro.readWorkspaceDisk(ws, "report/blob.bin")).toMatchObject({ binary: true, content: "" });

    const tarFile = path.join(out, "disk.tar");
    const r = await pyro.exportWorkspaceDisk(ws, { outputPath: tarFile });
    expect(r).toEqual({ workspace_id: ws, output_path: tarFile, bytes: fs.statSync(tarFile).size });
    const names = execFileSync("tar", ["-tf", tarFile], { encoding: "utf8" }).split("\n").filter(Boolean).sort();
    expect(names).toEqual(["./", "./etclink", "./report/", "./report/blob.bin", "./report/result.txt"]);
    expect(execFileSync("tar", ["-xOf", tarFile, "./report/result.txt"], { encoding: "utf8" })).toBe("result: ok\n".repeat(10));
    expect((await pyro.statusWorkspace(ws)).state).toBe("stopped");
  });

  it.each([
    ["read", "../x", () => pyro.readWorkspaceDisk(ws, "../x")],
    ["read", "/etc/passwd", () => pyro.readWorkspaceDisk(ws, "/etc/passwd")],
    ["read", "etclink/passwd", () => pyro.readWorkspaceDisk(ws, "etclink/passwd")],
    ["list", "..", () => pyro.listWorkspaceDisk(ws, { path: ".." })],
    ["list", "etclink", () => pyro.listWorkspaceDisk(ws, { path: "etclink" })],
  ])("disk %s refuses %s with path_outside_workspace, as the running tools do", async (_op, _path, call) => {
    await expectCode(call(), "path_outside_workspace");
  });

  it("disk export refuses a missing output directory as a bad argument, like export", async () => {
    await expectCode(pyro.exportWorkspaceDisk(ws, { outputPath: path.join(out, "no-such-dir", "x.tar") }), "invalid_argument");
    expect(fs.existsSync(path.join(out, "no-such-dir"))).toBe(false);
  });

  it("disk export refuses an existing output unless forced", async () => {
    const tarFile = path.join(out, "disk.tar");
    const size = fs.statSync(tarFile).size;
    fs.writeFileSync(tarFile, "mine");
    await expectCode(pyro.exportWorkspaceDisk(ws, { outputPath: tarFile }), "output_exists");
    expect(fs.readFileSync(tarFile, "utf8")).toBe("mine");
    await pyro.exportWorkspaceDisk(ws, { outputPath: tarFile, force: true });
    expect(fs.statSync(tarFile).size).toBe(size);
  });

  it("while stopped, tools that need the sandbox say workspace_stopped; diff and export still work", async () => {
    await expectCode(pyro.readWorkspaceFile(ws, "report/result.txt"), "workspace_stopped");
    await expectCode(pyro.listWorkspaceFiles(ws), "workspace_stopped");
    await expectCode(pyro.writeWorkspaceFile(ws, "x.txt", { text: "x" }), "workspace_stopped");
    await expectCode(pyro.applyWorkspacePatch(ws, { patch: "--- /dev/null\n+++ b/x.txt\n@@ -0,0 +1 @@\n+x\n" }), "workspace_stopped");
    await expectCode(pyro.pushWorkspaceSync(ws, out), "workspace_stopped");
    expect((await pyro.diffWorkspace(ws)).summary.added).toBe(4);
    await pyro.exportWorkspace(ws, "report/result.txt", { outputPath: path.join(out, "result.txt") });
    expect(fs.readFileSync(path.join(out, "result.txt"), "utf8")).toBe("result: ok\n".repeat(10));
    expect((await pyro.statusWorkspace(ws)).state).toBe("stopped");
  });
});
