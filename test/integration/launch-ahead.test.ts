/**
 * Namespaces made ahead of a launch (`prepareLaunch`): the next launch of the process takes
 * them, but never when the host's mounts changed since they were copied (a path under a newer
 * mount would name what lies beneath it), and a spare nobody takes neither keeps the process
 * alive nor outlives it.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { prepareLaunch } from "../../src/runtime/confine/launch.js";
import { runUtility } from "../../src/runtime/confine/utility.js";
import { waitFor } from "../helpers.js";

const isRoot = process.getuid?.() === 0;
let scratch: string;

beforeAll(() => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-launch-ahead-"));
  fs.chmodSync(scratch, 0o755);
});

afterAll(() => {
  spawnSync("umount", [path.join(scratch, "mnt")]);
  fs.rmSync(scratch, { recursive: true, force: true });
});

/** Processes still waiting as a holder (HOLDER_SCRIPT) whose parent is `pid`. */
function holdersOf(pid: number): number[] {
  const out = spawnSync("pgrep", ["-P", String(pid), "-f", "read _"], { encoding: "utf8" }).stdout;
  return out.split("\n").filter(Boolean).map(Number);
}

describe("namespaces made ahead of a launch", () => {
  it("are used by the next launch, which sees the host as it is", async () => {
    const dir = path.join(scratch, "plain");
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, "seen.txt"), "plain\n");
    prepareLaunch();
    // Let the spare come up, as it does while an operation takes its locks.
    await new Promise((r) => setTimeout(r, 300));
    const r = await runUtility([{ source: dir, target: "/data", readOnly: true }], ["cat", "/data/seen.txt"]);
    expect(r).toMatchObject({ code: 0, stdout: "plain\n" });
    // A spare left untaken would wait 5 s: gone at once means the launch took it.
    await waitFor("the holder it took is gone with the launch", () => holdersOf(process.pid).length === 0, 2000);
  });

  it.skipIf(!isRoot)("are not used once the host mounted something since: the launch sees the new mount, not what it covers", async () => {
    const mnt = path.join(scratch, "mnt");
    fs.mkdirSync(mnt);
    fs.writeFileSync(path.join(mnt, "seen.txt"), "underneath\n");
    prepareLaunch();
    await new Promise((r) => setTimeout(r, 300));
    expect(spawnSync("mount", ["-t", "tmpfs", "-o", "size=1m,mode=0755", "pyro-test", mnt]).status).toBe(0);
    fs.writeFileSync(path.join(mnt, "seen.txt"), "mounted\n");
    const r = await runUtility([{ source: mnt, target: "/data", readOnly: true }], ["cat", "/data/seen.txt"]);
    expect(r).toMatchObject({ code: 0, stdout: "mounted\n" });
    // The stale spare was let go, not kept.
    await waitFor("the stale spare is gone", () => holdersOf(process.pid).length === 0, 5000);
  });

  it("never keep a process alive, nor outlive it", () => {
    const script = path.join(scratch, "spare.ts");
    fs.writeFileSync(script, `import { prepareLaunch } from ${JSON.stringify(path.resolve("src/runtime/confine/launch.ts"))};\nprepareLaunch();\nsetTimeout(() => console.log(process.pid), 500);\n`);
    const started = Date.now();
    const r = spawnSync(process.execPath, ["--import", "tsx", script], { encoding: "utf8", timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    // The spare is let go after 5 s; the process ended well before, on its own.
    expect(Date.now() - started).toBeLessThan(5000);
    expect(holdersOf(Number(r.stdout.trim()))).toEqual([]);
    expect(spawnSync("pgrep", ["-f", `${script}`]).status).toBe(1);
  });
});
