/**
 * The `pyro` command line end to end, spawned as a user (or an agent's shell tool) would run it:
 * the golden path of an issue, exit codes that scripts rely on, byte-exact streams, and error
 * codes that stay stable under `--json`.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli, CLI, findLeaks, noLeaks, testHome, TEST_ENVIRONMENT } from "../helpers.js";

let home: string;
let seedDir: string;

beforeAll(() => {
  home = testHome("cli");
  seedDir = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-cli-seed-"));
  fs.writeFileSync(path.join(seedDir, "README.md"), "issue 123: fix the parser\n");
});

afterAll(() => {
  for (const w of cli(home, ["workspace", "list", "--json"]).json().workspaces as { workspace_id: string }[]) {
    cli(home, ["workspace", "delete", w.workspace_id]);
  }
  expect(findLeaks(home)).toEqual(noLeaks());
});

type CliResult = ReturnType<typeof cli>;

/** The CLI with stdout and stderr as raw bytes, for output that is not text. */
function cliBytes(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, PYRO_HOME: home }, timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A `--json` failure: exit 1, one JSON error object on stdout with the code and a hint. */
function expectJsonError(r: CliResult, code: string, exitCode = 1): { code: string; message: string; hint?: string } {
  expect({ code: r.code, stdout: r.stdout }).toMatchObject({ code: exitCode });
  const error = r.json().error as { code: string; message: string; hint?: string };
  expect(error.code).toBe(code);
  expect(error.message.length).toBeGreaterThan(0);
  return error;
}

function workspaceCount(): number {
  return cli(home, ["workspace", "list", "--json"]).json().count as number;
}

describe("the golden path of an issue, from the command line", () => {
  it("lists debian:12 as an installed environment", () => {
    const r = cli(home, ["env", "list"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^debian:12\s+\[installed\]/m);
    expect(r.stdout).toMatch(/^debian:12-build\s+\[not installed\]/m);
    const json = cli(home, ["env", "list", "--json"]).json();
    expect(json.environments).toContainEqual(expect.objectContaining({ name: TEST_ENVIRONMENT, installed: true }));
  });

  it("runs a one-shot command and exits with its exit code", () => {
    const ok = cli(home, ["run", TEST_ENVIRONMENT, "--", "git", "--version"]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^git version 2\.\d+/);
    const failed = cli(home, ["run", TEST_ENVIRONMENT, "--", "sh", "-c", "exit 5"]);
    expect(failed.code).toBe(5);
    expect(findLeaks(home)).toEqual(noLeaks());
  });

  it("creates a named, labelled, seeded workspace, works in it, and stops, starts and deletes it", () => {
    const created = cli(home, ["workspace", "create", TEST_ENVIRONMENT, "--name", "fix-123", "--label", "issue=123", "--seed-path", seedDir, "--json"]);
    expect(created.code).toBe(0);
    const ws = created.json();
    expect(ws).toMatchObject({ name: "fix-123", labels: { issue: "123" }, state: "running", environment: TEST_ENVIRONMENT });
    expect(ws.workspace_seed).toMatchObject({ mode: "directory", seed_path: seedDir, entries: 1 });

    // --id-only is for scripts: `WS=$(pyro workspace create debian:12 --id-only)`
    const idOnly = cli(home, ["workspace", "create", TEST_ENVIRONMENT, "--id-only"]);
    expect(idOnly.code).toBe(0);
    expect(idOnly.stdout).toMatch(/^[a-z2-9]{12}\n$/);
    const other = idOnly.stdout.trim();
    expect(other).not.toBe(ws.workspace_id);

    // list is sorted by last activity, newest first
    let list = cli(home, ["workspace", "list", "--json"]).json();
    expect(list.count).toBe(2);
    expect(list.workspaces.map((w: { workspace_id: string }) => w.workspace_id)).toEqual([other, ws.workspace_id]);

    const status = cli(home, ["workspace", "status", "fix-123"]);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain(`Workspace: ${ws.workspace_id} (fix-123)`);
    expect(status.stdout).toContain("State: running");
    expect(status.stdout).toContain("Labels: issue=123");

    const updated = cli(home, ["workspace", "update", "fix-123", "--name", "fix-124", "--label", "k=v", "--clear-label", "issue", "--json"]);
    expect(updated.code).toBe(0);
    expect(updated.json()).toMatchObject({ workspace_id: ws.workspace_id, name: "fix-124", labels: { k: "v" } });
    expect(updated.json().labels).not.toHaveProperty("issue");
    expectJsonError(cli(home, ["workspace", "status", "fix-123", "--json"]), "workspace_not_found");
    // the update counts as activity, so the renamed workspace now leads the list
    list = cli(home, ["workspace", "list", "--json"]).json();
    expect(list.workspaces.map((w: { workspace_id: string }) => w.workspace_id)).toEqual([ws.workspace_id, other]);
    const stamps = list.workspaces.map((w: { last_activity_at: string }) => w.last_activity_at);
    expect([...stamps].sort().reverse()).toEqual(stamps);

    let commands = 0;
    const exec = (args: string[], input?: string) => {
      commands++;
      return cli(home, ["workspace", "exec", "fix-124", ...args], input === undefined ? {} : { input });
    };

    const cat = exec(["--", "cat", "README.md"]);
    expect(cat.code).toBe(0);
    expect(cat.stdout).toBe("issue 123: fix the parser\n");

    expect(exec(["--shell", "echo a | tr a b"]).stdout).toBe("b\n");
    // argv form: no shell interprets the arguments
    expect(exec(["--", "echo", "a | tr a b", "$HOME"]).stdout).toBe("a | tr a b $HOME\n");
    expect(exec(["--env", "K=V", "--env", "GREETING=hello there", "--shell", "echo $K; echo $GREETING"]).stdout).toBe("V\nhello there\n");
    expect(exec(["--shell", "mkdir -p sub/dir"]).code).toBe(0);
    expect(exec(["--cwd", "sub/dir", "--", "pwd"]).stdout).toBe("/workspace/sub/dir\n");

    const t0 = Date.now();
    const slow = exec(["--timeout-seconds", "0.5", "--", "sleep", "5"]);
    expect(slow.code).toBe(124);
    expect(slow.stderr).toContain("timed out");
    expect(Date.now() - t0).toBeLessThan(4000);

    const echoed = exec(["--stdin", "--", "cat"], "line one\nline two\n");
    expect(echoed.code).toBe(0);
    expect(echoed.stdout).toBe("line one\nline two\n");
    // without --stdin the command's stdin is empty, whatever the caller pipes in
    expect(exec(["--", "cat"], "not forwarded").stdout).toBe("");

    const streams = exec(["--shell", "echo to-out; echo to-err >&2; exit 3"]);
    expect(streams).toMatchObject({ code: 3, stdout: "to-out\n", stderr: "to-err\n" });

    commands++;
    const binary = cliBytes(["workspace", "exec", "fix-124", "--", "printf", "\\000\\377\\033[0m\\n"]);
    expect(binary.code).toBe(0);
    expect([...binary.stdout]).toEqual([0, 255, 27, 91, 48, 109, 10]);
    expect(binary.stderr.length).toBe(0);

    const jsonExec = exec(["--json", "--", "sh", "-c", "echo hi; exit 2"]);
    expect(jsonExec.code).toBe(2);
    expect(jsonExec.json()).toMatchObject({ workspace_id: ws.workspace_id, exit_code: 2, outcome: "exited", stdout: "hi\n", sequence: commands });

    const logs = cli(home, ["workspace", "logs", "fix-124", "--json"]);
    expect(logs.code).toBe(0);
    expect(logs.json()).toMatchObject({ workspace_id: ws.workspace_id, total: commands, count: commands });
    const history = logs.json().commands as { sequence: number; command: string[]; shell: boolean; exit_code: number | null; timed_out: boolean }[];
    expect(history.map((c) => c.sequence)).toEqual(Array.from({ length: commands }, (_, i) => i + 1));
    expect(history[0]).toMatchObject({ command: ["cat", "README.md"], shell: false, exit_code: 0 });
    expect(history.find((c) => c.timed_out)).toMatchObject({ command: ["sleep", "5"] });
    const humanLogs = cli(home, ["workspace", "logs", "fix-124", "--limit", "2"]);
    expect(humanLogs.code).toBe(0);
    expect(humanLogs.stdout).toContain(`showing the last 2 of ${commands}`);
    expect(humanLogs.stdout).toMatch(new RegExp(`^#${commands} .* exit=2 `, "m"));

    const stopped = cli(home, ["workspace", "stop", "fix-124"]);
    expect(stopped.code).toBe(0);
    expect(stopped.stdout).toContain("State: stopped");
    expect(findLeaks(home).processes.filter((p) => p.includes(ws.workspace_id))).toEqual([]);
    const refused = expectJsonError(cli(home, ["workspace", "exec", "fix-124", "--json", "--", "true"]), "workspace_stopped");
    expect(refused.hint).toContain("pyro workspace start fix-124");

    const started = cli(home, ["workspace", "start", "fix-124", "--json"]);
    expect(started.code).toBe(0);
    expect(started.json().state).toBe("running");
    expect(exec(["--", "ls", "sub"]).stdout).toBe("dir\n");
    expect(exec(["--", "cat", "README.md"]).stdout).toBe("issue 123: fix the parser\n");

    const deleted = cli(home, ["workspace", "delete", "fix-124", "--json"]);
    expect(deleted.code).toBe(0);
    expect(deleted.json()).toEqual({ workspace_id: ws.workspace_id, deleted: true });
    expectJsonError(cli(home, ["workspace", "status", ws.workspace_id, "--json"]), "workspace_not_found");
    expect(cli(home, ["workspace", "delete", other]).stdout).toBe(`Deleted workspace ${other}\n`);
    expect(findLeaks(home)).toEqual(noLeaks());
  });
});

describe("exit codes a script relies on", () => {
  it("exits 127 when the command does not exist, and 128+n when signal n kills it", () => {
    cli(home, ["workspace", "create", TEST_ENVIRONMENT, "--name", "exit-codes"]);
    const missing = cli(home, ["workspace", "exec", "exit-codes", "--", "no-such-command"]);
    expect(missing.code).toBe(127);
    expect(missing.stderr).toContain("command not found");
    const signals = ["SIGTERM", "SIGKILL", "SIGUSR1", "SIGALRM"] as const;
    const got: { signal: string; code: number | null }[] = signals.map((signal) => {
      const r = cli(home, ["workspace", "exec", "exit-codes", "--shell", `kill -${signal.slice(3)} $$`]);
      expect(r.stderr).toContain(`killed by ${signal}`);
      return { signal, code: r.code };
    });
    const run = cli(home, ["run", TEST_ENVIRONMENT, "--", "sh", "-c", "kill -USR1 $$"]);
    got.push({ signal: "run SIGUSR1", code: run.code });
    expect(got).toEqual([...signals.map((signal) => ({ signal, code: 128 + os.constants.signals[signal] })), { signal: "run SIGUSR1", code: 138 }]);
  });

  it("forwards stdin to a one-shot run only when asked", () => {
    expect(cli(home, ["run", TEST_ENVIRONMENT, "--stdin", "--", "wc", "-c"], { input: "12345" }).stdout).toBe("5\n");
    expect(cli(home, ["run", TEST_ENVIRONMENT, "--", "wc", "-c"], { input: "12345" }).stdout).toBe("0\n");
  });
});

describe("errors a script can branch on", () => {
  it("names an unknown workspace with a stable code, as JSON on stdout or as text on stderr", () => {
    const json = cli(home, ["workspace", "status", "no-such-workspace", "--json"]);
    expectJsonError(json, "workspace_not_found");
    expect(json.stderr).toBe("");

    const human = cli(home, ["workspace", "exec", "no-such-workspace", "--", "true"]);
    expect(human.code).toBe(1);
    expect(human.stdout).toBe("");
    expect(human.stderr).toMatch(/^error \[workspace_not_found\]: .*no-such-workspace/);
    expect(human.stderr).toMatch(/^hint: .*pyro workspace list/m);
  });

  it("refuses a taken name, a malformed label, a missing environment or seed path, and creates nothing", () => {
    expect(cli(home, ["workspace", "create", TEST_ENVIRONMENT, "--name", "taken", "--json"]).code).toBe(0);
    const before = workspaceCount();

    expectJsonError(cli(home, ["workspace", "create", TEST_ENVIRONMENT, "--name", "taken", "--json"]), "workspace_name_taken");
    expectJsonError(cli(home, ["workspace", "create", TEST_ENVIRONMENT, "--label", "novalue", "--json"]), "invalid_label");
    const missingEnv = expectJsonError(cli(home, ["workspace", "create", "debian:12-build", "--json"]), "environment_not_installed");
    expect(missingEnv.hint).toContain("pyro env pull debian:12-build");
    expectJsonError(cli(home, ["workspace", "create", TEST_ENVIRONMENT, "--seed-path", path.join(seedDir, "no-such-dir"), "--json"]), "seed_path_not_found");
    expectJsonError(cli(home, ["run", "debian:12-build", "--json", "--", "true"]), "environment_not_installed");

    expect(workspaceCount()).toBe(before);
    expect(findLeaks(home).workspaces).toHaveLength(before);
  });

  it("refuses a non-positive timeout before running anything", () => {
    cli(home, ["workspace", "create", TEST_ENVIRONMENT, "--name", "timeouts"]);
    expectJsonError(cli(home, ["workspace", "exec", "timeouts", "--timeout-seconds", "0", "--json", "--", "true"]), "invalid_timeout");
    // `--timeout-seconds -1` would read -1 as a flag; the `=` form is how a user passes it
    expectJsonError(cli(home, ["workspace", "exec", "timeouts", "--timeout-seconds=-1", "--json", "--", "true"]), "invalid_timeout");
    expectJsonError(cli(home, ["run", TEST_ENVIRONMENT, "--timeout-seconds", "0", "--json", "--", "true"]), "invalid_timeout");
    expect(cli(home, ["workspace", "status", "timeouts", "--json"]).json().command_count).toBe(0);
  });

  it("reports an unknown flag, command or missing argument as a usage error with exit code 2", () => {
    const r = cli(home, ["workspace", "list", "--json", "--no-such-flag"]);
    const error = expectJsonError(r, "usage_error", 2);
    expect(error.message).toContain("--no-such-flag");
    const human = cli(home, ["workspace", "list", "--no-such-flag"]);
    expect(human.code).toBe(2);
    expect(human.stderr).toMatch(/^error \[usage_error\]: /);
    expect(human.stderr).toMatch(/^hint: .*--help/m);
    expectJsonError(cli(home, ["workspace", "status", "--json"]), "usage_error", 2);
    expectJsonError(cli(home, ["no-such-command", "--json"]), "usage_error", 2);
  });

  it("refuses a backend other than namespace, vm or auto, from --backend or PYRO_BACKEND, as invalid_argument and creates nothing", () => {
    const before = workspaceCount();
    for (const args of [
      ["workspace", "create", TEST_ENVIRONMENT, "--backend", "docker", "--json"],
      ["run", TEST_ENVIRONMENT, "--backend", "docker", "--json", "--", "true"],
    ]) {
      expect(expectJsonError(cli(home, args), "invalid_argument").message).toContain("namespace, vm, auto");
    }
    const fromEnv = spawnSync(process.execPath, [CLI, "workspace", "create", TEST_ENVIRONMENT, "--json"], { env: { ...process.env, PYRO_HOME: home, PYRO_BACKEND: "docker" }, encoding: "utf8", timeout: 60_000 });
    expect(fromEnv.status).toBe(1);
    expect(JSON.parse(fromEnv.stdout).error).toMatchObject({ code: "invalid_argument", message: expect.stringMatching(/^PYRO_BACKEND must be one of namespace, vm, auto/) });
    expect(workspaceCount()).toBe(before);
  });

  it("records the backend a workspace was created on, and shows it in status and list", () => {
    const created = cli(home, ["workspace", "create", TEST_ENVIRONMENT, "--name", "on-namespace", "--backend", "namespace", "--json"]).json();
    expect(created.backend).toBe("namespace");
    expect(cli(home, ["workspace", "status", "on-namespace"]).stdout).toMatch(/^Backend: namespace backend \(bubblewrap/m);
    expect(cli(home, ["workspace", "list"]).stdout).toMatch(/on-namespace\s+running\s+namespace\s/);
    const listed = cli(home, ["workspace", "list", "--json"]).json().workspaces as { name: string; backend: string }[];
    expect(listed.find((w) => w.name === "on-namespace")?.backend).toBe("namespace");
    expect(cli(home, ["run", TEST_ENVIRONMENT, "--backend", "namespace", "--", "true"]).code).toBe(0);
    cli(home, ["workspace", "delete", "on-namespace"]);
  });

  it("reports a non-numeric number as invalid_argument and creates nothing", () => {
    const before = workspaceCount();
    const error = expectJsonError(cli(home, ["workspace", "create", TEST_ENVIRONMENT, "--mem-mib", "abc", "--json"]), "invalid_argument");
    expect(error.message).toContain("--mem-mib");
    expect(workspaceCount()).toBe(before);
  });
});

describe("host and environment inspection", () => {
  it("doctor --json says the host is ready, which limits apply, and what the optional VM backend can do here", () => {
    const r = cli(home, ["doctor", "--json"]);
    expect(r.code).toBe(0);
    const report = r.json();
    expect(report.ok).toBe(true);
    expect(report.backend).toBe("namespace");
    expect(["namespace", "vm"]).toContain(report.auto_backend);
    expect(report.vm).toEqual(expect.objectContaining({ usable: expect.any(Boolean), reason: expect.any(String), kvm: expect.objectContaining({ device: expect.any(Boolean) }) }));
    expect(report.limits).toEqual(expect.objectContaining({ memory: expect.any(Boolean), pids: expect.any(Boolean), cpu: expect.any(Boolean) }));
    expect(report.environments).toContainEqual({ name: TEST_ENVIRONMENT, installed: true });
    // The disk limit's mechanism is the one a create here gets: the kernel's for root only.
    expect(report.disk_limit.enforcement).toBe(process.getuid?.() === 0 ? "kernel" : "watched");
    expect(cli(home, ["doctor"]).stdout).toContain(`Disk limit: ${report.disk_limit.detail}`);
  });

  it("env inspect --json gives the digest and the package list, git included", () => {
    const r = cli(home, ["env", "inspect", TEST_ENVIRONMENT, "--json"]);
    expect(r.code).toBe(0);
    const manifest = r.json();
    expect(manifest.name).toBe(TEST_ENVIRONMENT);
    expect(manifest.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect((manifest.packages as string[]).some((p) => p === "git" || p.startsWith("git="))).toBe(true);
  });
});

describe("what a sandbox inherits from its caller", () => {
  it("no open descriptor of the calling process reaches the command, only stdin, stdout and stderr", () => {
    const home = testHome("fds");
    // The CLI gets extra inherited descriptors (3..5), as a careless parent would pass them.
    const r = spawnSync(process.execPath, [CLI, "run", TEST_ENVIRONMENT, "--", "ls", "/proc/self/fd"], {
      env: { ...process.env, PYRO_HOME: home },
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe", "pipe", "pipe", "pipe"],
      timeout: 60_000,
    });
    expect(r.status, r.stderr).toBe(0);
    // ls itself holds one descriptor open on the directory it lists.
    expect(r.stdout.trim().split("\n").map(Number).sort((a, b) => a - b)).toEqual([0, 1, 2, 3]);
  });
});
