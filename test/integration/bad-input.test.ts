/**
 * Bad input, refused clearly: each kind of input that used to be accepted, to hang or to fail
 * with an unrelated error is attacked through all three surfaces (the CLI as a user runs it, the
 * SDK, and MCP through the official client), and must come back as its stable code with a
 * message naming what was wrong, without echoing a secret's value, and without creating
 * anything. One workspace is shared by the items that need one.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { Pyro } from "../../src/index.js";
import { createMcpServer } from "../../src/mcp/server.js";
import { cli, findLeaks, noLeaks, testHome, TEST_BACKEND, TEST_ENVIRONMENT } from "../helpers.js";

/** Secret values that must never appear in any output. */
const VALUE_A = "first-s3cret-value-aaaa";
const VALUE_B = "second-s3cret-value-bbbb";

let home: string;
let files: string;
let pyro: Pyro;
let client: Client;
let wsId: string;
let socketServer: net.Server;

interface Refusal {
  code: string;
  message: string;
  /** Everything the surface printed or returned, to search for secret values. */
  output: string;
}

/** The workspaces on disk besides the shared one: must stay empty after every refusal. */
function otherWorkspaces(): string[] {
  return fs.readdirSync(path.join(home, "workspaces")).filter((id) => id !== wsId);
}

/** A CLI call that must fail with a JSON error (`--json` goes before `--`: after it, it is the command's). */
function cliRefusal(args: string[]): Refusal {
  const dashes = args.indexOf("--");
  const r = cli(home, dashes === -1 ? [...args, "--json"] : [...args.slice(0, dashes), "--json", ...args.slice(dashes)]);
  expect(r.code, `pyro ${args.join(" ")} was expected to fail:\n${r.stdout}${r.stderr}`).not.toBe(0);
  const error = r.json().error as { code: string; message: string };
  return { code: error.code, message: error.message, output: r.stdout + r.stderr };
}

/** An SDK call that must reject with a PyroError. */
async function sdkRefusal(call: Promise<unknown>): Promise<Refusal> {
  const err = await call.then(
    (value) => {
      throw new Error(`expected a refusal, got ${JSON.stringify(value).slice(0, 300)}`);
    },
    (e: unknown) => e as { code: string; message: string; hint?: string },
  );
  return { code: err.code, message: err.message, output: `${err.message}\n${err.hint ?? ""}` };
}

/** An MCP tool call that must be an `isError` result carrying pyro's error. */
async function mcpRefusal(name: string, args: Record<string, unknown>): Promise<Refusal> {
  const result = await client.callTool({ name, arguments: args });
  expect(result.isError, `${name} was expected to fail: ${JSON.stringify(result.structuredContent)}`).toBe(true);
  const error = (result._meta as Record<string, { code: string; message: string }>)["pyro/error"]!;
  return { code: error.code, message: error.message, output: JSON.stringify(result) };
}

function expectRefused(r: Refusal, code: string, names: (string | RegExp)[]): void {
  expect(r.code, r.output).toBe(code);
  for (const name of names) expect(r.message).toMatch(name);
  for (const value of [VALUE_A, VALUE_B]) expect(r.output).not.toContain(value);
}

beforeAll(async () => {
  home = testHome("badinput");
  files = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-badinput-files-"));
  pyro = new Pyro({ home });
  const server = createMcpServer(pyro, { profile: "workspace-full" });
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  client = new Client({ name: "pyro-bad-input-test", version: "0.0.0" });
  await Promise.all([server.connect(serverSide), client.connect(clientSide)]);
  wsId = (await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "bad-input" })).workspace_id;
  fs.writeFileSync(path.join(files, "a.txt"), `${VALUE_A}\n`);
  fs.writeFileSync(path.join(files, "b.txt"), `${VALUE_B}\n`);
  expect(spawnSync("mkfifo", [path.join(files, "fifo")]).status).toBe(0);
  fs.mkdirSync(path.join(files, "dir"));
  socketServer = net.createServer();
  await new Promise<void>((r) => socketServer.listen(path.join(files, "socket"), () => r()));
});

afterAll(async () => {
  socketServer?.close();
  for (const w of (await pyro.listWorkspaces()).workspaces) await pyro.deleteWorkspace(w.workspace_id);
  await client?.close();
  pyro?.close();
  fs.rmSync(files, { recursive: true, force: true });
  expect(findLeaks(home)).toEqual(noLeaks());
});

describe("bad input is refused with its code, naming what is wrong, creating nothing", () => {
  it("refuses a secret name given twice on the CLI, or in both secrets and secret files, naming it and never its value", async () => {
    const a = path.join(files, "a.txt");
    const b = path.join(files, "b.txt");
    for (const args of [
      ["--secret", `TOKEN=${VALUE_A}`, "--secret", `TOKEN=${VALUE_B}`],
      ["--secret-file", `TOKEN=${a}`, "--secret-file", `TOKEN=${b}`],
      ["--secret", `TOKEN=${VALUE_A}`, "--secret-file", `TOKEN=${b}`],
    ]) {
      expectRefused(cliRefusal(["workspace", "create", TEST_ENVIRONMENT, ...args]), "invalid_secret", ["TOKEN", /twice/]);
    }
    expectRefused(await sdkRefusal(pyro.createWorkspace({ environment: TEST_ENVIRONMENT, secrets: { TOKEN: VALUE_A }, secretFiles: { TOKEN: b } })), "invalid_secret", ["TOKEN", /twice/]);
    expectRefused(await mcpRefusal("workspace_create", { environment: TEST_ENVIRONMENT, secrets: { TOKEN: VALUE_A }, secret_files: { TOKEN: b } }), "invalid_secret", ["TOKEN", /twice/]);
    expect(otherWorkspaces()).toEqual([]);
  });

  it("refuses a FIFO, device, socket or directory as a secret file at once", async () => {
    const started = Date.now();
    const kinds: [string, RegExp][] = [
      [path.join(files, "fifo"), /fifo/],
      ["/dev/null", /device/],
      [path.join(files, "socket"), /socket/],
      [path.join(files, "dir"), /directory/],
    ];
    for (const [file, kind] of kinds) {
      expectRefused(await sdkRefusal(pyro.createWorkspace({ environment: TEST_ENVIRONMENT, secretFiles: { TOKEN: file } })), "invalid_secret", ["TOKEN", kind]);
    }
    expectRefused(cliRefusal(["workspace", "create", TEST_ENVIRONMENT, "--secret-file", `TOKEN=${path.join(files, "fifo")}`]), "invalid_secret", ["TOKEN", /fifo/]);
    expectRefused(await mcpRefusal("workspace_create", { environment: TEST_ENVIRONMENT, secret_files: { TOKEN: path.join(files, "fifo") } }), "invalid_secret", ["TOKEN", /fifo/]);
    // Reading a FIFO used to wait for a writer until the 30 s test timeout.
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(otherWorkspaces()).toEqual([]);
  });

  it("refuses a binary patch with patch_failed saying binary patches are not supported, changing nothing", async () => {
    const literal = ["diff --git a/logo.png b/logo.png", "new file mode 100644", "index 0000000..1b2c3d4", "GIT binary patch", "literal 4", "LcmZ?d00001", "", "literal 0", "HcmV?d00001", "", ""].join("\n");
    const summary = ["diff --git a/logo.png b/logo.png", "index 1234567..89abcde 100644", "Binary files a/logo.png and b/logo.png differ", ""].join("\n");
    for (const patch of [literal, summary]) {
      expectRefused(await sdkRefusal(pyro.applyWorkspacePatch(wsId, { patch })), "patch_failed", ["logo.png", /binary patches are not supported/]);
      expectRefused(await mcpRefusal("workspace_patch_apply", { workspace_id: wsId, patch }), "patch_failed", ["logo.png", /binary patches are not supported/]);
    }
    const patchFile = path.join(files, "binary.patch");
    fs.writeFileSync(patchFile, literal);
    expectRefused(cliRefusal(["workspace", "patch", "apply", wsId, "--patch-file", patchFile]), "patch_failed", ["logo.png", /binary patches are not supported/]);
    // The new file of the binary patch used to be created, empty.
    const list = await pyro.listWorkspaceFiles(wsId);
    expect(JSON.stringify(list.entries)).not.toContain("logo.png");
  });

  it("refuses a workspace name shaped like a workspace id or equal to another's id, on create and update", async () => {
    const idShaped = "abcdefghijk2";
    expectRefused(cliRefusal(["workspace", "create", TEST_ENVIRONMENT, "--name", idShaped]), "invalid_name", [idShaped, /ambiguous/]);
    expectRefused(await sdkRefusal(pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: wsId })), "invalid_name", [wsId, /ambiguous/]);
    expectRefused(await mcpRefusal("workspace_create", { environment: TEST_ENVIRONMENT, name: idShaped }), "invalid_name", [idShaped, /ambiguous/]);
    expect(otherWorkspaces()).toEqual([]);
    expectRefused(cliRefusal(["workspace", "update", wsId, "--name", idShaped]), "invalid_name", [idShaped, /ambiguous/]);
    expectRefused(await sdkRefusal(pyro.updateWorkspace(wsId, { name: idShaped })), "invalid_name", [idShaped, /ambiguous/]);
    expectRefused(await mcpRefusal("workspace_update", { workspace_id: wsId, name: wsId }), "invalid_name", [wsId, /ambiguous/]);
    expect((await pyro.statusWorkspace(wsId)).name).toBe("bad-input");
  });

  it("refuses a cwd that does not exist or is not a directory with path_not_found naming it, on exec, run, service start and shell open", async () => {
    await pyro.writeWorkspaceFile(wsId, "plain.txt", { text: "not a directory\n" });
    expectRefused(await sdkRefusal(pyro.execWorkspace(wsId, { command: ["true"], cwd: "missing/dir" })), "path_not_found", ["/workspace/missing/dir", /does not exist/]);
    expectRefused(await sdkRefusal(pyro.execWorkspace(wsId, { command: ["true"], cwd: "plain.txt" })), "path_not_found", ["/workspace/plain.txt", /not a directory/]);
    expectRefused(cliRefusal(["workspace", "exec", wsId, "--cwd", "missing", "--", "true"]), "path_not_found", ["/workspace/missing"]);
    expectRefused(await mcpRefusal("workspace_exec", { workspace_id: wsId, command: ["true"], cwd: "missing" }), "path_not_found", ["/workspace/missing"]);
    expectRefused(await sdkRefusal(pyro.startService(wsId, "web", { command: ["sleep", "60"], cwd: "missing" })), "path_not_found", ["/workspace/missing"]);
    expectRefused(await sdkRefusal(pyro.openShell(wsId, { cwd: "missing" })), "path_not_found", ["/workspace/missing"]);
    expectRefused(cliRefusal(["run", TEST_ENVIRONMENT, "--cwd", "/tmp/missing", "--", "true"]), "path_not_found", ["/tmp/missing"]);
    expect((await pyro.listServices(wsId)).services).toEqual([]);
    expect((await pyro.listShells(wsId)).shells).toEqual([]);
    expect((await pyro.logsWorkspace(wsId)).commands).toEqual([]);
    expect(otherWorkspaces()).toEqual([]);
  });

  it("refuses an argv or environment too large to send with invalid_argument naming the limit, before anything is sent", async () => {
    const wide = Array.from({ length: 5 }, () => "x".repeat(120_000));
    expectRefused(await sdkRefusal(pyro.execWorkspace(wsId, { command: ["echo", ...wide] })), "invalid_argument", [/524288/]);
    expectRefused(await sdkRefusal(pyro.execWorkspace(wsId, { command: ["echo", "y".repeat(200_000)] })), "invalid_argument", [/131071/]);
    expectRefused(await sdkRefusal(pyro.execWorkspace(wsId, { command: ["true"], env: { BIG: "z".repeat(200_000) } })), "invalid_argument", [/131071/]);
    expectRefused(await mcpRefusal("workspace_exec", { workspace_id: wsId, command: ["echo", ...wide] }), "invalid_argument", [/524288/]);
    expectRefused(cliRefusal(["workspace", "exec", wsId, "--", "echo", ...wide]), "invalid_argument", [/524288/]);
    expectRefused(await sdkRefusal(pyro.runInVm({ environment: TEST_ENVIRONMENT, command: ["echo", ...wide] })), "invalid_argument", [/524288/]);
    expect((await pyro.logsWorkspace(wsId)).commands).toEqual([]);
    expect(otherWorkspaces()).toEqual([]);
  });

  it("refuses a memory limit below the backend's minimum with invalid_argument stating it", async () => {
    const minimum = TEST_BACKEND === "vm" ? "256" : "32";
    expectRefused(cliRefusal(["workspace", "create", TEST_ENVIRONMENT, "--mem-mib", "8"]), "invalid_argument", ["mem_mib", minimum]);
    expectRefused(cliRefusal(["run", TEST_ENVIRONMENT, "--mem-mib", "8", "--", "true"]), "invalid_argument", ["mem_mib", minimum]);
    expectRefused(await sdkRefusal(pyro.createWorkspace({ environment: TEST_ENVIRONMENT, memMib: 8 })), "invalid_argument", ["mem_mib", minimum]);
    expectRefused(await mcpRefusal("workspace_create", { environment: TEST_ENVIRONMENT, mem_mib: 8 }), "invalid_argument", ["mem_mib", minimum]);
    expect(otherWorkspaces()).toEqual([]);
  });

  it("refuses CLI numbers that are not plain decimal, naming the flag", () => {
    for (const value of ["0x10", " 1", "1e3", "", "12abc", "+5"]) {
      expectRefused(cliRefusal(["workspace", "create", TEST_ENVIRONMENT, "--mem-mib", value]), "invalid_argument", ["--mem-mib"]);
      expectRefused(cliRefusal(["workspace", "exec", wsId, "--timeout-seconds", value, "--", "true"]), "invalid_argument", ["--timeout-seconds"]);
    }
    // A fraction only where the value may have one.
    expectRefused(cliRefusal(["workspace", "create", TEST_ENVIRONMENT, "--mem-mib", "512.5"]), "invalid_argument", ["--mem-mib", /whole number/]);
    const ok = cli(home, ["workspace", "exec", wsId, "--timeout-seconds", "2.5", "--", "true"]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(otherWorkspaces()).toEqual([]);
  });

  it("caps --max-output-bytes at 8 MiB, and leaves --json after -- to the command", () => {
    expectRefused(cliRefusal(["workspace", "exec", wsId, "--max-output-bytes", String(8 * 1024 * 1024 + 1), "--", "true"]), "invalid_argument", ["max_output_bytes", "8388608"]);
    const r = cli(home, ["workspace", "exec", wsId, "--", "echo", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe("--json\n");
  });
});
