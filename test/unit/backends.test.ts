/**
 * Backend selection as a user relies on it: the backend asked for (option, else PYRO_BACKEND,
 * else namespace) is checked before anything is made, decided once, recorded in the workspace
 * and used for every later call on it; the VM code is not touched for namespace workspaces; and
 * doctor reports the VM backend without ever failing because of it. Fake backends and a fake VM
 * host report stand in for real sandboxes: starts no sandbox.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Backend, BackendName, SandboxRecord, SandboxSpec } from "../../src/runtime/backend.js";
import { BackendSet, backendRequest, resolveBackendRequest } from "../../src/runtime/backends.js";
import type { VmHostReport } from "../../src/runtime/vm/host.js";
import type { AgentClient } from "../../src/protocol/client.js";
import type { EnvironmentStore } from "../../src/environments/index.js";
import { WorkspaceManager } from "../../src/core/manager.js";
import { StateStore } from "../../src/core/store.js";
import type { WorkspaceInfo } from "../../src/core/types.js";
import { backendDiagnosis } from "../../src/core/doctor.js";
import type { BackendProbes, DoctorReport } from "../../src/core/doctor.js";
import * as render from "../../src/ops/render.js";
import { Pyro } from "../../src/sdk/pyro.js";
import { coreOf } from "../../src/sdk/internal.js";

const vmHost = vi.hoisted(() => ({ resolveBackend: vi.fn(), vmHostReport: vi.fn() }));
vi.mock("../../src/runtime/vm/host.js", () => vmHost);
// Fake sandboxes need no disk of their own: no filesystem is made or mounted for them, even as root.
vi.mock("../../src/runtime/confine/disk.js", async (original) => ({ ...(await original<Record<string, unknown>>()), kernelDiskBlocker: () => "fake backends in unit tests" }));

const ENFORCED = { cgroup_version: 2 as const, memory: true, pids: true, cpu: true, note: null };

/** A backend that starts nothing: it records what it was asked, and says alive until stopped. */
function fakeBackend(name: BackendName, calls: string[]): Backend {
  const stopped = new Set<number>();
  let pid = name === "vm" ? 900_000 : 800_000;
  return {
    name,
    async start(_spec: SandboxSpec) {
      calls.push(`${name} start`);
      const record: SandboxRecord = {
        backend: name,
        pid: ++pid,
        startTime: 1,
        sandboxPid: null,
        bootId: "boot",
        cgroupDirs: [],
        enforcement: ENFORCED,
        startedAt: new Date().toISOString(),
        network: null,
        vm: name === "vm" ? { acceleration: "kvm", runDir: "/nonexistent", nic: false, bootMs: 5 } : null,
      };
      const client = { request: async () => ({ header: {}, payload: Buffer.alloc(0) }), close: () => undefined, closed: false } as unknown as AgentClient;
      return { record, client };
    },
    async stop(record) {
      calls.push(`${name} stop`);
      stopped.add(record.pid);
    },
    liveness: (record) => (stopped.has(record.pid) ? "dead" : "alive"),
    configureNetwork: async () => {
      throw new Error("not used");
    },
    publishPort: async () => {
      throw new Error("not used");
    },
    unpublishPort: async () => undefined,
    takeNetworkDenials: async () => [],
    killExec: async () => false,
    oomKills: () => null,
    rootChanges: (stateDir: string) => ({ path: `${stateDir}/root`, kind: "directory" as const, copyWhileRunning: true }),
  };
}

const fakeEnvironments = { layers: async () => ["/nonexistent/layer"], inspect: async () => ({ digest: "sha256:0" }) } as unknown as EnvironmentStore;

let home: string;
let savedBackend: string | undefined;
beforeEach(() => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-backends-"));
  savedBackend = process.env.PYRO_BACKEND;
  vmHost.resolveBackend.mockReset();
  vmHost.vmHostReport.mockReset();
});
afterEach(() => {
  if (savedBackend === undefined) delete process.env.PYRO_BACKEND;
  else process.env.PYRO_BACKEND = savedBackend;
  fs.rmSync(home, { recursive: true, force: true });
});

describe("what a create asks for", () => {
  it("is the option when given, else PYRO_BACKEND, else namespace", () => {
    expect(backendRequest("vm", { PYRO_BACKEND: "auto" })).toBe("vm");
    expect(backendRequest(undefined, { PYRO_BACKEND: "auto" })).toBe("auto");
    expect(backendRequest(undefined, { PYRO_BACKEND: "" })).toBe("namespace");
    expect(backendRequest(undefined, {})).toBe("namespace");
  });

  it("refuses any other value, from the option or from PYRO_BACKEND, with invalid_argument naming the allowed ones", () => {
    expect(() => backendRequest("firecracker", {})).toThrow(expect.objectContaining({ code: "invalid_argument", message: expect.stringMatching(/^backend must be one of namespace, vm, auto/) }));
    expect(() => backendRequest(undefined, { PYRO_BACKEND: "VM" })).toThrow(expect.objectContaining({ code: "invalid_argument", message: expect.stringMatching(/^PYRO_BACKEND must be one of namespace, vm, auto/) }));
    expect(() => backendRequest(null, {})).toThrow(expect.objectContaining({ code: "invalid_argument" }));
  });

  it("decides namespace without asking the VM code, and auto or vm through resolveBackend", async () => {
    expect(await resolveBackendRequest("namespace", home)).toBe("namespace");
    expect(vmHost.resolveBackend).not.toHaveBeenCalled();
    vmHost.resolveBackend.mockResolvedValue("vm");
    expect(await resolveBackendRequest("auto", home)).toBe("vm");
    expect(vmHost.resolveBackend).toHaveBeenCalledWith("auto", home);
  });
});

describe("a backend set", () => {
  it("makes each backend on first use only, once", async () => {
    const made: string[] = [];
    const set = new BackendSet(home, {
      namespace: () => (made.push("namespace"), fakeBackend("namespace", [])),
      vm: () => (made.push("vm"), fakeBackend("vm", [])),
    });
    expect(made).toEqual([]);
    const a = await set.get("namespace");
    expect(await set.get("namespace")).toBe(a);
    expect(made).toEqual(["namespace"]);
  });

  it("tries a backend that failed to load again on the next use, and refuses a name it does not know", async () => {
    let attempts = 0;
    const set = new BackendSet(home, {
      vm: () => {
        attempts += 1;
        if (attempts === 1) throw new Error("not yet");
        return fakeBackend("vm", []);
      },
    });
    await expect(set.get("vm")).rejects.toThrow("not yet");
    expect((await set.get("vm")).name).toBe("vm");
    await expect(set.get("hyperv" as BackendName)).rejects.toMatchObject({ code: "backend_unavailable" });
  });
});

describe("a workspace's backend", () => {
  function manager(calls: string[], made: string[]) {
    const backends = new BackendSet(home, {
      namespace: () => (made.push("namespace"), fakeBackend("namespace", calls)),
      vm: () => (made.push("vm"), fakeBackend("vm", calls)),
    });
    return new WorkspaceManager(new StateStore(home), backends, fakeEnvironments);
  }

  it("is recorded at create, shown by status and list, and used by every later call on that workspace", async () => {
    const calls: string[] = [];
    const made: string[] = [];
    const m = manager(calls, made);
    const ns = await m.create({ environment: "debian:12", name: "ns", backend: "namespace" });
    expect(ns.backend).toBe("namespace");
    expect(ns.isolation).toMatch(/^namespace backend/);
    // The VM backend costs nothing until a workspace uses it.
    expect(made).toEqual(["namespace"]);

    const vm = await m.create({ environment: "debian:12", name: "guest", backend: "vm" });
    expect(vm.backend).toBe("vm");
    expect(vm.isolation).toBe("vm backend (QEMU microvm, own guest kernel; acceleration: kvm)");
    const record = JSON.parse(fs.readFileSync(path.join(home, "workspaces", vm.workspace_id, "workspace.json"), "utf8"));
    expect([record.backend, record.sandbox.backend]).toEqual(["vm", "vm"]);

    const listed = await m.list();
    expect(Object.fromEntries(listed.workspaces.map((w: WorkspaceInfo) => [w.name, w.backend]))).toEqual({ ns: "namespace", guest: "vm" });
    expect((await m.status("guest")).backend).toBe("vm");

    calls.length = 0;
    const stopped = await m.stop("guest");
    expect(stopped.isolation).toBe("vm backend (QEMU microvm, own guest kernel)");
    await m.start("guest");
    await m.reset("guest");
    await m.delete("guest");
    await m.delete("ns");
    expect(calls).toEqual(["vm stop", "vm start", "vm stop", "vm start", "vm stop", "namespace stop"]);
    m.close();
  });

  it("is shown in the list rendering", async () => {
    const m = manager([], []);
    await m.create({ environment: "debian:12", name: "guest", backend: "vm" });
    expect(render.workspaceList(await m.list())).toMatch(/guest\s+running\s+vm\s+debian:12/);
    m.close();
  });
});

describe("the SDK's backend option", () => {
  const info = { workspace_id: "w1" } as WorkspaceInfo;

  it("uses PYRO_BACKEND when no backend is given, and the option over it", async () => {
    const pyro = new Pyro({ home });
    const create = vi.spyOn(coreOf(pyro).manager, "create").mockResolvedValue(info);
    process.env.PYRO_BACKEND = "namespace";
    await pyro.createWorkspace({ environment: "debian:12" });
    expect(create).toHaveBeenLastCalledWith(expect.objectContaining({ backend: "namespace" }));
    expect(vmHost.resolveBackend).not.toHaveBeenCalled();

    vmHost.resolveBackend.mockResolvedValue("vm");
    await pyro.createWorkspace({ environment: "debian:12", backend: "vm" });
    expect(create).toHaveBeenLastCalledWith(expect.objectContaining({ backend: "vm" }));
    pyro.close();
  });

  it("decides auto once and hands the manager the concrete backend", async () => {
    const pyro = new Pyro({ home });
    const create = vi.spyOn(coreOf(pyro).manager, "create").mockResolvedValue(info);
    vmHost.resolveBackend.mockResolvedValue("namespace");
    process.env.PYRO_BACKEND = "auto";
    await pyro.createWorkspace({ environment: "debian:12" });
    expect(vmHost.resolveBackend).toHaveBeenCalledTimes(1);
    expect(create).toHaveBeenLastCalledWith(expect.objectContaining({ backend: "namespace" }));
    pyro.close();
  });

  it("refuses an invalid PYRO_BACKEND or option with invalid_argument and creates nothing, for createWorkspace and runInVm", async () => {
    const pyro = new Pyro({ home });
    const create = vi.spyOn(coreOf(pyro).manager, "create").mockResolvedValue(info);
    process.env.PYRO_BACKEND = "qemu";
    await expect(pyro.createWorkspace({ environment: "debian:12" })).rejects.toMatchObject({ code: "invalid_argument", message: expect.stringContaining("PYRO_BACKEND") });
    await expect(pyro.runInVm({ environment: "debian:12", command: "true" })).rejects.toMatchObject({ code: "invalid_argument" });
    delete process.env.PYRO_BACKEND;
    await expect(pyro.createWorkspace({ environment: "debian:12", backend: "kvm" as "vm" })).rejects.toMatchObject({ code: "invalid_argument" });
    expect(create).not.toHaveBeenCalled();
    expect(vmHost.resolveBackend).not.toHaveBeenCalled();
    pyro.close();
  });
});

describe("doctor's VM section", () => {
  const usable: VmHostReport = {
    usable: true,
    qemu: { path: "/usr/bin/qemu-system-x86_64", version: "7.2.22" },
    kvm: { device: true, bootable: false, detail: "a KVM guest did not boot within 5000 ms" },
    acceleration: "tcg",
    reason: "a KVM guest did not boot within 5000 ms, so guests run under TCG software emulation (correct, much slower)",
    hint: null,
  };
  const probes = (over: Partial<BackendProbes>): BackendProbes => ({ vmReport: async () => usable, resolve: async () => "namespace", env: {}, ...over });

  it("reports a VM host check that throws as an unusable section, and the default backend still passes", async () => {
    const resolve = vi.fn();
    const d = await backendDiagnosis(home, probes({ vmReport: async () => Promise.reject(new Error("qemu exploded")), resolve }));
    expect(d.vm).toMatchObject({ usable: false, acceleration: null, error: "qemu exploded" });
    expect(d.vm.reason).toContain("qemu exploded");
    expect(d.check).toMatchObject({ name: "default backend", ok: true });
    expect([d.backend, d.auto_backend]).toEqual(["namespace", "namespace"]);
    expect(resolve).not.toHaveBeenCalled();
  });

  it("says what auto picks, and uses it when PYRO_BACKEND is auto", async () => {
    const kvm: VmHostReport = { ...usable, kvm: { device: true, bootable: true, detail: "a KVM guest booted in 300 ms" }, acceleration: "kvm", reason: "KVM works: a KVM guest booted in 300 ms" };
    const d = await backendDiagnosis(home, probes({ vmReport: async () => kvm, resolve: async () => "vm", env: { PYRO_BACKEND: "auto" } }));
    expect([d.backend, d.backend_source, d.auto_backend]).toEqual(["vm", "PYRO_BACKEND", "vm"]);
    expect(d.isolation).toContain("acceleration: kvm");
    expect(d.check.ok).toBe(true);
  });

  it("fails the default-backend check only when PYRO_BACKEND is invalid or names a backend this host cannot run", async () => {
    const unusable: VmHostReport = { ...usable, usable: false, acceleration: null, reason: "the vm backend needs virtiofsd", hint: "apt-get install -y qemu-system-x86" };
    expect((await backendDiagnosis(home, probes({ vmReport: async () => unusable }))).check.ok).toBe(true);
    const vm = await backendDiagnosis(home, probes({ vmReport: async () => unusable, env: { PYRO_BACKEND: "vm" } }));
    expect(vm.check).toMatchObject({ ok: false, hint: "apt-get install -y qemu-system-x86" });
    const bogus = await backendDiagnosis(home, probes({ env: { PYRO_BACKEND: "docker" } }));
    expect(bogus.check.ok).toBe(false);
    expect(bogus.check.detail).toContain("namespace, vm, auto");
  });

  it("renders QEMU, /dev/kvm, the KVM boot verdict, the acceleration and why, what auto picks, and the fix when unusable", async () => {
    const report = (vm: DoctorReport["vm"]): DoctorReport => ({
      ok: true,
      platform: "linux-x64",
      backend: "namespace",
      backend_source: "default",
      auto_backend: "namespace",
      isolation: "bubblewrap namespaces",
      state_dir: "/tmp/pyro",
      defaults: { vcpu_count: 1, mem_mib: 1024, pids_max: 4096 },
      limits: ENFORCED,
      disk_limit: { enforcement: "watched", detail: "watched by pyro" },
      network: "off",
      environments: [],
      environment_readiness: null,
      project_source: { kind: null, path: null, description: "none" },
      vm,
      checks: [],
    });
    const text = render.doctor(report({ ...usable, error: null }));
    expect(text).toContain("--backend auto picks namespace here");
    expect(text).toContain("VM backend (optional): usable, acceleration tcg");
    expect(text).toContain("QEMU: /usr/bin/qemu-system-x86_64 (7.2.22)");
    expect(text).toContain("/dev/kvm: present");
    expect(text).toContain("KVM guest boot: no");
    expect(text).toContain(`Why: ${usable.reason}`);
    expect(text).toContain("Ready.");

    const failed = (await backendDiagnosis(home, probes({ vmReport: async () => Promise.reject(Object.assign(new Error("no kit"), { hint: "ignored: not a PyroError" })) }))).vm;
    const broken = render.doctor(report(failed));
    expect(broken).toContain("VM backend (optional): not usable");
    expect(broken).toContain("Why: the VM host check failed: no kit");
    expect(broken).not.toContain("QEMU:");

    const missing = render.doctor(report({ ...usable, usable: false, acceleration: null, kvm: { device: false, bootable: null, detail: "/dev/kvm does not exist" }, reason: "the vm backend needs virtiofsd, which this host does not have", hint: "apt-get install -y qemu-system-x86", error: null }));
    expect(missing).toContain("/dev/kvm: not usable (/dev/kvm does not exist)");
    expect(missing).toContain("Fix: apt-get install -y qemu-system-x86");
  });
});
