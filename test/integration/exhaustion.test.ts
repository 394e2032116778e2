/**
 * Exhausted workspaces: whatever a command does to the sandbox's CPU, processes or memory, its
 * timeout is honoured, the command is what dies, and the workspace answers the next call. A fork
 * bomb is killed at its timeout (the host kills it when the starved agent cannot) and leaves no
 * process behind; a balloon in /dev/shm meets the tmpfs's bound instead of the agent's memory;
 * a balloon in a command's own memory is OOM-killed and the result says so. Namespace backend
 * (the VM backend's counterparts are in vm.test.ts). Wall times are not asserted: they depend on
 * the machine; the behaviour does not.
 */
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pyro } from "../../src/index.js";
import { pyroGroup } from "../../src/runtime/confine/cgroups.js";
import { findLeaks, noLeaks, testHome, TEST_ENVIRONMENT } from "../helpers.js";

let home: string;
let pyro: Pyro;

beforeAll(() => {
  home = testHome("exhaustion");
  pyro = new Pyro({ home });
});

afterAll(async () => {
  for (const w of (await pyro.listWorkspaces()).workspaces) await pyro.deleteWorkspace(w.workspace_id);
  pyro.close();
  expect(findLeaks(home)).toEqual(noLeaks());
});

/** Host processes in the workspace's cgroup (pids controller), or null on a host without one. */
function hostProcessCount(id: string): number | null {
  const group = pyroGroup();
  for (const dir of [path.join(group.v2, id), path.join("/sys/fs/cgroup/pids", group.v1, id)]) {
    try {
      return fs.readFileSync(path.join(dir, "cgroup.procs"), "utf8").split("\n").filter(Boolean).length;
    } catch {
      // not this hierarchy
    }
  }
  return null;
}

describe("a workspace under exhaustion", () => {
  it("returns a fork bomb's call as timed out at its timeout, kills every process of it, and runs the next command", { timeout: 180_000 }, async () => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT });
    const before = hostProcessCount(ws.workspace_id);
    const started = Date.now();
    // Forks until the pids limit, in the command's own process group, while the shell waits.
    const r = await pyro.execWorkspace(ws.workspace_id, { command: "b() { b | b & }; b; sleep 600", timeoutSeconds: 5 });
    const elapsed = Date.now() - started;
    console.log(`fork bomb under a 5 s timeout: the call returned after ${elapsed} ms`);
    expect(r.timed_out).toBe(true);
    expect(r.outcome).toBe("timed_out");
    expect(r.oom_killed).toBe(false);

    const after = await pyro.execWorkspace(ws.workspace_id, { command: "echo still here; ls /proc | grep -c '^[0-9]'" });
    expect(after.exit_code).toBe(0);
    expect(after.stdout).toMatch(/^still here\n\d+\n$/);
    // The sandbox's init, the agent and this command's shell, ls and grep: nothing of the bomb.
    expect(Number(after.stdout.split("\n")[1])).toBeLessThan(10);
    const count = hostProcessCount(ws.workspace_id);
    if (before !== null && count !== null) expect(count).toBeLessThanOrEqual(before + 1);
    expect((await pyro.statusWorkspace(ws.workspace_id)).state).toBe("running");
    await pyro.deleteWorkspace(ws.workspace_id);
  });

  it("starts commands, shells and services as the OOM killer's first choice, never the agent", async () => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT });
    // The agent is pid 2 of the sandbox (bubblewrap's init is 1).
    const r = await pyro.execWorkspace(ws.workspace_id, { command: "cat /proc/self/oom_score_adj; cat /proc/2/oom_score_adj; sleep 1 & cat /proc/$!/oom_score_adj" });
    const [own, agent, child] = r.stdout.trim().split("\n").map(Number);
    expect(own).toBe(1000);
    expect(child).toBe(1000);
    expect(agent).toBeLessThan(1000);
    await pyro.startService(ws.workspace_id, "score", { command: "cat /proc/self/oom_score_adj > /tmp/score && mv /tmp/score /workspace/service-score; sleep 600", readiness: { type: "file", path: "/workspace/service-score" } });
    expect((await pyro.readWorkspaceFile(ws.workspace_id, "service-score")).content.trim()).toBe("1000");
    const shell = await pyro.openShell(ws.workspace_id);
    await pyro.writeShell(ws.workspace_id, shell.shell_id, { input: "echo score=$(cat /proc/$$/oom_score_adj)" });
    const read = await pyro.readShell(ws.workspace_id, shell.shell_id, { waitForPattern: "score=\\d+", timeoutMs: 10_000 });
    expect(read.output).toMatch(/score=1000/);
    await pyro.deleteWorkspace(ws.workspace_id);
  });

  it("refuses a /dev/shm balloon beyond the memory limit with ENOSPC, and the agent and the workspace go on", { timeout: 180_000 }, async () => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, memMib: 256 });
    const r = await pyro.execWorkspace(ws.workspace_id, { command: "head -c 400m /dev/zero > /dev/shm/balloon; echo rc=$?; du -m /dev/shm/balloon | cut -f1", timeoutSeconds: 60 });
    expect(r.stderr).toMatch(/No space left on device/);
    const [rc, mib] = r.stdout.trim().split("\n");
    expect(rc).toBe("rc=1");
    // A quarter of the 256 MiB limit.
    expect(Number(mib)).toBeLessThanOrEqual(64);
    // /dev itself takes no balloon either: only /dev/shm (bounded) is writable.
    const dev = await pyro.execWorkspace(ws.workspace_id, { command: "echo x > /dev/balloon" });
    expect(dev.exit_code).not.toBe(0);
    expect(dev.stderr).toMatch(/Read-only file system/);

    // With /dev/shm full, a command that then runs out of memory is the one that dies.
    const oom = await pyro.execWorkspace(ws.workspace_id, { command: "head -c 400m /dev/zero | tail > /dev/null", timeoutSeconds: 120 });
    expect(oom.oom_killed).toBe(true);
    expect(oom.exit_code).toBe(137);
    expect((await pyro.statusWorkspace(ws.workspace_id)).state).toBe("running");
    const next = await pyro.execWorkspace(ws.workspace_id, { command: "echo alive" });
    expect(next.stdout).toBe("alive\n");
    await pyro.deleteWorkspace(ws.workspace_id);
  });

  it("says a command's own memory balloon was OOM-killed, and the workspace goes on", { timeout: 180_000 }, async () => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, memMib: 256 });
    // One 400 MiB string cannot fit in 256 MiB.
    const r = await pyro.execWorkspace(ws.workspace_id, { command: ["perl", "-e", 'my $x = "x" x (400 * 1024 * 1024); print length($x)'], timeoutSeconds: 120 });
    expect(r.oom_killed).toBe(true);
    expect(r.signal).toBe("SIGKILL");
    expect(r.timed_out).toBe(false);
    // A command that is merely killed by someone else is not reported as out of memory.
    const killed = await pyro.execWorkspace(ws.workspace_id, { command: "kill -9 $$" });
    expect(killed.signal).toBe("SIGKILL");
    expect(killed.oom_killed).toBe(false);
    expect((await pyro.statusWorkspace(ws.workspace_id)).state).toBe("running");
    const next = await pyro.execWorkspace(ws.workspace_id, { command: "echo alive" });
    expect(next.stdout).toBe("alive\n");
    await pyro.deleteWorkspace(ws.workspace_id);
  });
});
