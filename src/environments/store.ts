/**
 * The environment cache: which environments are installed, building missing ones (parents
 * first), importing user root filesystems, and pruning. The only module that knows the cache
 * layout. Never mounts anything in the host's mount namespace and never touches a workspace.
 *
 * Layout under `<home>/environments/`:
 *
 *   layers/<sha256 hex>/   one layer: a full root (base, imports) or an overlay upper dir
 *                          (derived); immutable once renamed in, named by its own digest
 *   manifests/<name>.json  the "installed" marker (`:` written as `@`), written atomically and
 *                          only after every layer it lists is in place
 *   .tmp-<pid>-<rand>/     scratch space of one build or import; anything left by a killed
 *                          process is removed by the next pull, import or prune
 *   +image-<sha256 of the reference>.json
 *                          an installed image (see `pullImage` below): a manifest like the
 *                          others, named by a hash because a reference has '/' and ':' in it;
 *                          '+' is a character no environment name can contain
 *   .lock                  proper-lockfile lock serialising every change
 *
 * Why layers are named by digest and not by environment name: a forced re-pull or re-import
 * produces a *new* directory instead of rewriting one that running workspaces may have mounted
 * as a lowerdir (overlayfs forbids changing lower layers under a live mount); a manifest pins
 * its whole chain, so `debian:12` keeps working on the base it was built on even after the
 * base is rebuilt; and identical layers are stored once. Only complete trees are ever renamed
 * into `layers/`, and deletion renames out first, so anything under `layers/` is whole.
 *
 * An image reference (oci/reference.ts: it has a '/') is an environment too. Its layers are
 * unpacked once each, inside a sandbox, into `layers/<hex of the layer's diff_id>` (the sha256
 * of its uncompressed tar, so two images sharing a layer share the directory), topped by one
 * small pyro layer that holds the `/workspace` mount point; its manifest lists that chain in
 * overlay lowerdir order and carries the image's digest and config.
 */
import fs from "node:fs/promises";
import path from "node:path";
import { PyroError } from "../shared/errors.js";
import { hostPath } from "../shared/host-path.js";
import { fsyncDirectory, writeJsonAtomic } from "../shared/atomic.js";
import { homeLayout } from "../shared/home.js";
import { CATALOG, catalogEntry, catalogNames, isValidEnvironmentName, manifestFileName } from "./catalog.js";
import type { CatalogEntry } from "./catalog.js";
import { resolveMirror } from "./mirror.js";
import { scanLayer, diskUsage } from "./layer-scan.js";
import type { LayerScan } from "./layer-scan.js";
import { packageRoot } from "../shared/package.js";
import { readInstalledPackages } from "./dpkg.js";
import { ensureWorkspaceDir, looksLikeRootfs, tidyDebootstrapRoot } from "./rootfs.js";
import { ownByGuestRoot, runConfined } from "../runtime/confine/launch.js";
import { sandboxIdentity } from "../runtime/confine/identity.js";
import { debootstrapBase, installPackagesInOverlay, sourcesListFor } from "./builders.js";
import { assertArchiveSafe, classifyImportSource, copyDirectory, extractArchiveSandboxed } from "./import-source.js";
import { runCommand } from "./command.js";
import { removeTree } from "../runtime/confine/trees.js";
import { assertLockHeld, withStoreLock } from "./store-lock.js";
import type { HeldLock } from "./store-lock.js";
import { createHash } from "node:crypto";
import { formatImageReference, isImageReference, parseImageReference, suggestedImageReference } from "./oci/reference.js";
import { pullImage } from "./oci/pull.js";
import type { ImagePullProgress } from "./oci/pull.js";
import { BlobStore } from "./oci/blobs.js";
import type { ImageRecord } from "./oci/blobs.js";
import { importImage } from "./oci/image-archive.js";
import { parseImageConfig } from "./oci/config.js";
import { unpackLayer } from "./oci/unpack.js";

/** Bumped when the way layers are built changes; recorded in every manifest. */
export const BUILDER_VERSION = 2;

export interface EnvironmentSummary {
  name: string;
  description: string;
  installed: boolean;
  /** Disk usage of the whole layer chain when installed, else null. */
  sizeBytes: number | null;
  digest: string | null;
  /** "import" when the installed content came from `import`, "image" for a pulled image, else "catalog". */
  source: "catalog" | "import" | "image";
  parent: string | null;
}

/** What an environment made from an image keeps of it: where it came from and how to run it. */
export interface ImageEnvironmentInfo {
  /** The canonical reference it was pulled as (also the environment's name). */
  reference: string;
  /** The linux/amd64 image manifest's digest. */
  digest: string;
  /** The image config's run-time settings; see docs/public-contract.md for which are honoured. */
  config: { env: string[]; workingDir: string | null; user: string | null; entrypoint: string[] | null; cmd: string[] | null };
  /** Bottom layer first, as in the image: the compressed blob, its diff_id, and its directory under `layers/`. */
  layers: { digest: string; diffId: string; size: number; mediaType: string; directory: string }[];
}

export interface EnvironmentManifest {
  name: string;
  description: string;
  parent: string | null;
  /** Layer directory names (digest hex), this layer first, then its parents': an overlay lowerdir order. */
  layers: string[];
  /** `sha256:` content identity of this environment's own (top-most) layer. */
  digest: string;
  /** `name=version` of every installed Debian package in the merged root. */
  packages: string[];
  /** Disk usage of this layer alone. */
  sizeBytes: number;
  /** Disk usage of this layer and all its parents. */
  totalSizeBytes: number;
  createdAt: string;
  /** "debootstrap" for every layer pyro built from Debian packages, "import" for imported roots, "image" for pulled images. */
  source: "debootstrap" | "import" | "image";
  /** The mirror packages came from; null when the root's own apt sources were used (imports). */
  mirror: string | null;
  builderVersion: number;
  /**
   * The sandbox identity the layers were written for (confine/identity.ts `key`): their files
   * carry that identity's host ids, so another identity cannot use them.
   */
  identity: string;
  /** For an environment made from an image: the image's identity, config and layers; else absent. */
  image?: ImageEnvironmentInfo;
}

export interface PullProgress {
  environment: string;
  /** `download` and `unpack` are an image's, one event per layer step. */
  phase: "resolve" | "debootstrap" | "install" | "download" | "unpack" | "finalize" | "ready" | "cached";
  message: string;
}

export interface PullOptions {
  /** Debian mirror URL. Default: `$PYRO_DEBIAN_MIRROR`, else the host's apt sources, else deb.debian.org. */
  mirror?: string;
  /** Rebuild this environment (not its parents) even if installed. Default false. */
  force?: boolean;
  onProgress?: (event: PullProgress) => void;
  /** Aborting kills the build's whole process tree and leaves the cache as it was. */
  signal?: AbortSignal;
}

export interface ImportOptions {
  onProgress?: (event: PullProgress) => void;
}

/**
 * What is stored on disk: the public manifest plus the layers a forced rebuild or re-import
 * replaced. Workspaces created before the replacement may still have those mounted, so prune
 * keeps them for as long as the environment's name is in use.
 */
interface StoredManifest extends EnvironmentManifest {
  retiredLayers?: string[];
}

interface LayerPlan {
  name: string;
  description: string;
  parent: EnvironmentManifest | null;
  source: EnvironmentManifest["source"];
  mirror: string | null;
}

interface BuildContext {
  mirror: string;
  emit: (event: PullProgress) => void;
  signal?: AbortSignal;
  lock: HeldLock;
}

const LAYER_NAME = /^[0-9a-f]{64}$/;
const TMP_PREFIX = ".tmp-";
const IMAGE_MANIFEST = /^\+image-[0-9a-f]{64}\.json$/;

export class EnvironmentStore {
  private readonly root: string;
  private readonly layersDir: string;
  private readonly manifestsDir: string;
  private readonly blobs: BlobStore;

  constructor(private readonly home: string) {
    this.blobs = new BlobStore(home);
    this.root = homeLayout(home).environments;
    this.layersDir = path.join(this.root, "layers");
    this.manifestsDir = path.join(this.root, "manifests");
  }

  /** Every catalog environment (installed or not), then installed imported ones by name. */
  async list(): Promise<EnvironmentSummary[]> {
    const installed = new Map<string, StoredManifest>();
    for (const record of await this.readAllManifests()) {
      if (await this.layersPresent(record)) installed.set(record.name, record);
    }
    const summarize = (name: string, description: string, parent: string | null): EnvironmentSummary => {
      const record = installed.get(name);
      return {
        name,
        description,
        installed: record !== undefined,
        sizeBytes: record ? record.totalSizeBytes : null,
        digest: record ? record.digest : null,
        source: record?.source === "import" ? "import" : record?.source === "image" ? "image" : "catalog",
        parent: record ? record.parent : parent,
      };
    };
    const custom = [...installed.values()]
      .filter((record) => !catalogEntry(record.name))
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((record) => summarize(record.name, record.description, record.parent));
    return [...CATALOG.map((entry) => summarize(entry.name, entry.description, entry.parent)), ...custom];
  }

  async inspect(name: string): Promise<EnvironmentManifest> {
    return publicManifest(await this.requireInstalled(canonicalEnvironmentName(name)));
  }

  async isInstalled(name: string): Promise<boolean> {
    return (await this.readInstalled(canonicalEnvironmentName(name))) !== undefined;
  }

  /** Absolute layer directories, top-most first: join with `:` for an overlay `lowerdir`. */
  async layers(name: string): Promise<string[]> {
    const record = await this.requireInstalled(canonicalEnvironmentName(name));
    return record.layers.map((layer) => path.join(this.layersDir, layer));
  }

  /**
   * Installs an environment: a catalog one, building missing parents first, or an image
   * reference (pullImageEnvironment). Returns at once with a `cached` event when it is already
   * installed (unless `force`). Safe to call from several
   * processes at once: builds are serialised and a waiter finds the finished result cached.
   */
  async pull(requested: string, opts: PullOptions = {}): Promise<EnvironmentManifest> {
    const name = isImageReference(requested) ? canonicalEnvironmentName(requested) : requested;
    const emit = safeEmitter(opts.onProgress);
    if (!opts.force) {
      const installed = await this.readInstalled(name);
      if (installed) {
        emit({ environment: name, phase: "cached", message: `${name} is already installed (${installed.digest}).` });
        return publicManifest(installed);
      }
    }
    if (isImageReference(name)) return this.pullImageEnvironment(name, opts, emit);
    const entry = catalogEntry(name);
    if (!entry) {
      if (isValidEnvironmentName(name) && (await this.readManifest(name))) {
        throw new PyroError("invalid_argument", `${name} was imported and cannot be pulled.`, {
          hint: `Run \`pyro env import ${name} PATH\` again to replace it.`,
        });
      }
      throw unknownEnvironment(name);
    }
    const mirror = resolveMirror(opts.mirror);
    emit({ environment: name, phase: "resolve", message: `Resolving ${chainOf(entry).join(" -> ")} from ${mirror}.` });
    return withStoreLock(
      this.root,
      async (lock) => {
        await this.removeStaleTemporaries();
        const context: BuildContext = { mirror, emit, signal: opts.signal, lock };
        return publicManifest(await this.pullLocked(entry, Boolean(opts.force), context));
      },
      {
        signal: opts.signal,
        onWait: () => emit({ environment: name, phase: "resolve", message: "Waiting for another pyro process to finish changing environments." }),
      },
    );
  }

  /**
   * Installs a root filesystem from a host directory or a .tar/.tar.gz/.tgz under `name`: a
   * catalog name (replacing whatever filled that slot) or a custom `family[:tag]` name. Under
   * an image reference, `sourcePath` is an image instead: a `docker save` tarball or an OCI
   * layout (directory or tar), installed as a pull of that reference would be.
   */
  async import(name: string, sourcePath: string, opts: ImportOptions = {}): Promise<EnvironmentManifest> {
    const emit = safeEmitter(opts.onProgress);
    if (isImageReference(name)) return this.importImageEnvironment(canonicalEnvironmentName(name), hostPath(sourcePath, "import source"), emit);
    if (!isValidEnvironmentName(name)) {
      throw new PyroError("invalid_argument", `${JSON.stringify(name)} is not a valid environment name.`, {
        hint: "Use lower-case letters, digits, '.', '_' and '-', optionally with one ':tag', e.g. `myorg:ubuntu-24.04`.",
      });
    }
    sourcePath = hostPath(sourcePath, "import source");
    const kind = await classifyImportSource(sourcePath);
    emit({ environment: name, phase: "resolve", message: `Importing ${name} from ${kind} ${sourcePath}.` });
    // Vetting needs no lock and has no side effects: refuse bad archives before touching the cache.
    if (kind === "archive") await assertArchiveSafe(sourcePath);
    const entry = catalogEntry(name);
    return withStoreLock(
      this.root,
      async (lock) => {
        await this.removeStaleTemporaries();
        const tmp = await this.makeTemporary();
        try {
          const rootDir = path.join(tmp, "root");
          await fs.mkdir(rootDir, { mode: 0o755 });
          ownByGuestRoot(rootDir);
          emit({ environment: name, phase: "install", message: kind === "archive" ? "Extracting archive in a sandbox." : "Copying directory." });
          if (kind === "archive") await extractArchiveSandboxed(name, sourcePath, rootDir);
          else await copyDirectory(name, sourcePath, rootDir);
          if (!(await looksLikeRootfs(rootDir))) {
            throw new PyroError("invalid_argument", `${sourcePath} does not look like a root filesystem (no bin/sh or usr/bin/sh).`, {
              hint: "Import the top directory of a Linux root filesystem, or an archive made from it (tar -C ROOT -cf root.tar .).",
            });
          }
          // No device node can be in it: the extraction ran in a user namespace, where none can be made.
          await ensureWorkspaceDir(rootDir);
          // The layer's root becomes the sandbox's `/`: normalise it whatever the source dir was.
          await fs.chmod(rootDir, 0o755);
          ownByGuestRoot(rootDir);
          const plan: LayerPlan = {
            name,
            description: entry?.description ?? `Imported root filesystem (${path.basename(sourcePath)})`,
            parent: null,
            source: "import",
            mirror: null,
          };
          return publicManifest(await this.commitLayer(rootDir, plan, { emit, lock }));
        } finally {
          await removeTree(tmp);
        }
      },
      { onWait: () => emit({ environment: name, phase: "resolve", message: "Waiting for another pyro process to finish changing environments." }) },
    );
  }

  /**
   * Removes every installed environment that is not in use, where in use means named in
   * `inUse` or a parent (transitively) of one that is; then every layer no remaining manifest
   * needs, and leftovers of killed builds.
   */
  async prune(inUse: Set<string>, pinnedLayers: Iterable<string> = []): Promise<{ removed: string[]; freedBytes: number }> {
    return withStoreLock(this.root, async () => {
      let freedBytes = await this.removeStaleTemporaries();
      const records = await this.readAllManifests();
      const names = [...inUse].map((name) => {
        try {
          return canonicalEnvironmentName(name);
        } catch {
          return name;
        }
      });
      const keep = inUseClosure(names, new Map(records.map((record) => [record.name, record.parent])));
      const removed: string[] = [];
      // Layers a workspace has pinned (its record's chain) stay whatever happened to the
      // manifest that listed them: overlayfs forbids changing a lower layer under a live mount.
      const keptLayers = new Set<string>([...pinnedLayers].map((layer) => path.basename(layer)));
      for (const record of records) {
        if (keep.has(record.name)) {
          for (const layer of [...record.layers, ...(record.retiredLayers ?? [])]) keptLayers.add(layer);
        } else {
          // Manifest first: a crash between the two steps leaves an orphan layer, never a
          // manifest pointing at a half-deleted one.
          await fs.rm(this.manifestPath(record.name), { force: true });
          removed.push(record.name);
        }
      }
      for (const layer of await this.layerNames()) {
        if (keptLayers.has(layer)) continue;
        const current = path.join(this.layersDir, layer);
        freedBytes += await diskUsage(current);
        const doomed = await this.makeTemporary();
        await fs.rename(current, path.join(doomed, "layer"));
        await removeTree(doomed);
      }
      freedBytes += await this.pruneBlobs(new Set(records.filter((record) => keep.has(record.name) && record.image).map((record) => record.name)));
      return { removed: removed.sort(), freedBytes };
    });
  }

  /**
   * With the store lock held: drops the image records of references no kept environment was
   * made from (a pull that never got installed, an environment just pruned), then every blob
   * no remaining record names. Returns the bytes freed.
   */
  private async pruneBlobs(keptImages: Set<string>): Promise<number> {
    const keptBlobs = new Set<string>();
    for (const image of await this.blobs.listImages()) {
      if (keptImages.has(image.reference)) {
        for (const digest of [image.digest, image.indexDigest, image.config.digest, ...image.layers.map((layer) => layer.digest)]) if (digest) keptBlobs.add(digest);
      } else {
        await this.blobs.removeImage(image.reference);
      }
    }
    let freed = 0;
    for (const digest of await this.blobs.blobDigests()) {
      if (!keptBlobs.has(digest)) freed += await this.blobs.removeBlob(digest);
    }
    return freed;
  }

  /** Pulls an image (oci/pull.ts; downloads run without the lock), then installs it (installImage). */
  private async pullImageEnvironment(reference: string, opts: PullOptions, emit: (event: PullProgress) => void): Promise<EnvironmentManifest> {
    const image = await pullImage(this.home, reference, { onProgress: (event) => emit(imageProgress(event)), ...(opts.signal ? { signal: opts.signal } : {}) });
    return this.installImage(image, opts, emit);
  }

  /**
   * Reads an image from a `docker save` tarball or an OCI layout (oci/image-archive.ts, without
   * the lock: it only stages and commits verified blobs), then installs it exactly as a pulled
   * one. Always installs what the file holds now, replacing an earlier pull or import.
   */
  private async importImageEnvironment(reference: string, sourcePath: string, emit: (event: PullProgress) => void): Promise<EnvironmentManifest> {
    const image = await importImage(this.home, reference, sourcePath, { onProgress: (message) => emit({ environment: reference, phase: "resolve", message }) });
    return this.installImage(image, {}, emit);
  }

  /**
   * Installs an image whose blobs are in the blob store, however they got there: under the
   * store lock, each layer not yet present is unpacked in a sandbox into a scratch directory
   * and renamed into `layers/<diff_id hex>`, then pyro's top layer, then the manifest, written
   * last and atomically. Killed at any point, it leaves scratch directories (swept by the
   * next change) and whole layers nothing lists yet (reused by the next install, or pruned),
   * never a manifest naming a missing layer.
   */
  private async installImage(image: ImageRecord, opts: Pick<PullOptions, "signal">, emit: (event: PullProgress) => void): Promise<EnvironmentManifest> {
    const reference = image.reference;
    return withStoreLock(
      this.root,
      async (lock) => {
        await this.removeStaleTemporaries();
        const configFile = this.blobs.blobPath(image.config.digest);
        const config = parseImageConfig(await readBlob(configFile, reference), image.layers.length, reference);
        await fs.mkdir(this.layersDir, { recursive: true, mode: 0o700 });
        const layers: ImageEnvironmentInfo["layers"] = [];
        let sizeBytes = 0;
        for (const [index, layer] of image.layers.entries()) {
          const diffId = config.diffIds[index]!;
          const directory = diffId.slice("sha256:".length);
          const destination = path.join(this.layersDir, directory);
          const step = `layer ${index + 1}/${image.layers.length} ${shortDigest(diffId)}`;
          if (await isDirectory(destination)) {
            emit({ environment: reference, phase: "unpack", message: `${step}: already unpacked` });
          } else {
            const tmp = await this.makeTemporary();
            try {
              const target = path.join(tmp, "layer");
              await fs.mkdir(target, { mode: 0o755 });
              ownByGuestRoot(target);
              emit({ environment: reference, phase: "unpack", message: `${step}: unpacking` });
              await unpackLayer(reference, this.blobs.blobPath(layer.digest), layer, diffId, target, opts.signal ? { signal: opts.signal } : {});
              await runCommand(["sync", "-f", target]);
              assertLockHeld(lock);
              await fs.rename(target, destination);
              await fsyncDirectory(this.layersDir);
              emit({ environment: reference, phase: "unpack", message: `${step}: unpacked` });
            } finally {
              await removeTree(tmp);
            }
          }
          sizeBytes += await diskUsage(destination);
          layers.push({ digest: layer.digest, diffId, size: layer.size, mediaType: layer.mediaType, directory });
        }
        const top = await this.imageTopLayer();
        // Overlay order is top-most first; a layer listed twice (an empty layer repeated) is
        // mounted once, where it is highest, since overlayfs refuses the same lower dir twice.
        const chain = [top, ...layers.map((layer) => layer.directory).reverse()].filter((layer, index, all) => all.indexOf(layer) === index);
        emit({ environment: reference, phase: "finalize", message: "Writing the environment's manifest." });
        assertLockHeld(lock);
        const previous = await this.readManifest(reference);
        const retiredLayers = previous
          ? [...new Set([...(previous.retiredLayers ?? []), ...previous.layers])].filter((layer) => !chain.includes(layer))
          : [];
        const record: StoredManifest = {
          name: reference,
          description: `Image ${reference}`,
          parent: null,
          layers: chain,
          digest: image.digest,
          packages: [],
          sizeBytes,
          totalSizeBytes: sizeBytes,
          createdAt: new Date().toISOString(),
          source: "image",
          mirror: null,
          builderVersion: BUILDER_VERSION,
          identity: sandboxIdentity().key,
          image: {
            reference,
            digest: image.digest,
            config: { env: config.env, workingDir: config.workingDir, user: config.user, entrypoint: config.entrypoint, cmd: config.cmd },
            layers,
          },
          ...(retiredLayers.length > 0 ? { retiredLayers } : {}),
        };
        await fs.mkdir(this.manifestsDir, { recursive: true, mode: 0o755 });
        await writeJsonAtomic(this.manifestPath(reference), record, 0o644);
        emit({ environment: reference, phase: "ready", message: `${reference} is ready (${image.digest}).` });
        return publicManifest(record);
      },
      {
        ...(opts.signal ? { signal: opts.signal } : {}),
        onWait: () => emit({ environment: reference, phase: "resolve", message: "Waiting for another pyro process to finish changing environments." }),
      },
    );
  }

  /**
   * pyro's own top layer of every image environment: a real `/workspace` directory (0755,
   * guest root's) to mount the workspace on, whatever the image has at that path. The same
   * content for every image, so one directory serves them all. Store lock held.
   */
  private async imageTopLayer(): Promise<string> {
    const tmp = await this.makeTemporary();
    try {
      const root = path.join(tmp, "root");
      await fs.mkdir(root, { mode: 0o755 });
      ownByGuestRoot(root);
      await ensureWorkspaceDir(root);
      const name = (await scanAsGuestRoot(root)).digest.slice("sha256:".length);
      const destination = path.join(this.layersDir, name);
      if (!(await isDirectory(destination))) {
        await fs.rename(root, destination);
        await fsyncDirectory(this.layersDir);
      }
      return name;
    } finally {
      await removeTree(tmp);
    }
  }

  private async pullLocked(entry: CatalogEntry, force: boolean, context: BuildContext): Promise<StoredManifest> {
    if (!force) {
      // Re-checked under the lock: another process may have finished it while we waited.
      const installed = await this.readInstalled(entry.name);
      if (installed) {
        context.emit({ environment: entry.name, phase: "cached", message: `${entry.name} is already installed (${installed.digest}).` });
        return installed;
      }
    }
    const parentEntry = entry.parent ? catalogEntry(entry.parent) : undefined;
    const parent = parentEntry ? await this.pullLocked(parentEntry, false, context) : null;
    return parent ? this.buildDerived(entry, parent, context) : this.buildBase(entry, context);
  }

  private async buildBase(entry: CatalogEntry, context: BuildContext): Promise<StoredManifest> {
    const tmp = await this.makeTemporary();
    try {
      const rootDir = path.join(tmp, "root");
      context.emit({
        environment: entry.name,
        phase: "debootstrap",
        message: `Running debootstrap --variant=minbase from ${context.mirror}.`,
      });
      await fs.mkdir(rootDir, { mode: 0o755 });
      ownByGuestRoot(rootDir);
      await debootstrapBase(entry.name, rootDir, context.mirror, context.signal);
      await tidyDebootstrapRoot(rootDir);
      await ensureWorkspaceDir(rootDir);
      const plan: LayerPlan = { name: entry.name, description: entry.description, parent: null, source: "debootstrap", mirror: context.mirror };
      return await this.commitLayer(rootDir, plan, context);
    } finally {
      await removeTree(tmp);
    }
  }

  private async buildDerived(entry: CatalogEntry, parent: StoredManifest, context: BuildContext): Promise<StoredManifest> {
    const tmp = await this.makeTemporary();
    try {
      const upper = path.join(tmp, "upper");
      const work = path.join(tmp, "work");
      for (const dir of [upper, work]) {
        await fs.mkdir(dir, { mode: 0o755 });
        ownByGuestRoot(dir);
      }
      // The upper dir's own mode becomes the merged root's: keep `/` at 0755.
      await fs.chmod(upper, 0o755);
      // Only a chain pyro debootstrapped is known to use a plain sources.list pointing at a
      // Debian mirror; an imported root keeps its own apt configuration.
      const useMirror = parent.mirror !== null;
      let sourcesList: string | undefined;
      if (useMirror) {
        sourcesList = path.join(tmp, "sources.list");
        await fs.writeFile(sourcesList, sourcesListFor(context.mirror), { mode: 0o644 });
      }
      context.emit({
        environment: entry.name,
        phase: "install",
        message: `Installing ${entry.packages.join(", ")} on top of ${parent.name}.`,
      });
      await installPackagesInOverlay({
        environment: entry.name,
        lowerLayers: parent.layers.map((layer) => path.join(this.layersDir, layer)),
        upper,
        work,
        packages: entry.packages,
        sourcesList,
        signal: context.signal,
      });
      const plan: LayerPlan = {
        name: entry.name,
        description: entry.description,
        parent,
        source: "debootstrap",
        mirror: useMirror ? context.mirror : null,
      };
      return await this.commitLayer(upper, plan, context);
    } finally {
      await removeTree(tmp);
    }
  }

  /**
   * Hashes a finished layer, moves it into `layers/` and writes the manifest, in that order,
   * each step durable before the next, so a crash at any point leaves either the old state or
   * an orphan layer that prune collects, never a manifest pointing at missing data.
   */
  private async commitLayer(
    layerDir: string,
    plan: LayerPlan,
    context: Pick<BuildContext, "emit" | "lock">,
  ): Promise<StoredManifest> {
    context.emit({ environment: plan.name, phase: "finalize", message: "Hashing the layer and writing its manifest." });
    // syncfs, once for the whole tree: cheaper than dpkg's per-file fsync we switched off.
    await runCommand(["sync", "-f", layerDir]);
    const scan = await scanAsGuestRoot(layerDir);
    const layerName = scan.digest.slice("sha256:".length);
    const parentLayers = plan.parent?.layers ?? [];
    const packages = await readInstalledPackages([layerDir, ...parentLayers.map((layer) => path.join(this.layersDir, layer))]);

    await fs.mkdir(this.layersDir, { recursive: true, mode: 0o700 });
    const destination = path.join(this.layersDir, layerName);
    if (!(await isDirectory(destination))) {
      await fs.rename(layerDir, destination);
      await fsyncDirectory(this.layersDir);
    }
    // Same digest already present means same content: reuse it and let the scratch copy go.

    assertLockHeld(context.lock);
    const layers = [layerName, ...parentLayers];
    const previous = await this.readManifest(plan.name);
    const retiredLayers = previous
      ? [...new Set([...(previous.retiredLayers ?? []), ...previous.layers])].filter((layer) => !layers.includes(layer))
      : [];
    const record: StoredManifest = {
      name: plan.name,
      description: plan.description,
      parent: plan.parent?.name ?? null,
      layers,
      digest: scan.digest,
      packages,
      sizeBytes: scan.sizeBytes,
      totalSizeBytes: scan.sizeBytes + (plan.parent?.totalSizeBytes ?? 0),
      createdAt: new Date().toISOString(),
      source: plan.source,
      mirror: plan.mirror,
      builderVersion: BUILDER_VERSION,
      identity: sandboxIdentity().key,
      ...(retiredLayers.length > 0 ? { retiredLayers } : {}),
    };
    await fs.mkdir(this.manifestsDir, { recursive: true, mode: 0o755 });
    await writeJsonAtomic(this.manifestPath(plan.name), record, 0o644);
    context.emit({ environment: plan.name, phase: "ready", message: `${plan.name} is ready (${scan.digest}).` });
    return record;
  }

  private manifestPath(name: string): string {
    if (isImageReference(name)) return path.join(this.manifestsDir, `+image-${createHash("sha256").update(name).digest("hex")}.json`);
    return path.join(this.manifestsDir, manifestFileName(name));
  }

  /** The stored manifest if it parses and is well formed, whether or not its layers exist. */
  private async readManifest(name: string): Promise<StoredManifest | undefined> {
    if (!isValidEnvironmentName(name) && !isImageReference(name)) return undefined;
    let text: string;
    try {
      text = await fs.readFile(this.manifestPath(name), "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
    try {
      const record = JSON.parse(text) as StoredManifest;
      return isWellFormed(record) && record.name === name ? record : undefined;
    } catch {
      return undefined;
    }
  }

  /** The manifest, only when every layer it lists is present: an install is all or nothing. */
  private async readInstalled(name: string): Promise<StoredManifest | undefined> {
    const record = await this.readManifest(name);
    return record && record.identity === sandboxIdentity().key && (await this.layersPresent(record)) ? record : undefined;
  }

  private async requireInstalled(name: string): Promise<StoredManifest> {
    const record = await this.readInstalled(name);
    if (record) return record;
    const stale = await this.readManifest(name);
    if (stale && stale.identity !== sandboxIdentity().key) {
      throw new PyroError("environment_not_installed", `Environment ${name} was built for another sandbox identity (by an earlier pyro that ran sandboxes as host root, or by another user) and cannot be used by this one.`, {
        hint: catalogEntry(name) || isImageReference(name) ? `Run \`pyro env pull ${name} --force\` to build it again.` : `Run \`pyro env import ${name} PATH\` again.`,
      });
    }
    if (catalogEntry(name)) {
      throw new PyroError("environment_not_installed", `Environment ${name} is not installed.`, {
        hint: `Run \`pyro env pull ${name}\` to build it.`,
      });
    }
    if (isImageReference(name)) {
      throw new PyroError("environment_not_installed", `image ${name} is not pulled`, {
        hint: `Run \`pyro env pull ${name}\` (SDK: pullEnvironment) to pull it.`,
        details: { reference: name },
      });
    }
    if (await this.readManifest(name)) {
      throw new PyroError("environment_not_installed", `Environment ${name} is incomplete: some of its layers are missing.`, {
        hint: `Run \`pyro env import ${name} PATH\` again.`,
      });
    }
    throw unknownEnvironment(name);
  }

  private async readAllManifests(): Promise<StoredManifest[]> {
    let files: string[];
    try {
      files = await fs.readdir(this.manifestsDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    const records: StoredManifest[] = [];
    for (const file of files.sort()) {
      // Skips writeJsonAtomic's in-flight `.name.json.<pid>.tmp` files.
      if (file.startsWith(".") || !file.endsWith(".json")) continue;
      let name = file.slice(0, -".json".length).replace("@", ":");
      if (IMAGE_MANIFEST.test(file)) {
        // Named by a hash: the reference is inside, and readManifest checks it leads back here.
        const inside = await fs.readFile(path.join(this.manifestsDir, file), "utf8").then((text) => (JSON.parse(text) as { name?: unknown }).name).catch(() => undefined);
        if (typeof inside !== "string" || !isImageReference(inside)) continue;
        name = inside;
      }
      const record = await this.readManifest(name);
      if (record) records.push(record);
    }
    return records;
  }

  private async layersPresent(record: StoredManifest): Promise<boolean> {
    for (const layer of record.layers) if (!(await isDirectory(path.join(this.layersDir, layer)))) return false;
    return true;
  }

  private async layerNames(): Promise<string[]> {
    try {
      return (await fs.readdir(this.layersDir)).filter((name) => LAYER_NAME.test(name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
  }

  private async makeTemporary(): Promise<string> {
    await fs.mkdir(this.root, { recursive: true, mode: 0o755 });
    return fs.mkdtemp(path.join(this.root, `${TMP_PREFIX}${process.pid}-`));
  }

  /**
   * Only called with the store lock held, so every scratch directory present belongs to a
   * process that died without cleaning up. Returns the bytes freed.
   */
  private async removeStaleTemporaries(): Promise<number> {
    let names: string[];
    try {
      names = await fs.readdir(this.root);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return 0;
      throw err;
    }
    let freed = 0;
    for (const name of names) {
      if (!name.startsWith(TMP_PREFIX)) continue;
      const dir = path.join(this.root, name);
      freed += await diskUsage(dir);
      await removeTree(dir);
    }
    // writeJsonAtomic's temporary files, left if a process died between write and rename.
    for (const name of await fs.readdir(this.manifestsDir).catch(() => [] as string[])) {
      if (name.startsWith(".") && name.endsWith(".tmp")) await fs.rm(path.join(this.manifestsDir, name), { force: true });
    }
    return freed;
  }
}

/** `inUse` plus, transitively, the parent of each: what prune must keep. Pure. */
export function inUseClosure(inUse: Iterable<string>, parents: Map<string, string | null>): Set<string> {
  const keep = new Set<string>();
  const pending = [...inUse];
  while (pending.length > 0) {
    const name = pending.pop()!;
    if (keep.has(name)) continue;
    keep.add(name);
    // An installed environment's own record wins: an imported `debian:12` has no parent.
    const parent = parents.has(name) ? parents.get(name) : catalogEntry(name)?.parent;
    if (parent) pending.push(parent);
  }
  return keep;
}

function publicManifest(record: StoredManifest): EnvironmentManifest {
  return {
    name: record.name,
    description: record.description,
    parent: record.parent,
    layers: [...record.layers],
    digest: record.digest,
    packages: [...record.packages],
    sizeBytes: record.sizeBytes,
    totalSizeBytes: record.totalSizeBytes,
    createdAt: record.createdAt,
    source: record.source,
    mirror: record.mirror,
    builderVersion: record.builderVersion,
    identity: record.identity,
    ...(record.image ? { image: structuredClone(record.image) } : {}),
  };
}

/** Guards against hand-edited or foreign files: layer names are used as path components. */
function isWellFormed(record: StoredManifest): boolean {
  return (
    typeof record === "object" &&
    record !== null &&
    typeof record.name === "string" &&
    Array.isArray(record.layers) &&
    record.layers.length > 0 &&
    record.layers.every((layer) => typeof layer === "string" && LAYER_NAME.test(layer)) &&
    (record.retiredLayers === undefined ||
      (Array.isArray(record.retiredLayers) && record.retiredLayers.every((layer) => typeof layer === "string" && LAYER_NAME.test(layer)))) &&
    typeof record.digest === "string" &&
    Array.isArray(record.packages) &&
    typeof record.sizeBytes === "number" &&
    typeof record.totalSizeBytes === "number"
  );
}

function chainOf(entry: CatalogEntry): string[] {
  const chain = [entry.name];
  let parent = entry.parent;
  while (parent) {
    chain.unshift(parent);
    parent = catalogEntry(parent)?.parent ?? null;
  }
  return chain;
}

function unknownEnvironment(name: string): PyroError {
  const image = suggestedImageReference(name);
  const known = `Known environments: ${catalogNames().join(", ")}; run \`pyro env list\` to see imported and pulled ones too.`;
  return new PyroError("environment_unknown", `No environment is named ${JSON.stringify(name)}.`, {
    // A bare `node:22` looks like a catalog name; an image needs its registry or namespace part.
    hint: image ? `To use the image, give its full reference: ${image} (e.g. \`pyro env pull ${image}\`). ${known}` : known,
    ...(image ? { details: { image_reference: image } } : {}),
  });
}

/**
 * The name an environment is recorded under: an image reference in its canonical form
 * (`127.0.0.1:5000/x/y` → `127.0.0.1:5000/x/y:latest`; `invalid_argument` when it is not a
 * valid one), any other name as given.
 */
export function canonicalEnvironmentName(name: string): string {
  return isImageReference(name) ? formatImageReference(parseImageReference(name)) : name;
}

/** An image pull's events as environment progress: one line per layer step, as `docker pull` shows. */
function imageProgress(event: ImagePullProgress): PullProgress {
  if (event.phase !== "layer") return { environment: event.reference, phase: event.phase === "ready" ? "download" : "resolve", message: event.message };
  const step = `layer ${event.index + 1}/${event.count} ${shortDigest(event.digest)}`;
  const message =
    event.state === "cached"
      ? `${step}: already downloaded`
      : event.state === "done"
        ? `${step}: downloaded ${event.bytesTotal} bytes`
        : `${step}: downloading ${event.bytesDone}/${event.bytesTotal} bytes`;
  return { environment: event.reference, phase: "download", message };
}

function shortDigest(digest: string): string {
  return digest.slice(0, "sha256:".length + 12);
}

/** A stored blob, small by the pull's limits (configs are at most 4 MiB). */
async function readBlob(file: string, reference: string): Promise<Buffer> {
  try {
    return await fs.readFile(file);
  } catch {
    throw new PyroError("environment_not_installed", `the blobs of ${reference} were removed while it was being installed (a concurrent \`env prune\`)`, {
      hint: `Run \`pyro env pull ${reference}\` again.`,
    });
  }
}


/** Progress is informational: a throwing listener must not abort a half-finished build. */
function safeEmitter(listener: ((event: PullProgress) => void) | undefined): (event: PullProgress) => void {
  return (event) => {
    try {
      listener?.(event);
    } catch {
      // ignored on purpose, see above
    }
  };
}

async function isDirectory(dir: string): Promise<boolean> {
  try {
    return (await fs.lstat(dir)).isDirectory();
  } catch {
    return false;
  }
}

/**
 * `scanLayer` where every file of the layer can be read: in-process for root, else as guest
 * root in the sandbox identity's user namespace (the layer's files carry its ids).
 */
async function scanAsGuestRoot(layerDir: string): Promise<LayerScan> {
  if (sandboxIdentity().kind === "root-range") return scanLayer(layerDir);
  const script = path.join(packageRoot(), "dist", "environments", "layer-scan.mjs");
  const r = await runConfined((launch) => [process.execPath, script, launch.bind(layerDir, { readOnly: true })]);
  if (r.code !== 0) throw new PyroError("environment_build_failed", `Hashing the layer failed: ${r.stderr.trim().slice(-300) || `exit ${r.code}`}`);
  return JSON.parse(r.stdout) as LayerScan;
}
