/**
 * Image files for the import tests, written the way the real tools write them: an OCI image
 * layout (`oci-layout`, `index.json`, `blobs/sha256/<hex>`), and a `docker save` tarball in the
 * legacy layout (`<id>/layer.tar`, `<config hex>.json`, `manifest.json`), from layers made with
 * makeLayer. Nothing here runs pyro.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { OCI, sha256 } from "./oci-registry.js";

export interface TestLayer {
  tar: Buffer;
  blob: Buffer;
  mediaType: string;
}

/** One image's blobs: config, layers (bottom first), manifest. */
export interface TestImage {
  config: Buffer;
  layers: TestLayer[];
  manifest: Buffer;
  manifestDigest: string;
}

export function buildImage(layers: TestLayer[], options: { architecture?: string; config?: Record<string, unknown> } = {}): TestImage {
  const config = Buffer.from(
    JSON.stringify({
      architecture: options.architecture ?? "amd64",
      os: "linux",
      config: options.config ?? { Env: ["PATH=/usr/local/bin:/usr/bin:/bin"] },
      rootfs: { type: "layers", diff_ids: layers.map((layer) => sha256(layer.tar)) },
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI.manifest,
      config: { mediaType: OCI.config, digest: sha256(config), size: config.length },
      layers: layers.map((layer) => ({ mediaType: layer.mediaType, digest: sha256(layer.blob), size: layer.blob.length })),
    }),
  );
  return { config, layers, manifest, manifestDigest: sha256(manifest) };
}

function writeBlob(dir: string, bytes: Buffer): string {
  const digest = sha256(bytes);
  const file = path.join(dir, "blobs", "sha256", digest.slice("sha256:".length));
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, bytes);
  return file;
}

/**
 * Writes an OCI layout at `dir`: each image's blobs, and index.json listing each manifest with
 * its `org.opencontainers.image.ref.name` (when given) and platform (when given).
 */
export function writeOciLayout(dir: string, images: { image: TestImage; refName?: string; platform?: { os: string; architecture: string } }[]): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  const manifests = images.map(({ image, refName, platform }) => {
    writeBlob(dir, image.config);
    for (const layer of image.layers) writeBlob(dir, layer.blob);
    writeBlob(dir, image.manifest);
    return {
      mediaType: OCI.manifest,
      digest: image.manifestDigest,
      size: image.manifest.length,
      ...(platform ? { platform } : {}),
      ...(refName ? { annotations: { "org.opencontainers.image.ref.name": refName } } : {}),
    };
  });
  fs.writeFileSync(path.join(dir, "index.json"), JSON.stringify({ schemaVersion: 2, mediaType: OCI.index, manifests }));
}

/** The blob file of `digest` in an OCI layout. */
export function layoutBlob(dir: string, digest: string): string {
  return path.join(dir, "blobs", "sha256", digest.slice("sha256:".length));
}

/**
 * Writes a `docker save` tarball (legacy layout) at `file`: per image `<config hex>.json`, one
 * `<n>/layer.tar` per layer (uncompressed, as docker writes them; a layer shared with an
 * earlier image is a symlink to its first copy, as docker writes it), and manifest.json.
 * `edit` may change the directory before it is packed.
 */
export function writeDockerSave(file: string, images: { image: TestImage; repoTags: string[] }[], edit?: (dir: string) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-docker-save-"));
  try {
    const written = new Map<string, string>();
    const manifest = images.map(({ image, repoTags }) => {
      const configName = `${sha256(image.config).slice("sha256:".length)}.json`;
      fs.writeFileSync(path.join(dir, configName), image.config);
      const layers = image.layers.map((layer) => {
        const digest = sha256(layer.tar);
        const id = createLayerId(digest, written.size);
        const member = `${id}/layer.tar`;
        fs.mkdirSync(path.join(dir, id), { recursive: true });
        const first = written.get(digest);
        if (first) fs.symlinkSync(`../${first}`, path.join(dir, member));
        else {
          fs.writeFileSync(path.join(dir, member), layer.tar);
          written.set(digest, member);
        }
        return member;
      });
      return { Config: configName, RepoTags: repoTags, Layers: layers };
    });
    fs.writeFileSync(path.join(dir, "manifest.json"), JSON.stringify(manifest));
    edit?.(dir);
    tarDirectory(dir, file);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function createLayerId(digest: string, n: number): string {
  return sha256(Buffer.from(`${digest}-${n}`)).slice("sha256:".length);
}

/** Packs a directory's contents (not the directory) into a tar at `file`. */
export function tarDirectory(dir: string, file: string, members: string[] = ["."]): void {
  const tar = spawnSync("tar", ["-C", dir, "--sort=name", "-cf", file, ...members]);
  if (tar.status !== 0) throw new Error(`tar failed: ${String(tar.stderr)}`);
}
