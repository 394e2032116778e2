/**
 * The curated environment catalog and the rules for environment names. Names and descriptions
 * are public contract (CLI, SDK, MCP all show them verbatim). Pure; no I/O.
 */

export interface CatalogEntry {
  /** Public name, e.g. `debian:12`. */
  name: string;
  description: string;
  /** The environment this one is layered on, or null for a full root filesystem. */
  parent: string | null;
  /** Debian packages this layer adds on top of its parent (or, for the base, on top of minbase). */
  packages: string[];
}

/**
 * Ordered parents-first, so walking it front to back never meets a child before its parent.
 * Each derived entry names only what its own layer adds: the chain base → debian:12 →
 * debian:12-build shares one debootstrapped root instead of three full builds.
 */
export const CATALOG: readonly CatalogEntry[] = Object.freeze([
  {
    name: "debian:12-base",
    description: "Minimal Debian 12 environment for shell and core Unix tooling",
    parent: null,
    packages: [],
  },
  {
    name: "debian:12",
    description: "Debian 12 environment with Git preinstalled for common agent workflows",
    parent: "debian:12-base",
    packages: ["git", "ca-certificates"],
  },
  {
    name: "debian:12-build",
    description: "Debian 12 environment with Git and common build tools preinstalled",
    parent: "debian:12",
    packages: ["build-essential", "make", "python3", "pkg-config"],
  },
]);

/** The Debian suite every catalog environment is built from. */
export const DEBIAN_SUITE = "bookworm";

/**
 * `family[:tag]`, lower case. The character set keeps a name safe to show in a shell line and
 * to turn into a file name (see `manifestFileName`); the length cap keeps error messages and
 * file names bounded.
 */
const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]*(:[a-z0-9._-]+)?$/;
const NAME_MAX_LENGTH = 128;

export function isValidEnvironmentName(name: string): boolean {
  return name.length <= NAME_MAX_LENGTH && NAME_PATTERN.test(name);
}

export function catalogEntry(name: string): CatalogEntry | undefined {
  return CATALOG.find((entry) => entry.name === name);
}

export function catalogNames(): string[] {
  return CATALOG.map((entry) => entry.name);
}

/**
 * The manifest file name for an environment. `:` becomes `@`, a character names cannot
 * contain, so `debian:12` and a custom `debian_12` can never share a file.
 */
export function manifestFileName(name: string): string {
  return `${name.replace(":", "@")}.json`;
}
