/**
 * The content-addressed blob store for registry images, and the records of pulled images.
 * Blobs (manifests, indexes, configs, compressed layers) are stored once by digest and shared
 * by every image that names them; a blob is only ever renamed in whole, after its sha256 was
 * verified, so anything under `blobs/sha256/` is exactly what its name says.
 *
 * Layout under `<home>/environments/` (beside the layer store of store.ts):
 *
 *   blobs/sha256/<hex>          one verified blob, mode 0600, never rewritten
 *   blobs/.pull-<pid>-<rand>/   staging of one pull or image import in progress (same file system, so the
 *                               final rename is atomic); a dead process's is removed by the
 *                               next pull
 *   images/<hex>.json           one pulled image, named by the sha256 of its canonical
 *                               reference (the reference itself is inside), written atomically
 *                               after every blob it lists is in place
 *
 * Committing blobs and writing a record happen under the environment store's lock, the one
 * prune takes too, so a prune never removes a blob between its commit and the record naming it.
 * Downloads themselves run without the lock: blobs are content-addressed and a rename of the
 * same content over itself changes nothing.
 */
import { createHash } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { fsyncDirectory, writeJsonAtomic } from "../../shared/atomic.js";
import { homeLayout } from "../../shared/home.js";
import { pidAlive } from "../../shared/process.js";
import { withStoreLock } from "../store-lock.js";
import { isSha256Digest } from "./reference.js";
import type { Descriptor, Platform } from "./manifest.js";

/** What pyro knows of a pulled image; everything it names is in the blob store. */
export interface ImageRecord {
  /** The canonical reference it was pulled as (`docker.io/library/node:22`). */
  reference: string;
  registry: string;
  repository: string;
  tag: string | null;
  /** The linux/amd64 image manifest's digest: the image's identity. */
  digest: string;
  manifestMediaType: string;
  /** The index or manifest list the reference resolved through, if any. */
  indexDigest: string | null;
  platform: Platform;
  config: Descriptor;
  /** Bottom layer first, as in the manifest. */
  layers: Descriptor[];
  /** Config plus layers, compressed, as stored. */
  sizeBytes: number;
  pulledAt: string;
}

const STAGING_PREFIX = ".pull-";
const RECORD_NAME = /^[0-9a-f]{64}\.json$/;

export class BlobStore {
  /** `<home>/environments`: the root the store lock is taken on. */
  readonly environmentsRoot: string;
  readonly blobsDir: string;
  readonly imagesDir: string;
  private readonly sha256Dir: string;

  constructor(home: string) {
    this.environmentsRoot = homeLayout(home).environments;
    this.blobsDir = path.join(this.environmentsRoot, "blobs");
    this.sha256Dir = path.join(this.blobsDir, "sha256");
    this.imagesDir = path.join(this.environmentsRoot, "images");
  }

  /** Where the blob with this digest lives (whether or not it is there). */
  blobPath(digest: string): string {
    if (!isSha256Digest(digest)) throw new Error(`not a sha256 digest: ${String(digest).slice(0, 80)}`);
    return path.join(this.sha256Dir, digest.slice("sha256:".length));
  }

  /** Whether a blob of this digest and size is stored. */
  async has(descriptor: Pick<Descriptor, "digest" | "size">): Promise<boolean> {
    try {
      const stats = await fs.lstat(this.blobPath(descriptor.digest));
      return stats.isFile() && stats.size === descriptor.size;
    } catch {
      return false;
    }
  }

  /** A fresh staging directory for one pull; files written there are committed by digest. */
  async openStaging(): Promise<Staging> {
    await fs.mkdir(this.sha256Dir, { recursive: true, mode: 0o700 });
    await this.removeDeadStaging();
    const dir = await fs.mkdtemp(path.join(this.blobsDir, `${STAGING_PREFIX}${process.pid}-`));
    return new Staging(this, dir);
  }

  /**
   * Moves verified staged blobs into the store and, when given, writes the image record, all
   * under the store lock. Blobs already present are left as they are (same digest, same bytes).
   */
  async commit(staging: Staging, record?: ImageRecord): Promise<void> {
    await withStoreLock(this.environmentsRoot, async () => {
      for (const [digest, file] of staging.verified) {
        const destination = this.blobPath(digest);
        if (await fileExists(destination)) continue;
        await fs.rename(file, destination);
      }
      await fsyncDirectory(this.sha256Dir);
      if (record) {
        await fs.mkdir(this.imagesDir, { recursive: true, mode: 0o755 });
        await writeJsonAtomic(this.recordPath(record.reference), record, 0o644);
      }
    });
  }

  /** The record of an image pulled under this canonical reference, if every blob it names is present. */
  async readImage(reference: string): Promise<ImageRecord | undefined> {
    let record: ImageRecord;
    try {
      record = JSON.parse(await fs.readFile(this.recordPath(reference), "utf8")) as ImageRecord;
    } catch {
      return undefined;
    }
    if (!isWellFormed(record) || record.reference !== reference) return undefined;
    if (!(await fileExists(this.blobPath(record.digest)))) return undefined;
    for (const descriptor of [record.config, ...record.layers]) if (!(await this.has(descriptor))) return undefined;
    return record;
  }

  /** Every well-formed image record, by reference. */
  async listImages(): Promise<ImageRecord[]> {
    let names: string[];
    try {
      names = await fs.readdir(this.imagesDir);
    } catch {
      return [];
    }
    const records: ImageRecord[] = [];
    for (const name of names.filter((n) => RECORD_NAME.test(n)).sort()) {
      try {
        const record = JSON.parse(await fs.readFile(path.join(this.imagesDir, name), "utf8")) as ImageRecord;
        if (isWellFormed(record)) records.push(record);
      } catch {
        // a foreign or damaged file is not an image
      }
    }
    return records.sort((a, b) => a.reference.localeCompare(b.reference));
  }

  /** Digests of every stored blob. */
  async blobDigests(): Promise<string[]> {
    try {
      return (await fs.readdir(this.sha256Dir)).filter((name) => /^[0-9a-f]{64}$/.test(name)).map((hex) => `sha256:${hex}`);
    } catch {
      return [];
    }
  }

  /** Forgets a pulled image (its blobs stay until nothing names them). Store lock held by the caller. */
  async removeImage(reference: string): Promise<void> {
    await fs.rm(this.recordPath(reference), { force: true });
  }

  /** Removes one blob; returns its size. Store lock held by the caller (env prune). */
  async removeBlob(digest: string): Promise<number> {
    const file = this.blobPath(digest);
    const size = await fs.lstat(file).then((stats) => stats.size, () => 0);
    await fs.rm(file, { force: true });
    return size;
  }

  private recordPath(reference: string): string {
    return path.join(this.imagesDir, `${createHash("sha256").update(reference).digest("hex")}.json`);
  }

  /** Staging directories of processes that are gone (a killed pull). */
  private async removeDeadStaging(): Promise<void> {
    for (const name of await fs.readdir(this.blobsDir).catch(() => [] as string[])) {
      const match = new RegExp(`^\\${STAGING_PREFIX}([0-9]+)-`).exec(name);
      if (match && !pidAlive(Number(match[1]))) await fs.rm(path.join(this.blobsDir, name), { recursive: true, force: true });
    }
  }
}

/** The scratch directory of one pull: where blobs are written, and which of them were verified. */
export class Staging {
  /** Digest → staged file, only for blobs whose digest and size were checked. */
  readonly verified = new Map<string, string>();

  constructor(
    private readonly store: BlobStore,
    readonly dir: string,
  ) {}

  /** The staging file for a blob (not yet created). */
  fileFor(digest: string): string {
    return path.join(this.dir, path.basename(this.store.blobPath(digest)));
  }

  /** Stages bytes already verified in memory (manifests, configs). */
  async addVerified(digest: string, bytes: Uint8Array): Promise<void> {
    const file = this.fileFor(digest);
    await fs.writeFile(file, bytes, { mode: 0o600, flag: "wx" });
    this.verified.set(digest, file);
  }

  markVerified(digest: string): void {
    this.verified.set(digest, this.fileFor(digest));
  }

  /** Forgets every staged blob: a pull that met tampered content keeps none of it. */
  async discardAll(): Promise<void> {
    this.verified.clear();
    await fs.rm(this.dir, { recursive: true, force: true });
  }

  async remove(): Promise<void> {
    await fs.rm(this.dir, { recursive: true, force: true });
  }
}

function isWellFormed(record: ImageRecord): boolean {
  const descriptorOk = (d: Descriptor | undefined) => typeof d === "object" && d !== null && isSha256Digest(d.digest) && Number.isSafeInteger(d.size) && d.size >= 0;
  return (
    typeof record === "object" &&
    record !== null &&
    typeof record.reference === "string" &&
    isSha256Digest(record.digest) &&
    descriptorOk(record.config) &&
    Array.isArray(record.layers) &&
    record.layers.length > 0 &&
    record.layers.every(descriptorOk)
  );
}

async function fileExists(file: string): Promise<boolean> {
  try {
    await fs.lstat(file);
    return true;
  } catch {
    return false;
  }
}
