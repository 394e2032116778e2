// Services, shells and secrets from the SDK: start the use-case repo's app as a service and wait
// until it answers, drive a shell and read it as plain text, and use a secret without seeing it.
// Run from the repo root after `npm run build`: node examples/services-shells.mjs
import { Pyro } from "../dist/index.js";

const pyro = new Pyro();
await pyro.pullEnvironment("debian:12");
const ws = await pyro.createWorkspace({
  environment: "debian:12",
  name: `services-${process.pid}`,
  seedPath: new URL("./use-case-repo", import.meta.url).pathname,
  secrets: { API_TOKEN: "example-s3cret-token" },
});
try {
  // A service returns once its readiness check passes (or says why it did not).
  const app = await pyro.startService(ws.workspace_id, "app", {
    command: ["perl", "server.pl", "8080"],
    readiness: { type: "http", url: "http://127.0.0.1:8080/" },
  });
  console.log(`service app: ${app.state} (ready at ${app.ready_at})`);
  const logs = await pyro.logsService(ws.workspace_id, "app");
  console.log(`its log: ${logs.stdout.trim()}`);

  // A shell on a real PTY, read back as the lines a person would see.
  const shell = await pyro.openShell(ws.workspace_id);
  await pyro.writeShell(ws.workspace_id, shell.shell_id, { input: "printf '\\033[32mgreen\\033[0m and\\rprogress 100%%\\n'" });
  const screen = await pyro.readShell(ws.workspace_id, shell.shell_id, { plain: true, waitForPattern: "progress 100%" });
  console.log(`shell, plain: ${JSON.stringify(screen.output.split("\n").find((l) => l.startsWith("progress")))}`);
  await pyro.closeShell(ws.workspace_id, shell.shell_id);

  // The secret is in the environment of this one command, and never in what comes back.
  const r = await pyro.execWorkspace(ws.workspace_id, { command: 'echo "token is $API_TOKEN"', secretEnv: ["API_TOKEN"] });
  console.log(`exec output: ${r.stdout.trim()}`);

  await pyro.stopService(ws.workspace_id, "app");
  console.log(`after stop: ${(await pyro.statusService(ws.workspace_id, "app")).state}`);
} finally {
  await pyro.deleteWorkspace(ws.workspace_id);
  pyro.close();
}
