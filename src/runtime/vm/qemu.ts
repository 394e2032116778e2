/**
 * The VM launcher: the one place that knows QEMU's command line and control protocol. The rest
 * of the VM backend speaks in `GuestConfig` and `VmLauncher`, narrow on purpose: a Firecracker
 * launcher (API socket, vsock transport) is a second implementation once a host has its binary.
 *
 * QEMU's `microvm` machine: no PCI, no firmware beyond qboot, virtio-mmio devices found through
 * ACPI (modern mode: vhost-user devices refuse legacy virtio). Guest memory is a shared memfd
 * because virtiofsd maps it. The console is the serial port on QEMU's stdout, read by the
 * supervisor; the monitor is QMP on a unix socket only the host reaches. Host-side.
 */
import fs from "node:fs";
import net from "node:net";
import { PyroError } from "../../shared/errors.js";
import { AGENT_PORT_NAME, WORKSPACE_TAG } from "./guest-init.js";
import { GUEST_ADDRESS } from "../../protocol/guest.js";

/** How a guest's CPU runs: KVM, or TCG software emulation (correct, much slower); host.ts decides. */
export type Acceleration = "kvm" | "tcg";

/**
 * TCG's translation cache in MiB. QEMU's default, 1 GiB, fills under work that runs many
 * programs (a 512 MiB guest writing and tarring 2 000 files took QEMU to 1.4 GiB); 512 MiB ran
 * the same work as fast at 0.8 GiB, while 128 MiB made it several times slower (the cache is
 * flushed whole when full, and everything is translated again). See docs/performance.md.
 */
export const TCG_TB_MIB = 512;

export interface GuestConfig {
  /** Paths as the launcher sees them (inside the VM jail). */
  kernel: string;
  initramfs: string;
  rootDisk: string;
  agentDisk: string;
  /** vhost-user socket of virtiofsd serving /workspace. */
  workspaceSocket: string;
  /** Unix socket the launcher connects the agent's serial port to (the supervisor listens). */
  agentSocket: string;
  /** Control socket (QMP) for port forwards. */
  controlSocket: string;
  memMib: number;
  vcpus: number;
  /** The workspace's pids limit, enforced in the guest on what the agent starts (guest-init.ts). */
  pidsMax?: number;
  acceleration: Acceleration;
  /** A NIC on QEMU's user-mode network; false: the guest has no network device at all. */
  nic: boolean;
  hostname: string;
  /** Boot only far enough to prove the kernel runs (the KVM probe). */
  probe?: boolean;
}

export interface VmLauncher {
  readonly name: string;
  /** argv of the VM process; its stdout is the guest console. */
  argv(binary: string, config: GuestConfig): string[];
  /** Forwards 127.0.0.1:port where the launcher runs to the guest's port. */
  addForward(controlSocket: string, hostPort: number, guestPort: number): Promise<void>;
  removeForward(controlSocket: string, hostPort: number): Promise<void>;
}

/**
 * A TCG guest reads the host's TSC (QEMU returns the host counter), but microvm gives it no
 * reference timer to measure it against: on a busy host its calibration fails and boot can stall
 * in the timer checks. So the guest is told the frequency (the host's own, which is what it will
 * count at) and that the counter is reliable. KVM guests get kvm-clock and need none of this.
 */
function tcgClock(acceleration: Acceleration): string[] {
  if (acceleration !== "tcg") return [];
  const khz = hostTscKhz();
  if (!khz) return ["no_timer_check"];
  // lpj at the kernel's HZ (250 in Debian's cloud kernel): skips the delay-loop calibration too.
  return [`tsc_early_khz=${khz}`, "tsc=reliable", `lpj=${khz * 4}`, "no_timer_check"];
}

let tscKhz: number | null | undefined;

function hostTscKhz(): number | null {
  if (tscKhz !== undefined) return tscKhz;
  try {
    const mhz = fs.readFileSync("/proc/cpuinfo", "utf8").match(/^cpu MHz\s*:\s*([\d.]+)/m)?.[1];
    tscKhz = mhz ? Math.round(Number(mhz) * 1000) : null;
  } catch {
    tscKhz = null;
  }
  return tscKhz;
}

export const qemuMicrovm: VmLauncher = {
  name: "qemu-microvm",

  argv(binary, c) {
    const append = ["console=ttyS0", "pci=off", "panic=-1", "reboot=t", "random.trust_cpu=on", "psi=1", ...tcgClock(c.acceleration), `pyro.hostname=${c.hostname}`, ...(c.pidsMax ? [`pyro.pids=${c.pidsMax}`] : []), ...(c.probe ? ["pyro.probe=1"] : [])];
    const args = [
      binary,
      "-name", `pyro,debug-threads=off`,
      "-machine", "microvm,memory-backend=mem",
      // TCG runs every vCPU in one thread: on a small busy host, one thread per vCPU lets a
      // vCPU that spins waiting for another (SMP bring-up, TLB shootdowns) starve it for seconds.
      "-accel", c.acceleration === "kvm" ? "kvm" : `tcg,thread=single,tb-size=${TCG_TB_MIB}`,
      "-cpu", c.acceleration === "kvm" ? "host" : "max",
      "-m", `${c.memMib}M`,
      "-smp", String(c.vcpus),
      "-object", `memory-backend-memfd,id=mem,size=${c.memMib}M,share=on`,
      "-nodefaults", "-no-user-config", "-no-reboot",
      "-display", "none", "-monitor", "none", "-serial", "stdio",
      "-global", "virtio-mmio.force-legacy=false",
      "-kernel", c.kernel,
      "-initrd", c.initramfs,
      "-append", append.join(" "),
    ];
    if (c.probe) return args;
    args.push(
      "-drive", `id=root,file=${c.rootDisk},format=qcow2,if=none,discard=unmap`,
      "-device", "virtio-blk-device,drive=root",
      "-drive", `id=agent,file=${c.agentDisk},format=raw,if=none,readonly=on`,
      "-device", "virtio-blk-device,drive=agent",
      "-chardev", `socket,id=fs,path=${c.workspaceSocket}`,
      "-device", `vhost-user-fs-device,chardev=fs,tag=${WORKSPACE_TAG}`,
      "-device", "virtio-serial-device",
      "-chardev", `socket,id=agent,path=${c.agentSocket}`,
      "-device", `virtserialport,chardev=agent,name=${AGENT_PORT_NAME}`,
      "-device", "virtio-rng-device",
      // Pages the guest frees are reported and dropped from the host's memory (guest RAM is a
      // memfd: untouched pages cost nothing, but touched ones stay without this).
      "-device", "virtio-balloon-device,free-page-reporting=on,deflate-on-oom=on",
      "-qmp", `unix:${c.controlSocket},server=on,wait=off`,
    );
    if (c.nic) args.push("-netdev", "user,id=net0", "-device", "virtio-net-device,netdev=net0");
    return args;
  },

  async addForward(controlSocket, hostPort, guestPort) {
    const reply = await hmp(controlSocket, `hostfwd_add net0 tcp:127.0.0.1:${hostPort}-${GUEST_ADDRESS}:${guestPort}`);
    if (reply.trim()) throw new PyroError("port_in_use", `the VM could not forward port ${hostPort}: ${reply.trim()}`);
  },

  async removeForward(controlSocket, hostPort) {
    await hmp(controlSocket, `hostfwd_remove net0 tcp:127.0.0.1:${hostPort}`);
  },
};

const QMP_LINE_MAX = 1024 * 1024;

/** One human-monitor command over QMP; resolves with its text output. */
function hmp(socketPath: string, command: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ path: socketPath });
    let buffered = "";
    let step = 0;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new PyroError("internal_error", `the VM's control socket did not answer \`${command}\``));
    }, timeoutMs);
    const finish = (err: Error | null, value = "") => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(value);
    };
    socket.on("error", (err) => finish(new PyroError("internal_error", `cannot reach the VM's control socket: ${err.message}`)));
    socket.on("data", (data: Buffer) => {
      buffered += data.toString("utf8");
      // QEMU runs beside the guest, so its answers are untrusted too: a line never grows unbounded.
      if (buffered.length > QMP_LINE_MAX) return finish(new PyroError("internal_error", `the VM's control socket sent a line over ${QMP_LINE_MAX} bytes`));
      let nl: number;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        let msg: { QMP?: unknown; return?: unknown; error?: { desc?: string }; event?: string };
        try {
          msg = JSON.parse(line) as typeof msg;
        } catch {
          continue;
        }
        if (msg.event) continue;
        if (msg.error) return finish(new PyroError("internal_error", `the VM refused \`${command}\`: ${msg.error.desc ?? "error"}`));
        if (step === 0 && msg.QMP) {
          step = 1;
          socket.write(`${JSON.stringify({ execute: "qmp_capabilities" })}\n`);
        } else if (step === 1 && "return" in msg) {
          step = 2;
          socket.write(`${JSON.stringify({ execute: "human-monitor-command", arguments: { "command-line": command } })}\n`);
        } else if (step === 2 && "return" in msg) {
          finish(null, typeof msg.return === "string" ? msg.return : "");
        }
      }
    });
  });
}
