/**
 * Utility sandboxes that join a running sandbox's namespaces: they work on the very overlay
 * instance the running sandbox has mounted on its stage (never a second overlay on the same
 * upper directory), add no mount to that sandbox's mount table, bind read-only when asked, bind
 * a path inside the namespace only with no symbolic link on the way, still bind host paths,
 * refuse a target that is gone or whose pid belongs to another process, and never touch the
 * target when released. Targets are started here through `ConfinedLaunch.open`, as the
 * namespace backend starts a workspace: an overlay staged on temporary directories, then a
 * plain process or a bubblewrap sandbox whose outer process runs as guest root.
 */
import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfinedLaunch, ownByGuestRoot } from "../../src/runtime/confine/launch.js";
import type { JoinTarget } from "../../src/runtime/confine/launch.js";
import { hostSystemArgs } from "../../src/runtime/confine/bwrap.js";
import { runUtility, withUtilityAgent } from "../../src/runtime/confine/utility.js";
import { processStartTime } from "../../src/shared/process.js";
import { systemPath } from "../../src/shared/executables.js";
import { Pyro } from "../../src/index.js";
import { expectPyroError, testHome, TEST_ENVIRONMENT, waitFor } from "../helpers.js";

/** A running confined process with an overlay staged for it, as a workspace has. */
interface Target {
  join: JoinTarget & { startTime: number };
  /** The overlay's path in the target's mount namespace (its stage). */
  overlay: string;
  upper: string;
  child: ChildProcess;
}

let scratch: string;
const started: Target[] = [];

/** The pids of this process's children (joining holders, launchers) still alive. */
function children(): number[] {
  const out: number[] = [];
  for (const task of fs.readdirSync(`/proc/${process.pid}/task`)) {
    try {
      out.push(...fs.readFileSync(`/proc/${process.pid}/task/${task}/children`, "utf8").split(" ").filter(Boolean).map(Number));
    } catch {
      // the thread exited
    }
  }
  return out.filter((pid) => !started.some((t) => t.join.pid === pid) && processStartTime(pid) !== null);
}

/** Descriptors of this process that name a namespace or a path through another process's root. */
function namespaceDescriptors(): string[] {
  const out: string[] = [];
  for (const fd of fs.readdirSync("/proc/self/fd")) {
    try {
      const link = fs.readlinkSync(`/proc/self/fd/${fd}`);
      if (/^(user|mnt):\[/.test(link) || link.startsWith(scratch)) out.push(link);
    } catch {
      // closed meanwhile (readdir's own descriptor)
    }
  }
  return out;
}

/**
 * Stages an overlay (a lower layer holding seed.txt, an upper, a work directory) and starts
 * `command(overlay)` on it, confined; resolves once the staging is done and the command runs.
 */
async function startTarget(label: string, command: (overlay: string) => string[], ready: (pid: number) => boolean): Promise<Target> {
  const dir = fs.mkdtempSync(path.join(scratch, `${label}-`));
  const lower = path.join(dir, "lower");
  const upper = path.join(dir, "upper");
  const work = path.join(dir, "work");
  for (const d of [lower, upper, work]) fs.mkdirSync(d);
  fs.writeFileSync(path.join(lower, "seed.txt"), "from the lower layer\n");
  ownByGuestRoot(upper);
  ownByGuestRoot(work);
  const launch = await ConfinedLaunch.open(3);
  let child: ChildProcess;
  let overlay: string;
  try {
    overlay = launch.overlay([lower], upper, work);
    const { argv, fds } = launch.argv(command(overlay));
    child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "ignore", "inherit", ...fds], env: { PATH: systemPath() } });
    await waitFor(`${label} runs its command`, () => ready(child.pid!), 20_000);
  } finally {
    // As the namespace backend does once its sandbox runs: the holder goes, the target keeps
    // the namespaces alive.
    launch.release();
  }
  const pid = child.pid!;
  const target: Target = { join: { pid, startTime: processStartTime(pid)! }, overlay, upper, child };
  started.push(target);
  return target;
}

const comm = (pid: number) => {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
};

/** The first child of `pid` (bubblewrap's sandboxed process), or null. */
function firstChild(pid: number): number | null {
  try {
    const first = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").split(" ").filter(Boolean)[0];
    return first ? Number(first) : null;
  } catch {
    return null;
  }
}

const mountinfo = (t: Target) => fs.readFileSync(`/proc/${t.join.pid}/mountinfo`, "utf8");

/**
 * Mounts in `after` that `before` did not have, by mount id: a mount's line can change while it
 * stays the same mount (another test's workspace directory, holding a disk mount copied into this
 * namespace, renamed as that workspace is deleted). Only additions count: other users of this
 * host may unmount their own mounts from every namespace meanwhile.
 */
function addedMounts(before: string, after: string): string[] {
  const id = (line: string) => line.split(" ")[0];
  const had = new Set(before.split("\n").map(id));
  return after.split("\n").filter((line) => line && !had.has(id(line)));
}

let plain: Target;

beforeAll(async () => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-confine-join-"));
  plain = await startTarget("plain", () => ["sleep", "600"], (pid) => comm(pid) === "sleep");
});

afterAll(async () => {
  for (const t of started) {
    if (processStartTime(t.join.pid) === t.join.startTime) process.kill(t.join.pid, "SIGKILL");
  }
  for (const t of started) await waitFor("the target is gone", () => processStartTime(t.join.pid) !== t.join.startTime, 10_000);
  // The upper layers hold files of guest root: the test's own directories, removed whole.
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});

describe("a utility sandbox that joins a running sandbox", () => {
  it("writes into the running overlay instance and reads its lower layer, and the running sandbox sees the write at once", async () => {
    const r = await runUtility(
      [{ inNamespace: plain.overlay, target: "/w", readOnly: false }],
      ["sh", "-c", "cat /w/seed.txt && echo joined > /w/written.txt && stat -c %d /w"],
      { join: plain.join },
    );
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const [seed, dev] = r.stdout.trim().split("\n");
    expect(seed).toBe("from the lower layer");
    // The same superblock: the overlay the target mounted, not a second one on its upper.
    expect(Number(dev)).toBe(fs.statSync(`/proc/${plain.join.pid}/root${plain.overlay}`).dev);
    expect(fs.readFileSync(`/proc/${plain.join.pid}/root${plain.overlay}/written.txt`, "utf8")).toBe("joined\n");
    expect(fs.readFileSync(path.join(plain.upper, "written.txt"), "utf8")).toBe("joined\n");
  });

  it("adds no mount to the running sandbox's mount table, while it runs or after it exits", async () => {
    const before = mountinfo(plain);
    const during = await withUtilityAgent([{ inNamespace: plain.overlay, target: "/w", readOnly: true }], async () => mountinfo(plain), { join: plain.join });
    expect(addedMounts(before, during)).toEqual([]);
    await runUtility([{ inNamespace: plain.overlay, target: "/w", readOnly: false }], ["true"], { join: plain.join });
    expect(addedMounts(before, mountinfo(plain))).toEqual([]);
    // Only the target's own stage: none of the joined utilities' stages was added to it.
    expect(before.match(/ - tmpfs pyro-stage /g)).toHaveLength(1);
  });

  it("binds a path inside the namespace read-only when asked, and writes there fail", async () => {
    const r = await runUtility([{ inNamespace: plain.overlay, target: "/w", readOnly: true }], ["sh", "-c", "cat /w/seed.txt; echo no > /w/refused.txt"], { join: plain.join });
    expect(r.stdout).toContain("from the lower layer");
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/read-only file system/i);
    expect(fs.existsSync(path.join(plain.upper, "refused.txt"))).toBe(false);
  });

  it("binds a path inside the namespace only when no symbolic link is on the way, which the sandbox could have planted", async () => {
    const plant = await runUtility([{ inNamespace: plain.overlay, target: "/w", readOnly: false }], ["sh", "-c", "mkdir -p /w/real/inner && echo inner > /w/real/inner/f && ln -s /etc /w/to-etc && ln -s real /w/to-real"], { join: plain.join });
    expect(plant.code, plant.stderr).toBe(0);
    for (const planted of [`${plain.overlay}/to-etc`, `${plain.overlay}/to-real/inner`]) {
      const r = await runUtility([{ inNamespace: planted, target: "/w", readOnly: true }], ["sh", "-c", "echo started; ls /w"], { join: plain.join });
      expect(r.code).not.toBe(0);
      expect(r.stdout).toBe("");
      expect(r.stderr).toMatch(/pyro-stage: .*symbolic link/i);
    }
    const nested = await runUtility([{ inNamespace: `${plain.overlay}/real/inner`, target: "/w", readOnly: true }], ["cat", "/w/f"], { join: plain.join });
    expect(nested.stdout).toBe("inner\n");
  });

  it("still binds host paths, including a directory made after the running sandbox started", async () => {
    const later = fs.mkdtempSync(path.join(scratch, "made-later-"));
    fs.writeFileSync(path.join(later, "host.txt"), "from the host\n");
    fs.chmodSync(later, 0o755);
    const r = await runUtility(
      [
        { source: later, target: "/h", readOnly: true },
        { inNamespace: plain.overlay, target: "/w", readOnly: false },
      ],
      ["sh", "-c", "cp /h/host.txt /w/copied.txt && cat /w/copied.txt"],
      { join: plain.join },
    );
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("from the host\n");
    expect(fs.readFileSync(`/proc/${plain.join.pid}/root${plain.overlay}/copied.txt`, "utf8")).toBe("from the host\n");
  });

  // Only root can mount on the host.
  it.skipIf(process.getuid?.() !== 0)("refuses a host path under a host mount made after the running sandbox started", async () => {
    const mounted = fs.mkdtempSync(path.join(scratch, "mounted-later-"));
    expect(spawnSync("mount", ["-t", "tmpfs", "-o", "size=64k", "pyro-join-test", mounted]).status).toBe(0);
    try {
      fs.mkdirSync(path.join(mounted, "inside"));
      await expectPyroError(runUtility([{ source: path.join(mounted, "inside"), target: "/h", readOnly: true }], ["true"], { join: plain.join }), "sandbox_start_failed");
    } finally {
      spawnSync("umount", [mounted]);
    }
  });

  it("refuses a target whose start time does not match as workspace_stopped, starting nothing", async () => {
    const before = children();
    const bind = [{ inNamespace: plain.overlay, target: "/w", readOnly: true }];
    await expectPyroError(runUtility(bind, ["true"], { join: { pid: plain.join.pid, startTime: plain.join.startTime + 1 } }), "workspace_stopped");
    await expectPyroError(runUtility(bind, ["true"], { join: { pid: plain.join.pid, startTime: null } }), "workspace_stopped");
    expect(children().filter((pid) => !before.includes(pid))).toEqual([]);
    expect(namespaceDescriptors()).toEqual([]);
  });

  it("refuses a path inside the namespace without a sandbox to join, and one that is not plain", async () => {
    await expectPyroError(runUtility([{ inNamespace: plain.overlay, target: "/w", readOnly: true }], ["true"]), "internal_error");
    const launch = await ConfinedLaunch.join(plain.join, 4);
    try {
      for (const bad of ["mnt/o0", "/mnt/../etc", "/mnt//o0", "/mnt/o0/", "/", "/mnt/\0o0"]) {
        expect(() => launch.bindInNamespace(bad)).toThrow(/not a plain absolute path/);
      }
    } finally {
      launch.release();
    }
  });

  it("leaves the target running when released", async () => {
    const launch = await ConfinedLaunch.join(plain.join, 4);
    launch.bindInNamespace(plain.overlay);
    launch.argv(["true"]);
    launch.release();
    launch.release();
    expect(processStartTime(plain.join.pid)).toBe(plain.join.startTime);
    const r = await runUtility([{ inNamespace: plain.overlay, target: "/w", readOnly: true }], ["cat", "/w/seed.txt"], { join: plain.join });
    expect(r.stdout).toBe("from the lower layer\n");
  });

  it("refuses a target that died, before and after joining, and leaves no process or descriptor behind", async () => {
    const doomed = await startTarget("doomed", () => ["sleep", "600"], (pid) => comm(pid) === "sleep");
    const before = children();
    const launch = await ConfinedLaunch.join(doomed.join, 4);
    launch.bindInNamespace(doomed.overlay);
    doomed.child.kill("SIGKILL");
    await waitFor("the target is gone", () => processStartTime(doomed.join.pid) !== doomed.join.startTime, 10_000);
    try {
      expect(() => launch.argv(["true"])).toThrow(expect.objectContaining({ code: "workspace_stopped" }));
    } finally {
      launch.release();
    }
    await expectPyroError(runUtility([{ inNamespace: doomed.overlay, target: "/w", readOnly: true }], ["true"], { join: doomed.join }), "workspace_stopped");
    // Releasing ends the joining holder's input; it exits by itself a moment later.
    await waitFor("no joining holder or launcher started here is left", () => children().every((pid) => before.includes(pid)), 10_000);
    expect(namespaceDescriptors()).toEqual([]);
  });
});

describe("joining a bubblewrap sandbox whose outer process runs as guest root", () => {
  let sandbox: Target;
  /** The sandboxed process inside bubblewrap. */
  let inner: number;

  beforeAll(async () => {
    sandbox = await startTarget(
      "bwrap",
      (overlay) => ["bwrap", ...hostSystemArgs(), "--proc", "/proc", "--dev", "/dev", "--bind", overlay, "/x", "--unshare-pid", "--unshare-ipc", "--die-with-parent", "--", "sleep", "600"],
      (pid) => {
        const c = firstChild(pid);
        return comm(pid) === "bwrap" && c !== null && (comm(c) === "sleep" || (firstChild(c) !== null && comm(firstChild(c)!) === "sleep"));
      },
    );
    const c = firstChild(sandbox.join.pid)!;
    inner = comm(c) === "sleep" ? c : firstChild(c)!;
  });

  it("writes into the overlay the sandboxed process has at /x, which sees it at once", async () => {
    const before = mountinfo(sandbox);
    const r = await runUtility([{ inNamespace: sandbox.overlay, target: "/w", readOnly: false }], ["sh", "-c", "echo from-utility > /w/shared.txt && cat /w/seed.txt"], { join: sandbox.join });
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("from the lower layer\n");
    expect(fs.readFileSync(`/proc/${inner}/root/x/shared.txt`, "utf8")).toBe("from-utility\n");
    expect(fs.readFileSync(path.join(sandbox.upper, "shared.txt"), "utf8")).toBe("from-utility\n");
    expect(addedMounts(before, mountinfo(sandbox))).toEqual([]);
    expect(processStartTime(sandbox.join.pid)).toBe(sandbox.join.startTime);
  });
});

describe("joining a namespace workspace's sandbox as its record names it", () => {
  let pyro: Pyro;
  let home: string;
  let ws: string;
  let target: JoinTarget;
  /** The workspace's root overlay on its stage, found in its mount table. */
  let root: string;

  beforeAll(async () => {
    home = testHome("confine-join");
    pyro = new Pyro({ home });
    ws = (await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "confine-join", backend: "namespace" })).workspace_id;
    const record = JSON.parse(fs.readFileSync(path.join(home, "workspaces", ws, "workspace.json"), "utf8")) as { sandbox: { pid: number; startTime: number; workspaceStage: string } };
    target = { pid: record.sandbox.pid, startTime: record.sandbox.startTime };
    // Two overlays on the stage: the root, and /workspace, which the record names.
    const overlays = fs
      .readFileSync(`/proc/${target.pid}/mountinfo`, "utf8")
      .split("\n")
      .filter((line) => line.includes(" - overlay pyro "))
      .map((line) => line.split(" ")[4]!)
      .filter((at) => at !== record.sandbox.workspaceStage);
    expect(overlays).toHaveLength(1);
    root = overlays[0]!;
  });

  afterAll(async () => {
    if (ws) await pyro.deleteWorkspace(ws);
    if (home) fs.rmSync(home, { recursive: true, force: true });
  });

  it("shares the workspace's root overlay both ways and adds no mount to its sandbox", async () => {
    expect((await pyro.execWorkspace(ws, { command: "echo from-the-workspace > /root/marker" })).exit_code).toBe(0);
    const before = fs.readFileSync(`/proc/${target.pid}/mountinfo`, "utf8");
    const r = await runUtility([{ inNamespace: root, target: "/w", readOnly: false }], ["sh", "-c", "cat /w/root/marker && echo from-the-utility > /w/tmp/joined"], { join: target });
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("from-the-workspace\n");
    expect((await pyro.execWorkspace(ws, { command: "cat /tmp/joined" })).stdout).toBe("from-the-utility\n");
    expect(addedMounts(before, fs.readFileSync(`/proc/${target.pid}/mountinfo`, "utf8"))).toEqual([]);
  });
});
