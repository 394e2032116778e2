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

/**
 * A watched workspace's last measurement and, since then, an estimate: the measurement plus how
 * much the host filesystem's free space fell during each call that wrote (what /workspace can
 * have grown by, unless something else on the host freed space at the same moment).
 */
interface Measurement {
  used_bytes: number | null;
  measured_at: string;
  estimated_bytes?: number | null;
}

/** The host filesystem's free space before a call that may write to a watched workspace. */
export interface WriteMark {
  hostFree: number | null;
}

/**
 * How long a watched workspace goes without a real measurement while calls go on: between
 * measurements the estimate decides, and a walk of /workspace after every exec would cost more
 * than the exec (a utility sandbox and `du`: ~1 s here as an ordinary user under load).
 */
export const MEASURE_EVERY_MS = 60_000;

const WATCHED_NOTE =
  "watched by pyro, not enforced by the kernel: after each exec, file write, patch and sync push pyro checks how much the host's free space fell and measures /workspace when that could have taken it over the limit (and at least once a minute of calls); writes through pyro are refused while over; a process can write past it before pyro looks";

/** How new workspaces' disk limits are kept on this host, for `doctor`: what `provision` will choose. */
export function diskLimitMechanism(): { enforcement: "kernel" | "watched"; detail: string } {
  const blocker = kernelDiskBlocker();
  if (blocker === null) return { enforcement: "kernel", detail: `enforced by the kernel: each new workspace's /workspace is an ext4 filesystem of its disk_mib (default ${DEFAULT_DISK_MIB} MiB) on a sparse image` };
  return { enforcement: "watched", detail: `${WATCHED_NOTE} (${blocker})` };
}

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
      await makeWorkspaceDisk(this.image(record.workspace_id), this.store.paths(record.workspace_id).workspace, record.disk_mib!, this.store.layout.diskTemplates);
      record.disk_enforcement = "kernel";
      record.disk_note = null;
    } else {
      record.disk_enforcement = "watched";
      record.disk_note = `${WATCHED_NOTE} (${blocker})`;
      // /workspace is empty: the first estimate starts from nothing rather than from a walk.
      await writeJsonAtomic(this.usageFile(record.workspace_id), { used_bytes: 0, measured_at: new Date().toISOString(), estimated_bytes: 0 } satisfies Measurement);
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
    return { enforcement, used_bytes: m?.estimated_bytes ?? m?.used_bytes ?? null, measured_at: m?.measured_at ?? null, note: record.disk_note ?? WATCHED_NOTE };
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
    const last = options.fresh ? undefined : await readJsonIfExists<Measurement>(this.usageFile(id));
    const used = options.fresh ? await this.measure(record) : (last?.estimated_bytes ?? last?.used_bytes ?? null);
    return used === null ? null : limit - used;
  }

  /** Measures a watched workspace and keeps the result for status; null when the walk did not finish in time. */
  async measure(record: WorkspaceRecord): Promise<number | null> {
    const used = await measureTree(this.store.paths(record.workspace_id).workspace);
    await writeJsonAtomic(this.usageFile(record.workspace_id), { used_bytes: used, measured_at: new Date().toISOString(), estimated_bytes: used } satisfies Measurement);
    return used;
  }

  /** The host's free space where a watched workspace lives, in bytes (a statfs: no walk). */
  private hostFree(record: WorkspaceRecord): number | null {
    if (this.enforcement(record) !== "watched") return null;
    try {
      const s = fs.statfsSync(this.store.paths(record.workspace_id).workspace);
      return s.bavail * s.bsize;
    } catch {
      return null;
    }
  }

  /** Taken before a call that may write, for `checkAfter`. */
  mark(record: WorkspaceRecord): WriteMark {
    return { hostFree: this.hostFree(record) };
  }

  /** Refuses a write of `bytes` through pyro that the limit has no room for; nothing is written. */
  async refuseOver(record: WorkspaceRecord, bytes: number, what: string): Promise<void> {
    const room = await this.room(record);
    if (room === null || bytes <= room) return;
    throw this.exceeded(record, `${what} needs ${bytes} bytes and /workspace has room for ${Math.max(room, 0)}`);
  }

  /**
   * After a call that may have written to a watched workspace: adds the fall in the host's free
   * space since `mark` to the estimate, and measures /workspace for real when the estimate goes
   * over the limit, when the last measurement is over a minute old, or when there is nothing to
   * estimate from. Over the limit is said with the code (the call itself has happened; `details`
   * says what it did). `written`: bytes the call is known to have written (a file write), the
   * least the estimate grows by even when the host freed space meanwhile; `walk`: measure anyway
   * (a sync push, whose size on disk pyro cannot know beforehand).
   */
  async checkAfter(record: WorkspaceRecord, mark: WriteMark, what: string, details: Record<string, unknown> = {}, options: { written?: number; walk?: boolean } = {}): Promise<void> {
    const limit = this.limitBytes(record);
    if (limit === null || this.enforcement(record) !== "watched") return;
    const file = this.usageFile(record.workspace_id);
    const last = await readJsonIfExists<Measurement>(file);
    const free = this.hostFree(record);
    const base = last?.estimated_bytes ?? last?.used_bytes ?? null;
    const stale = last === undefined || !(Date.now() - Date.parse(last.measured_at) < MEASURE_EVERY_MS);
    const grew = Math.max(options.written ?? 0, mark.hostFree !== null && free !== null ? mark.hostFree - free : 0);
    let used: number | null;
    if (options.walk || base === null || mark.hostFree === null || free === null || stale || base + grew > limit) {
      used = await this.measure(record);
    } else {
      used = base + grew;
      await writeJsonAtomic(file, { ...last, estimated_bytes: used } satisfies Measurement);
    }
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
