import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { CLI, REPO, cli, testHome, TEST_ENVIRONMENT } from "../helpers.js";

/** A fake host CLI on PATH that records its arguments and answers `mcp list` from a file. */
function fakeHost(binary: string): { dir: string; calls: () => string[][]; setList: (text: string) => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `pyro-fake-${binary}-`));
  const log = path.join(dir, "calls.jsonl");
  const list = path.join(dir, "list.txt");
  fs.writeFileSync(list, "");
  fs.writeFileSync(
    path.join(dir, binary),
    `#!/usr/bin/env node\nconst fs = require("fs");\nfs.appendFileSync(${JSON.stringify(log)}, JSON.stringify(process.argv.slice(2)) + "\\n");\nif (process.argv[3] === "list") process.stdout.write(fs.readFileSync(${JSON.stringify(list)}, "utf8"));\n`,
    { mode: 0o755 },
  );
  return {
    dir,
    calls: () => (fs.existsSync(log) ? fs.readFileSync(log, "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as string[]) : []),
    setList: (text) => fs.writeFileSync(list, text),
  };
}

function withPath(home: string, dir: string, args: string[]) {
  const saved = process.env.PATH;
  process.env.PATH = `${dir}:${saved}`;
  try {
    return cli(home, args);
  } finally {
    process.env.PATH = saved;
  }
}

describe("chat-host onramp", () => {
  it("connects Claude Code and Codex with their own `mcp add`, from one canonical serve command", () => {
    const home = testHome("hosts");
    for (const [host, binary] of [["claude-code", "claude"], ["codex", "codex"]] as const) {
      const fake = fakeHost(binary);
      const r = withPath(home, fake.dir, ["host", "connect", host, "--mode", "repro-fix", "--project-path", REPO, "--json"]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.json().ran).toBe(true);
      expect(fake.calls()).toEqual([["mcp", "add", "pyro", "--", process.execPath, CLI, "mcp", "serve", "--mode", "repro-fix", "--project-path", REPO]]);
    }
  });

  it("prints the exact command when the host CLI is not installed, and refuses unknown hosts", () => {
    const home = testHome("hosts");
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-nopath-"));
    const saved = process.env.PATH;
    process.env.PATH = `${empty}:/usr/bin:/bin`;
    try {
      const r = cli(home, ["host", "connect", "claude-code", "--json"]);
      expect(r.json()).toMatchObject({ ran: false, command: `claude mcp add pyro -- ${process.execPath} ${CLI} mcp serve` });
    } finally {
      process.env.PATH = saved;
    }
    expect(cli(home, ["host", "connect", "vscode", "--json"]).json().error.code).toBe("invalid_argument");
  });

  it("prints configs for OpenCode, Claude Desktop and Cursor from the same command", () => {
    const home = testHome("hosts");
    const opencode = cli(home, ["host", "print-config", "opencode", "--profile", "workspace-full", "--json"]).json();
    expect(opencode.config.mcp.pyro).toEqual({ type: "local", command: [process.execPath, CLI, "mcp", "serve", "--profile", "workspace-full"], enabled: true });
    for (const host of ["claude-desktop", "cursor"]) {
      const r = cli(home, ["host", "print-config", host, "--json"]).json();
      expect(r.config.mcpServers.pyro).toEqual({ command: process.execPath, args: [CLI, "mcp", "serve"] });
    }
  });

  it("host doctor finds missing and drifted registrations, and repair replaces them", () => {
    const home = testHome("hosts");
    const fake = fakeHost("claude");
    let entries = withPath(home, fake.dir, ["host", "doctor", "--json"]).json().hosts;
    expect(entries.find((e: { host: string }) => e.host === "claude-code")).toMatchObject({ installed: true, registered: false, fix: "pyro host connect claude-code" });
    fake.setList(`pyro: /usr/bin/old-pyro mcp serve --profile vm-run\n`);
    entries = withPath(home, fake.dir, ["host", "doctor", "--json"]).json().hosts;
    expect(entries.find((e: { host: string }) => e.host === "claude-code")).toMatchObject({ registered: true, drifted: true, fix: "pyro host repair claude-code" });
    const repaired = withPath(home, fake.dir, ["host", "repair", "claude-code", "--json"]);
    expect(repaired.json().ran).toBe(true);
    const calls = fake.calls().filter((c) => c[1] !== "list");
    expect(calls).toEqual([
      ["mcp", "remove", "pyro"],
      ["mcp", "add", "pyro", "--", process.execPath, CLI, "mcp", "serve"],
    ]);
    fake.setList(`pyro: ${process.execPath} ${CLI} mcp serve\n`);
    entries = withPath(home, fake.dir, ["host", "doctor", "--json"]).json().hosts;
    expect(entries.find((e: { host: string }) => e.host === "claude-code")).toMatchObject({ registered: true, drifted: false, fix: null });
  });
});

describe("the daily loop", () => {
  it("prepare proves the workspace cycle once; doctor says cold, then warm, then stale after the agent changes", () => {
    const home = testHome("prepare");
    expect(cli(home, ["doctor", "--environment", TEST_ENVIRONMENT, "--json"]).json().environment_readiness.state).toBe("cold");
    const prepared = cli(home, ["prepare", TEST_ENVIRONMENT, "--json"]);
    expect(prepared.code, prepared.stderr).toBe(0);
    expect(prepared.json()).toMatchObject({ state: "warm" });
    expect(Object.keys(prepared.json().cycle_ms)).toEqual(["pull", "create", "exec", "reset", "exec_after_reset", "delete"]);
    const doctor = cli(home, ["doctor", "--environment", TEST_ENVIRONMENT, "--json"]).json();
    expect(doctor.environment_readiness.state).toBe("warm");
    expect(doctor.project_source.kind).toBe("git_checkout");
    // a second prepare is fast: nothing to do
    expect(cli(home, ["prepare", TEST_ENVIRONMENT, "--json"]).json().prepared_at).toBe(prepared.json().prepared_at);
    // what was proven no longer matches: stale
    const manifest = path.join(home, "prepared", "debian@12.json");
    const m = JSON.parse(fs.readFileSync(manifest, "utf8"));
    fs.writeFileSync(manifest, JSON.stringify({ ...m, agent_bundle_sha256: "0".repeat(64) }));
    const stale = cli(home, ["doctor", "--environment", TEST_ENVIRONMENT, "--json"]).json().environment_readiness;
    expect(stale.state).toBe("stale");
    expect(stale.reason).toContain("agent changed");
    expect(fs.readdirSync(path.join(home, "workspaces"))).toEqual([]);
  });
});
