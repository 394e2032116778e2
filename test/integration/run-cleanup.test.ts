/**
 * `pyro run` is one-shot: whatever way it ends — success, a failing command, a timeout, or the
 * user pressing Ctrl-C / a supervisor sending SIGTERM — no sandbox process, mount, cgroup,
 * socket or workspace directory outlives it. Each case runs in its own state directory so a
 * leak is attributed to the case that caused it.
 */
import fs from "node:fs";
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { cli, CLI, findLeaks, noLeaks, testHome, TEST_ENVIRONMENT, waitFor } from "../helpers.js";
import type { Leaks } from "../helpers.js";

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

const started: { home: string; child: ChildProcess }[] = [];

// A failing case must not leave its sandbox on the host: kill a CLI still running, then let
// pyro's own reaper remove one-shot workspaces whose owner is gone.
afterEach(() => {
  for (const { home, child } of started.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    if (JSON.stringify(findLeaks(home)) !== JSON.stringify(noLeaks())) cli(home, ["workspace", "reap"]);
  }
});

/** Starts the CLI without waiting for it, so the test can signal it mid-run. */
function startCli(home: string, args: string[]): { child: ChildProcess; exit: Promise<Exit> } {
  const t0 = Date.now();
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, PYRO_HOME: home }, stdio: ["ignore", "pipe", "pipe"] });
  started.push({ home, child });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const exit = new Promise<Exit>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code, signal) => resolve({ code, signal, stdout, stderr, ms: Date.now() - t0 }));
  });
  return { child, exit };
}


/** Leaks as they settle: polls until nothing is left, or returns what still is after the limit. */
async function leaksAfterExit(home: string, timeoutMs = 5000): Promise<Leaks> {
  const deadline = Date.now() + timeoutMs;
  let leaks = findLeaks(home);
  while (JSON.stringify(leaks) !== JSON.stringify(noLeaks()) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    leaks = findLeaks(home);
  }
  return leaks;
}

/** True once a process with exactly this argv runs inside a sandbox of this state directory. */
function runningInSandbox(home: string, argv: string[]): boolean {
  const ids = findLeaks(home).workspaces;
  if (ids.length === 0) return false;
  const wanted = argv.join("\0") + "\0";
  for (const pid of fs.readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    try {
      if (fs.readFileSync(`/proc/${pid}/cmdline`, "utf8") !== wanted) continue;
      const cgroup = fs.readFileSync(`/proc/${pid}/cgroup`, "utf8");
      if (ids.some((id) => cgroup.includes(`/${id}\n`))) return true;
    } catch {
      // exited meanwhile
    }
  }
  return false;
}

describe("pyro run leaves nothing behind", () => {
  it("when the command succeeds", async () => {
    const home = testHome("run-ok");
    const r = await startCli(home, ["run", TEST_ENVIRONMENT, "--", "sh", "-c", "echo done"]).exit;
    expect(r).toMatchObject({ code: 0, stdout: "done\n" });
    expect(await leaksAfterExit(home)).toEqual(noLeaks());
  });

  it("when the command fails, exiting with the command's code", async () => {
    const home = testHome("run-fail");
    const r = await startCli(home, ["run", TEST_ENVIRONMENT, "--", "sh", "-c", "echo oops >&2; exit 3"]).exit;
    expect(r).toMatchObject({ code: 3, stderr: "oops\n" });
    expect(await leaksAfterExit(home)).toEqual(noLeaks());
  });

  it("when the command times out, exiting 124 without waiting for it", async () => {
    const home = testHome("run-timeout");
    const r = await startCli(home, ["run", TEST_ENVIRONMENT, "--timeout-seconds", "0.5", "--", "sleep", "30"]).exit;
    expect(r.code).toBe(124);
    expect(r.stderr).toContain("timed out");
    expect(r.ms).toBeLessThan(10_000);
    expect(await leaksAfterExit(home)).toEqual(noLeaks());
  });

  for (const [signal, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const) {
    it(`when the CLI gets ${signal} while the command runs, exiting ${code}`, async () => {
      const home = testHome(`run-${signal.toLowerCase()}`);
      const { child, exit } = startCli(home, ["run", TEST_ENVIRONMENT, "--", "sleep", "30"]);
      await waitFor("sleep 30 runs in the sandbox", () => runningInSandbox(home, ["sleep", "30"]), 20_000);
      const signalledAt = Date.now();
      child.kill(signal);
      const r = await exit;
      expect({ code: r.code, signal: r.signal }).toEqual({ code, signal: null });
      expect(Date.now() - signalledAt).toBeLessThan(10_000);
      expect(await leaksAfterExit(home)).toEqual(noLeaks());
    });
  }

  it("when the user presses Ctrl-C again and again, the cleanup the first one started still completes", async () => {
    const home = testHome("run-repeated-sigint");
    const { child, exit } = startCli(home, ["run", TEST_ENVIRONMENT, "--", "sleep", "30"]);
    await waitFor("sleep 30 runs in the sandbox", () => runningInSandbox(home, ["sleep", "30"]), 20_000);
    // An impatient user: Ctrl-C every few milliseconds until the CLI has gone.
    let exited = false;
    void exit.then(() => (exited = true));
    for (let i = 0; i < 400 && !exited; i++) {
      child.kill("SIGINT");
      await new Promise((r) => setTimeout(r, 3));
    }
    const r = await exit;
    // No later pyro call (whose reaper would tidy up) runs before this check.
    const leaks = await leaksAfterExit(home);
    expect({ code: r.code, signal: r.signal, leaks }).toEqual({ code: 130, signal: null, leaks: noLeaks() });
  });

  it("when the CLI gets SIGINT as soon as its sandbox appears, before the command may have started", async () => {
    const home = testHome("run-early-sigint");
    const { child, exit } = startCli(home, ["run", TEST_ENVIRONMENT, "--", "sleep", "30"]);
    await waitFor("a sandbox process exists", () => findLeaks(home).processes.length > 0, 20_000);
    child.kill("SIGINT");
    const r = await exit;
    expect({ code: r.code, signal: r.signal, stderr: r.stderr }).toEqual({ code: 130, signal: null, stderr: "" });
    expect(await leaksAfterExit(home)).toEqual(noLeaks());
  });
});
