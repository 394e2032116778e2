/**
 * The one path-safety check, applied inside the sandbox to every path an operation names:
 * relative paths resolve against /workspace, absolute ones must be under it, `..` may not climb
 * out, and symlinks may not lead out either (checked on the real path of what exists).
 * Names are carried as latin1 strings when they come from the filesystem, so non-UTF-8 bytes
 * survive unchanged; `displayName` turns them into text.
 */
import fs from "node:fs";
import path from "node:path/posix";
import { WORKSPACE_GUEST_PATH } from "../protocol/messages.js";
import { AgentFailure } from "./failure.js";
import type { EntryType } from "../protocol/messages.js";

export const ROOT = WORKSPACE_GUEST_PATH;

export function within(root: string, p: string): boolean {
  return p === root || p.startsWith(`${root}/`);
}

/** Lexical resolution: no filesystem access. */
export function lexicalPath(p: string, root = ROOT): string {
  if (typeof p !== "string" || p.length === 0) throw new AgentFailure("invalid_request", "path is empty");
  if (p.includes("\0")) throw new AgentFailure("invalid_request", "path contains a NUL byte");
  const resolved = path.resolve(root, p);
  if (!within(root, resolved)) throw new AgentFailure("path_outside_workspace", `${p} is outside ${root}`);
  return resolved;
}

/**
 * Refuses a working directory that is missing or is not a directory, naming it. Checked before
 * a command, service or shell is started, because spawn reports a bad cwd as ENOENT, which is
 * indistinguishable from a missing command (exit 127).
 */
export function requireDirectory(cwd: string): void {
  const st = fs.statSync(cwd, { throwIfNoEntry: false });
  if (!st) throw new AgentFailure("not_found", `cwd ${cwd} does not exist`);
  if (!st.isDirectory()) throw new AgentFailure("not_found", `cwd ${cwd} is not a directory`);
}

/** Symlink hops followed before a path is refused as a loop (the kernel's own limit). */
const MAX_LINK_HOPS = 40;

/**
 * Resolves `p` (absolute, normalised) one component at a time with lstat/readlink, the way the
 * kernel would, and refuses it the moment the resolved path leaves `root` — also through a
 * symlink whose target does not exist (a dangling `etc -> /etc` must not look like a missing
 * name). Missing components are appended as plain names.
 */
function resolveWithin(p: string, root: string, followFinal: boolean, shown: string): string {
  const outside = () => new AgentFailure("path_outside_workspace", `${shown} leads outside ${root} through a symbolic link`);
  const pending = p.split("/").filter(Boolean);
  let current = "/";
  let hops = 0;
  while (pending.length > 0) {
    const name = pending.shift()!;
    const next = name === ".." ? path.dirname(current) : path.join(current, name);
    let st: fs.Stats | null = null;
    try {
      st = fs.lstatSync(next);
    } catch {
      st = null;
    }
    const isFinal = pending.length === 0;
    if (st?.isSymbolicLink() && (followFinal || !isFinal)) {
      if (++hops > MAX_LINK_HOPS) throw new AgentFailure("invalid_request", `${shown}: too many levels of symbolic links`);
      const target = fs.readlinkSync(next);
      pending.unshift(...target.split("/").filter(Boolean));
      current = target.startsWith("/") ? "/" : current;
      continue;
    }
    current = next;
    // The root itself may sit below paths outside it; only check once we are at or below it.
    const ancestorOfRoot = current === "/" || root.startsWith(`${current}/`);
    if (!within(root, current) && !ancestorOfRoot) throw outside();
  }
  if (!within(root, current)) throw outside();
  return current;
}

/**
 * Resolves a path and refuses it if it, or a symlink on the way, leads outside the root.
 * `followFinal: false` does not follow a symlink in the last component (for operations on a
 * link itself: write replaces it, delete removes it).
 */
export function safePath(p: string, options: { root?: string; followFinal?: boolean } = {}): string {
  const root = options.root ?? ROOT;
  const lexical = lexicalPath(p, root);
  resolveWithin(lexical, fs.realpathSync(root), options.followFinal !== false, p);
  return lexical;
}

/** A filesystem name (latin1-carried bytes) as text: UTF-8 when valid, else escaped bytes. */
export function displayName(latin1: string): string {
  const bytes = Buffer.from(latin1, "latin1");
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    let out = "";
    for (const b of bytes) out += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, "0")}`;
    return out;
  }
}

export type { EntryType } from "../protocol/messages.js";

export function entryType(st: fs.Stats): EntryType {
  if (st.isFile()) return "file";
  if (st.isDirectory()) return "directory";
  if (st.isSymbolicLink()) return "symlink";
  if (st.isFIFO()) return "fifo";
  if (st.isSocket()) return "socket";
  if (st.isCharacterDevice()) return "char_device";
  if (st.isBlockDevice()) return "block_device";
  return "other";
}

/** True when bytes look like text: no NUL and valid UTF-8. */
export function isText(bytes: Buffer): boolean {
  if (bytes.includes(0)) return false;
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/** Length of `bytes` without a trailing, incomplete UTF-8 sequence (so a cut never splits a character). */
export function utf8SafeLength(bytes: Buffer): number {
  const end = bytes.length;
  for (let i = 1; i <= 3 && end - i >= 0; i++) {
    const b = bytes[end - i]!;
    if ((b & 0xc0) === 0x80) continue; // continuation byte
    const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return need > i ? end - i : end;
  }
  return end;
}
