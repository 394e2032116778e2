/**
 * Workspace content operations: sync push, file list/read/write, patch apply, export, diff
 * against the baseline or a snapshot, snapshots, and the disk tools that read a stopped
 * workspace. Running-workspace file access goes through the workspace's own agent; tree-wide
 * work (diff, export, stopped-workspace reads) through the agent in a utility sandbox. Every
 * result is bounded. Host-side orchestration only.
 */
import path from "node:path";
import fsp from "node:fs/promises";
import type { WorkspaceManager } from "./manager.js";
import type { AgentLink } from "./agent-link.js";
import { checkOutput, exportFrom, importInto, inspectSource, guestDestination, placeOutput } from "./transfer.js";
import type { ExportOutcome, ImportResult, OutputOptions } from "./transfer.js";
import { BASELINE } from "./snapshots.js";
import type { SnapshotInfo } from "./snapshots.js";
import { withUtilityAgent, runUtilityChecked } from "../runtime/confine/utility.js";
import type { AgentClient } from "../protocol/client.js";
import type { DiffChange, FileEntry, FileReadHeader, PatchFileResult, TreeDiffResult } from "../protocol/messages.js";
import { PyroError } from "../shared/errors.js";
import { validatePositiveInt } from "./validate.js";
import { ownByGuestRoot } from "../runtime/confine/launch.js";
import { giveToHostUser, removeTree } from "../runtime/confine/trees.js";

export const DEFAULT_FILE_READ_MAX_BYTES = 65536;
export const MAX_FILE_READ_BYTES = 8 * 1024 * 1024;
export const MAX_FILE_WRITE_BYTES = 16 * 1024 * 1024 - 4096;
export const DEFAULT_FILE_LIST_MAX_ENTRIES = 1000;
export const DEFAULT_DIFF_MAX_BYTES = 65536;

export type { DiffChange, FileEntry } from "../protocol/messages.js";

export interface FileListResult {
  workspace_id: string;
  path: string;
  recursive: boolean;
  entries: FileEntry[];
  count: number;
  truncated: boolean;
  total_seen: number;
}

export interface FileReadResult extends FileReadHeader {
  workspace_id: string;
  content: string;
  /** How to read on, when truncated: the exact next call. */
  continue_with: string | null;
}

export interface DiffResult {
  workspace_id: string;
  against: string;
  path: string | null;
  changes: DiffChange[];
  /** Changes counted in `summary` but not listed (the list is capped; narrow with `path`). */
  changes_omitted: number;
  summary: TreeDiffResult["summary"];
  patch: string;
  patch_truncated: boolean;
  omitted_files: string[];
  continue_with: string | null;
}

export interface PatchApplyResult {
  workspace_id: string;
  files: PatchFileResult[];
  files_changed: number;
}

const FILE_MODE_RE = /^[0-7]{3,4}$/;

export class WorkspaceContent {
  constructor(
    private readonly manager: WorkspaceManager,
    private readonly link: AgentLink,
  ) {}

  private paths(id: string) {
    return this.manager.store.paths(id);
  }

  /** The workspace directory on the host, its disk-limited filesystem mounted (core/disk-limit.ts). */
  private dir(id: string): Promise<string> {
    return this.manager.disk.dir(id);
  }

  /** Exports never write into pyro's own state directory, nor replace it or what holds it. */
  private outputOptions(): OutputOptions {
    return { parameter: "output path", guarded: [{ path: this.manager.store.home, what: "pyro's state directory", inside: true }] };
  }

  // ---------- sync ----------

  async syncPush(ref: string, source: string, options: { dest?: string } = {}): Promise<ImportResult & { workspace_id: string }> {
    const id = await this.manager.resolve(ref);
    guestDestination(options.dest);
    const checked = await inspectSource(source, "sync push source");
    const record = await this.manager.requireRunning(id);
    const disk = this.manager.disk;
    // Measured now (a watched limit), so the push is judged against what /workspace takes.
    const room = await disk.room(record, { fresh: true });
    if (room !== null && room < 0) throw disk.exceeded(record, "/workspace is already over its disk limit");
    const mark = disk.mark(record);
    const result = await importInto(await this.dir(id), this.paths(id).dir, checked, options.dest ?? ".", room).catch((err: unknown) => {
      throw disk.translate(record, err);
    });
    await this.manager.touch(id, "sync_push", { source: result.source, dest: result.dest, entries: result.entries, bytes: result.bytes });
    await disk.checkAfter(record, mark, "the push", { entries: result.entries, bytes: result.bytes }, { walk: true });
    return { workspace_id: id, ...result };
  }

  // ---------- files ----------

  async fileList(ref: string, options: { path?: string; recursive?: boolean; maxEntries?: number } = {}): Promise<FileListResult> {
    const { id, client } = await this.link.running(ref);
    return this.list(id, client, options);
  }

  private async list(id: string, client: AgentClient, options: { path?: string; recursive?: boolean; maxEntries?: number }): Promise<FileListResult> {
    const maxEntries = validatePositiveInt(options.maxEntries ?? DEFAULT_FILE_LIST_MAX_ENTRIES, "max_entries", 100_000);
    const { header: r } = await client.request({ type: "file_list", path: options.path ?? ".", recursive: options.recursive === true, maxEntries });
    const entries = r.entries.slice(0, maxEntries);
    return {
      workspace_id: id,
      path: r.path,
      recursive: options.recursive === true,
      entries,
      count: entries.length,
      truncated: r.truncated,
      total_seen: r.total_seen,
    };
  }

  async fileRead(ref: string, filePath: string, options: { maxBytes?: number; offset?: number } = {}): Promise<FileReadResult> {
    const { id, client } = await this.link.running(ref);
    return this.read(id, client, filePath, options, "workspace file read");
  }

  private async read(id: string, client: AgentClient, filePath: string, options: { maxBytes?: number; offset?: number }, cli: string): Promise<FileReadResult> {
    const maxBytes = validatePositiveInt(options.maxBytes ?? DEFAULT_FILE_READ_MAX_BYTES, "max_bytes", MAX_FILE_READ_BYTES);
    const offset = options.offset ?? 0;
    if (!Number.isSafeInteger(offset) || offset < 0) throw new PyroError("invalid_argument", `offset must be a whole number >= 0, got ${offset}`);
    const { header: h, payload } = await client.request({ type: "file_read", path: filePath, offset, maxBytes });
    if (payload.length > maxBytes) throw new PyroError("agent_protocol_error", "file read returned more than asked for");
    const next = h.next_offset;
    return {
      workspace_id: id,
      path: h.path,
      size: h.size,
      offset: h.offset,
      bytes_returned: payload.length,
      next_offset: next,
      truncated: h.truncated,
      binary: h.binary,
      content: payload.toString("utf8"),
      continue_with: next !== null ? `${cli} ${id} ${h.path} --offset ${next} --max-bytes ${maxBytes} (MCP: offset=${next})` : null,
    };
  }

  async fileWrite(ref: string, filePath: string, text: string | Uint8Array, options: { mode?: string | number } = {}): Promise<{ workspace_id: string; path: string; bytes_written: number; created: boolean }> {
    const content = typeof text === "string" ? Buffer.from(text, "utf8") : Buffer.from(text);
    if (content.length > MAX_FILE_WRITE_BYTES) throw new PyroError("invalid_argument", `content larger than ${MAX_FILE_WRITE_BYTES} bytes`, { hint: "Use workspace sync push for large files." });
    let mode: number | null = null;
    if (options.mode !== undefined) {
      const m = typeof options.mode === "number" ? options.mode.toString(8) : options.mode;
      if (!FILE_MODE_RE.test(m)) throw new PyroError("invalid_argument", `mode must be octal like 644 or 0755, got ${JSON.stringify(options.mode)}`);
      mode = parseInt(m, 8);
    }
    const { id, record, client } = await this.link.running(ref);
    const disk = this.manager.disk;
    await disk.refuseOver(record, content.length, "the file");
    const mark = disk.mark(record);
    const { header: h } = await client.request({ type: "file_write", path: filePath, mode }, content).catch((err: unknown) => {
      throw disk.translate(record, err);
    });
    await this.manager.touch(id, "file_write", { path: h.path, bytes: content.length, created: h.created });
    await disk.checkAfter(record, mark, "the file write", { path: h.path, bytes: content.length }, { written: content.length });
    return { workspace_id: id, path: h.path, bytes_written: h.bytes_written, created: h.created };
  }

  async patchApply(ref: string, patch: string): Promise<PatchApplyResult> {
    if (typeof patch !== "string" || patch.trim() === "") throw new PyroError("invalid_argument", "the patch is empty");
    if (Buffer.byteLength(patch) > MAX_FILE_WRITE_BYTES) throw new PyroError("invalid_argument", "the patch is too large");
    const { id, record, client } = await this.link.running(ref);
    const disk = this.manager.disk;
    // A patch's final size is unknown until applied; its own length is the fair estimate.
    await disk.refuseOver(record, Buffer.byteLength(patch), "the patch");
    const mark = disk.mark(record);
    const { header: h } = await client.request({ type: "patch_apply" }, Buffer.from(patch, "utf8")).catch((err: unknown) => {
      throw disk.translate(record, err);
    });
    const files = h.files;
    await this.manager.touch(id, "patch_apply", { files: files.map((f) => `${f.action} ${f.path}`) });
    await disk.checkAfter(record, mark, "the patch", { files_changed: files.length });
    return { workspace_id: id, files, files_changed: files.length };
  }

  // ---------- export and diff ----------

  async export(ref: string, guestPath: string, output: string, options: { force?: boolean } = {}): Promise<ExportOutcome & { workspace_id: string }> {
    const id = await this.manager.resolve(ref);
    const result = await exportFrom(await this.dir(id), guestPath, output, options.force === true, this.outputOptions());
    await this.manager.touch(id, "export", { path: result.workspace_path, output: result.output_path, files: result.files, bytes: result.bytes });
    return { workspace_id: id, ...result };
  }

  async diff(ref: string, options: { path?: string; maxBytes?: number; snapshot?: string } = {}): Promise<DiffResult> {
    const id = await this.manager.resolve(ref);
    const maxBytes = validatePositiveInt(options.maxBytes ?? DEFAULT_DIFF_MAX_BYTES, "max_bytes", MAX_FILE_READ_BYTES);
    const against = options.snapshot ?? BASELINE;
    const tree = await this.manager.snapshots(id).tree(against);
    let rel: string | null = null;
    if (options.path !== undefined) {
      const g = guestDestination(options.path);
      rel = g === "/workspace" ? null : g.slice("/workspace/".length);
    }
    const r = await withUtilityAgent(
      [
        { source: tree, target: "/baseline", readOnly: true },
        { source: await this.dir(id), target: "/workspace", readOnly: true },
      ],
      async (client) => {
        const { header, payload } = await client.request({ type: "tree_diff", base: "/baseline", live: "/workspace", path: rel, maxBytes });
        if (payload.length > maxBytes) throw new PyroError("agent_protocol_error", "diff patch larger than its budget");
        return { ...header, patch: payload.toString("utf8") };
      },
    );
    const omitted = r.omitted_files;
    return {
      workspace_id: id,
      against,
      path: rel,
      changes: r.changes.slice(0, 10_000),
      changes_omitted: r.changes_omitted,
      summary: r.summary,
      patch: r.patch,
      patch_truncated: r.patch_truncated,
      omitted_files: omitted.slice(0, 1000),
      continue_with: omitted.length ? `workspace diff ${id} --path ${omitted[0]} (MCP: path="${omitted[0]}"), or raise max_bytes` : null,
    };
  }

  // ---------- snapshots ----------

  async snapshotCreate(ref: string, name: string): Promise<SnapshotInfo & { workspace_id: string }> {
    const id = await this.manager.resolve(ref);
    if (name === BASELINE) throw new PyroError("invalid_argument", "`baseline` is made at create time and cannot be replaced", { hint: "Choose another snapshot name." });
    const dir = await this.dir(id);
    const info = await this.manager.store.withLock(`${id}.snapshots`, () => this.manager.snapshots(id).create(name, dir));
    await this.manager.touch(id, "snapshot_create", { name, entries: info.entries, bytes: info.bytes });
    return { workspace_id: id, ...info };
  }

  async snapshotList(ref: string): Promise<{ workspace_id: string; count: number; snapshots: SnapshotInfo[] }> {
    const id = await this.manager.resolve(ref);
    const snapshots = await this.manager.snapshots(id).list();
    return { workspace_id: id, count: snapshots.length, snapshots };
  }

  async snapshotDelete(ref: string, name: string): Promise<{ workspace_id: string; name: string; deleted: true }> {
    const id = await this.manager.resolve(ref);
    await this.manager.store.withLock(`${id}.snapshots`, () => this.manager.snapshots(id).delete(name));
    await this.manager.touch(id, "snapshot_delete", { name });
    return { workspace_id: id, name, deleted: true };
  }

  // ---------- disk tools (stopped workspaces) ----------

  private async stopped(ref: string): Promise<string> {
    const id = await this.manager.resolve(ref);
    const info = await this.manager.status(id);
    if (info.state === "running" || info.state === "creating") {
      throw new PyroError("invalid_argument", `workspace ${info.name ?? id} is ${info.state}; disk tools read stopped workspaces only`, {
        hint: "Use workspace_file_list / workspace_file_read on a running workspace, or stop it first.",
      });
    }
    return id;
  }

  async diskList(ref: string, options: { path?: string; recursive?: boolean; maxEntries?: number } = {}): Promise<FileListResult> {
    const id = await this.stopped(ref);
    return withUtilityAgent([{ source: await this.dir(id), target: "/workspace", readOnly: true }], (client) => this.list(id, client, options));
  }

  async diskRead(ref: string, filePath: string, options: { maxBytes?: number; offset?: number } = {}): Promise<FileReadResult> {
    const id = await this.stopped(ref);
    return withUtilityAgent([{ source: await this.dir(id), target: "/workspace", readOnly: true }], (client) => this.read(id, client, filePath, options, "workspace disk read"));
  }

  /** Writes the stopped workspace's /workspace as a .tar archive on the host. */
  async diskExport(ref: string, output: string, options: { force?: boolean } = {}): Promise<{ workspace_id: string; output_path: string; bytes: number }> {
    const { out } = await checkOutput(output, options.force === true, this.outputOptions());
    const id = await this.stopped(ref);
    const temp = path.join(path.dirname(out), `.pyro-disk-${process.pid}-${Date.now()}`);
    await fsp.mkdir(temp, { mode: 0o700 });
    ownByGuestRoot(temp);
    try {
      await runUtilityChecked(
        [
          { source: await this.dir(id), target: "/workspace", readOnly: true },
          { source: temp, target: "/export", readOnly: false },
        ],
        ["tar", "-cf", "/export/workspace.tar", "-C", "/workspace", "."],
        "disk export",
      );
      await giveToHostUser(path.join(temp, "workspace.tar"));
      await placeOutput(path.join(temp, "workspace.tar"), out, options.force === true);
      const { size } = await fsp.stat(out);
      return { workspace_id: id, output_path: out, bytes: size };
    } finally {
      await removeTree(temp);
    }
  }
}
