/**
 * Services as the agent serves them, driven through the raw agent protocol in a real sandbox:
 * readiness of every kind, early exits, missed deadlines, logs with rotation, whole-tree stops,
 * and secret redaction of service output.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pyro, PyroError } from "../../src/index.js";
import { coreOf } from "../../src/sdk/internal.js";
import type { AgentClient } from "../../src/protocol/client.js";
import { SANDBOX_PATH } from "../../src/protocol/guest.js";
import { findLeaks, noLeaks, testHome, TEST_ENVIRONMENT, waitFor } from "../helpers.js";

let home: string;
let pyro: Pyro;
let workspaceId: string;
let client: AgentClient;

// The agent's results are plain JSON; the assertions below are their type check.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Result = Record<string, any>;

/**
 * A minimal HTTP server in perl (debian:12 has perl-base, no python, no node): waits DELAY
 * seconds, listens on 127.0.0.1:PORT and answers every request 200 "hello".
 */
const HTTP_SERVER = String.raw`
use strict; use IO::Socket::INET;
$| = 1; $SIG{PIPE} = 'IGNORE';
my ($port, $delay) = @ARGV;
select(undef, undef, undef, $delay || 0);
my $server = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port, Listen => 5, ReuseAddr => 1) or die "listen: $!\n";
print "listening on $port\n";
while (my $c = $server->accept) {
  my $line = <$c>;
  if (!defined $line) { close $c; next; }
  while (my $h = <$c>) { last if $h =~ /^\r?\n$/; }
  # Logged before answering: a readiness probe that has its answer may read the logs at once.
  print "served $line";
  print $c "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n";
  close $c;
}
`;

async function call(type: string, body: Record<string, unknown> = {}): Promise<Result> {
  return (await client.requestUnchecked({ type, ...body })).header as Result;
}

async function start(name: string, body: Record<string, unknown>): Promise<Result> {
  return call("service_start", {
    name,
    cwd: "/workspace",
    env: { PATH: SANDBOX_PATH, HOME: "/root", LANG: "C.UTF-8" },
    readiness: null,
    readyTimeoutMs: 10_000,
    readyIntervalMs: 100,
    ...body,
  });
}

async function sh(command: string): Promise<string> {
  const r = await pyro.execWorkspace(workspaceId, { command });
  expect(r.exit_code, r.stderr).toBe(0);
  return r.stdout;
}

/** How many processes in the sandbox have a command line starting with `prefix`. */
async function countProcesses(prefix: string): Promise<number> {
  const out = await sh(`for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done | grep -c '^${prefix}' || true`);
  return Number(out.trim());
}

async function failure(promise: Promise<unknown>): Promise<PyroError> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PyroError);
  return err as PyroError;
}

async function until<T>(what: () => Promise<T>, ok: (value: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await what();
    if (ok(value) || Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  home = testHome("services");
  pyro = new Pyro({ home });
  workspaceId = (await pyro.createWorkspace({ environment: TEST_ENVIRONMENT })).workspace_id;
  client = await coreOf(pyro).connections.client(workspaceId);
  await sh(`cat > /workspace/server.pl <<'EOF'\n${HTTP_SERVER}\nEOF`);
});

afterAll(async () => {
  if (pyro) {
    for (const w of (await pyro.listWorkspaces()).workspaces) await pyro.deleteWorkspace(w.workspace_id);
    pyro.close();
  }
  expect(findLeaks(home)).toEqual(noLeaks());
});

describe("a service becomes ready by each kind of readiness check", () => {
  it("is ready once its readiness file appears, resolved against the service's cwd", async () => {
    await sh("mkdir -p /workspace/app");
    const r = await start("file-svc", { shell: "sleep 0.5; touch ready; sleep 100", cwd: "/workspace/app", readiness: { type: "file", path: "ready" } });
    expect(r.state).toBe("ready");
    expect(r.name).toBe("file-svc");
    expect(r.command).toEqual(["sleep 0.5; touch ready; sleep 100"]);
    expect(r.shell).toBe(true);
    expect(r.cwd).toBe("/workspace/app");
    expect(r.readiness).toEqual({ type: "file", path: "ready" });
    expect(r.pid).toBeGreaterThan(1);
    expect(Date.parse(r.ready_at) - Date.parse(r.started_at)).toBeGreaterThanOrEqual(400);
    expect(r.ended_at).toBeNull();
    expect(r.exit_code).toBeNull();
    expect(r.log_tail).toBeUndefined();
    const status = await call("service_status", { name: "file-svc" });
    expect(status.state).toBe("ready");
    expect(status.uptime_ms).toBeGreaterThanOrEqual(400);
  });

  it("is ready once its TCP port accepts connections", async () => {
    const r = await start("tcp-svc", { argv: ["perl", "server.pl", "8081", "0.5"], readiness: { type: "tcp", port: 8081 } });
    expect(r.state).toBe("ready");
    expect(r.command).toEqual(["perl", "server.pl", "8081", "0.5"]);
    expect(r.shell).toBe(false);
    expect(Date.parse(r.ready_at) - Date.parse(r.started_at)).toBeGreaterThanOrEqual(400);
  });

  it("is ready once its HTTP URL answers below 400", async () => {
    const r = await start("http-svc", { argv: ["perl", "server.pl", "8082", "0.5"], readiness: { type: "http", url: "http://127.0.0.1:8082/health" } });
    expect(r.state).toBe("ready");
    // The logs pass through the agent's redaction on their way to the file, so the probe's
    // line may land a moment after the probe's answer.
    let logs = await call("service_logs", { name: "http-svc" });
    await waitFor("the probe's request is in the logs", async () => (logs = await call("service_logs", { name: "http-svc" })).stdout.includes("served GET /health HTTP/1.1"), 5000);
    expect(logs.stdout).toContain("listening on 8082\n");
    // and it really serves: ask it from inside the sandbox over bash's /dev/tcp
    const answer = await sh(`bash -c 'exec 3<>/dev/tcp/127.0.0.1/8082; printf "GET / HTTP/1.0\\r\\n\\r\\n" >&3; cat <&3'`);
    expect(answer).toMatch(/^HTTP\/1.0 200 OK/);
  });

  it("is ready once its readiness command exits 0, run in the service's cwd", async () => {
    const r = await start("cmd-svc", { shell: "sleep 0.3; touch cmd-ready; sleep 100", readiness: { type: "command", command: "test -f cmd-ready" } });
    expect(r.state).toBe("ready");
    expect(Date.parse(r.ready_at) - Date.parse(r.started_at)).toBeGreaterThanOrEqual(250);
  });

  it("is running right away when it has no readiness check", async () => {
    const t0 = Date.now();
    const r = await start("plain-svc", { shell: "sleep 100" });
    expect(r.state).toBe("running");
    expect(r.ready_at).toBeNull();
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it("lists every service with how many are running", async () => {
    const list = await call("service_list");
    const names = (list.services as Result[]).map((s) => s.name);
    expect(names).toEqual(expect.arrayContaining(["file-svc", "tcp-svc", "http-svc", "cmd-svc", "plain-svc"]));
    expect(list.count).toBe(names.length);
    expect(list.running_count).toBe((list.services as Result[]).filter((s) => ["starting", "ready", "running"].includes(s.state)).length);
    expect(list.running_count).toBeGreaterThanOrEqual(5);
    for (const name of ["file-svc", "tcp-svc", "http-svc", "cmd-svc", "plain-svc"]) {
      const stopped = await call("service_stop", { name });
      expect(stopped.state).toBe("stopped");
    }
    expect((await call("service_list")).running_count).toBe(0);
  });
});

describe("a service that does not become ready", () => {
  it("reports an early exit with its exit code and the tail of its logs", async () => {
    const r = await start("crash", { shell: "echo booting; echo 'config missing' >&2; exit 3", readiness: { type: "file", path: "never" } });
    expect(r.state).toBe("exited");
    expect(r.exit_code).toBe(3);
    expect(r.signal).toBeNull();
    expect(r.reason).toBe("exited with code 3 before becoming ready");
    expect(r.ended_at).not.toBeNull();
    expect(r.ready_at).toBeNull();
    expect(r.log_tail).toEqual({ stdout: "booting\n", stderr: "config missing\n" });
    // the logs outlive the process
    const logs = await call("service_logs", { name: "crash" });
    expect(logs.stdout).toBe("booting\n");
    expect(logs.stderr).toBe("config missing\n");
  });

  it("fails after the readiness timeout and leaves none of its processes behind", async () => {
    const t0 = Date.now();
    const r = await start("stuck", { shell: "setsid sleep 3001 & sleep 3002 & echo waiting; wait", readiness: { type: "tcp", port: 8099 }, readyTimeoutMs: 1000 });
    const took = Date.now() - t0;
    expect(r.state).toBe("failed");
    expect(r.reason).toBe("not ready within 1 s");
    expect(r.log_tail.stdout).toBe("waiting\n");
    expect(took).toBeGreaterThanOrEqual(1000);
    expect(took).toBeLessThan(4000);
    expect(await countProcesses("sleep 300")).toBe(0);
    expect((await call("service_status", { name: "stuck" })).state).toBe("failed");
  });

  it("says when its command does not exist", async () => {
    const r = await start("missing", { argv: ["no-such-server", "--port", "1"] });
    expect(r.state).toBe("failed");
    expect(r.pid).toBeNull();
    expect(r.reason).toBe("command not found: no-such-server");
    expect(r.log_tail.stderr).toBe("pyro: command not found: no-such-server\n");
  });
});

describe("service logs", () => {
  it("are readable while it runs and after it stops, as a tail of lines or everything retained", async () => {
    await start("chatty", { shell: "for i in $(seq 1 100); do echo line $i; done; echo err-line >&2; sleep 100" });
    const live = await until(
      () => call("service_logs", { name: "chatty" }),
      (l) => l.stdout.endsWith("line 100\n") && l.stderr === "err-line\n",
    );
    const lines = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `line ${from + i}\n`).join("");
    expect(live.stdout).toBe(lines(51, 100));
    expect(live.tail_lines).toBe(50);
    expect(live.stdout_bytes).toBe(Buffer.byteLength(lines(51, 100)));
    expect(live.truncated).toBe(false);

    const tail = await call("service_logs", { name: "chatty", tail_lines: 3 });
    expect(tail.stdout).toBe(lines(98, 100));
    expect(tail.stderr).toBe("err-line\n");
    expect(tail.tail_lines).toBe(3);

    await call("service_stop", { name: "chatty" });
    const all = await call("service_logs", { name: "chatty", all: true });
    expect(all.stdout).toBe(lines(1, 100));
    expect(all.tail_lines).toBeNull();
    expect(all.stderr_bytes).toBe(9);
    expect(all.truncated).toBe(false);
  });

  it("stay bounded: a file rotates at 1 MiB and all returns at most 256 KiB, the end", async () => {
    const r = await start("flood", { shell: "yes 0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxy | head -c 3000000; echo; echo done" });
    expect(r.state).toBe("running");
    const status = await until(
      () => call("service_status", { name: "flood" }),
      (s) => s.state === "exited",
    );
    expect(status.exit_code).toBe(0);
    expect(status.reason).toBe("exited with code 0");
    const sizes = await sh("cd /run/pyro-services/flood && stat -c '%n %s' stdout.log stdout.log.1 && ls");
    // 3,000,006 bytes written: two rotations, the second rotated file kept whole, the first gone
    expect(sizes).toBe(`stdout.log ${3_000_006 - 2 * 1048576}\nstdout.log.1 1048576\nstderr.log\nstdout.log\nstdout.log.1\n`);
    const all = await call("service_logs", { name: "flood", all: true });
    expect(all.truncated).toBe(true);
    expect(all.stdout_bytes).toBe(256 * 1024);
    // 72-byte lines; head cut the last one after 48 bytes
    expect(all.stdout.endsWith("uvwxy\n0123456789abcdefghijklmnopqrstuvwxyz0123456789ab\ndone\n")).toBe(true);
    const last = await call("service_logs", { name: "flood", tail_lines: 1 });
    expect(last.stdout).toBe("done\n");
    expect(last.truncated).toBe(false);
  });
});

describe("stopping a service", () => {
  it("kills its whole tree, including a child that left the process group", async () => {
    const r = await start("tree", { shell: "setsid sleep 3003 & sleep 3004 & echo up; wait" });
    expect(r.state).toBe("running");
    expect(await until(() => countProcesses("sleep 300"), (n) => n === 2)).toBe(2);
    const t0 = Date.now();
    const stopped = await call("service_stop", { name: "tree", grace_ms: 3000 });
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(stopped.state).toBe("stopped");
    expect(stopped.reason).toBe("stopped on request");
    expect(stopped.signal).toBe("SIGTERM");
    expect(stopped.ended_at).not.toBeNull();
    expect(await countProcesses("sleep 300")).toBe(0);
    // stopping again just reports
    expect(await call("service_stop", { name: "tree" })).toEqual({ ...stopped, id: expect.any(Number) as number, type: "result" });
  });

  it("escalates to SIGKILL after the grace period when SIGTERM is ignored", async () => {
    await start("stubborn", { shell: "trap '' TERM; sleep 3005 & sleep 3006; wait" });
    expect(await until(() => countProcesses("sleep 300"), (n) => n === 2)).toBe(2);
    const t0 = Date.now();
    const stopped = await call("service_stop", { name: "stubborn", grace_ms: 500 });
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(500);
    expect(took).toBeLessThan(2500);
    expect(stopped.state).toBe("stopped");
    expect(stopped.signal).toBe("SIGKILL");
    expect(await countProcesses("sleep 300")).toBe(0);
  });

  it("while its start still waits for readiness ends the start with state stopped", async () => {
    const starting = start("waiting", { shell: "echo hoping; sleep 100", readiness: { type: "file", path: "never" } });
    const status = await until(
      () => call("service_status", { name: "waiting" }).catch(() => null),
      (s) => s?.state === "starting",
    );
    expect(status?.state).toBe("starting");
    expect((await call("service_list")).running_count).toBe(1);
    // Stopped once it has said something (a slow guest may not have run `echo` yet).
    await until(() => call("service_logs", { name: "waiting" }).catch(() => null), (l) => l?.stdout === "hoping\n");
    const stopped = await call("service_stop", { name: "waiting" });
    expect(stopped.state).toBe("stopped");
    const r = await starting;
    expect(r.state).toBe("stopped");
    expect(r.log_tail.stdout).toBe("hoping\n");
  });

  it("of one that already exited just returns its status", async () => {
    const stopped = await call("service_stop", { name: "crash" });
    expect(stopped.state).toBe("exited");
    expect(stopped.exit_code).toBe(3);
  });
});

describe("service names and arguments", () => {
  it("refuses a second service under a running name, and replaces an ended one", async () => {
    await start("dup", { shell: "echo first; sleep 100" });
    const err = await failure(start("dup", { shell: "echo second; sleep 100" }));
    expect(err.code).toBe("service_exists");
    await call("service_stop", { name: "dup", grace_ms: 0 });
    const again = await start("dup", { shell: "echo second; sleep 100" });
    expect(again.state).toBe("running");
    const logs = await until(
      () => call("service_logs", { name: "dup" }),
      (l) => l.stdout !== "",
    );
    expect(logs.stdout).toBe("second\n");
    await call("service_stop", { name: "dup", grace_ms: 0 });
  });

  it("rejects unknown names and bad requests with typed errors", async () => {
    expect((await failure(call("service_status", { name: "nope" }))).code).toBe("service_not_found");
    expect((await failure(call("service_logs", { name: "nope" }))).code).toBe("service_not_found");
    expect((await failure(call("service_stop", { name: "nope" }))).code).toBe("service_not_found");
    expect((await failure(start("../escape", { shell: "true" }))).code).toBe("invalid_argument");
    expect((await failure(start("both", { shell: "true", argv: ["true"] }))).code).toBe("invalid_argument");
    expect((await failure(start("neither", {}))).code).toBe("invalid_argument");
    expect((await failure(start("badready", { shell: "true", readiness: { type: "udp", port: 1 } }))).code).toBe("invalid_argument");
    expect((await failure(start("badsecret", { shell: "true", secretEnv: { X: "NO_SUCH_SECRET" } }))).code).toBe("secret_not_found");
    expect((await failure(call("service_logs", { name: "crash", tail_lines: -1 }))).code).toBe("invalid_argument");
  });
});

describe("secrets in services", () => {
  it("are in the service's environment but never in its logs, even when printed in pieces", async () => {
    await call("secrets_load", { secrets: { API_KEY: "k3y-v4lue-123" } });
    const r = await start("secretive", {
      shell: `echo "key=$API_KEY"; printf 'k3y-v'; sleep 1; printf '4lue-123 end\\n'; echo "$API_KEY" >&2; sleep 100`,
      secretEnv: { API_KEY: "API_KEY" },
    });
    expect(r.state).toBe("running");
    // mid-way, the first piece is held back rather than written
    await new Promise((resolve) => setTimeout(resolve, 400));
    const early = await call("service_logs", { name: "secretive" });
    expect(early.stdout).toBe("key=[REDACTED]\n");
    const logs = await until(
      () => call("service_logs", { name: "secretive" }),
      (l) => l.stderr !== "",
    );
    expect(logs.stdout).toBe("key=[REDACTED]\n[REDACTED] end\n");
    expect(logs.stderr).toBe("[REDACTED]\n");
    // not even a piece of it reached the files on disk
    expect(await sh("cat /run/pyro-services/secretive/*.log | grep -c -e k3y -e 4lue || true")).toBe("0\n");
    await call("service_stop", { name: "secretive" });

    // an early exit's log tail is redacted too
    const crashed = await start("secret-crash", { shell: 'echo "token $API_KEY" >&2; exit 1', secretEnv: { API_KEY: "API_KEY" }, readiness: { type: "file", path: "never" } });
    expect(crashed.state).toBe("exited");
    expect(crashed.log_tail.stderr).toBe("token [REDACTED]\n");
  });
});
