/**
 * A real registry on the loopback, for the image tests and the image-pull benchmark: Debian's
 * `docker-registry` (the distribution server) on 127.0.0.1 with its own temporary storage,
 * optionally behind htpasswd; and a small pusher that speaks the distribution API (blob uploads,
 * manifest PUT) to fill it with images built here (tar layers, gzip or zstd, OCI or Docker media
 * types, indexes). Nothing here reaches any address but 127.0.0.1. Not part of the product:
 * test/ imports it as TypeScript, scripts/bench.mjs bundles it when it runs.
 */
import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { gzipSync } from "node:zlib";

export const OCI = {
  index: "application/vnd.oci.image.index.v1+json",
  manifest: "application/vnd.oci.image.manifest.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  layerTar: "application/vnd.oci.image.layer.v1.tar",
  layerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  layerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
};
export const DOCKER = {
  list: "application/vnd.docker.distribution.manifest.list.v2+json",
  manifest: "application/vnd.docker.distribution.manifest.v2+json",
  config: "application/vnd.docker.container.image.v1+json",
  layerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
};

export function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

export interface LocalRegistry {
  /** host:port, e.g. `127.0.0.1:41234`. */
  host: string;
  storage: string;
  /** Basic credentials the pusher uses when the registry has htpasswd. */
  auth?: { username: string; password: string };
  stop(): Promise<void>;
}

/** Starts docker-registry on a free 127.0.0.1 port; with `htpasswd`, it requires those credentials. */
export async function startRegistry(options: { htpasswd?: { username: string; password: string } } = {}): Promise<LocalRegistry> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-oci-registry-"));
  const storage = path.join(dir, "storage");
  fs.mkdirSync(storage);
  const port = await freePort();
  let auth = "";
  if (options.htpasswd) {
    const line = spawnSync("htpasswd", ["-Bbn", options.htpasswd.username, options.htpasswd.password], { encoding: "utf8" });
    if (line.status !== 0) throw new Error(`htpasswd failed: ${line.stderr}`);
    fs.writeFileSync(path.join(dir, "htpasswd"), line.stdout.trim() + "\n");
    auth = `auth:\n  htpasswd:\n    realm: pyro-test\n    path: ${path.join(dir, "htpasswd")}\n`;
  }
  const config = path.join(dir, "config.yml");
  fs.writeFileSync(
    config,
    `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${storage}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n${auth}`,
  );
  const child: ChildProcess = spawn("docker-registry", ["serve", config], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const host = `127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      const res = await fetch(`http://${host}/v2/`);
      await res.body?.cancel();
      if (res.status === 200 || res.status === 401) break;
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`docker-registry did not start: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    host,
    storage,
    ...(options.htpasswd ? { auth: options.htpasswd } : {}),
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await exited;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A layer: a tar of `files` (path → content; a path ending in '/' is a directory), plus what
 * `prepare` makes in the directory (links, modes), compressed.
 */
export function makeLayer(
  files: Record<string, string | Uint8Array>,
  compression: "gzip" | "zstd" | "none",
  prepare?: (dir: string) => void,
): { tar: Buffer; blob: Buffer } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-oci-layer-"));
  try {
    for (const [name, content] of Object.entries(files)) {
      const target = path.join(dir, name);
      if (name.endsWith("/")) fs.mkdirSync(target, { recursive: true });
      else {
        fs.mkdirSync(path.dirname(target), { recursive: true });
        fs.writeFileSync(target, content);
      }
    }
    prepare?.(dir);
    const tar = spawnSync("tar", ["-C", dir, "--sort=name", "--numeric-owner", "--owner=0", "--group=0", "--mtime=@0", "-cf", "-", "."], { maxBuffer: 1 << 30 });
    if (tar.status !== 0) throw new Error(`tar failed: ${tar.stderr}`);
    const plain = tar.stdout;
    if (compression === "none") return { tar: plain, blob: plain };
    if (compression === "gzip") return { tar: plain, blob: gzipSync(plain) };
    const zstd = spawnSync("zstd", ["-q", "-c"], { input: plain, maxBuffer: 1 << 30 });
    if (zstd.status !== 0) throw new Error(`zstd failed: ${zstd.stderr}`);
    return { tar: plain, blob: zstd.stdout };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export interface PushedBlob {
  mediaType: string;
  digest: string;
  size: number;
}

/** Speaks the distribution API's push side: monolithic blob uploads and manifest PUTs. */
export class Pusher {
  constructor(private readonly registry: LocalRegistry) {}

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    const auth = this.registry.auth;
    return { ...extra, ...(auth ? { authorization: `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString("base64")}` } : {}) };
  }

  async blob(repository: string, bytes: Uint8Array, mediaType: string): Promise<PushedBlob> {
    const digest = sha256(bytes);
    const start = await fetch(`http://${this.registry.host}/v2/${repository}/blobs/uploads/`, { method: "POST", headers: this.headers() });
    await start.body?.cancel();
    if (start.status !== 202) throw new Error(`upload start: HTTP ${start.status}`);
    const location = new URL(start.headers.get("location")!, `http://${this.registry.host}`);
    location.searchParams.set("digest", digest);
    const put = await fetch(location, {
      method: "PUT",
      headers: this.headers({ "content-type": "application/octet-stream", "content-length": String(bytes.length) }),
      body: bytes,
    });
    await put.body?.cancel();
    if (put.status !== 201) throw new Error(`upload: HTTP ${put.status}`);
    return { mediaType, digest, size: bytes.length };
  }

  async manifest(repository: string, reference: string, document: unknown, mediaType: string): Promise<PushedBlob> {
    const bytes = Buffer.from(JSON.stringify(document));
    const res = await fetch(`http://${this.registry.host}/v2/${repository}/manifests/${reference}`, {
      method: "PUT",
      headers: this.headers({ "content-type": mediaType }),
      body: bytes,
    });
    const text = await res.text();
    if (res.status !== 201) throw new Error(`manifest PUT: HTTP ${res.status} ${text}`);
    return { mediaType, digest: sha256(bytes), size: bytes.length };
  }

  /**
   * Pushes a single-platform image: its layers (bottom first), a config with their diff_ids
   * and `options.config` as its run-time settings, and the manifest under `tag` (also reachable
   * by digest).
   */
  async image(
    repository: string,
    tag: string,
    layers: { tar: Buffer; blob: Buffer; mediaType: string }[],
    options: { docker?: boolean; architecture?: string; config?: Record<string, unknown> } = {},
  ): Promise<{ manifest: PushedBlob; config: PushedBlob; layers: PushedBlob[] }> {
    const types = options.docker ? { manifest: DOCKER.manifest, config: DOCKER.config } : { manifest: OCI.manifest, config: OCI.config };
    const pushedLayers: PushedBlob[] = [];
    for (const layer of layers) pushedLayers.push(await this.blob(repository, layer.blob, layer.mediaType));
    const config = {
      architecture: options.architecture ?? "amd64",
      os: "linux",
      config: options.config ?? { Env: ["PATH=/usr/local/bin:/usr/bin:/bin"], WorkingDir: "/" },
      rootfs: { type: "layers", diff_ids: layers.map((layer) => sha256(layer.tar)) },
    };
    const pushedConfig = await this.blob(repository, Buffer.from(JSON.stringify(config)), types.config);
    const manifest = await this.manifest(repository, tag, { schemaVersion: 2, mediaType: types.manifest, config: pushedConfig, layers: pushedLayers }, types.manifest);
    return { manifest, config: pushedConfig, layers: pushedLayers };
  }

  /** Pushes an index (OCI) or manifest list (Docker) over already pushed manifests. */
  async index(repository: string, tag: string, entries: { manifest: PushedBlob; architecture: string }[], options: { docker?: boolean } = {}): Promise<PushedBlob> {
    const mediaType = options.docker ? DOCKER.list : OCI.index;
    return this.manifest(
      repository,
      tag,
      {
        schemaVersion: 2,
        mediaType,
        manifests: entries.map((entry) => ({ ...entry.manifest, platform: { os: "linux", architecture: entry.architecture } })),
      },
      mediaType,
    );
  }
}
