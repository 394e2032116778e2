/**
 * Every MCP result fits one bounded message, end to end: `pyro mcp serve` on stdio driven by the
 * official MCP client, which drops the connection on any message over 10 MiB, against a real
 * namespace workspace. The largest results a model can ask for (both exec streams at the
 * maximum max_output_bytes, a file read and a diff at the maximum max_bytes) each answer within
 * the result budget, say what was cut, still match their output schemas (the client checks), and
 * leave the connection up for the next call.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { CallToolResult, JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { Pyro } from "../../src/index.js";
import type { ExecResult, WorkspaceInfo } from "../../src/index.js";
import { BUDGET_META_KEY, MCP_RESULT_BUDGET_BYTES } from "../../src/mcp/server.js";
import type { BudgetReport } from "../../src/mcp/budget.js";
import { MAX_OUTPUT_BYTES_LIMIT } from "../../src/shared/output-cap.js";
import { MAX_FILE_READ_BYTES } from "../../src/core/workspace-content.js";
import { MCP_READ_MAX_BYTES } from "../../src/ops/content.js";
import { connectMcp, findLeaks, noLeaks, testHome, TEST_ENVIRONMENT } from "../helpers.js";

const MiB = 1024 * 1024;
let home: string;
let client: Client;
let serverStderr: () => string = () => "";
/** Bytes of every message the server sent, as it was on the wire (one JSON line each). */
const received: number[] = [];
let workspaceId: string;

beforeAll(async () => {
  home = testHome("mcp-bounds");
  ({ client, stderr: serverStderr } = await connectMcp(home, [], "pyro-mcp-bounds-test"));
  const transport = client.transport!;
  const deliver = transport.onmessage!;
  transport.onmessage = (message: JSONRPCMessage, extra) => {
    received.push(Buffer.byteLength(JSON.stringify(message), "utf8") + 1);
    deliver(message, extra);
  };
  const ws = await call<WorkspaceInfo>("workspace_create", { environment: TEST_ENVIRONMENT, name: "mcp-bounds", backend: "namespace" });
  workspaceId = ws.workspace_id;
});

afterAll(async () => {
  await client?.close();
  const pyro = new Pyro({ home });
  for (const w of (await pyro.listWorkspaces()).workspaces) await pyro.deleteWorkspace(w.workspace_id);
  pyro.close();
  expect(findLeaks(home)).toEqual(noLeaks());
});

/** A call that must succeed; its structured content (schema-checked by the client) and the size of its message. */
async function callRaw(name: string, args: Record<string, unknown>): Promise<{ result: CallToolResult; bytes: number }> {
  const before = received.length;
  const result = (await client.callTool({ name, arguments: args }, undefined, { timeout: 300_000 })) as CallToolResult;
  expect(result.isError ?? false, `${name} failed: ${JSON.stringify(result.content).slice(0, 2000)}\n${serverStderr()}`).toBe(false);
  expect(received.length).toBeGreaterThan(before);
  return { result, bytes: received.at(-1)! };
}

async function call<T>(name: string, args: Record<string, unknown>): Promise<T> {
  return (await callRaw(name, args)).result.structuredContent as T;
}

const texts = (r: CallToolResult) => r.content.map((c) => (c.type === "text" ? c.text : "")).join("\n");

/** After a shrunk result the server still answers: the connection is up. */
async function stillConnected(): Promise<void> {
  const r = await call<ExecResult>("workspace_exec", { workspace_id: workspaceId, command: "echo still-here" });
  expect(r.stdout).toBe("still-here\n");
}

describe("MCP results larger than one message are shrunk to the budget", () => {
  it("answers an exec printing 8 MiB on stdout and 8 MiB on stderr at the largest max_output_bytes, with both streams' head and tail", async () => {
    const eight = MAX_OUTPUT_BYTES_LIMIT;
    const command = `{ echo OUT-START; head -c ${eight} /dev/zero | tr '\\0' o; echo; echo OUT-END; } ; { echo ERR-START; head -c ${eight} /dev/zero | tr '\\0' e; echo; echo ERR-END; } >&2`;
    const { result, bytes } = await callRaw("workspace_exec", { workspace_id: workspaceId, command, max_output_bytes: eight, timeout_seconds: 120 });
    expect(bytes).toBeLessThanOrEqual(MCP_RESULT_BUDGET_BYTES);
    const r = result.structuredContent as unknown as ExecResult;
    expect(r.exit_code).toBe(0);
    expect(r.stdout.startsWith("OUT-START\nooo")).toBe(true);
    expect(r.stdout.endsWith("ooo\nOUT-END\n")).toBe(true);
    expect(r.stderr.startsWith("ERR-START\neee")).toBe(true);
    expect(r.stderr.endsWith("eee\nERR-END\n")).toBe(true);
    expect(r.stdout).toMatch(/\[\.\.\. \d+ bytes omitted of \d+ to fit the MCP result budget of 4\.0 MiB \.\.\.\]/);
    expect(r.truncated).toBe(true);
    expect(r.stdout_info.total_bytes).toBe(eight + "OUT-START\n\nOUT-END\n".length);
    expect(r.stdout_info.omitted_bytes).toBeGreaterThan(4 * MiB);
    expect(r.stderr_info.omitted_bytes).toBeGreaterThan(4 * MiB);
    const text = texts(result);
    expect(text.startsWith("outcome=exited exit_code=0")).toBe(true);
    expect(text).toMatch(/\[result shortened to fit the MCP result budget of 4\.0 MiB .*stdout kept .* of 8\.0 MiB .*stderr kept .* of 8\.0 MiB/);
    const report = result._meta?.[BUDGET_META_KEY] as BudgetReport;
    expect(report.cut.map((c) => c.field).sort()).toEqual(["stderr", "stdout", "text"]);
    await stillConnected();
  });

  it("reads a file at the largest max_bytes in exact pages of at most 2 MiB, so nothing is skipped", async () => {
    await call<ExecResult>("workspace_exec", { workspace_id: workspaceId, command: "seq 1 2000000 > big.txt" });
    const { result, bytes } = await callRaw("workspace_file_read", { workspace_id: workspaceId, path: "big.txt", max_bytes: MAX_FILE_READ_BYTES });
    expect(bytes).toBeLessThanOrEqual(MCP_RESULT_BUDGET_BYTES);
    const r = result.structuredContent as { content: string; truncated: boolean; bytes_returned: number; next_offset: number };
    expect(r.bytes_returned).toBe(MCP_READ_MAX_BYTES);
    expect(r.truncated).toBe(true);
    expect(r.next_offset).toBe(MCP_READ_MAX_BYTES);
    // Whole and unmarked: the read was smaller, not cut.
    expect(Buffer.byteLength(r.content)).toBe(MCP_READ_MAX_BYTES);
    expect(r.content.startsWith("1\n2\n3\n")).toBe(true);
    expect(r.content).not.toMatch(/omitted/);
    // Only the text rendering, which repeats the content, may have been shortened.
    expect(((result._meta?.[BUDGET_META_KEY] as BudgetReport | undefined)?.cut ?? []).map((c) => c.field)).not.toContain("content");
    // Reading on from next_offset continues exactly where the first page stopped.
    const next = (await callRaw("workspace_file_read", { workspace_id: workspaceId, path: "big.txt", offset: r.next_offset, max_bytes: MAX_FILE_READ_BYTES })).result.structuredContent as { content: string };
    const lines = (r.content + next.content).split("\n").slice(0, -1);
    expect(lines.findIndex((line, i) => line !== String(i + 1))).toBe(-1);
    await stillConnected();
  });

  it("answers a diff of a large change at the largest max_bytes with the patch cut and patch_truncated set", async () => {
    await call<ExecResult>("workspace_exec", { workspace_id: workspaceId, command: "rm big.txt && for f in a b; do seq 1 380000 | sed \"s/^/$f-/\" > change-$f.txt; done" });
    const { result, bytes } = await callRaw("workspace_diff", { workspace_id: workspaceId, max_bytes: MAX_FILE_READ_BYTES });
    expect(bytes).toBeLessThanOrEqual(MCP_RESULT_BUDGET_BYTES);
    const r = result.structuredContent as { patch: string; patch_truncated: boolean; summary: { added: number } };
    // Two files of about 3.4 MiB each: the whole patch is within max_bytes, so only the budget
    // cut it, and patch_truncated says so.
    expect(r.summary.added).toBe(2);
    expect(r.patch_truncated).toBe(true);
    expect(r.patch.startsWith("diff --git a/change-a.txt b/change-a.txt\n")).toBe(true);
    expect(r.patch.endsWith("+b-379999\n+b-380000\n")).toBe(true);
    expect(r.patch).toMatch(/bytes omitted of \d+ to fit the MCP result budget/);
    expect(texts(result)).toMatch(/patch kept .* of 7\.\d MiB/);
    await stillConnected();
  });

  it("leaves small results exactly as they were", async () => {
    const { result, bytes } = await callRaw("workspace_exec", { workspace_id: workspaceId, command: "echo small" });
    expect(bytes).toBeLessThan(16 * 1024);
    // Only the text rendering, which repeats the content, may have been shortened.
    expect(((result._meta?.[BUDGET_META_KEY] as BudgetReport | undefined)?.cut ?? []).map((c) => c.field)).not.toContain("content");
    expect(texts(result)).not.toContain("result shortened");
  });
});
