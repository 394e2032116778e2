/**
 * Entering a sandbox's network namespace, and the tools that needs. Every sandbox has its own
 * network namespace (bubblewrap --unshare-net); entering it always goes through
 * `openNamespaces`, which proves the namespace belongs to the recorded sandbox process and is
 * not the host's own: a reused pid must never turn a policy change into a change of the host's
 * network. When pyro is not root, every entry joins the sandbox's user namespace too (`enter.ts`
 * says why). Also what this host must offer before an egress policy is promised. Host-side.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { SandboxRecord } from "../confine/record.js";
import { HOST_GATEWAY, SANDBOX_PATH } from "../../protocol/guest.js";
import { PyroError } from "../../shared/errors.js";
import { findExecutable } from "../../shared/executables.js";
import { processStartTime } from "../../shared/process.js";
import { entersUserNamespace, nsenterArgs } from "./enter.js";

const TOOLS = ["nsenter", "ip", "nft", "slirp4netns", "perl"] as const;
export type Tool = (typeof TOOLS)[number];
const TOOL_PACKAGE: Record<Tool, string> = { nsenter: "util-linux", ip: "iproute2", nft: "nftables", slirp4netns: "slirp4netns", perl: "perl-base" };
let toolCache: Map<Tool, string | null> | undefined;

/** Absolute paths of the networking tools, null for the missing ones (looked up once). */
export function networkTools(): Map<Tool, string | null> {
  if (toolCache) return toolCache;
  toolCache = new Map(TOOLS.map((tool) => [tool, findExecutable(tool)] as const));
  return toolCache;
}

/** Paths of `tools`, or network_unavailable naming the packages that bring the missing ones. */
export function requireTools(tools: readonly Tool[], purpose: string): Record<Tool, string> {
  const found = networkTools();
  const missing = tools.filter((t) => !found.get(t));
  if (missing.length > 0) {
    throw new PyroError("network_unavailable", `${purpose} needs ${missing.join(", ")}, which this host does not have`, {
      hint: `Install them: apt-get install ${[...new Set(missing.map((t) => TOOL_PACKAGE[t]))].join(" ")} (scripts/setup.sh does this).`,
    });
  }
  return Object.fromEntries(tools.map((t) => [t, found.get(t)!])) as Record<Tool, string>;
}

/** slirp4netns makes its TAP device through this, as the user running pyro. */
export const TUN_DEVICE = "/dev/net/tun";

/**
 * Why slirp4netns could not make its device on this host, or null. It opens /dev/net/tun as
 * the user running pyro (joining the sandbox's user namespace gives no access to a device node
 * owned outside it), so an ordinary user needs the device to be openable: mode 0666, as udev
 * makes it on most distributions. Tried for real (opening it creates nothing), so that whatever
 * refuses it — mode, a missing module, a security module — is found before anything starts.
 */
export function tunProblem(): { message: string; hint: string } | null {
  try {
    fs.closeSync(fs.openSync(TUN_DEVICE, fs.constants.O_RDWR));
    return null;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    if (code === "EACCES" || code === "EPERM") {
      const user = os.userInfo();
      let mode = "";
      try {
        const st = fs.statSync(TUN_DEVICE);
        mode = `: it is mode ${(st.mode & 0o777).toString(8).padStart(4, "0")}, owned by uid ${st.uid}`;
      } catch {
        // the open already failed; the mode only explains it
      }
      return {
        message: `${TUN_DEVICE} is not accessible to this user (${user.username}, uid ${user.uid}${mode}); slirp4netns needs it to give a workspace its way out`,
        hint:
          `Make it usable by every user, as most distributions do: \`sudo chmod 0666 ${TUN_DEVICE}\` (until the next boot), and to keep it a udev rule: ` +
          `\`echo 'KERNEL=="tun", MODE="0666"' | sudo tee /etc/udev/rules.d/60-tun.rules\`. The network policy off works without it.`,
      };
    }
    return {
      message: `${TUN_DEVICE} cannot be opened (${code}); slirp4netns needs it to give a workspace its way out`,
      hint: "Load the tun module (`sudo modprobe tun`) and check that /dev/net/tun exists. The network policy off works without it.",
    };
  }
}

/** Refuses an egress policy up front, before anything is started or changed, when this host cannot give one. */
export function requireEgress(policy: string): void {
  requireTools(TOOLS, `the ${policy} network policy`);
  const tun = tunProblem();
  if (tun) throw new PyroError("network_unavailable", `the ${policy} network policy is unavailable: ${tun.message}`, { hint: tun.hint, details: { device: TUN_DEVICE } });
}

/** What every entry into a sandbox's network needs to know about it. */
export interface NetnsTarget {
  sandboxPid: number;
  sandboxStartTime: number;
  cgroupProcs: string[];
}

export function netnsTarget(record: SandboxRecord): NetnsTarget {
  if (record.sandboxPid === null || record.sandboxPid <= 1 || !record.sandboxStartTime) {
    throw new PyroError("network_unavailable", "this sandbox was started before networking existed; restart the workspace to change its network", {
      hint: "Call workspace_stop and workspace_start (CLI: `pyro workspace stop WS && pyro workspace start WS`).",
    });
  }
  return { sandboxPid: record.sandboxPid, sandboxStartTime: record.sandboxStartTime, cgroupProcs: record.cgroupDirs.map((d) => path.join(d, "cgroup.procs")) };
}

/**
 * Open descriptors of a sandbox's namespaces: its network namespace, and the user namespace
 * that owns it when this process must join that too (it is not root; see `enter.ts`).
 */
export interface SandboxNamespaces {
  net: number;
  user: number | null;
}

/**
 * Opens the sandbox's namespaces, only then proving that the pid still is the recorded sandbox
 * process (so the descriptors are of its namespaces, whatever the pid becomes later) and that
 * they are not ours. The caller closes them (`closeNamespaces`).
 */
export function openNamespaces(target: NetnsTarget, user = entersUserNamespace()): SandboxNamespaces {
  const opened: number[] = [];
  try {
    const net = fs.openSync(`/proc/${target.sandboxPid}/ns/net`, "r");
    opened.push(net);
    const userFd = user ? fs.openSync(`/proc/${target.sandboxPid}/ns/user`, "r") : null;
    if (userFd !== null) opened.push(userFd);
    if (processStartTime(target.sandboxPid) !== target.sandboxStartTime) throw new PyroError("workspace_stopped", "the workspace's sandbox is gone");
    const same = (fd: number, ours: string) => {
      const a = fs.fstatSync(fd);
      const b = fs.statSync(ours);
      return a.ino === b.ino && a.dev === b.dev;
    };
    if (same(net, "/proc/self/ns/net")) throw new PyroError("internal_error", "refusing to configure the host's own network namespace as a sandbox's");
    if (userFd !== null && same(userFd, "/proc/self/ns/user")) throw new PyroError("internal_error", "refusing to enter the host's own user namespace as a sandbox's");
    return { net, user: userFd };
  } catch (err) {
    for (const fd of opened) fs.closeSync(fd);
    throw err;
  }
}

export function closeNamespaces(ns: SandboxNamespaces): void {
  fs.closeSync(ns.net);
  if (ns.user !== null) fs.closeSync(ns.user);
}

/** The descriptors a child inherits from fd 3 up: the network namespace, then the user namespace if entered. */
export function namespaceFds(ns: SandboxNamespaces): number[] {
  return ns.user === null ? [ns.net] : [ns.net, ns.user];
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command inside the sandbox's network namespace (and nowhere else) and collects its output. */
export function runInNetns(ns: SandboxNamespaces, argv: string[], input?: string): Promise<RunResult> {
  const { nsenter } = requireTools(["nsenter"], "entering a sandbox's network");
  return new Promise((resolve, reject) => {
    const child = spawn(nsenter, [...nsenterArgs(ns.user !== null), "--", ...argv], { stdio: ["pipe", "pipe", "pipe", ...namespaceFds(ns)], env: { PATH: SANDBOX_PATH, LANG: "C" } });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin!.on("error", () => undefined);
    child.stdin!.end(input ?? "");
  });
}

export async function withNamespaces<T>(target: NetnsTarget, fn: (ns: SandboxNamespaces) => Promise<T>): Promise<T> {
  const ns = openNamespaces(target);
  try {
    return await fn(ns);
  } finally {
    closeNamespaces(ns);
  }
}

/** The host's own IPv4 addresses: reachable through slirp4netns like any remote host, so blocked with the loopback. */
export function hostAddresses(): string[] {
  const out = new Set<string>([HOST_GATEWAY]);
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) out.add(a.address);
  }
  return [...out].sort();
}

/** What starting a sandbox's network helpers and applying its rules need to know about it. */
export interface NetworkContext {
  target: NetnsTarget;
  /** Directory for the forwarder's config and journal (created here). */
  dir: string;
  log: string;
  apiSocket: string;
  /**
   * The sandbox is a VM jail: QEMU turns the guest's connections to the gateway into
   * connections to the jail's own 127.0.0.1, which the rules send on to the host's loopback
   * (through slirp4netns's gateway), where host-loopback protection applies as for namespaces.
   */
  loopbackToGateway?: boolean;
}
