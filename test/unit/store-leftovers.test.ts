/**
 * What a killed pyro call leaves in the state directory, and how later calls finish it: a lock
 * whose holder is dead is taken over at once; a half-deleted workspace (`.deleting-*`), a
 * directory a create never wrote a record into, and sockets and locks of workspaces that are
 * gone are removed by `finishInterrupted`, a bounded number of directories per call — and
 * nothing that a live process still owns.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { StateStore } from "../../src/core/store.js";
import { newWorkspaceId } from "../../src/core/ids.js";
import { processStartTime } from "../../src/shared/process.js";

const homes: string[] = [];
afterEach(() => {
  for (const home of homes.splice(0)) fs.rmSync(home, { recursive: true, force: true });
});

async function freshStore(): Promise<StateStore> {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-leftovers-"));
  homes.push(home);
  const store = new StateStore(home);
  await store.init();
  return store;
}

/** The owner tag of a process that has exited: pid and start time of a child already reaped. */
function deadOwner(): string {
  const child = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
  return `${child.stdout}.1`;
}
const liveOwner = () => `${process.pid}.${processStartTime(process.pid)}`;

/** A lock as a killed holder leaves it: the directory, then its owner file. */
function leaveLock(store: StateStore, name: string, owner: string, options: { freshForAnHour?: boolean } = {}): string {
  const lock = path.join(store.layout.locks, `${name}.lock`);
  fs.mkdirSync(lock);
  fs.writeFileSync(`${lock}.owner`, owner);
  // Its heartbeat an hour ahead: it never goes stale while the test waits, so only its dead owner can free it.
  if (options.freshForAnHour) fs.utimesSync(lock, new Date(Date.now() + 3600_000), new Date(Date.now() + 3600_000));
  return lock;
}

describe("leftovers of killed calls", () => {
  it("a lock whose holder was killed is taken over at once, not after it goes stale", async () => {
    const store = await freshStore();
    leaveLock(store, "registry", deadOwner(), { freshForAnHour: true });
    expect(await store.withLock("registry", async () => "ran")).toBe("ran");
    expect(fs.readdirSync(store.layout.locks)).toEqual([]);
  });

  it("a lock whose owner file is still empty (its holder is writing it) is not taken for a dead holder's", async () => {
    const store = await freshStore();
    const lock = leaveLock(store, "busy", "", { freshForAnHour: true });
    let ran = false;
    const taking = store.withLock("busy", async () => {
      ran = true;
    });
    await new Promise((r) => setTimeout(r, 400));
    expect(ran).toBe(false);
    // Its holder releases it: the waiter takes it then.
    fs.rmSync(`${lock}.owner`);
    fs.rmdirSync(lock);
    await taking;
    expect(ran).toBe(true);
  });

  it("processes taking one lock in turn never hold it together: a counter they all increment loses nothing", () => {
    const store = new StateStore(fs.mkdtempSync(path.join(os.tmpdir(), "pyro-lock-")));
    homes.push(store.home);
    const counter = path.join(store.home, "counter");
    fs.writeFileSync(counter, "0");
    // Each increment reads, yields to the event loop, and writes: two holders at once would lose one.
    const script = `
      import fs from "node:fs";
      import { StateStore } from ${JSON.stringify(path.resolve("src/core/store.ts"))};
      const store = new StateStore(process.argv[1]);
      await store.init();
      for (let i = 0; i < 40; i++) {
        await store.withLock("counter", async () => {
          const value = Number(fs.readFileSync(${JSON.stringify(counter)}, "utf8"));
          await new Promise((r) => setImmediate(r));
          fs.writeFileSync(${JSON.stringify(counter)}, String(value + 1));
        });
      }`;
    const processes = 8;
    const run = spawnSync("bash", ["-c", `for i in $(seq ${processes}); do "$0" --import tsx --input-type=module -e "$1" "$2" & done; wait`, process.execPath, script, store.home], { encoding: "utf8", timeout: 120_000 });
    expect(run.stderr).toBe("");
    expect(Number(fs.readFileSync(counter, "utf8"))).toBe(processes * 40);
  }, 150_000);

  it("a half-deleted workspace is removed by the next call, its secrets with it, together with its sockets and locks", async () => {
    const store = await freshStore();
    const id = newWorkspaceId();
    const trash = path.join(store.layout.workspaces, `.deleting-${id}-${deadOwner()}`);
    fs.mkdirSync(path.join(trash, "workspace", "src"), { recursive: true });
    fs.writeFileSync(path.join(trash, "secrets.json"), '{"TOKEN":"s3cr3t"}', { mode: 0o600 });
    fs.writeFileSync(path.join(trash, "workspace", "src", "main.c"), "int main(void) { return 0; }\n");
    fs.writeFileSync(path.join(store.layout.run, `${id}.sock`), "");
    fs.mkdirSync(path.join(store.layout.run, `${id}.vm`));
    leaveLock(store, `${id}.services`, deadOwner());

    expect(await store.finishInterrupted()).toEqual([id]);
    expect(fs.readdirSync(store.layout.workspaces)).toEqual([]);
    expect(fs.readdirSync(store.layout.run)).toEqual([]);
    expect(fs.readdirSync(store.layout.locks)).toEqual([]);
  });

  it("leaves a removal, a lock and sockets that a live process still owns", async () => {
    const store = await freshStore();
    const id = newWorkspaceId();
    const removing = path.join(store.layout.workspaces, `.deleting-${id}-${liveOwner()}`);
    fs.mkdirSync(removing);
    fs.writeFileSync(path.join(store.layout.run, `${id}.sock`), "");
    const gone = newWorkspaceId();
    const held = leaveLock(store, gone, liveOwner());

    expect(await store.finishInterrupted()).toEqual([]);
    expect(fs.existsSync(removing)).toBe(true);
    expect(fs.readdirSync(store.layout.run)).toEqual([`${id}.sock`]);
    expect(fs.existsSync(held)).toBe(true);
  });

  it("removes a workspace directory a killed create never wrote a record into, and never one that has a record", async () => {
    const store = await freshStore();
    const orphan = newWorkspaceId();
    fs.mkdirSync(path.join(store.workspaceDir(orphan), "workspace"), { recursive: true });
    fs.writeFileSync(store.paths(orphan).secrets, '{"TOKEN":"s3cr3t"}', { mode: 0o600 });
    const kept = newWorkspaceId();
    fs.mkdirSync(store.workspaceDir(kept));
    fs.writeFileSync(store.paths(kept).record, "{}");

    expect(await store.finishInterrupted()).toEqual([orphan]);
    expect(fs.readdirSync(store.layout.workspaces)).toEqual([kept]);
  });

  it("finishes a backlog a few directories per call", async () => {
    const store = await freshStore();
    const ids = [newWorkspaceId(), newWorkspaceId(), newWorkspaceId()];
    for (const id of ids) fs.mkdirSync(path.join(store.layout.workspaces, `.deleting-${id}-${deadOwner()}`));

    const first = await store.finishInterrupted(2);
    expect(first).toHaveLength(2);
    expect(fs.readdirSync(store.layout.workspaces)).toHaveLength(1);
    const second = await store.finishInterrupted(2);
    expect([...first, ...second].sort()).toEqual([...ids].sort());
    expect(fs.readdirSync(store.layout.workspaces)).toEqual([]);
  });
});
