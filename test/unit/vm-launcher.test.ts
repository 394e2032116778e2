import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { qemuMicrovm } from "../../src/runtime/vm/qemu.js";
import type { GuestConfig } from "../../src/runtime/vm/qemu.js";
import net from "node:net";
import { guestKit, pruneRootImages, rootImagePath } from "../../src/runtime/vm/kit.js";
import { vmHostReport } from "../../src/runtime/vm/host.js";
import { initramfsInit, pidOneScript } from "../../src/runtime/vm/guest-init.js";

const config: GuestConfig = {
  kernel: "/vm/vmlinuz", initramfs: "/vm/initramfs", rootDisk: "/vm/state/root.qcow2", agentDisk: "/vm/agent.ext4",
  workspaceSocket: "/vm/run/fs.sock", agentSocket: "/vm/run/agent.sock", controlSocket: "/vm/run/control.sock",
  memMib: 512, vcpus: 2, acceleration: "tcg", nic: false, hostname: "ws-1",
};
const argOf = (argv: string[], flag: string) => argv.filter((_, i) => argv[i - 1] === flag);

describe("the QEMU microvm command line", () => {
  it("gives the policy off no network device at all, and an egress policy one user-mode NIC", () => {
    const off = qemuMicrovm.argv("qemu", config);
    expect(off.join(" ")).not.toMatch(/netdev|virtio-net/);
    const egress = qemuMicrovm.argv("qemu", { ...config, nic: true });
    expect(argOf(egress, "-netdev")).toEqual(["user,id=net0"]);
    expect(argOf(egress, "-device")).toContain("virtio-net-device,netdev=net0");
  });

  it("uses KVM with the host CPU, or single-threaded TCG told the TSC frequency", () => {
    const kvm = qemuMicrovm.argv("qemu", { ...config, acceleration: "kvm" });
    expect(argOf(kvm, "-accel")).toEqual(["kvm"]);
    expect(argOf(kvm, "-cpu")).toEqual(["host"]);
    expect(argOf(kvm, "-append")[0]).not.toContain("tsc_early_khz");
    const tcg = qemuMicrovm.argv("qemu", config);
    expect(argOf(tcg, "-accel")).toEqual(["tcg,thread=single,tb-size=512"]);
    expect(argOf(tcg, "-append")[0]).toMatch(/tsc_early_khz=\d+ tsc=reliable/);
  });

  it("shares memory for virtiofsd, mounts the agent disk read-only, and keeps the monitor off the console", () => {
    const argv = qemuMicrovm.argv("qemu", config);
    expect(argOf(argv, "-object")).toEqual(["memory-backend-memfd,id=mem,size=512M,share=on"]);
    expect(argOf(argv, "-drive")).toContain("id=agent,file=/vm/agent.ext4,format=raw,if=none,readonly=on");
    expect(argOf(argv, "-monitor")).toEqual(["none"]);
    expect(argOf(argv, "-qmp")).toEqual(["unix:/vm/run/control.sock,server=on,wait=off"]);
    expect(argOf(argv, "-append")[0]).toContain("pyro.hostname=ws-1");
    // Memory pressure (PSI) is what the agent's guard against thrashing reads.
    expect(argOf(argv, "-append")[0]?.split(" ")).toContain("psi=1");
  });

  it("boots a probe guest with nothing attached", () => {
    const argv = qemuMicrovm.argv("qemu", { ...config, acceleration: "kvm", probe: true });
    expect(argv).not.toContain("-drive");
    expect(argOf(argv, "-append")[0]).toContain("pyro.probe=1");
  });
});

describe("the guest's scripts", () => {
  it("power the guest off on any failure instead of hanging, and start the agent on its serial port", () => {
    expect(initramfsInit()).toMatch(/findfs LABEL=pyro-root\) \|\| fail/);
    expect(initramfsInit()).toContain("switch_root /newroot");
    const pid1 = pidOneScript();
    expect(pid1).toContain("pyro-agent.mjs --serial");
    expect(pid1).toMatch(/wait\n.*\n.*poweroff -f/);
    expect(pid1).toContain("mount -t tmpfs -o mode=0700,nodev,nosuid,noexec tmpfs /run/pyro-secrets");
  });
});

describe("root image pruning", () => {
  it("removes only images that no workspace or environment stands on", async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-vmprune-"));
    const kept = rootImagePath(home, ["/x/layers/aaa", "/x/layers/base"]);
    const stale = rootImagePath(home, ["/x/layers/old"]);
    fs.mkdirSync(path.dirname(kept), { recursive: true });
    fs.writeFileSync(kept, "k");
    fs.writeFileSync(stale, "s".repeat(10_000));
    // The same layers pinned elsewhere (another state directory) name the same image.
    const freed = await pruneRootImages(home, [["/elsewhere/aaa", "/elsewhere/base"]]);
    expect(fs.existsSync(kept)).toBe(true);
    expect(fs.existsSync(stale)).toBe(false);
    expect(freed).toBeGreaterThan(0);
    fs.rmSync(home, { recursive: true, force: true });
  });
});

describe("bad input from the environment or from QEMU", () => {
  it("refuses an unknown PYRO_VM_ACCELERATION with invalid_argument", async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-vmaccel-"));
    process.env.PYRO_VM_ACCELERATION = "turbo";
    try {
      await expect(vmHostReport(home)).rejects.toMatchObject({ code: "invalid_argument", message: expect.stringContaining("kvm or tcg") });
    } finally {
      delete process.env.PYRO_VM_ACCELERATION;
      fs.rmSync(home, { recursive: true, force: true });
    }
  });

  it("says which kernel package is missing when PYRO_VM_KERNEL_DEB names nothing, and builds no kit", async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-vmkit-"));
    process.env.PYRO_VM_KERNEL_DEB = path.join(home, "no-such-kernel.deb");
    try {
      await expect(guestKit(home)).rejects.toMatchObject({ code: "backend_unavailable", message: expect.stringContaining("no-such-kernel.deb") });
      expect(fs.readdirSync(path.join(home, "vm"))).toEqual(["tmp"]);
      expect(fs.readdirSync(path.join(home, "vm", "tmp"))).toEqual([]);
    } finally {
      delete process.env.PYRO_VM_KERNEL_DEB;
      fs.rmSync(home, { recursive: true, force: true });
    }
  });

  it("stops reading a control socket that sends an endless line", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-qmp-"));
    const socketPath = path.join(dir, "control.sock");
    // A hostile QEMU: a greeting, then bytes without end and never a newline.
    const server = net.createServer((c) => {
      c.write('{"QMP": {}}\n');
      const chunk = "x".repeat(64 * 1024);
      const flood = () => { while (!c.destroyed && c.write(chunk)); };
      c.on("drain", flood);
      c.on("error", () => undefined);
      c.once("data", flood);
    });
    await new Promise<void>((r) => server.listen(socketPath, () => r()));
    try {
      await expect(qemuMicrovm.addForward(socketPath, 8000, 8000)).rejects.toMatchObject({ code: "internal_error", message: expect.stringContaining("over 1048576 bytes") });
    } finally {
      server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
