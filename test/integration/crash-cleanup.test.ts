/**
 * Crash cleanup: a CLI killed with SIGKILL at any point of create (with a 2 000-file seed),
 * snapshot, reset, sync push or delete leaves every workspace listable and either usable or
 * clearly `failed`, and once everything is deleted nothing of any workspace is left on the host:
 * no process, cgroup, mount, socket, lock, half-deleted or half-created directory. The kill
 * points are random but seeded; the seed is printed so a failing run can be repeated
 * (PYRO_CRASH_SEED=N).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pyroGroup } from "../../src/runtime/confine/cgroups.js";
import { cli, killedCli, testHome, TEST_ENVIRONMENT } from "../helpers.js";

const SEED = Number(process.env.PYRO_CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));

/** mulberry32: a small seeded generator, so a run's kill points can be replayed. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Round {
  op: string;
  delayMs: number;
  killed: boolean;
  code: number | null;
}


const list = (dir: string): string[] => {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
};

/**
 * Everything on the host that still refers to `home`, or to one of `ids` (every workspace id
 * this test ever saw): processes whose command line, working directory or mount namespace
 * names the home; cgroups of those ids; mounts in this process's table; the state directory's
 * sockets, locks and workspace directories (including `.deleting-*` ones).
 */
function leftovers(home: string, ids: Set<string>) {
  const processes: string[] = [];
  for (const pid of list("/proc").filter((n) => /^\d+$/.test(n))) {
    if (Number(pid) === process.pid) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ");
      if (cmd.includes(home)) {
        processes.push(`${pid}: ${cmd.slice(0, 160)}`);
        continue;
      }
      const cwd = fs.readlinkSync(`/proc/${pid}/cwd`);
      if (cwd.startsWith(home)) {
        processes.push(`${pid}: ${cmd.slice(0, 160)} [cwd ${cwd}]`);
        continue;
      }
      const held = fs.readFileSync(`/proc/${pid}/mountinfo`, "utf8").split("\n").find((line) => line.includes(home));
      if (held) processes.push(`${pid}: ${cmd.slice(0, 160)} [holds ${held.split(" ")[3]}]`);
    } catch {
      // exited, or not ours to read
    }
  }
  const group = pyroGroup();
  const cgroups = [...ids].flatMap((id) => [path.join(group.v2, id), ...["memory", "pids", "cpu"].map((c) => path.join("/sys/fs/cgroup", c, group.v1, id))]).filter((d) => fs.existsSync(d));
  return {
    processes,
    cgroups,
    mounts: fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n").filter((l) => l.includes(home)),
    sockets: list(path.join(home, "run")),
    locks: list(path.join(home, "locks")),
    workspaces: list(path.join(home, "workspaces")),
  };
}
const NONE = { processes: [], cgroups: [], mounts: [], sockets: [], locks: [], workspaces: [] };

/** Every id-shaped name in the workspaces directory (including `.deleting-ID-…`). */
function noteIds(home: string, ids: Set<string>): void {
  for (const name of list(path.join(home, "workspaces"))) {
    const m = /^(?:\.deleting-)?([a-z2-9]{12})/.exec(name);
    if (m) ids.add(m[1]!);
  }
}

let home: string;
let seedDir: string;
let pushDir: string;

beforeAll(() => {
  home = testHome("crash");
  seedDir = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-crash-seed-"));
  for (let i = 0; i < 2000; i++) {
    const dir = path.join(seedDir, `d${i % 20}`);
    if (i < 20) fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, `f${i}.txt`), `seed file ${i}\n`);
  }
  pushDir = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-crash-push-"));
  for (let i = 0; i < 500; i++) fs.writeFileSync(path.join(pushDir, `p${i}.txt`), `pushed ${i}\n`);
});

afterAll(() => {
  // Whatever a failed assertion left is removed the way a user would remove it.
  if (home && fs.existsSync(path.join(home, "workspaces"))) {
    for (const w of (cli(home, ["workspace", "list", "--json"]).json().workspaces ?? []) as { workspace_id: string }[]) cli(home, ["workspace", "delete", w.workspace_id]);
  }
  for (const dir of [seedDir, pushDir]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe("a killed CLI leaves nothing a delete does not remove", () => {
  it("after many SIGKILLs during create, snapshot, sync push, reset and delete, every workspace lists and is usable or failed, and deleting them all leaves nothing on the host", async () => {
    console.log(`crash-cleanup seed: ${SEED} (PYRO_CRASH_SEED=${SEED} repeats this run's kill points)`);
    const random = seeded(SEED);
    const between = (lo: number, hi: number) => Math.round(lo + random() * (hi - lo));
    const ids = new Set<string>();
    const rounds: Round[] = [];

    /** The next call after a kill: lists, and no workspace is left half-made or half-deleted. */
    const listAll = () => {
      const r = cli(home, ["workspace", "list", "--json"]);
      expect(r.code, r.stderr).toBe(0);
      const workspaces = r.json().workspaces as { workspace_id: string; state: string }[];
      for (const w of workspaces) {
        ids.add(w.workspace_id);
        expect(["running", "stopped", "failed"], `${w.workspace_id} is ${w.state}`).toContain(w.state);
      }
      expect(list(path.join(home, "workspaces")).filter((n) => n.startsWith(".deleting-")), "a half-deleted workspace outlived the next call").toEqual([]);
      return workspaces;
    };
    const round = async (op: string, args: string[], delayMs: number) => {
      const r = await killedCli(home, args, delayMs);
      rounds.push({ op, delayMs, killed: r.killed, code: r.code });
      noteIds(home, ids);
      return listAll();
    };
    /** The workspace the snapshot, push and reset rounds work on, started again if a kill left it failed. */
    const ensureRunning = (id: string) => {
      const status = cli(home, ["workspace", "status", id, "--json"]);
      expect(status.code, status.stderr).toBe(0);
      if (status.json().state !== "running") {
        const started = cli(home, ["workspace", "start", id, "--json"]);
        expect(started.code, started.stderr).toBe(0);
      }
    };

    const made = cli(home, ["workspace", "create", TEST_ENVIRONMENT, "--seed-path", seedDir, "--json"]);
    expect(made.code, made.stderr).toBe(0);
    const main = made.json().workspace_id as string;
    ids.add(main);

    for (let i = 0; i < 5; i++) await round("create", ["workspace", "create", TEST_ENVIRONMENT, "--seed-path", seedDir, "--json"], between(0, 3000));
    for (let i = 0; i < 4; i++) {
      ensureRunning(main);
      await round("snapshot", ["workspace", "snapshot", "create", main, `s${i}`], between(0, 1200));
    }
    for (let i = 0; i < 4; i++) {
      ensureRunning(main);
      await round("sync push", ["workspace", "sync", "push", main, pushDir, "--dest", `/workspace/push${i}`], between(0, 2500));
    }
    for (let i = 0; i < 4; i++) {
      ensureRunning(main);
      await round("reset", ["workspace", "reset", main], between(0, 5000));
    }
    // A killed reset sets the old root layer aside; the start that follows it (or a reset that
    // finished) removes what it set aside, so killed resets do not pile up disk.
    ensureRunning(main);
    expect(list(path.join(home, "workspaces", main)).filter((n) => n.includes(".stale-"))).toEqual([]);
    // The delete rounds take the workspaces the create rounds left, whatever state they are in.
    const victims = listAll().map((w) => w.workspace_id).filter((id) => id !== main);
    for (let i = 0; i < 4; i++) {
      const victim = victims[i];
      if (victim === undefined) {
        const extra = cli(home, ["workspace", "create", TEST_ENVIRONMENT, "--json"]);
        expect(extra.code, extra.stderr).toBe(0);
        ids.add(extra.json().workspace_id as string);
        await round("delete", ["workspace", "delete", extra.json().workspace_id as string], between(0, 3000));
      } else {
        await round("delete", ["workspace", "delete", victim], between(0, 3000));
      }
    }
    console.log(`crash-cleanup rounds: ${rounds.map((r) => `${r.op}@${r.delayMs}ms${r.killed ? " killed" : ` exited ${r.code}`}`).join(", ")}`);
    expect(rounds.length).toBeGreaterThanOrEqual(20);
    expect(rounds.filter((r) => r.killed).length).toBeGreaterThan(0);

    // Every workspace is usable or clearly failed; the one the rounds worked on recovers.
    for (const w of listAll()) {
      if (w.state === "running") {
        const r = cli(home, ["workspace", "exec", w.workspace_id, "--", "true"]);
        expect(r.code, `${w.workspace_id}: ${r.stderr}`).toBe(0);
      }
    }
    ensureRunning(main);
    const ls = cli(home, ["workspace", "exec", main, "--", "sh", "-c", "ls /workspace/d0 | wc -l"]);
    expect(ls.code, ls.stderr).toBe(0);

    for (const w of listAll()) {
      const r = cli(home, ["workspace", "delete", w.workspace_id]);
      expect(r.code, r.stderr).toBe(0);
    }
    expect(listAll()).toEqual([]);
    expect(leftovers(home, ids)).toEqual(NONE);
  }, 600_000);
});
