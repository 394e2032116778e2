/**
 * Workspace content: sync push, file list/read/write, patch, export, diff, snapshots, reset, the
 * review summary, and the secondary disk tools that read a stopped workspace. Each declared once
 * (see op.ts).
 */
import * as z from "zod";
import { summaryText } from "../core/summary.js";
import { hostPath } from "../shared/host-path.js";
import { workspaceField } from "./fields.js";
import { field, given, op } from "./op.js";
import type { RunContext } from "./op.js";
import * as render from "./render.js";
import { workspaceInfo } from "./schemas.js";
import { capLines, escapeControls, hasControls } from "./text.js";

const fileEntry = z.object({ path: z.string(), type: z.string(), size: z.number(), mode: z.string(), mtime: z.string(), link_target: z.string().nullable() });
const fileListResult = {
  workspace_id: z.string(),
  path: z.string(),
  recursive: z.boolean(),
  entries: z.array(fileEntry),
  count: z.number(),
  truncated: z.boolean(),
  total_seen: z.number(),
  continue_with: z.string().nullable(),
};
const fileReadResult = {
  workspace_id: z.string(),
  path: z.string(),
  size: z.number(),
  offset: z.number(),
  bytes_returned: z.number(),
  next_offset: z.number().nullable(),
  truncated: z.boolean(),
  binary: z.boolean(),
  content: z.string(),
  secrets_redacted: z.boolean(),
  continue_with: z.string().nullable(),
};
const snapshotInfo = z.object({ name: z.string(), created_at: z.string(), entries: z.number(), bytes: z.number(), baseline: z.boolean() });
const pathInput = z.string().describe("Path relative to /workspace, or absolute under /workspace.");
const pathArg = (arg: string, description: string) => field(pathInput.describe(description), { arg, label: description });

const listInput = {
  workspace_id: workspaceField,
  path: field(pathInput.optional().describe("Directory or file to list (default /workspace)."), { arg: "[path]", label: "path under /workspace (default /workspace)" }),
  recursive: field(z.boolean().optional().describe("Walk subdirectories (never through symlinks).")),
  max_entries: field(z.number().int().positive().optional().describe("At most this many entries (default 1000, at most 100000); the rest are counted in total_seen.")),
};
const readInput = {
  workspace_id: workspaceField,
  path: pathArg("<path>", "File under /workspace."),
  max_bytes: field(z.number().int().positive().optional().describe("Read at most this many bytes (default 65536, at most 8 MiB; over MCP one call returns at most 2 MiB and says where to read on).")),
  offset: field(z.number().int().min(0).optional().describe("Start at this byte offset; use next_offset from a truncated read.")),
};
const CONTENT_ONLY = { contentOnly: { flag: "--content-only", help: "print only the content, no summary" } };

type ListArgs = { workspace_id: string; path?: string | undefined; recursive?: boolean | undefined; max_entries?: number | undefined };
type ReadArgs = { workspace_id: string; path: string; max_bytes?: number | undefined; offset?: number | undefined };
const listOptions = (a: ListArgs) => given({ path: a.path, recursive: a.recursive, maxEntries: a.max_entries });
/**
 * Bytes one read returns over MCP: a larger max_bytes reads this much, and `truncated` with
 * `next_offset` say where to read on, so paging stays exact. Without it, a read beyond the MCP
 * result budget (4 MiB of JSON, src/mcp/budget.ts) would lose its middle while next_offset
 * pointed past it. 2 MiB of text stays under the budget even with its newlines escaped.
 */
export const MCP_READ_MAX_BYTES = 2 * 1024 * 1024;
const readOptions = (a: ReadArgs, ctx: RunContext) =>
  given({ maxBytes: ctx.surface === "mcp" && a.max_bytes !== undefined ? Math.min(a.max_bytes, MCP_READ_MAX_BYTES) : a.max_bytes, offset: a.offset });
/** Entries a model's text shows; the structured result has every entry listed. */
const LIST_TEXT_LINES = 200;
const listText = (r: { path: string; entries: { path: string; type: string; size: number }[]; truncated: boolean; total_seen: number; count: number }, tool: string) =>
  (capLines(
    r.entries.map((e) => `${escapeControls(e.type === "directory" ? `${e.path}/` : e.path)} (${e.type}, ${e.size} bytes)`),
    LIST_TEXT_LINES,
    () => "the structured result lists them",
  ) || `${r.path} is empty`) +
  (r.truncated
    ? `\n[${r.count} of ${r.total_seen} entries listed: call ${tool} with path set to a subdirectory${r.count < 100_000 ? `, or with max_entries=${Math.min(100_000, r.total_seen)}` : ""}]`
    : "");
/**
 * A read page as text. The structured `content` is the file's exact text; here control
 * characters are shown as \xNN so no escape sequence reaches the model raw.
 */
const readText = (r: { binary: boolean; path: string; size: number; content: string; truncated: boolean; next_offset: number | null; secrets_redacted: boolean }, exportTool: string | null) => {
  if (r.binary) return `${r.path} is a binary file (${r.size} bytes); its content is not shown.${exportTool ? ` Use ${exportTool} to copy it out.` : ""}`;
  const note = (hasControls(r.content) ? "\n[control characters are shown as \\xNN; the structured content has the exact text]" : "") + (r.secrets_redacted ? `\n${SECRETS_REDACTED_NOTE}` : "");
  const more = r.truncated ? `\n[truncated at byte ${r.next_offset} of ${r.size}: call again with offset=${r.next_offset}]` : "";
  return `${escapeControls(r.content)}${more}${note}`;
};

const SECRETS_REDACTED_NOTE = "[a secret's value is shown as [REDACTED]; the file itself is unchanged]";

const capped = <T extends z.ZodType>(item: T) => ({ count: z.number(), items: z.array(item), omitted: z.number() });

const workspaceSummary = {
  workspace_id: z.string(),
  name: z.string().nullable(),
  labels: z.record(z.string(), z.string()),
  environment: z.string(),
  state: z.enum(["creating", "running", "stopped", "failed"]),
  last_activity_at: z.string(),
  since: z.object({ at: z.string(), event: z.enum(["created", "reset"]), reset_count: z.number(), restored: z.string() }),
  commands: z.object({
    ...capped(
      z.object({
        sequence: z.number(),
        command: z.string(),
        outcome: z.enum(["exited", "signaled", "timed_out"]),
        exit_code: z.number().nullable(),
        signal: z.string().nullable(),
        duration_ms: z.number(),
        started_at: z.string(),
      }),
    ),
    succeeded: z.number(),
    failed: z.number(),
    timed_out: z.number(),
    signaled: z.number(),
    continue_with: z.string().nullable(),
  }),
  changes: z.object({
    against: z.string(),
    summary: z.object({ added: z.number(), deleted: z.number(), modified: z.number(), type_changed: z.number(), mode_changed: z.number(), total: z.number() }),
    lines_added: z.number(),
    lines_removed: z.number(),
    files: z.array(
      z.object({ path: z.string(), change: z.string(), type: z.string(), binary: z.boolean(), lines_added: z.number().nullable(), lines_removed: z.number().nullable() }),
    ),
    omitted: z.number(),
    continue_with: z.string().nullable(),
  }),
  edits: z.object(capped(z.object({ at: z.string(), kind: z.enum(["file_write", "patch_apply", "sync_push"]), paths: z.array(z.string()), detail: z.string() }))),
  exports: z.object(capped(z.object({ at: z.string(), path: z.string(), output_path: z.string(), files: z.number(), bytes: z.number() }))),
  snapshots: z.object({ count: z.number(), names: z.array(z.string()), created: z.array(z.string()), deleted: z.array(z.string()) }),
  services: z.object({
    ...capped(z.object({ name: z.string(), state: z.string(), reason: z.string().nullable(), started_at: z.string().nullable(), ready_at: z.string().nullable() })),
    running_count: z.number(),
  }),
  shells: z.object(
    capped(
      z.object({
        shell_id: z.string(),
        opened_at: z.string(),
        closed_at: z.string().nullable(),
        state: z.enum(["running", "exited", "gone"]),
        writes: z.number(),
        bytes_written: z.number(),
        signals: z.array(z.string()),
      }),
    ),
  ),
  generated_at: z.string(),
};


const outputPathField = field(z.string().describe("Host path to create."), { flag: "--output <host-path>", required: true, parse: "hostPath" });
const forceField = field(z.boolean().optional().describe("Replace an existing output."));

export const workspaceSyncPush = op({
  mcp: "workspace_sync_push",
  sdk: "pushWorkspaceSync",
  cli: "workspace sync push",
  summary: "Copy a host directory or .tar/.tar.gz/.tgz into /workspace (or --dest under it)",
  title: "Copy host files into a workspace",
  description: "Copy a host directory or .tar/.tar.gz/.tgz archive into /workspace (or `dest` under it) of a running workspace, merging with what is there. Archives with unsafe entries are refused before anything is written.",
  input: {
    workspace_id: workspaceField,
    source_path: field(z.string().describe("Host directory or archive path."), { arg: "<source>", label: "host directory or archive", parse: "hostPath" }),
    dest: field(pathInput.optional().describe("Destination directory under /workspace (default /workspace)."), { value: "<path>" }),
  },
  output: { workspace_id: z.string(), source: z.string(), kind: z.string(), dest: z.string(), entries: z.number(), bytes: z.number() },
  run: (pyro, a) => pyro.pushWorkspaceSync(a.workspace_id, hostPath(a.source_path, "source_path"), given({ dest: a.dest })),
  text: (r) => `copied ${r.entries} entries (${r.bytes} bytes) into ${r.dest}`,
  human: (r) => `Copied ${r.entries} entries (${render.bytes(r.bytes)}) from ${r.source} into ${r.dest}`,
});

export const workspaceFileList = op({
  mcp: "workspace_file_list",
  sdk: "listWorkspaceFiles",
  cli: "workspace file list",
  summary: "List a directory under /workspace: type, size, mode, mtime, symlink target",
  title: "List files in a workspace",
  description: "List a directory under /workspace (or one file): type, size, mode, mtime and symlink target of each entry, bounded by max_entries. Prefer this over `ls` through workspace_exec: the result is structured.",
  input: listInput,
  output: fileListResult,
  annotations: { readOnlyHint: true },
  run: (pyro, a) => pyro.listWorkspaceFiles(a.workspace_id, listOptions(a)),
  text: (r) => listText(r, "workspace_file_list"),
  human: render.fileList,
});

export const workspaceFileRead = op({
  mcp: "workspace_file_read",
  sdk: "readWorkspaceFile",
  cli: "workspace file read",
  summary: "Read a text file (default budget 65536 bytes); says when truncated and how to read on",
  title: "Read a file in a workspace",
  description: "Read a text file under /workspace, at most max_bytes (default 65536) from offset. When `truncated` is true, call again with offset=next_offset to read on. Binary files are detected and reported (binary=true), never dumped.",
  input: readInput,
  cliFlags: CONTENT_ONLY,
  output: fileReadResult,
  annotations: { readOnlyHint: true },
  run: (pyro, a, ctx) => pyro.readWorkspaceFile(a.workspace_id, a.path, readOptions(a, ctx)),
  text: (r, ctx) => readText(r, ctx.offers("workspace_export") ? "workspace_export" : null),
  human: (r, cliOnly) => render.fileRead(r, cliOnly.contentOnly === true),
});

export const workspaceFileWrite = op({
  mcp: "workspace_file_write",
  sdk: "writeWorkspaceFile",
  cli: "workspace file write",
  summary: "Create or replace a file under /workspace, creating parent directories",
  title: "Write a file in a workspace",
  description: "Create or replace a whole file under /workspace with the given text, creating parent directories; the write is atomic. Use this instead of printf/heredocs through workspace_exec. For small edits to an existing file, workspace_patch_apply is usually better.",
  input: {
    workspace_id: workspaceField,
    path: pathArg("<path>", "File under /workspace."),
    text: field(z.string().describe("The complete new content."), { flag: "--text <text>" }),
    mode: field(z.string().optional().describe("Octal file mode such as 0755 (default: keep the existing mode, else 0644)."), { value: "<octal>" }),
  },
  cliFlags: { textFile: { flag: "--text-file <file>", help: "read the new content from this host file (UTF-8)" } },
  cliAdjust: { text: { key: "text", flag: "--text", fileKey: "textFile", fileFlag: "--text-file" } },
  output: { workspace_id: z.string(), path: z.string(), bytes_written: z.number(), created: z.boolean() },
  run: (pyro, a) => pyro.writeWorkspaceFile(a.workspace_id, a.path, { text: a.text, ...given({ mode: a.mode }) }),
  text: (r) => `${r.created ? "created" : "replaced"} ${r.path} (${r.bytes_written} bytes)`,
  human: (r) => `${r.created ? "Created" : "Replaced"} ${r.path} (${r.bytes_written} bytes)`,
});

export const workspacePatchApply = op({
  mcp: "workspace_patch_apply",
  sdk: "applyWorkspacePatch",
  cli: "workspace patch apply",
  summary: "Apply a unified diff (git diff / diff -u) to files under /workspace, all or nothing",
  title: "Apply a unified diff in a workspace",
  description: "Apply a standard unified diff (as from `git diff` or `diff -u`; a/ and b/ prefixes are stripped) to files under /workspace. All or nothing: if any hunk does not apply, nothing changes and the error names the file, the hunk, and the expected versus actual lines.",
  input: { workspace_id: workspaceField, patch: field(z.string().describe("Unified diff text."), { flag: "--patch <text>" }) },
  cliFlags: { patchFile: { flag: "--patch-file <file>", help: "read the patch from this host file" } },
  cliAdjust: { text: { key: "patch", flag: "--patch", fileKey: "patchFile", fileFlag: "--patch-file" } },
  output: { workspace_id: z.string(), files: z.array(z.object({ path: z.string(), action: z.string(), hunks: z.number() })), files_changed: z.number() },
  run: (pyro, a) => pyro.applyWorkspacePatch(a.workspace_id, { patch: a.patch }),
  text: (r) => capLines(r.files.map((f) => `${f.action} ${f.path} (${f.hunks} hunks)`), 100, () => "the structured result lists every file"),
  human: (r) => r.files.map((f) => `${f.action.padEnd(12)} ${f.path}${f.hunks ? ` (${f.hunks} hunks)` : ""}`).join("\n"),
});

export const workspaceExport = op({
  mcp: "workspace_export",
  sdk: "exportWorkspace",
  cli: "workspace export",
  summary: "Copy a file or directory from /workspace to the host; never overwrites unless --force",
  title: "Copy a file or directory out of a workspace",
  description:
    "Copy a file or directory from /workspace to a host path. Never overwrites an existing host path unless force=true, and never writes to or replaces the server's working directory, the home directory or their ancestors. Device nodes, FIFOs and symlinks leading outside the exported tree are skipped and listed in `skipped`; setuid/setgid bits and file capabilities are removed and listed in `stripped`; `note` says when the export is partial because the workspace changed meanwhile.",
  input: { workspace_id: workspaceField, path: pathArg("<path>", "File or directory under /workspace."), output_path: outputPathField, force: forceField },
  output: {
    workspace_id: z.string(),
    workspace_path: z.string(),
    output_path: z.string(),
    kind: z.string(),
    files: z.number(),
    directories: z.number(),
    symlinks: z.number(),
    bytes: z.number(),
    skipped: z.array(z.object({ path: z.string(), reason: z.string() })),
    stripped: z.array(z.object({ path: z.string(), reason: z.string() })),
    note: z.string().nullable(),
    contains_secret_values: z.boolean(),
  },
  run: (pyro, a) => pyro.exportWorkspace(a.workspace_id, a.path, { outputPath: hostPath(a.output_path, "output_path"), ...given({ force: a.force }) }),
  text: (r) => {
    const skipped = r.skipped.length ? `\nskipped (not copied): ${capLines(r.skipped.map((x) => `${x.path}: ${x.reason}`), 10, () => "see skipped in the structured result")}` : "";
    const stripped = r.stripped.length ? `\nstripped (copied without): ${capLines(r.stripped.map((x) => `${x.path}: ${x.reason}`), 10, () => "see stripped in the structured result")}` : "";
    const note = r.note ? `\nnote: ${r.note}` : "";
    return `exported ${r.workspace_path} to ${r.output_path} (${r.files} files, ${r.directories} directories, ${r.symlinks} symlinks, ${r.bytes} bytes)${skipped}${stripped}${note}`;
  },
  human: render.exported,
});

export const workspaceDiff = op({
  mcp: "workspace_diff",
  sdk: "diffWorkspace",
  cli: "workspace diff",
  summary: "Compare /workspace with its create-time baseline (or --snapshot): changed entries and a patch",
  title: "What changed in a workspace",
  description:
    "Compare the live /workspace with its create-time baseline (or a named snapshot): every added, deleted, modified, type-changed or mode-changed entry (the first 2000 listed, all counted by kind in summary), plus a git-style patch of text files and symlinks bounded by max_bytes (binary files are listed, not dumped). If patch_truncated, call again with path set to one of omitted_files or a directory.",
  input: {
    workspace_id: workspaceField,
    path: field(pathInput.optional().describe("Only this file or directory."), { value: "<path>" }),
    snapshot: field(z.string().optional().describe("Compare with this snapshot instead of the baseline."), { value: "<name>" }),
    max_bytes: field(z.number().int().positive().optional().describe("Budget for the patch text (default 65536).")),
  },
  output: {
    workspace_id: z.string(),
    against: z.string(),
    path: z.string().nullable(),
    changes: z.array(
      z.object({
        path: z.string(),
        change: z.string(),
        type: z.string(),
        old_type: z.string().nullable(),
        old_mode: z.string().nullable(),
        new_mode: z.string().nullable(),
        binary: z.boolean(),
        size: z.number().nullable(),
      }),
    ),
    changes_omitted: z.number(),
    summary: z.object({ added: z.number(), deleted: z.number(), modified: z.number(), type_changed: z.number(), mode_changed: z.number(), total: z.number() }),
    patch: z.string(),
    patch_truncated: z.boolean(),
    omitted_files: z.array(z.string()),
    omitted_files_total: z.number(),
    continue_with: z.string().nullable(),
    secrets_redacted: z.boolean(),
  },
  annotations: { readOnlyHint: true },
  run: (pyro, a) => pyro.diffWorkspace(a.workspace_id, given({ path: a.path, snapshot: a.snapshot, maxBytes: a.max_bytes })),
  text: (r) => {
    const s = r.summary;
    const head = `${s.total} changes against ${r.against}: ${s.added} added, ${s.modified} modified, ${s.deleted} deleted, ${s.type_changed} type changed, ${s.mode_changed} mode changed`;
    // What the patch cannot carry (binary files, directories, special files) is listed instead.
    const unpatched = r.changes.filter((c) => c.binary || (c.type !== "file" && c.type !== "symlink")).map((c) => `${c.change} ${c.path} (${c.binary ? "binary" : c.type})`);
    const listed = unpatched.length ? `\n${capLines(unpatched, 50, () => "see changes in the structured result")}` : "";
    const cut = r.changes_omitted ? `\n[${r.changes_omitted} more changes are counted but not listed: call workspace_diff with path set to a subdirectory]` : "";
    const truncated = r.patch_truncated
      ? `\n[patch truncated: ${r.omitted_files_total} files left out (${r.omitted_files.slice(0, 5).join(", ")}${r.omitted_files.length > 5 ? ", …" : ""}): call workspace_diff with path="${r.omitted_files[0]}" to see the first, or raise max_bytes]`
      : "";
    return `${head}${listed}${cut}\n${escapeControls(r.patch)}${truncated}${r.secrets_redacted ? `\n${SECRETS_REDACTED_NOTE}` : ""}`;
  },
  human: render.diff,
});

const snapshotNameArg = (description: string) => field(z.string().describe(description), { arg: "<name>", label: "snapshot name" });

export const snapshotCreate = op({
  mcp: "snapshot_create",
  sdk: "createSnapshot",
  cli: "workspace snapshot create",
  summary: "Checkpoint /workspace under a name",
  title: "Checkpoint a workspace",
  description: "Create one named workspace snapshot from the current /workspace tree, to come back to later with workspace_reset(snapshot=name). `baseline` already exists from creation.",
  input: { workspace_id: workspaceField, snapshot_name: snapshotNameArg("Name for the checkpoint.") },
  output: { workspace_id: z.string(), ...snapshotInfo.shape },
  run: (pyro, a) => pyro.createSnapshot(a.workspace_id, a.snapshot_name),
  text: (r) => `snapshot ${r.name}: ${r.entries} entries, ${r.bytes} bytes`,
  human: (r) => `Snapshot ${r.name}: ${r.entries} entries, ${render.bytes(r.bytes)}`,
});

export const snapshotList = op({
  mcp: "snapshot_list",
  sdk: "listSnapshots",
  cli: "workspace snapshot list",
  summary: "List snapshots, oldest first",
  title: "List a workspace's snapshots",
  description: "List the snapshots of a workspace, oldest first, including `baseline`. Use before workspace_reset to pick a snapshot.",
  input: { workspace_id: workspaceField },
  output: { workspace_id: z.string(), count: z.number(), snapshots: z.array(snapshotInfo) },
  annotations: { readOnlyHint: true },
  run: (pyro, a) => pyro.listSnapshots(a.workspace_id),
  text: (r) => capLines(r.snapshots.map((x) => `${x.name} (${x.created_at}, ${x.entries} entries, ${x.bytes} bytes)`), 50, () => "the structured result lists them all"),
  human: (r) => r.snapshots.map((x) => `${x.name.padEnd(20)} ${x.created_at}  ${x.entries} entries  ${render.bytes(x.bytes)}`).join("\n"),
});

export const snapshotDelete = op({
  mcp: "snapshot_delete",
  sdk: "deleteSnapshot",
  cli: "workspace snapshot delete",
  summary: "Delete a named snapshot (not the baseline)",
  title: "Delete a snapshot",
  description: "Delete one named snapshot of a workspace. The baseline cannot be deleted. Snapshots use disk space on the host, so delete the ones you no longer need.",
  input: { workspace_id: workspaceField, snapshot_name: snapshotNameArg("The snapshot to delete.") },
  output: { workspace_id: z.string(), name: z.string(), deleted: z.boolean() },
  annotations: { destructiveHint: true },
  run: (pyro, a) => pyro.deleteSnapshot(a.workspace_id, a.snapshot_name),
  text: (r) => `deleted snapshot ${r.name}`,
  human: (r) => `Deleted snapshot ${r.name}`,
});

export const workspaceReset = op({
  mcp: "workspace_reset",
  sdk: "resetWorkspace",
  cli: "workspace reset",
  summary: "Recreate the sandbox from its environment plus the baseline or a snapshot; clears processes",
  title: "Reset a workspace",
  description:
    "Recreate the workspace's sandbox from its environment plus the baseline (default) or a named snapshot. Keeps the id, name and labels; kills every process and removes packages installed since. This is the normal retry step when a workspace got into a bad state.",
  input: { workspace_id: workspaceField, snapshot: field(z.string().optional().describe("Snapshot to restore (default baseline)."), { value: "<name>" }) },
  output: { ...workspaceInfo.shape, reset_to: z.string() },
  annotations: { destructiveHint: true },
  run: (pyro, a) => pyro.resetWorkspace(a.workspace_id, given({ snapshot: a.snapshot })),
  text: (r) => `reset ${r.workspace_id} to ${r.reset_to}; state ${r.state}`,
  human: (r) => `Reset to ${r.reset_to}\n${render.workspace(r)}`,
});

export const workspaceSummaryOp = op({
  mcp: "workspace_summary",
  sdk: "summarizeWorkspace",
  cli: "workspace summary",
  summary: "What happened since the last reset: commands and outcomes, files changed, edits, exports, snapshots, services, shells",
  title: "What happened in a workspace",
  description:
    "One review view of a workspace since it was created or last reset: commands run with their outcomes, files changed with line counts (live diff against what the reset restored), edits, exports, snapshots, services and shell activity, from its persisted journal; every list capped with counts of what was left out. Call it when resuming work after losing context, or before reporting what was done.",
  input: { workspace_id: workspaceField },
  output: workspaceSummary,
  annotations: { readOnlyHint: true },
  run: (pyro, a) => pyro.summarizeWorkspace(a.workspace_id),
  text: (s, ctx) => {
    const more: string[] = [];
    if (s.commands.omitted && ctx.offers("workspace_logs")) more.push(`earlier commands: call workspace_logs with limit=${s.commands.count}`);
    if (s.changes.omitted && ctx.offers("workspace_diff")) more.push(`all changes: call workspace_diff${s.changes.against === "baseline" ? "" : ` with snapshot="${s.changes.against}"`} (narrow with path)`);
    return `${summaryText(s)}${more.length ? `\n[more — ${more.join("; ")}]` : ""}`;
  },
  human: (s) => summaryText(s),
});

export const workspaceDiskList = op({
  mcp: "workspace_disk_list",
  sdk: "listWorkspaceDisk",
  cli: "workspace disk list",
  summary: "List files of a stopped workspace",
  title: "List files of a stopped workspace",
  description: "Secondary tool: list files of a STOPPED workspace without starting it (same result as workspace_file_list). For running workspaces use workspace_file_list.",
  input: listInput,
  output: fileListResult,
  annotations: { readOnlyHint: true },
  run: (pyro, a) => pyro.listWorkspaceDisk(a.workspace_id, listOptions(a)),
  text: (r) => listText(r, "workspace_disk_list"),
  human: render.fileList,
});

export const workspaceDiskRead = op({
  mcp: "workspace_disk_read",
  sdk: "readWorkspaceDisk",
  cli: "workspace disk read",
  summary: "Read a file of a stopped workspace",
  title: "Read a file of a stopped workspace",
  description: "Secondary tool: read a file of a STOPPED workspace without starting it (same result as workspace_file_read). For running workspaces use workspace_file_read.",
  input: readInput,
  cliFlags: CONTENT_ONLY,
  output: fileReadResult,
  annotations: { readOnlyHint: true },
  run: (pyro, a, ctx) => pyro.readWorkspaceDisk(a.workspace_id, a.path, readOptions(a, ctx)),
  text: (r, ctx) => readText(r, ctx.offers("workspace_disk_export") ? "workspace_disk_export" : null),
  human: (r, cliOnly) => render.fileRead(r, cliOnly.contentOnly === true),
});

export const workspaceDiskExport = op({
  mcp: "workspace_disk_export",
  sdk: "exportWorkspaceDisk",
  cli: "workspace disk export",
  summary: "Write a stopped workspace's /workspace to the host as a .tar archive",
  title: "Archive a stopped workspace",
  description: "Secondary tool: write a STOPPED workspace's /workspace to a host .tar archive without starting it. Never overwrites unless force=true.",
  input: { workspace_id: workspaceField, output_path: outputPathField, force: forceField },
  output: { workspace_id: z.string(), output_path: z.string(), bytes: z.number() },
  run: (pyro, a) => pyro.exportWorkspaceDisk(a.workspace_id, { outputPath: hostPath(a.output_path, "output_path"), ...given({ force: a.force }) }),
  text: (r) => `wrote ${r.output_path} (${r.bytes} bytes)`,
  human: (r) => `Wrote ${r.output_path} (${render.bytes(r.bytes)})`,
});
