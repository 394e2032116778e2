import { describe, expect, it } from "vitest";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { createMcpServer, MCP_LIST_LIMIT } from "../../src/mcp/server.js";
import type { Pyro } from "../../src/sdk/pyro.js";
import type { WorkspaceInfo } from "../../src/core/types.js";

function info(i: number): WorkspaceInfo {
  const at = new Date(Date.UTC(2026, 0, 1, 0, 0, 1000 - i)).toISOString();
  return {
    workspace_id: `ws${String(i).padStart(10, "0")}`,
    name: `w-${i}`,
    labels: {},
    environment: "debian:12",
    state: "running",
    backend: "namespace",
    isolation: "namespace backend",
    workspace_path: "/workspace",
    created_at: at,
    last_activity_at: at,
    ttl_seconds: null,
    expires_at: null,
    vcpu_count: 1,
    mem_mib: 1024,
    disk_mib: 8192,
    disk: { enforcement: "kernel", used_bytes: 0, measured_at: null, note: null },
    limits: null,
    network_policy: "off",
    network: { policy: "off", allow_hosts: [], allow_cidrs: [], allow_host_loopback: false, published_ports: [], note: null },
    workspace_seed: { mode: "empty", seed_path: null, origin_kind: "empty", origin_ref: null, entries: 0, bytes: 0 },
    command_count: 0,
    last_command: null,
    failure: null,
    state_reason: null,
    reset_count: 0,
    last_reset_at: null,
    secret_names: [],
    service_count: 0,
    running_service_count: 0,
  };
}

describe("workspace_list is bounded for a context window", () => {
  it("returns the most recently active workspaces up to the limit and says how many it left out", async () => {
    const all = Array.from({ length: MCP_LIST_LIMIT + 10 }, (_, i) => info(i));
    // Only the method this tool calls; the rest of Pyro is never touched.
    const pyro = { listWorkspaces: async () => ({ count: all.length, workspaces: all, reaped: [] }) } as unknown as Pyro;
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    const server = createMcpServer(pyro, { profile: "workspace-full" });
    await server.connect(serverSide);
    const client = new Client({ name: "t", version: "1" });
    await client.connect(clientSide);
    try {
      const r = await client.callTool({ name: "workspace_list", arguments: {} });
      expect(r.isError, JSON.stringify(r.content)).toBeFalsy();
      const s = r.structuredContent as { count: number; workspaces: WorkspaceInfo[]; omitted: number };
      expect(s.count).toBe(MCP_LIST_LIMIT + 10);
      expect(s.workspaces).toHaveLength(MCP_LIST_LIMIT);
      expect(s.workspaces[0]!.name).toBe("w-0");
      expect(s.omitted).toBe(10);
      expect(JSON.stringify(r.content)).toContain("10 less recently active workspaces not listed");
    } finally {
      await client.close();
    }
  });
});
