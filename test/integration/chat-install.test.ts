// From a chat there is no host shell for `pyro env pull`: MCP `workspace_create` builds a catalog
// environment that is not built yet, from Debian packages, reporting each build step as an MCP
// progress notification, and then creates the workspace on it. Uses a state directory of its
// own, with no environment at all, so the build is real and touches nothing shared.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { Pyro } from "../../src/index.js";
import { removeTree } from "../../src/runtime/confine/trees.js";
import { connectMcp, expectPyroError, findLeaks, noLeaks } from "../helpers.js";

const TIMEOUT = 960_000;
const ENVIRONMENT = "debian:12-base";

describe("a catalog environment built from the chat", () => {
  let home: string;
  let pyro: Pyro;

  beforeAll(() => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-chat-install-"));
    pyro = new Pyro({ home });
  });

  afterAll(async () => {
    pyro?.close();
    if (home) await removeTree(home);
  }, TIMEOUT);

  it("a build that outlasts the chat's bound stops, answers environment_build_failed with the bound, and leaves nothing", async () => {
    process.env.PYRO_CHAT_INSTALL_TIMEOUT_SECONDS = "2";
    const { client } = await connectMcp(home, [], "chat-install-timeout");
    delete process.env.PYRO_CHAT_INSTALL_TIMEOUT_SECONDS;
    try {
      const result = (await client.callTool({ name: "workspace_create", arguments: { environment: ENVIRONMENT } }, undefined, { timeout: TIMEOUT })) as CallToolResult;
      expect(result.isError).toBe(true);
      const error = result._meta?.["pyro/error"] as { code: string; hint: string; details: Record<string, unknown> };
      expect(error.code).toBe("environment_build_failed");
      expect(error.details).toMatchObject({ environment: ENVIRONMENT, timeout_seconds: 2 });
      expect(error.hint).toContain(`pyro env pull ${ENVIRONMENT}`);
    } finally {
      await client.close();
    }
    // A bound that is not a whole number of seconds from 1 to 3600 is refused before anything starts.
    process.env.PYRO_CHAT_INSTALL_TIMEOUT_SECONDS = "soon";
    const bad = await connectMcp(home, [], "chat-install-bad-bound");
    delete process.env.PYRO_CHAT_INSTALL_TIMEOUT_SECONDS;
    try {
      const result = (await bad.client.callTool({ name: "workspace_create", arguments: { environment: ENVIRONMENT } })) as CallToolResult;
      expect(result.isError).toBe(true);
      expect((result._meta?.["pyro/error"] as { code: string; message: string })).toMatchObject({ code: "invalid_argument", message: expect.stringContaining("PYRO_CHAT_INSTALL_TIMEOUT_SECONDS") });
    } finally {
      await bad.client.close();
    }
    // Cancelled, not half-installed: no environment, no workspace, no build left running.
    await expectPyroError(pyro.inspectEnvironment(ENVIRONMENT), "environment_not_installed");
    expect((await pyro.listWorkspaces()).count).toBe(0);
    expect(findLeaks(home)).toEqual(noLeaks());
  }, TIMEOUT);

  it("workspace_create builds a catalog environment that is not built yet, with a progress notification per step, then creates on it", async () => {
    await expectPyroError(pyro.inspectEnvironment(ENVIRONMENT), "environment_not_installed");
    // A debootstrap on a loaded machine can take longer than the default 300 s: the bound is
    // raised for this test, as a host with a slow mirror would.
    process.env.PYRO_CHAT_INSTALL_TIMEOUT_SECONDS = "900";
    const { client } = await connectMcp(home, [], "chat-install");
    delete process.env.PYRO_CHAT_INSTALL_TIMEOUT_SECONDS;
    try {
      const progress: string[] = [];
      const result = (await client.callTool({ name: "workspace_create", arguments: { environment: ENVIRONMENT, name: "built-from-chat" } }, undefined, {
        onprogress: (p) => progress.push(String(p.message)),
        timeout: TIMEOUT,
      })) as CallToolResult;
      expect(result.isError ?? false, JSON.stringify(result.content)).toBe(false);
      const ws = result.structuredContent as { workspace_id: string; environment: string; state: string };
      expect(ws).toMatchObject({ environment: ENVIRONMENT, state: "running" });
      // The build's own steps reached the chat, ending with the environment ready.
      expect(progress.length).toBeGreaterThan(1);
      expect(progress.some((m) => m.includes(`${ENVIRONMENT} is ready`))).toBe(true);
      expect((await pyro.inspectEnvironment(ENVIRONMENT)).name).toBe(ENVIRONMENT);

      const exec = (await client.callTool({ name: "workspace_exec", arguments: { workspace_id: ws.workspace_id, command: ["cat", "/etc/debian_version"] } })) as CallToolResult;
      expect((exec.structuredContent as { stdout: string }).stdout).toMatch(/^12\./);

      // Built now: the next create builds nothing and says nothing.
      const quiet: string[] = [];
      const again = (await client.callTool({ name: "workspace_create", arguments: { environment: ENVIRONMENT } }, undefined, { onprogress: (p) => quiet.push(String(p.message)) })) as CallToolResult;
      expect(again.isError ?? false, JSON.stringify(again.content)).toBe(false);
      expect(quiet).toEqual([]);
      for (const id of [ws.workspace_id, (again.structuredContent as { workspace_id: string }).workspace_id]) {
        await client.callTool({ name: "workspace_delete", arguments: { workspace_id: id } });
      }
    } finally {
      await client.close();
    }
    expect(findLeaks(home)).toEqual(noLeaks());
  }, TIMEOUT);
});
