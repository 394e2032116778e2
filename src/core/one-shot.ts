/**
 * One-shot runs (`pyro run`, `runInVm`, MCP `vm_run`): create a workspace, run one command in
 * it, delete it whatever happens. Every option is checked before anything is made, so a bad
 * command or network option never costs a sandbox. Runs in flight are remembered until they
 * end, so a caller that is interrupted (SIGINT, SIGTERM) can still delete what they made; a
 * process that dies outright leaves an ephemeral workspace the reaper removes (owner gone).
 */
import type { BackendRequest } from "../runtime/backend.js";
import { backendRequest, resolveBackendRequest } from "../runtime/backends.js";
import { prepareExec } from "./exec.js";
import type { ExecOptions, WorkspaceExec } from "./exec.js";
import type { WorkspaceManager } from "./manager.js";
import { networkFromOptions } from "./network.js";
import type { NetworkOptions } from "./network.js";
import type { RawExecResult, WorkspaceInfo } from "./types.js";

export interface OneShotOptions extends NetworkOptions {
  environment: string;
  /** Checked before anything is made; `auto` is decided once, just before the create. */
  backend?: BackendRequest;
  vcpuCount?: number;
  memMib?: number;
  diskMib?: number;
  ttlSeconds?: number;
  /** The one command. */
  exec: ExecOptions;
}

export class OneShotRuns {
  /** Runs in flight, by a key of their own, so an interrupted caller can still clean them up. */
  private readonly runs = new Map<symbol, { created: Promise<WorkspaceInfo | null> }>();

  constructor(
    private readonly home: string,
    private readonly manager: WorkspaceManager,
    private readonly exec: WorkspaceExec,
  ) {}

  /** Creates a workspace, runs the command, and deletes the workspace whatever happens. */
  async run(options: OneShotOptions): Promise<RawExecResult & { environment: string }> {
    // Refuse bad exec, network and backend options before a sandbox is made for nothing.
    prepareExec(options.exec);
    networkFromOptions(options);
    const request = backendRequest(options.backend);
    const key = Symbol("run");
    // Everything but the command and the backend request is a create option as it stands.
    const { exec: _exec, backend: _request, ...createOptions } = options;
    const created = resolveBackendRequest(request, this.home).then((backend) => this.manager.create({ ...createOptions, backend, ephemeral: true }));
    this.runs.set(key, { created: created.catch(() => null) });
    let info: WorkspaceInfo | undefined;
    try {
      info = await created;
      const raw = await this.exec.execRaw(info.workspace_id, options.exec);
      return { ...raw, environment: options.environment };
    } finally {
      if (info) await this.manager.delete(info.workspace_id);
      this.runs.delete(key);
    }
  }

  /** Deletes the workspaces of runs still in flight (used on SIGINT/SIGTERM). */
  async abort(): Promise<void> {
    const pending = [...this.runs.values()];
    this.runs.clear();
    await Promise.all(
      pending.map(async ({ created }) => {
        const info = await created;
        if (info) await this.manager.delete(info.workspace_id).catch(() => undefined);
      }),
    );
  }
}
