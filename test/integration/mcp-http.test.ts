/**
 * `pyro mcp serve --http`: Streamable HTTP for hosts that connect to a URL, started from the CLI
 * as a user would and driven by the official client's StreamableHTTPClientTransport. Loopback by
 * default, a bearer token on every request (401 without it), a Host check against DNS
 * rebinding, and no bind beyond loopback unless the user chose a token.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { Pyro } from "../../src/index.js";
import type { ExecResult, WorkspaceInfo } from "../../src/index.js";
import { MCP_MODES, MCP_PROFILES } from "../../src/contract.js";
import { cli, CLI, findLeaks, noLeaks, testHome, TEST_ENVIRONMENT } from "../helpers.js";

let home: string;
const servers: ChildProcess[] = [];

beforeAll(() => {
  home = testHome("mcp-http");
});

afterAll(async () => {
  for (const s of servers) s.kill("SIGTERM");
  const pyro = new Pyro({ home });
  for (const w of (await pyro.listWorkspaces()).workspaces) await pyro.deleteWorkspace(w.workspace_id);
  pyro.close();
  expect(findLeaks(home)).toEqual(noLeaks());
});

/** Starts `pyro mcp serve --http ARGS` and waits for the lines it prints on stderr. */
async function serveHttp(args: string[], env: Record<string, string> = {}): Promise<{ url: string; token: string | null; stderr: () => string; child: ChildProcess }> {
  const child = spawn(process.execPath, [CLI, "mcp", "serve", "--http", "--port", "0", ...args], { env: { ...process.env, PYRO_HOME: home, ...env }, stdio: ["ignore", "ignore", "pipe"] });
  servers.push(child);
  let stderr = "";
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${stderr}`)), 30_000);
    child.stderr!.on("data", (d: Buffer) => {
      stderr += d.toString();
      // The token line, when there is one, comes first; "listening on" means ready.
      if (/listening on \S+\n/.test(stderr)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on("exit", (code) => reject(new Error(`server exited ${code}: ${stderr}`)));
  });
  const url = /listening on (\S+)/.exec(stderr)![1]!;
  const token = /bearer token \(generated[^)]*\): (\S+)/.exec(stderr)?.[1] ?? null;
  return { url, token, stderr: () => stderr, child };
}

async function connect(url: string, token: string | null): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL(url), token ? { requestInit: { headers: { Authorization: `Bearer ${token}` } } } : {});
  const client = new Client({ name: "pyro-http-test", version: "0.0.0" });
  await client.connect(transport);
  return client;
}

describe("Streamable HTTP on loopback with a generated token", () => {
  let url: string;
  let token: string;

  beforeAll(async () => {
    const s = await serveHttp([]);
    url = s.url;
    expect(s.token, s.stderr()).not.toBeNull();
    token = s.token!;
  });

  it("binds to 127.0.0.1 at /mcp and prints a long random token on stderr", () => {
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/mcp$/);
    expect(token).toMatch(/^[A-Za-z0-9_-]{40,}$/);
  });

  it("serves the default workspace-core tools to the official client sending the token", async () => {
    const client = await connect(url, token);
    try {
      expect((await client.listTools()).tools.map((t) => t.name)).toEqual([...MCP_PROFILES["workspace-core"]]);
      const created = (await client.callTool({ name: "workspace_create", arguments: { environment: TEST_ENVIRONMENT, name: "over-http" } })) as CallToolResult;
      expect(created.isError ?? false).toBe(false);
      const id = (created.structuredContent as unknown as WorkspaceInfo).workspace_id;
      const exec = (await client.callTool({ name: "workspace_exec", arguments: { workspace_id: id, command: "echo over http" } })) as CallToolResult;
      expect((exec.structuredContent as unknown as ExecResult).stdout).toBe("over http\n");
      await client.callTool({ name: "workspace_delete", arguments: { workspace_id: id } });
    } finally {
      await client.close();
    }
  });

  it("answers 401 with a Bearer challenge to a request without the token, and the client cannot connect", async () => {
    const r = await fetch(url, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream" }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }) });
    expect(r.status).toBe(401);
    expect(r.headers.get("www-authenticate")).toBe('Bearer realm="pyro"');
    expect(((await r.json()) as { error: { message: string } }).error.message).toContain("bearer token");
    await expect(connect(url, null)).rejects.toMatchObject({ code: 401 });
  });

  it("answers 401 to a wrong token of the same length", async () => {
    const wrong = token.slice(0, -1) + (token.endsWith("A") ? "B" : "A");
    await expect(connect(url, wrong)).rejects.toMatchObject({ code: 401 });
  });

  it("refuses a request whose Host is not loopback, even with the token (DNS rebinding)", async () => {
    const port = new URL(url).port;
    const r = await new Promise<number>((resolve, reject) => {
      import("node:http").then((http) => {
        const req = http.request({ host: "127.0.0.1", port, path: "/mcp", method: "POST", headers: { host: `evil.example:${port}`, authorization: `Bearer ${token}`, "content-type": "application/json" } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on("error", reject);
        req.end("{}");
      }, reject);
    });
    expect(r).toBe(403);
  });
});

describe("choosing the token and the bind", () => {
  it("uses PYRO_MCP_TOKEN and a mode, printing no token", async () => {
    const chosen = "a-token-the-user-chose-0123456789";
    const s = await serveHttp(["--mode", "inspect"], { PYRO_MCP_TOKEN: chosen });
    expect(s.token).toBeNull();
    expect(s.stderr()).not.toContain(chosen);
    const client = await connect(s.url, chosen);
    expect((await client.listTools()).tools.map((t) => t.name)).toEqual([...MCP_MODES.inspect]);
    await client.close();
    s.child.kill("SIGTERM");
  });

  it("refuses to bind beyond loopback without a token, with invalid_argument and the reason", () => {
    const r = cli(home, ["mcp", "serve", "--http", "--host", "0.0.0.0", "--port", "0"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("error [invalid_argument]: refusing to serve MCP on 0.0.0.0, which is not loopback, without a bearer token");
    expect(r.stderr).toContain("hint: Pass --token (or set PYRO_MCP_TOKEN)");
  });

  it("binds beyond loopback when the user gives a token", async () => {
    const s = await serveHttp(["--host", "0.0.0.0", "--token", "another-long-token-0123456789"]);
    expect(s.url).toMatch(/^http:\/\/0\.0\.0\.0:\d+\/mcp$/);
    const client = await connect(s.url.replace("0.0.0.0", "127.0.0.1"), "another-long-token-0123456789");
    expect((await client.listTools()).tools.length).toBe(MCP_PROFILES["workspace-core"].length);
    await client.close();
    s.child.kill("SIGTERM");
  });

  it("refuses a short token", () => {
    const r = cli(home, ["mcp", "serve", "--http", "--port", "0", "--token", "short"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("the bearer token must be at least 16 characters");
  });

  it("refuses --token without --http", () => {
    const r = cli(home, ["mcp", "serve", "--token", "a-token-the-user-chose-0123456789"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("--host, --port and --token apply to --http only");
  });
});
