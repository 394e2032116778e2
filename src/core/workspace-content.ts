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
import type { UtilityBind, UtilityView } from "../runtime/confine/utility.js";
import { isLayered } from "./workspace-layers.js";
import type { AgentClient } from "../protocol/client.js";
import { DIFF_CHANGES_MAX, DIFF_OMITTED_MAX, MAX_FILE_LIST_BYTES, WORKSPACE_GUEST_PATH } from "../protocol/messages.js";
import type { DiffChange, FileEntry, FileReadHeader, PatchFileResult, TreeDiffRequest, TreeDiffResult } from "../protocol/messages.js";
import type { WorkspaceRecord } from "./types.js";
import { PyroError } from "../shared/errors.js";
import { validatePositiveInt } from "./validate.js";
import { loadSecrets, secretRedactor } from "./secrets.js";
import { Redactor } from "../shared/redact.js";
import { ownByGuestRoot, prepareLaunch } from "../runtime/confine/launch.js";
import { giveToHostUser, removeTree } from "../runtime/confine/trees.js";

export const DEFAULT_FILE_READ_MAX_BYTES = 65536;
export const MAX_FILE_READ_BYTES = 8 * 1024 * 1024;
export const MAX_FILE_WRITE_BYTES = 16 * 1024 * 1024 - 4096;
export const DEFAULT_FILE_LIST_MAX_ENTRIES = 1000;
export const MAX_FILE_LIST_ENTRIES = 100_000;
export const DEFAULT_DIFF_MAX_BYTES = 65536;
/**
 * The most a running workspace's own agent compares for a diff before handing it to a utility
 * sandbox: a few hundred milliseconds of its time at most (see `diffInWorkspace`).
 */
const DIFF_IN_WORKSPACE_LIMIT = { entries: 5000, bytes: 64 * 1024 * 1024 };

/** What a diff compares and where the agent sees it; the path and patch budget are the caller's. */
type DiffTrees = Omit<TreeDiffRequest, "path" | "maxBytes">;

/**
 * The layers only one of two stacks (top-most first) has: where alone two overlays sharing the
 * rest can differ (agent/diff.ts `bothTrees`).
 */
function unsharedLayers(live: string[], stack: string[]): string[] {
  return [...live.filter((l) => !stack.includes(l)), ...stack.filter((l) => !live.includes(l))];
}

export type { DiffChange, FileEntry } from "../protocol/messages.js";

export interface FileListResult {
  workspace_id: string;
  path: string;
  recursive: boolean;
  entries: FileEntry[];
  count: number;
  /** More entries existed than were listed (past `max_entries`, or past MAX_FILE_LIST_BYTES of them). */
  truncated: boolean;
  /** Every entry the walk met, listed or not. */
  total_seen: number;
  /** When truncated: the next call to make (a subdirectory, or a larger max_entries). */
  continue_with: string | null;
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
  /** The first files left out of the patch (at most 1 000); `omitted_files_total` counts them all. */
  omitted_files: string[];
  omitted_files_total: number;
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

/** A listing's payload (one JSON entry per line), refusing more entries than were asked for. */
function parseEntries(payload: Buffer, maxEntries: number): FileEntry[] {
  const entries: FileEntry[] = [];
  let at = 0;
  while (at < payload.length) {
    const end = payload.indexOf(0x0a, at);
    const line = payload.subarray(at, end < 0 ? payload.length : end);
    at = end < 0 ? payload.length : end + 1;
    if (entries.length >= maxEntries) throw new PyroError("agent_protocol_error", "file list sent more entries than asked for");
    try {
      entries.push(JSON.parse(line.toString("utf8")) as FileEntry);
    } catch {
      throw new PyroError("agent_protocol_error", "file list sent an entry that is not JSON");
    }
  }
  return entries;
}

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
    const result = await importInto(await this.manager.view(record, { writable: true }), this.paths(id).dir, checked, options.dest ?? ".", room).catch((err: unknown) => {
      throw disk.translate(record, err);
    });
    await this.manager.touch(id, "sync_push", { source: result.source, dest: result.dest, entries: result.entries, bytes: result.bytes });
    await disk.checkAfter(record, mark, "the push", { entries: result.entries, bytes: result.bytes }, { walk: true });
    return { workspace_id: id, ...result };
  }

  // ---------- files ----------

  async fileList(ref: string, options: { path?: string; recursive?: boolean; maxEntries?: number } = {}): Promise<FileListResult> {
    const { id, client } = await this.link.running(ref);
    return this.list(id, client, options, "workspace file list");
  }

  private async list(id: string, client: AgentClient, options: { path?: string; recursive?: boolean; maxEntries?: number }, cli: string): Promise<FileListResult> {
    const maxEntries = validatePositiveInt(options.maxEntries ?? DEFAULT_FILE_LIST_MAX_ENTRIES, "max_entries", MAX_FILE_LIST_ENTRIES);
    const recursive = options.recursive === true;
    const { header: r, payload } = await client.request(
      { type: "file_list", path: options.path ?? ".", recursive, maxEntries },
      undefined,
      { maxReplyBytes: MAX_FILE_LIST_BYTES },
    );
    const entries = parseEntries(payload, maxEntries);
    if (entries.length !== r.count) throw new PyroError("agent_protocol_error", `file list announced ${r.count} entries and sent ${entries.length}`);
    // Cut by the byte bound before max_entries, or already at the largest max_entries: only a
    // narrower path helps. Otherwise a max_entries that covers what the walk counted.
    const flags = recursive ? " --recursive" : "";
    const more = Math.min(MAX_FILE_LIST_ENTRIES, r.total_seen);
    const continueWith = !r.truncated
      ? null
      : entries.length < maxEntries || maxEntries >= MAX_FILE_LIST_ENTRIES
        ? `${cli} ${id} ${r.path}/SUBDIRECTORY${flags} --max-entries ${maxEntries} (MCP: path set to a subdirectory)`
        : `${cli} ${id} ${r.path}${flags} --max-entries ${more} (MCP: max_entries=${more}), or a subdirectory as path`;
    return {
      workspace_id: id,
      path: r.path,
      recursive,
      entries,
      count: entries.length,
      truncated: r.truncated,
      total_seen: r.total_seen,
      continue_with: continueWith,
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
    // The export stays byte-exact (the files are the user's); the values are only looked for.
    const secretValues = Object.values(await loadSecrets(this.paths(id).secrets));
    const result = await this.manager.withView(id, (_, view) => exportFrom(view, guestPath, output, options.force === true, { ...this.outputOptions(), secretValues }));
    await this.manager.touch(id, "export", { path: result.workspace_path, output: result.output_path, files: result.files, bytes: result.bytes });
    return { workspace_id: id, ...result };
  }

  async diff(ref: string, options: { path?: string; maxBytes?: number; snapshot?: string } = {}): Promise<DiffResult> {
    const id = await this.manager.resolve(ref);
    const maxBytes = validatePositiveInt(options.maxBytes ?? DEFAULT_DIFF_MAX_BYTES, "max_bytes", MAX_FILE_READ_BYTES);
    const against = options.snapshot ?? BASELINE;
    let rel: string | null = null;
    if (options.path !== undefined) {
      const g = guestDestination(options.path);
      rel = g === "/workspace" ? null : g.slice("/workspace/".length);
    }
    const record = await this.manager.reconciled(id);
    const stack = await this.manager.snapshots(id).stack(against);
    const treeDiff = async (client: AgentClient, request: DiffTrees) => {
      const { header, payload } = await client.request({ type: "tree_diff", ...request, path: rel, maxBytes });
      if (payload.length > maxBytes) throw new PyroError("agent_protocol_error", "diff patch larger than its budget");
      return { ...header, patch: payload.toString("utf8") };
    };
    const here = this.diffInWorkspace(record, stack);
    const fast = here ? await treeDiff(await this.link.client(id), here) : null;
    const inUtility = () => this.manager.withView(id, (now, live) => this.diffInUtility(now, live, against, stack, treeDiff));
    const r = fast && !fast.over_limit ? fast : await inUtility().catch((err: unknown) => {
      // The diff's agent holds one directory's names per level, so what can still stop it is a
      // single directory of millions of entries (its heap) — a narrower path is the way on.
      if (err instanceof PyroError && err.code === "agent_unreachable") {
        throw new PyroError("agent_unreachable", `the diff stopped before it finished: ${err.message}`, {
          hint: `Narrow it to a directory: workspace diff ${id} --path DIR (MCP: path="DIR").`,
        });
      }
      throw err;
    });
    // Redacted here, not only at the boundary: a multi-line value (a key file) shows in a patch
    // one line at a time, each behind a `+`, so its lines count as values of their own here.
    const redacted = diffRedactor(Object.values(await loadSecrets(this.paths(id).secrets))).redactResult({ patch: r.patch, changes: r.changes, omitted: r.omitted_files });
    r.patch = redacted.value.patch;
    r.changes = redacted.value.changes;
    r.omitted_files = redacted.value.omitted;
    // The agent bounds these lists; the host holds it to the same bounds.
    const changes = r.changes.slice(0, DIFF_CHANGES_MAX);
    const omitted = r.omitted_files.slice(0, DIFF_OMITTED_MAX);
    const snapshotFlag = options.snapshot !== undefined ? ` --snapshot ${against}` : "";
    const snapshotArg = options.snapshot !== undefined ? `, snapshot="${against}"` : "";
    const first = omitted[0];
    return {
      workspace_id: id,
      against,
      path: rel,
      changes,
      changes_omitted: Math.max(r.changes_omitted, r.summary.total - changes.length),
      summary: r.summary,
      patch: r.patch,
      patch_truncated: r.patch_truncated,
      omitted_files: omitted,
      omitted_files_total: Math.max(r.omitted_files_total, omitted.length),
      secrets_redacted: redacted.replaced,
      continue_with:
        first !== undefined
          ? `workspace diff ${id} --path ${first}${snapshotFlag} (MCP: path="${first}"${snapshotArg})${r.omitted_files_total > 1 ? ", or a directory holding the others" : ""}, or raise max_bytes (at most ${MAX_FILE_READ_BYTES})`
          : null,
    };
  }

  /**
   * A diff the running workspace's own agent can make, where its sandbox sees its layers
   * (`guestLayers`: the namespace backend): no sandbox to start, so it costs what changed. Only
   * against a snapshot of one layer (the baseline is one) that the sandbox sees; then the live
   * tree is /workspace and the layers the two trees do not share are the upper and every other
   * live layer. Bounded (`DIFF_IN_WORKSPACE_LIMIT`): that agent also serves the workspace's
   * commands and shells, so a larger diff is a utility sandbox's work. Like a file read, this
   * diff is computed inside the workspace, by an agent its own commands run next to.
   */
  private diffInWorkspace(record: WorkspaceRecord, stack: string[] | null): DiffTrees | null {
    const seen = record.state === "running" ? record.sandbox?.guestLayers : null;
    if (!seen || !isLayered(record) || stack?.length !== 1) return null;
    const base = stack[0]!;
    const differing = unsharedLayers(record.workspace_layers, stack);
    if (![base, ...differing].every((l) => seen.layers.includes(l))) return null;
    return {
      base: `${seen.dir}/${base}`,
      live: WORKSPACE_GUEST_PATH,
      layers: [`${seen.dir}/upper`, ...differing.map((l) => `${seen.dir}/${l}`)],
      limit: DIFF_IN_WORKSPACE_LIMIT,
    };
  }

  /**
   * A diff in a utility sandbox, against snapshot `against`: the snapshot at /baseline, the
   * live tree at /workspace, and for a layered workspace the layers only one of them has (the
   * live upper always among them) at /layers/N, where alone the two can differ.
   */
  private async diffInUtility<T>(record: WorkspaceRecord, live: UtilityView, against: string, stack: string[] | null, treeDiff: (client: AgentClient, request: DiffTrees) => Promise<T>): Promise<T> {
    const request = { base: "/baseline", live: WORKSPACE_GUEST_PATH };
    if (!isLayered(record) || !stack) {
      const binds = [{ source: await this.manager.snapshots(record.workspace_id).tree(against), target: "/baseline", readOnly: true }, ...live.binds];
      return withUtilityAgent(binds, (client) => treeDiff(client, request), { join: live.join });
    }
    const pool = this.manager.layers;
    const { upper } = await this.manager.upper(record);
    const differing = [upper, ...unsharedLayers(record.workspace_layers, stack).map((l) => pool.path(l))];
    const binds: UtilityBind[] = [
      { overlay: stack.map((l) => pool.path(l)), target: "/baseline" },
      ...live.binds,
      ...differing.map((source, i) => ({ source, target: `/layers/${i}`, readOnly: true })),
    ];
    return withUtilityAgent(binds, (client) => treeDiff(client, { ...request, layers: differing.map((_, i) => `/layers/${i}`) }), { join: live.join });
  }

  // ---------- snapshots ----------

  async snapshotCreate(ref: string, name: string): Promise<SnapshotInfo & { workspace_id: string }> {
    // The copy's sandbox: its holder is made while the locks are taken.
    prepareLaunch();
    const id = await this.manager.resolve(ref);
    if (name === BASELINE) throw new PyroError("invalid_argument", "`baseline` is made at create time and cannot be replaced", { hint: "Choose another snapshot name." });
    // Also what killed calls left: half-made copies, layers never named. Meanwhile, not after:
    // the collection leaves this process's staging alone and takes the layers lock, as the
    // adoption of the new layer does.
    const collected = this.manager.collectLayers();
    // Under the workspace's lock too: a reset meanwhile would replace the upper being copied.
    const info = await this.manager.store.withLock(id, () =>
      this.manager.store.withLock(`${id}.snapshots`, async () => {
        const record = (await this.manager.reconcile(await this.manager.store.load(id))).record;
        const snapshots = this.manager.snapshots(id);
        if (!isLayered(record)) return snapshots.create(name, await this.dir(id));
        const { upper } = await this.manager.upper(record);
        return snapshots.createLayered(name, { upper, stack: record.workspace_layers, view: await this.manager.view(record) }, this.manager.layers, (fn) => this.manager.withLayersLock(fn));
      }),
    ).finally(() => collected);
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
    await this.manager.collectLayers();
    await this.manager.touch(id, "snapshot_delete", { name });
    return { workspace_id: id, name, deleted: true };
  }

  // ---------- disk tools (stopped workspaces) ----------

  /**
   * Refuses a workspace that is running or being created when the call comes. Judged without
   * waiting for the workspace's lock: a read asked of a stopped workspace is admitted at once and
   * then finishes whole, even when a start takes the lock first (it then reads the running
   * workspace, which holds the same /workspace).
   */
  private async stopped(ref: string): Promise<string> {
    const id = await this.manager.resolve(ref);
    const seen = await this.manager.store.load(id);
    // One still being created is asked of status, which finds it failed if its creator was killed.
    const state = seen.state === "creating" ? (await this.manager.status(id)).state : (await this.manager.sandboxAlive(seen)) ? "running" : seen.state;
    if (state === "running" || state === "creating") {
      throw new PyroError("invalid_argument", `workspace ${seen.name ?? id} is ${state}; disk tools read stopped workspaces only`, {
        hint: "Use workspace_file_list / workspace_file_read on a running workspace, or stop it first.",
      });
    }
    return id;
  }

  async diskList(ref: string, options: { path?: string; recursive?: boolean; maxEntries?: number } = {}): Promise<FileListResult> {
    const id = await this.stopped(ref);
    return this.manager.withView(id, (_, view) => withUtilityAgent(view.binds, (client) => this.list(id, client, options, "workspace disk list"), { join: view.join }));
  }

  async diskRead(ref: string, filePath: string, options: { maxBytes?: number; offset?: number } = {}): Promise<FileReadResult> {
    const id = await this.stopped(ref);
    return this.manager.withView(id, (_, view) => withUtilityAgent(view.binds, (client) => this.read(id, client, filePath, options, "workspace disk read"), { join: view.join }));
  }

  /** Writes the stopped workspace's /workspace as a .tar archive on the host. */
  async diskExport(ref: string, output: string, options: { force?: boolean } = {}): Promise<{ workspace_id: string; output_path: string; bytes: number }> {
    const { out } = await checkOutput(output, options.force === true, this.outputOptions());
    const id = await this.stopped(ref);
    const temp = path.join(path.dirname(out), `.pyro-disk-${process.pid}-${Date.now()}`);
    await fsp.mkdir(temp, { mode: 0o700 });
    ownByGuestRoot(temp);
    try {
      await this.manager.withView(id, (_, view) => runUtilityChecked([...view.binds, { source: temp, target: "/export", readOnly: false }], ["tar", "-cf", "/export/workspace.tar", "-C", "/workspace", "."], "disk export", { join: view.join }));
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
