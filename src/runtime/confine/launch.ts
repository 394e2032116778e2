/**
 * Starting a command confined to the sandbox identity (identity.ts): in a fresh user namespace
 * whose ids map to the unprivileged host identity, with a private mount namespace owned by it.
 * Every sandbox pyro starts goes through here: workspaces, utility sandboxes, environment
 * builds and the VM backend's jail.
 *
 * How, and why this way:
 *
 * 1. A *holder* process (`unshare --user --mount --propagation private … cat`) creates the two
 *    namespaces. pyro writes its id maps from outside: directly when pyro is root (a range no
 *    host account uses), through `newuidmap`/`newgidmap` for an ordinary user's subordinate ids.
 * 2. The sandbox identity may be unable to reach host paths pyro uses (root's state directory
 *    under /root is mode 0700). So pyro, still itself, opens every host path the command needs
 *    *through the holder's root* (`/proc/HOLDER/root/…`: the descriptors then belong to the
 *    holder's mount namespace) and hands them over as inherited descriptors.
 * 3. The launcher enters the namespaces (setns(2) on the holder's, as `nsenter --user --mount`
 *    would, becoming guest root with capabilities only there), mounts a small tmpfs *stage* over
 *    an unimportant directory, and
 *    mounts each descriptor onto it — a bind, or an overlay whose layers are descriptors — then
 *    closes them and execs the command, which sees only stage paths. The host never resolves a
 *    path on the sandbox's behalf, and the sandbox never resolves a host path of pyro's.
 *
 * Mounts made here exist only in the holder's namespace, so they vanish with the last process
 * in it, even after `kill -9`.
 *
 * A launch may instead *join* a running sandbox (`ConfinedLaunch.join`): its holder enters the
 * user and mount namespaces of the sandbox's outer process and unshares a private copy of that
 * mount namespace, so the command sees the very mounts the sandbox sees (its overlay instance,
 * not a second overlay on the same upper directory) while every mount it adds lives in the copy
 * and vanishes with it. The copy has to exist before pyro opens anything: a descriptor opened
 * in the sandbox's own namespace cannot be bound in another one (the kernel refuses with
 * EINVAL), so host paths are opened through the joining holder's root, never the target's. A
 * joined launch never signals, maps or mounts anything in the target.
 */
import { spawn, execFile } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { PyroError } from "../../shared/errors.js";
import { findExecutable, systemPath } from "../../shared/executables.js";
import { processStartTime } from "../../shared/process.js";
import { mapText, sandboxIdentity } from "./identity.js";
import type { SandboxIdentity } from "./identity.js";

/**
 * The system calls the stage makes, on the architectures pyro runs on (Node's process.arch
 * names), in the order the stage takes them: mount, setns, setgroups, setresgid, setresuid.
 */
const STAGE_SYSCALLS: Record<string, string> = { x64: "165,308,116,119,117", arm64: "40,268,159,149,147" };

/**
 * The stage: with CGROUP "cgroup", first joins the workspace's cgroup as pyro itself (the
 * sandbox identity may not write there) by writing its pid to each file PYRO_CGROUP_PROCS
 * names, exiting 125 when one is gone (a sweep removed the cgroup: nothing may start outside
 * it); then enters the holder's user and mount namespaces (descriptors USERNS and MNTNS) and
 * becomes root there, as `nsenter --user --mount` does (supplementary groups dropped where the
 * namespace allows it), resolves the paths named inside the namespace, mounts a tmpfs at
 * $stage, then performs the operations before `--`, then closes every descriptor from
 * `close_from` up and execs the rest. Joining and entering here rather than through a shell and
 * nsenter saves two execs, and every sandbox start pays for each one; for the same reason the
 * script loads no module (Fcntl only on kernels without openat2). Operations (all descriptors
 * are inherited, so /proc/self/fd/N names them without resolving any host path):
 *   bind NAME FD d|f 0|1     NAME becomes a (read-only when 1) bind of descriptor FD
 *   overlay NAME DATA        an overlay on NAME; DATA names its layers as /proc/self/fd/N
 *   nsbind NAME PATH 0|1     NAME becomes a (read-only when 1) bind of PATH as it exists in
 *                            this mount namespace (a joined sandbox's stage: see `join`)
 * Every nsbind PATH is opened (O_PATH, refusing a symbolic link anywhere on the way: it may lead
 * into a tree the sandbox writes) before the tmpfs is mounted, since the new stage may cover the
 * very directory it names; from then on it is a bind of that descriptor.
 * Written in perl (perl-base is essential on Debian) because it needs raw mount(2) calls and
 * costs one exec, where mount(8) would cost one per operation.
 */
const STAGE_PERL = String.raw`
my ($stage, $nrs, $cgroup, $userns, $mntns, $close_from) = (shift, shift, shift, 0 + shift, 0 + shift, 0 + shift);
my ($nr, $setns, $setgroups, $setresgid, $setresuid) = split /,/, $nrs;
if ($cgroup eq "cgroup") {
  for my $f (split ' ', ($ENV{PYRO_CGROUP_PROCS} // '')) {
    open(my $c, ">", $f) or exit 125; print $c "$$\n"; close($c) or exit 125;
  }
}
syscall($setgroups, 0, 0);
syscall($setns, $userns, 0x10000000) == 0 or die "pyro-stage: enter the user namespace: $!\n";
syscall($setns, $mntns, 0x00020000) == 0 or die "pyro-stage: enter the mount namespace: $!\n";
syscall($setgroups, 0, 0);
syscall($setresgid, 0, 0, 0) == 0 or die "pyro-stage: setresgid: $!\n";
syscall($setresuid, 0, 0, 0) == 0 or die "pyro-stage: setresuid: $!\n";
sub mnt { my ($src, $dst, $type, $flags, $data) = @_;
  syscall($nr, $src, $dst, $type, $flags + 0, $data) == 0 or die "pyro-stage: mount $type on $dst: $!\n"; }
my (@ops, @keep);
while (@ARGV) {
  my $op = shift;
  last if $op eq "--";
  if ($op eq "bind") { push @ops, [$op, splice(@ARGV, 0, 4)]; }
  elsif ($op eq "overlay") { push @ops, [$op, splice(@ARGV, 0, 2)]; }
  elsif ($op eq "nsbind") {
    my ($name, $path, $ro) = splice(@ARGV, 0, 3);
    # openat2(O_PATH | O_CLOEXEC, RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS): the kernel
    # refuses a symbolic link anywhere on the way, the last component too (O_NOFOLLOW would
    # open the link itself), atomically. Before Linux 5.6, every prefix is checked with lstat
    # instead (enough for pyro's stage, which nothing else writes).
    my $how = pack("QQQ", 0x200000 | 0x80000, 0, 0x04 | 0x02);
    my $fd = syscall(437, -100, $path, $how, 24);
    if ($fd < 0 && $!{ENOSYS}) {
      my $at = "";
      for my $part (grep { length } split m{/}, $path) { $at .= "/$part"; die "pyro-stage: $at is a symbolic link\n" if -l $at; }
      my $fh;
      require Fcntl;
      if (sysopen($fh, $path, 0x200000 | Fcntl::O_NOFOLLOW())) { $fd = fileno($fh); push @keep, $fh; }
    }
    die "pyro-stage: open $path: $!\n" if $fd < 0;
    push @ops, ["bind", $name, $fd, (-d "/proc/self/fd/$fd" ? "d" : "f"), $ro];
  } else { die "pyro-stage: unknown operation $op\n"; }
}
mnt("pyro-stage", $stage, "tmpfs", 2 | 4, "mode=0755,size=64k");
for my $o (@ops) {
  my ($op, $name) = @$o; my $dst = "$stage/$name";
  if ($op eq "bind") {
    my ($fd, $kind, $ro) = @$o[2, 3, 4];
    if ($kind eq "d") { mkdir($dst) or die "pyro-stage: mkdir $dst: $!\n"; }
    else { open(my $f, ">", $dst) or die "pyro-stage: create $dst: $!\n"; close($f); }
    mnt("/proc/self/fd/$fd", $dst, "", 4096, "");
    mnt("", $dst, "", 4096 | 32 | 1 | 2 | 4, "") if $ro;
  } else {
    mkdir($dst) or die "pyro-stage: mkdir $dst: $!\n";
    mnt("pyro", $dst, "overlay", 2 | 4, $$o[2]);
  }
}
syscall(436, $close_from, 4294967295, 0) == 0 or do { require POSIX; POSIX::close($_) for $close_from..4095 };
exec { $ARGV[0] } @ARGV or die "pyro-stage: exec $ARGV[0]: $!\n";
`;

/** Directories the stage may cover, in order: any that exists is fine; none is used by a sandbox. */
const STAGE_CANDIDATES = ["/mnt", "/srv", "/media", "/opt", "/var/tmp"];

let stageDir: string | undefined;
function stageLocation(): string {
  if (stageDir) return stageDir;
  for (const dir of STAGE_CANDIDATES) {
    try {
      if (fs.lstatSync(dir).isDirectory()) return (stageDir = dir);
    } catch {
      // try the next
    }
  }
  throw new PyroError("host_unsupported", `none of ${STAGE_CANDIDATES.join(", ")} exists on this host`, {
    hint: "Create /mnt (an empty directory); pyro mounts its staging area over it inside each sandbox's own mount namespace.",
  });
}

/** An open holder: the namespaces exist while it (or anything that entered them) runs. */
export interface Holder {
  pid: number;
  /** Lets the holder exit; processes that already entered keep the namespaces alive. Idempotent. */
  release(): void;
  /** Whether the holder keeps Node's event loop alive (a spare waiting for a launch must not). */
  keepAlive(on: boolean): void;
}

function required(name: string, pkg: string): string {
  const found = findExecutable(name);
  if (!found) throw new PyroError("host_unsupported", `${name} is not installed`, { hint: `Install it: sudo apt-get install ${pkg}` });
  return found;
}

function runTool(file: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: 10_000 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`${path.basename(file)} ${args.join(" ")}: ${String(stderr).trim() || err.message}`));
      else resolve();
    });
  });
}

/**
 * What a holder runs in its namespaces: it says it is there, then waits for the end of its
 * standard input, which `release` closes. The shell's own `read` does the waiting: one exec
 * fewer than `exec cat`, and every sandbox launch pays for each exec.
 */
const HOLDER_SCRIPT = "echo; read _";

/**
 * Waits until a holder process (HOLDER_SCRIPT in its namespaces) says it is there: `ready`
 * false when it exited first. `release` ends it by closing its stdin.
 */
async function holderReady(child: ChildProcess): Promise<{ ready: boolean; stderr: () => string; release: () => void; keepAlive: (on: boolean) => void }> {
  const err: Buffer[] = [];
  child.stderr!.on("data", (d: Buffer) => err.push(d));
  child.stdin!.on("error", () => undefined);
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    child.stdin!.end();
    child.stdout!.destroy();
    child.stderr!.destroy();
  };
  const keepAlive = (on: boolean) => {
    for (const handle of [child, child.stdin, child.stdout, child.stderr] as Array<{ ref(): void; unref(): void } | null>) {
      if (on) handle?.ref();
      else handle?.unref();
    }
  };
  const ready = await new Promise<boolean>((resolve) => {
    child.once("error", () => resolve(false));
    child.once("exit", () => resolve(false));
    child.stdout!.once("data", () => resolve(true));
  });
  return { ready, stderr: () => Buffer.concat(err).toString("utf8").trim(), release, keepAlive };
}

/** Creates the namespaces and writes their id maps. */
export async function createHolder(identity: SandboxIdentity = sandboxIdentity()): Promise<Holder> {
  const unshare = required("unshare", "util-linux");
  const child = spawn(unshare, ["--user", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", HOLDER_SCRIPT], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  const { ready, stderr, release, keepAlive } = await holderReady(child);
  const pid = child.pid;
  if (!ready || pid === undefined) {
    release();
    throw userNamespaceRefused(stderr());
  }
  try {
    await writeMaps(pid, identity);
  } catch (err) {
    child.kill("SIGKILL");
    release();
    throw new PyroError("host_unsupported", `cannot map ids into the sandbox's user namespace: ${(err as Error).message}`, {
      hint: identity.hint ?? "Run `pyro doctor`: it says how this host maps sandbox ids.",
    });
  }
  return { pid, release, keepAlive };
}

/** How long a spare holder waits for a launch before it is let go. */
const SPARE_HOLDER_MS = 5000;

let spare: { identity: string; holder: Promise<Holder>; timer: NodeJS.Timeout } | null = null;

/**
 * Starts making the holder the next launch of this process will use, so that its two execs
 * (`unshare`, the shell) overlap the caller's own work — taking locks, writing records,
 * copying — instead of preceding the sandbox. An operation that is about to start a sandbox
 * calls it first; a spare nobody takes is let go after a few seconds, and never keeps the
 * process alive. Failures are not reported here: the launch then makes its own holder and
 * reports that.
 */
export function prepareLaunch(identity: SandboxIdentity = sandboxIdentity()): void {
  if (spare) return;
  const holder = createHolder(identity).then((h) => {
    h.keepAlive(false);
    return h;
  });
  holder.catch(() => undefined);
  const timer = setTimeout(() => dropSpare(), SPARE_HOLDER_MS).unref();
  spare = { identity: identity.key, holder, timer };
}

/** Takes the spare (for `identity`, when given) out of waiting: no launch will find it again. */
function takeSpare(identity?: SandboxIdentity): Promise<Holder> | null {
  const s = spare;
  if (!s || (identity && s.identity !== identity.key)) return null;
  spare = null;
  clearTimeout(s.timer);
  return s.holder;
}

function dropSpare(): void {
  takeSpare()?.then((h) => h.release(), () => undefined);
}

/**
 * The mounts a mount table lists (device, root, mount point), sorted: what a namespace's copy
 * keeps (the copy lists them in tree order, and with ids of its own).
 */
function mountList(pid: number | "self"): string {
  return fs
    .readFileSync(`/proc/${pid}/mountinfo`, "utf8")
    .split("\n")
    .map((line) => line.split(" ").slice(2, 5).join(" "))
    .sort()
    .join("\n");
}

/**
 * A holder for a new launch: the spare when there is one for this identity whose namespace
 * still lists the host's mounts (a mount made since it was copied would be missing from it,
 * and paths under it would name what lies beneath), else a new one.
 */
async function holderFor(identity: SandboxIdentity): Promise<Holder> {
  const taken = takeSpare(identity);
  if (taken) {
    const holder = await taken.catch(() => null);
    if (holder) {
      let current = false;
      try {
        current = mountList(holder.pid) === mountList("self");
      } catch {
        // the holder is gone
      }
      if (current) {
        holder.keepAlive(true);
        return holder;
      }
      holder.release();
    }
  }
  return createHolder(identity);
}

/** A running sandbox to join: its outer process, trusted only together with its kernel start time. */
export interface JoinTarget {
  pid: number;
  /** From the sandbox's record; null (never recorded) is refused, since it proves nothing. */
  startTime: number | null;
}

/** workspace_stopped unless `target.pid` is still the process that started at `target.startTime`. */
function assertTargetRunning(target: JoinTarget): void {
  if (target.startTime === null || processStartTime(target.pid) !== target.startTime) {
    throw new PyroError("workspace_stopped", "the workspace's sandbox is gone", {
      hint: "Start the workspace again (workspace_start; CLI: `pyro workspace start WS`) or use it while stopped.",
    });
  }
}

/**
 * A holder inside a running sandbox's user namespace and a private copy of its mount namespace
 * (see the file comment). The namespaces are opened from /proc/PID/ns first and the start time
 * checked after, so a pid reused in between cannot lead the holder anywhere else; nothing is
 * written to the target (its id maps exist already), and releasing ends only the holder.
 */
export async function createJoinHolder(target: JoinTarget): Promise<Holder> {
  const nsenter = required("nsenter", "util-linux");
  const unshare = required("unshare", "util-linux");
  const opened: number[] = [];
  try {
    for (const ns of ["user", "mnt"]) opened.push(fs.openSync(`/proc/${target.pid}/ns/${ns}`, "r"));
  } catch (err) {
    for (const fd of opened) fs.closeSync(fd);
    assertTargetRunning(target);
    throw new PyroError("sandbox_start_failed", `cannot open the namespaces of the workspace's sandbox: ${(err as Error).message}`);
  }
  let child;
  try {
    assertTargetRunning(target);
    const same = (fd: number, ours: string) => {
      const a = fs.fstatSync(fd);
      const b = fs.statSync(ours);
      return a.ino === b.ino && a.dev === b.dev;
    };
    // A recorded pid that is pyro's own kind of process (no sandbox namespaces) must not make a
    // utility sandbox run in the host's namespaces.
    if (same(opened[0]!, "/proc/self/ns/user") || same(opened[1]!, "/proc/self/ns/mnt")) {
      throw new PyroError("internal_error", "refusing to join the host's own namespaces as a sandbox's");
    }
    child = spawn(nsenter, ["--user=/proc/self/fd/3", "--mount=/proc/self/fd/4", "--", unshare, "--mount", "--propagation", "private", "--", "/bin/sh", "-c", HOLDER_SCRIPT], {
      stdio: ["pipe", "pipe", "pipe", opened[0]!, opened[1]!],
    });
  } finally {
    for (const fd of opened) fs.closeSync(fd);
  }
  const { ready, stderr, release, keepAlive } = await holderReady(child);
  if (!ready || child.pid === undefined) {
    release();
    assertTargetRunning(target);
    throw new PyroError("sandbox_start_failed", `cannot join the workspace's sandbox: ${stderr() || "the joining process exited"}`);
  }
  return { pid: child.pid, release, keepAlive };
}

async function writeMaps(pid: number, identity: SandboxIdentity): Promise<void> {
  if (identity.kind === "subids") {
    const flat = (m: SandboxIdentity["uidMap"]) => m.flatMap((r) => [String(r.inside), String(r.outside), String(r.count)]);
    // At once: the two maps are independent, and each tool is an exec.
    await Promise.all([
      runTool(required("newuidmap", "uidmap"), [String(pid), ...flat(identity.uidMap)]),
      runTool(required("newgidmap", "uidmap"), [String(pid), ...flat(identity.gidMap)]),
    ]);
    return;
  }
  // Written whole, in one write(2) each: the kernel takes a map in a single write only.
  if (identity.kind === "single") fs.writeFileSync(`/proc/${pid}/setgroups`, "deny");
  fs.writeFileSync(`/proc/${pid}/uid_map`, mapText(identity.uidMap));
  fs.writeFileSync(`/proc/${pid}/gid_map`, mapText(identity.gidMap));
}

/** Why a user namespace could not be made, and how to allow it. */
export function userNamespaceRefused(detail: string): PyroError {
  const reason = userNamespaceBlocker();
  return new PyroError("host_unsupported", `this host does not allow user namespaces${reason ? ` (${reason.reason})` : ""}${detail ? `: ${detail}` : ""}`, {
    hint: reason?.fix ?? "pyro runs every sandbox in a user namespace; run `pyro doctor` for what blocks them here.",
  });
}

/**
 * Refuses at once, with the setting to change, on a host whose configuration forbids user
 * namespaces: callers check before they make anything, so nothing is left half-made.
 */
export function assertUserNamespacesAllowed(): void {
  if (userNamespaceBlocker()) throw userNamespaceRefused("");
}

/** What stops unprivileged user namespaces on this host, if anything pyro can name. */
export function userNamespaceBlocker(): { reason: string; fix: string } | null {
  const read = (f: string) => {
    try {
      return fs.readFileSync(f, "utf8").trim();
    } catch {
      return null;
    }
  };
  if (read("/proc/sys/user/max_user_namespaces") === "0") {
    return { reason: "user.max_user_namespaces is 0", fix: "Allow them: sudo sysctl -w user.max_user_namespaces=15000 (and set it in /etc/sysctl.d/ to keep it)." };
  }
  // The next two bind only callers without CAP_SYS_ADMIN: not root.
  if (process.getuid?.() === 0) return null;
  if (read("/proc/sys/kernel/unprivileged_userns_clone") === "0") {
    return { reason: "kernel.unprivileged_userns_clone is 0", fix: "Allow them: sudo sysctl -w kernel.unprivileged_userns_clone=1 (and set it in /etc/sysctl.d/)." };
  }
  if (read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") === "1") {
    return {
      reason: "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1)",
      fix: "Allow bwrap and unshare an AppArmor profile with `userns,` (see Ubuntu's bwrap-userns-restrict), or: sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0",
    };
  }
  return null;
}

const reachableCache = new Map<string, boolean>();

/**
 * Whether guest root can open `hostPath` by path: true for an ordinary user (guest root is that
 * user); for root-run pyro, when every directory on the way lets "others" (or the guest range)
 * search it and the path itself is readable. Host-side stats of pyro's own paths only.
 */
export function reachableByGuestRoot(identity: SandboxIdentity, hostPath: string): boolean {
  if (identity.kind !== "root-range") return true;
  const cached = reachableCache.get(hostPath);
  if (cached !== undefined) return cached;
  const allows = (st: fs.Stats, bits: number) =>
    (st.mode & bits) === bits || (st.uid === identity.rootUid && (st.mode & (bits << 6)) === bits << 6) || (st.gid === identity.rootGid && (st.mode & (bits << 3)) === bits << 3);
  let ok = true;
  try {
    const parts = path.resolve(hostPath).split("/").filter(Boolean);
    let current = "/";
    for (const part of parts) {
      if (!allows(fs.statSync(current), 0o1)) ok = false;
      current = path.join(current, part);
    }
    const st = fs.statSync(current);
    if (!allows(st, st.isDirectory() ? 0o5 : 0o4)) ok = false;
  } catch {
    ok = false;
  }
  reachableCache.set(hostPath, ok);
  return ok;
}

/**
 * Gives a directory pyro created to guest root. Needed when pyro is root: what the sandbox
 * must write (its overlay's upper layer, /workspace, a build's target) must belong to the
 * range guests map to. An ordinary user's directories already belong to guest root.
 */
export function ownByGuestRoot(dir: string, identity: SandboxIdentity = sandboxIdentity()): void {
  if (identity.kind === "root-range") fs.lchownSync(dir, identity.rootUid, identity.rootGid);
}

/**
 * Builds one confined launch: the paths a command needs, staged by descriptor, and the argv
 * that enters the namespaces, stages them and execs the command.
 */
export class ConfinedLaunch {
  private readonly ops: string[] = [];
  private readonly fds: number[] = [];
  /** The child descriptors of the holder's user and mount namespaces, once `argv` opened them. */
  private namespaces: [string, string] | undefined;
  private released = false;
  readonly stage = stageLocation();

  private constructor(
    readonly identity: SandboxIdentity,
    readonly holder: Holder,
    /** The first child descriptor the staged paths use; everything from it up is closed before the command runs. */
    private readonly firstFd: number,
    /** The running sandbox a joined launch entered (checked again before its argv is handed out). */
    readonly joined: JoinTarget | null = null,
  ) {}

  /**
   * Starts a launch. Descriptors below `firstFd` are the caller's (stdio, sockets, the
   * seccomp program) and reach the command; staged ones are numbered from `firstFd` up.
   */
  static async open(firstFd: number, identity: SandboxIdentity = sandboxIdentity()): Promise<ConfinedLaunch> {
    return new ConfinedLaunch(identity, await holderFor(identity), firstFd);
  }

  /**
   * Starts a launch inside a running sandbox's namespaces (a private copy of its mount
   * namespace; see the file comment): `target` is the sandbox's outer process as its record
   * names it (`SandboxRecord.pid`/`startTime`). A target that is gone, or whose pid now
   * belongs to another process, is `workspace_stopped`. `identity` must be the one the sandbox
   * was started under (it says which paths guest root reaches by itself).
   */
  static async join(target: JoinTarget, firstFd: number, identity: SandboxIdentity = sandboxIdentity()): Promise<ConfinedLaunch> {
    assertTargetRunning(target);
    return new ConfinedLaunch(identity, await createJoinHolder(target), firstFd, { pid: target.pid, startTime: target.startTime });
  }

  private openInHolder(hostPath: string, directory: boolean): number {
    if (!path.isAbsolute(hostPath)) throw new PyroError("internal_error", `not an absolute path: ${hostPath}`);
    // O_PATH: no read permission needed, only the right to look it up (pyro's own).
    const O_PATH = 0o10000000;
    // (Node opens every descriptor close-on-exec; spawn hands over only those it is given.)
    const flags = O_PATH | (directory ? fs.constants.O_DIRECTORY : 0);
    // Symlinks on the way (a state directory reached through a link) are resolved here first:
    // followed through /proc/HOLDER/root they would land in pyro's mount namespace, not the
    // holder's, and overlayfs and bind mounts refuse a path from another namespace.
    const real = fs.realpathSync(hostPath);
    const outside = fs.statSync(real);
    // The holder's namespace is a copy of the host's taken when it was made — for a joined
    // launch, when the workspace started: a directory created since is there, a host mount made
    // since is not, and the same path would name what lies under it (or nothing). Refuse that.
    const invisible = () =>
      new PyroError("sandbox_start_failed", `${hostPath} is not visible in the sandbox's mount namespace (a host mount made after the sandbox started)`, {
        hint: "Restart the workspace so that its sandbox sees the host's current mounts.",
      });
    let fd: number;
    try {
      fd = fs.openSync(`/proc/${this.holder.pid}/root${real}`, flags);
    } catch (err) {
      if (this.joined && ["ENOENT", "ENOTDIR"].includes((err as NodeJS.ErrnoException).code ?? "")) throw invisible();
      throw err;
    }
    const inside = fs.fstatSync(fd);
    if (inside.dev !== outside.dev || inside.ino !== outside.ino) {
      fs.closeSync(fd);
      throw invisible();
    }
    return fd;
  }

  private childFd(fd: number): number {
    this.fds.push(fd);
    return this.firstFd + this.fds.length - 1;
  }

  /** `hostPath` (a directory or a file) as the command sees it: a bind on the stage. */
  bind(hostPath: string, options: { readOnly?: boolean } = {}): string {
    const stat = fs.statSync(hostPath);
    const name = `b${this.ops.length}`;
    const fd = this.openInHolder(hostPath, stat.isDirectory());
    this.ops.push("bind", name, String(this.childFd(fd)), stat.isDirectory() ? "d" : "f", options.readOnly ? "1" : "0");
    return `${this.stage}/${name}`;
  }

  /**
   * A path *as it exists in the joined sandbox's mount namespace* (its overlay on the old stage,
   * say, which no host path names) as the command sees it: a bind on the new stage. The stage
   * resolves it before covering the old one, refusing symbolic links on the way. Only for a
   * joined launch; the path comes from pyro's own record, and is still checked strictly.
   */
  bindInNamespace(nsPath: string, options: { readOnly?: boolean } = {}): string {
    if (!this.joined) throw new PyroError("internal_error", "a path inside a namespace can only be bound by a launch that joined a sandbox");
    const parts = nsPath.split("/");
    if (!nsPath.startsWith("/") || nsPath.includes("\0") || parts.slice(1).some((p) => p === "" || p === "." || p === "..") || nsPath === "/") {
      throw new PyroError("internal_error", `not a plain absolute path: ${JSON.stringify(nsPath)}`);
    }
    const name = `n${this.ops.length}`;
    this.ops.push("nsbind", name, nsPath, options.readOnly ? "1" : "0");
    return `${this.stage}/${name}`;
  }

  /**
   * `hostPath` itself when the sandbox identity can reach it by path (the host's /usr, a
   * checkout readable by all), else a read-only bind of it on the stage.
   */
  reachable(hostPath: string): string {
    return reachableByGuestRoot(this.identity, hostPath) ? hostPath : this.bind(hostPath, { readOnly: true });
  }

  /**
   * An overlay of `lowers` (top-most first) under `upper`/`work` (or read-only without them),
   * mounted on the stage; returns its path. `options` are extra overlay options. `userxattr`
   * is always set: overlayfs in a user namespace keeps its metadata in user.* xattrs.
   */
  overlay(lowers: string[], upper: string | null, work: string | null, options: string[] = []): string {
    const name = `o${this.ops.length}`;
    const ref = (p: string) => `/proc/self/fd/${this.childFd(this.openInHolder(p, true))}`;
    const data = [
      `lowerdir=${lowers.map(ref).join(":")}`,
      ...(upper && work ? [`upperdir=${ref(upper)}`, `workdir=${ref(work)}`] : []),
      "userxattr",
      ...options,
    ].join(",");
    this.ops.push("overlay", name, data);
    return `${this.stage}/${name}`;
  }

  /**
   * The argv that runs `command` confined, and the descriptors to hand the child at
   * `firstFd`, `firstFd + 1`, … (spawn's stdio entries).
   */
  argv(command: string[], options: { joinCgroup?: boolean } = {}): { argv: string[]; fds: number[] } {
    const perl = required("perl", "perl-base");
    const nrs = STAGE_SYSCALLS[process.arch];
    if (nrs === undefined) throw new PyroError("host_unsupported", `pyro's sandboxes are not supported on ${process.arch}`);
    // Last moment before the command enters: a sandbox that stopped since `join` must not get a
    // utility working on its overlay while a restart mounts a new one on the same upper.
    if (this.joined) assertTargetRunning(this.joined);
    // The holder is pyro's own child and alive until `release`: its pid names it.
    this.namespaces ??= ["user", "mnt"].map((ns) => String(this.childFd(fs.openSync(`/proc/${this.holder.pid}/ns/${ns}`, "r")))) as [string, string];
    return {
      argv: [
        perl, "-e", STAGE_PERL, this.stage, nrs, options.joinCgroup ? "cgroup" : "-", ...this.namespaces, String(this.firstFd), ...this.ops, "--",
        this.program(command[0]!), ...command.slice(1),
      ],
      fds: [...this.fds],
    };
  }

  /**
   * `name` by its path when guest root can run it from there: the stage's exec would otherwise
   * try each directory of PATH in turn, some of them pyro's own that guest root may not search.
   */
  private program(name: string): string {
    if (name.includes("/")) return name;
    const found = findExecutable(name);
    return found && reachableByGuestRoot(this.identity, found) ? found : name;
  }

  /**
   * Closes pyro's copies of the staged descriptors and lets the holder go (for a joined launch
   * its own joining holder: the target is never signalled). Idempotent.
   */
  release(): void {
    if (this.released) return;
    this.released = true;
    for (const fd of this.fds) {
      try {
        fs.closeSync(fd);
      } catch {
        // already closed
      }
    }
    this.holder.release();
  }
}

export interface ConfinedResult {
  code: number | null;
  stdout: string;
  /** The last 4 KiB of standard error. */
  stderr: string;
}

/**
 * Runs `make(launch)`'s command confined and collects its output (standard output up to
 * `maxStdout` bytes, beyond which the command is killed and `code` is null).
 */
export async function runConfined(make: (launch: ConfinedLaunch) => string[], maxStdout = 1 << 20): Promise<ConfinedResult> {
  const launch = await ConfinedLaunch.open(3);
  try {
    const { argv, fds } = launch.argv(make(launch));
    return await new Promise<ConfinedResult>((resolve, reject) => {
      const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe", ...fds], env: { ...process.env, PATH: systemPath() } });
      const out: Buffer[] = [];
      let outBytes = 0;
      let err = Buffer.alloc(0);
      child.stdout!.on("data", (d: Buffer) => {
        outBytes += d.length;
        if (outBytes > maxStdout) child.kill("SIGKILL");
        else out.push(d);
      });
      child.stderr!.on("data", (d: Buffer) => {
        err = Buffer.concat([err, d]).subarray(-4096);
      });
      child.on("error", reject);
      child.on("close", (code) => resolve({ code: outBytes > maxStdout ? null : code, stdout: Buffer.concat(out).toString("utf8"), stderr: err.toString("utf8") }));
    });
  } finally {
    launch.release();
  }
}
