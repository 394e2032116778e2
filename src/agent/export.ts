/**
 * Copies a file or directory out of /workspace into the export directory of a utility
 * sandbox, keeping modes and modification times. Only regular files, directories and symlinks
 * that stay inside the exported tree are copied; device nodes, FIFOs, sockets and symlinks
 * that lead elsewhere are skipped and reported, so nothing exported points back into the host.
 */
import fs from "node:fs";
import path from "node:path/posix";
import { AgentFailure } from "./failure.js";
import { displayName, safePath, within } from "./paths.js";
import type { ExportCopyResult } from "../protocol/messages.js";

export const EXPORT_DIR = "/export";

export function exportCopy(req: { path: string; name: string }): ExportCopyResult {
  const source = safePath(req.path);
  let st: fs.Stats;
  try {
    st = fs.lstatSync(source);
  } catch {
    throw new AgentFailure("not_found", `${req.path} does not exist`);
  }
  if (!st.isFile() && !st.isDirectory()) throw new AgentFailure("invalid_request", `${req.path} is not a regular file or directory`);
  if (req.name.includes("/") || req.name === "" || req.name === "." || req.name === "..") throw new AgentFailure("invalid_request", "bad export name");
  const result: ExportCopyResult = { source, kind: st.isDirectory() ? "directory" : "file", files: 0, directories: 0, symlinks: 0, bytes: 0, skipped: [] };
  const copy = (from: string, to: string) => {
    const s = fs.lstatSync(Buffer.from(from, "latin1"));
    const fromB = Buffer.from(from, "latin1");
    const toB = Buffer.from(to, "latin1");
    if (s.isDirectory()) {
      fs.mkdirSync(toB, { mode: 0o700 });
      result.directories++;
      for (const name of fs.readdirSync(fromB, { encoding: "latin1" })) copy(`${from}/${name}`, `${to}/${name}`);
      fs.chmodSync(toB, s.mode & 0o7777);
      fs.utimesSync(toB, s.atime, s.mtime);
    } else if (s.isFile()) {
      fs.copyFileSync(fromB, toB);
      fs.chmodSync(toB, s.mode & 0o7777);
      fs.utimesSync(toB, s.atime, s.mtime);
      result.files++;
      result.bytes += s.size;
    } else if (s.isSymbolicLink()) {
      const target = fs.readlinkSync(fromB, { encoding: "latin1" });
      const resolved = path.resolve(path.dirname(from), target);
      if (target.startsWith("/") || !within(source, resolved)) {
        result.skipped.push({ path: displayName(from), reason: `symlink to ${displayName(target)} leads outside the exported tree` });
        return;
      }
      fs.symlinkSync(Buffer.from(target, "latin1"), toB);
      result.symlinks++;
    } else {
      result.skipped.push({ path: displayName(from), reason: `${s.isFIFO() ? "FIFO" : s.isSocket() ? "socket" : "device node"} not exported` });
    }
  };
  copy(Buffer.from(source, "utf8").toString("latin1"), `${EXPORT_DIR}/${Buffer.from(req.name, "utf8").toString("latin1")}`);
  return result;
}
