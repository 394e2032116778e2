/**
 * A host that forbids user namespaces gets a clear answer and nothing half-made. Simulated
 * without touching the host: pyro runs inside a user namespace of the test's own whose
 * `user.max_user_namespaces` is 0 (that sysctl is per namespace), exactly what a host with the
 * sysctl at 0 looks like from inside.
 */
import fs from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { CLI, testHome, TEST_ENVIRONMENT } from "../helpers.js";

/** Runs the CLI where no user namespace can be made; returns its exit code and parsed --json. */
function cliWithoutUserNamespaces(home: string, args: string[]): { code: number | null; json: () => { error?: { code: string; message: string; hint?: string } } & Record<string, unknown>; stdout: string; stderr: string } {
  const script = 'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"';
  const r = spawnSync("unshare", ["--user", "--map-root-user", "--", "sh", "-c", script, "pyro-test", process.execPath, CLI, ...args], {
    env: { ...process.env, PYRO_HOME: home },
    encoding: "utf8",
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, json: () => JSON.parse(r.stdout) };
}

describe("a host without user namespaces", () => {
  it("refuses to create a workspace with host_unsupported naming the setting, and leaves nothing", () => {
    const home = testHome("nouserns");
    const r = cliWithoutUserNamespaces(home, ["workspace", "create", TEST_ENVIRONMENT, "--json"]);
    expect(r.code, r.stderr).not.toBe(0);
    const err = r.json().error!;
    expect(err.code).toBe("host_unsupported");
    expect(err.message).toContain("user.max_user_namespaces is 0");
    expect(err.hint).toContain("sysctl");
    // Nothing half-made: no workspace record, directory, socket or lock remains.
    const dirs = (p: string) => (fs.existsSync(p) ? fs.readdirSync(p) : []);
    expect(dirs(path.join(home, "workspaces"))).toEqual([]);
    expect(dirs(path.join(home, "run"))).toEqual([]);
  });

  it("refuses `pyro run` the same way", () => {
    const home = testHome("nouserns-run");
    const r = cliWithoutUserNamespaces(home, ["run", TEST_ENVIRONMENT, "--json", "--", "true"]);
    expect(r.code).not.toBe(0);
    expect(r.json().error!.code).toBe("host_unsupported");
    expect(fs.existsSync(path.join(home, "workspaces")) ? fs.readdirSync(path.join(home, "workspaces")) : []).toEqual([]);
  });

  it("doctor fails its namespace check and says which setting forbids them and how to allow it", () => {
    const home = testHome("nouserns-doctor");
    const r = cliWithoutUserNamespaces(home, ["doctor", "--json"]);
    const report = r.json() as { ok: boolean; checks: { name: string; ok: boolean; detail: string; hint?: string }[] };
    expect(report.ok).toBe(false);
    const check = report.checks.find((c) => c.name === "namespaces")!;
    expect(check.ok).toBe(false);
    expect(check.detail).toContain("user.max_user_namespaces is 0");
    expect(check.hint).toContain("sysctl -w user.max_user_namespaces");
  });
});
