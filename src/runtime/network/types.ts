/**
 * A sandbox's network in words both backends, the state store and core share: the spec a
 * workspace asks for, what is applied now (persisted with the sandbox's record), published ports
 * and denied attempts. Types only.
 */

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
