// Pulling images from a real registry (Debian's docker-registry on 127.0.0.1) that the tests
// fill with images they build themselves: what lands in the blob store, what is fetched again
// (nothing), how indexes, media types and credentials are handled, and that every kind of bad
// input gets its code and stores nothing.
import { describe, it, expect, beforeAll, afterAll, beforeEach, afterEach } from "vitest";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pullImage } from "../../src/environments/oci/pull.js";
import type { ImagePullProgress } from "../../src/environments/oci/pull.js";
import { BlobStore } from "../../src/environments/oci/blobs.js";
import { parseImageConfig } from "../../src/environments/oci/config.js";
import { unpackLayer } from "../../src/environments/oci/unpack.js";
import { ownByGuestRoot, runConfined } from "../../src/runtime/confine/launch.js";
import { removeTree } from "../../src/runtime/confine/trees.js";
import { expectPyroError } from "../helpers.js";
import { DOCKER, OCI, Pusher, freePort, makeLayer, sha256, startProxy, startRegistry } from "../oci-registry.js";
import type { TestRegistry } from "../oci-registry.js";

/** The blob store's whole content: stored blobs, image records and leftover staging. */
function stored(home: string): { blobs: string[]; images: string[]; staging: string[] } {
  const list = (dir: string) => {
    try {
      return fs.readdirSync(dir).sort();
    } catch {
      return [];
    }
  };
  const blobs = path.join(home, "environments", "blobs");
  return {
    blobs: list(path.join(blobs, "sha256")),
    images: list(path.join(home, "environments", "images")).filter((n) => !n.startsWith(".")),
    staging: list(blobs).filter((n) => n.startsWith(".pull-")),
  };
}

const NOTHING = { blobs: [], images: [], staging: [] };

describe("pulling images from a registry", () => {
  let registry: TestRegistry;
  let pusher: Pusher;
  let home: string;
  /** A three-layer OCI image: gzip, zstd and uncompressed layers, the last one shared with `other`. */
  let threeLayers: Awaited<ReturnType<Pusher["image"]>>;
  const shared = makeLayer({ "etc/shared": "same in both images\n" }, "gzip");

  beforeAll(async () => {
    registry = await startRegistry();
    pusher = new Pusher(registry);
    threeLayers = await pusher.image("team/app", "1", [
      { ...makeLayer({ "bin/": "", "etc/os-release": "ID=test\n" }, "gzip"), mediaType: OCI.layerGzip },
      // Random, so it stays over 1 MiB compressed: the layer the size-limit test trips on.
      { ...makeLayer({ "usr/lib/data": randomBytes(2 * 1024 * 1024).toString("base64") }, "zstd"), mediaType: OCI.layerZstd },
      { ...shared, mediaType: OCI.layerGzip },
      { ...makeLayer({ "etc/plain": "uncompressed layer\n" }, "none"), mediaType: OCI.layerTar },
    ]);
  });

  afterAll(async () => {
    await registry?.stop();
  });

  beforeEach(() => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-oci-pull-"));
  });

  afterEach(() => {
    fs.rmSync(home, { recursive: true, force: true });
  });

  it("pulls a multi-layer OCI image with gzip, zstd and plain layers, storing every blob once under its digest", async () => {
    const events: ImagePullProgress[] = [];
    const record = await pullImage(home, `${registry.host}/team/app:1`, { onProgress: (e) => events.push(e) });

    expect(record.reference).toBe(`${registry.host}/team/app:1`);
    expect(record.digest).toBe(threeLayers.manifest.digest);
    expect(record.config.digest).toBe(threeLayers.config.digest);
    expect(record.layers.map((l) => l.digest)).toEqual(threeLayers.layers.map((l) => l.digest));
    expect(record.layers.map((l) => l.mediaType)).toEqual([OCI.layerGzip, OCI.layerZstd, OCI.layerGzip, OCI.layerTar]);
    expect(record.platform).toEqual({ os: "linux", architecture: "amd64" });

    const store = new BlobStore(home);
    for (const blob of [threeLayers.manifest, threeLayers.config, ...threeLayers.layers]) {
      const file = store.blobPath(blob.digest);
      expect(sha256(fs.readFileSync(file))).toBe(blob.digest);
    }
    expect(stored(home).blobs).toHaveLength(6);
    expect(stored(home).staging).toEqual([]);
    expect(await store.readImage(record.reference)).toEqual(record);

    // One progress line per layer ends `done` with all its bytes, for a CLI line or MCP notification.
    const done = events.filter((e): e is Extract<ImagePullProgress, { phase: "layer" }> => e.phase === "layer" && e.state === "done");
    expect(done.map((e) => e.index).sort()).toEqual([0, 1, 2, 3]);
    for (const e of done) expect(e.bytesDone).toBe(e.bytesTotal);
    expect(events.at(-1)?.phase).toBe("ready");
  });

  it("fetches no blob again on a second pull, and stores a layer two images share once", async () => {
    const proxy = await startProxy(registry);
    try {
      await pullImage(home, `${proxy.host}/team/app:1`);
      const before = proxy.requests.length;
      const events: ImagePullProgress[] = [];
      await pullImage(home, `${proxy.host}/team/app:1`, { onProgress: (e) => events.push(e) });
      const again = proxy.requests.slice(before);
      expect(again.filter((r) => r.path.includes("/blobs/"))).toEqual([]);
      expect(events.filter((e) => e.phase === "layer").every((e) => e.phase === "layer" && e.state === "cached")).toBe(true);

      const other = await pusher.image("team/other", "1", [
        { ...makeLayer({ "etc/other": "other\n" }, "gzip"), mediaType: OCI.layerGzip },
        { ...shared, mediaType: OCI.layerGzip },
      ]);
      const mark = proxy.requests.length;
      await pullImage(home, `${proxy.host}/team/other:1`);
      const fetched = proxy.requests.slice(mark).filter((r) => r.path.includes("/blobs/")).map((r) => r.path.split("/").pop());
      expect(fetched).not.toContain(sha256(shared.blob));
      expect(fetched).toContain(other.layers[0]!.digest);
      // The first image's 6 blobs, plus the second's manifest, config and own layer.
      expect(stored(home).blobs).toHaveLength(9);
      expect(stored(home).images).toHaveLength(2);

      // A reference pinned to a digest that is already pulled needs no registry at all.
      const pinned = `${proxy.host}/team/other@${other.manifest.digest}`;
      await pullImage(home, pinned);
      const quiet = proxy.requests.length;
      await pullImage(home, pinned);
      expect(proxy.requests.length).toBe(quiet);
    } finally {
      await proxy.stop();
    }
  });

  it("keeps the verified blobs of a pull the registry broke off, so the retry fetches only what is missing", async () => {
    const missing = threeLayers.layers[2]!.digest;
    const proxy = await startProxy(registry, { fail: new Set([missing]) });
    try {
      const err = await expectPyroError(pullImage(home, `${proxy.host}/team/app:1`, { concurrency: 1 }), "registry_unreachable");
      expect(err.details?.status).toBe(503);
      expect(stored(home).images).toEqual([]);
      expect(stored(home).blobs).toContain(threeLayers.layers[0]!.digest.slice(7));
      expect(stored(home).blobs).not.toContain(missing.slice(7));
      proxy.behaviour.fail = undefined;
      const mark = proxy.requests.length;
      await pullImage(home, `${proxy.host}/team/app:1`);
      const fetched = proxy.requests.slice(mark).filter((r) => r.path.includes("/blobs/")).map((r) => r.path.split("/").pop());
      expect(fetched).toContain(missing);
      expect(fetched).not.toContain(threeLayers.layers[0]!.digest);
      expect(stored(home).images).toHaveLength(1);
    } finally {
      await proxy.stop();
    }
  });

  it("cancelling a pull mid-download closes the registry connection, keeps the verified blobs and leaves no staging or record", async () => {
    const stalled = threeLayers.layers[1]!.digest;
    const abort = new AbortController();
    let connectionClosed: Promise<void> | undefined;
    const proxy = await startProxy(registry, {
      stall: new Set([stalled]),
      onStall: (_digest, closed) => {
        connectionClosed = closed;
        abort.abort();
      },
    });
    try {
      // One layer at a time: the first is verified before the second stalls halfway.
      const err = await expectPyroError(pullImage(home, `${proxy.host}/team/app:1`, { concurrency: 1, signal: abort.signal }), "environment_build_failed");
      expect(err.details?.cancelled).toBe(true);
      // The download's request was ended, not left to the registry or a timeout.
      await connectionClosed;
      const after = stored(home);
      expect(after.staging).toEqual([]);
      expect(after.images).toEqual([]);
      expect(after.blobs).toContain(threeLayers.layers[0]!.digest.slice(7));
      expect(after.blobs).not.toContain(stalled.slice(7));
    } finally {
      await proxy.stop();
    }
  });

  it("picks linux/amd64 from an OCI index with two platforms", async () => {
    const amd = await pusher.image("team/multi", "amd64", [{ ...makeLayer({ "arch": "amd64\n" }, "gzip"), mediaType: OCI.layerGzip }]);
    const arm = await pusher.image("team/multi", "arm64", [{ ...makeLayer({ "arch": "arm64\n" }, "gzip"), mediaType: OCI.layerGzip }], { architecture: "arm64" });
    const index = await pusher.index("team/multi", "both", [
      { manifest: arm.manifest, architecture: "arm64" },
      { manifest: amd.manifest, architecture: "amd64" },
    ]);
    const record = await pullImage(home, `${registry.host}/team/multi:both`);
    expect(record.digest).toBe(amd.manifest.digest);
    expect(record.indexDigest).toBe(index.digest);
    expect(record.layers.map((l) => l.digest)).toEqual(amd.layers.map((l) => l.digest));
    expect(stored(home).blobs).not.toContain(arm.layers[0]!.digest.slice(7));
    expect(stored(home).blobs).toContain(index.digest.slice(7));
  });

  it("reads Docker schema-2 manifest lists, manifests and layers", async () => {
    const image = await pusher.image("team/docker", "amd64", [{ ...makeLayer({ "etc/docker": "yes\n" }, "gzip"), mediaType: DOCKER.layerGzip }], { docker: true });
    const list = await pusher.index("team/docker", "1", [{ manifest: image.manifest, architecture: "amd64" }], { docker: true });
    const record = await pullImage(home, `${registry.host}/team/docker:1`);
    expect(record.manifestMediaType).toBe(DOCKER.manifest);
    expect(record.indexDigest).toBe(list.digest);
    expect(record.config.mediaType).toBe(DOCKER.config);
    expect(record.layers[0]!.mediaType).toBe(DOCKER.layerGzip);
  });

  it("refuses an index without linux/amd64 with image_platform_missing listing what it has, storing nothing", async () => {
    const arm = await pusher.image("team/armonly", "arm64", [{ ...makeLayer({ "arch": "arm64\n" }, "gzip"), mediaType: OCI.layerGzip }], { architecture: "arm64" });
    await pusher.index("team/armonly", "1", [{ manifest: arm.manifest, architecture: "arm64" }]);
    const err = await expectPyroError(pullImage(home, `${registry.host}/team/armonly:1`), "image_platform_missing");
    expect(err.details?.platforms).toEqual(["linux/arm64"]);
    expect(err.message).toContain("linux/arm64");
    // A single-platform image for another architecture is refused by its config.
    await expectPyroError(pullImage(home, `${registry.host}/team/armonly:arm64`), "image_platform_missing");
    expect(stored(home)).toEqual(NOTHING);
  });

  it("answers an unknown repository, tag or digest with image_not_found, storing nothing", async () => {
    await expectPyroError(pullImage(home, `${registry.host}/team/nosuch:1`), "image_not_found");
    await expectPyroError(pullImage(home, `${registry.host}/team/app:nosuchtag`), "image_not_found");
    await expectPyroError(pullImage(home, `${registry.host}/team/app@sha256:${"0".repeat(64)}`), "image_not_found");
    expect(stored(home)).toEqual(NOTHING);
  });

  it("refuses a blob whose content does not match its digest with image_digest_mismatch, storing nothing", async () => {
    const proxy = await startProxy(registry, { tamper: new Set([threeLayers.layers[1]!.digest]) });
    try {
      const err = await expectPyroError(pullImage(home, `${proxy.host}/team/app:1`), "image_digest_mismatch");
      expect(err.details?.digest).toBe(threeLayers.layers[1]!.digest);
      expect(stored(home)).toEqual(NOTHING);
      // A tampered config is refused the same way.
      proxy.behaviour.tamper = new Set([threeLayers.config.digest]);
      await expectPyroError(pullImage(home, `${proxy.host}/team/app:1`), "image_digest_mismatch");
      expect(stored(home)).toEqual(NOTHING);
    } finally {
      await proxy.stop();
    }
  });

  it("refuses malformed manifests with image_invalid, storing nothing", async () => {
    const manifests = new Map<string, { body: Buffer; contentType: string }>();
    const proxy = await startProxy(registry, { manifests });
    try {
      const cases: [string, unknown][] = [
        ["notjson", "{ this is not json"],
        ["nolayers", { schemaVersion: 2, mediaType: OCI.manifest, config: threeLayers.config }],
        ["baddigest", { schemaVersion: 2, mediaType: OCI.manifest, config: { ...threeLayers.config, digest: "md5:abc" }, layers: threeLayers.layers }],
        ["negativesize", { schemaVersion: 2, mediaType: OCI.manifest, config: threeLayers.config, layers: [{ ...threeLayers.layers[0], size: -1 }] }],
        ["foreign", { schemaVersion: 2, mediaType: OCI.manifest, config: threeLayers.config, layers: [{ ...threeLayers.layers[0], mediaType: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" }] }],
        ["schema1", { schemaVersion: 1, name: "team/app", tag: "1", fsLayers: [] }],
        ["artifact", { schemaVersion: 2, mediaType: OCI.manifest, config: { ...threeLayers.config, mediaType: "application/vnd.example.thing" }, layers: threeLayers.layers }],
        ["emptyindex", { schemaVersion: 2, mediaType: OCI.index }],
      ];
      for (const [tag, doc] of cases) {
        manifests.set(`/v2/team/app/manifests/${tag}`, {
          body: Buffer.from(typeof doc === "string" ? doc : JSON.stringify(doc)),
          contentType: OCI.manifest,
        });
        const err = await expectPyroError(pullImage(home, `${proxy.host}/team/app:${tag}`), "image_invalid");
        expect(err.message.length, tag).toBeLessThan(400);
      }
      // A manifest fetched by digest whose bytes hash to something else is a mismatch.
      manifests.set(`/v2/team/app/manifests/${threeLayers.manifest.digest}`, { body: Buffer.from("{}"), contentType: OCI.manifest });
      await expectPyroError(pullImage(home, `${proxy.host}/team/app@${threeLayers.manifest.digest}`), "image_digest_mismatch");
      expect(stored(home)).toEqual(NOTHING);
    } finally {
      await proxy.stop();
    }
  });

  it("refuses a layer over the limit with image_too_large before downloading anything", async () => {
    const proxy = await startProxy(registry);
    try {
      const err = await expectPyroError(pullImage(home, `${proxy.host}/team/app:1`, { limits: { layerBytes: 1024 * 1024 } }), "image_too_large");
      expect(err.details?.digest).toBe(threeLayers.layers[1]!.digest);
      expect(err.details?.limit).toBe(1024 * 1024);
      expect(proxy.requests.filter((r) => r.path.includes("/blobs/"))).toEqual([]);
      await expectPyroError(pullImage(home, `${proxy.host}/team/app:1`, { limits: { manifestBytes: 64 } }), "image_too_large");
      await expectPyroError(pullImage(home, `${proxy.host}/team/app:1`, { limits: { imageBytes: 1024 } }), "image_too_large");
      expect(stored(home)).toEqual(NOTHING);
    } finally {
      await proxy.stop();
    }
  });

  it("follows a registry's redirect of blobs to loopback storage without sending the storage its token", async () => {
    const storage = await startProxy(registry);
    const proxy = await startProxy(registry, { bearer: true, redirectBlobs: (digest) => `http://${storage.host}/storage/team/app/${digest}` });
    try {
      const record = await pullImage(home, `${proxy.host}/team/app:1`);
      expect(record.digest).toBe(threeLayers.manifest.digest);
      expect(stored(home).blobs).toHaveLength(6);
      // Config and four layers came from the storage, none of them with an Authorization header.
      expect(storage.requests.filter((r) => r.path.startsWith("/storage/"))).toHaveLength(5);
      expect(storage.requests.filter((r) => r.authorization)).toEqual([]);
      expect(proxy.requests.filter((r) => r.path.startsWith("/v2/team/") && r.authorization).length).toBeGreaterThan(0);
    } finally {
      await proxy.stop();
      await storage.stop();
    }
  });

  it("refuses to follow a redirect from a loopback registry to plain HTTP elsewhere, storing nothing", async () => {
    // 192.0.2.1 is TEST-NET-1: the client refuses before connecting, so nothing is ever sent there.
    const proxy = await startProxy(registry, { redirectBlobs: (digest) => `http://192.0.2.1/${digest}` });
    try {
      const err = await expectPyroError(pullImage(home, `${proxy.host}/team/app:1`), "registry_unreachable");
      expect(err.message).toContain("plain HTTP");
      expect(stored(home).images).toEqual([]);
    } finally {
      await proxy.stop();
    }
  });

  it("gets an anonymous Bearer token from the registry's token service (Docker Hub and GHCR style)", async () => {
    const proxy = await startProxy(registry, { bearer: true });
    try {
      const record = await pullImage(home, `${proxy.host}/team/app:1`, { credentials: null });
      expect(record.digest).toBe(threeLayers.manifest.digest);
      expect(proxy.requests.some((r) => r.path === "/token" && !r.authorization)).toBe(true);
    } finally {
      await proxy.stop();
    }
  });

  it("answers a registry that is not listening with registry_unreachable", async () => {
    const port = await freePort();
    await expectPyroError(pullImage(home, `127.0.0.1:${port}/team/app:1`), "registry_unreachable");
    expect(stored(home)).toEqual(NOTHING);
  });
});

describe("pulling from a registry that requires credentials (htpasswd)", () => {
  let registry: TestRegistry;
  let home: string;
  let dockerConfig: string;
  let image: Awaited<ReturnType<Pusher["image"]>>;
  const user = { username: "pyro", password: "s3cret-pass" };

  beforeAll(async () => {
    registry = await startRegistry({ htpasswd: user });
    image = await new Pusher(registry).image("private/app", "1", [{ ...makeLayer({ "etc/private": "yes\n" }, "gzip"), mediaType: OCI.layerGzip }]);
  });

  afterAll(async () => {
    await registry?.stop();
  });

  beforeEach(() => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-oci-auth-"));
    dockerConfig = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-oci-docker-"));
  });

  afterEach(() => {
    fs.rmSync(home, { recursive: true, force: true });
    fs.rmSync(dockerConfig, { recursive: true, force: true });
  });

  const env = () => ({ ...process.env, DOCKER_CONFIG: dockerConfig });

  it("answers image_unauthorized when no credentials are configured, storing nothing", async () => {
    const err = await expectPyroError(pullImage(home, `${registry.host}/private/app:1`, { env: env() }), "image_unauthorized");
    expect(err.details?.credentials).toBe(false);
    expect(stored(home)).toEqual(NOTHING);
  });

  it("pulls with the credentials in the Docker configuration's auths", async () => {
    const auth = Buffer.from(`${user.username}:${user.password}`).toString("base64");
    fs.writeFileSync(path.join(dockerConfig, "config.json"), JSON.stringify({ auths: { [registry.host]: { auth } } }));
    const record = await pullImage(home, `${registry.host}/private/app:1`, { env: env() });
    expect(record.digest).toBe(image.manifest.digest);
  });

  it("answers image_unauthorized when the configured password is wrong, without echoing it", async () => {
    const auth = Buffer.from(`${user.username}:wrong-password`).toString("base64");
    fs.writeFileSync(path.join(dockerConfig, "config.json"), JSON.stringify({ auths: { [`http://${registry.host}/v2/`]: { auth } } }));
    const err = await expectPyroError(pullImage(home, `${registry.host}/private/app:1`, { env: env() }), "image_unauthorized");
    expect(err.details?.credentials).toBe(true);
    expect(JSON.stringify(err.toJSON())).not.toContain("wrong-password");
    expect(stored(home)).toEqual(NOTHING);
  });

  it("pulls with credentials from a credential helper (credHelpers, docker-credential-NAME get)", async () => {
    const bin = path.join(dockerConfig, "bin");
    fs.mkdirSync(bin);
    const helper = path.join(bin, "docker-credential-pyrotest");
    fs.writeFileSync(
      helper,
      `#!/bin/sh\nread server\n[ "$1" = get ] && [ "$server" = "${registry.host}" ] || { echo "credentials not found in native keychain"; exit 1; }\nprintf '{"ServerURL":"%s","Username":"${user.username}","Secret":"${user.password}"}' "$server"\n`,
      { mode: 0o755 },
    );
    fs.writeFileSync(path.join(dockerConfig, "config.json"), JSON.stringify({ credHelpers: { [registry.host]: "pyrotest" } }));
    const record = await pullImage(home, `${registry.host}/private/app:1`, { env: { ...env(), PATH: `${bin}:${process.env.PATH}` } });
    expect(record.digest).toBe(image.manifest.digest);
  });
});

describe("unpacking image layers into overlay layers", () => {
  let registry: TestRegistry;
  let home: string;

  beforeAll(async () => {
    registry = await startRegistry();
  });

  afterAll(async () => {
    await registry?.stop();
  });

  beforeEach(() => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-oci-unpack-"));
  });

  afterEach(async () => {
    await removeTree(home);
  });

  /** Every path of the merged overlay of `layers` (top first), with file contents and link targets. */
  async function mergedTree(layers: string[]): Promise<string[]> {
    const script = `cd "$1" && find . -mindepth 1 | LC_ALL=C sort | while IFS= read -r p; do
      if [ -L "$p" ]; then echo "$p -> $(readlink "$p")";
      elif [ -d "$p" ]; then echo "$p/";
      elif [ -f "$p" ]; then echo "$p = $(cat "$p") $(stat -c %a "$p")";
      else echo "$p ? $(stat -c %F "$p")"; fi; done`;
    const result = await runConfined((launch) => ["sh", "-c", script, "sh", launch.overlay(layers, null, null)]);
    expect(result.code, result.stderr).toBe(0);
    return result.stdout.trim().split("\n");
  }

  it("gives exactly the tree the OCI image spec defines for layers that delete, replace and hide files", async () => {
    const layers = [
      // Layer 1: the base.
      makeLayer({ "a/x": "ax", "a/y": "ay", "b/old1": "b1", "b/sub/old2": "b2", c: "c-file", "d/e/f": "def", keep: "v1", "bin/": "" }, "gzip", (dir) => {
        fs.writeFileSync(path.join(dir, "bin/tool"), "tool");
        fs.chmodSync(path.join(dir, "bin/tool"), 0o4755);
        fs.linkSync(path.join(dir, "bin/tool"), path.join(dir, "bin/tool-hardlink"));
        fs.symlinkSync("/bin/tool", path.join(dir, "tool-abs-link"));
      }),
      // Layer 2: deletes a file and a file in a directory, empties b (opaque) but adds to it,
      // replaces directory d by a new d, and changes keep.
      makeLayer({ ".wh.c": "", "a/.wh.x": "", "b/.wh..wh..opq": "", "b/new": "bn", ".wh.d": "", "d/new2": "dn", keep: "v2" }, "zstd"),
      // Layer 3: c comes back as a directory; a/y is deleted and a/ gets a new file.
      makeLayer({ "c/inner": "ci", "a/.wh.y": "", "a/z": "az" }, "none"),
    ];
    const pushed = await new Pusher(registry).image("team/layers", "1", [
      { ...layers[0]!, mediaType: OCI.layerGzip },
      { ...layers[1]!, mediaType: OCI.layerZstd },
      { ...layers[2]!, mediaType: OCI.layerTar },
    ]);
    const record = await pullImage(home, `${registry.host}/team/layers:1`);
    const store = new BlobStore(home);
    const config = parseImageConfig(fs.readFileSync(store.blobPath(record.config.digest)), record.layers.length, record.reference);

    const dirs: string[] = [];
    for (const [i, layer] of record.layers.entries()) {
      const dir = path.join(home, `layer${i}`);
      fs.mkdirSync(dir, { mode: 0o755 });
      ownByGuestRoot(dir);
      await unpackLayer(record.reference, store.blobPath(layer.digest), layer, config.diffIds[i]!, dir);
      dirs.push(dir);
    }
    expect(pushed.layers).toHaveLength(3);

    expect(await mergedTree([...dirs].reverse())).toEqual([
      "./a/",
      "./a/z = az 644",
      "./b/",
      "./b/new = bn 644",
      "./bin/",
      "./bin/tool = tool 4755",
      "./bin/tool-hardlink = tool 4755",
      "./c/",
      "./c/inner = ci 644",
      "./d/",
      "./d/new2 = dn 644",
      "./keep = v2 644",
      "./tool-abs-link -> /bin/tool",
    ]);
  });

  it("refuses a layer whose content does not match the config's diff_id", async () => {
    const layer = makeLayer({ "etc/x": "x" }, "gzip");
    await new Pusher(registry).image("team/diffid", "1", [{ ...layer, mediaType: OCI.layerGzip }]);
    const record = await pullImage(home, `${registry.host}/team/diffid:1`);
    const dir = path.join(home, "layer");
    fs.mkdirSync(dir, { mode: 0o755 });
    ownByGuestRoot(dir);
    const err = await expectPyroError(
      unpackLayer(record.reference, new BlobStore(home).blobPath(record.layers[0]!.digest), record.layers[0]!, `sha256:${"0".repeat(64)}`, dir),
      "image_digest_mismatch",
    );
    expect(err.details?.actual).toBe(sha256(layer.tar));
  });
});
