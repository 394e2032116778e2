/**
 * The workspace manager: lifecycle (create, start, stop, reset, delete, reap), discovery (list,
 * status, names, labels), reconciling records with reality, and turning a record into the
 * sandbox spec its backend starts — on top of the state store and the isolation backends: each
 * workspace names its backend in its record, for life. Every mutating step holds the
 * workspace's lock. Exec, network operations and the agent connections are their own modules
 * (exec.ts, workspace-network.ts, agent-link.ts). Host-side; file contents inside a workspace
 * are only ever reached through the agent.
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import type { Backend, BackendName, RootChanges, SandboxRecord } from "../runtime/backend.js";
import type { BackendSet } from "../runtime/backends.js";
import { WORKSPACE_GUEST_PATH } from "../protocol/messages.js";
import { PyroError } from "../shared/errors.js";
import type { EnvironmentStore } from "../environments/index.js";
import { canonicalEnvironmentName } from "../environments/index.js";
import { imageEnv } from "./command-env.js";
import type { StateStore } from "./store.js";
import { AgentConnections } from "./agent-link.js";
import { importInto, inspectSource } from "./transfer.js";
import type { SeedSource } from "./transfer.js";
import { BASELINE, SnapshotStore } from "./snapshots.js";
import type { SnapshotInfo } from "./snapshots.js";
import { collectSecrets, loadSecrets, saveSecrets } from "./secrets.js";
import { looksLikeWorkspaceId, newWorkspaceId } from "./ids.js";
import { validateLabels, validatePositive, validatePositiveInt, validateWorkspaceName } from "./validate.js";
import type { WorkspaceEvent, WorkspaceInfo, WorkspaceRecord } from "./types.js";
import { networkConfig, networkFromOptions, networkInfo, specOf } from "./network.js";
import type { NetworkOptions } from "./network.js";
import { assertUserNamespacesAllowed, ownByGuestRoot, prepareLaunch } from "../runtime/confine/launch.js";
import { requireEgress } from "../runtime/network/netns.js";
import { sandboxIdentity } from "../runtime/confine/identity.js";
import { removeTree, removeTrees } from "../runtime/confine/trees.js";
import { sweepSandboxCgroup } from "../runtime/confine/sandbox.js";
import { logTail, pidAlive, processStartTime } from "../shared/process.js";
import { validateDiskMib, WorkspaceDisk } from "./disk-limit.js";
import { copyTarget, copyWorkspaceState, derivedForkName } from "./fork.js";
import { LayerPool, isLayered, makeUpper, newGeneration, staleUppers, upperDirs } from "./workspace-layers.js";
import type { LayeredRecord } from "./workspace-layers.js";
import type { UtilityView } from "../runtime/confine/utility.js";

export const DEFAULT_VCPU_COUNT = 1;
export const DEFAULT_MEM_MIB = 1024;
/**
 * Sets a workspace's root layer (its sandbox state directory) aside for a reset: renamed to
 * `<dir>.stale-<gen>` beside it, removed once the reset is done (`staleRoots`). None is fine.
 */
async function setRootAside(sandboxState: string): Promise<void> {
  await fsp.rename(sandboxState, `${sandboxState}.stale-${newGeneration()}`).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== "ENOENT") throw err;
  });
}

/** The root layers resets set aside (`setRootAside`) and have not removed yet. */
async function staleRoots(sandboxState: string): Promise<string[]> {
  const dir = path.dirname(sandboxState);
  const prefix = `${path.basename(sandboxState)}.stale-`;
  const names = await fsp.readdir(dir).catch(() => [] as string[]);
  return names.filter((n) => n.startsWith(prefix) && /^[0-9a-f]{8}$/.test(n.slice(prefix.length))).map((n) => path.join(dir, n));
}

/**
 * The least memory a workspace may be given, per backend: below it the sandbox does not start
 * (the agent is killed as it connects, which surfaced as an ECONNRESET). The namespace backend's
 * agent starts at 12 MiB and not at 10 (measured with a warm page cache); 32 leaves room for a
 * cold one and for a shell. A VM's guest RAM is the whole of mem_mib (QEMU's own overhead is
 * added to its cgroup, not taken from it): the guest kernel, its page cache and the agent use
 * ~140 MiB (docs/performance.md), and 256 is what the host probe boots with.
 */
export const MIN_MEM_MIB: Record<BackendName, number> = { namespace: 32, vm: 256 };
export const MAX_TTL_SECONDS = 30 * 24 * 3600;
export const DEFAULT_PIDS_MAX = 4096;

export interface CreateWorkspaceOptions extends NetworkOptions {
  environment: string;
  /** The backend, already resolved (`auto` decided, see runtime/backends.ts); kept for the workspace's life. */
  backend: BackendName;
  name?: string;
  labels?: Record<string, string>;
  seedPath?: string;
  vcpuCount?: number;
  memMib?: number;
  /** The most /workspace may take, in MiB (core/disk-limit.ts: default, bounds, enforcement). */
  diskMib?: number;
  ttlSeconds?: number;
  /** Secret values by name; materialised in /run/pyro-secrets, redacted from every output. */
  secrets?: Record<string, string>;
  /** Secrets read from host files (UTF-8), by name. */
  secretFiles?: Record<string, string>;
  /** Internal: one-shot `run` workspaces. */
  ephemeral?: boolean;
  /** Internal: the seed is a project source's archive; record where it came from. */
  origin?: { kind: "git_checkout" | "directory" | "repo_url"; ref: string; path: string | null };
}

export interface ForkWorkspaceOptions {
  /** The fork's name; without one, `<source name>-fork-N` (see fork.ts), or none when the source has none. */
  name?: string;
  /** Labels added to (or replacing those of) the source's. */
  labels?: Record<string, string>;
}

export interface UpdateWorkspaceOptions {
  name?: string;
  labels?: Record<string, string>;
  clearLabels?: string[];
}

const nowIso = () => new Date().toISOString();

function isolationText(record: WorkspaceRecord): string {
  if (record.backend === "namespace") return "namespace backend (bubblewrap in a user namespace, guest root never host root: mount, pid, ipc, uts, net namespaces, seccomp; shares the host kernel)";
  // The acceleration is decided at each start (KVM when a guest boots with it here), so only a running VM has one.
  const acceleration = record.sandbox?.vm?.acceleration;
  return `vm backend (QEMU microvm, own guest kernel${acceleration ? `; acceleration: ${acceleration}` : ""})`;
}

export class WorkspaceManager {
  /** The disk limit of each workspace: its mechanism, its mount, its checks. */
  readonly disk: WorkspaceDisk;

  constructor(
    readonly store: StateStore,
    private readonly backends: BackendSet,
    private readonly environments: EnvironmentStore,
    /** Agent connections: a start keeps the one it opened, a stop or delete closes it. */
    readonly connections: AgentConnections = new AgentConnections(store),
  ) {
    this.disk = new WorkspaceDisk(store);
    this.layers = new LayerPool(store.layout.workspaceLayers);
  }

  /** The read-only layers of layered workspaces (core/workspace-layers.ts). */
  readonly layers: LayerPool;

  /** Runs `fn` under the lock every step that makes, names or collects a workspace layer holds. */
  withLayersLock<T>(fn: () => Promise<T>): Promise<T> {
    return this.store.withLock("workspace-layers", fn);
  }

  /**
   * Removes the workspace layers nothing names any more: no record's live stack, no snapshot.
   * Best effort: a layer left now is collected by a later call.
   */
  async collectLayers(): Promise<void> {
    await this.withLayersLock(async () => {
      const named = new Set<string>();
      for (const r of await this.store.readAll()) {
        for (const l of r.workspace_layers ?? []) named.add(l);
        for (const l of await this.snapshots(r.workspace_id).namedLayers()) named.add(l);
      }
      await this.layers.collect(named);
    }).catch(() => undefined);
  }

  /** A layered workspace's live upper and work directories (its disk-limited filesystem mounted first). */
  async upper(record: LayeredRecord): Promise<{ upper: string; work: string }> {
    return upperDirs(await this.disk.dir(record.workspace_id, record), record.workspace_upper);
  }

  /**
   * How a utility sandbox sees the whole of a workspace's /workspace at `target`. A plain
   * workspace: its directory. A layered one while its sandbox runs: the sandbox's own overlay,
   * reached by joining its mount namespace (a second overlay on a live upper is undefined in
   * the kernel); stopped: a read-only overlay of its upper over its layers. Writing needs a
   * running layered workspace (sync push does; create seeds a layer directly).
   */
  async view(record: WorkspaceRecord, options: { target?: string; writable?: boolean } = {}): Promise<UtilityView> {
    const target = options.target ?? "/workspace";
    const readOnly = options.writable !== true;
    if (!isLayered(record)) return { binds: [{ source: await this.disk.dir(record.workspace_id, record), target, readOnly }], join: null };
    const stage = record.sandbox?.workspaceStage;
    if (record.state === "running" && record.sandbox && stage) {
      return { binds: [{ inNamespace: stage, target, readOnly }], join: { pid: record.sandbox.pid, startTime: record.sandbox.startTime } };
    }
    if (!readOnly) throw new PyroError("workspace_stopped", `workspace ${record.name ?? record.workspace_id} is ${record.state}`, { hint: "Start it first." });
    const { upper } = await this.upper(record);
    return { binds: [{ overlay: [upper, ...record.workspace_layers.map((l) => this.layers.path(l))], target }], join: null };
  }

  /**
   * Runs `read` with a read-only view of a workspace's /workspace (`view`). A running
   * workspace's view joins its sandbox and holds nothing. A stopped or failed one's is a utility
   * sandbox's own mount of the workspace's directories, which a start (its sweep ends every
   * process holding them), a reset or a delete would pull from under the read: the workspace's
   * lock is held until the read is done, so those wait for it. `read` must not take that lock.
   */
  async withView<T>(id: string, read: (record: WorkspaceRecord, view: UtilityView) => Promise<T>): Promise<T> {
    const record = await this.reconciled(id);
    if (record.state === "running") return read(record, await this.view(record));
    return this.store.withLock(id, async () => {
      const now = (await this.reconcile(await this.store.load(id))).record;
      return read(now, await this.view(now));
    });
  }

  // ---------- discovery ----------

  /** Resolves an id, unique id prefix or name to a workspace id. */
  async resolve(ref: string): Promise<string> {
    if (typeof ref !== "string" || ref.length === 0) throw new PyroError("invalid_argument", "workspace reference is empty");
    if (!ref.includes("/") && !ref.startsWith(".") && fs.existsSync(this.store.paths(ref).record)) return ref;
    const records = (await this.store.readAll()).filter((r) => !r.ephemeral);
    const byName = records.filter((r) => r.name === ref);
    const byPrefix = ref.length >= 4 ? records.filter((r) => r.workspace_id.startsWith(ref)) : [];
    const matches = [...new Set([...byName, ...byPrefix])];
    if (matches.length === 1) return matches[0]!.workspace_id;
    if (matches.length === 0) {
      throw new PyroError("workspace_not_found", `no workspace has the id or name ${JSON.stringify(ref)}`, {
        hint: "Run `pyro workspace list` (MCP: workspace_list) to see workspaces.",
      });
    }
    throw new PyroError("workspace_name_ambiguous", `${JSON.stringify(ref)} matches ${matches.length} workspaces`, {
      details: { matches: matches.map((m) => ({ workspace_id: m.workspace_id, name: m.name })) },
      hint: "Use the full workspace id.",
    });
  }

  /** The backend a workspace's record names (its sandbox record names the same one). */
  backendOf(record: WorkspaceRecord): Promise<Backend> {
    return this.backends.get(record.backend);
  }

  /** Whether the record's sandbox is up, asked of the backend that started it. */
  async sandboxAlive(record: WorkspaceRecord): Promise<boolean> {
    return record.state === "running" && record.sandbox !== null && (await this.backendOf(record)).liveness(record.sandbox) === "alive";
  }

  /**
   * Brings a record in line with reality: a `running` workspace whose sandbox is gone becomes
   * `stopped` (host rebooted) or `failed` (sandbox died), with the reason. Caller holds the lock.
   */
  async reconcile(record: WorkspaceRecord): Promise<{ record: WorkspaceRecord; reason: string | null }> {
    if (record.state === "creating" && !creatorAlive(record)) {
      // The creator was killed: whatever it started (a sandbox it may never have recorded, a
      // seeding copy) goes now, and the workspace says what happened.
      this.connections.drop(record.workspace_id);
      if (record.sandbox) await this.stopSandbox(record).catch(() => undefined);
      await this.store.sweepSandbox(record.workspace_id);
      record.sandbox = null;
      record.state = "failed";
      record.failure = {
        reason: record.forked_from
          ? `the process forking this workspace from ${record.forked_from} exited before it finished; its copy may be partial: delete it and fork again (the source is unchanged)`
          : "the process creating this workspace exited before it finished; /workspace may be partly seeded and there may be no baseline: delete it and create it again, or call start to use it as it is",
        log_tail: logTail(this.store.paths(record.workspace_id).log),
        at: nowIso(),
      };
      await this.store.write(record);
      return { record, reason: record.failure.reason };
    }
    if (record.state !== "running" || !record.sandbox) return { record, reason: null };
    const backend = await this.backendOf(record);
    const liveness = backend.liveness(record.sandbox);
    if (liveness === "alive") return { record, reason: null };
    const sandbox = record.sandbox;
    await backend.stop(sandbox);
    // A sandbox a killed reset or start launched but never recorded lives in the same cgroup.
    await sweepSandboxCgroup(record.workspace_id);
    record.sandbox = null;
    let reason: string;
    if (liveness === "host-rebooted") {
      record.state = "stopped";
      reason = "the host rebooted since this workspace was started; /workspace is intact, call start";
    } else {
      record.state = "failed";
      reason = "the workspace sandbox exited unexpectedly; /workspace is intact, call start to recover";
      record.failure = { reason, log_tail: logTail(this.store.paths(record.workspace_id).log), at: nowIso() };
    }
    await this.store.write(record);
    return { record, reason };
  }

  async status(ref: string): Promise<WorkspaceInfo> {
    const id = await this.resolve(ref);
    return this.store.withLock(id, async () => {
      const { record, reason } = await this.reconcile(await this.store.load(id));
      return this.info(record, reason);
    });
  }

  /** True when the workspace's sandbox is up (no repair, no lock). */
  async isRunning(id: string): Promise<boolean> {
    const r = await this.store.read(id);
    return r !== undefined && (await this.sandboxAlive(r));
  }

  /**
   * Lists workspaces, most recent activity first. Reaps expired ones first, and says so.
   * Service counts are left at zero here; the composition root (workspaces.ts) adds them.
   */
  async list(): Promise<{ count: number; workspaces: WorkspaceInfo[]; reaped: string[] }> {
    const { reaped } = await this.reapExpired();
    const records = (await this.store.readAll()).filter((r) => !r.ephemeral);
    const infos: WorkspaceInfo[] = [];
    for (const r of records) {
      const { record, reason } = r.state === "running" || (r.state === "creating" && !creatorAlive(r)) ? await this.store.withLock(r.workspace_id, async () => this.reconcile((await this.store.read(r.workspace_id)) ?? r)) : { record: r, reason: null };
      infos.push(this.info(record, reason));
    }
    infos.sort((a, b) => b.last_activity_at.localeCompare(a.last_activity_at));
    return { count: infos.length, workspaces: infos, reaped };
  }

  info(record: WorkspaceRecord, reason: string | null = null): WorkspaceInfo {
    return {
      workspace_id: record.workspace_id,
      name: record.name,
      labels: record.labels,
      environment: record.environment,
      state: record.state,
      backend: record.backend,
      isolation: isolationText(record),
      workspace_path: WORKSPACE_GUEST_PATH,
      created_at: record.created_at,
      last_activity_at: record.last_activity_at,
      ttl_seconds: record.ttl_seconds,
      expires_at: record.expires_at,
      vcpu_count: record.vcpu_count,
      mem_mib: record.mem_mib,
      disk_mib: record.disk_mib ?? null,
      disk: this.disk.info(record),
      limits: record.sandbox?.enforcement ? { ...record.sandbox.enforcement, disk: this.disk.enforcement(record) } : null,
      network_policy: record.network_policy,
      network: networkInfo(record.network_policy, networkConfig(record), record.sandbox?.network),
      workspace_seed: record.workspace_seed,
      command_count: record.command_count,
      last_command: record.last_command,
      failure: record.failure,
      state_reason: reason,
      reset_count: record.reset_count ?? 0,
      last_reset_at: record.last_reset_at ?? null,
      secret_names: record.secret_names ?? [],
      // Only a fork carries it: every other result stays as short as before forks existed.
      ...(record.forked_from ? { forked_from: record.forked_from } : {}),
      service_count: 0,
      running_service_count: 0,
    };
  }

  // ---------- lifecycle ----------

  async create(opts: CreateWorkspaceOptions): Promise<WorkspaceInfo> {
    await this.store.init();
    await this.store.finishInterrupted();
    const name = opts.name === undefined ? null : validateWorkspaceName(opts.name);
    const labels = validateLabels({ ...(opts.labels ?? {}) });
    const vcpuCount = validatePositiveInt(opts.vcpuCount ?? DEFAULT_VCPU_COUNT, "vcpu_count", 64);
    const memMib = validatePositiveInt(opts.memMib ?? DEFAULT_MEM_MIB, "mem_mib", 1024 * 1024);
    const minMemMib = MIN_MEM_MIB[opts.backend] ?? MIN_MEM_MIB.namespace;
    if (memMib < minMemMib) {
      throw new PyroError("invalid_argument", `mem_mib must be at least ${minMemMib} on the ${opts.backend} backend, got ${memMib}`, {
        hint: `Give ${minMemMib} MiB or more (the sandbox and its agent do not start with less).`,
      });
    }
    const diskMib = validateDiskMib(opts.diskMib);
    const ttlSeconds = opts.ttlSeconds === undefined ? null : validatePositive(opts.ttlSeconds, "ttl_seconds", MAX_TTL_SECONDS);
    // Fails early (environment_unknown / environment_not_installed, or a host that forbids the
    // user namespace every sandbox needs) before anything is made.
    const environment = canonicalEnvironmentName(opts.environment);
    assertUserNamespacesAllowed();
    await this.environments.layers(environment);
    const manifest = await this.environments.inspect(environment).catch(() => null);
    const digest = manifest?.digest ?? null;
    const seed = opts.seedPath === undefined ? null : await inspectSource(opts.seedPath, "seed path");
    const secrets = await collectSecrets(opts.secrets, opts.secretFiles);
    const network = networkFromOptions(opts);
    // An egress policy this host cannot give (a missing tool, /dev/net/tun closed to this user)
    // is refused before anything is made, not after a sandbox has been started and rolled back.
    if (network.policy !== "off") requireEgress(network.policy);

    const id = newWorkspaceId();
    const created = nowIso();
    const record: WorkspaceRecord = {
      schema: 1,
      workspace_id: id,
      name,
      labels,
      environment,
      environment_digest: digest,
      layers: [],
      ...(manifest?.image ? { environment_env: imageEnv(manifest.image.config.env) } : {}),
      backend: opts.backend,
      state: "creating",
      created_at: created,
      last_activity_at: created,
      ttl_seconds: ttlSeconds,
      expires_at: ttlSeconds === null ? null : new Date(Date.now() + ttlSeconds * 1000).toISOString(),
      vcpu_count: vcpuCount,
      mem_mib: memMib,
      disk_mib: diskMib,
      network_policy: network.policy,
      network: network.config,
      ephemeral: opts.ephemeral ?? false,
      owner_pid: process.pid,
      owner_start_time: processStartTime(process.pid),
      workspace_seed: { mode: "empty", seed_path: null, origin_kind: "empty", origin_ref: null, entries: 0, bytes: 0 },
      sandbox: null,
      failure: null,
      command_count: 0,
      last_command: null,
      secret_names: Object.keys(secrets).sort(),
      identity: sandboxIdentity().key,
      // PYRO_WORKSPACE_LAYOUT=plain makes a workspace the way pyro did before /workspace was
      // layered: kept so that layout stays tested while workspaces made that way exist.
      ...(process.env.PYRO_WORKSPACE_LAYOUT === "plain" ? {} : { workspace_layout: "layers" as const, workspace_layers: [], workspace_upper: newGeneration() }),
    };
    const paths = this.store.paths(id);
    // Name reservation, layer pinning and the record's first write happen under one registry
    // lock: two creates can never both take a name, and `env prune` (same lock) never removes
    // layers a workspace is about to use.
    await this.store.withLock("registry", async () => {
      if (name !== null) await this.assertNameFree(name, id);
      record.layers = await this.environments.layers(environment);
      await fsp.mkdir(paths.dir, { recursive: true, mode: 0o700 });
      await fsp.mkdir(paths.workspace, { recursive: true, mode: 0o755 });
      ownByGuestRoot(paths.workspace);
      if (record.secret_names.length > 0) await saveSecrets(paths.secrets, secrets);
      await this.store.write(record);
    });
    try {
      // After the record's first write: a crash from here leaves a record naming the mount.
      await this.disk.provision(record);
      ownByGuestRoot(paths.workspace);
      if (isLayered(record)) await this.seedLayers(record, seed, opts.origin);
      else await this.seedPlain(record, seed, opts.origin);
      record.state = "running";
      record.owner_pid = opts.ephemeral ? process.pid : null;
      if (!opts.ephemeral) record.owner_start_time = null;
      await this.store.withLock(id, () => this.store.write(record));
    } catch (err) {
      await this.rollBackNew(record);
      throw err;
    }
    return this.info(record);
  }

  /**
   * Forks a workspace: a new, independent workspace with the source's /workspace, root
   * filesystem changes, snapshots (baseline included), environment, backend, limits, network
   * policy (not its published ports: a host port serves one workspace), secrets and labels; its
   * own history, events, processes and services (none are copied), and `forked_from` naming the
   * source. Like create, the fork's record is `creating` from its first write, so a fork whose
   * caller is killed is marked `failed` by the next call and deleted like any workspace; the
   * source is only read, under its own lock (no pyro operation changes it meanwhile; a process
   * inside it writing during the copy may be caught mid-write, as with a snapshot). The fork is
   * started, as a created workspace is. A running VM is refused: its root disk is being written.
   */
  async fork(ref: string, opts: ForkWorkspaceOptions = {}): Promise<WorkspaceInfo> {
    // The copy's sandbox comes first; its holder is made while the records are.
    prepareLaunch();
    await this.store.init();
    await this.store.finishInterrupted();
    const sourceId = await this.resolve(ref);
    const givenName = opts.name === undefined ? undefined : validateWorkspaceName(opts.name);
    const extraLabels = validateLabels({ ...(opts.labels ?? {}) });
    const seen = await this.reconciled(sourceId);
    assertSameIdentity(seen);
    this.assertForkable(seen, (await this.backendOf(seen)).rootChanges(this.store.paths(sourceId).sandboxState).copyWhileRunning);
    const labels = validateLabels({ ...seen.labels, ...extraLabels });
    assertUserNamespacesAllowed();
    if (seen.network_policy !== "off") requireEgress(seen.network_policy);

    const id = newWorkspaceId();
    const created = nowIso();
    const record: WorkspaceRecord = {
      schema: 1,
      workspace_id: id,
      name: null,
      labels,
      environment: seen.environment,
      environment_digest: seen.environment_digest,
      // The copied root changes sit on exactly the source's layers, never on a newer pull.
      layers: [...seen.layers],
      ...(seen.environment_env ? { environment_env: { ...seen.environment_env } } : {}),
      backend: seen.backend,
      state: "creating",
      created_at: created,
      last_activity_at: created,
      ttl_seconds: seen.ttl_seconds,
      expires_at: seen.ttl_seconds === null ? null : new Date(Date.now() + seen.ttl_seconds * 1000).toISOString(),
      vcpu_count: seen.vcpu_count,
      mem_mib: seen.mem_mib,
      disk_mib: validateDiskMib(seen.disk_mib),
      network_policy: seen.network_policy,
      ...(seen.network ? { network: structuredClone(seen.network) } : {}),
      ephemeral: false,
      owner_pid: process.pid,
      owner_start_time: processStartTime(process.pid),
      workspace_seed: { ...seen.workspace_seed },
      sandbox: null,
      failure: null,
      command_count: 0,
      last_command: null,
      secret_names: [...(seen.secret_names ?? [])],
      identity: sandboxIdentity().key,
      forked_from: sourceId,
      // A layered source's fork shares its layers; a plain one's is a plain copy.
      ...(isLayered(seen) ? { workspace_layout: "layers" as const, workspace_layers: [], workspace_upper: newGeneration() } : {}),
    };
    const paths = this.store.paths(id);
    const source = this.store.paths(sourceId);
    // As in create: the name is chosen and the record first written under the registry lock.
    await this.store.withLock("registry", async () => {
      if (givenName !== undefined) {
        await this.assertNameFree(givenName, id);
        record.name = givenName;
      } else {
        const records = await this.store.readAll();
        const names = new Set(records.map((r) => r.name));
        record.name = derivedForkName(seen.name, (n) => names.has(n) || looksLikeWorkspaceId(n) || (n.length >= 4 && records.some((r) => r.workspace_id.startsWith(n))));
      }
      await fsp.mkdir(paths.dir, { recursive: true, mode: 0o700 });
      await fsp.mkdir(paths.workspace, { recursive: true, mode: 0o755 });
      ownByGuestRoot(paths.workspace);
      if (record.secret_names.length > 0) await saveSecrets(paths.secrets, await loadSecrets(source.secrets));
      await this.store.write(record);
    });
    try {
      // The fork's /workspace filesystem (an image, for a kernel disk limit) and its empty upper.
      // A layered fork's copy goes to the layer pool, not there, so both are made at once.
      const prepareWorkspace = async (): Promise<void> => {
        await this.disk.provision(record);
        ownByGuestRoot(paths.workspace);
        if (isLayered(record)) await makeUpper(paths.workspace, record.workspace_upper);
        await this.store.withLock(id, () => this.store.write(record));
        // The fork's sandbox starts next: its holder is made while the copy runs (after the
        // mount above, which it must see).
        prepareLaunch();
      };
      const layered = isLayered(record);
      if (!layered) await prepareWorkspace();
      const copying = this.store.withLock(sourceId, () =>
        this.store.withLock(`${sourceId}.snapshots`, async () => {
          const current = (await this.reconcile(await this.store.load(sourceId))).record;
          const backend = await this.backendOf(current);
          const root = backend.rootChanges(source.sandboxState);
          this.assertForkable(current, root.copyWhileRunning);
          await fsp.mkdir(paths.sandboxState, { recursive: true, mode: 0o700 });
          const forkRoot = backend.rootChanges(paths.sandboxState);
          // A root disk (a file) is copied into a directory of its own, then moved into place.
          const rootTarget = await copyTarget(forkRoot.kind === "directory" ? forkRoot.path : path.join(paths.sandboxState, ".fork-root"), forkRoot.kind === "directory" ? 0o755 : 0o700);
          const sourceSnapshots = this.snapshots(sourceId);
          const forkSnapshots = this.snapshots(id);
          if (isLayered(current) && isLayered(record)) return this.forkLayers(current, record, { from: fs.existsSync(root.path) ? root : null, to: rootTarget }, forkRoot);
          const snapshots = await Promise.all(
            (await sourceSnapshots.list()).map(async (info) => ({ info, from: await sourceSnapshots.tree(info.name), to: await forkSnapshots.staging(info.name) })),
          );
          const result = await copyWorkspaceState({
            workspace: { from: await this.disk.dir(sourceId, current), to: await this.disk.dir(id, record) },
            root: { from: fs.existsSync(root.path) ? root : null, to: rootTarget },
            snapshots,
          }).catch((err: unknown) => {
            throw this.disk.translate(record, err);
          });
          for (const s of snapshots) await forkSnapshots.adopt(s.info, s.to);
          await placeForkRoot(forkRoot, rootTarget);
          return result;
        }),
      );
      // Started after the copy, which is the longer of the two and must not wait for the
      // disk's execs to be spawned first.
      const prepared = layered ? prepareWorkspace() : null;
      // Both settle before anything is rolled back: a disk still being mounted is not left behind.
      const [copy, prepare] = await Promise.allSettled([copying, prepared]);
      if (copy.status === "rejected") throw copy.reason;
      if (prepare.status === "rejected") throw prepare.reason;
      const copied = copy.value;
      // A layered fork's upper is new and empty: provision's measurement of nothing stands.
      if (this.disk.enforcement(record) === "watched" && !layered) await this.disk.measure(record);
      record.sandbox = await this.startSandbox(record);
      record.state = "running";
      record.owner_pid = null;
      record.owner_start_time = null;
      record.last_activity_at = nowIso();
      await Promise.all([
        this.store.withLock(id, () => this.store.write(record)),
        this.store.appendEvent(id, { at: record.last_activity_at, kind: "fork", details: { forked_from: sourceId, entries: copied.entries, bytes: copied.bytes } }),
      ]);
    } catch (err) {
      // The source was only read: the fork alone is rolled back.
      await this.rollBackNew(record);
      throw err;
    }
    return this.info(record);
  }

  /**
   * A new layered workspace's layers and sandbox: the seed is copied into its bottom layer
   * before the sandbox starts, and the baseline is that layer (no copy of the seed is made for it).
   */
  private async seedLayers(record: LayeredRecord, seed: SeedSource | null, origin: CreateWorkspaceOptions["origin"]): Promise<void> {
    const id = record.workspace_id;
    const paths = this.store.paths(id);
    // For the seed's copy (after the disk's mount, which its namespace must see).
    if (seed) prepareLaunch();
    await makeUpper(paths.workspace, record.workspace_upper);
    await this.store.withLock(id, () => this.store.write(record));
    const staging = await this.layers.staging();
    let baseline: SnapshotInfo = { name: BASELINE, created_at: nowIso(), entries: 0, bytes: 0, baseline: true };
    try {
      if (seed) {
        // The limit is /workspace's: a seed larger than it is refused, as a write would be.
        const room = await this.disk.room(record, { fresh: true });
        // The layer is new and empty, and goes whole if the import fails: the stream lands in it directly.
        const imported = await importInto({ binds: [{ source: staging, target: "/workspace", readOnly: false }], join: null }, paths.dir, seed, WORKSPACE_GUEST_PATH, room, { fresh: true }).catch((err: unknown) => {
          throw this.disk.translate(record, err);
        });
        record.workspace_seed = seedInfo(seed, origin, imported);
        baseline = { ...baseline, entries: imported.entries, bytes: imported.bytes };
      }
      // The sandbox's, made while the layer is adopted and the records written.
      prepareLaunch();
      // Adopted and named under the layers lock: a collection never sees it unnamed.
      await this.withLayersLock(async () => {
        record.workspace_layers = [await this.layers.adopt(staging)];
        await this.store.withLock(id, () => this.store.write(record));
      });
    } catch (err) {
      await removeTree(staging);
      throw err;
    }
    await this.snapshots(id).writeLayered(baseline, record.workspace_layers);
    record.sandbox = await this.startSandbox(record);
  }

  /** A plain workspace's sandbox and seed (PYRO_WORKSPACE_LAYOUT=plain): the seed copied into /workspace, then into the baseline. */
  private async seedPlain(record: WorkspaceRecord, seed: SeedSource | null, origin: CreateWorkspaceOptions["origin"]): Promise<void> {
    const id = record.workspace_id;
    const paths = this.store.paths(id);
    await this.store.withLock(id, () => this.store.write(record));
    record.sandbox = await this.startSandbox(record);
    // Persist the sandbox before seeding: a crash from here on must leave a record that names the sandbox to clean up.
    await this.store.withLock(id, () => this.store.write(record));
    if (!seed) {
      await this.snapshots(id).createEmptyBaseline();
      return;
    }
    const room = await this.disk.room(record, { fresh: true });
    const mark = this.disk.mark(record);
    const imported = await importInto({ binds: [{ source: paths.workspace, target: "/workspace", readOnly: false }], join: null }, paths.dir, seed, WORKSPACE_GUEST_PATH, room).catch((err: unknown) => {
      throw this.disk.translate(record, err);
    });
    await this.disk.checkAfter(record, mark, "the seed", { entries: imported.entries, bytes: imported.bytes });
    record.workspace_seed = seedInfo(seed, origin, imported);
    await this.snapshots(id).create(BASELINE, paths.workspace);
  }

  /**
   * A layered fork's copy: the source's live upper into a new layer (none when the source has
   * changed nothing since its layers), shared layers for everything else, the snapshots'
   * manifests naming the same layers. Runs under the source's locks; the new layer is adopted
   * and named (the fork's record, its manifests) under the layers lock.
   */
  private async forkLayers(source: LayeredRecord, fork: LayeredRecord, root: { from: RootChanges | null; to: string }, forkRoot: RootChanges): Promise<{ entries: number; bytes: number }> {
    const { upper } = await this.upper(source);
    const staging = await this.layers.staging();
    try {
      const result = await copyWorkspaceState({ workspace: { from: upper, to: staging }, root, snapshots: [] });
      await placeForkRoot(forkRoot, root.to);
      const manifests = await this.snapshots(source.workspace_id).manifests();
      await this.withLayersLock(async () => {
        const top = result.entries > 0 ? [await this.layers.adopt(staging)] : [];
        fork.workspace_layers = [...top, ...source.workspace_layers];
        // At once: each is its own file, and their syncs overlap. Both name the layers under
        // this lock, so no collection sees one named and the other not yet.
        const forkSnapshots = this.snapshots(fork.workspace_id);
        await Promise.all([
          this.store.withLock(fork.workspace_id, () => this.store.write(fork)),
          ...manifests.map(({ layers, ...info }) => (layers ? forkSnapshots.writeLayered(info, layers) : undefined)),
        ]);
      });
      return result;
    } finally {
      await removeTree(staging);
    }
  }

  /** Undoes a create or fork that failed: no half-made workspace, sandbox, cgroup or directory remains. */
  private async rollBackNew(record: WorkspaceRecord): Promise<void> {
    this.connections.drop(record.workspace_id);
    if (record.sandbox) await this.stopSandbox(record).catch(() => undefined);
    await this.store.removeWorkspace(record.workspace_id).catch(() => undefined);
    await this.collectLayers();
  }

  /** Refuses a source whose state a fork cannot copy faithfully. */
  private assertForkable(source: WorkspaceRecord, copyWhileRunning: boolean): void {
    const ref = source.name ?? source.workspace_id;
    if (source.state === "creating") throw new PyroError("workspace_busy", `workspace ${ref} is still being created`, { hint: "Fork it once its create has finished." });
    if (source.state === "failed") {
      throw new PyroError("workspace_failed", `workspace ${ref} is failed: ${source.failure?.reason ?? "unknown reason"}`, {
        hint: `Start it (pyro workspace start ${ref}, MCP: workspace_start) or reset it, then fork it.`,
      });
    }
    if (source.state === "running" && !copyWhileRunning) {
      throw new PyroError("workspace_busy", `workspace ${ref} is a running ${source.backend} workspace; its root disk cannot be copied while the guest writes it`, {
        hint: `Stop it first (pyro workspace stop ${ref}, MCP: workspace_stop), fork it, then start it again.`,
        details: { backend: source.backend, state: source.state },
      });
    }
  }

  private async assertNameFree(name: string, selfId: string): Promise<void> {
    const records = await this.store.readAll();
    // A reference of 4 or more characters also matches by id prefix (see resolve): a name that
    // starts another workspace's id would make every use of it ambiguous.
    const prefixOf = name.length >= 4 ? records.find((r) => r.workspace_id !== selfId && r.workspace_id.startsWith(name)) : undefined;
    if (prefixOf) {
      throw new PyroError("invalid_name", `the workspace name ${JSON.stringify(name)} is the start of workspace ${prefixOf.workspace_id}'s id, so references to it would be ambiguous`, {
        hint: "Choose another name.",
      });
    }
    const taken = records.find((r) => r.name === name && r.workspace_id !== selfId);
    if (taken) {
      throw new PyroError("workspace_name_taken", `the name ${JSON.stringify(name)} is used by workspace ${taken.workspace_id}`, {
        hint: "Choose another name, or delete or rename the other workspace.",
      });
    }
  }

  private sandboxSpec(record: WorkspaceRecord) {
    const p = this.store.paths(record.workspace_id);
    return {
      sandboxId: record.workspace_id,
      hostname: (record.name ?? `pyro-${record.workspace_id}`).toLowerCase().replace(/[^a-z0-9-]/g, "-").slice(0, 63),
      layers: record.layers,
      stateDir: p.sandboxState,
      workspaceDir: p.workspace,
      workspaceLayers: isLayered(record)
        ? { lowers: record.workspace_layers.map((l) => this.layers.path(l)), ...upperDirs(p.workspace, record.workspace_upper) }
        : null,
      socketPath: p.socket,
      logPath: p.log,
      limits: { vcpuCount: record.vcpu_count, memMib: record.mem_mib, pidsMax: DEFAULT_PIDS_MAX },
      network: specOf(record.network_policy, networkConfig(record)),
    };
  }

  /** Records activity: bumps last_activity_at and appends to the review journal. */
  async touch(id: string, kind: WorkspaceEvent["kind"], details: Record<string, unknown> = {}): Promise<void> {
    const at = nowIso();
    // At once: two files, whose syncs overlap.
    await Promise.all([
      this.store.withLock(id, async () => {
        const record = await this.store.load(id);
        record.last_activity_at = at;
        await this.store.write(record);
      }),
      this.store.appendEvent(id, { at, kind, details }),
    ]);
  }

  /** The snapshot store of one workspace. */
  snapshots(id: string): SnapshotStore {
    return new SnapshotStore(this.store.paths(id).snapshots);
  }

  async start(ref: string): Promise<WorkspaceInfo> {
    // The sandbox's namespaces are made while the record is read and checked.
    prepareLaunch();
    const id = await this.resolve(ref);
    return this.store.withLock(id, async () => {
      const { record } = await this.reconcile(await this.store.load(id));
      if (record.state === "running") return this.info(record);
      if (record.state === "creating") throw new PyroError("workspace_busy", "the workspace is still being created");
      if (record.layers.length === 0) record.layers = await this.environments.layers(record.environment);
      this.connections.drop(id);
      // A failed workspace may be one a killed call left with a sandbox it never recorded. A
      // layered one may still have a utility sandbox inside its last sandbox's namespace (a sync
      // push that outlived a stop) holding that sandbox's overlay: a second overlay on the same
      // upper must never be live beside it, so that one is ended first.
      const failed = record.state === "failed";
      if (failed || isLayered(record)) await this.store.sweepSandbox(id);
      await this.disk.dir(id, record);
      record.sandbox = await this.startSandbox(record);
      record.state = "running";
      record.failure = null;
      record.last_activity_at = nowIso();
      await this.store.write(record);
      // A workspace a killed reset left failed, started again rather than reset: what that
      // reset set aside is of no use to anyone now. (Only a failed one can have any.)
      if (failed) await this.removeResetLeftovers(record);
      return this.info(record);
    });
  }

  /** Removes the root layers and uppers resets set aside and the record no longer names. */
  private async removeResetLeftovers(record: WorkspaceRecord): Promise<void> {
    const p = this.store.paths(record.workspace_id);
    await removeTrees([...(await staleRoots(p.sandboxState)), ...(isLayered(record) ? await staleUppers(p.workspace, record.workspace_upper) : [])]);
  }

  async stop(ref: string): Promise<WorkspaceInfo> {
    const id = await this.resolve(ref);
    return this.store.withLock(id, async () => {
      const record = await this.store.load(id);
      this.connections.drop(id);
      // The workspace lives on: what its sandbox holds in memory (a VM's page cache) is kept.
      if (record.sandbox) await this.stopSandbox(record, { preserve: true });
      record.sandbox = null;
      if (record.state !== "failed") record.state = "stopped";
      record.last_activity_at = nowIso();
      await this.store.write(record);
      return this.info(record);
    });
  }

  /**
   * Recreates the sandbox from its environment plus a snapshot (default: baseline). Keeps
   * identity, name, labels and the baseline; every process, shell and service is gone, and
   * packages installed since create are gone with the old root layer.
   */
  async reset(ref: string, options: { snapshot?: string } = {}): Promise<WorkspaceInfo & { reset_to: string }> {
    // The new sandbox's namespaces are made while the old one stops.
    prepareLaunch();
    const id = await this.resolve(ref);
    const snapshot = options.snapshot ?? BASELINE;
    // The snapshots' lock too: a snapshot deleted meanwhile would take the layers reset stacks on.
    const info = await this.store.withLock(id, () => this.store.withLock(`${id}.snapshots`, async () => {
      const record = await this.store.load(id);
      if (record.state === "creating") throw new PyroError("workspace_busy", "the workspace is still being created");
      const stack = await this.snapshots(id).stack(snapshot);
      this.connections.drop(id);
      if (record.sandbox) await this.stopSandbox(record);
      // Also a sandbox an earlier, killed reset started and never recorded.
      await this.store.sweepSandbox(id);
      record.sandbox = null;
      // Said before anything is removed: a reset killed from here on leaves a workspace that
      // says so (and that another reset repairs), not one whose root layer is half gone.
      record.state = "failed";
      record.failure = { reason: `a reset to ${JSON.stringify(snapshot)} began and has not finished: it is still running, or the call making it was killed (then call reset again)`, log_tail: "", at: nowIso() };
      await this.store.write(record);
      const p = this.store.paths(id);
      // A fresh root layer: back to exactly what the environment ships. The old one is set aside
      // (a rename) and removed once the reset is done, with the replaced upper, in one exec.
      await setRootAside(p.sandboxState);
      if (isLayered(record) && stack) {
        // The snapshot's layers become the live stack under a fresh, empty upper: nothing is
        // copied. The old upper stays until the record names the new one, so a reset killed
        // before that leaves the workspace as it was (and failed, which another reset repairs).
        const gen = newGeneration();
        await makeUpper(await this.disk.dir(id, record), gen);
        record.workspace_upper = gen;
        record.workspace_layers = stack;
      } else {
        await this.snapshots(id).restore(snapshot, await this.disk.dir(id, record));
      }
      if (record.layers.length === 0) record.layers = await this.environments.layers(record.environment);
      record.sandbox = await this.startSandbox(record);
      record.state = "running";
      record.failure = null;
      record.last_activity_at = nowIso();
      record.reset_count = (record.reset_count ?? 0) + 1;
      record.last_reset_at = record.last_activity_at;
      await this.store.write(record);
      // Now that the record names the new upper: a reset killed before this left the old one
      // named, and whole. Also what earlier, killed resets set aside.
      await this.removeResetLeftovers(record);
      return this.info(record);
    }));
    await this.collectLayers();
    await this.store.appendEvent(id, { at: info.last_activity_at, kind: "reset", details: { snapshot } });
    return { ...info, reset_to: snapshot };
  }

  /**
   * Deletes a workspace: its sandbox as recorded, then everything of it whether recorded or not
   * (see StateStore.removeWorkspace); then finishes a few leftovers of killed calls.
   */
  async delete(ref: string): Promise<{ workspace_id: string; deleted: true }> {
    const id = await this.resolve(ref);
    await this.store.withLock(id, async () => {
      const record = await this.store.read(id);
      this.connections.drop(id);
      // A sandbox that cannot be stopped the recorded way is still swept by its cgroup and mounts.
      if (record?.sandbox) await this.stopSandbox(record).catch(() => undefined);
      await this.store.removeWorkspace(id);
    });
    await this.store.finishInterrupted();
    await this.collectLayers();
    return { workspace_id: id, deleted: true };
  }

  async update(ref: string, opts: UpdateWorkspaceOptions): Promise<WorkspaceInfo> {
    const id = await this.resolve(ref);
    const newName = opts.name === undefined ? undefined : validateWorkspaceName(opts.name);
    const labels = validateLabels({ ...(opts.labels ?? {}) });
    const apply = async () =>
      this.store.withLock(id, async () => {
        const record = await this.store.load(id);
        if (newName !== undefined) record.name = newName;
        for (const key of opts.clearLabels ?? []) delete record.labels[key];
        Object.assign(record.labels, labels);
        validateLabels(record.labels);
        record.last_activity_at = nowIso();
        await this.store.write(record);
        return this.info(record);
      });
    if (newName === undefined) return apply();
    return this.store.withLock("registry", async () => {
      await this.assertNameFree(newName, id);
      return apply();
    });
  }

  /**
   * Deletes workspaces whose TTL has passed, and one-shot workspaces whose owner died. A
   * workspace with an operation in flight is never reaped.
   */
  async reapExpired(): Promise<{ reaped: string[] }> {
    const reaped: string[] = [];
    await this.store.finishInterrupted();
    const now = Date.now();
    for (const r of await this.store.readAll()) {
      const expired = r.expires_at !== null && Date.parse(r.expires_at) <= now;
      const orphaned = r.ephemeral && !creatorAlive(r);
      if (!expired && !orphaned) continue;
      if (this.store.hasLiveOperations(r.workspace_id)) continue;
      try {
        await this.delete(r.workspace_id);
        reaped.push(r.workspace_id);
      } catch {
        // Someone else reaped or deleted it first.
      }
    }
    return { reaped };
  }

  /** The record brought in line with reality (see `reconcile`), under the workspace's lock. */
  async reconciled(id: string): Promise<WorkspaceRecord> {
    return this.store.withLock(id, async () => (await this.reconcile(await this.store.load(id))).record);
  }

  async requireRunning(id: string): Promise<WorkspaceRecord> {
    // Fast path without the lock: a running workspace whose sandbox is alive needs no repair.
    const seen = await this.store.load(id);
    const healthy = await this.sandboxAlive(seen);
    const record = healthy ? seen : await this.reconciled(id);
    if (record.state !== "running") {
      throw new PyroError("workspace_stopped", `workspace ${record.name ?? id} is ${record.state}`, {
        hint: `Call workspace_start (CLI: \`pyro workspace start ${record.name ?? id}\`) first.`,
        details: { state: record.state, ...(record.failure ? { failure: record.failure.reason } : {}) },
      });
    }
    return record;
  }

  /**
   * Starts the workspace's sandbox and gives its agent the workspace's secrets. Keeps the
   * connection the start opened, so the first call does not reconnect.
   */
  private async startSandbox(record: WorkspaceRecord): Promise<SandboxRecord> {
    const id = record.workspace_id;
    assertSameIdentity(record);
    const backend = await this.backendOf(record);
    const started = await backend.start(this.sandboxSpec(record));
    try {
      // Every later call finds the backend through the workspace record: a sandbox from another one would never be stopped.
      if (started.record.backend !== record.backend) throw new PyroError("internal_error", `the ${record.backend} backend started a ${started.record.backend} sandbox`);
      if ((record.secret_names ?? []).length > 0) {
        await started.client.request({ type: "secrets_load", secrets: await loadSecrets(this.store.paths(id).secrets) });
      }
    } catch (err) {
      started.client.close();
      await backend.stop(started.record);
      throw err;
    }
    this.connections.adopt(id, started);
    return started.record;
  }

  /** Stops a workspace's sandbox through the backend that started it. */
  private async stopSandbox(record: WorkspaceRecord, options: { preserve?: boolean } = {}): Promise<void> {
    if (record.sandbox) await (await this.backendOf(record)).stop(record.sandbox, options);
  }

  /** Closes cached agent connections so the process can exit. */
  close(): void {
    this.connections.close();
  }
}

// ---------- helpers ----------

/** What a workspace records about the seed it was made from. */
function seedInfo(seed: SeedSource, origin: CreateWorkspaceOptions["origin"], imported: { entries: number; bytes: number }): WorkspaceRecord["workspace_seed"] {
  return {
    mode: origin ? "project" : seed.kind === "directory" ? "directory" : "archive",
    seed_path: origin ? origin.path : seed.path,
    origin_kind: origin?.kind ?? "host_path",
    origin_ref: origin?.ref ?? seed.path,
    entries: imported.entries,
    bytes: imported.bytes,
  };
}

/** Moves a fork's copied VM root disk from its copy directory into place (a directory of root changes is in place already). */
async function placeForkRoot(forkRoot: RootChanges, copied: string): Promise<void> {
  if (forkRoot.kind !== "file") return;
  if (fs.existsSync(path.join(copied, "root.qcow2"))) await fsp.rename(path.join(copied, "root.qcow2"), forkRoot.path);
  await fsp.rmdir(copied);
}

/**
 * Whether the process creating a workspace still runs: its pid with the start time recorded
 * (a record from before start times were kept is judged by the pid alone).
 */
function creatorAlive(record: WorkspaceRecord): boolean {
  if (record.owner_pid === null) return true;
  if (typeof record.owner_start_time === "number") return processStartTime(record.owner_pid) === record.owner_start_time;
  return pidAlive(record.owner_pid);
}

/**
 * A workspace's files carry the host ids of the identity it was made under; a sandbox of
 * another identity would find them unowned (or, for a workspace an earlier pyro made as host
 * root, owned by host root). It can still be listed, inspected and deleted.
 */
function assertSameIdentity(record: WorkspaceRecord): void {
  const current = sandboxIdentity().key;
  if (record.identity === current) return;
  const what = record.identity === undefined
    ? "by an earlier pyro whose sandboxes ran as host root"
    : "for another sandbox identity (another user, or pyro run as root instead of a user or the other way round)";
  throw new PyroError("workspace_incompatible", `workspace ${record.workspace_id} was made ${what}; it cannot start under this one`, {
    hint: `Delete it (pyro workspace delete ${record.workspace_id}) and create it again${record.identity === undefined ? "; its files stay readable on the host until then" : ", or use it as the user that made it"}.`,
  });
}
