/**
 * `workspace_summary`: the review view of a workspace since its last reset (src/core/summary.ts)
 * as an MCP tool — the structured summary plus its short text reading, with the exact calls that
 * show more where a list was capped.
 */
import * as z from "zod";
import type { Pyro } from "../sdk/pyro.js";
import { summaryText } from "../core/summary.js";
import type { Register } from "./registry.js";
import { ok, tool } from "./results.js";
import { workspaceRef } from "../ops/schemas.js";

const capped = <T extends z.ZodType>(item: T) => ({ count: z.number(), items: z.array(item), omitted: z.number() });

export const workspaceSummary = {
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

export function registerSummaryTool(register: Register, pyro: Pyro): void {
  register(
    "workspace_summary",
    {
      title: "What happened in a workspace",
      description:
        "One review view of a workspace since it was created or last reset: commands run with their outcomes, files changed with line counts (live diff against what the reset restored), edits, exports, snapshots, services and shell activity, from its persisted journal; every list capped with counts of what was left out. Call it when resuming work after losing context, or before reporting what was done.",
      inputSchema: { workspace_id: workspaceRef },
      outputSchema: workspaceSummary,
      annotations: { readOnlyHint: true },
    },
    tool(async (a: { workspace_id: string }) => {
      const s = await pyro.summarizeWorkspace(a.workspace_id);
      const more: string[] = [];
      if (s.commands.omitted && register.has("workspace_logs")) more.push(`earlier commands: call workspace_logs with limit=${s.commands.count}`);
      if (s.changes.omitted && register.has("workspace_diff")) more.push(`all changes: call workspace_diff${s.changes.against === "baseline" ? "" : ` with snapshot="${s.changes.against}"`} (narrow with path)`);
      return ok(s, `${summaryText(s)}${more.length ? `\n[more — ${more.join("; ")}]` : ""}`);
    }),
  );
}
