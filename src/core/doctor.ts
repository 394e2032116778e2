/**
 * `pyro doctor`: checks this host can run workspaces and says plainly which backend and which
 * limits will be used. Each check is a real probe (it starts a bubblewrap sandbox) rather than
 * a guess from file presence. Reads host state only; creates nothing but the state directory.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { probeCgroups } from "../runtime/namespace/cgroups.js";
import type { LimitEnforcement } from "../runtime/namespace/cgroups.js";
import { agentBundlePath } from "../runtime/agent-runtime.js";
import { homeLayout } from "../shared/home.js";
import type { EnvironmentStore } from "../environments/index.js";
import { detectDebianMirror } from "../environments/index.js";
import { DEFAULT_MEM_MIB, DEFAULT_PIDS_MAX, DEFAULT_VCPU_COUNT } from "./manager.js";
import { environmentReadiness } from "./prepare.js";
import type { Readiness } from "./prepare.js";
import { describeProjectSource, resolveProjectSource } from "./project-source.js";
import { networkTools } from "../runtime/namespace/network.js";

export interface DoctorCheck {
  name: string;
  ok: boolean;
  detail: string;
  hint?: string;
}

export interface DoctorReport {
  ok: boolean;
  platform: string;
  backend: "namespace";
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
  checks: DoctorCheck[];
}

function which(cmd: string): string | null {
  for (const dir of (process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":")) {
    const p = path.join(dir, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // keep looking
    }
  }
  return null;
}

const APT_HINT = (pkgs: string) =>
  process.getuid?.() === 0 ? `Install it: apt-get install -y ${pkgs}` : `Install it: sudo apt-get install -y ${pkgs}`;

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

  return {
    ok: checks.every((c) => c.ok),
    platform,
    backend: "namespace",
    isolation: "bubblewrap namespaces sharing the host kernel (weaker than a microVM against kernel exploits)",
    state_dir: layout.home,
    defaults: { vcpu_count: DEFAULT_VCPU_COUNT, mem_mib: DEFAULT_MEM_MIB, pids_max: DEFAULT_PIDS_MAX },
    limits,
    network: missing.length === 0 ? "off by default (loopback only); egress and published ports through slirp4netns on request" : "off (loopback only); egress unavailable on this host",
    environments: envs,
    environment_readiness: readiness,
    project_source: { kind: source?.kind ?? null, path: source?.path ?? null, description: describeProjectSource(source) },
    checks,
  };
}
