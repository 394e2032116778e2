/**
 * Where pyro's own package is installed: bundles in dist/ (agent, DNS forwarder, VM supervisor),
 * node_modules and the demo files are found from it. Works from src/ (tests) and dist/ alike.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { PyroError } from "./errors.js";

/** The package root, found from this module's location by walking up to pyro's package.json. */
export function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = path.join(dir, "package.json");
    if (fs.existsSync(manifest)) {
      const pkg = JSON.parse(fs.readFileSync(manifest, "utf8")) as { name?: string };
      if (pkg.name === "pyro-mcp") return dir;
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new PyroError("internal_error", "cannot locate the pyro-mcp package root");
    dir = parent;
  }
}
