/**
 * The network helpers a sandbox runs on the host — slirp4netns and the allow-list DNS forwarder
 * — started through one perl starter that puts them in the sandbox's cgroup first, so that
 * every helper dies with its sandbox (the cgroup sweep of a stop or a crash takes it), and
 * stopped only while their pid still is theirs. Host-side.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import type { HelperProcess, NetworkSpec } from "./types.js";
import type { ForwarderConfig } from "./dns-forwarder.js";
import { nsenterArgs } from "./enter.js";
import { TABLE } from "./nft-rules.js";
import { namespaceFds, requireTools } from "./netns.js";
import type { NetnsTarget, NetworkContext, SandboxNamespaces } from "./netns.js";
import { SANDBOX_PATH } from "../../protocol/guest.js";
import { PyroError } from "../../shared/errors.js";
import { packageRoot } from "../../shared/package.js";
import { logTail, processStartTime, waitForExit } from "../../shared/process.js";

/**
 * The perl half of starting a helper: join the sandbox's cgroup (so the cgroup sweep of a stop
 * or a crash takes the helper too), check the sandbox process is still the recorded one, then
 * in mode `slirp` take a pidfd of it (slirp4netns gets it as --exit-fd and leaves the moment the
 * sandbox dies), and exec the helper. perl because it is always there (perl-base is essential in
 * Debian) and can make pidfds.
 */
export const HELPER_PERL = String.raw`
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

/** The helper is running and its pid still is the one recorded. */
export function helperAlive(h: HelperProcess | null): boolean {
  return h !== null && processStartTime(h.pid) === h.startTime;
}

/** Kills a helper (only if the pid still is that helper) and waits until it is gone. */
export async function stopHelper(h: HelperProcess | null): Promise<void> {
  if (!h || !helperAlive(h)) return;
  try {
    process.kill(h.pid, "SIGKILL");
  } catch {
    return;
  }
  await waitForExit(h.pid, h.startTime, 2000);
}

/**
 * Starts a detached helper through the perl starter and waits for its readiness line on fd
 * `readyFd` (an inherited pipe). Returns the pid, start time and the line.
 */
export function startHelper(argv: string[], fds: number[], readyIndex: number, target: NetnsTarget, log: string, what: string): Promise<HelperProcess & { ready: string }> {
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
      reject(new PyroError("network_unavailable", `${what} did not start: ${why}`, { details: { log_tail: logTail(log, 8, 1500) }, hint: "Run `pyro doctor`; the log tail above says what went wrong." }));
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

/**
 * The DNS forwarder: a host process in the host's network namespace (its questions to the
 * host's resolvers leave from there), serving sockets bound inside the sandbox's. It binds them
 * itself, through a short-lived binder it starts in the sandbox's namespaces (the same `nsenter`
 * entry as every other, with the namespace descriptors it inherits as fds 3 and 4), which hands
 * the bound sockets back over Node's IPC channel. Nothing has to return from the sandbox's
 * namespace to the host's, which an ordinary user could not do.
 */
export async function startForwarder(ctx: NetworkContext, spec: NetworkSpec, ns: SandboxNamespaces): Promise<HelperProcess & { port: number }> {
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
