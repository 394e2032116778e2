/**
 * A workspace with 100 000 files stays answerable: a recursive listing with the largest
 * max_entries, a diff against the baseline and against a snapshot after a few changes, and the
 * summary each return a bounded result with exact counts, what they left out and how to see
 * more — never internal_error — through the SDK, the CLI (`--json`) and MCP (official client).
 * One workspace is shared by the whole file: making the tree is the cost. (A diff where every
 * file changed is measured in docs/workspace-content.md; rewriting 100 000 files here would
 * double the file's time.)
 */
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { Pyro } from "../../src/index.js";
import { MAX_FILE_LIST_BYTES } from "../../src/protocol/messages.js";
import { CLI, connectMcp, findLeaks, noLeaks, testHome, TEST_ENVIRONMENT } from "../helpers.js";

/** 100 directories of 1 000 empty files each, made inside the sandbox in one exec. */
const DIRS = 100;
const PER_DIR = 1000;
const FILES = DIRS * PER_DIR;
const ENTRIES = FILES + DIRS;
const SLOW = 600_000;

let home: string;
let pyro: Pyro;
let ws: string;
let mcp: Client;

async function tool(name: string, args: Record<string, unknown>): Promise<CallToolResult> {
  // The default request timeout (60 s) is short for a whole-tree walk on a loaded machine.
  const result = (await mcp.callTool({ name, arguments: args }, undefined, { timeout: SLOW })) as CallToolResult;
  const text = result.content.map((c) => (c.type === "text" ? c.text : "")).join("");
  expect(result.isError, text.slice(0, 500)).toBeFalsy();
  return result;
}

/** The CLI as a user runs it, its output whole (the shared helper keeps at most 1 MiB). */
function cliLarge(args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, PYRO_HOME: home }, encoding: "utf8", timeout: SLOW, maxBuffer: 256 * 1024 * 1024 });
}

const textOf = (r: CallToolResult) => r.content.map((c) => (c.type === "text" ? c.text : "")).join("");

beforeAll(async () => {
  home = testHome("large-tree");
  pyro = new Pyro({ home });
  ws = (await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "large" })).workspace_id;
  const made = await pyro.execWorkspace(ws, {
    command: `for d in $(seq 1 ${DIRS}); do mkdir d$d && (cd d$d && seq -f 'f%g.txt' 1 ${PER_DIR} | xargs touch) || exit 1; done; find . -type f | wc -l`,
    timeoutSeconds: 600,
  });
  expect(made.exit_code, made.stderr).toBe(0);
  expect(made.stdout.trim()).toBe(String(FILES));
  await pyro.createSnapshot(ws, "seeded");
  ({ client: mcp } = await connectMcp(home, [], "pyro-large-tree-test"));
}, SLOW);

afterAll(async () => {
  await mcp?.close();
  if (ws) await pyro.deleteWorkspace(ws);
  pyro.close();
  expect(findLeaks(home)).toEqual(noLeaks());
}, SLOW);

describe("a recursive listing of 100 000 files", () => {
  // 100 100 short entries are more than one listing carries in bytes: the byte bound cuts it
  // before max_entries=100000, says so, and the next step is a subdirectory.
  it("returns as many entries as fit its byte bound, with the exact total and the next step (SDK)", async () => {
    const r = await pyro.listWorkspaceFiles(ws, { recursive: true, maxEntries: 100_000 });
    expect(r).toMatchObject({ truncated: true, total_seen: ENTRIES, recursive: true, path: "/workspace" });
    expect(r.count).toBe(r.entries.length);
    expect(r.count).toBeGreaterThan(20_000);
    expect(r.count).toBeLessThan(100_000);
    const bytes = r.entries.reduce((n, e) => n + Buffer.byteLength(JSON.stringify(e)) + 1, 0);
    expect(bytes).toBeLessThanOrEqual(MAX_FILE_LIST_BYTES);
    // Sorted by name, depth first: d1, its files, then d10 (names sort as strings).
    expect(r.entries.slice(0, 3).map((e) => e.path)).toEqual(["/workspace/d1", "/workspace/d1/f1.txt", "/workspace/d1/f10.txt"]);
    expect(r.continue_with).toContain("/workspace/SUBDIRECTORY --recursive");
    const sub = await pyro.listWorkspaceFiles(ws, { path: "d1", recursive: true, maxEntries: 100_000 });
    expect(sub).toMatchObject({ count: PER_DIR, truncated: false, total_seen: PER_DIR, continue_with: null });
  }, SLOW);

  it("the default listing stays at 1000 entries and says how to see more", async () => {
    const r = await pyro.listWorkspaceFiles(ws, { recursive: true });
    expect(r).toMatchObject({ count: 1000, truncated: true, total_seen: ENTRIES });
    expect(r.continue_with).toContain("--max-entries 100000");
    expect(r.continue_with).toContain("max_entries=100000");
  }, SLOW);

  it("answers on the CLI with --json, bounded the same way", () => {
    const r = cliLarge(["workspace", "file", "list", ws, "--recursive", "--max-entries", "100000", "--json"]);
    expect(r.status, r.stdout.slice(0, 500) + r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as { count: number; truncated: boolean; total_seen: number; entries: unknown[] };
    expect(j).toMatchObject({ truncated: true, total_seen: ENTRIES });
    expect(j.entries).toHaveLength(j.count);
    expect(j.count).toBeGreaterThan(20_000);
  }, SLOW);

  it("answers on MCP within one stdio message: structured content has every listed entry, the text a page of them", async () => {
    const r = await tool("workspace_file_list", { workspace_id: ws, recursive: true, max_entries: 100_000 });
    const s = r.structuredContent as { count: number; truncated: boolean; total_seen: number; entries: unknown[] };
    expect(s).toMatchObject({ truncated: true, total_seen: ENTRIES });
    expect(s.entries).toHaveLength(s.count);
    expect(s.count).toBeGreaterThan(20_000);
    const text = textOf(r);
    expect(text.split("\n").length).toBeLessThan(300);
    expect(text).toContain(`[${s.count} of ${ENTRIES} entries listed`);
    // The byte bound keeps a listing inside the MCP result budget: nothing was trimmed after it.
    expect(r._meta?.["pyro/budget"]).toBeUndefined();
  }, SLOW);
});

describe("a diff of 100 000 changed files", () => {
  it("against the baseline: every entry counted by kind, the first ones listed, the patch within its budget (SDK)", async () => {
    const d = await pyro.diffWorkspace(ws);
    expect(d.summary).toEqual({ added: ENTRIES, deleted: 0, modified: 0, type_changed: 0, mode_changed: 0, total: ENTRIES });
    expect(d.changes).toHaveLength(2000);
    expect(d.changes_omitted).toBe(ENTRIES - 2000);
    expect(d.changes[0]).toMatchObject({ path: "d1", change: "added", type: "directory" });
    // Name order, depth first, as the listing: a directory, then what it holds.
    expect(d.changes.slice(0, 3).map((c) => c.path)).toEqual(["d1", "d1/f1.txt", "d1/f10.txt"]);
    expect(Buffer.byteLength(d.patch)).toBeLessThanOrEqual(65536);
    expect(d.patch_truncated).toBe(true);
    expect(d.omitted_files).toHaveLength(1000);
    expect(d.omitted_files_total).toBeGreaterThan(FILES / 2);
    expect(d.continue_with).toContain(`--path ${d.omitted_files[0]}`);
  }, SLOW);

  it("against a snapshot after changing a few files: exactly those, whole", async () => {
    const r = await pyro.execWorkspace(ws, { command: "echo one > d1/f1.txt && echo two > d7/f500.txt && rm d9/f9.txt && echo new > d100/extra.txt" });
    expect(r.exit_code, r.stderr).toBe(0);
    const d = await pyro.diffWorkspace(ws, { snapshot: "seeded" });
    expect(d.summary).toEqual({ added: 1, deleted: 1, modified: 2, type_changed: 0, mode_changed: 0, total: 4 });
    expect(d.changes.map((c) => [c.path, c.change])).toEqual([
      ["d1/f1.txt", "modified"],
      ["d100/extra.txt", "added"],
      ["d7/f500.txt", "modified"],
      ["d9/f9.txt", "deleted"],
    ]);
    expect(d).toMatchObject({ changes_omitted: 0, patch_truncated: false, omitted_files: [], omitted_files_total: 0, continue_with: null });
    expect(d.patch).toContain("+++ b/d7/f500.txt");
  }, SLOW);

  it("answers on the CLI (--json) and MCP with the same bounds", async () => {
    // Against the baseline one file fewer (deleted) and one more (extra.txt): still every entry.
    const r = cliLarge(["workspace", "diff", ws, "--json"]);
    expect(r.status, r.stdout.slice(0, 500) + r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as { summary: { total: number }; changes: unknown[]; omitted_files: unknown[] };
    expect(j.summary.total).toBe(ENTRIES);
    expect(j.changes).toHaveLength(2000);
    expect(j.omitted_files).toHaveLength(1000);

    const m = await tool("workspace_diff", { workspace_id: ws });
    const s = m.structuredContent as { summary: { total: number }; changes: unknown[]; changes_omitted: number; omitted_files_total: number };
    expect(s.summary.total).toBe(ENTRIES);
    expect(s.changes).toHaveLength(2000);
    expect(s.changes_omitted).toBe(ENTRIES - 2000);
    const text = textOf(m);
    expect(text.length).toBeLessThan(100_000);
    expect(text).toContain(`[patch truncated: ${s.omitted_files_total} files left out`);
  }, SLOW);
});

describe("the summary of a workspace with 100 000 changes", () => {
  it("counts every change, lists the first 50 and stays short on every surface", async () => {
    const s = await pyro.summarizeWorkspace(ws);
    expect(s.changes.summary.total).toBe(ENTRIES);
    expect(s.changes.files).toHaveLength(50);
    expect(s.changes.omitted).toBe(ENTRIES - 50);
    expect(s.changes.continue_with).toContain("workspace diff");

    const m = await tool("workspace_summary", { workspace_id: ws });
    expect((m.structuredContent as { changes: { summary: { total: number } } }).changes.summary.total).toBe(ENTRIES);
    expect(textOf(m).length).toBeLessThan(20_000);
    expect(textOf(m)).toContain(`${ENTRIES - 50} more changes not shown`);

    const r = cliLarge(["workspace", "summary", ws, "--json"]);
    expect(r.status, r.stdout.slice(0, 500) + r.stderr).toBe(0);
    expect(r.stdout.length).toBeLessThan(100_000);
    const j = JSON.parse(r.stdout) as { changes: { summary: { total: number }; files: unknown[]; omitted: number } };
    expect(j.changes.summary.total).toBe(ENTRIES);
    expect(j.changes.files).toHaveLength(50);
    expect(j.changes.omitted).toBe(ENTRIES - 50);
  }, SLOW);
});
