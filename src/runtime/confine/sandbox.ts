/**
 * A workspace's bubblewrap sandbox, whichever backend it belongs to (the namespace sandbox, the
 * VM's jail): started in a fresh cgroup with the agent's socket already bound, its network set
 * up while the agent comes up, told alive or dead by pid *and* start time *and* boot, and
 * stopped leaving nothing behind. Backends compose these functions; what differs between them
 * (the bubblewrap arguments, how the agent is reached) comes in as a `SandboxLaunch`.
 * Host-side; never reads a path inside the sandbox.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { randomBytes } from "node:crypto";
import type { Limits } from "./cgroups.js";
import { cgroupDirsFor, createSandboxCgroup, destroySandboxCgroup, probeCgroups } from "./cgroups.js";
import { killProcessesHolding } from "./remains.js";
import type { SandboxLiveness, SandboxRecord, SandboxSpec, StartedSandbox } from "./record.js";
import { SECCOMP_FD } from "./bwrap.js";
import { feedSeccompProgram } from "./seccomp.js";
import { applyNetwork, stopNetwork } from "../network/apply.js";
import { takeDenials } from "../network/denials.js";
import { netnsTarget } from "../network/netns.js";
import type { NetworkContext } from "../network/netns.js";
import { publish, unpublish } from "../network/slirp.js";
import type { NetworkDenial, NetworkSpec, PublishedPort, SandboxNetwork } from "../network/types.js";
import type { AgentClient } from "../../protocol/client.js";
import { PyroError } from "../../shared/errors.js";
import { systemPath } from "../../shared/executables.js";
import { logTail, processStartTime, readBootId, waitForExit } from "../../shared/process.js";

/** How a backend's sandbox is launched (see `launchSandbox`). */
export interface SandboxLaunch {
  /** The launcher: joins `$PYRO_CGROUP_PROCS`, then execs bubblewrap with `--info-fd 4`. */
  argv: string[];
  /** Descriptors the launcher gets from 6 up (staged paths; 5 carries the seccomp program). */
  fds: number[];
  infoPath: string;
  limits: Limits;
  record: Pick<SandboxRecord, "backend"> & Partial<Pick<SandboxRecord, "vm" | "workspaceStage" | "guestLayers">>;
  /** Connects and handshakes with the agent; `exited` tells whether the launcher is gone. */
  connect: (exited: () => boolean) => Promise<AgentClient>;
  failure: { what: string; hint: string };
}

/** The sandbox init's pid from bubblewrap's --info-fd, as soon as bubblewrap has written it. */
async function readChildPid(infoPath: string, exited: () => boolean, timeoutMs: number): Promise<number | null> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !exited()) {
    try {
      const parsed = JSON.parse(fs.readFileSync(infoPath, "utf8")) as { "child-pid"?: number };
      if (typeof parsed["child-pid"] === "number") return parsed["child-pid"];
    } catch {
      // not written (completely) yet
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  return null;
}

/** Where a new sandbox's network helpers keep their files, and how its namespace is entered. */
function networkContext(spec: SandboxSpec, record: SandboxRecord): NetworkContext {
  return {
    target: netnsTarget(record),
    dir: path.join(spec.stateDir, "net"),
    log: spec.logPath,
    apiSocket: spec.socketPath.replace(/\.sock$/, "") + ".net.sock",
    loopbackToGateway: record.backend === "vm",
  };
}

/** The same for a running sandbox, from what its record says was set up at start. */
function existingContext(record: SandboxRecord): NetworkContext {
  const paths = record.network?.paths;
  if (!paths) {
    throw new PyroError("network_unavailable", "this sandbox was started before networking existed; restart the workspace to change its network", {
      hint: "Call workspace_stop and workspace_start (CLI: `pyro workspace stop WS && pyro workspace start WS`).",
    });
  }
  return { target: netnsTarget(record), dir: paths.dir, log: paths.log, apiSocket: paths.apiSocket, loopbackToGateway: record.backend === "vm" };
}

/**
 * Starts a launcher in the workspace's fresh cgroup with the agent's listening socket as fd 3
 * and bubblewrap's info as fd 4, then sets up the network (from bubblewrap's pid) while the
 * agent comes up. Either failing stops everything that started.
 */
export async function launchSandbox(spec: SandboxSpec, l: SandboxLaunch): Promise<StartedSandbox> {
  // A crashed predecessor may have left its cgroup behind; a fresh start begins clean.
  await destroySandboxCgroup(cgroupDirsFor(spec.sandboxId));
  const cgroup = createSandboxCgroup(spec.sandboxId, l.limits);

  // Bind the socket under a temporary name, hand its fd to the sandbox, then rename it into
  // place: closing our copy of the server would otherwise unlink the path the agent serves.
  const tmpSocket = `${spec.socketPath}.${randomBytes(4).toString("hex")}`;
  fs.rmSync(spec.socketPath, { force: true });
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(tmpSocket, () => resolve());
  });
  fs.chmodSync(tmpSocket, 0o600);
  const serverFd = (server as unknown as { _handle: { fd: number } })._handle.fd;
  const log = fs.openSync(spec.logPath, "a", 0o600);
  const info = fs.openSync(l.infoPath, "w", 0o600);
  let child;
  try {
    child = spawn(l.argv[0]!, l.argv.slice(1), {
      detached: true,
      stdio: ["ignore", log, log, serverFd, info, "pipe", ...l.fds],
      env: { PATH: systemPath(), PYRO_CGROUP_PROCS: cgroup?.procsFiles.join(" ") ?? "" },
    });
  } finally {
    fs.closeSync(log);
    fs.closeSync(info);
  }
  feedSeccompProgram(child, SECCOMP_FD);
  fs.renameSync(tmpSocket, spec.socketPath);
  server.close();
  const pid = child.pid;
  if (pid === undefined) throw new PyroError("sandbox_start_failed", `could not spawn the ${l.failure.what} launcher (is util-linux \`unshare\` installed?)`);
  let exited = false;
  child.once("exit", () => {
    exited = true;
  });
  child.unref();
  const record: SandboxRecord = {
    ...l.record,
    pid,
    startTime: processStartTime(pid) ?? 0,
    sandboxPid: null,
    bootId: readBootId(),
    cgroupDirs: cgroup?.dirs ?? [],
    enforcement: cgroup?.enforcement ?? probeCgroups(),
    startedAt: new Date().toISOString(),
  };

  // The network is set up while the agent starts (Node start-up dominates both), before any
  // command can run: the first exec already sees the workspace's policy.
  const network = (async (): Promise<void> => {
    record.sandboxPid = await readChildPid(l.infoPath, () => exited, 10_000);
    record.sandboxStartTime = record.sandboxPid === null ? null : processStartTime(record.sandboxPid);
    if (record.sandboxPid === null || record.sandboxStartTime === null) throw new Error("bubblewrap did not report the sandbox's pid");
    record.network = null;
    try {
      record.network = await applyNetwork(networkContext(spec, record), null, spec.network);
    } catch (err) {
      // The policy off is safe without its rules (there is no route out); only egress must fail.
      if (spec.network.policy !== "off") throw err;
      const ctx = networkContext(spec, record);
      record.network = { spec: spec.network, recording: false, slirp: null, dnsForwarder: null, published: [], paths: { dir: ctx.dir, log: ctx.log, apiSocket: ctx.apiSocket }, note: `denied attempts are not recorded: ${(err as Error).message}` };
    }
  })();
  const [agent, netSetup] = await Promise.allSettled([l.connect(() => exited), network]);
  if (agent.status === "rejected" || netSetup.status === "rejected") {
    if (agent.status === "fulfilled") agent.value.close();
    await new Promise((r) => setTimeout(r, exited ? 0 : 50));
    await stopSandbox(record);
    if (agent.status === "fulfilled" && netSetup.status === "rejected" && netSetup.reason instanceof PyroError) throw netSetup.reason;
    const err = (agent.status === "rejected" ? agent.reason : netSetup.status === "rejected" ? netSetup.reason : null) as Error;
    throw new PyroError("sandbox_start_failed", `the ${l.failure.what} did not start: ${err.message}`, {
      details: { log_tail: logTail(spec.logPath, 40) },
      hint: l.failure.hint,
    });
  }
  return { record, client: agent.value };
}

export function sandboxLiveness(record: SandboxRecord): SandboxLiveness {
  if (record.bootId !== readBootId()) return "host-rebooted";
  return processStartTime(record.pid) === record.startTime ? "alive" : "dead";
}

/** Stops the sandbox, its network helpers and everything in its cgroup; idempotent. */
export async function stopSandbox(record: SandboxRecord): Promise<void> {
  const sameBoot = record.bootId === readBootId();
  if (sameBoot) {
    // Killing the sandbox's init takes down its whole pid namespace at once. Only while it is
    // still the process recorded: a sandbox that died long ago may have left its pid to another.
    const launcherAlive = processStartTime(record.pid) === record.startTime;
    const initIsOurs = typeof record.sandboxStartTime === "number" ? processStartTime(record.sandboxPid ?? 0) === record.sandboxStartTime : launcherAlive;
    if (record.sandboxPid !== null && record.sandboxPid > 1 && initIsOurs) {
      try {
        process.kill(record.sandboxPid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    if (launcherAlive) {
      try {
        process.kill(record.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
  // Network helpers leave by themselves when the sandbox dies; killing them here is for a
  // host without cgroups, and the cgroup catches anything else that belongs to the sandbox.
  if (sameBoot) await stopNetwork(record.network);
  await destroySandboxCgroup(record.cgroupDirs);
  if (sameBoot) await waitForExit(record.pid, record.startTime, 2000);
}

/**
 * Removes whatever is left of a sandbox that nobody may have recorded — the one a killed CLI
 * started but never wrote down, the utility sandboxes of a killed snapshot or push — by what
 * names it rather than by a pid: its cgroup (named by `sandboxId`) and the host directories
 * its mounts come from (`dirs`: the workspace's directory, the VM's run directory). Waits until
 * every process found is gone. A launcher that had not joined its cgroup yet finds it removed
 * and exits before starting anything (the stage, launch.ts), so a second pass of the cgroup ends the
 * race with a start in flight. Idempotent; cheap when nothing is left, apart from one scan of
 * /proc (one readlink per process, one mount table per mount namespace).
 */
export async function sweepSandbox(sandboxId: string, dirs: string[]): Promise<void> {
  await destroySandboxCgroup(cgroupDirsFor(sandboxId));
  await killProcessesHolding(dirs);
  await destroySandboxCgroup(cgroupDirsFor(sandboxId));
}

/** Only the sandbox's cgroup (see `sweepSandbox`): no scan, for hot paths that find a sandbox dead. */
export async function sweepSandboxCgroup(sandboxId: string): Promise<void> {
  await destroySandboxCgroup(cgroupDirsFor(sandboxId));
}

/** Applies a network spec to a running sandbox (see `applyNetwork`); the record holds what is applied, even after a failure. */
export async function configureSandboxNetwork(record: SandboxRecord, spec: NetworkSpec): Promise<SandboxNetwork> {
  const ctx = existingContext(record);
  record.network = record.network ?? null;
  // applyNetwork updates the state object in place even when it fails (falling back to off).
  const state = record.network ?? { spec: { policy: "off", allowHosts: [], allowCidrs: [], allowHostLoopback: false }, recording: false, slirp: null, dnsForwarder: null, published: [], paths: { dir: ctx.dir, log: ctx.log, apiSocket: ctx.apiSocket }, note: null };
  record.network = state;
  return applyNetwork(ctx, state, spec);
}

export async function publishSandboxPort(record: SandboxRecord, service: string, guestPort: number, hostPort: number | null): Promise<PublishedPort> {
  if (!record.network) throw new PyroError("publish_not_allowed", "this sandbox has no network; restart the workspace");
  return publish(record.network, service, guestPort, hostPort);
}

export async function unpublishSandboxPort(record: SandboxRecord, port: PublishedPort): Promise<void> {
  if (record.network) await unpublish(record.network, port);
}

export async function takeSandboxDenials(record: SandboxRecord): Promise<NetworkDenial[]> {
  if (!record.network || record.sandboxPid === null || !record.sandboxStartTime) return [];
  return takeDenials(record.network, netnsTarget(record));
}
