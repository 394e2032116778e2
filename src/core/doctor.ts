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
import { delegationHint, probeCgroups } from "../runtime/confine/cgroups.js";
import type { LimitEnforcement } from "../runtime/confine/cgroups.js";
import { agentBundlePath } from "../runtime/agent-runtime.js";
import { homeLayout } from "../shared/home.js";
import { findExecutable } from "../shared/executables.js";
import type { EnvironmentStore } from "../environments/index.js";
import { detectDebianMirror } from "../environments/index.js";
import { DEFAULT_MEM_MIB, DEFAULT_PIDS_MAX, DEFAULT_VCPU_COUNT } from "./manager.js";
import { environmentReadiness } from "./prepare.js";
import type { Readiness } from "./prepare.js";
import { diskLimitMechanism } from "./disk-limit.js";
import { describeProjectSource, resolveProjectSource } from "./project-source.js";
import { networkTools, tunProblem } from "../runtime/network/netns.js";
import type { BackendName, BackendRequest } from "../runtime/backend.js";
import { backendRequest, backendRequestSource, resolveBackendRequest, vmHostReport } from "../runtime/backends.js";
import type { VmHostReport } from "../runtime/backends.js";
import { PyroError } from "../shared/errors.js";
import { sandboxIdentity } from "../runtime/confine/identity.js";
import { runConfined, userNamespaceBlocker } from "../runtime/confine/launch.js";
import { SECCOMP_POLICY } from "../runtime/confine/seccomp.js";

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
  /** How new workspaces' `disk_mib` is kept here: by the kernel (root) or watched by pyro. */
  disk_limit: { enforcement: "kernel" | "watched"; detail: string };
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

const NAMESPACE_ISOLATION = "bubblewrap namespaces inside a user namespace (guest root is never host root) sharing the host kernel (weaker than a microVM against kernel exploits)";

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

  // Who guests are on this host: never host root, whoever runs pyro (runtime/confine/identity.ts).
  const identity = sandboxIdentity();
  const runningAs = process.getuid?.() === 0 ? "root" : `${os.userInfo().username} (uid ${process.getuid?.()})`;
  add({
    name: "sandbox identity",
    ok: true,
    detail: `pyro runs as ${runningAs}; every sandbox is in a user namespace: ${identity.summary}${identity.limitation ? `; ${identity.limitation}` : ""}`,
    ...(identity.hint ? { hint: identity.hint } : {}),
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

  if (bwrap && unshare) add(await namespaceProbe());

  add({
    name: "seccomp",
    ok: true,
    detail: `every sandbox runs under pyro's filter (${SECCOMP_POLICY.denied.length} syscalls refused, ${SECCOMP_POLICY.conditional.length} allowed only in safe forms: keyrings, bpf, perf, modules, mounts, new namespaces…) with no_new_privs; see docs/seccomp.md`,
  });

  const limits = probeCgroups();
  add({
    name: "cgroups",
    ok: true,
    detail: limits.note ?? `cgroup v${limits.cgroup_version}: memory, pids and CPU limits enforced`,
    ...(limits.note ? { hint: delegationHint() } : {}),
  });

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
  try {
    const st = fs.statSync(layout.home);
    if (st.uid !== process.getuid?.()) {
      stateOk = false;
      stateDetail += ` (belongs to uid ${st.uid}, not to the user running pyro)`;
    } else if ((st.mode & 0o077) !== 0) {
      fs.chmodSync(layout.home, 0o700);
      stateDetail += " (made private: mode 0700)";
    } else {
      stateDetail += " (private, mode 0700)";
    }
  } catch {
    // reported above
  }
  const legacy = await legacyWorkspaces(layout.workspaces);
  if (legacy.length > 0) {
    stateOk = false;
    stateDetail += `; ${legacy.length} workspace(s) were made by an earlier pyro whose sandboxes ran as host root or by another identity, and cannot start: ${legacy.slice(0, 5).join(", ")}`;
  }
  add({
    name: "state directory",
    ok: stateOk,
    detail: stateDetail,
    ...(stateOk ? {} : { hint: legacy.length > 0 ? "Delete those workspaces (pyro workspace delete ID) and create them again." : "Set PYRO_HOME to a short path of your own that you can write." }),
  });

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
  const tun = tunProblem() === null;
  if (missing.length === 0 && !tun) {
    add({
      name: "egress",
      ok: true,
      detail: "/dev/net/tun cannot be opened by this user, so slirp4netns cannot give a workspace egress: only the network policy off works",
      hint: "Let users open it, as most distributions do: sudo chmod 0666 /dev/net/tun (keep it with a udev rule: KERNEL==\"tun\", MODE=\"0666\").",
    });
  }

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
    disk_limit: diskLimitMechanism(),
    network: missing.length === 0 && tun ? "off by default (loopback only); egress and published ports through slirp4netns on request" : "off (loopback only); egress unavailable on this host",
    environments: envs,
    environment_readiness: readiness,
    project_source: { kind: source?.kind ?? null, path: source?.path ?? null, description: describeProjectSource(source) },
    vm: backends.vm,
    checks,
  };
}

/**
 * Starts one real sandbox the way workspaces start: a user namespace mapped to the sandbox
 * identity, then bubblewrap inside it. On failure, says what on this host forbids it.
 */
async function namespaceProbe(): Promise<DoctorCheck> {
  const t0 = performance.now();
  try {
    const r = await runConfined(() => ["bwrap", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--unshare-all", "--die-with-parent", "true"]);
    const ms = Math.round(performance.now() - t0);
    if (r.code === 0) return { name: "namespaces", ok: true, detail: `a sandbox in its own user, mount, pid, ipc, uts and net namespaces started in ${ms} ms` };
    return { name: "namespaces", ok: false, detail: `bubblewrap could not start in the sandbox's user namespace: ${r.stderr.trim().slice(0, 300)}`, hint: userNamespaceBlocker()?.fix ?? "Check that this kernel allows unprivileged user namespaces." };
  } catch (err) {
    const blocker = userNamespaceBlocker();
    return {
      name: "namespaces",
      ok: false,
      detail: (err as Error).message,
      hint: blocker?.fix ?? (err instanceof PyroError && err.hint ? err.hint : "pyro runs every sandbox in a user namespace; this host must allow them (inside a container, run it with user namespaces enabled)."),
    };
  }
}

/** Workspaces whose record names another sandbox identity (or none: made by an earlier pyro). */
async function legacyWorkspaces(dir: string): Promise<string[]> {
  const key = sandboxIdentity().key;
  const found: string[] = [];
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir).filter((n) => !n.startsWith("."));
  } catch {
    return found;
  }
  for (const name of names) {
    try {
      const record = JSON.parse(fs.readFileSync(path.join(dir, name, "workspace.json"), "utf8")) as { identity?: string };
      if (record.identity !== key) found.push(name);
    } catch {
      // not a workspace, or unreadable: the store reports it
    }
  }
  return found;
}
