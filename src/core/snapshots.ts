/**
 * Named snapshots of /workspace: `baseline` (made at create, immutable) and user checkpoints.
 * Each has a manifest, written last: a snapshot whose making did not finish has no manifest,
 * is never listed, and is cleaned up.
 *
 * A layered workspace's snapshot (core/workspace-layers.ts) is a stack of read-only layers
 * named in its manifest: the live upper copied into a new layer, over the live stack. Its
 * `entries` and `bytes` are what that new layer stores: what changed since the layers below.
 * A workspace an earlier pyro made keeps plain snapshots: a whole-tree copy made by
 * `cp -a --reflink=auto` in a utility sandbox, kept under `trees/`.
 */
import fsp from "node:fs/promises";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { copyMeasuringScript, parseTreeSize, runUtilityChecked } from "../runtime/confine/utility.js";
import type { UtilityBind, UtilityView } from "../runtime/confine/utility.js";
import { ownByGuestRoot } from "../runtime/confine/launch.js";
import { removeTree } from "../runtime/confine/trees.js";
import { readJsonIfExists, writeJsonAtomic } from "../shared/atomic.js";
import { PyroError } from "../shared/errors.js";
import { validateName } from "./validate.js";
import { MAX_STACK } from "./workspace-layers.js";
import type { LayerPool } from "./workspace-layers.js";

export const BASELINE = "baseline";

export interface SnapshotInfo {
  name: string;
  created_at: string;
  /** Files, directories and links the snapshot stores (a layered workspace's: what changed since its last reset; the baseline's: the seed). */
  entries: number;
  bytes: number;
  baseline: boolean;
}

/** The manifest on disk: the snapshot, and for a layered one its layers (top-most first). */
interface Manifest extends SnapshotInfo {
  layers?: string[];
}

/** Where a layered snapshot is copied from: the live upper (raw) and stack, or for a flattened one, the whole /workspace. */
export interface LayeredSource {
  upper: string;
  stack: string[];
  /** The whole live /workspace at `/workspace`, read-only, and how to reach it. */
  view: UtilityView;
}

export class SnapshotStore {
  constructor(private readonly dir: string) {}

  /** Trees live apart from manifests, so no snapshot name can collide with a manifest file. */
  private treeDir(name: string): string {
    return path.join(this.dir, "trees", name);
  }

  private manifest(name: string): string {
    return path.join(this.dir, `${name}.json`);
  }

  /** Host directory holding a complete snapshot's tree; throws snapshot_not_found otherwise. */
  async tree(name: string): Promise<string> {
    if (!(await readJsonIfExists<SnapshotInfo>(this.manifest(name)))) {
      throw new PyroError("snapshot_not_found", `no snapshot named ${JSON.stringify(name)}`, { hint: "List snapshots with `pyro workspace snapshot list WS` (MCP: snapshot_list)." });
    }
    return this.treeDir(name);
  }

  async list(): Promise<SnapshotInfo[]> {
    return (await this.manifests()).map(({ layers: _layers, ...info }) => info).sort((a, b) => a.created_at.localeCompare(b.created_at));
  }

  /** A layered snapshot's layers (top-most first), null for a plain one; snapshot_not_found when there is none. */
  async stack(name: string): Promise<string[] | null> {
    const m = await readJsonIfExists<Manifest>(this.manifest(name));
    if (!m) await this.tree(name);
    return m?.layers ?? null;
  }

  /** Every layer any snapshot of this workspace names. */
  async namedLayers(): Promise<string[]> {
    return (await this.manifests()).flatMap((m) => m.layers ?? []);
  }

  /**
   * A layered snapshot: the live upper copied (as it is: whiteouts and opaque directories kept)
   * into a new layer over the live stack, or, when the stack is `MAX_STACK` deep, the whole
   * /workspace copied into a layer of its own. `named` runs under the layers lock: it adopts
   * the layer and writes the manifest there, so a collection never sees the layer unnamed.
   */
  async createLayered(name: string, source: LayeredSource, pool: LayerPool, underLayersLock: <T>(fn: () => Promise<T>) => Promise<T>, options: { replace?: boolean } = {}): Promise<SnapshotInfo> {
    await this.claim(name, options.replace === true);
    const staging = await pool.staging();
    try {
      const flatten = source.stack.length + 1 > MAX_STACK;
      const binds: UtilityBind[] = flatten ? [...source.view.binds] : [{ source: source.upper, target: "/workspace", readOnly: true }];
      binds.push({ source: staging, target: "/snapshot", readOnly: false });
      const out = await runUtilityChecked(binds, ["sh", "-c", `set -e\n${copyMeasuringScript("/workspace", "/snapshot", "-a")}`], "snapshot copy", flatten ? { join: source.view.join ?? null } : {});
      const info: SnapshotInfo = { name, created_at: new Date().toISOString(), ...parseTreeSize(out), baseline: name === BASELINE };
      await underLayersLock(async () => {
        const layer = await pool.adopt(staging);
        await writeJsonAtomic(this.manifest(name), { ...info, layers: flatten ? [layer] : [layer, ...source.stack] } satisfies Manifest);
      });
      return info;
    } catch (err) {
      await removeTree(staging);
      throw err;
    }
  }

  /** Writes a layered snapshot's manifest for layers that exist and are named elsewhere already (a baseline, a fork's copy). */
  async writeLayered(info: SnapshotInfo, layers: string[]): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    await writeJsonAtomic(this.manifest(info.name), { ...info, layers } satisfies Manifest);
  }

  /** Every manifest as stored (what `list` shows, and the layers each names). */
  async manifests(): Promise<Manifest[]> {
    const names = await fsp.readdir(this.dir).catch(() => [] as string[]);
    const ms = await Promise.all(names.filter((n) => n.endsWith(".json") && !n.startsWith(".")).map((n) => readJsonIfExists<Manifest>(path.join(this.dir, n))));
    return ms.filter((m): m is Manifest => m !== undefined);
  }

  /** Copies the live workspace directory into a new snapshot. */
  async create(name: string, workspaceDir: string, options: { replace?: boolean } = {}): Promise<SnapshotInfo> {
    await this.claim(name, options.replace === true);
    await this.sweep();
    await fsp.mkdir(path.join(this.dir, "trees"), { recursive: true, mode: 0o700 });
    const tmp = path.join(this.dir, "trees", `.tmp-${name}-${randomBytes(4).toString("hex")}`);
    await fsp.mkdir(tmp, { mode: 0o755 });
    ownByGuestRoot(tmp);
    try {
      const out = await runUtilityChecked(
        [
          { source: workspaceDir, target: "/workspace", readOnly: true },
          { source: tmp, target: "/snapshot", readOnly: false },
        ],
        ["sh", "-c", `set -e\n${copyMeasuringScript("/workspace", "/snapshot", "-a --reflink=auto")}`],
        "snapshot copy",
      );
      await removeTree(this.treeDir(name));
      await fsp.rename(tmp, this.treeDir(name));
      const info: SnapshotInfo = { name, created_at: new Date().toISOString(), ...parseTreeSize(out), baseline: name === BASELINE };
      await writeJsonAtomic(this.manifest(name), info);
      return info;
    } catch (err) {
      await removeTree(tmp);
      throw err;
    }
  }

  /** An empty baseline, without starting a utility sandbox (the common unseeded create). */
  async createEmptyBaseline(): Promise<SnapshotInfo> {
    await fsp.mkdir(this.treeDir(BASELINE), { recursive: true, mode: 0o755 });
    await fsp.chmod(this.treeDir(BASELINE), 0o755);
    ownByGuestRoot(this.treeDir(BASELINE));
    const info: SnapshotInfo = { name: BASELINE, created_at: new Date().toISOString(), entries: 0, bytes: 0, baseline: true };
    await writeJsonAtomic(this.manifest(BASELINE), info);
    return info;
  }

  async delete(name: string): Promise<void> {
    if (name === BASELINE) throw new PyroError("invalid_argument", "the baseline snapshot cannot be deleted", { hint: "Delete the workspace to remove its baseline." });
    await this.tree(name);
    // Manifest first: from this moment the snapshot is not listed and cannot be reset to.
    await fsp.rm(this.manifest(name), { force: true });
    await removeTree(this.treeDir(name));
  }

  /** Replaces the contents of `workspaceDir` with a snapshot's tree. */
  async restore(name: string, workspaceDir: string): Promise<void> {
    const tree = await this.tree(name);
    // Empty the directory in place (its inode is what running sandboxes would have bound),
    // inside the utility sandbox: the host never walks a workspace tree.
    await runUtilityChecked(
      [
        { source: tree, target: "/snapshot", readOnly: true },
        { source: workspaceDir, target: "/workspace", readOnly: false },
      ],
      ["sh", "-c", "find /workspace -mindepth 1 -delete && cp -a --reflink=auto /snapshot/. /workspace/"],
      "snapshot restore",
    );
  }

  /**
   * An empty directory, owned by guest root, that a fork copies the source's snapshot `name`
   * into; it is swept like any unfinished copy until `adopt` renames it into place.
   */
  async staging(name: string): Promise<string> {
    await fsp.mkdir(path.join(this.dir, "trees"), { recursive: true, mode: 0o700 });
    const dir = path.join(this.dir, "trees", `.tmp-${name}-fork`);
    await fsp.mkdir(dir, { mode: 0o755 });
    ownByGuestRoot(dir);
    return dir;
  }

  /** Takes a tree copied into `staging` as the snapshot `info` describes; the manifest last. */
  async adopt(info: SnapshotInfo, staging: string): Promise<void> {
    await fsp.rename(staging, this.treeDir(info.name));
    await writeJsonAtomic(this.manifest(info.name), info);
  }

  /** Refuses a name that is not valid or, unless `replace`, already taken; makes the directory manifests go in. */
  private async claim(name: string, replace: boolean): Promise<void> {
    if (name !== BASELINE) validateName(name, "snapshot name");
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    if (!replace && (await readJsonIfExists(this.manifest(name)))) {
      throw new PyroError("snapshot_exists", `a snapshot named ${JSON.stringify(name)} already exists`, { hint: "Choose another name or delete the old snapshot first." });
    }
  }

  /** Removes copies a crash interrupted (they have no manifest). */
  private async sweep(): Promise<void> {
    const trees = path.join(this.dir, "trees");
    for (const n of await fsp.readdir(trees).catch(() => [] as string[])) {
      if (n.startsWith(".tmp-")) await removeTree(path.join(trees, n));
    }
  }
}
