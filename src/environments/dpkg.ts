/**
 * The installed-package list of an environment, read from dpkg's status database in the layer
 * files directly: no mount, no process inside the root. Parsing is pure; reading refuses
 * symlinks and caps the file size, since imported layers are untrusted.
 */
import fs from "node:fs/promises";
import { constants as fsConstants } from "node:fs";
import path from "node:path";
import { lstatInside } from "./rootfs.js";

const STATUS_PATH = "var/lib/dpkg/status";
/** A full Debian desktop's status file is ~5 MB; anything far larger is not a real one. */
const STATUS_MAX_BYTES = 64 * 1024 * 1024;

/** `name=version` of every package dpkg considers installed, sorted; what `dpkg-query -W` shows. */
export function parseDpkgStatus(text: string): string[] {
  const packages = new Set<string>();
  for (const stanza of text.split(/\n\s*\n/)) {
    let name: string | undefined;
    let version: string | undefined;
    let installed = false;
    for (const line of stanza.split("\n")) {
      if (line.startsWith("Package:")) name = line.slice(8).trim();
      else if (line.startsWith("Version:")) version = line.slice(8).trim();
      else if (line.startsWith("Status:")) installed = line.slice(7).trim().split(/\s+/)[2] === "installed";
    }
    if (name && version && installed) packages.add(`${name}=${version}`);
  }
  return [...packages].sort();
}

/**
 * Looks through the layers top-most first, as overlayfs would: the first layer holding the
 * status file wins (a derived layer has its own copy-up of it), a whiteout ends the search.
 * Returns [] for roots without dpkg.
 */
export async function readInstalledPackages(layersTopFirst: string[]): Promise<string[]> {
  for (const layer of layersTopFirst) {
    const found = await lstatInside(layer, STATUS_PATH);
    if (found.kind === "whiteout") return [];
    if (found.kind !== "found") continue;
    if (!found.stats.isFile() || found.stats.size > STATUS_MAX_BYTES) return [];
    const handle = await fs.open(path.join(layer, STATUS_PATH), fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
    try {
      const text = await handle.readFile({ encoding: "utf8" });
      return parseDpkgStatus(text);
    } finally {
      await handle.close();
    }
  }
  return [];
}
