import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { describeProjectSource, materializeProjectSource, resolveProjectSource } from "../../src/core/project-source.js";

function gitRepo(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-proj-"));
  const git = (...args: string[]) => execFileSync("git", ["-c", "user.email=t@example.invalid", "-c", "user.name=t", "-c", "commit.gpgsign=false", ...args], { cwd: dir });
  git("init", "-q");
  fs.writeFileSync(path.join(dir, "tracked.txt"), "v1\n");
  fs.writeFileSync(path.join(dir, "gone.txt"), "delete me\n");
  fs.mkdirSync(path.join(dir, "src"));
  fs.writeFileSync(path.join(dir, "src", "main.sh"), "echo hi\n", { mode: 0o755 });
  fs.writeFileSync(path.join(dir, ".gitignore"), "build/\n*.log\n");
  git("add", ".");
  git("commit", "-qm", "init");
  // working-tree state: an uncommitted edit, a deletion, ignored output, an untracked file
  fs.writeFileSync(path.join(dir, "tracked.txt"), "v2 uncommitted\n");
  fs.rmSync(path.join(dir, "gone.txt"));
  fs.mkdirSync(path.join(dir, "build"));
  fs.writeFileSync(path.join(dir, "build", "out.bin"), "artifact");
  fs.writeFileSync(path.join(dir, "debug.log"), "noise");
  fs.writeFileSync(path.join(dir, "untracked.txt"), "not in git");
  return dir;
}

function archiveListing(archive: string): string[] {
  return execFileSync("tar", ["-tf", archive], { encoding: "utf8" }).split("\n").filter(Boolean).sort();
}

describe("project sources", () => {
  it("seeds a Git checkout from its tracked files with uncommitted changes, never ignored or untracked files", async () => {
    const repo = gitRepo();
    const source = await resolveProjectSource({ cwd: path.join(repo, "src") });
    expect(source).toEqual({ kind: "git_checkout", path: fs.realpathSync(repo), repo_url: null, repo_ref: null });
    const m = await materializeProjectSource(source!);
    try {
      expect(archiveListing(m.archive)).toEqual([".gitignore", "src/main.sh", "tracked.txt"]);
      expect(execFileSync("tar", ["-xOf", m.archive, "tracked.txt"], { encoding: "utf8" })).toBe("v2 uncommitted\n");
      expect(m.origin_kind).toBe("git_checkout");
      expect(m.origin_ref).toMatch(/@[0-9a-f]{12}\+uncommitted$/);
      expect(m.files).toBe(3);
    } finally {
      await m.cleanup();
    }
  });

  it("clones --repo-url cleanly, at --repo-ref, without the working tree's edits", async () => {
    const repo = gitRepo();
    execFileSync("git", ["-c", "user.email=t@example.invalid", "-c", "user.name=t", "tag", "v1"], { cwd: repo });
    const source = await resolveProjectSource({ repoUrl: `file://${repo}`, repoRef: "v1" });
    expect(source?.kind).toBe("repo_url");
    expect(describeProjectSource(source)).toContain("clean clone");
    const m = await materializeProjectSource(source!);
    try {
      expect(archiveListing(m.archive)).toContain("gone.txt");
      expect(execFileSync("tar", ["-xOf", m.archive, "tracked.txt"], { encoding: "utf8" })).toBe("v1\n");
      expect(m.origin_ref).toMatch(/^file:\/\/.*@[0-9a-f]{40}$/);
    } finally {
      await m.cleanup();
    }
  });

  it("uses a plain --project-path directory whole, detects no project outside Git, and can be turned off", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-plain-"));
    fs.writeFileSync(path.join(dir, "a.txt"), "A");
    const source = await resolveProjectSource({ projectPath: dir });
    expect(source?.kind).toBe("directory");
    const m = await materializeProjectSource(source!);
    expect(archiveListing(m.archive)).toContain("./a.txt");
    await m.cleanup();
    expect(await resolveProjectSource({ cwd: dir })).toBeNull();
    expect(await resolveProjectSource({ cwd: gitRepo(), noProjectSource: true })).toBeNull();
    await expect(resolveProjectSource({ projectPath: "/nonexistent/project" })).rejects.toMatchObject({ code: "seed_path_not_found" });
  });
});
