/**
 * The composition root of core: from a state directory it builds the state store, the backend
 * set, the environment store, the manager, the agent link and every capability (exec, network,
 * content, services, shells, one-shot runs), and wires them to each other — nothing above core
 * assembles or patches these parts. It also holds the operations that span capabilities:
 * status and list with live service counts, create with backend and project-source seeding,
 * the summary, doctor, prepare and environment pruning. The SDK's `Pyro` forwards here.
 */
import { validateLabels } from "./validate.js";
import { EnvironmentStore } from "../environments/index.js";
import type { BackendRequest } from "../runtime/backend.js";
import { BackendSet, backendRequest, resolveBackendRequest } from "../runtime/backends.js";
import { AgentConnections, AgentLink } from "./agent-link.js";
import { runDoctor } from "./doctor.js";
import type { DoctorReport } from "./doctor.js";
import { pruneEnvironments } from "./environment-prune.js";
import { SecretBoundary } from "./secrets.js";
import { WorkspaceExec } from "./exec.js";
import { WorkspaceManager } from "./manager.js";
import type { CreateWorkspaceOptions } from "./manager.js";
import { OneShotRuns } from "./one-shot.js";
import { prepareEnvironment } from "./prepare.js";
import { resolveProjectSource, seedFromProject } from "./project-source.js";
import type { ProjectSource, ProjectSourceOptions } from "./project-source.js";
import { WorkspaceServices } from "./services.js";
import { WorkspaceShells } from "./shells.js";
import { StateStore } from "./store.js";
import { summarizeWorkspace } from "./summary.js";
import type { WorkspaceSummary } from "./summary.js";
import type { WorkspaceInfo } from "./types.js";
import { WorkspaceContent } from "./workspace-content.js";
import { WorkspaceNetwork } from "./workspace-network.js";

/** A create as callers ask for it: the backend is a request (`auto` allowed), decided here. */
export interface NewWorkspace extends Omit<CreateWorkspaceOptions, "ephemeral" | "origin" | "backend"> {
  backend?: BackendRequest;
}

export interface WorkspacesOptions {
  /** Seed workspaces created without a seed path from this project (off unless given). */
  projectSource?: ProjectSourceOptions;
  /** The backends; default: the namespace and VM backends, each made on first use. */
  backends?: BackendSet;
  /** The environment store; default: the one under `home`. */
  environments?: EnvironmentStore;
}

export class Workspaces {
  readonly store: StateStore;
  readonly environments: EnvironmentStore;
  readonly backends: BackendSet;
  readonly connections: AgentConnections;
  readonly manager: WorkspaceManager;
  readonly link: AgentLink;
  readonly network: WorkspaceNetwork;
  readonly exec: WorkspaceExec;
  readonly content: WorkspaceContent;
  readonly services: WorkspaceServices;
  readonly shells: WorkspaceShells;
  readonly runs: OneShotRuns;
  private readonly projectSourceOptions: ProjectSourceOptions | null;
  private resolvedSource: Promise<ProjectSource | null> | null = null;

  constructor(
    readonly home: string,
    options: WorkspacesOptions = {},
  ) {
    this.projectSourceOptions = options.projectSource ?? null;
    this.store = new StateStore(home);
    this.environments = options.environments ?? new EnvironmentStore(home);
    this.backends = options.backends ?? new BackendSet(home);
    this.connections = new AgentConnections(this.store);
    this.manager = new WorkspaceManager(this.store, this.backends, this.environments, this.connections);
    this.link = new AgentLink(this.manager, this.connections, this.store);
    this.network = new WorkspaceNetwork(this.manager, this.store);
    this.exec = new WorkspaceExec(this.manager, this.store, this.link, this.network);
    this.content = new WorkspaceContent(this.manager, this.link);
    this.services = new WorkspaceServices(this.manager, this.link, this.network);
    this.shells = new WorkspaceShells(this.manager, this.link, this.network);
    // Every capability handed out passes the secret boundary (core/secrets.ts): what leaves
    // core is redacted for the workspace's secrets, whichever surface asked. The parts keep
    // the unguarded ones among themselves; a one-shot run gets the guarded exec, because its
    // workspace (and the secrets file with it) is gone by the time its result leaves.
    // The boundary resolves references with the unguarded manager (a guarded one would pass
    // every resolve through the boundary again).
    const manager = this.manager;
    const boundary = new SecretBoundary(
      (id) => this.store.paths(id).secrets,
      (ref) => manager.resolve(ref),
    );
    this.manager = boundary.guard(this.manager);
    this.exec = boundary.guard(this.exec);
    this.content = boundary.guard(this.content);
    this.services = boundary.guard(this.services);
    this.shells = boundary.guard(this.shells);
    this.network = boundary.guard(this.network);
    this.runs = boundary.guard(new OneShotRuns(home, this.manager, this.exec));
    // The root's own operations (status, list, create, summary) pass it too.
    return boundary.guard(this);
  }

  // ---------- discovery, with live service counts ----------

  async status(ref: string): Promise<WorkspaceInfo> {
    return this.withServiceCounts(await this.manager.status(ref));
  }

  /** Workspaces, most recent activity first; with `labels`, only those carrying every one of them. */
  async list(filter: { labels?: Record<string, string> } = {}): Promise<{ count: number; workspaces: WorkspaceInfo[]; reaped: string[] }> {
    const wanted = Object.entries(validateLabels(filter.labels ?? {}));
    const listed = await this.manager.list();
    const workspaces: WorkspaceInfo[] = [];
    for (const info of listed.workspaces) {
      if (wanted.every(([key, value]) => info.labels[key] === value)) workspaces.push(await this.withServiceCounts(info));
    }
    return { ...listed, count: workspaces.length, workspaces };
  }

  private async withServiceCounts(info: WorkspaceInfo): Promise<WorkspaceInfo> {
    return { ...info, ...(await this.services.counts(info.workspace_id, info.state === "running")) };
  }

  // ---------- create ----------

  /**
   * Creates a workspace. The backend request is checked before anything is made and `auto` is
   * decided once, just before the create. Without a seed path, a configured project source
   * seeds it (see project-source.ts).
   */
  async create(input: NewWorkspace): Promise<WorkspaceInfo> {
    const request = backendRequest(input.backend);
    const source = input.seedPath === undefined ? await this.projectSource() : null;
    if (!source) return this.manager.create({ ...input, backend: await resolveBackendRequest(request, this.home), ephemeral: false });
    return seedFromProject(source, async (seed) =>
      this.manager.create({ ...input, backend: await resolveBackendRequest(request, this.home), seedPath: seed.seedPath, origin: seed.origin, ephemeral: false }),
    );
  }

  /** The project source new workspaces are seeded from, or null (resolved once, on first use). */
  projectSource(): Promise<ProjectSource | null> {
    if (!this.projectSourceOptions) return Promise.resolve(null);
    this.resolvedSource ??= resolveProjectSource(this.projectSourceOptions);
    return this.resolvedSource;
  }

  // ---------- review ----------

  summarize(ref: string): Promise<WorkspaceSummary> {
    return summarizeWorkspace(
      {
        manager: this.manager,
        diff: (id, options) => this.content.diff(id, options),
        services: (id) => this.services.list(id),
        shells: (id) => this.shells.list(id),
      },
      ref,
    );
  }

  // ---------- host and environments ----------

  doctor(options: { environment?: string } = {}): Promise<DoctorReport> {
    return runDoctor(this.home, this.environments, options);
  }

  /** Warms an environment and proves the workspace cycle on the backend new workspaces get by default. */
  async prepare(environment: string, options: { force?: boolean; onProgress?: (line: string) => void } = {}) {
    const backend = await resolveBackendRequest(backendRequest(undefined), this.home);
    return prepareEnvironment(this.home, this.environments, this, environment, { ...options, backend });
  }

  pruneEnvironments(): Promise<{ removed: string[]; freed_bytes: number }> {
    return pruneEnvironments(this.home, this.store, this.environments);
  }

  /** Closes cached agent connections; the workspaces keep running. */
  close(): void {
    this.connections.close();
  }
}
