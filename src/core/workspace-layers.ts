/**
 * The layered /workspace: how a workspace's files lie on disk, and the one place that knows it.
 *
 * A layered workspace's /workspace is an overlay, mounted inside its sandbox's own mount
 * namespace, of read-only *layers* under a live *upper* directory:
 *
 *   <home>/workspace-layers/<layer>/           read-only layers: a seed, or what changed up to a snapshot
 *   workspaces/<id>/workspace/upper-<gen>/     what changed since the layers (overlay form:
 *   workspaces/<id>/workspace/work-<gen>/      whiteouts, opaque directories), and overlayfs's work dir
 *
 * The record names the live stack (`workspace_layers`, top-most first) and the upper's
 * generation (`workspace_upper`); each snapshot's manifest names its own stack. So:
 *
 * - a snapshot copies the upper into a new layer and names that layer over the live stack:
 *   it costs what changed since the last reset, not the tree;
 * - a reset names a snapshot's stack as the live one over a fresh, empty upper: no copy;
 * - a diff compares two overlays only where the layers they do not share hold entries;
 * - a fork copies the upper into a new layer and shares every other layer.
 *
 * Layers are shared between a workspace, its snapshots and its forks, so none belongs to one of
 * them: a layer is removed when no record and no snapshot manifest names it (`collect`), under
 * one lock that every step making a layer named also holds. A layer is made in a `.tmp-` directory
 * and renamed into place only when complete, then named; one a crash left unnamed is collected.
 *
 * Workspaces an earlier pyro made keep their plain layout (a directory bound at /workspace,
 * full-tree snapshots) and are still read that way (`isLayered`).
 *
 * The kernel limits an overlay to 500 layers; a stack that reaches `MAX_STACK` is flattened by
 * the next snapshot (a full copy, once) so the chain of snapshot-of-reset-to-snapshot cannot grow
 * without end.
 */
import fsp from "node:fs/promises";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { ownByGuestRoot } from "../runtime/confine/launch.js";
import { removeTrees } from "../runtime/confine/trees.js";
import { pidAlive } from "../shared/process.js";
import type { WorkspaceRecord } from "./types.js";

/** The deepest live stack a snapshot stacks onto; beyond it the snapshot is a flattened copy. */
export const MAX_STACK = 64;

const LAYER_ID = /^[0-9a-f]{16}$/;
const GENERATION = /^[0-9a-f]{8}$/;

/** A layered workspace's record fields. */
export interface LayeredRecord extends WorkspaceRecord {
  workspace_layout: "layers";
  workspace_layers: string[];
  workspace_upper: string;
}

export function isLayered(record: WorkspaceRecord): record is LayeredRecord {
  return record.workspace_layout === "layers";
}

/** A fresh generation name for an upper and its work directory. */
export function newGeneration(): string {
  return randomBytes(4).toString("hex");
}

/** The live upper and work directories of generation `gen` inside the workspace directory. */
export function upperDirs(workspaceDir: string, gen: string): { upper: string; work: string } {
  if (!GENERATION.test(gen)) throw new Error(`not an upper generation: ${gen}`);
  return { upper: path.join(workspaceDir, `upper-${gen}`), work: path.join(workspaceDir, `work-${gen}`) };
}

/**
 * Makes the empty upper and work directories of `gen`, owned by guest root. The upper's mode is
 * /workspace's (every guest user searches it); overlayfs wants the work directory empty.
 */
export async function makeUpper(workspaceDir: string, gen: string): Promise<{ upper: string; work: string }> {
  const dirs = upperDirs(workspaceDir, gen);
  await fsp.mkdir(dirs.upper, { mode: 0o755 });
  await fsp.chmod(dirs.upper, 0o755);
  await fsp.mkdir(dirs.work, { mode: 0o700 });
  for (const d of [dirs.upper, dirs.work]) ownByGuestRoot(d);
  return dirs;
}

/**
 * Every upper and work directory in the workspace directory but the live generation's: those a
 * reset replaced, and those a killed reset made and never named. For `removeTrees`.
 */
export async function staleUppers(workspaceDir: string, live: string): Promise<string[]> {
  const names = await fsp.readdir(workspaceDir).catch(() => [] as string[]);
  return names
    .filter((name) => {
      const m = /^(upper|work)-([0-9a-f]{8})$/.exec(name);
      return m !== null && m[2] !== live;
    })
    .map((name) => path.join(workspaceDir, name));
}

/** The pool of workspace layers under the state directory. */
export class LayerPool {
  constructor(readonly dir: string) {}

  path(id: string): string {
    if (!LAYER_ID.test(id)) throw new Error(`not a workspace layer id: ${id}`);
    return path.join(this.dir, id);
  }

  /**
   * An empty directory, owned by guest root, for a layer to be copied into; named by this
   * process so `collect` leaves it alone while the process lives.
   */
  async staging(): Promise<string> {
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const dir = path.join(this.dir, `.tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
    await fsp.mkdir(dir, { mode: 0o755 });
    ownByGuestRoot(dir);
    return dir;
  }

  /** Takes a complete staging directory as a new layer; returns its id. Call under the layers lock, and name it before releasing it. */
  async adopt(staging: string): Promise<string> {
    const id = randomBytes(8).toString("hex");
    await fsp.rename(staging, this.path(id));
    return id;
  }

  /**
   * Removes every layer that `named` does not contain, and staging directories whose process is
   * gone. Call under the layers lock, with `named` read under it.
   */
  async collect(named: Set<string>): Promise<void> {
    const doomed = (await fsp.readdir(this.dir).catch(() => [] as string[])).filter((name) => {
      const tmp = /^\.tmp-(\d+)-/.exec(name);
      return tmp ? !pidAlive(Number(tmp[1])) : LAYER_ID.test(name) && !named.has(name);
    });
    await removeTrees(doomed.map((name) => path.join(this.dir, name)));
  }
}
