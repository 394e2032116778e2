#!/usr/bin/env bash
# Installs what pyro needs on a Debian or Ubuntu host, and does nothing when it is all there:
# system packages through apt (as root; otherwise prints the exact command), npm dependencies,
# and the build. Sourced by scripts/demo.sh and scripts/test.sh. Nothing but apt needs root.
#
# Run by an ordinary user it also says what would make that user's workspaces complete, with the
# exact command for someone with sudo, without failing: subordinate ids (a full set of guest
# users), an openable /dev/net/tun (network egress) and a delegated cgroup subtree (memory, pids
# and CPU limits). pyro works without each; `pyro doctor` reports the same.
set -euo pipefail
cd "$(dirname "$0")/.."

# Packages: bubblewrap (the sandbox), debootstrap (builds environments from Debian packages),
# util-linux (unshare, mount, nsenter), tar, ca-certificates; uidmap (newuidmap/newgidmap, which
# map an ordinary user's subordinate ids into its sandboxes' user namespaces); for workspace
# networking: slirp4netns (user-mode egress and published ports), nftables (the rules inside each
# workspace's own network namespace — never the host's), iproute2 (routes there), perl-base
# (starts helpers); git (project sources) and findutils (snapshots); for the VM backend:
# qemu-system-x86 (the microvm machine, virtiofsd), qemu-utils (qcow2 root disks),
# busybox-static (the guest's init) and e2fsprogs (ext4 images of environments); for the image
# tests and benchmark: docker-registry (the distribution server the tests push to and pull from on
# 127.0.0.1), apache2-utils (htpasswd for its auth), zstd (zstd layers), skopeo (the
# benchmark's yardstick) and python3 (with the host's node, the stand-ins for the official
# images the README's example uses).
PACKAGES=(bubblewrap debootstrap util-linux mount tar ca-certificates uidmap slirp4netns nftables iproute2 perl-base git findutils qemu-system-x86 qemu-utils busybox-static e2fsprogs docker-registry apache2-utils zstd skopeo python3)

node_version=$(node --version 2>/dev/null || true)
major=${node_version#v}
major=${major%%.*}
if ! [[ "$major" =~ ^[0-9]+$ ]] || [ "$major" -lt 20 ]; then
  echo "pyro needs Node.js >= 20 (found: ${node_version:-none})." >&2
  echo "Install it from https://nodejs.org or your distribution, then run this again." >&2
  exit 1
fi

# One dpkg-query for all packages; one it does not know prints nothing and counts as missing.
# dpkg-query exits non-zero when any package was never installed, which on a fresh machine is
# the normal case: its status must not end this script (set -e, pipefail).
installed=" $({ dpkg-query -W -f='${Package} ${Status}\n' "${PACKAGES[@]}" 2>/dev/null || true; } | awk '/ install ok installed$/ { sub(/:.*/, "", $1); printf "%s ", $1 }')"
missing=()
for p in "${PACKAGES[@]}"; do
  [[ "$installed" == *" $p "* ]] || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ] && [ "$(id -u)" -eq 0 ]; then
  echo "[setup] installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  missing=()
fi

# The first range of 65536 ids from 100000 on (steps of 65536, as useradd allocates) that no
# entry of /etc/subuid or /etc/subgid overlaps, as FIRST-LAST.
free_subid_range() {
  cat /etc/subuid /etc/subgid 2>/dev/null | awk -F: '
    $2 ~ /^[0-9]+$/ && $3 ~ /^[0-9]+$/ { n++; s[n] = $2 + 0; e[n] = $2 + $3 }
    END {
      for (start = 100000; ; start += 65536) {
        ok = 1
        for (i = 1; i <= n; i++) if (s[i] < start + 65536 && e[i] > start) { ok = 0; break }
        if (ok) { printf "%d-%d\n", start, start + 65535; exit }
      }
    }'
}

# Whether NAME (or UID) has a usable line in FILE, as src/runtime/confine/identity.ts reads it.
has_subids() {
  awk -F: -v name="$1" -v uid="$2" '($1 == name || $1 == uid) && $2 > 0 && $3 > 0 { found = 1 } END { exit !found }' "$3" 2>/dev/null
}

# The cgroup controllers (of memory, pids, cpu) this user may NOT limit, mirroring pyroGroup()
# and probeCgroups() in src/runtime/confine/cgroups.ts.
cgroup_missing() {
  local user=$1 uid=$2 root=/sys/fs/cgroup dir from c out=""
  if [ -e "$root/cgroup.controllers" ]; then
    if [ -n "${PYRO_CGROUP_PARENT:-}" ]; then
      case "$PYRO_CGROUP_PARENT" in /*) dir=$PYRO_CGROUP_PARENT ;; *) dir=$root/$PYRO_CGROUP_PARENT ;; esac
    elif [ -e "$root/pyro-$user" ]; then
      dir=$root/pyro-$user
    else
      dir=$root/user.slice/user-$uid.slice/user@$uid.service/pyro
    fi
    if [ -w "$dir" ]; then from=$dir
    elif [ -w "${dir%/*}" ] && [ -w "${dir%/*}/cgroup.subtree_control" ]; then from=${dir%/*}
    else echo "memory pids cpu"; return; fi
    local controllers=" $(cat "$from/cgroup.controllers" 2>/dev/null) "
    for c in memory pids cpu; do [[ "$controllers" == *" $c "* ]] || out+="$c "; done
  else
    local name=pyro-$user
    if [ -n "${PYRO_CGROUP_PARENT:-}" ]; then name=${PYRO_CGROUP_PARENT##*/}; fi
    for c in memory pids cpu; do [ -w "$root/$c/$name" ] || out+="$c "; done
  fi
  echo "${out% }"
}

if [ "$(id -u)" -ne 0 ]; then
  user=$(id -un)
  uid=$(id -u)
  optional=()
  add=""
  has_subids "$user" "$uid" /etc/subuid || add+=" --add-subuids $(free_subid_range)"
  has_subids "$user" "$uid" /etc/subgid || add+=" --add-subgids $(free_subid_range)"
  if [ -n "$add" ]; then
    optional+=("$user has no subordinate ids: workspaces have only guest root (apt-get install, useradd, chown to another user fail inside)."
      "  Run: sudo usermod$add $user")
  fi
  if [ ! -e /dev/net/tun ]; then
    optional+=("/dev/net/tun does not exist: workspaces have no network egress." "  Run: sudo modprobe tun")
  elif ! { : <>/dev/net/tun; } 2>/dev/null; then
    optional+=("/dev/net/tun is not openable by $user: workspaces have no network egress." "  Run: sudo chmod 0666 /dev/net/tun")
  fi
  no_limits=$(cgroup_missing "$user" "$uid")
  if [ -n "$no_limits" ]; then
    # The same commands as delegationHint() in src/runtime/confine/cgroups.ts.
    if [ -e /sys/fs/cgroup/cgroup.controllers ]; then
      fix="sudo mkdir /sys/fs/cgroup/pyro-$user && sudo chown -R $user /sys/fs/cgroup/pyro-$user && echo '+memory +pids +cpu' | sudo tee /sys/fs/cgroup/cgroup.subtree_control (or run pyro under systemd-run --user -p Delegate=yes)"
    else
      fix="for c in memory pids cpu; do sudo mkdir -p /sys/fs/cgroup/\$c/pyro-$user && sudo chown -R $user /sys/fs/cgroup/\$c/pyro-$user; done"
    fi
    optional+=("no cgroup subtree is delegated to $user: ${no_limits// /, } limits are not enforced." "  Run: $fix")
  fi
  if [ "${#optional[@]}" -gt 0 ]; then
    echo "[setup] optional for $user (pyro works without; 'pyro doctor' says the same):" >&2
    printf '  %s\n' "${optional[@]}" >&2
  fi
fi

if [ "${#missing[@]}" -gt 0 ]; then
  echo "pyro needs these packages: ${missing[*]}" >&2
  echo "Run: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
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
