// Images imported from files, end to end, offline: a docker save tarball (legacy layout) and an
// OCI layout directory the test writes itself from two layers (a whiteout and a replaced file
// in the upper one), and the same image as skopeo writes it (`oci:DIR` and `docker-archive:`)
// from Debian's docker-registry on 127.0.0.1, each imported through the CLI or the SDK and then
// run: the sandbox sees exactly the OCI tree, and `env list` shows the image. Bad files get
// their codes and leave `env list` as it was. Uses a state directory of its own.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Pyro } from "../../src/index.js";
import { removeTree } from "../../src/runtime/confine/trees.js";
import { cli, expectPyroError } from "../helpers.js";
import { OCI, Pusher, makeLayer, sha256, startRegistry } from "../oci-registry.js";
import type { TestRegistry } from "../oci-registry.js";
import { buildImage, layoutBlob, tarDirectory, writeDockerSave, writeOciLayout } from "../oci-archives.js";
import type { TestImage, TestLayer } from "../oci-archives.js";

const BUSYBOX = "/bin/busybox";
const TIMEOUT = 240_000;

/** Bottom first: busybox and files, then a whiteout, a replaced file and a new one. */
function layers(compression: "gzip" | "none"): TestLayer[] {
  const bottom = makeLayer(
    { "bin/": "", "keep": "v1\n", "old/gone": "deleted above\n", "old/kept": "still here\n" },
    compression,
    (dir) => fs.copyFileSync(BUSYBOX, path.join(dir, "bin", "busybox")),
  );
  const top = makeLayer({ "old/.wh.gone": "", "keep": "v2\n", "srv/marker": "imported\n" }, "none");
  return [
    { ...bottom, mediaType: compression === "gzip" ? OCI.layerGzip : OCI.layerTar },
    { ...top, mediaType: OCI.layerTar },
  ];
}

const CONFIG = { Env: ["PATH=/bin"] };

describe("env import of docker save tarballs and OCI layouts", () => {
  let dir: string;
  let home: string;
  let pyro: Pyro;
  let saved: TestImage;
  let layout: TestImage;
  const dockerRef = "registry.example/import/saved:1";
  const layoutRef = "registry.example/import/layout:1";

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-oci-import-"));
    home = path.join(dir, "home");
    fs.mkdirSync(home);
    pyro = new Pyro({ home });
    saved = buildImage(layers("none"), { config: CONFIG });
    writeDockerSave(path.join(dir, "saved.tar"), [{ image: saved, repoTags: [dockerRef] }]);
    layout = buildImage(layers("gzip"), { config: CONFIG });
    writeOciLayout(path.join(dir, "layout"), [{ image: layout, refName: "1" }]);
  }, TIMEOUT);

  afterAll(async () => {
    if (home) await removeTree(home);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  }, TIMEOUT);

  /** What `pyro run REF -- busybox …` shows of the tree: the OCI spec's result of the two layers. */
  function expectImageTree(reference: string): void {
    const run = (args: string[]) => {
      const r = cli(home, ["run", reference, "--json", "--", "busybox", ...args], { timeoutMs: TIMEOUT });
      expect(r.code, r.stderr).toBe(0);
      return r.json().stdout as string;
    };
    expect(run(["cat", "/keep", "/srv/marker"])).toBe("v2\nimported\n");
    expect(run(["ls", "-A", "/old"]).split("\n").filter(Boolean)).toEqual(["kept"]);
  }

  function listed(reference: string) {
    const r = cli(home, ["env", "list", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    return (r.json().environments as { name: string; source: string; digest: string | null; installed: boolean }[]).find((e) => e.name === reference);
  }

  it("imports a docker save tarball with the CLI, installs its layers under their diff_ids, and runs in it", () => {
    const r = cli(home, ["env", "import", dockerRef, path.join(dir, "saved.tar"), "--json"], { timeoutMs: TIMEOUT });
    expect(r.code, r.stderr).toBe(0);
    const manifest = r.json();
    expect(manifest.name).toBe(dockerRef);
    expect(manifest.source).toBe("image");
    expect(manifest.image.layers.map((l: { diff_id: string }) => l.diff_id)).toEqual(saved.layers.map((l) => sha256(l.tar)));
    // The made manifest names the uncompressed layers themselves.
    expect(manifest.image.layers.map((l: { digest: string }) => l.digest)).toEqual(saved.layers.map((l) => sha256(l.tar)));
    expect(listed(dockerRef)).toMatchObject({ installed: true, source: "image", digest: manifest.digest });
    expectImageTree(dockerRef);
  }, TIMEOUT);

  it("imports an OCI layout directory with the SDK under the manifest's own digest, and runs in it", async () => {
    const manifest = await pyro.importEnvironment(layoutRef, path.join(dir, "layout"));
    expect(manifest.name).toBe(layoutRef);
    expect(manifest.digest).toBe(layout.manifestDigest);
    expect(listed(layoutRef)).toMatchObject({ installed: true, source: "image", digest: layout.manifestDigest });
    const ws = await pyro.createWorkspace({ environment: layoutRef });
    try {
      const r = await pyro.execWorkspace(ws.workspace_id, { command: ["busybox", "cat", "/keep"] });
      expect(r.stdout).toBe("v2\n");
    } finally {
      await pyro.deleteWorkspace(ws.workspace_id);
    }
    expectImageTree(layoutRef);
  }, TIMEOUT);

  describe("the same image as skopeo writes it", () => {
    let registry: TestRegistry;
    const diffIds = layers("gzip").map((l) => sha256(l.tar));
    const hasSkopeo = spawnSync("skopeo", ["--version"]).status === 0;

    beforeAll(async () => {
      if (!hasSkopeo) return;
      registry = await startRegistry();
      await new Pusher(registry).image("import/x", "1", layers("gzip"), { config: CONFIG });
    }, TIMEOUT);

    afterAll(async () => {
      await registry?.stop();
    }, TIMEOUT);

    it.skipIf(!hasSkopeo)("imports skopeo's oci:DIR with the CLI and skopeo's docker-archive with the SDK", async () => {
      const source = `docker://${registry.host}/import/x:1`;
      const ociDir = path.join(dir, "skopeo-oci");
      const archive = path.join(dir, "skopeo-docker.tar");
      for (const destination of [`oci:${ociDir}:x`, `docker-archive:${archive}:${registry.host}/import/x:1`]) {
        const copy = spawnSync("skopeo", ["copy", "--quiet", "--src-tls-verify=false", source, destination], { encoding: "utf8", timeout: TIMEOUT });
        expect(copy.status, copy.stderr).toBe(0);
      }
      const fromOci = `${registry.host}/import/x:1`;
      const r = cli(home, ["env", "import", fromOci, ociDir, "--json"], { timeoutMs: TIMEOUT });
      expect(r.code, r.stderr).toBe(0);
      // skopeo writes the manifest anew (the registry's bytes are not kept): the layout's own digest is the image's.
      const written = JSON.parse(fs.readFileSync(path.join(ociDir, "index.json"), "utf8")).manifests[0].digest as string;
      expect(r.json().digest).toBe(written);
      expect(r.json().image.layers.map((l: { diff_id: string }) => l.diff_id)).toEqual(diffIds);
      expectImageTree(fromOci);

      const fromArchive = "registry.example/import/skopeo-archive:1";
      // docker-archive names the image after the registry; any reference may install it when it holds just one.
      const manifest = await pyro.importEnvironment(fromArchive, archive);
      expect(manifest.image!.layers.map((l) => l.diff_id)).toEqual(diffIds);
      expectImageTree(fromArchive);
    }, TIMEOUT);
  });

  describe("bad files", () => {
    const names = () => (cli(home, ["env", "list", "--json"]).json().environments as { name: string; installed: boolean }[]).filter((e) => e.installed).map((e) => e.name);

    /** The CLI's code for importing `file` as `reference`, and the SDK's, must both be `code`. */
    async function refused(reference: string, file: string, code: string): Promise<void> {
      const r = cli(home, ["env", "import", reference, file, "--json"], { timeoutMs: TIMEOUT });
      expect(r.code).not.toBe(0);
      expect(r.stdout + r.stderr).toContain(code);
      await expectPyroError(pyro.importEnvironment(reference, file), code);
    }

    it("refuses a tampered blob, a missing blob, a tar without manifest.json, another platform and an ambiguous archive, and lists nothing new", async () => {
      const before = names();
      const bad = "registry.example/import/bad:1";

      const tampered = path.join(dir, "tampered");
      const image = buildImage(layers("gzip").map((l, i) => (i === 1 ? { ...makeLayer({ "tampered/x": "y\n" }, "none"), mediaType: OCI.layerTar } : l)), { config: CONFIG });
      writeOciLayout(tampered, [{ image }]);
      const blob = layoutBlob(tampered, sha256(image.layers[1]!.blob));
      const bytes = fs.readFileSync(blob);
      bytes[bytes.length >> 1] = bytes[bytes.length >> 1]! ^ 0xff;
      fs.writeFileSync(blob, bytes);
      await refused(bad, tampered, "image_digest_mismatch");

      const missing = path.join(dir, "missing");
      writeOciLayout(missing, [{ image }]);
      fs.rmSync(layoutBlob(missing, sha256(image.config)));
      await refused(bad, missing, "image_invalid");

      const plain = path.join(dir, "plain");
      fs.mkdirSync(path.join(plain, "etc"), { recursive: true });
      fs.writeFileSync(path.join(plain, "etc", "hostname"), "not an image\n");
      tarDirectory(plain, path.join(dir, "plain.tar"));
      await refused(bad, path.join(dir, "plain.tar"), "image_invalid");

      const arm = path.join(dir, "arm");
      writeOciLayout(arm, [{ image: buildImage(layers("gzip"), { architecture: "arm64", config: CONFIG }), platform: { os: "linux", architecture: "arm64" } }]);
      await refused(bad, arm, "image_platform_missing");

      writeDockerSave(path.join(dir, "two.tar"), [
        { image: saved, repoTags: ["registry.example/import/one:1"] },
        { image: buildImage(layers("none"), { config: { Env: ["PATH=/bin", "SECOND=1"] } }), repoTags: ["registry.example/import/two:1"] },
      ]);
      await refused(bad, path.join(dir, "two.tar"), "invalid_argument");

      expect(names()).toEqual(before);
      expect(names()).not.toContain(bad);
      // Nothing half-made is left behind: no staging of an import, no scratch directory.
      const environments = path.join(home, "environments");
      expect(fs.readdirSync(path.join(environments, "blobs")).filter((n) => n.startsWith(".pull-"))).toEqual([]);
      expect(fs.readdirSync(environments).filter((n) => n.startsWith(".tmp-"))).toEqual([]);
    }, TIMEOUT);
  });
});
