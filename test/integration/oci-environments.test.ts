// Image references as environments, end to end: a multi-layer image the test builds and pushes
// to Debian's docker-registry on 127.0.0.1 is pulled and installed through the CLI, inspected
// and listed, used as the root of workspaces and one-shot runs through the CLI, the SDK and the
// official MCP client, and pruned; bad references get their codes on all three surfaces. The
// image has no shell and no libc: only a static busybox, so the agent's own runtime is what runs.
// Uses a state directory of its own (no shared layers), so its prune can touch nothing else.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { Pyro } from "../../src/index.js";
import { removeTree } from "../../src/runtime/confine/trees.js";
import { CLI, cli, connectMcp, expectPyroError } from "../helpers.js";
import { OCI, Pusher, makeLayer, sha256, startRegistry } from "../oci-registry.js";
import type { TestRegistry } from "../oci-registry.js";

const BUSYBOX = "/bin/busybox";
const TIMEOUT = 240_000;

/** Layers: bottom first. Whiteouts, a replaced file and an opaque dir across them. */
function imageLayers() {
  const bottom = makeLayer(
    {
      "bin/": "",
      "etc/os-release": "ID=pyro-test-image\n",
      "old/gone": "deleted by a whiteout above\n",
      "old/kept": "still here\n",
      "keep": "v1\n",
      "opq/a": "hidden by the opaque dir above\n",
      "opq/b": "hidden too\n",
    },
    "gzip",
    (dir) => fs.copyFileSync(BUSYBOX, path.join(dir, "bin", "busybox")),
  );
  const top = makeLayer(
    {
      "old/.wh.gone": "",
      "keep": "v2\n",
      "opq/.wh..wh..opq": "",
      "opq/c": "the only entry\n",
      "opt/imgtools/bin/": "",
      "srv/app/": "",
    },
    "zstd",
    // A tool found only through the image's PATH: busybox picks its applet by argv[0].
    (dir) => fs.symlinkSync("/bin/busybox", path.join(dir, "opt", "imgtools", "bin", "uname")),
  );
  return [
    { ...bottom, mediaType: OCI.layerGzip },
    { ...top, mediaType: OCI.layerZstd },
  ];
}

const IMAGE_CONFIG = {
  Env: ["PATH=/opt/imgtools/bin:/bin", "IMAGE_GREETING=from the image"],
  WorkingDir: "/srv/app",
  User: "1000:1000",
};

type Structured = Record<string, unknown>;

async function mcpCall(client: Client, name: string, args: Record<string, unknown>): Promise<Structured> {
  const result = (await client.callTool({ name, arguments: args })) as CallToolResult;
  expect(result.isError ?? false, `${name} failed: ${JSON.stringify(result.content)}`).toBe(false);
  return result.structuredContent as Structured;
}

async function mcpError(client: Client, name: string, args: Record<string, unknown>): Promise<{ code: string; text: string }> {
  const result = (await client.callTool({ name, arguments: args })) as CallToolResult;
  expect(result.isError, `${name} was expected to fail`).toBe(true);
  const meta = result._meta?.["pyro/error"] as { code: string };
  return { code: meta.code, text: (result.content[0] as { text: string }).text };
}

describe("OCI images as environments", () => {
  let registry: TestRegistry;
  let home: string;
  let pyro: Pyro;
  let reference: string;
  let pushed: Awaited<ReturnType<Pusher["image"]>>;
  let diffIds: string[];
  const workspaces: string[] = [];

  beforeAll(async () => {
    registry = await startRegistry();
    const layers = imageLayers();
    diffIds = layers.map((layer) => sha256(layer.tar));
    pushed = await new Pusher(registry).image("team/tiny", "1", layers, { config: IMAGE_CONFIG });
    reference = `${registry.host}/team/tiny:1`;
    home = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-oci-env-"));
    pyro = new Pyro({ home });
  }, TIMEOUT);

  afterAll(async () => {
    for (const id of workspaces) await pyro?.deleteWorkspace(id).catch(() => undefined);
    await registry?.stop();
    if (home) await removeTree(home);
  }, TIMEOUT);

  it("pulls and installs an image with the CLI, a progress line per layer, each layer unpacked once under its diff_id", () => {
    // Progress lines go to stderr when the output is text (with --json, stdout is the result alone).
    const r = cli(home, ["env", "pull", reference], { timeoutMs: TIMEOUT });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`Environment: ${reference}`);
    const inspected = cli(home, ["env", "inspect", reference, "--json"]);
    expect(inspected.code, inspected.stderr).toBe(0);
    const manifest = inspected.json();
    expect(manifest.name).toBe(reference);
    expect(manifest.source).toBe("image");
    expect(manifest.digest).toBe(pushed.manifest.digest);
    expect(manifest.image.layers.map((l: { diff_id: string }) => l.diff_id)).toEqual(diffIds);
    expect(manifest.image.config).toEqual({ env: IMAGE_CONFIG.Env, working_dir: "/srv/app", user: "1000:1000", entrypoint: null, cmd: null });
    // Overlay lowerdir order: pyro's /workspace layer on top, then the image's, top-most first.
    const hex = diffIds.map((d) => d.slice("sha256:".length));
    expect(manifest.layers.slice(1)).toEqual([hex[1], hex[0]]);
    for (const layer of manifest.layers) expect(fs.statSync(path.join(home, "environments", "layers", layer)).isDirectory()).toBe(true);
    for (const [index, layer] of pushed.layers.entries()) {
      expect(r.stderr).toContain(`layer ${index + 1}/2 ${layer.digest.slice(0, 19)}: downloaded`);
      expect(r.stderr).toContain(`layer ${index + 1}/2 ${diffIds[index]!.slice(0, 19)}: unpacked`);
    }
    // Nothing half-made is left: no scratch directories, one manifest.
    expect(fs.readdirSync(path.join(home, "environments")).filter((n) => n.startsWith(".tmp-"))).toEqual([]);
  }, TIMEOUT);

  it("pulls again without unpacking anything, and the SDK's pull of the same reference is the same environment", async () => {
    const again = cli(home, ["env", "pull", reference], { timeoutMs: TIMEOUT });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain("already installed");
    const events: string[] = [];
    const viaSdk = await pyro.pullEnvironment(reference, { onProgress: (e) => events.push(e.phase) });
    expect(viaSdk.digest).toBe(pushed.manifest.digest);
    expect(events).toEqual(["cached"]);
  });

  it("lists the image with its reference, digest and size, and inspects its layers and config", async () => {
    const listed = (await pyro.listEnvironments()).find((e) => e.name === reference);
    expect(listed).toMatchObject({ installed: true, source: "image", digest: pushed.manifest.digest });
    expect(listed!.size_bytes).toBeGreaterThan(fs.statSync(BUSYBOX).size);
    const text = cli(home, ["env", "list"]);
    const line = text.stdout.split("\n").find((l) => l.startsWith(reference));
    expect(line).toContain("[installed]");
    expect(line).toContain(`image ${pushed.manifest.digest}`);
    const inspected = cli(home, ["env", "inspect", reference]);
    expect(inspected.code, inspected.stderr).toBe(0);
    expect(inspected.stdout).toContain(`Image: ${reference} (${pushed.manifest.digest})`);
    expect(inspected.stdout).toContain("Image user: 1000:1000");
    expect(inspected.stdout).toContain("Image working dir: /srv/app");
    expect(inspected.stdout).toContain("PATH=/opt/imgtools/bin:/bin");
    for (const layer of pushed.layers) expect(inspected.stdout).toContain(layer.digest);
  });

  it("runs commands in a workspace made from the image through the SDK: exactly the OCI tree, the image's PATH and Env", async () => {
    const ws = await pyro.createWorkspace({ environment: reference });
    workspaces.push(ws.workspace_id);
    expect(ws.environment).toBe(reference);
    const run = async (command: string[], env?: Record<string, string>) => {
      const r = await pyro.execWorkspace(ws.workspace_id, { command, ...(env ? { env } : {}) });
      expect(r.exit_code, `${command.join(" ")}: ${r.stderr}`).toBe(0);
      return r.stdout;
    };
    // The whiteout removed old/gone, the upper layer replaced keep, the opaque dir hid a and b.
    expect((await run(["busybox", "ls", "-A", "/old"])).split("\n").filter(Boolean)).toEqual(["kept"]);
    expect(await run(["busybox", "cat", "/keep"])).toBe("v2\n");
    expect((await run(["busybox", "ls", "-A", "/opq"])).split("\n").filter(Boolean)).toEqual(["c"]);
    // No shell, no libc: /bin has only what the image put there.
    expect((await run(["busybox", "ls", "-A", "/bin"])).split("\n").filter(Boolean)).toEqual(["busybox"]);
    // `uname` exists only in the image's own PATH directory.
    expect(await run(["uname", "-s"])).toBe("Linux\n");
    const env = await run(["busybox", "env"]);
    expect(env).toContain("PATH=/opt/imgtools/bin:/bin\n");
    expect(env).toContain("IMAGE_GREETING=from the image\n");
    // Per-call env wins over the image's.
    expect(await run(["busybox", "env"], { IMAGE_GREETING: "mine" })).toContain("IMAGE_GREETING=mine\n");
    // /workspace stays the working root, and commands run as the sandbox's root, not the image's User.
    expect(await run(["busybox", "pwd"])).toBe("/workspace\n");
    expect(await run(["busybox", "id", "-u"])).toBe("0\n");
    await run(["busybox", "touch", "/workspace/made-here"]);
    expect(await run(["busybox", "ls", "/workspace"])).toBe("made-here\n");
  }, TIMEOUT);

  it("runs a one-shot command in the image with the CLI's run, and creates and execs through MCP", async () => {
    const r = cli(home, ["run", reference, "--json", "--", "uname", "-s"], { timeoutMs: TIMEOUT });
    expect(r.code, r.stderr).toBe(0);
    expect(r.json().stdout).toBe("Linux\n");

    const { client } = await connectMcp(home, ["--profile", "workspace-full"], "oci-environments");
    try {
      const ws = await mcpCall(client, "workspace_create", { environment: reference });
      workspaces.push(ws.workspace_id as string);
      expect(ws.environment).toBe(reference);
      const exec = await mcpCall(client, "workspace_exec", { workspace_id: ws.workspace_id, command: ["busybox", "cat", "/etc/os-release"] });
      expect(exec.stdout).toBe("ID=pyro-test-image\n");
      // `uname` is found through the image's PATH only.
      const viaRun = await mcpCall(client, "vm_run", { environment: reference, command: ["uname", "-s"] });
      expect(viaRun.stdout).toBe("Linux\n");
    } finally {
      await client.close();
    }
  }, TIMEOUT);

  it("refuses a bare name:tag with the full reference in the hint, and an unknown tag, on all three surfaces", async () => {
    const bare = await expectPyroError(pyro.createWorkspace({ environment: "node:22" }), "environment_unknown");
    expect(bare.hint).toContain("docker.io/library/node:22");
    const cliBare = cli(home, ["workspace", "create", "node:22", "--json"]);
    expect(cliBare.code).not.toBe(0);
    expect(cliBare.stdout + cliBare.stderr).toContain("environment_unknown");
    expect(cliBare.stdout + cliBare.stderr).toContain("docker.io/library/node:22");

    const missing = `${registry.host}/team/tiny:no-such-tag`;
    await expectPyroError(pyro.pullEnvironment(missing), "image_not_found");
    const cliMissing = cli(home, ["env", "pull", missing, "--json"]);
    expect(cliMissing.stdout + cliMissing.stderr).toContain("image_not_found");
    // Known shape, never pulled: not installed, and the hint says how to pull it.
    const notPulled = await expectPyroError(pyro.createWorkspace({ environment: missing }), "environment_not_installed");
    expect(notPulled.hint).toContain(`pyro env pull ${missing}`);


    const { client } = await connectMcp(home, [], "oci-environments-bad");
    try {
      const e1 = await mcpError(client, "workspace_create", { environment: "node:22" });
      expect(e1.code).toBe("environment_unknown");
      expect(e1.text).toContain("docker.io/library/node:22");
      // From a chat the create pulls it first, and the registry says there is no such tag.
      expect((await mcpError(client, "workspace_create", { environment: missing })).code).toBe("image_not_found");
    } finally {
      await client.close();
    }
    // None of it left a workspace or a manifest behind.
    expect((await pyro.listWorkspaces()).workspaces.map((w) => w.workspace_id).sort()).toEqual([...workspaces].sort());
    expect((await pyro.listEnvironments()).filter((e) => e.source === "image").map((e) => e.name)).toEqual([reference]);
  }, TIMEOUT);

  it("prepares the image's daily loop and doctor --environment then calls it warm", async () => {
    const prepared = await pyro.prepare(reference);
    expect(prepared.environment).toBe(reference);
    expect(prepared.state).toBe("warm");
    const doctor = cli(home, ["doctor", "--environment", reference, "--json"], { timeoutMs: TIMEOUT });
    expect(doctor.json().environment_readiness).toMatchObject({ environment: reference, state: "warm" });
  }, TIMEOUT);

  it("prune keeps an image a live workspace uses, and removes its layers and blobs once nothing does", async () => {
    const manifest = await pyro.inspectEnvironment(reference);
    const layerDir = (layer: string) => path.join(home, "environments", "layers", layer);
    const blobs = () => fs.readdirSync(path.join(home, "environments", "blobs", "sha256")).sort();
    expect(blobs()).toEqual(expect.arrayContaining(pushed.layers.map((l) => l.digest.slice("sha256:".length))));

    const kept = await pyro.pruneEnvironments();
    expect(kept.removed).toEqual([]);
    for (const layer of manifest.layers) expect(fs.existsSync(layerDir(layer))).toBe(true);
    expect(blobs().length).toBeGreaterThan(0);

    const cliKept = cli(home, ["env", "prune"]);
    expect(cliKept.code, cliKept.stderr).toBe(0);
    expect(cliKept.stdout).toContain("Nothing to prune.");

    for (const id of workspaces.splice(0)) await pyro.deleteWorkspace(id);
    const pruned = cli(home, ["env", "prune", "--json"]);
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(pruned.json().removed).toEqual([reference]);
    expect(pruned.json().freed_bytes).toBeGreaterThan(0);
    for (const layer of manifest.layers) expect(fs.existsSync(layerDir(layer))).toBe(false);
    expect(blobs()).toEqual([]);
    expect(fs.readdirSync(path.join(home, "environments", "images")).filter((n) => n.endsWith(".json"))).toEqual([]);
    await expectPyroError(pyro.inspectEnvironment(reference), "environment_not_installed");
  }, TIMEOUT);

  it("a pull killed while it unpacks installs nothing, and the next pull sweeps its scratch and installs the image", async () => {
    const layer = makeLayer({ "bin/": "", "etc/killed": "a layer no other test has\n", "usr/share/data": "x".repeat(4 * 1024 * 1024) }, "gzip", (dir) =>
      fs.copyFileSync(BUSYBOX, path.join(dir, "bin", "busybox")),
    );
    await new Pusher(registry).image("team/killed", "1", [{ ...layer, mediaType: OCI.layerGzip }], { config: IMAGE_CONFIG });
    const killedRef = `${registry.host}/team/killed:1`;
    const child = spawn(process.execPath, [CLI, "env", "pull", killedRef], { env: { ...process.env, PYRO_HOME: home }, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on("exit", (_code, signal) => resolve(signal)));
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
      if (stderr.includes(": unpacking")) child.kill("SIGKILL");
    });
    const signal = await exited;
    expect(signal, `the pull finished before it could be killed: ${stderr}`).toBe("SIGKILL");
    // Killed mid-unpack: the image is not an installed environment, whatever the disk holds.
    expect((await pyro.listEnvironments()).some((e) => e.name === killedRef)).toBe(false);
    await expectPyroError(pyro.inspectEnvironment(killedRef), "environment_not_installed");

    const again = cli(home, ["env", "pull", killedRef], { timeoutMs: TIMEOUT });
    expect(again.code, again.stderr).toBe(0);
    expect(fs.readdirSync(path.join(home, "environments")).filter((n) => n.startsWith(".tmp-"))).toEqual([]);
    const ws = await pyro.createWorkspace({ environment: killedRef });
    try {
      const r = await pyro.execWorkspace(ws.workspace_id, { command: ["busybox", "cat", "/etc/killed"] });
      expect(r.stdout, r.stderr).toBe("a layer no other test has\n");
    } finally {
      await pyro.deleteWorkspace(ws.workspace_id);
    }
  }, TIMEOUT);

  it("workspace_create from a chat pulls an image that is not pulled yet, sending progress notifications when asked", async () => {
    const layer = makeLayer({ "bin/": "", "etc/chat": "pulled from the chat\n" }, "gzip", (dir) => fs.copyFileSync(BUSYBOX, path.join(dir, "bin", "busybox")));
    await new Pusher(registry).image("team/chat", "1", [{ ...layer, mediaType: OCI.layerGzip }], { config: IMAGE_CONFIG });
    const chatRef = `${registry.host}/team/chat:1`;
    await expectPyroError(pyro.inspectEnvironment(chatRef), "environment_not_installed");

    const { client } = await connectMcp(home, [], "oci-environments-chat");
    try {
      const progress: string[] = [];
      const result = (await client.callTool({ name: "workspace_create", arguments: { environment: chatRef } }, undefined, {
        onprogress: (p) => progress.push(String(p.message)),
        timeout: TIMEOUT,
      })) as CallToolResult;
      expect(result.isError ?? false, JSON.stringify(result.content)).toBe(false);
      const ws = result.structuredContent as Structured;
      workspaces.push(ws.workspace_id as string);
      expect(ws.environment).toBe(chatRef);
      expect(progress.some((m) => m.includes("layer 1/1") && m.includes("downloaded"))).toBe(true);
      expect(progress.some((m) => m.includes("layer 1/1") && m.includes("unpacked"))).toBe(true);
      const exec = await mcpCall(client, "workspace_exec", { workspace_id: ws.workspace_id, command: ["busybox", "cat", "/etc/chat"] });
      expect(exec.stdout).toBe("pulled from the chat\n");
      // Installed now: a second create pulls nothing, and says nothing.
      const quiet: string[] = [];
      const again = (await client.callTool({ name: "workspace_create", arguments: { environment: chatRef } }, undefined, { onprogress: (p) => quiet.push(String(p.message)) })) as CallToolResult;
      expect(again.isError ?? false).toBe(false);
      workspaces.push((again.structuredContent as Structured).workspace_id as string);
      expect(quiet).toEqual([]);
      // An image that does not exist is the registry's answer, and nothing is created.
      expect((await mcpError(client, "workspace_create", { environment: `${registry.host}/team/chat:nope` })).code).toBe("image_not_found");
    } finally {
      await client.close();
    }
    for (const id of workspaces.splice(0)) await pyro.deleteWorkspace(id);
  }, TIMEOUT);

  it("vm_run from a chat pulls an image that is not pulled yet, sending progress notifications, and returns the command's output", async () => {
    const layer = makeLayer({ "opt/tool/": "", "etc/chat-run": "pulled for vm_run\n" }, "gzip", (dir) => fs.copyFileSync(BUSYBOX, path.join(dir, "opt", "tool", "busybox")));
    await new Pusher(registry).image("team/chat-run", "1", [{ ...layer, mediaType: OCI.layerGzip }], { config: { Env: ["PATH=/opt/tool"] } });
    const chatRef = `${registry.host}/team/chat-run:1`;
    await expectPyroError(pyro.inspectEnvironment(chatRef), "environment_not_installed");
    const before = (await pyro.listWorkspaces()).workspaces.map((w) => w.workspace_id);

    const { client } = await connectMcp(home, ["--profile", "vm-run"], "oci-environments-chat-run");
    try {
      const progress: string[] = [];
      // No shell in this image: an argv command, its program found through the image's PATH.
      const result = (await client.callTool({ name: "vm_run", arguments: { environment: chatRef, command: ["busybox", "cat", "/etc/chat-run"] } }, undefined, {
        onprogress: (p) => progress.push(String(p.message)),
        timeout: TIMEOUT,
      })) as CallToolResult;
      expect(result.isError ?? false, JSON.stringify(result.content)).toBe(false);
      expect((result.structuredContent as Structured).stdout).toBe("pulled for vm_run\n");
      expect(progress.some((m) => m.includes("layer 1/1") && m.includes("downloaded"))).toBe(true);
      expect(progress.some((m) => m.includes("layer 1/1") && m.includes("unpacked"))).toBe(true);
      // Installed now: a second run pulls nothing, and says nothing.
      const quiet: string[] = [];
      const again = (await client.callTool({ name: "vm_run", arguments: { environment: chatRef, command: ["busybox", "true"] } }, undefined, { onprogress: (p) => quiet.push(String(p.message)) })) as CallToolResult;
      expect(again.isError ?? false, JSON.stringify(again.content)).toBe(false);
      expect(quiet).toEqual([]);
      // An image that does not exist is the registry's answer.
      expect((await mcpError(client, "vm_run", { environment: `${registry.host}/team/chat-run:nope`, command: ["true"] })).code).toBe("image_not_found");
    } finally {
      await client.close();
    }
    // The one-shot runs left no workspace.
    expect((await pyro.listWorkspaces()).workspaces.map((w) => w.workspace_id)).toEqual(before);
  }, TIMEOUT);
});
