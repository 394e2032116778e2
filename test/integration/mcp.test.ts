/**
 * The MCP server end to end, started the way a chat host starts it (`pyro mcp serve` on stdio)
 * and driven by the official MCP client. `callTool` validates every structured result against
 * the tool's output schema, so each passing call also proves that schema matches the SDK's
 * result. Also shows that MCP, the SDK and the CLI share one state directory at the same time.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { Pyro } from "../../src/index.js";
import type { CommandRecord, ExecResult, RunResult, WorkspaceInfo } from "../../src/index.js";
import { MCP_TOOLS } from "../../src/contract.js";
import { ERROR_META_KEY } from "../../src/mcp/server.js";
import { cli, connectMcp, findLeaks, noLeaks, testHome, TEST_ENVIRONMENT } from "../helpers.js";

let home: string;
let client: Client;
let serverStderr: () => string = () => "";

beforeAll(async () => {
  home = testHome("mcp");
  // The full tool set; the default profile (workspace-core) is covered by mcp-profiles.test.ts.
  ({ client, stderr: serverStderr } = await connectMcp(home, ["--profile", "workspace-full"], "pyro-mcp-test"));
});

afterAll(async () => {
  await client?.close();
  // Whatever a failed test left behind is removed through the SDK; then nothing may remain.
  const pyro = new Pyro({ home });
  for (const w of (await pyro.listWorkspaces()).workspaces) await pyro.deleteWorkspace(w.workspace_id);
  pyro.close();
  expect(findLeaks(home)).toEqual(noLeaks());
});

/** A tool call that must succeed; returns its structured content (already schema-checked by the client). */
async function call<T>(name: string, args: Record<string, unknown> = {}): Promise<T> {
  const result = (await client.callTool({ name, arguments: args })) as CallToolResult;
  expect(result.isError ?? false, `${name} failed: ${JSON.stringify(result.content)}\n${serverStderr()}`).toBe(false);
  expect(result.content[0]?.type).toBe("text");
  return result.structuredContent as T;
}

interface ToolError {
  code: string;
  message: string;
  hint?: string;
  text: string;
}

/**
 * A tool call that must fail. Errors are `isError` results whose text starts with the code and
 * whose `_meta["pyro/error"]` carries the structured error; they reach the official client as
 * results (never as thrown protocol errors), because they carry no `structuredContent` for the
 * client to check against the tool's output schema.
 */
async function callError(name: string, args: Record<string, unknown>): Promise<ToolError> {
  const result = (await client.callTool({ name, arguments: args })) as CallToolResult;
  expect(result.isError, `${name} was expected to fail: ${JSON.stringify(result.structuredContent)}`).toBe(true);
  expect(result.structuredContent).toBeUndefined();
  const text = result.content.map((c) => (c.type === "text" ? c.text : "")).join("\n");
  const error = result._meta?.[ERROR_META_KEY] as Omit<ToolError, "text">;
  expect(error.message.length).toBeGreaterThan(0);
  expect(text.startsWith(`[${error.code}] `)).toBe(true);
  return { ...error, text };
}

describe("an agent driving a workspace over MCP", () => {
  let workspaceId: string;

  it("sees exactly the contract's tools", async () => {
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name)).toEqual([...MCP_TOOLS]);
  });

  it("runs a one-shot command with vm_run and keeps no workspace", async () => {
    const r = await call<RunResult>("vm_run", { environment: TEST_ENVIRONMENT, command: "git --version" });
    expect(r.exit_code).toBe(0);
    expect(r.outcome).toBe("exited");
    expect(r.stdout).toMatch(/^git version 2\./);
    expect(r.cleaned_up).toBe(true);
    expect((await call<{ count: number }>("workspace_list")).count).toBe(0);
  });

  it("creates a named, labelled workspace and finds it again by name", async () => {
    const ws = await call<WorkspaceInfo>("workspace_create", { environment: TEST_ENVIRONMENT, name: "mcp-issue-42", labels: { issue: "42" }, backend: "namespace" });
    expect(ws).toMatchObject({ name: "mcp-issue-42", labels: { issue: "42" }, state: "running", backend: "namespace", workspace_path: "/workspace", command_count: 0 });
    workspaceId = ws.workspace_id;

    const list = await call<{ count: number; workspaces: WorkspaceInfo[] }>("workspace_list");
    expect(list.workspaces.find((w) => w.name === "mcp-issue-42")?.workspace_id).toBe(workspaceId);
  });

  it("runs a command string through a shell and a command array as argv, in a persistent /workspace", async () => {
    const shell = await call<ExecResult>("workspace_exec", { workspace_id: "mcp-issue-42", command: "echo hello > note.txt && tr a-z A-Z < note.txt" });
    expect(shell).toMatchObject({ exit_code: 0, shell: true, cwd: "/workspace", stdout: "HELLO\n", sequence: 1 });

    const argv = await call<ExecResult>("workspace_exec", { workspace_id: workspaceId, command: ["cat", "note.txt"] });
    expect(argv).toMatchObject({ exit_code: 0, shell: false, stdout: "hello\n", sequence: 2 });

    const literal = await call<ExecResult>("workspace_exec", { workspace_id: workspaceId, command: ["echo", "$HOME", "a && b"] });
    expect(literal.stdout).toBe("$HOME a && b\n");

    const failing = await call<ExecResult>("workspace_exec", { workspace_id: workspaceId, command: "echo oops >&2; exit 3" });
    expect(failing).toMatchObject({ exit_code: 3, outcome: "exited", stderr: "oops\n" });
  });

  it("renames and relabels a workspace with workspace_update", async () => {
    const ws = await call<WorkspaceInfo>("workspace_update", { workspace_id: workspaceId, name: "mcp-review", labels: { stage: "review" }, clear_labels: ["issue"] });
    expect(ws).toMatchObject({ workspace_id: workspaceId, name: "mcp-review", labels: { stage: "review" } });
    expect((await call<WorkspaceInfo>("workspace_status", { workspace_id: "mcp-review" })).workspace_id).toBe(workspaceId);
  });

  it("shows the command history with workspace_logs, newest last, limited on request", async () => {
    const logs = await call<{ count: number; total: number; commands: CommandRecord[] }>("workspace_logs", { workspace_id: workspaceId });
    expect(logs.total).toBe(4);
    expect(logs.commands.map((c) => [c.sequence, c.shell, c.exit_code])).toEqual([
      [1, true, 0],
      [2, false, 0],
      [3, false, 0],
      [4, true, 3],
    ]);
    expect(logs.commands[1]!.command).toEqual(["cat", "note.txt"]);

    const last = await call<{ count: number; total: number; commands: CommandRecord[] }>("workspace_logs", { workspace_id: workspaceId, limit: 1 });
    expect(last).toMatchObject({ count: 1, total: 4 });
    expect(last.commands[0]!.sequence).toBe(4);
  });

  it("refuses to exec in a stopped workspace, says to call workspace_start, and keeps /workspace across stop and start", async () => {
    expect((await call<WorkspaceInfo>("workspace_stop", { workspace_id: workspaceId })).state).toBe("stopped");

    const stopped = await callError("workspace_exec", { workspace_id: workspaceId, command: ["cat", "note.txt"] });
    expect(stopped.code).toBe("workspace_stopped");
    expect(stopped.text).toContain("workspace_start");

    expect((await call<WorkspaceInfo>("workspace_start", { workspace_id: workspaceId })).state).toBe("running");
    const again = await call<ExecResult>("workspace_exec", { workspace_id: workspaceId, command: ["cat", "note.txt"] });
    expect(again.stdout).toBe("hello\n");

    const status = await call<WorkspaceInfo>("workspace_status", { workspace_id: workspaceId });
    expect(status).toMatchObject({ state: "running", command_count: 5, last_command: { sequence: 5, command: "cat note.txt", exit_code: 0 } });
  });

  it("shares the workspace with the SDK and the CLI while the server runs", async () => {
    const pyro = new Pyro({ home });
    try {
      expect(await pyro.statusWorkspace(workspaceId)).toMatchObject({ name: "mcp-review", state: "running" });
      const fromSdk = await pyro.execWorkspace("mcp-review", { command: ["cat", "note.txt"] });
      expect(fromSdk.stdout).toBe("hello\n");
    } finally {
      pyro.close();
    }

    const list = cli(home, ["workspace", "list", "--json"]);
    expect(list.code).toBe(0);
    expect(list.json().workspaces.map((w: WorkspaceInfo) => w.workspace_id)).toContain(workspaceId);
    const fromCli = cli(home, ["workspace", "exec", "mcp-review", "--", "sh", "-c", "echo cli >> note.txt"]);
    expect(fromCli.code).toBe(0);

    // The server sees what the SDK and the CLI did, in one history.
    const seen = await call<ExecResult>("workspace_exec", { workspace_id: workspaceId, command: ["cat", "note.txt"] });
    expect(seen.stdout).toBe("hello\ncli\n");
    expect(seen.sequence).toBe(8);
  });

  it("deletes the workspace with workspace_delete, after which its id is unknown", async () => {
    expect(await call("workspace_delete", { workspace_id: workspaceId })).toEqual({ workspace_id: workspaceId, deleted: true });
    expect((await callError("workspace_status", { workspace_id: workspaceId })).code).toBe("workspace_not_found");
    expect((await call<{ count: number }>("workspace_list")).count).toBe(0);
  });
});

describe("errors an agent can act on", () => {
  it("reports an unknown workspace as workspace_not_found and points at workspace_list", async () => {
    const e = await callError("workspace_exec", { workspace_id: "no-such-workspace", command: "true" });
    expect(e.code).toBe("workspace_not_found");
    expect(e.hint).toContain("workspace_list");
  });

  it.each([
    ["a timeout that is not a number", { workspace_id: "anything", command: "true", timeout_seconds: "abc" }],
    ["a missing command", { workspace_id: "anything" }],
    ["an empty argv", { workspace_id: "anything", command: [] }],
    ["labels that are not strings", { workspace_id: "anything", labels: { issue: 42 } }],
  ])("reports %s as invalid_argument, like every other bad input", async (_what, args) => {
    const tool = "labels" in args ? "workspace_update" : "workspace_exec";
    const e = await callError(tool, args);
    expect(e.code).toBe("invalid_argument");
    expect(e.hint).toMatch(/input schema/);
  });

  it("refuses a backend other than namespace, vm or auto as invalid_argument, naming the three, and creates nothing", async () => {
    for (const tool of ["workspace_create", "vm_run"]) {
      const e = await callError(tool, { environment: TEST_ENVIRONMENT, command: "true", backend: "docker" });
      expect(e.code).toBe("invalid_argument");
      expect(e.message).toMatch(/namespace.*vm.*auto/);
    }
    expect((await call<{ count: number }>("workspace_list")).count).toBe(0);
  });

  // A catalog environment not built here is built by these calls (chat-install.test.ts); a name
  // pyro cannot install is refused before anything is made.
  it("reports an environment pyro cannot install as environment_unknown, with the names it knows, and creates nothing", async () => {
    const create = await callError("workspace_create", { environment: "no-such-env" });
    expect(create.code).toBe("environment_unknown");
    expect(create.hint).toContain("debian:12");
    expect((await callError("vm_run", { environment: "no-such-env", command: "true" })).code).toBe("environment_unknown");
    expect((await callError("workspace_create", { environment: "node:22" })).hint).toContain("docker.io/library/node:22");
    expect((await call<{ count: number }>("workspace_list")).count).toBe(0);
  });
});
