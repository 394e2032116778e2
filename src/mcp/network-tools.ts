/**
 * MCP tools for a workspace's network (show and change the policy live), the network arguments
 * other tools take (workspace_create, vm_run, service_start's `publish`), and how network
 * notices read in a text result. Shown in the workspace-full profile only: narrowed surfaces
 * list their arguments explicitly and leave these out (see surfaces.ts).
 */
import * as z from "zod";
import type { Pyro } from "../sdk/pyro.js";
import type { NetworkOptions, NetworkShowResult } from "../core/network.js";
import type { Register } from "./registry.js";
import { noticeLines as opNoticeLines } from "../ops/workspace.js";
import { ok, tool } from "./results.js";
import { networkShowResult, workspaceRef } from "../ops/schemas.js";

export const publishInput = z
  .array(z.union([z.number().int(), z.string(), z.object({ guest_port: z.number().int(), host_port: z.number().int().optional() })]))
  .optional()
  .describe(
    'Guest TCP ports to make reachable on the host\'s 127.0.0.1: 8000 (a free host port is picked), "8000:18000", or {"guest_port": 8000, "host_port": 18000}. Needs network_policy egress+published-ports. The result lists the real host address.',
  );

export type NetworkArgs = { network_policy?: string; allow_hosts?: string[]; allow_cidrs?: string[]; allow_host_loopback?: boolean };

/** The SDK's network options from MCP arguments. */
export function networkArgs(a: NetworkArgs): NetworkOptions {
  return {
    ...(a.network_policy !== undefined ? { networkPolicy: a.network_policy } : {}),
    ...(a.allow_hosts !== undefined ? { allowHosts: a.allow_hosts } : {}),
    ...(a.allow_cidrs !== undefined ? { allowCidrs: a.allow_cidrs } : {}),
    ...(a.allow_host_loopback !== undefined ? { allowHostLoopback: a.allow_host_loopback } : {}),
  };
}

/** Network notices as the last lines of a text result (see ops/workspace.ts). */
export function noticeLines(notices: string[] | undefined, register: Register): string {
  return opNoticeLines(notices, { surface: "mcp", offers: register.has });
}

function networkText(r: NetworkShowResult): string {
  const allow = [...r.allow_hosts, ...r.allow_cidrs];
  const lines = [
    `network policy ${r.policy}${r.policy === "off" ? " (no network)" : allow.length ? ` (allow-list: ${allow.join(", ")})` : " (all destinations)"}; host loopback ${r.allow_host_loopback ? "allowed" : "blocked"}; ${r.applied ? "applied now" : "applied at the next start"}`,
    ...r.published_ports.map((p) => `published: ${p.address} → service ${p.service}, guest port ${p.guest_port}`),
    ...(r.note ? [`note: ${r.note}`] : []),
  ];
  return lines.join("\n");
}

export function registerNetworkTools(register: Register, pyro: Pyro): void {
  register(
    "workspace_network_show",
    {
      title: "Show a workspace's network",
      description:
        "Show a workspace's network policy (off / egress / egress+published-ports), its allow-list of hosts and CIDRs, whether the host's loopback is reachable, the published ports with their host addresses, and whether the policy is applied to the running sandbox.",
      inputSchema: { workspace_id: workspaceRef },
      outputSchema: networkShowResult,
      annotations: { readOnlyHint: true },
    },
    tool(async (a: { workspace_id: string }) => {
      const r = await pyro.showWorkspaceNetwork(a.workspace_id);
      return ok(r, networkText(r));
    }),
  );

  register(
    "workspace_network_set",
    {
      title: "Change a workspace's network",
      description:
        "Change a workspace's network while it runs (no restart): network_policy off / egress / egress+published-ports; allow_hosts and allow_cidrs are ADDED to the allow-list (clear_allow_list empties it first; an empty allow-list allows every destination); allow_host_loopback lets the workspace reach the host's own services. Use it when a result's network_notices says something was blocked and the task needs it.",
      inputSchema: {
        workspace_id: workspaceRef,
        network_policy: z.enum(["off", "egress", "egress+published-ports"]).optional(),
        allow_hosts: z.array(z.string()).optional().describe('Host names to add to the allow-list, e.g. ["pypi.org", "*.pythonhosted.org"] (a "*." entry matches every name below it).'),
        allow_cidrs: z.array(z.string()).optional().describe('IPv4 addresses or CIDRs to add to the allow-list, e.g. ["10.1.0.0/16"].'),
        clear_allow_list: z.boolean().optional().describe("Empty the allow-list before adding."),
        allow_host_loopback: z.boolean().optional().describe("true: the host's loopback (at 10.0.2.2) and addresses are reachable; false: blocked (default)."),
      },
      outputSchema: networkShowResult,
    },
    tool(async (a: NetworkArgs & { workspace_id: string; clear_allow_list?: boolean }) => {
      const r = await pyro.setWorkspaceNetwork(a.workspace_id, { ...networkArgs(a), ...(a.clear_allow_list !== undefined ? { clearAllowList: a.clear_allow_list } : {}) });
      return ok(r, networkText(r));
    }),
  );
}
