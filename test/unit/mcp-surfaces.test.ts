/**
 * What each profile and mode shows a model, checked through the official MCP client over an
 * in-memory transport: narrowed arguments (no secrets, no network), descriptions that never send
 * a model to a tool the server lacks, bad arguments refused with pyro's error shape and the
 * arguments the tool does take, and the text helpers that keep results readable. Starts no sandbox.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import * as z from "zod";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { CallToolResult, Tool } from "@modelcontextprotocol/sdk/types.js";
import { MCP_MODES, MCP_PROFILES, MCP_TOOLS } from "../../src/contract.js";
import { ERROR_CODES, PyroError } from "../../src/shared/errors.js";
import { Pyro } from "../../src/sdk/pyro.js";
import { createMcpServer, execText, ok } from "../../src/mcp/server.js";
import type { Register } from "../../src/mcp/server.js";
import { ERROR_META_KEY, MCP_NEXT_STEPS, errorResult, noteUnavailable } from "../../src/mcp/results.js";
import { resolveSurface } from "../../src/mcp/surfaces.js";
import { capLines, cleanTerminalOutput, escapeControls } from "../../src/ops/text.js";
import type { ExecResult } from "../../src/core/types.js";

const home = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-mcp-surfaces-"));
const pyro = new Pyro({ home });
afterAll(() => {
  pyro.close();
  fs.rmSync(home, { recursive: true, force: true });
});

const SURFACES: [string, { profile?: string; mode?: string }][] = [
  ...Object.keys(MCP_PROFILES).map((profile) => [`profile ${profile}`, { profile }] as [string, { profile: string }]),
  ...Object.keys(MCP_MODES).map((mode) => [`mode ${mode}`, { mode }] as [string, { mode: string }]),
];
const NARROWED = SURFACES.filter(([, o]) => o.profile !== "workspace-full");

async function connect(options: { profile?: string; mode?: string }, defineMore?: (register: Register) => void) {
  const server = createMcpServer(pyro, options, defineMore);
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  const client = new Client({ name: "pyro-surface-test", version: "0.0.0" });
  await Promise.all([server.connect(serverSide), client.connect(clientSide)]);
  return client;
}

async function toolsOf(options: { profile?: string; mode?: string }): Promise<{ tools: Tool[]; instructions: string }> {
  const client = await connect(options);
  try {
    return { tools: (await client.listTools()).tools, instructions: client.getInstructions() ?? "" };
  } finally {
    await client.close();
  }
}

const paramsOf = (t: Tool) => Object.keys(t.inputSchema.properties ?? {});

describe("every profile and mode", () => {
  it.each(SURFACES)("%s describes each tool for a model, with a strict input schema and an output schema", async (_label, options) => {
    const { tools } = await toolsOf(options);
    for (const t of tools) {
      expect(t.description?.length ?? 0, `${t.name}: ${t.description}`).toBeGreaterThanOrEqual(80);
      expect(t.inputSchema.type).toBe("object");
      expect((t.inputSchema as { additionalProperties?: unknown }).additionalProperties, t.name).toBe(false);
      expect(Object.keys(t.outputSchema?.properties ?? {}).length, t.name).toBeGreaterThan(0);
    }
  });

  it.each(SURFACES)("%s never names, in a description, schema or its instructions, a tool it does not offer", async (_label, options) => {
    const { tools, instructions } = await toolsOf(options);
    const offered = new Set(tools.map((t) => t.name));
    const texts = [["instructions", instructions], ...tools.map((t) => [t.name, JSON.stringify({ d: t.description, i: t.inputSchema })])];
    const strays = texts.flatMap(([where, text]) => MCP_TOOLS.filter((name) => !offered.has(name) && new RegExp(`\\b${name}\\b`).test(text!)).map((name) => `${where} names ${name}`));
    expect(strays).toEqual([]);
  });

  it.each(SURFACES)("%s sends server instructions naming its profile or mode", async (label, options) => {
    const { instructions } = await toolsOf(options);
    expect(instructions).toContain(label.split(" ")[1]);
  });
});

describe("narrowed tool sets", () => {
  it.each(NARROWED)("%s offers no secret or network arguments", async (_label, options) => {
    const { tools } = await toolsOf(options);
    const leaks = tools.flatMap((t) => paramsOf(t).filter((p) => /secret|network|publish|port/.test(p)).map((p) => `${t.name}.${p}`));
    expect(leaks).toEqual([]);
  });

  it("keeps the arguments the job needs: workspace_create in workspace-core takes a seed, a name, labels and a backend", async () => {
    const { tools } = await toolsOf({});
    expect(paramsOf(tools.find((t) => t.name === "workspace_create")!)).toEqual(["environment", "name", "labels", "seed_path", "vcpu_count", "mem_mib", "disk_mib", "ttl_seconds", "backend"]);
    expect(paramsOf(tools.find((t) => t.name === "workspace_exec")!)).toEqual(["workspace_id", "command", "timeout_seconds", "env", "cwd", "stdin", "max_output_bytes"]);
  });

  it("narrows the inspect mode further: creation takes only an environment, a seed, a name and a backend, and export never overwrites", async () => {
    const { tools } = await toolsOf({ mode: "inspect" });
    expect(paramsOf(tools.find((t) => t.name === "workspace_create")!)).toEqual(["environment", "seed_path", "name", "backend"]);
    expect(paramsOf(tools.find((t) => t.name === "workspace_export")!)).not.toContain("force");
    expect(tools.map((t) => t.name).filter((n) => /write|patch|sync|service|shell|snapshot/.test(n))).toEqual([]);
  });

  it("gives the review-eval mode a plain shell: no raw mode, no idle setting, no secrets", async () => {
    const { tools } = await toolsOf({ mode: "review-eval" });
    expect(paramsOf(tools.find((t) => t.name === "shell_read")!)).toEqual(["workspace_id", "shell_id", "cursor", "max_chars", "wait_for_pattern", "timeout_ms"]);
    expect(paramsOf(tools.find((t) => t.name === "shell_open")!)).toEqual(["workspace_id", "cwd"]);
    expect(paramsOf(tools.find((t) => t.name === "workspace_reset")!)).toEqual(["workspace_id", "snapshot"]);
  });

  it("writes descriptions for the mode's job, not the generic ones", async () => {
    const generic = (await toolsOf({ profile: "workspace-full" })).tools.find((t) => t.name === "workspace_exec")!.description;
    for (const mode of Object.keys(MCP_MODES)) {
      const exec = (await toolsOf({ mode })).tools.find((t) => t.name === "workspace_exec")!;
      expect(exec.description, mode).not.toBe(generic);
    }
  });

  it("shows a tool no surface knows about in workspace-full only", async () => {
    const defineExtra = (register: Register) =>
      register(
        "network_probe",
        { title: "probe", description: "A tool added by another tool file that no profile or mode lists yet; it must stay out of narrowed surfaces.", inputSchema: {}, outputSchema: { ok: z.boolean() } },
        async () => ok({ ok: true }, "ok"),
      );
    for (const [label, options] of SURFACES) {
      const client = await connect(options, defineExtra);
      const names = (await client.listTools()).tools.map((t) => t.name);
      await client.close();
      expect(names.includes("network_probe"), label).toBe(options.profile === "workspace-full");
    }
  });
});

describe("choosing a profile or mode", () => {
  it("refuses a profile and a mode together, with invalid_argument", () => {
    expect(() => resolveSurface({ profile: "workspace-core", mode: "inspect" })).toThrow(expect.objectContaining({ code: "invalid_argument" }));
  });

  it.each([
    [{ profile: "workspace-huge" }, /workspace-core/],
    [{ mode: "debug" }, /repro-fix/],
  ])("refuses an unknown name %j and lists the valid ones", (options, valid) => {
    try {
      resolveSurface(options);
      expect.unreachable();
    } catch (err) {
      expect((err as PyroError).code).toBe("invalid_argument");
      expect((err as PyroError).hint).toMatch(valid);
    }
  });
});

describe("bad arguments", () => {
  async function callError(options: { profile?: string; mode?: string }, name: string, args: Record<string, unknown>) {
    const client = await connect(options);
    try {
      const r = (await client.callTool({ name, arguments: args })) as CallToolResult;
      expect(r.isError).toBe(true);
      const text = r.content.map((c) => (c.type === "text" ? c.text : "")).join("\n");
      return { text, error: r._meta?.[ERROR_META_KEY] as { code: string; message: string; hint: string; details?: Record<string, unknown> } };
    } finally {
      await client.close();
    }
  }

  it("refuses an argument the narrowed tool does not take, and lists the ones it does", async () => {
    const { error, text } = await callError({}, "workspace_create", { environment: "debian:12", secrets: { TOKEN: "abcdefgh" } });
    expect(error.code).toBe("invalid_argument");
    expect(error.details).toMatchObject({ tool: "workspace_create", unknown_arguments: ["secrets"] });
    expect(error.hint).toContain("environment, name, labels, seed_path");
    expect(text).toMatch(/^\[invalid_argument\] invalid arguments for workspace_create/);
  });

  it("names the argument and the expected type when a value has the wrong type", async () => {
    const { error } = await callError({ mode: "repro-fix" }, "workspace_exec", { workspace_id: "w", command: "true", timeout_seconds: "soon" });
    expect(error.code).toBe("invalid_argument");
    expect(error.message).toMatch(/expected number.*timeout_seconds/);
  });

  it("reports a missing required argument", async () => {
    const { error } = await callError({}, "workspace_file_read", { workspace_id: "w" });
    expect(error.code).toBe("invalid_argument");
    expect(error.message).toMatch(/path/);
  });

  it("answers a call to a tool outside the profile with the tools it does offer", async () => {
    const { error } = await callError({ profile: "vm-run" }, "workspace_create", { environment: "debian:12" });
    expect(error.code).toBe("invalid_argument");
    expect(error.hint).toContain("vm_run");
  });
});

describe("errors a model can act on", () => {
  it("has a next step for exactly the error codes there are", () => {
    expect(Object.keys(MCP_NEXT_STEPS).sort()).toEqual(Object.keys(ERROR_CODES).sort());
  });

  it("has a next step for every error code, each one sentence", () => {
    for (const code of Object.keys(ERROR_CODES)) {
      const step = MCP_NEXT_STEPS[code as keyof typeof ERROR_CODES] ?? "";
      expect(step, code).toMatch(/^[A-Z].*[.)]$/);
      expect(step.split(/\.\s+[A-Z]/).length, `${code}: ${step}`).toBe(1);
    }
  });

  it("names only tools that exist in its next steps", () => {
    const named = Object.values(MCP_NEXT_STEPS).flatMap((s = "") => [...s.matchAll(/\b([a-z]+_[a-z_]+)\b/g)].map((m) => m[1]!));
    expect(named.filter((n) => !(MCP_TOOLS as readonly string[]).includes(n) && !["secret_names", "workspace_id", "output_path", "shell_id", "force"].includes(n))).toEqual([]);
  });

  it("tells a model with a stopped workspace to call workspace_start, in MCP terms rather than CLI ones", () => {
    const r = errorResult(new PyroError("workspace_stopped", "workspace w is stopped", { hint: "Call workspace_start (CLI: `pyro workspace start w`) first." }));
    const text = (r.content[0] as { text: string }).text;
    expect(text).toBe("[workspace_stopped] workspace w is stopped\nNext: Call workspace_start with this workspace_id (its files are kept), then retry.");
  });

  it("keeps an error's own specific hint where MCP has nothing better", () => {
    const r = errorResult(new PyroError("environment_not_installed", "debian:12-build is not installed", { hint: "Run `pyro env pull debian:12-build`." }));
    expect((r.content[0] as { text: string }).text).toBe("[environment_not_installed] debian:12-build is not installed\nNext: Run `pyro env pull debian:12-build`.");
  });

  it("carries the structured error exactly as the SDK throws it, whatever the text says", () => {
    const e = new PyroError("workspace_stopped", "workspace w is stopped", { hint: "Call workspace_start (CLI: `pyro workspace start w`) first.", details: { state: "stopped" } });
    expect(errorResult(e)._meta?.[ERROR_META_KEY]).toEqual(e.toJSON());
  });

  it("notes a tool an error's hint names that the server does not offer", () => {
    const err = errorResult(new PyroError("snapshot_not_found", "no snapshot named \"x\""));
    const r = noteUnavailable(err, MCP_TOOLS, (n) => n !== "snapshot_list", "mode inspect");
    expect(r.content).toHaveLength(2);
    expect((r.content[1] as { text: string }).text).toMatch(/snapshot_list is not offered by this server \(mode inspect\)/);
    expect(noteUnavailable(err, MCP_TOOLS, () => true, "profile workspace-full").content).toHaveLength(1);
  });

  it("never annotates a successful result, whose text may be command output naming anything", () => {
    expect(noteUnavailable(ok({}, "grep found snapshot_list in README"), MCP_TOOLS, () => false, "mode inspect").content).toHaveLength(1);
  });
});

describe("text for a context window", () => {
  it("resolves colours, cursor movement, progress bars and backspaces to what a terminal shows", () => {
    const raw = "\x1b[1;31mFAIL\x1b[0m test_x\r\n10%\r50%\r100%\ndone\x1b]0;title\x07!\nab\bc\x1b[2K\x1b(B\x07\n";
    expect(cleanTerminalOutput(raw)).toBe("FAIL test_x\n100%\ndone!\nac\n");
  });

  it("leaves ordinary text, tabs and newlines alone", () => {
    const text = "a\tb\nc — ü\n";
    expect(cleanTerminalOutput(text)).toBe(text);
  });

  it("shows control characters in file content as \\xNN instead of dropping them", () => {
    expect(escapeControls("red: \x1b[31m\tok\r\n")).toBe("red: \\x1b[31m\tok\r\n");
  });

  it("caps a list of lines and says how to see the rest", () => {
    expect(capLines(["a", "b", "c"], 2, (n) => `ask for ${n} more`)).toBe("a\nb\n[1 more not shown: ask for 1 more]");
  });

  // Cast: a field added to ExecResult later must not break this fixture; execText reads only these.
  const exec = (over: Partial<ExecResult>): ExecResult =>
    ({
      workspace_id: "w",
      sequence: 1,
      command: ["make"],
      shell: false,
      cwd: "/workspace",
      exit_code: 0,
      signal: null,
      timed_out: false,
      outcome: "exited",
      duration_ms: 12.4,
      started_at: "2026-01-01T00:00:00.000Z",
      stdout: "",
      stderr: "",
      stdout_info: { total_bytes: 0, head_bytes: 0, tail_bytes: 0, omitted_bytes: 0 },
      stderr_info: { total_bytes: 0, head_bytes: 0, tail_bytes: 0, omitted_bytes: 0 },
      truncated: false,
      ...over,
    }) as ExecResult;

  it.each([
    [{ exit_code: 2 }, "outcome=exited exit_code=2 in 12 ms (failed)"],
    [{ exit_code: null, timed_out: true, outcome: "timed_out" as const, duration_ms: 30000 }, "outcome=timed_out after 30000 ms: the whole process tree was killed"],
    [{ exit_code: null, signal: "SIGKILL", outcome: "signaled" as const }, "outcome=signaled signal=SIGKILL"],
    [{ exit_code: 127, outcome: "not_started" as const }, "outcome=not_started exit_code=127: command not found"],
  ])("classifies how a command ended in the first line: %j", (over, line) => {
    expect(execText(exec(over), { readFile: true }).split("\n")[0]).toContain(line);
  });

  it("says how much output was left out and gives the exact call that shows more", () => {
    const capped = exec({ stdout: "head\n[... omitted ...]\ntail", stdout_info: { total_bytes: 200_000, head_bytes: 512, tail_bytes: 512, omitted_bytes: 198_976 }, truncated: true });
    const withFiles = execText(capped, { readFile: true });
    expect(withFiles).toContain("stdout 194.3 KiB of 195.3 KiB");
    expect(withFiles).toContain('workspace_file_read(path="out.log", offset=...)');
    expect(withFiles).toContain("max_output_bytes=262144");
    expect(execText(capped, { readFile: false })).not.toContain("workspace_file_read");
  });
});
