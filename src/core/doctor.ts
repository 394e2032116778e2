/**
 * `pyro doctor`: checks this host can run workspaces and says plainly which backend and which
 * limits will be used. Each check is a real probe (it starts a bubblewrap sandbox, and boots a
 * probe guest for the VM section) rather than a guess from file presence. Reads host state only;
 * creates nothing but the state directory and the VM backend's cached guest kit.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { probeCgroups } from "../runtime/namespace/cgroups.js";
import type { LimitEnforcement } from "../runtime/namespace/cgroups.js";
import { agentBundlePath } from "../runtime/agent-runtime.js";
import { homeLayout } from "../shared/home.js";
import { findExecutable } from "../shared/executables.js";
import type { EnvironmentStore } from "../environments/index.js";
import { detectDebianMirror } from "../environments/index.js";
import { DEFAULT_MEM_MIB, DEFAULT_PIDS_MAX, DEFAULT_VCPU_COUNT } from "./manager.js";
import { environmentReadiness } from "./prepare.js";
import type { Readiness } from "./prepare.js";
import { describeProjectSource, resolveProjectSource } from "./project-source.js";
import { networkTools } from "../runtime/namespace/network.js";
import type { BackendName, BackendRequest } from "../runtime/backend.js";
import { backendRequest, backendRequestSource, resolveBackendRequest } from "../runtime/backends.js";
import type { VmHostReport } from "../runtime/vm/host.js";
import { PyroError } from "../shared/errors.js";

export interface DoctorCheck {
  name: string;
  ok: boolean;
  detail: string;
  hint?: string;
}

/**
 * The VM backend as this host offers it (runtime/vm/host.ts `vmHostReport`, with a probe boot).
 * Optional: an unusable VM backend never makes the report fail, unless it is the default.
 */
export interface DoctorVmSection extends VmHostReport {
  /** Set when the host check itself failed; the section then says unusable, with this as the reason. */
  error: string | null;
}

export interface DoctorReport {
  /** Every check passed: the namespace backend works, and the default backend can run here. */
  ok: boolean;
  platform: string;
  /** What a workspace created without `--backend` gets here (`auto` already decided). */
  backend: BackendName;
  /** Where that default comes from: `$PYRO_BACKEND`, or pyro's own default (namespace). */
  backend_source: "PYRO_BACKEND" | "default";
  /** What `--backend auto` picks on this host now. */
  auto_backend: BackendName;
  /** The isolation of `backend`, in words. */
  isolation: string;
  state_dir: string;
  defaults: { vcpu_count: number; mem_mib: number; pids_max: number };
  limits: LimitEnforcement;
  network: string;
  environments: { name: string; installed: boolean }[];
  /** With `--environment`: warm, cold or stale for the daily loop (see `pyro prepare`). */
  environment_readiness: Readiness | null;
  /** What `pyro mcp serve` started here would seed new workspaces from. */
  project_source: { kind: string | null; path: string | null; description: string };
  vm: DoctorVmSection;
  checks: DoctorCheck[];
}

const which = (cmd: string): string | null => findExecutable(cmd);

const APT_HINT = (pkgs: string) =>
  process.getuid?.() === 0 ? `Install it: apt-get install -y ${pkgs}` : `Install it: sudo apt-get install -y ${pkgs}`;

const NAMESPACE_ISOLATION = "bubblewrap namespaces sharing the host kernel (weaker than a microVM against kernel exploits)";

function vmIsolation(acceleration: VmHostReport["acceleration"]): string {
  return `a QEMU microVM per workspace with its own guest kernel${acceleration ? ` (acceleration: ${acceleration}${acceleration === "tcg" ? ", software emulation: correct but much slower" : ""})` : ""}`;
}

/** What the VM section and the backend choice are computed from; tests give fakes. */
export interface BackendProbes {
  vmReport(home: string): Promise<VmHostReport>;
  resolve(request: BackendRequest, home: string): Promise<BackendName>;
  env: NodeJS.ProcessEnv;
}

const HOST_PROBES: BackendProbes = {
  async vmReport(home) {
    const { vmHostReport } = await import("../runtime/vm/host.js");
    return vmHostReport(home, { probe: true });
  },
  resolve: resolveBackendRequest,
  env: process.env,
};

/**
 * The VM section, the default backend and what `auto` picks, plus the one check they add
 * ("default backend": PYRO_BACKEND is valid and names a backend that can run here). Never
 * throws: whatever the VM code does, doctor still reports the rest.
 */
export async function backendDiagnosis(
  home: string,
  probes: BackendProbes = HOST_PROBES,
): Promise<{ backend: BackendName; backend_source: DoctorReport["backend_source"]; auto_backend: BackendName; isolation: string; vm: DoctorVmSection; check: DoctorCheck }> {
  let vm: DoctorVmSection;
  try {
    vm = { ...(await probes.vmReport(home)), error: null };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    vm = {
      usable: false,
      qemu: { path: null, version: null },
      kvm: { device: false, bootable: null, detail: "not checked" },
      acceleration: null,
      reason: `the VM host check failed: ${message}`,
      hint: err instanceof PyroError ? (err.hint ?? null) : null,
      error: message,
    };
  }
  // An unusable VM backend cannot be auto's pick; otherwise the rule is resolveBackend's own.
  const auto_backend: BackendName = vm.usable ? await probes.resolve("auto", home).catch(() => "namespace" as const) : "namespace";
  const backend_source = backendRequestSource(probes.env);
  let request: BackendRequest;
  try {
    request = backendRequest(undefined, probes.env);
  } catch (err) {
    return {
      backend: "namespace",
      backend_source,
      auto_backend,
      isolation: NAMESPACE_ISOLATION,
      vm,
      check: { name: "default backend", ok: false, detail: (err as Error).message, hint: "Set PYRO_BACKEND to namespace, vm or auto, or unset it (namespace)." },
    };
  }
  const backend: BackendName = request === "auto" ? auto_backend : request;
  const isolation = backend === "vm" ? vmIsolation(vm.acceleration) : NAMESPACE_ISOLATION;
  const from = backend_source === "PYRO_BACKEND" ? `PYRO_BACKEND=${request}` : "pyro's default; choose with --backend or PYRO_BACKEND";
  if (backend === "vm" && !vm.usable) {
    return {
      backend,
      backend_source,
      auto_backend,
      isolation,
      vm,
      check: { name: "default backend", ok: false, detail: `vm (${from}), but the vm backend cannot run here: ${vm.reason}`, hint: vm.hint ?? "Unset PYRO_BACKEND to use the namespace backend, or fix what the VM section reports." },
    };
  }
  const accelerated = backend === "vm" && vm.acceleration ? ` with ${vm.acceleration}` : "";
  return { backend, backend_source, auto_backend, isolation, vm, check: { name: "default backend", ok: true, detail: `${backend}${accelerated} (${from})` } };
}

export async function runDoctor(home: string, environments: EnvironmentStore, options: { environment?: string; cwd?: string } = {}): Promise<DoctorReport> {
  const checks: DoctorCheck[] = [];
  const add = (c: DoctorCheck) => checks.push(c);

  const platform = `${process.platform}-${process.arch}`;
  add({ name: "platform", ok: process.platform === "linux", detail: `${platform}, kernel ${os.release()}`, ...(process.platform === "linux" ? {} : { hint: "pyro needs Linux." }) });

  const root = process.getuid?.() === 0;
  add({
    name: "privileges",
    ok: root,
    detail: root ? "running as root" : `running as uid ${process.getuid?.()}`,
    ...(root ? {} : { hint: "The namespace backend mounts overlayfs and sets cgroup limits; run pyro as root (e.g. with sudo)." }),
  });

  const bwrap = which("bwrap");
  const bwrapVersion = bwrap ? spawnSync(bwrap, ["--version"], { encoding: "utf8" }).stdout.trim() : "";
  add({ name: "bubblewrap", ok: bwrap !== null, detail: bwrap ? `${bwrap} (${bwrapVersion})` : "bwrap not found", ...(bwrap ? {} : { hint: APT_HINT("bubblewrap") }) });

  const unshare = which("unshare");
  add({ name: "unshare", ok: unshare !== null, detail: unshare ?? "unshare not found", ...(unshare ? {} : { hint: APT_HINT("util-linux") }) });

  let overlay = false;
  try {
    overlay = fs.readFileSync("/proc/filesystems", "utf8").includes("overlay");
  } catch {
    overlay = false;
  }
  add({ name: "overlayfs", ok: overlay, detail: overlay ? "overlay filesystem available" : "overlay not listed in /proc/filesystems", ...(overlay ? {} : { hint: "Load the overlay module: modprobe overlay" }) });

  if (bwrap) {
    const t0 = performance.now();
    const probe = spawnSync(bwrap, ["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--unshare-all", "--die-with-parent", "true"], { encoding: "utf8", timeout: 10_000 });
    const ms = Math.round(performance.now() - t0);
    const ok = probe.status === 0;
    add({
      name: "namespaces",
      ok,
      detail: ok ? `bubblewrap sandbox with mount, pid, ipc, uts, net namespaces started in ${ms} ms` : `bubblewrap probe failed: ${(probe.stderr || String(probe.error ?? "")).trim().slice(0, 300)}`,
      ...(ok ? {} : { hint: "Enable user/mount namespaces on this host, or run as root." }),
    });
  }

  const limits = probeCgroups();
  add({ name: "cgroups", ok: true, detail: limits.note ?? `cgroup v${limits.cgroup_version}: memory, pids and CPU limits enforced` });

  const layout = homeLayout(home);
  let stateOk = true;
  let stateDetail = layout.home;
  try {
    fs.mkdirSync(layout.home, { recursive: true, mode: 0o700 });
    fs.accessSync(layout.home, fs.constants.W_OK);
  } catch (err) {
    stateOk = false;
    stateDetail = `${layout.home}: ${(err as Error).message}`;
  }
  const socketLength = path.join(layout.run, "xxxxxxxxxxxx.sock.xxxxxxxx").length;
  if (socketLength > 100) {
    stateOk = false;
    stateDetail += ` (path too long for unix sockets: ${socketLength} > 100)`;
  }
  if (/[,:]/.test(layout.home)) {
    stateOk = false;
    stateDetail += " (contains ',' or ':', which overlayfs cannot mount)";
  }
  add({ name: "state directory", ok: stateOk, detail: stateDetail, ...(stateOk ? {} : { hint: "Set PYRO_HOME to a short writable path without ',' or ':'." }) });

  const bundle = agentBundlePath();
  const bundleOk = fs.existsSync(bundle);
  add({ name: "agent", ok: bundleOk, detail: bundleOk ? `node ${process.version} runs the agent inside sandboxes (${bundle})` : `agent bundle missing at ${bundle}`, ...(bundleOk ? {} : { hint: "Run `npm run build`." }) });

  const debootstrap = which("debootstrap");
  add({
    name: "environment builder",
    ok: debootstrap !== null,
    detail: debootstrap ? `debootstrap, mirror ${process.env.PYRO_DEBIAN_MIRROR ?? detectDebianMirror()}` : "debootstrap not found (needed by `pyro env pull`; `pyro env import` works without it)",
    ...(debootstrap ? {} : { hint: APT_HINT("debootstrap") }),
  });

  // Egress (slirp4netns), the rules inside each sandbox (nft, ip, nsenter) and the helper starter (perl).
  const tools = networkTools();
  const missing = [...tools].filter(([, found]) => !found).map(([tool]) => tool);
  add({
    name: "networking",
    ok: missing.length === 0,
    detail: missing.length === 0 ? "slirp4netns, nft, ip, nsenter and perl found: the egress policies are available" : `missing ${missing.join(", ")}: only the network policy off works`,
    ...(missing.length === 0 ? {} : { hint: APT_HINT("slirp4netns nftables iproute2") }),
  });

  const envs = (await environments.list()).map((e) => ({ name: e.name, installed: e.installed }));
  const readiness = options.environment ? await environmentReadiness(home, environments, options.environment) : null;
  if (readiness) add({ name: `environment ${readiness.environment}`, ok: readiness.state === "warm", detail: `${readiness.state}: ${readiness.reason}`, ...(readiness.state === "warm" ? {} : { hint: `Run \`pyro prepare ${readiness.environment}\`.` }) });
  const source = await resolveProjectSource({ cwd: options.cwd ?? process.cwd() }).catch(() => null);
  const backends = await backendDiagnosis(home);
  add(backends.check);

  return {
    ok: checks.every((c) => c.ok),
    platform,
    backend: backends.backend,
    backend_source: backends.backend_source,
    auto_backend: backends.auto_backend,
    isolation: backends.isolation,
    state_dir: layout.home,
    defaults: { vcpu_count: DEFAULT_VCPU_COUNT, mem_mib: DEFAULT_MEM_MIB, pids_max: DEFAULT_PIDS_MAX },
    limits,
    network: missing.length === 0 ? "off by default (loopback only); egress and published ports through slirp4netns on request" : "off (loopback only); egress unavailable on this host",
    environments: envs,
    environment_readiness: readiness,
    project_source: { kind: source?.kind ?? null, path: source?.path ?? null, description: describeProjectSource(source) },
    vm: backends.vm,
    checks,
  };
}
