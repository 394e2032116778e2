/**
 * Content identity and disk usage of one layer directory, in one streaming walk. Reads only;
 * never follows a symlink (imported layers are untrusted trees) and never holds more than one
 * read buffer of file content in memory.
 */
import fs from "node:fs/promises";
import { constants as fsConstants } from "node:fs";
import type { Stats } from "node:fs";
import { createHash } from "node:crypto";

export interface LayerScan {
  /** `sha256:<hex>` over the sorted walk; see `scanLayer` for what it covers. */
  digest: string;
  /** Disk usage (allocated blocks, hard links counted once), like `du -s --bytes` of blocks. */
  sizeBytes: number;
  entries: number;
}

/**
 * Bumped whenever the record format below changes, so digests from two formats never compare
 * equal by accident.
 */
const DIGEST_FORMAT = "pyro-layer-digest-v1\n";
const READ_CHUNK = 1 << 20;
const SLASH = Buffer.from("/");

/**
 * Hashes every entry as (relative path, type, mode, uid, gid, size, content) in a depth-first
 * walk with children sorted by their raw name bytes, so the digest is independent of readdir
 * order and of non-UTF-8 names. Content is the sha256 of a regular file's bytes, the target of
 * a symlink, or `major:minor` of a device node (overlay whiteouts are 0:0 character devices,
 * so deleting a file in a derived layer changes its digest). Deliberately left out: mtimes and
 * directory sizes (filesystem artefacts, not content) and extended attributes (Node has no
 * xattr API; overlay opaque-dir markers are therefore not part of the identity).
 */
export async function scanLayer(root: string): Promise<LayerScan> {
  const hash = createHash("sha256");
  hash.update(DIGEST_FORMAT);
  const seenInodes = new Set<string>();
  const buffer = Buffer.allocUnsafe(READ_CHUNK);
  let sizeBytes = 0;
  let entries = 0;

  const visit = async (absolute: Buffer, relative: Buffer): Promise<void> => {
    const st = await fs.lstat(absolute);
    entries += 1;
    const inode = `${st.dev}:${st.ino}`;
    if (!seenInodes.has(inode)) {
      seenInodes.add(inode);
      sizeBytes += st.blocks * 512;
    }
    const { type, size, content } = await describe(absolute, st, buffer);
    hash.update(relative);
    hash.update(`\0${type}\0${(st.mode & 0o7777).toString(8)}\0${st.uid}\0${st.gid}\0${size}\0${content}\n`);
    if (type !== "d") return;
    const names = (await fs.readdir(absolute, { encoding: "buffer" })).sort(Buffer.compare);
    for (const name of names) {
      const childAbsolute = Buffer.concat([absolute, SLASH, name]);
      const childRelative = relative.length === 1 && relative[0] === 0x2e ? name : Buffer.concat([relative, SLASH, name]);
      await visit(childAbsolute, childRelative);
    }
  };

  await visit(Buffer.from(root), Buffer.from("."));
  return { digest: `sha256:${hash.digest("hex")}`, sizeBytes, entries };
}

/** Disk usage only, for prune's accounting: the same walk without reading content. */
export async function diskUsage(root: string): Promise<number> {
  const seenInodes = new Set<string>();
  let total = 0;
  const visit = async (absolute: Buffer): Promise<void> => {
    let st: Stats;
    try {
      st = await fs.lstat(absolute);
    } catch {
      return;
    }
    const inode = `${st.dev}:${st.ino}`;
    if (!seenInodes.has(inode)) {
      seenInodes.add(inode);
      total += st.blocks * 512;
    }
    if (!st.isDirectory()) return;
    let names: Buffer[];
    try {
      names = await fs.readdir(absolute, { encoding: "buffer" });
    } catch {
      return;
    }
    for (const name of names) await visit(Buffer.concat([absolute, SLASH, name]));
  };
  await visit(Buffer.from(root));
  return total;
}

async function describe(absolute: Buffer, st: Stats, buffer: Buffer): Promise<{ type: string; size: number; content: string }> {
  if (st.isFile()) return { type: "f", size: st.size, content: await hashFile(absolute, st, buffer) };
  if (st.isDirectory()) return { type: "d", size: 0, content: "" };
  if (st.isSymbolicLink()) {
    const target = await fs.readlink(absolute, { encoding: "buffer" });
    return { type: "l", size: target.length, content: createHash("sha256").update(target).digest("hex") };
  }
  if (st.isCharacterDevice()) return { type: "c", size: 0, content: deviceNumbers(st.rdev) };
  if (st.isBlockDevice()) return { type: "b", size: 0, content: deviceNumbers(st.rdev) };
  if (st.isFIFO()) return { type: "p", size: 0, content: "" };
  return { type: "s", size: 0, content: "" };
}

/** Linux's `dev_t` encoding (glibc `major()`/`minor()`), so whiteouts read as `0:0`. */
function deviceNumbers(rdev: number): string {
  const value = BigInt(rdev);
  const major = ((value >> 8n) & 0xfffn) | ((value >> 32n) & 0xfffff000n);
  const minor = (value & 0xffn) | ((value >> 12n) & 0xffffff00n);
  return `${major}:${minor}`;
}

/**
 * O_NOFOLLOW refuses a symlink swapped in after the lstat; O_NONBLOCK keeps a FIFO swapped in
 * from hanging the walk. The fstat check makes sure the bytes hashed are the file lstat saw.
 */
async function hashFile(absolute: Buffer, st: Stats, buffer: Buffer): Promise<string> {
  const handle = await fs.open(absolute, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
  try {
    const opened = await handle.stat();
    if (!opened.isFile() || opened.ino !== st.ino || opened.dev !== st.dev) {
      throw new Error(`${absolute.toString()} changed while it was being hashed`);
    }
    const hash = createHash("sha256");
    while (true) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
    }
    return hash.digest("hex");
  } finally {
    await handle.close();
  }
}
