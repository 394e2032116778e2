// What pyro accepts from a registry as a manifest, index or config, and what it refuses with
// which code: the checks every pull relies on before it downloads a byte of a layer.
import { describe, it, expect } from "vitest";
import { DEFAULT_PULL_LIMITS, MEDIA_TYPES, checkImageLimits, layerCompression, parseManifestDocument, selectPlatform } from "../../src/environments/oci/manifest.js";
import type { IndexEntry } from "../../src/environments/oci/manifest.js";
import { parseImageConfig } from "../../src/environments/oci/config.js";
import { parseAuthChallenge, tokenFromAnswer, tokenRequestUrl } from "../../src/environments/oci/auth.js";
import { PyroError } from "../../src/shared/errors.js";

const d = (c: string) => `sha256:${c.repeat(64)}`;
const config = { mediaType: MEDIA_TYPES.ociConfig, digest: d("c"), size: 100 };
const layer = { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: d("1"), size: 1000 };
const bytes = (doc: unknown) => Buffer.from(JSON.stringify(doc));

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PyroError);
    return (err as PyroError).code;
  }
  return "no error";
}

describe("manifests from a registry", () => {
  it("reads an OCI image manifest, with the media type from the header when the body has none", () => {
    const doc = parseManifestDocument(bytes({ schemaVersion: 2, config, layers: [layer] }), `${MEDIA_TYPES.ociManifest}; charset=utf-8`, "m");
    expect(doc).toEqual({ kind: "manifest", mediaType: MEDIA_TYPES.ociManifest, config, layers: [layer] });
  });

  it("reads an index and a Docker manifest list", () => {
    for (const mediaType of [MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerManifestList]) {
      const entry = { mediaType: MEDIA_TYPES.ociManifest, digest: d("a"), size: 10, platform: { os: "linux", architecture: "amd64" } };
      const doc = parseManifestDocument(bytes({ schemaVersion: 2, mediaType, manifests: [entry] }), null, "i");
      expect(doc.kind).toBe("index");
    }
  });

  it.each([
    ["not JSON", Buffer.from("{nope")],
    ["an array", bytes([])],
    ["schema 1", bytes({ schemaVersion: 1, fsLayers: [] })],
    ["no schemaVersion", bytes({ mediaType: MEDIA_TYPES.ociManifest, config, layers: [layer] })],
    ["a sha512 digest", bytes({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: { ...config, digest: `sha512:${"a".repeat(128)}` }, layers: [layer] })],
    ["a fractional size", bytes({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config, layers: [{ ...layer, size: 1.5 }] })],
    ["a size as a string", bytes({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config, layers: [{ ...layer, size: "1000" }] })],
    ["a foreign layer with urls", bytes({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config, layers: [{ ...layer, urls: ["http://example.com/x"] }] })],
    ["a nondistributable layer", bytes({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config, layers: [{ ...layer, mediaType: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" }] })],
    ["an artifact config", bytes({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: { ...config, mediaType: "application/vnd.cncf.helm.config.v1+json" }, layers: [layer] })],
    ["an unknown media type", bytes({ schemaVersion: 2, mediaType: "text/html" })],
    ["layers not a list", bytes({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config, layers: {} })],
  ])("refuses a manifest with %s as image_invalid", (_what, body) => {
    expect(code(() => parseManifestDocument(body, MEDIA_TYPES.ociManifest, "m"))).toBe("image_invalid");
  });

  it("knows each layer media type's compression and refuses the rest", () => {
    expect(layerCompression("application/vnd.oci.image.layer.v1.tar+zstd")).toBe("zstd");
    expect(layerCompression("application/vnd.docker.image.rootfs.diff.tar.gzip")).toBe("gzip");
    expect(layerCompression("application/vnd.oci.image.layer.v1.tar")).toBe("none");
    expect(layerCompression("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")).toBeUndefined();
  });
});

describe("picking the platform", () => {
  const entry = (architecture: string, variant?: string, os = "linux"): IndexEntry => ({
    mediaType: MEDIA_TYPES.ociManifest,
    digest: d(architecture === "amd64" ? "a" : "b"),
    size: 10,
    platform: { os, architecture, ...(variant ? { variant } : {}) },
  });

  it("picks linux/amd64, preferring the entry without a variant", () => {
    const plain = entry("amd64");
    expect(selectPlatform("r", [entry("arm64", "v8"), { ...entry("amd64", "v3"), digest: d("3") }, plain])).toBe(plain);
  });

  it("lists what an index has, without attestation entries, when linux/amd64 is missing", () => {
    let err: PyroError | undefined;
    try {
      selectPlatform("r", [entry("arm64", "v8"), entry("s390x"), entry("unknown", undefined, "unknown"), entry("amd64", undefined, "windows")]);
    } catch (e) {
      err = e as PyroError;
    }
    expect(err?.code).toBe("image_platform_missing");
    expect(err?.details?.platforms).toEqual(["linux/arm64/v8", "linux/s390x", "windows/amd64"]);
  });

  it("refuses an amd64 entry that is itself an index", () => {
    expect(code(() => selectPlatform("r", [{ ...entry("amd64"), mediaType: MEDIA_TYPES.ociIndex }]))).toBe("image_invalid");
  });
});

describe("limits", () => {
  it("states the defaults: 4 MiB manifests and configs, 8 GiB layers, 32 GiB images, 256 layers", () => {
    expect(DEFAULT_PULL_LIMITS).toEqual({ manifestBytes: 4 << 20, configBytes: 4 << 20, layerBytes: 8 * 2 ** 30, imageBytes: 32 * 2 ** 30, layers: 256 });
  });

  it("refuses an image over any limit as image_too_large, and one without layers as image_invalid", () => {
    const limits = { ...DEFAULT_PULL_LIMITS };
    expect(code(() => checkImageLimits("r", config, [{ ...layer, size: limits.layerBytes + 1 }], limits))).toBe("image_too_large");
    expect(code(() => checkImageLimits("r", { ...config, size: limits.configBytes + 1 }, [layer], limits))).toBe("image_too_large");
    expect(code(() => checkImageLimits("r", config, Array(257).fill(layer), limits))).toBe("image_too_large");
    expect(code(() => checkImageLimits("r", config, Array(5).fill({ ...layer, size: limits.layerBytes }), limits))).toBe("image_too_large");
    expect(code(() => checkImageLimits("r", config, [], limits))).toBe("image_invalid");
    expect(code(() => checkImageLimits("r", config, [layer], limits))).toBe("no error");
  });
});

describe("image configs", () => {
  const good = { os: "linux", architecture: "amd64", config: { Env: ["PATH=/usr/bin"], WorkingDir: "/app", User: "node", Cmd: ["node"] }, rootfs: { type: "layers", diff_ids: [d("e")] } };

  it("reads the platform, the layers' diff_ids and the run-time settings", () => {
    expect(parseImageConfig(bytes(good), 1, "r")).toEqual({
      os: "linux",
      architecture: "amd64",
      diffIds: [d("e")],
      env: ["PATH=/usr/bin"],
      workingDir: "/app",
      user: "node",
      entrypoint: null,
      cmd: ["node"],
    });
  });

  it("refuses another platform, a diff_ids count that does not match the layers, and a missing rootfs", () => {
    expect(code(() => parseImageConfig(bytes({ ...good, architecture: "arm64" }), 1, "r"))).toBe("image_platform_missing");
    expect(code(() => parseImageConfig(bytes(good), 2, "r"))).toBe("image_invalid");
    expect(code(() => parseImageConfig(bytes({ ...good, rootfs: undefined }), 1, "r"))).toBe("image_invalid");
    expect(code(() => parseImageConfig(Buffer.from("[]"), 1, "r"))).toBe("image_invalid");
  });
});

describe("registry authentication challenges", () => {
  it("parses Docker Hub's Bearer challenge into the token request", () => {
    const challenge = parseAuthChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/node:pull"');
    expect(challenge).toEqual({ scheme: "bearer", params: { realm: "https://auth.docker.io/token", service: "registry.docker.io", scope: "repository:library/node:pull" } });
    const url = tokenRequestUrl(challenge!, "repository:other:pull");
    expect(url?.toString()).toBe("https://auth.docker.io/token?service=registry.docker.io&scope=repository%3Alibrary%2Fnode%3Apull");
  });

  it("parses Basic challenges, quoted commas and escapes, and unquoted values", () => {
    expect(parseAuthChallenge('Basic realm="a, \\"b\\""')).toEqual({ scheme: "basic", params: { realm: 'a, "b"' } });
    expect(parseAuthChallenge("Bearer realm=https://x/token,service=x")?.params).toEqual({ realm: "https://x/token", service: "x" });
    expect(parseAuthChallenge("")).toBeUndefined();
    expect(parseAuthChallenge(`Bearer realm="${"x".repeat(10_000)}"`)).toBeUndefined();
  });

  it("takes token or access_token from a token answer and refuses tokens that could split headers", () => {
    expect(tokenFromAnswer('{"token":"abc"}')).toBe("abc");
    expect(tokenFromAnswer('{"access_token":"def"}')).toBe("def");
    expect(tokenFromAnswer('{"token":"a\\r\\nX-Evil: 1"}')).toBeUndefined();
    expect(tokenFromAnswer("not json")).toBeUndefined();
    expect(tokenRequestUrl({ scheme: "bearer", params: { realm: "file:///etc/passwd" } }, "s")).toBeUndefined();
  });
});
