/**
 * User-mode networking for namespace sandboxes. Every sandbox has its own network namespace
 * (bubblewrap --unshare-net). Egress is slirp4netns attached to it; the policy, allow-lists,
 * host-loopback protection and the record of denied attempts are nftables rules installed
 * *inside that namespace* by the host (`nft-rules.ts`); names in an allow-list are enforced by a
 * DNS forwarder (`../network/dns-forwarder.ts`). Nothing touches the host's firewall, routes or
 * interfaces, and every helper runs in the sandbox's cgroup and exits with the sandbox.
 *
 * Entering a sandbox's namespace always goes through `openNamespaces`, which proves the namespace
 * belongs to the recorded sandbox process and is not the host's own: a reused pid must never
 * turn a policy change into a change of the host's network. When pyro is not root, every entry
 * joins the sandbox's user namespace too (`../network/enter.ts` says why). Host-side.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import { SANDBOX_PATH, processStartTime } from "./backend.js";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import type { HelperProcess, NetworkDenial, NetworkSpec, PublishedPort, SandboxNetwork, SandboxRecord } from "../backend.js";
import { PyroError } from "../../shared/errors.js";
import { findExecutable } from "../../shared/executables.js";
import { packageRoot } from "../agent-runtime.js";
import { GUEST_ADDRESS, HOST_GATEWAY, SLIRP_DNS, TABLE, TAP_DEVICE, renderRuleset } from "./nft-rules.js";
import type { ForwarderConfig } from "../network/dns-forwarder.js";
import { entersUserNamespace, nsenterArgs, nsenterUserArgs } from "../network/enter.js";

const TOOLS = ["nsenter", "ip", "nft", "slirp4netns", "perl"] as const;
type Tool = (typeof TOOLS)[number];
const TOOL_PACKAGE: Record<Tool, string> = { nsenter: "util-linux", ip: "iproute2", nft: "nftables", slirp4netns: "slirp4netns", perl: "perl-base" };
let toolCache: Map<Tool, string | null> | undefined;

/** Absolute paths of the networking tools, null for the missing ones (looked up once). */
export function networkTools(): Map<Tool, string | null> {
  if (toolCache) return toolCache;
  toolCache = new Map(TOOLS.map((tool) => [tool, findExecutable(tool)] as const));
  return toolCache;
}

function requireTools(tools: readonly Tool[], purpose: string): Record<Tool, string> {
  const found = networkTools();
  const missing = tools.filter((t) => !found.get(t));
  if (missing.length > 0) {
    throw new PyroError("network_unavailable", `${purpose} needs ${missing.join(", ")}, which this host does not have`, {
      hint: `Install them: apt-get install ${[...new Set(missing.map((t) => TOOL_PACKAGE[t]))].join(" ")} (scripts/setup.sh does this).`,
    });
  }
  return Object.fromEntries(tools.map((t) => [t, found.get(t)!])) as Record<Tool, string>;
}

/** slirp4netns makes its TAP device through this, as the user running pyro. */
export const TUN_DEVICE = "/dev/net/tun";

/**
 * Why slirp4netns could not make its device on this host, or null. It opens /dev/net/tun as
 * the user running pyro (joining the sandbox's user namespace gives no access to a device node
 * owned outside it), so an ordinary user needs the device to be openable: mode 0666, as udev
 * makes it on most distributions. Tried for real (opening it creates nothing), so that whatever
 * refuses it — mode, a missing module, a security module — is found before anything starts.
 */
export function tunProblem(): { message: string; hint: string } | null {
  try {
    fs.closeSync(fs.openSync(TUN_DEVICE, fs.constants.O_RDWR));
    return null;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    if (code === "EACCES" || code === "EPERM") {
      const user = os.userInfo();
      let mode = "";
      try {
        const st = fs.statSync(TUN_DEVICE);
        mode = `: it is mode ${(st.mode & 0o777).toString(8).padStart(4, "0")}, owned by uid ${st.uid}`;
      } catch {
        // the open already failed; the mode only explains it
      }
      return {
        message: `${TUN_DEVICE} is not accessible to this user (${user.username}, uid ${user.uid}${mode}); slirp4netns needs it to give a workspace its way out`,
        hint:
          `Make it usable by every user, as most distributions do: \`sudo chmod 0666 ${TUN_DEVICE}\` (until the next boot), and to keep it a udev rule: ` +
          `\`echo 'KERNEL=="tun", MODE="0666"' | sudo tee /etc/udev/rules.d/60-tun.rules\`. The network policy off works without it.`,
      };
    }
    return {
      message: `${TUN_DEVICE} cannot be opened (${code}); slirp4netns needs it to give a workspace its way out`,
      hint: "Load the tun module (`sudo modprobe tun`) and check that /dev/net/tun exists. The network policy off works without it.",
    };
  }
}

/** Refuses an egress policy up front, before anything is started or changed, when this host cannot give one. */
export function requireEgress(policy: string): void {
  requireTools(TOOLS, `the ${policy} network policy`);
  const tun = tunProblem();
  if (tun) throw new PyroError("network_unavailable", `the ${policy} network policy is unavailable: ${tun.message}`, { hint: tun.hint, details: { device: TUN_DEVICE } });
}

/**
 * The perl half of starting a helper: join the sandbox's cgroup (so the cgroup sweep of a stop
 * or a crash takes the helper too), check the sandbox process is still the recorded one, then
 * in mode `slirp` take a pidfd of it (slirp4netns gets it as --exit-fd and leaves the moment the
 * sandbox dies), and exec the helper. perl because it is always there (perl-base is essential in
 * Debian) and can make pidfds.
 */
const HELPER_PERL = String.raw`
use strict; use Fcntl;
my ($mode, $pid, $start, $sep, @cmd) = @ARGV;
die "usage\n" unless $sep eq "--";
for my $f (split ' ', ($ENV{PYRO_CGROUP_PROCS} // '')) {
  open(my $c, '>', $f) or die "cannot join cgroup $f: $!\n"; print $c "$$\n"; close($c) or die "cannot join cgroup $f: $!\n";
}
sub alive { open(my $st, '<', "/proc/$pid/stat") or return 0; my $s = <$st>; $s =~ s/^.*\) //; my @f = split ' ', $s; return $f[0] ne 'Z' && $f[19] == $start; }
die "the sandbox process $pid is gone\n" unless alive();
# The handle lives at file scope: perl closes a handle when its variable goes out of scope.
my (%sub, $h);
if ($mode eq 'slirp') {
  my $fd = syscall(434, $pid + 0, 0);
  die "pidfd_open: $!\n" if $fd < 0;
  die "the sandbox process $pid is gone\n" unless alive();
  open($h, '<&=', $fd) or die "pidfd: $!\n"; fcntl($h, F_SETFD, 0) or die "fcntl: $!\n";
  $sub{PIDFD} = $fd;
} elsif ($mode ne 'run') { die "unknown mode $mode\n"; }
if (exists $sub{PIDFD}) { s/\{PIDFD\}/$sub{PIDFD}/g for @cmd; }
exec { $cmd[0] } @cmd or die "exec $cmd[0]: $!\n";
`;


/** What every entry into a sandbox's network needs to know about it. */
export interface NetnsTarget {
  sandboxPid: number;
  sandboxStartTime: number;
  cgroupProcs: string[];
}

export function netnsTarget(record: SandboxRecord): NetnsTarget {
  if (record.sandboxPid === null || record.sandboxPid <= 1 || !record.sandboxStartTime) {
    throw new PyroError("network_unavailable", "this sandbox was started before networking existed; restart the workspace to change its network", {
      hint: "Call workspace_stop and workspace_start (CLI: `pyro workspace stop WS && pyro workspace start WS`).",
    });
  }
  return { sandboxPid: record.sandboxPid, sandboxStartTime: record.sandboxStartTime, cgroupProcs: record.cgroupDirs.map((d) => path.join(d, "cgroup.procs")) };
}

/**
 * Open descriptors of a sandbox's namespaces: its network namespace, and the user namespace
 * that owns it when this process must join that too (it is not root; see `../network/enter.ts`).
 */
export interface SandboxNamespaces {
  net: number;
  user: number | null;
}

/**
 * Opens the sandbox's namespaces, only then proving that the pid still is the recorded sandbox
 * process (so the descriptors are of its namespaces, whatever the pid becomes later) and that
 * they are not ours. The caller closes them (`closeNamespaces`).
 */
export function openNamespaces(target: NetnsTarget, user = entersUserNamespace()): SandboxNamespaces {
  const opened: number[] = [];
  try {
    const net = fs.openSync(`/proc/${target.sandboxPid}/ns/net`, "r");
    opened.push(net);
    const userFd = user ? fs.openSync(`/proc/${target.sandboxPid}/ns/user`, "r") : null;
    if (userFd !== null) opened.push(userFd);
    if (processStartTime(target.sandboxPid) !== target.sandboxStartTime) throw new PyroError("workspace_stopped", "the workspace's sandbox is gone");
    const same = (fd: number, ours: string) => {
      const a = fs.fstatSync(fd);
      const b = fs.statSync(ours);
      return a.ino === b.ino && a.dev === b.dev;
    };
    if (same(net, "/proc/self/ns/net")) throw new PyroError("internal_error", "refusing to configure the host's own network namespace as a sandbox's");
    if (userFd !== null && same(userFd, "/proc/self/ns/user")) throw new PyroError("internal_error", "refusing to enter the host's own user namespace as a sandbox's");
    return { net, user: userFd };
  } catch (err) {
    for (const fd of opened) fs.closeSync(fd);
    throw err;
  }
}

export function closeNamespaces(ns: SandboxNamespaces): void {
  fs.closeSync(ns.net);
  if (ns.user !== null) fs.closeSync(ns.user);
}

/** The descriptors a child inherits from fd 3 up: the network namespace, then the user namespace if entered. */
function namespaceFds(ns: SandboxNamespaces): number[] {
  return ns.user === null ? [ns.net] : [ns.net, ns.user];
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command inside the sandbox's network namespace (and nowhere else) and collects its output. */
function runInNetns(ns: SandboxNamespaces, argv: string[], input?: string): Promise<RunResult> {
  const { nsenter } = requireTools(["nsenter"], "entering a sandbox's network");
  return new Promise((resolve, reject) => {
    const child = spawn(nsenter, [...nsenterArgs(ns.user !== null), "--", ...argv], { stdio: ["pipe", "pipe", "pipe", ...namespaceFds(ns)], env: { PATH: SANDBOX_PATH, LANG: "C" } });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin!.on("error", () => undefined);
    child.stdin!.end(input ?? "");
  });
}

async function withNamespaces<T>(target: NetnsTarget, fn: (ns: SandboxNamespaces) => Promise<T>): Promise<T> {
  const ns = openNamespaces(target);
  try {
    return await fn(ns);
  } finally {
    closeNamespaces(ns);
  }
}

function alive(h: HelperProcess | null): boolean {
  return h !== null && processStartTime(h.pid) === h.startTime;
}

/** Kills a helper (only if the pid still is that helper) and waits until it is gone. */
export async function stopHelper(h: HelperProcess | null): Promise<void> {
  if (!alive(h)) return;
  try {
    process.kill(h!.pid, "SIGKILL");
  } catch {
    return;
  }
  const deadline = Date.now() + 2000;
  while (Date.now() < deadline && alive(h)) await new Promise((r) => setTimeout(r, 10));
}

function logTail(file: string): string {
  try {
    return fs.readFileSync(file, "utf8").split("\n").slice(-8).join("\n").slice(-1500);
  } catch {
    return "";
  }
}

/**
 * Starts a detached helper through the perl starter and waits for its readiness line on fd
 * `readyFd` (an inherited pipe). Returns the pid, start time and the line.
 */
function startHelper(argv: string[], fds: number[], readyIndex: number, target: NetnsTarget, log: string, what: string): Promise<HelperProcess & { ready: string }> {
  const logFd = fs.openSync(log, "a", 0o600);
  const stdio: (number | "ignore" | "pipe")[] = ["ignore", logFd, logFd, ...fds];
  while (stdio.length < readyIndex) stdio.push("ignore");
  stdio[readyIndex] = "pipe";
  let child;
  try {
    child = spawn(argv[0]!, argv.slice(1), {
      detached: true,
      stdio,
      env: { PATH: SANDBOX_PATH, LANG: "C", PYRO_CGROUP_PROCS: target.cgroupProcs.join(" ") },
    });
  } finally {
    fs.closeSync(logFd);
  }
  return new Promise((resolve, reject) => {
    const ready = child.stdio[readyIndex] as net.Socket;
    let line = "";
    let settled = false;
    const fail = (why: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ready.destroy();
      if (child.pid !== undefined) {
        try {
          process.kill(child.pid, "SIGKILL");
        } catch {
          // gone
        }
      }
      reject(new PyroError("network_unavailable", `${what} did not start: ${why}`, { details: { log_tail: logTail(log) }, hint: "Run `pyro doctor`; the log tail above says what went wrong." }));
    };
    const timer = setTimeout(() => fail("no readiness within 10 s"), 10_000);
    child.on("error", (err) => fail(err.message));
    child.on("exit", (code, signal) => fail(`exited (${signal ?? `code ${code}`})`));
    ready.on("error", () => undefined);
    ready.on("data", (d: Buffer) => {
      line += d.toString();
      if (line.length > 4096) fail("readiness line too long");
    });
    // Ready when the helper has written its line and closed the pipe (slirp4netns writes "1").
    ready.on("end", () => {
      if (settled) return;
      if (line.trim() === "") return fail("closed its readiness pipe without a word");
      settled = true;
      clearTimeout(timer);
      ready.destroy();
      child.removeAllListeners("exit");
      child.unref();
      const pid = child.pid!;
      resolve({ pid, startTime: processStartTime(pid) ?? 0, ready: line.trim() });
    });
  });
}

/** The host's own IPv4 addresses: reachable through slirp4netns like any remote host, so blocked with the loopback. */
function hostAddresses(): string[] {
  const out = new Set<string>([HOST_GATEWAY]);
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) out.add(a.address);
  }
  return [...out].sort();
}

/** Resolvers the DNS forwarder asks: `$PYRO_DNS_UPSTREAM` (host:port, comma separated), else the host's resolv.conf. */
export function dnsUpstreams(env: NodeJS.ProcessEnv = process.env): { host: string; port: number }[] {
  const parse = (item: string) => {
    const m = /^\[?([0-9a-fA-F:.]+?)\]?(?::(\d+))?$/.exec(item.trim());
    if (!m || !net.isIP(m[1]!)) return null;
    return { host: m[1]!, port: m[2] ? Number(m[2]) : 53 };
  };
  if (env.PYRO_DNS_UPSTREAM) {
    const list = env.PYRO_DNS_UPSTREAM.split(",").map(parse).filter((x) => x !== null);
    if (list.length > 0) return list;
  }
  let servers: { host: string; port: number }[] = [];
  try {
    servers = fs
      .readFileSync("/etc/resolv.conf", "utf8")
      .split("\n")
      .map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1])
      .filter((s): s is string => s !== undefined && net.isIP(s) !== 0)
      .map((host) => ({ host, port: 53 }));
  } catch {
    // no resolv.conf
  }
  return servers.length > 0 ? servers : [{ host: "127.0.0.1", port: 53 }];
}

// ---------- slirp4netns API ----------

async function slirpApi(apiSocket: string, request: object): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(apiSocket);
    let data = "";
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new PyroError("network_unavailable", "slirp4netns did not answer on its API socket"));
    }, 5000);
    sock.on("error", (err) => {
      clearTimeout(timer);
      reject(new PyroError("network_unavailable", `slirp4netns API: ${err.message}`));
    });
    sock.on("connect", () => sock.write(JSON.stringify(request)));
    sock.on("data", (d: Buffer) => {
      data += d.toString();
      try {
        const parsed = JSON.parse(data) as Record<string, unknown>;
        clearTimeout(timer);
        sock.end();
        resolve(parsed);
      } catch {
        // wait for the rest
      }
    });
  });
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen({ port, host: "127.0.0.1", exclusive: true }, () => server.close(() => resolve(true)));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen({ port: 0, host: "127.0.0.1", exclusive: true }, () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

async function addForward(apiSocket: string, guestPort: number, hostPort: number): Promise<number | null> {
  const r = await slirpApi(apiSocket, { execute: "add_hostfwd", arguments: { proto: "tcp", host_addr: "127.0.0.1", host_port: hostPort, guest_port: guestPort } });
  const id = (r.return as { id?: unknown } | undefined)?.id;
  return typeof id === "number" ? id : null;
}

export async function publish(network: SandboxNetwork, service: string, guestPort: number, hostPort: number | null): Promise<PublishedPort> {
  if (network.spec.policy !== "egress+published-ports" || !network.slirp) {
    throw new PyroError("publish_not_allowed", `the workspace's network policy is ${network.spec.policy}; published ports need egress+published-ports`);
  }
  const apiSocket = network.slirp.apiSocket;
  for (let attempt = 0; attempt < (hostPort === null ? 5 : 1); attempt++) {
    const port = hostPort ?? (await freePort());
    const id = await addForward(apiSocket, guestPort, port);
    if (id !== null) return { service, guest_port: guestPort, host_address: "127.0.0.1", host_port: port, forward_id: id };
    if (hostPort !== null) {
      if (!(await portFree(hostPort))) {
        throw new PyroError("port_in_use", `host port 127.0.0.1:${hostPort} is already in use`, {
          details: { host_port: hostPort, guest_port: guestPort },
          hint: `Choose another host port (--publish ${guestPort}:OTHER), or leave it out (--publish ${guestPort}) to get a free one.`,
        });
      }
      throw new PyroError("network_unavailable", `slirp4netns could not forward 127.0.0.1:${hostPort} to guest port ${guestPort}`);
    }
  }
  throw new PyroError("network_unavailable", `could not find a free host port to publish guest port ${guestPort}`);
}

export async function unpublish(network: SandboxNetwork, port: PublishedPort): Promise<void> {
  if (!alive(network.slirp)) return;
  await slirpApi(network.slirp!.apiSocket, { execute: "remove_hostfwd", arguments: { id: port.forward_id } }).catch(() => undefined);
}

// ---------- applying a spec ----------

export interface NetworkContext {
  target: NetnsTarget;
  /** Directory for the forwarder's config and journal (created here). */
  dir: string;
  log: string;
  apiSocket: string;
  /**
   * The sandbox is a VM jail: QEMU turns the guest's connections to the gateway into
   * connections to the jail's own 127.0.0.1, which the rules send on to the host's loopback
   * (through slirp4netns's gateway), where host-loopback protection applies as for namespaces.
   */
  loopbackToGateway?: boolean;
}

function restricted(spec: NetworkSpec): boolean {
  return spec.allowHosts.length > 0 || spec.allowCidrs.length > 0;
}

const sameList = (a: string[], b: string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * slirp4netns, attached to the sandbox's network namespace (fd 3), leaving when the sandbox dies
 * (--exit-fd, a pidfd). When pyro is not root it runs inside the sandbox's user namespace
 * (`nsenter --user` on fd 4, staying in the host's network namespace, where its connections
 * are made): there it is root, can enter the network namespace, and its --enable-sandbox can
 * make the mount namespace it confines itself to and drop its capabilities. (Its own
 * --userns-path is no substitute: slirp4netns 1.2 joins that namespace only in the child that
 * makes the TAP device, and its sandbox then fails in the parent, unprivileged.)
 */
async function startSlirp(ctx: NetworkContext, spec: NetworkSpec, ns: SandboxNamespaces): Promise<HelperProcess & { apiSocket: string }> {
  const tools = requireTools(["perl", "slirp4netns", "nsenter"], "egress");
  fs.rmSync(ctx.apiSocket, { force: true });
  const fds = namespaceFds(ns);
  const readyFd = 3 + fds.length;
  const argv = [
    tools.perl, "-e", HELPER_PERL, "slirp", String(ctx.target.sandboxPid), String(ctx.target.sandboxStartTime), "--",
    ...(ns.user === null ? [] : [tools.nsenter, ...nsenterUserArgs(), "--"]),
    tools.slirp4netns, "--configure", "--mtu=65520",
    ...(spec.allowHostLoopback ? [] : ["--disable-host-loopback"]),
    "--api-socket", ctx.apiSocket,
    "--enable-sandbox", "--enable-seccomp",
    "--exit-fd={PIDFD}", `--ready-fd=${readyFd}`,
    "--netns-type=path", "/proc/self/fd/3", TAP_DEVICE,
  ];
  const h = await startHelper(argv, fds, readyFd, ctx.target, ctx.log, "slirp4netns");
  return { pid: h.pid, startTime: h.startTime, apiSocket: ctx.apiSocket };
}

/**
 * The DNS forwarder: a host process in the host's network namespace (its questions to the
 * host's resolvers leave from there), serving sockets bound inside the sandbox's. It binds them
 * itself, through a short-lived binder it starts in the sandbox's namespaces (the same `nsenter`
 * entry as every other, with the namespace descriptors it inherits as fds 3 and 4), which hands
 * the bound sockets back over Node's IPC channel. Nothing has to return from the sandbox's
 * namespace to the host's, which an ordinary user could not do.
 */
async function startForwarder(ctx: NetworkContext, spec: NetworkSpec, ns: SandboxNamespaces): Promise<HelperProcess & { port: number }> {
  const tools = requireTools(["perl", "nsenter", "nft"], "a host allow-list");
  fs.mkdirSync(ctx.dir, { recursive: true, mode: 0o700 });
  const config: ForwarderConfig = {
    hosts: spec.allowHosts,
    upstreams: dnsUpstreams(),
    denials: path.join(ctx.dir, "dns-denials.jsonl"),
    sandboxPid: ctx.target.sandboxPid,
    sandboxStartTime: ctx.target.sandboxStartTime,
    nft: tools.nft,
    nsenter: tools.nsenter,
    enter: nsenterArgs(ns.user !== null),
    table: TABLE,
    set: "resolved",
  };
  const configPath = path.join(ctx.dir, "dns-forwarder.json");
  fs.writeFileSync(configPath, JSON.stringify(config, null, 2), { mode: 0o600 });
  const fds = namespaceFds(ns);
  const readyFd = 3 + fds.length;
  const argv = [
    tools.perl, "-e", HELPER_PERL, "run", String(ctx.target.sandboxPid), String(ctx.target.sandboxStartTime), "--",
    process.execPath, path.join(packageRoot(), "dist", "network", "dns-forwarder.mjs"), configPath, "3", ns.user === null ? "-" : "4", String(readyFd),
  ];
  const h = await startHelper(argv, fds, readyFd, ctx.target, ctx.log, "the DNS forwarder");
  const port = (JSON.parse(h.ready) as { port?: unknown }).port;
  if (typeof port !== "number") throw new PyroError("network_unavailable", "the DNS forwarder reported no port");
  return { pid: h.pid, startTime: h.startTime, port };
}

/** Addresses the running forwarder already resolved, to keep them across a rules change. */
async function resolvedAddresses(ns: SandboxNamespaces, nft: string): Promise<string[]> {
  const r = await runInNetns(ns, [nft, "-j", "list", "set", "inet", TABLE, "resolved"]);
  if (r.code !== 0) return [];
  try {
    const parsed = JSON.parse(r.stdout) as { nftables: { set?: { elem?: unknown[] } }[] };
    const elem = parsed.nftables.find((x) => x.set)?.set?.elem ?? [];
    return elem.filter((e): e is string => typeof e === "string");
  } catch {
    return [];
  }
}

/** Routes and rules for `spec`; with the policy off, the loopback default route makes denied attempts reach the rules (to be recorded) instead of failing before them. */
async function applyRules(ns: SandboxNamespaces, spec: NetworkSpec, forwarderPort: number | null, resolved: string[], loopbackToGateway = false): Promise<void> {
  const { nft, ip } = requireTools(["nft", "ip"], "network rules");
  const egress = spec.policy !== "off";
  const ruleset = renderRuleset({
    egress,
    hostAddresses: spec.allowHostLoopback ? [] : hostAddresses(),
    restricted: restricted(spec),
    allowCidrs: spec.allowCidrs,
    resolved,
    dnsForwarderPort: forwarderPort,
    published: spec.policy === "egress+published-ports",
    allowGateway: spec.allowHostLoopback,
    loopbackToGateway,
  });
  // Rules first: a loopback default route without them would make connections hang, not fail.
  const script = [
    "set -e",
    "echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet",
    `"$1" -f -`,
    egress ? `"$0" route del default dev lo 2>/dev/null || true` : `"$0" route replace default dev lo`,
  ].join("\n");
  const r = await runInNetns(ns, ["/bin/sh", "-c", script, ip, nft], ruleset);
  if (r.code !== 0) throw new PyroError("network_unavailable", `could not install the sandbox's network rules: ${r.stderr.trim().slice(0, 500)}`);
}

/**
 * Brings a running sandbox's network to `spec`, keeping what does not need to change (the
 * slirp4netns process and its published ports, the forwarder and the addresses it resolved).
 * On failure it falls back to the policy off — never to something more open — and rethrows;
 * `prev` is updated in place either way so the caller can persist what is really applied.
 */
export async function applyNetwork(ctx: NetworkContext, prev: SandboxNetwork | null, spec: NetworkSpec): Promise<SandboxNetwork> {
  const state: SandboxNetwork = prev ?? { spec, recording: false, slirp: null, dnsForwarder: null, published: [], paths: { dir: ctx.dir, log: ctx.log, apiSocket: ctx.apiSocket }, note: null };
  const egress = spec.policy !== "off";
  // Refused before anything changes: the workspace keeps its current network.
  if (egress) requireEgress(spec.policy);
  const tools = networkTools();
  // Helpers started by this call: a failure part-way must not leave one running.
  const started: HelperProcess[] = [];
  try {
    await withNamespaces(ctx.target, async (ns) => {
      if (!tools.get("nft") || !tools.get("ip") || !tools.get("nsenter")) {
        // Policy off without nft: no route out at all; attempts fail at once but are not recorded.
        state.spec = spec;
        state.recording = false;
        state.note = "denied attempts are not recorded: nft (package nftables) is not installed";
        return;
      }
      const needForwarder = egress && spec.allowHosts.length > 0;
      const hostsChanged = !sameList(prev?.spec.allowHosts ?? [], spec.allowHosts);
      const keepForwarder = needForwarder && alive(state.dnsForwarder) && !hostsChanged;
      const oldForwarder = keepForwarder ? null : state.dnsForwarder;
      const restartSlirp = egress && (!alive(state.slirp) || prev?.spec.allowHostLoopback !== spec.allowHostLoopback);

      // Going off: cut the way out before the rules change.
      if (!egress || restartSlirp) {
        await stopHelper(state.slirp);
        state.slirp = null;
      }
      let forwarder = keepForwarder ? state.dnsForwarder : null;
      if (needForwarder && !forwarder) {
        fs.rmSync(path.join(ctx.dir, "dns-denials.jsonl"), { force: true });
        forwarder = await startForwarder(ctx, spec, ns);
        started.push(forwarder);
      }
      // Addresses resolved for allowed names stay allowed while every one of those names still is
      // (adding a name must not cut programs off from the names they already resolved).
      const oldHosts = prev?.spec.allowHosts ?? [];
      const keepResolved = needForwarder && alive(state.dnsForwarder) && oldHosts.every((h) => spec.allowHosts.includes(h));
      const resolved = keepResolved ? await resolvedAddresses(ns, tools.get("nft")!) : [];
      await applyRules(ns, spec, forwarder?.port ?? null, resolved, ctx.loopbackToGateway);
      // The first baseline of this sandbox's drop counter, so its first result skips the nft call.
      if (readDropMarker(ctx.dir, ctx.target.sandboxPid) === null) writeDropMarker(ctx.dir, ctx.target.sandboxPid, dropCount(ctx.target.sandboxPid));
      state.spec = spec;
      state.recording = true;
      state.note = null;
      state.dnsForwarder = forwarder;
      if (oldForwarder) await stopHelper(oldForwarder);

      if (egress && !state.slirp) {
        state.slirp = await startSlirp(ctx, spec, ns);
        started.push(state.slirp);
        // A new slirp4netns has no forwards: put the published ports back.
        const kept: PublishedPort[] = [];
        for (const p of spec.policy === "egress+published-ports" ? state.published : []) {
          const id = await addForward(state.slirp.apiSocket, p.guest_port, p.host_port).catch(() => null);
          if (id !== null) kept.push({ ...p, forward_id: id });
        }
        if (kept.length < state.published.length && spec.policy === "egress+published-ports") {
          state.note = "some published ports could not be restored after the network restarted; start their services again";
        }
        state.published = kept;
      }
      if (spec.policy !== "egress+published-ports" && state.published.length > 0) {
        for (const p of state.published) await unpublish(state, p);
        state.published = [];
      }
    });
    return state;
  } catch (err) {
    for (const h of started) await stopHelper(h);
    await failClosed(ctx, state).catch(() => undefined);
    throw err instanceof PyroError ? err : new PyroError("network_unavailable", `network setup failed: ${(err as Error).message}`);
  }
}

/** After a failure: no helper, no way out, and the state says so. */
async function failClosed(ctx: NetworkContext, state: SandboxNetwork): Promise<void> {
  await stopHelper(state.slirp);
  await stopHelper(state.dnsForwarder);
  state.slirp = null;
  state.dnsForwarder = null;
  state.published = [];
  state.spec = { policy: "off", allowHosts: [], allowCidrs: [], allowHostLoopback: false };
  state.recording = false;
  state.note = "network setup failed, so the workspace is offline (policy off); see the error of the call that failed";
  const tools = networkTools();
  if (tools.get("nft") && tools.get("ip") && tools.get("nsenter")) {
    await withNamespaces(ctx.target, (ns) => applyRules(ns, state.spec, null, [], ctx.loopbackToGateway));
    state.recording = true;
  }
}

/** Kills the helpers of a sandbox being stopped (the cgroup sweep and --exit-fd would get them too). */
export async function stopNetwork(network: SandboxNetwork | null | undefined): Promise<void> {
  if (!network) return;
  await stopHelper(network.slirp);
  await stopHelper(network.dnsForwarder);
  fs.rmSync(network.paths.apiSocket, { force: true });
}

// ---------- denied attempts ----------

/**
 * Packets the sandbox sent that never left it (IPv4 OutRequests − OutTransmits, kernel ≥ 6.3):
 * every denial drops one, so an unchanged count means there is nothing to read and the caller
 * skips the nft query. null when the kernel does not count transmissions.
 */
function dropCount(sandboxPid: number): number | null {
  try {
    const lines = fs.readFileSync(`/proc/${sandboxPid}/net/snmp`, "utf8").split("\n");
    const i = lines.findIndex((l) => l.startsWith("Ip: ") && l.includes("OutRequests"));
    const keys = lines[i]!.split(/\s+/);
    const values = lines[i + 1]!.split(/\s+/);
    const req = keys.indexOf("OutRequests");
    const tx = keys.indexOf("OutTransmits");
    if (req < 0 || tx < 0) return null;
    return Number(values[req]) - Number(values[tx]);
  } catch {
    return null;
  }
}

interface NftElement {
  concat?: [string, string, number];
}

export async function takeDenials(network: SandboxNetwork, target: NetnsTarget): Promise<NetworkDenial[]> {
  const denials: NetworkDenial[] = [];
  // Names the forwarder refused: take its journal by renaming it away (it appends to a new one).
  const journal = path.join(network.paths.dir, "dns-denials.jsonl");
  if (network.dnsForwarder && fs.existsSync(journal)) {
    const taken = `${journal}.${process.pid}.taken`;
    try {
      fs.renameSync(journal, taken);
      for (const line of fs.readFileSync(taken, "utf8").split("\n")) {
        try {
          const name = (JSON.parse(line) as { name?: unknown }).name;
          if (typeof name === "string" && name.length <= 253) denials.push({ kind: "dns", name });
        } catch {
          // a torn last line
        }
      }
    } catch {
      // someone else took it
    } finally {
      fs.rmSync(taken, { force: true });
    }
  }
  if (!network.recording) return denials;
  // Nothing can be denied at the IP level when egress is open to everything.
  if (network.spec.policy !== "off" && network.spec.allowHostLoopback && !restricted(network.spec)) return denials;

  const drops = dropCount(target.sandboxPid);
  if (drops !== null && readDropMarker(network.paths.dir, target.sandboxPid) === drops) return denials;
  const { nft } = requireTools(["nft"], "reading denied attempts");
  const hosts = new Set(network.spec.allowHostLoopback ? [] : hostAddresses());
  await withNamespaces(target, async (ns) => {
    const r = await runInNetns(ns, [nft, "-j", "list", "set", "inet", TABLE, "denied"]);
    if (r.code !== 0) return;
    let elems: { val?: NftElement; elem?: { val?: NftElement } }[] = [];
    try {
      const parsed = JSON.parse(r.stdout) as { nftables: { set?: { elem?: typeof elems } }[] };
      elems = parsed.nftables.find((x) => x.set)?.set?.elem ?? [];
    } catch {
      return;
    }
    const taken: string[] = [];
    for (const e of elems) {
      const concat = (e.elem?.val ?? e.val)?.concat;
      if (!Array.isArray(concat) || concat.length !== 3) continue;
      const [address, protocol, port] = concat;
      if (typeof address !== "string" || (protocol !== "tcp" && protocol !== "udp") || typeof port !== "number") continue;
      taken.push(`${address} . ${protocol} . ${port}`);
      denials.push({ kind: "connect", protocol, address, port, host_side: hosts.has(address) });
    }
    if (taken.length > 0) await runInNetns(ns, [nft, "delete", "element", "inet", TABLE, "denied", `{ ${taken.join(", ")} }`]);
  });
  writeDropMarker(network.paths.dir, target.sandboxPid, drops);
  return denials;
}

/** The drop count last seen for this sandbox (a restarted sandbox counts from zero again). */
function readDropMarker(dir: string, sandboxPid: number): number | null {
  try {
    const [pid, count] = fs.readFileSync(path.join(dir, "drops"), "utf8").split(":");
    return Number(pid) === sandboxPid && count !== "" && count !== undefined ? Number(count) : null;
  } catch {
    return null;
  }
}

function writeDropMarker(dir: string, sandboxPid: number, count: number | null): void {
  if (count === null) return;
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.writeFileSync(path.join(dir, "drops"), `${sandboxPid}:${count}`, { mode: 0o600 });
}

export { GUEST_ADDRESS, HOST_GATEWAY, SLIRP_DNS };
