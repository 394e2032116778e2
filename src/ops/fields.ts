/**
 * Input fields several operations share, each written once: its schema, its description (shown by
 * MCP and by `pyro … --help` alike) and its CLI spelling. Operations pick them by spreading
 * (`...execFields`); a field used by one operation only lives with that operation.
 */
import * as z from "zod";
import { BACKEND_REQUESTS } from "../runtime/backends.js";
import { field } from "./op.js";
import { commandInput, workspaceRef } from "./schemas.js";

/** The workspace an operation acts on: first positional argument on the CLI. */
export const workspaceField = field(workspaceRef, { arg: "<workspace>", label: "workspace id or name" });

/** `[command...]` after `--`, or `--shell STRING` (CLI only): the MCP `command` field either way. */
export const commandField = field(commandInput, { arg: "[command...]", label: "command and arguments after `--`" });

export const SHELL_FLAG = { flag: "--shell <string>", help: "run this string with /bin/sh -c instead of an argv after `--`" };

export const execFields = {
  command: commandField,
  timeout_seconds: field(z.number().positive().optional().describe("Kill the command's whole process tree after this many seconds (default 30).")),
  env: field(z.record(z.string(), z.string()).optional().describe("Extra environment variables (CLI: --env KEY=VALUE, repeatable)."), { value: "<KEY=VALUE>", parse: "env" }),
  cwd: field(z.string().optional().describe("Working directory; relative paths resolve against /workspace (default)."), { value: "<dir>" }),
  stdin: field(z.string().optional().describe("Text given to the command's standard input (CLI: --stdin forwards pyro's own stdin)."), false),
  max_output_bytes: field(z.number().int().positive().optional().describe("Cap per output stream; the head and tail are kept (default 65536, at most 8388608 = 8 MiB).")),
};

export const secretEnvField = field(
  z
    .record(z.string(), z.string())
    .optional()
    .describe("Workspace secrets to export into the environment: {SECRET_NAME: ENV_VAR} (CLI: --secret-env NAME[=ENV_VAR], repeatable). Values are never shown; output containing them reads [REDACTED]."),
  { value: "<NAME[=ENV_VAR]>", parse: "secretEnv" },
);

export const limitFields = {
  vcpu_count: field(z.number().int().positive().optional().describe("CPU limit in vCPUs (default 1).")),
  mem_mib: field(z.number().int().positive().optional().describe("Memory limit in MiB (default 1024; at least 32, on the vm backend 256).")),
  disk_mib: field(
    z.number().int().positive().optional().describe("Disk limit of /workspace in MiB (default 8192; 64 to 1048576). Enforced by the kernel when pyro runs as root, else watched by pyro; status says which (limits.disk)."),
  ),
  ttl_seconds: field(z.number().positive().optional().describe("Delete the workspace after this many seconds (reaped, never while a call is running).")),
};

/**
 * The backend argument of workspace_create and vm_run. Every surface offers it, narrowed ones
 * too: how strongly a workspace is isolated is a choice every job may need (inspect above all).
 */
export const backendField = field(
  z
    .enum(BACKEND_REQUESTS as [string, ...string[]])
    .optional()
    .describe(
      "Where the workspace lives, for its whole life: namespace (bubblewrap namespaces on the host's kernel; starts in milliseconds), vm (a QEMU microVM with its own kernel: stronger isolation, starts in seconds) or auto (vm when this host boots guests with KVM, else namespace). Default: PYRO_BACKEND, else namespace.",
    ),
  { value: "<backend>" },
);

const policy = z.enum(["off", "egress", "egress+published-ports"]);

/** Network arguments of workspace_create and vm_run (workspace-full only; narrowed surfaces leave them out). */
export const networkFields = {
  network_policy: field(
    policy.optional().describe("off (default): no network. egress: outbound TCP/UDP/DNS. egress+published-ports: egress, and services can publish ports to the host."),
    { value: "<policy>" },
  ),
  allow_hosts: field(
    z.array(z.string()).optional().describe("Allow-list of host names, e.g. pypi.org or *.pythonhosted.org for every name below it; once any allow entry is given, everything else is denied."),
    { flag: "--allow-host <name>", repeat: true },
  ),
  allow_cidrs: field(z.array(z.string()).optional().describe("Allow-list of IPv4 addresses or CIDRs, e.g. 10.1.0.0/16."), { flag: "--allow-cidr <cidr>", repeat: true }),
  allow_host_loopback: field(z.boolean().optional().describe("Let the workspace reach the host's own loopback (at 10.0.2.2) and addresses. Default false.")),
};

