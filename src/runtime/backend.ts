/**
 * The isolation backend interface. A backend starts a sandbox whose agent answers on a socket,
 * tells whether a recorded sandbox is still alive, and stops it leaving nothing behind. Kept
 * narrow on purpose: a VM launcher or a cluster backend is one more implementation. Types only.
 */
import type { LimitEnforcement, Limits } from "./namespace/cgroups.js";
import type { AgentClient } from "../protocol/client.js";

export type BackendName = "namespace" | "vm";
/** What a caller may ask for: a backend by name, or `auto` (see runtime/vm/host.ts `resolveBackend`). */
export type BackendRequest = BackendName | "auto";
export const BACKEND_NAMES: readonly BackendName[] = ["namespace", "vm"];

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
  /** The network the sandbox starts with; changed later with `configureNetwork`. */
  network: NetworkSpec;
}

export type NetworkPolicyName = "off" | "egress" | "egress+published-ports";

/**
 * A workspace's network as the backend applies it. Allow-lists are already validated and
 * normalised (core/network-policy.ts); an empty pair of lists means "no allow-list".
 */
export interface NetworkSpec {
  policy: NetworkPolicyName;
  /** Exact names and `*.suffix` wildcards; lower case, no trailing dot. */
  allowHosts: string[];
  /** IPv4 CIDRs in canonical `a.b.c.d/n` form. */
  allowCidrs: string[];
  /** Lets the workspace reach the host's own loopback and addresses (10.0.2.2 inside). */
  allowHostLoopback: boolean;
}

/** A guest TCP port reachable from the host at host_address:host_port. */
export interface PublishedPort {
  service: string;
  guest_port: number;
  host_address: "127.0.0.1";
  host_port: number;
  /** slirp4netns's id for the forward, to remove it. */
  forward_id: number;
}

/** A helper process the backend started for a sandbox's network (in the sandbox's cgroup). */
export interface HelperProcess {
  pid: number;
  /** Kernel start time: guards kills against pid reuse. */
  startTime: number;
}

/** What is applied to a running sandbox's network now; persisted with its SandboxRecord. */
export interface SandboxNetwork {
  spec: NetworkSpec;
  /** Denied attempts are recorded (in an nft set inside the sandbox's network namespace). */
  recording: boolean;
  slirp: (HelperProcess & { apiSocket: string }) | null;
  dnsForwarder: (HelperProcess & { port: number }) | null;
  published: PublishedPort[];
  /** Host paths of the network helpers: their directory (forwarder config, denial journal), log, API socket. */
  paths: { dir: string; log: string; apiSocket: string };
  /** Something the user should know about the network (e.g. why denials are not recorded). */
  note: string | null;
}

/** One denied attempt, as recorded by the sandbox's firewall or the DNS forwarder. */
export type NetworkDenial =
  | { kind: "connect"; protocol: "tcp" | "udp"; address: string; port: number; host_side: boolean }
  | { kind: "dns"; name: string };

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
}
