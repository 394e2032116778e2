/**
 * The two ways a catalog layer gets built: debootstrap for the base root, and apt-get inside an
 * overlay mount for a derived layer. Both run in a private mount and PID namespace (see
 * `isolatedBuildCommand`), so a killed build leaves no mount and no process behind. Writes
 * only into the directories it is given; never decides where layers live.
 */
import { DEBIAN_SUITE } from "./catalog.js";
import { isolatedBuildCommand, runBuildStep } from "./command.js";
import { PyroError } from "../shared/errors.js";

/** debootstrap's smallest variant: dpkg, apt, bash, coreutils; no init system, no recommends. */
export async function debootstrapBase(environment: string, target: string, mirror: string, signal?: AbortSignal): Promise<void> {
  await runBuildStep(
    environment,
    "debootstrap",
    isolatedBuildCommand(["debootstrap", "--variant=minbase", DEBIAN_SUITE, target, mirror]),
    { signal },
  );
}

/**
 * Run as `sh -c SCRIPT pyro-apt PKG...` inside the merged root. `--force-unsafe-io` skips
 * dpkg's per-file fsync (the finished layer is synced once with syncfs before it is committed);
 * the lists are removed because they are stale within days and would be copied into every
 * workspace snapshot.
 */
const APT_SCRIPT = [
  "set -e",
  "export DEBIAN_FRONTEND=noninteractive",
  "apt-get update",
  'apt-get install -y --no-install-recommends -o DPkg::Options::=--force-unsafe-io "$@"',
  "apt-get clean",
  "rm -rf /var/lib/apt/lists/*",
].join("\n");

/**
 * Mounts the overlay inside the private namespace, then replaces itself with bwrap. Paths are
 * positional parameters, never spliced into the script. The overlay options are pinned rather
 * than left to the host's module defaults: with redirect_dir, index and metacopy off the upper
 * directory holds plain files, whiteouts and opaque markers only, so it works as a lowerdir
 * under any mount options later.
 */
const MOUNT_THEN_EXEC = [
  "set -e",
  'mount -t overlay overlay -o "lowerdir=$1,upperdir=$2,workdir=$3,redirect_dir=off,index=off,metacopy=off" "$4"',
  "shift 4",
  'exec "$@"',
].join("\n");

export interface OverlayInstallPlan {
  environment: string;
  /** Parent layer directories, top-most first. */
  lowerLayers: string[];
  upper: string;
  work: string;
  merged: string;
  packages: string[];
  /** A host file bound over /etc/apt/sources.list, or undefined to use the root's own sources. */
  sourcesList?: string;
  signal?: AbortSignal;
}

/** Installs `packages` into an empty upper directory on top of the parent layers. */
export async function installPackagesInOverlay(plan: OverlayInstallPlan): Promise<void> {
  for (const dir of [...plan.lowerLayers, plan.upper, plan.work]) assertOverlaySafePath(dir);
  const bwrap = [
    "bwrap",
    "--die-with-parent",
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--bind",
    plan.merged,
    "/",
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    // apt drops to the _apt user for downloads and writes its temp files to /tmp.
    "--perms",
    "1777",
    "--tmpfs",
    "/tmp",
    "--ro-bind",
    "/etc/resolv.conf",
    "/etc/resolv.conf",
    ...(plan.sourcesList ? ["--ro-bind", plan.sourcesList, "/etc/apt/sources.list"] : []),
    "--setenv",
    "PATH",
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "--setenv",
    "HOME",
    "/root",
    "--",
    "/bin/sh",
    "-c",
    APT_SCRIPT,
    "pyro-apt",
    ...plan.packages,
  ];
  const argv = isolatedBuildCommand([
    "sh",
    "-c",
    MOUNT_THEN_EXEC,
    "pyro-overlay",
    plan.lowerLayers.join(":"),
    plan.upper,
    plan.work,
    plan.merged,
    ...bwrap,
  ]);
  await runBuildStep(plan.environment, "apt-get install", argv, { signal: plan.signal });
}

/** The `sources.list` a derived build uses when pyro built the base itself. */
export function sourcesListFor(mirror: string): string {
  return `deb ${mirror} ${DEBIAN_SUITE} main\n`;
}

/**
 * overlayfs splits its options at `,` and `lowerdir` at `:`, and treats `\` as an escape; a
 * state directory whose path contains one of them cannot be mounted correctly, so refuse it
 * up front with a clear message instead of a confusing mount error.
 */
export function assertOverlaySafePath(dir: string): void {
  if (/[,:\\\n]/.test(dir)) {
    throw new PyroError("host_unsupported", `The path ${JSON.stringify(dir)} cannot be used in an overlay mount.`, {
      hint: "Choose a PYRO_HOME whose path contains no ',', ':' or '\\' characters.",
    });
  }
}
