/**
 * Memory and pids limits hold inside a workspace, for whoever runs pyro: root, or an ordinary
 * user with a delegated cgroup subtree. Where the host cannot enforce a limit pyro says so
 * (`limits.memory`/`limits.pids` false) and these tests skip; with PYRO_EXPECT_LIMITS=1 (CI, whose
 * hosts can enforce them) an unenforced limit is a failure, so the checks cannot quietly vanish.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pyro } from "../../src/index.js";
import { DEFAULT_PIDS_MAX } from "../../src/core/manager.js";
import { findLeaks, noLeaks, testHome, TEST_ENVIRONMENT } from "../helpers.js";

const EXPECT_LIMITS = process.env.PYRO_EXPECT_LIMITS === "1";

let home: string;
let pyro: Pyro;

beforeAll(() => {
  home = testHome("limits");
  pyro = new Pyro({ home });
});

afterAll(async () => {
  for (const w of (await pyro.listWorkspaces()).workspaces) await pyro.deleteWorkspace(w.workspace_id);
  pyro.close();
  expect(findLeaks(home)).toEqual(noLeaks());
});

/** Whether to go on: true when the limit is enforced; a failure or a skip (with why) when not. */
function enforced(limits: { memory: boolean; pids: boolean; note: string | null } | null, which: "memory" | "pids", skip: (note: string) => void): boolean {
  const on = limits?.[which] === true;
  const why = `the ${which} limit is not enforced on this host${limits?.note ? `: ${limits.note}` : ""}`;
  if (!on && EXPECT_LIMITS) expect.fail(`PYRO_EXPECT_LIMITS=1 but ${why}`);
  if (!on) skip(`${why} (set PYRO_EXPECT_LIMITS=1 to make this a failure)`);
  return on;
}

describe("resource limits inside a workspace", () => {
  it("kills a command that needs more memory than the workspace has, and the workspace goes on", async (ctx) => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, memMib: 256 });
    if (!enforced(ws.limits, "memory", (note) => ctx.skip(note))) return;
    // tail holds its whole (newline-free) input in memory: 400 MiB cannot fit in 256 MiB.
    const r = await pyro.execWorkspace(ws.workspace_id, { command: "head -c 400m /dev/zero | tail > /dev/null; echo rc=$?" });
    expect(r.stdout).toBe("rc=137\n");
    // Well within the limit, the same command succeeds: it was the limit, not the command.
    const small = await pyro.execWorkspace(ws.workspace_id, { command: "head -c 100m /dev/zero | tail > /dev/null; echo rc=$?" });
    expect(small.stdout).toBe("rc=0\n");
    await pyro.deleteWorkspace(ws.workspace_id);
  });

  it(`stops forking at the default pids limit (${DEFAULT_PIDS_MAX}), and the workspace still answers`, { timeout: 240_000 }, async (ctx) => {
    // Each task costs the workspace about 200 KiB of (kernel) memory: 2 GiB keeps the memory
    // limit out of the way of the pids limit, which stays the default.
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, memMib: 2048 });
    // Without an enforced limit the loop below would put thousands of processes on the host.
    if (!enforced(ws.limits, "pids", (note) => ctx.skip(note))) return;
    // perl reports a failed fork at once (bash retries for 15 s, then exits and leaves its
    // children behind). The children only sleep: fork without exec is the cheapest process
    // there is (a few ms each on a 2-core VM). All are killed before the command ends.
    const script = [
      "my @kids;",
      `while (@kids < ${DEFAULT_PIDS_MAX + 500}) { my $pid = fork(); last unless defined $pid; if ($pid == 0) { sleep 120; exit 0 } push @kids, $pid }`,
      'my $err = "$!";',
      'kill "KILL", @kids; waitpid($_, 0) for @kids;',
      'print "started=", scalar(@kids), " error=$err\\n";',
    ].join(" ");
    const r = await pyro.execWorkspace(ws.workspace_id, { command: ["perl", "-e", script], timeoutSeconds: 200 });
    expect(r.exit_code).toBe(0);
    const m = /^started=(\d+) error=(.*)$/.exec(r.stdout.trim());
    expect(m, r.stdout + r.stderr).not.toBeNull();
    const started = Number(m![1]);
    // The agent (with its threads), bubblewrap and perl count too, so fewer than the limit start;
    // the limit, not memory or anything else, is what stopped them (EAGAIN).
    expect(started).toBeLessThan(DEFAULT_PIDS_MAX);
    expect(started).toBeGreaterThan(DEFAULT_PIDS_MAX - 200);
    expect(m![2]).toBe("Resource temporarily unavailable");

    const after = await pyro.execWorkspace(ws.workspace_id, { command: "echo still here; ls /proc | grep -c '^[0-9]'" });
    expect(after.exit_code).toBe(0);
    expect(after.stdout).toMatch(/^still here\n\d+\n$/);
    expect(Number(after.stdout.split("\n")[1])).toBeLessThan(100);
    await pyro.deleteWorkspace(ws.workspace_id);
    expect((await pyro.listWorkspaces()).workspaces.map((w) => w.workspace_id)).not.toContain(ws.workspace_id);
  });
});
