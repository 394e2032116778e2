/**
 * What this host offers the VM backend: QEMU, a guest kit, and which acceleration a guest
 * actually boots with. `/dev/kvm` being present proves little (a nested or restricted host can
 * expose one that cannot run a stock kernel), so KVM counts only after a probe guest booted
 * with it within a short timeout; the verdict is cached per host boot. Host-side.
 */
import type { BackendName, BackendRequest } from "../backend.js";

export type Acceleration = "kvm" | "tcg";

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

export declare function vmHostReport(home: string, options?: { probe?: boolean }): Promise<VmHostReport>;

/**
 * `auto` → `vm` when guests boot with KVM here, else `namespace` (a TCG guest is correct but
 * tens of times slower, so it is used only when asked for by name).
 */
export declare function resolveBackend(requested: BackendRequest, home: string): Promise<BackendName>;
