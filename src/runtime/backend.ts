/**
 * The isolation backend interface. A backend starts a sandbox whose agent answers on a socket,
 * tells whether a recorded sandbox is still alive, and stops it leaving nothing behind. Kept
 * narrow on purpose: a VM launcher or a cluster backend is one more implementation. Types only.
 */
import type { LimitEnforcement, Limits } from "./namespace/cgroups.js";
import type { AgentClient } from "../protocol/client.js";

export type BackendName = "namespace";

export interface SandboxSpec {
  /** Unique id; names the cgroup and the socket. */
  sandboxId: string;
  hostname: string;
  /** Environment layers, top-most first (overlay lowerdir order). */
  layers: string[];
  /** Host directory owned by pyro holding the copy-on-write root layer of this workspace. */
  stateDir: string;
  /** Host directory mounted at /workspace. pyro never reads inside it from the host. */
  workspaceDir: string;
  /** Unix socket the host will reach the agent on; in a directory the sandbox cannot see. */
  socketPath: string;
  /** Host file receiving the sandbox launcher's and agent's own stderr (not commands' output). */
  logPath: string;
  limits: Limits;
}

/** What the state store keeps about a running sandbox so any later process can find it. */
export interface SandboxRecord {
  backend: BackendName;
  /** Host pid of the launcher (outer bubblewrap) process. */
  pid: number;
  /** Kernel start time of `pid` (clock ticks since boot): guards against pid reuse. */
  startTime: number;
  /** Host pid of the sandbox's init, when known. */
  sandboxPid: number | null;
  bootId: string;
  cgroupDirs: string[];
  enforcement: LimitEnforcement;
  startedAt: string;
}

/** A started sandbox: what to persist, and the agent connection the start already opened. */
export interface StartedSandbox {
  record: SandboxRecord;
  client: AgentClient;
}

export type SandboxLiveness = "alive" | "dead" | "host-rebooted";

export interface Backend {
  readonly name: BackendName;
  start(spec: SandboxSpec): Promise<StartedSandbox>;
  /** Stops the sandbox and every process in it; idempotent. */
  stop(record: SandboxRecord): Promise<void>;
  liveness(record: SandboxRecord): SandboxLiveness;
}
