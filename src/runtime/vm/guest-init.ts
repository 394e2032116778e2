/**
 * The two scripts a VM guest runs before the agent, both interpreted by static busybox:
 *
 * - `/init` in the initramfs loads the virtio modules, mounts the workspace's root disk (found
 *   by label), the read-only agent image at /run/pyro/agent and the host's /workspace through
 *   virtiofs, then switches root;
 * - `guest-init` (in the agent image) is PID 1 of the real root: it mounts what a Linux
 *   userland expects, puts the agent and the workload in cgroups of their own (see
 *   `GUEST_CGROUPS`), configures the network QEMU gave it (if any), starts the agent on the
 *   virtio-serial port named `pyro.agent`, reaps orphans, and powers the guest off when the
 *   agent exits — a guest without its agent is of no use, and a dead guest is what the host
 *   reports as `failed`.
 *
 * Nothing of the root is assumed beyond pyro's `/workspace`: an image environment may have no
 * shell, no C library and none of /run, /dev, /proc, /sys, /tmp or /etc, so both scripts run on
 * busybox from the initramfs or the agent image, make the mount points they need on the
 * workspace's copy-on-write root, and start the agent with the agent image's own loader.
 *
 * Any failure prints one `pyro-guest:` line on the console (the host keeps its tail) and powers
 * off at once instead of hanging. Pure: renders text.
 */
import { AGENT_RUNTIME_DIR, WORKSPACE_GUEST_PATH } from "../../protocol/messages.js";
import { GUEST_ADDRESS, HOST_GATEWAY, SANDBOX_PATH, SLIRP_DNS } from "../../protocol/guest.js";

/** Kernel modules the guest loads, in dependency order (paths under lib/modules/RELEASE/kernel). */
export const GUEST_MODULES: { path: string; optional?: boolean }[] = [
  { path: "drivers/virtio/virtio_ring" },
  { path: "drivers/virtio/virtio" },
  { path: "drivers/virtio/virtio_mmio" },
  { path: "drivers/block/virtio_blk" },
  { path: "drivers/char/virtio_console" },
  { path: "net/core/failover" },
  { path: "drivers/net/net_failover" },
  { path: "drivers/net/virtio_net" },
  { path: "fs/fuse/fuse" },
  { path: "fs/fuse/virtiofs" },
  { path: "drivers/char/hw_random/virtio-rng", optional: true },
  // Free page reporting: memory the guest frees goes back to the host.
  { path: "drivers/virtio/virtio_balloon", optional: true },
];

/** Name of the virtio-serial port the agent serves on. */
export const AGENT_PORT_NAME = "pyro.agent";
/** virtiofs tag of the shared /workspace. */
export const WORKSPACE_TAG = "workspace";
/**
 * Addressing on QEMU's user-mode network: its gateway and resolver, and the guest at the same
 * address a namespace sandbox has, so a workspace looks the same from inside on both backends.
 */
export const GUEST_NET = { address: `${GUEST_ADDRESS}/24`, gateway: HOST_GATEWAY, dns: SLIRP_DNS };
/** Printed by the probe guest (kernel command line `pyro.probe=1`) instead of starting the agent. */
export const PROBE_MARKER = "pyro-guest: probe ok";

/**
 * The guest's cgroups: the agent apart from everything it starts. Inside a guest the agent is
 * root of its own kernel, so it can do what a namespace sandbox's cannot: commands, services
 * and shells run in `workload` (the agent moves itself there for the instant of each spawn,
 * agent/expendable.ts), whose pids limit is the workspace's and whose memory stops short of the
 * guest's RAM by a reserve the agent keeps; the agent's cgroup outweighs it a hundred to one for
 * CPU. So a fork bomb cannot starve the agent's timeout, and a balloon meets the OOM killer in
 * `workload` — the command dies, the agent and the guest go on.
 */
export const GUEST_CGROUPS = { root: "/sys/fs/cgroup", agent: "/sys/fs/cgroup/pyro-agent", workload: "/sys/fs/cgroup/pyro-workload" };
/** Guest memory kept out of the workload's reach for the agent and the guest kernel: this, or a quarter of the RAM if less. */
export const GUEST_AGENT_RESERVE_MIB = 160;

const FAIL = 'fail() { echo "pyro-guest: $*" > /dev/console; $B poweroff -f; }';

export function initramfsInit(): string {
  const modules = GUEST_MODULES.map((m) => m.path.split("/").pop()!).join(" ");
  return `#!/bin/busybox sh
B=/bin/busybox
${FAIL}
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
for m in ${modules}; do
  [ -f /lib/modules/$m.ko ] && { $B insmod /lib/modules/$m.ko || fail "cannot load module $m"; }
done
if $B grep -q 'pyro.probe=1' /proc/cmdline; then echo "${PROBE_MARKER}" > /dev/console; $B poweroff -f; fi
root=$($B findfs LABEL=pyro-root) || fail "no root disk"
agent=$($B findfs LABEL=pyro-agent) || fail "no agent disk"
$B mount -t ext4 -o rw,nodev "$root" /newroot || fail "cannot mount the root disk"
# An image's root may lack the mount points (distroless, scratch), or have a link or a file
# there; they become plain directories on this workspace's copy-on-write root.
for d in run dev proc sys; do
  [ -d /newroot/$d ] && [ ! -L /newroot/$d ] || { $B rm -f /newroot/$d; $B mkdir -m 0755 /newroot/$d; } || fail "cannot make /$d"
done
$B mount -t tmpfs -o mode=0755,nodev,nosuid tmpfs /newroot/run || fail "cannot mount /run"
$B mkdir -p /newroot${AGENT_RUNTIME_DIR} /newroot${WORKSPACE_GUEST_PATH}
$B mount -t ext4 -o ro,nodev "$agent" /newroot${AGENT_RUNTIME_DIR} || fail "cannot mount the agent disk"
$B mount -t virtiofs -o nodev ${WORKSPACE_TAG} /newroot${WORKSPACE_GUEST_PATH} || fail "cannot mount /workspace"
for d in dev proc sys; do $B mount --move /$d /newroot/$d; done
exec $B switch_root /newroot ${AGENT_RUNTIME_DIR}/busybox sh ${AGENT_RUNTIME_DIR}/guest-init
`;
}

export function pidOneScript(): string {
  const agent = AGENT_RUNTIME_DIR;
  return `# PID 1 of a pyro VM guest (run by busybox sh from the agent image).
B=${agent}/busybox
${FAIL}
$B mkdir -p /dev/pts /dev/shm /run/pyro-secrets /tmp
$B mount -t devpts -o gid=5,mode=0620,ptmxmode=0666 devpts /dev/pts
$B mount -t tmpfs -o mode=1777,nodev,nosuid tmpfs /dev/shm
$B mount -t tmpfs -o mode=0700,nodev,nosuid,noexec tmpfs /run/pyro-secrets
$B chmod 1777 /tmp
C=${GUEST_CGROUPS.root}
# favordynmods: moving the agent in and out of the workload per spawn must not wait on RCU.
if $B mount -t cgroup2 -o nsdelegate,favordynmods cgroup2 $C 2>/dev/null || $B mount -t cgroup2 cgroup2 $C; then
  echo "+cpu +pids +memory" > $C/cgroup.subtree_control
  $B mkdir -p ${GUEST_CGROUPS.agent} ${GUEST_CGROUPS.workload}
  echo 10000 > ${GUEST_CGROUPS.agent}/cpu.weight
  echo 100 > ${GUEST_CGROUPS.workload}/cpu.weight
  pids=$($B sed -n 's/.*pyro.pids=\\([0-9]*\\).*/\\1/p' /proc/cmdline)
  [ -n "$pids" ] && echo "$pids" > ${GUEST_CGROUPS.workload}/pids.max
  total=$($B awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
  reserve=$((${GUEST_AGENT_RESERVE_MIB} * 1024)); [ $reserve -gt $((total / 4)) ] && reserve=$((total / 4))
  echo $(((total - reserve) * 1024)) > ${GUEST_CGROUPS.workload}/memory.max
  echo 0 > ${GUEST_CGROUPS.workload}/memory.swap.max 2>/dev/null
  # PID 1 joins the agent's cgroup, so the agent starts there.
  echo $$ > ${GUEST_CGROUPS.agent}/cgroup.procs
fi
# The agent is the last process the guest's OOM killer may choose (commands start at 1000).
echo -1000 > /proc/self/oom_score_adj
host=$($B sed -n 's/.*pyro.hostname=\\([a-z0-9-]*\\).*/\\1/p' /proc/cmdline)
[ -n "$host" ] && $B hostname "$host"
$B ip link set lo up
if [ -e /sys/class/net/eth0 ]; then
  $B ip link set eth0 up
  $B ip addr add ${GUEST_NET.address} dev eth0
  $B ip route add default via ${GUEST_NET.gateway}
fi
# The environment's resolv.conf may name anything; the guest's resolver is QEMU's.
echo "nameserver ${GUEST_NET.dns}" > /run/pyro/resolv.conf
# An image may have no /etc at all, or a resolv.conf linked to a resolver it does not run.
$B mkdir -p /etc
[ -L /etc/resolv.conf ] && [ ! -e /etc/resolv.conf ] && $B rm -f /etc/resolv.conf
[ -e /etc/resolv.conf ] || $B touch /etc/resolv.conf 2>/dev/null
$B mount --bind /run/pyro/resolv.conf /etc/resolv.conf 2>/dev/null
port=
for p in /sys/class/virtio-ports/*; do [ "$($B cat $p/name 2>/dev/null)" = "${AGENT_PORT_NAME}" ] && port=/dev/\${p##*/}; done
[ -n "$port" ] || fail "no agent port"
cd ${WORKSPACE_GUEST_PATH}
echo "pyro-guest: starting the agent at $($B cut -d' ' -f1 /proc/uptime) s of guest uptime" > /dev/console
$B env -i PATH=${SANDBOX_PATH} HOME=/root LANG=C.UTF-8 HOSTNAME="$host" UV_THREADPOOL_SIZE=8 \\
  ${agent}/ld.so --library-path ${agent} ${agent}/node --max-old-space-size=256 ${agent}/pyro-agent.mjs --serial "$port" \\
  < /dev/null > /dev/console 2>&1 &
# Reap whatever the agent's children leave behind; \`wait\` returns once the agent is gone.
wait
echo "pyro-guest: the agent exited" > /dev/console
$B poweroff -f
`;
}
