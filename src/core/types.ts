/**
 * The persisted records and public result shapes of workspaces. Results use snake_case keys:
 * the same JSON objects are returned by the SDK, printed by `--json` and sent as MCP
 * structured content, so one shape serves all three surfaces. Types only.
 */
import type { SandboxRecord } from "../runtime/backend.js";
import type { LimitEnforcement } from "../runtime/backend.js";
import type { CapturedStreamInfo } from "../protocol/messages.js";
import type { BackendName, NetworkPolicyName } from "../runtime/backend.js";
import type { NetworkConfig, WorkspaceNetworkInfo } from "./network.js";
import type { DiskEnforcement } from "../runtime/confine/disk.js";

export type WorkspaceState = "creating" | "running" | "stopped" | "failed";
export type NetworkPolicy = NetworkPolicyName;

export interface WorkspaceSeed {
  mode: "empty" | "directory" | "archive" | "project";
  seed_path: string | null;
  origin_kind: "empty" | "host_path" | "git_checkout" | "directory" | "repo_url";
  origin_ref: string | null;
  entries: number;
  bytes: number;
}

export interface FailureInfo {
  reason: string;
  log_tail: string;
  at: string;
}

export interface LastCommand {
  sequence: number;
  command: string;
  exit_code: number | null;
  timed_out: boolean;
  at: string;
}

/** workspace.json. `schema` guards future migrations. */
export interface WorkspaceRecord {
  schema: 1;
  workspace_id: string;
  name: string | null;
  labels: Record<string, string>;
  environment: string;
  environment_digest: string | null;
  /**
   * The sandbox identity (runtime/confine/identity.ts `key`) the workspace's files were written
   * under; absent in workspaces an earlier pyro made, whose sandboxes ran as host root.
   */
  identity?: string;
  /** Environment layers pinned at create time, so a later re-pull never changes what lies under this workspace's upper layer. */
  layers: string[];
  /**
   * An image environment's `Env` (its config), pinned at create time with the layers: the base
   * environment of every exec, shell and service (per-call env and secrets on top). Absent for
   * other environments.
   */
  environment_env?: Record<string, string>;
  /** Chosen at create time and kept for life: the sandbox is always restarted on the same backend. */
  backend: BackendName;
  state: WorkspaceState;
  created_at: string;
  last_activity_at: string;
  ttl_seconds: number | null;
  expires_at: string | null;
  vcpu_count: number;
  mem_mib: number;
  /** The disk limit of /workspace in MiB; absent on records from before disk limits (= none). */
  disk_mib?: number;
  /** How the disk limit is held, chosen at create (core/disk-limit.ts); absent = watched. */
  disk_enforcement?: Exclude<DiskEnforcement, "none">;
  /** Why the disk limit is only watched, when it is. */
  disk_note?: string | null;
  network_policy: NetworkPolicy;
  /** Allow-lists and host loopback; absent on records from before network policies (= none). */
  network?: NetworkConfig;
  /** One-shot `pyro run` workspaces: hidden from `list`, reaped when their owner dies. */
  ephemeral: boolean;
  owner_pid: number | null;
  /** Kernel start time of `owner_pid` (pids are reused); absent on records from before it was kept. */
  owner_start_time?: number | null;
  workspace_seed: WorkspaceSeed;
  sandbox: SandboxRecord | null;
  failure: FailureInfo | null;
  command_count: number;
  last_command: LastCommand | null;
  reset_count?: number;
  last_reset_at?: string | null;
  /** Names only; values live in secrets.json. */
  secret_names: string[];
  /** The workspace this one was forked from (its id); absent for a created workspace. */
  forked_from?: string | null;
  /**
   * `layers`: /workspace is an overlay of read-only layers under a live upper
   * (core/workspace-layers.ts). Absent: a workspace an earlier pyro made, its /workspace a
   * plain directory.
   */
  workspace_layout?: "layers";
  /** The live stack of workspace layers, top-most first (layered workspaces). */
  workspace_layers?: string[];
  /** The generation of the live upper and work directories (layered workspaces). */
  workspace_upper?: string;
}

/** The disk part of a workspace's status (core/disk-limit.ts). */
export interface DiskInfo {
  /** kernel: writes past the limit fail (ENOSPC); watched: pyro measures and refuses; none: no limit. */
  enforcement: DiskEnforcement;
  /**
   * Space /workspace takes: the filesystem's own count (kernel); for watched, the last measurement
   * plus what the host's free space fell by during writing calls since (an estimate from above).
   */
  used_bytes: number | null;
  /** When /workspace was last measured (watched); null for kernel, where the count is current. */
  measured_at: string | null;
  note: string | null;
}

/** What status/list/create return. */
export interface WorkspaceInfo {
  workspace_id: string;
  name: string | null;
  labels: Record<string, string>;
  environment: string;
  state: WorkspaceState;
  backend: BackendName;
  /** What isolates this workspace, in words (for the vm backend: the acceleration its guest runs with). */
  isolation: string;
  workspace_path: "/workspace";
  created_at: string;
  last_activity_at: string;
  ttl_seconds: number | null;
  expires_at: string | null;
  vcpu_count: number;
  mem_mib: number;
  /** The disk limit of /workspace in MiB; null for a workspace made before disk limits. */
  disk_mib: number | null;
  /** How the disk limit is enforced, and how much /workspace takes. */
  disk: DiskInfo;
  /** The cgroup limits while running (else null), with `disk`: how the disk limit is held. */
  limits: (LimitEnforcement & { disk: DiskEnforcement }) | null;
  network_policy: NetworkPolicy;
  /** Policy, allow-lists, host loopback and published addresses. */
  network: WorkspaceNetworkInfo;
  workspace_seed: WorkspaceSeed;
  command_count: number;
  last_command: LastCommand | null;
  failure: FailureInfo | null;
  /** Set when the state changed because the sandbox was found gone. */
  state_reason: string | null;
  reset_count: number;
  last_reset_at: string | null;
  secret_names: string[];
  /** The id of the workspace this one was forked from; null for a created workspace. */
  /** Only on a fork: the id of the workspace it was forked from. */
  forked_from?: string;
  service_count: number;
  running_service_count: number;
}

/** One line of history.jsonl, and one entry of `workspace logs`. */
export interface CommandRecord {
  sequence: number;
  command: string[];
  shell: boolean;
  cwd: string;
  exit_code: number | null;
  signal: string | null;
  timed_out: boolean;
  duration_ms: number;
  started_at: string;
  stdout_bytes: number;
  stderr_bytes: number;
}

export interface ExecResult {
  workspace_id: string;
  sequence: number;
  command: string[];
  shell: boolean;
  cwd: string;
  exit_code: number | null;
  signal: string | null;
  timed_out: boolean;
  /**
   * The kernel's OOM killer killed the command (or a process of it its shell reports) because
   * the workspace ran out of memory; the agent and the workspace live on.
   */
  oom_killed: boolean;
  /** "exited", "signaled", "timed_out" or "not_started": what happened, without decoding numbers. */
  outcome: "exited" | "signaled" | "timed_out" | "not_started";
  duration_ms: number;
  started_at: string;
  stdout: string;
  stderr: string;
  stdout_info: CapturedStreamInfo;
  stderr_info: CapturedStreamInfo;
  truncated: boolean;
  /** What the network policy blocked since the previous result, and how to allow it (each said once). */
  network_notices: string[];
}

/** The raw form: output bytes as the command wrote them (head and tail kept). */
export interface RawExecResult {
  result: ExecResult;
  stdoutBytes: Buffer;
  stderrBytes: Buffer;
}

/** One line of events.jsonl: what changed a workspace, for `workspace summary`. */
export interface WorkspaceEvent {
  at: string;
  kind:
    | "create"
    | "fork"
    | "exec"
    | "sync_push"
    | "file_write"
    | "patch_apply"
    | "export"
    | "snapshot_create"
    | "snapshot_delete"
    | "reset"
    | "start"
    | "stop"
    | "update"
    | "service_start"
    | "service_stop"
    | "shell_open"
    | "shell_write"
    | "shell_signal"
    | "shell_close"
    | "network_set";
  details: Record<string, unknown>;
}
