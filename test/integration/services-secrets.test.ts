import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import type { PyroError } from "../../src/index.js";
import { Pyro } from "../../src/index.js";
import { CLI, cli, findLeaks, noLeaks, testHome, TEST_ENVIRONMENT } from "../helpers.js";

const SECRET = "sup3r-s3cret-t0ken-value";
const FILE_SECRET = "f1le-backed-s3cret";

let home: string;
let pyro: Pyro;
let wsId: string;

/** Everything pyro wrote on the host for a workspace except secrets.json, as one string. */
function hostRecords(id: string): string {
  const dir = path.join(home, "workspaces", id);
  return ["workspace.json", "history.jsonl", "events.jsonl", "services.json"]
    .map((f) => {
      try {
        return fs.readFileSync(path.join(dir, f), "utf8");
      } catch {
        return "";
      }
    })
    .join("\n");
}

beforeAll(async () => {
  home = testHome("svcsec");
  pyro = new Pyro({ home });
  const secretFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "pyro-secret-")), "token");
  fs.writeFileSync(secretFile, `${FILE_SECRET}\n`);
  const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "svcsec", secrets: { API_TOKEN: SECRET }, secretFiles: { FILE_TOKEN: secretFile } });
  wsId = ws.workspace_id;
});

afterAll(async () => {
  for (const w of (await pyro.listWorkspaces()).workspaces) await pyro.deleteWorkspace(w.workspace_id);
  pyro.close();
  expect(findLeaks(home)).toEqual(noLeaks());
});

describe("secrets", () => {
  it("are available inside as files and per-call environment, and never come back in output", async () => {
    const r = await pyro.execWorkspace(wsId, {
      command: 'echo "env=$API_TOKEN"; cat /run/pyro-secrets/API_TOKEN; echo; cat /run/pyro-secrets/FILE_TOKEN; echo; stat -c %a /run/pyro-secrets/API_TOKEN; { printf "sup3r-s3"; sleep 0.3; printf "cret-t0ken-value\\n"; } >&2',
      secretEnv: ["API_TOKEN"],
    });
    expect(r.stdout).toBe("env=[REDACTED]\n[REDACTED]\n[REDACTED]\n400\n");
    expect(r.stderr).toBe("[REDACTED]\n");
    // without --secret-env the variable is not set
    const plain = await pyro.execWorkspace(wsId, { command: 'echo "[${API_TOKEN:-unset}]"' });
    expect(plain.stdout).toBe("[unset]\n");
    // renamed into another variable
    const renamed = await pyro.execWorkspace(wsId, { command: 'test -n "$TOKEN" && echo set', secretEnv: { API_TOKEN: "TOKEN" } });
    expect(renamed.stdout).toBe("set\n");
  });

  it("are redacted from history, status, list, logs and the records pyro keeps on the host", async () => {
    await pyro.execWorkspace(wsId, { command: ["echo", SECRET] });
    const logs = await pyro.logsWorkspace(wsId);
    expect(JSON.stringify(logs)).not.toContain(SECRET);
    expect(JSON.stringify(logs)).toContain("[REDACTED]");
    expect(JSON.stringify(await pyro.statusWorkspace(wsId))).not.toContain(SECRET);
    expect(JSON.stringify(await pyro.listWorkspaces())).not.toContain(SECRET);
    expect((await pyro.statusWorkspace(wsId)).secret_names).toEqual(["API_TOKEN", "FILE_TOKEN"]);
    const records = hostRecords(wsId);
    expect(records).not.toContain(SECRET);
    expect(records).not.toContain(FILE_SECRET);
    // the material itself is stored apart, owner-only
    const stat = fs.statSync(path.join(home, "workspaces", wsId, "secrets.json"));
    expect(stat.mode & 0o777).toBe(0o600);
  });

  it("are redacted from service logs, also when printed in pieces", async () => {
    const s = await pyro.startService(wsId, "leaky", {
      command: 'echo "key=$API_TOKEN"; printf "sup3r-s3"; sleep 0.5; printf "cret-t0ken-value\\n"; touch ready; sleep 100',
      readiness: { type: "file", path: "ready" },
      secretEnv: ["API_TOKEN"],
    });
    expect(s.state).toBe("ready");
    const logs = await pyro.logsService(wsId, "leaky");
    expect(logs.stdout).toBe("key=[REDACTED]\n[REDACTED]\n");
    await pyro.stopService(wsId, "leaky");
    expect(hostRecords(wsId)).not.toContain(SECRET);
  });

  it("survive a reset and a stop/start: re-materialised, still redacted", async () => {
    await pyro.resetWorkspace(wsId);
    const r = await pyro.execWorkspace(wsId, { command: "cat /run/pyro-secrets/API_TOKEN", secretEnv: ["API_TOKEN"] });
    expect(r.stdout).toBe("[REDACTED]");
    await pyro.stopWorkspace(wsId);
    await pyro.startWorkspace(wsId);
    expect((await pyro.execWorkspace(wsId, { command: "wc -c < /run/pyro-secrets/FILE_TOKEN" })).stdout.trim()).toBe(String(FILE_SECRET.length));
  });

  it("refuse unknown names and bad input with stable codes, without echoing values", async () => {
    const err = await pyro.execWorkspace(wsId, { command: "true", secretEnv: ["NOPE"] }).catch((e: unknown) => e);
    expect((err as PyroError).code).toBe("secret_not_found");
    const bad = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, secrets: { "bad-name": "whatever-value" } }).catch((e: unknown) => e);
    expect((bad as PyroError).code).toBe("invalid_secret");
    const missing = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, secretFiles: { X: "/nonexistent/secret" } }).catch((e: unknown) => e);
    expect((missing as PyroError).code).toBe("invalid_secret");
    const r = cli(home, ["workspace", "create", TEST_ENVIRONMENT, "--secret", "novalue", "--json"]);
    expect(r.json().error.code).toBe("invalid_secret");
    expect(r.stdout).not.toContain("novalue");
  });
});

describe("services through the SDK, the CLI and MCP", () => {
  it("start with readiness, list, status, logs and stop agree across surfaces", async () => {
    const started = cli(home, ["workspace", "service", "start", "svcsec", "web", "--ready-file", "up", "--json", "--shell", "sleep 0.2; touch up; echo hello-from-web; sleep 100"]);
    expect(started.code).toBe(0);
    expect(started.json()).toMatchObject({ name: "web", state: "ready" });
    const viaSdk = await pyro.statusService(wsId, "web");
    expect(viaSdk.state).toBe("ready");
    expect(viaSdk.ready_at).not.toBeNull();
    const status = await pyro.statusWorkspace(wsId);
    expect(status.running_service_count).toBeGreaterThanOrEqual(1);

    const client = new Client({ name: "test", version: "1.0.0" });
    await client.connect(new StdioClientTransport({ command: process.execPath, args: [CLI, "mcp", "serve", "--profile", "workspace-full"], env: { ...process.env, PYRO_HOME: home } as Record<string, string> }));
    try {
      const list = await client.callTool({ name: "service_list", arguments: { workspace_id: wsId } });
      const names = (list.structuredContent as { services: { name: string; state: string }[] }).services.map((s) => `${s.name}:${s.state}`);
      expect(names).toContain("web:ready");
      const logs = await client.callTool({ name: "service_logs", arguments: { workspace_id: wsId, service_name: "web" } });
      expect((logs.structuredContent as { stdout: string }).stdout).toContain("hello-from-web");
      const stopped = await client.callTool({ name: "service_stop", arguments: { workspace_id: wsId, service_name: "web" } });
      expect((stopped.structuredContent as { state: string }).state).toBe("stopped");
      const missing = await client.callTool({ name: "service_status", arguments: { workspace_id: wsId, service_name: "nope" } });
      expect(missing.isError).toBe(true);
      expect((missing._meta as Record<string, { code: string }>)["pyro/error"]!.code).toBe("service_not_found");
    } finally {
      await client.close();
    }
    // logs stay readable after stop
    expect((await pyro.logsService(wsId, "web")).stdout).toContain("hello-from-web");
  });

  it("reports an early exit and a readiness timeout, and a failed start exits non-zero on the CLI", async () => {
    const early = await pyro.startService(wsId, "crash", { command: "echo boom >&2; exit 3", readiness: { type: "tcp", port: 9 } });
    expect(early.state).toBe("exited");
    expect(early.exit_code).toBe(3);
    expect(early.log_tail?.stderr).toContain("boom");
    const slow = cli(home, ["workspace", "service", "start", "svcsec", "never", "--ready-tcp", "7777", "--ready-timeout-seconds", "1", "--json", "--", "sleep", "100"]);
    expect(slow.code).toBe(1);
    expect(slow.json()).toMatchObject({ state: "failed" });
    const ps = await pyro.execWorkspace(wsId, { command: "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done" });
    expect(ps.stdout).not.toContain("sleep 100");
  });

  it("does not restart services after a workspace stop, and says so", async () => {
    await pyro.startService(wsId, "keep", { command: "sleep 300" });
    await pyro.stopWorkspace(wsId);
    await pyro.startWorkspace(wsId);
    const s = await pyro.statusService(wsId, "keep");
    expect(s.state).toBe("stopped");
    expect(s.reason).toMatch(/not restarted/);
  });

  it("validates readiness and names with stable codes", async () => {
    const bad = await pyro.startService(wsId, "x", { command: "true", readiness: { type: "tcp", port: 70000 } as never }).catch((e: unknown) => e);
    expect((bad as PyroError).code).toBe("invalid_argument");
    const badName = await pyro.startService(wsId, "bad name", { command: "true" }).catch((e: unknown) => e);
    expect((badName as PyroError).code).toBe("invalid_name");
    const both = cli(home, ["workspace", "service", "start", "svcsec", "y", "--ready-file", "a", "--ready-tcp", "1", "--json", "--", "true"]);
    expect(both.json().error.code).toBe("invalid_argument");
  });
});
