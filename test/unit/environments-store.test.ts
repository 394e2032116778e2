// The environment cache as a user of the SDK sees it, exercised with tiny imported root
// filesystems (a directory with a bin/sh symlink) instead of real Debian builds.
import { describe, it, expect, beforeEach, afterEach } from "vitest";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { BUILDER_VERSION, EnvironmentStore } from "../../src/environments/index.js";
import type { PullProgress } from "../../src/environments/index.js";
import { PyroError } from "../../src/shared/errors.js";
import { removeTree } from "../../src/runtime/confine/trees.js";

const isRoot = process.getuid?.() === 0;

async function expectPyroError(promise: Promise<unknown>, code: string): Promise<PyroError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(PyroError);
    expect((err as PyroError).code).toBe(code);
    return err as PyroError;
  }
  throw new Error(`expected a PyroError ${code}`);
}

describe.skipIf(!isRoot)("EnvironmentStore with imported root filesystems", () => {
  let tmp: string;
  let home: string;
  let store: EnvironmentStore;

  /** A minimal "root filesystem": enough for the sanity check, plus one marker file. */
  async function tinyRoot(label: string, marker = label): Promise<string> {
    const dir = path.join(tmp, "src", label);
    await fs.mkdir(path.join(dir, "usr/bin"), { recursive: true });
    await fs.mkdir(path.join(dir, "etc"), { recursive: true });
    await fs.symlink("/usr/bin/dash", path.join(dir, "usr/bin/sh"));
    await fs.symlink("usr/bin", path.join(dir, "bin"));
    await fs.writeFile(path.join(dir, "etc/marker"), marker);
    return dir;
  }

  const envRoot = () => path.join(home, "environments");
  const leftovers = async () => (await fs.readdir(envRoot())).filter((name) => name.startsWith(".tmp-"));

  beforeEach(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), "pyro-env-store-"));
    home = path.join(tmp, "home");
    store = new EnvironmentStore(home);
  });
  afterEach(async () => {
    await removeTree(tmp);
  });

  it("lists the catalog as not installed in a fresh home", async () => {
    const list = await store.list();
    expect(list.map((env) => [env.name, env.installed, env.sizeBytes, env.digest])).toEqual([
      ["debian:12-base", false, null, null],
      ["debian:12", false, null, null],
      ["debian:12-build", false, null, null],
    ]);
    expect(list.find((env) => env.name === "debian:12")?.parent).toBe("debian:12-base");
  });

  it("imports a directory under a custom name and reports it everywhere", async () => {
    const events: PullProgress[] = [];
    const manifest = await store.import("myorg:tiny", await tinyRoot("tiny"), { onProgress: (e) => events.push(e) });
    expect(manifest).toMatchObject({ name: "myorg:tiny", parent: null, source: "import", mirror: null, builderVersion: BUILDER_VERSION });
    expect(manifest.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(manifest.layers).toEqual([manifest.digest.slice(7)]);
    expect(manifest.totalSizeBytes).toBe(manifest.sizeBytes);
    expect(events.map((e) => e.phase)).toEqual(["resolve", "install", "finalize", "ready"]);

    const layers = await store.layers("myorg:tiny");
    expect(layers).toHaveLength(1);
    expect(path.isAbsolute(layers[0]!)).toBe(true);
    expect(await fs.readFile(path.join(layers[0]!, "etc/marker"), "utf8")).toBe("tiny");
    const workspace = await fs.lstat(path.join(layers[0]!, "workspace"));
    expect(workspace.isDirectory()).toBe(true);
    expect(workspace.mode & 0o7777).toBe(0o755);

    const summary = (await store.list()).find((env) => env.name === "myorg:tiny");
    expect(summary).toMatchObject({ installed: true, source: "import", digest: manifest.digest, sizeBytes: manifest.totalSizeBytes });
    expect(await store.inspect("myorg:tiny")).toEqual(manifest);
    expect(await store.isInstalled("myorg:tiny")).toBe(true);
    expect(await leftovers()).toEqual([]);
  });

  it("gives the same digest to the same content imported twice", async () => {
    const a = await store.import("same:a", await tinyRoot("a", "same"));
    const b = await store.import("same:b", await tinyRoot("b", "same"));
    expect(a.digest).toBe(b.digest);
    expect(await store.layers("same:a")).toEqual(await store.layers("same:b"));
  });

  it("fills a catalog slot by import, which a later pull then finds cached without building", async () => {
    await store.import("debian:12-base", await tinyRoot("base"));
    const summary = (await store.list()).find((env) => env.name === "debian:12-base");
    expect(summary).toMatchObject({ installed: true, source: "import", parent: null });
    expect(summary?.description).toBe("Minimal Debian 12 environment for shell and core Unix tooling");
    const events: PullProgress[] = [];
    const pulled = await store.pull("debian:12-base", { onProgress: (e) => events.push(e) });
    expect(pulled.source).toBe("import");
    expect(events.map((e) => e.phase)).toEqual(["cached"]);
    expect(await store.isInstalled("debian:12")).toBe(false);
  });

  it("says how to install a catalog environment that is not installed", async () => {
    const err = await expectPyroError(store.layers("debian:12"), "environment_not_installed");
    expect(err.hint).toContain("pyro env pull debian:12");
    await expectPyroError(store.inspect("debian:12-build"), "environment_not_installed");
  });

  it("lists the known names when an environment is unknown", async () => {
    const err = await expectPyroError(store.layers("ubuntu:24.04"), "environment_unknown");
    expect(err.hint).toContain("debian:12-base");
    expect(err.hint).toContain("pyro env list");
    // A '/' makes a name an image reference (oci/reference.ts), and this one is not a valid one.
    await expectPyroError(store.inspect("../../etc"), "invalid_argument");
    await expectPyroError(store.pull("ubuntu:24.04"), "environment_unknown");
  });

  it("refuses invalid names and sources that are not root filesystems, leaving nothing behind", async () => {
    await expectPyroError(store.import("Bad Name", await tinyRoot("x")), "invalid_argument");
    await expectPyroError(store.import("ok:missing", path.join(tmp, "does-not-exist")), "invalid_argument");
    const notRoot = path.join(tmp, "src", "not-root");
    await fs.mkdir(path.join(notRoot, "etc"), { recursive: true });
    await expectPyroError(store.import("ok:notroot", notRoot), "invalid_argument");
    // A bin symlink pointing at the host's /usr/bin must not pass for a shell.
    const hostile = path.join(tmp, "src", "hostile");
    await fs.mkdir(hostile, { recursive: true });
    await fs.symlink("/usr/bin", path.join(hostile, "bin"));
    await expectPyroError(store.import("ok:hostile", hostile), "invalid_argument");
    const plainFile = path.join(tmp, "src", "rootfs.zip");
    await fs.writeFile(plainFile, "PK");
    await expectPyroError(store.import("ok:zip", plainFile), "invalid_argument");
    expect(await leftovers()).toEqual([]);
    expect((await store.list()).filter((env) => env.installed)).toEqual([]);
  });

  it("strips device nodes and replaces a planted /workspace symlink", async () => {
    const dir = await tinyRoot("devices");
    await fs.mkdir(path.join(dir, "dev"));
    const { spawnSync } = await import("node:child_process");
    expect(spawnSync("mknod", [path.join(dir, "dev/sda"), "b", "8", "0"]).status).toBe(0);
    await fs.symlink("/etc", path.join(dir, "workspace"));
    const [layer] = await store.layers((await store.import("dev:test", dir)).name);
    await expect(fs.lstat(path.join(layer!, "dev/sda"))).rejects.toMatchObject({ code: "ENOENT" });
    expect((await fs.lstat(path.join(layer!, "workspace"))).isDirectory()).toBe(true);
  });

  it("keeps what is in use (and its parents) on prune and frees the rest", async () => {
    await store.import("keep:me", await tinyRoot("keep"));
    await store.import("drop:me", await tinyRoot("drop"));
    await store.import("debian:12-base", await tinyRoot("base"));
    const result = await store.prune(new Set(["keep:me"]));
    expect(result.removed).toEqual(["debian:12-base", "drop:me"]);
    expect(result.freedBytes).toBeGreaterThan(0);
    expect(await store.isInstalled("keep:me")).toBe(true);
    await expectPyroError(store.layers("drop:me"), "environment_unknown");
    expect(await fs.readdir(path.join(envRoot(), "layers"))).toHaveLength(1);
    expect(await store.prune(new Set(["keep:me"]))).toEqual({ removed: [], freedBytes: 0 });
  });

  it("cleans up after a killed build: scratch dirs (even with mode 000 overlay work dirs) and orphan layers", async () => {
    await store.import("keep:me", await tinyRoot("keep"));
    // What a build killed mid-way leaves: a scratch dir, and a layer renamed in whose manifest
    // was never written. Neither may count as installed.
    const scratch = path.join(envRoot(), ".tmp-999999-dead");
    await fs.mkdir(path.join(scratch, "work/work"), { recursive: true });
    await fs.chmod(path.join(scratch, "work/work"), 0o000);
    const orphan = path.join(envRoot(), "layers", "0".repeat(64));
    await fs.mkdir(path.join(orphan, "usr"), { recursive: true });
    expect((await store.list()).filter((env) => env.installed).map((env) => env.name)).toEqual(["keep:me"]);

    const result = await store.prune(new Set(["keep:me"]));
    expect(result.removed).toEqual([]);
    expect(result.freedBytes).toBeGreaterThan(0);
    expect(await leftovers()).toEqual([]);
    await expect(fs.lstat(orphan)).rejects.toMatchObject({ code: "ENOENT" });
    expect(await store.isInstalled("keep:me")).toBe(true);
  });

  it("removes stale scratch dirs on the next import too", async () => {
    await fs.mkdir(path.join(envRoot(), ".tmp-999999-dead"), { recursive: true });
    await store.import("x:y", await tinyRoot("x"));
    expect(await leftovers()).toEqual([]);
  });

  it("treats an environment whose layer went missing as not installed", async () => {
    const manifest = await store.import("gone:layer", await tinyRoot("gone"));
    await removeTree(path.join(envRoot(), "layers", manifest.layers[0]!));
    expect(await store.isInstalled("gone:layer")).toBe(false);
    await expectPyroError(store.layers("gone:layer"), "environment_not_installed");
  });

  it("keeps the layers a re-import replaced while the name is in use, then frees them", async () => {
    const first = await store.import("re:import", await tinyRoot("v1"));
    const second = await store.import("re:import", await tinyRoot("v2"));
    expect(second.digest).not.toBe(first.digest);
    expect(await store.inspect("re:import")).toEqual(second);
    const firstLayer = path.join(envRoot(), "layers", first.layers[0]!);

    // A workspace created before the re-import may still have the old layer mounted.
    await store.prune(new Set(["re:import"]));
    expect((await fs.lstat(firstLayer)).isDirectory()).toBe(true);

    const result = await store.prune(new Set());
    expect(result.removed).toEqual(["re:import"]);
    await expect(fs.lstat(firstLayer)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("lets two stores import the same name at once without corrupting the cache", async () => {
    const other = new EnvironmentStore(home);
    const [a, b] = await Promise.all([
      store.import("race:x", await tinyRoot("r1", "one")),
      other.import("race:x", await tinyRoot("r2", "two")),
    ]);
    const final = await store.inspect("race:x");
    expect([a.digest, b.digest]).toContain(final.digest);
    expect(await leftovers()).toEqual([]);
    const [layer] = await store.layers("race:x");
    expect(["one", "two"]).toContain(await fs.readFile(path.join(layer!, "etc/marker"), "utf8"));
  });

  it("refuses to pull an imported custom environment", async () => {
    await store.import("custom:one", await tinyRoot("c"));
    const events: PullProgress[] = [];
    expect((await store.pull("custom:one", { onProgress: (e) => events.push(e) })).name).toBe("custom:one");
    expect(events.map((e) => e.phase)).toEqual(["cached"]);
    await expectPyroError(store.pull("custom:one", { force: true }), "invalid_argument");
  });
});
