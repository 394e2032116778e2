/**
 * Workspace content on the other two surfaces: the `pyro` CLI spawned as a user or an agent's
 * shell would run it (`--json` results, human output with content on stdout and summaries on
 * stderr, `--text-file` / `--patch-file`, exit codes and error codes), and the MCP server
 * started as a chat host starts it (`pyro mcp serve`, official client over stdio, which checks
 * every structured result against the tool's output schema). The last part runs the same
 * operations through the SDK, the CLI and MCP against one workspace and shows they agree.
 */
import fs from "node:fs";
import path from "node:path";
import os from "node:os";
import { execFileSync, spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { Pyro } from "../../src/index.js";
import { cli, CLI, connectMcp, findLeaks, noLeaks, testHome, TEST_ENVIRONMENT } from "../helpers.js";
import { ERROR_META_KEY } from "../../src/mcp/server.js";

let home: string;
let host: string;
let seed: string;
let pyro: Pyro;
let client: Client;
let serverStderr: () => string = () => "";

const SEED_FILES: Record<string, string> = {
  "README.md": "# demo\n",
  "src/app.py": Array.from({ length: 12 }, (_, i) => `print(${i})\n`).join(""),
  "src/old.py": "print('old')\n",
};

beforeAll(async () => {
  home = testHome("content-surfaces");
  host = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-surfaces-host-"));
  seed = path.join(host, "seed");
  for (const [rel, text] of Object.entries(SEED_FILES)) {
    fs.mkdirSync(path.dirname(path.join(seed, rel)), { recursive: true });
    fs.writeFileSync(path.join(seed, rel), text);
    fs.chmodSync(path.join(seed, rel), 0o644);
  }
  pyro = new Pyro({ home });
  // The full profile: snapshots and the (secondary) disk tools are not in the default core profile.
  ({ client, stderr: serverStderr } = await connectMcp(home, ["--profile", "workspace-full"], "pyro-content-surfaces-test"));
});

afterAll(async () => {
  await client?.close();
  for (const w of (await pyro.listWorkspaces()).workspaces) await pyro.deleteWorkspace(w.workspace_id);
  pyro.close();
  expect(findLeaks(home)).toEqual(noLeaks());
  fs.rmSync(host, { recursive: true, force: true });
  // The state directory's environments entry is a symlink to the shared cache; rm removes the link only.
  fs.rmSync(home, { recursive: true, force: true });
});

// ---------- helpers ----------

/** A `--json` call that must succeed: exit 0, nothing on stderr, one JSON object on stdout. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function cliJson(args: string[]): Record<string, any> {
  const r = cli(home, [...args, "--json"]);
  expect({ code: r.code, stderr: r.stderr }, r.stdout).toEqual({ code: 0, stderr: "" });
  return r.json();
}

/** A failure under `--json`: exit 1 (2 for usage errors) and `{ error: { code, message, … } }` on stdout. */
function cliError(args: string[], code: string, exitCode = 1): { code: string; message: string; hint?: string; details?: Record<string, unknown> } {
  const r = cli(home, [...args, "--json"]);
  expect({ exit: r.code, stdout: r.stdout }).toMatchObject({ exit: exitCode });
  const error = r.json().error as { code: string; message: string };
  expect(error.code).toBe(code);
  return error;
}

/** The CLI with stdout as raw bytes (content must come back byte for byte). */
function cliRaw(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, PYRO_HOME: home }, timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr.toString("utf8") };
}

async function call<T>(name: string, args: Record<string, unknown>): Promise<{ data: T; text: string }> {
  const result = (await client.callTool({ name, arguments: args })) as CallToolResult;
  expect(result.isError ?? false, `${name} failed: ${JSON.stringify(result.content)}\n${serverStderr()}`).toBe(false);
  const text = result.content.map((c) => (c.type === "text" ? c.text : "")).join("\n");
  return { data: result.structuredContent as T, text };
}

async function callError(name: string, args: Record<string, unknown>, code: string) {
  const result = (await client.callTool({ name, arguments: args })) as CallToolResult;
  expect(result.isError, `${name} was expected to fail: ${JSON.stringify(result.structuredContent)}`).toBe(true);
  expect(result.structuredContent).toBeUndefined();
  const error = result._meta?.[ERROR_META_KEY] as { code: string; message: string; hint?: string; details?: Record<string, unknown> };
  const text = result.content.map((c) => (c.type === "text" ? c.text : "")).join("\n");
  expect(error.code).toBe(code);
  expect(text.startsWith(`[${code}] `)).toBe(true);
  return { ...error, text };
}

function hostFile(name: string, text: string): string {
  const file = path.join(host, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  return file;
}

/** A patch that edits src/app.py, adds src/new.py and deletes src/old.py, written by git. */
function gitPatch(): string {
  const repo = path.join(host, `repo-${Math.random().toString(36).slice(2)}`);
  fs.cpSync(seed, repo, { recursive: true });
  const git = (...args: string[]) => execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@t", ...args], { cwd: repo, encoding: "utf8" });
  git("init", "-q");
  git("add", "-A");
  git("commit", "-qm", "seed");
  fs.writeFileSync(path.join(repo, "src/app.py"), SEED_FILES["src/app.py"]!.replace("print(5)\n", "print('five')\n"));
  fs.writeFileSync(path.join(repo, "src/new.py"), "print('new')\n");
  fs.rmSync(path.join(repo, "src/old.py"));
  git("add", "-A");
  return git("diff", "--cached");
}

// ---------- CLI ----------

describe("workspace content from the command line", () => {
  let ws: string;

  beforeAll(() => {
    const r = cli(home, ["workspace", "create", TEST_ENVIRONMENT, "--name", "cli-content", "--seed-path", seed, "--id-only"]);
    expect(r.code, r.stderr).toBe(0);
    ws = r.stdout.trim();
  });

  it("sync push copies a host directory under --dest, in human and JSON form", () => {
    const src = path.join(host, "vendor-src");
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, "lib.txt"), "lib\n");
    const human = cli(home, ["workspace", "sync", "push", "cli-content", src, "--dest", "vendor"]);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toBe(`Copied 1 entries (${human.stdout.match(/\((.+)\)/)?.[1]}) from ${src} into /workspace/vendor\n`);
    expect(cli(home, ["workspace", "exec", ws, "--", "cat", "vendor/lib.txt"]).stdout).toBe("lib\n");
    const json = cliJson(["workspace", "sync", "push", ws, src, "--dest", "/workspace/vendor2"]);
    expect(json).toEqual({ workspace_id: ws, source: src, kind: "directory", dest: "/workspace/vendor2", entries: 1, bytes: expect.any(Number) });
  });

  it("file write takes --text or --text-file (exactly one) and --mode", () => {
    const text = `it's "quoted" $HOME \`x\` — ünïcode\n`;
    const created = cliJson(["workspace", "file", "write", ws, "notes/a.txt", "--text", text]);
    expect(created).toEqual({ workspace_id: ws, path: "/workspace/notes/a.txt", bytes_written: Buffer.byteLength(text), created: true });
    const fromFile = hostFile("script.sh", "#!/bin/sh\necho from a file\n");
    const replaced = cli(home, ["workspace", "file", "write", ws, "run.sh", "--text-file", fromFile, "--mode", "0755"]);
    expect(replaced.code, replaced.stderr).toBe(0);
    expect(replaced.stdout).toBe("Created /workspace/run.sh (27 bytes)\n");
    expect(cli(home, ["workspace", "exec", ws, "--", "./run.sh"]).stdout).toBe("from a file\n");

    expect(cliError(["workspace", "file", "write", ws, "x.txt", "--text", "a", "--text-file", fromFile], "invalid_argument").message).toMatch(/exactly one/);
    cliError(["workspace", "file", "write", ws, "x.txt"], "invalid_argument");
    cliError(["workspace", "file", "write", ws, "x.txt", "--text-file", path.join(host, "missing.txt")], "invalid_argument");
    cliError(["workspace", "file", "write", ws, "x.txt", "--text", "a", "--mode", "abc"], "invalid_argument");
  });

  it("file read prints the content on stdout, byte for byte, and the summary on stderr", () => {
    const r = cliRaw(["workspace", "file", "read", ws, "notes/a.txt"]);
    expect(r.code).toBe(0);
    expect(r.stdout.toString("utf8")).toBe(`it's "quoted" $HOME \`x\` — ünïcode\n`);
    expect(r.stderr).toMatch(/^\[\/workspace\/notes\/a\.txt: bytes 0-\d+ of \d+\]\n$/);

    // Without a trailing newline the content stays exact; the summary starts on its own line.
    cliJson(["workspace", "file", "write", ws, "nonl.txt", "--text", "no newline"]);
    const nonl = cliRaw(["workspace", "file", "read", ws, "nonl.txt"]);
    expect(nonl.stdout.toString("utf8")).toBe("no newline");
    expect(nonl.stderr).toBe("\n[/workspace/nonl.txt: bytes 0-10 of 10]\n");

    const only = cliRaw(["workspace", "file", "read", ws, "nonl.txt", "--content-only"]);
    expect({ stdout: only.stdout.toString("utf8"), stderr: only.stderr, code: only.code }).toEqual({ stdout: "no newline", stderr: "", code: 0 });
  });

  it("file read pages with --max-bytes and --offset, and tells how to read on", () => {
    const first = cliRaw(["workspace", "file", "read", ws, "src/app.py", "--max-bytes", "20"]);
    expect(first.stdout.toString("utf8")).toBe(SEED_FILES["src/app.py"]!.slice(0, 20));
    expect(first.stderr).toContain(`more: workspace file read ${ws} /workspace/src/app.py --offset 20 --max-bytes 20`);
    const second = cliJson(["workspace", "file", "read", ws, "src/app.py", "--max-bytes", "20", "--offset", "20"]);
    expect(second).toMatchObject({ offset: 20, bytes_returned: 20, next_offset: 40, truncated: true, content: SEED_FILES["src/app.py"]!.slice(20, 40) });
  });

  it("file read reports a binary file on stderr and prints nothing on stdout", () => {
    expect(cli(home, ["workspace", "exec", ws, "--shell", "printf 'a\\000b' > blob.bin"]).code).toBe(0);
    const r = cliRaw(["workspace", "file", "read", ws, "blob.bin"]);
    expect(r.code).toBe(0);
    expect(r.stdout.length).toBe(0);
    expect(r.stderr).toMatch(/blob\.bin is binary \(3 bytes\)/);
    expect(cliJson(["workspace", "file", "read", ws, "blob.bin"])).toMatchObject({ binary: true, content: "", size: 3 });
  });

  it("file list shows entries in human form and as JSON", () => {
    const human = cli(home, ["workspace", "file", "list", ws, "src"]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^Workspace path: \/workspace\/src \(recursive=no\)\n0644 file\s+110 \S+\s+\/workspace\/src\/app\.py\n0644 file\s+13 \S+\s+\/workspace\/src\/old\.py\n$/);
    const json = cliJson(["workspace", "file", "list", ws, "--recursive", "--max-entries", "2"]);
    expect(json).toMatchObject({ recursive: true, count: 2, truncated: true });
  });

  it("patch apply takes --patch-file or --patch, and a failing hunk exits 1 with patch_failed and its details", () => {
    const patchFile = hostFile("change.patch", gitPatch());
    const human = cli(home, ["workspace", "patch", "apply", ws, "--patch-file", patchFile]);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout.split("\n").filter(Boolean).sort()).toEqual(["created      /workspace/src/new.py (1 hunks)", "deleted      /workspace/src/old.py (1 hunks)", "modified     /workspace/src/app.py (1 hunks)"]);

    // The same patch again no longer applies: nothing changes, and the report says where and why.
    const again = cliError(["workspace", "patch", "apply", ws, "--patch", fs.readFileSync(patchFile, "utf8")], "patch_failed");
    expect(again.message).toMatch(/src\//);
    const hunk = "--- a/src/app.py\n+++ b/src/app.py\n@@ -5,3 +5,3 @@\n print(4)\n-print(5)\n+print(55)\n print(6)\n";
    const failed = cliError(["workspace", "patch", "apply", ws, "--patch", hunk], "patch_failed");
    expect(failed.details).toMatchObject({ file: "src/app.py", hunk: 1, expected: ["print(4)", "print(5)", "print(6)"], actual: expect.arrayContaining(["print('five')"]) });
    const human2 = cli(home, ["workspace", "patch", "apply", ws, "--patch", hunk]);
    expect(human2.code).toBe(1);
    expect(human2.stderr).toMatch(/^error \[patch_failed\]: src\/app\.py: hunk 1 of 1/);
    expect(cliJson(["workspace", "file", "read", ws, "src/app.py"]).content).toContain("print('five')\n");
  });

  it("diff prints a patch on stdout that git applies to the seed, and the summary on stderr", () => {
    const r = cli(home, ["workspace", "diff", ws]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^\[diff against baseline: \d+ added, 1 modified, 1 deleted, 0 type changed, 0 mode changed\]\n/);
    expect(r.stderr).toContain("added directory: notes");
    expect(r.stderr).toContain("(binary, not in patch): blob.bin");
    const json = cliJson(["workspace", "diff", ws]);
    expect(r.stdout).toBe(json.patch);

    const copy = path.join(host, "git-apply-copy");
    fs.cpSync(seed, copy, { recursive: true });
    fs.writeFileSync(path.join(host, "cli.diff"), r.stdout);
    const git = spawnSync("git", ["apply", path.join(host, "cli.diff")], { cwd: copy, encoding: "utf8" });
    expect(git.status, git.stderr).toBe(0);
    expect(fs.readFileSync(path.join(copy, "src/new.py"), "utf8")).toBe("print('new')\n");
    expect(fs.existsSync(path.join(copy, "src/old.py"))).toBe(false);

    const only = cliJson(["workspace", "diff", ws, "--path", "src", "--max-bytes", "100"]);
    expect(only.changes.map((c: { path: string }) => c.path)).toEqual(["src/app.py", "src/new.py", "src/old.py"]);
    expect(only.patch_truncated).toBe(true);
    expect(only.continue_with).toContain("--path src/");
  });

  it("export never overwrites without --force", () => {
    const out = path.join(host, "cli-export");
    const first = cli(home, ["workspace", "export", ws, "src", "--output", out]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^Exported \/workspace\/src to .*: 2 files, 1 directories, 0 symlinks/);
    expect(fs.readdirSync(out).sort()).toEqual(["app.py", "new.py"]);
    expect(cliError(["workspace", "export", ws, "README.md", "--output", out], "output_exists").hint).toMatch(/--force/);
    expect(cliJson(["workspace", "export", ws, "README.md", "--output", out, "--force"])).toMatchObject({ kind: "file", files: 1 });
    expect(fs.readFileSync(out, "utf8")).toBe("# demo\n");
    // --output is required: a usage error, exit 2.
    cliError(["workspace", "export", ws, "README.md"], "usage_error", 2);
  });

  it("refuses paths outside /workspace on every command with exit 1 and path_outside_workspace", () => {
    cli(home, ["workspace", "exec", ws, "--", "ln", "-s", "/etc", "etclink"]);
    cliError(["workspace", "file", "read", ws, "../etc/passwd"], "path_outside_workspace");
    cliError(["workspace", "file", "read", ws, "etclink/passwd"], "path_outside_workspace");
    cliError(["workspace", "file", "write", ws, "/etc/evil", "--text", "x"], "path_outside_workspace");
    cliError(["workspace", "file", "list", ws, "etclink"], "path_outside_workspace");
    cliError(["workspace", "sync", "push", ws, seed, "--dest", "etclink"], "path_outside_workspace");
    cliError(["workspace", "export", ws, "/etc/passwd", "--output", path.join(host, "never")], "path_outside_workspace");
    cliError(["workspace", "diff", ws, "--path", "../x"], "path_outside_workspace");
    const human = cli(home, ["workspace", "file", "read", ws, "/etc/passwd"]);
    expect({ code: human.code, stdout: human.stdout }).toEqual({ code: 1, stdout: "" });
    expect(human.stderr).toMatch(/^error \[path_outside_workspace\]: /);
  });

  it("snapshots, lists, resets and deletes by name", () => {
    expect(cliJson(["workspace", "snapshot", "create", ws, "patched"])).toMatchObject({ workspace_id: ws, name: "patched", baseline: false });
    expect(cliError(["workspace", "snapshot", "create", ws, "patched"], "snapshot_exists").message).toContain("patched");
    const list = cli(home, ["workspace", "snapshot", "list", ws]);
    expect(list.stdout).toMatch(/^baseline\s+\S+\s+\d+ entries.*\npatched\s+/);
    cliJson(["workspace", "file", "write", ws, "src/app.py", "--text", "broken\n"]);

    const reset = cli(home, ["workspace", "reset", ws, "--snapshot", "patched"]);
    expect(reset.code, reset.stderr).toBe(0);
    expect(reset.stdout).toMatch(/^Reset to patched\n/);
    expect(cliJson(["workspace", "file", "read", ws, "src/app.py"]).content).toContain("print('five')");
    const toBaseline = cliJson(["workspace", "reset", ws]);
    expect(toBaseline).toMatchObject({ workspace_id: ws, name: "cli-content", reset_to: "baseline", state: "running", reset_count: 2 });
    expect(cliJson(["workspace", "file", "read", ws, "src/app.py"]).content).toBe(SEED_FILES["src/app.py"]);

    expect(cliJson(["workspace", "snapshot", "delete", ws, "patched"])).toEqual({ workspace_id: ws, name: "patched", deleted: true });
    cliError(["workspace", "snapshot", "delete", ws, "patched"], "snapshot_not_found");
    cliError(["workspace", "reset", ws, "--snapshot", "patched"], "snapshot_not_found");
    cliError(["workspace", "snapshot", "delete", ws, "baseline"], "invalid_argument");
  });

  it("disk tools read a stopped workspace and refuse a running one", () => {
    const out = path.join(host, "cli-disk.tar");
    expect(cliError(["workspace", "disk", "list", ws], "invalid_argument").message).toMatch(/stopped/);
    expect(cli(home, ["workspace", "stop", ws]).code).toBe(0);
    expect(cliError(["workspace", "file", "read", ws, "README.md"], "workspace_stopped").hint).toMatch(/workspace_start|workspace start/);

    const list = cliJson(["workspace", "disk", "list", ws, "src", "--recursive"]);
    expect(list.entries.map((e: { path: string }) => e.path)).toEqual(["/workspace/src/app.py", "/workspace/src/old.py"]);
    const read = cliRaw(["workspace", "disk", "read", ws, "README.md", "--content-only"]);
    expect({ code: read.code, stdout: read.stdout.toString("utf8"), stderr: read.stderr }).toEqual({ code: 0, stdout: "# demo\n", stderr: "" });
    const paged = cliJson(["workspace", "disk", "read", ws, "src/app.py", "--max-bytes", "9", "--offset", "9"]);
    expect(paged).toMatchObject({ content: "print(1)\n", next_offset: 18 });

    const exported = cli(home, ["workspace", "disk", "export", ws, "--output", out]);
    expect(exported.code, exported.stderr).toBe(0);
    expect(exported.stdout).toMatch(/^Wrote .*cli-disk\.tar/);
    expect(execFileSync("tar", ["-tf", out], { encoding: "utf8" })).toContain("./src/app.py");
    cliError(["workspace", "disk", "export", ws, "--output", out], "output_exists");
    expect(cliJson(["workspace", "disk", "export", ws, "--output", out, "--force"]).output_path).toBe(out);
    expect(cliJson(["workspace", "status", ws]).state).toBe("stopped");
  });
});

// ---------- MCP ----------

describe("workspace content over MCP", () => {
  let ws: string;

  it("offers the content tools in the default core profile, and snapshots and disk tools only in the full profile", async () => {
    const full = (await client.listTools()).tools.map((t) => t.name);
    const content = ["workspace_sync_push", "workspace_file_list", "workspace_file_read", "workspace_file_write", "workspace_patch_apply", "workspace_export", "workspace_diff", "workspace_reset"];
    const fullOnly = ["snapshot_create", "snapshot_list", "snapshot_delete", "workspace_disk_list", "workspace_disk_read", "workspace_disk_export"];
    expect(full).toEqual(expect.arrayContaining([...content, ...fullOnly]));

    const { client: core } = await connectMcp(home, [], "pyro-content-core-test");
    try {
      const names = (await core.listTools()).tools.map((t) => t.name);
      expect(names).toEqual(expect.arrayContaining(content));
      expect(names.filter((n) => fullOnly.includes(n))).toEqual([]);
    } finally {
      await core.close();
    }
  });

  beforeAll(async () => {
    ws = (await call<{ workspace_id: string }>("workspace_create", { environment: TEST_ENVIRONMENT, name: "mcp-content", seed_path: seed })).data.workspace_id;
  });

  it("writes, lists and reads files, with the content as the text a model reads", async () => {
    const w = await call<{ created: boolean; path: string }>("workspace_file_write", { workspace_id: "mcp-content", path: "tool.sh", text: "#!/bin/sh\necho tool\n", mode: "0755" });
    expect(w.data).toEqual({ workspace_id: ws, path: "/workspace/tool.sh", bytes_written: 20, created: true });
    expect(w.text).toBe("created /workspace/tool.sh (20 bytes)");

    const list = await call<{ entries: { path: string; mode: string; type: string }[] }>("workspace_file_list", { workspace_id: ws, recursive: true });
    expect(list.data.entries.map((e) => [e.path, e.type])).toEqual([
      ["/workspace/README.md", "file"],
      ["/workspace/src", "directory"],
      ["/workspace/src/app.py", "file"],
      ["/workspace/src/old.py", "file"],
      ["/workspace/tool.sh", "file"],
    ]);
    expect(list.data.entries.find((e) => e.path === "/workspace/tool.sh")!.mode).toBe("0755");
    expect(list.text).toContain("/workspace/src/ (directory");

    const read = await call<{ content: string; truncated: boolean }>("workspace_file_read", { workspace_id: ws, path: "README.md" });
    expect(read.data).toMatchObject({ content: "# demo\n", truncated: false, next_offset: null });
    expect(read.text).toBe("# demo\n");

    const page = await call<{ content: string; next_offset: number }>("workspace_file_read", { workspace_id: ws, path: "src/app.py", max_bytes: 9, offset: 9 });
    expect(page.data).toMatchObject({ content: "print(1)\n", next_offset: 18, truncated: true });
    expect(page.text).toBe(`print(1)\n\n[truncated at byte 18 of 110: call again with offset=18]`);
  });

  it("applies a git patch, and reports a failing hunk as patch_failed with its details in _meta", async () => {
    const patch = gitPatch();
    const applied = await call<{ files_changed: number }>("workspace_patch_apply", { workspace_id: ws, patch });
    expect(applied.data.files_changed).toBe(3);
    const e = await callError("workspace_patch_apply", { workspace_id: ws, patch }, "patch_failed");
    expect(e.message).toMatch(/src\//);
    const hunk = "--- a/src/app.py\n+++ b/src/app.py\n@@ -5,3 +5,3 @@\n print(4)\n-print(5)\n+print(55)\n print(6)\n";
    const failed = await callError("workspace_patch_apply", { workspace_id: ws, patch: hunk }, "patch_failed");
    expect(failed.details).toMatchObject({ file: "src/app.py", hunk: 1, expected: ["print(4)", "print(5)", "print(6)"] });
  });

  it("diffs against the baseline with the patch in the text, and narrows with path", async () => {
    const d = await call<{ summary: { total: number }; patch: string; changes: { path: string; change: string }[] }>("workspace_diff", { workspace_id: ws });
    expect(d.data.changes.map((c) => [c.path, c.change])).toEqual([
      ["src/app.py", "modified"],
      ["src/new.py", "added"],
      ["src/old.py", "deleted"],
      ["tool.sh", "added"],
    ]);
    expect(d.text.startsWith("4 changes against baseline: 2 added, 1 modified, 1 deleted, 0 type changed, 0 mode changed\n")).toBe(true);
    expect(d.text).toContain(d.data.patch);
    const one = await call<{ changes: unknown[] }>("workspace_diff", { workspace_id: ws, path: "tool.sh" });
    expect(one.data.changes).toHaveLength(1);
  });

  it("syncs in and exports out, never overwriting without force", async () => {
    const src = path.join(host, "mcp-sync");
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, "data.csv"), "a,b\n");
    const pushed = await call<{ dest: string; entries: number }>("workspace_sync_push", { workspace_id: ws, source_path: src, dest: "data" });
    expect(pushed.data).toMatchObject({ dest: "/workspace/data", entries: 1, kind: "directory" });

    const out = path.join(host, "mcp-export");
    const exported = await call<{ files: number; output_path: string }>("workspace_export", { workspace_id: ws, path: "data", output_path: out });
    expect(exported.data).toMatchObject({ kind: "directory", files: 1, output_path: out, skipped: [] });
    expect(fs.readFileSync(path.join(out, "data.csv"), "utf8")).toBe("a,b\n");
    const refused = await callError("workspace_export", { workspace_id: ws, path: "data", output_path: out }, "output_exists");
    expect(refused.hint).toMatch(/force=true/);
    await call("workspace_export", { workspace_id: ws, path: "README.md", output_path: out, force: true });
    expect(fs.readFileSync(out, "utf8")).toBe("# demo\n");
  });

  it("refuses paths outside /workspace with path_outside_workspace on every tool", async () => {
    await call("workspace_exec", { workspace_id: ws, command: ["ln", "-s", "/etc", "etclink"] });
    for (const [tool, args] of [
      ["workspace_file_read", { path: "etclink/passwd" }],
      ["workspace_file_read", { path: "/etc/passwd" }],
      ["workspace_file_write", { path: "../evil", text: "x" }],
      ["workspace_file_list", { path: "etclink" }],
      ["workspace_patch_apply", { patch: "--- /dev/null\n+++ b/etclink/evil\n@@ -0,0 +1 @@\n+x\n" }],
      ["workspace_sync_push", { source_path: seed, dest: "/etc" }],
      ["workspace_export", { path: "../../etc", output_path: path.join(host, "never") }],
      ["workspace_diff", { path: "/etc" }],
    ] as const) {
      const e = await callError(tool, { workspace_id: ws, ...args }, "path_outside_workspace");
      expect(e.message.length).toBeGreaterThan(0);
    }
  });

  it("snapshots, resets and deletes snapshots", async () => {
    const snap = await call<{ name: string; baseline: boolean }>("snapshot_create", { workspace_id: ws, snapshot_name: "mcp-snap" });
    expect(snap.data).toMatchObject({ workspace_id: ws, name: "mcp-snap", baseline: false });
    await callError("snapshot_create", { workspace_id: ws, snapshot_name: "mcp-snap" }, "snapshot_exists");
    const list = await call<{ snapshots: { name: string }[] }>("snapshot_list", { workspace_id: ws });
    expect(list.data.snapshots.map((s) => s.name)).toEqual(["baseline", "mcp-snap"]);

    await call("workspace_file_write", { workspace_id: ws, path: "README.md", text: "broken\n" });
    const reset = await call<{ reset_to: string; name: string; state: string }>("workspace_reset", { workspace_id: ws, snapshot: "mcp-snap" });
    expect(reset.data).toMatchObject({ reset_to: "mcp-snap", name: "mcp-content", state: "running", reset_count: 1 });
    expect((await call<{ content: string }>("workspace_file_read", { workspace_id: ws, path: "README.md" })).data.content).toBe("# demo\n");
    await callError("workspace_reset", { workspace_id: ws, snapshot: "nope" }, "snapshot_not_found");

    expect((await call("snapshot_delete", { workspace_id: ws, snapshot_name: "mcp-snap" })).data).toEqual({ workspace_id: ws, name: "mcp-snap", deleted: true });
    await callError("snapshot_delete", { workspace_id: ws, snapshot_name: "mcp-snap" }, "snapshot_not_found");
    await callError("snapshot_delete", { workspace_id: ws, snapshot_name: "baseline" }, "invalid_argument");
    const back = await call<{ reset_to: string }>("workspace_reset", { workspace_id: ws });
    expect(back.data.reset_to).toBe("baseline");
    expect((await call<{ changes: unknown[] }>("workspace_diff", { workspace_id: ws })).data.changes).toEqual([]);
  });

  it("disk tools refuse a running workspace and read a stopped one", async () => {
    const e = await callError("workspace_disk_read", { workspace_id: ws, path: "README.md" }, "invalid_argument");
    expect(e.hint).toContain("workspace_file_read");
    await call("workspace_stop", { workspace_id: ws });
    await callError("workspace_file_read", { workspace_id: ws, path: "README.md" }, "workspace_stopped");
    const list = await call<{ entries: { path: string }[] }>("workspace_disk_list", { workspace_id: ws });
    expect(list.data.entries.map((x) => x.path)).toEqual(["/workspace/README.md", "/workspace/src"]);
    const read = await call<{ content: string }>("workspace_disk_read", { workspace_id: ws, path: "README.md" });
    expect(read.data.content).toBe("# demo\n");
    const out = path.join(host, "mcp-disk.tar");
    const exported = await call<{ output_path: string; bytes: number }>("workspace_disk_export", { workspace_id: ws, output_path: out });
    expect(exported.data).toEqual({ workspace_id: ws, output_path: out, bytes: fs.statSync(out).size });
    await callError("workspace_disk_export", { workspace_id: ws, output_path: out }, "output_exists");
  });

  it("reports bad arguments to content tools as invalid_argument", async () => {
    await callError("workspace_file_read", { workspace_id: ws, path: "README.md", max_bytes: -1 }, "invalid_argument");
    await callError("workspace_file_write", { workspace_id: ws, path: "x.txt" }, "invalid_argument");
    await callError("snapshot_create", { workspace_id: ws }, "invalid_argument");
  });
});

// ---------- the three surfaces agree ----------

describe("the SDK, the CLI and MCP agree on content results", () => {
  let ws: string;

  beforeAll(async () => {
    ws = (await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "agree", seedPath: seed })).workspace_id;
    await pyro.applyWorkspacePatch(ws, { patch: gitPatch() });
    await pyro.writeWorkspaceFile(ws, "notes/todo.md", { text: "- [ ] ship\n" });
    await pyro.createSnapshot(ws, "agreed");
  });

  /** The same read-only operation through all three surfaces. */
  async function threeWays(sdk: () => Promise<unknown>, cliArgs: string[], tool: string, args: Record<string, unknown>) {
    const fromSdk = await sdk();
    const fromCli = cliJson(cliArgs);
    const fromMcp = (await call(tool, { workspace_id: ws, ...args })).data;
    expect(fromCli).toEqual(fromSdk);
    expect(fromMcp).toEqual(fromSdk);
    return fromSdk;
  }

  it("for file list, file read and diff", async () => {
    await threeWays(() => pyro.listWorkspaceFiles(ws, { recursive: true }), ["workspace", "file", "list", ws, "--recursive"], "workspace_file_list", { recursive: true });
    await threeWays(() => pyro.readWorkspaceFile(ws, "src/app.py", { maxBytes: 30, offset: 10 }), ["workspace", "file", "read", ws, "src/app.py", "--max-bytes", "30", "--offset", "10"], "workspace_file_read", { path: "src/app.py", max_bytes: 30, offset: 10 });
    const d = (await threeWays(() => pyro.diffWorkspace(ws), ["workspace", "diff", ws], "workspace_diff", {})) as { summary: { total: number } };
    expect(d.summary.total).toBe(5);
    await threeWays(() => pyro.diffWorkspace(ws, { path: "src", maxBytes: 120 }), ["workspace", "diff", ws, "--path", "src", "--max-bytes", "120"], "workspace_diff", { path: "src", max_bytes: 120 });
  });

  it("for snapshot list", async () => {
    const r = (await threeWays(() => pyro.listSnapshots(ws), ["workspace", "snapshot", "list", ws], "snapshot_list", {})) as { count: number };
    expect(r.count).toBe(2);
  });

  it("for the same error", async () => {
    const sdkError = await pyro.readWorkspaceFile(ws, "../secret").then(
      () => null,
      (e: { toJSON(): unknown }) => e.toJSON(),
    );
    const cliErr = cliError(["workspace", "file", "read", ws, "../secret"], "path_outside_workspace");
    const mcpErr = await callError("workspace_file_read", { workspace_id: ws, path: "../secret" }, "path_outside_workspace");
    expect(cliErr).toEqual(sdkError);
    const { text: _text, ...mcpStructured } = mcpErr;
    expect(mcpStructured).toEqual(sdkError);
  });
});
