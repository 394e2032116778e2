/**
 * Writes the CLI manifest (ops/manifest.ts) as JSON to the path given: run by `npm run build`.
 */
import fs from "node:fs";
import { OPERATIONS } from "./index.js";
import { cliManifest } from "./manifest.js";

fs.writeFileSync(process.argv[2]!, `${JSON.stringify(cliManifest(OPERATIONS), null, 1)}\n`);
