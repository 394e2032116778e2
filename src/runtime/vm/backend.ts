/**
 * The VM backend: each workspace is a QEMU microVM with its own guest kernel. The VM runs inside
 * a jail — a bubblewrap sandbox like a namespace workspace's, but holding only QEMU, virtiofsd
 * and the supervisor, with the host's programs read-only, the workspace's cgroup and its own
 * network namespace. So everything around the guest is the confinement kit's, composed as the
 * namespace backend composes it (confine/sandbox.ts): launch, stop and liveness (kill the jail,
 * the cgroup catches the rest), and network enforcement (QEMU's user-mode stack opens its
 * connections inside the jail's namespace, where the same nftables rules, DNS forwarder and
 * slirp4netns apply; guest root cannot touch them).
 *
 * The guest's root is a qcow2 overlay on the environment's shared ext4 image (kit.ts); its
 * /workspace is the host's workspace directory through virtiofs, so snapshots, diff, export and
 * the disk tools work on it exactly as for namespace workspaces. Host-side.
 */
import fs from "node:fs";
import path from "node:path";
import type { Backend, BackendName, NetworkDenial, NetworkSpec, PublishedPort, RootChanges, SandboxLiveness, SandboxNetwork, SandboxRecord, SandboxSpec, StartedSandbox } from "../backend.js";
import { agentRuntime } from "../confine/agent-runtime.js";
import { AgentClient } from "../../protocol/client.js";
import { PyroError } from "../../shared/errors.js";
import { AGENT_RUNTIME_DIR } from "../../protocol/messages.js";
import { SLIRP_DNS } from "../../protocol/guest.js";
import { FIRST_STAGED_FD, PROC_ARGS, SECCOMP_FD, confinementArgs, hostSystemArgs } from "../confine/bwrap.js";
import { ConfinedLaunch, ownByGuestRoot } from "../confine/launch.js";
import { configureSandboxNetwork, launchSandbox, publishSandboxPort, sandboxLiveness, stopSandbox, takeSandboxDenials, unpublishSandboxPort } from "../confine/sandbox.js";
import { agentImage, createRootOverlay, guestKit, requireVmTools, rootImage, supervisorBundlePath, virtiofsdPath } from "./kit.js";
import { vmAcceleration } from "./host.js";
import { qemuMicrovm, TCG_TB_MIB } from "./qemu.js";
import type { VmLauncher } from "./qemu.js";
import type { SupervisorConfig } from "./supervisor.js";

/**
 * What the jail keeps of root's capabilities: virtiofsd serves the guest's file operations
 * under the guest's uids (chown, setuid/setgid per request, chroot into the shared directory).
 * No CAP_MKNOD, so a device node made in the guest never becomes one on the host, and no
 * CAP_SYS_ADMIN or CAP_NET_ADMIN: the jail cannot change its mounts or its firewall.
 */
const JAIL_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_SETGID", "CAP_SETUID", "CAP_SYS_CHROOT", "CAP_SETPCAP"];

/**
 * Host memory a VM needs beyond its guest RAM: QEMU, virtiofsd and the supervisor, and under
 * TCG also QEMU's translation cache (TCG_TB_MIB), which fills under work that runs many
 * programs. The jail's limit is a ceiling, not a reservation: a guest that runs little uses
 * little of it.
 */
const VM_OVERHEAD_MIB = { kvm: 384, tcg: 384 + TCG_TB_MIB };
/** How long a guest may take to answer: a TCG boot on a loaded 2-core host takes seconds. */
const BOOT_TIMEOUT_MS = { kvm: 30_000, tcg: 180_000 };
const LOG_MAX_BYTES = 1024 * 1024;

/** Paths inside the jail. */
const JAIL = {
  kernel: "/vm/vmlinuz",
  initramfs: "/vm/initramfs",
  agentDisk: "/vm/agent.ext4",
  state: "/vm/state",
  run: "/vm/run",
  workspace: "/vm/workspace",
  log: "/vm/sandbox.log",
  supervisor: "/run/pyro/vm-supervisor.mjs",
};


/** `run/<id>.vm/` beside the agent's `run/<id>.sock`: the jail's sockets. */
function runDirFor(spec: SandboxSpec): string {
  return spec.socketPath.replace(/\.sock$/, "") + ".vm";
}

function agentSocketOf(runDir: string): string {
  return runDir.replace(/\.vm$/, "") + ".sock";
}

export class VmBackend implements Backend {
  readonly name: BackendName = "vm";

  constructor(
    private readonly home: string,
    private readonly launcher: VmLauncher = qemuMicrovm,
  ) {}

  async start(spec: SandboxSpec): Promise<StartedSandbox> {
    requireVmTools();
    const acceleration = await vmAcceleration(this.home);
    const [kit, agentDisk, rootBase] = await Promise.all([guestKit(this.home), agentImage(this.home), rootImage(this.home, spec.layers)]);
    const runDir = runDirFor(spec);
    for (const dir of [spec.stateDir, spec.workspaceDir, path.dirname(spec.socketPath)]) fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.rmSync(runDir, { recursive: true, force: true });
    fs.mkdirSync(runDir, { mode: 0o700 });
    const rootDisk = path.join(spec.stateDir, "root.qcow2");
    if (!fs.existsSync(rootDisk)) await createRootOverlay(rootBase, rootDisk);
    // The log is bound into the jail by path (the supervisor writes the console there): it must exist.
    fs.closeSync(fs.openSync(spec.logPath, "a", 0o600));

    const nic = spec.network.policy !== "off";
    const qemu = this.launcher.argv("qemu-system-x86_64", {
      kernel: JAIL.kernel,
      initramfs: JAIL.initramfs,
      rootDisk: `${JAIL.state}/root.qcow2`,
      agentDisk: JAIL.agentDisk,
      workspaceSocket: `${JAIL.run}/fs.sock`,
      agentSocket: `${JAIL.run}/agent.sock`,
      controlSocket: `${JAIL.run}/control.sock`,
      memMib: spec.limits.memMib,
      vcpus: spec.limits.vcpuCount,
      pidsMax: spec.limits.pidsMax,
      acceleration,
      nic,
      hostname: spec.hostname,
    });
    const config: SupervisorConfig = {
      launcher: qemu,
      // cache=none: the host changes /workspace too (sync push, reset), and the guest must see it at once.
      virtiofsd: [virtiofsdPath()!, `--socket-path=${JAIL.run}/fs.sock`, "-o", `source=${JAIL.workspace}`, "-o", "cache=none", "-o", "sandbox=chroot", "-o", "no_xattr", "-o", "modcaps=-mknod:-setfcap"],
      workspaceSocket: `${JAIL.run}/fs.sock`,
      agentSocket: `${JAIL.run}/agent.sock`,
      log: JAIL.log,
      logMaxBytes: LOG_MAX_BYTES,
    };
    fs.writeFileSync(path.join(runDir, "supervisor.json"), JSON.stringify(config), { mode: 0o600 });
    // QEMU's user-mode stack resolves through the jail's resolver: slirp4netns's, or the
    // allow-list forwarder that the jail's firewall sends every DNS packet to.
    fs.writeFileSync(path.join(runDir, "resolv.conf"), `nameserver ${SLIRP_DNS}\n`, { mode: 0o644 });

    // What QEMU and virtiofsd write belongs to guest root (the jail runs as the sandbox identity).
    for (const p of [rootDisk, runDir, path.join(runDir, "supervisor.json"), path.join(runDir, "resolv.conf"), spec.logPath, spec.workspaceDir]) ownByGuestRoot(p);

    const launchedAt = Date.now();
    const launch = await ConfinedLaunch.open(FIRST_STAGED_FD);
    try {
      const workspace = this.workspaceStage(spec, launch);
      const jail = this.jailArgs(spec, launch, { kernel: kit.kernel, initramfs: kit.initramfs, agentDisk, rootBase, runDir, workspace, kvm: acceleration === "kvm" });
      const confined = launch.argv(["bwrap", "--seccomp", String(SECCOMP_FD), ...jail], { joinCgroup: true });
      const started = await launchSandbox(spec, {
        argv: confined.argv,
        fds: confined.fds,
        infoPath: path.join(runDir, "jail-info.json"),
        limits: { ...spec.limits, memMib: spec.limits.memMib + VM_OVERHEAD_MIB[acceleration] },
        record: { backend: "vm", vm: { acceleration, runDir, nic, bootMs: null }, workspaceStage: spec.workspaceLayers ? workspace : null },
        connect: (exited) => connectWhileAlive(spec.socketPath, exited, BOOT_TIMEOUT_MS[acceleration]),
        failure: { what: "VM", hint: "Run `pyro doctor` to check QEMU, KVM and the guest kit on this host." },
      }).catch((err: unknown) => {
        // The kit has stopped the jail; its sockets go with it, as on any stop.
        fs.rmSync(runDir, { recursive: true, force: true });
        throw err;
      });
      started.record.vm!.bootMs = Date.now() - launchedAt;
      return started;
    } finally {
      launch.release();
    }
  }

  /**
   * /workspace as the jail shows it to virtiofsd: a layered workspace's overlay mounted on the
   * launch's stage (in the jail's own mount namespace), else a bind of the workspace directory.
   */
  private workspaceStage(spec: SandboxSpec, launch: ConfinedLaunch): string {
    const layered = spec.workspaceLayers ?? null;
    return layered ? launch.overlay(layered.lowers, layered.upper, layered.work) : launch.bind(spec.workspaceDir);
  }

  /** The jail's bubblewrap arguments; pyro's state files reach it through the launch's stage. */
  private jailArgs(spec: SandboxSpec, launch: ConfinedLaunch, p: { kernel: string; initramfs: string; agentDisk: string; rootBase: string; runDir: string; workspace: string; kvm: boolean }): string[] {
    const args = ["--tmpfs", "/", "--dir", "/tmp", ...PROC_ARGS, "--dev", "/dev", ...hostSystemArgs()];
    if (p.kvm) args.push("--dev-bind", "/dev/kvm", "/dev/kvm");
    for (const bind of agentRuntime().binds) args.push("--ro-bind", launch.reachable(bind.source), bind.target);
    const ro = (source: string) => launch.bind(source, { readOnly: true });
    args.push(
      "--ro-bind", launch.reachable(supervisorBundlePath()), JAIL.supervisor,
      "--ro-bind", ro(p.kernel), JAIL.kernel,
      "--ro-bind", ro(p.initramfs), JAIL.initramfs,
      "--ro-bind", ro(p.agentDisk), JAIL.agentDisk,
      // The overlay names its backing image by host path: it is shown at that path, read-only.
      "--ro-bind", ro(p.rootBase), p.rootBase,
      "--ro-bind", ro(path.join(p.runDir, "resolv.conf")), "/etc/resolv.conf",
      // The root disk alone, not the state directory: the network helpers keep their files there.
      "--bind", launch.bind(path.join(spec.stateDir, "root.qcow2")), `${JAIL.state}/root.qcow2`,
      "--bind", launch.bind(p.runDir), JAIL.run,
      "--bind", p.workspace, JAIL.workspace,
      "--bind", launch.bind(spec.logPath), JAIL.log,
      ...confinementArgs(spec.hostname, JAIL_CAPS),
      "--chdir", "/",
      "--info-fd", "4",
      "--",
      // The agent runtime's node (with its small heap), running the supervisor instead of the agent.
      ...agentRuntime().command.slice(0, -1),
      JAIL.supervisor,
      `${JAIL.run}/supervisor.json`,
    );
    return args;
  }

  liveness(record: SandboxRecord): SandboxLiveness {
    return sandboxLiveness(record);
  }

  /** The qcow2 root disk over the shared image; only a stopped VM's is complete and still. */
  rootChanges(stateDir: string): RootChanges {
    return { path: path.join(stateDir, "root.qcow2"), kind: "file", copyWhileRunning: false };
  }

  async stop(record: SandboxRecord, options: { preserve?: boolean } = {}): Promise<void> {
    // The guest's page cache holds root-disk writes for seconds; a stop that keeps the workspace
    // has the guest flush it first, or a package installed just before would come back empty.
    if (options.preserve && this.liveness(record) === "alive") await flushGuest(record).catch(() => undefined);
    await stopSandbox(record);
    if (record.vm?.runDir) fs.rmSync(record.vm.runDir, { recursive: true, force: true });
  }

  async configureNetwork(record: SandboxRecord, spec: NetworkSpec): Promise<SandboxNetwork> {
    const state = await configureSandboxNetwork(record, spec);
    const wantsNic = spec.policy !== "off";
    if (record.vm && record.vm.nic !== wantsNic) {
      // microvm's virtio-mmio devices cannot be hot-plugged: the rules change now, the device at the next start.
      state.note = wantsNic
        ? "this VM was started without a network device: egress works after the workspace restarts (workspace stop, then start)"
        : "the policy is off and enforced now; the VM keeps its idle network device until the workspace restarts";
    }
    return state;
  }

  async publishPort(record: SandboxRecord, service: string, guestPort: number, hostPort: number | null): Promise<PublishedPort> {
    if (!record.vm?.nic) {
      throw new PyroError("publish_not_allowed", "this VM was started without a network device", {
        hint: "Restart the workspace (workspace stop, then start) so it boots with the current network policy.",
      });
    }
    const published = await publishSandboxPort(record, service, guestPort, hostPort);
    try {
      // slirp4netns brings host 127.0.0.1:hostPort to the jail's 127.0.0.1:guestPort; QEMU takes it on to the guest.
      await this.launcher.addForward(path.join(record.vm.runDir, "control.sock"), guestPort, guestPort);
    } catch (err) {
      await unpublishSandboxPort(record, published).catch(() => undefined);
      throw err;
    }
    return published;
  }

  async unpublishPort(record: SandboxRecord, port: PublishedPort): Promise<void> {
    if (record.vm) await this.launcher.removeForward(path.join(record.vm.runDir, "control.sock"), port.guest_port).catch(() => undefined);
    await unpublishSandboxPort(record, port);
  }

  takeNetworkDenials(record: SandboxRecord): Promise<NetworkDenial[]> {
    return takeSandboxDenials(record);
  }

  /** The guest's processes are out of the host's sight: the guest's agent kills them (guest-init.ts keeps it able to). */
  async killExec(): Promise<boolean> {
    return false;
  }

  /** The jail's cgroup counts QEMU, not the guest's processes: the guest's agent reports its own kernel's count. */
  oomKills(): number | null {
    return null;
  }
}

/** How long a stop waits for the guest to flush its page cache before the VM is killed anyway. */
const FLUSH_LIMIT_MS = 6000;

/**
 * Runs `sync` in the guest through its agent. Bounded as a whole — connection, handshake and
 * command — because a guest swamped by what runs in it (a fork bomb, a memory balloon) may
 * accept the connection and never answer: a stop must still end, and kill the VM.
 */
async function flushGuest(record: SandboxRecord): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("the guest did not flush in time")), FLUSH_LIMIT_MS);
  });
  const connecting = AgentClient.connect(agentSocketOf(record.vm!.runDir), 2000);
  try {
    const client = await Promise.race([connecting, limit]);
    try {
      await Promise.race([client.request({ type: "exec", argv: [`${AGENT_RUNTIME_DIR}/busybox`, "sync"], cwd: "/", env: {}, timeoutMs: 5000, maxOutputBytes: 1024, stdinBytes: 0 }), limit]);
    } finally {
      client.close();
    }
  } catch (err) {
    void connecting.then((c) => c.close(), () => undefined);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Connects to the supervisor's socket and completes the agent handshake, which succeeds only
 * once the guest has booted and its agent serves; fails fast if the jail dies meanwhile.
 */
async function connectWhileAlive(socketPath: string, exited: () => boolean, timeoutMs: number): Promise<AgentClient> {
  let timer: NodeJS.Timeout | undefined;
  let poll: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the guest agent did not answer within ${timeoutMs / 1000} s`)), timeoutMs);
    poll = setInterval(() => {
      if (exited()) reject(new Error("the VM exited during boot"));
    }, 50);
  });
  const client = AgentClient.connect(socketPath, 10_000);
  try {
    return await Promise.race([client, guard]);
  } catch (err) {
    void client.then((c) => c.close(), () => undefined);
    throw err;
  } finally {
    clearTimeout(timer);
    clearInterval(poll);
  }
}
