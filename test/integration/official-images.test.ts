// The README's official-images example, run as a user runs it (`node examples/official-images.mjs`),
// against stand-ins for Python's and Node's official images: no test reaches Docker Hub, so the
// test builds images of the same shape from the host's own `python3` and `node` (binary, shared
// libraries, Python's standard library), pushes them to Debian's docker-registry on 127.0.0.1 and
// points the example at them. The two images share their bottom layer (the C libraries), which
// is stored and unpacked once. Uses a state directory of its own.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Pyro } from "../../src/index.js";
import { removeTree } from "../../src/runtime/confine/trees.js";
import { REPO, findLeaks, noLeaks } from "../helpers.js";
import { OCI, Pusher, makeLayer, sha256, startRegistry } from "../oci-registry.js";
import type { TestRegistry } from "../oci-registry.js";

const TIMEOUT = 300_000;
const PYTHON = fs.realpathSync("/usr/bin/python3");
const NODE = fs.realpathSync(process.execPath);

/** The shared libraries `ldd` says a binary loads, as absolute paths. */
function sharedLibraries(binary: string): string[] {
  return execFileSync("ldd", [binary], { encoding: "utf8" })
    .split("\n")
    .map((line) => /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line)?.[1])
    .filter((file): file is string => file !== undefined);
}

/** Where a library goes in a merged-/usr image: /lib/… and /lib64/… live under /usr. */
function usrPath(file: string): string {
  return file.replace(/^\/(lib|lib64)\//, "/usr/$1/").slice(1);
}

function copyInto(dir: string, source: string, target: string): void {
  fs.mkdirSync(path.dirname(path.join(dir, target)), { recursive: true });
  fs.copyFileSync(fs.realpathSync(source), path.join(dir, target));
  fs.chmodSync(path.join(dir, target), 0o755);
}

/** Bottom layer of both images: the C libraries the two interpreters need, merged-/usr style. */
function libraryLayer() {
  const libraries = [...new Set([...sharedLibraries(PYTHON), ...sharedLibraries(NODE)])];
  return makeLayer({ "usr/bin/": "", "tmp/": "" }, "gzip", (dir) => {
    for (const file of libraries) copyInto(dir, file, usrPath(file));
    fs.symlinkSync("usr/lib", path.join(dir, "lib"));
    fs.symlinkSync("usr/lib64", path.join(dir, "lib64"));
    fs.symlinkSync("usr/bin", path.join(dir, "bin"));
  });
}

function pythonLayer() {
  const version = path.basename(PYTHON); // python3.11
  return makeLayer({}, "none", (dir) => {
    copyInto(dir, PYTHON, `usr/bin/${version}`);
    fs.symlinkSync(version, path.join(dir, "usr", "bin", "python3"));
    fs.cpSync(`/usr/lib/${version}`, path.join(dir, "usr", "lib", version), {
      recursive: true,
      verbatimSymlinks: true,
      filter: (source) => !/\/(test|__pycache__|site-packages|dist-packages)$/.test(source),
    });
  });
}

function nodeLayer() {
  return makeLayer({}, "none", (dir) => copyInto(dir, NODE, "usr/local/bin/node"));
}

const CONFIG = { Env: ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"], WorkingDir: "/" };

describe("the official-images example", () => {
  let registry: TestRegistry;
  let home: string;
  let images: { python: string; node: string };
  let sharedDiffId: string;

  beforeAll(async () => {
    registry = await startRegistry();
    const libraries = libraryLayer();
    sharedDiffId = sha256(libraries.tar);
    const pusher = new Pusher(registry);
    const layer = (built: { tar: Buffer; blob: Buffer }, mediaType: string) => ({ ...built, mediaType });
    await pusher.image("library/python", "3.12-slim", [layer(libraries, OCI.layerGzip), layer(pythonLayer(), OCI.layerTar)], { config: CONFIG });
    await pusher.image("library/node", "22-slim", [layer(libraries, OCI.layerGzip), layer(nodeLayer(), OCI.layerTar)], { config: CONFIG });
    images = { python: `${registry.host}/library/python:3.12-slim`, node: `${registry.host}/library/node:22-slim` };
    home = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-official-images-"));
  }, TIMEOUT);

  afterAll(async () => {
    await registry?.stop();
    if (home) await removeTree(home);
  }, TIMEOUT);

  it("pulls each image, runs the Python and the Node project's tests with the image's toolchain, and cleans up", async () => {
    const r = spawnSync(process.execPath, [path.join(REPO, "examples", "official-images.mjs")], {
      cwd: REPO,
      env: { ...process.env, PYRO_HOME: home, PYRO_PYTHON_IMAGE: images.python, PYRO_NODE_IMAGE: images.node },
      encoding: "utf8",
      timeout: TIMEOUT,
    });
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    // Each project ran in its own image: the version line comes from that image's interpreter.
    expect(r.stdout).toContain(`${images.python} (Python 3.`);
    expect(r.stdout).toContain(`${images.node} (v${process.versions.node})`);
    expect(r.stdout).toMatch(/Ran 2 tests[\s\S]*\nOK/);
    expect(r.stdout).toMatch(/# pass 2\n# fail 0/);
    expect(r.stdout.match(/tests exit_code=0/g)).toHaveLength(2);
    // Progress lines of the pulls, one per layer step, on stderr.
    expect(r.stderr).toContain(`[pull] layer 2/2`);

    // The bottom layer both images share was unpacked once, and both environments stand on it.
    const pyro = new Pyro({ home });
    try {
      const python = await pyro.inspectEnvironment(images.python);
      const node = await pyro.inspectEnvironment(images.node);
      const hex = sharedDiffId.slice("sha256:".length);
      expect(python.layers).toContain(hex);
      expect(node.layers).toContain(hex);
      expect(fs.readdirSync(path.join(home, "environments", "layers")).filter((name) => name === hex)).toHaveLength(1);
      expect((await pyro.listWorkspaces()).count).toBe(0);
    } finally {
      pyro.close();
    }
    expect(findLeaks(home)).toEqual(noLeaks());
  }, TIMEOUT);
});
