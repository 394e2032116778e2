/**
 * A sandbox on paper: the spec a backend starts one from, and the record the state store keeps
 * so that any later pyro process can find it, tell whether it still runs and stop it. Shared by
 * the kit (which launches and stops bubblewrap sandboxes) and both backends. Types only.
 */
import type { LimitEnforcement, Limits } from "./cgroups.js";
import type { NetworkSpec, SandboxNetwork } from "../network/types.js";
import type { AgentClient } from "../../protocol/client.js";

export type BackendName = "namespace" | "vm";

export interface SandboxSpec {
  /** Unique id; names the cgroup and the socket. */
  sandboxId: string;
  hostname: string;
  /** Environment layers, top-most first (overlay lowerdir order). */
  layers: string[];
  /** Host directory owned by pyro holding the copy-on-write root layer of this workspace. */
  stateDir: string;
  /** Host directory mounted at /workspace, or holding its upper layer. pyro never reads inside it from the host. */
  workspaceDir: string;
  /**
   * A layered workspace (core/workspace-layers.ts): /workspace is an overlay of these read-only
   * layers (top-most first) under `upper`, mounted in the sandbox's own mount namespace, instead
   * of a bind of `workspaceDir`.
   */
  workspaceLayers?: { lowers: string[]; upper: string; work: string } | null;
  /** Unix socket the host will reach the agent on; in a directory the sandbox cannot see. */
  socketPath: string;
  /** Host file receiving the sandbox launcher's and agent's own stderr (not commands' output). */
  logPath: string;
  limits: Limits;
  /** The network the sandbox starts with; changed later with `configureNetwork`. */
  network: NetworkSpec;
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
  /** Kernel start time of `sandboxPid`: every later entry into its namespaces checks it. */
  sandboxStartTime?: number | null;
  /** The sandbox's network helpers and applied policy; absent on records from before networking. */
  network?: SandboxNetwork | null;
  /**
   * A layered workspace's /workspace overlay as the launcher's mount namespace shows it: utility
   * sandboxes join that namespace (`pid`) and bind it from there while the sandbox runs.
   */
  workspaceStage?: string | null;
  /**
   * A layered workspace's layers as its sandbox sees them, read-only: in `dir`, the live upper
   * as `upper` and each of `layers` (ids, top-most first) under its id. Absent where the guest
   * does not see them (the VM backend, sandboxes started by earlier pyro).
   */
  guestLayers?: { dir: string; layers: string[] } | null;
  /** VM backend only: how its guest runs. */
  vm?: VmSandboxInfo | null;
  bootId: string;
  cgroupDirs: string[];
  enforcement: LimitEnforcement;
  startedAt: string;
}

export interface VmSandboxInfo {
  acceleration: "kvm" | "tcg";
  /** Host directory of the VM's sockets (agent link, virtiofsd, QMP control); removed on stop. */
  runDir: string;
  /** The guest has a network device (it was started with a policy other than off). */
  nic: boolean;
  /** Milliseconds from launch to the agent's first answer. */
  bootMs: number | null;
}

/** A started sandbox: what to persist, and the agent connection the start already opened. */
export interface StartedSandbox {
  record: SandboxRecord;
  client: AgentClient;
}

export type SandboxLiveness = "alive" | "dead" | "host-rebooted";
