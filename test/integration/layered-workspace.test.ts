/**
 * The layered /workspace against real sandboxes: a workspace's seed and snapshots are read-only
 * layers under a live upper, so a snapshot stores only what changed, a reset swaps layers, a
 * diff looks only where layers differ, and a fork shares layers. Asserted as a user relies on
 * it: the exact tree after every step (files changed, deleted, replaced by a directory, a
 * directory deleted and made again), the diff's exact changes, the running workspace seeing
 * what sync push wrote at once, forks independent both ways, the layers shared and removed
 * when nothing names them, workspaces of the earlier plain layout still working, and a CLI
 * killed at random points of snapshot, reset, fork and delete leaving everything usable or
 * clearly failed, never a half-made snapshot, and nothing on the host once deleted.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Pyro, PyroError } from "../../src/index.js";
import { cli, findLeaks, killedCli, noLeaks, testHome, TEST_BACKEND, TEST_ENVIRONMENT } from "../helpers.js";
import { MAX_STACK } from "../../src/core/workspace-layers.js";

let home: string;
let pyro: Pyro;
let seedDir: string;
const SEED_FILES = 2000;

beforeAll(() => {
  home = testHome("layered");
  pyro = new Pyro({ home });
  seedDir = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-layered-seed-"));
  for (let d = 0; d < 20; d++) {
    fs.mkdirSync(path.join(seedDir, `d${d}`));
    for (let f = 0; f < SEED_FILES / 20; f++) fs.writeFileSync(path.join(seedDir, `d${d}`, `f${f}.txt`), `file ${d}/${f}\n`);
  }
  fs.writeFileSync(path.join(seedDir, "README"), "seeded\n");
});

afterEach(async () => {
  for (const w of (await pyro.listWorkspaces()).workspaces) await pyro.deleteWorkspace(w.workspace_id);
});

afterAll(async () => {
  pyro.close();
  fs.rmSync(seedDir, { recursive: true, force: true });
  expect(findLeaks(home)).toEqual(noLeaks());
});

const mem = TEST_BACKEND === "vm" ? 512 : 256;

async function sh(ws: string, command: string): Promise<string> {
  const r = await pyro.execWorkspace(ws, { command });
  expect(r.exit_code, `${command}: ${r.stderr}`).toBe(0);
  return r.stdout;
}

/** What a user sees of the tree: every path with its type, and a checksum of every file. */
async function tree(ws: string): Promise<string> {
  return sh(ws, "cd /workspace && find . -mindepth 1 -printf '%y %p %m\\n' | LC_ALL=C sort | md5sum; cat README; ls d3 | wc -l");
}

const changeList = (r: { changes: { path: string; change: string }[] }) => r.changes.map((c) => `${c.change} ${c.path}`);

/** The pool of layers, as the host holds it. */
const layersOnHost = () => (fs.existsSync(path.join(home, "workspace-layers")) ? fs.readdirSync(path.join(home, "workspace-layers")).filter((n) => !n.startsWith(".")) : []);

describe("layered /workspace", () => {
  it("snapshots store only what changed; diff, reset and snapshots give exactly the trees a user made", async () => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "layers", seedPath: seedDir, memMib: mem, diskMib: 512 });
    const seeded = await tree(ws.workspace_id);
    // Edits of every kind: content, mode, deletion, a file replaced by a directory, a directory
    // deleted, a directory deleted and made again with other contents, new files and links.
    await sh(
      ws.workspace_id,
      "echo changed > d0/f0.txt && chmod 755 d0/f1.txt && rm d0/f2.txt && rm d1/f0.txt && mkdir d1/f0.txt && echo inside > d1/f0.txt/x " +
        "&& rm -r d2 && rm -r d4 && mkdir d4 && echo fresh > d4/only.txt && mkdir -p new/deep && echo n > new/deep/n.txt && ln -s ../README new/link",
    );
    const first = await pyro.diffWorkspace(ws.workspace_id);
    const expected = [
      "modified d0/f0.txt",
      "mode_changed d0/f1.txt",
      "deleted d0/f2.txt",
      "type_changed d1/f0.txt",
      "added d1/f0.txt/x",
      "deleted d2",
      ...Array.from({ length: 100 }, (_, f) => `deleted d2/f${f}.txt`).sort(),
      ...Array.from({ length: 100 }, (_, f) => `deleted d4/f${f}.txt`).sort().slice(0, 0),
    ];
    const got = changeList(first);
    // d4: all 100 old files deleted, the new one added (the directory itself stays a directory).
    expect(got.filter((c) => c.includes(" d4/"))).toEqual([...Array.from({ length: 100 }, (_, f) => `deleted d4/f${f}.txt`), "added d4/only.txt"].sort((a, b) => a.split(" ")[1]!.localeCompare(b.split(" ")[1]!)));
    expect(got.filter((c) => !c.includes(" d4/") && !c.startsWith("added new"))).toEqual(expected);
    expect(got.filter((c) => c.includes(" new"))).toEqual(["added new", "added new/deep", "added new/deep/n.txt", "added new/link"]);
    expect(first.summary.total).toBe(got.length);

    const s1 = await pyro.createSnapshot(ws.workspace_id, "s1");
    // The snapshot holds what changed, not the 2000-file tree.
    expect(s1.entries).toBeLessThan(50);
    const afterS1 = await tree(ws.workspace_id);
    await sh(ws.workspace_id, "echo later > d5/f5.txt && rm -r new");
    const sinceS1 = await pyro.diffWorkspace(ws.workspace_id, { snapshot: "s1" });
    expect(changeList(sinceS1)).toEqual(["modified d5/f5.txt", "deleted new", "deleted new/deep", "deleted new/deep/n.txt", "deleted new/link"]);

    // A stopped workspace reads the same (its layers mounted for the read, not its sandbox).
    await pyro.stopWorkspace(ws.workspace_id);
    expect((await pyro.readWorkspaceDisk(ws.workspace_id, "d5/f5.txt")).content).toBe("later\n");
    expect(changeList(await pyro.diffWorkspace(ws.workspace_id, { snapshot: "s1" }))).toEqual(changeList(sinceS1));
    const stoppedSnap = await pyro.createSnapshot(ws.workspace_id, "stopped");
    expect(stoppedSnap.entries).toBeLessThan(50);
    await pyro.startWorkspace(ws.workspace_id);

    await pyro.resetWorkspace(ws.workspace_id, { snapshot: "s1" });
    expect(await tree(ws.workspace_id)).toBe(afterS1);
    expect(changeList(await pyro.diffWorkspace(ws.workspace_id, { snapshot: "s1" }))).toEqual([]);
    await pyro.resetWorkspace(ws.workspace_id, { snapshot: "stopped" });
    expect(await sh(ws.workspace_id, "cat d5/f5.txt; ls new 2>&1 | head -1")).toContain("later\n");
    await pyro.resetWorkspace(ws.workspace_id);
    expect(await tree(ws.workspace_id)).toBe(seeded);
    expect((await pyro.diffWorkspace(ws.workspace_id)).summary.total).toBe(0);

    // Snapshot of a snapshot's stack, after a reset to it: the chain stacks and still reads right.
    await pyro.resetWorkspace(ws.workspace_id, { snapshot: "s1" });
    await sh(ws.workspace_id, "echo third > d6/f6.txt");
    await pyro.createSnapshot(ws.workspace_id, "s2");
    await pyro.resetWorkspace(ws.workspace_id);
    await pyro.resetWorkspace(ws.workspace_id, { snapshot: "s2" });
    expect(await sh(ws.workspace_id, "cat d6/f6.txt d0/f0.txt; test -e d2 || echo no-d2")).toBe("third\nchanged\nno-d2\n");
    expect(changeList(await pyro.diffWorkspace(ws.workspace_id)).filter((c) => c.includes("d6"))).toEqual(["modified d6/f6.txt"]);

    // A layer nothing names any more is removed; the ones snapshots name stay.
    await pyro.deleteSnapshot(ws.workspace_id, "stopped");
    const pool = layersOnHost().length;
    await pyro.deleteSnapshot(ws.workspace_id, "s2");
    // s2's layer is still the live stack's: it stays until a reset leaves it.
    expect(layersOnHost().length).toBe(pool);
    await pyro.resetWorkspace(ws.workspace_id);
    expect(layersOnHost().length).toBe(pool - 1);
  }, 600_000);

  it("a running workspace's diff, made by its own agent up to a limit and in a utility sandbox past it, is the stopped workspace's; its layers are read-only inside", async () => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, seedPath: seedDir, memMib: mem });
    const id = ws.workspace_id;
    await sh(id, "echo x > d0/f0.txt && rm d1/f1.txt && chmod 700 d2/f2.txt");
    const small = { all: await pyro.diffWorkspace(id), under: await pyro.diffWorkspace(id, { path: "d0" }) };
    expect(changeList(small.all)).toEqual(["modified d0/f0.txt", "deleted d1/f1.txt", "mode_changed d2/f2.txt"]);
    // More entries than the running agent compares: the same answer comes from a utility sandbox.
    await sh(id, "mkdir many && cd many && for i in $(seq 1 6000); do echo $i > $i; done");
    const large = await pyro.diffWorkspace(id);
    expect(large.summary).toEqual({ added: 6001, deleted: 1, modified: 1, type_changed: 0, mode_changed: 1, total: 6004 });
    if (TEST_BACKEND === "namespace") {
      // The guest sees its own layers as they are stored, and cannot change them.
      const inside = await pyro.execWorkspace(id, { command: "ls /run/pyro/layers; cat /run/pyro/layers/upper/d0/f0.txt; touch /run/pyro/layers/upper/new 2>&1; rm /run/pyro/layers/*/README 2>&1; echo rc=$?" });
      expect(inside.stdout).toContain("upper\n");
      expect(inside.stdout).toContain("x\n");
      expect(inside.stdout).toMatch(/touch: cannot touch '\/run\/pyro\/layers\/upper\/new': Read-only file system/);
      expect(inside.stdout).toMatch(/rm: cannot remove '[^']*README': Read-only file system\nrc=1/);
    }
    await sh(id, "rm -r many");
    const again = await pyro.diffWorkspace(id);
    await pyro.stopWorkspace(id);
    expect(await pyro.diffWorkspace(id)).toEqual(again);
    expect(again).toEqual(small.all);
    expect(await pyro.diffWorkspace(id, { path: "d0" })).toEqual(small.under);
  }, 300_000);

  it("a diff, an export and a disk read of a stopped workspace finish whole when a start comes meanwhile", async () => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, seedPath: seedDir, memMib: mem });
    const id = ws.workspace_id;
    await sh(id, "mkdir many && cd many && for i in $(seq 1 4000); do echo $i > $i; done");
    await pyro.stopWorkspace(id);
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-layered-race-"));
    try {
      // The reads run in utility sandboxes of their own, mounting the workspace's layers; the
      // start, which ends whatever holds them, comes while they run and waits for them.
      // The disk read was asked of a stopped workspace, so it is admitted and finishes whole
      // whichever of it and the start takes the lock first. A failing read fails this test
      // instead of surfacing as an unhandled rejection.
      const reads = Promise.all([pyro.diffWorkspace(id), pyro.exportWorkspace(id, "many", { outputPath: path.join(out, "many") }), pyro.readWorkspaceDisk(id, "many/4000")]);
      reads.catch(() => undefined);
      await new Promise((r) => setTimeout(r, 50));
      const [[diff, exported, read], started] = await Promise.all([reads, pyro.startWorkspace(id)]);
      expect(diff.summary.added).toBe(4001);
      expect(exported.files).toBe(4000);
      expect(fs.readdirSync(path.join(out, "many")).length).toBe(4000);
      expect(read.content).toBe("4000\n");
      expect(started.state).toBe("running");
      expect(await sh(id, "ls many | wc -l")).toBe("4000\n");
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  }, 300_000);

  it("sync push into a running workspace shows at once inside it, in export and in diff", async () => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, seedPath: seedDir, memMib: mem });
    const push = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-layered-push-"));
    try {
      fs.writeFileSync(path.join(push, "pushed.txt"), "from the host\n");
      fs.writeFileSync(path.join(push, "README"), "replaced\n");
      await pyro.pushWorkspaceSync(ws.workspace_id, push);
      expect(await sh(ws.workspace_id, "cat pushed.txt README")).toBe("from the host\nreplaced\n");
      // The agent's process wrote too; both show in the export and the diff.
      await sh(ws.workspace_id, "echo agent > agent.txt");
      const out = path.join(push, "out");
      await pyro.exportWorkspace(ws.workspace_id, ".", { outputPath: out });
      expect(fs.readFileSync(path.join(out, "pushed.txt"), "utf8")).toBe("from the host\n");
      expect(fs.readFileSync(path.join(out, "agent.txt"), "utf8")).toBe("agent\n");
      expect(fs.readdirSync(path.join(out, "d3")).length).toBe(100);
      expect(changeList(await pyro.diffWorkspace(ws.workspace_id))).toEqual(["modified README", "added agent.txt", "added pushed.txt"]);
    } finally {
      fs.rmSync(push, { recursive: true, force: true });
    }
  }, 300_000);

  it("a fork shares its source's layers and the two stay independent; layers go when nothing names them", async () => {
    expect(layersOnHost()).toEqual([]);
    const source = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "fsrc", seedPath: seedDir, memMib: mem });
    await sh(source.workspace_id, "echo before > state.txt && rm d9/f9.txt");
    await pyro.createSnapshot(source.workspace_id, "cp");
    const before = layersOnHost().length;
    const fork = await pyro.forkWorkspace(source.workspace_id, { name: "fdst" });
    // One new layer (the source's live changes), everything else shared.
    expect(layersOnHost().length).toBe(before + 1);
    expect(await sh(fork.workspace_id, "cat state.txt; test -e d9/f9.txt || echo gone; ls d3 | wc -l")).toBe("before\ngone\n100\n");
    expect(changeList(await pyro.diffWorkspace(fork.workspace_id))).toEqual(["deleted d9/f9.txt", "added state.txt"]);
    await sh(fork.workspace_id, "echo fork > state.txt && echo f > only-fork");
    await sh(source.workspace_id, "echo source > state.txt");
    expect(await sh(source.workspace_id, "cat state.txt; test -e only-fork || echo absent")).toBe("source\nabsent\n");
    expect(await sh(fork.workspace_id, "cat state.txt")).toBe("fork\n");
    // The source goes; the fork keeps the layers it stands on.
    await pyro.deleteWorkspace(source.workspace_id);
    await pyro.resetWorkspace(fork.workspace_id, { snapshot: "cp" });
    expect(await sh(fork.workspace_id, "cat state.txt; ls d3 | wc -l")).toBe("before\n100\n");
    await pyro.deleteWorkspace(fork.workspace_id);
    expect(layersOnHost()).toEqual([]);
  }, 300_000);

  it("a workspace made in the earlier plain layout keeps working, snapshots and forks included", async () => {
    const made = cli(home, ["workspace", "create", TEST_ENVIRONMENT, "--backend", TEST_BACKEND, "--name", "plain", "--seed-path", seedDir, "--mem-mib", String(mem), "--id-only"], { env: { PYRO_WORKSPACE_LAYOUT: "plain" } });
    expect(made.code, made.stderr).toBe(0);
    const id = made.stdout.trim();
    const record = JSON.parse(fs.readFileSync(path.join(home, "workspaces", id, "workspace.json"), "utf8")) as Record<string, unknown>;
    expect(record.workspace_layout).toBeUndefined();
    await sh(id, "echo plain-change > d0/f0.txt");
    expect(changeList(await pyro.diffWorkspace(id))).toEqual(["modified d0/f0.txt"]);
    await pyro.createSnapshot(id, "p1");
    await sh(id, "rm -r d1");
    await pyro.exportWorkspace(id, "d0/f0.txt", { outputPath: path.join(seedDir, "..", `pyro-plain-export-${process.pid}`) });
    fs.rmSync(path.join(seedDir, "..", `pyro-plain-export-${process.pid}`), { force: true });
    await pyro.resetWorkspace(id, { snapshot: "p1" });
    expect(await sh(id, "cat d0/f0.txt; ls d1 | wc -l")).toBe("plain-change\n100\n");
    const fork = await pyro.forkWorkspace(id);
    expect(await sh(fork.workspace_id, "cat d0/f0.txt")).toBe("plain-change\n");
    await pyro.resetWorkspace(id);
    expect(await sh(id, "cat d0/f0.txt")).toBe("file 0/0\n");
    expect(layersOnHost()).toEqual([]);
  }, 300_000);

  it("a CLI killed during snapshot, reset, fork or delete leaves every workspace usable or failed, no half-made snapshot, nothing behind", async () => {
    let seed = 1515;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "kill-layers", seedPath: seedDir, memMib: mem });
    await sh(ws.workspace_id, "echo base > state.txt");
    await pyro.createSnapshot(ws.workspace_id, "keep");
    const outcomes: string[] = [];
    const ops: string[][] = [
      ["workspace", "snapshot", "create", "kill-layers", "k"],
      ["workspace", "reset", "kill-layers", "--snapshot", "keep"],
      ["workspace", "fork", "kill-layers", "--name", "kill-fork"],
      ["workspace", "reset", "kill-layers"],
    ];
    for (let round = 0; round < 8; round++) {
      const args = ops[round % ops.length]!;
      const delayMs = Math.round(200 + random() * 2800);
      const r = await killedCli(home, args, delayMs);
      outcomes.push(`${args[1]} ${args[2]} at ${delayMs} ms: ${r.killed ? "killed" : `exit ${r.code}`}`);
      const status = await pyro.statusWorkspace("kill-layers");
      expect(["running", "failed"]).toContain(status.state);
      if (status.state === "failed") await pyro.resetWorkspace("kill-layers", { snapshot: "keep" });
      // Usable: every file of the seed is there, and what `keep` holds, what came after, or
      // (a reset to the baseline) neither.
      expect(await sh("kill-layers", "ls d3 | wc -l; cat state.txt 2>/dev/null || echo none")).toMatch(/^100\n(base|changed|none)\n$/);
      // A snapshot is listed complete or not at all.
      const snaps = await pyro.listSnapshots("kill-layers");
      for (const s of snaps.snapshots) if (s.name === "k") expect(changeList(await pyro.diffWorkspace("kill-layers", { snapshot: "k" })).length).toBeGreaterThanOrEqual(0);
      if (snaps.snapshots.some((s) => s.name === "k")) await pyro.deleteSnapshot("kill-layers", "k");
      for (const w of (await pyro.listWorkspaces()).workspaces) {
        if (w.name === "kill-fork" || w.forked_from) {
          expect(["running", "failed"]).toContain(w.state);
          if (w.state === "running") expect(await sh(w.workspace_id, "ls d3 | wc -l")).toBe("100\n");
          await pyro.deleteWorkspace(w.workspace_id);
        }
      }
      await sh("kill-layers", "echo changed > state.txt");
    }
    console.log(`layered kill rounds: ${outcomes.join("; ")}`);
    // Killed deletes: the workspace is gone or still deletable.
    for (let round = 0; round < 2; round++) {
      const victim = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, seedPath: seedDir, memMib: mem });
      await pyro.createSnapshot(victim.workspace_id, "v");
      await killedCli(home, ["workspace", "delete", victim.workspace_id], Math.round(100 + random() * 900));
      const left = (await pyro.listWorkspaces()).workspaces.find((w) => w.workspace_id === victim.workspace_id);
      if (left) await pyro.deleteWorkspace(victim.workspace_id);
    }
    await pyro.deleteWorkspace("kill-layers");
    await pyro.listWorkspaces();
    await pyro.listWorkspaces();
    expect(findLeaks(home)).toEqual(noLeaks());
  }, 900_000);

  it("a chain of snapshot-then-reset-to-it as deep as the stack may grow is flattened once, and every snapshot still reads right", async () => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, seedPath: seedDir, memMib: mem });
    const home_ = (id: string) => path.join(home, "workspaces", ws.workspace_id, "snapshots", `${id}.json`);
    const stackOf = (name: string) => (JSON.parse(fs.readFileSync(home_(name), "utf8")) as { layers: string[] }).layers.length;
    // Each round stacks one layer: change, snapshot, reset to that snapshot.
    for (let i = 1; i <= MAX_STACK; i++) {
      await sh(ws.workspace_id, `echo ${i} > round.txt && rm -f d${i % 20}/f${i}.txt`);
      await pyro.createSnapshot(ws.workspace_id, `r${i}`);
      await pyro.resetWorkspace(ws.workspace_id, { snapshot: `r${i}` });
    }
    // r1 sits on the seed; r63 on 63 layers; r64 would have been 65 deep and is one whole layer.
    expect(stackOf("r1")).toBe(2);
    expect(stackOf(`r${MAX_STACK - 1}`)).toBe(MAX_STACK);
    expect(stackOf(`r${MAX_STACK}`)).toBe(1);
    expect((await pyro.listSnapshots(ws.workspace_id)).snapshots.find((s) => s.name === `r${MAX_STACK}`)!.entries).toBeGreaterThan(SEED_FILES - MAX_STACK);
    // The flattened one and the deepest stacked one hold exactly what the rounds made.
    const expected = async () => sh(ws.workspace_id, "cat round.txt; find . -type f | wc -l; test -e d1/f1.txt || echo no-d1-f1; test -e d3/f63.txt || echo no-d3-f63");
    const atTop = await expected();
    expect(atTop).toBe(`${MAX_STACK}\n${SEED_FILES + 2 - MAX_STACK}\nno-d1-f1\nno-d3-f63\n`);
    await pyro.resetWorkspace(ws.workspace_id, { snapshot: `r${MAX_STACK - 1}` });
    expect(await sh(ws.workspace_id, "cat round.txt; test -e d4/f64.txt && echo d4-f64")).toBe(`${MAX_STACK - 1}\nd4-f64\n`);
    await pyro.resetWorkspace(ws.workspace_id, { snapshot: `r${MAX_STACK}` });
    expect(await expected()).toBe(atTop);
    // And the diff against the baseline sees through the flattened layer: the round file and the deleted ones.
    const d = await pyro.diffWorkspace(ws.workspace_id);
    expect(d.summary).toMatchObject({ added: 1, deleted: MAX_STACK, total: MAX_STACK + 1 });
  }, 900_000);

  it("a snapshot name that exists, and a reset to a snapshot that does not, leave the workspace as it was", async () => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, seedPath: seedDir, memMib: mem });
    await pyro.createSnapshot(ws.workspace_id, "one");
    const pool = layersOnHost().length;
    await expect(pyro.createSnapshot(ws.workspace_id, "one")).rejects.toMatchObject({ code: "snapshot_exists" });
    await expect(pyro.resetWorkspace(ws.workspace_id, { snapshot: "none" })).rejects.toBeInstanceOf(PyroError);
    expect(layersOnHost().length).toBe(pool);
    expect(await sh(ws.workspace_id, "ls d3 | wc -l")).toBe("100\n");
  }, 300_000);
});
