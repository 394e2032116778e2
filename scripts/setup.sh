#!/usr/bin/env bash
# Installs what pyro needs on a Debian or Ubuntu host, and does nothing when it is all there:
# system packages through apt (as root; otherwise prints the exact command), npm dependencies,
# and the build. Sourced by scripts/demo.sh and scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

# Packages: bubblewrap (the sandbox), debootstrap (builds environments from Debian packages),
# util-linux (unshare, mount, nsenter), tar, ca-certificates; for workspace networking:
# slirp4netns (user-mode egress and published ports), nftables (the rules inside each workspace's
# own network namespace — never the host's), iproute2 (routes there), perl-base (starts helpers);
# git (project sources) and findutils (snapshots); for the VM backend: qemu-system-x86 (the
# microvm machine, virtiofsd), qemu-utils (qcow2 root disks), busybox-static (the guest's init)
# and e2fsprogs (ext4 images of environments).
PACKAGES=(bubblewrap debootstrap util-linux mount tar ca-certificates slirp4netns nftables iproute2 perl-base git findutils qemu-system-x86 qemu-utils busybox-static e2fsprogs)

need_node() {
  echo "pyro needs Node.js >= 20 (found: $(node --version 2>/dev/null || echo none))." >&2
  echo "Install it from https://nodejs.org or your distribution, then run this again." >&2
  exit 1
}
command -v node >/dev/null 2>&1 || need_node
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' || need_node

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "[setup] installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "pyro needs these packages: ${missing[*]}" >&2
    echo "Run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

# npm dependencies: reinstall only when the lockfile changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "[setup] npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi

# Build only when a source file is newer than the last build.
if [ ! -f dist/.stamp ] || [ -n "$(find src scripts/build.mjs package.json tsconfig.json -newer dist/.stamp -print -quit)" ]; then
  echo "[setup] building" >&2
  npm run --silent build >&2
  touch dist/.stamp
fi
