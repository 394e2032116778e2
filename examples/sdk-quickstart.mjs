// SDK quick start: create a workspace seeded from the sample repo, run its tests, read the
// command history, delete the workspace. Run from the repo root after `npm run build`:
//   node examples/sdk-quickstart.mjs
import { Pyro, PyroError } from "../dist/index.js";

const pyro = new Pyro();
await pyro.pullEnvironment("debian:12"); // fast when already cached
const ws = await pyro.createWorkspace({
  environment: "debian:12",
  name: `quickstart-${process.pid}`,
  labels: { example: "sdk" },
  seedPath: new URL("./sample-repo", import.meta.url).pathname,
});
try {
  const test = await pyro.execWorkspace(ws.workspace_id, { command: ["sh", "test.sh"], timeoutSeconds: 60 });
  console.log(`tests: exit_code=${test.exit_code} (${test.outcome})\n${test.stdout}`);

  // The same workspace through a handle, by name.
  const handle = pyro.workspace(ws.name);
  const shell = await handle.exec("ls | wc -l");
  console.log(`files in /workspace: ${shell.stdout.trim()}`);

  const logs = await pyro.logsWorkspace(ws.workspace_id);
  for (const c of logs.commands) console.log(`#${c.sequence} exit=${c.exit_code} ${c.command.join(" ")}`);

  try {
    await pyro.statusWorkspace("no-such-workspace");
  } catch (err) {
    if (err instanceof PyroError) console.log(`errors carry a stable code: ${err.code}`);
  }
} finally {
  await pyro.deleteWorkspace(ws.workspace_id);
  pyro.close();
}
