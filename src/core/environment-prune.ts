/**
 * `env prune`: removes cached environments no workspace uses (and the image blobs no remaining
 * environment was pulled from), then the VM root images no
 * workspace's pinned layers and no remaining environment need. Decided under the registry
 * lock, the same lock a create holds while it pins its environment's layers, so a prune can
 * never remove what a workspace being created is about to use.
 */
import type { EnvironmentStore } from "../environments/index.js";
import type { StateStore } from "./store.js";
import { pruneBackendImages } from "../runtime/backends.js";

export async function pruneEnvironments(home: string, store: StateStore, environments: EnvironmentStore): Promise<{ removed: string[]; freed_bytes: number }> {
  await store.init();
  return store.withLock("registry", async () => {
    const records = await store.readAll();
    const inUse = new Set(records.map((r) => r.environment));
    // Every layer a workspace pinned stays too, even when its environment's name moved on.
    const { removed, freedBytes } = await environments.prune(inUse, records.flatMap((r) => r.layers));
    // VM root images follow: kept for every workspace's pinned layers and every environment left.
    const installed = (await environments.list()).filter((e) => e.installed);
    const layerSets = [...records.map((r) => r.layers), ...(await Promise.all(installed.map((e) => environments.layers(e.name))))];
    return { removed, freed_bytes: freedBytes + (await pruneBackendImages(home, layerSets)) };
  });
}
