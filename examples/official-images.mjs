// Official images as environments: pull Python's and Node's images from Docker Hub, seed a small
// project into a workspace made from each, run the project's tests there with the image's own
// toolchain (its PATH comes from the image), and delete the workspaces. Run from the repo root
// after `npm run build`:
//   node examples/official-images.mjs
// The references can be swapped, e.g. for a mirror or a private registry (credentials come from
// ~/.docker/config.json):
//   PYRO_PYTHON_IMAGE=registry.example.com/python:3.12-slim PYRO_NODE_IMAGE=… node examples/official-images.mjs
import { Pyro } from "../dist/index.js";

const projects = [
  {
    image: process.env.PYRO_PYTHON_IMAGE ?? "docker.io/library/python:3.12-slim",
    dir: "python",
    test: ["python3", "-m", "unittest", "discover", "-v", "-s", "tests", "-t", "."],
  },
  {
    image: process.env.PYRO_NODE_IMAGE ?? "docker.io/library/node:22-slim",
    dir: "node",
    test: ["node", "--test"],
  },
];

const pyro = new Pyro();
let failed = 0;
try {
  for (const project of projects) {
    // Pulls once; later runs find the image installed and return at once.
    // Progress: a line per layer step (the byte counts in between are left out here).
    const onProgress = (e) => {
      if (!e.message.includes(": downloading ")) console.error(`[pull] ${e.message}`);
    };
    await pyro.pullEnvironment(project.image, { onProgress });
    const ws = await pyro.createWorkspace({
      environment: project.image,
      name: `images-${project.dir}-${process.pid}`,
      labels: { example: "official-images" },
      seedPath: new URL(`./image-projects/${project.dir}`, import.meta.url).pathname,
    });
    try {
      const version = await pyro.execWorkspace(ws.workspace_id, { command: [project.test[0], "--version"] });
      const run = await pyro.execWorkspace(ws.workspace_id, { command: project.test, timeoutSeconds: 120 });
      console.log(`${project.image} (${version.stdout.trim()}): tests exit_code=${run.exit_code}`);
      console.log(run.stdout + run.stderr);
      if (run.exit_code !== 0) failed += 1;
    } finally {
      await pyro.deleteWorkspace(ws.workspace_id);
    }
  }
} finally {
  pyro.close();
}
process.exitCode = failed === 0 ? 0 : 1;
