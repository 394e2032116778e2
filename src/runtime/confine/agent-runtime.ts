/**
 * Assembles the read-only agent runtime every sandbox gets at /run/pyro/agent: the host's own
 * node binary, the exact shared libraries it links against, its dynamic loader, and the agent
 * bundle. Starting node through that loader with --library-path makes the agent independent of
 * the environment's libc (glibc or musl roots alike). Host-side; reads only host paths.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { AGENT_RUNTIME_DIR } from "../../protocol/messages.js";
import { PyroError } from "../../shared/errors.js";
import { packageRoot } from "../../shared/package.js";

export interface RuntimeBind {
  /** Absolute host path (symlinks resolved). */
  source: string;
  /** Absolute path inside the sandbox. */
  target: string;
}

export interface AgentRuntime {
  binds: RuntimeBind[];
  /** argv that starts the agent inside the sandbox. */
  command: string[];
}

let cached: AgentRuntime | undefined;

export function agentBundlePath(): string {
  return path.join(packageRoot(), "dist", "agent", "pyro-agent.mjs");
}

/** The installed node-pty package (its JS and compiled pty.node). */
function nodePtyDir(): string {
  const dir = path.join(packageRoot(), "node_modules", "node-pty");
  if (!fs.existsSync(path.join(dir, "package.json"))) {
    throw new PyroError("internal_error", `node-pty is missing at ${dir}`, { hint: "Run `npm ci` in the pyro checkout." });
  }
  return fs.realpathSync(dir);
}

/** Parses `ldd` output into resolved library paths, including the dynamic loader. */
export function parseLdd(output: string): { libraries: string[]; loader: string | null } {
  const libraries: string[] = [];
  let loader: string | null = null;
  for (const line of output.split("\n")) {
    const arrow = line.match(/=>\s+(\/\S+)\s+\(/);
    if (arrow) {
      libraries.push(arrow[1]!);
      continue;
    }
    const bare = line.match(/^\s*(\/\S+)\s+\(/);
    if (bare) loader = bare[1]!;
  }
  return { libraries, loader };
}

export function agentRuntime(): AgentRuntime {
  if (cached) return cached;
  const node = fs.realpathSync(process.execPath);
  const bundle = agentBundlePath();
  if (!fs.existsSync(bundle)) {
    throw new PyroError("internal_error", `agent bundle missing at ${bundle}`, { hint: "Run `npm run build` in the pyro checkout." });
  }
  const { libraries, loader } = parseLdd(execFileSync("ldd", [node], { encoding: "utf8" }));
  if (!loader) throw new PyroError("host_unsupported", `cannot find the dynamic loader of ${node}`);
  const binds: RuntimeBind[] = [
    { source: node, target: `${AGENT_RUNTIME_DIR}/node` },
    { source: fs.realpathSync(loader), target: `${AGENT_RUNTIME_DIR}/ld.so` },
    ...libraries.map((lib) => ({ source: fs.realpathSync(lib), target: `${AGENT_RUNTIME_DIR}/${path.basename(lib)}` })),
    { source: bundle, target: `${AGENT_RUNTIME_DIR}/pyro-agent.mjs` },
    // Code the agent loads on first use (terminal emulator, tar), split out of its entry file.
    ...(fs.existsSync(path.join(path.dirname(bundle), "chunks")) ? [{ source: path.join(path.dirname(bundle), "chunks"), target: `${AGENT_RUNTIME_DIR}/chunks` }] : []),
    // node-pty (PTY shells) is a native addon; the agent imports it from here when a shell opens.
    { source: nodePtyDir(), target: `${AGENT_RUNTIME_DIR}/node_modules/node-pty` },
  ];
  cached = {
    binds,
    command: [
      `${AGENT_RUNTIME_DIR}/ld.so`,
      "--library-path",
      AGENT_RUNTIME_DIR,
      `${AGENT_RUNTIME_DIR}/node`,
      "--max-old-space-size=256",
      `${AGENT_RUNTIME_DIR}/pyro-agent.mjs`,
    ],
  };
  return cached;
}
