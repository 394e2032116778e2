/**
 * Human-readable renderings of SDK results for the terminal. Pure string functions; the JSON
 * form (`--json`) is the SDK result itself and never passes through here.
 */
import type { PyroError } from "../shared/errors.js";
import type { DoctorReport } from "../core/doctor.js";
import type { CommandRecord, ExecResult, WorkspaceInfo } from "../core/types.js";
import type { EnvironmentDetails, EnvironmentListEntry } from "../environments/index.js";
import type { DiffResult, FileListResult, FileReadResult } from "../core/workspace-content.js";
import type { ExportOutcome } from "../core/transfer.js";
import type { ServiceStatus } from "../core/services.js";
import type { NetworkShowResult, WorkspaceNetworkInfo } from "../core/network.js";

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function error(e: PyroError): string {
  return `error [${e.code}]: ${e.message}\n${e.hint ? `hint: ${e.hint}\n` : ""}`;
}

export function doctor(r: DoctorReport): string {
  const lines = [`Platform: ${r.platform}`, `Backend: ${r.backend} — ${r.isolation}`];
  lines.push(`Backend choice: ${r.backend_source === "PYRO_BACKEND" ? "from PYRO_BACKEND" : "the default (PYRO_BACKEND not set)"}; --backend auto picks ${r.auto_backend} here`);
  lines.push(`State directory: ${r.state_dir}`);
  lines.push(`Defaults: ${r.defaults.vcpu_count} vCPU / ${r.defaults.mem_mib} MiB / ${r.defaults.pids_max} pids`);
  lines.push(`Limits: ${r.limits.note ?? `enforced through cgroup v${r.limits.cgroup_version} (memory, pids, cpu)`}`);
  lines.push(`Disk limit: ${r.disk_limit.detail}`);
  lines.push(`Network: ${r.network}`);
  lines.push(`Environments: ${r.environments.map((e) => `${e.name} [${e.installed ? "installed" : "not installed"}]`).join(", ")}`);
  if (r.environment_readiness) lines.push(`Daily loop: ${r.environment_readiness.environment} is ${r.environment_readiness.state} (${r.environment_readiness.reason})`);
  lines.push(`Project source: ${r.project_source.description}`);
  lines.push("", ...vmSection(r.vm));
  lines.push("");
  for (const c of r.checks) {
    lines.push(`${c.ok ? "PASS" : "FAIL"} ${c.name}: ${c.detail}`);
    if (!c.ok && c.hint) lines.push(`     ${c.hint}`);
  }
  lines.push("", r.ok ? "Ready." : "Not ready: fix the FAIL lines above.");
  return lines.join("\n");
}

/**
 * The optional VM backend, apart from the PASS/FAIL checks: it being unusable is information
 * (for `--backend vm` and `auto`), not a failure of the host.
 */
export function vmSection(vm: DoctorReport["vm"]): string[] {
  const state = !vm.usable ? "not usable" : vm.acceleration ? `usable, acceleration ${vm.acceleration}` : "usable, acceleration decided at its first start";
  const lines = [`VM backend (optional): ${state}`];
  if (vm.error === null) {
    lines.push(`  QEMU: ${vm.qemu.path ? `${vm.qemu.path}${vm.qemu.version ? ` (${vm.qemu.version})` : ""}` : "not found"}`);
    // One detail string serves both lines: the device's state until a probe guest ran, then the
    // probe's verdict; the reason often quotes it already.
    const detail = vm.reason.includes(vm.kvm.detail) ? "" : ` (${vm.kvm.detail})`;
    lines.push(`  /dev/kvm: ${vm.kvm.device ? "present" : `not usable${detail}`}`);
    if (vm.kvm.device) lines.push(`  KVM guest boot: ${vm.kvm.bootable === null ? "not probed" : vm.kvm.bootable ? "yes" : "no"}${detail}`);
  }
  lines.push(`  Why: ${vm.reason}`);
  if (!vm.usable && vm.hint) lines.push(`  Fix: ${vm.hint}`);
  return lines;
}

export function environments(list: EnvironmentListEntry[]): string {
  return list
    // A pulled image's description is its reference again: its digest says more.
    .map((e) => `${e.name.padEnd(18)} ${(e.installed ? "[installed]" : "[not installed]").padEnd(16)} ${bytes(e.size_bytes).padStart(10)}  ${e.source === "image" && e.digest ? `image ${e.digest}` : e.description}`)
    .join("\n");
}

export function manifest(m: EnvironmentDetails, withPackages = false): string {
  const lines = [
    `Environment: ${m.name}`,
    `Description: ${m.description}`,
    `Parent: ${m.parent ?? "-"}`,
    `Digest: ${m.digest}`,
    `Size: ${bytes(m.size_bytes)} (layer), ${bytes(m.total_size_bytes)} (with parents)`,
    `Created: ${m.created_at}`,
    `Source: ${m.source}${m.mirror ? ` (${m.mirror})` : ""}`,
    `Packages: ${m.packages.length}`,
  ];
  if (withPackages) lines.push(...m.packages.map((p) => `  ${p}`));
  if (m.image) {
    const c = m.image.config;
    lines.push(
      `Image: ${m.image.reference} (${m.image.digest})`,
      `Image user: ${c.user ?? "-"} (commands run as the sandbox's root)`,
      `Image working dir: ${c.working_dir ?? "-"} (commands start in /workspace)`,
      `Image entrypoint: ${c.entrypoint ? JSON.stringify(c.entrypoint) : "-"}, cmd: ${c.cmd ? JSON.stringify(c.cmd) : "-"}`,
      `Image env (base of every command):`,
      ...c.env.map((e) => `  ${e}`),
      `Image layers (bottom first):`,
      ...m.image.layers.map((l, i) => `  ${i + 1}. ${l.digest} ${bytes(l.size_bytes)} (diff_id ${l.diff_id})`),
    );
  }
  return lines.join("\n");
}

/** The disk limit, what /workspace takes, and how the limit is held. */
function diskLine(w: WorkspaceInfo): string {
  if (w.disk_mib === null) return "no limit (made before disk limits)";
  const used = w.disk.used_bytes === null ? "" : `${bytes(w.disk.used_bytes)} used of `;
  const how = w.disk.enforcement === "kernel" ? "enforced by the kernel" : `watched by pyro, not enforced by the kernel${w.disk.measured_at ? `; measured ${w.disk.measured_at}` : ""}`;
  return `${used}${w.disk_mib} MiB (${how})`;
}

export function workspace(w: WorkspaceInfo): string {
  const lines = [
    `Workspace: ${w.workspace_id}${w.name ? ` (${w.name})` : ""}`,
    `Environment: ${w.environment}`,
    `State: ${w.state}${w.state_reason ? ` — ${w.state_reason}` : ""}`,
    `Backend: ${w.isolation}`,
    `Workspace path: ${w.workspace_path}`,
    `Resources: ${w.vcpu_count} vCPU / ${w.mem_mib} MiB${w.limits ? (w.limits.note ? ` (${w.limits.note})` : " (enforced)") : ""}`,
    `Disk: ${diskLine(w)}`,
    `Network: ${networkLine(w.network)}`,
  ];
  if (w.network.published_ports.length) lines.push(`Published: ${w.network.published_ports.map((p) => `${p.address} → ${p.service}:${p.guest_port}`).join(", ")}`);
  if (w.network.note) lines.push(`Network note: ${w.network.note}`);
  const labels = Object.entries(w.labels);
  if (labels.length) lines.push(`Labels: ${labels.map(([k, v]) => `${k}=${v}`).join(", ")}`);
  if (w.forked_from) lines.push(`Forked from: ${w.forked_from}`);
  if (w.workspace_seed.mode !== "empty") lines.push(`Seed: ${w.workspace_seed.mode} ${w.workspace_seed.seed_path} (${w.workspace_seed.entries} entries, ${bytes(w.workspace_seed.bytes)})`);
  if (w.expires_at) lines.push(`Expires: ${w.expires_at}`);
  lines.push(`Last activity: ${w.last_activity_at}`);
  lines.push(`Command count: ${w.command_count}`);
  if (w.service_count) lines.push(`Services: ${w.running_service_count} running of ${w.service_count}`);
  if (w.secret_names.length) lines.push(`Secrets: ${w.secret_names.join(", ")} (values never shown)`);
  if (w.last_command) lines.push(`Last command: ${w.last_command.command} (exit_code=${w.last_command.exit_code ?? "-"}${w.last_command.timed_out ? ", timed out" : ""})`);
  if (w.failure) lines.push(`Failure: ${w.failure.reason}`, ...(w.failure.log_tail ? w.failure.log_tail.split("\n").map((l) => `  | ${l}`) : []));
  return lines.join("\n");
}

export function workspaceList(r: { count: number; workspaces: WorkspaceInfo[]; reaped: string[] }): string {
  const lines: string[] = [];
  if (r.reaped.length) lines.push(`Reaped expired: ${r.reaped.join(", ")}`);
  if (r.count === 0) {
    lines.push("No workspaces. Create one with `pyro workspace create debian:12`.");
    return lines.join("\n");
  }
  for (const w of r.workspaces) {
    const labels = Object.entries(w.labels).map(([k, v]) => `${k}=${v}`).join(",");
    lines.push(`${w.workspace_id}  ${(w.name ?? "-").padEnd(16)} ${w.state.padEnd(8)} ${w.backend.padEnd(9)} ${w.environment.padEnd(16)} ${w.last_activity_at}  cmds=${w.command_count}${w.forked_from ? `  forked-from=${w.forked_from}` : ""}${labels ? `  ${labels}` : ""}`);
  }
  return lines.join("\n");
}

export function logs(l: { workspace_id: string; count: number; total: number; commands: CommandRecord[] }): string {
  if (l.total === 0) return `No commands run in ${l.workspace_id} yet.`;
  const lines = l.commands.map(
    (c) =>
      `#${c.sequence} ${c.started_at} exit=${c.exit_code ?? "-"}${c.signal ? ` signal=${c.signal}` : ""}${c.timed_out ? " timed_out" : ""} ${c.duration_ms.toFixed(0)}ms out=${bytes(c.stdout_bytes)} err=${bytes(c.stderr_bytes)}  ${c.shell ? c.command[0] : JSON.stringify(c.command)}`,
  );
  if (l.count < l.total) lines.unshift(`(showing the last ${l.count} of ${l.total}; --limit N for more)`);
  return lines.join("\n");
}

/** A one-line note after exec output when something needs saying (timeout, signal, caps). */
export function execNote(r: ExecResult): string {
  const notes: string[] = [];
  if (r.timed_out) notes.push(`timed out after ${(r.duration_ms / 1000).toFixed(1)}s; the command's process tree was killed`);
  else if (r.oom_killed) notes.push("out of memory: the out-of-memory killer killed the command; the workspace goes on");
  else if (r.signal) notes.push(`killed by ${r.signal}`);
  if (r.outcome === "not_started") notes.push("the command could not be started");
  return notes.length ? `[pyro] ${notes.join("; ")}\n` : "";
}

export function fileList(r: FileListResult): string {
  const lines = [`Workspace path: ${r.path} (recursive=${r.recursive ? "yes" : "no"})`];
  for (const e of r.entries) lines.push(`${e.mode} ${e.type.padEnd(9)} ${String(e.size).padStart(10)} ${e.mtime}  ${e.path}${e.link_target !== null ? ` -> ${e.link_target}` : ""}`);
  if (r.truncated) lines.push(`(showing ${r.count} of ${r.total_seen}; more: ${r.continue_with})`);
  return lines.join("\n");
}

/** Content to stdout; the summary (and how to read on) to stderr, so the content stays clean. */
export function fileRead(r: FileReadResult, contentOnly: boolean): { stdout: string; stderr: string } {
  if (r.binary) return { stdout: "", stderr: `${r.path} is binary (${r.size} bytes); not shown. Export it with \`pyro workspace export\`.\n` };
  if (contentOnly) return { stdout: r.content, stderr: "" };
  const newline = r.content.length > 0 && !r.content.endsWith("\n") ? "\n" : "";
  return { stdout: r.content, stderr: `${newline}[${r.path}: bytes ${r.offset}-${r.offset + r.bytes_returned} of ${r.size}${r.truncated ? `; more: ${r.continue_with}` : ""}${r.secrets_redacted ? "; a secret's value is shown as [REDACTED]" : ""}]\n` };
}

export function exported(r: ExportOutcome): string {
  const lines = [`Exported ${r.workspace_path} to ${r.output_path}: ${r.files} files, ${r.directories} directories, ${r.symlinks} symlinks, ${bytes(r.bytes)}`];
  for (const s of r.skipped) lines.push(`  skipped ${s.path}: ${s.reason}`);
  for (const s of r.stripped) lines.push(`  stripped ${s.path}: ${s.reason}`);
  if (r.note) lines.push(`  note: ${r.note}`);
  return lines.join("\n");
}

/** The patch to stdout; the summary, what the patch cannot show, and how to see more to stderr. */
export function diff(r: DiffResult): { stdout: string; stderr: string } {
  const s = r.summary;
  let stderr = `[diff against ${r.against}: ${s.added} added, ${s.modified} modified, ${s.deleted} deleted, ${s.type_changed} type changed, ${s.mode_changed} mode changed]\n`;
  for (const c of r.changes) {
    if (c.binary || c.type === "directory" || (c.type !== "file" && c.type !== "symlink")) stderr += `  ${c.change} ${c.type}${c.binary ? " (binary, not in patch)" : ""}: ${c.path}\n`;
  }
  if (r.changes_omitted) stderr += `  [${r.changes_omitted} more changes counted, not listed: narrow with --path]\n`;
  if (r.patch_truncated) {
    const named = r.omitted_files.slice(0, 20).join(", ");
    stderr += `[patch truncated; left out ${r.omitted_files_total} files: ${named}${r.omitted_files_total > 20 ? ", …" : ""}; ${r.continue_with}]\n`;
  }
  if (r.secrets_redacted) stderr += "[a secret's value is shown as [REDACTED]; the files themselves are unchanged]\n";
  return { stdout: r.patch, stderr };
}

/** The policy in one line: `egress (allow: example.org, 10.0.0.0/8; host loopback blocked)`. */
export function networkLine(n: WorkspaceNetworkInfo): string {
  if (n.policy === "off") return "off (no network)";
  const allow = [...n.allow_hosts, ...n.allow_cidrs];
  return `${n.policy} (${allow.length ? `allow only: ${allow.join(", ")}` : "all destinations"}; host loopback ${n.allow_host_loopback ? "allowed" : "blocked"})`;
}

export function network(r: NetworkShowResult): string {
  const lines = [`Workspace: ${r.workspace_id}`, `Policy: ${networkLine(r)}`];
  lines.push(`Applied: ${r.applied ? "yes" : "no (the workspace is not running; applied at its next start)"}${r.records_denials ? ", denied attempts are recorded" : ""}`);
  if (r.guest_address) lines.push(`Guest address: ${r.guest_address} (the host is 10.0.2.2 when host loopback is allowed)`);
  for (const p of r.published_ports) lines.push(`Published: ${p.address} → service ${p.service}, guest port ${p.guest_port}`);
  if (r.helpers.slirp4netns_pid || r.helpers.dns_forwarder_pid) lines.push(`Helpers: slirp4netns pid ${r.helpers.slirp4netns_pid ?? "-"}, DNS forwarder pid ${r.helpers.dns_forwarder_pid ?? "-"}`);
  if (r.note) lines.push(`Note: ${r.note}`);
  return lines.join("\n");
}

/** Network notices for stderr, one `[pyro] …` line each. */
export function networkNotices(notices: string[] | undefined): string {
  return (notices ?? []).map((n) => `[pyro] ${n}\n`).join("");
}

export function serviceLine(x: ServiceStatus): string {
  return `${x.name.padEnd(16)} ${x.state.padEnd(8)} pid=${x.pid ?? "-"} ${x.shell ? x.command[0] : JSON.stringify(x.command)}${x.reason ? `  (${x.reason})` : ""}`;
}

export function service(x: ServiceStatus): string {
  const lines = [
    `Service: ${x.name}`,
    `State: ${x.state}${x.reason ? ` — ${x.reason}` : ""}`,
    `Command: ${x.shell ? x.command[0] : JSON.stringify(x.command)} (cwd ${x.cwd})`,
    `Readiness: ${x.readiness ? JSON.stringify(x.readiness) : "none"}`,
  ];
  if (x.pid !== null) lines.push(`Pid: ${x.pid}`);
  for (const p of x.published_ports ?? []) lines.push(`Published: ${p.address} → guest port ${p.guest_port}`);
  if (x.started_at) lines.push(`Started: ${x.started_at}`);
  if (x.ready_at) lines.push(`Ready: ${x.ready_at}`);
  if (x.uptime_ms !== null) lines.push(`Uptime: ${(x.uptime_ms / 1000).toFixed(1)}s`);
  if (x.exit_code !== null || x.signal) lines.push(`Exit: ${x.exit_code ?? "-"}${x.signal ? ` (${x.signal})` : ""}`);
  if (x.log_tail) {
    if (x.log_tail.stdout) lines.push("--- stdout (tail) ---", x.log_tail.stdout.trimEnd());
    if (x.log_tail.stderr) lines.push("--- stderr (tail) ---", x.log_tail.stderr.trimEnd());
  }
  return lines.join("\n");
}
