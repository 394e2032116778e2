// Reading images from files (oci/image-archive.ts): an OCI layout directory or tar and a
// docker save tarball give the record a pull would, with every blob verified; hostile member
// names, missing and tampered blobs, symlinks in a layout, other platforms and archives with
// several images are refused with their codes, and nothing is stored then.
import { describe, it, expect, beforeEach, afterEach } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { importImage } from "../../src/environments/oci/image-archive.js";
import { BlobStore } from "../../src/environments/oci/blobs.js";
import { PyroError } from "../../src/shared/errors.js";
import { OCI, makeLayer, sha256 } from "../oci-registry.js";
import { buildImage, layoutBlob, tarDirectory, writeDockerSave, writeOciLayout } from "../oci-archives.js";
import type { TestImage } from "../oci-archives.js";

const REF = "127.0.0.1:5000/team/app:1";

function image(marker: string, options: { architecture?: string } = {}): TestImage {
  const bottom = makeLayer({ "etc/os-release": `ID=${marker}\n`, "old/gone": "x\n" }, "gzip");
  const top = makeLayer({ "old/.wh.gone": "", "app/marker": `${marker}\n` }, "none");
  return buildImage(
    [
      { ...bottom, mediaType: OCI.layerGzip },
      { ...top, mediaType: OCI.layerTar },
    ],
    options,
  );
}

/** The same image with uncompressed layers, as docker save writes them. */
function plainImage(marker: string): TestImage {
  const bottom = makeLayer({ "etc/os-release": `ID=${marker}\n` }, "none");
  const top = makeLayer({ "app/marker": `${marker}\n` }, "none");
  return buildImage([
    { ...bottom, mediaType: OCI.layerTar },
    { ...top, mediaType: OCI.layerTar },
  ]);
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof PyroError) return err.code;
    throw err;
  }
  throw new Error("expected a failure");
}

describe("importing an image from a file", () => {
  let dir: string;
  let home: string;
  const store = () => new BlobStore(home);

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-image-archive-"));
    home = path.join(dir, "home");
    fs.mkdirSync(home);
  });

  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function expectNothingStored(): Promise<void> {
    expect(await store().listImages()).toEqual([]);
    expect(await store().blobDigests()).toEqual([]);
  }

  it("reads an OCI layout directory into the record a pull gives, every blob stored by digest", async () => {
    const img = image("layout");
    const layout = path.join(dir, "layout");
    writeOciLayout(layout, [{ image: img, refName: "1" }]);
    const record = await importImage(home, REF, layout);
    expect(record.reference).toBe(REF);
    expect(record.digest).toBe(img.manifestDigest);
    expect(record.layers.map((l) => l.digest)).toEqual(img.layers.map((l) => sha256(l.blob)));
    expect(await store().readImage(REF)).toEqual(record);
    const stored = await store().blobDigests();
    for (const digest of [img.manifestDigest, sha256(img.config), ...img.layers.map((l) => sha256(l.blob))]) expect(stored).toContain(digest);
  });

  it("reads the same layout packed as a tar (skopeo's oci-archive), gzipped or not", async () => {
    const img = image("archive");
    const layout = path.join(dir, "layout");
    writeOciLayout(layout, [{ image: img }]);
    const file = path.join(dir, "image.tar");
    tarDirectory(layout, file);
    expect((await importImage(home, REF, file)).digest).toBe(img.manifestDigest);
    const gz = path.join(dir, "image.tgz");
    fs.writeFileSync(gz, (await import("node:zlib")).gzipSync(fs.readFileSync(file)));
    expect((await importImage(home, REF, gz)).digest).toBe(img.manifestDigest);
  });

  it("reads a docker save tarball (legacy layout) and makes an OCI manifest of uncompressed layers", async () => {
    const img = plainImage("docker");
    const file = path.join(dir, "save.tar");
    writeDockerSave(file, [{ image: img, repoTags: ["127.0.0.1:5000/team/app:1"] }]);
    const record = await importImage(home, REF, file);
    expect(record.config.digest).toBe(sha256(img.config));
    expect(record.layers).toEqual(img.layers.map((l) => ({ mediaType: OCI.layerTar, digest: sha256(l.tar), size: l.tar.length })));
    const manifest = JSON.parse(fs.readFileSync(store().blobPath(record.digest), "utf8"));
    expect(sha256(fs.readFileSync(store().blobPath(record.digest)))).toBe(record.digest);
    expect(manifest.layers).toEqual(record.layers);
  });

  it("picks the image named by the reference in a docker save of several, following a shared layer's symlink", async () => {
    const first = plainImage("first");
    const second = buildImage([first.layers[0]!, { ...makeLayer({ "app/marker": "second\n" }, "none"), mediaType: OCI.layerTar }]);
    const file = path.join(dir, "save.tar");
    // Docker Hub names as docker save writes them: `name:tag` means docker.io/library/name:tag.
    writeDockerSave(file, [
      { image: first, repoTags: ["first:1"] },
      { image: second, repoTags: ["second:1"] },
    ]);
    const record = await importImage(home, "docker.io/library/second:1", file);
    expect(record.config.digest).toBe(sha256(second.config));
    expect(await codeOf(importImage(home, REF, file))).toBe("invalid_argument");
  });

  it("picks by ref.name annotation in a layout of several, and otherwise lists the names it has", async () => {
    const a = image("a");
    const b = image("b");
    const layout = path.join(dir, "layout");
    writeOciLayout(layout, [
      { image: a, refName: "a" },
      { image: b, refName: "127.0.0.1:5000/team/app:b" },
    ]);
    expect((await importImage(home, "127.0.0.1:5000/team/app:a", layout)).digest).toBe(a.manifestDigest);
    expect((await importImage(home, "127.0.0.1:5000/team/app:b", layout)).digest).toBe(b.manifestDigest);
    const err = await importImage(home, "127.0.0.1:5000/team/app:c", layout).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PyroError);
    expect((err as PyroError).code).toBe("invalid_argument");
    expect((err as PyroError).message).toContain("127.0.0.1:5000/team/app:b");
  });

  it("takes a reference that pins the image's digest, and refuses one that pins another", async () => {
    const img = image("pinned");
    const layout = path.join(dir, "layout");
    writeOciLayout(layout, [{ image: img }]);
    const pinned = `127.0.0.1:5000/team/app@${img.manifestDigest}`;
    expect((await importImage(home, pinned, layout)).reference).toBe(pinned);
    const other = `127.0.0.1:5000/team/app@sha256:${"0".repeat(64)}`;
    expect(await codeOf(importImage(home, other, layout))).toBe("invalid_argument");
    expect((await store().listImages()).map((r) => r.reference)).toEqual([pinned]);
  });

  it("picks linux/amd64 among platforms, and says which platforms there are when it is absent", async () => {
    const amd = image("amd");
    const arm = image("arm", { architecture: "arm64" });
    const layout = path.join(dir, "layout");
    writeOciLayout(layout, [
      { image: arm, refName: "1", platform: { os: "linux", architecture: "arm64" } },
      { image: amd, refName: "1", platform: { os: "linux", architecture: "amd64" } },
    ]);
    expect((await importImage(home, REF, layout)).digest).toBe(amd.manifestDigest);
    const only = path.join(dir, "arm-only");
    writeOciLayout(only, [{ image: arm, platform: { os: "linux", architecture: "arm64" } }]);
    const home2 = path.join(dir, "home2");
    expect(await codeOf(importImage(home2, REF, only))).toBe("image_platform_missing");
    expect(await new BlobStore(home2).listImages()).toEqual([]);
  });

  it("refuses a tampered layer in a layout and stores nothing", async () => {
    const img = image("tampered");
    const layout = path.join(dir, "layout");
    writeOciLayout(layout, [{ image: img }]);
    const file = layoutBlob(layout, sha256(img.layers[1]!.blob));
    const bytes = fs.readFileSync(file);
    bytes[bytes.length >> 1] = bytes[bytes.length >> 1]! ^ 0xff;
    fs.writeFileSync(file, bytes);
    expect(await codeOf(importImage(home, REF, layout))).toBe("image_digest_mismatch");
    await expectNothingStored();
  });

  it("refuses a layout whose blob is missing, or a symlink, and stores nothing", async () => {
    const img = image("missing");
    const layout = path.join(dir, "layout");
    writeOciLayout(layout, [{ image: img }]);
    const file = layoutBlob(layout, sha256(img.layers[0]!.blob));
    const outside = path.join(dir, "outside");
    fs.renameSync(file, outside);
    expect(await codeOf(importImage(home, REF, layout))).toBe("image_invalid");
    fs.symlinkSync(outside, file);
    expect(await codeOf(importImage(home, REF, layout))).toBe("image_invalid");
    fs.rmSync(file);
    fs.copyFileSync(outside, file);
    fs.rmSync(path.join(layout, "index.json"));
    fs.symlinkSync(path.join(dir, "nowhere.json"), path.join(layout, "index.json"));
    expect(await codeOf(importImage(home, REF, layout))).toBe("image_invalid");
    await expectNothingStored();
  });

  it("refuses a docker save whose layer does not match the config's diff_id, or lacks manifest.json", async () => {
    const img = plainImage("bad");
    const file = path.join(dir, "save.tar");
    writeDockerSave(file, [{ image: img, repoTags: [] }], (root) => {
      const manifest = JSON.parse(fs.readFileSync(path.join(root, "manifest.json"), "utf8"));
      fs.appendFileSync(path.join(root, manifest[0].Layers[1]), Buffer.alloc(512));
    });
    expect(await codeOf(importImage(home, REF, file))).toBe("image_digest_mismatch");
    writeDockerSave(file, [{ image: img, repoTags: [] }], (root) => fs.rmSync(path.join(root, "manifest.json")));
    expect(await codeOf(importImage(home, REF, file))).toBe("image_invalid");
    await expectNothingStored();
  });

  it("refuses archive members with '..' or absolute names, and links leaving the archive", async () => {
    const staged = path.join(dir, "staged");
    fs.mkdirSync(path.join(staged, "a"), { recursive: true });
    fs.writeFileSync(path.join(staged, "a", "x"), "x");
    const file = path.join(dir, "evil.tar");
    // GNU tar keeps '..' in a member name when told to transform it in.
    const tar = (await import("node:child_process")).spawnSync("tar", ["-C", staged, "-cf", file, "--transform", "s,^a/x,../escape,", "a/x"]);
    expect(tar.status).toBe(0);
    expect(await codeOf(importImage(home, REF, file))).toBe("archive_unsafe_entry");
    fs.symlinkSync("../../etc/passwd", path.join(staged, "a", "link"));
    tarDirectory(staged, file);
    expect(await codeOf(importImage(home, REF, file))).toBe("archive_unsafe_entry");
    await expectNothingStored();
  });

  it("refuses a manifest.json over the manifest limit and a layer over the layer limit", async () => {
    const img = plainImage("big");
    const file = path.join(dir, "save.tar");
    writeDockerSave(file, [{ image: img, repoTags: [] }]);
    expect(await codeOf(importImage(home, REF, file, { limits: { manifestBytes: 16 } }))).toBe("image_too_large");
    expect(await codeOf(importImage(home, REF, file, { limits: { layerBytes: 1024 } }))).toBe("image_too_large");
    await expectNothingStored();
  });

  it("refuses a file that is no tar, and a path that does not exist, as invalid_argument", async () => {
    const file = path.join(dir, "junk.tar");
    fs.writeFileSync(file, "this is not a tar archive at all".repeat(40));
    expect(await codeOf(importImage(home, REF, file))).toBe("invalid_argument");
    expect(await codeOf(importImage(home, REF, path.join(dir, "absent")))).toBe("invalid_argument");
  });
});
