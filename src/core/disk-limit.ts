/**
 * The per-workspace disk limit (`disk_mib`): its bounds, which mechanism a workspace gets at
 * create and keeps for life (runtime/confine/disk.ts: `kernel`, an ext4 filesystem of that size
 * mounted at /workspace, when pyro runs as root; else `watched`), the checks pyro makes before
 * and after the calls that write to /workspace, and what status reports. The limit covers
 * /workspace only: snapshots and the baseline are pyro's own copies, kept outside it, each no
 * larger than /workspace was when it was taken. A workspace made before the limit existed has
 * none (`none`), since a limit added later could refuse a workspace that already holds more.
 */
import fs from "node:fs";
import path from "node:path";
import { PyroError } from "../shared/errors.js";
import { readJsonIfExists, writeJsonAtomic } from "../shared/atomic.js";
import { isMounted, kernelDiskBlocker, kernelDiskUsage, makeWorkspaceDisk, measureTree, mountWorkspaceDisk, DISK_IMAGE } from "../runtime/confine/disk.js";
import type { DiskEnforcement } from "../runtime/confine/disk.js";
import type { StateStore } from "./store.js";
import type { DiskInfo, WorkspaceRecord } from "./types.js";

export type { DiskEnforcement } from "../runtime/confine/disk.js";

/**
 * 8 GiB: room for a sizeable checkout with its dependencies and build output (node_modules, a
 * Rust target/ directory, a Python venv), while a runaway loop stops long before a laptop's disk
 * fills. The kernel mechanism's image is sparse, so the default costs the host only what is used.
 */
export const DEFAULT_DISK_MIB = 8192;
/** Below this an ext4 filesystem is mostly its own metadata (journal, inode tables). */
export const MIN_DISK_MIB = 64;
/** 1 TiB: a limit beyond any laptop's disk is no limit. */
export const MAX_DISK_MIB = 1024 * 1024;

const MIB = 1024 * 1024;

export function validateDiskMib(value: number | undefined): number {
  const v = value ?? DEFAULT_DISK_MIB;
  if (typeof v !== "number" || !Number.isInteger(v) || v < MIN_DISK_MIB || v > MAX_DISK_MIB) {
    throw new PyroError("invalid_argument", `disk_mib must be a whole number from ${MIN_DISK_MIB} to ${MAX_DISK_MIB}, got ${String(v)}`, {
      hint: `Give the size /workspace may take in MiB (default ${DEFAULT_DISK_MIB}).`,
    });
  }
  return v;
}

interface Measurement {
  used_bytes: number | null;
  measured_at: string;
}

const WATCHED_NOTE = "watched by pyro, not enforced by the kernel: /workspace is measured after each exec, file write, patch and sync push, and writes through pyro are refused while over the limit; a process can write past it between two measurements";

export class WorkspaceDisk {
  constructor(private readonly store: StateStore) {}

  private image(id: string): string {
    return path.join(this.store.paths(id).dir, DISK_IMAGE);
  }

  private usageFile(id: string): string {
    return path.join(this.store.paths(id).dir, "disk-usage.json");
  }

  /** The limit in bytes, or null for a workspace without one. */
  private limitBytes(record: WorkspaceRecord): number | null {
    return typeof record.disk_mib === "number" ? record.disk_mib * MIB : null;
  }

  enforcement(record: WorkspaceRecord): DiskEnforcement {
    return typeof record.disk_mib === "number" ? (record.disk_enforcement ?? "watched") : "none";
  }

  /**
   * Chooses the mechanism for a new workspace (its record already written, so a crash from here
   * leaves a record naming the mount) and, for `kernel`, makes and mounts its filesystem. A root
   * host that cannot loop-mount falls back to watching, and the note says why.
   */
  async provision(record: WorkspaceRecord): Promise<void> {
    const blocker = kernelDiskBlocker();
    if (blocker === null) {
      await makeWorkspaceDisk(this.image(record.workspace_id), this.store.paths(record.workspace_id).workspace, record.disk_mib!);
      record.disk_enforcement = "kernel";
      record.disk_note = null;
    } else {
      record.disk_enforcement = "watched";
      record.disk_note = `${WATCHED_NOTE} (${blocker})`;
    }
  }

  /**
   * The workspace directory, its filesystem mounted first for a `kernel` workspace (after a host
   * reboot the mount is gone until first use; reading the bare directory would show an empty
   * /workspace). Every host-side use of the directory goes through this.
   */
  async dir(id: string, record?: WorkspaceRecord): Promise<string> {
    const dir = this.store.paths(id).workspace;
    const r = record ?? (await this.store.load(id));
    if (this.enforcement(r) === "kernel" && !isMounted(dir)) {
      await this.store.withLock(`${id}.disk`, () => mountWorkspaceDisk(this.image(id), dir));
    }
    return dir;
  }

  info(record: WorkspaceRecord): DiskInfo {
    const enforcement = this.enforcement(record);
    if (enforcement === "none") return { enforcement, used_bytes: null, measured_at: null, note: "no disk limit: this workspace was made before pyro had one" };
    if (enforcement === "kernel") {
      const usage = kernelDiskUsage(this.store.paths(record.workspace_id).workspace);
      return { enforcement, used_bytes: usage?.used_bytes ?? null, measured_at: null, note: record.disk_note ?? null };
    }
    let m: Measurement | undefined;
    try {
      m = JSON.parse(fs.readFileSync(this.usageFile(record.workspace_id), "utf8")) as Measurement;
    } catch {
      m = undefined;
    }
    return { enforcement, used_bytes: m?.used_bytes ?? null, measured_at: m?.measured_at ?? null, note: record.disk_note ?? WATCHED_NOTE };
  }

  /**
   * Bytes /workspace may still take, or null when unlimited (or not measurable). `fresh`
   * measures a watched workspace now rather than trusting the last measurement.
   */
  async room(record: WorkspaceRecord, options: { fresh?: boolean } = {}): Promise<number | null> {
    const limit = this.limitBytes(record);
    if (limit === null) return null;
    const id = record.workspace_id;
    if (this.enforcement(record) === "kernel") return kernelDiskUsage(await this.dir(id, record))?.free_bytes ?? null;
    const used = options.fresh ? await this.measure(record) : (await readJsonIfExists<Measurement>(this.usageFile(id)))?.used_bytes ?? null;
    return used === null ? null : limit - used;
  }

  /** Measures a watched workspace and keeps the result for status; null when the walk did not finish in time. */
  async measure(record: WorkspaceRecord): Promise<number | null> {
    const used = await measureTree(this.store.paths(record.workspace_id).workspace);
    await writeJsonAtomic(this.usageFile(record.workspace_id), { used_bytes: used, measured_at: new Date().toISOString() } satisfies Measurement);
    return used;
  }

  /** Refuses a write of `bytes` through pyro that the limit has no room for; nothing is written. */
  async refuseOver(record: WorkspaceRecord, bytes: number, what: string): Promise<void> {
    const room = await this.room(record);
    if (room === null || bytes <= room) return;
    throw this.exceeded(record, `${what} needs ${bytes} bytes and /workspace has room for ${Math.max(room, 0)}`);
  }

  /**
   * After a call that may have written to a watched workspace: measures it, and when it is over
   * the limit says so with the code (the call itself has happened; `details` says what it did).
   */
  async checkAfter(record: WorkspaceRecord, what: string, details: Record<string, unknown> = {}): Promise<void> {
    const limit = this.limitBytes(record);
    if (limit === null || this.enforcement(record) !== "watched") return;
    const used = await this.measure(record);
    if (used !== null && used > limit) throw this.exceeded(record, `${what} left /workspace at ${used} bytes`, details);
  }

  /**
   * A write refused for want of room — by the kernel (ENOSPC) or by a check below core
   * (transfer.ts) — as this workspace's `disk_limit_exceeded`, with its limit and the way out;
   * other errors unchanged.
   */
  translate(record: WorkspaceRecord, err: unknown): unknown {
    if (this.limitBytes(record) === null || !(err instanceof PyroError)) return err;
    if (err.code === "disk_limit_exceeded") return this.exceeded(record, err.message, err.details ?? {});
    // Under a watched limit ENOSPC is the host's own disk running full, not the limit.
    if (this.enforcement(record) === "kernel" && /ENOSPC|no space left on device/i.test(err.message)) return this.exceeded(record, "the write ran out of space");
    return err;
  }

  exceeded(record: WorkspaceRecord, what: string, details: Record<string, unknown> = {}): PyroError {
    const id = record.name ?? record.workspace_id;
    const enforcement = this.enforcement(record);
    return new PyroError("disk_limit_exceeded", `${what}; the workspace's disk limit is ${record.disk_mib} MiB (${enforcement})`, {
      details: { disk_mib: record.disk_mib, enforcement, ...details },
      hint: `Delete files in /workspace (e.g. \`pyro workspace exec ${id} -- rm -rf build/\`), or reset the workspace; create it with a larger --disk-mib (MCP: disk_mib) if it needs more.`,
    });
  }
}
