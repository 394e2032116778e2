/**
 * The daily loop: `pyro prepare ENV` makes sure the environment is built and proves the whole
 * workspace cycle (create → exec → reset → exec → delete) once, then records what it proved in
 * a manifest. `doctor --environment ENV` compares that manifest with the present — environment
 * digest, agent bundle, Node — and says warm, cold or stale.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import type { EnvironmentStore } from "../environments/index.js";
import type { WorkspaceManager } from "./manager.js";
import type { WorkspaceExec } from "./exec.js";
import type { BackendName } from "../runtime/backend.js";
import { agentBundlePath } from "../runtime/agent-runtime.js";
import { readJsonIfExists, writeJsonAtomic } from "../shared/atomic.js";

export interface PreparedManifest {
  environment: string;
  environment_digest: string;
  agent_bundle_sha256: string;
  node_version: string;
  prepared_at: string;
  cycle_ms: Record<string, number>;
}

export interface Readiness {
  environment: string;
  state: "warm" | "cold" | "stale";
  reason: string;
  prepared_at: string | null;
}

function manifestPath(home: string, environment: string): string {
  return path.join(home, "prepared", `${environment.replace(/[^A-Za-z0-9._-]/g, "@")}.json`);
}

function bundleHash(): string {
  return crypto.createHash("sha256").update(fs.readFileSync(agentBundlePath())).digest("hex");
}

export async function environmentReadiness(home: string, environments: EnvironmentStore, environment: string): Promise<Readiness> {
  const manifest = await readJsonIfExists<PreparedManifest>(manifestPath(home, environment));
  if (!(await environments.isInstalled(environment))) {
    return { environment, state: "cold", reason: `${environment} is not built; run \`pyro prepare ${environment}\``, prepared_at: null };
  }
  if (!manifest) return { environment, state: "cold", reason: `${environment} is built but the workspace cycle was never proven; run \`pyro prepare ${environment}\``, prepared_at: null };
  const digest = (await environments.inspect(environment)).digest;
  const changes: string[] = [];
  if (manifest.environment_digest !== digest) changes.push("the environment was rebuilt");
  if (manifest.agent_bundle_sha256 !== bundleHash()) changes.push("pyro's agent changed");
  if (manifest.node_version !== process.version) changes.push(`Node changed (${manifest.node_version} → ${process.version})`);
  if (changes.length) return { environment, state: "stale", reason: `${changes.join("; ")} since \`pyro prepare\`; run it again`, prepared_at: manifest.prepared_at };
  return { environment, state: "warm", reason: "built, and the workspace cycle was proven with this agent and Node", prepared_at: manifest.prepared_at };
}

export async function prepareEnvironment(
  home: string,
  environments: EnvironmentStore,
  workspaces: { manager: WorkspaceManager; exec: WorkspaceExec },
  environment: string,
  options: { force?: boolean; onProgress?: (line: string) => void; backend?: BackendName } = {},
): Promise<Readiness & { cycle_ms: Record<string, number> }> {
  const { manager, exec } = workspaces;
  const say = options.onProgress ?? (() => undefined);
  const before = await environmentReadiness(home, environments, environment);
  if (before.state === "warm" && !options.force) {
    const manifest = (await readJsonIfExists<PreparedManifest>(manifestPath(home, environment)))!;
    return { ...before, cycle_ms: manifest.cycle_ms };
  }
  const t = () => performance.now();
  const cycle: Record<string, number> = {};
  let t0 = t();
  say(`[prepare] environment ${environment}`);
  const manifest = await environments.pull(environment, { onProgress: (e) => say(`[pull] phase=${e.phase} environment=${e.environment}`) });
  cycle.pull = Math.round(t() - t0);
  say("[prepare] proving create → exec → reset → exec → delete");
  t0 = t();
  const ws = await manager.create({ environment, backend: options.backend ?? "namespace", ephemeral: true });
  cycle.create = Math.round(t() - t0);
  try {
    t0 = t();
    await exec.exec(ws.workspace_id, { command: ["true"] });
    cycle.exec = Math.round(t() - t0);
    t0 = t();
    await manager.reset(ws.workspace_id);
    cycle.reset = Math.round(t() - t0);
    t0 = t();
    await exec.exec(ws.workspace_id, { command: ["true"] });
    cycle.exec_after_reset = Math.round(t() - t0);
  } finally {
    t0 = t();
    await manager.delete(ws.workspace_id);
    cycle.delete = Math.round(t() - t0);
  }
  await fsp.mkdir(path.dirname(manifestPath(home, environment)), { recursive: true, mode: 0o700 });
  const prepared: PreparedManifest = {
    environment,
    environment_digest: manifest.digest,
    agent_bundle_sha256: bundleHash(),
    node_version: process.version,
    prepared_at: new Date().toISOString(),
    cycle_ms: cycle,
  };
  await writeJsonAtomic(manifestPath(home, environment), prepared);
  return { environment, state: "warm", reason: "built, and the workspace cycle was just proven", prepared_at: prepared.prepared_at, cycle_ms: cycle };
}
