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
  source: "catalog" | "import";
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
  source: "debootstrap" | "import";
  mirror: string | null;
  builder_version: number;
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
  };
}
