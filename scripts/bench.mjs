// `npm run bench`: pyro's speed on this machine, median and p95 over many runs, next to a floor
// measured in the same run (a bare `bwrap … true`). Workspaces are made in a throwaway state
// directory that shares the real environment cache; nothing is left behind.
// Usage: npm run bench [-- --runs N] [-- --json]
import { spawnSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Pyro } from "../dist/sdk/index.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const cli = path.join(root, "bin", "pyro.js");
const args = process.argv.slice(2);
const runs = Number(args[args.indexOf("--runs") + 1]) > 0 && args.includes("--runs") ? Number(args[args.indexOf("--runs") + 1]) : 20;
const asJson = args.includes("--json");
const ENV = "debian:12";

const stats = (samples) => {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)];
  return { runs: s.length, p50_ms: +q(0.5).toFixed(2), p95_ms: +q(0.95).toFixed(2), min_ms: +s[0].toFixed(2), max_ms: +s[s.length - 1].toFixed(2) };
};

async function time(fn) {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

function spawnTimed(cmd, argv, env) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, argv, { env, stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (d) => (err += d));
    child.on("exit", (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`${cmd} ${argv.join(" ")} exited ${code}: ${err}`))));
  });
}

const realHome = new Pyro();
const log = (line) => process.stderr.write(`${line}\n`);
log(`[bench] ensuring ${ENV} is cached in ${realHome.home}`);
await realHome.pullEnvironment(ENV, { onProgress: (e) => log(`[pull] phase=${e.phase} ${e.message}`) });

const home = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-bench-"));
fs.symlinkSync(path.join(realHome.home, "environments"), path.join(home, "environments"));
const pyro = new Pyro({ home });
const env = { ...process.env, PYRO_HOME: home };
const results = {};

try {
  log(`[bench] floor: bare bwrap --unshare-all true x${runs}`);
  const floor = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const r = spawnSync("bwrap", ["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--unshare-all", "true"]);
    if (r.status !== 0) throw new Error(`bwrap floor failed: ${r.stderr}`);
    floor.push(performance.now() - t0);
  }
  results.floor_bwrap_true = stats(floor);

  log(`[bench] SDK createWorkspace -> first exec returned x${runs}`);
  const create = [];
  for (let i = 0; i < runs; i++) {
    let id;
    create.push(
      await time(async () => {
        id = (await pyro.createWorkspace({ environment: ENV })).workspace_id;
        await pyro.execWorkspace(id, { command: ["true"] });
      }),
    );
    await pyro.deleteWorkspace(id);
  }
  results.sdk_create_to_first_exec = stats(create);

  const ws = await pyro.createWorkspace({ environment: ENV, name: "bench" });
  await pyro.execWorkspace(ws.workspace_id, { command: ["true"] });
  log(`[bench] SDK warm exec round trip x${runs * 5}`);
  const warm = [];
  for (let i = 0; i < runs * 5; i++) warm.push(await time(() => pyro.execWorkspace(ws.workspace_id, { command: ["true"] })));
  results.sdk_warm_exec = stats(warm);

  log(`[bench] CLI pyro workspace exec bench -- true x${runs}`);
  const cliExec = [];
  for (let i = 0; i < runs; i++) cliExec.push(await spawnTimed(process.execPath, [cli, "workspace", "exec", "bench", "--", "true"], env));
  results.cli_workspace_exec = stats(cliExec);

  log(`[bench] CLI pyro run ${ENV} -- true x${runs}`);
  const cliRun = [];
  for (let i = 0; i < runs; i++) cliRun.push(await spawnTimed(process.execPath, [cli, "run", ENV, "--", "true"], env));
  results.cli_run = stats(cliRun);

  // Snapshots and reset: a workspace holding N small files, checkpointed and restored.
  for (const files of [1000, 10000]) {
    const sw = await pyro.createWorkspace({ environment: ENV });
    await pyro.execWorkspace(sw.workspace_id, {
      command: `for d in $(seq 1 ${files / 100}); do mkdir -p d$d; for f in $(seq 1 100); do echo "file $d $f" > d$d/f$f.txt; done; done`,
      timeoutSeconds: 300,
    });
    const snapRuns = Math.max(5, Math.floor(runs / 2));
    log(`[bench] snapshot create and reset with ${files} files x${snapRuns}`);
    const snap = [];
    const reset = [];
    for (let i = 0; i < snapRuns; i++) {
      snap.push(await time(() => pyro.createSnapshot(sw.workspace_id, `s${i}`)));
      reset.push(await time(() => pyro.resetWorkspace(sw.workspace_id, { snapshot: `s${i}` })));
      await pyro.deleteSnapshot(sw.workspace_id, `s${i}`);
    }
    results[`snapshot_create_${files}_files`] = stats(snap);
    results[`reset_to_snapshot_${files}_files`] = stats(reset);
    log(`[bench] diff with ${files} files changed x${snapRuns}`);
    const diff = [];
    for (let i = 0; i < snapRuns; i++) diff.push(await time(() => pyro.diffWorkspace(sw.workspace_id)));
    results[`diff_${files}_files_added`] = stats(diff);
    await pyro.deleteWorkspace(sw.workspace_id);
  }

  log(`[bench] node -e 0 (Node start-up, for reference) x${runs}`);
  const nodeStart = [];
  for (let i = 0; i < runs; i++) nodeStart.push(await spawnTimed(process.execPath, ["-e", "0"], env));
  results.node_startup = stats(nodeStart);

  await pyro.deleteWorkspace(ws.workspace_id);
} finally {
  for (const w of (await pyro.listWorkspaces()).workspaces) await pyro.deleteWorkspace(w.workspace_id).catch(() => undefined);
  pyro.close();
  fs.rmSync(home, { recursive: true, force: true });
}

const meta = { date: new Date().toISOString(), host: `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.release()}`, node: process.version, runs };
if (asJson) {
  process.stdout.write(JSON.stringify({ meta, results }, null, 2) + "\n");
} else {
  process.stdout.write(`\n${meta.date}  ${meta.host}  node ${meta.node}\n\n| measurement | runs | p50 ms | p95 ms | min ms | max ms |\n|---|---|---|---|---|---|\n`);
  for (const [name, s] of Object.entries(results)) process.stdout.write(`| ${name} | ${s.runs} | ${s.p50_ms} | ${s.p95_ms} | ${s.min_ms} | ${s.max_ms} |\n`);
}
