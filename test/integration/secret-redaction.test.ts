/**
 * A secret's value never comes back from pyro, whatever path it takes: typed as the command,
 * as the working directory or in argv (the result, `workspace logs`, history.jsonl), printed by
 * a shell in pieces with pauses and read in small windows (raw and plain), held in a file that
 * `workspace diff` and `file read` show; on the SDK, the CLI and MCP alike. `export` stays
 * byte-exact and says a value is inside. Afterwards nothing pyro stored for the workspace holds
 * the value, except secrets.json.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { PyroError } from "../../src/index.js";
import { Pyro } from "../../src/index.js";
import { ERROR_META_KEY } from "../../src/mcp/server.js";
import { cli, connectMcp, findLeaks, noLeaks, testHome, TEST_ENVIRONMENT } from "../helpers.js";

const VALUE = "pyro-t0ken-7c41d9e2b85a";
const HALF = 11;
const FIRST = VALUE.slice(0, HALF);
const SECOND = VALUE.slice(HALF);

let home: string;
let pyro: Pyro;
let client: Client;
let serverStderr: () => string;
/** The workspace for commands and shells: nothing in it ever holds the value as a file. */
let wsId: string;
/** The workspace whose files hold the value (diff, read, export). */
let filesId: string;

/** Every piece of the value 6 bytes or longer that `text` shows. */
function pieces(text: string): string[] {
  const found = new Set<string>();
  for (let i = 0; i + 6 <= VALUE.length; i++) if (text.includes(VALUE.slice(i, i + 6))) found.add(VALUE.slice(i, i + 6));
  return [...found];
}

function historyFile(id: string): string {
  return fs.readFileSync(path.join(home, "workspaces", id, "history.jsonl"), "utf8");
}

async function mcpCall(name: string, args: Record<string, unknown>): Promise<CallToolResult> {
  return (await client.callTool({ name, arguments: args })) as CallToolResult;
}

const textOf = (r: CallToolResult) => r.content.map((c) => (c.type === "text" ? c.text : "")).join("\n");

beforeAll(async () => {
  home = testHome("secredact");
  pyro = new Pyro({ home });
  wsId = (await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "redact-cmds", secrets: { API_TOKEN: VALUE } })).workspace_id;
  filesId = (await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "redact-files", secrets: { API_TOKEN: VALUE } })).workspace_id;
  ({ client, stderr: serverStderr } = await connectMcp(home, ["--profile", "workspace-full"], "pyro-secret-redaction-test"));
});

afterAll(async () => {
  await client?.close();
  for (const id of [wsId, filesId]) if (id) await pyro.deleteWorkspace(id).catch(() => undefined);
  pyro.close();
  expect(findLeaks(home)).toEqual(noLeaks());
});

describe("a value typed by the caller", () => {
  it("as the command comes back redacted from the result, workspace logs and history.jsonl", async () => {
    const r = await pyro.execWorkspace(wsId, { command: [VALUE, "--flag"] });
    expect(r.outcome).toBe("not_started");
    expect(r.stderr).toBe("pyro: command not found: [REDACTED]\n");
    expect(r.command).toEqual(["[REDACTED]", "--flag"]);
    expect(pieces(JSON.stringify(r))).toEqual([]);
    const logs = await pyro.logsWorkspace(wsId);
    expect(logs.commands.at(-1)!.command).toEqual(["[REDACTED]", "--flag"]);
    expect(pieces(JSON.stringify(logs))).toEqual([]);
    expect(pieces(historyFile(wsId))).toEqual([]);
  });

  it("as the command through the CLI and MCP is redacted from what each prints", async () => {
    const viaCli = cli(home, ["workspace", "exec", wsId, "--json", "--", VALUE]);
    expect(viaCli.code).toBe(127);
    expect(viaCli.json().stderr).toBe("pyro: command not found: [REDACTED]\n");
    expect(pieces(viaCli.stdout + viaCli.stderr)).toEqual([]);
    const plain = cli(home, ["workspace", "exec", wsId, "--", VALUE]);
    expect(pieces(plain.stdout + plain.stderr)).toEqual([]);
    const logs = cli(home, ["workspace", "logs", wsId]);
    expect(logs.stdout).toContain("[REDACTED]");
    expect(pieces(logs.stdout + logs.stderr)).toEqual([]);

    const viaMcp = await mcpCall("workspace_exec", { workspace_id: wsId, command: [VALUE] });
    expect(pieces(JSON.stringify(viaMcp.structuredContent) + textOf(viaMcp)), serverStderr()).toEqual([]);
    expect((viaMcp.structuredContent as { command: string[] }).command).toEqual(["[REDACTED]"]);
    const mcpLogs = await mcpCall("workspace_logs", { workspace_id: wsId });
    expect(pieces(JSON.stringify(mcpLogs.structuredContent) + textOf(mcpLogs))).toEqual([]);
  });

  it("as --cwd that does not exist is redacted from the error on every surface", async () => {
    const err = (await pyro.execWorkspace(wsId, { command: ["true"], cwd: VALUE }).catch((e: unknown) => e)) as PyroError;
    expect(err.code).toBe("path_not_found");
    expect(err.message).toContain("[REDACTED]");
    expect(pieces(`${err.message} ${err.hint ?? ""} ${JSON.stringify(err.details ?? {})} ${err.stack ?? ""}`)).toEqual([]);

    const viaCli = cli(home, ["workspace", "exec", wsId, "--cwd", `sub/${VALUE}`, "--json", "--", "true"]);
    expect(viaCli.json().error.code).toBe("path_not_found");
    expect(pieces(viaCli.stdout + viaCli.stderr)).toEqual([]);

    const viaMcp = await mcpCall("workspace_exec", { workspace_id: wsId, command: "true", cwd: VALUE });
    expect(viaMcp.isError).toBe(true);
    expect((viaMcp._meta?.[ERROR_META_KEY] as { code: string }).code).toBe("path_not_found");
    expect(pieces(JSON.stringify(viaMcp))).toEqual([]);
  });

  it("as --cwd that exists, or in argv, is redacted from the result, the logs and history.jsonl", async () => {
    await pyro.execWorkspace(filesId, { command: ["mkdir", "-p", VALUE] });
    const r = await pyro.execWorkspace(filesId, { command: ["sh", "-c", 'pwd; echo "arg=$1"', "sh", VALUE], cwd: VALUE });
    expect(r.exit_code).toBe(0);
    expect(r.stdout).toBe("/workspace/[REDACTED]\narg=[REDACTED]\n");
    expect(r.cwd).toBe("/workspace/[REDACTED]");
    expect(r.command.at(-1)).toBe("[REDACTED]");
    expect(pieces(JSON.stringify(r))).toEqual([]);
    expect(pieces(JSON.stringify(await pyro.logsWorkspace(filesId)))).toEqual([]);
    expect(pieces(historyFile(filesId))).toEqual([]);
    expect(pieces(JSON.stringify(await pyro.summarizeWorkspace(filesId)))).toEqual([]);
  });
});

describe("a command printing the value", () => {
  it("only in part before it exits shows no piece of it, in exec output or service logs", async () => {
    const r = await pyro.execWorkspace(wsId, { command: `head -c ${HALF} /run/pyro-secrets/API_TOKEN; head -c ${HALF} /run/pyro-secrets/API_TOKEN >&2` });
    expect(r.stdout).toBe("[REDACTED]");
    expect(r.stderr).toBe("[REDACTED]");
    await pyro.startService(wsId, "half", { command: `head -c ${HALF} /run/pyro-secrets/API_TOKEN` });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const logs = await pyro.logsService(wsId, "half");
    expect(pieces(logs.stdout)).toEqual([]);
  });
});

describe("a shell printing the value", () => {
  it("in halves with pauses longer than the hold-back shows neither half, raw or plain, in any read window", async () => {
    const shell = await pyro.openShell(wsId, { cols: 200 });
    // The typed line holds no piece of the value (it is read from the secret's file), and its
    // echo does not hold the end marker either.
    const line = `head -c ${HALF} /run/pyro-secrets/API_TOKEN; sleep 2.5; tail -c +${HALF + 1} /run/pyro-secrets/API_TOKEN; sleep 2.5; echo; echo done-$((6 * 7))`;
    await pyro.writeShell(wsId, shell.shell_id, { input: line });
    // Read while the pieces arrive, as a caller polling the shell would.
    let cursor = 0;
    const raw: string[] = [];
    // 7 bytes per read: enough rounds for the echoed line and prompts twice over, plus the waits.
    for (let round = 0; round < 400; round++) {
      const r = await pyro.readShell(wsId, shell.shell_id, { cursor, maxChars: 7, waitForIdleMs: 300, timeoutMs: 1000 });
      raw.push(r.output);
      cursor = r.next_cursor;
      if (raw.join("").includes("done-42\r\n")) break;
    }
    const all = raw.join("");
    expect(all).toContain("done-42");
    expect(all).toContain("[REDACTED]");
    expect(all).not.toContain(FIRST);
    expect(all).not.toContain(SECOND);
    expect(pieces(all)).toEqual([]);
    // Every small window over the whole log, and the rendered screen at several budgets.
    for (let at = 0; ; ) {
      const r = await pyro.readShell(wsId, shell.shell_id, { cursor: at, maxChars: 5 });
      expect(pieces(r.output)).toEqual([]);
      if (r.next_cursor === at) break;
      at = r.next_cursor;
    }
    for (const maxChars of [8, 15, 40, 4000]) {
      const r = await pyro.readShell(wsId, shell.shell_id, { cursor: 0, maxChars, plain: true });
      expect(pieces(r.output)).toEqual([]);
    }
    expect((await pyro.readShell(wsId, shell.shell_id, { cursor: 0, plain: true })).output).toMatch(/\[REDACTED\]\s*\ndone-42/);
    await pyro.closeShell(wsId, shell.shell_id);
  });

  it("in quick pieces through MCP comes back as one [REDACTED], raw and plain", async () => {
    const opened = await mcpCall("shell_open", { workspace_id: wsId });
    const shellId = (opened.structuredContent as { shell_id: string }).shell_id;
    await mcpCall("shell_write", { workspace_id: wsId, shell_id: shellId, input: `head -c 5 /run/pyro-secrets/API_TOKEN; sleep 0.3; tail -c +6 /run/pyro-secrets/API_TOKEN; echo; echo quick-done` });
    for (const plain of [false, true]) {
      const r = await mcpCall("shell_read", { workspace_id: wsId, shell_id: shellId, cursor: 0, plain, wait_for_pattern: "^quick-done", timeout_ms: 10_000 });
      const output = (r.structuredContent as { output: string }).output;
      expect(output).toContain("[REDACTED]");
      expect(pieces(output + textOf(r))).toEqual([]);
    }
    await mcpCall("shell_close", { workspace_id: wsId, shell_id: shellId });
  });
});

describe("a file holding the value", () => {
  beforeAll(async () => {
    await pyro.execWorkspace(filesId, { command: 'printf "user: me\\ntoken: %s\\nend\\n" "$(cat /run/pyro-secrets/API_TOKEN)" > creds.txt; echo plain > other.txt' });
  });

  it("is redacted from workspace diff, which says so", async () => {
    const d = await pyro.diffWorkspace(filesId);
    expect(d.patch).toContain("+token: [REDACTED]");
    expect(d.secrets_redacted).toBe(true);
    expect(pieces(JSON.stringify(d))).toEqual([]);
    const only = await pyro.diffWorkspace(filesId, { path: "other.txt" });
    expect(only.secrets_redacted).toBe(false);

    const viaCli = cli(home, ["workspace", "diff", filesId]);
    expect(viaCli.stdout).toContain("[REDACTED]");
    expect(viaCli.stderr).toContain("shown as [REDACTED]");
    expect(pieces(viaCli.stdout + viaCli.stderr)).toEqual([]);
    const viaMcp = await mcpCall("workspace_diff", { workspace_id: filesId });
    expect((viaMcp.structuredContent as { secrets_redacted: boolean }).secrets_redacted).toBe(true);
    expect(pieces(JSON.stringify(viaMcp))).toEqual([]);
  });

  it("is redacted from file read, also when a read window cuts the value in two", async () => {
    const whole = await pyro.readWorkspaceFile(filesId, "creds.txt");
    expect(whole.content).toBe("user: me\ntoken: [REDACTED]\nend\n");
    expect(whole.secrets_redacted).toBe(true);
    // Windows of 5 bytes from every start: each cut falls somewhere inside the value.
    for (let offset = 0; offset < whole.size; offset += 3) {
      const w = await pyro.readWorkspaceFile(filesId, "creds.txt", { offset, maxBytes: 5 });
      expect(pieces(w.content), `window at ${offset}: ${w.content}`).toEqual([]);
      expect(w.content.length).toBeGreaterThan(0);
    }
    const plainFile = await pyro.readWorkspaceFile(filesId, "other.txt");
    expect(plainFile).toMatchObject({ content: "plain\n", secrets_redacted: false });

    const viaMcp = await mcpCall("workspace_file_read", { workspace_id: filesId, path: "creds.txt", offset: 20, max_bytes: 6 });
    expect(viaMcp.isError ?? false).toBe(false);
    expect((viaMcp.structuredContent as { content: string; secrets_redacted: boolean }).secrets_redacted).toBe(true);
    expect(pieces(JSON.stringify(viaMcp))).toEqual([]);
    const viaCli = cli(home, ["workspace", "file", "read", filesId, "creds.txt"]);
    expect(viaCli.stdout).toBe("user: me\ntoken: [REDACTED]\nend\n");
    expect(pieces(viaCli.stdout + viaCli.stderr)).toEqual([]);
  });

  it("is exported byte for byte, and the export says a secret's value is inside", async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-secredact-out-"));
    try {
      const e = await pyro.exportWorkspace(filesId, "creds.txt", { outputPath: path.join(out, "creds.txt") });
      expect(fs.readFileSync(path.join(out, "creds.txt"), "utf8")).toBe(`user: me\ntoken: ${VALUE}\nend\n`);
      expect(e.contains_secret_values).toBe(true);
      expect(e.note).toMatch(/secret's value/);
      const clean = await pyro.exportWorkspace(filesId, "other.txt", { outputPath: path.join(out, "other.txt") });
      expect(clean.contains_secret_values).toBe(false);
      const viaCli = cli(home, ["workspace", "export", filesId, ".", "--output", path.join(out, "tree"), "--json"]);
      expect(viaCli.json()).toMatchObject({ contains_secret_values: true });
      expect(fs.readFileSync(path.join(out, "tree", "creds.txt"), "utf8")).toContain(VALUE);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });
});

describe("what pyro stores", () => {
  it("holds the value nowhere but secrets.json after all of the above", async () => {
    await pyro.stopWorkspace(wsId);
    const holders: string[] = [];
    const walk = (dir: string) => {
      let names: fs.Dirent[];
      try {
        names = fs.readdirSync(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const d of names) {
        const p = path.join(dir, d.name);
        if (d.name.includes(VALUE)) holders.push(p);
        if (d.isDirectory()) walk(p);
        else if (d.isFile() && d.name !== "secrets.json") {
          try {
            if (fs.readFileSync(p).includes(VALUE)) holders.push(p);
          } catch {
            // unreadable to this user (a guest id's file): not pyro's record
          }
        }
      }
    };
    walk(path.join(home, "workspaces", wsId));
    walk(path.join(home, "run"));
    expect(holders).toEqual([]);
    await pyro.startWorkspace(wsId);
  });
});
