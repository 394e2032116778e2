/**
 * Public surface of the environments module: the catalog, the cache (`EnvironmentStore`) and
 * mirror detection. Other layers import from here only, never from the files behind it.
 */
export { CATALOG, isValidEnvironmentName } from "./catalog.js";
export type { CatalogEntry } from "./catalog.js";
export { detectDebianMirror, DEFAULT_DEBIAN_MIRROR } from "./mirror.js";
export { EnvironmentStore, BUILDER_VERSION, canonicalEnvironmentName } from "./store.js";
export type { EnvironmentSummary, EnvironmentManifest, ImageEnvironmentInfo, PullProgress, PullOptions, ImportOptions } from "./store.js";
export { isImageReference } from "./oci/reference.js";
export { publicManifest, publicSummary } from "./public.js";
export type { EnvironmentDetails, EnvironmentListEntry, ImageDetails } from "./public.js";
