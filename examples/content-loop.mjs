// The content loop with the SDK: seed a workspace from the sample repo, read a file, edit with
// a file write and a patch, run the tests, see the diff, checkpoint, break things, reset to the
// checkpoint, and export the result to the host. Cleans up after itself.
// Run from the repo root after `npm run build`:
//   node examples/content-loop.mjs
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Pyro, PyroError } from "../dist/index.js";

const pyro = new Pyro();
await pyro.pullEnvironment("debian:12"); // fast when already cached
const out = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-content-loop-"));
const ws = await pyro.createWorkspace({
  environment: "debian:12",
  name: `content-loop-${process.pid}`,
  seedPath: new URL("./sample-repo", import.meta.url).pathname,
});
const id = ws.workspace_id;
const tests = async () => (await pyro.execWorkspace(id, { command: ["sh", "test.sh"] })).stdout.trim().split("\n").pop();

try {
  // 1. Read: bounded, paged, never a shell `cat`.
  const source = await pyro.readWorkspaceFile(id, "wordcount.sh", { maxBytes: 120 });
  console.log(`read ${source.bytes_returned} of ${source.size} bytes; next: ${source.continue_with}`);

  // 2. Edit: a whole file with file write (no quoting), a change to an existing one with a patch.
  await pyro.writeWorkspaceFile(id, "CHANGELOG.md", { text: "## Unreleased\n- wordcount: say which file it cannot read\n" });
  const patch = [
    "--- a/wordcount.sh",
    "+++ b/wordcount.sh",
    "@@ -2,6 +2,7 @@",
    " # wordcount.sh: prints the number of words in each file given, then the total.",
    " total=0",
    ' for f in "$@"; do',
    '+  [ -r "$f" ] || { echo "wordcount: cannot read $f" >&2; exit 1; }',
    '   n=$(wc -w < "$f")',
    '   echo "$f $n"',
    "   total=$((total + n))",
    "",
  ].join("\n");
  const applied = await pyro.applyWorkspacePatch(id, { patch });
  console.log("patched:", applied.files.map((f) => `${f.action} ${f.path}`).join(", "));

  // A patch that no longer fits changes nothing and says exactly where it failed.
  try {
    await pyro.applyWorkspacePatch(id, { patch });
  } catch (err) {
    if (!(err instanceof PyroError)) throw err;
    console.log(`again: ${err.code} in ${err.details.file}, hunk ${err.details.hunk}`);
  }
  console.log("tests:", await tests());

  // 3. Diff: what changed since create, as a list and as a patch `git apply` accepts.
  const diff = await pyro.diffWorkspace(id);
  console.log("changes:", diff.changes.map((c) => `${c.change} ${c.path}`).join(", "));
  fs.writeFileSync(path.join(out, "change.patch"), diff.patch);

  // 4. Checkpoint, break something (a file and a "package" outside /workspace), reset.
  await pyro.createSnapshot(id, "patched");
  await pyro.writeWorkspaceFile(id, "wordcount.sh", { text: "exit 1\n" });
  await pyro.execWorkspace(id, { command: "touch /usr/local/bin/leftover" });
  console.log("after breaking it:", await tests());
  const reset = await pyro.resetWorkspace(id, { snapshot: "patched" });
  const leftover = await pyro.execWorkspace(id, { command: "test -e /usr/local/bin/leftover" });
  console.log(`reset to ${reset.reset_to} (reset #${reset.reset_count}): ${await tests()}; leftover gone: ${leftover.exit_code !== 0}`);

  // 5. Export: files come out to the host; an existing output is never overwritten silently.
  const exported = await pyro.exportWorkspace(id, "wordcount.sh", { outputPath: path.join(out, "wordcount.sh") });
  console.log(`exported ${exported.bytes} bytes to ${exported.output_path}`);
  try {
    await pyro.exportWorkspace(id, "wordcount.sh", { outputPath: exported.output_path });
  } catch (err) {
    if (!(err instanceof PyroError)) throw err;
    console.log(`export again: ${err.code}`);
  }

  // Paths outside /workspace are refused, whichever way they are spelled.
  await pyro.readWorkspaceFile(id, "../etc/passwd").catch((err) => console.log(`../etc/passwd: ${err.code}`));
} finally {
  await pyro.deleteWorkspace(id);
  pyro.close();
  fs.rmSync(out, { recursive: true, force: true });
}
