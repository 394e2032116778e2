/**
 * The public (snake_case) shape of environment results, shared by the SDK, `--json` and MCP,
 * mapped from the store's internal records. Pure.
 */
import type { EnvironmentManifest, EnvironmentSummary } from "./store.js";

export interface EnvironmentListEntry {
  name: string;
  description: string;
  installed: boolean;
  size_bytes: number | null;
  digest: string | null;
  source: "catalog" | "import" | "image";
  parent: string | null;
}

export interface EnvironmentDetails {
  name: string;
  description: string;
  parent: string | null;
  layers: string[];
  digest: string;
  packages: string[];
  size_bytes: number;
  total_size_bytes: number;
  created_at: string;
  source: "debootstrap" | "import" | "image";
  mirror: string | null;
  builder_version: number;
  /** For an environment made from an image: where it came from, its config and layers; null otherwise. */
  image: ImageDetails | null;
}

/**
 * An image environment's image. Of `config`, `env` is the base environment of every exec,
 * shell and service; `working_dir` and `user` are shown, not applied (commands start in
 * /workspace as the sandbox's root, which is never host root).
 */
export interface ImageDetails {
  reference: string;
  digest: string;
  config: { env: string[]; working_dir: string | null; user: string | null; entrypoint: string[] | null; cmd: string[] | null };
  /** Bottom layer first: compressed blob digest, uncompressed diff_id, compressed size, media type. */
  layers: { digest: string; diff_id: string; size_bytes: number; media_type: string }[];
}

export function publicSummary(s: EnvironmentSummary): EnvironmentListEntry {
  return { name: s.name, description: s.description, installed: s.installed, size_bytes: s.sizeBytes, digest: s.digest, source: s.source, parent: s.parent };
}

export function publicManifest(m: EnvironmentManifest): EnvironmentDetails {
  return {
    name: m.name,
    description: m.description,
    parent: m.parent,
    layers: m.layers,
    digest: m.digest,
    packages: m.packages,
    size_bytes: m.sizeBytes,
    total_size_bytes: m.totalSizeBytes,
    created_at: m.createdAt,
    source: m.source,
    mirror: m.mirror,
    builder_version: m.builderVersion,
    image: m.image
      ? {
          reference: m.image.reference,
          digest: m.image.digest,
          config: {
            env: [...m.image.config.env],
            working_dir: m.image.config.workingDir,
            user: m.image.config.user,
            entrypoint: m.image.config.entrypoint,
            cmd: m.image.config.cmd,
          },
          layers: m.image.layers.map((l) => ({ digest: l.digest, diff_id: l.diffId, size_bytes: l.size, media_type: l.mediaType })),
        }
      : null,
  };
}
