/**
 * The agent protocol's message vocabulary, shared by the host client and the in-sandbox agent.
 * Transport-agnostic: the same frames travel over a unix socket (namespace backend) or a
 * virtio-serial / vsock channel (VM backend). Bump PROTOCOL_VERSION on any incompatible change;
 * the host refuses an agent that speaks another version. Pure types and constants.
 */

export const PROTOCOL_VERSION = 1;

/** Where the agent runtime (node, its libraries, the agent bundle) appears inside a sandbox. */
export const AGENT_RUNTIME_DIR = "/run/pyro/agent";
export const WORKSPACE_GUEST_PATH = "/workspace";

export interface HelloRequest {
  type: "hello";
  protocol: number;
}
export interface HelloResult {
  protocol: number;
  agentVersion: string;
  pid: number;
  capabilities: string[];
}

/** Byte accounting for one captured output stream (stdout or stderr). */
export interface CapturedStreamInfo {
  /** Bytes the command wrote in total. */
  total_bytes: number;
  /** Bytes kept from the start of the stream. */
  head_bytes: number;
  /** Bytes kept from the end of the stream. */
  tail_bytes: number;
  /** Bytes dropped between head and tail. */
  omitted_bytes: number;
}

export interface ExecRequest {
  type: "exec";
  /** argv form: executed directly, no shell. Exactly one of argv / shell. */
  argv?: string[];
  /** shell-string form: run by /bin/sh -c. */
  shell?: string;
  cwd: string;
  env: Record<string, string>;
  timeoutMs: number;
  /** Cap per stream; head and tail halves are kept. */
  maxOutputBytes: number;
  /** Length of stdin bytes carried in this frame's payload (0 = stdin is /dev/null). */
  stdinBytes: number;
  /** Secrets mapped into the environment: { ENV_VAR: SECRET_NAME }. */
  secretEnv?: Record<string, string>;
}

/** Result header of an exec; payload = stdout kept bytes followed by stderr kept bytes. */
export interface ExecResultHeader {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  durationMs: number;
  startedAt: string;
  stdout: CapturedStreamInfo;
  stderr: CapturedStreamInfo;
  /** Set when the command could not be started (e.g. "command_not_found"). */
  startError: string | null;
}

export type AgentErrorCode =
  | "invalid_request"
  | "path_outside_workspace"
  | "not_found"
  | "patch_failed"
  | "shell_not_found"
  | "service_not_found"
  | "service_exists"
  | "secret_not_found"
  | "internal";

/** Kinds of directory entry the agent reports. */
export type EntryType = "file" | "directory" | "symlink" | "fifo" | "socket" | "char_device" | "block_device" | "other";

/** One entry of a `file_list` result. */
export interface FileEntry {
  path: string;
  type: EntryType;
  size: number;
  mode: string;
  mtime: string;
  link_target: string | null;
}

/** The header of a `file_read` result; the content is the payload. */
export interface FileReadHeader {
  path: string;
  size: number;
  offset: number;
  bytes_returned: number;
  next_offset: number | null;
  truncated: boolean;
  binary: boolean;
}

/** How a service is known to be up (`service_start`). */
export type Readiness =
  | { type: "file"; path: string }
  | { type: "tcp"; port: number; host?: string }
  | { type: "http"; url: string }
  | { type: "command"; command: string };

/** At most this many entries in an export's `skipped` and `stripped` lists (the rest are counted in `note`). */
export const EXPORT_LIST_MAX = 100;

/** The result of an `export_copy` (the agent's copy out of /workspace into a utility sandbox). */
export interface ExportCopyResult {
  source: string;
  kind: "file" | "directory";
  files: number;
  directories: number;
  symlinks: number;
  bytes: number;
  /** Entries not exported: symlinks leading outside the tree, FIFOs, sockets, devices, entries that vanished meanwhile. */
  skipped: { path: string; reason: string }[];
  /** Entries exported without what the host must not receive: setuid/setgid bits, file capabilities. */
  stripped: { path: string; reason: string }[];
  /** Set when the export is partial because the tree changed while it was copied, or a list was cut. */
  note: string | null;
}
