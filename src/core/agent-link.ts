/**
 * The host's link to a workspace's agent: one cached connection per workspace (re-made when the
 * sandbox restarted or the connection dropped), and the one prelude every capability runs
 * before it talks to the agent — resolve the reference, require a running sandbox, map the
 * secrets a call asks for, take the connection. Knows workspaces only through `WorkspaceLookup`
 * (the manager fits it), so the manager can own the cache without a cycle between the two.
 */
import { AgentClient } from "../protocol/client.js";
import type { StartedSandbox } from "../runtime/backend.js";
import { PyroError } from "../shared/errors.js";
import type { Redactor } from "../shared/redact.js";
import { secretEnvMapping, secretRedactor } from "./secrets.js";
import type { StateStore } from "./store.js";
import type { WorkspaceRecord } from "./types.js";

/** What the link needs to find a workspace and make sure its sandbox is up. */
export interface WorkspaceLookup {
  resolve(ref: string): Promise<string>;
  requireRunning(id: string): Promise<WorkspaceRecord>;
}

/** A running workspace, ready for requests. */
export interface AttachedWorkspace {
  id: string;
  record: WorkspaceRecord;
  client: AgentClient;
  /** The secrets the call asked for, as { SECRET_NAME: ENV_VAR }; empty when it asked for none. */
  secretEnv: Record<string, string>;
}

/**
 * Agent connections by workspace id. A connection is keyed by the sandbox's pid and start
 * time, so a restarted sandbox (same workspace, new agent) never gets the old socket's client.
 */
export class AgentConnections {
  private readonly clients = new Map<string, { key: string; client: Promise<AgentClient> }>();

  constructor(private readonly store: StateStore) {}

  /** A cached agent connection, re-made when the sandbox restarted or the connection dropped. */
  async client(id: string): Promise<AgentClient> {
    const sandbox = (await this.store.load(id)).sandbox;
    if (!sandbox) throw new PyroError("workspace_stopped", `workspace ${id} is not running`);
    const key = `${sandbox.pid}:${sandbox.startTime}`;
    const cached = this.clients.get(id);
    if (cached && cached.key === key) {
      const c = await cached.client.catch(() => null);
      if (c && !c.closed) return c;
    }
    const client = AgentClient.connect(this.store.paths(id).socket);
    this.clients.set(id, { key, client });
    client.catch(() => this.clients.delete(id));
    return client;
  }

  /** Keeps the connection a start already opened, so the first call does not reconnect. */
  adopt(id: string, started: StartedSandbox): void {
    this.clients.set(id, { key: `${started.record.pid}:${started.record.startTime}`, client: Promise.resolve(started.client) });
  }

  /** Forgets and closes a workspace's connection (its sandbox is stopping or being replaced). */
  drop(id: string): void {
    const cached = this.clients.get(id);
    this.clients.delete(id);
    cached?.client.then((c) => c.close()).catch(() => undefined);
  }

  /** Closes every cached connection so the process can exit. */
  close(): void {
    for (const id of [...this.clients.keys()]) this.drop(id);
  }
}

/** The prelude the capabilities share: from a reference to a running workspace's agent. */
export class AgentLink {
  constructor(
    private readonly workspaces: WorkspaceLookup,
    private readonly connections: AgentConnections,
    private readonly store: StateStore,
  ) {}

  /** Resolves `ref`, then `attach`. */
  async running(ref: string, secretEnv?: string[] | Record<string, string>): Promise<AttachedWorkspace> {
    return this.attach(await this.workspaces.resolve(ref), secretEnv);
  }

  /**
   * For an already resolved id: requires the sandbox to be running (repairing a stale record
   * first), checks the secrets asked for against the workspace's, and takes the connection.
   */
  async attach(id: string, secretEnv?: string[] | Record<string, string>): Promise<AttachedWorkspace> {
    const record = await this.workspaces.requireRunning(id);
    const mapping = secretEnvMapping(secretEnv, record.secret_names ?? []);
    return { id, record, client: await this.connections.client(id), secretEnv: mapping };
  }

  /** The connection of a workspace known to be running (no checks beyond the cache's). */
  client(id: string): Promise<AgentClient> {
    return this.connections.client(id);
  }

  /** Redacts the workspace's secret values from what the host records or returns. */
  redactor(record: WorkspaceRecord): Promise<Redactor> {
    return secretRedactor(this.store.paths(record.workspace_id).secrets);
  }
}
