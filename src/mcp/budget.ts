/**
 * The one size rule for MCP tool results: every result and error a server sends is at most
 * `MCP_RESULT_BUDGET_BYTES` of JSON (text rendering, structured content and `_meta` together),
 * so that no message comes near the 10 MiB at which the official MCP clients drop the connection,
 * and a model's window is never handed megabytes it cannot use. Applied once, by the server's
 * call handler (server.ts), after a result is built, to every tool and every error.
 *
 * A result over the budget is shrunk honestly and never cut mid-structure: first the text
 * rendering (head and tail kept, down to a short summary when the structured content fills the
 * budget), then the largest strings of the structured content and `_meta` (head and tail kept
 * with the output-capping helper, a marker where bytes were left out, each cut at a character
 * boundary), and only when the structure itself is too large, the trailing items of its largest
 * arrays. Truncation fields the result already has are set (`truncated`, `X_truncated`, `X_info`
 * byte counts, `omitted`/`X_omitted`, `count`), a last text block says what was cut, and
 * `_meta["pyro/budget"]` lists it for programs. Shrunk values keep their types, so the result
 * still matches the tool's output schema. Pure; no I/O.
 */
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { PyroError } from "../shared/errors.js";
import { capText } from "../shared/output-cap.js";
import { humanBytes } from "../ops/text.js";
import { errorResult } from "./results.js";

/**
 * 4 MiB of JSON per result: under half the 10 MiB the official clients accept, leaving room for
 * JSON-RPC framing and for clients that re-encode, and still far more than a model can read.
 */
export const MCP_RESULT_BUDGET_BYTES = 4 * 1024 * 1024;

/** Where a shrunk result lists what was cut, for programs (the model reads the text note). */
export const BUDGET_META_KEY = "pyro/budget";

/** What the text keeps when the structured content fills the budget: the outcome line, the start and the end. */
const TEXT_SUMMARY_BYTES = 16 * 1024;
/** Room kept for markers, the note, the report and punctuation, so that one pass usually fits. */
const SLACK_BYTES = 16 * 1024;
/** Strings shorter than this are never cut: below it, it is the structure that is large. */
const MIN_STRING_BYTES = 1024;
/** Cuts a report lists; many medium strings cut alike are counted, not listed. */
const REPORTED_CUTS = 20;
/** The longest field path a report spells out (20 of them stay well inside the slack). */
const MAX_FIELD_CHARS = 160;
/** The longest marker a cut adds, counted against the string that carries it. */
const MARKER_BYTES = 128;

/** One field a shrunk result cut: a string by bytes, or an array by items. */
export interface BudgetCut {
  /** Where, as a dotted path: `stdout`, `entries`, `_meta.pyro/error.details.actual`; `text` for the text rendering. */
  field: string;
  kept_bytes?: number;
  total_bytes?: number;
  kept_items?: number;
  total_items?: number;
}

/** `_meta["pyro/budget"]` of a shrunk result. */
export interface BudgetReport {
  budget_bytes: number;
  /** Bytes of JSON the result had before it was shrunk. */
  original_bytes: number;
  /** The fields cut, largest structures first as they were met; at most 20. */
  cut: BudgetCut[];
  /** Further fields cut and not listed (many medium strings cut to one level). */
  cut_omitted: number;
}

type Container = Record<string, unknown> | unknown[];

/** A string that may be cut: where it lives and what it was before any cut. */
interface StringSlot {
  parent: Container;
  key: string | number;
  field: string;
  original: string;
  /** What `original` costs as JSON, measured once. */
  originalBytes: number;
  text: boolean;
}

function slot(parent: Container, key: string | number, field: string, original: string, text: boolean): StringSlot {
  return { parent, key, field, original, originalBytes: jsonBytes(original), text };
}

/**
 * Objects and arrays copied, strings shared: what a cut changes is a copy, and copying costs no
 * more than the structure (a JSON round trip would copy megabytes of strings to cut them).
 * Undefined properties are left out, as JSON leaves them out.
 */
function copyStructure(value: unknown): unknown {
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map(copyStructure);
  const copy: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(value)) if (child !== undefined) copy[key] = copyStructure(child);
  return copy;
}

/** Characters JSON escapes (quotes, backslashes, controls) or that may be lone surrogates. */
// eslint-disable-next-line no-control-regex -- control characters are exactly what JSON escapes
const ESCAPED = /["\\\u0000-\u001f\ud800-\udfff]/u;

/** Bytes of `value` as JSON; a string without escapes is measured without building its JSON. */
function jsonBytes(value: unknown): number {
  if (typeof value === "string" && !ESCAPED.test(value)) return Buffer.byteLength(value, "utf8") + 2;
  return Buffer.byteLength(JSON.stringify(value) ?? "", "utf8");
}
const budgetLabel = (budget: number) => humanBytes(budget);

/**
 * The result as sent, shrunk to `budget` bytes of JSON when it is larger. A result that fits is
 * returned as it is (the same object).
 */
export function fitResult(result: CallToolResult, budget: number = MCP_RESULT_BUDGET_BYTES): CallToolResult {
  const original_bytes = jsonBytes(result);
  if (original_bytes <= budget) return result;
  // A copy of the structure (strings are shared, never changed in place) to cut.
  const out = copyStructure(result) as CallToolResult;
  const cuts = new Map<string, BudgetCut>();
  // Room for the note and the report added at the end.
  const target = budget - SLACK_BYTES;

  // 1. The text rendering, which often repeats the structured content: it gets what the rest
  // leaves, but never less than a short summary (or all of it, when it is short).
  const textSlots: StringSlot[] = out.content.flatMap((item, i) => (item.type === "text" ? [slot(out.content[i] as unknown as Container, "text", "text", item.text, true)] : []));
  const textBytes = textSlots.reduce((n, s) => n + s.originalBytes, 0);
  const restBytes = original_bytes - textBytes;
  const textTarget = Math.max(Math.min(TEXT_SUMMARY_BYTES, textBytes), target - restBytes);
  // The size is tracked through each cut (what a replaced string or dropped item cost) rather
  // than re-serialized, and measured for real once the cuts say it fits.
  let size = original_bytes;
  if (textBytes > textTarget) size -= shrinkStrings(textSlots, textBytes - textTarget, budget, cuts, 0);

  const slots = [...collectStrings(out.structuredContent, "", MIN_STRING_BYTES), ...collectStrings(out._meta, "_meta.", MIN_STRING_BYTES)];
  for (let round = 0; round < 3 && size > target; round++) {
    // The text again first, down to its summary, when the first cut fell short (markers, JSON
    // escapes): it repeats what the structured content holds, which is cut only after it.
    for (let pass = 0; pass < 6 && size > target && textBytes > TEXT_SUMMARY_BYTES; pass++) {
      const saved = shrinkStrings(textSlots, size - target, budget, cuts, Math.floor(TEXT_SUMMARY_BYTES / textSlots.length));
      if (saved <= 0) break;
      size = jsonBytes(out);
    }
    // 2. The largest strings of the structured content and _meta, to one level; again when
    // markers and JSON escapes made the first cut fall short.
    for (let pass = 0; pass < 6 && size > target; pass++) {
      const saved = shrinkStrings(slots, size - target, budget, cuts, MIN_STRING_BYTES);
      if (saved <= 0) break;
      size -= saved;
    }
    // 3. Only when the structure itself is too large: trailing items of the largest arrays.
    for (let pass = 0; pass < 64 && size > target; pass++) {
      const saved = trimLargestArray(out, size - target, cuts);
      if (saved === null) break;
      size -= saved;
    }
    // Truncation fields set along the way change a few bytes: the real size decides.
    size = jsonBytes(out);
  }

  const all = [...cuts.values()].map((c) => ({ ...c, field: shortField(c.field) }));
  const report: BudgetReport = { budget_bytes: budget, original_bytes, cut: all.slice(0, REPORTED_CUTS), cut_omitted: Math.max(0, all.length - REPORTED_CUTS) };
  out.content = [...out.content, { type: "text", text: budgetNote(report) }];
  out._meta = { ...out._meta, [BUDGET_META_KEY]: report };
  if (size > target || jsonBytes(out) > budget) {
    return errorResult(
      new PyroError("internal_error", `the result does not fit the MCP result budget of ${budgetLabel(budget)} even shortened (it had ${humanBytes(original_bytes)})`, {
        hint: "Ask for less in one call: a smaller max_output_bytes, max_bytes, max_chars or max_entries, or a narrower path.",
        details: { budget_bytes: budget, original_bytes },
      }),
    );
  }
  return out;
}

/** A field path as the report names it: a path into deeply nested data keeps its two ends. */
function shortField(field: string): string {
  return field.length <= MAX_FIELD_CHARS ? field : `${field.slice(0, MAX_FIELD_CHARS / 2)}…${field.slice(-MAX_FIELD_CHARS / 2)}`;
}

/** The last text block of a shrunk result: what was cut and how to see all of it. */
function budgetNote(report: BudgetReport): string {
  const fields = report.cut
    .filter((c) => c.field !== "text")
    .map((c) => (c.total_items !== undefined ? `${c.field} kept ${c.kept_items} of ${c.total_items} items (the first)` : `${c.field} kept ${humanBytes(c.kept_bytes ?? 0)} of ${humanBytes(c.total_bytes ?? 0)} (head and tail, marked where cut)`));
  const textCut = report.cut.some((c) => c.field === "text");
  const more = report.cut_omitted ? `; and ${report.cut_omitted} more fields cut the same way` : "";
  const what = [...(fields.length ? [`in the structured content ${fields.join("; ")}${more}`] : []), ...(textCut ? ["the text above is shortened (head and tail kept)"] : [])].join("; ");
  return `[result shortened to fit the MCP result budget of ${budgetLabel(report.budget_bytes)} (it had ${humanBytes(report.original_bytes)}): ${what}. To see everything, ask for less in one call: a smaller max_output_bytes (or the output written to a file and read in pages), max_bytes with offset, max_chars or max_entries, or a narrower path.]`;
}

/** Every string of at least `minBytes` under `value`, with its dotted path; walked without recursion so deep values cannot overflow the stack. */
function collectStrings(value: unknown, prefix: string, minBytes: number): StringSlot[] {
  const slots: StringSlot[] = [];
  const stack: { node: unknown; path: string }[] = [{ node: value, path: "" }];
  while (stack.length) {
    const { node, path } = stack.pop()!;
    if (node === null || typeof node !== "object") continue;
    const entries: [string | number, unknown][] = Array.isArray(node) ? node.map((v, i) => [i, v]) : Object.entries(node);
    for (const [key, child] of entries) {
      const childPath = path ? `${path}.${key}` : String(key);
      if (typeof child === "string") {
        if (child.length >= minBytes / 3 && Buffer.byteLength(child, "utf8") >= minBytes) slots.push(slot(node as Container, key, prefix + childPath, child, false));
      } else if (child !== null && typeof child === "object") {
        stack.push({ node: child, path: childPath });
      }
    }
  }
  return slots;
}

/**
 * Cuts the largest strings to one common level so that together they lose at least `need` bytes
 * of JSON: one huge string loses most, many medium ones lose evenly. Each is cut from its
 * original (a second pass never nests markers). Returns the bytes saved; 0 when nothing more
 * can be cut.
 */
function shrinkStrings(slots: StringSlot[], need: number, budget: number, cuts: Map<string, BudgetCut>, floor: number): number {
  const costs = slots.map((s) => (get(s) === s.original ? s.originalBytes : jsonBytes(get(s))));
  const level = cutLevel(costs, need, floor);
  let saved = 0;
  slots.forEach((slot, i) => {
    const cost = costs[i]!;
    if (cost <= level + MARKER_BYTES) return;
    // JSON escapes (quotes, backslashes, control characters) make a byte cost more than one.
    const utf8 = Buffer.byteLength(slot.original, "utf8");
    // On a second pass the kept head and tail may escape more densely than the whole did (short
    // lines: more newlines per byte): the denser ratio makes the cut converge.
    const current = get(slot);
    const ratio = Math.max(slot.originalBytes / Math.max(1, utf8), current === slot.original ? 0 : cost / Math.max(1, Buffer.byteLength(current, "utf8")));
    const keep = Math.max(0, Math.floor(level / ratio));
    const { head, tail, info } = capText(slot.original, keep);
    if (info.omitted_bytes === 0) return;
    const marker = slot.text
      ? `\n[... ${info.omitted_bytes} bytes of this text left out to fit the MCP result budget of ${budgetLabel(budget)} ...]\n`
      : `\n[... ${info.omitted_bytes} bytes omitted of ${info.total_bytes} to fit the MCP result budget of ${budgetLabel(budget)} ...]\n`;
    const next = head + marker + tail;
    const nextBytes = jsonBytes(next);
    if (nextBytes >= cost) return;
    (slot.parent as Record<string | number, unknown>)[slot.key] = next;
    saved += cost - nextBytes;
    cuts.set(slot.field, { field: slot.field, kept_bytes: info.head_bytes + info.tail_bytes, total_bytes: info.total_bytes });
    if (!slot.text && !Array.isArray(slot.parent)) markStringCut(slot.parent, String(slot.key), info.head_bytes, info.tail_bytes);
  });
  return saved;
}

function get(slot: StringSlot): string {
  return (slot.parent as Record<string | number, unknown>)[slot.key] as string;
}

/**
 * The length each string is cut to so that strings above it lose `need` bytes together (each
 * cut string also gains a marker). Never below `floor`.
 */
function cutLevel(costs: number[], need: number, floor: number): number {
  const sorted = [...costs].sort((a, b) => b - a);
  let sum = 0;
  for (let k = 1; k <= sorted.length; k++) {
    sum += sorted[k - 1]!;
    const level = Math.floor((sum - need) / k) - MARKER_BYTES;
    const next = sorted[k] ?? 0;
    if (level >= next) return Math.max(floor, level);
  }
  return floor;
}

/** A string field cut: the result's own truncation fields say so. */
function markStringCut(parent: Record<string, unknown>, key: string, headBytes: number, tailBytes: number): void {
  if (typeof parent[`${key}_truncated`] === "boolean") parent[`${key}_truncated`] = true;
  else if (typeof parent.truncated === "boolean") parent.truncated = true;
  const info = parent[`${key}_info`] as Record<string, unknown> | undefined;
  if (info && typeof info === "object" && typeof info.total_bytes === "number" && typeof info.head_bytes === "number" && typeof info.tail_bytes === "number") {
    const head = Math.min(info.head_bytes, headBytes);
    const tail = Math.min(info.tail_bytes, tailBytes);
    Object.assign(info, { head_bytes: head, tail_bytes: tail, omitted_bytes: Math.max(0, info.total_bytes - head - tail) });
  }
}

interface ArraySlot {
  parent: Container;
  key: string | number;
  field: string;
  array: unknown[];
  cost: number;
}

/** Drops trailing items of the largest array in the structured content or _meta until `need` bytes are gone; returns the bytes saved, or null when there is no array left to trim. */
function trimLargestArray(out: CallToolResult, need: number, cuts: Map<string, BudgetCut>): number | null {
  const arrays = [...collectArrays(out, "structuredContent", ""), ...collectArrays(out, "_meta", "_meta.")].filter((a) => a.array.length > 0);
  if (arrays.length === 0) return null;
  const largest = arrays.reduce((a, b) => (b.cost > a.cost ? b : a));
  const total = (cuts.get(largest.field)?.total_items ?? largest.array.length);
  let removed = 0;
  let keep = largest.array.length;
  while (keep > 0 && removed < need) {
    keep--;
    removed += jsonBytes(largest.array[keep]) + 1;
  }
  const dropped = largest.array.length - keep;
  largest.array.length = keep;
  cuts.set(largest.field, { field: largest.field, kept_items: keep, total_items: total });
  if (!Array.isArray(largest.parent)) markArrayCut(largest.parent, String(largest.key), dropped, keep + dropped);
  // Each dropped item took a comma with it, except the first item of an array emptied.
  return keep === 0 ? removed - 1 : removed;
}

function collectArrays(out: CallToolResult, rootKey: "structuredContent" | "_meta", prefix: string): ArraySlot[] {
  const slots: ArraySlot[] = [];
  const stack: { node: unknown; path: string }[] = [{ node: out[rootKey], path: "" }];
  while (stack.length) {
    const { node, path } = stack.pop()!;
    if (node === null || typeof node !== "object") continue;
    const entries: [string | number, unknown][] = Array.isArray(node) ? node.map((v, i) => [i, v]) : Object.entries(node);
    for (const [key, child] of entries) {
      if (child === null || typeof child !== "object") continue;
      const childPath = path ? `${path}.${key}` : String(key);
      // Arrays inside arrays are trimmed with their outermost array (its trailing items go
      // first), which spares measuring every level of a deeply nested value on every pass.
      if (Array.isArray(child) && !Array.isArray(node)) slots.push({ parent: node as Container, key, field: prefix + childPath, array: child, cost: jsonBytes(child) });
      stack.push({ node: child, path: childPath });
    }
  }
  return slots;
}

/**
 * An array field trimmed: its own counts say so. `X_omitted` or `omitted` grows by what was
 * dropped; `truncated` becomes true; `count` follows the array only where it counted exactly the
 * items listed (a result with an `omitted` count uses `count` for the total, which is unchanged).
 */
function markArrayCut(parent: Record<string, unknown>, key: string, dropped: number, before: number): void {
  const omittedKey = typeof parent[`${key}_omitted`] === "number" ? `${key}_omitted` : typeof parent.omitted === "number" ? "omitted" : null;
  if (omittedKey) parent[omittedKey] = (parent[omittedKey] as number) + dropped;
  if (typeof parent.truncated === "boolean") parent.truncated = true;
  if (!omittedKey && parent.count === before) parent.count = before - dropped;
}
