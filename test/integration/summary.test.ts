/**
 * `workspace summary` as a reviewer and a model that lost its context rely on it: after a
 * scripted sequence of calls, the summary reports exactly what happened since the last reset —
 * and nothing from before it — through the SDK, the CLI (`--json` and human) and MCP alike.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { Pyro } from "../../src/index.js";
import type { WorkspaceSummary } from "../../src/index.js";
import { createMcpServer } from "../../src/mcp/server.js";
import { cli, findLeaks, noLeaks, testHome, TEST_ENVIRONMENT } from "../helpers.js";

let home: string;
let pyro: Pyro;
let scratch: string;

beforeAll(() => {
  home = testHome("summary");
  pyro = new Pyro({ home });
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-summary-host-"));
});

afterAll(async () => {
  for (const w of (await pyro.listWorkspaces()).workspaces) await pyro.deleteWorkspace(w.workspace_id);
  pyro.close();
  fs.rmSync(scratch, { recursive: true, force: true });
  expect(findLeaks(home)).toEqual(noLeaks());
});

function hostDir(name: string, files: Record<string, string>): string {
  const dir = path.join(scratch, name);
  for (const [file, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    fs.writeFileSync(path.join(dir, file), text);
  }
  return dir;
}

describe("the summary of a scripted session", () => {
  let summary: WorkspaceSummary;
  let workspaceId: string;
  let exported: string;

  beforeAll(async () => {
    const seed = hostDir("seed", { "app.sh": "#!/bin/sh\necho hello\n", "README.md": "# demo\n" });
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "reviewed", seedPath: seed });
    workspaceId = ws.workspace_id;

    // Before the reset: none of this may appear in the summary.
    await pyro.execWorkspace("reviewed", { command: "echo before" });
    await pyro.writeWorkspaceFile("reviewed", "before.txt", { text: "gone after the reset\n" });
    await pyro.createSnapshot("reviewed", "checkpoint");
    await pyro.resetWorkspace("reviewed");

    // After it: the session the summary must report.
    await pyro.execWorkspace("reviewed", { command: ["sh", "app.sh"] });
    await pyro.execWorkspace("reviewed", { command: "exit 3" });
    await pyro.execWorkspace("reviewed", { command: "sleep 5", timeoutSeconds: 1 });
    await pyro.writeWorkspaceFile("reviewed", "notes.txt", { text: "one\ntwo\n" });
    await pyro.applyWorkspacePatch("reviewed", {
      patch: "--- a/app.sh\n+++ b/app.sh\n@@ -1,2 +1,2 @@\n #!/bin/sh\n-echo hello\n+echo hello, world\n",
    });
    await pyro.execWorkspace("reviewed", { command: ["rm", "README.md"] });
    await pyro.pushWorkspaceSync("reviewed", hostDir("extra", { "x.txt": "pushed\n" }), { dest: "extra" });
    exported = path.join(scratch, "notes-out.txt");
    await pyro.exportWorkspace("reviewed", "notes.txt", { outputPath: exported });
    await pyro.createSnapshot("reviewed", "after-fix");
    await pyro.startService("reviewed", "web", { command: "sleep 300", readiness: { type: "command", command: "true" } });
    await pyro.stopService("reviewed", "web");
    const shell = await pyro.openShell("reviewed");
    await pyro.writeShell("reviewed", shell.shell_id, { input: "echo hi" });
    await pyro.closeShell("reviewed", shell.shell_id);

    summary = await pyro.summarizeWorkspace("reviewed");
  });

  it("starts at the last reset and says what it restored", () => {
    const status = summary;
    expect(status).toMatchObject({ workspace_id: workspaceId, name: "reviewed", state: "running", since: { event: "reset", reset_count: 1, restored: "baseline" } });
  });

  it("lists the commands run since the reset with their outcomes, and none from before", () => {
    expect(summary.commands).toMatchObject({ count: 4, omitted: 0, succeeded: 2, failed: 1, timed_out: 1, signaled: 0, continue_with: null });
    expect(summary.commands.items.map((c) => [c.sequence, c.command, c.outcome, c.exit_code])).toEqual([
      [2, "sh app.sh", "exited", 0],
      [3, "exit 3", "exited", 3],
      [4, "sleep 5", "timed_out", null],
      [5, "rm README.md", "exited", 0],
    ]);
  });

  it("reports the files changed against the baseline with line counts", () => {
    expect(summary.changes.against).toBe("baseline");
    expect(summary.changes.summary).toEqual({ added: 3, deleted: 1, modified: 1, type_changed: 0, mode_changed: 0, total: 5 });
    expect(summary.changes.files.map((f) => [f.path, f.change, f.lines_added, f.lines_removed])).toEqual([
      ["README.md", "deleted", 0, 1],
      ["app.sh", "modified", 1, 1],
      ["extra", "added", null, null],
      ["extra/x.txt", "added", 1, 0],
      ["notes.txt", "added", 2, 0],
    ]);
    expect([summary.changes.lines_added, summary.changes.lines_removed, summary.changes.omitted]).toEqual([4, 2, 0]);
  });

  it("lists the edits, the export and the snapshot taken since the reset, in order", () => {
    expect(summary.edits.items.map((e) => [e.kind, e.paths])).toEqual([
      ["file_write", ["/workspace/notes.txt"]],
      ["patch_apply", ["/workspace/app.sh"]],
      ["sync_push", ["/workspace/extra"]],
    ]);
    expect(summary.exports).toMatchObject({ count: 1, omitted: 0, items: [{ path: "/workspace/notes.txt", output_path: exported, files: 1, bytes: 8 }] });
    expect(summary.snapshots).toEqual({ count: 3, names: ["baseline", "checkpoint", "after-fix"], created: ["after-fix"], deleted: [] });
  });

  it("reports the service and the shell used since the reset", () => {
    expect(summary.services).toMatchObject({ count: 1, running_count: 0, items: [{ name: "web" }] });
    expect(summary.services.items[0]!.state).not.toMatch(/^(starting|ready|running)$/);
    expect(summary.shells.count).toBe(1);
    expect(summary.shells.items[0]).toMatchObject({ writes: 1, bytes_written: 7, state: "gone" });
    expect(summary.shells.items[0]!.closed_at).not.toBeNull();
  });

  it("never counts as activity", async () => {
    const before = (await pyro.statusWorkspace("reviewed")).last_activity_at;
    await pyro.summarizeWorkspace("reviewed");
    expect((await pyro.statusWorkspace("reviewed")).last_activity_at).toBe(before);
  });

  it("is the same on the CLI with --json, and reads as a short review without it", () => {
    const json = cli(home, ["workspace", "summary", "reviewed", "--json"]);
    expect(json.code).toBe(0);
    const fromCli = json.json() as WorkspaceSummary;
    expect({ ...fromCli, generated_at: "" }).toEqual({ ...summary, generated_at: "" });

    const human = cli(home, ["workspace", "summary", "reviewed"]);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain("Since: reset #1 to baseline");
    expect(human.stdout).toContain("Commands: 4 run — 2 succeeded, 1 failed, 1 timed out");
    expect(human.stdout).toContain("  M app.sh +1 −1");
    expect(human.stdout).toContain("Files changed against baseline: 5 (3 added, 1 modified, 1 deleted), +4 −2 lines");
  });

  it("is the same over MCP, as structured content with the review as text", async () => {
    const server = createMcpServer(pyro, { mode: "review-eval" });
    const [a, b] = InMemoryTransport.createLinkedPair();
    const client = new Client({ name: "summary-test", version: "0.0.0" });
    await Promise.all([server.connect(b), client.connect(a)]);
    const r = (await client.callTool({ name: "workspace_summary", arguments: { workspace_id: "reviewed" } })) as CallToolResult;
    await client.close();
    expect(r.isError ?? false).toBe(false);
    expect({ ...(r.structuredContent as unknown as WorkspaceSummary), generated_at: "" }).toEqual({ ...summary, generated_at: "" });
    expect((r.content[0] as { text: string }).text).toContain("Exports: 1");
  });
});

describe("a bounded summary", () => {
  it("caps the command list at 20, counts the rest, and gives the call that shows them", async () => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT });
    for (let i = 1; i <= 25; i++) await pyro.execWorkspace(ws.workspace_id, { command: ["true", String(i)] });
    const s = await pyro.summarizeWorkspace(ws.workspace_id);
    expect(s.commands).toMatchObject({ count: 25, omitted: 5, succeeded: 25 });
    expect(s.commands.items.map((c) => c.sequence)).toEqual(Array.from({ length: 20 }, (_, i) => i + 6));
    expect(s.commands.continue_with).toBe(`workspace logs ${ws.workspace_id} --limit 25 (MCP: workspace_logs with limit=25)`);
    expect(s.since).toMatchObject({ event: "created", reset_count: 0, restored: "baseline" });
  });

  it("works on a stopped workspace, from the journal and the disk", async () => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT });
    await pyro.writeWorkspaceFile(ws.workspace_id, "a.txt", { text: "a\n" });
    await pyro.stopWorkspace(ws.workspace_id);
    const s = await pyro.summarizeWorkspace(ws.workspace_id);
    expect(s.state).toBe("stopped");
    expect(s.changes.files.map((f) => f.path)).toEqual(["a.txt"]);
    expect(s.edits.count).toBe(1);
  });
});
