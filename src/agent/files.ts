/**
 * Model-native file operations inside the sandbox: list (bounded by count and bytes, counting
 * the rest), read (bounded, paged, binary-aware) and write (atomic replace, parents created).
 * Every path passes `safePath` first.
 */
import fs from "node:fs";
import path from "node:path/posix";
import { randomBytes } from "node:crypto";
import { AgentFailure } from "./failure.js";
import { ROOT, displayName, entryType, isText, safePath, utf8SafeLength } from "./paths.js";
import { num, str } from "./handler.js";
import type { Handlers } from "./handler.js";
import { MAX_FILE_LIST_BYTES } from "../protocol/messages.js";
import type { FileEntry, FileListRequest, FileListResult, FileReadHeader, FileReadRequest, FileWriteRequest, FileWriteResult } from "../protocol/messages.js";

function describe(abs: string, st: fs.Stats): FileEntry {
  let target: string | null = null;
  if (st.isSymbolicLink()) {
    try {
      target = displayName(fs.readlinkSync(abs, { encoding: "latin1" }));
    } catch {
      target = null;
    }
  }
  return {
    path: displayName(abs),
    type: entryType(st),
    size: st.size,
    mode: (st.mode & 0o7777).toString(8).padStart(4, "0"),
    mtime: st.mtime.toISOString(),
    link_target: target,
  };
}

/**
 * A listing: entries in name order, depth first, up to `maxEntries` and MAX_FILE_LIST_BYTES of
 * JSON lines, then only counted. Past the cut no entry is described (no lstat, no JSON): the
 * walk reads directory entries' types and goes on counting, so `total_seen` stays exact.
 */
export function fileList(req: FileListRequest): { result: FileListResult; payload: Buffer } {
  const abs = safePath(req.path ?? ".");
  let st: fs.Stats;
  try {
    st = fs.lstatSync(abs);
  } catch {
    throw new AgentFailure("not_found", `${req.path} does not exist`);
  }
  // Like `ls`: a symlink to a directory (already checked to stay inside) lists the directory.
  const isDir = st.isDirectory() || (st.isSymbolicLink() && fs.statSync(abs, { throwIfNoEntry: false })?.isDirectory() === true);
  if (!isDir) return { result: { path: abs, count: 1, truncated: false, total_seen: 1 }, payload: Buffer.from(`${JSON.stringify(describe(abs, st))}\n`, "utf8") };
  const lines: Buffer[] = [];
  let bytes = 0;
  let full = false;
  let seen = 0;
  const walk = (dir: string) => {
    let dirents: fs.Dirent[];
    try {
      dirents = fs.readdirSync(Buffer.from(dir, "latin1"), { encoding: "latin1", withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    } catch {
      return;
    }
    for (const d of dirents) {
      const child = path.join(dir, d.name);
      seen++;
      let isDirectory = d.isDirectory();
      if (!full) {
        let cst: fs.Stats;
        try {
          cst = fs.lstatSync(Buffer.from(child, "latin1"));
        } catch {
          // Vanished since the directory was read: not listed, not counted.
          seen--;
          continue;
        }
        isDirectory = cst.isDirectory();
        const line = Buffer.from(`${JSON.stringify(describe(child, cst))}\n`, "utf8");
        if (lines.length < req.maxEntries && bytes + line.length <= MAX_FILE_LIST_BYTES) {
          lines.push(line);
          bytes += line.length;
        } else full = true;
      }
      // Never descend through a symlink: a listing stays inside the tree it was asked about.
      if (req.recursive && isDirectory) walk(child);
    }
  };
  walk(abs);
  return {
    result: { path: displayName(abs), count: lines.length, truncated: seen > lines.length, total_seen: seen },
    payload: Buffer.concat(lines, bytes),
  };
}

export function fileRead(req: FileReadRequest): { header: FileReadHeader; payload: Buffer } {
  const abs = safePath(req.path);
  let st: fs.Stats;
  try {
    st = fs.statSync(abs);
  } catch {
    throw new AgentFailure("not_found", `${req.path} does not exist`);
  }
  if (!st.isFile()) throw new AgentFailure("invalid_request", `${req.path} is a ${entryType(st)}, not a regular file`);
  const offset = Math.max(0, Math.floor(req.offset ?? 0));
  // O_NONBLOCK: a FIFO swapped in after the check must not hang the agent.
  const fd = fs.openSync(abs, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW);
  try {
    const want = Math.min(req.maxBytes, Math.max(0, st.size - offset));
    const buf = Buffer.alloc(want);
    const n = want > 0 ? fs.readSync(fd, buf, 0, want, offset) : 0;
    let bytes = buf.subarray(0, n);
    const more = offset + n < st.size;
    if (more) bytes = bytes.subarray(0, utf8SafeLength(bytes));
    const binary = !isText(bytes);
    const returned = binary ? 0 : bytes.length;
    const next = offset + bytes.length < st.size ? offset + bytes.length : null;
    return {
      header: { path: abs, size: st.size, offset, bytes_returned: returned, next_offset: binary ? null : next, truncated: !binary && next !== null, binary },
      payload: binary ? Buffer.alloc(0) : bytes,
    };
  } finally {
    fs.closeSync(fd);
  }
}

export function fileWrite(req: FileWriteRequest, content: Buffer): FileWriteResult {
  const abs = safePath(req.path, { followFinal: false });
  if (abs === ROOT) throw new AgentFailure("invalid_request", "cannot write to /workspace itself");
  const dir = path.dirname(abs);
  fs.mkdirSync(dir, { recursive: true });
  // Re-check after creating parents: an existing symlink among them must not lead outside.
  safePath(dir);
  let created = true;
  let mode = req.mode ?? 0o644;
  try {
    const st = fs.lstatSync(abs);
    if (st.isDirectory()) throw new AgentFailure("invalid_request", `${req.path} is a directory`);
    created = false;
    if (req.mode === null && st.isFile()) mode = st.mode & 0o7777;
  } catch (err) {
    if (err instanceof AgentFailure) throw err;
  }
  const tmp = path.join(dir, `.${path.basename(abs)}.pyro-${randomBytes(4).toString("hex")}`);
  try {
    fs.writeFileSync(tmp, content, { mode, flag: "wx" });
    fs.chmodSync(tmp, mode);
    fs.renameSync(tmp, abs);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  return { path: abs, bytes_written: content.length, created };
}

export const fileHandlers: Handlers<"file_list" | "file_read" | "file_write"> = {
  file_list: (h) => fileList({ path: str(h.path, "path"), recursive: h.recursive === true, maxEntries: num(h.maxEntries, 1000) }),
  file_read: (h) => {
    const { header, payload } = fileRead({ path: str(h.path, "path"), offset: num(h.offset, 0), maxBytes: num(h.maxBytes, 65536) });
    return { result: header, payload };
  },
  file_write: (h, payload) => ({ result: fileWrite({ path: str(h.path, "path"), mode: typeof h.mode === "number" ? h.mode : null }, payload) }),
};
