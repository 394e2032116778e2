/**
 * `workspace fork` against real sandboxes, on all three surfaces: a fork of a running and of a
 * stopped workspace has the source's files, installed root changes, snapshots (so its diff
 * shows everything since the seed), limits, network policy, secrets and labels; the two are
 * independent both ways; a CLI killed during a fork leaves the source usable and the fork
 * complete or `failed`, and deleting everything leaves nothing on the host.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { Pyro, PyroError } from "../../src/index.js";
import { ERROR_META_KEY } from "../../src/mcp/server.js";
import type { WorkspaceInfo } from "../../src/index.js";
import { cli, connectMcp, findLeaks, killedCli, noLeaks, testHome, TEST_BACKEND, TEST_ENVIRONMENT } from "../helpers.js";

let home: string;
let pyro: Pyro;
let seedDir: string;

/** Egress needs slirp4netns and a /dev/net/tun this user can open; without it the policy tested is `off`. */
function egressAvailable(): boolean {
  try {
    fs.accessSync("/dev/net/tun", fs.constants.R_OK | fs.constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

beforeAll(() => {
  home = testHome("fork");
  pyro = new Pyro({ home });
  seedDir = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-fork-seed-"));
  fs.writeFileSync(path.join(seedDir, "README"), "seeded\n");
  for (let d = 0; d < 20; d++) {
    fs.mkdirSync(path.join(seedDir, `d${d}`));
    for (let f = 0; f < 100; f++) fs.writeFileSync(path.join(seedDir, `d${d}`, `f${f}.txt`), `file ${d}/${f}\n`);
  }
});

afterAll(async () => {
  for (const w of (await pyro.listWorkspaces()).workspaces) await pyro.deleteWorkspace(w.workspace_id);
  pyro.close();
  fs.rmSync(seedDir, { recursive: true, force: true });
  expect(findLeaks(home)).toEqual(noLeaks());
});

// A test that fails half-way still removes what it made, so the next test's leak check sees only its own.
afterEach(async () => {
  for (const w of (await pyro.listWorkspaces()).workspaces) await pyro.deleteWorkspace(w.workspace_id);
});

async function codeOf(promise: Promise<unknown>): Promise<string | null> {
  return promise.then(
    () => null,
    (e: unknown) => (e instanceof PyroError ? e.code : `not a PyroError: ${String(e)}`),
  );
}

async function out(ws: string, command: string): Promise<string> {
  const r = await pyro.execWorkspace(ws, { command });
  return r.stdout;
}

/** A source with a change in /workspace, a root change (a tool installed as guest root), a snapshot and a secret. */
async function makeSource(name: string): Promise<WorkspaceInfo> {
  const egress = egressAvailable();
  const source = await pyro.createWorkspace({
    environment: TEST_ENVIRONMENT,
    name,
    labels: { issue: "15" },
    seedPath: seedDir,
    memMib: TEST_BACKEND === "vm" ? 512 : 256,
    diskMib: 512,
    ttlSeconds: 3600,
    secrets: { API_TOKEN: "tok-fork-secret-value" },
    ...(egress ? { networkPolicy: "egress" as const, allowHosts: ["example.com"] } : {}),
  });
  await pyro.execWorkspace(name, { command: "echo changed > README && echo new > added.txt && rm d0/f0.txt" });
  await pyro.createSnapshot(name, "mid");
  await pyro.execWorkspace(name, { command: "printf '#!/bin/sh\\necho tool-ran\\n' > /usr/local/bin/fork-tool && chmod 755 /usr/local/bin/fork-tool && echo after-snapshot > late.txt" });
  return source;
}

/** Everything a fork must carry over from its source, and what it must not. */
async function expectFaithfulFork(source: WorkspaceInfo, fork: WorkspaceInfo): Promise<void> {
  expect(fork.workspace_id).not.toBe(source.workspace_id);
  expect(fork.forked_from).toBe(source.workspace_id);
  expect(fork.state).toBe("running");
  expect(fork.environment).toBe(source.environment);
  expect(fork.backend).toBe(source.backend);
  expect([fork.vcpu_count, fork.mem_mib, fork.disk_mib, fork.ttl_seconds]).toEqual([source.vcpu_count, source.mem_mib, source.disk_mib, source.ttl_seconds]);
  expect(fork.network_policy).toBe(source.network_policy);
  expect(fork.network.allow_hosts).toEqual(source.network.allow_hosts);
  expect(fork.secret_names).toEqual(["API_TOKEN"]);
  expect(fork.command_count).toBe(0);
  const id = fork.workspace_id;
  // /workspace, including a deletion, and the root change made as guest root.
  expect(await out(id, "cat README added.txt late.txt; test -e d0/f0.txt || echo f0-gone; ls d19 | wc -l")).toBe("changed\nnew\nafter-snapshot\nf0-gone\n100\n");
  expect(await out(id, "fork-tool; stat -c '%U %a' /usr/local/bin/fork-tool")).toBe("tool-ran\nroot 755\n");
  // The secret is there, and redacted like in the source.
  const secret = await pyro.execWorkspace(id, { command: "echo $API_TOKEN", secretEnv: ["API_TOKEN"] });
  expect(secret.stdout).toBe("[REDACTED]\n");
  // The baseline came along: the diff shows every change since the seed, not since the fork.
  const diff = await pyro.diffWorkspace(id);
  const changed = diff.changes.map((c) => `${c.change} ${c.path}`).sort();
  expect(changed).toEqual(["added added.txt", "added late.txt", "deleted d0/f0.txt", "modified README"]);
  expect((await pyro.listSnapshots(id)).snapshots.map((s: { name: string }) => s.name)).toEqual(["baseline", "mid"]);
  // And reset to a copied snapshot works on the fork alone.
  await pyro.resetWorkspace(id, { snapshot: "mid" });
  expect(await out(id, "cat README; test -e late.txt || echo late-gone")).toBe("changed\nlate-gone\n");
}

/** Writes in one never show in the other, in /workspace and in the root filesystem. */
async function expectIndependent(a: string, b: string): Promise<void> {
  await pyro.execWorkspace(a, { command: "echo only-a > only-a.txt && rm README && echo a > /etc/only-a" });
  await pyro.execWorkspace(b, { command: "echo only-b > only-b.txt && echo b > /etc/only-b" });
  expect(await out(a, "ls only-*.txt /etc/only-* 2>/dev/null; test -e README || echo no-readme")).toBe("/etc/only-a\nonly-a.txt\nno-readme\n");
  expect(await out(b, "ls only-*.txt /etc/only-* 2>/dev/null; cat README")).toBe("/etc/only-b\nonly-b.txt\nchanged\n");
}

describe("workspace fork", () => {
  it("forks a running workspace from the CLI: files, installed packages, snapshots, limits, network policy, secrets and labels come along; the two are independent", async () => {
    const source = await makeSource("fork-src");
    const r = cli(home, ["workspace", "fork", "fork-src", "--label", "attempt=b", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const fork = r.json() as WorkspaceInfo;
    // Named after the source; the source's labels plus the given one.
    expect(fork.name).toBe("fork-src-fork-1");
    expect(fork.labels).toEqual({ issue: "15", attempt: "b" });
    await expectFaithfulFork(source, fork);
    await expectIndependent(fork.workspace_id, source.workspace_id);
    // The reset of the fork left the source as it was.
    expect(await out(source.workspace_id, "cat late.txt")).toBe("after-snapshot\n");
    // The fork starts its own history: none of the source's commands are in it.
    const forkLog = (await pyro.logsWorkspace(fork.workspace_id)).commands.map((c) => c.command.join(" "));
    expect(forkLog.some((c) => c.includes("fork-tool && chmod"))).toBe(false);
    expect((await pyro.logsWorkspace(source.workspace_id)).commands.some((c) => c.command.join(" ").includes("only-a"))).toBe(false);
    // list and status name the source; --id-only prints only the new id.
    const listed = (await pyro.listWorkspaces()).workspaces.find((w) => w.workspace_id === fork.workspace_id);
    expect(listed?.forked_from).toBe(source.workspace_id);
    expect(cli(home, ["workspace", "status", fork.workspace_id]).stdout).toContain(`Forked from: ${source.workspace_id}`);
    const second = cli(home, ["workspace", "fork", "fork-src", "--id-only"]);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toMatch(/^[a-z2-9]{12}\n$/);
    expect((await pyro.statusWorkspace(second.stdout.trim())).name).toBe("fork-src-fork-2");
    for (const id of [fork.workspace_id, second.stdout.trim(), source.workspace_id]) await pyro.deleteWorkspace(id);
  }, 240_000);

  it("forks a stopped workspace from the SDK, leaves the source stopped and unchanged, and refuses bad input with the usual codes", async () => {
    const source = await makeSource("stopped-src");
    await pyro.stopWorkspace("stopped-src");
    const fork = await pyro.forkWorkspace("stopped-src", { name: "stopped-copy" });
    expect(fork.name).toBe("stopped-copy");
    expect(fork.labels).toEqual({ issue: "15" });
    expect((await pyro.statusWorkspace("stopped-src")).state).toBe("stopped");
    await expectFaithfulFork(source, fork);
    await pyro.startWorkspace("stopped-src");
    await expectIndependent(source.workspace_id, fork.workspace_id);

    expect(await codeOf(pyro.forkWorkspace("no-such-workspace"))).toBe("workspace_not_found");
    expect(await codeOf(pyro.forkWorkspace("stopped-src", { name: "stopped-copy" }))).toBe("workspace_name_taken");
    expect(await codeOf(pyro.forkWorkspace("stopped-src", { name: "bad name" }))).toBe("invalid_name");
    expect(await codeOf(pyro.forkWorkspace("stopped-src", { labels: { "bad key!": "x" } }))).toBe("invalid_label");
    // Nothing was made by the refused forks.
    expect((await pyro.listWorkspaces()).workspaces.map((w) => w.name).sort()).toEqual(["stopped-copy", "stopped-src"]);
    const handle = pyro.workspace("stopped-src");
    const viaHandle = await handle.fork({ labels: { via: "handle" } });
    expect(viaHandle.name).toBe("stopped-src-fork-1");
    for (const id of [fork.workspace_id, viaHandle.workspace_id, source.workspace_id]) await pyro.deleteWorkspace(id);
  }, 240_000);

  it("forks over MCP with the official client, in workspace-full and repro-fix but not workspace-core, with the same error codes", async () => {
    const source = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "mcp-src", seedPath: seedDir });
    await pyro.execWorkspace("mcp-src", { command: "echo from-mcp-source > note.txt" });
    const core = await connectMcp(home, [], "fork-core");
    try {
      expect((await core.client.listTools()).tools.map((t) => t.name)).not.toContain("workspace_fork");
    } finally {
      await core.client.close();
    }
    const { client, stderr } = await connectMcp(home, ["--mode", "repro-fix"], "fork-repro");
    try {
      const result = (await client.callTool({ name: "workspace_fork", arguments: { workspace_id: "mcp-src", name: "mcp-try-2" } })) as CallToolResult;
      expect(result.isError, `${JSON.stringify(result.content)} ${stderr()}`).toBeFalsy();
      const fork = result.structuredContent as unknown as WorkspaceInfo;
      expect(fork.forked_from).toBe(source.workspace_id);
      expect(fork.name).toBe("mcp-try-2");
      expect(await out("mcp-try-2", "cat note.txt")).toBe("from-mcp-source\n");
      const missing = (await client.callTool({ name: "workspace_fork", arguments: { workspace_id: "no-such-workspace" } })) as CallToolResult;
      expect(missing.isError).toBe(true);
      expect((missing._meta?.[ERROR_META_KEY] as { code: string }).code).toBe("workspace_not_found");
      const taken = (await client.callTool({ name: "workspace_fork", arguments: { workspace_id: "mcp-src", name: "mcp-try-2" } })) as CallToolResult;
      expect((taken._meta?.[ERROR_META_KEY] as { code: string }).code).toBe("workspace_name_taken");
    } finally {
      await client.close();
    }
    for (const id of ["mcp-try-2", source.workspace_id]) await pyro.deleteWorkspace(id);
  }, 120_000);
});


describe("a fork killed by SIGKILL", () => {
  it("leaves the source untouched and usable and the fork complete or failed and deletable, round after round, and nothing on the host once deleted", async () => {
    const source = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "kill-src", seedPath: seedDir });
    await pyro.execWorkspace("kill-src", { command: "echo before-forks > state.txt && echo x > /usr/local/bin/kill-marker" });
    const seed = Number(process.env.PYRO_CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));
    console.log(`fork kill seed: ${seed} (PYRO_CRASH_SEED=${seed} repeats it)`);
    let state = seed >>> 0;
    const random = () => {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      return state / 2 ** 32;
    };
    const outcomes: string[] = [];
    for (let round = 0; round < 6; round++) {
      const delayMs = Math.round(300 + random() * 4700);
      const r = await killedCli(home, ["workspace", "fork", "kill-src"], delayMs);
      // The next call (list) finishes what the kill left: no fork stays `creating`.
      const forks = (await pyro.listWorkspaces()).workspaces.filter((w) => w.forked_from === source.workspace_id);
      for (const f of forks) {
        expect(["running", "failed"], `fork ${f.workspace_id} after a kill at ${delayMs} ms is ${f.state}`).toContain(f.state);
        if (f.state === "running") expect(await out(f.workspace_id, "cat state.txt; cat /usr/local/bin/kill-marker")).toBe("before-forks\nx\n");
        else expect(f.failure?.reason).toContain("forking");
        outcomes.push(`${delayMs} ms: ${r.killed ? "killed" : `exit ${r.code}`}, fork ${f.state}`);
        await pyro.deleteWorkspace(f.workspace_id);
      }
      if (forks.length === 0) outcomes.push(`${delayMs} ms: killed before the fork's record was written`);
      // The source is untouched and usable after every round.
      const status = await pyro.statusWorkspace("kill-src");
      expect(status.state).toBe("running");
      expect(await out("kill-src", "cat state.txt; cat /usr/local/bin/kill-marker; ls d7 | wc -l")).toBe("before-forks\nx\n100\n");
    }
    console.log(`fork kill rounds: ${outcomes.join("; ")}`);
    await pyro.deleteWorkspace(source.workspace_id);
    // A fork killed before its record was written leaves a bare directory that later calls remove.
    await pyro.listWorkspaces();
    await pyro.listWorkspaces();
    expect(findLeaks(home)).toEqual(noLeaks());
  }, 240_000);
});
