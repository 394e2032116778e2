/**
 * `Pyro`: the one public API. The CLI and the MCP server are thin layers over this class.
 * Method names mirror the reference system in camelCase; results are the same snake_case
 * JSON objects that `--json` prints and MCP returns as structured content.
 */
import { resolvePyroHome } from "../shared/home.js";
import { PyroError } from "../shared/errors.js";
import { hostPath } from "../shared/host-path.js";
import { EnvironmentStore, publicManifest, publicSummary } from "../environments/index.js";
import type { EnvironmentDetails, EnvironmentListEntry, PullProgress } from "../environments/index.js";
import { WorkspaceManager } from "../core/manager.js";
import type { CreateWorkspaceOptions, ExecOptions, UpdateWorkspaceOptions } from "../core/manager.js";
import type { CommandRecord, ExecResult, RawExecResult, WorkspaceInfo } from "../core/types.js";
import { BackendSet, backendRequest, pruneBackendImages, resolveBackendRequest } from "../runtime/backends.js";
import type { BackendRequest } from "../runtime/backend.js";
import { runDoctor } from "../core/doctor.js";
import { prepareEnvironment } from "../core/prepare.js";
import type { DoctorReport } from "../core/doctor.js";
import { Workspace } from "./workspace.js";
import { describeProjectSource, materializeProjectSource, resolveProjectSource } from "../core/project-source.js";
import type { ProjectSource, ProjectSourceOptions } from "../core/project-source.js";
import { WorkspaceContent } from "../core/workspace-content.js";
import { WorkspaceServices } from "../core/services.js";
import type { StartServiceOptions } from "../core/services.js";
import { WorkspaceShells } from "../core/shells.js";
import type { ShellReadOptions } from "../core/shells.js";
import { networkFromOptions } from "../core/network.js";
import type { NetworkChange, NetworkOptions, NetworkShowResult } from "../core/network.js";
import { summarizeWorkspace } from "../core/summary.js";
import type { WorkspaceSummary } from "../core/summary.js";

export interface PyroOptions {
  /** State directory; default `$PYRO_HOME`, else `$XDG_STATE_HOME/pyro`, else `~/.local/state/pyro`. */
  home?: string;
  /**
   * Seed workspaces created without `seedPath` from a project: the Git checkout around `cwd`,
   * `projectPath`, or a clean clone of `repoUrl`. Off unless given (`pyro mcp serve` turns it on).
   */
  projectSource?: ProjectSourceOptions;
}

export interface ExecWorkspaceOptions {
  /** A string runs through `/bin/sh -c`; an array runs as argv with no shell. */
  command: string | string[];
  /** Default 30. The whole process tree is killed when it passes. */
  timeoutSeconds?: number;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Working directory; relative paths resolve against /workspace (the default). */
  cwd?: string;
  /** Bytes given to the command's stdin (default: none, stdin is /dev/null). */
  stdin?: Uint8Array | string;
  /** Cap per output stream, head and tail kept; default 65536. */
  maxOutputBytes?: number;
  /** Workspace secrets to export into the command's environment: names, or { SECRET_NAME: ENV_VAR }. */
  secretEnv?: string[] | Record<string, string>;
}

/**
 * Where a new workspace lives: `namespace` (bubblewrap namespaces sharing the host kernel),
 * `vm` (a QEMU microVM with its own guest kernel; KVM, else TCG emulation) or `auto` (vm when
 * guests boot with KVM on this host, else namespace). Default: `$PYRO_BACKEND`, else namespace.
 */
export type BackendOption = BackendRequest;

export interface RunInVmOptions extends ExecWorkspaceOptions, NetworkOptions {
  environment: string;
  /** See `BackendOption`; an invalid value is `invalid_argument` and nothing is created. */
  backend?: BackendOption;
  vcpuCount?: number;
  memMib?: number;
  ttlSeconds?: number;
}

export interface RunResult extends ExecResult {
  environment: string;
  /** The one-shot workspace is always deleted; this says it was. */
  cleaned_up: boolean;
}

export interface CreateWorkspaceInput extends Omit<CreateWorkspaceOptions, "ephemeral" | "origin" | "backend"> {
  /** See `BackendOption`; the workspace keeps it for life. An invalid value is `invalid_argument` and nothing is created. */
  backend?: BackendOption;
}

function toExecOptions(opts: ExecWorkspaceOptions): ExecOptions {
  if (opts === null || typeof opts !== "object") throw new PyroError("invalid_argument", "exec options are required");
  const { command } = opts;
  const stdin = typeof opts.stdin === "string" ? Buffer.from(opts.stdin) : opts.stdin;
  return {
    ...(Array.isArray(command) ? { command } : { shell: command }),
    ...(opts.timeoutSeconds !== undefined ? { timeoutSeconds: opts.timeoutSeconds } : {}),
    ...(opts.env !== undefined ? { env: opts.env } : {}),
    ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
    ...(stdin !== undefined ? { stdin } : {}),
    ...(opts.maxOutputBytes !== undefined ? { maxOutputBytes: opts.maxOutputBytes } : {}),
    ...(opts.secretEnv !== undefined ? { secretEnv: opts.secretEnv } : {}),
  };
}

/** `seedPath` and each `secretFiles` value as absolute paths; empty or blank ones are `invalid_argument`. */
function withHostPaths(options: CreateWorkspaceInput): CreateWorkspaceInput {
  const out = { ...options };
  if (options.seedPath !== undefined) out.seedPath = hostPath(options.seedPath, "seedPath");
  if (options.secretFiles !== undefined && options.secretFiles !== null) {
    if (typeof options.secretFiles !== "object") throw new PyroError("invalid_argument", "secretFiles must be an object of { NAME: host path }");
    out.secretFiles = Object.fromEntries(Object.entries(options.secretFiles).map(([name, file]) => [name, hostPath(file, `secretFiles.${name}`)]));
  }
  return out;
}

function checkProjectSourceOptions(options: ProjectSourceOptions): ProjectSourceOptions {
  return {
    ...options,
    ...(options.projectPath !== undefined ? { projectPath: hostPath(options.projectPath, "projectSource.projectPath") } : {}),
    ...(options.cwd !== undefined ? { cwd: hostPath(options.cwd, "projectSource.cwd") } : {}),
  };
}

export class Pyro {
  readonly home: string;
  readonly environments: EnvironmentStore;
  readonly manager: WorkspaceManager;
  private readonly content: WorkspaceContent;
  private readonly projectSourceOptions: ProjectSourceOptions | null;
  private resolvedSource: Promise<ProjectSource | null> | null = null;
  private readonly services: WorkspaceServices;
  private readonly shells: WorkspaceShells;
  /** One-shot runs in flight, so an interrupted caller can still clean them up. */
  private readonly runs = new Map<symbol, { created: Promise<WorkspaceInfo | null> }>();

  constructor(options: PyroOptions = {}) {
    this.home = options.home !== undefined ? hostPath(options.home, "home") : resolvePyroHome();
    this.projectSourceOptions = options.projectSource ? checkProjectSourceOptions(options.projectSource) : null;
    this.environments = new EnvironmentStore(this.home);
    this.manager = new WorkspaceManager(this.home, new BackendSet(this.home), this.environments);
    this.content = new WorkspaceContent(this.manager);
    this.services = new WorkspaceServices(this.manager);
    this.shells = new WorkspaceShells(this.manager);
    this.manager.serviceCounts = (id, running) => this.services.counts(id, running);
  }

  // ---------- host and environments ----------

  /** Host checks; with `environment`, also whether the daily loop for it is warm, cold or stale. */
  doctor(options: { environment?: string } = {}): Promise<DoctorReport> {
    return runDoctor(this.home, this.environments, options);
  }

  /**
   * Warms everything the first workspace needs: builds the environment if missing and proves the
   * create → exec → reset → exec → delete cycle once. Fast when already warm (unless `force`).
   */
  async prepare(environment = "debian:12", options: { force?: boolean; onProgress?: (line: string) => void } = {}) {
    // The cycle is proven on the backend new workspaces get by default ($PYRO_BACKEND).
    const backend = await resolveBackendRequest(backendRequest(undefined), this.home);
    return prepareEnvironment(this.home, this.environments, this.manager, environment, { ...options, backend });
  }

  async listEnvironments(): Promise<EnvironmentListEntry[]> {
    return (await this.environments.list()).map(publicSummary);
  }

  async pullEnvironment(environment: string, options: { mirror?: string; force?: boolean; onProgress?: (e: PullProgress) => void } = {}): Promise<EnvironmentDetails> {
    return publicManifest(await this.environments.pull(environment, options));
  }

  async inspectEnvironment(environment: string): Promise<EnvironmentDetails> {
    return publicManifest(await this.environments.inspect(environment));
  }

  async importEnvironment(environment: string, sourcePath: string): Promise<EnvironmentDetails> {
    return publicManifest(await this.environments.import(environment, hostPath(sourcePath, "sourcePath")));
  }

  /** Removes cached environments that no workspace uses. */
  async pruneEnvironments(): Promise<{ removed: string[]; freed_bytes: number }> {
    await this.manager.store.init();
    // Under the registry lock: no create can pin an environment's layers while we decide.
    return this.manager.store.withLock("registry", async () => {
      const records = await this.manager.store.readAll();
      const inUse = new Set(records.map((r) => r.environment));
      const { removed, freedBytes } = await this.environments.prune(inUse);
      // VM root images follow: kept for every workspace's pinned layers and every environment left.
      const installed = (await this.environments.list()).filter((e) => e.installed);
      const layerSets = [...records.map((r) => r.layers), ...(await Promise.all(installed.map((e) => this.environments.layers(e.name))))];
      return { removed, freed_bytes: freedBytes + (await pruneBackendImages(this.home, layerSets)) };
    });
  }

  // ---------- one-shot ----------

  /** Creates a workspace, runs one command, and deletes the workspace whatever happens. */
  async runInVm(options: RunInVmOptions): Promise<RunResult> {
    const raw = await this.runInVmRaw(options);
    return { ...raw.result, environment: raw.environment, cleaned_up: true };
  }

  /** Raw variant used by the CLI: output as bytes, exactly as written (head and tail kept). */
  async runInVmRaw(options: RunInVmOptions): Promise<RawExecResult & { environment: string }> {
    // Refuse bad exec options before a sandbox is made for nothing.
    this.manager.prepareExec(toExecOptions(options));
    networkFromOptions(options);
    const request = backendRequest(options.backend);
    const key = Symbol("run");
    const created = resolveBackendRequest(request, this.home).then((backend) => this.manager.create({
      environment: options.environment,
      backend,
      ephemeral: true,
      ...(options.vcpuCount !== undefined ? { vcpuCount: options.vcpuCount } : {}),
      ...(options.memMib !== undefined ? { memMib: options.memMib } : {}),
      ...(options.ttlSeconds !== undefined ? { ttlSeconds: options.ttlSeconds } : {}),
      ...(options.networkPolicy !== undefined ? { networkPolicy: options.networkPolicy } : {}),
      ...(options.allowHosts !== undefined ? { allowHosts: options.allowHosts } : {}),
      ...(options.allowCidrs !== undefined ? { allowCidrs: options.allowCidrs } : {}),
      ...(options.allowHostLoopback !== undefined ? { allowHostLoopback: options.allowHostLoopback } : {}),
    }));
    this.runs.set(key, { created: created.catch(() => null) });
    let info: WorkspaceInfo | undefined;
    try {
      info = await created;
      const raw = await this.manager.execRaw(info.workspace_id, toExecOptions(options));
      return { ...raw, environment: options.environment };
    } finally {
      if (info) await this.manager.delete(info.workspace_id);
      this.runs.delete(key);
    }
  }

  /** Deletes the workspaces of one-shot runs still in flight (used on SIGINT/SIGTERM). */
  async abortRuns(): Promise<void> {
    const pending = [...this.runs.values()];
    this.runs.clear();
    await Promise.all(
      pending.map(async ({ created }) => {
        const info = await created;
        if (info) await this.manager.delete(info.workspace_id).catch(() => undefined);
      }),
    );
  }

  // ---------- workspaces ----------

  async createWorkspace(options: CreateWorkspaceInput): Promise<WorkspaceInfo> {
    if (options === null || typeof options !== "object") throw new PyroError("invalid_argument", "createWorkspace needs an options object");
    // Host paths first: an empty seedPath would otherwise seed the current directory.
    options = withHostPaths(options);
    // Checked before anything is made; `auto` is decided once, just before the create.
    const request = backendRequest(options.backend);
    const source = options.seedPath === undefined ? await this.projectSource() : null;
    if (!source) return this.manager.create({ ...options, backend: await resolveBackendRequest(request, this.home), ephemeral: false });
    let material;
    try {
      material = await materializeProjectSource(source);
    } catch (err) {
      const e = err instanceof PyroError ? err : new PyroError("seed_path_invalid", String(err));
      throw new PyroError(e.code, `cannot seed from ${describeProjectSource(source)}: ${e.message}`, {
        hint: "Start the server with --project-path DIR or --repo-url URL, turn seeding off with --no-project-source, or pass seed_path.",
      });
    }
    try {
      return await this.manager.create({
        ...options,
        backend: await resolveBackendRequest(request, this.home),
        seedPath: material.archive,
        origin: { kind: material.origin_kind, ref: material.origin_ref, path: source.path ?? source.repo_url },
        ephemeral: false,
      });
    } finally {
      await material.cleanup();
    }
  }

  /** The project source new workspaces are seeded from, or null (resolved once, on first use). */
  projectSource(): Promise<ProjectSource | null> {
    if (!this.projectSourceOptions) return Promise.resolve(null);
    this.resolvedSource ??= resolveProjectSource(this.projectSourceOptions);
    return this.resolvedSource;
  }

  listWorkspaces(): Promise<{ count: number; workspaces: WorkspaceInfo[]; reaped: string[] }> {
    return this.manager.list();
  }

  statusWorkspace(workspace: string): Promise<WorkspaceInfo> {
    return this.manager.status(workspace);
  }

  updateWorkspace(workspace: string, options: UpdateWorkspaceOptions): Promise<WorkspaceInfo> {
    return this.manager.update(workspace, options);
  }

  execWorkspace(workspace: string, options: ExecWorkspaceOptions): Promise<ExecResult> {
    return this.manager.exec(workspace, toExecOptions(options));
  }

  execWorkspaceRaw(workspace: string, options: ExecWorkspaceOptions): Promise<RawExecResult> {
    return this.manager.execRaw(workspace, toExecOptions(options));
  }

  logsWorkspace(workspace: string, options: { limit?: number } = {}): Promise<{ workspace_id: string; count: number; total: number; commands: CommandRecord[] }> {
    return this.manager.logs(workspace, options.limit);
  }

  stopWorkspace(workspace: string): Promise<WorkspaceInfo> {
    return this.manager.stop(workspace);
  }

  startWorkspace(workspace: string): Promise<WorkspaceInfo> {
    return this.manager.start(workspace);
  }

  deleteWorkspace(workspace: string): Promise<{ workspace_id: string; deleted: true }> {
    return this.manager.delete(workspace);
  }

  // ---------- workspace content ----------

  /** Copies a host directory or .tar/.tar.gz/.tgz into /workspace (or `dest` under it) of a running workspace. */
  async pushWorkspaceSync(workspace: string, source: string, options: { dest?: string } = {}) {
    return this.content.syncPush(workspace, hostPath(source, "source"), options);
  }

  /** Lists a directory (or one file) under /workspace: type, size, mode, mtime, symlink target; bounded. */
  listWorkspaceFiles(workspace: string, options: { path?: string; recursive?: boolean; maxEntries?: number } = {}) {
    return this.content.fileList(workspace, options);
  }

  /** Reads a text file, at most `maxBytes` (default 65536) from `offset`; binary files are reported, not returned. */
  readWorkspaceFile(workspace: string, path: string, options: { maxBytes?: number; offset?: number } = {}) {
    return this.content.fileRead(workspace, path, options);
  }

  /** Creates or replaces a file atomically, creating parent directories. */
  writeWorkspaceFile(workspace: string, path: string, options: { text: string; mode?: string | number }) {
    if (!options || typeof options.text !== "string") throw new PyroError("invalid_argument", "writeWorkspaceFile needs { text }");
    return this.content.fileWrite(workspace, path, options.text, options.mode !== undefined ? { mode: options.mode } : {});
  }

  /** Applies a unified diff to files under /workspace, all or nothing. */
  applyWorkspacePatch(workspace: string, options: { patch: string }) {
    if (!options || typeof options.patch !== "string") throw new PyroError("invalid_argument", "applyWorkspacePatch needs { patch }");
    return this.content.patchApply(workspace, options.patch);
  }

  /** Copies a file or directory from /workspace to the host; never replaces an existing output unless `force`. */
  async exportWorkspace(workspace: string, path: string, options: { outputPath: string; force?: boolean }) {
    if (!options || typeof options !== "object") throw new PyroError("invalid_argument", "exportWorkspace needs { outputPath }");
    return this.content.export(workspace, path, hostPath(options.outputPath, "outputPath"), options.force !== undefined ? { force: options.force } : {});
  }

  /** Compares /workspace with its create-time baseline (or a named snapshot): structured changes and a bounded patch. */
  diffWorkspace(workspace: string, options: { path?: string; maxBytes?: number; snapshot?: string } = {}) {
    return this.content.diff(workspace, options);
  }

  createSnapshot(workspace: string, snapshotName: string) {
    return this.content.snapshotCreate(workspace, snapshotName);
  }

  listSnapshots(workspace: string) {
    return this.content.snapshotList(workspace);
  }

  deleteSnapshot(workspace: string, snapshotName: string) {
    return this.content.snapshotDelete(workspace, snapshotName);
  }

  /** Recreates the sandbox from its environment plus `baseline` (default) or a named snapshot. */
  resetWorkspace(workspace: string, options: { snapshot?: string } = {}) {
    return this.manager.reset(workspace, options);
  }

  /**
   * One review view since the last reset (or creation): commands and outcomes, files changed
   * with line counts, edits, exports, snapshots, services and shell activity; every list capped.
   */
  summarizeWorkspace(workspace: string): Promise<WorkspaceSummary> {
    return summarizeWorkspace(
      {
        manager: this.manager,
        diff: (id, options) => this.content.diff(id, options),
        services: (id) => this.services.list(id),
        shells: (id) => this.shells.list(id),
      },
      workspace,
    );
  }

  /** Stopped workspaces only: lists files without starting the workspace. */
  listWorkspaceDisk(workspace: string, options: { path?: string; recursive?: boolean; maxEntries?: number } = {}) {
    return this.content.diskList(workspace, options);
  }

  /** Stopped workspaces only: reads a file without starting the workspace. */
  readWorkspaceDisk(workspace: string, path: string, options: { maxBytes?: number; offset?: number } = {}) {
    return this.content.diskRead(workspace, path, options);
  }

  /** Stopped workspaces only: writes /workspace as a .tar archive on the host. */
  async exportWorkspaceDisk(workspace: string, options: { outputPath: string; force?: boolean }) {
    if (!options || typeof options !== "object") throw new PyroError("invalid_argument", "exportWorkspaceDisk needs { outputPath }");
    return this.content.diskExport(workspace, hostPath(options.outputPath, "outputPath"), options.force !== undefined ? { force: options.force } : {});
  }

  // ---------- services ----------

  /** Starts a named service and returns when it is ready, has exited, or its readiness timed out. */
  startService(workspace: string, serviceName: string, options: StartServiceOptions) {
    if (!options || options.command === undefined) throw new PyroError("invalid_argument", "startService needs { command }");
    return this.services.start(workspace, serviceName, options);
  }

  listServices(workspace: string) {
    return this.services.list(workspace);
  }

  statusService(workspace: string, serviceName: string) {
    return this.services.status(workspace, serviceName);
  }

  /** A service's stdout and stderr: the last `tailLines` lines (default 50), or `all` retained output. */
  logsService(workspace: string, serviceName: string, options: { tailLines?: number; all?: boolean } = {}) {
    return this.services.logs(workspace, serviceName, options);
  }

  /** Stops a service's whole process tree: SIGTERM, a grace period (default 5 s), SIGKILL. */
  stopService(workspace: string, serviceName: string, options: { graceSeconds?: number } = {}) {
    return this.services.stop(workspace, serviceName, options);
  }

  // ---------- network ----------

  /** The workspace's network policy, allow-lists, published ports, and what is applied to its sandbox now. */
  showWorkspaceNetwork(workspace: string): Promise<NetworkShowResult> {
    return this.manager.networkShow(workspace);
  }

  /**
   * Changes the network live, without restarting the sandbox: `networkPolicy`, hosts and CIDRs
   * added to the allow-list (`clearAllowList` first empties it), `allowHostLoopback` on or off.
   */
  setWorkspaceNetwork(workspace: string, change: NetworkChange): Promise<NetworkShowResult> {
    if (change === null || typeof change !== "object") throw new PyroError("invalid_argument", "setWorkspaceNetwork needs an options object");
    return this.manager.networkSet(workspace, change);
  }

  // ---------- shells ----------

  /** Opens an interactive shell on a real PTY inside the workspace. */
  openShell(workspace: string, options: { cwd?: string; cols?: number; rows?: number; env?: Record<string, string>; secretEnv?: string[] | Record<string, string> } = {}) {
    return this.shells.open(workspace, options);
  }

  /** Reads a shell's output from `cursor`; `plain` renders it as the lines a person would see. */
  readShell(workspace: string, shellId: string, options: ShellReadOptions = {}) {
    return this.shells.read(workspace, shellId, options);
  }

  /** Types input into a shell; a newline is appended unless `appendNewline: false`. */
  writeShell(workspace: string, shellId: string, options: { input: string; appendNewline?: boolean }) {
    if (!options || typeof options.input !== "string") throw new PyroError("invalid_argument", "writeShell needs { input }");
    return this.shells.write(workspace, shellId, options.input, options.appendNewline !== undefined ? { appendNewline: options.appendNewline } : {});
  }

  /** Sends HUP, INT (Ctrl-C), TERM or KILL to the shell's foreground process group. */
  signalShell(workspace: string, shellId: string, options: { signalName?: string } = {}) {
    return this.shells.signal(workspace, shellId, options.signalName ?? "INT");
  }

  resizeShell(workspace: string, shellId: string, options: { cols: number; rows: number }) {
    return this.shells.resize(workspace, shellId, options.cols, options.rows);
  }

  closeShell(workspace: string, shellId: string) {
    return this.shells.close(workspace, shellId);
  }

  listShells(workspace: string) {
    return this.shells.list(workspace);
  }

  /** Deletes workspaces past their TTL (never one with a call in flight). */
  reapExpired(): Promise<{ reaped: string[] }> {
    return this.manager.reapExpired();
  }

  /** A handle bound to one workspace (by id or name). */
  workspace(ref: string): Workspace {
    return new Workspace(this, ref);
  }



  /** Closes cached agent connections; the workspaces keep running. */
  close(): void {
    this.manager.close();
  }
}
