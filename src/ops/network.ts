/**
 * A workspace's network, shown and changed live, declared once (see op.ts). Shown in the
 * workspace-full profile only: narrowed surfaces list their arguments explicitly and leave these
 * out (see mcp/surfaces.ts).
 */
import * as z from "zod";
import type { NetworkShowResult } from "../core/network.js";
import { networkFields, workspaceField } from "./fields.js";
import { field, given, op } from "./op.js";
import * as render from "./render.js";
import { networkShowResult } from "./schemas.js";
import { networkOptions } from "./workspace.js";

function networkText(r: NetworkShowResult): string {
  const allow = [...r.allow_hosts, ...r.allow_cidrs];
  const lines = [
    `network policy ${r.policy}${r.policy === "off" ? " (no network)" : allow.length ? ` (allow-list: ${allow.join(", ")})` : " (all destinations)"}; host loopback ${r.allow_host_loopback ? "allowed" : "blocked"}; ${r.applied ? "applied now" : "applied at the next start"}`,
    ...r.published_ports.map((p) => `published: ${p.address} → service ${p.service}, guest port ${p.guest_port}`),
    ...(r.note ? [`note: ${r.note}`] : []),
  ];
  return lines.join("\n");
}

export const workspaceNetworkShow = op({
  mcp: "workspace_network_show",
  sdk: "showWorkspaceNetwork",
  cli: "workspace network show",
  summary: "Show the policy, allow-lists, host loopback, published ports and what is applied now",
  title: "Show a workspace's network",
  description:
    "Show a workspace's network policy (off / egress / egress+published-ports), its allow-list of hosts and CIDRs, whether the host's loopback is reachable, the published ports with their host addresses, and whether the policy is applied to the running sandbox.",
  input: { workspace_id: workspaceField },
  output: networkShowResult,
  annotations: { readOnlyHint: true },
  run: (pyro, a) => pyro.showWorkspaceNetwork(a.workspace_id),
  text: networkText,
  human: render.network,
});

export const workspaceNetworkSet = op({
  mcp: "workspace_network_set",
  sdk: "setWorkspaceNetwork",
  cli: "workspace network set",
  summary: "Change the network live: policy, allow-list entries (added), host loopback",
  title: "Change a workspace's network",
  description:
    "Change a workspace's network while it runs (no restart): network_policy off / egress / egress+published-ports; allow_hosts and allow_cidrs are ADDED to the allow-list (clear_allow_list empties it first; an empty allow-list allows every destination); allow_host_loopback lets the workspace reach the host's own services. Use it when a result's network_notices says something was blocked and the task needs it.",
  input: {
    workspace_id: workspaceField,
    network_policy: networkFields.network_policy,
    allow_hosts: field(z.array(z.string()).optional().describe('Host names to add to the allow-list, e.g. pypi.org or *.pythonhosted.org (a "*." entry matches every name below it).'), { flag: "--allow-host <name>", repeat: true }),
    allow_cidrs: field(z.array(z.string()).optional().describe("IPv4 addresses or CIDRs to add to the allow-list, e.g. 10.1.0.0/16."), { flag: "--allow-cidr <cidr>", repeat: true }),
    clear_allow_list: field(z.boolean().optional().describe("Empty the allow-list before adding (no allow-list: all egress is allowed).")),
    allow_host_loopback: field(z.boolean().optional().describe("true: the host's loopback (at 10.0.2.2) and addresses are reachable; false: blocked (the default)."), { negatable: true }),
  },
  output: networkShowResult,
  run: (pyro, a) => pyro.setWorkspaceNetwork(a.workspace_id, { ...networkOptions(a), ...given({ clearAllowList: a.clear_allow_list }) }),
  text: networkText,
  human: render.network,
});
