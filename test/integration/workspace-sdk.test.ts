import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pyro, PyroError } from "../../src/index.js";
import { execWorkspaceRaw } from "../../src/sdk/internal.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { createMcpServer } from "../../src/mcp/server.js";
import { cli, findLeaks, noLeaks, testHome, TEST_BACKEND, TEST_ENVIRONMENT } from "../helpers.js";

let home: string;
let pyro: Pyro;

beforeAll(() => {
  home = testHome("sdk");
  pyro = new Pyro({ home });
});

afterAll(async () => {
  for (const w of (await pyro.listWorkspaces()).workspaces) await pyro.deleteWorkspace(w.workspace_id);
  pyro.close();
  expect(findLeaks(home)).toEqual(noLeaks());
});

async function expectCode(promise: Promise<unknown>, code: string): Promise<PyroError> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PyroError);
  expect((err as PyroError).code).toBe(code);
  return err as PyroError;
}

describe("a workspace as an agent uses it", () => {
  it("runs commands in a persistent /workspace, argv and shell forms, with exit codes and separate streams", async () => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "basics", labels: { issue: "1" } });
    expect(ws.state).toBe("running");
    expect(ws.workspace_id).toMatch(/^[a-z2-9]{12}$/);

    const write = await pyro.execWorkspace("basics", { command: "echo hello > note.txt && echo to-stderr >&2; exit 3" });
    expect(write.exit_code).toBe(3);
    expect(write.outcome).toBe("exited");
    expect(write.stderr).toBe("to-stderr\n");
    expect(write.stdout).toBe("");

    const read = await pyro.execWorkspace(ws.workspace_id, { command: ["cat", "/workspace/note.txt"] });
    expect(read.stdout).toBe("hello\n");
    expect(read.cwd).toBe("/workspace");

    // argv form is not interpreted by a shell
    const literal = await pyro.execWorkspace(ws.workspace_id, { command: ["echo", "$HOME", "a && b"] });
    expect(literal.stdout).toBe("$HOME a && b\n");

    const git = await pyro.execWorkspace(ws.workspace_id, { command: ["git", "--version"] });
    expect(git.stdout).toMatch(/^git version 2\./);
  });

  it("passes env, cwd and stdin, and keeps binary output intact", async () => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT });
    await pyro.execWorkspace(ws.workspace_id, { command: "mkdir -p sub" });
    const r = await pyro.execWorkspace(ws.workspace_id, { command: "pwd; echo $GREETING; cat", env: { GREETING: "hi there" }, cwd: "sub", stdin: "from stdin" });
    expect(r.stdout).toBe("/workspace/sub\nhi there\nfrom stdin");
    const raw = await execWorkspaceRaw(pyro, ws.workspace_id, { command: ["printf", "\\000\\377\\033[31m"] });
    expect([...raw.stdoutBytes]).toEqual([0, 255, 27, 91, 51, 49, 109]);
  });

  it("caps large output keeping the head and the tail and says how much it dropped", async () => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT });
    const r = await pyro.execWorkspace(ws.workspace_id, { command: "seq 1 100000", maxOutputBytes: 1000 });
    expect(r.truncated).toBe(true);
    expect(r.stdout_info.total_bytes).toBe(588895);
    expect(r.stdout_info.omitted_bytes).toBe(588895 - 1000);
    expect(r.stdout.startsWith("1\n2\n3\n")).toBe(true);
    expect(r.stdout.endsWith("99999\n100000\n")).toBe(true);
    expect(r.stdout).toContain("bytes omitted");
  });

  it("kills the whole process tree on timeout, including children that left the process group", async () => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT });
    const r = await pyro.execWorkspace(ws.workspace_id, { command: "setsid sleep 300 & sleep 301 & sleep 302", timeoutSeconds: 0.5 });
    expect(r.timed_out).toBe(true);
    expect(r.outcome).toBe("timed_out");
    const ps = await pyro.execWorkspace(ws.workspace_id, { command: "for p in /proc/[0-9]*; do cat $p/cmdline 2>/dev/null | tr '\\0' ' '; echo; done" });
    expect(ps.stdout).not.toMatch(/sleep 30[012]/);
  });

  it("returns promptly when a command leaves a background process holding its output", async () => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT });
    const t0 = Date.now();
    const r = await pyro.execWorkspace(ws.workspace_id, { command: "sleep 60 & echo started", timeoutSeconds: 20 });
    expect(r.stdout).toBe("started\n");
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it("reports a missing command as exit 127 with outcome not_started", async () => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT });
    const r = await pyro.execWorkspace(ws.workspace_id, { command: ["definitely-not-a-command"] });
    expect(r.exit_code).toBe(127);
    expect(r.outcome).toBe("not_started");
    expect(r.stderr).toContain("command not found");
  });
});

describe("isolation", () => {
  it("shows no host paths, has loopback-only networking, its own hostname and pid space", async () => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "iso-check" });
    const r = await pyro.execWorkspace(ws.workspace_id, {
      // User-space processes only: a VM guest's /proc also lists its own kernel's threads.
      command: "hostname; n=0; for p in /proc/[0-9]*; do [ -n \"$(tr -d '\\0' < $p/cmdline 2>/dev/null | head -c1)\" ] && n=$((n+1)); done; echo $n; cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '; test -e " + home + " && echo HOST-VISIBLE; test -e /work && echo WORK-VISIBLE; cat /etc/os-release | head -1",
    });
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toBe("iso-check");
    expect(Number(lines[1])).toBeLessThan(10);
    expect(lines[2]).toBe("lo");
    expect(r.stdout).not.toContain("VISIBLE");
    expect(r.stdout).toContain("Debian GNU/Linux 12");
    // the environment is shared read-only: writes go to this workspace's own layer
    await pyro.execWorkspace(ws.workspace_id, { command: "echo changed > /etc/motd-pyro" });
    const other = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT });
    const r2 = await pyro.execWorkspace(other.workspace_id, { command: "test -e /etc/motd-pyro && echo LEAKED || echo clean" });
    expect(r2.stdout).toBe("clean\n");
  });

  it("reports which limits are enforced", async () => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, memMib: 256, vcpuCount: 1 });
    expect(ws.limits).not.toBeNull();
    expect(ws.isolation).toContain(TEST_BACKEND);
    if (ws.limits!.memory) {
      // tail holds its whole (newline-free) input in memory: 400 MiB cannot fit in 256 MiB
      // An emulated guest (no KVM) pipes those bytes slowly on a busy host: the default 30 s
      // timeout could end the command before memory runs out, which is not what this checks.
      const r = await pyro.execWorkspace(ws.workspace_id, { command: "head -c 400m /dev/zero | tail > /dev/null; echo rc=$?", timeoutSeconds: 240 });
      // The out-of-memory killer takes `tail` (the shell reports 137), or, on a loaded host
      // where the shell itself was picked, the result says the command was OOM-killed.
      expect(r.stdout === "rc=137\n" || r.oom_killed === true, JSON.stringify({ stdout: r.stdout, outcome: r.outcome, signal: r.signal, oom_killed: r.oom_killed })).toBe(true);
    }
  });
});

describe("discovery and metadata", () => {
  it("finds workspaces by name, sorts by last activity, and only mutating calls count as activity", async () => {
    const a = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "disc-a" });
    const b = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "disc-b" });
    await pyro.execWorkspace("disc-a", { command: "true" });
    let list = (await pyro.listWorkspaces()).workspaces.map((w) => w.name);
    expect(list.indexOf("disc-a")).toBeLessThan(list.indexOf("disc-b"));
    const before = (await pyro.statusWorkspace("disc-b")).last_activity_at;
    await pyro.statusWorkspace("disc-b");
    await pyro.logsWorkspace("disc-b");
    expect((await pyro.statusWorkspace("disc-b")).last_activity_at).toBe(before);
    await pyro.updateWorkspace("disc-b", { labels: { team: "x", drop: "y" } });
    await pyro.updateWorkspace(b.workspace_id, { name: "disc-b2", clearLabels: ["drop"] });
    const status = await pyro.statusWorkspace("disc-b2");
    expect(status.labels).toEqual({ team: "x" });
    list = (await pyro.listWorkspaces()).workspaces.map((w) => w.name);
    expect(list.indexOf("disc-b2")).toBeLessThan(list.indexOf("disc-a"));
    expect(a.workspace_id).not.toBe(b.workspace_id);
  });

  it("lists only the workspaces carrying every label given, alike from the SDK, the CLI and MCP", async () => {
    await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "lab-1", labels: { issue: "7", team: "a" } });
    await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "lab-2", labels: { issue: "7", team: "b" } });
    const names = (r: { workspaces: { name: string | null }[] }) => r.workspaces.map((w) => w.name).sort();
    expect(names(await pyro.listWorkspaces({ labels: { issue: "7" } }))).toEqual(["lab-1", "lab-2"]);
    const teamA = await pyro.listWorkspaces({ labels: { issue: "7", team: "a" } });
    expect({ count: teamA.count, names: names(teamA) }).toEqual({ count: 1, names: ["lab-1"] });
    expect((await pyro.listWorkspaces({ labels: { issue: "8" } })).count).toBe(0);
    await expect(pyro.listWorkspaces({ labels: { "bad key!": "x" } })).rejects.toMatchObject({ code: "invalid_label" });

    const fromCli = cli(home, ["workspace", "list", "--label", "issue=7", "--label", "team=b", "--json"]);
    expect(fromCli.code, fromCli.stderr).toBe(0);
    expect(names(JSON.parse(fromCli.stdout))).toEqual(["lab-2"]);

    const server = createMcpServer(pyro, { profile: "workspace-full" });
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    const client = new Client({ name: "labels-test", version: "0.0.0" });
    await Promise.all([server.connect(serverSide), client.connect(clientSide)]);
    try {
      const r = await client.callTool({ name: "workspace_list", arguments: { labels: { team: "a" } } });
      expect(names(r.structuredContent as { workspaces: { name: string | null }[] })).toEqual(["lab-1"]);
    } finally {
      await client.close();
    }
    for (const name of ["lab-1", "lab-2"]) await pyro.deleteWorkspace(name);
  });

  it("lives on the backend PYRO_BACKEND names, and status and list say so", async () => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "on-default" });
    expect(ws.backend).toBe(TEST_BACKEND);
    expect((await pyro.statusWorkspace("on-default")).backend).toBe(TEST_BACKEND);
    expect((await pyro.listWorkspaces()).workspaces.find((w) => w.name === "on-default")?.backend).toBe(TEST_BACKEND);
    await pyro.deleteWorkspace("on-default");
  });

  it("keeps a command history with argv, exit code, duration and output sizes", async () => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT });
    await pyro.execWorkspace(ws.workspace_id, { command: ["echo", "one"] });
    await pyro.execWorkspace(ws.workspace_id, { command: "exit 4" });
    const logs = await pyro.logsWorkspace(ws.workspace_id);
    expect(logs.total).toBe(2);
    expect(logs.commands[0]).toMatchObject({ sequence: 1, command: ["echo", "one"], shell: false, exit_code: 0, stdout_bytes: 4 });
    expect(logs.commands[1]).toMatchObject({ sequence: 2, command: ["exit 4"], shell: true, exit_code: 4 });
    expect(logs.commands[1]!.duration_ms).toBeGreaterThan(0);
  });
});

describe("the workspace handle", () => {
  it("reaches files, snapshots, services, shells, network and the stopped disk through its namespaces", async () => {
    await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "handle" });
    const ws = pyro.workspace("handle");

    expect(await ws.files.write("notes/a.txt", "one\n")).toMatchObject({ created: true });
    expect((await ws.files.read("notes/a.txt")).content).toBe("one\n");
    expect((await ws.files.list({ path: "notes" })).entries.map((e) => e.path)).toEqual(["/workspace/notes/a.txt"]);
    expect((await ws.snapshots.create("first")).name).toBe("first");
    await ws.files.patch("--- a/notes/a.txt\n+++ b/notes/a.txt\n@@ -1 +1 @@\n-one\n+two\n");
    const diff = await ws.files.diff({ snapshot: "first" });
    expect(diff.changes.map((c) => c.change)).toEqual(["modified"]);
    expect(diff.changes[0]!.path).toMatch(/notes\/a\.txt$/);
    expect((await ws.snapshots.list()).snapshots.map((x) => x.name)).toContain("first");
    expect(await ws.snapshots.delete("first")).toMatchObject({ name: "first", deleted: true });

    const service = await ws.services.start("sleeper", { command: ["sleep", "300"] });
    expect(service.state).toBe("running");
    expect((await ws.services.list()).services.map((x) => x.name)).toEqual(["sleeper"]);
    expect((await ws.services.stop("sleeper")).state).not.toBe("running");

    const shell = await ws.shells.open();
    await ws.shells.write(shell.shell_id, "echo handle-$((6*7))");
    expect((await ws.shells.read(shell.shell_id, { waitForPattern: "handle-42", plain: true })).output).toContain("handle-42");
    expect((await ws.shells.list()).shells.map((x) => x.shell_id)).toContain(shell.shell_id);
    expect(await ws.shells.close(shell.shell_id)).toMatchObject({ closed: true });

    const network = await ws.network();
    expect(await ws.network.show()).toEqual(network);
    expect(network.policy).toBe("off");

    await ws.stop();
    expect((await ws.disk.read("notes/a.txt")).content).toBe("two\n");
    expect((await ws.disk.list({ path: "notes" })).entries.map((e) => e.path)).toEqual(["/workspace/notes/a.txt"]);
    expect((await ws.summary()).name).toBe("handle");
    await ws.delete();
  });
});

describe("lifecycle", () => {
  it("stop keeps /workspace and installed files; start brings them back unchanged", async () => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "lifecycle" });
    await pyro.execWorkspace("lifecycle", { command: "echo kept > /workspace/f && echo rootfs > /opt/g && (sleep 600 &)" });
    const stopped = await pyro.stopWorkspace("lifecycle");
    expect(stopped.state).toBe("stopped");
    expect(findLeaks(home).processes.filter((p) => p.includes(ws.workspace_id))).toEqual([]);
    await expectCode(pyro.execWorkspace("lifecycle", { command: "true" }), "workspace_stopped");
    const started = await pyro.startWorkspace("lifecycle");
    expect(started.state).toBe("running");
    const r = await pyro.execWorkspace("lifecycle", { command: "cat /workspace/f /opt/g; pgrep sleep || echo no-sleep" });
    expect(r.stdout).toBe("kept\nrootfs\nno-sleep\n");
  });

  it("a dead sandbox shows as failed with the reason, and start recovers /workspace", async () => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT });
    await pyro.execWorkspace(ws.workspace_id, { command: "echo survives > data" });
    const record = JSON.parse(fs.readFileSync(path.join(home, "workspaces", ws.workspace_id, "workspace.json"), "utf8"));
    process.kill(record.sandbox.sandboxPid, "SIGKILL");
    await new Promise((r) => setTimeout(r, 300));
    const status = await pyro.statusWorkspace(ws.workspace_id);
    expect(status.state).toBe("failed");
    expect(status.state_reason).toMatch(/exited unexpectedly/);
    await expectCode(pyro.execWorkspace(ws.workspace_id, { command: "true" }), "workspace_stopped");
    await pyro.startWorkspace(ws.workspace_id);
    expect((await pyro.execWorkspace(ws.workspace_id, { command: "cat data" })).stdout).toBe("survives\n");
  });

  it("after a host reboot a running workspace reads as stopped and starts again", async () => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT });
    await pyro.execWorkspace(ws.workspace_id, { command: "echo before-reboot > r" });
    const file = path.join(home, "workspaces", ws.workspace_id, "workspace.json");
    const record = JSON.parse(fs.readFileSync(file, "utf8"));
    // Simulate a reboot: the sandbox is gone and the kernel's boot id differs.
    process.kill(record.sandbox.sandboxPid, "SIGKILL");
    await new Promise((r) => setTimeout(r, 300));
    record.sandbox.bootId = "an-earlier-boot";
    fs.writeFileSync(file, JSON.stringify(record));
    const status = await pyro.statusWorkspace(ws.workspace_id);
    expect(status.state).toBe("stopped");
    expect(status.state_reason).toMatch(/rebooted/);
    await pyro.startWorkspace(ws.workspace_id);
    expect((await pyro.execWorkspace(ws.workspace_id, { command: "cat r" })).stdout).toBe("before-reboot\n");
  });

  it("delete removes the sandbox and every trace of the workspace", async () => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT });
    await pyro.deleteWorkspace(ws.workspace_id);
    expect(fs.existsSync(path.join(home, "workspaces", ws.workspace_id))).toBe(false);
    expect(findLeaks(home).cgroups.filter((c) => c.includes(ws.workspace_id))).toEqual([]);
    await expectCode(pyro.statusWorkspace(ws.workspace_id), "workspace_not_found");
  });

  it("reaps workspaces past their TTL, and never one with a command running", async () => {
    const short = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, ttlSeconds: 1 });
    const busy = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, ttlSeconds: 1 });
    const running = pyro.execWorkspace(busy.workspace_id, { command: "sleep 3; echo done", timeoutSeconds: 20 });
    await new Promise((r) => setTimeout(r, 1500));
    const { reaped } = await pyro.reapExpired();
    expect(reaped).toContain(short.workspace_id);
    expect(reaped).not.toContain(busy.workspace_id);
    expect((await running).stdout).toBe("done\n");
    const list = await pyro.listWorkspaces();
    expect(list.reaped).toContain(busy.workspace_id);
  });
});

describe("seeding", () => {
  it("seeds from a directory, a .tar and a .tgz", async () => {
    const src = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-seed-"));
    fs.mkdirSync(path.join(src, "pkg"));
    fs.writeFileSync(path.join(src, "pkg", "a.txt"), "A");
    fs.writeFileSync(path.join(src, ".hidden"), "H");
    fs.symlinkSync("pkg/a.txt", path.join(src, "link"));
    const fromDir = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, seedPath: src });
    expect(fromDir.workspace_seed).toMatchObject({ mode: "directory", origin_kind: "host_path", seed_path: src });
    expect((await pyro.execWorkspace(fromDir.workspace_id, { command: "cat pkg/a.txt .hidden link; echo; readlink link" })).stdout).toBe("AHA\npkg/a.txt\n");

    const tarFile = path.join(os.tmpdir(), `pyro-seed-${process.pid}.tar`);
    const tgzFile = path.join(os.tmpdir(), `pyro-seed-${process.pid}.tgz`);
    execFileSync("tar", ["-cf", tarFile, "-C", src, "."]);
    execFileSync("tar", ["-czf", tgzFile, "-C", src, "."]);
    for (const file of [tarFile, tgzFile]) {
      const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, seedPath: file });
      expect(ws.workspace_seed.mode).toBe("archive");
      expect((await pyro.execWorkspace(ws.workspace_id, { command: "cat pkg/a.txt" })).stdout).toBe("A");
    }
  });

  it("refuses archives with '..', absolute or escaping link entries, and creates nothing", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-evil-"));
    const before = (await pyro.listWorkspaces()).count;
    fs.writeFileSync(path.join(dir, "x"), "x");
    const dotdot = path.join(dir, "dotdot.tar");
    execFileSync("tar", ["-cf", dotdot, "-C", dir, "--transform", "s,^x$,../escape,", "x"]);
    const absolute = path.join(dir, "absolute.tar");
    execFileSync("tar", ["-cPf", absolute, "--transform", "s,^.*x$,/etc/evil,", path.join(dir, "x")]);
    fs.symlinkSync("/etc", path.join(dir, "etc-link"));
    const escaping = path.join(dir, "link.tar");
    execFileSync("tar", ["-cf", escaping, "-C", dir, "etc-link"]);
    for (const file of [dotdot, absolute, escaping]) {
      const err = await expectCode(pyro.createWorkspace({ environment: TEST_ENVIRONMENT, seedPath: file }), "archive_unsafe_entry");
      expect(err.message).toMatch(/escape|absolute|'\.\.'/);
    }
    expect((await pyro.listWorkspaces()).count).toBe(before);
    expect(fs.existsSync("/etc/evil")).toBe(false);
  });

  it("refuses a missing seed path and a file that is not an archive", async () => {
    await expectCode(pyro.createWorkspace({ environment: TEST_ENVIRONMENT, seedPath: "/nonexistent/repo" }), "seed_path_not_found");
    const file = path.join(os.tmpdir(), `pyro-not-archive-${process.pid}.txt`);
    fs.writeFileSync(file, "hello");
    await expectCode(pyro.createWorkspace({ environment: TEST_ENVIRONMENT, seedPath: file }), "seed_path_invalid");
  });
});

describe("bad input", () => {
  it("gives stable codes and changes nothing", async () => {
    await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "taken" });
    const count = (await pyro.listWorkspaces()).count;
    await expectCode(pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "taken" }), "workspace_name_taken");
    await expectCode(pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "bad name!" }), "invalid_name");
    await expectCode(pyro.createWorkspace({ environment: TEST_ENVIRONMENT, labels: { "bad key": "v" } }), "invalid_label");
    await expectCode(pyro.createWorkspace({ environment: "debian:12-build" }), "environment_not_installed").then((e) => expect(e.hint).toContain("pyro env pull debian:12-build"));
    await expectCode(pyro.createWorkspace({ environment: "nope:1" }), "environment_unknown");
    await expectCode(pyro.statusWorkspace("no-such-workspace"), "workspace_not_found");
    await expectCode(pyro.execWorkspace("taken", { command: "true", timeoutSeconds: 0 }), "invalid_timeout");
    await expectCode(pyro.execWorkspace("taken", { command: "true", timeoutSeconds: -1 }), "invalid_timeout");
    await expectCode(pyro.execWorkspace("taken", { command: [] }), "invalid_argument");
    await expectCode(pyro.updateWorkspace("taken", { labels: { "": "x" } }), "invalid_label");
    expect((await pyro.listWorkspaces()).count).toBe(count);
    expect((await pyro.statusWorkspace("taken")).command_count).toBe(0);
  });
});

describe("one-shot run", () => {
  it("returns the command's result and leaves nothing behind, on success, failure and timeout", async () => {
    const ok = await pyro.runInVm({ environment: TEST_ENVIRONMENT, command: ["git", "--version"] });
    expect(ok.exit_code).toBe(0);
    expect(ok.cleaned_up).toBe(true);
    const failed = await pyro.runInVm({ environment: TEST_ENVIRONMENT, command: "exit 7" });
    expect(failed.exit_code).toBe(7);
    const slow = await pyro.runInVm({ environment: TEST_ENVIRONMENT, command: "sleep 30", timeoutSeconds: 0.3 });
    expect(slow.timed_out).toBe(true);
    const leaks = findLeaks(home);
    const ephemeral = [];
    for (const id of leaks.workspaces) {
      const rec = JSON.parse(fs.readFileSync(path.join(home, "workspaces", id, "workspace.json"), "utf8"));
      if (rec.ephemeral) ephemeral.push(id);
    }
    expect(ephemeral).toEqual([]);
  });
});
