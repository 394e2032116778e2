/**
 * The MCP result budget (src/mcp/budget.ts) against hostile shapes: one huge string, many medium
 * strings, huge and deeply nested arrays, multi-byte UTF-8 and JSON escapes at the cut, errors,
 * and a structure that cannot be made to fit; each answer is within the budget, keeps its head
 * and tail, and says what was cut in the result's own fields and in the text.
 */
import { describe, expect, it } from "vitest";
import * as z from "zod";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { createMcpServer } from "../../src/mcp/server.js";
import type { Pyro } from "../../src/sdk/pyro.js";
import { BUDGET_META_KEY, fitResult, MCP_RESULT_BUDGET_BYTES } from "../../src/mcp/budget.js";
import type { BudgetReport } from "../../src/mcp/budget.js";
import { errorResult, ok } from "../../src/mcp/results.js";
import { execResult } from "../../src/ops/schemas.js";
import { PyroError } from "../../src/shared/errors.js";
import { capBytes, capText } from "../../src/shared/output-cap.js";

const MiB = 1024 * 1024;
const size = (r: CallToolResult) => Buffer.byteLength(JSON.stringify(r), "utf8");
const report = (r: CallToolResult) => r._meta?.[BUDGET_META_KEY] as BudgetReport;
const texts = (r: CallToolResult) => r.content.map((c) => (c.type === "text" ? c.text : "")).join("\n");

/** An exec result as workspace_exec builds it, with both streams `bytes` long. */
function execShaped(stdout: string, stderr: string): Record<string, unknown> {
  const info = (s: string) => ({ total_bytes: Buffer.byteLength(s), head_bytes: Math.ceil(Buffer.byteLength(s) / 2), tail_bytes: Math.floor(Buffer.byteLength(s) / 2), omitted_bytes: 0 });
  return {
    workspace_id: "ws1", sequence: 1, command: ["sh", "-c", "x"], shell: true, cwd: "/workspace", exit_code: 0, signal: null, timed_out: false, oom_killed: false,
    outcome: "exited", duration_ms: 5, started_at: "2026-01-01T00:00:00Z", stdout, stderr, stdout_info: info(stdout), stderr_info: info(stderr), truncated: false, network_notices: [],
  };
}

describe("every MCP result fits one bounded message", () => {
  it("returns a result under the budget exactly as it was", () => {
    const r = ok({ a: "x".repeat(1000) }, "small");
    expect(fitResult(r)).toBe(r);
  });

  it("shrinks one huge output stream to the budget, keeping its head and tail and saying so in the result's own fields", () => {
    const stdout = `FIRST-LINE\n${"o".repeat(9 * MiB)}\nLAST-LINE`;
    const structured = execShaped(stdout, "short stderr");
    const r = fitResult(ok(structured, `outcome=exited exit_code=0 in 5 ms\n--- stdout ---\n${stdout}\n--- stderr ---\nshort stderr`));
    expect(size(r)).toBeLessThanOrEqual(MCP_RESULT_BUDGET_BYTES);
    const s = r.structuredContent as Record<string, unknown> & { stdout: string; stdout_info: { total_bytes: number; head_bytes: number; tail_bytes: number; omitted_bytes: number } };
    expect(s.stdout.startsWith("FIRST-LINE\n")).toBe(true);
    expect(s.stdout.endsWith("\nLAST-LINE")).toBe(true);
    expect(s.stdout).toMatch(/bytes omitted of \d+ to fit the MCP result budget of 4\.0 MiB/);
    expect(s.stderr).toBe("short stderr");
    expect(s.truncated).toBe(true);
    expect(s.stdout_info.total_bytes).toBe(Buffer.byteLength(stdout));
    expect(s.stdout_info.head_bytes + s.stdout_info.tail_bytes + s.stdout_info.omitted_bytes).toBe(s.stdout_info.total_bytes);
    expect(s.stdout_info.omitted_bytes).toBeGreaterThan(5 * MiB);
    // Still the tool's output schema: a client validating it accepts the shrunk result.
    expect(z.object(execResult).safeParse(s).success).toBe(true);
    // The text is a short summary: the outcome line first, a note last naming what was cut.
    const blocks = r.content.map((c) => (c.type === "text" ? c.text : ""));
    expect(blocks[0]!.startsWith("outcome=exited")).toBe(true);
    expect(blocks.at(-1)).toMatch(/^\[result shortened to fit the MCP result budget of 4\.0 MiB .*stdout kept .* of 9\.0 MiB/);
    expect(report(r).cut.map((c) => c.field)).toEqual(["text", "stdout"]);
  });

  it("shortens a text that repeats the structured content before it cuts a byte of that content", () => {
    // Short lines at the head escape more densely than the long ones at the tail: the first
    // estimate of the text's cut falls short, and only the text may pay for it.
    let content = "";
    for (let i = 1; content.length < 2 * MiB; i++) content += `${i}\n`;
    content = content.slice(0, 2 * MiB);
    const out = fitResult({ content: [{ type: "text", text: `big.txt\n${content}` }], structuredContent: { content, truncated: true, bytes_returned: 2 * MiB, next_offset: 2 * MiB } });
    expect(size(out)).toBeLessThanOrEqual(MCP_RESULT_BUDGET_BYTES);
    expect((out.structuredContent as { content: string }).content).toBe(content);
    expect(report(out).cut.map((c) => c.field)).toEqual(["text"]);
  });

  it("cuts many medium strings to one level instead of dropping any of them", () => {
    const items = Array.from({ length: 400 }, (_, i) => ({ path: `f${i}`, content: `head-${i}:${"m".repeat(20_000)}:tail-${i}` }));
    const r = fitResult(ok({ items, count: items.length, truncated: false }, "400 items"), 1 * MiB);
    expect(size(r)).toBeLessThanOrEqual(1 * MiB);
    const s = r.structuredContent as { items: { path: string; content: string }[]; count: number; truncated: boolean };
    expect(s.items).toHaveLength(400);
    expect(s.count).toBe(400);
    for (const [i, item] of s.items.entries()) {
      expect(item.path).toBe(`f${i}`);
      expect(item.content.startsWith(`head-${i}:`)).toBe(true);
      expect(item.content.endsWith(`:tail-${i}`)).toBe(true);
    }
    const lengths = new Set(s.items.map((i) => i.content.length));
    expect(lengths.size).toBeLessThanOrEqual(2);
    expect(report(r).cut).toHaveLength(20);
    expect(report(r).cut_omitted).toBe(380);
  });

  it("drops trailing items of a huge array of small values and keeps the counts honest", () => {
    const entries = Array.from({ length: 300_000 }, (_, i) => ({ path: `d/${i}`, type: "file", size: i }));
    const r = fitResult(ok({ path: "/workspace", entries, count: entries.length, truncated: false, total_seen: entries.length }, "listing"), 2 * MiB);
    expect(size(r)).toBeLessThanOrEqual(2 * MiB);
    const s = r.structuredContent as { entries: { path: string }[]; count: number; truncated: boolean; total_seen: number };
    expect(s.entries.length).toBeGreaterThan(1000);
    expect(s.entries.length).toBeLessThan(300_000);
    expect(s.entries[0]!.path).toBe("d/0");
    expect(s.count).toBe(s.entries.length);
    expect(s.truncated).toBe(true);
    expect(s.total_seen).toBe(300_000);
    expect(report(r).cut).toContainEqual({ field: "entries", kept_items: s.entries.length, total_items: 300_000 });
  });

  it("adds what it drops from a capped list to the list's omitted count", () => {
    const changes = Array.from({ length: 100_000 }, (_, i) => ({ path: `p${i}`, change: "added" }));
    const r = fitResult(ok({ changes, changes_omitted: 5 }, "diff"), 1 * MiB);
    const s = r.structuredContent as { changes: unknown[]; changes_omitted: number };
    expect(s.changes_omitted).toBe(5 + 100_000 - s.changes.length);
  });

  it("keeps deeply nested arrays valid JSON while trimming them", () => {
    let deep: unknown = Array.from({ length: 50_000 }, (_, i) => i);
    for (let depth = 0; depth < 500; depth++) deep = [deep, depth];
    const r = fitResult(ok({ deep, wide: Array.from({ length: 100_000 }, () => [[1, 2], [3, 4]]) }, "deep"), 256 * 1024);
    expect(size(r)).toBeLessThanOrEqual(256 * 1024);
    expect(() => JSON.parse(JSON.stringify(r))).not.toThrow();
    expect(Array.isArray((r.structuredContent as { deep: unknown }).deep)).toBe(true);
  });

  it("names a string cut deep inside nested objects by a shortened path and still fits", () => {
    let deep: Record<string, unknown> = { leaf: "d".repeat(600_000) };
    for (let depth = 0; depth < 400; depth++) deep = { [`level${depth}`]: deep };
    const r = fitResult(ok({ deep }, "deep"), 256 * 1024);
    expect(size(r)).toBeLessThanOrEqual(256 * 1024);
    const [cut] = report(r).cut;
    expect(cut!.field.length).toBeLessThanOrEqual(161);
    expect(cut!.field.startsWith("deep.level399.level398")).toBe(true);
    expect(cut!.field.endsWith("level1.level0.leaf")).toBe(true);
  });

  it("answers internal_error, within the budget, when the structure itself cannot be made to fit", () => {
    const env = Object.fromEntries(Array.from({ length: 50_000 }, (_, i) => [`KEY_${i}`, `value-${i}`]));
    const r = fitResult(ok({ env }, "env"), 256 * 1024);
    expect(size(r)).toBeLessThanOrEqual(256 * 1024);
    expect(r.isError).toBe(true);
    expect(texts(r)).toMatch(/^\[internal_error\] the result does not fit the MCP result budget of 256\.0 KiB even shortened/);
    expect(texts(r)).toContain("Next: Ask for less in one call");
  });

  it("never splits a multi-byte character at a cut", () => {
    for (const ch of ["é", "€", "😀"]) {
      const s = `${ch.repeat(300_000)}x${ch.repeat(300_001)}`;
      const r = fitResult(ok({ content: s, truncated: false }, s), 256 * 1024);
      expect(size(r)).toBeLessThanOrEqual(256 * 1024);
      const content = (r.structuredContent as { content: string }).content;
      expect(content).not.toContain("\uFFFD");
      expect(texts(r)).not.toContain("\uFFFD");
      const [head, tail] = content.split(/\n\[\.\.\. .* \.\.\.\]\n/);
      expect(s.startsWith(head!)).toBe(true);
      expect(s.endsWith(tail!)).toBe(true);
      expect(head!.length).toBeGreaterThan(1000);
    }
  });

  it("counts JSON escapes: a string of control characters still fits", () => {
    const s = "\u0001".repeat(2 * MiB);
    const r = fitResult(ok({ content: s, truncated: false }, "binary-ish"), 1 * MiB);
    expect(size(r)).toBeLessThanOrEqual(1 * MiB);
    expect((r.structuredContent as { truncated: boolean }).truncated).toBe(true);
  });

  it("bounds errors too, keeping their code first and their structured error", () => {
    const huge = "e".repeat(12 * MiB);
    const r = fitResult(errorResult(new PyroError("patch_failed", `hunk did not apply: ${huge}`, { details: { actual: huge } })));
    expect(size(r)).toBeLessThanOrEqual(MCP_RESULT_BUDGET_BYTES);
    expect(r.isError).toBe(true);
    expect(texts(r).startsWith("[patch_failed] hunk did not apply: eee")).toBe(true);
    const error = r._meta?.["pyro/error"] as { code: string; details: { actual: string } };
    expect(error.code).toBe("patch_failed");
    expect(error.details.actual).toMatch(/bytes omitted of 12582912/);
  });
});

describe("the server applies the budget to every tool", () => {
  it("trims a listing too large for one message so that the official client accepts it against the tool's output schema", async () => {
    const entries = Array.from({ length: 100_000 }, (_, i) => ({ path: `src/module-${i}/index.ts`, type: "file", size: i, mode: "0644", mtime: "2026-01-01T00:00:00.000Z", link_target: null }));
    // Only the method this tool calls; the rest of Pyro is never touched.
    const pyro = { listWorkspaceFiles: async () => ({ workspace_id: "ws1", path: "/workspace", recursive: true, entries, count: entries.length, truncated: false, total_seen: entries.length, continue_with: null }) } as unknown as Pyro;
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    await createMcpServer(pyro, { profile: "workspace-full" }).connect(serverSide);
    const client = new Client({ name: "t", version: "1" });
    await client.connect(clientSide);
    try {
      const r = (await client.callTool({ name: "workspace_file_list", arguments: { workspace_id: "ws1", recursive: true, max_entries: 100_000 } })) as CallToolResult;
      expect(r.isError, texts(r).slice(0, 500)).toBeFalsy();
      expect(size(r)).toBeLessThanOrEqual(MCP_RESULT_BUDGET_BYTES);
      const s = r.structuredContent as { entries: { path: string }[]; count: number; truncated: boolean; total_seen: number };
      expect(s.entries.length).toBeLessThan(100_000);
      expect(s.count).toBe(s.entries.length);
      expect(s.truncated).toBe(true);
      expect(s.total_seen).toBe(100_000);
      expect(texts(r)).toMatch(new RegExp(`entries kept ${s.entries.length} of 100000 items`));
    } finally {
      await client.close();
    }
  });
});

describe("capText", () => {
  it("cuts ASCII exactly where the byte stream helper does", () => {
    for (const [text, max] of [["abcdefghijklmnopqrstuvwxyz", 6], ["abcdefghijklmnopqrstuvwxyz", 7], ["short", 100], ["exact", 5]] as const) {
      const { head, tail, info } = capText(text, max);
      const bytes = capBytes(Buffer.from(text), max);
      expect(info).toEqual(bytes.info);
      expect(head + tail).toBe(bytes.bytes.toString());
    }
  });


  it("keeps head and tail within the byte budget at character boundaries", () => {
    const { head, tail, info } = capText("ab😀cd😀ef", 9);
    expect(Buffer.byteLength(head) + Buffer.byteLength(tail)).toBeLessThanOrEqual(9);
    expect(info.head_bytes + info.tail_bytes + info.omitted_bytes).toBe(info.total_bytes);
    expect(`${head}${tail}`).not.toContain("\uFFFD");
    expect("ab😀cd😀ef".startsWith(head)).toBe(true);
    expect("ab😀cd😀ef".endsWith(tail)).toBe(true);
  });
});
