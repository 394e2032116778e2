/**
 * Attacks on a real workspace sandbox by its own guest root, the way untrusted agent code would
 * try to reach the host: host-global sysctls (core_pattern runs a program on the host as root),
 * the kernel keyrings, nested user namespaces and mounts, privileged files left in /workspace,
 * capabilities and privilege gains. Each must fail, and the host must be unchanged. Runs as
 * whoever runs the suite (root, or an ordinary user in CI's second pass).
 */
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pyro } from "../../src/index.js";
import { sandboxIdentity, ROOT_RANGE_BASE } from "../../src/runtime/confine/identity.js";
import { findLeaks, liveFilesOnHost, noLeaks, testHome, TEST_ENVIRONMENT } from "../helpers.js";

let home: string;
let pyro: Pyro;
let ws: string;

beforeAll(async () => {
  home = testHome("isolation");
  pyro = new Pyro({ home });
  ws = (await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "attacker" })).workspace_id;
});

afterAll(async () => {
  for (const w of (await pyro.listWorkspaces()).workspaces) await pyro.deleteWorkspace(w.workspace_id);
  pyro.close();
  expect(findLeaks(home)).toEqual(noLeaks());
});

async function sh(command: string): Promise<{ exit: number | null; out: string; err: string }> {
  const r = await pyro.execWorkspace(ws, { command, timeoutSeconds: 30 });
  return { exit: r.exit_code, out: r.stdout, err: r.stderr };
}

/**
 * errno of a raw syscall made by perl inside the workspace ("0" when it succeeded). String
 * arguments must be written `my $x = "…"`: perl passes only modifiable strings as pointers.
 */
async function syscallErrno(args: string): Promise<string> {
  const r = await sh(`perl -e '$r = syscall(${args}); print $r < 0 ? ($! + 0) : 0'`);
  if (r.out.trim() === "") throw new Error(`perl failed: ${r.err}`);
  return r.out.trim();
}

const EPERM = "1";
const hostFile = (p: string) => fs.readFileSync(p, "utf8");

describe("guest root is never host root", () => {
  it("maps guest ids to the unprivileged identity, never to host root", async () => {
    const identity = sandboxIdentity();
    const r = await sh("id -u; cat /proc/self/uid_map /proc/self/gid_map");
    const [uid, ...maps] = r.out.trim().split("\n");
    expect(uid).toBe("0");
    const rows = maps.map((line) => line.trim().split(/\s+/).map(Number));
    // No row of either map covers host id 0.
    for (const [, outside, count] of rows) expect(outside! <= 0 && 0 < outside! + count!).toBe(false);
    expect(rows[0]![0]).toBe(0);
    expect(rows[0]![1]).toBe(identity.rootUid);
    if (process.getuid?.() === 0) expect(identity.rootUid).toBe(ROOT_RANGE_BASE);
    else expect(identity.rootUid).toBe(process.getuid?.());
  });

  it("files guest root leaves in /workspace, setuid ones included, belong to that identity on the host", async () => {
    const identity = sandboxIdentity();
    const r = await sh("cp /bin/sh /workspace/suid-sh && chmod 4755 /workspace/suid-sh && chown 0:0 /workspace/suid-sh && touch /workspace/plain && ls -ln /workspace/suid-sh");
    expect(r.exit).toBe(0);
    const workspaceDir = liveFilesOnHost(home, ws);
    const st = fs.lstatSync(path.join(workspaceDir, "suid-sh"));
    expect(st.uid).toBe(identity.rootUid);
    expect(st.uid).not.toBe(0);
    // Whatever the mode says, the file can only ever run as the unprivileged identity.
    expect(fs.lstatSync(path.join(workspaceDir, "plain")).uid).toBe(identity.rootUid);
  });

  it("cannot chown a file to host root: every id guest root can name is in the guest range", async () => {
    const r = await sh("touch /workspace/owned && chown 65534:65534 /workspace/owned && stat -c '%u' /workspace/owned");
    expect(r.out.trim()).toBe("65534");
    const st = fs.lstatSync(path.join(liveFilesOnHost(home, ws), "owned"));
    expect(st.uid).not.toBe(0);
    expect(st.uid).not.toBe(65534);
  });
});

describe("nothing host-global is writable", () => {
  it("refuses writes to host-global sysctls, core_pattern first, and leaves the host's values alone", async () => {
    const before = { core: hostFile("/proc/sys/kernel/core_pattern"), overcommit: hostFile("/proc/sys/vm/overcommit_memory") };
    const r = await sh(
      "for f in kernel/core_pattern vm/overcommit_memory kernel/modprobe kernel/panic vm/drop_caches kernel/sysrq; do " +
        "if echo 1 > /proc/sys/$f 2>/dev/null; then echo WROTE $f; fi; done; " +
        "echo '|/workspace/evil %p' > /proc/sys/kernel/core_pattern 2>/dev/null && echo WROTE core_pattern; true",
    );
    expect(r.out).not.toContain("WROTE");
    expect(hostFile("/proc/sys/kernel/core_pattern")).toBe(before.core);
    expect(hostFile("/proc/sys/vm/overcommit_memory")).toBe(before.overcommit);
  });

  it("has no writable /proc/sys entry outside its own network namespace", async () => {
    // `find -writable` asks the kernel (access(2)), so it sees exactly what guest root may write.
    const r = await sh("find /proc/sys -type f -writable 2>/dev/null | grep -v '^/proc/sys/net/' | head -20");
    expect(r.out.trim()).toBe("");
  });

  it("cannot reach the kernel keyrings (shared with the host user) at all", async () => {
    // keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 0); add_key("user", "pyro-test", "x", 1, KEY_SPEC_SESSION_KEYRING)
    const nr = process.arch === "arm64" ? { keyctl: 219, addKey: 217, requestKey: 218 } : { keyctl: 250, addKey: 248, requestKey: 249 };
    expect(await syscallErrno(`${nr.keyctl}, 0, -4, 0`)).toBe(EPERM);
    expect(await syscallErrno(`${nr.addKey}, my $t = "user", my $d = "pyro-test", my $p = "x", 1, -3`)).toBe(EPERM);
    expect(await syscallErrno(`${nr.requestKey}, my $t = "user", my $d = "pyro-test", 0, 0`)).toBe(EPERM);
  });

  it("a crash runs nothing on the host: core_pattern stays the host's and a core dump stays inside", async () => {
    const before = hostFile("/proc/sys/kernel/core_pattern");
    const r = await sh("ulimit -c unlimited; sh -c 'kill -SEGV $$'; echo status=$?");
    expect(r.out).toContain("status=139");
    expect(hostFile("/proc/sys/kernel/core_pattern")).toBe(before);
  });
});

describe("the sandbox cannot widen itself", () => {
  it("runs with no_new_privs, under the seccomp filter, with only the sandbox capabilities", async () => {
    const r = await sh("grep -E '^(NoNewPrivs|Seccomp|CapEff|CapBnd):' /proc/self/status");
    expect(r.out).toMatch(/NoNewPrivs:\s+1/);
    expect(r.out).toMatch(/Seccomp:\s+2/);
    const capEff = BigInt(`0x${/CapEff:\s+([0-9a-f]+)/.exec(r.out)![1]}`);
    const CAP_SYS_ADMIN = 21n;
    const CAP_NET_ADMIN = 12n;
    const CAP_MKNOD = 27n;
    const CAP_SYS_MODULE = 16n;
    for (const cap of [CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_MKNOD, CAP_SYS_MODULE]) expect((capEff >> cap) & 1n).toBe(0n);
  });

  it("cannot make nested user namespaces or other namespaces, nor mount", async () => {
    const r = await sh("unshare --user --map-root-user true 2>&1; echo user=$?; unshare --mount true 2>&1; echo mount=$?; unshare --net true 2>&1; echo net=$?; mkdir -p /tmp/m && mount -t tmpfs x /tmp/m 2>&1; echo tmpfs=$?");
    expect(r.out).toMatch(/user=[1-9]/);
    expect(r.out).toMatch(/mount=[1-9]/);
    expect(r.out).toMatch(/net=[1-9]/);
    expect(r.out).toMatch(/tmpfs=[1-9]/);
    expect(r.out).not.toMatch(/user=0|mount=0|net=0|tmpfs=0/);
  });

  it("refuses bpf, perf_event_open, kernel modules and setns", async () => {
    const nr = process.arch === "arm64" ? { bpf: 280, perf: 241, initModule: 105, setns: 268 } : { bpf: 321, perf: 298, initModule: 175, setns: 308 };
    expect(await syscallErrno(`${nr.bpf}, 0, 0, 0`)).toBe(EPERM);
    expect(await syscallErrno(`${nr.perf}, 0, 0, -1, -1, 0`)).toBe(EPERM);
    expect(await syscallErrno(`${nr.initModule}, 0, 0, my $e = ""`)).toBe(EPERM);
    expect(await syscallErrno(`${nr.setns}, 0, 0`)).toBe(EPERM);
  });

  it("a setuid binary inside grants nothing: no_new_privs keeps its caller's ids", async () => {
    // As a guest user, running a setuid-root copy of id must not make it root.
    const r = await sh("cp /usr/bin/id /tmp/suid-id && chmod 4755 /tmp/suid-id && setpriv --reuid 1000 --regid 1000 --clear-groups /tmp/suid-id -u");
    expect(r.out.trim()).toBe("1000");
  });
});

describe("state is private to the user running pyro", () => {
  it("keeps the state directory and each workspace's directory private (0700)", async () => {
    expect(fs.statSync(path.join(home, "workspaces", ws)).mode & 0o077).toBe(0);
    expect(fs.statSync(path.join(home, "workspaces")).mode & 0o077).toBe(0);
  });
});

describe("state an earlier identity made", () => {
  it("a workspace an earlier pyro made (sandboxes as host root) cannot start, says why, and can be deleted", async () => {
    const old = (await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "legacy" })).workspace_id;
    await pyro.stopWorkspace(old);
    // What an earlier pyro wrote: the same record without the identity its files were made under.
    const recordPath = path.join(home, "workspaces", old, "workspace.json");
    const record = JSON.parse(fs.readFileSync(recordPath, "utf8")) as Record<string, unknown>;
    delete record.identity;
    fs.writeFileSync(recordPath, JSON.stringify(record));
    const err = await pyro.startWorkspace(old).then(
      () => null,
      (e: unknown) => e as { code: string; message: string; hint?: string },
    );
    expect(err?.code).toBe("workspace_incompatible");
    expect(err?.message).toContain("earlier pyro");
    expect(err?.hint).toContain(`pyro workspace delete ${old}`);
    const report = await pyro.doctor();
    const state = report.checks.find((c) => c.name === "state directory")!;
    expect(state.ok).toBe(false);
    expect(state.detail).toContain(old);
    await pyro.deleteWorkspace(old);
    expect(fs.existsSync(path.join(home, "workspaces", old))).toBe(false);
  });
});
