/**
 * What only the VM backend has, on real QEMU guests (TCG where this host's KVM cannot boot
 * them): its own kernel, a copy-on-write root on the shared environment image, a network whose
 * policy is enforced outside the guest (off: no network device at all), published ports through
 * QEMU's forwards, and a dead VM reported as failed with its console, leaving no process behind.
 * The per-feature behaviour (exec, files, snapshots, services, shells…) is the shared suite's,
 * run against this backend by the `vm` project in vitest.config.ts.
 */
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import path from "node:path";
import { Pyro, PyroError } from "../../src/index.js";
import { coreOf } from "../../src/sdk/internal.js";
import { VmBackend } from "../../src/runtime/vm/backend.js";
import { qemuMicrovm } from "../../src/runtime/vm/qemu.js";
import { pyroGroup } from "../../src/runtime/confine/cgroups.js";
import { cli, CLI, findLeaks, hostGet, httpGetScript, noLeaks, startTestNetwork, testHome, TEST_ENVIRONMENT, waitFor } from "../helpers.js";
import type { TestNetwork } from "../helpers.js";

let REMOTE: string;
let REMOTE_OTHER: string;
let home: string;
let pyro: Pyro;
let world: TestNetwork;
let hostPort: number;

const get = httpGetScript;
/** A workspace's QEMU processes, found among the jail's processes (its cgroup names the workspace). */
const qemuOf = (id: string) =>
  spawnSync("sh", ["-c", `for p in $(pgrep -f qemu-system-x86_64); do grep -q ${id} /proc/$p/cgroup 2>/dev/null && echo $p; done`], { encoding: "utf8" }).stdout.trim().split("\n").filter(Boolean);
/** Processes of any kind still in a cgroup that names the workspace. */
const inCgroupsOf = (id: string) => spawnSync("sh", ["-c", `grep -l ${id} /proc/[0-9]*/cgroup 2>/dev/null`], { encoding: "utf8" }).stdout.trim();
const bash = (script: string) => ["bash", "-c", script];

function kvmOpens(): boolean {
  try {
    fs.closeSync(fs.openSync("/dev/kvm", "r+"));
    return true;
  } catch {
    return false;
  }
}

/**
 * The "remote" hosts live in a network namespace joined to the host by a veth pair: root makes
 * one, and an ordinary user's run uses the one root prepared (test/network-world.ts).
 */
const canBuildTestNetwork = process.getuid?.() === 0 || fs.existsSync("/run/netns/pyrotestworld");

beforeAll(async () => {
  if (canBuildTestNetwork) {
    world = await startTestNetwork(204);
    ({ remote: REMOTE, remoteOther: REMOTE_OTHER, hostPort } = world);
  }
  home = testHome("vm");
  pyro = new Pyro({ home });
});

afterAll(async () => {
  for (const w of (await pyro.listWorkspaces()).workspaces) await pyro.deleteWorkspace(w.workspace_id);
  pyro.close();
  world?.stop();
  expect(findLeaks(home)).toEqual(noLeaks());
});

describe("a VM workspace", () => {
  it("runs in its own guest kernel, records its backend, and keeps root changes until a reset", async () => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "guest", backend: "vm" });
    expect(ws.backend).toBe("vm");
    expect(ws.isolation).toMatch(/^vm backend .*acceleration: (kvm|tcg)/);
    const r = await pyro.execWorkspace("guest", { command: "uname -r; cat /proc/1/comm; ls /sys/class/net" });
    const [kernel, init, ...nics] = r.stdout.trim().split("\n");
    expect(kernel).toMatch(/-cloud-amd64$/);
    expect(kernel).not.toBe(os.release());
    expect(init).toBe("busybox");
    // The policy off: no network device at all, only loopback.
    expect(nics).toEqual(["lo"]);

    const listed = cli(home, ["workspace", "list", "--json"]).json() as { workspaces: { name: string; backend: string }[] };
    expect(listed.workspaces.find((w) => w.name === "guest")?.backend).toBe("vm");

    // The root disk is the workspace's own copy-on-write layer: it survives a restart…
    await pyro.execWorkspace("guest", { command: "echo installed > /usr/local/marker" });
    await pyro.stopWorkspace("guest");
    await pyro.startWorkspace("guest");
    expect((await pyro.execWorkspace("guest", { command: "cat /usr/local/marker" })).stdout).toBe("installed\n");
    // …and a reset goes back to exactly what the environment ships.
    await pyro.resetWorkspace("guest");
    expect((await pyro.execWorkspace("guest", { command: "cat /usr/local/marker" })).exit_code).not.toBe(0);
  });

  it("is forked when stopped, root disk and /workspace included, and refused while running", async () => {
    const source = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "vm-fork-src", backend: "vm" });
    await pyro.execWorkspace("vm-fork-src", { command: "echo root-change > /usr/local/fork-marker && echo in-workspace > /workspace/f.txt" });
    // QEMU is writing the running guest's root disk: a copy of it now would not be the guest's state.
    const refused = await pyro.forkWorkspace("vm-fork-src").then(() => null, (e: unknown) => e);
    expect(refused).toBeInstanceOf(PyroError);
    expect((refused as PyroError).code).toBe("workspace_busy");
    await pyro.stopWorkspace("vm-fork-src");
    const fork = await pyro.forkWorkspace("vm-fork-src");
    expect([fork.backend, fork.forked_from, fork.name, fork.state]).toEqual(["vm", source.workspace_id, "vm-fork-src-fork-1", "running"]);
    expect((await pyro.execWorkspace(fork.workspace_id, { command: "cat /usr/local/fork-marker /workspace/f.txt && echo fork-only > /usr/local/fork-only" })).stdout).toBe("root-change\nin-workspace\n");
    await pyro.startWorkspace("vm-fork-src");
    expect((await pyro.execWorkspace("vm-fork-src", { command: "cat /usr/local/fork-marker; test -e /usr/local/fork-only || echo not-in-source" })).stdout).toBe("root-change\nnot-in-source\n");
    for (const id of [fork.workspace_id, source.workspace_id]) await pyro.deleteWorkspace(id);
  });

  it("cannot make a device node that reaches the host through /workspace", async () => {
    await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "nodes", backend: "vm" });
    const r = await pyro.execWorkspace("nodes", { command: "mknod /workspace/mem c 1 1; echo rc=$?" });
    expect(r.stdout).toContain("rc=1");
    const files = await pyro.listWorkspaceFiles("nodes", { path: "/workspace" });
    expect(files.entries.some((e) => e.path.endsWith("mem"))).toBe(false);
  });

  it("says when a network change needs a restart for the guest's device, and has it after one", async () => {
    const set = await pyro.setWorkspaceNetwork("nodes", { networkPolicy: "egress" });
    expect(set.note).toMatch(/without a network device.*restarts/);
    expect((await pyro.execWorkspace("nodes", { command: "ls /sys/class/net" })).stdout).toBe("lo\n");
    await pyro.stopWorkspace("nodes");
    await pyro.startWorkspace("nodes");
    expect((await pyro.execWorkspace("nodes", { command: "ls /sys/class/net" })).stdout).toBe("eth0\nlo\n");
  });

  it("is reported failed with its console when the VM dies, and leaves no process behind", async () => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "doomed", backend: "vm" });
    const qemu = qemuOf(ws.workspace_id);
    expect(qemu.length).toBe(1);
    process.kill(Number(qemu[0]), "SIGKILL");
    await new Promise((r) => setTimeout(r, 1000));
    const status = await pyro.statusWorkspace("doomed");
    expect(status.state).toBe("failed");
    expect(status.failure?.log_tail).toContain("the VM exited");
    await pyro.deleteWorkspace("doomed");
    expect(inCgroupsOf(ws.workspace_id)).toBe("");
  });
});

describe("a VM workspace whose CLI is killed", () => {
  const recordName = (id: string): string | null => {
    try {
      return (JSON.parse(fs.readFileSync(path.join(home, "workspaces", id, "workspace.json"), "utf8")) as { name: string | null }).name;
    } catch {
      return null;
    }
  };

  it("is marked failed by the next call when its create was killed with the VM up, and delete leaves nothing of it", { timeout: 600_000 }, async () => {
    const child = spawn(process.execPath, [CLI, "workspace", "create", TEST_ENVIRONMENT, "--backend", "vm", "--name", "killed-create", "--json"], { env: { ...process.env, PYRO_HOME: home }, stdio: "ignore" });
    const closed = new Promise((r) => child.once("close", r));
    let id = "";
    await waitFor(
      "the killed create's VM runs",
      () => {
        const ids = fs.existsSync(path.join(home, "workspaces")) ? fs.readdirSync(path.join(home, "workspaces")) : [];
        id ||= ids.find((n) => recordName(n) === "killed-create") ?? "";
        return id !== "" && qemuOf(id).length === 1;
      },
      240_000,
    );
    child.kill("SIGKILL");
    await closed;
    // Nobody is left to finish the create: the next call finds its record and its VM orphaned.
    const status = await pyro.statusWorkspace(id);
    expect(status.state).toBe("failed");
    expect(qemuOf(id)).toEqual([]);
    await pyro.deleteWorkspace(id);
    expect(fs.existsSync(path.join(home, "workspaces", id))).toBe(false);
    expect(inCgroupsOf(id)).toBe("");
    // Other tests' workspaces in this home may still run: only this one's processes count.
    expect(findLeaks(home).processes.filter((p) => p.includes(id))).toEqual([]);
  });
});

describe("an exhausted VM workspace", () => {
  it("kills a fork bomb at its timeout and a balloon beyond its memory, each command alone, and stop + start recovers it", { timeout: 900_000 }, async () => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, backend: "vm", memMib: 512 });
    // 700 MiB in 1 MiB pieces cannot fit in a 512 MiB guest: the OOM killer takes the command.
    // (One 700 MiB allocation would be refused outright by the guest's overcommit check.)
    // The balloon goes first: in an emulated guest (no KVM, Debian's 6.1 guest kernel) a balloon
    // right after a fork bomb was seen to reclaim for about five minutes before the OOM kill,
    // where alone it is killed within seconds. Once (a busy host, a fresh guest) even alone it
    // reclaimed until its timeout: since then the agent's guard kills a workload that thrashes at
    // its limit, reading the workload's memory pressure — which the guest must therefore have.
    const pressure = await pyro.execWorkspace(ws.workspace_id, { command: "cat /sys/fs/cgroup/pyro-workload/memory.pressure", timeoutSeconds: 120 });
    expect(pressure.stdout).toMatch(/^full avg10=.* total=\d+$/m);
    const balloonAt = Date.now();
    const balloon = await pyro.execWorkspace(ws.workspace_id, { command: ["perl", "-e", 'my @a; push @a, "x" x 1048576 for 1 .. 700; print scalar(@a)'], timeoutSeconds: 300 });
    console.log(`VM balloon after ${Date.now() - balloonAt} ms: exit ${balloon.exit_code}, signal ${balloon.signal}, oom_killed ${balloon.oom_killed}, stderr ${balloon.stderr.slice(0, 200)}`);
    expect(balloon.oom_killed).toBe(true);
    expect(balloon.signal).toBe("SIGKILL");
    expect((await pyro.statusWorkspace(ws.workspace_id)).state).toBe("running");
    // Each command runs in a cgroup of its own, removed once it has ended: only this one's is left.
    const next = await pyro.execWorkspace(ws.workspace_id, { command: "echo alive; ls -d /sys/fs/cgroup/pyro-workload/command-*", timeoutSeconds: 120 });
    expect(next.stdout).toMatch(/^alive\n\/sys\/fs\/cgroup\/pyro-workload\/command-[0-9a-f]+\n$/);

    const started = Date.now();
    const bomb = await pyro.execWorkspace(ws.workspace_id, { command: "b() { b | b & }; b; sleep 600", timeoutSeconds: 10 });
    console.log(`VM fork bomb under a 10 s timeout: the call returned after ${Date.now() - started} ms`);
    expect(bomb.timed_out).toBe(true);
    const after = await pyro.execWorkspace(ws.workspace_id, { command: "echo still here", timeoutSeconds: 120 });
    expect(after.stdout).toBe("still here\n");

    const stopAt = Date.now();
    await pyro.stopWorkspace(ws.workspace_id);
    console.log(`VM stop took ${Date.now() - stopAt} ms`);
    await pyro.startWorkspace(ws.workspace_id);
    const restarted = await pyro.execWorkspace(ws.workspace_id, { command: "echo back", timeoutSeconds: 120 });
    expect(restarted.stdout).toBe("back\n");
    await pyro.deleteWorkspace(ws.workspace_id);
  });
});

describe("a VM that cannot boot", () => {
  it("is a clear error carrying its console, and leaves no process, cgroup or socket behind", async () => {
    // The real jail, supervisor and virtiofsd, with a "VM" that prints a panic and exits.
    const crashing = new VmBackend(home, { ...qemuMicrovm, argv: () => ["/bin/sh", "-c", "echo 'Kernel panic - not syncing: VFS: Unable to mount root fs'; exit 1"] });
    const dir = fs.mkdtempSync(path.join(home, "crash-"));
    const id = `crash${process.pid}`;
    const err = await crashing
      .start({
        sandboxId: id, hostname: "crash", layers: await coreOf(pyro).environments.layers(TEST_ENVIRONMENT), stateDir: path.join(dir, "state"), workspaceDir: path.join(dir, "workspace"),
        socketPath: path.join(dir, "run", `${id}.sock`), logPath: path.join(dir, "sandbox.log"), limits: { vcpuCount: 1, memMib: 256, pidsMax: 256 },
        network: { policy: "off", allowHosts: [], allowCidrs: [], allowHostLoopback: false },
      })
      .then(() => null, (e: unknown) => e as PyroError);
    expect(err).toBeInstanceOf(PyroError);
    expect(err!.code).toBe("sandbox_start_failed");
    expect(err!.message).toContain("the VM did not start");
    expect(String(err!.details?.log_tail)).toContain("Kernel panic - not syncing");
    expect(String(err!.details?.log_tail)).toContain("pyro-vm: the VM exited (code 1)");
    expect(fs.existsSync(`/sys/fs/cgroup/memory/${pyroGroup().v1}/${id}`) || fs.existsSync(`${pyroGroup().v2}/${id}`)).toBe(false);
    expect(fs.readdirSync(path.join(dir, "run")).filter((n) => n.startsWith(id) && n.endsWith(".vm"))).toEqual([]);
    const left = spawnSync("sh", ["-c", `grep -l ${id} /proc/[0-9]*/cgroup 2>/dev/null`], { encoding: "utf8" }).stdout.trim();
    expect(left).toBe("");
  });
});

describe("a VM workspace's network", () => {
  it.skipIf(!canBuildTestNetwork)("reaches outside servers with egress, keeps the host's loopback out unless allowed, and enforces allow-lists outside the guest", async () => {
    await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "net", backend: "vm", networkPolicy: "egress", allowCidrs: [`${REMOTE}/32`] });
    const r = await pyro.execWorkspace("net", { command: bash(`${get(REMOTE, 8080)}; ${get(REMOTE_OTHER, 8080)}; echo "other=$?"; ${get("10.0.2.2", hostPort)}; echo "host=$?"`) });
    expect(r.stdout).toBe(`hello from ${REMOTE}\nother=1\nhost=1\n`);
    const notices = r.network_notices.join("\n");
    expect(notices).toContain(`TCP to ${REMOTE_OTHER}:8080`);
    expect(notices).toContain(`the host itself (10.0.2.2:${hostPort})`);

    // The guest is root in its own kernel, and still cannot lift the policy: the rules are in the jail.
    const root = await pyro.execWorkspace("net", { command: bash(`ip route flush table main 2>/dev/null; ip addr add 10.0.2.50/24 dev eth0 2>/dev/null; ${get(REMOTE_OTHER, 8080)}; echo "other=$?"`) });
    expect(root.stdout).toContain("other=1");

    await pyro.setWorkspaceNetwork("net", { allowHostLoopback: true });
    const after = await pyro.execWorkspace("net", { command: bash(get("10.0.2.2", hostPort)) });
    expect(after.stdout).toBe("hello from the host loopback\n");
  });

  it("publishes a guest service on the host's 127.0.0.1 and removes the forward with the service", async () => {
    await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "web", backend: "vm", networkPolicy: "egress+published-ports" });
    await pyro.writeWorkspaceFile("web", "site/index.html", { text: "served from the guest\n" });
    const svc = await pyro.startService("web", "http", {
      command: "/run/pyro/agent/busybox httpd -f -p 8000 -h /workspace/site",
      readiness: { type: "tcp", port: 8000 },
      publish: [8000],
    });
    const port = svc.published_ports[0]!.host_port;
    expect(await hostGet(port)).toBe("served from the guest\n");
    await pyro.stopService("web", "http");
    expect(await hostGet(port)).toMatch(/^error|^$/);
  });
});

it("doctor reports the VM backend: QEMU, KVM and the acceleration in use", () => {
  const r = cli(home, ["doctor", "--json"]);
  const report = r.json() as { vm: { usable: boolean; qemu: { path: string | null }; kvm: { device: boolean; bootable: boolean | null }; acceleration: string | null; reason: string } };
  expect(report.vm.usable).toBe(true);
  expect(report.vm.qemu.path).toMatch(/qemu-system-x86_64$/);
  expect(["kvm", "tcg"]).toContain(report.vm.acceleration);
  expect(report.vm.reason.length).toBeGreaterThan(10);
  // A /dev/kvm that opens is always put to the test of a real boot.
  expect(report.vm.kvm.device).toBe(kvmOpens());
  if (report.vm.kvm.device) expect(report.vm.kvm.bootable).not.toBeNull();
});
