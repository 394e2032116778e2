/**
 * Importing an image from a file instead of a registry, for offline use: a `docker save`
 * tarball (the legacy layout with `<id>/layer.tar` and `manifest.json`, or the newer one that
 * is an OCI layout plus `manifest.json`), an OCI image layout directory (`oci-layout`,
 * `index.json`, `blobs/sha256/<hex>`), or an OCI layout packed as a tar (`oci-archive:`).
 * The result is the same ImageRecord a pull gives, committed to the same blob store, so the
 * environment is installed exactly as a pulled one.
 *
 * What it guarantees: every blob's sha256 and size are verified while it is copied into
 * staging, and nothing is stored unless the whole image verified. Archive member names are
 * untrusted and never become host paths: a tar is read as a stream, each regular member copied
 * to a staging file named by its own computed digest, and small documents (`manifest.json`,
 * `index.json`, `oci-layout`) held in memory within the pull's manifest limit. In a layout
 * directory only `oci-layout`, `index.json` and `blobs/sha256/<hex>` are opened, the hex
 * validated first, symlinks refused at each of those path components.
 *
 * For docker save's legacy layout there is no registry manifest: an OCI manifest is made from
 * the config and the layer tars (uncompressed, so each layer's digest must equal the config's
 * diff_id) and stored as a blob; the image's digest is that manifest's digest.
 */
import { createHash } from "node:crypto";
import { constants as fsConstants, createReadStream } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { Parser } from "tar";
import type { ReadEntry } from "tar";
import { safeRelativeName } from "../../shared/archive.js";
import { PyroError } from "../../shared/errors.js";
import { BlobStore } from "./blobs.js";
import type { ImageRecord, Staging } from "./blobs.js";
import { parseImageConfig } from "./config.js";
import { DEFAULT_PULL_LIMITS, MEDIA_TYPES, SANDBOX_PLATFORM, checkImageLimits, invalid, parseJsonObject, parseManifestDocument, selectPlatform } from "./manifest.js";
import type { Descriptor, IndexEntry, Platform, PullLimits } from "./manifest.js";
import { DOCKER_HUB, formatImageReference, isSha256Digest, parseImageReference } from "./reference.js";
import type { ImageReference } from "./reference.js";

export interface ImageImportOptions {
  /** Overrides of DEFAULT_PULL_LIMITS: the same limits a pull is held to. */
  limits?: Partial<PullLimits>;
  /** One line per step (reading the archive, each layer verified). */
  onProgress?: (message: string) => void;
}

/** What an image file is: told apart by shape, never by file name. */
export type ImageSourceKind = "oci-layout" | "archive";

/** Archive documents read into memory; every other member is a blob or a layer. */
const DOCUMENTS = new Set(["manifest.json", "index.json", "oci-layout"]);
/**
 * Members of one archive: far above what any image tool writes (a docker save has a few per
 * layer), low enough that a tar of millions of empty files cannot fill staging and memory.
 */
const ARCHIVE_MAX_MEMBERS = 65_536;
/** Names shown in an "which image?" error. */
const NAMES_SHOWN = 20;
const OCI_REF_NAME = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME = "io.containerd.image.name";

/**
 * Imports the image at `sourcePath` as `reference` into the blob store of `home` and returns
 * its record. Throws `invalid_argument` (no such file, not an image file, several images and
 * none named `reference`), `archive_unsafe_entry`, and the `image_*` codes of a pull.
 */
export async function importImage(home: string, reference: string, sourcePath: string, options: ImageImportOptions = {}): Promise<ImageRecord> {
  const ref = parseImageReference(reference);
  const name = formatImageReference(ref);
  const limits: PullLimits = { ...DEFAULT_PULL_LIMITS, ...options.limits };
  const kind = await classifyImageSource(sourcePath);
  const progress = options.onProgress ?? (() => undefined);
  const store = new BlobStore(home);
  const staging = await store.openStaging();
  try {
    progress(kind === "oci-layout" ? `Reading the OCI layout ${sourcePath}.` : `Reading the archive ${sourcePath}.`);
    const source = kind === "oci-layout" ? await LayoutSource.open(sourcePath, staging, limits) : await ArchiveSource.read(sourcePath, staging, limits);
    const record = await resolveImage(source, staging, ref, name, limits, progress);
    await store.commit(staging, record);
    return record;
  } catch (err) {
    await staging.discardAll();
    // The manifest parsers speak of a registry; here the file is what to look at.
    if (err instanceof PyroError && err.code === "image_invalid") {
      throw new PyroError(err.code, err.message, { hint: INVALID_FILE_HINT, ...(err.details ? { details: err.details } : {}), cause: err });
    }
    throw err;
  } finally {
    await staging.remove();
  }
}

/** Whether `sourcePath` is an OCI layout directory or a (possibly gzipped) tar file. */
export async function classifyImageSource(sourcePath: string): Promise<ImageSourceKind> {
  let stats;
  try {
    stats = await fs.stat(sourcePath);
  } catch {
    throw new PyroError("invalid_argument", `image source ${sourcePath} does not exist`, { hint: IMAGE_SOURCE_HINT });
  }
  if (stats.isDirectory()) return "oci-layout";
  if (stats.isFile()) return "archive";
  throw new PyroError("invalid_argument", `image source ${sourcePath} is neither a directory nor a file`, { hint: IMAGE_SOURCE_HINT });
}

const INVALID_FILE_HINT =
  "The file is not a complete linux/amd64 image as docker save or an OCI layout writes it; export the image again (docker save, or skopeo copy … oci:DIR / oci-archive:FILE).";
const IMAGE_SOURCE_HINT = "Pass a `docker save` tarball, an OCI image layout directory, or an OCI layout tar (skopeo's oci-archive).";

/** Where the blobs and documents of one image file come from. */
interface ImageSource {
  /** Shown in messages. */
  readonly label: string;
  /** A small document at the root (`index.json`, `manifest.json`, `oci-layout`), if present. */
  document(name: string): Buffer | undefined;
  /** Stages the blob `descriptor` names, verified against its digest and size; returns its staged file. */
  blob(descriptor: Descriptor): Promise<string>;
  /** Docker save's legacy layout names members by path: the staged blob behind one, if any. */
  member(memberPath: string): Promise<{ digest: string; size: number } | undefined>;
}

/**
 * A tar (docker save, oci-archive), read once as a stream. Every regular member is copied to a
 * staging file named by the digest computed while copying; links between members (docker save
 * links a layer shared by two images) are remembered by name and resolved lexically.
 */
class ArchiveSource implements ImageSource {
  private readonly documents = new Map<string, Buffer>();
  private readonly members = new Map<string, { digest: string; size: number }>();
  private readonly links = new Map<string, string>();

  private constructor(
    readonly label: string,
    private readonly staging: Staging,
  ) {}

  static async read(file: string, staging: Staging, limits: PullLimits): Promise<ArchiveSource> {
    const source = new ArchiveSource(file, staging);
    await source.scan(limits);
    return source;
  }

  document(name: string): Buffer | undefined {
    return this.documents.get(name);
  }

  async member(memberPath: string): Promise<{ digest: string; size: number } | undefined> {
    let name = safeRelativeName(memberPath);
    if (name === null) throw unsafeMember(memberPath, "absolute path or '..' component");
    for (let hops = 0; hops < 8; hops += 1) {
      const found = this.members.get(name);
      if (found) return found;
      const target = this.links.get(name);
      if (target === undefined) return undefined;
      name = target;
    }
    return undefined;
  }

  async blob(descriptor: Descriptor): Promise<string> {
    const found = await this.member(`blobs/sha256/${descriptor.digest.slice("sha256:".length)}`);
    if (!found) throw missingBlob(this.label, descriptor);
    if (found.digest !== descriptor.digest) throw mismatch(this.label, descriptor, `its content hashes to ${found.digest}`);
    if (found.size !== descriptor.size) throw mismatch(this.label, descriptor, `it is ${found.size} bytes, not ${descriptor.size}`);
    this.staging.markVerified(descriptor.digest);
    return this.staging.fileFor(descriptor.digest);
  }

  private async scan(limits: PullLimits): Promise<void> {
    let total = 0;
    let counter = 0;
    const parser = new Parser({ strict: true });
    let failure: unknown;
    const pending: Promise<void>[] = [];
    parser.on("entry", (entry: ReadEntry) => {
      const done = this.takeEntry(entry, limits, counter++, (size) => {
        total += size;
        if (total > limits.imageBytes) throw tooLarge(this.label, `the archive holds more than ${limits.imageBytes} bytes`);
      }).catch((err: unknown) => {
        failure ??= err;
        entry.resume();
        parser.abort(err instanceof Error ? err : new Error(String(err)));
      });
      pending.push(done);
    });
    const sink = parser as unknown as NodeJS.WritableStream;
    try {
      // `docker save | gzip` is common: undone here by magic number, whatever the file is called.
      if (await isGzip(this.label)) await pipeline(createReadStream(this.label), createGunzip(), sink);
      else await pipeline(createReadStream(this.label), sink);
    } catch (err) {
      failure ??= err;
    }
    await Promise.allSettled(pending);
    if (failure instanceof PyroError) throw failure;
    if (failure !== undefined) {
      throw new PyroError("invalid_argument", `${this.label} is not a readable tar archive`, { hint: IMAGE_SOURCE_HINT, cause: failure });
    }
    if (this.documents.size === 0 && this.members.size === 0) {
      throw new PyroError("invalid_argument", `${this.label} contains no entries`, { hint: IMAGE_SOURCE_HINT });
    }
  }

  private async takeEntry(entry: ReadEntry, limits: PullLimits, counter: number, account: (size: number) => void): Promise<void> {
    if (counter >= ARCHIVE_MAX_MEMBERS) throw tooLarge(this.label, `it has more than ${ARCHIVE_MAX_MEMBERS} members`);
    const name = safeRelativeName(entry.path);
    if (name === null) throw unsafeMember(entry.path, "absolute path or '..' component");
    if (entry.type === "SymbolicLink" || entry.type === "Link") {
      // A hard link's target is an archive path; a symlink's is relative to its own directory.
      const target = entry.type === "Link" ? safeRelativeName(entry.linkpath ?? "") : safeRelativeName(path.posix.join(path.posix.dirname(name), entry.linkpath ?? ""));
      if (target === null || (entry.linkpath ?? "").startsWith("/")) throw unsafeMember(entry.path, `link target ${JSON.stringify((entry.linkpath ?? "").slice(0, 200))} leaves the archive`);
      this.links.set(name, target);
      entry.resume();
      return;
    }
    if (entry.type !== "File" && entry.type !== "OldFile" && entry.type !== "ContiguousFile") {
      // Directories and metadata records carry nothing an image needs.
      entry.resume();
      return;
    }
    const size = entry.size ?? 0;
    if (DOCUMENTS.has(name)) {
      if (size > limits.manifestBytes) throw tooLarge(this.label, `its ${name} is ${size} bytes, more than the limit of ${limits.manifestBytes}`);
      const chunks: Buffer[] = [];
      for await (const chunk of entry as AsyncIterable<Buffer>) chunks.push(chunk);
      this.documents.set(name, Buffer.concat(chunks));
      return;
    }
    if (size > limits.layerBytes) throw tooLarge(this.label, `member ${JSON.stringify(name.slice(0, 200))} is ${size} bytes, more than the layer limit of ${limits.layerBytes}`);
    account(size);
    const temporary = path.join(this.staging.dir, `member-${counter}`);
    const digest = await copyHashing(entry as unknown as AsyncIterable<Buffer>, temporary);
    const staged = this.staging.fileFor(digest);
    await fs.rename(temporary, staged);
    this.members.set(name, { digest, size });
  }
}

/**
 * An OCI image layout directory. Only three kinds of path are opened under it, each component
 * checked not to be a symlink, so a layout cannot make pyro read a file outside it.
 */
class LayoutSource implements ImageSource {
  private readonly documents = new Map<string, Buffer>();
  private readonly staged = new Set<string>();

  private constructor(
    readonly label: string,
    private readonly staging: Staging,
  ) {}

  static async open(dir: string, staging: Staging, limits: PullLimits): Promise<LayoutSource> {
    const source = new LayoutSource(dir, staging);
    for (const name of ["oci-layout", "index.json"]) {
      const bytes = await readNoFollow(path.join(dir, name), limits.manifestBytes, () => tooLarge(dir, `its ${name} is more than the limit of ${limits.manifestBytes} bytes`));
      if (bytes) source.documents.set(name, bytes);
    }
    return source;
  }

  document(name: string): Buffer | undefined {
    return this.documents.get(name);
  }

  async member(): Promise<undefined> {
    return undefined;
  }

  async blob(descriptor: Descriptor): Promise<string> {
    const target = this.staging.fileFor(descriptor.digest);
    if (this.staged.has(descriptor.digest)) return target;
    // The digest was validated by the descriptor parser; checked again before it names a path.
    if (!isSha256Digest(descriptor.digest)) throw invalid(this.label, "a descriptor's digest is not sha256");
    for (const dir of ["blobs", "blobs/sha256"]) {
      const stats = await fs.lstat(path.join(this.label, dir)).catch(() => undefined);
      if (!stats) throw missingBlob(this.label, descriptor);
      if (!stats.isDirectory()) throw invalid(this.label, `${dir} is not a directory (a symlink is refused)`);
    }
    const file = path.join(this.label, "blobs", "sha256", descriptor.digest.slice("sha256:".length));
    let handle;
    try {
      handle = await fs.open(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") throw missingBlob(this.label, descriptor);
      if ((err as NodeJS.ErrnoException).code === "ELOOP") throw invalid(this.label, `blob ${descriptor.digest} is a symlink, which is refused`);
      throw err;
    }
    try {
      const stats = await handle.stat();
      if (!stats.isFile()) throw invalid(this.label, `blob ${descriptor.digest} is not a regular file`);
      if (stats.size !== descriptor.size) throw mismatch(this.label, descriptor, `it is ${stats.size} bytes, not ${descriptor.size}`);
      const digest = await copyHashing(handle.createReadStream({ autoClose: false }) as AsyncIterable<Buffer>, target);
      if (digest !== descriptor.digest) throw mismatch(this.label, descriptor, `its content hashes to ${digest}`);
    } finally {
      await handle.close();
    }
    this.staged.add(descriptor.digest);
    this.staging.markVerified(descriptor.digest);
    return target;
  }
}

/** Picks the image in `source` and stages its manifest, config and layers; the record to commit. */
async function resolveImage(source: ImageSource, staging: Staging, ref: ImageReference, name: string, limits: PullLimits, progress: (message: string) => void): Promise<ImageRecord> {
  const index = source.document("index.json");
  const layout = source.document("oci-layout");
  const dockerManifest = source.document("manifest.json");
  let image: { digest: string; mediaType: string; indexDigest: string | null; platform: Platform; config: Descriptor; layers: Descriptor[] };
  if (index && layout) {
    checkLayoutVersion(source.label, layout);
    image = await resolveLayout(source, index, ref, name, limits);
  } else if (dockerManifest) {
    image = await resolveDockerSave(source, staging, dockerManifest, ref, name, limits);
  } else {
    throw invalid(
      source.label,
      index ? "it has an index.json but no oci-layout file" : "it has neither a manifest.json (docker save) nor an oci-layout and index.json (OCI image layout)",
    );
  }
  // A reference that pins a digest names exactly that image (or the index it came through).
  if (ref.digest !== null && image.digest !== ref.digest && image.indexDigest !== ref.digest) {
    throw new PyroError("invalid_argument", `${source.label} holds no image with the digest ${ref.digest} (it has ${image.digest})`, {
      hint: "Import it under a reference without a digest, or under the digest it has.",
      details: { digest: image.digest },
    });
  }
  progress(`${name}: ${image.layers.length} layers verified (${image.digest}).`);
  return {
    reference: name,
    registry: ref.registry,
    repository: ref.repository,
    tag: ref.tag,
    digest: image.digest,
    manifestMediaType: image.mediaType,
    indexDigest: image.indexDigest,
    platform: image.platform,
    config: image.config,
    layers: image.layers,
    sizeBytes: image.layers.reduce((sum, layer) => sum + layer.size, image.config.size),
    pulledAt: new Date().toISOString(),
  };
}

function checkLayoutVersion(label: string, bytes: Buffer): void {
  const doc = parseJsonObject(bytes, `the oci-layout file of ${label}`);
  if (doc.imageLayoutVersion !== "1.0.0") {
    throw invalid(`the oci-layout file of ${label}`, `imageLayoutVersion ${JSON.stringify(String(doc.imageLayoutVersion).slice(0, 40))} is not 1.0.0`);
  }
}

/** An OCI layout: index.json → (the named image's index → linux/amd64) → manifest → config and layers. */
async function resolveLayout(source: ImageSource, indexBytes: Buffer, ref: ImageReference, name: string, limits: PullLimits) {
  const what = `the index.json of ${source.label}`;
  const doc = parseManifestDocument(indexBytes, null, what);
  if (doc.kind !== "index") throw invalid(what, "it is not an image index");
  const raw = parseJsonObject(indexBytes, what).manifests as unknown[];
  const candidates = doc.manifests
    .map((entry, i) => ({ entry, names: annotatedNames(raw[i]), digest: entry.digest }))
    .filter(({ entry }) => isManifestType(entry.mediaType) || isIndexType(entry.mediaType));
  const chosen = chooseImage(
    source.label,
    ref,
    candidates,
    (pool) => (pool.every((c) => c.entry.platform !== null) ? candidates.find((c) => c.entry === selectPlatform(name, pool.map((p) => p.entry)))! : undefined),
  ).entry;

  // A manifest listed with its platform is checked here, so another platform is named as such.
  if (chosen.platform !== null && isManifestType(chosen.mediaType)) selectPlatform(name, [chosen]);
  let indexDigest: string | null = null;
  let entry: IndexEntry = chosen;
  if (isIndexType(chosen.mediaType)) {
    const nested = parseManifestDocument(await readSmallBlob(source, chosen, limits.manifestBytes), null, `the index ${chosen.digest} of ${source.label}`);
    if (nested.kind !== "index") throw invalid(source.label, `${chosen.digest} is said to be an index but is not one`);
    entry = selectPlatform(name, nested.manifests);
    indexDigest = chosen.digest;
  }
  const manifestWhat = `the manifest ${entry.digest} of ${source.label}`;
  const manifest = parseManifestDocument(await readSmallBlob(source, entry, limits.manifestBytes), null, manifestWhat);
  if (manifest.kind !== "manifest") throw invalid(manifestWhat, "it is an index, not an image manifest (nested indexes are not read)");
  checkImageLimits(name, manifest.config, manifest.layers, limits);
  parseImageConfig(await readSmallBlob(source, manifest.config, limits.configBytes), manifest.layers.length, name);
  for (const layer of manifest.layers) await source.blob(layer);
  return {
    digest: entry.digest,
    mediaType: manifest.mediaType,
    indexDigest,
    platform: entry.platform ?? { ...SANDBOX_PLATFORM },
    config: manifest.config,
    layers: manifest.layers,
  };
}

/** docker save: manifest.json's entry for the image → config and layer members → a made manifest. */
async function resolveDockerSave(source: ImageSource, staging: Staging, bytes: Buffer, ref: ImageReference, name: string, limits: PullLimits) {
  const what = `the manifest.json of ${source.label}`;
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString("utf8"));
  } catch {
    throw invalid(what, "it is not JSON");
  }
  if (!Array.isArray(doc) || doc.length === 0) throw invalid(what, "it is not a non-empty list of images");
  const images = doc.map((item: unknown, i) => {
    const entry = item as { Config?: unknown; RepoTags?: unknown; Layers?: unknown };
    if (typeof item !== "object" || item === null || typeof entry.Config !== "string" || !Array.isArray(entry.Layers) || !entry.Layers.every((l) => typeof l === "string")) {
      throw invalid(what, `entry ${i} lacks Config or Layers`);
    }
    const tags = Array.isArray(entry.RepoTags) ? entry.RepoTags.filter((t): t is string => typeof t === "string") : [];
    return { config: entry.Config, layers: entry.Layers as string[], names: tags, digest: null };
  });
  const chosen = chooseImage(source.label, ref, images, () => undefined);
  if (chosen.layers.length > limits.layers) throw tooLarge(source.label, `the image has ${chosen.layers.length} layers, more than the limit of ${limits.layers}`);

  const configMember = await source.member(chosen.config);
  if (!configMember) throw missingMember(source.label, chosen.config);
  const config: Descriptor = { mediaType: MEDIA_TYPES.ociConfig, digest: configMember.digest, size: configMember.size };
  if (config.size > limits.configBytes) throw tooLarge(source.label, `its config is ${config.size} bytes, more than the limit of ${limits.configBytes}`);
  const parsed = parseImageConfig(await fs.readFile(staging.fileFor(config.digest)), chosen.layers.length, name);

  const layers: Descriptor[] = [];
  for (const [i, memberPath] of chosen.layers.entries()) {
    const found = await source.member(memberPath);
    if (!found) throw missingMember(source.label, memberPath);
    const layer: Descriptor = { mediaType: "application/vnd.oci.image.layer.v1.tar", digest: found.digest, size: found.size };
    // docker save writes layers uncompressed, so each is its own diff_id; anything else is not the image the config describes.
    if (found.digest !== parsed.diffIds[i]) throw mismatch(source.label, { ...layer, digest: parsed.diffIds[i]! }, `layer ${JSON.stringify(memberPath.slice(0, 200))} hashes to ${found.digest}`);
    layers.push(layer);
  }
  checkImageLimits(name, config, layers, limits);
  for (const descriptor of [config, ...layers]) staging.markVerified(descriptor.digest);
  const manifestBytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config, layers }));
  const digest = `sha256:${createHash("sha256").update(manifestBytes).digest("hex")}`;
  if (!staging.verified.has(digest)) await staging.addVerified(digest, manifestBytes);
  return { digest, mediaType: MEDIA_TYPES.ociManifest, indexDigest: null, platform: { ...SANDBOX_PLATFORM }, config, layers };
}

interface Candidate {
  /** RepoTags (docker save) or the name annotations (OCI) of one image. */
  names: string[];
  /** The manifest or index digest, when the archive says it (OCI). */
  digest: string | null;
}

/**
 * The image `ref` names among `items`: the one whose names or digest match it, else the only
 * one there is. Several entries of one image for several platforms are left to `byPlatform`.
 * Throws `invalid_argument` listing the names found when it cannot tell.
 */
function chooseImage<T extends Candidate>(label: string, ref: ImageReference, items: T[], byPlatform: (pool: T[]) => T | undefined): T {
  if (items.length === 0) throw invalid(label, "it lists no image manifests");
  const matched = items.filter((item) => (ref.digest !== null && item.digest === ref.digest) || item.names.some((n) => nameMatches(n, ref)));
  const pool = matched.length > 0 ? matched : items;
  if (pool.length === 1) return pool[0]!;
  const sameImage = pool.every((item) => JSON.stringify([...item.names].sort()) === JSON.stringify([...pool[0]!.names].sort()));
  const picked = sameImage ? byPlatform(pool) : undefined;
  if (picked) return picked;
  const names = [...new Set(items.flatMap((item) => (item.names.length > 0 ? item.names : ["(unnamed)"])))];
  const shown = names.slice(0, NAMES_SHOWN).map((n) => n.slice(0, 200));
  throw new PyroError("invalid_argument", `${label} holds ${items.length} images and none is named ${formatImageReference(ref)}: ${shown.join(", ")}${names.length > NAMES_SHOWN ? ", …" : ""}`, {
    hint: "Import it under the name of the image you want (its repository tag), or export just that one image.",
    details: { names: shown, count: items.length },
  });
}

/**
 * Whether an archive's name for an image is `ref`: the same canonical reference (a docker
 * RepoTag `x:1` means `docker.io/library/x:1`), or just its tag (OCI's ref.name is often one).
 */
function nameMatches(name: string, ref: ImageReference): boolean {
  if (ref.tag !== null && name === ref.tag) return true;
  try {
    const parsed = parseImageReference(name.includes("/") ? name : `${DOCKER_HUB}/${name}`);
    return formatImageReference({ ...parsed, digest: null }) === formatImageReference({ ...ref, digest: null });
  } catch {
    return false;
  }
}

function annotatedNames(raw: unknown): string[] {
  const annotations = typeof raw === "object" && raw !== null ? (raw as { annotations?: unknown }).annotations : undefined;
  if (typeof annotations !== "object" || annotations === null) return [];
  return [CONTAINERD_NAME, OCI_REF_NAME]
    .map((key) => (annotations as Record<string, unknown>)[key])
    .filter((value): value is string => typeof value === "string" && value.length > 0 && value.length <= 512);
}

function isManifestType(mediaType: string): boolean {
  return mediaType === MEDIA_TYPES.ociManifest || mediaType === MEDIA_TYPES.dockerManifest;
}

function isIndexType(mediaType: string): boolean {
  return mediaType === MEDIA_TYPES.ociIndex || mediaType === MEDIA_TYPES.dockerManifestList;
}

/** A manifest, index or config: staged and verified like any blob, then read, within `limit`. */
async function readSmallBlob(source: ImageSource, descriptor: Descriptor, limit: number): Promise<Buffer> {
  if (descriptor.size > limit) {
    throw tooLarge(source.label, `${descriptor.digest} is ${descriptor.size} bytes, more than the limit of ${limit}`);
  }
  return fs.readFile(await source.blob(descriptor));
}

/** Copies `input` into a new file (exclusive, 0600), fsynced; returns the sha256 of what was written. */
async function copyHashing(input: AsyncIterable<Buffer>, file: string): Promise<string> {
  const hash = createHash("sha256");
  const handle = await fs.open(file, "wx", 0o600);
  try {
    for await (const chunk of input) {
      hash.update(chunk);
      await handle.write(chunk);
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
  return `sha256:${hash.digest("hex")}`;
}

/** A regular file's bytes, opened without following a symlink; undefined when absent. */
async function readNoFollow(file: string, limit: number, onTooLarge: () => PyroError): Promise<Buffer | undefined> {
  let handle;
  try {
    handle = await fs.open(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return undefined;
    if (code === "ELOOP") throw invalid(path.dirname(file), `${path.basename(file)} is a symlink, which is refused`);
    throw err;
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw invalid(path.dirname(file), `${path.basename(file)} is not a regular file`);
    if (stats.size > limit) throw onTooLarge();
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

async function isGzip(file: string): Promise<boolean> {
  const handle = await fs.open(file, "r");
  try {
    const magic = Buffer.alloc(2);
    const { bytesRead } = await handle.read(magic, 0, 2, 0);
    return bytesRead === 2 && magic[0] === 0x1f && magic[1] === 0x8b;
  } finally {
    await handle.close();
  }
}

function unsafeMember(member: string, reason: string): PyroError {
  const shown = member.slice(0, 300);
  return new PyroError("archive_unsafe_entry", `archive member ${JSON.stringify(shown)} is not allowed: ${reason}`, {
    hint: "Import an archive written by docker save, skopeo or another image tool, whose members are relative paths.",
    details: { entry: shown, reason },
  });
}

function missingBlob(label: string, descriptor: Descriptor): PyroError {
  return invalid(label, `blob ${descriptor.digest} is missing`);
}

function missingMember(label: string, member: string): PyroError {
  return invalid(label, `manifest.json names ${JSON.stringify(member.slice(0, 200))}, which is not in the archive`);
}

function mismatch(label: string, descriptor: Descriptor, reason: string): PyroError {
  return new PyroError("image_digest_mismatch", `${descriptor.digest} in ${label} failed verification: ${reason}`, {
    hint: "The file was changed or damaged after it was written; export the image again.",
    details: { source: label, digest: descriptor.digest, reason },
  });
}

function tooLarge(label: string, reason: string): PyroError {
  return new PyroError("image_too_large", `${label} is too large: ${reason}`, {
    hint: "Use a smaller image; the limits are listed in pyro's public contract.",
    details: { source: label, reason },
  });
}
