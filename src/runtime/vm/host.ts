/**
 * What this host offers the VM backend: QEMU, a guest kit, and which acceleration a guest
 * actually boots with. `/dev/kvm` being present proves little (a nested or restricted host can
 * expose one that cannot run a stock kernel), so KVM counts only after a probe guest booted
 * with it within a short timeout; the verdict is cached per host boot and guest kernel.
 * Host-side.
 */
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import type { BackendName, BackendRequest } from "../backend.js";
import { PyroError } from "../../shared/errors.js";
import { readJsonIfExists, writeJsonAtomic } from "../../shared/atomic.js";
import { findTool, guestKit, missingVmPackages, vmDir } from "./kit.js";
import type { GuestKit } from "./kit.js";
import { PROBE_MARKER } from "./guest-init.js";
import { qemuMicrovm } from "./qemu.js";
import type { Acceleration } from "./qemu.js";
import { sandboxIdentity } from "../confine/identity.js";
import { readBootId } from "../../shared/process.js";

export interface VmHostReport {
  /** VM workspaces can be created here (with KVM or, slower, with TCG). */
  usable: boolean;
  qemu: { path: string | null; version: string | null };
  /** `device`: /dev/kvm exists and opens; `bootable`: a probe guest booted with it (null: not probed). */
  kvm: { device: boolean; bootable: boolean | null; detail: string };
  acceleration: Acceleration | null;
  /** One sentence: why this acceleration, or why the VM backend is unusable. */
  reason: string;
  /** What to run to fix an unusable VM backend. */
  hint: string | null;
}

interface ProbeVerdict {
  bootId: string;
  kernelRelease: string;
  bootable: boolean;
  detail: string;
}

const PROBE_TIMEOUT_MS = Number(process.env.PYRO_VM_KVM_PROBE_TIMEOUT_MS) || 5000;

function kvmDevice(): { ok: boolean; detail: string } {
  try {
    fs.closeSync(fs.openSync("/dev/kvm", "r+"));
    // QEMU opens it as guest root inside its jail: under root-run pyro that is the reserved id
    // range, which only a world-usable /dev/kvm lets in (most distributions make it 0666).
    if (sandboxIdentity().kind === "root-range" && (fs.statSync("/dev/kvm").mode & 0o006) !== 0o006) {
      return { ok: false, detail: "/dev/kvm is not open to all users, and QEMU runs as the unprivileged sandbox identity (sudo chmod 0666 /dev/kvm, as most distributions have it)" };
    }
    return { ok: true, detail: "/dev/kvm opens" };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { ok: false, detail: code === "ENOENT" ? "/dev/kvm does not exist" : `/dev/kvm cannot be opened (${code})` };
  }
}

const versions = new Map<string, string | null>();

/** QEMU's version, asked once per process (every VM start reads the host report). */
function qemuVersion(binary: string): string | null {
  if (!versions.has(binary)) {
    const r = spawnSync(binary, ["--version"], { encoding: "utf8", timeout: 5000 });
    versions.set(binary, r.stdout?.match(/version\s+(\S+)/)?.[1] ?? null);
  }
  return versions.get(binary)!;
}

/** Boots the kit's kernel with KVM to the initramfs's probe marker, within a short timeout. */
function bootProbe(qemu: string, kit: GuestKit): Promise<{ bootable: boolean; detail: string }> {
  const argv = qemuMicrovm.argv(qemu, {
    kernel: kit.kernel, initramfs: kit.initramfs, rootDisk: "", agentDisk: "", workspaceSocket: "", agentSocket: "", controlSocket: "",
    memMib: 256, vcpus: 1, acceleration: "kvm", nic: false, hostname: "pyro-probe", probe: true,
  });
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    let done = false;
    const finish = (bootable: boolean, detail: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      child.kill("SIGKILL");
      resolve({ bootable, detail });
    };
    const timer = setTimeout(() => finish(false, `a KVM guest did not boot within ${PROBE_TIMEOUT_MS} ms (this /dev/kvm cannot run the guest kernel)`), PROBE_TIMEOUT_MS);
    const collect = (d: Buffer) => {
      output = (output + d.toString("utf8")).slice(-4000);
      if (output.includes(PROBE_MARKER)) finish(true, `a KVM guest booted in ${Date.now() - started} ms`);
    };
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    child.on("error", (err) => finish(false, `cannot run QEMU: ${err.message}`));
    child.on("exit", () => {
      const last = output.trim().split("\n").filter(Boolean).pop() ?? "";
      finish(false, `QEMU exited before the KVM guest booted${last ? `: ${last.slice(0, 200)}` : ""}`);
    });
  });
}

/** Whether guests boot with KVM here: probed once per host boot and guest kernel, then cached. */
async function kvmBootable(home: string, qemu: string, kit: GuestKit): Promise<{ bootable: boolean; detail: string }> {
  const file = path.join(vmDir(home), "kvm-probe.json");
  const bootId = readBootId();
  const cached = await readJsonIfExists<ProbeVerdict>(file).catch(() => undefined);
  if (cached && cached.bootId === bootId && cached.kernelRelease === kit.kernelRelease) return cached;
  const verdict = await bootProbe(qemu, kit);
  await writeJsonAtomic(file, { bootId, kernelRelease: kit.kernelRelease, ...verdict } satisfies ProbeVerdict);
  return verdict;
}

function forcedAcceleration(): Acceleration | null {
  const forced = process.env.PYRO_VM_ACCELERATION;
  if (!forced) return null;
  if (forced !== "kvm" && forced !== "tcg") {
    throw new PyroError("invalid_argument", `PYRO_VM_ACCELERATION must be kvm or tcg, not ${JSON.stringify(forced)}`);
  }
  return forced;
}

/**
 * The VM backend's view of this host. With `probe`, builds the guest kit if needed (a one-time
 * download of Debian's cloud kernel) and boots a probe guest with KVM when /dev/kvm opens.
 */
export async function vmHostReport(home: string, options: { probe?: boolean } = {}): Promise<VmHostReport> {
  const qemuPath = findTool("qemu-system-x86_64");
  const qemu = { path: qemuPath, version: qemuPath ? qemuVersion(qemuPath) : null };
  const device = kvmDevice();
  const missing = missingVmPackages();
  const sudo = process.getuid?.() === 0 ? "" : "sudo ";
  if (missing.length > 0) {
    return {
      usable: false, qemu, kvm: { device: device.ok, bootable: null, detail: device.detail }, acceleration: null,
      reason: `the vm backend needs ${missing.join(", ")}, which this host does not have`,
      hint: `${sudo}apt-get install -y ${missing.join(" ")}`,
    };
  }
  const forced = forcedAcceleration();
  if (forced) {
    return { usable: true, qemu, kvm: { device: device.ok, bootable: null, detail: device.detail }, acceleration: forced, reason: `PYRO_VM_ACCELERATION=${forced} is set`, hint: null };
  }
  if (!device.ok) {
    return { usable: true, qemu, kvm: { device: false, bootable: null, detail: device.detail }, acceleration: "tcg", reason: `${device.detail}, so guests run under TCG software emulation (correct, much slower)`, hint: null };
  }
  if (!options.probe) {
    const cached = await readJsonIfExists<ProbeVerdict>(path.join(vmDir(home), "kvm-probe.json")).catch(() => undefined);
    if (!cached || cached.bootId !== readBootId()) {
      return { usable: true, qemu, kvm: { device: true, bootable: null, detail: "not probed yet" }, acceleration: null, reason: "KVM is decided by a probe boot on first use", hint: null };
    }
    return verdictReport(qemu, cached);
  }
  let kit: GuestKit;
  try {
    kit = await guestKit(home);
  } catch (err) {
    const e = err as PyroError;
    return { usable: false, qemu, kvm: { device: true, bootable: null, detail: device.detail }, acceleration: null, reason: `the guest kit cannot be built: ${e.message}`, hint: e.hint ?? null };
  }
  return verdictReport(qemu, await kvmBootable(home, qemu.path!, kit));
}

function verdictReport(qemu: VmHostReport["qemu"], verdict: { bootable: boolean; detail: string }): VmHostReport {
  return {
    usable: true,
    qemu,
    kvm: { device: true, bootable: verdict.bootable, detail: verdict.detail },
    acceleration: verdict.bootable ? "kvm" : "tcg",
    reason: verdict.bootable ? `KVM works: ${verdict.detail}` : `${verdict.detail}, so guests run under TCG software emulation (correct, much slower)`,
    hint: null,
  };
}

/** The acceleration a VM starts with now (probing once if needed); throws when the backend is unusable. */
export async function vmAcceleration(home: string): Promise<Acceleration> {
  const report = await vmHostReport(home, { probe: true });
  if (!report.usable || !report.acceleration) {
    throw new PyroError("backend_unavailable", `the vm backend cannot run here: ${report.reason}`, report.hint ? { hint: report.hint } : {});
  }
  return report.acceleration;
}

/**
 * `auto` → `vm` when guests boot with KVM on this host, else `namespace`: a TCG guest is
 * correct but tens of times slower, so it is used only when asked for by name.
 */
export async function resolveBackend(requested: BackendRequest, home: string): Promise<BackendName> {
  if (requested === "namespace") return "namespace";
  if (requested === "vm") {
    await vmAcceleration(home);
    return "vm";
  }
  // The report itself skips the probe when QEMU or /dev/kvm is missing.
  const report = await vmHostReport(home, { probe: true }).catch(() => null);
  return report?.usable && report.acceleration === "kvm" ? "vm" : "namespace";
}
