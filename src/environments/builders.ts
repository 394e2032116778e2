/**
 * The two ways a catalog layer gets built: debootstrap for the base root, and apt-get inside an
 * overlay mount for a derived layer. Both run as guest root in the sandbox identity's user
 * namespace, with private mount and PID namespaces (see `runConfinedBuildStep`), so a killed
 * build leaves no mount and no process behind, and the layer's files carry the ids a
 * workspace's sandbox maps. Writes
 * only into the directories it is given; never decides where layers live.
 */
import { DEBIAN_SUITE } from "./catalog.js";
import { BUILD_SECCOMP, runConfinedBuildStep } from "./command.js";

/**
 * debootstrap's smallest variant: dpkg, apt, bash, coreutils; no init system, no recommends.
 * It runs as guest root in the sandbox identity's user namespace, where device nodes cannot
 * be made: `container=lxc` tells debootstrap so (it then binds the host's /dev entries into the
 * target for the build instead of creating them; a sandbox always gets a fresh /dev anyway).
 */
export async function debootstrapBase(environment: string, target: string, mirror: string, signal?: AbortSignal): Promise<void> {
  await runConfinedBuildStep(
    environment,
    "debootstrap",
    (launch) => ["env", "container=lxc", "debootstrap", "--variant=minbase", DEBIAN_SUITE, launch.bind(target), mirror],
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

export interface OverlayInstallPlan {
  environment: string;
  /** Parent layer directories, top-most first. */
  lowerLayers: string[];
  upper: string;
  work: string;
  packages: string[];
  /** A host file bound over /etc/apt/sources.list, or undefined to use the root's own sources. */
  sourcesList?: string;
  signal?: AbortSignal;
}

/**
 * Installs `packages` into an empty upper directory on top of the parent layers. The upper
 * directory must hold plain files, whiteouts and opaque markers only, so that it works as a
 * lowerdir later: `userxattr` (always set in a user namespace) already turns redirects and
 * metacopy off, and index is pinned off rather than left to the host's module default.
 */
export async function installPackagesInOverlay(plan: OverlayInstallPlan): Promise<void> {
  await runConfinedBuildStep(
    plan.environment,
    "apt-get install",
    (launch) => [
      "bwrap",
      ...BUILD_SECCOMP,
      "--die-with-parent",
      "--unshare-pid",
      "--unshare-ipc",
      "--unshare-uts",
      "--bind",
      launch.overlay(plan.lowerLayers, plan.upper, plan.work, ["index=off"]),
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
      launch.reachable("/etc/resolv.conf"),
      "/etc/resolv.conf",
      ...(plan.sourcesList ? ["--ro-bind", launch.bind(plan.sourcesList, { readOnly: true }), "/etc/apt/sources.list"] : []),
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
    ],
    { signal: plan.signal },
  );
}

/** The `sources.list` a derived build uses when pyro built the base itself. */
export function sourcesListFor(mirror: string): string {
  return `deb ${mirror} ${DEBIAN_SUITE} main\n`;
}
