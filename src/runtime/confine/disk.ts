/**
 * A workspace's disk limit, host side. Two mechanisms, one per kind of host:
 *
 * - `kernel` (pyro runs as root, with loop devices): /workspace is its own ext4 filesystem of
 *   exactly disk_mib, in a sparse image file beside the workspace directory, loop-mounted on it.
 *   A write past the limit fails with ENOSPC inside the sandbox, whatever wrote it; the image
 *   never grows past disk_mib, and deleted files give their blocks back to the host (`discard`).
 * - `watched` (an ordinary user: no loop mounts, no quotas, no FUSE): pyro measures /workspace
 *   with a bounded `du` in a utility sandbox and refuses writes through pyro once over. Nothing
 *   stops a process inside from writing past it between two measurements.
 *
 * The mount lives in the host's mount table (utility sandboxes, the namespace sandbox and the VM
 * backend's virtiofsd all bind the workspace directory, so all of them see it). It is made only
 * after the workspace's record is on disk, so a crash can never leave a mount no record names;
 * `releaseWorkspaceDisk` is called before a workspace directory is removed. Never opens a path
 * inside a workspace: only the image file, the mount point and the filesystem's statistics.
 */
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { findExecutable, systemPath } from "../../shared/executables.js";
import { PyroError } from "../../shared/errors.js";
import { writeFileAtomic } from "../../shared/atomic.js";
import { pidAlive } from "../../shared/process.js";
import { runUtility } from "./utility.js";

const run = promisify(execFile);

export type DiskEnforcement = "kernel" | "watched" | "none";

/** The image of a `kernel` workspace, beside (never inside) the directory it is mounted on. */
export const DISK_IMAGE = "workspace.ext4";

/**
 * Mount options: no device nodes or setuid files can take effect from the image (the sandbox
 * forbids both already; this holds even for a host process that wanders in), `discard` so a
 * deleted file's blocks are punched out of the sparse image at once, and `noinit_itable`: the
 * image's inode tables are holes that read as zeros, so the kernel's background pass writing
 * zeros over them (megabytes, competing with every fsync on the disk) is work for nothing.
 */
const MOUNT_OPTIONS = "loop,nosuid,nodev,noatime,discard,noinit_itable";

const MIB = 1024 * 1024;

/** How long a watched measurement may take before pyro gives up on it (and says so). */
export const MEASURE_TIMEOUT_SECONDS = 10;

function tool(name: string): string | null {
  return findExecutable(name);
}

/**
 * Why this host cannot give a workspace a kernel-enforced disk, or null when it can: only root
 * may loop-mount a filesystem (ext4 cannot be mounted in a user namespace), and it needs the
 * tools and a loop device controller.
 */
export function kernelDiskBlocker(): string | null {
  if (process.getuid?.() !== 0) return "pyro runs as an ordinary user, who cannot mount a filesystem of its own size (no loop mounts, no quotas, no FUSE)";
  for (const t of ["mkfs.ext4", "mount", "umount"]) if (!tool(t)) return `${t} is not installed`;
  if (!fs.existsSync("/dev/loop-control")) return "this host has no loop devices (/dev/loop-control)";
  return null;
}

/** Mount points from /proc/self/mountinfo, with the kernel's octal escapes undone. */
function mountPoints(): Set<string> {
  let text = "";
  try {
    text = fs.readFileSync("/proc/self/mountinfo", "utf8");
  } catch {
    return new Set();
  }
  const out = new Set<string>();
  for (const line of text.split("\n")) {
    const field = line.split(" ")[4];
    if (field) out.add(field.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))));
  }
  return out;
}

export function isMounted(mountPoint: string): boolean {
  return mountPoints().has(path.resolve(mountPoint));
}

async function exec(argv: string[], what: string): Promise<void> {
  try {
    await run(argv[0]!, argv.slice(1), { env: { ...process.env, PATH: systemPath() }, timeout: 60_000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new PyroError("internal_error", `${what} failed: ${(e.stderr || e.message).trim().slice(-400)}`);
  }
}

/**
 * The mkfs.ext4 command for an image of `mib` MiB. The journal is capped at 16 MiB, so a large
 * limit costs the host little until used, and is not zeroed (`lazy_journal_init`: a fresh sparse
 * file reads as zeros already, and 16 MiB of written zeros would sit in the host's writeback
 * queue ahead of the next fsync); no blocks are reserved for root (guest root is not root here,
 * and the limit is the whole filesystem).
 */
function mkfsArgv(image: string, mib: number): string[] {
  const journal = mib >= 1024 ? ["-J", "size=16"] : [];
  return [tool("mkfs.ext4")!, "-q", "-F", "-m", "0", "-L", "pyro-workspace", ...journal, "-E", "nodiscard,lazy_itable_init=1,lazy_journal_init=1", image];
}

/** A fresh filesystem as the parts of its image that hold data: everything else is a hole. */
interface DiskTemplate {
  size: number;
  extents: Array<{ offset: number; data: Buffer }>;
}

/** Templates read by this process, by file. */
const templates = new Map<string, DiskTemplate>();

/**
 * Prints the data extents of a sparse file as "offset length" lines (SEEK_DATA, SEEK_HOLE):
 * what mkfs wrote, without reading the holes of an image that may be gigabytes large.
 */
const EXTENTS_PERL = 'open(my $f, "<", $ARGV[0]) or die "$!\\n"; my $o = 0; while (defined(my $d = sysseek($f, $o, 3))) { my $h = sysseek($f, $d, 4); print 0 + $d, " ", $h - $d, "\\n"; $o = $h; }';

/**
 * The template of a fresh `mib` MiB filesystem, made once per size and mkfs (its command, the
 * binary and its configuration file: an upgrade makes a new one) in `dir`: mkfs.ext4 on a
 * scratch image, then only its data extents kept, in one file (a JSON line, then the bytes)
 * written whole and renamed into place, so a reader never sees half of one and two makers
 * cannot mix theirs.
 */
async function diskTemplate(dir: string, mib: number): Promise<DiskTemplate> {
  const stamp = (file: string) => {
    try {
      const st = fs.statSync(file);
      return `${st.size}:${st.mtimeMs}`;
    } catch {
      return "-";
    }
  };
  const tag = createHash("sha256")
    .update(JSON.stringify([mkfsArgv("IMAGE", mib), stamp(tool("mkfs.ext4")!), stamp("/etc/mke2fs.conf")]))
    .digest("hex")
    .slice(0, 16);
  const file = path.join(dir, `${mib}-${tag}.template`);
  const cached = templates.get(file);
  if (cached) return cached;
  let raw: Buffer | null = await fsp.readFile(file).catch(() => null);
  if (raw === null) {
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    // What a maker killed midway left: its scratch image and its unrenamed template.
    for (const name of await fsp.readdir(dir)) {
      const owner = /^\.scratch-(\d+)-/.exec(name) ?? /\.(\d+)\.[0-9a-f]{8}\.tmp$/.exec(name);
      if (owner && !pidAlive(Number(owner[1]))) await fsp.rm(path.join(dir, name), { force: true });
    }
    const scratch = path.join(dir, `.scratch-${process.pid}-${randomBytes(4).toString("hex")}`);
    try {
      const fh = await fsp.open(`${scratch}.ext4`, "wx", 0o600);
      try {
        await fh.truncate(mib * MIB);
      } finally {
        await fh.close();
      }
      await exec(mkfsArgv(`${scratch}.ext4`, mib), "making the workspace's filesystem");
      const { stdout } = await run(tool("perl") ?? "perl", ["-e", EXTENTS_PERL, `${scratch}.ext4`], { env: { ...process.env, PATH: systemPath() }, maxBuffer: 16 << 20 });
      const image = await fsp.open(`${scratch}.ext4`, "r");
      const parts: Buffer[] = [];
      const extents: Array<[number, number]> = [];
      try {
        for (const line of stdout.trim().split("\n").filter(Boolean)) {
          const [offset, length] = line.split(" ").map(Number) as [number, number];
          const data = Buffer.alloc(length);
          const { bytesRead } = await image.read(data, 0, length, offset);
          if (bytesRead !== length) throw new Error(`short read of the template at ${offset}`);
          extents.push([offset, length]);
          parts.push(data);
        }
      } finally {
        await image.close();
      }
      raw = Buffer.concat([Buffer.from(`${JSON.stringify({ size: mib * MIB, extents })}\n`), ...parts]);
      await writeFileAtomic(file, raw);
    } finally {
      await fsp.rm(`${scratch}.ext4`, { force: true });
    }
  }
  const newline = raw.indexOf(0x0a);
  const header = JSON.parse(raw.subarray(0, newline).toString("utf8")) as { size: number; extents: Array<[number, number]> };
  let at = newline + 1;
  const template: DiskTemplate = {
    size: header.size,
    extents: header.extents.map(([offset, length]) => {
      const data = raw.subarray(at, at + length);
      at += length;
      return { offset, data };
    }),
  };
  if (template.size !== mib * MIB || at !== raw.length) throw new Error(`the disk template ${file} is damaged`);
  templates.set(file, template);
  return template;
}

/**
 * Makes a sparse ext4 image of `mib` MiB and mounts it on `mountPoint` (an empty directory).
 * The image is a copy of the size's template (`diskTemplate`, in `templatesDir`): a few hundred
 * kilobytes written where mkfs wrote them, with no exec and none of mkfs's work on the way to
 * the sandbox. Every workspace's filesystem then has the same UUID, which nothing reads (pyro
 * mounts each image by path, never by UUID). lost+found is removed: /workspace starts empty,
 * as on a workspace without a limit.
 */
export async function makeWorkspaceDisk(image: string, mountPoint: string, mib: number, templatesDir: string): Promise<void> {
  let template: DiskTemplate | null = null;
  try {
    template = await diskTemplate(templatesDir, mib);
  } catch {
    // Made the plain way below: a template is only a faster route to the same filesystem.
  }
  const fh = await fsp.open(image, "wx", 0o600);
  try {
    await fh.truncate(mib * MIB);
    if (template) for (const e of template.extents) await fh.write(e.data, 0, e.data.length, e.offset);
  } finally {
    await fh.close();
  }
  if (!template) await exec(mkfsArgv(image, mib), "making the workspace's filesystem");
  await mountWorkspaceDisk(image, mountPoint);
  await fsp.rmdir(path.join(mountPoint, "lost+found")).catch(() => undefined);
}

/**
 * Mounts a workspace's image on its directory unless it is mounted already (after a host
 * reboot, the first use mounts it again). A filesystem the last boot left unclean is checked
 * and repaired (`e2fsck -p`, the journal replayed) before a second attempt.
 */
export async function mountWorkspaceDisk(image: string, mountPoint: string): Promise<void> {
  if (isMounted(mountPoint)) return;
  if (!fs.existsSync(image)) throw new PyroError("internal_error", `the workspace's disk image ${image} is missing`, { hint: "Delete the workspace; its files cannot be found." });
  const mount = [tool("mount")!, "-t", "ext4", "-o", MOUNT_OPTIONS, image, mountPoint];
  try {
    await exec(mount, "mounting the workspace's filesystem");
  } catch (err) {
    const fsck = tool("e2fsck");
    if (!fsck) throw err;
    await run(fsck, ["-p", image], { env: { ...process.env, PATH: systemPath() }, timeout: 300_000 }).catch(() => undefined);
    await exec(mount, "mounting the workspace's filesystem");
  }
}

/**
 * Unmounts a workspace's filesystem if it is mounted (before its directory is removed, so the
 * removal can never walk into it or leave it mounted). A mount still busy is detached lazily: it
 * leaves the mount table at once and the loop device goes when the last user closes it.
 */
export async function releaseWorkspaceDisk(mountPoint: string): Promise<void> {
  if (!isMounted(mountPoint)) return;
  const umount = tool("umount");
  if (!umount) throw new PyroError("internal_error", `cannot unmount ${mountPoint}: umount is not installed`);
  try {
    await exec([umount, mountPoint], "unmounting the workspace's filesystem");
  } catch {
    await exec([umount, "-l", mountPoint], "unmounting the workspace's filesystem");
  }
  if (isMounted(mountPoint)) throw new PyroError("internal_error", `${mountPoint} is still mounted`);
}

export interface DiskUsage {
  used_bytes: number;
  /** What the filesystem can still take (kernel), or the limit less the measured use (watched). */
  free_bytes: number;
}

/** Use of a mounted kernel disk, from the filesystem's own counts (no walk); null if not mounted. */
export function kernelDiskUsage(mountPoint: string): DiskUsage | null {
  if (!isMounted(mountPoint)) return null;
  const s = fs.statfsSync(mountPoint);
  return { used_bytes: (s.blocks - s.bfree) * s.bsize, free_bytes: s.bavail * s.bsize };
}

/**
 * Measures the space /workspace takes (allocated blocks, hard links once, as `du` counts them) in
 * a utility sandbox, so the walk never follows a workspace path on the host. Bounded: a walk that
 * does not finish within MEASURE_TIMEOUT_SECONDS gives null (not measured), never a guess.
 */
export async function measureTree(workspaceDir: string): Promise<number | null> {
  const r = await runUtility(
    [{ source: workspaceDir, target: "/workspace", readOnly: true }],
    ["timeout", "-s", "KILL", String(MEASURE_TIMEOUT_SECONDS), "du", "-s", "-x", "-B1", "/workspace"],
    { timeoutMs: (MEASURE_TIMEOUT_SECONDS + 20) * 1000 },
  );
  // du exits 1 when it could not read something (an unreadable directory); the total still counts the rest.
  const bytes = Number(/^(\d+)\s/.exec(r.stdout)?.[1]);
  return (r.code === 0 || r.code === 1) && Number.isSafeInteger(bytes) ? bytes : null;
}
