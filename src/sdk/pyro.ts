/**
 * `Pyro`: the one public API. The CLI and the MCP server are thin layers over this class.
 * Method names mirror the reference system in camelCase; results are the same snake_case
 * JSON objects that `--json` prints and MCP returns as structured content. A thin facade: each
 * method checks its arguments (host paths made absolute, required options present) and
 * forwards to the core composition root (core/workspaces.ts); nothing here decides behaviour.
 */
import { resolvePyroHome } from "../shared/home.js";
import { PyroError } from "../shared/errors.js";
import { hostPath } from "../shared/host-path.js";
import { publicManifest, publicSummary } from "../environments/index.js";
import type { EnvironmentDetails, EnvironmentListEntry, PullProgress } from "../environments/index.js";
import type { ForkWorkspaceOptions, UpdateWorkspaceOptions } from "../core/manager.js";
import type { CommandRecord, ExecResult, WorkspaceInfo } from "../core/types.js";
import type { DoctorReport } from "../core/doctor.js";
import type { ProjectSource } from "../core/project-source.js";
import type { StartServiceOptions } from "../core/services.js";
import type { ShellReadOptions } from "../core/shells.js";
import type { NetworkChange, NetworkShowResult } from "../core/network.js";
import type { WorkspaceSummary } from "../core/summary.js";
import { Workspaces } from "../core/workspaces.js";
import { Workspace } from "./workspace.js";
import type { WorkspaceOperations } from "./operations.js";
import { bindCore } from "./core-binding.js";
import { checkProjectSourceOptions, toExecOptions, toOneShotOptions, withHostPaths } from "./options.js";
import type { CreateWorkspaceInput, DiffOptions, ExecWorkspaceOptions, ListFilesOptions, OpenShellOptions, PyroOptions, ReadFileOptions, RunInVmOptions, RunResult } from "./options.js";

export type { PyroOptions, ExecWorkspaceOptions, RunInVmOptions, RunResult, CreateWorkspaceInput, BackendOption } from "./options.js";

export class Pyro implements WorkspaceOperations {
  /** The state directory this instance works in. */
  readonly home: string;
  readonly #core: Workspaces;

  constructor(options: PyroOptions = {}) {
    this.home = options.home !== undefined ? hostPath(options.home, "home") : resolvePyroHome();
    const projectSource = options.projectSource ? checkProjectSourceOptions(options.projectSource) : undefined;
    this.#core = new Workspaces(this.home, projectSource ? { projectSource } : {});
    bindCore(this, this.#core);
  }

  // ---------- host and environments ----------

  /** Host checks; with `environment`, also whether the daily loop for it is warm, cold or stale. */
  doctor(options: { environment?: string } = {}): Promise<DoctorReport> {
    return this.#core.doctor(options);
  }

  /**
   * Warms everything the first workspace needs: builds the environment if missing and proves the
   * create → exec → reset → exec → delete cycle once. Fast when already warm (unless `force`).
   * The cycle is proven on the backend new workspaces get by default (`$PYRO_BACKEND`).
   */
  prepare(environment = "debian:12", options: { force?: boolean; onProgress?: (line: string) => void } = {}) {
    return this.#core.prepare(environment, options);
  }

  async listEnvironments(): Promise<EnvironmentListEntry[]> {
    return (await this.#core.environments.list()).map(publicSummary);
  }

  /** Builds a catalog environment, or pulls and installs an image by reference; aborting `signal` stops it and installs nothing. */
  async pullEnvironment(environment: string, options: { mirror?: string; force?: boolean; onProgress?: (e: PullProgress) => void; signal?: AbortSignal } = {}): Promise<EnvironmentDetails> {
    return publicManifest(await this.#core.environments.pull(environment, options));
  }

  async inspectEnvironment(environment: string): Promise<EnvironmentDetails> {
    return publicManifest(await this.#core.environments.inspect(environment));
  }

  /** Installs a root filesystem (directory or tarball) under a name; under an image reference, an image from a docker save tarball or OCI layout. */
  async importEnvironment(environment: string, sourcePath: string): Promise<EnvironmentDetails> {
    return publicManifest(await this.#core.environments.import(environment, hostPath(sourcePath, "sourcePath")));
  }

  /** Removes cached environments that no workspace uses. */
  pruneEnvironments(): Promise<{ removed: string[]; freed_bytes: number }> {
    return this.#core.pruneEnvironments();
  }

  // ---------- one-shot ----------

  /** Creates a workspace, runs one command, and deletes the workspace whatever happens. */
  async runInVm(options: RunInVmOptions): Promise<RunResult> {
    const raw = await this.#core.runs.run(toOneShotOptions(options));
    return { ...raw.result, environment: raw.environment, cleaned_up: true };
  }

  // ---------- workspaces ----------

  async createWorkspace(options: CreateWorkspaceInput): Promise<WorkspaceInfo> {
    if (options === null || typeof options !== "object") throw new PyroError("invalid_argument", "createWorkspace needs an options object");
    // Host paths first: an empty seedPath would otherwise seed the current directory.
    return this.#core.create(withHostPaths(options));
  }

  /** The project source new workspaces are seeded from, or null (resolved once, on first use). */
  projectSource(): Promise<ProjectSource | null> {
    return this.#core.projectSource();
  }

  /** Workspaces, most recent activity first; `labels` keeps only those carrying every one of them. */
  listWorkspaces(options: { labels?: Record<string, string> } = {}): Promise<{ count: number; workspaces: WorkspaceInfo[]; reaped: string[] }> {
    return this.#core.list(options ?? {});
  }

  statusWorkspace(workspace: string): Promise<WorkspaceInfo> {
    return this.#core.status(workspace);
  }

  updateWorkspace(workspace: string, options: UpdateWorkspaceOptions): Promise<WorkspaceInfo> {
    return this.#core.manager.update(workspace, options);
  }

  execWorkspace(workspace: string, options: ExecWorkspaceOptions): Promise<ExecResult> {
    return this.#core.exec.exec(workspace, toExecOptions(options));
  }

  logsWorkspace(workspace: string, options: { limit?: number } = {}): Promise<{ workspace_id: string; count: number; total: number; commands: CommandRecord[] }> {
    return this.#core.exec.logs(workspace, options.limit);
  }

  stopWorkspace(workspace: string): Promise<WorkspaceInfo> {
    return this.#core.manager.stop(workspace);
  }

  startWorkspace(workspace: string): Promise<WorkspaceInfo> {
    return this.#core.manager.start(workspace);
  }

  deleteWorkspace(workspace: string): Promise<{ workspace_id: string; deleted: true }> {
    return this.#core.manager.delete(workspace);
  }

  /**
   * A new, independent workspace with the source's /workspace, installed packages, snapshots
   * (baseline included), environment, backend, limits, network policy, secrets and labels (plus
   * `labels`), started; processes, services, shells, history and published ports are not copied.
   * Without `name`, a named source's fork is `<name>-fork-N`. A running VM workspace is refused
   * (`workspace_busy`): stop it first.
   */
  forkWorkspace(workspace: string, options: ForkWorkspaceOptions = {}): Promise<WorkspaceInfo> {
    if (options === null || typeof options !== "object") throw new PyroError("invalid_argument", "forkWorkspace options must be an object");
    return this.#core.manager.fork(workspace, options);
  }

  // ---------- workspace content ----------

  /** Copies a host directory or .tar/.tar.gz/.tgz into /workspace (or `dest` under it) of a running workspace. */
  async pushWorkspaceSync(workspace: string, source: string, options: { dest?: string } = {}) {
    return this.#core.content.syncPush(workspace, hostPath(source, "source"), options);
  }

  /** Lists a directory (or one file) under /workspace: type, size, mode, mtime, symlink target; bounded. */
  listWorkspaceFiles(workspace: string, options: ListFilesOptions = {}) {
    return this.#core.content.fileList(workspace, options);
  }

  /** Reads a text file, at most `maxBytes` (default 65536) from `offset`; binary files are reported, not returned. */
  readWorkspaceFile(workspace: string, path: string, options: ReadFileOptions = {}) {
    return this.#core.content.fileRead(workspace, path, options);
  }

  /** Creates or replaces a file atomically, creating parent directories. */
  writeWorkspaceFile(workspace: string, path: string, options: { text: string; mode?: string | number }) {
    if (!options || typeof options.text !== "string") throw new PyroError("invalid_argument", "writeWorkspaceFile needs { text }");
    return this.#core.content.fileWrite(workspace, path, options.text, options.mode !== undefined ? { mode: options.mode } : {});
  }

  /** Applies a unified diff to files under /workspace, all or nothing. */
  applyWorkspacePatch(workspace: string, options: { patch: string }) {
    if (!options || typeof options.patch !== "string") throw new PyroError("invalid_argument", "applyWorkspacePatch needs { patch }");
    return this.#core.content.patchApply(workspace, options.patch);
  }

  /** Copies a file or directory from /workspace to the host; never replaces an existing output unless `force`. */
  async exportWorkspace(workspace: string, path: string, options: { outputPath: string; force?: boolean }) {
    if (!options || typeof options !== "object") throw new PyroError("invalid_argument", "exportWorkspace needs { outputPath }");
    return this.#core.content.export(workspace, path, hostPath(options.outputPath, "outputPath"), options.force !== undefined ? { force: options.force } : {});
  }

  /** Compares /workspace with its create-time baseline (or a named snapshot): structured changes and a bounded patch. */
  diffWorkspace(workspace: string, options: DiffOptions = {}) {
    return this.#core.content.diff(workspace, options);
  }

  createSnapshot(workspace: string, snapshotName: string) {
    return this.#core.content.snapshotCreate(workspace, snapshotName);
  }

  listSnapshots(workspace: string) {
    return this.#core.content.snapshotList(workspace);
  }

  deleteSnapshot(workspace: string, snapshotName: string) {
    return this.#core.content.snapshotDelete(workspace, snapshotName);
  }

  /** Recreates the sandbox from its environment plus `baseline` (default) or a named snapshot. */
  resetWorkspace(workspace: string, options: { snapshot?: string } = {}) {
    return this.#core.manager.reset(workspace, options);
  }

  /**
   * One review view since the last reset (or creation): commands and outcomes, files changed
   * with line counts, edits, exports, snapshots, services and shell activity; every list capped.
   */
  summarizeWorkspace(workspace: string): Promise<WorkspaceSummary> {
    return this.#core.summarize(workspace);
  }

  /** Stopped workspaces only: lists files without starting the workspace. */
  listWorkspaceDisk(workspace: string, options: ListFilesOptions = {}) {
    return this.#core.content.diskList(workspace, options);
  }

  /** Stopped workspaces only: reads a file without starting the workspace. */
  readWorkspaceDisk(workspace: string, path: string, options: ReadFileOptions = {}) {
    return this.#core.content.diskRead(workspace, path, options);
  }

  /** Stopped workspaces only: writes /workspace as a .tar archive on the host. */
  async exportWorkspaceDisk(workspace: string, options: { outputPath: string; force?: boolean }) {
    if (!options || typeof options !== "object") throw new PyroError("invalid_argument", "exportWorkspaceDisk needs { outputPath }");
    return this.#core.content.diskExport(workspace, hostPath(options.outputPath, "outputPath"), options.force !== undefined ? { force: options.force } : {});
  }

  // ---------- services ----------

  /** Starts a named service and returns when it is ready, has exited, or its readiness timed out. */
  startService(workspace: string, serviceName: string, options: StartServiceOptions) {
    if (!options || options.command === undefined) throw new PyroError("invalid_argument", "startService needs { command }");
    return this.#core.services.start(workspace, serviceName, options);
  }

  listServices(workspace: string) {
    return this.#core.services.list(workspace);
  }

  statusService(workspace: string, serviceName: string) {
    return this.#core.services.status(workspace, serviceName);
  }

  /** A service's stdout and stderr: the last `tailLines` lines (default 50), or `all` retained output. */
  logsService(workspace: string, serviceName: string, options: { tailLines?: number; all?: boolean } = {}) {
    return this.#core.services.logs(workspace, serviceName, options);
  }

  /** Stops a service's whole process tree: SIGTERM, a grace period (default 5 s), SIGKILL. */
  stopService(workspace: string, serviceName: string, options: { graceSeconds?: number } = {}) {
    return this.#core.services.stop(workspace, serviceName, options);
  }

  // ---------- network ----------

  /** The workspace's network policy, allow-lists, published ports, and what is applied to its sandbox now. */
  showWorkspaceNetwork(workspace: string): Promise<NetworkShowResult> {
    return this.#core.network.show(workspace);
  }

  /**
   * Changes the network live, without restarting the sandbox: `networkPolicy`, hosts and CIDRs
   * added to the allow-list (`clearAllowList` first empties it), `allowHostLoopback` on or off.
   */
  setWorkspaceNetwork(workspace: string, change: NetworkChange): Promise<NetworkShowResult> {
    if (change === null || typeof change !== "object") throw new PyroError("invalid_argument", "setWorkspaceNetwork needs an options object");
    return this.#core.network.set(workspace, change);
  }

  // ---------- shells ----------

  /** Opens an interactive shell on a real PTY inside the workspace. */
  openShell(workspace: string, options: OpenShellOptions = {}) {
    return this.#core.shells.open(workspace, options);
  }

  /** Reads a shell's output from `cursor`; `plain` renders it as the lines a person would see. */
  readShell(workspace: string, shellId: string, options: ShellReadOptions = {}) {
    return this.#core.shells.read(workspace, shellId, options);
  }

  /** Types input into a shell; a newline is appended unless `appendNewline: false`. */
  writeShell(workspace: string, shellId: string, options: { input: string; appendNewline?: boolean }) {
    if (!options || typeof options.input !== "string") throw new PyroError("invalid_argument", "writeShell needs { input }");
    return this.#core.shells.write(workspace, shellId, options.input, options.appendNewline !== undefined ? { appendNewline: options.appendNewline } : {});
  }

  /** Sends HUP, INT (Ctrl-C), TERM or KILL to the shell's foreground process group. */
  signalShell(workspace: string, shellId: string, options: { signalName?: string } = {}) {
    return this.#core.shells.signal(workspace, shellId, options.signalName ?? "INT");
  }

  resizeShell(workspace: string, shellId: string, options: { cols: number; rows: number }) {
    return this.#core.shells.resize(workspace, shellId, options.cols, options.rows);
  }

  closeShell(workspace: string, shellId: string) {
    return this.#core.shells.close(workspace, shellId);
  }

  listShells(workspace: string) {
    return this.#core.shells.list(workspace);
  }

  /** Deletes workspaces past their TTL (never one with a call in flight). */
  reapExpired(): Promise<{ reaped: string[] }> {
    return this.#core.manager.reapExpired();
  }

  /** A handle bound to one workspace (by id or name). */
  workspace(ref: string): Workspace {
    return new Workspace(this, ref);
  }



  /** Closes cached agent connections; the workspaces keep running. */
  close(): void {
    this.#core.close();
  }
}
