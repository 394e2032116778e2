/**
 * The `pyro` command line: parses arguments with commander, calls the SDK, renders results.
 * Human-readable by default, `--json` everywhere (errors included, with their stable code).
 * Heavy modules (the MCP server) load only for the commands that use them, to keep every
 * other call fast. No behaviour lives here that the SDK does not also offer.
 */
import { readFileSync } from "node:fs";
import os from "node:os";
import { Command, CommanderError, Option } from "commander";
import { Pyro } from "../sdk/pyro.js";
import type { PyroOptions } from "../sdk/pyro.js";
import { PyroError, asPyroError } from "../shared/errors.js";
import { hostPath } from "../shared/host-path.js";
import { MAX_STDIN_BYTES } from "../core/exec.js";
import { abortRuns, execWorkspaceRaw, runInVmRaw } from "../sdk/internal.js";
import type { RawExecResult } from "../core/types.js";
import type { BackendRequest } from "../runtime/backend.js";
import * as render from "../ops/render.js";
import { execOptions, given, networkOptions } from "../ops/cli-values.js";
import type { CliCommandSpec } from "../ops/manifest.js";
import { addCommand, number } from "./commands.js";
import type { CliIo, CustomAction } from "./commands.js";

const VERSION = "0.1.0";

/** The commands the operation catalogue declares, as data the build wrote (ops/manifest.ts). */
const MANIFEST = JSON.parse(readFileSync(new URL("./commands.json", import.meta.url), "utf8")) as CliCommandSpec[];

type ExecInput = { workspace_id: string; command: string | string[]; timeout_seconds?: number; env?: Record<string, string>; cwd?: string; max_output_bytes?: number; secret_env?: Record<string, string> };
type OneShotInput = Omit<ExecInput, "workspace_id" | "secret_env"> & {
  environment: string;
  vcpu_count?: number;
  mem_mib?: number;
  disk_mib?: number;
  ttl_seconds?: number;
  backend?: string;
  network_policy?: string;
  allow_hosts?: string[];
  allow_cidrs?: string[];
  allow_host_loopback?: boolean;
};

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

function buildProgram(): Command {
  const program = new Command("pyro")
    .description("Disposable, isolated Linux workspaces for chat-driven coding agents: one-shot runs, persistent workspaces, and an MCP server.")
    .version(VERSION, "--version")
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({ writeErr: () => undefined, outputError: () => undefined });

  const json = () => new Option("--json", "print structured JSON instead of human-readable text");
  const io: CliIo = { pyro: () => pyro(), json: state.json, out, printJson, action };


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

  const runOneShot: CustomAction = async (input, cliOnly) => {
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
    const a = input as OneShotInput;
    const stdin = cliOnly.stdin ? await readStdin() : undefined;
    const raw = await runInVmRaw(p, {
      environment: a.environment,
      ...execOptions({ ...a, stdin }),
      ...given({ vcpuCount: a.vcpu_count, memMib: a.mem_mib, diskMib: a.disk_mib, ttlSeconds: a.ttl_seconds, backend: a.backend as BackendRequest | undefined }),
      ...networkOptions(a),
    });
    if (state.json) printJson({ ...raw.result, environment: a.environment, cleaned_up: true });
    else writeExec(raw);
    process.exitCode = execExitCode(raw);
  };

  const execRaw: CustomAction = async (input, cliOnly) => {
    const a = input as ExecInput;
    const stdin = cliOnly.stdin ? await readStdin() : undefined;
    const raw = await execWorkspaceRaw(pyro(), a.workspace_id, execOptions({ ...a, stdin }));
    writeExec(raw);
    process.exitCode = execExitCode(raw);
  };

  // Every command the operation catalogue declares, in its order; `run` and `workspace exec`
  // keep their own actions (raw bytes, exit codes, signals).
  const custom: Record<string, CustomAction> = { run: runOneShot, "workspace exec": execRaw };
  for (const spec of MANIFEST) addCommand(program, spec, io, custom[spec.words]);

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
