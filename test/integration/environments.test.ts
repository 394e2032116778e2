// Real environment builds and imports: debootstrap from the Debian mirror, apt in an overlay,
// sandboxed archive extraction. Runs as root; the debian:12 build is shared with every other
// test file through SHARED_HOME ($PYRO_TEST_HOME or .pyro-test/home).
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { EnvironmentStore } from "../../src/environments/index.js";
import type { PullProgress } from "../../src/environments/index.js";
import type { PyroError } from "../../src/shared/errors.js";
import { removeTree } from "../../src/runtime/confine/trees.js";
import { expectPyroError, SHARED_HOME } from "../helpers.js";
import { BUILDER_VERSION } from "../../src/environments/store.js";
import { hostIdOf, sandboxIdentity } from "../../src/runtime/confine/identity.js";

const isRoot = process.getuid?.() === 0;
const BUILD_TIMEOUT = 300_000;

/** Mounts `layers` as the lowerdirs of a throwaway overlay and runs `argv` inside it with bwrap. */
function runInLayers(layers: string[], scratch: string, argv: string[]): { status: number | null; stdout: string; stderr: string } {
  const dirs = ["upper", "work", "merged"].map((name) => path.join(scratch, name));
  for (const dir of dirs) spawnSync("mkdir", ["-p", dir]);
  const script = 'set -e; mount -t overlay overlay -o "lowerdir=$1,upperdir=$2,workdir=$3" "$4"; m=$4; shift 4; exec bwrap --bind "$m" / --proc /proc --dev /dev --perms 1777 --tmpfs /tmp --unshare-all --die-with-parent "$@"';
  const result = spawnSync(
    "unshare",
    ["--mount", "--propagation", "private", "sh", "-c", script, "pyro-test", layers.join(":"), ...dirs, ...argv],
    { encoding: "utf8" },
  );
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function processesMentioning(text: string): string[] {
  const found: string[] = [];
  for (const pid of spawnSync("ls", ["/proc"], { encoding: "utf8" }).stdout.split("\n").filter((n) => /^\d+$/.test(n))) {
    const cmd = spawnSync("cat", [`/proc/${pid}/cmdline`], { encoding: "utf8" }).stdout.replace(/\0/g, " ");
    if (cmd.includes(text) && !cmd.startsWith("cat ")) found.push(`${pid}: ${cmd.slice(0, 160)}`);
  }
  return found;
}

describe.skipIf(!isRoot)("environments on a real host", () => {
  let tmp: string;
  beforeAll(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), "pyro-env-it-"));
  });
  afterAll(async () => {
    await removeTree(tmp);
  });

  it(
    "pulls debian:12 as a layer on debian:12-base, once, even when two processes ask at the same time",
    async () => {
      const events: PullProgress[] = [];
      const started = Date.now();
      const [a, b] = await Promise.all([
        new EnvironmentStore(SHARED_HOME).pull("debian:12", { onProgress: (e) => events.push(e) }),
        new EnvironmentStore(SHARED_HOME).pull("debian:12"),
      ]);
      console.info(`pull debian:12: ${Date.now() - started} ms; phases: ${events.map((e) => `${e.phase}(${e.environment})`).join(" ")}`);
      expect(a.digest).toBe(b.digest);

      const store = new EnvironmentStore(SHARED_HOME);
      const manifest = await store.inspect("debian:12");
      expect(manifest).toMatchObject({ name: "debian:12", parent: "debian:12-base", builderVersion: BUILDER_VERSION, identity: sandboxIdentity().key });
      expect(manifest.packages.some((p) => p.startsWith("git="))).toBe(true);
      expect(manifest.packages.some((p) => p.startsWith("ca-certificates="))).toBe(true);
      expect(manifest.packages.some((p) => p.startsWith("bash="))).toBe(true);
      expect(manifest.totalSizeBytes).toBeGreaterThan(manifest.sizeBytes);

      const layers = await store.layers("debian:12");
      expect(layers).toHaveLength(2);
      for (const layer of layers) expect((await fs.lstat(layer)).isDirectory()).toBe(true);
      expect(layers[1]).toBe((await store.layers("debian:12-base"))[0]);
      const base = await store.inspect("debian:12-base");
      expect(base.packages.some((p) => p.startsWith("git="))).toBe(false);
      expect(await fs.readdir(path.join(layers[1]!, "var/lib/apt/lists"))).toEqual([]);
    },
    BUILD_TIMEOUT,
  );

  it("returns an installed environment at once, with a single cached event", async () => {
    const events: PullProgress[] = [];
    const started = performance.now();
    const manifest = await new EnvironmentStore(SHARED_HOME).pull("debian:12", { onProgress: (e) => events.push(e) });
    const elapsed = performance.now() - started;
    console.info(`cached pull debian:12: ${elapsed.toFixed(1)} ms`);
    expect(elapsed).toBeLessThan(1000);
    expect(events.map((e) => e.phase)).toEqual(["cached"]);
    expect(manifest.name).toBe("debian:12");
  });

  it("runs git from the layers mounted as an overlay in bubblewrap", async () => {
    const layers = await new EnvironmentStore(SHARED_HOME).layers("debian:12");
    const scratch = path.join(tmp, "git-run");
    const result = runInLayers(layers, scratch, ["sh", "-c", "git --version && test -d /workspace && stat -c %a /workspace"]);
    expect(result.stderr).toBe("");
    expect(result.stdout).toMatch(/^git version 2\.\d+/);
    expect(result.stdout.trim().split("\n").pop()).toBe("755");
    expect(result.status).toBe(0);
    expect(await fs.readFile("/proc/mounts", "utf8")).not.toContain(scratch);
  });

  it(
    "builds a derived layer on an imported base, and prune keeps parents of what is in use",
    async () => {
      const home = path.join(tmp, "home-derived");
      const store = new EnvironmentStore(home);
      const [sharedBase] = await new EnvironmentStore(SHARED_HOME).layers("debian:12-base");
      let started = Date.now();
      await store.import("debian:12-base", sharedBase!);
      console.info(`import of a debian:12-base directory: ${Date.now() - started} ms`);
      started = Date.now();
      const derived = await store.pull("debian:12");
      console.info(`derived debian:12 layer on an imported base: ${Date.now() - started} ms`);
      // The imported base keeps its own apt sources; the layer records that no pyro mirror was used.
      expect(derived.mirror).toBeNull();
      expect(derived.packages.some((p) => p.startsWith("git="))).toBe(true);

      expect(await store.prune(new Set(["debian:12"]))).toEqual({ removed: [], freedBytes: 0 });
      const pruned = await store.prune(new Set());
      expect(pruned.removed).toEqual(["debian:12", "debian:12-base"]);
      expect(pruned.freedBytes).toBeGreaterThan(100 * 1024 * 1024);
      expect(await fs.readdir(path.join(home, "environments/layers"))).toEqual([]);
    },
    BUILD_TIMEOUT,
  );

  it(
    "leaves no process, mount or scratch directory behind when a build is cancelled",
    async () => {
      const home = path.join(tmp, "home-cancel");
      const store = new EnvironmentStore(home);
      const controller = new AbortController();
      const phases: string[] = [];
      const pulling = store.pull("debian:12-base", {
        signal: controller.signal,
        onProgress: (e) => {
          phases.push(e.phase);
          if (e.phase === "debootstrap") setTimeout(() => controller.abort(), 3000);
        },
      });
      const err = await expectPyroError(pulling, "environment_build_failed");
      expect(err.details).toMatchObject({ cancelled: true });
      expect(phases).toContain("debootstrap");
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(processesMentioning(home)).toEqual([]);
      expect(await fs.readFile("/proc/mounts", "utf8")).not.toContain(home);
      expect((await fs.readdir(path.join(home, "environments"))).filter((n) => n.startsWith(".tmp-"))).toEqual([]);
      expect(await store.isInstalled("debian:12-base")).toBe(false);
    },
    BUILD_TIMEOUT,
  );

  describe("importing archives", () => {
    let work: string;
    let store: EnvironmentStore;
    const tar = (args: string[]) => {
      const result = spawnSync("tar", args, { encoding: "utf8" });
      expect(result.stderr).toBe("");
      expect(result.status).toBe(0);
    };

    beforeAll(async () => {
      work = path.join(tmp, "archives");
      await fs.mkdir(work, { recursive: true });
      store = new EnvironmentStore(path.join(tmp, "home-import"));
    });

    /** A root filesystem that can really run `sh`: the host's dash and the libraries it needs. */
    async function runnableRoot(dir: string): Promise<void> {
      for (const dirName of ["usr/bin", "usr/lib", "usr/lib64", "etc", "var/lib/dpkg", "dev", "opt"]) {
        await fs.mkdir(path.join(dir, dirName), { recursive: true });
      }
      for (const link of ["bin", "lib", "lib64"]) await fs.symlink(`usr/${link}`, path.join(dir, link));
      await fs.copyFile("/usr/bin/dash", path.join(dir, "usr/bin/dash"));
      await fs.chmod(path.join(dir, "usr/bin/dash"), 0o755);
      await fs.symlink("dash", path.join(dir, "usr/bin/sh"));
      const ldd = spawnSync("ldd", ["/usr/bin/dash"], { encoding: "utf8" }).stdout;
      for (const lib of ldd.match(/\/\S+/g) ?? []) {
        await fs.mkdir(path.join(dir, path.dirname(lib)), { recursive: true });
        await fs.copyFile(lib, path.join(dir, lib));
      }
      await fs.writeFile(path.join(dir, "var/lib/dpkg/status"), "Package: demo\nStatus: install ok installed\nVersion: 1.0\n");
      await fs.writeFile(path.join(dir, "opt/owned"), "x");
      await fs.chown(path.join(dir, "opt/owned"), 1234, 5678);
      await fs.chmod(path.join(dir, "opt/owned"), 0o4755);
      expect(spawnSync("mknod", [path.join(dir, "dev/null"), "c", "1", "3"]).status).toBe(0);
    }

    it("refuses an archive with a ../ member before extracting anything", async () => {
      const inner = path.join(work, "evil-src", "inner");
      await fs.mkdir(inner, { recursive: true });
      await fs.writeFile(path.join(work, "evil-src", "evil"), "pwned");
      const archive = path.join(work, "evil.tar");
      // -P keeps the ../ that GNU tar would otherwise strip when creating.
      spawnSync("tar", ["-cPf", archive, "../evil"], { cwd: inner });
      await fs.rm(path.join(work, "evil-src", "evil"));

      const err = await expectPyroError(store.import("evil:dotdot", archive), "archive_unsafe_entry");
      expect(err.details).toMatchObject({ entry: "../evil" });
      const envRoot = path.join(tmp, "home-import", "environments");
      await expect(fs.lstat(path.join(envRoot, "evil"))).rejects.toMatchObject({ code: "ENOENT" });
      await expect(fs.lstat(path.join(work, "evil-src", "evil"))).rejects.toMatchObject({ code: "ENOENT" });
      expect(await store.isInstalled("evil:dotdot")).toBe(false);
    });

    it("refuses an archive with an absolute member", async () => {
      const victim = path.join(work, "abs-victim");
      await fs.writeFile(victim, "original");
      const archive = path.join(work, "abs.tar");
      tar(["-cPf", archive, victim]);
      const err = await expectPyroError(store.import("evil:abs", archive), "archive_unsafe_entry");
      expect(err.details).toMatchObject({ entry: victim });
      expect(await fs.readFile(victim, "utf8")).toBe("original");
    });

    it("cannot be led out of the target by a symlink member followed by a file beneath it", async () => {
      const outside = path.join(work, "outside");
      await fs.mkdir(outside);
      const linkStage = path.join(work, "link-stage");
      const fileStage = path.join(work, "file-stage");
      await runnableRoot(linkStage);
      await fs.symlink(outside, path.join(linkStage, "escape"));
      await fs.mkdir(path.join(fileStage, "escape"), { recursive: true });
      await fs.writeFile(path.join(fileStage, "escape", "pwned"), "pwned");
      const archive = path.join(work, "symlink.tar");
      tar(["--numeric-owner", "-cf", archive, "-C", linkStage, "."]);
      tar(["-rf", archive, "-C", fileStage, "escape/pwned"]);

      const outcome = await store.import("evil:symlink", archive).then(
        () => "imported",
        (err: PyroError) => `${err.code}: ${JSON.stringify(err.details?.output ?? null)}`,
      );
      console.info(`symlink-escape archive: ${outcome}`);
      // GNU tar refusing the member is as good as extracting it harmlessly.
      expect(outcome === "imported" || outcome.startsWith("environment_build_failed")).toBe(true);
      expect(await fs.readdir(outside)).toEqual([]);
    });

    it("imports a rootfs .tgz keeping owners and modes, dropping device nodes, and runs a shell in it", async () => {
      const root = path.join(work, "good-root");
      await runnableRoot(root);
      const archive = path.join(work, "good.tgz");
      tar(["--numeric-owner", "-czf", archive, "-C", root, "."]);

      const started = Date.now();
      const manifest = await store.import("demo:tiny", archive);
      console.info(`import of a ${(await fs.stat(archive)).size} byte .tgz: ${Date.now() - started} ms`);
      expect(manifest).toMatchObject({ name: "demo:tiny", source: "import", parent: null, packages: ["demo=1.0"] });
      const [layer] = await store.layers("demo:tiny");
      const owned = await fs.lstat(path.join(layer!, "opt/owned"));
      // Owners land shifted into the sandbox identity's range: guest 1234 is host hostIdOf(1234).
      const identity = sandboxIdentity();
      expect([owned.uid, owned.gid, owned.mode & 0o7777]).toEqual([hostIdOf(identity.uidMap, 1234), hostIdOf(identity.gidMap, 5678), 0o4755]);
      await expect(fs.lstat(path.join(layer!, "dev/null"))).rejects.toMatchObject({ code: "ENOENT" });
      expect((await fs.lstat(path.join(layer!, "workspace"))).isDirectory()).toBe(true);

      const result = runInLayers([layer!], path.join(tmp, "tiny-run"), ["/bin/sh", "-c", "read -r line < /var/lib/dpkg/status; echo hello from $line"]);
      expect(result.stdout.trim()).toBe("hello from Package: demo");
    });
  });
});
