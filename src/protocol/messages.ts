/**
 * The agent protocol's message vocabulary, shared by the host client and the in-sandbox agent.
 * Transport-agnostic: the same frames travel over a unix socket (namespace backend) or a
 * virtio-serial / vsock channel (VM backend). Bump PROTOCOL_VERSION on any incompatible change;
 * the host refuses an agent that speaks another version. Pure types and constants.
 *
 * `Requests` is the one map of what the agent serves: every request type with the header the
 * host sends and the header it gets back. The host's client and the agent's handler table are
 * both typed from it, so a field renamed on one side fails to compile on the other. Types
 * document the wire; they do not make it trusted: the agent validates every field it receives
 * at run time (the host is untrusted by the agent), and the host bounds what it passes on.
 */
import type { CapturedStreamInfo } from "../shared/output-cap.js";

export type { CapturedStreamInfo } from "../shared/output-cap.js";

export const PROTOCOL_VERSION = 2;

/** Where the agent runtime (node, its libraries, the agent bundle) appears inside a sandbox. */
export const AGENT_RUNTIME_DIR = "/run/pyro/agent";
export const WORKSPACE_GUEST_PATH = "/workspace";
/**
 * Where a namespace sandbox of a layered workspace sees the layers of its own /workspace,
 * read-only: `upper` (the live changes) and each read-only layer under its id. Its own agent
 * diffs there (core/workspace-content.ts); nothing else in the sandbox needs them.
 */
export const WORKSPACE_LAYERS_GUEST_DIR = "/run/pyro/layers";

/** The version handshake, the first request on every connection. */
export interface HelloRequest {
  protocol: number;
}
export interface HelloResult {
  protocol: number;
  agentVersion: string;
  pid: number;
  capabilities: string[];
}

export interface ExecRequest {
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
  /**
   * The value of the marker variable every process of this exec carries (16–64 hex digits);
   * the host names it so it can kill the exec's processes itself if the agent does not.
   */
  marker?: string;
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
  /**
   * Processes the kernel's OOM killer killed while the command ran, when the agent's kernel is
   * the workspace's own (a VM guest); null in a namespace sandbox, where the host counts them.
   */
  oomKills?: number | null;
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

export interface FileListRequest {
  path: string;
  recursive: boolean;
  /** Entries listed at most; the walk still counts the rest in `total_seen`. */
  maxEntries: number;
}

/**
 * Most bytes of listed entries one `file_list` answers with (as sent: one JSON line each); past
 * it the listing is cut as at `maxEntries`, and the walk still counts the rest. 3 MiB, so that
 * a listing fits the MCP result budget of 4 MiB (src/mcp/budget.ts) whole, with its exact
 * `count`, `total_seen` and next step, rather than being trimmed after the fact — the same bound
 * on every surface: about 28 000 entries with short paths.
 */
export const MAX_FILE_LIST_BYTES = 3 * 1024 * 1024;

/**
 * The header of a `file_list` result. The entries are the payload, one JSON object per line
 * (`count` of them), sent in `chunk` frames when they exceed one frame.
 */
export interface FileListResult {
  path: string;
  count: number;
  truncated: boolean;
  total_seen: number;
}

export interface FileReadRequest {
  path: string;
  offset: number;
  maxBytes: number;
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

export interface FileWriteRequest {
  path: string;
  /** Permission bits; null keeps an existing file's mode (0644 for a new one). */
  mode: number | null;
}

export interface FileWriteResult {
  path: string;
  bytes_written: number;
  created: boolean;
}

/** One file a `patch_apply` changed. */
export interface PatchFileResult {
  path: string;
  action: "created" | "modified" | "deleted" | "mode_changed";
  hunks: number;
}

export interface PatchApplyResult {
  files: PatchFileResult[];
  files_changed: number;
}

export interface TreeDiffRequest {
  /** Where the agent sees the baseline (or snapshot) tree. */
  base: string;
  /** Where the agent sees the live tree. */
  live: string;
  /** Limit to this path (relative to the tree roots) and below. */
  path: string | null;
  /** Budget for the rendered patch. */
  maxBytes: number;
  /**
   * The overlay layers (directories in the agent's view) that only one of the two trees has,
   * when both are overlays sharing every other layer: the walk then looks only where these
   * layers hold entries (see agent/diff.ts). Absent: both trees are walked whole.
   */
  layers?: string[];
  /**
   * The most work this diff may do: entries compared, and bytes of files that are read. A diff
   * that would do more stops and answers `over_limit` (no changes, no patch). The host gives a
   * limit to a workspace's own running agent, which also serves its commands and shells, and
   * takes a larger diff to a utility sandbox's agent instead. Absent: no limit.
   */
  limit?: { entries: number; bytes: number };
}

/** One changed entry of a `tree_diff`. */
export interface DiffChange {
  path: string;
  change: "added" | "deleted" | "modified" | "type_changed" | "mode_changed";
  type: EntryType;
  old_type: EntryType | null;
  old_mode: string | null;
  new_mode: string | null;
  binary: boolean;
  size: number | null;
}

/** At most this many changes in a `tree_diff` result, and this many bytes of them (they travel in the header). */
export const DIFF_CHANGES_MAX = 2000;
export const DIFF_CHANGES_MAX_BYTES = 512 * 1024;
/** At most this many names in `omitted_files`, and this many bytes of them. */
export const DIFF_OMITTED_MAX = 1000;
export const DIFF_OMITTED_MAX_BYTES = 256 * 1024;

/** The header of a `tree_diff` result; the patch text (UTF-8) is the payload, it can be megabytes. */
export interface TreeDiffResult {
  /** The first changes by path, bounded by DIFF_CHANGES_MAX and DIFF_CHANGES_MAX_BYTES; the rest are counted. */
  changes: DiffChange[];
  changes_omitted: number;
  /** Exact counts by kind, however many changes there are. */
  summary: { added: number; deleted: number; modified: number; type_changed: number; mode_changed: number; total: number };
  patch_truncated: boolean;
  /** Files left out of the patch (over the budget, or with a name a patch cannot carry): the first of them, bounded like `changes`. */
  omitted_files: string[];
  /** How many files the patch left out in all. */
  omitted_files_total: number;
  /** The diff stopped at the request's `limit`: everything else in this result is empty. */
  over_limit?: boolean;
}

export interface ExportCopyRequest {
  /** What to copy, inside /workspace. */
  path: string;
  /** The name of the copy under the utility sandbox's /export. */
  name: string;
  /** Secret values to look for in what is copied (reported in `secret_value_files`, never written). */
  secrets?: string[];
}

/** `{ ENV_VAR: SECRET_NAME }`: secrets the agent maps into a process's environment. */
export type SecretEnv = Record<string, string>;

export interface SecretsLoadRequest {
  /** Secret values by name; sent once per sandbox start, never sent back. */
  secrets: Record<string, string>;
}

export type ShellState = "running" | "exited";
export type ShellSignal = "HUP" | "INT" | "TERM" | "KILL";

/** What the agent reports about one shell (`shell_list`); the host passes it on unchanged. */
export interface ShellInfo {
  shell_id: string;
  pid: number;
  cols: number;
  rows: number;
  cwd: string;
  state: ShellState;
  exit_code: number | null;
  started_at: string;
  /** Where the shell's output currently ends; absent from `shell_open` (it is 0 there). */
  cursor?: number;
}

export interface ShellOpenRequest {
  cwd: string;
  cols: number;
  rows: number;
  env: Record<string, string>;
  secretEnv?: SecretEnv;
}

/** A new shell: its info without the fields only a running shell has. */
export type ShellOpenResult = Omit<ShellInfo, "exit_code" | "cursor">;

export interface ShellWriteRequest {
  shell_id: string;
  /** Send Enter (CR) after the input. */
  append_newline: boolean;
}

export interface ShellReadRequest {
  shell_id: string;
  cursor: number;
  max_chars: number;
  /** Render through the terminal emulator instead of returning raw bytes. */
  plain: boolean;
  wait_for_idle_ms?: number;
  wait_for_pattern?: string;
  timeout_ms?: number;
}

/** How a `shell_read` wait ended. */
export type ShellWaitEnd = "none" | "idle" | "pattern" | "timeout" | "exited";

/** The header of a `shell_read` result; the output (raw bytes or rendered UTF-8 text) is the payload. */
export interface ShellReadResult {
  shell_id: string;
  cursor: number;
  next_cursor: number;
  start_cursor: number;
  dropped_bytes: number;
  alt_screen: boolean;
  truncated: boolean;
  omitted_chars: number;
  state: ShellState;
  exit_code: number | null;
  signal: string | null;
  plain: boolean;
  wait: { ended_by: ShellWaitEnd; waited_ms: number };
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
  /** Exported files whose content or name holds a secret value asked for (`secrets`): the count and the first few. */
  secret_value_files?: { count: number; paths: string[] };
}

export type ServiceState = "starting" | "ready" | "running" | "exited" | "stopped" | "failed";

/** What every service call returns about a service: the one service-status shape. */
export interface ServiceStatus {
  name: string;
  state: ServiceState;
  pid: number | null;
  /** argv as given, or the shell string as its only element when `shell` is true. */
  command: string[];
  shell: boolean;
  cwd: string;
  readiness: Readiness | null;
  started_at: string;
  ready_at: string | null;
  ended_at: string | null;
  /** Time since start while live; how long it ran once ended; null if it never started. */
  uptime_ms: number | null;
  exit_code: number | null;
  signal: string | null;
  reason: string | null;
  /** The end of each log, on a start result whose service did not stay up. */
  log_tail?: { stdout: string; stderr: string };
}

export interface ServiceStartRequest {
  name: string;
  /** argv form; exactly one of argv / shell. */
  argv?: string[];
  /** shell-string form, run by /bin/sh -c. */
  shell?: string;
  cwd: string;
  env: Record<string, string>;
  secretEnv?: SecretEnv;
  readiness: Readiness | null;
  readyTimeoutMs: number;
  readyIntervalMs: number;
}

export interface ServiceLogsRequest {
  name: string;
  /** Lines from the end of each log (default 50); absent with `all`. */
  tail_lines?: number;
  all?: boolean;
}

export interface ServiceLogs {
  name: string;
  stdout: string;
  stderr: string;
  /** null when the whole log was asked for. */
  tail_lines: number | null;
  stdout_bytes: number;
  stderr_bytes: number;
  truncated: boolean;
}

/** The fields of a request or result that has none beyond its type. */
export type NoFields = Record<never, never>;

/**
 * Every request the agent serves: the header the host sends (`req`, beside `type`) and the
 * header of the `result` frame (`res`). `payload` says which way raw bytes travel, when they
 * do: "in" with the request, "out" with the result; the bytes never go into a header.
 */
export interface Requests {
  hello: { req: HelloRequest; res: HelloResult };
  ping: { req: NoFields; res: NoFields };
  /** in: stdin (`stdinBytes` long); out: stdout kept bytes followed by stderr kept bytes. */
  exec: { req: ExecRequest; res: ExecResultHeader; payload: "in" | "out" };
  /** out: the entries, one JSON object per line. */
  file_list: { req: FileListRequest; res: FileListResult; payload: "out" };
  /** out: the bytes read (none when the file is binary). */
  file_read: { req: FileReadRequest; res: FileReadHeader; payload: "out" };
  /** in: the new content. */
  file_write: { req: FileWriteRequest; res: FileWriteResult; payload: "in" };
  /** in: the unified diff, UTF-8. */
  patch_apply: { req: NoFields; res: PatchApplyResult; payload: "in" };
  /** out: the patch text, UTF-8. */
  tree_diff: { req: TreeDiffRequest; res: TreeDiffResult; payload: "out" };
  export_copy: { req: ExportCopyRequest; res: ExportCopyResult };
  secrets_load: { req: SecretsLoadRequest; res: { loaded: string[] } };
  shell_open: { req: ShellOpenRequest; res: ShellOpenResult };
  /** in: the input to type. */
  shell_write: { req: ShellWriteRequest; res: { shell_id: string; bytes_written: number }; payload: "in" };
  /** out: the output read. */
  shell_read: { req: ShellReadRequest; res: ShellReadResult; payload: "out" };
  shell_signal: { req: { shell_id: string; signal: ShellSignal }; res: { shell_id: string; signal: ShellSignal; delivered_to: number } };
  shell_resize: { req: { shell_id: string; cols: number; rows: number }; res: { shell_id: string; cols: number; rows: number } };
  shell_close: { req: { shell_id: string }; res: { shell_id: string; closed: true } };
  shell_list: { req: NoFields; res: { shells: ShellInfo[]; count: number } };
  service_start: { req: ServiceStartRequest; res: ServiceStatus };
  service_status: { req: { name: string }; res: ServiceStatus };
  service_list: { req: NoFields; res: { services: ServiceStatus[]; count: number; running_count: number } };
  service_logs: { req: ServiceLogsRequest; res: ServiceLogs };
  service_stop: { req: { name: string; grace_ms?: number }; res: ServiceStatus };
}

export type RequestType = keyof Requests;

/** A request as the host sends it: its type and its fields (the frame id is the client's). */
export type RequestOf<K extends RequestType> = { type: K } & Requests[K]["req"];

/** A result frame as the host receives it: the typed header and the payload (empty unless `payload` says "out"). */
export interface Reply<K extends RequestType> {
  header: Requests[K]["res"];
  payload: Buffer;
}
