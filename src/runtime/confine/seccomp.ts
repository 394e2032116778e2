/**
 * The default seccomp filter of every pyro sandbox: a classic-BPF program, assembled here by hand
 * (libseccomp has no maintained Node binding), that bubblewrap installs with `--seccomp FD` just
 * before it executes the sandbox's first process. It is a deny list in the spirit of Docker's
 * default profile for a container without CAP_SYS_ADMIN: system calls that reach kernel state
 * shared with the host (keyrings, modules, clocks, swap, mounts, namespaces of other processes),
 * plus terminal injection, are refused; everything else is allowed. docs/seccomp.md is the
 * user-facing description. Pure.
 */
import type { ChildProcess } from "node:child_process";
import { Writable } from "node:stream";
import { PyroError } from "../../shared/errors.js";

export interface DeniedSyscall {
  name: string;
  why: string;
  /**
   * What the call returns. EPERM says "not allowed here"; ENOSYS says "this kernel has no such
   * call", which is what makes libraries fall back to an older interface (io_uring → thread
   * pool, clone3 → clone) instead of failing.
   */
  errno: "EPERM" | "ENOSYS";
}

/** A rule that looks at an argument; `rule` says which calls are refused (always with EPERM). */
export interface ConditionalSyscall {
  name: string;
  rule: string;
  why: string;
}

/**
 * Namespace flags of clone(2) (CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID |
 * NEWNET), Docker's mask. CLONE_NEWTIME (0x80) is not among them: in clone(2) the low byte is the
 * exit signal, so a time namespace can only be asked for with unshare(2) or clone3(2).
 */
const CLONE_NAMESPACE_FLAGS = 0x7e020000;
const CLONE_NEWTIME = 0x80;
const TIOCSTI = 0x5412;
const TIOCLINUX = 0x541c;
/** personality(2) values a program may set (Docker's list): Linux, 32-bit uname, UNAME26, both, and the query 0xffffffff. */
const PERSONALITIES = [0x0, 0x8, 0x20000, 0x20008, 0xffffffff] as const;

/** Syscalls refused outright, in the order the filter tests them. Names missing from an architecture's table are skipped there. */
const DENIED: readonly DeniedSyscall[] = [
  { name: "add_key", errno: "EPERM", why: "Kernel keyrings are not namespaced: a sandbox would read and change the host user's keys." },
  { name: "keyctl", errno: "EPERM", why: "Kernel keyrings are not namespaced: a sandbox would read and change the host user's keys." },
  { name: "request_key", errno: "EPERM", why: "Kernel keyrings are not namespaced: a sandbox would read and change the host user's keys." },
  { name: "bpf", errno: "EPERM", why: "Loads programs into the host kernel; a large and often-exploited attack surface." },
  { name: "perf_event_open", errno: "EPERM", why: "Observes the host's CPUs and kernel; side channels and a history of kernel bugs." },
  { name: "userfaultfd", errno: "EPERM", why: "Lets a program stall the kernel mid-copy, the standard tool for winning kernel races." },
  { name: "init_module", errno: "EPERM", why: "Loads code into the host kernel." },
  { name: "finit_module", errno: "EPERM", why: "Loads code into the host kernel." },
  { name: "delete_module", errno: "EPERM", why: "Unloads modules from the host kernel." },
  { name: "create_module", errno: "EPERM", why: "Obsolete module loading (x86_64 only; the kernel no longer implements it)." },
  { name: "kexec_load", errno: "EPERM", why: "Replaces the running host kernel." },
  { name: "kexec_file_load", errno: "EPERM", why: "Replaces the running host kernel." },
  { name: "reboot", errno: "EPERM", why: "Reboots or halts the host; never useful in a sandbox." },
  { name: "swapon", errno: "EPERM", why: "Swap is host-wide." },
  { name: "swapoff", errno: "EPERM", why: "Swap is host-wide." },
  { name: "acct", errno: "EPERM", why: "Process accounting: switching it off hides activity from the host." },
  { name: "settimeofday", errno: "EPERM", why: "The clock is host-wide, not namespaced." },
  { name: "clock_settime", errno: "EPERM", why: "The clock is host-wide, not namespaced." },
  { name: "clock_adjtime", errno: "EPERM", why: "Adjusts the host-wide clock (adjtimex stays allowed: NTP tools read the clock state with it, and a change needs CAP_SYS_TIME in the host's user namespace)." },
  { name: "iopl", errno: "EPERM", why: "Direct access to the host's I/O ports (x86_64 only)." },
  { name: "ioperm", errno: "EPERM", why: "Direct access to the host's I/O ports (x86_64 only)." },
  { name: "lookup_dcookie", errno: "EPERM", why: "Kernel profiling interface; reveals host paths." },
  { name: "nfsservctl", errno: "EPERM", why: "Removed from the kernel; refused so an old kernel that still has it is not reachable." },
  { name: "quotactl", errno: "EPERM", why: "Disk quotas are host-wide." },
  { name: "quotactl_fd", errno: "EPERM", why: "Disk quotas are host-wide." },
  { name: "open_by_handle_at", errno: "EPERM", why: "Opens files by handle, bypassing the sandbox's view of the file system (the 2014 Docker escape)." },
  { name: "name_to_handle_at", errno: "EPERM", why: "The other half of open_by_handle_at; reveals file handles of the host's file systems." },
  { name: "setns", errno: "EPERM", why: "Joins another namespace; a sandbox has no business leaving its own." },
  { name: "mount", errno: "EPERM", why: "The sandbox's file system layout is fixed when it starts." },
  { name: "umount2", errno: "EPERM", why: "Unmounting could uncover what a mount hides." },
  { name: "pivot_root", errno: "EPERM", why: "Changes the sandbox's root; only the sandbox set-up needs it." },
  { name: "mount_setattr", errno: "EPERM", why: "The new mount API: same reason as mount." },
  { name: "move_mount", errno: "EPERM", why: "The new mount API: same reason as mount." },
  { name: "open_tree", errno: "EPERM", why: "The new mount API: same reason as mount." },
  { name: "fsopen", errno: "EPERM", why: "The new mount API: same reason as mount." },
  { name: "fsconfig", errno: "EPERM", why: "The new mount API: same reason as mount." },
  { name: "fsmount", errno: "EPERM", why: "The new mount API: same reason as mount." },
  { name: "fspick", errno: "EPERM", why: "The new mount API: same reason as mount." },
  { name: "syslog", errno: "EPERM", why: "The kernel log is the host's (reading /dev/kmsg is governed by the file system, not this rule)." },
  { name: "uselib", errno: "EPERM", why: "Obsolete a.out loader, a past source of kernel bugs (x86_64 only)." },
  { name: "ustat", errno: "EPERM", why: "Obsolete; reports on host file systems by device number (x86_64 only)." },
  { name: "kcmp", errno: "EPERM", why: "Compares kernel objects of two processes, an information leak about kernel pointers." },
  { name: "fanotify_init", errno: "EPERM", why: "File-system-wide event monitoring; Docker refuses it without CAP_SYS_ADMIN." },
  { name: "io_uring_setup", errno: "ENOSYS", why: "io_uring has been the largest source of kernel exploits since 2021; ENOSYS makes libuv (Node) and others fall back to threads." },
  { name: "io_uring_enter", errno: "ENOSYS", why: "io_uring (see io_uring_setup)." },
  { name: "io_uring_register", errno: "ENOSYS", why: "io_uring (see io_uring_setup)." },
  { name: "clone3", errno: "ENOSYS", why: "Its flags are behind a pointer the filter cannot read, so the clone rule could not hold; glibc falls back to clone on ENOSYS." },
];

/**
 * Argument-checked rules. Each `block` is entered with the syscall number in A and must end in
 * returns (it may jump to the shared `allow`/`eperm` labels). Arguments are u64 at 16 + 8*i in
 * struct seccomp_data; on little-endian hosts (x86_64, aarch64) the low half comes first, and the
 * low half is all the kernel reads for each of these arguments (clone: lower_32_bits(flags);
 * unshare: higher bits are EINVAL; ioctl: `unsigned int cmd`; personality: `unsigned int`).
 * Comparing 64 bits would be wrong, not stricter: a request with high bits set would pass the
 * filter and still be TIOCSTI to the kernel (Flatpak's CVE-2019-10063).
 */
interface ConditionalRule extends ConditionalSyscall {
  block: () => Item[];
}

const argLow = (i: number) => 16 + 8 * i;

const CONDITIONAL: readonly ConditionalRule[] = [
  {
    name: "clone",
    rule: "refused when the flags (argument 0 on x86_64 and aarch64) ask for any new namespace (mask 0x7E020000)",
    why: "New namespaces, above all a nested user namespace, are the usual door to kernel bugs reachable only with capabilities; threads and fork never set these flags.",
    block: () => [ld(argLow(0)), jset(CLONE_NAMESPACE_FLAGS, "eperm", "allow")],
  },
  {
    name: "unshare",
    rule: "refused when the flags ask for any new namespace (mask 0x7E020080, clone's mask plus CLONE_NEWTIME); unshare(CLONE_FS) and the like keep working",
    why: "Same as clone; virtiofsd's worker threads call unshare(CLONE_FS), so the call itself must stay.",
    block: () => [ld(argLow(0)), jset(CLONE_NAMESPACE_FLAGS | CLONE_NEWTIME, "eperm", "allow")],
  },
  {
    name: "ioctl",
    rule: "refused for the requests TIOCSTI (0x5412) and TIOCLINUX (0x541C), compared on the low 32 bits as the kernel does",
    why: "Both push input into a terminal: a sandbox holding a terminal fd could type commands into the host shell behind it.",
    block: () => [ld(argLow(1)), jeq(TIOCSTI, "eperm"), jeq(TIOCLINUX, "eperm", "allow")],
  },
  {
    name: "personality",
    rule: "allowed only for 0x0, 0x8, 0x20000, 0x20008 and the query 0xffffffff (Docker's list)",
    why: "Other personalities switch off address-space randomisation (ADDR_NO_RANDOMIZE) or enable odd legacy behaviour (READ_IMPLIES_EXEC, MMAP_PAGE_ZERO) that helps exploits.",
    block: () => [ld(argLow(0)), ...PERSONALITIES.map((p) => jeq(p, "allow")), ret(SECCOMP_RET_ERRNO | EPERM)],
  },
];

export const SECCOMP_POLICY: { denied: readonly DeniedSyscall[]; conditional: readonly ConditionalSyscall[] } = {
  denied: DENIED,
  conditional: CONDITIONAL.map(({ name, rule, why }) => ({ name, rule, why })),
};

/**
 * The numbers of the syscalls the policy names, per architecture (Node's process.arch names).
 * x64: the kernel's arch/x86/entry/syscalls/syscall_64.tbl (the "64" and "common" rows); arm64:
 * the asm-generic numbering of include/uapi/asm-generic/unistd.h, which arm64 uses (with
 * clone3, __ARCH_WANT_SYS_CLONE3). Unit tests compare both with this host's headers.
 */
export const SYSCALL_NUMBERS: Readonly<Record<"x64" | "arm64", Readonly<Record<string, number>>>> = {
  x64: {
    ioctl: 16, clone: 56, syslog: 103, uselib: 134, personality: 135, ustat: 136, pivot_root: 155,
    acct: 163, settimeofday: 164, mount: 165, umount2: 166, swapon: 167, swapoff: 168, reboot: 169,
    iopl: 172, ioperm: 173, create_module: 174, init_module: 175, delete_module: 176, quotactl: 179,
    nfsservctl: 180, lookup_dcookie: 212, clock_settime: 227, kexec_load: 246, add_key: 248,
    request_key: 249, keyctl: 250, unshare: 272, perf_event_open: 298, fanotify_init: 300,
    name_to_handle_at: 303, open_by_handle_at: 304, clock_adjtime: 305, setns: 308, kcmp: 312,
    finit_module: 313, kexec_file_load: 320, bpf: 321, userfaultfd: 323, io_uring_setup: 425,
    io_uring_enter: 426, io_uring_register: 427, open_tree: 428, move_mount: 429, fsopen: 430,
    fsconfig: 431, fsmount: 432, fspick: 433, clone3: 435, mount_setattr: 442, quotactl_fd: 443,
  },
  arm64: {
    lookup_dcookie: 18, ioctl: 29, umount2: 39, mount: 40, pivot_root: 41, nfsservctl: 42,
    quotactl: 60, acct: 89, personality: 92, unshare: 97, kexec_load: 104, init_module: 105,
    delete_module: 106, clock_settime: 112, syslog: 116, reboot: 142, settimeofday: 170,
    add_key: 217, request_key: 218, keyctl: 219, clone: 220, swapon: 224, swapoff: 225,
    perf_event_open: 241, fanotify_init: 262, name_to_handle_at: 264, open_by_handle_at: 265,
    clock_adjtime: 266, setns: 268, kcmp: 272, finit_module: 273, bpf: 280, userfaultfd: 282,
    kexec_file_load: 294, io_uring_setup: 425, io_uring_enter: 426, io_uring_register: 427,
    open_tree: 428, move_mount: 429, fsopen: 430, fsconfig: 431, fsmount: 432, fspick: 433,
    clone3: 435, mount_setattr: 442, quotactl_fd: 443,
  },
};

/** AUDIT_ARCH_X86_64 and AUDIT_ARCH_AARCH64 (64-bit, little-endian), as seccomp_data.arch reports them. */
const AUDIT_ARCH = { x64: 0xc000003e, arm64: 0xc00000b7 } as const;
/** On x86_64, syscall numbers with this bit set are the x32 ABI, which shares AUDIT_ARCH_X86_64. */
const X32_SYSCALL_BIT = 0x40000000;

// Classic BPF, as seccomp accepts it (linux/filter.h, linux/seccomp.h).
const BPF_LD_W_ABS = 0x20;
const BPF_JEQ_K = 0x15;
const BPF_JGE_K = 0x35;
const BPF_JSET_K = 0x45;
const BPF_RET_K = 0x06;
const SECCOMP_RET_KILL_PROCESS = 0x80000000;
const SECCOMP_RET_ERRNO = 0x00050000;
const SECCOMP_RET_ALLOW = 0x7fff0000;
const EPERM = 1;
const ENOSYS = 38;
const OFFSET_NR = 0;
const OFFSET_ARCH = 4;
/** BPF_MAXINSNS: the kernel refuses longer classic programs. */
const MAX_INSTRUCTIONS = 4096;

/** A jump target: a label defined later in the program, or undefined for "the next instruction". */
type Target = string | undefined;
type Item = { label: string } | { code: number; k: number; jt?: Target; jf?: Target };

const ld = (offset: number): Item => ({ code: BPF_LD_W_ABS, k: offset });
const jeq = (k: number, jt: Target, jf?: Target): Item => ({ code: BPF_JEQ_K, k, jt, jf });
const jge = (k: number, jt: Target, jf?: Target): Item => ({ code: BPF_JGE_K, k, jt, jf });
const jset = (k: number, jt: Target, jf?: Target): Item => ({ code: BPF_JSET_K, k, jt, jf });
const ret = (k: number): Item => ({ code: BPF_RET_K, k });
const label = (name: string): Item => ({ label: name });

/**
 * The program, as a flat list:
 *
 *   1. seccomp_data.arch must be this architecture's, else KILL_PROCESS (and on x86_64 the x32
 *      ABI too). The deny list below is written in this ABI's numbers: a call through another
 *      ABI (int 0x80 on x86_64, AArch32 on arm64) has different numbers and would bypass all of
 *      it, so it must never run. KILL rather than ERRNO(EPERM): under ERRNO even exit(2) of such
 *      a program fails, so a hand-written int 0x80 loop would spin instead of ending; killing at
 *      the first foreign call is immediate, shows up as "Bad system call" (SIGSYS) in the shell
 *      rather than as mysterious EPERMs, and reveals nothing a probe could use. Only 32-bit
 *      binaries are affected, and they could not do anything useful under ERRNO either.
 *   2. One `JEQ nr` per refused call, jumping to the shared EPERM/ENOSYS returns, or to the
 *      call's argument block; everything else falls through to ALLOW.
 *   3. The argument blocks, then the shared returns.
 *
 * Jumps only go forward and are u8, so every jump must land within 255 instructions; `assemble`
 * checks it. The list stays linear (no binary search) on purpose: since Linux 5.11 the kernel
 * runs such a filter once per syscall number at load time and caches "always allowed" for every
 * number whose path touches no argument, so allowed calls (read, write, ...) skip the filter
 * entirely and its length costs nothing where it matters.
 */
function build(arch: "x64" | "arm64"): Item[] {
  const numbers = SYSCALL_NUMBERS[arch];
  const items: Item[] = [ld(OFFSET_ARCH), jeq(AUDIT_ARCH[arch], undefined, "kill"), ld(OFFSET_NR)];
  if (arch === "x64") {
    // nr ≥ 0x40000000 is x32 — except -1, which tracers and probes use as "no syscall" and which
    // the kernel answers with ENOSYS (libseccomp makes the same exception).
    items.push(jge(X32_SYSCALL_BIT, undefined, "dispatch"), jeq(0xffffffff, "allow", "kill"), label("dispatch"));
  }
  for (const rule of DENIED) {
    const nr = numbers[rule.name];
    if (nr !== undefined) items.push(jeq(nr, rule.errno === "EPERM" ? "eperm" : "enosys"));
  }
  for (const rule of CONDITIONAL) items.push(jeq(numberOf(numbers, rule.name), `check:${rule.name}`));
  items.push(ret(SECCOMP_RET_ALLOW));
  for (const rule of CONDITIONAL) items.push(label(`check:${rule.name}`), ...rule.block());
  items.push(
    label("allow"), ret(SECCOMP_RET_ALLOW),
    label("eperm"), ret(SECCOMP_RET_ERRNO | EPERM),
    label("enosys"), ret(SECCOMP_RET_ERRNO | ENOSYS),
    label("kill"), ret(SECCOMP_RET_KILL_PROCESS),
  );
  return items;
}

function numberOf(numbers: Readonly<Record<string, number>>, name: string): number {
  const nr = numbers[name];
  if (nr === undefined) throw new Error(`seccomp: no syscall number for ${name}`);
  return nr;
}

/** Resolves labels into forward jump offsets and encodes struct sock_filter[] (little-endian). */
function assemble(items: readonly Item[]): Buffer {
  const labels = new Map<string, number>();
  const code: Exclude<Item, { label: string }>[] = [];
  for (const item of items) {
    if ("label" in item) labels.set(item.label, code.length);
    else code.push(item);
  }
  if (code.length > MAX_INSTRUCTIONS) throw new Error(`seccomp: ${code.length} instructions exceed ${MAX_INSTRUCTIONS}`);
  const offset = (from: number, target: Target): number => {
    if (target === undefined) return 0;
    const to = labels.get(target);
    if (to === undefined) throw new Error(`seccomp: unknown label ${target}`);
    const distance = to - (from + 1);
    if (distance < 0 || distance > 255) throw new Error(`seccomp: jump from ${from} to ${target} (${distance}) is out of range`);
    return distance;
  };
  const out = Buffer.alloc(code.length * 8);
  code.forEach((insn, i) => {
    out.writeUInt16LE(insn.code, i * 8);
    out.writeUInt8(offset(i, insn.jt), i * 8 + 2);
    out.writeUInt8(offset(i, insn.jf), i * 8 + 3);
    out.writeUInt32LE(insn.k >>> 0, i * 8 + 4);
  });
  return out;
}

export function seccompProgram(arch: string = process.arch): Buffer {
  if (arch !== "x64" && arch !== "arm64") {
    throw new PyroError("host_unsupported", `pyro's seccomp filter exists for x86_64 and arm64 hosts, not ${arch}.`, {
      hint: "Run pyro on an x86_64 or arm64 Linux host.",
      details: { arch },
    });
  }
  return assemble(build(arch));
}

/**
 * Writes the program to the pipe a child got at `fd` (spawn's stdio entry "pipe"), for a
 * `bwrap --seccomp FD` in that child, which reads it to end of file.
 */
export function feedSeccompProgram(child: ChildProcess, fd: number): void {
  const pipe: unknown = child.stdio[fd];
  if (!(pipe instanceof Writable)) throw new PyroError("internal_error", `the seccomp program needs a pipe at fd ${fd}`);
  // A child that dies before reading says why through its exit, not through EPIPE here.
  pipe.on("error", () => undefined);
  pipe.end(seccompProgram());
}
