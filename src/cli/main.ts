/**
 * The `pyro` command line: parses arguments with commander, calls the SDK, renders results.
 * Human-readable by default, `--json` everywhere (errors included, with their stable code).
 * Heavy modules (the MCP server) load only for the commands that use them, to keep every
 * other call fast. No behaviour lives here that the SDK does not also offer.
 */
import fs from "node:fs/promises";
import os from "node:os";
import { Command, CommanderError, Option } from "commander";
import { Pyro } from "../sdk/pyro.js";
import type { PyroOptions } from "../sdk/pyro.js";
import { PyroError, asPyroError } from "../shared/errors.js";
import { hostPath } from "../shared/host-path.js";
import { parseKeyValues } from "../core/validate.js";
import { MAX_STDIN_BYTES } from "../core/exec.js";
import { abortRuns, execWorkspaceRaw, runInVmRaw } from "../sdk/internal.js";
import { parseSecretEnvFlags } from "../core/secrets.js";
import type { RawExecResult } from "../core/types.js";
import type { BackendRequest } from "../runtime/backend.js";
import * as render from "./render.js";

const VERSION = "0.1.0";

interface GlobalState {
  json: boolean;
}
// Only pyro's own arguments count: `pyro run debian:12 -- echo --json` is the command's flag.
const ownArgs = process.argv.indexOf("--") === -1 ? process.argv : process.argv.slice(0, process.argv.indexOf("--"));
const state: GlobalState = { json: ownArgs.includes("--json") };

let pyroInstance: Pyro | undefined;
function pyro(options: PyroOptions = {}): Pyro {
  pyroInstance ??= new Pyro(options);
  return pyroInstance;
}

function out(text: string): void {
  process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
}

function printJson(value: unknown): void {
  out(JSON.stringify(value, null, 2));
}

/** Set while `pyro run` tears down after SIGINT/SIGTERM: that path decides the exit code. */
let aborting = false;

function fail(err: unknown, exitCode = 1): never | void {
  // The in-flight command fails when its sandbox is torn down; that is not the error to report.
  if (aborting) return;
  const e = asPyroError(err);
  if (state.json) printJson({ error: e.toJSON() });
  else process.stderr.write(render.error(e));
  pyroInstance?.close();
  process.exit(exitCode);
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function number(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === "" || !Number.isFinite(n)) throw new PyroError("invalid_argument", `${flag} expects a number, got ${JSON.stringify(value)}`);
    return n;
  };
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    size += (chunk as Buffer).length;
    if (size > MAX_STDIN_BYTES) throw new PyroError("invalid_argument", `stdin is larger than ${MAX_STDIN_BYTES} bytes`, { hint: "Put large inputs in a file in the workspace instead." });
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** `NAME=VALUE` pairs for secrets; the value may contain '='. Never echoes a value in errors. */
function parseSecretPairs(items: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf("=");
    if (eq <= 0) throw new PyroError("invalid_secret", "expected NAME=VALUE (or NAME=PATH for --secret-file)");
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

/** `--secret-file NAME=PATH` pairs, each PATH checked like every host path. */
function parseSecretFiles(items: string[]): Record<string, string> {
  const pairs = parseSecretPairs(items);
  return Object.fromEntries(Object.entries(pairs).map(([name, file]) => [name, hostPath(file, `--secret-file ${name}`)]));
}

/** Text from exactly one of an inline flag or a host file (UTF-8). */
async function textInput(inline: string | undefined, file: string | undefined, inlineFlag: string, fileFlag: string): Promise<string> {
  if ((inline === undefined) === (file === undefined)) throw new PyroError("invalid_argument", `give exactly one of ${inlineFlag} or ${fileFlag}`);
  if (inline !== undefined) return inline;
  const abs = hostPath(file, fileFlag);
  try {
    return await fs.readFile(abs, "utf8");
  } catch (err) {
    throw new PyroError("invalid_argument", `cannot read ${file}: ${(err as Error).message}`);
  }
}

/** Action wrapper: runs the handler, turns any error into the one error rendering. */
function action<A extends unknown[]>(fn: (...args: A) => Promise<void>) {
  return async (...args: A) => {
    try {
      await fn(...args);
      pyroInstance?.close();
    } catch (err) {
      fail(err);
    }
  };
}

/** Exit code for an exec: the command's own, 128+signal, or 124 on timeout (as timeout(1)). */
function execExitCode(raw: RawExecResult): number {
  const r = raw.result;
  if (r.timed_out) return 124;
  if (r.exit_code !== null) return r.exit_code;
  return 128 + ((os.constants.signals as Record<string, number>)[r.signal ?? ""] ?? 0);
}

function writeExec(raw: RawExecResult): void {
  if (state.json) {
    printJson(raw.result);
    return;
  }
  process.stdout.write(raw.stdoutBytes.subarray(0, raw.result.stdout_info.head_bytes));
  if (raw.result.stdout_info.omitted_bytes > 0) process.stdout.write(`\n[... ${raw.result.stdout_info.omitted_bytes} bytes of stdout omitted; raise --max-output-bytes to see more ...]\n`);
  process.stdout.write(raw.stdoutBytes.subarray(raw.result.stdout_info.head_bytes));
  process.stderr.write(raw.stderrBytes.subarray(0, raw.result.stderr_info.head_bytes));
  if (raw.result.stderr_info.omitted_bytes > 0) process.stderr.write(`\n[... ${raw.result.stderr_info.omitted_bytes} bytes of stderr omitted ...]\n`);
  process.stderr.write(raw.stderrBytes.subarray(raw.result.stderr_info.head_bytes));
  const note = render.execNote(raw.result);
  if (note) process.stderr.write(note);
  process.stderr.write(render.networkNotices(raw.result.network_notices));
}

function execInput(commandArgs: string[], opts: { shell?: string; env?: string[]; timeoutSeconds?: number; cwd?: string; maxOutputBytes?: number; secretEnv?: string[] }, stdin: Buffer | undefined) {
  if (opts.shell !== undefined && commandArgs.length > 0) throw new PyroError("invalid_argument", "give either --shell STRING or `-- COMMAND ARGS…`, not both");
  if (opts.shell === undefined && commandArgs.length === 0) {
    throw new PyroError("invalid_argument", "no command given", { hint: "Put the command after `--`, e.g. `-- make test`, or use --shell 'make test | tail'." });
  }
  return {
    command: opts.shell ?? commandArgs,
    ...(opts.timeoutSeconds !== undefined ? { timeoutSeconds: opts.timeoutSeconds } : {}),
    ...(opts.env ? { env: parseKeyValues(opts.env, "env") } : {}),
    ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
    ...(opts.maxOutputBytes !== undefined ? { maxOutputBytes: opts.maxOutputBytes } : {}),
    ...(stdin !== undefined ? { stdin } : {}),
    ...(opts.secretEnv ? { secretEnv: parseSecretEnvFlags(opts.secretEnv) } : {}),
  };
}

/** The network flags of `run` and `workspace create`, as SDK options. */
function networkInput(opts: { networkPolicy?: string; allowHost?: string[]; allowCidr?: string[]; allowHostLoopback?: boolean }) {
  return {
    ...(opts.networkPolicy !== undefined ? { networkPolicy: opts.networkPolicy } : {}),
    ...(opts.allowHost ? { allowHosts: opts.allowHost } : {}),
    ...(opts.allowCidr ? { allowCidrs: opts.allowCidr } : {}),
    ...(opts.allowHostLoopback ? { allowHostLoopback: true } : {}),
  };
}

/** `--backend` of `run` and `workspace create`, as the SDK option; the SDK checks the value, so every surface refuses the same things. */
function backendInput(opts: { backend?: string }) {
  return opts.backend !== undefined ? { backend: opts.backend as BackendRequest } : {};
}

/** Adds `--backend`, shared by `run` and `workspace create`. */
function backendOption(command: Command): Command {
  return command.option(
    "--backend <backend>",
    "where the workspace lives: namespace (bubblewrap namespaces, the host's kernel), vm (a QEMU microVM with its own kernel) or auto (vm when guests boot with KVM here, else namespace); default $PYRO_BACKEND, else namespace",
  );
}

/** Adds the network flags shared by `run` and `workspace create`. */
function networkOptions(command: Command): Command {
  return command
    .option("--network-policy <policy>", "off (default: no network), egress (outbound TCP/UDP/DNS), or egress+published-ports (also lets services publish ports)")
    .option("--allow-host <name>", "allow-list a host name, or *.suffix for every name below it (repeatable; once any allow entry is given, everything else is denied)", collect)
    .option("--allow-cidr <cidr>", "allow-list an IPv4 address or CIDR (repeatable)", collect)
    .option("--allow-host-loopback", "let the workspace reach the host's own loopback (at 10.0.2.2) and addresses");
}

function buildProgram(): Command {
  const program = new Command("pyro")
    .description("Disposable, isolated Linux workspaces for chat-driven coding agents: one-shot runs, persistent workspaces, and an MCP server.")
    .version(VERSION, "--version")
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({ writeErr: () => undefined, outputError: () => undefined });

  const json = () => new Option("--json", "print structured JSON instead of human-readable text");

  program
    .command("doctor")
    .description("Check this host: bubblewrap, namespaces, overlayfs, cgroups, state directory, the optional VM backend (QEMU, KVM); show the backend and limits that will be used")
    .option("--environment <env>", "also say whether the daily loop for this environment is warm, cold or stale")
    .addOption(json())
    .action(
      action(async (opts: { environment?: string }) => {
        const report = await pyro().doctor(opts.environment !== undefined ? { environment: opts.environment } : {});
        if (state.json) printJson(report);
        else out(render.doctor(report));
        if (!report.ok) process.exitCode = 1;
      }),
    );

  program
    .command("prepare")
    .description("Warm the daily loop: build the environment if needed and prove create → exec → reset → exec → delete once")
    .argument("[environment]", "environment name (default debian:12)")
    .option("--force", "prove the cycle again even when warm")
    .addOption(json())
    .action(
      action(async (environment: string | undefined, opts: { force?: boolean }) => {
        const r = await pyro().prepare(environment ?? "debian:12", { force: opts.force === true, onProgress: (line) => (state.json ? undefined : process.stderr.write(`${line}\n`)) });
        if (state.json) printJson(r);
        else out(`${r.environment}: ${r.state} — ${r.reason}\nCycle (ms): ${Object.entries(r.cycle_ms).map(([k, v]) => `${k} ${v}`).join(", ")}`);
      }),
    );

  const serveFlags = (c: Command) =>
    c
      .option("--profile <profile>", "tool set: vm-run, workspace-core (default) or workspace-full")
      .option("--mode <mode>", "use-case tool set: repro-fix, inspect, cold-start or review-eval")
      .option("--project-path <dir>", "seed new workspaces from this project")
      .option("--repo-url <url>", "seed new workspaces from a clean clone of this repository")
      .option("--repo-ref <ref>", "with --repo-url: branch or tag")
      .option("--no-project-source", "start workspaces empty unless seed_path is given");
  type ServeFlags = { profile?: string; mode?: string; projectPath?: string; repoUrl?: string; repoRef?: string; projectSource: boolean };
  const serveOptions = (o: ServeFlags) => ({
    ...(o.profile !== undefined ? { profile: o.profile } : {}),
    ...(o.mode !== undefined ? { mode: o.mode } : {}),
    ...(o.projectPath !== undefined ? { projectPath: hostPath(o.projectPath, "--project-path") } : {}),
    ...(o.repoUrl !== undefined ? { repoUrl: o.repoUrl } : {}),
    ...(o.repoRef !== undefined ? { repoRef: o.repoRef } : {}),
    ...(o.projectSource === false ? { noProjectSource: true } : {}),
  });
  const host = program.command("host").description("Connect chat hosts (Claude Code, Codex, OpenCode, …) to `pyro mcp serve`");
  serveFlags(host.command("connect").description("Register pyro with claude-code or codex using the host's own `mcp add` (printed when the host CLI is missing)").argument("<host>", "claude-code or codex"))
    .addOption(json())
    .action(
      action(async (name: string, opts: ServeFlags) => {
        const { connectHost } = await import("./hosts.js");
        const r = connectHost(name, serveOptions(opts));
        if (state.json) printJson(r);
        else out(r.ran ? `Connected ${r.host}: ${r.command}${r.output ? `\n${r.output}` : ""}` : r.output);
      }),
    );
  serveFlags(host.command("print-config").description("Print the MCP config for opencode, claude-desktop or cursor").argument("<host>", "opencode, claude-desktop or cursor"))
    .addOption(json())
    .action(
      action(async (name: string, opts: ServeFlags) => {
        const { hostConfig } = await import("./hosts.js");
        const r = hostConfig(name, serveOptions(opts));
        if (state.json) printJson(r);
        else out(`# ${r.file_hint}\n${JSON.stringify(r.config, null, 2)}`);
      }),
    );
  serveFlags(host.command("doctor").description("Check each chat host: installed, pyro registered, with the canonical command"))
    .addOption(json())
    .action(
      action(async (opts: ServeFlags) => {
        const { doctorHosts } = await import("./hosts.js");
        const entries = doctorHosts(serveOptions(opts));
        if (state.json) printJson({ hosts: entries });
        else out(entries.map((e) => `${e.host.padEnd(12)} ${e.installed ? (e.registered ? (e.drifted ? "DRIFTED" : "OK") : "NOT REGISTERED") : "not installed"}  ${e.detail}${e.fix ? `  → ${e.fix}` : ""}`).join("\n"));
      }),
    );
  serveFlags(host.command("repair").description("Replace a host's pyro registration with the canonical one").argument("<host>", "claude-code or codex"))
    .addOption(json())
    .action(
      action(async (name: string, opts: ServeFlags) => {
        const { repairHost } = await import("./hosts.js");
        const r = repairHost(name, serveOptions(opts));
        if (state.json) printJson(r);
        else out(r.ran ? `Repaired ${r.host}: ${r.command}` : r.output);
      }),
    );

  program
    .command("demo")
    .description("Pull debian:12, seed a small sample repo into a workspace, run its tests, show the result, delete the workspace")
    .addOption(json())
    .action(
      action(async () => {
        const { runDemo } = await import("./demo.js");
        await runDemo(pyro(), state.json);
      }),
    );

  const env = program.command("env").description("Environments: Debian root filesystems built locally from Debian packages");
  env
    .command("list")
    .description("List environments, installed or not, with their size")
    .addOption(json())
    .action(
      action(async () => {
        const list = await pyro().listEnvironments();
        if (state.json) printJson({ count: list.length, environments: list });
        else out(render.environments(list));
      }),
    );
  env
    .command("pull")
    .description("Build an environment from Debian packages (debootstrap) and cache it; fast when already cached")
    .argument("<environment>", "environment name, e.g. debian:12")
    .option("--mirror <url>", "Debian mirror (default: PYRO_DEBIAN_MIRROR, else the host's apt sources)")
    .option("--force", "rebuild even if cached")
    .addOption(json())
    .action(
      action(async (name: string, opts: { mirror?: string; force?: boolean }) => {
        const manifest = await pyro().pullEnvironment(name, {
          ...(opts.mirror ? { mirror: opts.mirror } : {}),
          ...(opts.force ? { force: true } : {}),
          onProgress: (e) => {
            if (!state.json) process.stderr.write(`[pull] phase=${e.phase} environment=${e.environment} ${e.message}\n`);
          },
        });
        if (state.json) printJson(manifest);
        else out(render.manifest(manifest));
      }),
    );
  env
    .command("inspect")
    .description("Show an environment's manifest: packages, size, created, digest")
    .argument("<environment>")
    .addOption(json())
    .action(
      action(async (name: string) => {
        const manifest = await pyro().inspectEnvironment(name);
        if (state.json) printJson(manifest);
        else out(render.manifest(manifest, true));
      }),
    );
  env
    .command("prune")
    .description("Remove cached environments that no workspace uses")
    .addOption(json())
    .action(
      action(async () => {
        const result = await pyro().pruneEnvironments();
        if (state.json) printJson(result);
        else out(result.removed.length ? `Removed: ${result.removed.join(", ")} (${render.bytes(result.freed_bytes)} freed)` : "Nothing to prune.");
      }),
    );
  env
    .command("import")
    .description("Import a root filesystem from a directory or .tar/.tar.gz/.tgz as an environment (for hosts without a Debian mirror)")
    .argument("<environment>", "name to import as")
    .argument("<path>", "directory or archive")
    .addOption(json())
    .action(
      action(async (name: string, source: string) => {
        const manifest = await pyro().importEnvironment(name, hostPath(source, "PATH"));
        if (state.json) printJson(manifest);
        else out(render.manifest(manifest));
      }),
    );

  const runCommand = program
    .command("run")
    .description("One-shot: create a workspace, run one command, delete the workspace; exits with the command's exit code")
    .argument("<environment>", "environment name, e.g. debian:12")
    .argument("[command...]", "command and arguments after `--`")
    .option("--vcpu-count <n>", "CPU limit in vCPUs (default 1)", number("--vcpu-count"))
    .option("--mem-mib <n>", "memory limit in MiB (default 1024)", number("--mem-mib"))
    .option("--timeout-seconds <n>", "kill the command after this many seconds (default 30)", number("--timeout-seconds"))
    .option("--ttl-seconds <n>", "upper bound on the workspace's life", number("--ttl-seconds"))
    .option("--env <KEY=VALUE>", "environment variable for the command (repeatable)", collect)
    .option("--shell <string>", "run this string with /bin/sh -c instead of an argv after `--`")
    .option("--stdin", "forward this process's stdin to the command")
    .option("--max-output-bytes <n>", "cap per output stream, head and tail kept (default 65536)", number("--max-output-bytes"));
  networkOptions(backendOption(runCommand))
    .addOption(json())
    .action(
      action(async (environment: string, commandArgs: string[], opts: { vcpuCount?: number; memMib?: number; ttlSeconds?: number; stdin?: boolean; shell?: string; env?: string[]; timeoutSeconds?: number; maxOutputBytes?: number; backend?: string; networkPolicy?: string; allowHost?: string[]; allowCidr?: string[]; allowHostLoopback?: boolean }) => {
        const p = pyro();
        const onSignal = (signal: NodeJS.Signals) => {
          // Whatever was started is torn down before we go: no sandbox, mount or directory
          // stays. A second Ctrl-C during the clean-up must not cut it short.
          if (aborting) return;
          aborting = true;
          void abortRuns(p).finally(() => process.exit(signal === "SIGINT" ? 130 : 143));
        };
        process.on("SIGINT", onSignal);
        process.on("SIGTERM", onSignal);
        const stdin = opts.stdin ? await readStdin() : undefined;
        const raw = await runInVmRaw(p, {
          environment,
          ...execInput(commandArgs, opts, stdin),
          ...(opts.vcpuCount !== undefined ? { vcpuCount: opts.vcpuCount } : {}),
          ...(opts.memMib !== undefined ? { memMib: opts.memMib } : {}),
          ...(opts.ttlSeconds !== undefined ? { ttlSeconds: opts.ttlSeconds } : {}),
          ...backendInput(opts),
          ...networkInput(opts),
        });
        if (state.json) printJson({ ...raw.result, environment, cleaned_up: true });
        else writeExec(raw);
        process.exitCode = execExitCode(raw);
      }),
    );

  const ws = program.command("workspace").description("Persistent workspaces: a sandbox with a /workspace that outlives each call");
  const createCommand = ws
    .command("create")
    .description("Create and start a workspace, optionally seeded from a host directory or archive")
    .argument("<environment>", "environment name, e.g. debian:12")
    .option("--name <name>", "unique name to find the workspace by")
    .option("--label <KEY=VALUE>", "label (repeatable)", collect)
    .option("--seed-path <path>", "directory, .tar, .tar.gz or .tgz copied into /workspace")
    .option("--vcpu-count <n>", "CPU limit in vCPUs (default 1)", number("--vcpu-count"))
    .option("--mem-mib <n>", "memory limit in MiB (default 1024)", number("--mem-mib"))
    .option("--ttl-seconds <n>", "delete the workspace after this many seconds (reaped, never while in use)", number("--ttl-seconds"))
    .option("--secret <NAME=VALUE>", "a secret (repeatable); prefer --secret-file, command lines are visible to other users", collect)
    .option("--secret-file <NAME=PATH>", "a secret read from a host file (repeatable)", collect);
  networkOptions(backendOption(createCommand))
    .addOption(json())
    .option("--id-only", "print only the workspace id")
    .action(
      action(async (environment: string, opts: { name?: string; label?: string[]; seedPath?: string; vcpuCount?: number; memMib?: number; ttlSeconds?: number; idOnly?: boolean; secret?: string[]; secretFile?: string[]; backend?: string; networkPolicy?: string; allowHost?: string[]; allowCidr?: string[]; allowHostLoopback?: boolean }) => {
        const info = await pyro().createWorkspace({
          environment,
          ...(opts.name !== undefined ? { name: opts.name } : {}),
          ...(opts.label ? { labels: parseKeyValues(opts.label, "label") } : {}),
          ...(opts.seedPath !== undefined ? { seedPath: hostPath(opts.seedPath, "--seed-path") } : {}),
          ...(opts.vcpuCount !== undefined ? { vcpuCount: opts.vcpuCount } : {}),
          ...(opts.memMib !== undefined ? { memMib: opts.memMib } : {}),
          ...(opts.ttlSeconds !== undefined ? { ttlSeconds: opts.ttlSeconds } : {}),
          ...(opts.secret ? { secrets: parseSecretPairs(opts.secret) } : {}),
          ...(opts.secretFile ? { secretFiles: parseSecretFiles(opts.secretFile) } : {}),
          ...backendInput(opts),
          ...networkInput(opts),
        });
        if (opts.idOnly) out(info.workspace_id);
        else if (state.json) printJson(info);
        else out(render.workspace(info));
      }),
    );
  ws.command("list")
    .description("List workspaces, most recent activity first")
    .addOption(json())
    .action(
      action(async () => {
        const result = await pyro().listWorkspaces();
        if (state.json) printJson(result);
        else out(render.workspaceList(result));
      }),
    );
  ws.command("status")
    .description("Show one workspace: state, backend, limits, seed, last command")
    .argument("<workspace>", "id or name")
    .addOption(json())
    .action(
      action(async (ref: string) => {
        const info = await pyro().statusWorkspace(ref);
        if (state.json) printJson(info);
        else out(render.workspace(info));
      }),
    );
  ws.command("update")
    .description("Rename a workspace or change its labels")
    .argument("<workspace>", "id or name")
    .option("--name <name>", "new unique name")
    .option("--label <KEY=VALUE>", "set a label (repeatable)", collect)
    .option("--clear-label <KEY>", "remove a label (repeatable)", collect)
    .addOption(json())
    .action(
      action(async (ref: string, opts: { name?: string; label?: string[]; clearLabel?: string[] }) => {
        const info = await pyro().updateWorkspace(ref, {
          ...(opts.name !== undefined ? { name: opts.name } : {}),
          ...(opts.label ? { labels: parseKeyValues(opts.label, "label") } : {}),
          ...(opts.clearLabel ? { clearLabels: opts.clearLabel } : {}),
        });
        if (state.json) printJson(info);
        else out(render.workspace(info));
      }),
    );
  ws.command("exec")
    .description("Run a command in /workspace; exits with the command's exit code (124 on timeout)")
    .argument("<workspace>", "id or name")
    .argument("[command...]", "command and arguments after `--`")
    .option("--timeout-seconds <n>", "kill the command's whole process tree after this many seconds (default 30)", number("--timeout-seconds"))
    .option("--env <KEY=VALUE>", "environment variable (repeatable)", collect)
    .option("--cwd <dir>", "working directory, relative to /workspace (default /workspace)")
    .option("--shell <string>", "run this string with /bin/sh -c instead of an argv after `--`")
    .option("--stdin", "forward this process's stdin to the command")
    .option("--max-output-bytes <n>", "cap per output stream, head and tail kept (default 65536)", number("--max-output-bytes"))
    .option("--secret-env <NAME[=ENV_VAR]>", "export a workspace secret into the command's environment (repeatable)", collect)
    .addOption(json())
    .action(
      action(async (ref: string, commandArgs: string[], opts: { stdin?: boolean; shell?: string; env?: string[]; timeoutSeconds?: number; cwd?: string; maxOutputBytes?: number; secretEnv?: string[] }) => {
        const stdin = opts.stdin ? await readStdin() : undefined;
        const raw = await execWorkspaceRaw(pyro(), ref, execInput(commandArgs, opts, stdin));
        writeExec(raw);
        process.exitCode = execExitCode(raw);
      }),
    );
  ws.command("logs")
    .description("Command history: argv, exit code, duration, time, output sizes")
    .argument("<workspace>", "id or name")
    .option("--limit <n>", "most recent N commands (default 50)", number("--limit"))
    .addOption(json())
    .action(
      action(async (ref: string, opts: { limit?: number }) => {
        const logs = await pyro().logsWorkspace(ref, opts.limit !== undefined ? { limit: opts.limit } : {});
        if (state.json) printJson(logs);
        else out(render.logs(logs));
      }),
    );
  for (const [name, description] of [
    ["stop", "Stop the sandbox; /workspace and installed packages are kept"],
    ["start", "Start a stopped or failed workspace again, /workspace unchanged"],
    ["delete", "Stop the workspace and remove everything it had"],
  ] as const) {
    ws.command(name)
      .description(description)
      .argument("<workspace>", "id or name")
      .addOption(json())
      .action(
        action(async (ref: string) => {
          const p = pyro();
          const result = name === "stop" ? await p.stopWorkspace(ref) : name === "start" ? await p.startWorkspace(ref) : await p.deleteWorkspace(ref);
          if (state.json) printJson(result);
          else out("deleted" in result ? `Deleted workspace ${result.workspace_id}` : render.workspace(result));
        }),
      );
  }
  const sync = ws.command("sync").description("Move content from the host into a running workspace");
  sync
    .command("push")
    .description("Copy a host directory or .tar/.tar.gz/.tgz into /workspace (or --dest under it)")
    .argument("<workspace>", "id or name")
    .argument("<source>", "host directory or archive")
    .option("--dest <path>", "destination directory under /workspace (default /workspace)")
    .addOption(json())
    .action(
      action(async (ref: string, source: string, opts: { dest?: string }) => {
        const r = await pyro().pushWorkspaceSync(ref, hostPath(source, "SOURCE"), opts.dest !== undefined ? { dest: opts.dest } : {});
        if (state.json) printJson(r);
        else out(`Copied ${r.entries} entries (${render.bytes(r.bytes)}) from ${r.source} into ${r.dest}`);
      }),
    );

  const file = ws.command("file").description("Model-native file operations under /workspace");
  file
    .command("list")
    .description("List a directory under /workspace: type, size, mode, mtime, symlink target")
    .argument("<workspace>", "id or name")
    .argument("[path]", "path under /workspace (default /workspace)")
    .option("--recursive", "walk subdirectories (never through symlinks)")
    .option("--max-entries <n>", "at most this many entries (default 1000)", number("--max-entries"))
    .addOption(json())
    .action(
      action(async (ref: string, p: string | undefined, opts: { recursive?: boolean; maxEntries?: number }) => {
        const r = await pyro().listWorkspaceFiles(ref, { ...(p !== undefined ? { path: p } : {}), recursive: opts.recursive === true, ...(opts.maxEntries !== undefined ? { maxEntries: opts.maxEntries } : {}) });
        if (state.json) printJson(r);
        else out(render.fileList(r));
      }),
    );
  file
    .command("read")
    .description("Read a text file (default budget 65536 bytes); says when truncated and how to read on")
    .argument("<workspace>", "id or name")
    .argument("<path>", "file under /workspace")
    .option("--max-bytes <n>", "read at most this many bytes (default 65536)", number("--max-bytes"))
    .option("--offset <n>", "start at this byte offset (default 0)", number("--offset"))
    .option("--content-only", "print only the content, no summary")
    .addOption(json())
    .action(
      action(async (ref: string, p: string, opts: { maxBytes?: number; offset?: number; contentOnly?: boolean }) => {
        const r = await pyro().readWorkspaceFile(ref, p, { ...(opts.maxBytes !== undefined ? { maxBytes: opts.maxBytes } : {}), ...(opts.offset !== undefined ? { offset: opts.offset } : {}) });
        if (state.json) printJson(r);
        else render.writeFileRead(r, opts.contentOnly === true);
      }),
    );
  file
    .command("write")
    .description("Create or replace a file under /workspace, creating parent directories")
    .argument("<workspace>", "id or name")
    .argument("<path>", "file under /workspace")
    .option("--text <text>", "the new content")
    .option("--text-file <file>", "read the new content from this host file (UTF-8)")
    .option("--mode <octal>", "file mode, e.g. 0755 (default: keep the existing mode, else 0644)")
    .addOption(json())
    .action(
      action(async (ref: string, p: string, opts: { text?: string; textFile?: string; mode?: string }) => {
        const text = await textInput(opts.text, opts.textFile, "--text", "--text-file");
        const r = await pyro().writeWorkspaceFile(ref, p, { text, ...(opts.mode !== undefined ? { mode: opts.mode } : {}) });
        if (state.json) printJson(r);
        else out(`${r.created ? "Created" : "Replaced"} ${r.path} (${r.bytes_written} bytes)`);
      }),
    );

  ws.command("patch")
    .description("Apply unified diffs to files under /workspace")
    .command("apply")
    .description("Apply a unified diff (git diff / diff -u) to files under /workspace, all or nothing")
    .argument("<workspace>", "id or name")
    .option("--patch <text>", "the patch text")
    .option("--patch-file <file>", "read the patch from this host file")
    .addOption(json())
    .action(
      action(async (ref: string, opts: { patch?: string; patchFile?: string }) => {
        const patch = await textInput(opts.patch, opts.patchFile, "--patch", "--patch-file");
        const r = await pyro().applyWorkspacePatch(ref, { patch });
        if (state.json) printJson(r);
        else out(r.files.map((f) => `${f.action.padEnd(12)} ${f.path}${f.hunks ? ` (${f.hunks} hunks)` : ""}`).join("\n"));
      }),
    );

  ws.command("export")
    .description("Copy a file or directory from /workspace to the host; never overwrites unless --force")
    .argument("<workspace>", "id or name")
    .argument("<path>", "file or directory under /workspace")
    .requiredOption("--output <host-path>", "where to write it on the host")
    .option("--force", "replace an existing output")
    .addOption(json())
    .action(
      action(async (ref: string, p: string, opts: { output: string; force?: boolean }) => {
        const r = await pyro().exportWorkspace(ref, p, { outputPath: hostPath(opts.output, "--output"), force: opts.force === true });
        if (state.json) printJson(r);
        else out(render.exported(r));
      }),
    );

  ws.command("diff")
    .description("Compare /workspace with its create-time baseline (or --snapshot): changed entries and a patch")
    .argument("<workspace>", "id or name")
    .option("--path <path>", "only this file or directory")
    .option("--snapshot <name>", "compare with this snapshot instead of the baseline")
    .option("--max-bytes <n>", "patch text budget (default 65536)", number("--max-bytes"))
    .addOption(json())
    .action(
      action(async (ref: string, opts: { path?: string; snapshot?: string; maxBytes?: number }) => {
        const r = await pyro().diffWorkspace(ref, {
          ...(opts.path !== undefined ? { path: opts.path } : {}),
          ...(opts.snapshot !== undefined ? { snapshot: opts.snapshot } : {}),
          ...(opts.maxBytes !== undefined ? { maxBytes: opts.maxBytes } : {}),
        });
        if (state.json) printJson(r);
        else render.writeDiff(r);
      }),
    );

  const snapshot = ws.command("snapshot").description("Named checkpoints of /workspace (`baseline` exists from creation)");
  snapshot
    .command("create")
    .description("Checkpoint /workspace under a name")
    .argument("<workspace>", "id or name")
    .argument("<name>", "snapshot name")
    .addOption(json())
    .action(
      action(async (ref: string, name: string) => {
        const r = await pyro().createSnapshot(ref, name);
        if (state.json) printJson(r);
        else out(`Snapshot ${r.name}: ${r.entries} entries, ${render.bytes(r.bytes)}`);
      }),
    );
  snapshot
    .command("list")
    .description("List snapshots, oldest first")
    .argument("<workspace>", "id or name")
    .addOption(json())
    .action(
      action(async (ref: string) => {
        const r = await pyro().listSnapshots(ref);
        if (state.json) printJson(r);
        else out(r.snapshots.map((x) => `${x.name.padEnd(20)} ${x.created_at}  ${x.entries} entries  ${render.bytes(x.bytes)}`).join("\n"));
      }),
    );
  snapshot
    .command("delete")
    .description("Delete a named snapshot (not the baseline)")
    .argument("<workspace>", "id or name")
    .argument("<name>", "snapshot name")
    .addOption(json())
    .action(
      action(async (ref: string, name: string) => {
        const r = await pyro().deleteSnapshot(ref, name);
        if (state.json) printJson(r);
        else out(`Deleted snapshot ${r.name}`);
      }),
    );

  ws.command("reset")
    .description("Recreate the sandbox from its environment plus the baseline or a snapshot; clears processes")
    .argument("<workspace>", "id or name")
    .option("--snapshot <name>", "snapshot to restore (default baseline)")
    .addOption(json())
    .action(
      action(async (ref: string, opts: { snapshot?: string }) => {
        const r = await pyro().resetWorkspace(ref, opts.snapshot !== undefined ? { snapshot: opts.snapshot } : {});
        if (state.json) printJson(r);
        else out(`Reset to ${r.reset_to}\n${render.workspace(r)}`);
      }),
    );

  ws.command("summary")
    .description("What happened since the last reset: commands and outcomes, files changed, edits, exports, snapshots, services, shells")
    .argument("<workspace>", "id or name")
    .addOption(json())
    .action(
      action(async (ref: string) => {
        const s = await pyro().summarizeWorkspace(ref);
        if (state.json) printJson(s);
        else {
          const { summaryText } = await import("../core/summary.js");
          out(summaryText(s));
        }
      }),
    );

  const disk = ws.command("disk").description("Secondary tools that read a stopped workspace without starting it");
  disk
    .command("list")
    .description("List files of a stopped workspace")
    .argument("<workspace>", "id or name")
    .argument("[path]", "path under /workspace")
    .option("--recursive", "walk subdirectories")
    .addOption(json())
    .action(
      action(async (ref: string, p: string | undefined, opts: { recursive?: boolean }) => {
        const r = await pyro().listWorkspaceDisk(ref, { ...(p !== undefined ? { path: p } : {}), recursive: opts.recursive === true });
        if (state.json) printJson(r);
        else out(render.fileList(r));
      }),
    );
  disk
    .command("read")
    .description("Read a file of a stopped workspace")
    .argument("<workspace>", "id or name")
    .argument("<path>", "file under /workspace")
    .option("--max-bytes <n>", "read at most this many bytes (default 65536)", number("--max-bytes"))
    .option("--offset <n>", "start at this byte offset", number("--offset"))
    .option("--content-only", "print only the content")
    .addOption(json())
    .action(
      action(async (ref: string, p: string, opts: { maxBytes?: number; offset?: number; contentOnly?: boolean }) => {
        const r = await pyro().readWorkspaceDisk(ref, p, { ...(opts.maxBytes !== undefined ? { maxBytes: opts.maxBytes } : {}), ...(opts.offset !== undefined ? { offset: opts.offset } : {}) });
        if (state.json) printJson(r);
        else render.writeFileRead(r, opts.contentOnly === true);
      }),
    );
  disk
    .command("export")
    .description("Write a stopped workspace's /workspace to the host as a .tar archive")
    .argument("<workspace>", "id or name")
    .requiredOption("--output <host-path>", "archive path on the host")
    .option("--force", "replace an existing output")
    .addOption(json())
    .action(
      action(async (ref: string, opts: { output: string; force?: boolean }) => {
        const r = await pyro().exportWorkspaceDisk(ref, { outputPath: hostPath(opts.output, "--output"), force: opts.force === true });
        if (state.json) printJson(r);
        else out(`Wrote ${r.output_path} (${render.bytes(r.bytes)})`);
      }),
    );

  const service = ws.command("service").description("Long-running processes with readiness checks; logs kept outside /workspace");
  service
    .command("start")
    .description("Start a named service; returns when it is ready, has exited, or readiness timed out")
    .argument("<workspace>", "id or name")
    .argument("<name>", "service name")
    .argument("[command...]", "command and arguments after `--`")
    .option("--shell <string>", "run this string with /bin/sh -c instead of an argv after `--`")
    .option("--cwd <dir>", "working directory, relative to /workspace")
    .option("--ready-file <path>", "ready when this file exists (relative to --cwd)")
    .option("--ready-tcp <port>", "ready when 127.0.0.1:PORT accepts connections", number("--ready-tcp"))
    .option("--ready-http <url>", "ready when GET URL answers with a status below 400")
    .option("--ready-command <cmd>", "ready when this shell command exits 0")
    .option("--ready-timeout-seconds <n>", "give up (and stop the service) after this long (default 30)", number("--ready-timeout-seconds"))
    .option("--ready-interval-ms <n>", "how often to check readiness (default 500)", number("--ready-interval-ms"))
    .option("--env <KEY=VALUE>", "environment variable (repeatable)", collect)
    .option("--secret-env <NAME[=ENV_VAR]>", "export a workspace secret into the service's environment (repeatable)", collect)
    .option("--publish <GUEST_PORT[:HOST_PORT]>", "make a guest TCP port reachable on the host's 127.0.0.1 (a free host port when HOST_PORT is left out; repeatable; needs --network-policy egress+published-ports)", collect)
    .addOption(json())
    .action(
      action(async (ref: string, name: string, commandArgs: string[], opts: { shell?: string; cwd?: string; readyFile?: string; readyTcp?: number; readyHttp?: string; readyCommand?: string; readyTimeoutSeconds?: number; readyIntervalMs?: number; env?: string[]; secretEnv?: string[]; publish?: string[] }) => {
        const kinds = [opts.readyFile, opts.readyTcp, opts.readyHttp, opts.readyCommand].filter((x) => x !== undefined);
        if (kinds.length > 1) throw new PyroError("invalid_argument", "give at most one of --ready-file, --ready-tcp, --ready-http, --ready-command");
        const readiness =
          opts.readyFile !== undefined ? { type: "file" as const, path: opts.readyFile }
          : opts.readyTcp !== undefined ? { type: "tcp" as const, port: opts.readyTcp }
          : opts.readyHttp !== undefined ? { type: "http" as const, url: opts.readyHttp }
          : opts.readyCommand !== undefined ? { type: "command" as const, command: opts.readyCommand }
          : undefined;
        const input = execInput(commandArgs, opts, undefined);
        const r = await pyro().startService(ref, name, {
          command: input.command,
          ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
          ...(readiness ? { readiness } : {}),
          ...(opts.readyTimeoutSeconds !== undefined ? { readyTimeoutSeconds: opts.readyTimeoutSeconds } : {}),
          ...(opts.readyIntervalMs !== undefined ? { readyIntervalMs: opts.readyIntervalMs } : {}),
          ...(input.env ? { env: input.env } : {}),
          ...(input.secretEnv ? { secretEnv: input.secretEnv } : {}),
          ...(opts.publish ? { publish: opts.publish } : {}),
        });
        if (state.json) printJson(r);
        else out(render.service(r));
        if (r.state !== "ready" && r.state !== "running") process.exitCode = 1;
      }),
    );
  service
    .command("list")
    .description("List the workspace's services with their state")
    .argument("<workspace>", "id or name")
    .addOption(json())
    .action(
      action(async (ref: string) => {
        const r = await pyro().listServices(ref);
        if (state.json) printJson(r);
        else out(r.count ? r.services.map((x) => render.serviceLine(x)).join("\n") : "No services.");
      }),
    );
  service
    .command("status")
    .description("One service: pid, state, ready time, uptime, exit code")
    .argument("<workspace>", "id or name")
    .argument("<name>", "service name")
    .addOption(json())
    .action(
      action(async (ref: string, name: string) => {
        const r = await pyro().statusService(ref, name);
        if (state.json) printJson(r);
        else out(render.service(r));
      }),
    );
  service
    .command("logs")
    .description("A service's stdout and stderr (last 50 lines by default)")
    .argument("<workspace>", "id or name")
    .argument("<name>", "service name")
    .option("--tail-lines <n>", "last N lines of each stream", number("--tail-lines"))
    .option("--all", "everything retained (bounded)")
    .addOption(json())
    .action(
      action(async (ref: string, name: string, opts: { tailLines?: number; all?: boolean }) => {
        const r = await pyro().logsService(ref, name, { ...(opts.tailLines !== undefined ? { tailLines: opts.tailLines } : {}), ...(opts.all ? { all: true } : {}) });
        if (state.json) printJson(r);
        else {
          process.stdout.write(r.stdout);
          process.stderr.write(r.stderr);
          process.stderr.write(render.networkNotices(r.network_notices));
        }
      }),
    );
  service
    .command("stop")
    .description("Stop a service's whole process tree (SIGTERM, grace period, SIGKILL)")
    .argument("<workspace>", "id or name")
    .argument("<name>", "service name")
    .addOption(json())
    .action(
      action(async (ref: string, name: string) => {
        const r = await pyro().stopService(ref, name);
        if (state.json) printJson(r);
        else out(render.service(r));
      }),
    );

  const shell = ws.command("shell").description("Interactive shells on a real PTY, readable as plain text");
  shell
    .command("open")
    .description("Open a shell; prints its id")
    .argument("<workspace>", "id or name")
    .option("--cwd <dir>", "working directory, relative to /workspace")
    .option("--cols <n>", "terminal width (default 120)", number("--cols"))
    .option("--rows <n>", "terminal height (default 30)", number("--rows"))
    .option("--secret-env <NAME[=ENV_VAR]>", "export a workspace secret into the shell's environment (repeatable)", collect)
    .addOption(json())
    .option("--id-only", "print only the shell id")
    .action(
      action(async (ref: string, opts: { cwd?: string; cols?: number; rows?: number; secretEnv?: string[]; idOnly?: boolean }) => {
        const r = await pyro().openShell(ref, {
          ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
          ...(opts.cols !== undefined ? { cols: opts.cols } : {}),
          ...(opts.rows !== undefined ? { rows: opts.rows } : {}),
          ...(opts.secretEnv ? { secretEnv: parseSecretEnvFlags(opts.secretEnv) } : {}),
        });
        if (opts.idOnly) out(r.shell_id);
        else if (state.json) printJson(r);
        else out(`Shell ${r.shell_id} (pid ${r.pid}, ${r.cols}x${r.rows}, cwd ${r.cwd})`);
      }),
    );
  shell
    .command("read")
    .description("Read a shell's output from --cursor; --plain renders it as the screen a person would see")
    .argument("<workspace>", "id or name")
    .argument("<shell>", "shell id")
    .option("--cursor <n>", "byte offset to read from (default 0; use next_cursor)", number("--cursor"))
    .option("--max-chars <n>", "at most this much output (default 65536)", number("--max-chars"))
    .option("--plain", "render through a terminal emulator: no colours or control sequences")
    .option("--wait-for-idle-ms <n>", "return once output has been quiet this long", number("--wait-for-idle-ms"))
    .option("--wait-for-pattern <regex>", "return once the output matches this regular expression")
    .option("--timeout-ms <n>", "upper bound for a wait (default 10000)", number("--timeout-ms"))
    .addOption(json())
    .action(
      action(async (ref: string, shellId: string, opts: { cursor?: number; maxChars?: number; plain?: boolean; waitForIdleMs?: number; waitForPattern?: string; timeoutMs?: number }) => {
        const r = await pyro().readShell(ref, shellId, {
          ...(opts.cursor !== undefined ? { cursor: opts.cursor } : {}),
          ...(opts.maxChars !== undefined ? { maxChars: opts.maxChars } : {}),
          plain: opts.plain === true,
          ...(opts.waitForIdleMs !== undefined ? { waitForIdleMs: opts.waitForIdleMs } : {}),
          ...(opts.waitForPattern !== undefined ? { waitForPattern: opts.waitForPattern } : {}),
          ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
        });
        if (state.json) printJson(r);
        else {
          process.stdout.write(r.output);
          if (r.output && !r.output.endsWith("\n")) process.stdout.write("\n");
          process.stderr.write(`[shell ${r.shell_id} ${r.state}; next_cursor=${r.next_cursor}${r.truncated ? " (truncated)" : ""}${r.wait.ended_by !== "none" ? `; wait ended by ${r.wait.ended_by}` : ""}]\n`);
          process.stderr.write(render.networkNotices(r.network_notices));
        }
      }),
    );
  shell
    .command("write")
    .description("Type input into a shell (a newline is appended unless --no-newline)")
    .argument("<workspace>", "id or name")
    .argument("<shell>", "shell id")
    .requiredOption("--input <text>", "text to type")
    .option("--no-newline", "do not press Enter after the input")
    .addOption(json())
    .action(
      action(async (ref: string, shellId: string, opts: { input: string; newline: boolean }) => {
        const r = await pyro().writeShell(ref, shellId, { input: opts.input, appendNewline: opts.newline });
        if (state.json) printJson(r);
        else out(`Wrote ${r.bytes_written} bytes to ${r.shell_id}`);
      }),
    );
  shell
    .command("signal")
    .description("Send a signal to the shell's foreground process (INT is Ctrl-C)")
    .argument("<workspace>", "id or name")
    .argument("<shell>", "shell id")
    .option("--signal <name>", "HUP, INT, TERM or KILL (default INT)")
    .addOption(json())
    .action(
      action(async (ref: string, shellId: string, opts: { signal?: string }) => {
        const r = await pyro().signalShell(ref, shellId, opts.signal !== undefined ? { signalName: opts.signal } : {});
        if (state.json) printJson(r);
        else out(`Sent SIG${r.signal} to ${r.shell_id}`);
      }),
    );
  shell
    .command("resize")
    .description("Change a shell's terminal size")
    .argument("<workspace>", "id or name")
    .argument("<shell>", "shell id")
    .requiredOption("--cols <n>", "terminal width", number("--cols"))
    .requiredOption("--rows <n>", "terminal height", number("--rows"))
    .addOption(json())
    .action(
      action(async (ref: string, shellId: string, opts: { cols: number; rows: number }) => {
        const r = await pyro().resizeShell(ref, shellId, { cols: opts.cols, rows: opts.rows });
        if (state.json) printJson(r);
        else out(`Resized ${r.shell_id} to ${r.cols}x${r.rows}`);
      }),
    );
  shell
    .command("list")
    .description("List the workspace's shells")
    .argument("<workspace>", "id or name")
    .addOption(json())
    .action(
      action(async (ref: string) => {
        const r = await pyro().listShells(ref);
        if (state.json) printJson(r);
        else out(r.count ? r.shells.map((x) => `${x.shell_id}  ${x.state.padEnd(8)} pid=${x.pid} ${x.cols}x${x.rows} ${x.cwd}`).join("\n") : "No shells.");
      }),
    );
  shell
    .command("close")
    .description("Close a shell and kill everything it started")
    .argument("<workspace>", "id or name")
    .argument("<shell>", "shell id")
    .addOption(json())
    .action(
      action(async (ref: string, shellId: string) => {
        const r = await pyro().closeShell(ref, shellId);
        if (state.json) printJson(r);
        else out(`Closed ${r.shell_id}`);
      }),
    );

  const network = ws.command("network").description("A workspace's network policy, allow-lists and published ports; changes apply without a restart");
  network
    .command("show")
    .description("Show the policy, allow-lists, host loopback, published ports and what is applied now")
    .argument("<workspace>", "id or name")
    .addOption(json())
    .action(
      action(async (ref: string) => {
        const r = await pyro().showWorkspaceNetwork(ref);
        if (state.json) printJson(r);
        else out(render.network(r));
      }),
    );
  network
    .command("set")
    .description("Change the network live: policy, allow-list entries (added), host loopback")
    .argument("<workspace>", "id or name")
    .option("--network-policy <policy>", "off, egress or egress+published-ports")
    .option("--allow-host <name>", "add a host name, or *.suffix, to the allow-list (repeatable)", collect)
    .option("--allow-cidr <cidr>", "add an IPv4 address or CIDR to the allow-list (repeatable)", collect)
    .option("--clear-allow-list", "empty the allow-list first (no allow-list: all egress is allowed)")
    .option("--allow-host-loopback", "let the workspace reach the host's own loopback and addresses")
    .option("--no-allow-host-loopback", "block the host's loopback and addresses again (the default)")
    .addOption(json())
    .action(
      action(async (ref: string, opts: { networkPolicy?: string; allowHost?: string[]; allowCidr?: string[]; clearAllowList?: boolean; allowHostLoopback?: boolean }) => {
        const r = await pyro().setWorkspaceNetwork(ref, {
          ...networkInput({ ...opts, allowHostLoopback: false }),
          ...(opts.clearAllowList ? { clearAllowList: true } : {}),
          ...(opts.allowHostLoopback !== undefined ? { allowHostLoopback: opts.allowHostLoopback } : {}),
        });
        if (state.json) printJson(r);
        else out(render.network(r));
      }),
    );

  ws.command("reap")
    .description("Delete workspaces whose TTL has passed (never one with a call in flight)")
    .addOption(json())
    .action(
      action(async () => {
        const result = await pyro().reapExpired();
        if (state.json) printJson(result);
        else out(result.reaped.length ? `Reaped: ${result.reaped.join(", ")}` : "Nothing to reap.");
      }),
    );

  const mcp = program.command("mcp").description("Model Context Protocol server");
  mcp.command("serve")
    .description("Serve pyro's tools over MCP: stdio by default, Streamable HTTP with --http")
    .option("--profile <profile>", "tool set: vm-run, workspace-core (default) or workspace-full")
    .option("--mode <mode>", "use-case tool set instead of a profile: repro-fix, inspect, cold-start or review-eval")
    .option("--http", "serve Streamable HTTP at http://HOST:PORT/mcp instead of stdio")
    .option("--host <host>", "with --http: address to bind (default 127.0.0.1; other addresses need --token)")
    .option("--port <port>", "with --http: port (default 8765; 0 picks a free one)", number("--port"))
    .option("--token <token>", "with --http: bearer token clients must send (default $PYRO_MCP_TOKEN, else a random one printed to stderr)")
    .option("--project-path <dir>", "seed new workspaces from this project (default: the Git checkout the server starts in)")
    .option("--repo-url <url>", "seed new workspaces from a clean clone of this repository")
    .option("--repo-ref <ref>", "with --repo-url: branch or tag to clone")
    .option("--no-project-source", "start workspaces empty unless seed_path is given")
    .action(
      action(async (opts: { profile?: string; mode?: string; http?: boolean; host?: string; port?: number; token?: string; projectPath?: string; repoUrl?: string; repoRef?: string; projectSource: boolean }) => {
        if (opts.repoRef !== undefined && opts.repoUrl === undefined) throw new PyroError("invalid_argument", "--repo-ref needs --repo-url");
        if (!opts.projectSource && (opts.projectPath !== undefined || opts.repoUrl !== undefined)) throw new PyroError("invalid_argument", "--no-project-source cannot be combined with --project-path or --repo-url");
        const projectSource = {
          cwd: process.cwd(),
          noProjectSource: !opts.projectSource,
          ...(opts.projectPath !== undefined ? { projectPath: hostPath(opts.projectPath, "--project-path") } : {}),
          ...(opts.repoUrl !== undefined ? { repoUrl: opts.repoUrl } : {}),
          ...(opts.repoRef !== undefined ? { repoRef: opts.repoRef } : {}),
        };
        const p0 = pyro({ projectSource });
        const { describeProjectSource } = await import("../core/project-source.js");
        const surface = {
          ...(opts.profile !== undefined ? { profile: opts.profile } : {}),
          ...(opts.mode !== undefined ? { mode: opts.mode } : {}),
          projectSourceDescription: describeProjectSource(await p0.projectSource()),
        };
        const { resolveSurface } = await import("../mcp/surfaces.js");
        resolveSurface(surface);
        if (!opts.http) {
          if (opts.host !== undefined || opts.port !== undefined || opts.token !== undefined) throw new PyroError("invalid_argument", "--host, --port and --token apply to --http only");
          const { serveStdio } = await import("../mcp/stdio.js");
          await serveStdio(pyro(), surface);
          return;
        }
        const { serveHttp } = await import("../mcp/http.js");
        const p = pyro();
        const served = await serveHttp(p, { ...surface, ...(opts.host !== undefined ? { host: opts.host } : {}), ...(opts.port !== undefined ? { port: opts.port } : {}), ...(opts.token !== undefined ? { token: opts.token } : {}) });
        // The token first: "listening on" is the line that says the server is ready.
        if (served.generatedToken) process.stderr.write(`pyro mcp serve: bearer token (generated; pass --token or set PYRO_MCP_TOKEN to choose one): ${served.token}\n`);
        process.stderr.write(`pyro mcp serve: listening on ${served.url}\n`);
        await new Promise<void>((resolve) => {
          const stop = () => resolve();
          process.once("SIGINT", stop);
          process.once("SIGTERM", stop);
        });
        await served.close();
      }),
    );
  return program;
}

async function main(): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === "commander.helpDisplayed" || err.code === "commander.version" || err.code === "commander.help") process.exit(0);
      fail(new PyroError("usage_error", err.message.replace(/^error: /, ""), { hint: "Run `pyro --help` or `pyro COMMAND --help`." }), 2);
    }
    fail(err);
  }
}

void main();
