/**
 * Many callers, no daemon: CLI processes, an SDK instance and a killed CLI share workspaces
 * through the state directory alone. What is promised: no lost history or counts, a name is
 * taken by exactly one racing create, callers never serialize behind each other's commands,
 * and a caller that dies mid-command wedges nothing.
 */
import fs from "node:fs";
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { Pyro } from "../../src/index.js";
import { cli, CLI, findLeaks, noLeaks, testHome, TEST_ENVIRONMENT, waitFor } from "../helpers.js";

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** When the process ended (Date.now()). */
  at: number;
  json: <T = Record<string, unknown>>() => T;
}

const homes: string[] = [];
const children: ChildProcess[] = [];

afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  for (const home of homes.splice(0)) {
    for (const w of cli(home, ["workspace", "list", "--json"]).json().workspaces as { workspace_id: string }[]) cli(home, ["workspace", "delete", w.workspace_id]);
    expect(findLeaks(home)).toEqual(noLeaks());
  }
});

function freshHome(label: string): string {
  const home = testHome(label);
  homes.push(home);
  return home;
}

/** Starts the CLI as its own process without waiting for it, so several run at once. */
function startCli(home: string, args: string[]): { child: ChildProcess; exit: Promise<Exit> } {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, PYRO_HOME: home }, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const exit = new Promise<Exit>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code, signal) => resolve({ code, signal, stdout, stderr, at: Date.now(), json: <T>() => JSON.parse(stdout) as T }));
  });
  return { child, exit };
}


/** True while a process with exactly this argv runs inside the sandbox of this workspace. */
function runningIn(workspaceId: string, argv: string[]): boolean {
  const wanted = argv.join("\0") + "\0";
  for (const pid of fs.readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    try {
      if (fs.readFileSync(`/proc/${pid}/cmdline`, "utf8") === wanted && fs.readFileSync(`/proc/${pid}/cgroup`, "utf8").includes(`/${workspaceId}\n`)) return true;
    } catch {
      // exited meanwhile
    }
  }
  return false;
}

function createWorkspace(home: string, name: string): string {
  const r = cli(home, ["workspace", "create", TEST_ENVIRONMENT, "--name", name, "--id-only"]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim();
}

describe("several processes at once, without a daemon", () => {
  it("parallel execs from separate CLI processes all run, and none is lost from the count, the history or the file", async () => {
    const home = freshHome("conc-exec");
    const id = createWorkspace(home, "shared");
    const runs = Array.from({ length: 8 }, () => startCli(home, ["workspace", "exec", "shared", "--shell", "echo $$ >> /workspace/log"]).exit);
    const results = await Promise.all(runs);
    expect(results.map((r) => ({ code: r.code, stderr: r.stderr }))).toEqual(Array.from({ length: 8 }, () => ({ code: 0, stderr: "" })));

    const status = cli(home, ["workspace", "status", "shared", "--json"]).json();
    expect(status.command_count).toBe(8);
    const logs = cli(home, ["workspace", "logs", id, "--json"]).json();
    expect(logs.total).toBe(8);
    const sequences = (logs.commands as { sequence: number }[]).map((c) => c.sequence).sort((a, b) => a - b);
    expect(sequences).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(status.last_command.sequence).toBe(8);

    const lines = cli(home, ["workspace", "exec", id, "--", "cat", "/workspace/log"]).stdout.trim().split("\n");
    expect(lines).toHaveLength(8);
    expect(new Set(lines).size).toBe(8);
  });

  it("of several processes racing to create the same name exactly one wins, and the losers leave nothing behind", async () => {
    const home = freshHome("conc-name");
    const results = await Promise.all(Array.from({ length: 6 }, () => startCli(home, ["workspace", "create", TEST_ENVIRONMENT, "--name", "same-name", "--json"]).exit));
    const winners = results.filter((r) => r.code === 0);
    const losers = results.filter((r) => r.code !== 0);
    expect(winners).toHaveLength(1);
    expect(losers.map((r) => ({ code: r.code, error: r.json<{ error: { code: string } }>().error.code }))).toEqual(Array.from({ length: 5 }, () => ({ code: 1, error: "workspace_name_taken" })));

    const winner = winners[0]!.json<{ workspace_id: string }>();
    expect(winner).toMatchObject({ name: "same-name", state: "running" });
    const list = cli(home, ["workspace", "list", "--json"]).json();
    expect(list.count).toBe(1);
    expect(list.workspaces[0]).toMatchObject({ workspace_id: winner.workspace_id, name: "same-name", state: "running" });
    // nothing half-made on disk or on the host: one workspace directory, one socket, one sandbox
    const leaks = findLeaks(home);
    expect(leaks.workspaces).toEqual([winner.workspace_id]);
    expect(leaks.sockets).toEqual([`${winner.workspace_id}.sock`]);
    expect(leaks.processes.every((p) => p.includes(winner.workspace_id))).toBe(true);
    expect(cli(home, ["workspace", "exec", "same-name", "--", "hostname"]).stdout).toBe("same-name\n");
  });

  it("an SDK instance and a CLI process use the same workspace at the same time without waiting for each other", async () => {
    const home = freshHome("conc-sdk");
    const id = createWorkspace(home, "mixed");
    const pyro = new Pyro({ home });
    try {
      // The SDK's command cannot finish before the CLI's has written: if either held the
      // workspace for the other, the two would wait on each other until the SDK's gave up (exit 9).
      const sdk = pyro.execWorkspace("mixed", {
        command: "i=0; until grep -q from-cli log 2>/dev/null; do sleep 0.2; i=$((i+1)); [ $i -lt 150 ] || exit 9; done; echo from-sdk >> log; echo sdk-done",
        timeoutSeconds: 60,
      });
      await waitFor("the SDK's command runs", () => runningIn(id, ["sleep", "0.2"]), 20_000);
      const fromCli = await startCli(home, ["workspace", "exec", "mixed", "--shell", "echo from-cli >> log; echo cli-done"]).exit;
      const fromSdk = await sdk;
      expect({ code: fromCli.code, stdout: fromCli.stdout, stderr: fromCli.stderr }).toEqual({ code: 0, stdout: "cli-done\n", stderr: "" });
      expect({ exit_code: fromSdk.exit_code, stdout: fromSdk.stdout }).toEqual({ exit_code: 0, stdout: "sdk-done\n" });

      expect((await pyro.execWorkspace(id, { command: ["cat", "log"] })).stdout).toBe("from-cli\nfrom-sdk\n");
      const status = cli(home, ["workspace", "status", id, "--json"]).json();
      expect(status.command_count).toBe(3);
      const logs = await pyro.logsWorkspace(id);
      expect(logs.commands.map((c) => c.sequence)).toEqual([1, 2, 3]);
    } finally {
      pyro.close();
    }
  });

  it("a CLI killed with SIGKILL in the middle of an exec does not wedge the workspace", async () => {
    const home = freshHome("conc-kill");
    const id = createWorkspace(home, "survivor");
    const { child, exit } = startCli(home, ["workspace", "exec", "survivor", "--", "sleep", "5"]);
    await waitFor("sleep 5 runs in the workspace", () => runningIn(id, ["sleep", "5"]), 10_000);
    child.kill("SIGKILL");
    expect((await exit).signal).toBe("SIGKILL");

    const t0 = Date.now();
    const next = cli(home, ["workspace", "exec", "survivor", "--", "echo", "still usable"], { timeoutMs: 20_000 });
    expect({ code: next.code, stdout: next.stdout, stderr: next.stderr }).toEqual({ code: 0, stdout: "still usable\n", stderr: "" });
    expect(Date.now() - t0).toBeLessThan(3000);

    // metadata changes (which take the workspace lock) are not blocked either
    const t1 = Date.now();
    const renamed = cli(home, ["workspace", "update", "survivor", "--label", "after=kill", "--json"], { timeoutMs: 20_000 });
    expect(renamed.code).toBe(0);
    expect(renamed.json().labels).toEqual({ after: "kill" });
    expect(cli(home, ["workspace", "status", id, "--json"]).json().state).toBe("running");
    expect(Date.now() - t1).toBeLessThan(3000);
  });
});
