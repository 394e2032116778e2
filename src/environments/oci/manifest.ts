/**
 * Reading what a registry sends as a manifest: an OCI image index or Docker manifest list
 * (pick `linux/amd64`), or an OCI or Docker schema-2 image manifest (a config and its layers),
 * checked field by field because it comes from the network. Also the limits every pull is held
 * to. Pure; no I/O.
 */
import { PyroError } from "../../shared/errors.js";
import { isSha256Digest } from "./reference.js";

export const MEDIA_TYPES = {
  ociIndex: "application/vnd.oci.image.index.v1+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
} as const;

/** Every manifest kind pyro reads, in the order offered in `Accept`. */
export const MANIFEST_ACCEPT = [
  MEDIA_TYPES.ociIndex,
  MEDIA_TYPES.dockerManifestList,
  MEDIA_TYPES.ociManifest,
  MEDIA_TYPES.dockerManifest,
].join(", ");

export type LayerCompression = "gzip" | "zstd" | "none";

/** Layer media types and how each is compressed; anything else (foreign, nondistributable) is refused. */
const LAYER_MEDIA_TYPES: Record<string, LayerCompression> = {
  "application/vnd.oci.image.layer.v1.tar": "none",
  "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
  "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
  "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
  "application/vnd.docker.image.rootfs.diff.tar": "none",
};

/**
 * What one pull may fetch. Manifests and configs are read into memory, so they are small;
 * layers stream to disk, so their limit is about disk space and a registry that never stops.
 */
export interface PullLimits {
  /** An image manifest or index. Default 4 MiB (the distribution spec's own suggestion). */
  manifestBytes: number;
  /** The image config. Default 4 MiB. */
  configBytes: number;
  /** One layer, compressed, as stored. Default 8 GiB. */
  layerBytes: number;
  /** Config plus every layer. Default 32 GiB. */
  imageBytes: number;
  /** Layers in one image. Default 256 (Docker's own maximum is 127 for overlay). */
  layers: number;
}

export const DEFAULT_PULL_LIMITS: Readonly<PullLimits> = Object.freeze({
  manifestBytes: 4 * 1024 * 1024,
  configBytes: 4 * 1024 * 1024,
  layerBytes: 8 * 1024 * 1024 * 1024,
  imageBytes: 32 * 1024 * 1024 * 1024,
  layers: 256,
});

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** The platform pyro's sandboxes run. */
export const SANDBOX_PLATFORM: Readonly<Platform> = Object.freeze({ os: "linux", architecture: "amd64" });

/** A content descriptor: what to fetch, by digest, and how big it must be. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export interface IndexEntry extends Descriptor {
  platform: Platform | null;
}

export type ManifestDocument =
  | { kind: "index"; mediaType: string; manifests: IndexEntry[] }
  | { kind: "manifest"; mediaType: string; config: Descriptor; layers: Descriptor[] };

/**
 * Parses a manifest or index. `contentType` is the response's header, used when the document
 * does not say its own `mediaType` (optional in OCI). Throws `image_invalid`.
 */
export function parseManifestDocument(bytes: Uint8Array, contentType: string | null, what: string): ManifestDocument {
  const doc = parseJsonObject(bytes, what);
  const headerType = contentType ? contentType.split(";")[0]!.trim().toLowerCase() : "";
  const mediaType = typeof doc.mediaType === "string" ? doc.mediaType : headerType;
  if (doc.schemaVersion === 1 || mediaType.startsWith("application/vnd.docker.distribution.manifest.v1")) {
    throw invalid(what, "it is a Docker schema 1 manifest, which pyro does not read (push the image again with a current Docker or skopeo)");
  }
  if (doc.schemaVersion !== 2) throw invalid(what, "schemaVersion is not 2");

  const isIndex =
    mediaType === MEDIA_TYPES.ociIndex || mediaType === MEDIA_TYPES.dockerManifestList || (mediaType === "" && Array.isArray(doc.manifests));
  if (isIndex) {
    if (!Array.isArray(doc.manifests)) throw invalid(what, "an index without a manifests list");
    const manifests = doc.manifests.map((entry, i) => {
      const descriptor = parseDescriptor(entry, `${what} entry ${i}`);
      const platform = isObject(entry) && isObject(entry.platform) ? parsePlatform(entry.platform) : null;
      return { ...descriptor, platform };
    });
    return { kind: "index", mediaType: mediaType || MEDIA_TYPES.ociIndex, manifests };
  }

  const isManifest =
    mediaType === MEDIA_TYPES.ociManifest || mediaType === MEDIA_TYPES.dockerManifest || (mediaType === "" && "config" in doc && "layers" in doc);
  if (!isManifest) throw invalid(what, `media type ${JSON.stringify(mediaType.slice(0, 100))} is not an image manifest or index`);
  const config = parseDescriptor(doc.config, `${what} config`);
  if (config.mediaType !== MEDIA_TYPES.ociConfig && config.mediaType !== MEDIA_TYPES.dockerConfig) {
    throw invalid(what, `config media type ${JSON.stringify(config.mediaType.slice(0, 100))} is not an image config (an artifact, not an image?)`);
  }
  if (!Array.isArray(doc.layers)) throw invalid(what, "layers is not a list");
  const layers = doc.layers.map((entry, i) => {
    const layer = parseDescriptor(entry, `${what} layer ${i}`);
    if (!(layer.mediaType in LAYER_MEDIA_TYPES)) {
      throw invalid(what, `layer ${i} has media type ${JSON.stringify(layer.mediaType.slice(0, 100))}, which pyro does not unpack (foreign and nondistributable layers are refused)`);
    }
    return layer;
  });
  return { kind: "manifest", mediaType: mediaType || MEDIA_TYPES.ociManifest, config, layers };
}

/** How a layer of this media type is compressed; undefined for types pyro refuses. */
export function layerCompression(mediaType: string): LayerCompression | undefined {
  return LAYER_MEDIA_TYPES[mediaType];
}

/**
 * The index entry for `platform`, preferring one without a variant (amd64 variants v2/v3 are
 * optimisations of the same thing). Throws `image_platform_missing` listing what the index has,
 * without attestation entries (`unknown/unknown`).
 */
export function selectPlatform(reference: string, manifests: IndexEntry[], platform: Platform = SANDBOX_PLATFORM): IndexEntry {
  const fits = manifests.filter(
    (entry) => entry.platform?.os === platform.os && entry.platform.architecture === platform.architecture && (platform.variant === undefined || entry.platform.variant === platform.variant),
  );
  const chosen = fits.find((entry) => entry.platform?.variant === undefined) ?? fits[0];
  if (chosen) {
    if (chosen.mediaType !== MEDIA_TYPES.ociManifest && chosen.mediaType !== MEDIA_TYPES.dockerManifest) {
      throw invalid(`the index of ${reference}`, `its ${platform.os}/${platform.architecture} entry is a ${JSON.stringify(chosen.mediaType.slice(0, 100))}, not an image manifest (nested indexes are not read)`);
    }
    return chosen;
  }
  const platforms = [
    ...new Set(
      manifests
        .filter((entry) => entry.platform && entry.platform.os !== "unknown")
        .map((entry) => [entry.platform!.os, entry.platform!.architecture, entry.platform!.variant].filter(Boolean).join("/")),
    ),
  ].slice(0, 32);
  const wanted = `${platform.os}/${platform.architecture}`;
  throw new PyroError("image_platform_missing", `${reference} has no ${wanted} image (it has: ${platforms.join(", ") || "no platforms"})`, {
    hint: `Use an image built for ${wanted}; pyro's sandboxes run ${wanted} only.`,
    details: { reference, platform: wanted, platforms },
  });
}

/**
 * Checks a resolved image against the limits before anything is downloaded, so an image that
 * is too large stores nothing. Throws `image_too_large`.
 */
export function checkImageLimits(reference: string, config: Descriptor, layers: Descriptor[], limits: PullLimits): void {
  if (layers.length === 0) throw invalid(`the manifest of ${reference}`, "it has no layers");
  if (layers.length > limits.layers) {
    throw tooLarge(reference, `it has ${layers.length} layers, more than the limit of ${limits.layers}`, { layers: layers.length, limit: limits.layers });
  }
  if (config.size > limits.configBytes) {
    throw tooLarge(reference, `its config is ${config.size} bytes, more than the limit of ${limits.configBytes}`, { digest: config.digest, size: config.size, limit: limits.configBytes });
  }
  let total = config.size;
  for (const layer of layers) {
    if (layer.size > limits.layerBytes) {
      throw tooLarge(reference, `layer ${layer.digest} is ${layer.size} bytes, more than the limit of ${limits.layerBytes}`, { digest: layer.digest, size: layer.size, limit: limits.layerBytes });
    }
    total += layer.size;
  }
  if (total > limits.imageBytes) {
    throw tooLarge(reference, `it is ${total} bytes, more than the limit of ${limits.imageBytes}`, { size: total, limit: limits.imageBytes });
  }
}

function tooLarge(reference: string, reason: string, details: Record<string, unknown>): PyroError {
  return new PyroError("image_too_large", `${reference} is too large: ${reason}`, {
    hint: "Use a smaller image; the limits are listed in pyro's public contract.",
    details: { reference, ...details },
  });
}

function parseDescriptor(value: unknown, what: string): Descriptor {
  if (!isObject(value)) throw invalid(what, "it is not an object");
  if (typeof value.mediaType !== "string" || value.mediaType.length === 0 || value.mediaType.length > 256) throw invalid(what, "mediaType is missing");
  if (!isSha256Digest(value.digest)) {
    throw invalid(what, `digest ${JSON.stringify(String(value.digest).slice(0, 100))} is not a sha256 digest (pyro verifies sha256 only)`);
  }
  if (typeof value.size !== "number" || !Number.isSafeInteger(value.size) || value.size < 0) throw invalid(what, "size is not a non-negative integer");
  if (Array.isArray(value.urls) && value.urls.length > 0) throw invalid(what, "it names external urls (a foreign layer), which pyro does not fetch");
  return { mediaType: value.mediaType, digest: value.digest, size: value.size };
}

function parsePlatform(value: Record<string, unknown>): Platform | null {
  if (typeof value.os !== "string" || typeof value.architecture !== "string") return null;
  const platform: Platform = { os: value.os.slice(0, 64), architecture: value.architecture.slice(0, 64) };
  if (typeof value.variant === "string" && value.variant.length > 0) platform.variant = value.variant.slice(0, 64);
  return platform;
}

/** A registry document as a JSON object; anything else is `image_invalid` naming `what`. */
export function parseJsonObject(bytes: Uint8Array, what: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch {
    throw invalid(what, "it is not JSON");
  }
  if (!isObject(doc)) throw invalid(what, "it is not a JSON object");
  return doc;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function invalid(what: string, reason: string): PyroError {
  return new PyroError("image_invalid", `${what} is not usable: ${reason}`, {
    hint: "The registry sent something pyro cannot use as a linux/amd64 container image; check the reference, or rebuild and push the image.",
    details: { what, reason },
  });
}
