/**
 * The five use-case smoke packs, driven exactly as a chat host drives pyro: the official MCP
 * client over stdio against `pyro mcp serve --mode …`, asserting on structured results only.
 * Each follows its recipe in docs/use-cases/.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { CLI, REPO, findLeaks, noLeaks, testHome, TEST_ENVIRONMENT } from "../helpers.js";

type Result = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

let home: string;
/** The chat-ergonomics metric: tool calls each scenario needed and bytes of tool output a model read. */
const metrics: { scenario: string; calls: number; bytes: number }[] = [];

/** A Git checkout of the use-case repo, optionally with the sign bug planted in tally.sh. */
function project(options: { bug?: boolean } = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-usecase-"));
  fs.cpSync(path.join(REPO, "examples", "use-case-repo"), dir, { recursive: true });
  if (options.bug) {
    const file = path.join(dir, "tally.sh");
    fs.writeFileSync(file, fs.readFileSync(file, "utf8").replace("total + n", "total + ${n#-}"));
  }
  const git = (...args: string[]) => execFileSync("git", ["-c", "user.email=t@example.invalid", "-c", "user.name=t", "-c", "commit.gpgsign=false", ...args], { cwd: dir });
  git("init", "-q");
  git("add", ".");
  git("commit", "-qm", "init");
  return dir;
}

async function connect(scenario: string, args: string[]): Promise<{ call: (name: string, a?: Record<string, unknown>) => Promise<Result>; tools: string[]; close: () => Promise<void> }> {
  const metric = { scenario, calls: 0, bytes: 0 };
  metrics.push(metric);
  const client = new Client({ name: "use-case-smoke", version: "1.0.0" });
  await client.connect(new StdioClientTransport({ command: process.execPath, args: [CLI, "mcp", "serve", ...args], env: { ...process.env, PYRO_HOME: home } as Record<string, string> }));
  const tools = (await client.listTools()).tools.map((t) => t.name);
  const call = async (name: string, a: Record<string, unknown> = {}) => {
    const r = await client.callTool({ name, arguments: a });
    metric.calls += 1;
    // What a model consumes: the text content plus the structured result.
    metric.bytes += Buffer.byteLength(JSON.stringify(r.content ?? [])) + Buffer.byteLength(JSON.stringify(r.structuredContent ?? {}));
    if (r.isError) throw new Error(`${name} failed: ${JSON.stringify(r._meta?.["pyro/error"] ?? r.content)}`);
    return r.structuredContent as Result;
  };
  return { call, tools, close: () => client.close() };
}

beforeAll(() => {
  home = testHome("usecases");
});

afterAll(async () => {
  // A scenario that failed part-way leaves its workspace: delete it before checking for leaks.
  const { Pyro } = await import("../../src/index.js");
  const pyro = new Pyro({ home });
  const left = (await pyro.listWorkspaces()).workspaces.map((w) => w.workspace_id);
  for (const id of left) await pyro.deleteWorkspace(id);
  pyro.close();
  expect(left).toEqual([]);
  const rows = metrics.map((m) => `| ${m.scenario.padEnd(24)} | ${String(m.calls).padStart(5)} | ${String(m.bytes).padStart(9)} |`);
  process.stdout.write(`\n| scenario                 | calls | bytes out |\n|---|---|---|\n${rows.join("\n")}\n`);
  expect(findLeaks(home)).toEqual(noLeaks());
});

describe("use-case smoke packs through MCP", () => {
  it("qualification: a messy checkout seeds only tracked files, with their uncommitted edits and large binaries", async () => {
    const repo = project();
    fs.writeFileSync(path.join(repo, ".gitignore"), "node_modules/\n*.o\n");
    fs.writeFileSync(path.join(repo, "big.bin"), Buffer.alloc(5 * 1024 * 1024, 7));
    execFileSync("git", ["add", ".gitignore", "big.bin"], { cwd: repo });
    execFileSync("git", ["-c", "user.email=t@example.invalid", "-c", "user.name=t", "-c", "commit.gpgsign=false", "commit", "-qm", "more"], { cwd: repo });
    fs.mkdirSync(path.join(repo, "node_modules", "dep"), { recursive: true });
    fs.writeFileSync(path.join(repo, "node_modules", "dep", "index.js"), "ignored dependency");
    fs.writeFileSync(path.join(repo, "tally.o"), "generated object file");
    fs.writeFileSync(path.join(repo, "scratch.txt"), "untracked scratch");
    fs.appendFileSync(path.join(repo, "README.md"), "uncommitted line\n");
    fs.rmSync(path.join(repo, "server.pl"));
    const s = await connect("messy checkout", ["--mode", "repro-fix", "--project-path", repo]);
    try {
      const ws = await s.call("workspace_create", { environment: TEST_ENVIRONMENT, name: "messy" });
      expect(ws.workspace_seed).toMatchObject({ mode: "project", origin_kind: "git_checkout" });
      expect(ws.workspace_seed.origin_ref).toMatch(/\+uncommitted$/);
      const files = await s.call("workspace_file_list", { workspace_id: ws.workspace_id, recursive: true });
      const names = files.entries.map((e: Result) => e.path.replace("/workspace/", "")).sort();
      expect(names).toEqual([".gitignore", "README.md", "big.bin", "tally.sh", "test.sh"]);
      expect((await s.call("workspace_file_read", { workspace_id: ws.workspace_id, path: "README.md" })).content).toContain("uncommitted line");
      const big = await s.call("workspace_file_read", { workspace_id: ws.workspace_id, path: "big.bin", max_bytes: 16 });
      expect(big.size).toBe(5 * 1024 * 1024);
      await s.call("workspace_delete", { workspace_id: ws.workspace_id });
    } finally {
      await s.close();
    }
  });

  it("cold-start repo validation: seed, discover how it is tested, run the tests, start the app with readiness, report", async () => {
    const repo = project();
    const s = await connect("cold-start validation", ["--mode", "cold-start", "--project-path", repo]);
    try {
      expect(s.tools).toContain("service_start");
      const ws = await s.call("workspace_create", { environment: TEST_ENVIRONMENT, name: "cold-start" });
      expect(ws.workspace_seed.origin_kind).toBe("git_checkout");
      const files = await s.call("workspace_file_list", { workspace_id: ws.workspace_id });
      expect(files.entries.map((e: Result) => path.basename(e.path))).toEqual(expect.arrayContaining(["README.md", "test.sh", "server.pl"]));
      const readme = await s.call("workspace_file_read", { workspace_id: ws.workspace_id, path: "README.md" });
      expect(readme.content).toContain("sh test.sh");
      const tests = await s.call("workspace_exec", { workspace_id: ws.workspace_id, command: "sh test.sh" });
      expect(tests.exit_code).toBe(0);
      const app = await s.call("service_start", {
        workspace_id: ws.workspace_id,
        service_name: "app",
        command: ["perl", "server.pl", "8080"],
        readiness: { type: "http", url: "http://127.0.0.1:8080/" },
      });
      expect(app.state).toBe("ready");
      const probe = await s.call("workspace_exec", { workspace_id: ws.workspace_id, command: ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080; printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; tail -n 1 <&3"] });
      expect(JSON.parse(probe.stdout)).toEqual({ status: "ok", total: 6 });
      const summary = await s.call("workspace_summary", { workspace_id: ws.workspace_id });
      expect(JSON.stringify(summary)).toContain("app");
      await s.call("workspace_delete", { workspace_id: ws.workspace_id });
    } finally {
      await s.close();
    }
  });

  it("repro plus fix loop: reproduce the failure, patch it, rerun green, diff, export, reset to baseline", async () => {
    const repo = project({ bug: true });
    const s = await connect("repro plus fix", ["--mode", "repro-fix", "--project-path", repo]);
    try {
      const ws = await s.call("workspace_create", { environment: TEST_ENVIRONMENT, name: "repro-fix" });
      const failing = await s.call("workspace_exec", { workspace_id: ws.workspace_id, command: "sh test.sh" });
      expect(failing.exit_code).toBe(1);
      expect(failing.stdout).toContain("FAIL sums negatives");
      const source = await s.call("workspace_file_read", { workspace_id: ws.workspace_id, path: "tally.sh" });
      expect(source.content).toContain("${n#-}");
      const patch = "--- a/tally.sh\n+++ b/tally.sh\n@@ -3,5 +3,5 @@\n total=0\n for n in \"$@\"; do\n-  total=$((total + ${n#-}))\n+  total=$((total + n))\n done\n echo \"$total\"\n";
      const applied = await s.call("workspace_patch_apply", { workspace_id: ws.workspace_id, patch });
      expect(applied.files_changed).toBe(1);
      expect((await s.call("workspace_exec", { workspace_id: ws.workspace_id, command: "sh test.sh" })).exit_code).toBe(0);
      const diff = await s.call("workspace_diff", { workspace_id: ws.workspace_id });
      expect(diff.summary).toMatchObject({ modified: 1, total: 1 });
      expect(diff.patch).toContain("+  total=$((total + n))");
      const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "pyro-export-")), "tally.sh");
      await s.call("workspace_export", { workspace_id: ws.workspace_id, path: "tally.sh", output_path: out });
      expect(fs.readFileSync(out, "utf8")).toContain("total + n))");
      // the exported fix applies to the host checkout too
      fs.copyFileSync(out, path.join(repo, "tally.sh"));
      expect(execFileSync("sh", ["test.sh"], { cwd: repo, encoding: "utf8" })).toContain("ok   sums negatives");
      await s.call("workspace_reset", { workspace_id: ws.workspace_id });
      expect((await s.call("workspace_exec", { workspace_id: ws.workspace_id, command: "sh test.sh" })).exit_code).toBe(1);
      await s.call("workspace_delete", { workspace_id: ws.workspace_id });
    } finally {
      await s.close();
    }
  });

  it("parallel isolated workspaces: one per issue, the second forked from the first's seeded state, changed independently, found again by label, deleted independently", async () => {
    const repo = project();
    const s = await connect("parallel workspaces", ["--mode", "repro-fix", "--project-path", repo]);
    try {
      await s.call("workspace_create", { environment: TEST_ENVIRONMENT, name: "issue-1", labels: { issue: "1", team: "smoke" } });
      // The second starts from the same state: a fork copies it (baseline included) instead of seeding again.
      await s.call("workspace_fork", { workspace_id: "issue-1", name: "issue-2", labels: { issue: "2" } });
      // the model "loses" the ids and finds the workspaces again by label
      const list = await s.call("workspace_list");
      const byIssue = (n: number) => list.workspaces.find((w: Result) => w.labels.issue === String(n));
      const [a, b] = [byIssue(1), byIssue(2)];
      expect(a.name).toBe("issue-1");
      expect(b.name).toBe("issue-2");
      await s.call("workspace_file_write", { workspace_id: a.workspace_id, path: "NOTES.md", text: "issue 1 notes\n" });
      await s.call("workspace_exec", { workspace_id: b.workspace_id, command: "echo 'issue 2' > NOTES.md && rm server.pl" });
      expect((await s.call("workspace_file_read", { workspace_id: a.workspace_id, path: "NOTES.md" })).content).toBe("issue 1 notes\n");
      expect((await s.call("workspace_file_read", { workspace_id: b.workspace_id, path: "NOTES.md" })).content).toBe("issue 2\n");
      expect((await s.call("workspace_diff", { workspace_id: a.workspace_id })).summary.deleted).toBe(0);
      expect((await s.call("workspace_diff", { workspace_id: b.workspace_id })).summary.deleted).toBe(1);
      await s.call("workspace_update", { workspace_id: "issue-2", labels: { status: "done" } });
      await s.call("workspace_delete", { workspace_id: b.workspace_id });
      const after = await s.call("workspace_list");
      expect(after.workspaces.map((w: Result) => w.name)).toEqual(["issue-1"]);
      expect((await s.call("workspace_exec", { workspace_id: "issue-1", command: "cat NOTES.md" })).stdout).toBe("issue 1 notes\n");
      await s.call("workspace_delete", { workspace_id: a.workspace_id });
    } finally {
      await s.close();
    }
  });

  it("untrusted code inspection: network off, no host files, read with structured tools, export only the report", async () => {
    // A "host service" the suspicious code will try to reach.
    const server = http.createServer((_req, res) => res.end("host secret")).listen(0, "127.0.0.1");
    await new Promise((r) => server.once("listening", r));
    const port = (server.address() as { port: number }).port;
    const suspicious = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-suspicious-"));
    // A host path the code tries to write to (it exists on the host, not in the sandbox).
    const escapeTarget = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "pyro-escape-")), "owned.txt");
    fs.writeFileSync(
      path.join(suspicious, "install.sh"),
      `#!/bin/bash\n# pretends to be an installer\ncat ${home}/workspaces/*/workspace.json 2>/dev/null && echo READ-HOST-STATE\n(exec 3<>/dev/tcp/127.0.0.1/${port}) 2>/dev/null && echo REACHED-HOST\n(exec 3<>/dev/tcp/10.0.2.2/${port}) 2>/dev/null && echo REACHED-GATEWAY\necho pwned > ${escapeTarget} 2>/dev/null\necho pwned > /workspace/../../escaped.txt 2>/dev/null\nmkdir -p .cache && echo beacon > .cache/implant\necho done > report.txt\n`,
    );
    const s = await connect("untrusted inspection", ["--mode", "inspect", "--no-project-source"]);
    try {
      expect(s.tools).not.toContain("workspace_file_write");
      const ws = await s.call("workspace_create", { environment: TEST_ENVIRONMENT, name: "inspect", seed_path: suspicious });
      expect(ws.network_policy).toBe("off");
      const script = await s.call("workspace_file_read", { workspace_id: ws.workspace_id, path: "install.sh" });
      expect(script.content).toContain("/dev/tcp");
      const run = await s.call("workspace_exec", { workspace_id: ws.workspace_id, command: ["bash", "install.sh"], timeout_seconds: 20 });
      expect(run.stdout).not.toContain("READ-HOST-STATE");
      expect(run.stdout).not.toContain("REACHED");
      expect(fs.existsSync(escapeTarget)).toBe(false);
      // What did it try to write? The diff against the seed shows exactly that.
      const changed = await s.call("workspace_diff", { workspace_id: ws.workspace_id });
      expect(changed.changes.map((c: Result) => `${c.change} ${c.path}`).sort()).toEqual(["added .cache", "added .cache/implant", "added report.txt"]);
      const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "pyro-report-")), "report.txt");
      await s.call("workspace_export", { workspace_id: ws.workspace_id, path: "report.txt", output_path: out });
      expect(fs.readFileSync(out, "utf8")).toBe("done\n");
      await s.call("workspace_delete", { workspace_id: ws.workspace_id });
    } finally {
      await s.close();
      server.close();
    }
  });

  it("review and evaluation: snapshot first, read a checklist in a plain shell, evaluate, summarize, export, reset to the snapshot", async () => {
    const repo = project();
    fs.writeFileSync(path.join(repo, "CHECKLIST.md"), "\u001b[1mReview checklist\u001b[0m\n1. tests pass\n2. server answers\n");
    // The change under review, as a patch file next to the code.
    fs.writeFileSync(path.join(repo, "proposed.patch"), "--- a/tally.sh\n+++ b/tally.sh\n@@ -1,3 +1,3 @@\n #!/bin/sh\n-# tally.sh: sums the numbers given as arguments.\n+# tally.sh: sums the integers given as arguments.\n total=0\n");
    execFileSync("git", ["add", "CHECKLIST.md", "proposed.patch"], { cwd: repo });
    const s = await connect("review and evaluation", ["--mode", "review-eval", "--project-path", repo]);
    try {
      const ws = await s.call("workspace_create", { environment: TEST_ENVIRONMENT, name: "review" });
      await s.call("snapshot_create", { workspace_id: ws.workspace_id, snapshot_name: "before-review" });
      const shell = await s.call("shell_open", { workspace_id: ws.workspace_id });
      await s.call("shell_write", { workspace_id: ws.workspace_id, shell_id: shell.shell_id, input: "cat CHECKLIST.md" });
      const screen = await s.call("shell_read", { workspace_id: ws.workspace_id, shell_id: shell.shell_id, wait_for_pattern: "server answers" });
      expect(screen.output).toContain("Review checklist");
      expect(screen.output).not.toContain("\u001b");
      await s.call("shell_close", { workspace_id: ws.workspace_id, shell_id: shell.shell_id });
      const applied = await s.call("workspace_exec", { workspace_id: ws.workspace_id, command: ["git", "apply", "proposed.patch"] });
      expect(applied.exit_code).toBe(0);
      const evaluation = await s.call("workspace_exec", { workspace_id: ws.workspace_id, command: "sh test.sh > eval-report.txt; echo exit=$? >> eval-report.txt; cat eval-report.txt" });
      expect(evaluation.stdout).toContain("exit=0");
      const summary = await s.call("workspace_summary", { workspace_id: ws.workspace_id });
      expect(JSON.stringify(summary)).toContain("eval-report.txt");
      const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "pyro-eval-")), "eval-report.txt");
      await s.call("workspace_export", { workspace_id: ws.workspace_id, path: "eval-report.txt", output_path: out });
      expect(fs.readFileSync(out, "utf8")).toContain("ok   sums two numbers");
      await s.call("workspace_reset", { workspace_id: ws.workspace_id, snapshot: "before-review" });
      const files = await s.call("workspace_file_list", { workspace_id: ws.workspace_id });
      expect(files.entries.map((e: Result) => path.basename(e.path))).not.toContain("eval-report.txt");
      await s.call("workspace_delete", { workspace_id: ws.workspace_id });
    } finally {
      await s.close();
    }
  });
});
