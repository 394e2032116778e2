/**
 * Services on the host side: start (with typed readiness), list, status, logs, stop — each a
 * call into the workspace's agent, which owns the processes and their logs (outside
 * /workspace). The host keeps a small registry of services it started, so that after a
 * workspace stop or reset, `service list` still names them and says they are not running
 * rather than forgetting them silently. Results are bounded and redacted by the agent.
 */
import path from "node:path";
import type { WorkspaceManager } from "./manager.js";
import type { AgentLink } from "./agent-link.js";
import type { WorkspaceNetwork } from "./workspace-network.js";
import { readJsonIfExists, writeJsonAtomic } from "../shared/atomic.js";
import { PyroError } from "../shared/errors.js";
import { validateCommandSize, validateEnv, validateName, validatePositive, validatePositiveInt } from "./validate.js";
import { commandEnv } from "./command-env.js";
import { WORKSPACE_GUEST_PATH } from "../protocol/messages.js";
import type { Readiness, ServiceStatus as AgentServiceStatus } from "../protocol/messages.js";
import { parsePublish, publishedInfo } from "./network.js";
import type { PublishInput, PublishedPortInfo } from "./network.js";
import type { PublishedPort } from "../runtime/backend.js";

export const DEFAULT_READY_TIMEOUT_SECONDS = 30;
export const DEFAULT_READY_INTERVAL_MS = 500;
export const DEFAULT_SERVICE_LOG_TAIL_LINES = 50;

export type { Readiness } from "../protocol/messages.js";

/**
 * A service's status as the host reports it: the agent's status (protocol/messages.ts
 * `ServiceStatus`) with the ports published for it. `started_at` is null only for a service
 * the registry names without knowing when it started.
 */
export interface ServiceStatus extends Omit<AgentServiceStatus, "started_at"> {
  started_at: string | null;
  /** Guest ports of this service reachable from the host (127.0.0.1 only); gone when it stops. */
  published_ports: PublishedPortInfo[];
}

export interface StartServiceOptions {
  /** A string runs through /bin/sh -c; an array runs as argv. */
  command: string | string[];
  cwd?: string;
  readiness?: Readiness;
  readyTimeoutSeconds?: number;
  readyIntervalMs?: number;
  env?: Record<string, string>;
  secretEnv?: string[] | Record<string, string>;
  /**
   * Guest TCP ports to publish on the host's 127.0.0.1: `8000` (any free host port), `"8000:18000"`
   * or `{ guestPort, hostPort? }`. Needs the network policy egress+published-ports. The service may
   * listen on 127.0.0.1 or 0.0.0.0 inside. Removed when the service stops or the workspace stops.
   */
  publish?: PublishInput[];
}

interface RegistryEntry {
  command: string[];
  shell: boolean;
  cwd: string;
  readiness: Readiness | null;
  started_at: string;
}

const RUNNING = new Set(["starting", "ready", "running"]);

function validateReadiness(r: unknown): Readiness | null {
  if (r === undefined || r === null) return null;
  if (typeof r !== "object") throw new PyroError("invalid_argument", "readiness must be an object");
  const x = r as Record<string, unknown>;
  switch (x.type) {
    case "file":
      if (typeof x.path !== "string" || !x.path) break;
      return { type: "file", path: x.path };
    case "tcp":
      if (typeof x.port !== "number" || !Number.isInteger(x.port) || x.port < 1 || x.port > 65535) break;
      return { type: "tcp", port: x.port, ...(typeof x.host === "string" ? { host: x.host } : {}) };
    case "http":
      if (typeof x.url !== "string" || !/^https?:\/\//.test(x.url)) break;
      return { type: "http", url: x.url };
    case "command":
      if (typeof x.command !== "string" || !x.command) break;
      return { type: "command", command: x.command };
  }
  throw new PyroError("invalid_argument", `invalid readiness ${JSON.stringify(r).slice(0, 200)}`, {
    hint: 'Use {"type":"file","path":...}, {"type":"tcp","port":N}, {"type":"http","url":"http://127.0.0.1:N/"} or {"type":"command","command":...}.',
  });
}

export class WorkspaceServices {
  constructor(
    private readonly manager: WorkspaceManager,
    private readonly link: AgentLink,
    private readonly network: WorkspaceNetwork,
  ) {}

  private registryFile(id: string): string {
    return path.join(this.manager.store.paths(id).dir, "services.json");
  }

  private async registry(id: string): Promise<Record<string, RegistryEntry>> {
    return (await readJsonIfExists<Record<string, RegistryEntry>>(this.registryFile(id))) ?? {};
  }

  async start(ref: string, name: string, options: StartServiceOptions): Promise<ServiceStatus & { workspace_id: string }> {
    validateName(name, "service name");
    const id = await this.manager.resolve(ref);
    const command = options.command;
    const isShell = typeof command === "string";
    if (isShell ? command.length === 0 : !Array.isArray(command) || command.length === 0) throw new PyroError("invalid_argument", "a service needs a command");
    const readiness = validateReadiness(options.readiness);
    const timeout = validatePositive(options.readyTimeoutSeconds ?? DEFAULT_READY_TIMEOUT_SECONDS, "ready_timeout_seconds", 3600, "invalid_timeout");
    const interval = validatePositiveInt(options.readyIntervalMs ?? DEFAULT_READY_INTERVAL_MS, "ready_interval_ms", 60_000);
    const env = validateEnv({ ...(options.env ?? {}) });
    const cwd = path.posix.resolve(WORKSPACE_GUEST_PATH, options.cwd ?? ".");
    validateCommandSize({ command: isShell ? [command] : command, env, cwd });
    const publish = parsePublish(options.publish);
    const { record, client, secretEnv } = await this.link.attach(id, options.secretEnv);
    let published: PublishedPort[] = [];
    if (publish.length > 0) {
      // Ports are taken before the service starts, so a busy host port fails the call with
      // nothing started. A running service of this name keeps its ports (the agent refuses it).
      const live = (await client.request({ type: "service_list" })).header.services;
      if (!live.some((s) => s.name === name && RUNNING.has(s.state))) {
        await this.network.unpublishService(id, name);
        published = await this.network.publishPorts(id, name, publish);
      }
    }
    let h: AgentServiceStatus;
    try {
      ({ header: h } = await client.request({
        type: "service_start",
        name,
        ...(isShell ? { shell: command } : { argv: command }),
        cwd,
        env: commandEnv(record, env),
        secretEnv,
        readiness,
        readyTimeoutMs: Math.round(timeout * 1000),
        readyIntervalMs: interval,
      }));
    } catch (err) {
      if (published.length > 0) await this.network.unpublishService(id, name);
      throw err;
    }
    if (published.length > 0 && !RUNNING.has(h.state)) {
      await this.network.unpublishService(id, name);
      published = [];
    }
    const redactor = await this.link.redactor(record);
    await this.manager.store.withLock(`${id}.services`, async () => {
      const reg = await this.registry(id);
      // The whole record: a cwd or a readiness check can carry a value as well as the command.
      reg[name] = redactor.redactValue({ command: isShell ? [command] : command, shell: isShell, cwd, readiness, started_at: h.started_at });
      await writeJsonAtomic(this.registryFile(id), reg);
    });
    await this.manager.touch(id, "service_start", { name, state: h.state, readiness: readiness?.type ?? null, ...(published.length > 0 ? { published: published.map((p) => p.host_port) } : {}) });
    return { workspace_id: id, ...clean(h, published) };
  }

  /** Live services from the agent, plus registered ones the agent no longer has (stopped with the workspace). */
  async list(ref: string): Promise<{ workspace_id: string; count: number; running_count: number; services: ServiceStatus[] }> {
    const id = await this.manager.resolve(ref);
    const services = await this.all(id);
    return { workspace_id: id, count: services.length, running_count: services.filter((s) => RUNNING.has(s.state)).length, services };
  }

  /** For status/list counts: never throws. */
  async counts(id: string, running: boolean): Promise<{ service_count: number; running_service_count: number }> {
    try {
      const services = running ? await this.all(id) : Object.keys(await this.registry(id)).map((n) => ({ name: n, state: "stopped" }));
      return { service_count: services.length, running_service_count: services.filter((s) => RUNNING.has(s.state)).length };
    } catch {
      return { service_count: 0, running_service_count: 0 };
    }
  }

  private async all(id: string): Promise<ServiceStatus[]> {
    const reg = await this.registry(id);
    let live: ServiceStatus[] = [];
    if (await this.manager.isRunning(id)) {
      const client = await this.link.client(id);
      const { header: h } = await client.request({ type: "service_list" });
      const ports = await this.network.publishedPorts(id);
      live = h.services.map((s) => clean(s, ports));
    }
    const names = new Set(live.map((s) => s.name));
    for (const [name, entry] of Object.entries(reg)) {
      if (names.has(name)) continue;
      live.push({
        name,
        state: "stopped",
        pid: null,
        command: entry.command,
        shell: entry.shell,
        cwd: entry.cwd,
        readiness: entry.readiness,
        started_at: entry.started_at,
        ready_at: null,
        ended_at: null,
        uptime_ms: null,
        exit_code: null,
        signal: null,
        reason: "not running: the workspace was stopped or reset since it started; services are not restarted automatically — start it again with service_start",
        published_ports: [],
      });
    }
    return live.sort((a, b) => a.name.localeCompare(b.name));
  }

  async status(ref: string, name: string): Promise<ServiceStatus & { workspace_id: string }> {
    const id = await this.manager.resolve(ref);
    const found = (await this.all(id)).find((s) => s.name === name);
    if (!found) throw new PyroError("service_not_found", `workspace ${id} has no service named ${JSON.stringify(name)}`, { hint: "List services with service_list." });
    return { workspace_id: id, ...found };
  }

  async logs(ref: string, name: string, options: { tailLines?: number; all?: boolean } = {}) {
    const id = await this.manager.resolve(ref);
    if (options.tailLines !== undefined && options.all) throw new PyroError("invalid_argument", "give either tail_lines or all, not both");
    const tail = options.all ? undefined : validatePositiveInt(options.tailLines ?? DEFAULT_SERVICE_LOG_TAIL_LINES, "tail_lines", 100_000);
    const { record, client } = await this.link.attach(id);
    const { header: h } = await client.request({ type: "service_logs", name, ...(tail !== undefined ? { tail_lines: tail } : {}), ...(options.all ? { all: true } : {}) });
    return {
      workspace_id: id,
      name: h.name,
      stdout: h.stdout.slice(-262_144),
      stderr: h.stderr.slice(-262_144),
      tail_lines: h.tail_lines,
      stdout_bytes: h.stdout_bytes,
      stderr_bytes: h.stderr_bytes,
      truncated: h.truncated,
      network_notices: await this.network.notices(record),
    };
  }

  async stop(ref: string, name: string, options: { graceSeconds?: number } = {}): Promise<ServiceStatus & { workspace_id: string }> {
    const id = await this.manager.resolve(ref);
    const grace = options.graceSeconds === undefined ? 5 : validatePositive(options.graceSeconds, "grace_seconds", 600);
    const { client } = await this.link.attach(id);
    let h: AgentServiceStatus;
    try {
      ({ header: h } = await client.request({ type: "service_stop", name, grace_ms: Math.round(grace * 1000) }));
    } finally {
      // The published ports go with the service, also when the agent no longer knew it.
      await this.network.unpublishService(id, name);
    }
    await this.manager.touch(id, "service_stop", { name });
    return { workspace_id: id, ...clean(h, []) };
  }
}

/** The status fields in their documented order, with the service's published ports. */
function clean(h: AgentServiceStatus, ports: PublishedPort[]): ServiceStatus {
  const { name, state, pid, command, shell, cwd, readiness, started_at, ready_at, ended_at, uptime_ms, exit_code, signal, reason, log_tail } = h;
  return {
    name,
    state,
    pid,
    command,
    shell,
    cwd,
    readiness,
    started_at,
    ready_at,
    ended_at,
    uptime_ms,
    exit_code,
    signal,
    reason,
    ...(log_tail ? { log_tail } : {}),
    published_ports: ports.filter((p) => p.service === name).map(publishedInfo),
  };
}
