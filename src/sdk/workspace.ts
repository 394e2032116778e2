/**
 * `Workspace`: a convenience handle bound to one workspace, so SDK users write
 * `ws.exec("make test")` instead of threading an id through every call. Every method is the
 * matching `Pyro` method; nothing here has behaviour of its own.
 */
import type { Pyro, ExecWorkspaceOptions } from "./pyro.js";
import type { UpdateWorkspaceOptions } from "../core/manager.js";
import type { NetworkChange } from "../core/network.js";

export class Workspace {
  constructor(
    private readonly pyro: Pyro,
    /** Workspace id or name. */
    readonly ref: string,
  ) {}

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

  readFile(path: string, options: { maxBytes?: number; offset?: number } = {}) {
    return this.pyro.readWorkspaceFile(this.ref, path, options);
  }

  writeFile(path: string, text: string, options: { mode?: string | number } = {}) {
    return this.pyro.writeWorkspaceFile(this.ref, path, { text, ...options });
  }

  listFiles(options: { path?: string; recursive?: boolean } = {}) {
    return this.pyro.listWorkspaceFiles(this.ref, options);
  }

  applyPatch(patch: string) {
    return this.pyro.applyWorkspacePatch(this.ref, { patch });
  }

  diff(options: { path?: string; maxBytes?: number; snapshot?: string } = {}) {
    return this.pyro.diffWorkspace(this.ref, options);
  }

  export(path: string, outputPath: string, options: { force?: boolean } = {}) {
    return this.pyro.exportWorkspace(this.ref, path, { outputPath, ...options });
  }

  snapshot(name: string) {
    return this.pyro.createSnapshot(this.ref, name);
  }

  reset(options: { snapshot?: string } = {}) {
    return this.pyro.resetWorkspace(this.ref, options);
  }

  network() {
    return this.pyro.showWorkspaceNetwork(this.ref);
  }

  /** Changes the network live (see `Pyro.setWorkspaceNetwork`). */
  setNetwork(change: NetworkChange) {
    return this.pyro.setWorkspaceNetwork(this.ref, change);
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
}
