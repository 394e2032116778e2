/**
 * Runs the external build tools (debootstrap, apt in bwrap, tar in bwrap, cp) with argument
 * arrays, keeping only the tail of their output for error reports. Never builds a shell string
 * out of a path, and never lets a build outlive the Node process that started it.
 */
import { spawn } from "node:child_process";
import type { Readable } from "node:stream";
import { PyroError } from "../shared/errors.js";
import { systemPath } from "../shared/executables.js";
import { ConfinedLaunch } from "../runtime/confine/launch.js";
import { feedSeccompProgram } from "../runtime/confine/seccomp.js";

/** bubblewrap's arguments that load pyro's seccomp filter in a confined build step. */
export const BUILD_SECCOMP = ["--seccomp", "3"];

/** Lines of output kept for `environment_build_failed` details. */
export const OUTPUT_TAIL_LINES = 20;
const LINE_MAX_CHARS = 500;

export interface CommandResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** Last lines of stdout and stderr interleaved as they arrived (apt reports on both). */
  tail: string[];
}

export interface RunOptions {
  signal?: AbortSignal;
  /** The `hint` of the `environment_build_failed` error when the step fails. */
  failureHint?: string;
  /** Piped to the child's stdin (e.g. an archive stream); stdin is /dev/null otherwise. */
  stdin?: Readable;
  /** Descriptors handed to the child from fd 3 up (from fd 4 up with `seccomp`). */
  fds?: number[];
  /** A pipe on fd 3 carrying pyro's seccomp program, for a `bwrap --seccomp 3` in the command. */
  seccomp?: boolean;
  /** Whether a non-zero exit still counts as success (e.g. tar's warnings); default: never. */
  acceptFailure?: (result: CommandResult) => boolean;
}

/**
 * Runs a build step confined to the sandbox identity (runtime/confine): `make` gets the launch
 * to stage the host paths it needs and returns the command. The command dies with us and takes
 * its whole process tree along: `setpriv --pdeathsig KILL` kills the launcher when Node dies
 * (even by SIGKILL), and `unshare --pid --fork --kill-child` makes the command PID 1 of a fresh
 * PID namespace that the kernel tears down completely when it dies. Every mount the build makes
 * (debootstrap's /proc, an overlay) stays in the launch's own mount namespace. What the build
 * writes belongs to the sandbox identity's ids, as a workspace's sandbox will see them.
 */
export async function runConfinedBuildStep(
  environment: string,
  step: string,
  make: (launch: ConfinedLaunch) => string[],
  options: RunOptions = {},
): Promise<CommandResult> {
  // fd 3 carries the seccomp program for the builds that run in bubblewrap (`BUILD_SECCOMP`).
  const launch = await ConfinedLaunch.open(4);
  try {
    const { argv, fds } = launch.argv(["unshare", "--mount", "--pid", "--fork", "--kill-child=SIGKILL", "--mount-proc", ...make(launch)]);
    return await runBuildStep(environment, step, ["setpriv", "--pdeathsig", "KILL", ...argv], { ...options, fds, seccomp: true });
  } finally {
    launch.release();
  }
}

export function runCommand(argv: string[], options: RunOptions = {}): Promise<CommandResult> {
  const [command, ...args] = argv;
  if (!command) throw new Error("runCommand needs a command");
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) {
      reject(cancelled());
      return;
    }
    const tail: string[] = [];
    let partial = "";
    const collect = (chunk: Buffer) => {
      const lines = (partial + chunk.toString("utf8")).split(/\r?\n|\r/);
      partial = lines.pop() ?? "";
      for (const line of lines) pushLine(tail, line);
      if (partial.length > LINE_MAX_CHARS) {
        pushLine(tail, partial);
        partial = "";
      }
    };
    const child = spawn(command, args, {
      stdio: [options.stdin ? "pipe" : "ignore", "pipe", "pipe", ...(options.seccomp ? ["pipe" as const] : []), ...(options.fds ?? [])],
      env: { ...process.env, PATH: systemPath(), LC_ALL: "C.UTF-8", LANG: "C.UTF-8" },
    });
    if (options.seccomp) feedSeccompProgram(child, 3);
    child.stdout?.on("data", collect);
    child.stderr?.on("data", collect);
    if (options.stdin && child.stdin) {
      // A child that exits early (e.g. tar rejecting input) closes the pipe; that is reported
      // through its exit status, not as an unhandled EPIPE.
      child.stdin.on("error", () => undefined);
      options.stdin.on("error", (err) => {
        pushLine(tail, `input error: ${err.message}`);
        child.kill("SIGKILL");
      });
      options.stdin.pipe(child.stdin);
    }
    const onAbort = () => child.kill("SIGKILL");
    options.signal?.addEventListener("abort", onAbort, { once: true });
    child.on("error", (err: NodeJS.ErrnoException) => {
      options.signal?.removeEventListener("abort", onAbort);
      if (err.code === "ENOENT") {
        reject(
          new PyroError("host_unsupported", `${command} is not installed on this host.`, {
            hint: "Install debootstrap, bubblewrap and util-linux (apt-get install debootstrap bubblewrap util-linux).",
            cause: err,
          }),
        );
      } else {
        reject(err);
      }
    });
    child.on("close", (exitCode, signal) => {
      options.signal?.removeEventListener("abort", onAbort);
      if (partial) pushLine(tail, partial);
      if (options.signal?.aborted) reject(cancelled());
      else resolve({ exitCode, signal, tail });
    });
  });
}

function pushLine(tail: string[], line: string): void {
  if (!line.trim()) return;
  tail.push(line.length > LINE_MAX_CHARS ? `${line.slice(0, LINE_MAX_CHARS)}…` : line);
  if (tail.length > OUTPUT_TAIL_LINES) tail.shift();
}

function cancelled(): PyroError {
  return new PyroError("environment_build_failed", "The environment build was cancelled.", { details: { cancelled: true } });
}

/** Runs a build step and turns a non-zero exit into `environment_build_failed` with the output tail. */
export async function runBuildStep(
  environment: string,
  step: string,
  argv: string[],
  options: RunOptions = {},
): Promise<CommandResult> {
  const result = await runCommand(argv, options);
  if (result.exitCode !== 0 && !options.acceptFailure?.(result)) {
    const how = result.signal ? `was killed by ${result.signal}` : `exited with status ${result.exitCode}`;
    throw new PyroError("environment_build_failed", `Building ${environment} failed: ${step} ${how}.`, {
      hint: options.failureHint ?? "Check that the Debian mirror is reachable (or set PYRO_DEBIAN_MIRROR), then run the pull again.",
      details: { environment, step, exitCode: result.exitCode, signal: result.signal, output: result.tail },
    });
  }
  return result;
}
