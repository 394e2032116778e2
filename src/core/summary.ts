/**
 * `workspace summary`: one review view of a workspace since its last reset (or its creation) —
 * commands and their outcomes from the command history, files changed with line counts from a
 * live diff against what that reset restored, and edits, exports, snapshots, services and shell
 * activity from the persisted event journal. It is how a model that lost its context finds out
 * what it was doing, and how a reviewer reads what an agent did. Every list is capped and says
 * how much it left out. Read-only: never changes the workspace or its `last_activity_at`.
 */
import type { WorkspaceManager } from "./manager.js";
import type { DiffResult } from "./workspace-content.js";
import type { ServiceStatus } from "./services.js";
import type { ShellInfo } from "./shells.js";
import { BASELINE } from "./snapshots.js";
import type { CommandRecord, WorkspaceEvent, WorkspaceState } from "./types.js";

/** List caps: enough to review a working session, small enough for a model's context. */
export const SUMMARY_LIMITS = { commands: 20, files: 50, events: 20 } as const;

/** A capped list: `count` is how many there were, `items` the ones shown (most recent last), `omitted` the rest. */
export interface SummaryList<T> {
  count: number;
  items: T[];
  omitted: number;
}

export interface SummaryCommand {
  sequence: number;
  /** The command line (argv joined by spaces, or the shell string), at most 200 characters. */
  command: string;
  outcome: "exited" | "signaled" | "timed_out";
  exit_code: number | null;
  signal: string | null;
  duration_ms: number;
  started_at: string;
}

export interface SummaryFile {
  /** Relative to /workspace, as in `workspace diff`. */
  path: string;
  change: DiffResult["changes"][number]["change"];
  type: string;
  binary: boolean;
  /** Lines added and removed, from the diff's patch; null when the file is not in the patch (binary, not text, or over the patch budget). */
  lines_added: number | null;
  lines_removed: number | null;
}

export interface SummaryEdit {
  at: string;
  kind: "file_write" | "patch_apply" | "sync_push";
  /** Guest paths the edit touched (for sync push: the destination directory). */
  paths: string[];
  detail: string;
}

export interface SummaryExport {
  at: string;
  path: string;
  output_path: string;
  files: number;
  bytes: number;
}

export interface SummaryService {
  name: string;
  state: ServiceStatus["state"];
  reason: string | null;
  started_at: string | null;
  ready_at: string | null;
}

export interface SummaryShell {
  shell_id: string;
  opened_at: string;
  /** When shell_close was called; null if it was not (the shell may still run, or went with a stop). */
  closed_at: string | null;
  /** `running` when the workspace's agent still has it, `gone` otherwise. */
  state: "running" | "exited" | "gone";
  writes: number;
  bytes_written: number;
  signals: string[];
}

export interface WorkspaceSummary {
  workspace_id: string;
  name: string | null;
  labels: Record<string, string>;
  environment: string;
  state: WorkspaceState;
  last_activity_at: string;
  /** Where the summary starts: the creation, or the last reset and the snapshot it restored. */
  since: { at: string; event: "created" | "reset"; reset_count: number; restored: string };
  commands: SummaryList<SummaryCommand> & { succeeded: number; failed: number; timed_out: number; signaled: number; continue_with: string | null };
  changes: {
    /** The snapshot the live /workspace was compared with: what the last reset restored (baseline if it is gone). */
    against: string;
    summary: DiffResult["summary"];
    lines_added: number;
    lines_removed: number;
    files: SummaryFile[];
    omitted: number;
    continue_with: string | null;
  };
  edits: SummaryList<SummaryEdit>;
  exports: SummaryList<SummaryExport>;
  snapshots: { count: number; names: string[]; created: string[]; deleted: string[] };
  services: SummaryList<SummaryService> & { running_count: number };
  shells: SummaryList<SummaryShell>;
  generated_at: string;
}

/** What the summary reads; the SDK passes its content, service and shell layers. */
export interface SummarySources {
  manager: WorkspaceManager;
  diff(id: string, options: { snapshot?: string }): Promise<DiffResult>;
  services(id: string): Promise<{ services: ServiceStatus[] }>;
  shells(id: string): Promise<{ shells: ShellInfo[] }>;
}

const RUNNING_SERVICE = new Set(["starting", "ready", "running"]);

/** Keeps the most recent `limit` items (the list is oldest first). */
function capped<T>(all: T[], limit: number): SummaryList<T> {
  const items = all.slice(-limit);
  return { count: all.length, items, omitted: all.length - items.length };
}

function outcomeOf(c: CommandRecord): SummaryCommand["outcome"] {
  if (c.timed_out) return "timed_out";
  if (c.signal) return "signaled";
  return "exited";
}

/**
 * Lines added and removed per file of a git-style patch. The path comes from the `+++ b/` line
 * (or `--- a/` for a deletion), which is unambiguous even for names with spaces.
 */
export function patchLineCounts(patch: string): Map<string, { added: number; removed: number }> {
  const counts = new Map<string, { added: number; removed: number }>();
  let current: { added: number; removed: number } | null = null;
  let oldPath: string | null = null;
  let inHunk = false;
  for (const line of patch.split("\n")) {
    if (line.startsWith("diff --git ")) {
      current = null;
      oldPath = null;
      inHunk = false;
    } else if (!inHunk && line.startsWith("--- ")) {
      oldPath = line === "--- /dev/null" ? null : line.slice(4).replace(/^a\//, "");
    } else if (!inHunk && line.startsWith("+++ ")) {
      const newPath = line === "+++ /dev/null" ? oldPath : line.slice(4).replace(/^b\//, "");
      if (newPath !== null) {
        current = { added: 0, removed: 0 };
        counts.set(newPath, current);
      }
    } else if (line.startsWith("@@")) {
      inHunk = true;
    } else if (inHunk && current) {
      if (line.startsWith("+")) current.added++;
      else if (line.startsWith("-")) current.removed++;
    }
  }
  return counts;
}

function editOf(e: WorkspaceEvent): SummaryEdit | null {
  const d = e.details;
  if (e.kind === "file_write") {
    return { at: e.at, kind: e.kind, paths: [String(d.path)], detail: `${d.created === true ? "created" : "replaced"} (${Number(d.bytes) || 0} bytes)` };
  }
  if (e.kind === "patch_apply") {
    // Journal entries read "modified /workspace/a.py".
    const files = Array.isArray(d.files) ? d.files.map(String) : [];
    return { at: e.at, kind: e.kind, paths: files.map((f) => f.slice(f.indexOf(" ") + 1)), detail: files.join(", ") || "no files" };
  }
  if (e.kind === "sync_push") {
    return { at: e.at, kind: e.kind, paths: [String(d.dest)], detail: `${Number(d.entries) || 0} entries (${Number(d.bytes) || 0} bytes) from ${String(d.source)}` };
  }
  return null;
}

/** Builds the summary of one workspace (by id or name). */
export async function summarizeWorkspace(sources: SummarySources, ref: string): Promise<WorkspaceSummary> {
  const { manager } = sources;
  const id = await manager.resolve(ref);
  const info = await manager.status(id);
  const events = await manager.store.readEvents(id);
  const lastReset = [...events].reverse().find((e) => e.kind === "reset");
  const since = info.last_reset_at ?? info.created_at;
  const restored = info.last_reset_at && lastReset ? String(lastReset.details.snapshot ?? BASELINE) : BASELINE;
  const recent = events.filter((e) => e.at >= since && e.kind !== "reset");

  // Commands: the history is append-only in sequence order, so the ones since `since` are its tail.
  const history = (await manager.store.readHistory(id)).filter((c) => c.started_at >= since);
  const commandItems = history.map<SummaryCommand>((c) => ({
    sequence: c.sequence,
    command: c.command.join(" ").slice(0, 200),
    outcome: outcomeOf(c),
    exit_code: c.exit_code,
    signal: c.signal,
    duration_ms: c.duration_ms,
    started_at: c.started_at,
  }));
  const commandList = capped(commandItems, SUMMARY_LIMITS.commands);
  const commands = {
    ...commandList,
    succeeded: commandItems.filter((c) => c.outcome === "exited" && c.exit_code === 0).length,
    failed: commandItems.filter((c) => c.outcome === "exited" && c.exit_code !== 0).length,
    timed_out: commandItems.filter((c) => c.outcome === "timed_out").length,
    signaled: commandItems.filter((c) => c.outcome === "signaled").length,
    continue_with: commandList.omitted > 0 ? `workspace logs ${id} --limit ${commandList.count} (MCP: workspace_logs with limit=${commandList.count})` : null,
  };

  // Files: the live tree against what the last reset restored; a deleted snapshot falls back to the baseline.
  const snapshotList = await manager.snapshots(id).list();
  const against = snapshotList.some((s) => s.name === restored) ? restored : BASELINE;
  const diff = await sources.diff(id, against === BASELINE ? {} : { snapshot: against });
  const lines = patchLineCounts(diff.patch);
  const files = diff.changes.map<SummaryFile>((c) => {
    const n = lines.get(c.path);
    return { path: c.path, change: c.change, type: c.type, binary: c.binary, lines_added: n ? n.added : null, lines_removed: n ? n.removed : null };
  });
  const shownFiles = files.slice(0, SUMMARY_LIMITS.files);
  const filesOmitted = diff.summary.total - shownFiles.length;
  const diffCall = against === BASELINE ? "" : ` --snapshot ${against}`;
  const changes = {
    against,
    summary: diff.summary,
    lines_added: [...lines.values()].reduce((a, n) => a + n.added, 0),
    lines_removed: [...lines.values()].reduce((a, n) => a + n.removed, 0),
    files: shownFiles,
    omitted: filesOmitted,
    continue_with:
      filesOmitted > 0 ? `workspace diff ${id}${diffCall} (MCP: workspace_diff${against === BASELINE ? "" : ` with snapshot="${against}"`}; narrow with path)` : null,
  };

  const edits = capped(recent.map(editOf).filter((e): e is SummaryEdit => e !== null), SUMMARY_LIMITS.events);
  const exports = capped(
    recent
      .filter((e) => e.kind === "export")
      .map<SummaryExport>((e) => ({ at: e.at, path: String(e.details.path), output_path: String(e.details.output), files: Number(e.details.files) || 0, bytes: Number(e.details.bytes) || 0 })),
    SUMMARY_LIMITS.events,
  );
  const snapshots = {
    count: snapshotList.length,
    names: snapshotList.map((s) => s.name),
    created: recent.filter((e) => e.kind === "snapshot_create").map((e) => String(e.details.name)),
    deleted: recent.filter((e) => e.kind === "snapshot_delete").map((e) => String(e.details.name)),
  };

  // Services started since, and any still running from before.
  const allServices = (await sources.services(id).catch(() => ({ services: [] as ServiceStatus[] }))).services;
  const serviceItems = allServices
    .filter((s) => RUNNING_SERVICE.has(s.state) || (s.started_at !== null && s.started_at >= since))
    .map<SummaryService>((s) => ({ name: s.name, state: s.state, reason: s.reason, started_at: s.started_at, ready_at: s.ready_at }));
  const services = { ...capped(serviceItems, SUMMARY_LIMITS.events), running_count: serviceItems.filter((s) => RUNNING_SERVICE.has(s.state)).length };

  // Shells, from the journal; whether each still runs, from the agent when the workspace is up.
  const live = info.state === "running" ? new Map((await sources.shells(id).catch(() => ({ shells: [] as ShellInfo[] }))).shells.map((s) => [s.shell_id, s])) : new Map<string, ShellInfo>();
  const shellMap = new Map<string, SummaryShell>();
  for (const e of recent) {
    const shellId = typeof e.details.shell_id === "string" ? e.details.shell_id : null;
    if (!shellId || !e.kind.startsWith("shell_")) continue;
    let s = shellMap.get(shellId);
    if (!s) {
      s = { shell_id: shellId, opened_at: e.at, closed_at: null, state: "gone", writes: 0, bytes_written: 0, signals: [] };
      shellMap.set(shellId, s);
    }
    if (e.kind === "shell_write") {
      s.writes++;
      s.bytes_written += Number(e.details.bytes) || 0;
    } else if (e.kind === "shell_signal") s.signals.push(String(e.details.signal));
    else if (e.kind === "shell_close") s.closed_at = e.at;
  }
  for (const s of shellMap.values()) s.state = live.get(s.shell_id)?.state ?? "gone";
  const shells = capped([...shellMap.values()], SUMMARY_LIMITS.events);

  return {
    workspace_id: id,
    name: info.name,
    labels: info.labels,
    environment: info.environment,
    state: info.state,
    last_activity_at: info.last_activity_at,
    since: { at: since, event: info.last_reset_at ? "reset" : "created", reset_count: info.reset_count, restored },
    commands,
    changes,
    edits,
    exports,
    snapshots,
    services,
    shells,
    generated_at: new Date().toISOString(),
  };
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

/**
 * The short human (and model) reading of a summary: a few lines per section, nothing that is not
 * in the structured result. Used by `pyro workspace summary` and the MCP text rendering. Pure.
 */
export function summaryText(s: WorkspaceSummary): string {
  const out: string[] = [];
  out.push(`Workspace ${s.name ? `${s.name} (${s.workspace_id})` : s.workspace_id}: ${s.state}, ${s.environment}`);
  out.push(s.since.event === "created" ? `Since: created ${s.since.at}` : `Since: reset #${s.since.reset_count} to ${s.since.restored} at ${s.since.at}`);

  const c = s.commands;
  const tally = [`${c.succeeded} succeeded`, `${c.failed} failed`, ...(c.timed_out ? [`${c.timed_out} timed out`] : []), ...(c.signaled ? [`${c.signaled} killed by a signal`] : [])];
  out.push(`Commands: ${c.count === 0 ? "none" : `${c.count} run — ${tally.join(", ")}`}`);
  if (c.omitted) out.push(`  [${plural(c.omitted, "earlier command")} not shown]`);
  for (const x of c.items) {
    const result = x.outcome === "timed_out" ? "timed out" : x.outcome === "signaled" ? `killed by ${x.signal}` : `exit ${x.exit_code}`;
    out.push(`  #${x.sequence} ${result}, ${Math.round(x.duration_ms)} ms: ${x.command}`);
  }

  const d = s.changes;
  const sum = d.summary;
  out.push(
    sum.total === 0
      ? `Files changed against ${d.against}: none`
      : `Files changed against ${d.against}: ${sum.total} (${sum.added} added, ${sum.modified} modified, ${sum.deleted} deleted${sum.type_changed ? `, ${sum.type_changed} type changed` : ""}${sum.mode_changed ? `, ${sum.mode_changed} mode changed` : ""}), +${d.lines_added} −${d.lines_removed} lines`,
  );
  const mark: Record<string, string> = { added: "A", modified: "M", deleted: "D", type_changed: "T", mode_changed: "P" };
  for (const f of d.files) out.push(`  ${mark[f.change] ?? "?"} ${f.path}${f.binary ? " (binary)" : f.lines_added !== null ? ` +${f.lines_added} −${f.lines_removed}` : ""}`);
  if (d.omitted) out.push(`  [${plural(d.omitted, "more change")} not shown]`);

  if (s.edits.count) {
    out.push(`Edits: ${s.edits.count}${s.edits.omitted ? ` (last ${s.edits.items.length} shown)` : ""}`);
    for (const e of s.edits.items) out.push(`  ${e.kind} ${e.kind === "patch_apply" ? e.detail : `${e.paths.join(", ")}: ${e.detail}`}`);
  }
  if (s.exports.count) {
    out.push(`Exports: ${s.exports.count}${s.exports.omitted ? ` (last ${s.exports.items.length} shown)` : ""}`);
    for (const e of s.exports.items) out.push(`  ${e.path} -> ${e.output_path} (${plural(e.files, "file")}, ${e.bytes} bytes)`);
  }
  out.push(
    `Snapshots: ${s.snapshots.names.join(", ") || "none"}${s.snapshots.created.length ? `; created since: ${s.snapshots.created.join(", ")}` : ""}${s.snapshots.deleted.length ? `; deleted since: ${s.snapshots.deleted.join(", ")}` : ""}`,
  );
  if (s.services.count) {
    out.push(`Services: ${s.services.count} (${s.services.running_count} running)`);
    for (const x of s.services.items) out.push(`  ${x.name}: ${x.state}${x.reason ? ` — ${x.reason}` : ""}`);
  }
  if (s.shells.count) {
    out.push(`Shells: ${s.shells.count}`);
    for (const x of s.shells.items) {
      out.push(`  ${x.shell_id}: ${x.closed_at ? "closed" : x.state}, ${plural(x.writes, "write")} (${x.bytes_written} bytes)${x.signals.length ? `, signals ${x.signals.join(", ")}` : ""}`);
    }
  }
  return out.join("\n");
}
