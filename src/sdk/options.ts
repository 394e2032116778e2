/**
 * The SDK's option types and the argument checks every entry point shares: turning the public
 * exec options into core's, and making host paths absolute (an empty one is refused rather than
 * read as the current directory). Pure; imports only types from core.
 */
import { PyroError } from "../shared/errors.js";
import { hostPath } from "../shared/host-path.js";
import type { BackendRequest } from "../runtime/backend.js";
import type { CreateWorkspaceOptions } from "../core/manager.js";
import type { ExecOptions } from "../core/exec.js";
import type { NetworkOptions } from "../core/network.js";
import type { ProjectSourceOptions } from "../core/project-source.js";
import type { OneShotOptions } from "../core/one-shot.js";
import type { ExecResult } from "../core/types.js";

export interface PyroOptions {
  /** State directory; default `$PYRO_HOME`, else `$XDG_STATE_HOME/pyro`, else `~/.local/state/pyro`. */
  home?: string;
  /**
   * Seed workspaces created without `seedPath` from a project: the Git checkout around `cwd`,
   * `projectPath`, or a clean clone of `repoUrl`. Off unless given (`pyro mcp serve` turns it on).
   */
  projectSource?: ProjectSourceOptions;
}

export interface ExecWorkspaceOptions {
  /** A string runs through `/bin/sh -c`; an array runs as argv with no shell. */
  command: string | string[];
  /** Default 30. The whole process tree is killed when it passes. */
  timeoutSeconds?: number;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Working directory; relative paths resolve against /workspace (the default). */
  cwd?: string;
  /** Bytes given to the command's stdin (default: none, stdin is /dev/null). */
  stdin?: Uint8Array | string;
  /** Cap per output stream, head and tail kept; default 65536. */
  maxOutputBytes?: number;
  /** Workspace secrets to export into the command's environment: names, or { SECRET_NAME: ENV_VAR }. */
  secretEnv?: string[] | Record<string, string>;
}

/**
 * Where a new workspace lives: `namespace` (bubblewrap namespaces sharing the host kernel),
 * `vm` (a QEMU microVM with its own guest kernel; KVM, else TCG emulation) or `auto` (vm when
 * guests boot with KVM on this host, else namespace). Default: `$PYRO_BACKEND`, else namespace.
 */
export type BackendOption = BackendRequest;

export interface RunInVmOptions extends ExecWorkspaceOptions, NetworkOptions {
  environment: string;
  /** See `BackendOption`; an invalid value is `invalid_argument` and nothing is created. */
  backend?: BackendOption;
  vcpuCount?: number;
  memMib?: number;
  /** The most /workspace may take, in MiB (default 8192; 64 to 1048576); see `CreateWorkspaceInput.diskMib`. */
  diskMib?: number;
  ttlSeconds?: number;
}

export interface RunResult extends ExecResult {
  environment: string;
  /** The one-shot workspace is always deleted; this says it was. */
  cleaned_up: boolean;
}

export interface CreateWorkspaceInput extends Omit<CreateWorkspaceOptions, "ephemeral" | "origin" | "backend"> {
  /** See `BackendOption`; the workspace keeps it for life. An invalid value is `invalid_argument` and nothing is created. */
  backend?: BackendOption;
}

/** Options of a shell open: working directory, terminal size, environment and secrets. */
export interface OpenShellOptions {
  cwd?: string;
  cols?: number;
  rows?: number;
  env?: Record<string, string>;
  secretEnv?: string[] | Record<string, string>;
}

/** Which part of /workspace a list shows: a directory (default `.`), optionally recursive, bounded. */
export interface ListFilesOptions {
  path?: string;
  recursive?: boolean;
  maxEntries?: number;
}

/** How much of a file to read: at most `maxBytes` (default 65536) from `offset`. */
export interface ReadFileOptions {
  maxBytes?: number;
  offset?: number;
}

/** What a diff compares: the baseline (default) or a named snapshot, optionally under `path`. */
export interface DiffOptions {
  path?: string;
  maxBytes?: number;
  snapshot?: string;
}

export function toExecOptions(opts: ExecWorkspaceOptions): ExecOptions {
  if (opts === null || typeof opts !== "object") throw new PyroError("invalid_argument", "exec options are required");
  const { command } = opts;
  const stdin = typeof opts.stdin === "string" ? Buffer.from(opts.stdin) : opts.stdin;
  return {
    ...(Array.isArray(command) ? { command } : { shell: command }),
    ...(opts.timeoutSeconds !== undefined ? { timeoutSeconds: opts.timeoutSeconds } : {}),
    ...(opts.env !== undefined ? { env: opts.env } : {}),
    ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
    ...(stdin !== undefined ? { stdin } : {}),
    ...(opts.maxOutputBytes !== undefined ? { maxOutputBytes: opts.maxOutputBytes } : {}),
    ...(opts.secretEnv !== undefined ? { secretEnv: opts.secretEnv } : {}),
  };
}

/** A one-shot run in core's terms; the exec options are checked here, the rest by core before anything is made. */
export function toOneShotOptions(options: RunInVmOptions): OneShotOptions {
  const exec = toExecOptions(options);
  return {
    environment: options.environment,
    exec,
    ...(options.backend !== undefined ? { backend: options.backend } : {}),
    ...(options.vcpuCount !== undefined ? { vcpuCount: options.vcpuCount } : {}),
    ...(options.memMib !== undefined ? { memMib: options.memMib } : {}),
    ...(options.diskMib !== undefined ? { diskMib: options.diskMib } : {}),
    ...(options.ttlSeconds !== undefined ? { ttlSeconds: options.ttlSeconds } : {}),
    ...(options.networkPolicy !== undefined ? { networkPolicy: options.networkPolicy } : {}),
    ...(options.allowHosts !== undefined ? { allowHosts: options.allowHosts } : {}),
    ...(options.allowCidrs !== undefined ? { allowCidrs: options.allowCidrs } : {}),
    ...(options.allowHostLoopback !== undefined ? { allowHostLoopback: options.allowHostLoopback } : {}),
  };
}

/** `seedPath` and each `secretFiles` value as absolute paths; empty or blank ones are `invalid_argument`. */
export function withHostPaths(options: CreateWorkspaceInput): CreateWorkspaceInput {
  const out = { ...options };
  if (options.seedPath !== undefined) out.seedPath = hostPath(options.seedPath, "seedPath");
  if (options.secretFiles !== undefined && options.secretFiles !== null) {
    if (typeof options.secretFiles !== "object") throw new PyroError("invalid_argument", "secretFiles must be an object of { NAME: host path }");
    out.secretFiles = Object.fromEntries(Object.entries(options.secretFiles).map(([name, file]) => [name, hostPath(file, `secretFiles.${name}`)]));
  }
  return out;
}

export function checkProjectSourceOptions(options: ProjectSourceOptions): ProjectSourceOptions {
  return {
    ...options,
    ...(options.projectPath !== undefined ? { projectPath: hostPath(options.projectPath, "projectSource.projectPath") } : {}),
    ...(options.cwd !== undefined ? { cwd: hostPath(options.cwd, "projectSource.cwd") } : {}),
  };
}
