/**
 * `pyro demo`: the main job of the README in one command. Pulls debian:12 (cached after the
 * first time), seeds the bundled sample repo into a fresh workspace, runs its tests there,
 * shows the result and the command history, and deletes the workspace — also when a step fails.
 */
import path from "node:path";
import type { Pyro } from "../sdk/pyro.js";
import { packageRoot } from "../runtime/agent-runtime.js";

const ENVIRONMENT = "debian:12";

export async function runDemo(pyro: Pyro, json: boolean): Promise<void> {
  const say = (line: string) => {
    if (!json) process.stdout.write(`${line}\n`);
  };
  const seedPath = path.join(packageRoot(), "examples", "sample-repo");

  say(`==> pyro env pull ${ENVIRONMENT}`);
  const manifest = await pyro.pullEnvironment(ENVIRONMENT, {
    onProgress: (e) => {
      if (!json) process.stderr.write(`[pull] phase=${e.phase} environment=${e.environment} ${e.message}\n`);
    },
  });
  say(`    ${manifest.name} ${manifest.digest.slice(0, 19)}… (${manifest.packages.length} packages)`);

  say(`==> pyro workspace create ${ENVIRONMENT} --name pyro-demo-${process.pid} --seed-path ${seedPath}`);
  const ws = await pyro.createWorkspace({ environment: ENVIRONMENT, name: `pyro-demo-${process.pid}`, labels: { purpose: "demo" }, seedPath });
  say(`    workspace ${ws.workspace_id}: ${ws.state}, seeded ${ws.workspace_seed.entries} entries; ${ws.isolation}`);
  try {
    say("==> pyro workspace exec … -- git --version");
    const git = await pyro.execWorkspace(ws.workspace_id, { command: ["git", "--version"] });
    say(`    ${git.stdout.trim()}`);
    say("==> pyro workspace exec … -- sh test.sh");
    const test = await pyro.execWorkspace(ws.workspace_id, { command: ["sh", "test.sh"] });
    for (const line of test.stdout.trimEnd().split("\n")) say(`    ${line}`);
    say(`    exit_code=${test.exit_code} in ${test.duration_ms.toFixed(0)} ms`);
    const logs = await pyro.logsWorkspace(ws.workspace_id);
    say("==> pyro workspace logs …");
    for (const c of logs.commands) say(`    #${c.sequence} exit=${c.exit_code} ${c.duration_ms.toFixed(0)}ms ${c.command.join(" ")}`);
    if (json) process.stdout.write(JSON.stringify({ environment: manifest.name, workspace: ws, test, logs }, null, 2) + "\n");
    if (test.exit_code !== 0) process.exitCode = 1;
  } finally {
    await pyro.deleteWorkspace(ws.workspace_id);
    say(`==> pyro workspace delete ${ws.workspace_id}: done`);
  }
}
