/**
 * Network policy in the workspace's own terms: validating what a caller asks for (policy,
 * allow-lists, host loopback, published ports), the public shapes that describe it, and the
 * short notices that tell a model what was blocked and the exact call that would allow it. The
 * enforcement itself is the backend's (runtime/network/apply.ts). Pure; no I/O.
 */
import { PyroError } from "../shared/errors.js";
import { MAX_ALLOW_ENTRIES, normalizeCidr, normalizeHostPattern } from "../runtime/network/allow-list.js";
import type { NetworkDenial, NetworkPolicyName, NetworkSpec, PublishedPort, SandboxNetwork } from "../runtime/backend.js";

export const NETWORK_POLICIES = ["off", "egress", "egress+published-ports"] as const satisfies readonly NetworkPolicyName[];
export const DEFAULT_NETWORK_POLICY: NetworkPolicyName = "off";
/** At most this many notices in one result; the rest are counted. */
export const MAX_NOTICES = 6;

/** What a workspace record keeps besides `network_policy`. */
export interface NetworkConfig {
  allow_hosts: string[];
  allow_cidrs: string[];
  allow_host_loopback: boolean;
}

/** A published port as every surface shows it. */
export interface PublishedPortInfo {
  service: string;
  guest_port: number;
  host_address: "127.0.0.1";
  host_port: number;
  /** `127.0.0.1:PORT`, ready to connect to from the host. */
  address: string;
}

/** The network part of a workspace's status and list entries. */
export interface WorkspaceNetworkInfo {
  policy: NetworkPolicyName;
  allow_hosts: string[];
  allow_cidrs: string[];
  allow_host_loopback: boolean;
  published_ports: PublishedPortInfo[];
  /** Something to know about the network right now (e.g. a failed setup left it offline). */
  note: string | null;
}

/** `workspace network show` / `set`. */
export interface NetworkShowResult extends WorkspaceNetworkInfo {
  workspace_id: string;
  /** The sandbox runs with this policy applied now; false when stopped (applied at the next start). */
  applied: boolean;
  /** Denied attempts are recorded and reported as network_notices. */
  records_denials: boolean;
  /** The workspace's address on its user-mode network, when it has egress. */
  guest_address: string | null;
  /** Helper processes on the host for this workspace (both run in its cgroup). */
  helpers: { slirp4netns_pid: number | null; dns_forwarder_pid: number | null };
}

/** Network options as the SDK takes them (camelCase); every surface maps onto this. */
export interface NetworkOptions {
  /** Default "off". */
  networkPolicy?: string;
  /** Names (`example.org`) and wildcards (`*.example.org`); once any allow entry is given, everything else is denied. */
  allowHosts?: string[];
  /** IPv4 addresses or CIDRs. */
  allowCidrs?: string[];
  /** Let the workspace reach the host's own loopback (at 10.0.2.2) and addresses. Default false. */
  allowHostLoopback?: boolean;
}

/** A `network set` change: unset fields keep their value; lists are added to unless `clearAllowList`. */
export interface NetworkChange extends NetworkOptions {
  clearAllowList?: boolean;
}

export function validatePolicy(value: unknown): NetworkPolicyName {
  if (typeof value === "string" && (NETWORK_POLICIES as readonly string[]).includes(value)) return value as NetworkPolicyName;
  throw new PyroError("invalid_argument", `network policy must be one of ${NETWORK_POLICIES.join(", ")}, got ${JSON.stringify(String(value)).slice(0, 60)}`);
}

function stringList(value: unknown, what: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) throw new PyroError("invalid_argument", `${what} must be a list of strings`);
  return value;
}

export function validateHosts(value: unknown): string[] {
  return stringList(value, "allow_hosts").map((h) => {
    const r = normalizeHostPattern(h);
    if ("error" in r) throw new PyroError("invalid_argument", `allow-host ${r.error}`, { hint: "Use a name such as example.org, or *.example.org for every name below it." });
    return r.pattern;
  });
}

export function validateCidrs(value: unknown): string[] {
  return stringList(value, "allow_cidrs").map((c) => {
    const r = normalizeCidr(c);
    if ("error" in r) throw new PyroError("invalid_argument", `allow-cidr ${r.error}`);
    return r.cidr;
  });
}

function merged(a: string[], b: string[], what: string): string[] {
  const out = [...new Set([...a, ...b])].sort();
  if (out.length > MAX_ALLOW_ENTRIES) throw new PyroError("invalid_argument", `at most ${MAX_ALLOW_ENTRIES} ${what} entries`);
  return out;
}

/** A workspace record's allow-lists; records from before network policies have none. */
export function networkConfig(record: { network?: NetworkConfig }): NetworkConfig {
  return record.network ?? { allow_hosts: [], allow_cidrs: [], allow_host_loopback: false };
}

/** The policy and config of a new workspace. */
export function networkFromOptions(opts: NetworkOptions): { policy: NetworkPolicyName; config: NetworkConfig } {
  const policy = opts.networkPolicy === undefined ? DEFAULT_NETWORK_POLICY : validatePolicy(opts.networkPolicy);
  const hosts = merged([], validateHosts(opts.allowHosts), "allow-host");
  const cidrs = merged([], validateCidrs(opts.allowCidrs), "allow-cidr");
  if (opts.allowHostLoopback !== undefined && typeof opts.allowHostLoopback !== "boolean") throw new PyroError("invalid_argument", "allow_host_loopback must be true or false");
  const loopback = opts.allowHostLoopback === true;
  if (policy === "off" && (hosts.length > 0 || cidrs.length > 0 || loopback)) throw needsEgress();
  return { policy, config: { allow_hosts: hosts, allow_cidrs: cidrs, allow_host_loopback: loopback } };
}

function needsEgress(): PyroError {
  return new PyroError("invalid_argument", "allow-lists and --allow-host-loopback only take effect with an egress policy, and the policy here is off", {
    hint: "Add --network-policy egress (MCP: network_policy \"egress\"), or egress+published-ports to publish service ports too.",
  });
}

/** Applies a `network set` change to the current policy and config. */
export function applyChange(current: { policy: NetworkPolicyName; config: NetworkConfig }, change: NetworkChange): { policy: NetworkPolicyName; config: NetworkConfig } {
  const policy = change.networkPolicy === undefined ? current.policy : validatePolicy(change.networkPolicy);
  const addHosts = validateHosts(change.allowHosts);
  const addCidrs = validateCidrs(change.allowCidrs);
  if (change.allowHostLoopback !== undefined && typeof change.allowHostLoopback !== "boolean") throw new PyroError("invalid_argument", "allow_host_loopback must be true or false");
  if (policy === "off" && (addHosts.length > 0 || addCidrs.length > 0 || change.allowHostLoopback === true)) throw needsEgress();
  const base = change.clearAllowList ? { allow_hosts: [], allow_cidrs: [] } : current.config;
  return {
    policy,
    config: {
      allow_hosts: merged(base.allow_hosts, addHosts, "allow-host"),
      allow_cidrs: merged(base.allow_cidrs, addCidrs, "allow-cidr"),
      allow_host_loopback: change.allowHostLoopback ?? current.config.allow_host_loopback,
    },
  };
}

export function specOf(policy: NetworkPolicyName, config: NetworkConfig): NetworkSpec {
  return { policy, allowHosts: config.allow_hosts, allowCidrs: config.allow_cidrs, allowHostLoopback: config.allow_host_loopback };
}

export function publishedInfo(p: PublishedPort): PublishedPortInfo {
  return { service: p.service, guest_port: p.guest_port, host_address: p.host_address, host_port: p.host_port, address: `${p.host_address}:${p.host_port}` };
}

export function networkInfo(policy: NetworkPolicyName, config: NetworkConfig, applied: SandboxNetwork | null | undefined): WorkspaceNetworkInfo {
  return {
    policy,
    allow_hosts: config.allow_hosts,
    allow_cidrs: config.allow_cidrs,
    allow_host_loopback: config.allow_host_loopback,
    published_ports: (applied?.published ?? []).map(publishedInfo),
    note: applied?.note ?? null,
  };
}

// ---------- published ports ----------

export interface PublishRequest {
  guestPort: number;
  /** null: any free port. */
  hostPort: number | null;
}

/** `--publish` forms: 8000, "8000", "8000:18000", { guestPort, hostPort? } (or snake_case from MCP). */
export type PublishInput = number | string | { guestPort?: number; hostPort?: number; guest_port?: number; host_port?: number };

function port(value: unknown, what: string): number {
  const n = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > 65535) throw new PyroError("invalid_argument", `${what} must be a port number from 1 to 65535, got ${JSON.stringify(value)}`);
  return n;
}

export function parsePublish(items: unknown): PublishRequest[] {
  if (items === undefined) return [];
  if (!Array.isArray(items)) throw new PyroError("invalid_argument", "publish must be a list of GUEST_PORT[:HOST_PORT]");
  if (items.length > 32) throw new PyroError("invalid_argument", "at most 32 published ports per service");
  const out = items.map((item: unknown): PublishRequest => {
    if (typeof item === "number") return { guestPort: port(item, "guest port"), hostPort: null };
    if (typeof item === "string") {
      const m = /^(\d+)(?::(\d+))?$/.exec(item.trim());
      if (!m) throw new PyroError("invalid_argument", `--publish expects GUEST_PORT[:HOST_PORT], got ${JSON.stringify(item.slice(0, 40))}`, { hint: "For example --publish 8000 (any free host port) or --publish 8000:18000." });
      return { guestPort: port(m[1], "guest port"), hostPort: m[2] === undefined ? null : port(m[2], "host port") };
    }
    if (item !== null && typeof item === "object") {
      const o = item as Record<string, unknown>;
      const guest = o.guestPort ?? o.guest_port;
      const host = o.hostPort ?? o.host_port;
      return { guestPort: port(guest, "guest port"), hostPort: host === undefined || host === null ? null : port(host, "host port") };
    }
    throw new PyroError("invalid_argument", `cannot read a published port from ${JSON.stringify(item)}`);
  });
  const hostPorts = out.map((p) => p.hostPort).filter((p) => p !== null);
  if (new Set(hostPorts).size !== hostPorts.length) throw new PyroError("invalid_argument", "the same host port is published twice");
  return out;
}

// ---------- notices ----------

function cliAndMcp(ref: string, flag: string, mcp: Record<string, unknown>): string {
  return `\`pyro workspace network set ${ref} ${flag}\` (MCP: workspace_network_set ${JSON.stringify({ workspace_id: ref, ...mcp })})`;
}

/**
 * One line per denied destination: what was blocked, why, and the call that allows it. Written
 * for a model reading a tool result: short, concrete, no jargon beyond the flag names.
 */
export function noticesFor(ref: string, policy: NetworkPolicyName, denials: NetworkDenial[]): string[] {
  const seen = new Set<string>();
  const lines: string[] = [];
  for (const d of denials) {
    const key = d.kind === "dns" ? `dns:${d.name}` : `${d.protocol}:${d.address}:${d.port}`;
    if (seen.has(key)) continue;
    seen.add(key);
    lines.push(noticeFor(ref, policy, d));
  }
  if (lines.length > MAX_NOTICES) {
    const more = lines.length - (MAX_NOTICES - 1);
    return [...lines.slice(0, MAX_NOTICES - 1), `network: ${more} more blocked destinations not listed; \`pyro workspace network show ${ref}\` shows the policy.`];
  }
  return lines;
}

function noticeFor(ref: string, policy: NetworkPolicyName, d: NetworkDenial): string {
  if (d.kind === "dns") {
    return `network: refused to resolve ${d.name} — it is not in the workspace's allow-list. To allow it: ${cliAndMcp(ref, `--allow-host ${d.name}`, { allow_hosts: [d.name] })}.`;
  }
  const what = d.port === 53 ? `a DNS lookup (${d.protocol.toUpperCase()} ${d.address}:53)` : `${d.protocol.toUpperCase()} to ${d.address}:${d.port}`;
  if (policy === "off") {
    return `network: blocked ${what} — the workspace's network policy is off. To allow outbound traffic: ${cliAndMcp(ref, "--network-policy egress", { network_policy: "egress" })}.`;
  }
  if (d.host_side) {
    return `network: blocked ${d.protocol.toUpperCase()} to the host itself (${d.address}:${d.port}) — the host's loopback and own addresses are not reachable by default. To allow: ${cliAndMcp(ref, "--allow-host-loopback", { allow_host_loopback: true })}.`;
  }
  return `network: blocked ${what} — not in the workspace's allow-list. To allow this address: ${cliAndMcp(ref, `--allow-cidr ${d.address}/32`, { allow_cidrs: [`${d.address}/32`] })}; if you reached it by name, allow the name with --allow-host instead.`;
}
