/**
 * Shared test plumbing: a per-file state directory whose environments are a link to one shared,
 * once-built cache (so the suite builds debian:12 once), and leak checks that prove a test left
 * no sandbox process, mount, cgroup, socket or directory behind.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn, spawnSync } from "node:child_process";
import net from "node:net";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { expect } from "vitest";
import { pyroGroup } from "../src/runtime/confine/cgroups.js";
import { PyroError } from "../src/shared/errors.js";
import { makeTestWorld, preparedTestWorld } from "./network-world.js";

export const REPO = path.resolve(import.meta.dirname, "..");
export const SHARED_HOME = process.env.PYRO_TEST_HOME ? path.resolve(process.env.PYRO_TEST_HOME) : path.join(REPO, ".pyro-test", "home");
export const TEST_ENVIRONMENT = "debian:12";
/** The backend this run's workspaces use (the suite runs once per backend; see vitest.config.ts). */
export const TEST_BACKEND = process.env.PYRO_BACKEND === "vm" ? "vm" : "namespace";
export const CLI = path.join(REPO, "bin", "pyro.js");

/**
 * A fresh state directory sharing the environment cache's layers. By default only debian:12
 * (and its base) are installed in it, so tests can use debian:12-build as the example of an
 * environment that is known but not built; `allEnvironments` shares every built environment.
 */
export function testHome(label: string, options: { allEnvironments?: boolean } = {}): string {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), `pyro-${label}-`));
  const shared = path.join(SHARED_HOME, "environments");
  fs.mkdirSync(path.join(shared, "manifests"), { recursive: true });
  fs.mkdirSync(path.join(shared, "layers"), { recursive: true });
  // The VM guest kit and root images are caches like the layers: built once, shared by every file.
  fs.mkdirSync(path.join(SHARED_HOME, "vm"), { recursive: true });
  fs.symlinkSync(path.join(SHARED_HOME, "vm"), path.join(home, "vm"));
  if (options.allEnvironments) {
    fs.symlinkSync(shared, path.join(home, "environments"));
    return home;
  }
  fs.mkdirSync(path.join(home, "environments", "manifests"), { recursive: true });
  fs.symlinkSync(path.join(shared, "layers"), path.join(home, "environments", "layers"));
  for (const manifest of ["debian@12-base.json", "debian@12.json"]) {
    fs.symlinkSync(path.join(shared, "manifests", manifest), path.join(home, "environments", "manifests", manifest));
  }
  return home;
}

export interface Leaks {
  workspaces: string[];
  sockets: string[];
  processes: string[];
  mounts: string[];
  cgroups: string[];
  /** Workspace layers (and unfinished layer copies) no workspace or snapshot names. */
  layers: string[];
}

/** Everything a state directory's workspaces could leave behind on the host. */
export function findLeaks(home: string): Leaks {
  const list = (dir: string) => {
    try {
      return fs.readdirSync(dir);
    } catch {
      return [];
    }
  };
  const processes: string[] = [];
  // The host's own mount namespace holds a disk-limited workspace's filesystem (as root) while
  // the workspace lives; that mount is counted under `mounts`, not as every host process.
  const ownNamespace = fs.readlinkSync("/proc/self/ns/mnt");
  // A disk-limited /workspace is a filesystem of its own, mounted on the workspace's directory:
  // a sandbox's bind of it names that filesystem's root, not the home, so it is known by its
  // device instead, bound anywhere but where the host mounted it.
  const mountinfo = (pid: string) => fs.readFileSync(`/proc/${pid}/mountinfo`, "utf8").split("\n").map((line) => line.split(" "));
  const disks = new Map(mountinfo("self").filter((f) => (f[4] ?? "").includes(home) && f[3] === "/").map((f) => [f[2], f[4]]));
  for (const pid of list("/proc").filter((n) => /^\d+$/.test(n))) {
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ");
      // The network helpers (slirp4netns, the DNS forwarder) name the home on their command line.
      if (cmd.includes(home) && /slirp4netns|dns-forwarder/.test(cmd)) processes.push(`${pid}: ${cmd.slice(0, 120)}`);
      else if (fs.readlinkSync(`/proc/${pid}/ns/mnt`) === ownNamespace) continue;
      // Sandboxes, their launchers and VM jails name only stage and jail paths, but they live in
      // mount namespaces that hold mounts of the home's directories (mountinfo shows each bind's
      // source path): any process whose namespace still holds one is a leftover.
      else {
        // Named with the first of those sources, which says whose sandbox it is (…/workspaces/ID/…).
        // Only binds count (their source is the mount's root field): a launcher's namespace also
        // holds copies of the host's mounts, such as another workspace's disk-limited /workspace,
        // at the host's mount points.
        const held = mountinfo(pid).find((f) => (f[3] ?? "").includes(home) || (disks.has(f[2]) && !(f[4] ?? "").includes(home)));
        // A disk is named by where the host mounted it, which says whose it is.
        if (held) processes.push(`${pid}: ${cmd.slice(0, 120)} [holds ${(held[3] ?? "").includes(home) ? held[3] : `${disks.get(held[2])} at ${held[4]}`}]`);
      }
    } catch {
      // exited
    }
  }
  const mounts = fs.readFileSync("/proc/mounts", "utf8").split("\n").filter((l) => l.includes(home));
  const ids = list(path.join(home, "workspaces"));
  const cgroups: string[] = [];
  const group = pyroGroup();
  for (const id of ids) {
    for (const d of [path.join(group.v2, id), ...["memory", "pids", "cpu"].map((c) => path.join("/sys/fs/cgroup", c, group.v1, id))]) {
      if (fs.existsSync(d)) cgroups.push(d);
    }
  }
  return { workspaces: ids, sockets: list(path.join(home, "run")), processes, mounts, cgroups, layers: list(path.join(home, "workspace-layers")) };
}

export function noLeaks(): Leaks {
  return { workspaces: [], sockets: [], processes: [], mounts: [], cgroups: [], layers: [] };
}

/**
 * Where a workspace's live files lie on the host: a layered workspace's upper layer (what it
 * changed since its seed), or a plain workspace's directory.
 */
export function liveFilesOnHost(home: string, id: string): string {
  const dir = path.join(home, "workspaces", id, "workspace");
  const record = JSON.parse(fs.readFileSync(path.join(home, "workspaces", id, "workspace.json"), "utf8")) as { workspace_upper?: string };
  return record.workspace_upper ? path.join(dir, `upper-${record.workspace_upper}`) : dir;
}

/** Runs the CLI as a user would, with the given state directory. */
export function cli(home: string, args: string[], options: { input?: string; timeoutMs?: number; env?: Record<string, string> } = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...options.env, PYRO_HOME: home },
    encoding: "utf8",
    input: options.input ?? "",
    timeout: options.timeoutMs ?? 120_000,
  });
  // The parsed JSON is whatever the CLI printed; the tests' assertions are its type check.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, json: () => JSON.parse(r.stdout) as Record<string, any> };
}

/** Runs the CLI and SIGKILLs it after `delayMs` unless it finished first; says which happened. */
export function killedCli(home: string, args: string[], delayMs: number): Promise<{ killed: boolean; code: number | null; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, PYRO_HOME: home }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr!.resume();
    let killed = false;
    const timer = setTimeout(() => {
      killed = child.exitCode === null && child.signalCode === null;
      if (killed) child.kill("SIGKILL");
    }, delayMs);
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ killed, code, stdout });
    });
  });
}

/** Polls `condition` every 25 ms until it holds, failing with `what` after `timeoutMs`. */
export async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * The official MCP client connected over stdio to `pyro mcp serve ARGS`, as a chat host starts
 * it; `stderr()` is what the server printed, for failure messages.
 */
export async function connectMcp(home: string, args: string[], name: string): Promise<{ client: Client; stderr: () => string }> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [CLI, "mcp", "serve", ...args],
    env: { ...process.env, PYRO_HOME: home } as Record<string, string>,
    stderr: "pipe",
  });
  let stderr = "";
  transport.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const client = new Client({ name, version: "0.0.0" });
  await client.connect(transport);
  return { client, stderr: () => stderr };
}

/**
 * The network tests' outside world, all on this machine: a "remote" HTTP server in a network
 * namespace the test creates (veth pair, a private 10.x.y.0/24 with two addresses, plus a
 * link-local one where cloud metadata services live), which slirp4netns reaches through the
 * host's routing table like any outside address; and a server on the host's own loopback, which
 * untrusted code must not reach by default. `stop` removes all of it. Run as an ordinary user,
 * the tests use a remote world root prepared (test/network-world.ts).
 */
export interface TestNetwork {
  remote: string;
  remoteOther: string;
  /** The remote server again, on a link-local address. */
  linkLocal: string;
  hostPort: number;
  stop(): void;
}

export async function startTestNetwork(second: number): Promise<TestNetwork> {
  // Only root can make the remote world; an ordinary user's run uses one root prepared.
  const world = process.getuid?.() === 0 ? await makeTestWorld(second) : preparedTestWorld();
  const hostServer = net.createServer((s) => s.end("HTTP/1.0 200 OK\r\n\r\nhello from the host loopback\n"));
  await new Promise<void>((r) => hostServer.listen(0, "127.0.0.1", () => r()));
  return {
    remote: world.remote,
    remoteOther: world.remoteOther,
    linkLocal: world.linkLocal,
    hostPort: (hostServer.address() as net.AddressInfo).port,
    stop() {
      hostServer.close();
      world.stop();
    },
  };
}

/** bash inside a workspace: an HTTP GET over /dev/tcp, printing the body's last line. */
export const httpGetScript = (host: string, port: number) => `exec 3<>/dev/tcp/${host}/${port} && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && tail -n1 <&3`;

/** A GET from the host (e.g. to a published port): the body, or `error CODE`. */
export function hostGet(port: number): Promise<string> {
  return new Promise((resolve) => {
    const c = net.connect(port, "127.0.0.1");
    let data = "";
    c.on("data", (d) => (data += d.toString()));
    c.on("error", (e: NodeJS.ErrnoException) => resolve(`error ${e.code}`));
    c.on("end", () => resolve(data.split("\r\n\r\n")[1] ?? data));
    c.write("GET / HTTP/1.0\r\n\r\n");
  });
}

/** Awaits `promise`, which must reject with a PyroError of `code`; returns that error. */
export async function expectPyroError(promise: Promise<unknown>, code: string): Promise<PyroError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(PyroError);
    expect((err as PyroError).code, (err as Error).message).toBe(code);
    return err as PyroError;
  }
  throw new Error(`expected a PyroError ${code}`);
}
