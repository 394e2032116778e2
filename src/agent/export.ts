/**
 * Copies a file or directory out of /workspace into the export directory of a utility sandbox,
 * from where the host moves it into place. What lands on the host can be neither a way out nor a
 * privilege, even though the guest may be changing the tree while it is copied:
 *
 * - Only regular files, directories and symlinks are copied; FIFOs, sockets and device nodes are
 *   skipped and reported.
 * - A symlink is kept only if, resolved inside the finished copy (following the links that are
 *   in it, at most 40 hops), it never leaves the exported tree at any step. Absolute targets,
 *   escapes (also through a chain of links such as `dot -> .`, `deep -> dot/dot/../..`) and
 *   loops are removed and reported. The verdict is reached on the copy, which only this process
 *   writes, so nothing the guest changes meanwhile can invalidate it.
 * - setuid and setgid bits are removed from every file and directory (sticky is kept on
 *   directories only), and no extended attribute is ever copied, so no file capability either;
 *   what was removed is reported in `stripped`.
 * - Every directory and file is opened without following a symlink and used only if the opened
 *   object is still inside the exported tree (its /proc/self/fd path says where it is); a file is
 *   copied only if it is still a regular file, and at most the size it had when opened. Entries
 *   that vanish or change kind meanwhile are skipped and reported, and `note` says the export is
 *   partial. The tree's root vanishing is `not_found`.
 * - Given the workspace's secret values, it looks for them in every copied file's content (also
 *   across read chunks) and name, and reports the files that hold one; the copy itself stays
 *   byte-exact. The values are only held in memory.
 */
import fs from "node:fs";
import { spawnSync } from "node:child_process";
import path from "node:path/posix";
import { AgentFailure } from "./failure.js";
import { displayName, ROOT, safePath, within } from "./paths.js";
import { invalid, str } from "./handler.js";
import type { Handlers } from "./handler.js";
import { EXPORT_LIST_MAX } from "../protocol/messages.js";
import { Redactor, SecretScan } from "../shared/redact.js";
import type { ExportCopyRequest, ExportCopyResult } from "../protocol/messages.js";

export const EXPORT_DIR = "/export";

/** Symlink hops followed when deciding where a link leads (the kernel's own limit). */
const MAX_LINK_HOPS = 40;
const COPY_CHUNK = 1024 * 1024;
/** Errors that mean the entry changed or vanished between being listed and being opened. */
const CHANGED = new Set(["ENOENT", "ENOTDIR", "ELOOP", "ESTALE", "EINVAL", "ENXIO"]);
const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_NOCTTY, O_DIRECTORY } = fs.constants;

/** Names travel as latin1 strings so that any byte survives; the filesystem gets the bytes. */
const bytes = (p: string) => Buffer.from(p, "latin1");
const changed = (err: unknown) => CHANGED.has((err as NodeJS.ErrnoException).code ?? "");

class ChangedError extends Error {}

interface Entry {
  path: string;
  reason: string;
}

/** Entry lists capped at EXPORT_LIST_MAX, with the full count kept for the note. */
class CappedList {
  readonly items: Entry[] = [];
  total = 0;
  push(e: Entry): void {
    this.total++;
    if (this.items.length < EXPORT_LIST_MAX) this.items.push(e);
  }
}

export function exportCopy(req: ExportCopyRequest): ExportCopyResult {
  if (req.name.includes("/") || req.name === "" || req.name === "." || req.name === "..") throw new AgentFailure("invalid_request", "bad export name");
  const source = safePath(req.path);
  let st: fs.Stats;
  try {
    st = fs.lstatSync(source);
  } catch {
    throw new AgentFailure("not_found", `${req.path} does not exist`);
  }
  if (!st.isFile() && !st.isDirectory()) throw new AgentFailure("invalid_request", `${req.path} is not a regular file or directory`);
  const job = new ExportJob(Buffer.from(source, "utf8").toString("latin1"), `${EXPORT_DIR}/${Buffer.from(req.name, "utf8").toString("latin1")}`, req.path, new Redactor(req.secrets ?? []));
  return job.run(st.isDirectory() ? "directory" : "file");
}

export const exportHandlers: Handlers<"export_copy"> = {
  export_copy: (h) => {
    const secrets = h.secrets ?? [];
    if (!Array.isArray(secrets) || !secrets.every((v): v is string => typeof v === "string")) throw invalid("secrets must be a list of strings");
    return { result: exportCopy({ path: str(h.path, "path"), name: str(h.name, "name"), secrets }) };
  },
};

class ExportJob {
  private readonly skipped = new CappedList();
  private readonly stripped = new CappedList();
  private vanished = 0;
  private files = 0;
  private directories = 0;
  private symlinks = 0;
  private bytes = 0;
  /** Links written to the copy, judged once the copy is complete. */
  private readonly links: { out: string; shown: string; target: string }[] = [];
  /** Exported files holding a secret value: how many, and the first few (display names). */
  private readonly secretFiles: { count: number; paths: string[] } = { count: 0, paths: [] };
  /** Real paths (latin1) of files with a file capability; null when the host has no getcap. */
  private capabilities: Set<string> | null = null;
  /** Where the exported tree really is (symlinks above it resolved): what every opened object must be under. */
  private realRoot = "";

  constructor(
    private readonly shownRoot: string,
    private readonly outRoot: string,
    private readonly requested: string,
    private readonly secrets: Redactor,
  ) {}

  run(kind: "file" | "directory"): ExportCopyResult {
    const fd = this.openRoot(kind);
    try {
      this.capabilities = filesWithCapabilities(this.realRoot, kind === "directory");
      if (kind === "file") this.copyFile(fd, this.realRoot, this.outRoot, this.shownRoot);
    } finally {
      fs.closeSync(fd);
    }
    if (kind === "directory") {
      this.copyDirectory("", true);
      this.pruneEscapingLinks();
    }
    return {
      source: displayName(this.shownRoot),
      kind,
      files: this.files,
      directories: this.directories,
      symlinks: this.symlinks,
      bytes: this.bytes,
      skipped: this.skipped.items,
      stripped: this.stripped.items,
      note: this.note(),
      ...(this.secrets.empty ? {} : { secret_value_files: this.secretFiles }),
    };
  }

  /** Opens the exported file or directory itself and learns its real location under /workspace. */
  private openRoot(kind: "file" | "directory"): number {
    let fd: number;
    try {
      fd = fs.openSync(bytes(this.shownRoot), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | (kind === "directory" ? O_DIRECTORY : 0));
    } catch (err) {
      if (changed(err)) throw this.rootChanged();
      throw err;
    }
    const real = fdPath(fd);
    const st = fs.fstatSync(fd);
    if (!within(fs.realpathSync(ROOT), real)) {
      fs.closeSync(fd);
      throw new AgentFailure("path_outside_workspace", `${this.requested} leads outside ${ROOT} through a symbolic link`);
    }
    if (kind === "file" ? !st.isFile() : !st.isDirectory()) {
      fs.closeSync(fd);
      throw this.rootChanged();
    }
    this.realRoot = real;
    return fd;
  }

  private rootChanged(): AgentFailure {
    return new AgentFailure("not_found", `${this.requested} was removed or replaced while it was being exported`);
  }

  private skip(shown: string, reason: string): void {
    this.skipped.push({ path: displayName(shown), reason });
  }

  private vanish(shown: string): void {
    this.vanished++;
    this.skip(shown, "changed or removed while it was being exported; not exported");
  }

  /**
   * Copies the directory at `rel` (relative to the root, "" for the root itself). Its entries
   * are looked at through its open descriptor (`/proc/self/fd/N/name`), so a directory above
   * them swapped for a symlink meanwhile cannot redirect the copy; subdirectories are recursed
   * into after it is closed, so at most one directory is open at a time.
   */
  private copyDirectory(rel: string, isRoot: boolean): void {
    const shown = this.shownRoot + rel;
    const out = this.outRoot + rel;
    let fd: number;
    try {
      fd = fs.openSync(bytes(this.realRoot + rel), O_RDONLY | O_NOFOLLOW | O_DIRECTORY | O_NONBLOCK);
    } catch (err) {
      if (!changed(err)) throw err;
      if (isRoot) throw this.rootChanged();
      return this.vanish(shown);
    }
    const subdirs: string[] = [];
    let st: fs.Stats;
    try {
      if (!within(this.realRoot, fdPath(fd))) {
        if (isRoot) throw this.rootChanged();
        return this.vanish(shown);
      }
      const here = `/proc/self/fd/${fd}`;
      const names = fs.readdirSync(here, { encoding: "latin1" });
      // Taken after the listing: a directory removed before it was read lists as empty, and
      // is recognised by having no links left.
      st = fs.fstatSync(fd);
      if (st.nlink === 0) {
        if (isRoot) throw this.rootChanged();
        return this.vanish(shown);
      }
      fs.mkdirSync(bytes(out), { mode: 0o700 });
      this.directories++;
      for (const name of names) {
        const childRel = `${rel}/${name}`;
        const at = `${here}/${name}`;
        let cs: fs.Stats;
        try {
          cs = fs.lstatSync(bytes(at));
        } catch (err) {
          if (!changed(err)) throw err;
          this.vanish(shown + `/${name}`);
          continue;
        }
        if (cs.isDirectory()) subdirs.push(childRel);
        else if (cs.isFile()) this.copyFileAt(at, childRel);
        else if (cs.isSymbolicLink()) this.copyLink(at, childRel);
        else this.skip(this.shownRoot + childRel, `${cs.isFIFO() ? "FIFO" : cs.isSocket() ? "socket" : "device node"} not exported`);
      }
    } finally {
      fs.closeSync(fd);
    }
    for (const sub of subdirs) this.copyDirectory(sub, false);
    const mode = st.mode & 0o7777;
    if (mode & 0o6000) this.stripped.push({ path: displayName(shown), reason: `${privilegeBits(mode)} removed (mode ${octal(mode)} exported as ${octal(mode & 0o1777)})` });
    fs.chmodSync(bytes(out), mode & 0o1777);
    fs.utimesSync(bytes(out), st.atime, st.mtime);
  }

  private copyFileAt(at: string, rel: string): void {
    let fd: number;
    try {
      fd = fs.openSync(bytes(at), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
    } catch (err) {
      if (!changed(err)) throw err;
      return this.vanish(this.shownRoot + rel);
    }
    try {
      this.copyFile(fd, this.realRoot + rel, this.outRoot + rel, this.shownRoot + rel);
    } catch (err) {
      if (!(err instanceof ChangedError)) throw err;
      this.vanish(this.shownRoot + rel);
    } finally {
      fs.closeSync(fd);
    }
  }

  /**
   * Copies an open file into a new output file made with mode 0600 and given its final mode
   * only once written: permission bits, never setuid/setgid/sticky. No extended attribute is
   * read or written. At most the size the file had when opened is copied, so a file the guest
   * keeps appending to cannot fill the host's disk.
   */
  private copyFile(fd: number, real: string, out: string, shown: string): void {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new ChangedError();
    const outFd = fs.openSync(bytes(out), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    let copied = 0;
    const scan = new SecretScan(this.secrets);
    if (this.secrets.occursIn(Buffer.from(shown.slice(shown.lastIndexOf("/") + 1), "latin1"))) scan.found = true;
    try {
      const buf = Buffer.allocUnsafe(Math.min(COPY_CHUNK, Math.max(st.size, 1)));
      while (copied < st.size) {
        const n = fs.readSync(fd, buf, 0, Math.min(buf.length, st.size - copied), copied);
        if (n === 0) break;
        scan.push(buf.subarray(0, n));
        let written = 0;
        while (written < n) written += fs.writeSync(outFd, buf, written, n - written);
        copied += n;
      }
      const mode = st.mode & 0o7777;
      fs.fchmodSync(outFd, mode & 0o777);
      fs.futimesSync(outFd, st.atime, st.mtime);
      const removed: string[] = [];
      if (mode & 0o6000) removed.push(`${privilegeBits(mode)} removed (mode ${octal(mode)} exported as ${octal(mode & 0o777)})`);
      if (this.capabilities?.has(real)) removed.push("file capability (security.capability) not copied");
      if (removed.length) this.stripped.push({ path: displayName(shown), reason: removed.join("; ") });
    } finally {
      fs.closeSync(outFd);
    }
    this.files++;
    this.bytes += copied;
    if (scan.found) {
      this.secretFiles.count++;
      if (this.secretFiles.paths.length < 20) this.secretFiles.paths.push(displayName(shown));
    }
  }

  /**
   * Copies a link's text as it is, never following it. Every link is written, even one with an
   * absolute target, so that all are judged on the same copy (`pruneEscapingLinks`): a link
   * through an escaping link escapes too, whichever kind it is.
   */
  private copyLink(at: string, rel: string): void {
    let target: string;
    try {
      target = fs.readlinkSync(bytes(at), { encoding: "latin1" });
    } catch (err) {
      if (!changed(err)) throw err;
      return this.vanish(this.shownRoot + rel);
    }
    fs.symlinkSync(bytes(target), bytes(this.outRoot + rel));
    this.symlinks++;
    this.links.push({ out: this.outRoot + rel, shown: this.shownRoot + rel, target });
  }

  /**
   * Removes every link of the finished copy that leads outside it. All links are judged on the
   * complete copy before any is removed; then the survivors are judged again, until nothing
   * changes (a link that traverses an escaping link escapes itself, so the second round
   * normally finds nothing).
   */
  private pruneEscapingLinks(): void {
    let pending = this.links;
    for (;;) {
      const verdicts = pending.map((link) => ({ link, verdict: whereLinkLeads(link.out, this.outRoot) }));
      const outside = verdicts.filter((v) => v.verdict !== "inside");
      if (outside.length === 0) return;
      for (const { link, verdict } of outside) {
        fs.unlinkSync(bytes(link.out));
        this.symlinks--;
        const target = displayName(link.target);
        this.skip(
          link.shown,
          verdict === "loop" ? `symlink to ${target} is a loop (more than ${MAX_LINK_HOPS} links deep); not exported` : `symlink to ${target} leads outside the exported tree${verdict === "outside-via-link" ? " (through another link)" : ""}`,
        );
      }
      pending = verdicts.filter((v) => v.verdict === "inside").map((v) => v.link);
    }
  }

  private note(): string | null {
    const parts: string[] = [];
    if (this.vanished) {
      parts.push(`${this.vanished} ${this.vanished === 1 ? "entry" : "entries"} changed or vanished while the export ran (the workspace was being modified), so this export is partial: it holds each entry as it was when copied.`);
    }
    if (this.skipped.total > this.skipped.items.length) parts.push(`${this.skipped.total - this.skipped.items.length} more skipped entries are not listed.`);
    if (this.stripped.total > this.stripped.items.length) parts.push(`${this.stripped.total - this.stripped.items.length} more stripped entries are not listed.`);
    return parts.length ? parts.join(" ") : null;
  }
}

/**
 * Where the link at `link` (a path in the copy, below `root`) leads, resolved lexically inside
 * the copy the way the kernel would resolve it there: links met on the way are followed (their
 * targets relative to their own directory), missing names are taken as plain names. Any step
 * above `root`, or an absolute target anywhere on the way, is outside; more than
 * MAX_LINK_HOPS links is a loop.
 */
export function whereLinkLeads(link: string, root: string): "inside" | "outside" | "outside-via-link" | "loop" {
  let hops = 0;
  const first = fs.readlinkSync(bytes(link), { encoding: "latin1" });
  if (first.startsWith("/")) return "outside";
  const pending = first.split("/");
  let current = path.dirname(link);
  while (pending.length > 0) {
    const name = pending.shift()!;
    if (name === "" || name === ".") continue;
    if (name === "..") {
      if (current === root) return hops > 0 ? "outside-via-link" : "outside";
      current = path.dirname(current);
      continue;
    }
    const next = `${current}/${name}`;
    let st: fs.Stats | null = null;
    try {
      st = fs.lstatSync(bytes(next));
    } catch {
      st = null;
    }
    if (st?.isSymbolicLink()) {
      if (++hops > MAX_LINK_HOPS) return "loop";
      const target = fs.readlinkSync(bytes(next), { encoding: "latin1" });
      if (target.startsWith("/")) return "outside-via-link";
      pending.unshift(...target.split("/"));
      continue;
    }
    current = next;
  }
  return "inside";
}

/** Where an open descriptor's object is now, as this process sees the filesystem (latin1). */
function fdPath(fd: number): string {
  return fs.readlinkSync(`/proc/self/fd/${fd}`, { encoding: "latin1" });
}

function privilegeBits(mode: number): string {
  if ((mode & 0o6000) === 0o6000) return "setuid and setgid bits";
  return mode & 0o4000 ? "setuid bit" : "setgid bit";
}

function octal(mode: number): string {
  return mode.toString(8).padStart(4, "0");
}

/**
 * Which files under `root` (a real path, latin1) carry a file capability, by asking the host's
 * `getcap` (libcap2-bin, seen read-only in the utility sandbox): Node cannot read extended
 * attributes. Only for reporting: the copy never carries any extended attribute whatever this
 * finds. Null when getcap is missing or fails. getcap prints `PATH CAPS` (older versions
 * `PATH = CAPS`); every prefix of a line that ends before something shaped like a capability
 * is taken as a candidate path, so names with spaces are found too.
 */
function filesWithCapabilities(root: string, recursive = true): Set<string> | null {
  const r = spawnSync("getcap", [...(recursive ? ["-r"] : []), Buffer.from(root, "latin1").toString("utf8")], { maxBuffer: 16 * 1024 * 1024, timeout: 300_000 });
  if (r.error || r.status !== 0 || !r.stdout) return null;
  const found = new Set<string>();
  for (const line of r.stdout.toString("latin1").split("\n")) {
    for (let i = line.indexOf(" "); i > 0; i = line.indexOf(" ", i + 1)) {
      if (/^(= )?(cap_|=|all)/.test(line.slice(i + 1))) found.add(line.slice(0, i));
    }
  }
  return found;
}
