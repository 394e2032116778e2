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
import { loadSecrets, secretRedactor } from "./secrets.js";
import { Redactor } from "../shared/redact.js";
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
  /** A secret's value (or a piece of one cut by the read's window) was replaced by [REDACTED] in `content`. */
  secrets_redacted: boolean;
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
  /** A secret's value (or a line of a multi-line one) was replaced by [REDACTED] in the patch or the paths. */
  secrets_redacted: boolean;
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

  /** Exports never write into pyro's own state directory, nor replace it or what holds it. */
  private outputOptions(): OutputOptions {
    return { parameter: "output path", guarded: [{ path: this.manager.store.home, what: "pyro's state directory", inside: true }] };
  }

  // ---------- sync ----------

  async syncPush(ref: string, source: string, options: { dest?: string } = {}): Promise<ImportResult & { workspace_id: string }> {
    const id = await this.manager.resolve(ref);
    guestDestination(options.dest);
    const checked = await inspectSource(source, "sync push source");
    await this.manager.requireRunning(id);
    const result = await importInto(this.paths(id).workspace, this.paths(id).dir, checked, options.dest ?? ".");
    await this.manager.touch(id, "sync_push", { source: result.source, dest: result.dest, entries: result.entries, bytes: result.bytes });
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
    const shown = await this.redactedWindow(id, client, h, payload);
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
      content: shown.bytes.toString("utf8"),
      secrets_redacted: shown.replaced,
      continue_with: next !== null ? `${cli} ${id} ${h.path} --offset ${next} --max-bytes ${maxBytes} (MCP: offset=${next})` : null,
    };
  }

  /**
   * A read's bytes with the workspace's secret values redacted, also a value the window's
   * edges cut in two: the bytes just before and after the window are read as context (a few
   * more requests, only when the workspace has secrets and the window is not the whole file).
   */
  private async redactedWindow(id: string, client: AgentClient, h: FileReadHeader, payload: Buffer): Promise<{ bytes: Buffer; replaced: boolean }> {
    const redactor = await secretRedactor(this.paths(id).secrets);
    if (redactor.empty || payload.length === 0) return { bytes: payload, replaced: false };
    const reach = redactor.holdBack;
    const end = h.offset + payload.length;
    const before = h.offset > 0 ? await this.context(client, h.path, Math.max(0, h.offset - reach), h.offset) : Buffer.alloc(0);
    const after = end < h.size ? await this.context(client, h.path, end, end + reach) : Buffer.alloc(0);
    return redactor.redactWindow(Buffer.concat([before, payload, after]), before.length, before.length + payload.length);
  }

  /**
   * Bytes [from, to) of a file, or fewer. The agent calls a range that starts inside a UTF-8
   * character binary and returns nothing, so the start moves up to three bytes on; context
   * that is really binary is given up (a value is text).
   */
  private async context(client: AgentClient, file: string, from: number, to: number): Promise<Buffer> {
    for (let at = from; at < Math.min(to, from + 4); at++) {
      const { header, payload } = await client.request({ type: "file_read", path: file, offset: at, maxBytes: to - at });
      if (!header.binary) return payload.subarray(0, to - at);
    }
    return Buffer.alloc(0);
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
    const { id, client } = await this.link.running(ref);
    const { header: h } = await client.request({ type: "file_write", path: filePath, mode }, content);
    await this.manager.touch(id, "file_write", { path: h.path, bytes: content.length, created: h.created });
    return { workspace_id: id, path: h.path, bytes_written: h.bytes_written, created: h.created };
  }

  async patchApply(ref: string, patch: string): Promise<PatchApplyResult> {
    if (typeof patch !== "string" || patch.trim() === "") throw new PyroError("invalid_argument", "the patch is empty");
    if (Buffer.byteLength(patch) > MAX_FILE_WRITE_BYTES) throw new PyroError("invalid_argument", "the patch is too large");
    const { id, client } = await this.link.running(ref);
    const { header: h } = await client.request({ type: "patch_apply" }, Buffer.from(patch, "utf8"));
    const files = h.files;
    await this.manager.touch(id, "patch_apply", { files: files.map((f) => `${f.action} ${f.path}`) });
    return { workspace_id: id, files, files_changed: files.length };
  }

  // ---------- export and diff ----------

  async export(ref: string, guestPath: string, output: string, options: { force?: boolean } = {}): Promise<ExportOutcome & { workspace_id: string }> {
    const id = await this.manager.resolve(ref);
    // The export stays byte-exact (the files are the user's); the values are only looked for.
    const secretValues = Object.values(await loadSecrets(this.paths(id).secrets));
    const result = await exportFrom(this.paths(id).workspace, guestPath, output, options.force === true, { ...this.outputOptions(), secretValues });
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
        { source: this.paths(id).workspace, target: "/workspace", readOnly: true },
      ],
      async (client) => {
        const { header, payload } = await client.request({ type: "tree_diff", base: "/baseline", live: "/workspace", path: rel, maxBytes });
        if (payload.length > maxBytes) throw new PyroError("agent_protocol_error", "diff patch larger than its budget");
        return { ...header, patch: payload.toString("utf8") };
      },
    );
    // Redacted here, not only at the boundary: a multi-line value (a key file) shows in a patch
    // one line at a time, each behind a `+`, so its lines count as values of their own here.
    const redacted = diffRedactor(Object.values(await loadSecrets(this.paths(id).secrets))).redactResult({ patch: r.patch, changes: r.changes, omitted: r.omitted_files });
    r.patch = redacted.value.patch;
    r.changes = redacted.value.changes;
    r.omitted_files = redacted.value.omitted;
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
      secrets_redacted: redacted.replaced,
    };
  }

  // ---------- snapshots ----------

  async snapshotCreate(ref: string, name: string): Promise<SnapshotInfo & { workspace_id: string }> {
    const id = await this.manager.resolve(ref);
    if (name === BASELINE) throw new PyroError("invalid_argument", "`baseline` is made at create time and cannot be replaced", { hint: "Choose another snapshot name." });
    const info = await this.manager.store.withLock(`${id}.snapshots`, () => this.manager.snapshots(id).create(name, this.paths(id).workspace));
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
    return withUtilityAgent([{ source: this.paths(id).workspace, target: "/workspace", readOnly: true }], (client) => this.list(id, client, options));
  }

  async diskRead(ref: string, filePath: string, options: { maxBytes?: number; offset?: number } = {}): Promise<FileReadResult> {
    const id = await this.stopped(ref);
    return withUtilityAgent([{ source: this.paths(id).workspace, target: "/workspace", readOnly: true }], (client) => this.read(id, client, filePath, options, "workspace disk read"));
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
          { source: this.paths(id).workspace, target: "/workspace", readOnly: true },
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

/** A redactor for patches: every value, plus each line of a multi-line value on its own. */
function diffRedactor(values: string[]): Redactor {
  const lines = values.filter((v) => v.includes("\n")).flatMap((v) => v.split(/\r?\n/));
  return new Redactor([...values, ...lines]);
}
