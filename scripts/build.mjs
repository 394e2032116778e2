// Builds pyro: the CLI and SDK as ESM bundles with code splitting (heavy modules such as the
// MCP SDK load only when used, which keeps `pyro` start-up fast), the in-sandbox agent as one
// self-contained file (it runs inside environments that have no node_modules), and types.
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";

const banner = {
  // CommonJS dependencies bundled into ESM still call require() for node built-ins.
  js: 'import { createRequire as __pyroCreateRequire } from "node:module"; const require = __pyroCreateRequire(import.meta.url);',
};

rmSync("dist", { recursive: true, force: true });
await Promise.all([
  build({
    entryPoints: { "cli/main": "src/cli/main.ts", index: "src/index.ts" },
    outdir: "dist",
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    sourcemap: true,
    chunkNames: "chunks/[name]-[hash]",
    banner,
    logLevel: "warning",
  }),
  // The allow-list DNS forwarder runs as its own host process per workspace (one file, no imports to resolve).
  build({
    entryPoints: ["src/runtime/network/dns-forwarder.ts"],
    outfile: "dist/network/dns-forwarder.mjs",
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    logLevel: "warning",
  }),
  // Hashes an environment layer as guest root (an ordinary user's pyro cannot read all of one).
  build({
    entryPoints: ["src/environments/layer-scan-main.ts"],
    outfile: "dist/environments/layer-scan.mjs",
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    logLevel: "warning",
  }),
  // Runs beside QEMU inside each VM workspace's jail, with the agent runtime's node.
  build({
    entryPoints: ["src/runtime/vm/supervisor.ts"],
    outfile: "dist/vm/pyro-vm-supervisor.mjs",
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    minify: true,
    logLevel: "warning",
  }),
  build({
    // Split so that what only some workspaces use (the terminal emulator, tar) loads on first
    // use instead of being parsed at every agent start.
    entryPoints: { "pyro-agent": "src/agent/main.ts" },
    outdir: "dist/agent",
    outExtension: { ".js": ".mjs" },
    chunkNames: "chunks/[name]-[hash]",
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    // A native addon: bind-mounted into the sandbox's agent runtime, not bundled.
    external: ["node-pty"],
    // Every workspace start parses this file: smaller is faster.
    minify: true,
    banner,
    logLevel: "warning",
  }),
]);
// The CLI's commands as data (src/ops/manifest.ts): written from the operation catalogue once
// here, so the CLI builds its commands at start-up without loading the schema library.
await build({
  entryPoints: ["src/ops/manifest-main.ts"],
  outfile: "dist/build/manifest-main.mjs",
  bundle: true,
  format: "esm",
  platform: "node",
  target: "node20",
  banner,
  logLevel: "warning",
});
execFileSync(process.execPath, ["dist/build/manifest-main.mjs", "dist/cli/commands.json"], { stdio: "inherit" });
rmSync("dist/build", { recursive: true, force: true });
execFileSync("npx", ["tsc", "-p", "tsconfig.build.json"], { stdio: "inherit" });
