/**
 * Services inside the sandbox: named long-running processes (dev servers, databases) that
 * outlive the request that started them. Each runs detached in its own process group with a
 * PYRO_SERVICE_ID marker in its environment, so its whole tree can be found and killed even
 * after children setsid; its output goes through the secret redactor into rotated log files
 * under /run/pyro-services/NAME/. `service_start` answers once the service is ready, has
 * exited, or missed its readiness deadline. State lives in this process only: a sandbox
 * restart starts with no services, which is what the host reports.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { AgentFailure } from "../failure.js";
import { argvOf, invalid, nonNegativeInteger, stringRecord } from "../handler.js";
import type { Handlers, Incoming } from "../handler.js";
import { killExecTree, markedPids } from "../exec.js";
import { spawnExpendable } from "../expendable.js";
import { currentRedactor, secretEnv } from "../secrets.js";
import { requireDirectory } from "../paths.js";
import { LogWriter, readLog, SERVICES_DIR } from "./log.js";
import { parseReadiness, probe } from "./readiness.js";
import type { Readiness, ServiceState, ServiceStatus } from "../../protocol/messages.js";

/** Environment variable carried by every process of a service; see stopTree. */
export const SERVICE_MARKER_VAR = "PYRO_SERVICE_ID";
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const DEFAULT_STOP_GRACE_MS = 5000;
const DEFAULT_LOG_TAIL_LINES = 50;
/** Lines of each stream a start result carries when the service did not become ready. */
const START_LOG_TAIL_LINES = 20;
const START_LOG_TAIL_MAX_BYTES = 16 * 1024;
/** After the process is gone, how long to wait for stragglers to release stdout/stderr. */
const STDIO_DRAIN_MS = 200;
/** How often a stop checks whether the tree has gone after SIGTERM. */
const STOP_POLL_MS = 25;

const LIVE_STATES: ReadonlySet<ServiceState> = new Set(["starting", "ready", "running"]);

interface Service {
  name: string;
  command: string[];
  shell: boolean;
  cwd: string;
  readiness: Readiness | null;
  env: Record<string, string>;
  marker: string;
  child: ChildProcess;
  state: ServiceState;
  startedAt: Date;
  readyAt: Date | null;
  endedAt: Date | null;
  exitCode: number | null;
  signal: string | null;
  reason: string | null;
  /** Set when the agent itself is ending the service (stop, missed readiness): what the exit means. */
  ending: { state: "stopped" | "failed"; reason: string } | null;
  stopping: Promise<void> | null;
  /** Resolves when the root process has exited (or could not start). */
  ended: Promise<void>;
  /** Resolves once the tree is gone and both logs are complete and closed. */
  finished: Promise<void>;
  /** Closes the logs and resolves `finished`; idempotent. */
  finish: () => void;
  logs: { stdout: LogWriter; stderr: LogWriter };
}

const services = new Map<string, Service>();

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const iso = (d: Date | null) => (d ? d.toISOString() : null);

function logFile(name: string, stream: "stdout" | "stderr"): string {
  return path.join(SERVICES_DIR, name, `${stream}.log`);
}

function statusOf(s: Service): ServiceStatus {
  const end = s.endedAt ?? (LIVE_STATES.has(s.state) ? new Date() : null);
  const status: ServiceStatus = {
    name: s.name,
    state: s.state,
    pid: s.child.pid ?? null,
    command: s.command,
    shell: s.shell,
    cwd: s.cwd,
    readiness: s.readiness,
    started_at: s.startedAt.toISOString(),
    ready_at: iso(s.readyAt),
    ended_at: iso(s.endedAt),
    uptime_ms: s.child.pid !== undefined && end ? end.getTime() - s.startedAt.getTime() : null,
    exit_code: s.exitCode,
    signal: s.signal,
    reason: s.reason,
  };
  // A command line or reason can carry a secret the caller typed literally.
  return currentRedactor().redactValue(status);
}

function lookup(name: unknown): Service {
  if (typeof name !== "string" || !NAME_RE.test(name)) throw invalid("service name must match [A-Za-z0-9][A-Za-z0-9._-]{0,62}");
  const service = services.get(name);
  if (!service) throw new AgentFailure("service_not_found", `no service named ${name}`);
  return service;
}

/** Sends a signal to the service's process group and to every process carrying its marker. */
function signalTree(s: Service, signal: NodeJS.Signals): void {
  if (rootAlive(s)) {
    try {
      process.kill(-s.child.pid!, signal);
    } catch {
      // group already gone
    }
  }
  for (const pid of markedPids(s.marker, SERVICE_MARKER_VAR)) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/**
 * True until node has reaped the root. Until then its pid cannot be reused, so signalling its
 * group reaches only this service's processes.
 */
function rootAlive(s: Service): boolean {
  return s.child.pid !== undefined && s.child.exitCode === null && s.child.signalCode === null;
}

function killTree(s: Service): void {
  killExecTree(rootAlive(s) ? s.child.pid : undefined, s.marker, SERVICE_MARKER_VAR);
}

/** SIGTERM to the tree, up to `graceMs` for it to go, then SIGKILL for whatever is left. */
async function stopTree(s: Service, graceMs: number): Promise<void> {
  signalTree(s, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && (rootAlive(s) || markedPids(s.marker, SERVICE_MARKER_VAR).length > 0)) {
    await sleep(Math.min(STOP_POLL_MS, Math.max(0, deadline - Date.now())));
  }
  killTree(s);
}

/** Ends a live service on the agent's own initiative and waits until it is fully gone. */
async function endService(s: Service, ending: NonNullable<Service["ending"]>, graceMs: number): Promise<void> {
  if (!LIVE_STATES.has(s.state)) return s.finished;
  if (!s.stopping) {
    s.ending = ending;
    s.stopping = (async () => {
      if (graceMs > 0) await stopTree(s, graceMs);
      else killTree(s);
      await s.ended;
      // The group kill above may have raced a process that just left it; sweep once more.
      killTree(s);
      drainAndFinish(s);
    })();
  }
  await s.stopping;
  await s.finished;
}

/**
 * Once the root has exited and the tree is swept: wait briefly for the pipes to close (a
 * process that escaped the sweep may hold them), then close the logs.
 */
function drainAndFinish(s: Service): void {
  const { stdout, stderr } = s.child;
  const closed = () => (!stdout || stdout.closed) && (!stderr || stderr.closed);
  if (closed()) return s.finish();
  const timer = setTimeout(() => {
    stdout?.destroy();
    stderr?.destroy();
    s.finish();
  }, STDIO_DRAIN_MS);
  const onClose = () => {
    if (!closed()) return;
    clearTimeout(timer);
    s.finish();
  };
  stdout?.once("close", onClose);
  stderr?.once("close", onClose);
}

interface StartRequest {
  name: string;
  command: string[];
  shell: boolean;
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  readiness: Readiness | null;
  readyTimeoutMs: number;
  readyIntervalMs: number;
}

function parseStart(h: Incoming<"service_start">): StartRequest {
  const name = h.name;
  if (typeof name !== "string" || !NAME_RE.test(name)) throw invalid("service name must match [A-Za-z0-9][A-Za-z0-9._-]{0,62}");
  const argv = argvOf(h.argv);
  const shell = typeof h.shell === "string" && h.shell.length > 0 ? h.shell : undefined;
  if ((argv === undefined) === (shell === undefined)) throw invalid("service_start needs exactly one of argv or shell");
  if (typeof h.cwd !== "string" || !h.cwd.startsWith("/")) throw invalid("service cwd must be an absolute path");
  const env = stringRecord(h.env ?? {}, "service env must map names to strings");
  const readiness = parseReadiness(h.readiness);
  const positive = (v: unknown, what: string): number => {
    if (v === undefined && readiness === null) return 1;
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) throw invalid(`${what} must be a positive number`);
    return v;
  };
  return {
    name,
    command: argv ?? [shell!],
    shell: shell !== undefined,
    argv: argv ?? ["/bin/sh", "-c", shell!],
    cwd: h.cwd,
    env,
    readiness,
    readyTimeoutMs: positive(h.readyTimeoutMs, "readyTimeoutMs"),
    readyIntervalMs: positive(h.readyIntervalMs, "readyIntervalMs"),
  };
}

/** Spawns the service and wires its lifecycle; returns with the service registered under its name. */
function launch(req: StartRequest, env: Record<string, string>): Service {
  const dir = path.join(SERVICES_DIR, req.name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const redactor = currentRedactor();
  const logs = { stdout: new LogWriter(logFile(req.name, "stdout"), redactor), stderr: new LogWriter(logFile(req.name, "stderr"), redactor) };
  const marker = randomBytes(8).toString("hex");
  const fullEnv = { ...env, [SERVICE_MARKER_VAR]: marker };
  const startedAt = new Date();
  let child: ChildProcess;
  try {
    // Like a command, a service is the OOM killer's choice before the agent.
    child = spawnExpendable(() => spawn(req.argv[0]!, req.argv.slice(1), { cwd: req.cwd, env: fullEnv, stdio: ["ignore", "pipe", "pipe"], detached: true }));
  } catch (err) {
    // node refuses some arguments outright (a NUL byte in argv or env) before any process exists.
    logs.stdout.close();
    logs.stderr.close();
    throw invalid(`cannot start service: ${(err as Error).message}`);
  }

  let markEnded!: () => void;
  let markFinished!: () => void;
  let finished = false;
  const s: Service = {
    name: req.name,
    command: req.command,
    shell: req.shell,
    cwd: req.cwd,
    readiness: req.readiness,
    env: fullEnv,
    marker,
    child,
    state: req.readiness ? "starting" : "running",
    startedAt,
    readyAt: null,
    endedAt: null,
    exitCode: null,
    signal: null,
    reason: null,
    ending: null,
    stopping: null,
    ended: new Promise<void>((r) => (markEnded = r)),
    finished: new Promise<void>((r) => (markFinished = r)),
    finish: () => {
      if (finished) return;
      finished = true;
      logs.stdout.close();
      logs.stderr.close();
      markFinished();
    },
    logs,
  };
  services.set(req.name, s);

  child.stdout!.on("data", (d: Buffer) => logs.stdout.write(d));
  child.stderr!.on("data", (d: Buffer) => logs.stderr.write(d));
  child.on("error", (err: NodeJS.ErrnoException) => {
    // Only a failed spawn reaches here (signals go through process.kill, not child.kill).
    if (child.pid !== undefined || s.endedAt) return;
    // The command name may be a secret's value: the reason is kept (and shown) redacted.
    const what = currentRedactor().redact(err.code === "ENOENT" ? `command not found: ${req.argv[0]}` : `cannot start ${req.argv[0]}: ${err.message}`);
    logs.stderr.write(Buffer.from(`pyro: ${what}\n`));
    s.state = "failed";
    s.reason = what;
    s.endedAt = new Date();
    markEnded();
    drainAndFinish(s);
  });
  child.on("exit", (code, signal) => {
    if (child.pid === undefined) return;
    s.endedAt = new Date();
    s.exitCode = code;
    s.signal = signal;
    const how = code !== null ? `exited with code ${code}` : `killed by ${signal}`;
    if (s.ending) {
      s.state = s.ending.state;
      s.reason = s.ending.reason;
    } else {
      s.reason = s.state === "starting" ? `${how} before becoming ready` : how;
      s.state = "exited";
      // The service is its root process: when that ends on its own, whatever it left behind
      // goes too, so "exited" means nothing of it still runs (and a restart finds its port free).
      killTree(s);
      drainAndFinish(s);
    }
    markEnded();
  });
  return s;
}

/** Polls readiness until ready, ended, or the deadline; ends the service at the deadline. */
async function awaitReady(s: Service, req: StartRequest): Promise<void> {
  const readiness = req.readiness!;
  const deadline = Date.now() + req.readyTimeoutMs;
  const ctx = { cwd: req.cwd, env: s.env, intervalMs: req.readyIntervalMs };
  const untilEnded = s.ended.then(() => false);
  while (s.state === "starting") {
    const attemptStart = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const missed = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), Math.max(0, deadline - attemptStart))));
    const ok = await Promise.race([probe(readiness, ctx), untilEnded, missed]);
    clearTimeout(timer);
    if (s.state !== "starting") return;
    if (ok) {
      s.state = "ready";
      s.readyAt = new Date();
      return;
    }
    if (Date.now() >= deadline) break;
    const wait = Math.min(attemptStart + req.readyIntervalMs, deadline) - Date.now();
    if (wait > 0) {
      let t: NodeJS.Timeout | undefined;
      await Promise.race([untilEnded, new Promise((r) => (t = setTimeout(r, wait)))]);
      clearTimeout(t);
    }
  }
  if (s.state === "starting") {
    const seconds = Math.round(req.readyTimeoutMs / 100) / 10;
    await endService(s, { state: "failed", reason: `not ready within ${seconds} s` }, 0);
  }
}

function logTail(name: string): { stdout: string; stderr: string } {
  const read = (stream: "stdout" | "stderr") => readLog(logFile(name, stream), START_LOG_TAIL_LINES, currentRedactor(), START_LOG_TAIL_MAX_BYTES).text;
  return { stdout: read("stdout"), stderr: read("stderr") };
}

type ServiceRequest = "service_start" | "service_status" | "service_list" | "service_logs" | "service_stop";

export const serviceHandlers: Handlers<ServiceRequest> = {
  service_start: async (h) => {
    const req = parseStart(h);
    // Resolve secrets before anything is spawned: an unknown secret fails the call cleanly.
    const env = { ...req.env, ...secretEnv(h.secretEnv) };
    requireDirectory(req.cwd);
    for (;;) {
      const existing = services.get(req.name);
      if (!existing) break;
      if (LIVE_STATES.has(existing.state)) throw new AgentFailure("service_exists", `service ${req.name} is already ${existing.state}`);
      // An ended service is replaced, once its logs are closed (the new one reuses the paths).
      await existing.finished;
      if (services.get(req.name) === existing) {
        services.delete(req.name);
        break;
      }
    }
    // No await from here on: the name is taken before another start can look at it.
    const s = launch(req, env);
    // Whether the command could be started at all is only known an event later.
    await new Promise<void>((resolve) => {
      s.child.once("spawn", resolve);
      s.child.once("error", () => resolve());
    });
    if (req.readiness) await awaitReady(s, req);
    if (LIVE_STATES.has(s.state)) return { result: statusOf(s) };
    await s.finished;
    return { result: { ...statusOf(s), log_tail: logTail(s.name) } };
  },

  service_status: (h) => ({ result: statusOf(lookup(h.name)) }),

  service_list: () => {
    const all = [...services.values()].map(statusOf);
    return { result: { services: all, count: all.length, running_count: all.filter((s) => LIVE_STATES.has(s.state)).length } };
  },

  service_logs: (h) => {
    const s = lookup(h.name);
    const all = h.all === true;
    if (h.all !== undefined && h.all !== null && typeof h.all !== "boolean") throw invalid("all must be a boolean");
    if (all && h.tail_lines !== undefined && h.tail_lines !== null) throw invalid("use either tail_lines or all, not both");
    const tailLines = all ? null : h.tail_lines === undefined || h.tail_lines === null ? DEFAULT_LOG_TAIL_LINES : nonNegativeInteger(h.tail_lines, "tail_lines");
    const stdout = readLog(logFile(s.name, "stdout"), tailLines, currentRedactor());
    const stderr = readLog(logFile(s.name, "stderr"), tailLines, currentRedactor());
    return {
      result: {
        name: s.name,
        stdout: stdout.text,
        stderr: stderr.text,
        tail_lines: tailLines,
        stdout_bytes: stdout.bytes,
        stderr_bytes: stderr.bytes,
        truncated: stdout.truncated || stderr.truncated,
      },
    };
  },

  service_stop: async (h) => {
    const s = lookup(h.name);
    const grace = h.grace_ms === undefined || h.grace_ms === null ? DEFAULT_STOP_GRACE_MS : h.grace_ms;
    if (typeof grace !== "number" || !Number.isFinite(grace) || grace < 0) throw invalid("grace_ms must be a non-negative number");
    await endService(s, { state: "stopped", reason: "stopped on request" }, grace);
    return { result: statusOf(s) };
  },
};
