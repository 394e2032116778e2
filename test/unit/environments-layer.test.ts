// The pure pieces of an environment: names, catalog shape, layer digests, package lists,
// archive member vetting and the prune closure.
import { describe, it, expect, beforeEach, afterEach } from "vitest";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { CATALOG, isValidEnvironmentName } from "../../src/environments/index.js";
import { manifestFileName } from "../../src/environments/catalog.js";
import { scanLayer } from "../../src/environments/layer-scan.js";
import { parseDpkgStatus, readInstalledPackages } from "../../src/environments/dpkg.js";
import { unsafeEntryReason } from "../../src/environments/import-source.js";
import { inUseClosure } from "../../src/environments/store.js";
import { lstatInside, looksLikeRootfs } from "../../src/environments/rootfs.js";
import { removeTree } from "../../src/runtime/confine/trees.js";

const isRoot = process.getuid?.() === 0;

describe("environment names", () => {
  it("accepts catalog names and custom family[:tag] names", () => {
    for (const name of ["debian:12", "debian:12-base", "debian:12-build", "myorg:ubuntu-24.04", "alpine", "a_b.c-d:e_f"]) {
      expect(isValidEnvironmentName(name), name).toBe(true);
    }
  });

  it("rejects names that could not be a file name or a shell word", () => {
    for (const name of ["", "Debian:12", ":12", "debian:", "a:b:c", "../x", "a/b", ".hidden", "-x", "a b", "x".repeat(129)]) {
      expect(isValidEnvironmentName(name), name).toBe(false);
    }
  });

  it("never maps two names to the same manifest file", () => {
    expect(manifestFileName("debian:12")).not.toBe(manifestFileName("debian_12"));
    expect(manifestFileName("debian:12")).toBe("debian@12.json");
  });
});

describe("catalog", () => {
  it("lists the three Debian 12 environments with their public descriptions, parents first", () => {
    expect(CATALOG.map((entry) => [entry.name, entry.parent, entry.description])).toEqual([
      ["debian:12-base", null, "Minimal Debian 12 environment for shell and core Unix tooling"],
      ["debian:12", "debian:12-base", "Debian 12 environment with Git preinstalled for common agent workflows"],
      ["debian:12-build", "debian:12", "Debian 12 environment with Git and common build tools preinstalled"],
    ]);
    expect(CATALOG.find((entry) => entry.name === "debian:12")?.packages).toContain("git");
  });
});

describe("layer digest", () => {
  let tmp: string;
  beforeEach(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), "pyro-env-digest-"));
  });
  afterEach(async () => {
    await removeTree(tmp);
  });

  async function makeTree(root: string, order: "forward" | "reverse"): Promise<void> {
    const steps: Array<() => Promise<void>> = [
      () => fs.mkdir(path.join(root, "etc"), { recursive: true }).then(() => undefined),
      () => fs.mkdir(path.join(root, "usr/bin"), { recursive: true }).then(() => undefined),
    ];
    const files: Array<() => Promise<void>> = [
      () => fs.writeFile(path.join(root, "etc/hostname"), "pyro\n"),
      () => fs.writeFile(path.join(root, "usr/bin/tool"), "#!/bin/sh\necho hi\n", { mode: 0o755 }),
      () => fs.symlink("usr/bin", path.join(root, "bin")),
      () => fs.writeFile(path.join(root, "etc/zz-last"), "z"),
    ];
    for (const step of steps) await step();
    for (const step of order === "forward" ? files : [...files].reverse()) await step();
    await fs.chmod(path.join(root, "usr/bin/tool"), 0o755);
  }

  it("is the same for the same content created in a different order", async () => {
    await makeTree(path.join(tmp, "a"), "forward");
    await makeTree(path.join(tmp, "b"), "reverse");
    const [a, b] = await Promise.all([scanLayer(path.join(tmp, "a")), scanLayer(path.join(tmp, "b"))]);
    expect(a.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(a.digest).toBe(b.digest);
    expect(a.entries).toBe(8);
    expect(a.sizeBytes).toBeGreaterThan(0);
  });

  it("ignores modification times", async () => {
    await makeTree(path.join(tmp, "a"), "forward");
    const before = await scanLayer(path.join(tmp, "a"));
    await fs.utimes(path.join(tmp, "a/etc/hostname"), new Date(0), new Date(0));
    expect((await scanLayer(path.join(tmp, "a"))).digest).toBe(before.digest);
  });

  it("changes when a file's mode changes", async () => {
    await makeTree(path.join(tmp, "a"), "forward");
    const before = await scanLayer(path.join(tmp, "a"));
    await fs.chmod(path.join(tmp, "a/usr/bin/tool"), 0o700);
    expect((await scanLayer(path.join(tmp, "a"))).digest).not.toBe(before.digest);
  });

  it("changes when a file's content changes, even at the same size", async () => {
    await makeTree(path.join(tmp, "a"), "forward");
    const before = await scanLayer(path.join(tmp, "a"));
    await fs.writeFile(path.join(tmp, "a/etc/hostname"), "pyrx\n");
    expect((await scanLayer(path.join(tmp, "a"))).digest).not.toBe(before.digest);
  });

  it("changes when a symlink points elsewhere, and never reads through it", async () => {
    await makeTree(path.join(tmp, "a"), "forward");
    await fs.symlink("/etc", path.join(tmp, "a/host-etc"));
    const before = await scanLayer(path.join(tmp, "a"));
    // Eight entries plus the link itself: nothing of the host's /etc was walked.
    expect(before.entries).toBe(9);
    await fs.rm(path.join(tmp, "a/host-etc"));
    await fs.symlink("/usr", path.join(tmp, "a/host-etc"));
    expect((await scanLayer(path.join(tmp, "a"))).digest).not.toBe(before.digest);
  });

  it.skipIf(!isRoot)("changes when ownership changes", async () => {
    await makeTree(path.join(tmp, "a"), "forward");
    const before = await scanLayer(path.join(tmp, "a"));
    await fs.lchown(path.join(tmp, "a/etc/hostname"), 1234, 1234);
    expect((await scanLayer(path.join(tmp, "a"))).digest).not.toBe(before.digest);
  });
});

const DPKG_STATUS = `Package: bash
Status: install ok installed
Priority: required
Architecture: amd64
Version: 5.2.15-2+b7
Description: GNU Bourne Again SHell

Package: git
Status: install ok installed
Architecture: amd64
Version: 1:2.39.5-0+deb12u3
Description: fast, scalable, distributed revision control system
 Git is popular.

Package: old-thing
Status: deinstall ok config-files
Version: 1.0
`;

describe("installed packages", () => {
  it("lists name=version of installed packages only, sorted", () => {
    expect(parseDpkgStatus(DPKG_STATUS)).toEqual(["bash=5.2.15-2+b7", "git=1:2.39.5-0+deb12u3"]);
  });

  it("reads the top-most layer's status file, as the overlay would show it", async () => {
    const tmp = await fs.mkdtemp(path.join(os.tmpdir(), "pyro-env-dpkg-"));
    try {
      for (const [layer, text] of [
        ["upper", DPKG_STATUS],
        ["lower", "Package: bash\nStatus: install ok installed\nVersion: 1\n"],
      ] as const) {
        await fs.mkdir(path.join(tmp, layer, "var/lib/dpkg"), { recursive: true });
        await fs.writeFile(path.join(tmp, layer, "var/lib/dpkg/status"), text);
      }
      await fs.mkdir(path.join(tmp, "empty"));
      const layers = ["empty", "upper", "lower"].map((layer) => path.join(tmp, layer));
      expect(await readInstalledPackages(layers)).toContain("git=1:2.39.5-0+deb12u3");
      expect(await readInstalledPackages(layers.slice(2))).toEqual(["bash=1"]);
    } finally {
      await removeTree(tmp);
    }
  });

  it("does not follow a symlinked var/lib/dpkg out of the layer", async () => {
    const tmp = await fs.mkdtemp(path.join(os.tmpdir(), "pyro-env-dpkg-"));
    try {
      await fs.mkdir(path.join(tmp, "layer/var/lib"), { recursive: true });
      await fs.symlink("/var/lib/dpkg", path.join(tmp, "layer/var/lib/dpkg"));
      expect(await readInstalledPackages([path.join(tmp, "layer")])).toEqual([]);
    } finally {
      await removeTree(tmp);
    }
  });
});

describe("root filesystem checks", () => {
  it("accepts bin/sh or usr/bin/sh but never looks through a symlinked bin", async () => {
    const tmp = await fs.mkdtemp(path.join(os.tmpdir(), "pyro-env-rootfs-"));
    try {
      const classic = path.join(tmp, "classic");
      await fs.mkdir(path.join(classic, "bin"), { recursive: true });
      await fs.symlink("dash", path.join(classic, "bin/sh"));
      expect(await looksLikeRootfs(classic)).toBe(true);

      const merged = path.join(tmp, "merged");
      await fs.mkdir(path.join(merged, "usr/bin"), { recursive: true });
      await fs.writeFile(path.join(merged, "usr/bin/sh"), "");
      await fs.symlink("usr/bin", path.join(merged, "bin"));
      expect(await looksLikeRootfs(merged)).toBe(true);

      // `bin -> /usr/bin` would find the *host's* shell if followed.
      const hostile = path.join(tmp, "hostile");
      await fs.mkdir(hostile);
      await fs.symlink("/usr/bin", path.join(hostile, "bin"));
      expect(await lstatInside(hostile, "bin/sh")).toEqual({ kind: "blocked" });
      expect(await looksLikeRootfs(hostile)).toBe(false);
    } finally {
      await removeTree(tmp);
    }
  });

  it("removes a tree containing an overlay-style mode 000 work directory", async () => {
    const tmp = await fs.mkdtemp(path.join(os.tmpdir(), "pyro-env-rm-"));
    await fs.mkdir(path.join(tmp, "work/work/inner"), { recursive: true });
    await fs.writeFile(path.join(tmp, "work/work/inner/file"), "x");
    await fs.chmod(path.join(tmp, "work/work"), 0o000);
    await removeTree(tmp);
    await expect(fs.lstat(tmp)).rejects.toMatchObject({ code: "ENOENT" });
  });
});

describe("archive member vetting", () => {
  it("refuses absolute paths, '..' components and escaping hard links", () => {
    expect(unsafeEntryReason({ path: "/etc/passwd", type: "File" })).toMatch(/absolute/);
    expect(unsafeEntryReason({ path: "../evil", type: "File" })).toMatch(/\.\./);
    expect(unsafeEntryReason({ path: "usr/../../evil", type: "Directory" })).toMatch(/\.\./);
    expect(unsafeEntryReason({ path: "etc/shadow-copy", type: "Link", linkpath: "/etc/shadow" })).toMatch(/hard link/);
    expect(unsafeEntryReason({ path: "x", type: "TapeVolumeHeader" })).toMatch(/type/);
  });

  it("accepts what a root filesystem archive contains, including absolute symlink targets", () => {
    expect(unsafeEntryReason({ path: "./", type: "Directory" })).toBeUndefined();
    expect(unsafeEntryReason({ path: "./usr/bin/sh", type: "SymbolicLink", linkpath: "/usr/bin/dash" })).toBeUndefined();
    expect(unsafeEntryReason({ path: "usr/bin/..hidden..", type: "File" })).toBeUndefined();
    expect(unsafeEntryReason({ path: "usr/bin/gunzip", type: "Link", linkpath: "usr/bin/gzip" })).toBeUndefined();
  });
});

describe("prune closure", () => {
  it("keeps what is in use and every parent of it, transitively", () => {
    const parents = new Map<string, string | null>([
      ["debian:12-base", null],
      ["debian:12", "debian:12-base"],
      ["debian:12-build", "debian:12"],
      ["custom:x", null],
    ]);
    expect([...inUseClosure(["debian:12-build"], parents)].sort()).toEqual(["debian:12", "debian:12-base", "debian:12-build"]);
    expect([...inUseClosure(["debian:12"], parents)].sort()).toEqual(["debian:12", "debian:12-base"]);
    expect([...inUseClosure(["custom:x"], parents)]).toEqual(["custom:x"]);
    expect([...inUseClosure([], parents)]).toEqual([]);
  });

  it("trusts an installed environment's own record over the catalog (an imported debian:12 has no parent)", () => {
    const parents = new Map<string, string | null>([["debian:12", null]]);
    expect([...inUseClosure(["debian:12"], parents)]).toEqual(["debian:12"]);
  });
});
