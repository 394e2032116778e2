/**
 * The namespace backend: one bubblewrap sandbox per workspace. The environment's layers and a
 * per-workspace upper directory are joined by an overlay mounted inside a private mount
 * namespace (so the mount dies with the sandbox and never appears in the host's mount table),
 * the agent runtime is bind-mounted read-only, and the agent inherits its already-bound
 * listening socket as fd 3. Host-side; never reads a path inside the sandbox.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { randomBytes } from "node:crypto";
import type { Limits } from "./cgroups.js";
import type { Backend, BackendName, NetworkDenial, NetworkSpec, PublishedPort, SandboxLiveness, SandboxNetwork, SandboxRecord, SandboxSpec, StartedSandbox } from "../backend.js";
import { agentRuntime } from "../agent-runtime.js";
import { ConfinedLaunch, ownByGuestRoot } from "../confine/launch.js";
import { feedSeccompProgram } from "../confine/seccomp.js";
import { createSandboxCgroup, destroySandboxCgroup, cgroupDirsFor, probeCgroups } from "./cgroups.js";
import { AgentClient } from "../../protocol/client.js";
import { PyroError } from "../../shared/errors.js";
import { systemPath } from "../../shared/executables.js";
import { WORKSPACE_GUEST_PATH } from "../../protocol/messages.js";
import { applyNetwork, netnsTarget, publish, stopNetwork, takeDenials, unpublish } from "./network.js";
import type { NetworkContext } from "./network.js";

/**
 * Capabilities kept inside the sandbox: what package managers and build tools need as root
 * (the container-engine default set, minus CAP_MKNOD: without a devices cgroup a device node
 * made in the sandbox could reach host devices). Everything else — mounts, raw network, ptrace,
 * modules, time — is dropped, and every mount is nodev besides.
 */
const SANDBOX_CAPS = [
  "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID",
  "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_SETFCAP", "CAP_AUDIT_WRITE",
];

export const SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/**
 * Joins the workspace's cgroup as pyro itself (the sandbox identity may not write there), then
 * execs the confined launch (confine/launch.ts): namespaces, stage, bubblewrap.
 */
export const JOIN_CGROUP = 'for f in $PYRO_CGROUP_PROCS; do echo $$ > "$f" || exit 125; done; exec "$@"';

/** Child descriptors of a workspace launch: 3 the agent's socket, 4 bubblewrap's info, 5 the seccomp program, staged paths from 6. */
export const SECCOMP_FD = 5;
export const FIRST_STAGED_FD = 6;

export function readBootId(): string {
  try {
    return fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    return "unknown";
  }
}

/**
 * Kernel start time of a live pid (field 22 of /proc/PID/stat), or null if there is no such
 * process or it has exited and waits to be reaped (a zombie is not a running sandbox).
 */
export function processStartTime(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may contain spaces and parentheses; fields restart after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (rest[0] === "Z" || rest[0] === "X") return null;
    return Number(rest[19]);
  } catch {
    return null;
  }
}

/**
 * What every workspace's bubblewrap sandbox is confined by — the namespace sandbox and the VM
 * jail alike: its own ipc, pid, net, uts and cgroup namespaces (bubblewrap always adds mount), a
 * new session, no capability but `caps`, and an environment holding only PATH.
 */
export function confinementArgs(hostname: string, caps: readonly string[]): string[] {
  return [
    "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
    "--hostname", hostname,
    "--new-session",
    "--cap-drop", "ALL",
    ...caps.flatMap((cap) => ["--cap-add", cap]),
    "--clearenv",
    "--setenv", "PATH", SANDBOX_PATH,
  ];
}

/**
 * A fresh /proc with /proc/sys read-only. Guest root cannot write host-global sysctls anyway
 * (they need root of the host's user namespace); this also freezes the entries its own
 * namespaces own (hostname, IPC limits, user.max_*), which bubblewrap would leave writable:
 * it covers /proc/sys only when the directory itself is writable, and in a user namespace it
 * is not. The bind's source is the launcher's /proc/sys; sysctl files answer for the opener's
 * own namespaces whichever procfs they are reached through.
 */
export const PROC_ARGS = ["--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys"];

/**
 * The workspace sandbox's bubblewrap arguments. `root` and `workspace` are stage paths (see
 * confine/launch.ts); the agent runtime's sources are host paths the sandbox identity can reach,
 * or staged when it cannot.
 */
export function bwrapArgs(spec: SandboxSpec, root: string, workspace: string, launch: ConfinedLaunch): string[] {
  const runtime = agentRuntime();
  const args = [
    "--bind", root, "/",
    "--bind", workspace, WORKSPACE_GUEST_PATH,
    ...PROC_ARGS,
    "--dev", "/dev",
    "--tmpfs", "/run",
  ];
  for (const bind of runtime.binds) args.push("--ro-bind", launch.reachable(bind.source), bind.target);
  args.push(
    ...confinementArgs(spec.hostname, SANDBOX_CAPS),
    "--setenv", "HOME", "/root",
    "--setenv", "LANG", "C.UTF-8",
    "--setenv", "HOSTNAME", spec.hostname,
    "--chdir", WORKSPACE_GUEST_PATH,
    "--info-fd", "4",
    "--",
    ...runtime.command,
  );
  return args;
}

function tail(file: string, lines = 20): string {
  try {
    const text = fs.readFileSync(file, "utf8");
    return text.split("\n").slice(-lines).join("\n").slice(-4000);
  } catch {
    return "";
  }
}

async function waitForExit(pid: number, startTime: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (processStartTime(pid) !== startTime) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return processStartTime(pid) !== startTime;
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

export function networkContext(spec: SandboxSpec, record: SandboxRecord): NetworkContext {
  return {
    target: netnsTarget(record),
    dir: path.join(spec.stateDir, "net"),
    log: spec.logPath,
    apiSocket: spec.socketPath.replace(/\.sock$/, "") + ".net.sock",
    loopbackToGateway: record.backend === "vm",
  };
}

/** How a backend's sandbox is launched (see NamespaceBackend.launch). */
export interface Launch {
  /** The launcher: joins `$PYRO_CGROUP_PROCS`, then execs bubblewrap with `--info-fd 4`. */
  argv: string[];
  /** Descriptors the launcher gets from 6 up (staged paths; 5 carries the seccomp program). */
  fds: number[];
  infoPath: string;
  limits: Limits;
  record: Pick<SandboxRecord, "backend"> & Partial<Pick<SandboxRecord, "vm">>;
  /** Connects and handshakes with the agent; `exited` tells whether the launcher is gone. */
  connect: (exited: () => boolean) => Promise<AgentClient>;
  failure: { what: string; hint: string };
}

export class NamespaceBackend implements Backend {
  readonly name: BackendName = "namespace";

  async start(spec: SandboxSpec): Promise<StartedSandbox> {
    const upper = path.join(spec.stateDir, "rootfs-upper");
    const work = path.join(spec.stateDir, "rootfs-work");
    for (const dir of [upper, work, spec.workspaceDir, path.dirname(spec.socketPath)]) fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    // The overlay's upper and work directories belong to guest root, like /workspace; the
    // upper directory's mode is the sandbox's `/`, which every guest user must be able to search.
    fs.chmodSync(upper, 0o755);
    for (const dir of [upper, work]) ownByGuestRoot(dir);
    const launch = await ConfinedLaunch.open(FIRST_STAGED_FD);
    try {
      const root = launch.overlay(spec.layers, upper, work);
      const workspace = launch.bind(spec.workspaceDir);
      const confined = launch.argv(["bwrap", "--seccomp", String(SECCOMP_FD), ...bwrapArgs(spec, root, workspace, launch)]);
      return await this.launch(spec, {
        argv: ["/bin/sh", "-c", JOIN_CGROUP, "pyro-launch", ...confined.argv],
        fds: confined.fds,
        infoPath: path.join(spec.stateDir, "sandbox-info.json"),
        limits: spec.limits,
        record: { backend: "namespace" },
        connect: () => AgentClient.connect(spec.socketPath, 10_000),
        failure: { what: "sandbox", hint: "Run `pyro doctor` to check bubblewrap, user namespaces and overlayfs on this host." },
      });
    } finally {
      launch.release();
    }
  }

  /**
   * Starts a launcher in the workspace's fresh cgroup with the agent's listening socket as fd 3
   * and bubblewrap's info as fd 4, then sets up the network (from bubblewrap's pid) while the
   * agent comes up. Either failing stops everything that started. Shared by every backend whose
   * sandbox is a bubblewrap sandbox (the VM backend's jail is one).
   */
  protected async launch(spec: SandboxSpec, l: Launch): Promise<StartedSandbox> {
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
      await this.stop(record);
      if (agent.status === "fulfilled" && netSetup.status === "rejected" && netSetup.reason instanceof PyroError) throw netSetup.reason;
      const err = (agent.status === "rejected" ? agent.reason : netSetup.status === "rejected" ? netSetup.reason : null) as Error;
      throw new PyroError("sandbox_start_failed", `the ${l.failure.what} did not start: ${err.message}`, {
        details: { log_tail: tail(spec.logPath, 40) },
        hint: l.failure.hint,
      });
    }
    return { record, client: agent.value };
  }

  liveness(record: SandboxRecord): SandboxLiveness {
    if (record.bootId !== readBootId()) return "host-rebooted";
    return processStartTime(record.pid) === record.startTime ? "alive" : "dead";
  }

  async stop(record: SandboxRecord): Promise<void> {
    const sameBoot = record.bootId === readBootId();
    if (sameBoot) {
      // Killing the sandbox's init takes down its whole pid namespace at once.
      if (record.sandboxPid !== null && record.sandboxPid > 1) {
        try {
          process.kill(record.sandboxPid, "SIGKILL");
        } catch {
          // already gone
        }
      }
      if (processStartTime(record.pid) === record.startTime) {
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

  async configureNetwork(record: SandboxRecord, spec: NetworkSpec): Promise<SandboxNetwork> {
    const ctx = this.existingContext(record);
    record.network = record.network ?? null;
    // applyNetwork updates the state object in place even when it fails (falling back to off).
    const state = record.network ?? { spec: { policy: "off", allowHosts: [], allowCidrs: [], allowHostLoopback: false }, recording: false, slirp: null, dnsForwarder: null, published: [], paths: { dir: ctx.dir, log: ctx.log, apiSocket: ctx.apiSocket }, note: null };
    record.network = state;
    return applyNetwork(ctx, state, spec);
  }

  async publishPort(record: SandboxRecord, service: string, guestPort: number, hostPort: number | null): Promise<PublishedPort> {
    if (!record.network) throw new PyroError("publish_not_allowed", "this sandbox has no network; restart the workspace");
    return publish(record.network, service, guestPort, hostPort);
  }

  async unpublishPort(record: SandboxRecord, port: PublishedPort): Promise<void> {
    if (record.network) await unpublish(record.network, port);
  }

  async takeNetworkDenials(record: SandboxRecord): Promise<NetworkDenial[]> {
    if (!record.network || record.sandboxPid === null || !record.sandboxStartTime) return [];
    return takeDenials(record.network, netnsTarget(record));
  }

  private existingContext(record: SandboxRecord): NetworkContext {
    const paths = record.network?.paths;
    if (!paths) {
      throw new PyroError("network_unavailable", "this sandbox was started before networking existed; restart the workspace to change its network", {
        hint: "Call workspace_stop and workspace_start (CLI: `pyro workspace stop WS && pyro workspace start WS`).",
      });
    }
    return { target: netnsTarget(record), dir: paths.dir, log: paths.log, apiSocket: paths.apiSocket, loopbackToGateway: record.backend === "vm" };
  }
}
