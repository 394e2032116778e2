/**
 * `node layer-scan.mjs DIR`: prints `scanLayer(DIR)` as JSON. Run as guest root inside the
 * sandbox identity's user namespace when pyro is an ordinary user, whose own permissions cannot
 * read every directory of a layer (apt's `partial/` belongs to `_apt`, mode 0700).
 */
import { scanLayer } from "./layer-scan.js";

const dir = process.argv[2];
if (!dir) {
  process.stderr.write("usage: layer-scan DIR\n");
  process.exit(2);
}
process.stdout.write(JSON.stringify(await scanLayer(dir)));
