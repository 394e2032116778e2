/**
 * The isolation backend interface. A backend starts a sandbox whose agent answers on a socket,
 * tells whether a recorded sandbox is still alive, and stops it leaving nothing behind. Kept
 * narrow on purpose: a VM launcher or a cluster backend is one more implementation. The sandbox
 * and network types are the confinement kit's (both backends compose it); they are re-exported
 * here so that core names them through the interface. Types only, and the backend names.
 */
import type { BackendName, SandboxLiveness, SandboxRecord, SandboxSpec, StartedSandbox } from "./confine/record.js";
import type { NetworkDenial, NetworkSpec, PublishedPort, SandboxNetwork } from "./network/types.js";

export type { BackendName, SandboxLiveness, SandboxRecord, SandboxSpec, StartedSandbox, VmSandboxInfo } from "./confine/record.js";
export type { HelperProcess, NetworkDenial, NetworkPolicyName, NetworkSpec, PublishedPort, SandboxNetwork } from "./network/types.js";
export type { LimitEnforcement, Limits } from "./confine/cgroups.js";

/** What a caller may ask for: a backend by name, or `auto` (see runtime/vm/host.ts `resolveBackend`). */
export type BackendRequest = BackendName | "auto";
export const BACKEND_NAMES: readonly BackendName[] = ["namespace", "vm"];

export interface Backend {
  readonly name: BackendName;
  start(spec: SandboxSpec): Promise<StartedSandbox>;
  /**
   * Stops the sandbox and every process in it; idempotent. `preserve`: the workspace will start
   * again, so state the sandbox still holds in memory is written out first (best effort).
   */
  stop(record: SandboxRecord, options?: { preserve?: boolean }): Promise<void>;
  liveness(record: SandboxRecord): SandboxLiveness;
  /** Applies a network spec to a running sandbox without restarting it; fails closed. */
  configureNetwork(record: SandboxRecord, spec: NetworkSpec): Promise<SandboxNetwork>;
  /** Forwards host 127.0.0.1:hostPort (a free one when null) to the guest port. */
  publishPort(record: SandboxRecord, service: string, guestPort: number, hostPort: number | null): Promise<PublishedPort>;
  unpublishPort(record: SandboxRecord, port: PublishedPort): Promise<void>;
  /** Denied attempts since the last call, forgotten once returned. Cheap when there are none. */
  takeNetworkDenials(record: SandboxRecord): Promise<NetworkDenial[]>;
  /**
   * Kills one exec's processes (those carrying its marker) from outside the sandbox, for when
   * its agent is too starved to; false where the host cannot see them (inside a VM guest).
   */
  killExec(record: SandboxRecord, marker: string): Promise<boolean>;
  /** OOM kills in the sandbox so far where the host counts them (a namespace sandbox's cgroup); null where the agent does. */
  oomKills(record: SandboxRecord): number | null;
  /**
   * Where this backend keeps a workspace's root filesystem changes (packages installed, files
   * written outside /workspace) in its state directory, which a fork copies; and whether that
   * copy is consistent while the sandbox runs (a VM's qcow2 is being written by QEMU and holds
   * only what the guest kernel has written back, so it is copied only from a stopped VM).
   */
  rootChanges(stateDir: string): RootChanges;
}

export interface RootChanges {
  path: string;
  kind: "directory" | "file";
  copyWhileRunning: boolean;
}
