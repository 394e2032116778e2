/**
 * MCP tools for workspace content: sync, file operations, patch, export, diff, snapshots,
 * reset and the secondary disk tools. Each is a direct call into the SDK; see server.ts for
 * the conventions (structured results, `isError` with a stable code).
 */
import * as z from "zod";
import type { Pyro } from "../sdk/pyro.js";
import { hostPath } from "../shared/host-path.js";
import { ok, tool } from "./results.js";
import type { Register } from "./registry.js";
import { capLines, escapeControls, hasControls } from "../ops/text.js";
import { workspaceInfo, workspaceRef } from "../ops/schemas.js";

const fileEntry = z.object({ path: z.string(), type: z.string(), size: z.number(), mode: z.string(), mtime: z.string(), link_target: z.string().nullable() });
const fileListResult = {
  workspace_id: z.string(),
  path: z.string(),
  recursive: z.boolean(),
  entries: z.array(fileEntry),
  count: z.number(),
  truncated: z.boolean(),
  total_seen: z.number(),
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
  continue_with: z.string().nullable(),
};
const snapshotInfo = z.object({ name: z.string(), created_at: z.string(), entries: z.number(), bytes: z.number(), baseline: z.boolean() });
const pathInput = z.string().describe("Path relative to /workspace, or absolute under /workspace.");
const listInput = {
  workspace_id: workspaceRef,
  path: pathInput.optional().describe("Directory or file to list (default /workspace)."),
  recursive: z.boolean().optional().describe("Walk subdirectories (never through symlinks)."),
  max_entries: z.number().int().positive().optional().describe("At most this many entries (default 1000)."),
};
const readInput = {
  workspace_id: workspaceRef,
  path: pathInput,
  max_bytes: z.number().int().positive().optional().describe("Read at most this many bytes (default 65536)."),
  offset: z.number().int().min(0).optional().describe("Start at this byte offset; use next_offset from a truncated read."),
};

type ListArgs = { workspace_id: string; path?: string; recursive?: boolean; max_entries?: number };
type ReadArgs = { workspace_id: string; path: string; max_bytes?: number; offset?: number };
const listOptions = (a: ListArgs) => ({ ...(a.path !== undefined ? { path: a.path } : {}), ...(a.recursive !== undefined ? { recursive: a.recursive } : {}), ...(a.max_entries !== undefined ? { maxEntries: a.max_entries } : {}) });
const readOptions = (a: ReadArgs) => ({ ...(a.max_bytes !== undefined ? { maxBytes: a.max_bytes } : {}), ...(a.offset !== undefined ? { offset: a.offset } : {}) });
const listText = (r: { path: string; entries: { path: string; type: string; size: number }[]; truncated: boolean; total_seen: number; count: number }, tool: string) =>
  (r.entries.map((e) => `${escapeControls(e.type === "directory" ? `${e.path}/` : e.path)} (${e.type}, ${e.size} bytes)`).join("\n") || `${r.path} is empty`) +
  (r.truncated ? `\n[${r.count} of at least ${r.total_seen} entries shown: call ${tool} with max_entries=${Math.min(100_000, r.total_seen * 2)} (at most 100000), or with path set to a subdirectory]` : "");
/**
 * A read page as text. The structured `content` is the file's exact text; here control
 * characters are shown as \xNN so no escape sequence reaches the model raw.
 */
const readText = (r: { binary: boolean; path: string; size: number; content: string; truncated: boolean; next_offset: number | null }, exportTool: string | null) => {
  if (r.binary) return `${r.path} is a binary file (${r.size} bytes); its content is not shown.${exportTool ? ` Use ${exportTool} to copy it out.` : ""}`;
  const note = hasControls(r.content) ? "\n[control characters are shown as \\xNN; the structured content has the exact text]" : "";
  const more = r.truncated ? `\n[truncated at byte ${r.next_offset} of ${r.size}: call again with offset=${r.next_offset}]` : "";
  return `${escapeControls(r.content)}${more}${note}`;
};

export function registerContentTools(register: Register, pyro: Pyro): void {
  register(
    "workspace_sync_push",
    {
      title: "Copy host files into a workspace",
      description: "Copy a host directory or .tar/.tar.gz/.tgz archive into /workspace (or `dest` under it) of a running workspace, merging with what is there. Archives with unsafe entries are refused before anything is written.",
      inputSchema: { workspace_id: workspaceRef, source_path: z.string().describe("Host directory or archive path."), dest: pathInput.optional().describe("Destination directory under /workspace (default /workspace).") },
      outputSchema: { workspace_id: z.string(), source: z.string(), kind: z.string(), dest: z.string(), entries: z.number(), bytes: z.number() },
    },
    tool(async (a: { workspace_id: string; source_path: string; dest?: string }) => {
      const r = await pyro.pushWorkspaceSync(a.workspace_id, hostPath(a.source_path, "source_path"), a.dest !== undefined ? { dest: a.dest } : {});
      return ok(r, `copied ${r.entries} entries (${r.bytes} bytes) into ${r.dest}`);
    }),
  );

  register(
    "workspace_file_list",
    {
      title: "List files in a workspace",
      description: "List a directory under /workspace (or one file): type, size, mode, mtime and symlink target of each entry, bounded by max_entries. Prefer this over `ls` through workspace_exec: the result is structured.",
      inputSchema: listInput,
      outputSchema: fileListResult,
      annotations: { readOnlyHint: true },
    },
    tool(async (a: ListArgs) => {
      const r = await pyro.listWorkspaceFiles(a.workspace_id, listOptions(a));
      return ok(r, listText(r, "workspace_file_list"));
    }),
  );

  register(
    "workspace_file_read",
    {
      title: "Read a file in a workspace",
      description: "Read a text file under /workspace, at most max_bytes (default 65536) from offset. When `truncated` is true, call again with offset=next_offset to read on. Binary files are detected and reported (binary=true), never dumped.",
      inputSchema: readInput,
      outputSchema: fileReadResult,
      annotations: { readOnlyHint: true },
    },
    tool(async (a: ReadArgs) => {
      const r = await pyro.readWorkspaceFile(a.workspace_id, a.path, readOptions(a));
      return ok(r, readText(r, register.has("workspace_export") ? "workspace_export" : null));
    }),
  );

  register(
    "workspace_file_write",
    {
      title: "Write a file in a workspace",
      description: "Create or replace a whole file under /workspace with the given text, creating parent directories; the write is atomic. Use this instead of printf/heredocs through workspace_exec. For small edits to an existing file, workspace_patch_apply is usually better.",
      inputSchema: { workspace_id: workspaceRef, path: pathInput, text: z.string().describe("The complete new content."), mode: z.string().optional().describe("Octal file mode such as 0755 (default: keep the existing mode, else 0644).") },
      outputSchema: { workspace_id: z.string(), path: z.string(), bytes_written: z.number(), created: z.boolean() },
    },
    tool(async (a: { workspace_id: string; path: string; text: string; mode?: string }) => {
      const r = await pyro.writeWorkspaceFile(a.workspace_id, a.path, { text: a.text, ...(a.mode !== undefined ? { mode: a.mode } : {}) });
      return ok(r, `${r.created ? "created" : "replaced"} ${r.path} (${r.bytes_written} bytes)`);
    }),
  );

  register(
    "workspace_patch_apply",
    {
      title: "Apply a unified diff in a workspace",
      description: "Apply a standard unified diff (as from `git diff` or `diff -u`; a/ and b/ prefixes are stripped) to files under /workspace. All or nothing: if any hunk does not apply, nothing changes and the error names the file, the hunk, and the expected versus actual lines.",
      inputSchema: { workspace_id: workspaceRef, patch: z.string().describe("Unified diff text.") },
      outputSchema: { workspace_id: z.string(), files: z.array(z.object({ path: z.string(), action: z.string(), hunks: z.number() })), files_changed: z.number() },
    },
    tool(async (a: { workspace_id: string; patch: string }) => {
      const r = await pyro.applyWorkspacePatch(a.workspace_id, { patch: a.patch });
      return ok(r, capLines(r.files.map((f) => `${f.action} ${f.path} (${f.hunks} hunks)`), 100, () => "the structured result lists every file"));
    }),
  );

  register(
    "workspace_export",
    {
      title: "Copy a file or directory out of a workspace",
      description: "Copy a file or directory from /workspace to a host path. Never overwrites an existing host path unless force=true, and never writes to or replaces the server's working directory, the home directory or their ancestors. Device nodes, FIFOs and symlinks leading outside the exported tree are skipped and listed in `skipped`; setuid/setgid bits and file capabilities are removed and listed in `stripped`; `note` says when the export is partial because the workspace changed meanwhile.",
      inputSchema: { workspace_id: workspaceRef, path: pathInput, output_path: z.string().describe("Host path to create."), force: z.boolean().optional().describe("Replace an existing output.") },
      outputSchema: {
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
      },
    },
    tool(async (a: { workspace_id: string; path: string; output_path: string; force?: boolean }) => {
      const r = await pyro.exportWorkspace(a.workspace_id, a.path, { outputPath: hostPath(a.output_path, "output_path"), ...(a.force !== undefined ? { force: a.force } : {}) });
      const skipped = r.skipped.length ? `\nskipped (not copied): ${capLines(r.skipped.map((x) => `${x.path}: ${x.reason}`), 10, () => "see skipped in the structured result")}` : "";
      const stripped = r.stripped.length ? `\nstripped (copied without): ${capLines(r.stripped.map((x) => `${x.path}: ${x.reason}`), 10, () => "see stripped in the structured result")}` : "";
      const note = r.note ? `\nnote: ${r.note}` : "";
      return ok(r, `exported ${r.workspace_path} to ${r.output_path} (${r.files} files, ${r.directories} directories, ${r.symlinks} symlinks, ${r.bytes} bytes)${skipped}${stripped}${note}`);
    }),
  );

  register(
    "workspace_diff",
    {
      title: "What changed in a workspace",
      description: "Compare the live /workspace with its create-time baseline (or a named snapshot): every added, deleted, modified, type-changed or mode-changed entry, plus a git-style patch of text files and symlinks bounded by max_bytes (binary files are listed, not dumped). If patch_truncated, call again with path set to one of omitted_files.",
      inputSchema: {
        workspace_id: workspaceRef,
        path: pathInput.optional().describe("Only this file or directory."),
        snapshot: z.string().optional().describe("Compare with this snapshot instead of the baseline."),
        max_bytes: z.number().int().positive().optional().describe("Budget for the patch text (default 65536)."),
      },
      outputSchema: {
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
        continue_with: z.string().nullable(),
      },
      annotations: { readOnlyHint: true },
    },
    tool(async (a: { workspace_id: string; path?: string; snapshot?: string; max_bytes?: number }) => {
      const r = await pyro.diffWorkspace(a.workspace_id, {
        ...(a.path !== undefined ? { path: a.path } : {}),
        ...(a.snapshot !== undefined ? { snapshot: a.snapshot } : {}),
        ...(a.max_bytes !== undefined ? { maxBytes: a.max_bytes } : {}),
      });
      const s = r.summary;
      const head = `${s.total} changes against ${r.against}: ${s.added} added, ${s.modified} modified, ${s.deleted} deleted, ${s.type_changed} type changed, ${s.mode_changed} mode changed`;
      // What the patch cannot carry (binary files, directories, special files) is listed instead.
      const unpatched = r.changes.filter((c) => c.binary || (c.type !== "file" && c.type !== "symlink")).map((c) => `${c.change} ${c.path} (${c.binary ? "binary" : c.type})`);
      const listed = unpatched.length ? `\n${capLines(unpatched, 50, () => "see changes in the structured result")}` : "";
      const cut = r.changes_omitted ? `\n[${r.changes_omitted} more changes are counted but not listed: call workspace_diff with path set to a subdirectory]` : "";
      const truncated = r.patch_truncated
        ? `\n[patch truncated: ${r.omitted_files.length} files left out (${r.omitted_files.slice(0, 5).join(", ")}${r.omitted_files.length > 5 ? ", …" : ""}): call workspace_diff with path="${r.omitted_files[0]}" to see the first, or raise max_bytes]`
        : "";
      return ok(r, `${head}${listed}${cut}\n${escapeControls(r.patch)}${truncated}`);
    }),
  );

  register(
    "snapshot_create",
    {
      title: "Checkpoint a workspace",
      description: "Create one named workspace snapshot from the current /workspace tree, to come back to later with workspace_reset(snapshot=name). `baseline` already exists from creation.",
      inputSchema: { workspace_id: workspaceRef, snapshot_name: z.string().describe("Name for the checkpoint.") },
      outputSchema: { workspace_id: z.string(), ...snapshotInfo.shape },
    },
    tool(async (a: { workspace_id: string; snapshot_name: string }) => {
      const r = await pyro.createSnapshot(a.workspace_id, a.snapshot_name);
      return ok(r, `snapshot ${r.name}: ${r.entries} entries, ${r.bytes} bytes`);
    }),
  );

  register(
    "snapshot_list",
    {
      title: "List a workspace's snapshots",
      description: "List the snapshots of a workspace, oldest first, including `baseline`. Use before workspace_reset to pick a snapshot.",
      inputSchema: { workspace_id: workspaceRef },
      outputSchema: { workspace_id: z.string(), count: z.number(), snapshots: z.array(snapshotInfo) },
      annotations: { readOnlyHint: true },
    },
    tool(async (a: { workspace_id: string }) => {
      const r = await pyro.listSnapshots(a.workspace_id);
      return ok(r, capLines(r.snapshots.map((x) => `${x.name} (${x.created_at}, ${x.entries} entries, ${x.bytes} bytes)`), 50, () => "the structured result lists them all"));
    }),
  );

  register(
    "snapshot_delete",
    {
      title: "Delete a snapshot",
      description: "Delete one named snapshot of a workspace. The baseline cannot be deleted. Snapshots use disk space on the host, so delete the ones you no longer need.",
      inputSchema: { workspace_id: workspaceRef, snapshot_name: z.string() },
      outputSchema: { workspace_id: z.string(), name: z.string(), deleted: z.boolean() },
      annotations: { destructiveHint: true },
    },
    tool(async (a: { workspace_id: string; snapshot_name: string }) => {
      const r = await pyro.deleteSnapshot(a.workspace_id, a.snapshot_name);
      return ok(r, `deleted snapshot ${r.name}`);
    }),
  );

  register(
    "workspace_reset",
    {
      title: "Reset a workspace",
      description: "Recreate the workspace's sandbox from its environment plus the baseline (default) or a named snapshot. Keeps the id, name and labels; kills every process and removes packages installed since. This is the normal retry step when a workspace got into a bad state.",
      inputSchema: { workspace_id: workspaceRef, snapshot: z.string().optional().describe("Snapshot to restore (default baseline).") },
      outputSchema: { ...workspaceInfo.shape, reset_to: z.string() },
      annotations: { destructiveHint: true },
    },
    tool(async (a: { workspace_id: string; snapshot?: string }) => {
      const r = await pyro.resetWorkspace(a.workspace_id, a.snapshot !== undefined ? { snapshot: a.snapshot } : {});
      return ok(r, `reset ${r.workspace_id} to ${r.reset_to}; state ${r.state}`);
    }),
  );

  register(
    "workspace_disk_list",
    {
      title: "List files of a stopped workspace",
      description: "Secondary tool: list files of a STOPPED workspace without starting it (same result as workspace_file_list). For running workspaces use workspace_file_list.",
      inputSchema: listInput,
      outputSchema: fileListResult,
      annotations: { readOnlyHint: true },
    },
    tool(async (a: ListArgs) => {
      const r = await pyro.listWorkspaceDisk(a.workspace_id, listOptions(a));
      return ok(r, listText(r, "workspace_disk_list"));
    }),
  );

  register(
    "workspace_disk_read",
    {
      title: "Read a file of a stopped workspace",
      description: "Secondary tool: read a file of a STOPPED workspace without starting it (same result as workspace_file_read). For running workspaces use workspace_file_read.",
      inputSchema: readInput,
      outputSchema: fileReadResult,
      annotations: { readOnlyHint: true },
    },
    tool(async (a: ReadArgs) => {
      const r = await pyro.readWorkspaceDisk(a.workspace_id, a.path, readOptions(a));
      return ok(r, readText(r, register.has("workspace_disk_export") ? "workspace_disk_export" : null));
    }),
  );

  register(
    "workspace_disk_export",
    {
      title: "Archive a stopped workspace",
      description: "Secondary tool: write a STOPPED workspace's /workspace to a host .tar archive without starting it. Never overwrites unless force=true.",
      inputSchema: { workspace_id: workspaceRef, output_path: z.string(), force: z.boolean().optional() },
      outputSchema: { workspace_id: z.string(), output_path: z.string(), bytes: z.number() },
    },
    tool(async (a: { workspace_id: string; output_path: string; force?: boolean }) => {
      const r = await pyro.exportWorkspaceDisk(a.workspace_id, { outputPath: hostPath(a.output_path, "output_path"), ...(a.force !== undefined ? { force: a.force } : {}) });
      return ok(r, `wrote ${r.output_path} (${r.bytes} bytes)`);
    }),
  );
}
