/**
 * Utility sandboxes: short-lived bubblewrap sandboxes that do bulk file work on workspace trees
 * — snapshot copies, restores, seeding, diffs, exports, reading a stopped workspace — so the
 * host process itself never opens a path inside a workspace. Each sees only the host's
 * read-only /usr (for cp and tar), the agent runtime when it runs the agent, and the
 * directories bound for the job;
 * whatever a hostile tree contains (symlinks, FIFOs, huge files) stays inside that view.
 *
 * A utility sandbox may *join* a running workspace's sandbox (`join`): it then starts in a
 * private copy of that sandbox's mount namespace (launch.ts), where a bind may name a path as it
 * exists there (`inNamespace`: the running overlay on the workspace's stage) instead of a host
 * path, so it works on the very overlay instance the workspace uses, never a second one.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { Duplex } from "node:stream";
import type { Readable } from "node:stream";
import { agentRuntime } from "./agent-runtime.js";
import { AgentClient } from "../../protocol/client.js";
import { PyroError } from "../../shared/errors.js";
import { capBytes, renderCapped } from "../../shared/output-cap.js";
import { systemPath } from "../../shared/executables.js";
import { SANDBOX_PATH } from "../../protocol/guest.js";
import { PROC_ARGS, hostSystemArgs } from "./bwrap.js";
import { ConfinedLaunch } from "./launch.js";
import type { JoinTarget } from "./launch.js";
import { feedSeccompProgram } from "./seccomp.js";

/**
 * One directory or file of the utility sandbox: a host path (`source`); a read-only overlay of
 * host directories (`overlay`, top-most first: a stopped layered workspace, a snapshot); or, for
 * a sandbox that joins a running workspace, a path inside that workspace's mount namespace
 * (`inNamespace`).
 */
export type UtilityBind =
  | { source: string; target: string; readOnly: boolean }
  | { overlay: string[]; target: string }
  | { inNamespace: string; target: string; readOnly: boolean };

/** Where a utility sandbox finds a whole tree: its binds (the tree at their targets) and the sandbox to join, if any. */
export interface UtilityView {
  binds: UtilityBind[];
  join: JoinTarget | null;
}

export type { JoinTarget };

/** Options every utility sandbox takes: `join` runs it inside a running workspace's sandbox's namespaces. */
export interface UtilityOptions {
  join?: JoinTarget | null;
}

/** Copying a tree faithfully as guest root needs these; nothing else (no mount, no net, no ptrace). */
const UTILITY_CAPS = ["CAP_CHOWN", "CAP_FOWNER", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FSETID"];

/** Child descriptors of a utility sandbox: 3 the seccomp program, staged paths from 4. */
const SECCOMP_FD = 3;
const FIRST_STAGED_FD = 4;

function utilityArgs(binds: UtilityBind[], launch: ConfinedLaunch, withAgent: boolean): string[] {
  const args = ["--tmpfs", "/", "--dir", "/tmp", ...PROC_ARGS, "--dev", "/dev", ...hostSystemArgs()];
  // Only the agent needs its runtime: each bind is a mount the sandbox's start pays for.
  if (withAgent) for (const b of agentRuntime().binds) args.push("--ro-bind", launch.reachable(b.source), b.target);
  for (const b of binds) {
    if ("overlay" in b) {
      // overlayfs wants two layers or an upper; one layer alone is the same tree bound read-only.
      const [only, ...rest] = b.overlay;
      args.push("--ro-bind", rest.length === 0 && only ? launch.bind(only, { readOnly: true }) : launch.overlay(b.overlay, null, null), b.target);
      continue;
    }
    const staged = "source" in b ? launch.bind(b.source, { readOnly: b.readOnly }) : launch.bindInNamespace(b.inNamespace, { readOnly: b.readOnly });
    args.push(b.readOnly ? "--ro-bind" : "--bind", staged, b.target);
  }
  args.push(
    "--unshare-all",
    "--die-with-parent",
    "--new-session",
    "--cap-drop", "ALL",
    ...UTILITY_CAPS.flatMap((c) => ["--cap-add", c]),
    "--clearenv",
    "--setenv", "PATH", SANDBOX_PATH,
    "--setenv", "LANG", "C.UTF-8",
    "--chdir", "/",
  );
  return args;
}

/**
 * Spawns `argv` in a utility sandbox: confined to the sandbox identity, the binds staged by
 * descriptor, the seccomp filter applied; inside `join`'s sandbox when given. The launch is
 * released once the child exits.
 */
async function spawnUtility(binds: UtilityBind[], argv: string[], stdio: "pipe" | "ignore", join: JoinTarget | null | undefined, withAgent = false): Promise<ChildProcess> {
  if (!join && binds.some((b) => "inNamespace" in b)) throw new PyroError("internal_error", "a utility bind inside a namespace needs a sandbox to join");
  const launch = join ? await ConfinedLaunch.join(join, FIRST_STAGED_FD) : await ConfinedLaunch.open(FIRST_STAGED_FD);
  try {
    const confined = launch.argv(["bwrap", "--seccomp", String(SECCOMP_FD), ...utilityArgs(binds, launch, withAgent), "--", ...argv]);
    const child = spawn(confined.argv[0]!, confined.argv.slice(1), { stdio: [stdio, "pipe", "pipe", "pipe", ...confined.fds], env: { ...process.env, PATH: systemPath() } });
    feedSeccompProgram(child, SECCOMP_FD);
    child.once("close", () => launch.release());
    child.once("error", () => launch.release());
    // Our copies of the staged descriptors are not needed once the child has its own.
    return child;
  } catch (err) {
    launch.release();
    throw err;
  }
}

export interface UtilityResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs one command (host coreutils/tar) in a utility sandbox; output is capped. `input` is
 * piped to its standard input (a tar stream pyro read from a host path on the sandbox's behalf).
 */
export async function runUtility(binds: UtilityBind[], argv: string[], options: UtilityOptions & { timeoutMs?: number; input?: Readable } = {}): Promise<UtilityResult> {
  const timeoutMs = options.timeoutMs ?? 600_000;
  const child = await spawnUtility(binds, argv, options.input ? "pipe" : "ignore", options.join);
  if (options.input) {
    // A sandbox that exits early closes the pipe: its exit status says why, not an EPIPE.
    child.stdin!.on("error", () => undefined);
    options.input.on("error", () => child.kill("SIGKILL"));
    options.input.pipe(child.stdin!);
  }
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on("data", (d: Buffer) => out.push(d));
    child.stderr!.on("data", (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(new PyroError("sandbox_start_failed", `cannot start a utility sandbox: ${e.message}`));
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      const cap = (chunks: Buffer[]) => {
        const { bytes, info } = capBytes(Buffer.concat(chunks), 8192);
        return renderCapped(bytes, info);
      };
      resolve({ code, stdout: cap(out), stderr: cap(err) });
    });
  });
}

/**
 * A shell command printing the size of the tree at `dir` (a fixed path, never a name from a
 * tree) for `parseTreeSize`: its entries below it, a hard link counted each time as `find`
 * would, then its apparent bytes. Two execs and no pipe: starting a program costs milliseconds
 * on a virtual machine, and snapshots, forks and imports pay this every time.
 */
export function treeSizeScript(dir: string): string {
  return `du -s -l --inodes ${dir} && du -sb ${dir}`;
}

/**
 * Shell lines that copy the tree at `from` into `to` (fixed paths; `cpOptions` fixed flags)
 * while `treeSizeScript` measures `from` and then the `meanwhile` lines run, and fail when the
 * copy fails (under `set -e`, which the caller's script sets). The copy and its source hold the
 * same entries, and execs that overlap the copy cost nothing on the way to its end.
 */
export function copyMeasuringScript(from: string, to: string, cpOptions: string, meanwhile: string[] = []): string {
  return [`cp ${cpOptions} ${from}/. ${to}/ & pyro_copy=$!`, treeSizeScript(from), ...meanwhile, "wait $pyro_copy"].join("\n");
}

/** Reads what `treeSizeScript` printed last in `out`: the entries below its directory and their bytes. */
export function parseTreeSize(out: string): { entries: number; bytes: number } {
  const [inodes, bytes] = out.trim().split("\n").slice(-2).map((line) => Number(line.split("\t")[0]));
  // du counts the directory itself among the inodes.
  return { entries: Number.isFinite(inodes) ? Math.max(0, inodes! - 1) : 0, bytes: Number.isFinite(bytes) ? bytes! : 0 };
}

/** Runs a command and throws with its stderr when it fails. */
export async function runUtilityChecked(binds: UtilityBind[], argv: string[], what: string, options: UtilityOptions = {}): Promise<string> {
  const r = await runUtility(binds, argv, options);
  if (r.code !== 0) {
    throw new PyroError("internal_error", `${what} failed: ${r.stderr.trim().split("\n").slice(-3).join(" ").slice(0, 500) || `exit ${r.code}`}`);
  }
  return r.stdout;
}

/**
 * Starts the agent in a utility sandbox speaking the protocol over its stdin/stdout, hands the
 * connected client to `fn`, and tears the sandbox down afterwards.
 */
export async function withUtilityAgent<T>(binds: UtilityBind[], fn: (client: AgentClient) => Promise<T>, options: UtilityOptions = {}): Promise<T> {
  const child = await spawnUtility(binds, [...agentRuntime().command, "--stdio"], "pipe", options.join, true);
  const stderr: Buffer[] = [];
  child.stderr!.on("data", (d: Buffer) => stderr.push(d));
  const exited = new Promise<void>((resolve) => child.on("close", () => resolve()));
  const duplex = Duplex.from({ readable: child.stdout!, writable: child.stdin! });
  try {
    const client = await AgentClient.overStream(duplex);
    try {
      return await fn(client);
    } finally {
      client.close();
    }
  } catch (err) {
    if (err instanceof PyroError && err.code === "agent_unreachable" && stderr.length > 0) {
      throw new PyroError("agent_unreachable", `${err.message}: ${Buffer.concat(stderr).toString("utf8").slice(-500)}`);
    }
    throw err;
  } finally {
    child.stdin!.end();
    const timer = setTimeout(() => child.kill("SIGKILL"), 2000);
    await exited;
    clearTimeout(timer);
  }
}
