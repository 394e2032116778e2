/**
 * Image environments on the VM backend, on real QEMU guests: a two-layer image the test builds
 * and pushes to Debian's docker-registry on 127.0.0.1 (a whiteout, an opaque directory, a tool
 * found only through the image's own PATH, and none of /etc, /run, /proc, /sys, /dev or /tmp)
 * is pulled with the CLI and booted as a VM workspace's root: the guest sees exactly the OCI
 * tree, runs with the image's Env, starts in /workspace, and delete leaves nothing behind. Then
 * MCP `vm_run` from a chat pulls an image that has no shell at all and runs an argv command in
 * a VM made from it, sending progress notifications. The images are tiny (a static busybox):
 * emulated guests boot slowly enough as it is.
 */
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { Pyro } from "../../src/index.js";
import { cli, connectMcp, expectPyroError, findLeaks, noLeaks, testHome } from "../helpers.js";
import { OCI, Pusher, makeLayer, startRegistry } from "../oci-registry.js";
import type { TestRegistry } from "../oci-registry.js";

const BUSYBOX = "/bin/busybox";
const TIMEOUT = 900_000;

let registry: TestRegistry;
let home: string;
let pyro: Pyro;
let reference: string;

/** Bottom first: a shell (busybox as /bin/sh) and files the upper layer deletes, replaces and hides. */
function imageLayers() {
  const bottom = makeLayer(
    {
      "bin/": "",
      "old/gone": "deleted by a whiteout above\n",
      "old/kept": "still here in the guest\n",
      "keep": "v1 of the vm image\n",
      "opq/a": "hidden by the opaque dir above\n",
      "opq/b": "hidden too\n",
    },
    "gzip",
    (dir) => {
      fs.copyFileSync(BUSYBOX, path.join(dir, "bin", "busybox"));
      fs.symlinkSync("busybox", path.join(dir, "bin", "sh"));
    },
  );
  const top = makeLayer(
    {
      "old/.wh.gone": "",
      "keep": "v2 of the vm image\n",
      "opq/.wh..wh..opq": "",
      "opq/c": "the only entry in the guest\n",
      "opt/vmtools/bin/": "",
    },
    "zstd",
    // A tool found only through the image's PATH: busybox picks its applet by argv[0].
    (dir) => fs.symlinkSync("/bin/busybox", path.join(dir, "opt", "vmtools", "bin", "uname")),
  );
  return [
    { ...bottom, mediaType: OCI.layerGzip },
    { ...top, mediaType: OCI.layerZstd },
  ];
}

beforeAll(async () => {
  registry = await startRegistry();
  await new Pusher(registry).image("team/vm-tiny", "1", imageLayers(), { config: { Env: ["PATH=/opt/vmtools/bin:/bin", "IMAGE_GREETING=from the vm image"], WorkingDir: "/srv" } });
  reference = `${registry.host}/team/vm-tiny:1`;
  home = testHome("vm-images");
  pyro = new Pyro({ home });
}, TIMEOUT);

afterAll(async () => {
  for (const w of (await pyro.listWorkspaces()).workspaces) await pyro.deleteWorkspace(w.workspace_id);
  pyro.close();
  await registry?.stop();
  expect(findLeaks(home)).toEqual(noLeaks());
}, TIMEOUT);

describe("an image environment on the VM backend", () => {
  it("boots a VM workspace on the image's exact tree, with the image's PATH, in /workspace, and delete leaves nothing", { timeout: TIMEOUT }, async () => {
    const pulled = cli(home, ["env", "pull", reference], { timeoutMs: TIMEOUT });
    expect(pulled.code, pulled.stderr).toBe(0);
    const created = cli(home, ["workspace", "create", reference, "--backend", "vm", "--json"], { timeoutMs: TIMEOUT });
    expect(created.code, created.stderr).toBe(0);
    const ws = created.json();
    expect(ws.backend).toBe("vm");
    expect(ws.environment).toBe(reference);
    const run = async (command: string[] | string) => {
      const r = await pyro.execWorkspace(ws.workspace_id, { command });
      expect(r.exit_code, `${String(command)}: ${r.stderr}`).toBe(0);
      return r.stdout;
    };
    // Its own guest kernel, not the host's namespace sandbox.
    expect(await run(["busybox", "cat", "/proc/1/comm"])).toBe("busybox\n");
    // The whiteout removed old/gone, the upper layer replaced keep, the opaque dir hid a and b,
    // and no whiteout device or overlay marker reached the guest's root disk.
    expect((await run(["busybox", "ls", "-A", "/old"])).split("\n").filter(Boolean)).toEqual(["kept"]);
    expect(await run(["busybox", "cat", "/keep"])).toBe("v2 of the vm image\n");
    expect((await run(["busybox", "ls", "-A", "/opq"])).split("\n").filter(Boolean)).toEqual(["c"]);
    expect(await run(["busybox", "find", "/", "-xdev", "-type", "c"])).toBe("");
    expect((await run(["busybox", "ls", "-A", "/bin"])).split("\n").filter(Boolean)).toEqual(["busybox", "sh"]);
    // `uname` is only in the image's PATH directory; the image's Env is every command's.
    expect(await run(["uname", "-s"])).toBe("Linux\n");
    const env = await run(["busybox", "env"]);
    expect(env).toContain("PATH=/opt/vmtools/bin:/bin\n");
    expect(env).toContain("IMAGE_GREETING=from the vm image\n");
    // The image's own shell runs shell strings, in /workspace (the image's WorkingDir is not used).
    expect(await run("echo \"$IMAGE_GREETING\" in $(pwd)")).toBe("from the vm image in /workspace\n");
    await run(["busybox", "touch", "/workspace/made-in-the-guest"]);
    expect(await run(["busybox", "ls", "/workspace"])).toBe("made-in-the-guest\n");

    const deleted = cli(home, ["workspace", "delete", ws.workspace_id, "--json"], { timeoutMs: TIMEOUT });
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(findLeaks(home)).toEqual(noLeaks());
  });

  it("vm_run from a chat pulls an image with no shell, reports progress, and runs an argv command in a VM made from it", { timeout: TIMEOUT }, async () => {
    // No /bin/sh, no /bin at all: the only program is a busybox off every usual path.
    const layer = makeLayer({ "opt/tool/": "", "etc/chat": "pulled for vm_run\n" }, "gzip", (dir) => fs.copyFileSync(BUSYBOX, path.join(dir, "opt", "tool", "busybox")));
    await new Pusher(registry).image("team/vm-chat", "1", [{ ...layer, mediaType: OCI.layerGzip }], { config: { Env: ["PATH=/opt/tool"] } });
    const chatRef = `${registry.host}/team/vm-chat:1`;
    await expectPyroError(pyro.inspectEnvironment(chatRef), "environment_not_installed");

    const { client, stderr } = await connectMcp(home, ["--profile", "vm-run"], "vm-images-chat");
    try {
      const progress: string[] = [];
      const result = (await client.callTool(
        { name: "vm_run", arguments: { environment: chatRef, backend: "vm", command: ["/opt/tool/busybox", "sh", "-c", "cat /etc/chat; ls /bin 2>&1; uname -r"] } },
        undefined,
        { onprogress: (p) => progress.push(String(p.message)), timeout: TIMEOUT },
      )) as CallToolResult;
      expect(result.isError ?? false, `${JSON.stringify(result.content)} ${stderr()}`).toBe(false);
      const out = result.structuredContent as { exit_code: number; stdout: string };
      const [chat, bin, kernel] = out.stdout.trim().split("\n");
      expect(chat).toBe("pulled for vm_run");
      expect(bin).toContain("No such file or directory");
      expect(kernel).toMatch(/-cloud-amd64$/);
      expect(progress.some((m) => m.includes("layer 1/1") && m.includes("downloaded"))).toBe(true);
      expect(progress.some((m) => m.includes("layer 1/1") && m.includes("unpacked"))).toBe(true);
    } finally {
      await client.close();
    }
    expect((await pyro.inspectEnvironment(chatRef)).name).toBe(chatRef);
    // The one-shot VM is gone.
    expect((await pyro.listWorkspaces()).workspaces).toEqual([]);
  });
});
