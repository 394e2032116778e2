/**
 * The "outside world" of the network tests: a network namespace the host routes to over a veth
 * pair, with a server answering on two addresses of a private 10.x subnet and on a link-local
 * one. slirp4netns reaches it through the host's routing table like any remote host.
 *
 * Making it takes root (a network namespace, a veth pair, addresses on the host's side). A
 * suite run by root makes its own per test file. For a run as an ordinary user, root prepares
 * one shared world beforehand (network namespace `pyrotestworld`, fixed addresses), which the
 * tests find by its name:
 *
 *   sudo npx tsx test/network-world.ts up      # idempotent; the server keeps running
 *   … run the tests as the user …
 *   sudo npx tsx test/network-world.ts down
 */
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import { pathToFileURL } from "node:url";

export interface TestWorld {
  /** The server's two addresses on the private subnet, and its link-local one. */
  remote: string;
  remoteOther: string;
  linkLocal: string;
  /** Removes what this process made (nothing for a world root prepared). */
  stop(): void;
}

const SERVER = 'require("http").createServer((q,s)=>s.end("hello from "+q.socket.localAddress+"\\n")).listen(8080,"0.0.0.0",()=>console.log("up"))';

function sh(cmd: string): void {
  const r = spawnSync("sh", ["-c", cmd], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
}

interface Names {
  netns: string;
  veth: string;
  subnet: string;
  linkLocalNet: string;
}

function addresses(n: Names): Pick<TestWorld, "remote" | "remoteOther" | "linkLocal"> {
  return { remote: `${n.subnet}.2`, remoteOther: `${n.subnet}.3`, linkLocal: `${n.linkLocalNet}.2` };
}

function build(n: Names): void {
  sh(`ip netns add ${n.netns}`);
  sh(`ip link add ${n.veth}h type veth peer name ${n.veth}r && ip link set ${n.veth}r netns ${n.netns}`);
  sh(`ip addr add ${n.subnet}.1/24 dev ${n.veth}h && ip addr add ${n.linkLocalNet}.1/24 dev ${n.veth}h && ip link set ${n.veth}h up`);
  sh(`ip -n ${n.netns} addr add ${n.linkLocalNet}.2/24 dev ${n.veth}r`);
  sh(`ip -n ${n.netns} addr add ${n.subnet}.2/24 dev ${n.veth}r && ip -n ${n.netns} addr add ${n.subnet}.3/24 dev ${n.veth}r && ip -n ${n.netns} link set ${n.veth}r up && ip -n ${n.netns} link set lo up`);
}

function teardown(n: Names): void {
  spawnSync("sh", ["-c", `ip netns pids ${n.netns} 2>/dev/null | xargs -r kill -9; ip link del ${n.veth}h 2>/dev/null; ip netns del ${n.netns} 2>/dev/null`]);
}

/** A world of this process's own (root only), named and numbered apart from any other run's. */
export async function makeTestWorld(second: number): Promise<TestWorld> {
  const names: Names = {
    netns: `pyrot${second}x${process.pid}`,
    veth: `pv${second % 10}${process.pid % 1_000_000}`,
    subnet: `10.${second}.${200 + (process.pid % 50)}`,
    linkLocalNet: `169.254.${200 + (process.pid % 50)}`,
  };
  build(names);
  const server = spawn("ip", ["netns", "exec", names.netns, process.execPath, "-e", SERVER], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise((r) => server.stdout!.once("data", r));
  return {
    ...addresses(names),
    stop() {
      server.kill("SIGKILL");
      teardown(names);
    },
  };
}

/** The fixed names of the shared world (the per-process ones use 200-249 in the third octet). */
const SHARED: Names = { netns: "pyrotestworld", veth: "pvworld", subnet: "10.203.250", linkLocalNet: "169.254.250" };

/** The shared world root prepared for a run as an ordinary user, or an error saying how to prepare it. */
export function preparedTestWorld(): TestWorld {
  if (!fs.existsSync(`/run/netns/${SHARED.netns}`)) {
    throw new Error(
      "the network tests need a test network, which only root can make (a network namespace and a veth pair). " +
        "As an ordinary user, have root prepare one first: sudo npx tsx test/network-world.ts up (see test/network-world.ts).",
    );
  }
  return { ...addresses(SHARED), stop() {} };
}

async function cli(command: string | undefined): Promise<void> {
  if (command === "up") {
    teardown(SHARED);
    build(SHARED);
    const server = spawn("ip", ["netns", "exec", SHARED.netns, process.execPath, "-e", SERVER], { stdio: ["ignore", "pipe", "ignore"], detached: true });
    await new Promise((r) => server.stdout!.once("data", r));
    server.stdout!.destroy();
    server.unref();
    const w = addresses(SHARED);
    process.stdout.write(`test network ${SHARED.netns} ready: a server on ${w.remote}, ${w.remoteOther} and ${w.linkLocal}, port 8080\n`);
  } else if (command === "down") {
    teardown(SHARED);
  } else {
    process.stderr.write("usage: tsx test/network-world.ts up|down\n");
    process.exitCode = 2;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await cli(process.argv[2]);
