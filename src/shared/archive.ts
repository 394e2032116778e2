/**
 * The one archive-entry policy. Archives are hostile input: every tar that crosses the
 * sandbox boundary (seed, sync push, export, snapshot restore) is checked entry by entry with
 * these rules, on the host before sending and again by the agent while extracting. Pure; no I/O.
 */
import path from "node:path/posix";

export const DEFAULT_ARCHIVE_MAX_ENTRIES = 200_000;
export const DEFAULT_ARCHIVE_MAX_BYTES = 4 * 1024 * 1024 * 1024;

/** Entry types a workspace archive may contain; devices and FIFOs never. */
const ALLOWED_TYPES = new Set(["File", "OldFile", "ContiguousFile", "Directory", "SymbolicLink", "Link"]);
/** Metadata records node-tar surfaces as entries; they carry no file. */
const META_TYPES = new Set(["ExtendedHeader", "GlobalExtendedHeader", "NextFileHasLongPath", "NextFileHasLongLinkpath", "OldExtendedHeader"]);

export interface ArchiveEntryLike {
  path: string;
  type: string;
  size?: number;
  linkpath?: string;
}

export interface ArchiveTally {
  entries: number;
  bytes: number;
}

export interface ArchiveLimits {
  maxEntries: number;
  maxBytes: number;
}

export type ArchiveProblem = { code: "archive_unsafe_entry" | "archive_too_large"; entry: string; reason: string };

/** Normalises an entry name to a relative posix path, or returns null if it escapes. */
export function safeRelativeName(name: string): string | null {
  if (name.startsWith("/") || name.includes("\0")) return null;
  const parts = name.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.some((p) => p === "..")) return null;
  return parts.join("/");
}

/**
 * Checks one entry and adds it to the tally. Returns the problem, or null if the entry is fine.
 * Symlink targets are resolved lexically from the link's own directory and must stay inside the
 * destination; hard links must name another in-archive path.
 */
export function checkArchiveEntry(entry: ArchiveEntryLike, tally: ArchiveTally, limits: ArchiveLimits): ArchiveProblem | null {
  if (META_TYPES.has(entry.type)) return null;
  const shown = entry.path.slice(0, 300);
  if (!ALLOWED_TYPES.has(entry.type)) {
    return { code: "archive_unsafe_entry", entry: shown, reason: `entry type ${entry.type} is not allowed (only files, directories and links)` };
  }
  const rel = safeRelativeName(entry.path);
  if (rel === null) return { code: "archive_unsafe_entry", entry: shown, reason: "absolute path or '..' component" };
  if (entry.type === "SymbolicLink") {
    const target = entry.linkpath ?? "";
    if (target.startsWith("/")) return { code: "archive_unsafe_entry", entry: shown, reason: `symlink target ${target} is absolute` };
    const resolved = path.normalize(path.join(path.dirname(rel || "."), target));
    if (resolved === ".." || resolved.startsWith("../")) {
      return { code: "archive_unsafe_entry", entry: shown, reason: `symlink target ${target} escapes the destination` };
    }
  }
  if (entry.type === "Link") {
    if (safeRelativeName(entry.linkpath ?? "") === null) {
      return { code: "archive_unsafe_entry", entry: shown, reason: `hard link target ${entry.linkpath ?? ""} escapes the destination` };
    }
  }
  tally.entries += 1;
  tally.bytes += entry.size ?? 0;
  if (tally.entries > limits.maxEntries) {
    return { code: "archive_too_large", entry: shown, reason: `more than ${limits.maxEntries} entries` };
  }
  if (tally.bytes > limits.maxBytes) {
    return { code: "archive_too_large", entry: shown, reason: `more than ${limits.maxBytes} bytes of content` };
  }
  return null;
}

/** True for names pyro accepts as tar archives. */
export function archiveKind(file: string): "tar" | "tar.gz" | null {
  const lower = file.toLowerCase();
  if (lower.endsWith(".tar")) return "tar";
  if (lower.endsWith(".tar.gz") || lower.endsWith(".tgz")) return "tar.gz";
  return null;
}
