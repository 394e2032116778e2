/**
 * The seccomp filter as a program: well-formed classic BPF the kernel will accept, syscall numbers
 * that match the kernel's headers, and — run through a small cBPF interpreter below — the answer
 * the policy promises for every rule on both architectures. test/integration/seccomp.test.ts
 * checks the same filter against a real sandbox.
 */
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { SECCOMP_POLICY, SYSCALL_NUMBERS, seccompProgram } from "../../src/runtime/confine/seccomp.js";
import { PyroError } from "../../src/shared/errors.js";

const REPO = path.resolve(import.meta.dirname, "..", "..");
const ALLOW = 0x7fff0000;
const EPERM = 0x00050001;
const ENOSYS = 0x00050026;
const KILL_PROCESS = 0x80000000;
const AUDIT_ARCH = { x64: 0xc000003e, arm64: 0xc00000b7 } as const;
const ARCHES = ["x64", "arm64"] as const;

interface Insn { code: number; jt: number; jf: number; k: number }

function decode(program: Buffer): Insn[] {
  const insns: Insn[] = [];
  for (let i = 0; i < program.length; i += 8) {
    insns.push({ code: program.readUInt16LE(i), jt: program.readUInt8(i + 2), jf: program.readUInt8(i + 3), k: program.readUInt32LE(i + 4) });
  }
  return insns;
}

/**
 * Runs the program on one struct seccomp_data, as the kernel would. Only the instructions the
 * generator may emit are understood; anything else fails the test.
 */
function run(program: Buffer, data: { arch: number; nr: number; args?: bigint[] }): number {
  const seccompData = Buffer.alloc(64);
  seccompData.writeUInt32LE(data.nr >>> 0, 0);
  seccompData.writeUInt32LE(data.arch >>> 0, 4);
  (data.args ?? []).forEach((arg, i) => seccompData.writeBigUInt64LE(BigInt.asUintN(64, arg), 16 + 8 * i));
  const insns = decode(program);
  let a = 0;
  for (let pc = 0; pc < insns.length; pc++) {
    const { code, jt, jf, k } = insns[pc]!;
    switch (code) {
      case 0x20: // BPF_LD | BPF_W | BPF_ABS
        a = seccompData.readUInt32LE(k);
        break;
      case 0x15: // BPF_JMP | BPF_JEQ | BPF_K
        pc += a === k ? jt : jf;
        break;
      case 0x35: // BPF_JMP | BPF_JGE | BPF_K
        pc += a >= k ? jt : jf;
        break;
      case 0x45: // BPF_JMP | BPF_JSET | BPF_K
        pc += (a & k) !== 0 ? jt : jf;
        break;
      case 0x06: // BPF_RET | BPF_K
        return k;
      default:
        throw new Error(`unexpected opcode 0x${code.toString(16)} at ${pc}`);
    }
  }
  throw new Error("ran off the end of the program");
}

function nr(arch: "x64" | "arm64", name: string): number {
  const n = SYSCALL_NUMBERS[arch][name];
  if (n === undefined) throw new Error(`no ${name} on ${arch}`);
  return n;
}

/** `#define __NR_name 123` lines of a kernel header. */
function headerNumbers(file: string): Map<string, number> {
  const numbers = new Map<string, number>();
  for (const m of fs.readFileSync(file, "utf8").matchAll(/^#define __NR_(\w+)\s+(\d+)\s*$/gm)) numbers.set(m[1]!, Number(m[2]));
  return numbers;
}

describe("the seccomp program", () => {
  for (const arch of ARCHES) {
    it(`is a classic BPF program the kernel accepts (${arch}): whole instructions, at most 4096, every jump forward and inside, ending in a return`, () => {
      const program = seccompProgram(arch);
      expect(program.length % 8).toBe(0);
      const insns = decode(program);
      expect(insns.length).toBeGreaterThan(0);
      expect(insns.length).toBeLessThanOrEqual(4096);
      insns.forEach((insn, pc) => {
        expect([0x20, 0x15, 0x35, 0x45, 0x06]).toContain(insn.code);
        if (insn.code === 0x20) expect(insn.k % 4 === 0 && insn.k < 64).toBe(true);
        if ((insn.code & 0x07) === 0x05) {
          expect(pc + 1 + insn.jt).toBeLessThan(insns.length);
          expect(pc + 1 + insn.jf).toBeLessThan(insns.length);
        } else {
          expect([insn.jt, insn.jf]).toEqual([0, 0]);
        }
      });
      expect(insns[insns.length - 1]!.code).toBe(0x06);
    });
  }

  it("is the host's by default and the same bytes every time", () => {
    if (process.arch !== "x64" && process.arch !== "arm64") return;
    expect(seccompProgram().equals(seccompProgram(process.arch))).toBe(true);
    expect(seccompProgram("x64").equals(seccompProgram("x64"))).toBe(true);
  });

  it("refuses an architecture it has no table for with host_unsupported", () => {
    for (const arch of ["ia32", "arm", "riscv64", "s390x"]) {
      let caught: unknown;
      try {
        seccompProgram(arch);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(PyroError);
      expect((caught as PyroError).code).toBe("host_unsupported");
    }
  });
});

describe("the syscall tables", () => {
  const x64Header = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h";
  it.skipIf(!fs.existsSync(x64Header))("match the x86_64 numbers of this system's kernel headers", () => {
    const header = headerNumbers(x64Header);
    for (const [name, number] of Object.entries(SYSCALL_NUMBERS.x64)) expect([name, header.get(name)]).toEqual([name, number]);
  });

  const genericHeader = "/usr/include/asm-generic/unistd.h";
  it.skipIf(!fs.existsSync(genericHeader))("match the asm-generic numbers arm64 uses", () => {
    const header = headerNumbers(genericHeader);
    for (const [name, number] of Object.entries(SYSCALL_NUMBERS.arm64)) expect([name, header.get(name)]).toEqual([name, number]);
  });

  it("name every syscall of the policy, missing on arm64 only the x86-only and obsolete ones", () => {
    const names = [...SECCOMP_POLICY.denied, ...SECCOMP_POLICY.conditional].map((rule) => rule.name);
    for (const name of names) expect(SYSCALL_NUMBERS.x64[name], name).toBeDefined();
    expect(names.filter((name) => SYSCALL_NUMBERS.arm64[name] === undefined).sort()).toEqual(["create_module", "ioperm", "iopl", "uselib", "ustat"]);
  });
});

describe.each(ARCHES)("the filter's answers on %s", (arch) => {
  const program = seccompProgram(arch);
  const native = AUDIT_ARCH[arch];
  const call = (name: string, ...args: bigint[]) => run(program, { arch: native, nr: nr(arch, name), args });

  it("kills a process making a call through another ABI, whatever the call", () => {
    for (const foreign of [0x40000003 /* i386 */, 0x40000028 /* arm */, AUDIT_ARCH[arch === "x64" ? "arm64" : "x64"]]) {
      for (const n of [0, 1, 39, 172, nr(arch, "keyctl")]) expect(run(program, { arch: foreign, nr: n })).toBe(KILL_PROCESS);
    }
  });

  it.runIf(arch === "x64")("kills an x32 call but lets syscall(-1) through to the kernel's ENOSYS", () => {
    expect(run(program, { arch: native, nr: 0x40000000 | 39 })).toBe(KILL_PROCESS);
    expect(run(program, { arch: native, nr: 0x40000000 | 250 })).toBe(KILL_PROCESS);
    expect(run(program, { arch: native, nr: 0xffffffff })).toBe(ALLOW);
  });

  it("refuses every denied syscall with its errno, whatever the arguments", () => {
    for (const rule of SECCOMP_POLICY.denied) {
      const n = SYSCALL_NUMBERS[arch][rule.name];
      if (n === undefined) continue;
      const expected = rule.errno === "EPERM" ? EPERM : ENOSYS;
      expect([rule.name, run(program, { arch: native, nr: n })]).toEqual([rule.name, expected]);
      expect([rule.name, run(program, { arch: native, nr: n, args: [1n, 2n, 3n, 4n, 5n, 6n] })]).toEqual([rule.name, expected]);
    }
  });

  it("allows the ordinary calls, and adjtimex", () => {
    const ordinary = arch === "x64" ? { read: 0, write: 1, openat: 257, execve: 59, getpid: 39, adjtimex: 159, ptrace: 101, chroot: 161 } : { read: 63, write: 64, openat: 56, execve: 221, getpid: 172, adjtimex: 171, ptrace: 117, chroot: 51 };
    for (const [name, n] of Object.entries(ordinary)) expect([name, run(program, { arch: native, nr: n })]).toEqual([name, ALLOW]);
  });

  it("allows clone for threads and fork, refuses it for any new namespace", () => {
    const SIGCHLD = 17n;
    const THREAD = 0x3d0f00n; // glibc's pthread_create flags
    expect(call("clone", SIGCHLD)).toBe(ALLOW);
    expect(call("clone", THREAD)).toBe(ALLOW);
    for (const flag of [0x20000n, 0x2000000n, 0x4000000n, 0x8000000n, 0x10000000n, 0x20000000n, 0x40000000n]) {
      expect(call("clone", flag | SIGCHLD)).toBe(EPERM);
    }
    // The kernel reads only the low 32 bits of clone's flags, so high bits neither help nor hurt.
    expect(call("clone", (0x10000000n << 32n) | SIGCHLD)).toBe(ALLOW);
    expect(call("clone", (1n << 32n) | 0x10000000n | SIGCHLD)).toBe(EPERM);
  });

  it("allows unshare of non-namespace state such as CLONE_FS, refuses new namespaces including time", () => {
    expect(call("unshare", 0x200n)).toBe(ALLOW);
    expect(call("unshare", 0x400n /* CLONE_FILES */)).toBe(ALLOW);
    for (const flag of [0x80n, 0x20000n, 0x2000000n, 0x4000000n, 0x8000000n, 0x10000000n, 0x20000000n, 0x40000000n]) {
      expect(call("unshare", flag)).toBe(EPERM);
    }
  });

  it("refuses the terminal-injection ioctls on the low 32 bits of the request, and no other ioctl", () => {
    expect(call("ioctl", 0n, 0x5412n)).toBe(EPERM);
    expect(call("ioctl", 0n, 0x541cn)).toBe(EPERM);
    expect(call("ioctl", 0n, (1n << 32n) | 0x5412n)).toBe(EPERM);
    expect(call("ioctl", 0n, 0xffffffff00000000n | 0x541cn)).toBe(EPERM);
    expect(call("ioctl", 0n, 0x5401n /* TCGETS */)).toBe(ALLOW);
    expect(call("ioctl", 0x5412n, 0x5401n)).toBe(ALLOW);
  });

  it("allows only Docker's personalities", () => {
    for (const p of [0x0n, 0x8n, 0x20000n, 0x20008n, 0xffffffffn]) expect(call("personality", p)).toBe(ALLOW);
    for (const p of [0x40000n /* ADDR_NO_RANDOMIZE */, 0x400000n /* READ_IMPLIES_EXEC */, 0x100000n /* MMAP_PAGE_ZERO */, 0x1n]) expect(call("personality", p)).toBe(EPERM);
  });
});

describe("docs/seccomp.md", () => {
  it("lists every rule of the policy", () => {
    const doc = fs.readFileSync(path.join(REPO, "docs", "seccomp.md"), "utf8");
    for (const rule of [...SECCOMP_POLICY.denied, ...SECCOMP_POLICY.conditional]) expect(doc, rule.name).toContain(`\`${rule.name}\``);
  });
});
