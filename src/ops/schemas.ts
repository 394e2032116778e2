/**
 * zod schemas of MCP tool inputs and outputs. Output schemas describe exactly the JSON the SDK
 * returns (the MCP client validates structured content against them), so a drift between the
 * SDK and MCP shows up as a failing test rather than a confused model. Pure.
 */
import * as z from "zod";
import { BACKEND_NAMES } from "../runtime/backend.js";
import { BACKEND_REQUESTS } from "../runtime/backends.js";

export const workspaceRef = z
  .string()
  .min(1)
  .describe("Workspace id (or its unique name), as returned by workspace_create or workspace_list.");

export const commandInput = z
  .union([z.string().min(1), z.array(z.string()).min(1)])
  .describe("A string runs through /bin/sh -c (pipes and && work); an array runs as argv with no shell.");

const streamInfo = z.object({
  total_bytes: z.number(),
  head_bytes: z.number(),
  tail_bytes: z.number(),
  omitted_bytes: z.number(),
});

const limits = z
  .object({
    cgroup_version: z.union([z.literal(1), z.literal(2), z.null()]),
    memory: z.boolean(),
    pids: z.boolean(),
    cpu: z.boolean(),
    disk: z.enum(["kernel", "watched", "none"]),
    note: z.string().nullable(),
  })
  .nullable();

/**
 * The backend argument of workspace_create and vm_run. Every surface offers it, narrowed ones
 * too: how strongly a workspace is isolated is a choice every job may need (inspect above all).
 */
export const backendInput = {
  backend: z
    .enum(BACKEND_REQUESTS as [string, ...string[]])
    .optional()
    .describe(
      "Where the workspace lives, for its whole life: namespace (bubblewrap namespaces on the host's kernel; starts in milliseconds), vm (a QEMU microVM with its own kernel: stronger isolation, starts in seconds) or auto (vm when this host boots guests with KVM, else namespace). Default: the server's PYRO_BACKEND, else namespace.",
    ),
};

/** Network arguments of workspace_create and vm_run (workspace-full only; narrowed surfaces leave them out). */
export const networkInput = {
  network_policy: z
    .enum(["off", "egress", "egress+published-ports"])
    .optional()
    .describe("off (default): no network. egress: outbound TCP/UDP/DNS. egress+published-ports: egress, and services can publish ports to the host."),
  allow_hosts: z.array(z.string()).optional().describe("Allow-list of host names, e.g. [\"pypi.org\", \"*.pythonhosted.org\"]; once any allow entry is given, everything else is denied."),
  allow_cidrs: z.array(z.string()).optional().describe("Allow-list of IPv4 addresses or CIDRs, e.g. [\"10.1.0.0/16\"]."),
  allow_host_loopback: z.boolean().optional().describe("Let the workspace reach the host's own loopback (at 10.0.2.2) and addresses. Default false."),
};

export const publishedPort = z.object({ service: z.string(), guest_port: z.number(), host_address: z.string(), host_port: z.number(), address: z.string() });

const networkFields = {
  policy: z.string(),
  allow_hosts: z.array(z.string()),
  allow_cidrs: z.array(z.string()),
  allow_host_loopback: z.boolean(),
  published_ports: z.array(publishedPort),
  note: z.string().nullable(),
};

export const networkShowResult = {
  workspace_id: z.string(),
  ...networkFields,
  applied: z.boolean(),
  records_denials: z.boolean(),
  guest_address: z.string().nullable(),
  helpers: z.object({ slirp4netns_pid: z.number().nullable(), dns_forwarder_pid: z.number().nullable() }),
};

/** What the network policy blocked since the previous result (exec, shell_read, service_logs). */
export const networkNotices = z.array(z.string()).describe("What the network policy blocked since the previous result, with the call that allows it.");

export const workspaceInfo = z.object({
  workspace_id: z.string(),
  name: z.string().nullable(),
  labels: z.record(z.string(), z.string()),
  environment: z.string(),
  state: z.enum(["creating", "running", "stopped", "failed"]),
  backend: z.enum(BACKEND_NAMES as [string, ...string[]]),
  isolation: z.string(),
  workspace_path: z.string(),
  created_at: z.string(),
  last_activity_at: z.string(),
  ttl_seconds: z.number().nullable(),
  expires_at: z.string().nullable(),
  vcpu_count: z.number(),
  mem_mib: z.number(),
  disk_mib: z.number().nullable(),
  disk: z.object({ enforcement: z.enum(["kernel", "watched", "none"]), used_bytes: z.number().nullable(), measured_at: z.string().nullable(), note: z.string().nullable() }),
  limits,
  network_policy: z.string(),
  network: z.object(networkFields),
  workspace_seed: z.object({
    mode: z.string(),
    seed_path: z.string().nullable(),
    origin_kind: z.string(),
    origin_ref: z.string().nullable(),
    entries: z.number(),
    bytes: z.number(),
  }),
  command_count: z.number(),
  last_command: z
    .object({ sequence: z.number(), command: z.string(), exit_code: z.number().nullable(), timed_out: z.boolean(), at: z.string() })
    .nullable(),
  failure: z.object({ reason: z.string(), log_tail: z.string(), at: z.string() }).nullable(),
  state_reason: z.string().nullable(),
  reset_count: z.number(),
  last_reset_at: z.string().nullable(),
  secret_names: z.array(z.string()),
  forked_from: z.string().optional(),
  service_count: z.number(),
  running_service_count: z.number(),
});

export const execResult = {
  workspace_id: z.string(),
  sequence: z.number(),
  command: z.array(z.string()),
  shell: z.boolean(),
  cwd: z.string(),
  exit_code: z.number().nullable(),
  signal: z.string().nullable(),
  timed_out: z.boolean(),
  oom_killed: z.boolean(),
  outcome: z.enum(["exited", "signaled", "timed_out", "not_started"]),
  duration_ms: z.number(),
  started_at: z.string(),
  stdout: z.string(),
  stderr: z.string(),
  stdout_info: streamInfo,
  stderr_info: streamInfo,
  truncated: z.boolean(),
  network_notices: networkNotices,
};

export const runResult = { ...execResult, environment: z.string(), cleaned_up: z.boolean() };

export const commandRecord = z.object({
  sequence: z.number(),
  command: z.array(z.string()),
  shell: z.boolean(),
  cwd: z.string(),
  exit_code: z.number().nullable(),
  signal: z.string().nullable(),
  timed_out: z.boolean(),
  duration_ms: z.number(),
  started_at: z.string(),
  stdout_bytes: z.number(),
  stderr_bytes: z.number(),
});
