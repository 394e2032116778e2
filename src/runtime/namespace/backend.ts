/**
 * The namespace backend: one bubblewrap sandbox per workspace. The environment's layers and a
 * per-workspace upper directory are joined by an overlay mounted inside a private mount
 * namespace (so the mount dies with the sandbox and never appears in the host's mount table),
 * the agent runtime is bind-mounted read-only, and the agent inherits its already-bound
 * listening socket as fd 3. Everything else — launch, liveness, stop, network — is the
 * confinement kit's (confine/sandbox.ts), which the VM backend composes the same way.
 * Host-side; never reads a path inside the sandbox.
 */
import fs from "node:fs";
import path from "node:path";
import type { Backend, BackendName, NetworkDenial, NetworkSpec, PublishedPort, RootChanges, SandboxLiveness, SandboxNetwork, SandboxRecord, SandboxSpec, StartedSandbox } from "../backend.js";
import { agentRuntime } from "../confine/agent-runtime.js";
import { FIRST_STAGED_FD, PROC_ARGS, SECCOMP_FD, confinementArgs } from "../confine/bwrap.js";
import { ConfinedLaunch, ownByGuestRoot } from "../confine/launch.js";
import { cgroupOomKills } from "../confine/cgroups.js";
import { killExecProcesses } from "../confine/exec-kill.js";
import { configureSandboxNetwork, launchSandbox, publishSandboxPort, sandboxLiveness, stopSandbox, takeSandboxDenials, unpublishSandboxPort } from "../confine/sandbox.js";
import { AgentClient } from "../../protocol/client.js";
import { guestEnv } from "../../protocol/guest.js";
import { WORKSPACE_GUEST_PATH, WORKSPACE_LAYERS_GUEST_DIR } from "../../protocol/messages.js";

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

/**
 * The workspace sandbox's bubblewrap arguments. `root` and `workspace` are stage paths (see
 * confine/launch.ts); the agent runtime's sources are host paths the sandbox identity can reach,
 * or staged when it cannot. The agent starts with the environment every sandbox program gets.
 */
function bwrapArgs(spec: SandboxSpec, root: string, workspace: string, marker: string, launch: ConfinedLaunch): string[] {
  const runtime = agentRuntime();
  const args = [
    "--bind", root, "/",
    "--bind", workspace, WORKSPACE_GUEST_PATH,
    ...PROC_ARGS,
    ...memoryFilesystemArgs(spec.limits.memMib),
    "--ro-bind", marker, SANDBOX_MARKER,
  ];
  for (const bind of runtime.binds) args.push("--ro-bind", launch.reachable(bind.source), bind.target);
  // The workspace's own layers, read-only, for its agent's diff (guestLayers). Nothing the guest
  // did not already have: its own files, seen as they are stored. It cannot write them: the
  // binds are read-only, and remounting needs CAP_SYS_ADMIN and mount(2), both denied.
  const layered = spec.workspaceLayers;
  if (layered) {
    args.push("--ro-bind", launch.bind(layered.upper, { readOnly: true }), `${WORKSPACE_LAYERS_GUEST_DIR}/upper`);
    for (const lower of layered.lowers) args.push("--ro-bind", launch.bind(lower, { readOnly: true }), `${WORKSPACE_LAYERS_GUEST_DIR}/${path.basename(lower)}`);
  }
  const { PATH: _path, ...env } = guestEnv({ HOSTNAME: spec.hostname });
  args.push(
    ...confinementArgs(spec.hostname, SANDBOX_CAPS),
    ...Object.entries(env).flatMap(([name, value]) => ["--setenv", name, value]),
    "--chdir", WORKSPACE_GUEST_PATH,
    "--info-fd", "4",
    "--",
    ...runtime.command,
  );
  return args;
}

/**
 * The sandbox's in-memory filesystems, each sized to a quarter of the workspace's memory. Their
 * files are memory charged to the workspace's cgroup that no OOM kill gives back: unbounded (a
 * tmpfs defaults to half the *host's* RAM), one balloon in /dev/shm filled the limit and the
 * next allocation killed the agent. Bounded, the balloon's writer meets ENOSPC and the other half
 * of the limit stays for the agent and commands. bubblewrap's /dev is a tmpfs too, so it is made
 * read-only once its device nodes are in place: only /dev/shm (and /dev/pts) take writes.
 */
function memoryFilesystemArgs(memMib: number): string[] {
  const quarter = String(Math.max(1, Math.floor(memMib / 4)) * 1024 * 1024);
  return [
    "--dev", "/dev",
    "--perms", "1777", "--size", quarter, "--tmpfs", "/dev/shm",
    "--remount-ro", "/dev",
    "--size", quarter, "--tmpfs", "/run",
  ];
}

/**
 * Where the sandbox sees an empty directory of its workspace's own, read-only. The root and
 * /workspace are overlays, which the kernel's mount table names by no host path; this bind names
 * the workspace's directory in the mount namespace of every process of the sandbox, which is how
 * a sandbox nobody recorded (a killed create's) is still found and ended (confine/remains.ts).
 */
const SANDBOX_MARKER = "/run/pyro-sandbox";

export class NamespaceBackend implements Backend {
  readonly name: BackendName = "namespace";

  async start(spec: SandboxSpec): Promise<StartedSandbox> {
    const upper = path.join(spec.stateDir, "rootfs-upper");
    const work = path.join(spec.stateDir, "rootfs-work");
    const marker = path.join(spec.stateDir, "marker");
    for (const dir of [upper, work, marker, spec.workspaceDir, path.dirname(spec.socketPath)]) fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    // The overlay's upper and work directories belong to guest root, like /workspace; the
    // upper directory's mode is the sandbox's `/`, which every guest user must be able to search.
    fs.chmodSync(upper, 0o755);
    for (const dir of [upper, work]) ownByGuestRoot(dir);
    const launch = await ConfinedLaunch.open(FIRST_STAGED_FD);
    try {
      const root = launch.overlay(spec.layers, upper, work);
      const layered = spec.workspaceLayers ?? null;
      const workspace = layered ? launch.overlay(layered.lowers, layered.upper, layered.work) : launch.bind(spec.workspaceDir);
      const confined = launch.argv(["bwrap", "--seccomp", String(SECCOMP_FD), ...bwrapArgs(spec, root, workspace, launch.bind(marker, { readOnly: true }), launch)], { joinCgroup: true });
      return await launchSandbox(spec, {
        argv: confined.argv,
        fds: confined.fds,
        infoPath: path.join(spec.stateDir, "sandbox-info.json"),
        limits: spec.limits,
        record: {
          backend: "namespace",
          workspaceStage: layered ? workspace : null,
          guestLayers: layered ? { dir: WORKSPACE_LAYERS_GUEST_DIR, layers: layered.lowers.map((l) => path.basename(l)) } : null,
        },
        connect: () => AgentClient.connect(spec.socketPath, 10_000),
        failure: { what: "sandbox", hint: "Run `pyro doctor` to check bubblewrap, user namespaces and overlayfs on this host." },
      });
    } finally {
      launch.release();
    }
  }

  liveness(record: SandboxRecord): SandboxLiveness {
    return sandboxLiveness(record);
  }

  /** The overlay's upper directory; reading it while the overlay is mounted is safe. */
  rootChanges(stateDir: string): RootChanges {
    return { path: path.join(stateDir, "rootfs-upper"), kind: "directory", copyWhileRunning: true };
  }

  stop(record: SandboxRecord): Promise<void> {
    return stopSandbox(record);
  }

  configureNetwork(record: SandboxRecord, spec: NetworkSpec): Promise<SandboxNetwork> {
    return configureSandboxNetwork(record, spec);
  }

  publishPort(record: SandboxRecord, service: string, guestPort: number, hostPort: number | null): Promise<PublishedPort> {
    return publishSandboxPort(record, service, guestPort, hostPort);
  }

  unpublishPort(record: SandboxRecord, port: PublishedPort): Promise<void> {
    return unpublishSandboxPort(record, port);
  }

  takeNetworkDenials(record: SandboxRecord): Promise<NetworkDenial[]> {
    return takeSandboxDenials(record);
  }

  async killExec(record: SandboxRecord, marker: string): Promise<boolean> {
    return (await killExecProcesses(record, marker)) !== null;
  }

  oomKills(record: SandboxRecord): number | null {
    return cgroupOomKills(record.cgroupDirs);
  }
}
