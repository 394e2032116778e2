/**
 * A workspace's disk limit (`disk_mib`) holds against real sandboxes, with the mechanism this
 * host allows: run as root, /workspace is an ext4 filesystem of exactly that size (`kernel`: a
 * write past it fails inside the sandbox, and the host's image file never grows past it); run as
 * an ordinary user, pyro measures /workspace after each write and refuses more (`watched`). Either
 * way the writes pyro makes itself (sync push, file write) are refused whole when they do not
 * fit, status says the limit, the use and how it is held, deleting files makes room again, and
 * bad values are `invalid_argument` on the CLI, the SDK and MCP without creating anything.
 */
import fs from "node:fs";
import { spawnSync } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { Pyro } from "../../src/index.js";
import { createMcpServer } from "../../src/mcp/server.js";
import { DEFAULT_DISK_MIB } from "../../src/core/disk-limit.js";
import { cli, findLeaks, noLeaks, testHome, TEST_ENVIRONMENT } from "../helpers.js";

/** Root gets the kernel's limit; an ordinary user cannot loop-mount, so pyro watches. */
const EXPECTED = process.getuid?.() === 0 ? "kernel" : "watched";
const MIB = 1024 * 1024;

let home: string;
let files: string;
let pyro: Pyro;
let client: Client;

/** The code of a rejected SDK call. */
async function codeOf(call: Promise<unknown>): Promise<{ code: string; message: string; details?: Record<string, unknown> }> {
  return call.then(
    (value) => {
      throw new Error(`expected a refusal, got ${JSON.stringify(value).slice(0, 300)}`);
    },
    (e: unknown) => e as { code: string; message: string; details?: Record<string, unknown> },
  );
}

function workspaceIds(): string[] {
  return fs.readdirSync(path.join(home, "workspaces")).filter((n) => !n.startsWith("."));
}

beforeAll(async () => {
  home = testHome("disk");
  files = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-disk-files-"));
  pyro = new Pyro({ home });
  const server = createMcpServer(pyro, { profile: "workspace-core" });
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  client = new Client({ name: "pyro-disk-test", version: "0.0.0" });
  await Promise.all([server.connect(serverSide), client.connect(clientSide)]);
});

afterAll(async () => {
  for (const w of (await pyro.listWorkspaces()).workspaces) await pyro.deleteWorkspace(w.workspace_id);
  await client?.close();
  pyro?.close();
  fs.rmSync(files, { recursive: true, force: true });
  // No workspace, sandbox, cgroup — and no mount of a workspace's filesystem — outlives it.
  expect(findLeaks(home)).toEqual(noLeaks());
});

describe("a workspace's disk limit", () => {
  it(`says its limit, what /workspace takes and how the limit is held (${EXPECTED} here), on every surface`, async () => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, diskMib: 64 });
    expect(ws.disk_mib).toBe(64);
    expect(ws.disk.enforcement).toBe(EXPECTED);
    expect(ws.limits?.disk).toBe(EXPECTED);
    if (EXPECTED === "watched") expect(ws.disk.note).toMatch(/not enforced by the kernel/);
    await pyro.execWorkspace(ws.workspace_id, { command: "head -c 5m /dev/urandom > /workspace/five" });
    const status = await pyro.statusWorkspace(ws.workspace_id);
    // Watched use between two walks is estimated from the host's free space, which others share:
    // close to the truth, a little under it when another program frees space at the same moment.
    expect(status.disk.used_bytes).toBeGreaterThanOrEqual(EXPECTED === "kernel" ? 5 * MIB : 4 * MIB);
    expect(status.disk.used_bytes).toBeLessThan(EXPECTED === "kernel" ? 10 * MIB : 64 * MIB);

    const shown = cli(home, ["workspace", "status", ws.workspace_id, "--json"]).json();
    expect(shown.disk_mib).toBe(64);
    expect(shown.disk.enforcement).toBe(EXPECTED);
    expect(cli(home, ["workspace", "status", ws.workspace_id]).stdout).toMatch(/^Disk: .* of 64 MiB \((enforced by the kernel|watched by pyro, not enforced by the kernel)/m);
    const viaMcp = await client.callTool({ name: "workspace_status", arguments: { workspace_id: ws.workspace_id } });
    expect((viaMcp.structuredContent as { disk_mib: number }).disk_mib).toBe(64);

    // Without --disk-mib a workspace gets the default, held the same way.
    const plain = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT });
    expect(plain.disk_mib).toBe(DEFAULT_DISK_MIB);
    expect(plain.disk.enforcement).toBe(EXPECTED);
    await pyro.deleteWorkspace(plain.workspace_id);
    await pyro.deleteWorkspace(ws.workspace_id);
  });

  it("stops a command's write past the limit (kernel: the write fails and the host's image stays bounded; watched: the command comes back with the code), refuses pyro's writes until files are deleted, then works again", { timeout: 120_000 }, async () => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, diskMib: 64 });
    const id = ws.workspace_id;
    const dd = "dd if=/dev/zero of=/workspace/big bs=1M count=100 2>&1; echo rc=$?";
    if (EXPECTED === "kernel") {
      // The write itself fails inside the sandbox: the filesystem is only 64 MiB.
      const r = await pyro.execWorkspace(id, { command: dd });
      expect(r.stdout).toMatch(/No space left on device/);
      expect(r.stdout).not.toMatch(/rc=0/);
      // The host holds the workspace in a sparse image that can never grow past the limit.
      const image = fs.statSync(path.join(home, "workspaces", id, "workspace.ext4"));
      expect(image.size).toBe(64 * MIB);
      expect(image.blocks * 512).toBeLessThanOrEqual(64 * MIB);
    } else {
      // Measured after the command: over the limit is reported with the code (the command ran).
      const err = await codeOf(pyro.execWorkspace(id, { command: dd }));
      expect(err.code).toBe("disk_limit_exceeded");
      expect(err.message).toMatch(/64 MiB \(watched\)/);
      expect(err.details?.exit_code).toBe(0);
    }
    // Full (or over): a write through pyro is refused and leaves nothing behind.
    expect((await codeOf(pyro.writeWorkspaceFile(id, "note.txt", { text: "x".repeat(1 << 20) }))).code).toBe("disk_limit_exceeded");
    const listed = await pyro.listWorkspaceFiles(id);
    expect(listed.entries.map((e) => e.path)).not.toContain("note.txt");

    // Deleting the big file makes room: commands and writes work again.
    const rm = await pyro.execWorkspace(id, { command: "rm /workspace/big && echo ok > /workspace/ok && cat /workspace/ok" });
    expect(rm.stdout).toBe("ok\n");
    expect((await pyro.writeWorkspaceFile(id, "note.txt", { text: "x".repeat(1 << 20) })).bytes_written).toBe(1 << 20);
    const status = await pyro.statusWorkspace(id);
    expect(status.disk.used_bytes).toBeLessThan(EXPECTED === "kernel" ? 10 * MIB : 64 * MIB);
    await pyro.deleteWorkspace(id);
    expect(fs.readFileSync("/proc/mounts", "utf8")).not.toContain(id);
  });

  it.skipIf(EXPECTED !== "kernel")("gives each workspace a filesystem of its own, copied from one template per size that mkfs made once", { timeout: 120_000 }, async () => {
    const a = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, diskMib: 96 });
    const b = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, diskMib: 96 });
    const templates = fs.readdirSync(path.join(home, "disk-templates"));
    expect(templates.filter((n) => n.startsWith("96-"))).toHaveLength(1);
    // Nothing a killed maker would leave: no scratch image, no unrenamed template.
    expect(templates.filter((n) => n.startsWith("."))).toEqual([]);
    expect((await pyro.execWorkspace(a.workspace_id, { command: "echo a > /workspace/only-a && df -m /workspace | tail -1" })).exit_code).toBe(0);
    const inB = await pyro.execWorkspace(b.workspace_id, { command: "ls -A /workspace; df -m /workspace | tail -1 | tr -s ' ' | cut -d' ' -f2" });
    // An empty /workspace of the asked size, not a second view of a's.
    expect(inB.stdout.trim()).toMatch(/^\d+$/);
    expect(Number(inB.stdout.trim())).toBeGreaterThan(80);
    expect(Number(inB.stdout.trim())).toBeLessThanOrEqual(96);
    for (const ws of [a, b]) {
      const dir = path.join(home, "workspaces", ws.workspace_id);
      await pyro.stopWorkspace(ws.workspace_id);
      // A clean filesystem, checked read-only on a copy (the image may still be mounted).
      fs.copyFileSync(path.join(dir, "workspace.ext4"), path.join(files, "check.ext4"));
      const fsck = spawnSync("e2fsck", ["-fn", path.join(files, "check.ext4")], { encoding: "utf8" });
      expect(fsck.status, fsck.stdout + fsck.stderr).toBe(0);
      fs.rmSync(path.join(files, "check.ext4"));
      await pyro.deleteWorkspace(ws.workspace_id);
    }
  });

  it("refuses a sync push or file write that does not fit, whole, and takes one that does", { timeout: 120_000 }, async () => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, diskMib: 64 });
    const id = ws.workspace_id;
    const big = path.join(files, "big");
    fs.mkdirSync(big);
    fs.writeFileSync(path.join(big, "a.bin"), Buffer.alloc(40 * MIB, 1));
    fs.writeFileSync(path.join(big, "b.bin"), Buffer.alloc(40 * MIB, 2));
    const err = await codeOf(pyro.pushWorkspaceSync(id, big, { dest: "pushed" }));
    expect(err.code).toBe("disk_limit_exceeded");
    expect(err.message).toMatch(/nothing was copied/);
    // Nothing half-written: neither file (nor the destination) appeared.
    const after = await pyro.execWorkspace(id, { command: "ls -A /workspace | wc -l; du -s -B1M /workspace | cut -f1" });
    expect(after.stdout).toBe("0\n1\n");
    // The same on the CLI and through MCP.
    const viaCli = cli(home, ["workspace", "sync", "push", id, big, "--json"]);
    expect(viaCli.code).not.toBe(0);
    expect(viaCli.json().error.code).toBe("disk_limit_exceeded");
    const viaMcp = await client.callTool({ name: "workspace_sync_push", arguments: { workspace_id: id, source_path: big } });
    expect(viaMcp.isError).toBe(true);
    expect((viaMcp._meta as Record<string, { code: string }>)["pyro/error"]!.code).toBe("disk_limit_exceeded");

    // What fits goes in; then a file write past the room left is refused, and the file is not there.
    fs.rmSync(path.join(big, "b.bin"));
    const pushed = await pyro.pushWorkspaceSync(id, big, { dest: "pushed" });
    expect(pushed.bytes).toBeGreaterThanOrEqual(40 * MIB);
    await pyro.execWorkspace(id, { command: "head -c 20m /dev/zero > /workspace/twenty" });
    const text = "y".repeat(15 * MIB);
    expect((await codeOf(pyro.writeWorkspaceFile(id, "fifteen.txt", { text }))).code).toBe("disk_limit_exceeded");
    const ls = await pyro.execWorkspace(id, { command: "ls /workspace" });
    expect(ls.stdout.split("\n")).not.toContain("fifteen.txt");
    await pyro.deleteWorkspace(id);
  });

  it("applies to a one-shot run and to a seed", { timeout: 120_000 }, async () => {
    const run = cli(home, ["run", TEST_ENVIRONMENT, "--disk-mib", "64", "--json", "--", "sh", "-c", "head -c 100m /dev/zero > /workspace/f; echo rc=$?"]);
    if (EXPECTED === "kernel") {
      expect(run.json().stdout).toMatch(/rc=1/);
    } else {
      expect(run.json().error.code).toBe("disk_limit_exceeded");
    }
    const seed = path.join(files, "seed");
    fs.mkdirSync(seed);
    fs.writeFileSync(path.join(seed, "large.bin"), Buffer.alloc(70 * MIB, 3));
    const before = workspaceIds();
    expect((await codeOf(pyro.createWorkspace({ environment: TEST_ENVIRONMENT, diskMib: 64, seedPath: seed }))).code).toBe("disk_limit_exceeded");
    expect(workspaceIds()).toEqual(before);
  });

  it("refuses a disk_mib out of bounds with invalid_argument on the CLI, the SDK and MCP, creating nothing", async () => {
    const before = workspaceIds();
    for (const value of [0, 63, 1048577, 1.5]) {
      const r = cli(home, ["workspace", "create", TEST_ENVIRONMENT, "--disk-mib", String(value), "--json"]);
      expect(r.code).not.toBe(0);
      expect(r.json().error.code, r.stdout).toBe("invalid_argument");
      const viaRun = cli(home, ["run", TEST_ENVIRONMENT, "--disk-mib", String(value), "--json", "--", "true"]);
      expect(viaRun.json().error.code).toBe("invalid_argument");
      const sdk = await codeOf(pyro.createWorkspace({ environment: TEST_ENVIRONMENT, diskMib: value }));
      expect(sdk.code).toBe("invalid_argument");
      if (Number.isInteger(value) && value > 0) expect(sdk.message).toMatch(/disk_mib must be a whole number from 64 to 1048576/);
      const mcp = await client.callTool({ name: "workspace_create", arguments: { environment: TEST_ENVIRONMENT, disk_mib: value } });
      expect(mcp.isError).toBe(true);
      expect((mcp._meta as Record<string, { code: string }>)["pyro/error"]!.code).toBe("invalid_argument");
    }
    expect(workspaceIds()).toEqual(before);
  });

  it("leaves a workspace made before disk limits without one, and it keeps working", async () => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, diskMib: 64 });
    // An earlier pyro wrote no disk fields into the record.
    const file = path.join(home, "workspaces", ws.workspace_id, "workspace.json");
    const record = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
    delete record.disk_mib;
    delete record.disk_enforcement;
    delete record.disk_note;
    fs.writeFileSync(file, JSON.stringify(record));
    const status = await pyro.statusWorkspace(ws.workspace_id);
    expect(status.disk_mib).toBeNull();
    expect(status.disk.enforcement).toBe("none");
    expect((await pyro.writeWorkspaceFile(ws.workspace_id, "a.txt", { text: "a" })).bytes_written).toBe(1);
    expect((await pyro.execWorkspace(ws.workspace_id, { command: "cat /workspace/a.txt" })).stdout).toBe("a");
    await pyro.deleteWorkspace(ws.workspace_id);
  });
});
