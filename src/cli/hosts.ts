/**
 * Chat-host onramp: connect Claude Code or Codex to pyro with their own `mcp add` command,
 * print configs for OpenCode, Claude Desktop and Cursor, check and repair registrations. Every
 * form is generated from one canonical `pyro mcp serve` command line, so they never disagree.
 * Runs host CLIs found on PATH with argument arrays (no shell); prints instead when absent.
 */
import { spawnSync } from "node:child_process";
import path from "node:path";
import { packageRoot } from "../runtime/agent-runtime.js";
import { PyroError } from "../shared/errors.js";
import { hostPath } from "../shared/host-path.js";
import { findExecutable } from "../shared/executables.js";

export const CLI_HOSTS = ["claude-code", "codex"] as const;
export const CONFIG_HOSTS = ["opencode", "claude-desktop", "cursor"] as const;
export type CliHost = (typeof CLI_HOSTS)[number];
export type ConfigHost = (typeof CONFIG_HOSTS)[number];

const HOST_BINARY: Record<CliHost, string> = { "claude-code": "claude", codex: "codex" };
export const SERVER_NAME = "pyro";

export interface ServeOptions {
  profile?: string;
  mode?: string;
  projectPath?: string;
  repoUrl?: string;
  repoRef?: string;
  noProjectSource?: boolean;
}

/** The one `mcp serve` command line every host registration is made from. */
export function canonicalServeCommand(options: ServeOptions = {}): { command: string; args: string[] } {
  const args = [path.join(packageRoot(), "bin", "pyro.js"), "mcp", "serve"];
  if (options.profile) args.push("--profile", options.profile);
  if (options.mode) args.push("--mode", options.mode);
  if (options.projectPath !== undefined) args.push("--project-path", hostPath(options.projectPath, "--project-path"));
  if (options.repoUrl) args.push("--repo-url", options.repoUrl);
  if (options.repoRef) args.push("--repo-ref", options.repoRef);
  if (options.noProjectSource) args.push("--no-project-source");
  return { command: process.execPath, args };
}

/** Chat hosts are the ones on $PATH: the user chose them by putting them there. */
const onPath = (binary: string): string | null => findExecutable(binary, { pathOnly: true });

function quote(arg: string): string {
  return /^[A-Za-z0-9_./:=@+-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, "'\\''")}'`;
}

function addArgs(options: ServeOptions): string[] {
  const { command, args } = canonicalServeCommand(options);
  return ["mcp", "add", SERVER_NAME, "--", command, ...args];
}

export interface ConnectResult {
  host: CliHost;
  /** The exact command, for copy-paste. */
  command: string;
  /** True when the host CLI was found and the command ran successfully. */
  ran: boolean;
  output: string;
}

function checkCliHost(host: string): CliHost {
  if (!(CLI_HOSTS as readonly string[]).includes(host)) {
    throw new PyroError("invalid_argument", `unknown host ${JSON.stringify(host)}`, { hint: `Use one of ${CLI_HOSTS.join(", ")}; for ${CONFIG_HOSTS.join(", ")} use \`pyro host print-config\`.` });
  }
  return host as CliHost;
}

/** Runs `<host> mcp add pyro -- <canonical serve command>` when the host CLI is installed. */
export function connectHost(hostName: string, options: ServeOptions = {}): ConnectResult {
  const host = checkCliHost(hostName);
  const binary = HOST_BINARY[host];
  const args = addArgs(options);
  const command = [binary, ...args].map(quote).join(" ");
  const found = onPath(binary);
  if (!found) return { host, command, ran: false, output: `${binary} is not installed; run this once it is:\n  ${command}` };
  const r = spawnSync(found, args, { encoding: "utf8", timeout: 30_000 });
  if (r.status !== 0) {
    throw new PyroError("internal_error", `${binary} mcp add failed: ${(r.stderr || r.stdout || "").trim().slice(-300)}`, { hint: `Run \`pyro host repair ${host}\` to replace an existing registration.` });
  }
  return { host, command, ran: true, output: (r.stdout || "").trim() };
}

/** Config for hosts that read a JSON file. */
export function hostConfig(hostName: string, options: ServeOptions = {}): { host: ConfigHost; file_hint: string; config: Record<string, unknown> } {
  if (!(CONFIG_HOSTS as readonly string[]).includes(hostName)) {
    throw new PyroError("invalid_argument", `unknown host ${JSON.stringify(hostName)}`, { hint: `Use one of ${CONFIG_HOSTS.join(", ")}.` });
  }
  const host = hostName as ConfigHost;
  const { command, args } = canonicalServeCommand(options);
  if (host === "opencode") {
    return { host, file_hint: "opencode.json in your project (or ~/.config/opencode/opencode.json)", config: { $schema: "https://opencode.ai/config.json", mcp: { [SERVER_NAME]: { type: "local", command: [command, ...args], enabled: true } } } };
  }
  const fileHint = host === "cursor" ? ".cursor/mcp.json in your project (or ~/.cursor/mcp.json)" : "claude_desktop_config.json (Settings → Developer → Edit Config)";
  return { host, file_hint: fileHint, config: { mcpServers: { [SERVER_NAME]: { command, args } } } };
}

export interface HostDoctorEntry {
  host: CliHost;
  installed: boolean;
  registered: boolean;
  /** Registered, but with a command line other than the canonical one. */
  drifted: boolean;
  detail: string;
  fix: string | null;
}

/** Checks each CLI host: installed? pyro registered? with the canonical command? */
export function doctorHosts(options: ServeOptions = {}): HostDoctorEntry[] {
  const { args } = canonicalServeCommand(options);
  return CLI_HOSTS.map((host) => {
    const binary = HOST_BINARY[host];
    const found = onPath(binary);
    if (!found) return { host, installed: false, registered: false, drifted: false, detail: `${binary} not found on PATH`, fix: null };
    const r = spawnSync(found, ["mcp", "list"], { encoding: "utf8", timeout: 30_000 });
    const listing = `${r.stdout ?? ""}${r.stderr ?? ""}`;
    const line = listing.split("\n").find((l) => new RegExp(`^\\s*${SERVER_NAME}\\b`).test(l) || l.includes(`${SERVER_NAME}:`));
    if (!line) return { host, installed: true, registered: false, drifted: false, detail: "pyro is not registered", fix: `pyro host connect ${host}` };
    const drifted = !line.includes(args[0]!) || !line.includes("mcp serve");
    return {
      host,
      installed: true,
      registered: true,
      drifted,
      detail: drifted ? `registered with another command: ${line.trim().slice(0, 200)}` : "registered with the canonical command",
      fix: drifted ? `pyro host repair ${host}` : null,
    };
  });
}

/** Removes an existing registration (if any) and adds the canonical one. */
export function repairHost(hostName: string, options: ServeOptions = {}): ConnectResult {
  const host = checkCliHost(hostName);
  const binary = HOST_BINARY[host];
  const found = onPath(binary);
  if (found) spawnSync(found, ["mcp", "remove", SERVER_NAME], { encoding: "utf8", timeout: 30_000 });
  return connectHost(host, options);
}
