/**
 * What a VM guest boots from, built once per host and cached under `$PYRO_HOME/vm/`:
 *
 * - the **kernel**: Debian's packaged cloud kernel (`linux-image-cloud-amd64`), fetched with
 *   `apt-get download` (no install on the host) and unpacked with dpkg-deb;
 * - the **initramfs**: static busybox, the virtio modules that kernel ships as modules, and
 *   `/init` (guest-init.ts), packed with busybox's cpio;
 * - the **agent image**: a read-only ext4 image of the agent runtime (the host's node and its
 *   libraries, the agent bundle, node-pty, busybox, the guest's PID 1 script), keyed by digest;
 * - a **root image** per environment: the environment's layers merged and written into an ext4
 *   image with `mkfs.ext4 -d`, shared read-only by every workspace on it. Each workspace gets a
 *   qcow2 overlay backed by it, so creating a workspace copies nothing.
 *
 * Builds go to a temporary name and are renamed into place, so a crash never leaves a half
 * image that a later start would trust. Host-side; reads only host paths and pyro's own layers.
 */
import { createHash } from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { agentRuntime } from "../confine/agent-runtime.js";
import { packageRoot } from "../../shared/package.js";
import { AGENT_RUNTIME_DIR } from "../../protocol/messages.js";
import { runCommand } from "../../environments/command.js";
import { ConfinedLaunch, ownByGuestRoot } from "../confine/launch.js";
import { PyroError } from "../../shared/errors.js";
import { findExecutable } from "../../shared/executables.js";
import { GUEST_MODULES, initramfsInit, pidOneScript } from "./guest-init.js";

/** The Debian package whose dependency names the cloud kernel to fetch. */
const KERNEL_META_PACKAGE = "linux-image-cloud-amd64";
export const ROOT_LABEL = "pyro-root";
export const AGENT_LABEL = "pyro-agent";
/** Free space a workspace's root filesystem gets above the environment (sparse: costs nothing until used). */
const ROOT_FREE_MIB = 2048;

export interface GuestKit {
  kernel: string;
  initramfs: string;
  kernelRelease: string;
}

export function vmDir(home: string): string {
  return path.join(home, "vm");
}

/** Where a host tool lives, or null. */
export function findTool(name: string, first: string[] = []): string | null {
  return findExecutable(name, { first });
}

/** Debian packages the VM backend needs on the host, by the tool that proves each is there. */
export const VM_HOST_TOOLS: Record<string, string> = {
  "qemu-system-x86_64": "qemu-system-x86",
  "qemu-img": "qemu-utils",
  busybox: "busybox-static",
  "mkfs.ext4": "e2fsprogs",
  "dpkg-deb": "dpkg",
};

export function virtiofsdPath(): string | null {
  return findTool("virtiofsd", ["/usr/lib/qemu", "/usr/libexec"]);
}

/** Missing host packages for the VM backend, as apt package names. */
export function missingVmPackages(): string[] {
  const missing = new Set<string>();
  for (const [tool, pkg] of Object.entries(VM_HOST_TOOLS)) if (!findTool(tool)) missing.add(pkg);
  if (!virtiofsdPath()) missing.add("qemu-system-common");
  return [...missing];
}

export function requireVmTools(): void {
  const missing = missingVmPackages();
  if (missing.length === 0) return;
  const sudo = process.getuid?.() === 0 ? "" : "sudo ";
  throw new PyroError("backend_unavailable", `the vm backend needs ${missing.join(", ")}, which this host does not have`, {
    hint: `Install them: ${sudo}apt-get install -y ${missing.join(" ")} (scripts/setup.sh does this).`,
  });
}

async function checked(argv: string[], what: string, hint?: string): Promise<string[]> {
  const r = await runCommand(argv);
  if (r.exitCode !== 0) {
    throw new PyroError("backend_unavailable", `${what} failed: ${r.tail.slice(-4).join(" | ").slice(0, 600) || `exit ${r.exitCode}`}`, hint ? { hint } : {});
  }
  return r.tail;
}

/** A scratch directory under the VM cache that is removed afterwards whatever happens. */
async function withScratch<T>(home: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const base = path.join(vmDir(home), "tmp");
  await fsp.mkdir(base, { recursive: true, mode: 0o700 });
  const dir = await fsp.mkdtemp(path.join(base, "build-"));
  try {
    return await fn(dir);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

const builds = new Map<string, Promise<string>>();

/** One build per output path at a time in this process; concurrent callers share it. */
function buildOnce(output: string, build: () => Promise<string>): Promise<string> {
  let pending = builds.get(output);
  if (!pending) {
    pending = build().finally(() => builds.delete(output));
    builds.set(output, pending);
  }
  return pending;
}

async function publish(tmp: string, final: string): Promise<void> {
  await fsp.mkdir(path.dirname(final), { recursive: true, mode: 0o700 });
  try {
    await fsp.rename(tmp, final);
  } catch (err) {
    // Another process published the same directory first: theirs is as good as ours.
    const code = (err as NodeJS.ErrnoException).code;
    if ((code !== "ENOTEMPTY" && code !== "EEXIST") || !fs.existsSync(final)) throw err;
  }
}

// ---------- kernel and initramfs ----------

/**
 * What the initramfs is made of besides the kernel: its /init and module list. A kit is named
 * `<kernel release>+<this>`, so a pyro whose guest init changed builds a new kit instead of
 * booting the old one.
 */
function initramfsVersion(): string {
  return createHash("sha256").update(initramfsInit()).update(JSON.stringify(GUEST_MODULES)).digest("hex").slice(0, 12);
}

/** The cached kit for this pyro's initramfs, if one was built (the newest kernel release wins). */
export function cachedKit(home: string): GuestKit | null {
  const dir = path.join(vmDir(home), "kit");
  const suffix = `+${initramfsVersion()}`;
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter((n) => n.endsWith(suffix)).sort();
  } catch {
    return null;
  }
  for (const name of names.reverse()) {
    const kit = { kernel: path.join(dir, name, "vmlinuz"), initramfs: path.join(dir, name, "initramfs.cpio"), kernelRelease: name.slice(0, -suffix.length) };
    if (fs.existsSync(kit.kernel) && fs.existsSync(kit.initramfs)) return kit;
  }
  return null;
}

/**
 * The kernel package to unpack: `$PYRO_VM_KERNEL_DEB` (a .deb on disk, for hosts without a
 * Debian mirror), else the cloud kernel that `linux-image-cloud-amd64` currently depends on.
 */
async function fetchKernelDeb(scratch: string): Promise<string> {
  const local = process.env.PYRO_VM_KERNEL_DEB;
  if (local) {
    if (!fs.existsSync(local)) throw new PyroError("backend_unavailable", `PYRO_VM_KERNEL_DEB points at ${local}, which does not exist`);
    return path.resolve(local);
  }
  const hint = "The VM backend fetches Debian's cloud kernel with apt; run `apt-get update`, or set PYRO_VM_KERNEL_DEB to a linux-image-*-cloud-amd64 .deb.";
  const deps = await checked(["apt-cache", "depends", KERNEL_META_PACKAGE], `looking up ${KERNEL_META_PACKAGE}`, hint);
  const pkg = deps.map((l) => l.match(/Depends:\s+(linux-image-\S+)/)?.[1]).find(Boolean);
  if (!pkg) throw new PyroError("backend_unavailable", `apt knows no kernel for ${KERNEL_META_PACKAGE}`, { hint });
  const r = await runCommand(["sh", "-c", 'cd "$1" && exec apt-get download -o APT::Sandbox::User=root "$2"', "fetch-kernel", scratch, pkg]);
  if (r.exitCode !== 0) throw new PyroError("backend_unavailable", `apt-get download ${pkg} failed: ${r.tail.slice(-3).join(" | ")}`, { hint });
  const deb = fs.readdirSync(scratch).find((n) => n.endsWith(".deb"));
  if (!deb) throw new PyroError("backend_unavailable", `apt-get download ${pkg} produced no package`, { hint });
  return path.join(scratch, deb);
}

/** Builds a newc cpio archive of `dir` with busybox (already needed inside the guest). */
async function packCpio(dir: string, out: string): Promise<void> {
  await checked(["sh", "-c", 'cd "$1" && find . | sort | busybox cpio -o -H newc > "$2"', "pack-initramfs", dir, out], "packing the initramfs");
}

let kitBuild: Promise<GuestKit> | null = null;

/** The guest kernel and initramfs, built on first use (a download of about 27 MB). */
export function guestKit(home: string): Promise<GuestKit> {
  const cached = cachedKit(home);
  if (cached) return Promise.resolve(cached);
  kitBuild ??= buildKit(home).finally(() => {
    kitBuild = null;
  });
  return kitBuild;
}

async function buildKit(home: string): Promise<GuestKit> {
  requireVmTools();
  return withScratch(home, async (scratch) => {
    const deb = await fetchKernelDeb(scratch);
    const unpacked = path.join(scratch, "pkg");
    await checked(["dpkg-deb", "-x", deb, unpacked], "unpacking the kernel package");
    const boot = path.join(unpacked, "boot");
    const vmlinuz = fs.readdirSync(boot).find((n) => n.startsWith("vmlinuz-"));
    if (!vmlinuz) throw new PyroError("backend_unavailable", "the kernel package has no vmlinuz");
    const release = vmlinuz.slice("vmlinuz-".length);
    const modules = path.join(unpacked, "lib", "modules", release, "kernel");
    const root = path.join(scratch, "initramfs");
    for (const d of ["bin", "dev", "proc", "sys", "newroot", "lib/modules"]) await fsp.mkdir(path.join(root, d), { recursive: true });
    await fsp.copyFile(findTool("busybox")!, path.join(root, "bin", "busybox"));
    await fsp.chmod(path.join(root, "bin", "busybox"), 0o755);
    for (const m of GUEST_MODULES) {
      const source = path.join(modules, `${m.path}.ko`);
      if (!fs.existsSync(source)) {
        if (m.optional) continue;
        throw new PyroError("backend_unavailable", `the kernel ${release} has no module ${m.path}`);
      }
      await fsp.copyFile(source, path.join(root, "lib", "modules", `${path.basename(m.path)}.ko`));
    }
    await fsp.writeFile(path.join(root, "init"), initramfsInit(), { mode: 0o755 });
    const staged = path.join(scratch, "kit");
    await fsp.mkdir(staged);
    await fsp.copyFile(path.join(boot, vmlinuz), path.join(staged, "vmlinuz"));
    await packCpio(root, path.join(staged, "initramfs.cpio"));
    const final = path.join(vmDir(home), "kit", `${release}+${initramfsVersion()}`);
    await publish(staged, final);
    // Kits of earlier pyro versions: running guests hold their files open, new ones use this one.
    for (const old of await fsp.readdir(path.dirname(final))) {
      if (old !== path.basename(final) && !old.startsWith(".")) await fsp.rm(path.join(path.dirname(final), old), { recursive: true, force: true });
    }
    return cachedKit(home)!;
  });
}

// ---------- agent image ----------

function hashTree(hash: ReturnType<typeof createHash>, p: string): void {
  const st = fs.statSync(p);
  if (st.isDirectory()) {
    for (const name of fs.readdirSync(p).sort()) {
      hash.update(`d:${name}\0`);
      hashTree(hash, path.join(p, name));
    }
  } else {
    hash.update(`f:${st.size}:${st.mtimeMs}\0`);
  }
}

let digest: string | undefined;

/**
 * Digest of what goes into the agent image: the runtime's files (by size and mtime), busybox and
 * the guest scripts. Computed once per process: a build of pyro does not change under it.
 */
function agentImageDigest(): string {
  if (digest) return digest;
  const hash = createHash("sha256");
  for (const bind of agentRuntime().binds) {
    hash.update(`${bind.target}\0`);
    hashTree(hash, bind.source);
  }
  hashTree(hash, findTool("busybox")!);
  hash.update(pidOneScript());
  digest = hash.digest("hex").slice(0, 24);
  return digest;
}

/** The read-only ext4 image mounted at /run/pyro/agent in every guest. */
export function agentImage(home: string): Promise<string> {
  requireVmTools(); // busybox is part of the digest
  const digest = agentImageDigest();
  const image = path.join(vmDir(home), "agent", `${digest}.ext4`);
  if (fs.existsSync(image)) return Promise.resolve(image);
  return buildOnce(image, () =>
    withScratch(home, async (scratch) => {
      const tree = path.join(scratch, "agent");
      await fsp.mkdir(tree);
      for (const bind of agentRuntime().binds) {
        const target = path.join(tree, path.relative(AGENT_RUNTIME_DIR, bind.target));
        await fsp.mkdir(path.dirname(target), { recursive: true });
        await fsp.cp(bind.source, target, { recursive: true, dereference: true });
      }
      await fsp.copyFile(findTool("busybox")!, path.join(tree, "busybox"));
      await fsp.chmod(path.join(tree, "busybox"), 0o755);
      await fsp.writeFile(path.join(tree, "guest-init"), pidOneScript(), { mode: 0o755 });
      const sizeMib = Math.ceil(duBytes(tree) / 1048576 * 1.2) + 32;
      const tmp = path.join(scratch, "agent.ext4");
      await checked(["mkfs.ext4", "-q", "-F", "-L", AGENT_LABEL, "-O", "^has_journal", "-E", "root_owner=0:0", "-d", tree, tmp, `${sizeMib}M`], "building the agent image");
      await publish(tmp, image);
      await pruneOthers(path.dirname(image), path.basename(image));
      return image;
    }),
  );
}

function duBytes(p: string): number {
  const st = fs.lstatSync(p);
  if (!st.isDirectory()) return st.size;
  let total = 4096;
  for (const name of fs.readdirSync(p)) total += duBytes(path.join(p, name));
  return total;
}

/** Older agent images are dead weight once a new one exists (running guests keep their open file). */
async function pruneOthers(dir: string, keep: string): Promise<void> {
  for (const name of await fsp.readdir(dir)) {
    if (name !== keep && name.endsWith(".ext4")) await fsp.rm(path.join(dir, name), { force: true });
  }
}

// ---------- root images ----------

/** The cached root image for a layer stack (layers are content-digested, so their names are the key). */
export function rootImagePath(home: string, layers: string[]): string {
  const key = createHash("sha256").update(layers.map((l) => path.basename(l)).join(":")).digest("hex").slice(0, 32);
  return path.join(vmDir(home), "rootfs", `${key}.ext4`);
}

/**
 * The environment's layers, merged by a read-only overlay in the sandbox identity's own mount
 * namespace (so it never shows in the host's mount table, and overlayfs reads the layers'
 * user.* metadata as a workspace's sandbox does: an image's whiteouts and opaque directories
 * are resolved, so the guest sees exactly the image's tree), written into an ext4 image. The
 * image records the ids as the guest sees them (root is 0).
 */
export function rootImage(home: string, layers: string[]): Promise<string> {
  const image = rootImagePath(home, layers);
  if (fs.existsSync(image)) return Promise.resolve(image);
  requireVmTools();
  return buildOnce(image, () =>
    withScratch(home, async (scratch) => {
      const out = path.join(scratch, "out");
      await fsp.mkdir(out);
      ownByGuestRoot(out);
      const script = [
        "set -e",
        'used=$(du -sm "$1" | cut -f1)',
        'mkfs.ext4 -q -F -L "$3" -E root_owner=0:0 -d "$1" "$2/root.ext4" "$(( used + used / 5 + $4 ))M"',
      ].join("\n");
      const launch = await ConfinedLaunch.open(3);
      try {
        // overlayfs wants two lower layers at least; a single layer is used as it is.
        const source = layers.length > 1 ? launch.overlay(layers, null, null, ["ro"]) : launch.bind(layers[0]!, { readOnly: true });
        const { argv, fds } = launch.argv(["sh", "-c", script, "pyro-vm-root", source, launch.bind(out), ROOT_LABEL, String(ROOT_FREE_MIB)]);
        const r = await runCommand(argv, { fds });
        if (r.exitCode !== 0) throw new PyroError("backend_unavailable", `building the VM root image failed: ${r.tail.slice(-4).join(" | ").slice(0, 600) || `exit ${r.exitCode}`}`);
      } finally {
        launch.release();
      }
      await publish(path.join(out, "root.ext4"), image);
      return image;
    }),
  );
}

/**
 * Removes the root images no workspace and no installed environment stands on (an image in use
 * backs workspaces' root disks by path, so only unreferenced ones go). Returns the bytes freed.
 */
export async function pruneRootImages(home: string, layerSets: string[][]): Promise<number> {
  const dir = path.join(vmDir(home), "rootfs");
  const keep = new Set(layerSets.map((layers) => path.basename(rootImagePath(home, layers))));
  let freed = 0;
  for (const name of await fsp.readdir(dir).catch(() => [] as string[])) {
    if (!name.endsWith(".ext4") || keep.has(name)) continue;
    const file = path.join(dir, name);
    freed += (await fsp.stat(file)).blocks * 512;
    await fsp.rm(file, { force: true });
  }
  return freed;
}

/** A workspace's copy-on-write root disk: a qcow2 overlay whose backing file is the shared image. */
export async function createRootOverlay(base: string, overlay: string): Promise<void> {
  const tmp = `${overlay}.tmp`;
  await checked(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", base, tmp], "creating the workspace's root disk");
  await fsp.rename(tmp, overlay);
}

/** The supervisor bundle that runs beside QEMU in the VM jail. */
export function supervisorBundlePath(): string {
  return path.join(packageRoot(), "dist", "vm", "pyro-vm-supervisor.mjs");
}
