/**
 * pyro-vm-supervisor: runs inside a VM workspace's jail (a bubblewrap sandbox with its own
 * network, pid and mount namespaces and the workspace's cgroup) beside the processes it starts:
 * virtiofsd, which serves the host's /workspace directory to the guest, and the VM itself.
 *
 * The host reaches the guest agent exactly as it reaches a namespace sandbox's agent: through a
 * unix socket handed in as fd 3. Each accepted connection becomes a channel on the guest's one
 * virtio-serial port (protocol/mux.ts). The guest console is copied into the sandbox log,
 * bounded. When the VM or virtiofsd exits, the supervisor takes the other down and exits, which
 * ends the jail: nothing of a VM outlives it. Bundled on its own (dist/vm/).
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import { ChannelMux } from "../../protocol/mux.js";

export interface SupervisorConfig {
  launcher: string[];
  virtiofsd: string[];
  workspaceSocket: string;
  agentSocket: string;
  /** The sandbox log as the jail sees it: console output goes here, kept under `logMaxBytes`. */
  log: string;
  logMaxBytes: number;
}

const config = JSON.parse(fs.readFileSync(process.argv[2] ?? "", "utf8")) as SupervisorConfig;
const started = Date.now();
const children: ChildProcess[] = [];
let exiting = false;

function note(line: string): void {
  appendLog(Buffer.from(`pyro-vm: ${line}\n`));
}

/** Appends to the log; past the bound, keeps its newest half (failures are read from the tail). */
function appendLog(data: Buffer): void {
  try {
    const size = fs.statSync(config.log).size;
    if (size + data.length > config.logMaxBytes) {
      const keep = Math.floor(config.logMaxBytes / 2);
      const fd = fs.openSync(config.log, "r+");
      const tail = Buffer.alloc(Math.min(keep, size));
      fs.readSync(fd, tail, 0, tail.length, size - tail.length);
      fs.ftruncateSync(fd, 0);
      fs.writeSync(fd, Buffer.from("[earlier console output dropped]\n"));
      fs.writeSync(fd, tail);
      fs.closeSync(fd);
    }
    fs.appendFileSync(config.log, data);
  } catch {
    // A log we cannot write must not take the VM down.
  }
}

function shutdown(code: number, why: string): void {
  if (exiting) return;
  exiting = true;
  note(why);
  for (const child of children) child.kill("SIGKILL");
  process.exit(code);
}

function startChild(argv: string[], name: string, onOutput: (d: Buffer) => void): ChildProcess {
  const [cmd, ...args] = argv;
  const child = spawn(cmd!, args, { stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  child.stdout!.on("data", onOutput);
  child.stderr!.on("data", onOutput);
  child.on("error", (err) => shutdown(71, `cannot start ${name}: ${err.message}`));
  child.on("exit", (code, signal) => shutdown(1, `${name} exited (${signal ?? `code ${code}`})`));
  return child;
}

async function waitForPath(p: string, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fs.existsSync(p)) {
    if (exiting) return;
    if (Date.now() > deadline) shutdown(72, `${what} did not appear within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function main(): Promise<void> {
  process.on("SIGTERM", () => shutdown(0, "stopped"));
  startChild(config.virtiofsd, "virtiofsd", appendLog);
  await waitForPath(config.workspaceSocket, "virtiofsd's socket", 10_000);

  // The VM connects its serial port to us; the link to the agent is that one connection.
  const link = new Promise<net.Socket>((resolve) => {
    const server = net.createServer((socket) => {
      server.close();
      resolve(socket);
    });
    server.listen(config.agentSocket);
  });
  await waitForPath(config.agentSocket, "the agent link socket", 5_000);
  startChild(config.launcher, "the VM", appendLog);
  // The link breaks when the VM dies; give the VM's own exit a moment to be the reason reported.
  const mux = new ChannelMux(await link, null, (err) => setTimeout(() => shutdown(1, `the agent link broke: ${err.message}`), 500));
  void mux.ready.then(() => note(`agent ready after ${Date.now() - started} ms`));

  // Host connections are accepted at once and wait for the guest agent inside their channel,
  // so the host's handshake itself is the readiness check.
  const host = net.createServer((socket) => {
    void mux.ready.then(() => {
      if (socket.destroyed) return;
      const channel = mux.open();
      socket.pipe(channel).pipe(socket);
      socket.on("error", () => channel.destroy());
      socket.on("close", () => channel.destroy());
      channel.on("error", () => socket.destroy());
      channel.on("close", () => socket.destroy());
    });
  });
  host.on("error", (err) => shutdown(70, `the host socket failed: ${err.message}`));
  host.listen({ fd: 3 });
}

void main();
