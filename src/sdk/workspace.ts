/**
 * `Workspace`: a convenience handle bound to one workspace, so SDK users write
 * `ws.exec("make test")` instead of threading an id through every call. Every method is the
 * matching `Pyro` method with the workspace filled in; nothing here has behaviour of its own.
 * Written against `WorkspaceOperations` (sdk/operations.ts), not the `Pyro` class.
 */
import type { ForkWorkspaceOptions, UpdateWorkspaceOptions } from "../core/manager.js";
import type { NetworkChange, NetworkShowResult } from "../core/network.js";
import type { StartServiceOptions } from "../core/services.js";
import type { ShellReadOptions } from "../core/shells.js";
import type { WorkspaceOperations } from "./operations.js";
import type { DiffOptions, ExecWorkspaceOptions, ListFilesOptions, OpenShellOptions, ReadFileOptions } from "./options.js";

/**
 * A handle on one workspace (by id or name, resolved at each call).
 *
 * Lifecycle and exec are flat: `status`, `update`, `exec`, `logs`, `reset`, `summary`, `stop`,
 * `start`, `delete`, `fork`. Each capability also has a namespace:
 *
 * - `ws.files` — `list`, `read`, `write`, `patch`, `diff`, `export`, `push` (a host tree or archive
 *   into /workspace) on a running workspace;
 * - `ws.disk` — `list`, `read`, `export` on a stopped workspace, without starting it;
 * - `ws.snapshots` — `create`, `list`, `delete`;
 * - `ws.services` — `start`, `list`, `status`, `logs`, `stop`;
 * - `ws.shells` — `open`, `read`, `write`, `signal`, `resize`, `close`, `list`;
 * - `ws.network` — callable (`ws.network()` shows the network, as before), with `show` and
 *   `set` (changes it live).
 *
 * The older flat methods (`readFile`, `writeFile`, `listFiles`, `applyPatch`, `diff`, `export`,
 * `snapshot`, `setNetwork`) stay and do exactly what their namespaced twins do.
 */
export class Workspace {
  /** Files under /workspace of the running workspace. */
  readonly files: WorkspaceFiles;
  /** The stopped workspace's /workspace, read without starting it. */
  readonly disk: WorkspaceDisk;
  readonly snapshots: WorkspaceSnapshots;
  readonly services: WorkspaceServiceHandle;
  readonly shells: WorkspaceShellHandle;
  /** `ws.network()` (or `ws.network.show()`) shows the network; `ws.network.set(change)` changes it live. */
  readonly network: WorkspaceNetworkHandle;

  constructor(
    private readonly pyro: WorkspaceOperations,
    /** Workspace id or name. */
    readonly ref: string,
  ) {
    this.files = new WorkspaceFiles(pyro, ref);
    this.disk = new WorkspaceDisk(pyro, ref);
    this.snapshots = new WorkspaceSnapshots(pyro, ref);
    this.services = new WorkspaceServiceHandle(pyro, ref);
    this.shells = new WorkspaceShellHandle(pyro, ref);
    const show = () => pyro.showWorkspaceNetwork(ref);
    this.network = Object.assign(show, { show, set: (change: NetworkChange) => pyro.setWorkspaceNetwork(ref, change) });
  }

  status() {
    return this.pyro.statusWorkspace(this.ref);
  }

  /** A string runs through `/bin/sh -c`; an array runs as argv. */
  exec(command: string | string[], options: Omit<ExecWorkspaceOptions, "command"> = {}) {
    return this.pyro.execWorkspace(this.ref, { ...options, command });
  }

  logs(options: { limit?: number } = {}) {
    return this.pyro.logsWorkspace(this.ref, options);
  }

  update(options: UpdateWorkspaceOptions) {
    return this.pyro.updateWorkspace(this.ref, options);
  }

  /** The review view since the last reset (see `Pyro.summarizeWorkspace`). */
  summary() {
    return this.pyro.summarizeWorkspace(this.ref);
  }

  readFile(path: string, options: ReadFileOptions = {}) {
    return this.files.read(path, options);
  }

  writeFile(path: string, text: string, options: { mode?: string | number } = {}) {
    return this.files.write(path, text, options);
  }

  listFiles(options: ListFilesOptions = {}) {
    return this.files.list(options);
  }

  applyPatch(patch: string) {
    return this.files.patch(patch);
  }

  diff(options: DiffOptions = {}) {
    return this.files.diff(options);
  }

  export(path: string, outputPath: string, options: { force?: boolean } = {}) {
    return this.files.export(path, outputPath, options);
  }

  snapshot(name: string) {
    return this.snapshots.create(name);
  }

  reset(options: { snapshot?: string } = {}) {
    return this.pyro.resetWorkspace(this.ref, options);
  }

  /** Changes the network live (see `Pyro.setWorkspaceNetwork`). */
  setNetwork(change: NetworkChange) {
    return this.network.set(change);
  }

  stop() {
    return this.pyro.stopWorkspace(this.ref);
  }

  start() {
    return this.pyro.startWorkspace(this.ref);
  }

  delete() {
    return this.pyro.deleteWorkspace(this.ref);
  }

  /** A new, independent copy of this workspace (see `Pyro.forkWorkspace`); returns the fork's status. */
  fork(options: ForkWorkspaceOptions = {}) {
    return this.pyro.forkWorkspace(this.ref, options);
  }
}

/** `ws.network`: call it to show the network; `show` and `set` by name. */
export interface WorkspaceNetworkHandle {
  (): Promise<NetworkShowResult>;
  show(): Promise<NetworkShowResult>;
  /** Policy, allow-lists and host loopback, applied to a running sandbox at once. */
  set(change: NetworkChange): Promise<NetworkShowResult>;
}

/** `ws.files`: /workspace of a running workspace. */
export class WorkspaceFiles {
  constructor(private readonly pyro: WorkspaceOperations, private readonly ref: string) {}

  list(options: ListFilesOptions = {}) {
    return this.pyro.listWorkspaceFiles(this.ref, options);
  }

  read(path: string, options: ReadFileOptions = {}) {
    return this.pyro.readWorkspaceFile(this.ref, path, options);
  }

  write(path: string, text: string, options: { mode?: string | number } = {}) {
    return this.pyro.writeWorkspaceFile(this.ref, path, { text, ...options });
  }

  /** Applies a unified diff, all or nothing. */
  patch(patch: string) {
    return this.pyro.applyWorkspacePatch(this.ref, { patch });
  }

  diff(options: DiffOptions = {}) {
    return this.pyro.diffWorkspace(this.ref, options);
  }

  /** Copies a file or directory from /workspace to `outputPath` on the host. */
  export(path: string, outputPath: string, options: { force?: boolean } = {}) {
    return this.pyro.exportWorkspace(this.ref, path, { outputPath, ...options });
  }

  /** Copies a host directory or .tar/.tar.gz/.tgz into /workspace (or `dest` under it). */
  push(source: string, options: { dest?: string } = {}) {
    return this.pyro.pushWorkspaceSync(this.ref, source, options);
  }
}

/** `ws.disk`: a stopped workspace's /workspace, without starting it. */
export class WorkspaceDisk {
  constructor(private readonly pyro: WorkspaceOperations, private readonly ref: string) {}

  list(options: ListFilesOptions = {}) {
    return this.pyro.listWorkspaceDisk(this.ref, options);
  }

  read(path: string, options: ReadFileOptions = {}) {
    return this.pyro.readWorkspaceDisk(this.ref, path, options);
  }

  /** Writes /workspace as a .tar archive at `outputPath` on the host. */
  export(outputPath: string, options: { force?: boolean } = {}) {
    return this.pyro.exportWorkspaceDisk(this.ref, { outputPath, ...options });
  }
}

/** `ws.snapshots`: named checkpoints of /workspace (diff against them, reset to them). */
export class WorkspaceSnapshots {
  constructor(private readonly pyro: WorkspaceOperations, private readonly ref: string) {}

  create(name: string) {
    return this.pyro.createSnapshot(this.ref, name);
  }

  list() {
    return this.pyro.listSnapshots(this.ref);
  }

  delete(name: string) {
    return this.pyro.deleteSnapshot(this.ref, name);
  }
}

/** `ws.services`: named long-running processes with readiness checks. */
export class WorkspaceServiceHandle {
  constructor(private readonly pyro: WorkspaceOperations, private readonly ref: string) {}

  start(name: string, options: StartServiceOptions) {
    return this.pyro.startService(this.ref, name, options);
  }

  list() {
    return this.pyro.listServices(this.ref);
  }

  status(name: string) {
    return this.pyro.statusService(this.ref, name);
  }

  logs(name: string, options: { tailLines?: number; all?: boolean } = {}) {
    return this.pyro.logsService(this.ref, name, options);
  }

  stop(name: string, options: { graceSeconds?: number } = {}) {
    return this.pyro.stopService(this.ref, name, options);
  }
}

/** `ws.shells`: interactive PTY shells. */
export class WorkspaceShellHandle {
  constructor(private readonly pyro: WorkspaceOperations, private readonly ref: string) {}

  open(options: OpenShellOptions = {}) {
    return this.pyro.openShell(this.ref, options);
  }

  read(shellId: string, options: ShellReadOptions = {}) {
    return this.pyro.readShell(this.ref, shellId, options);
  }

  /** Types input; a newline is appended unless `appendNewline: false`. */
  write(shellId: string, input: string, options: { appendNewline?: boolean } = {}) {
    return this.pyro.writeShell(this.ref, shellId, { input, ...options });
  }

  signal(shellId: string, signalName = "INT") {
    return this.pyro.signalShell(this.ref, shellId, { signalName });
  }

  resize(shellId: string, cols: number, rows: number) {
    return this.pyro.resizeShell(this.ref, shellId, { cols, rows });
  }

  close(shellId: string) {
    return this.pyro.closeShell(this.ref, shellId);
  }

  list() {
    return this.pyro.listShells(this.ref);
  }
}
