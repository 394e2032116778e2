/**
 * The default seccomp filter in a real bubblewrap sandbox: every refused syscall answers with its
 * errno, the conditional rules let the harmless forms through, and ordinary programs (a shell
 * pipeline, Node with worker threads) still work. Each probe is also run without the filter, so a
 * filter that silently did nothing would fail here. Probe arguments are chosen to be harmless
 * when a call is NOT refused (bad pointers, fd -1, invalid flags): the unfiltered run executes
 * them, as root when the suite runs as root.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import type { StdioOptions } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SECCOMP_POLICY, SYSCALL_NUMBERS, seccompProgram } from "../../src/runtime/confine/seccomp.js";
import { findExecutable } from "../../src/shared/executables.js";

const arch = process.arch === "x64" || process.arch === "arm64" ? process.arch : null;
const bwrap = findExecutable("bwrap");
const perl = findExecutable("perl");
const { EPERM, ENOSYS, ENOTTY } = os.constants.errno;
const SECCOMP_FD = 9;

/** One syscall from perl: a label, the call, its arguments, and what it must answer under the filter. */
interface Probe {
  label: string;
  name: string;
  args: number[];
  filtered: "ok" | number;
}

/** Arguments that make a denied call fail (or do nothing) should it get through. Default: all zero. */
const HARMLESS_ARGS: Record<string, number[]> = {
  keyctl: [0, -3, 0], // KEYCTL_GET_KEYRING_ID of the session keyring, without creating it
  bpf: [0, 1, 8], // attributes at an unmapped address
  acct: [1],
  settimeofday: [1, 0],
  kexec_load: [0, 0, 0, 0xffffffff], // invalid flags
  kexec_file_load: [-1, -1, 0, 0, 0xffffffff],
  fanotify_init: [0xffffffff, 0],
  setns: [-1, 0],
  finit_module: [-1, 0, 0],
  open_by_handle_at: [-1, 0, 0],
  name_to_handle_at: [-1, 0, 0, 0, 0],
  quotactl_fd: [-1, 0, 0, 0],
  open_tree: [-1, 0, 0],
  move_mount: [-1, 0, -1, 0, 0],
  fsconfig: [-1, 0, 0, 0, 0],
  fsmount: [-1, 0, 0],
  fspick: [-1, 0, 0],
  mount_setattr: [-1, 0, 0, 0, 0],
  io_uring_enter: [-1, 0, 0, 0, 0, 0],
  io_uring_register: [-1, 0, 0, 0],
};

const SIGCHLD = 17;
const CLONE_NEWUSER = 0x10000000;

function probes(numbers: Readonly<Record<string, number>>): Probe[] {
  const denied: Probe[] = SECCOMP_POLICY.denied
    .filter((rule) => numbers[rule.name] !== undefined)
    .map((rule) => ({ label: rule.name, name: rule.name, args: HARMLESS_ARGS[rule.name] ?? [0, 0, 0, 0, 0, 0], filtered: rule.errno === "EPERM" ? EPERM : ENOSYS }));
  return [
    { label: "getpid", name: "getpid", args: [], filtered: "ok" },
    ...denied,
    { label: "clone(SIGCHLD)", name: "clone", args: [SIGCHLD, 0, 0, 0, 0], filtered: "ok" },
    { label: "clone(CLONE_NEWUSER|SIGCHLD)", name: "clone", args: [CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0], filtered: EPERM },
    { label: "unshare(CLONE_FS)", name: "unshare", args: [0x200], filtered: "ok" },
    { label: "unshare(CLONE_NEWNS)", name: "unshare", args: [0x20000], filtered: EPERM },
    { label: "unshare(CLONE_NEWNET)", name: "unshare", args: [0x40000000], filtered: EPERM },
    { label: "unshare(CLONE_NEWTIME)", name: "unshare", args: [0x80], filtered: EPERM },
    // stdin is /dev/null: an ioctl the filter lets through gets the kernel's ENOTTY.
    { label: "ioctl(TIOCSTI)", name: "ioctl", args: [0, 0x5412, 0], filtered: EPERM },
    { label: "ioctl(TIOCSTI | 1 << 32)", name: "ioctl", args: [0, 0x1_0000_5412, 0], filtered: EPERM },
    { label: "ioctl(TIOCLINUX)", name: "ioctl", args: [0, 0x541c, 0], filtered: EPERM },
    { label: "ioctl(TCGETS)", name: "ioctl", args: [0, 0x5401, 0], filtered: ENOTTY },
    { label: "personality(query)", name: "personality", args: [0xffffffff], filtered: "ok" },
    { label: "personality(ADDR_NO_RANDOMIZE)", name: "personality", args: [0x40000], filtered: EPERM },
    // Last: without the filter it succeeds and leaves perl in a new user namespace.
    { label: "unshare(CLONE_NEWUSER)", name: "unshare", args: [CLONE_NEWUSER], filtered: EPERM },
  ];
}

/**
 * A perl program making each call and printing "label<TAB>ok" or "label<TAB>errno". Numbers are
 * written as literals: perl's syscall passes a string argument as a pointer to its bytes. A
 * successful raw clone returns 0 in the child, which leaves at once.
 */
function perlScript(list: Probe[], numbers: Readonly<Record<string, number>>): string {
  const lines = list.map((p) => {
    const nr = numbers[p.name];
    if (nr === undefined) throw new Error(`no syscall number for ${p.name}`);
    return `probe(${JSON.stringify(p.label)}, ${[nr, ...p.args].join(", ")});`;
  });
  return [
    "use POSIX ();",
    "$| = 1;",
    'sub probe { my ($label, $nr, @args) = @_; $! = 0; my $r = syscall($nr, @args);',
    '  POSIX::_exit(0) if $r == 0 && $label =~ /^clone/;',
    '  print "$label\\t", ($r == -1 ? 0 + $! : "ok"), "\\n"; }',
    ...lines,
  ].join("\n");
}

interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs argv in a bubblewrap sandbox over the host's root; with `programFile`, under that filter on
 * fd 9. bubblewrap reads the program from the fd's offset to its end, so each run opens it afresh.
 */
function sandboxed(argv: string[], programFile: string | null): Run {
  const stdio: StdioOptions = ["ignore", "pipe", "pipe"];
  const args = ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-pid", "--die-with-parent"];
  const fd = programFile === null ? null : fs.openSync(programFile, "r");
  try {
    if (fd !== null) {
      while (stdio.length < SECCOMP_FD) stdio.push("ignore");
      stdio.push(fd);
      args.push("--seccomp", String(SECCOMP_FD));
    }
    const result = spawnSync(bwrap!, [...args, "--", ...argv], { stdio, encoding: "utf8", timeout: 30_000 });
    if (result.error) throw result.error;
    return { status: result.status, signal: result.signal, stdout: result.stdout, stderr: result.stderr };
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
}

function answers(run: Run): Map<string, string> {
  expect(run.stderr).toBe("");
  expect(run.status).toBe(0);
  return new Map(run.stdout.trim().split("\n").map((line) => line.split("\t") as [string, string]));
}

describe.skipIf(arch === null || bwrap === null || perl === null)("the default seccomp filter in a bubblewrap sandbox", () => {
  // getpid is no rule's, so not in the policy's tables: the control that must always succeed.
  const numbers = { ...SYSCALL_NUMBERS[arch ?? "x64"], getpid: arch === "arm64" ? 172 : 39 };
  const list = probes(numbers);
  const script = perlScript(list, numbers);

  let dir = "";
  /** The filter pyro hands to bubblewrap, in a file this test opens on bubblewrap's --seccomp fd. */
  const filter = () => {
    const file = path.join(dir, "seccomp.bpf");
    fs.writeFileSync(file, seccompProgram());
    return file;
  };

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-seccomp-"));
  });

  afterAll(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("refuses every denied and conditional call with the promised errno, and lets the harmless forms through", () => {
    const got = answers(sandboxed([perl!, "-e", script], filter()));
    const wanted = new Map(list.map((p) => [p.label, String(p.filtered)]));
    expect(Object.fromEntries(got)).toEqual(Object.fromEntries(wanted));
  });

  it("makes a difference: without the filter, keyctl or unshare(CLONE_NEWUSER) gets another answer", () => {
    const withFilter = answers(sandboxed([perl!, "-e", script], filter()));
    const without = answers(sandboxed([perl!, "-e", script], null));
    const changed = list.map((p) => p.label).filter((label) => withFilter.get(label) !== without.get(label));
    expect(changed.filter((label) => label === "keyctl" || label === "unshare(CLONE_NEWUSER)")).not.toEqual([]);
    // The allowed forms answer the same either way.
    for (const label of ["getpid", "clone(SIGCHLD)", "unshare(CLONE_FS)", "ioctl(TCGETS)", "personality(query)"]) {
      expect([label, withFilter.get(label)]).toEqual([label, without.get(label)]);
    }
  });

  it.skipIf(findExecutable("unshare") === null)("makes `unshare --user` fail with Operation not permitted", () => {
    const run = sandboxed([findExecutable("unshare")!, "--user", "true"], filter());
    expect(run.status).not.toBe(0);
    expect(run.stderr).toContain("Operation not permitted");
  });

  it("still runs a shell pipeline", () => {
    const run = sandboxed(["/bin/sh", "-c", "echo hi | cat"], filter());
    expect(run).toEqual({ status: 0, signal: null, stdout: "hi\n", stderr: "" });
  });

  it("still runs Node, whose thread pool, worker threads and file I/O fall back from io_uring and clone3", () => {
    const program = [
      'const { Worker } = require("node:worker_threads");',
      'require("node:fs").promises.readFile("/proc/self/status", "utf8").then((status) => {',
      '  const worker = new Worker("require(\'node:worker_threads\').parentPort.postMessage(6 * 7)", { eval: true });',
      '  worker.on("message", (n) => console.log(n, /Seccomp:\\s+2/.test(status) ? "filtered" : "unfiltered"));',
      "});",
    ].join("\n");
    const run = sandboxed([process.execPath, "-e", program], filter());
    expect(run).toEqual({ status: 0, signal: null, stdout: "42 filtered\n", stderr: "" });
  });

  it.runIf(arch === "x64")("kills a process that makes a 32-bit call (int 0x80)", (ctx) => {
    const binary = path.join(dir, "int80");
    fs.writeFileSync(binary, int80Getpid(), { mode: 0o755 });
    // bubblewrap exits 128 + N when its command dies of signal N. Kernels without IA-32 emulation
    // (or with it switched off) fault on int 0x80 before seccomp sees the call: nothing to test.
    const unfiltered = sandboxed([binary], null);
    if (unfiltered.status === 128 + os.constants.signals.SIGSEGV) ctx.skip();
    expect(unfiltered.status).toBeLessThan(128);
    const run = sandboxed([binary], filter());
    expect(run.status).toBe(128 + os.constants.signals.SIGSYS);
  });
});

/**
 * A minimal static x86_64 ELF: `mov eax, 20 (i386 getpid); int 0x80; mov edi, eax; mov eax, 60
 * (exit); syscall`. One PT_LOAD segment covering the file at 0x400000.
 */
function int80Getpid(): Buffer {
  const code = Buffer.from([0xb8, 0x14, 0, 0, 0, 0xcd, 0x80, 0x89, 0xc7, 0xb8, 0x3c, 0, 0, 0, 0x0f, 0x05]);
  const base = 0x400000n;
  const headers = 64 + 56;
  const elf = Buffer.alloc(headers + code.length);
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]).copy(elf, 0); // ELF, 64-bit, little-endian, version 1
  elf.writeUInt16LE(2, 16); // ET_EXEC
  elf.writeUInt16LE(0x3e, 18); // EM_X86_64
  elf.writeUInt32LE(1, 20);
  elf.writeBigUInt64LE(base + BigInt(headers), 24); // entry
  elf.writeBigUInt64LE(64n, 32); // program headers right after this header
  elf.writeUInt16LE(64, 52);
  elf.writeUInt16LE(56, 54);
  elf.writeUInt16LE(1, 56);
  elf.writeUInt32LE(1, 64); // PT_LOAD
  elf.writeUInt32LE(5, 68); // R+X
  elf.writeBigUInt64LE(base, 80);
  elf.writeBigUInt64LE(base, 88);
  elf.writeBigUInt64LE(BigInt(elf.length), 96);
  elf.writeBigUInt64LE(BigInt(elf.length), 104);
  elf.writeBigUInt64LE(0x1000n, 112);
  code.copy(elf, headers);
  return elf;
}
