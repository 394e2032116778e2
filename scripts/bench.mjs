// `npm run bench`: pyro's speed on this machine, median and p95 over many runs, next to a floor
// measured in the same run (a bare `bwrap … true`). Workspaces are made in a throwaway state
// directory that shares the real environment cache; nothing is left behind.
// When run as root it also measures the same core figures as an ordinary user (the first of
// $PYRO_BENCH_USER, pyro-ci, pyrotest that exists), in the same run, each next to its own floor.
// With --baseline DIR (another checkout of pyro, built), the CLI's start-up (`pyro --version`,
// `pyro workspace exec`) is also measured for that build, interleaved run by run with this one, so
// a change's effect on start-up is read in one run on the same noisy machine.
// --only image-pull measures only the floor and the image rows: a ~100 MB three-layer image pushed
// to Debian's docker-registry on 127.0.0.1, pulled by pyro's puller (download + verify), by
// `skopeo copy` to an OCI layout (the same work, Debian's skopeo, same run) and by the full
// `pyro env pull` (download + verify + unpack + install), each into a fresh state directory; and
// create → first exec from that image next to the same from ${ENV}. The puller is bundled from
// src/ with esbuild when the section runs (it is not exported by the SDK).
// --only layers measures only the floor and the layered /workspace rows: a workspace seeded with
// 1 000, 10 000 and 100 000 files (the full bench stops at 10 000), 10 files changed, then run
// after run: snapshot create, diff against the baseline, reset to the baseline and to the
// snapshot, fork, and `workspace start` alone (the sandbox start that a reset and a fork include),
// and what the snapshot's new layer stores on disk. --only snapshots measures only the floor and
// the older rows that snapshot, reset and diff N files written in the workspace itself.
// Usage: npm run bench [-- --runs N] [-- --json] [-- --core-only] [-- --cli-only] [-- --only image-pull|layers|snapshots] [-- --baseline DIR]
import { spawnSync, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import http from "node:http";
import { Buffer } from "node:buffer";
import crypto from "node:crypto";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Pyro } from "../dist/index.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const cli = path.join(root, "bin", "pyro.js");
const args = process.argv.slice(2);
const runs = Number(args[args.indexOf("--runs") + 1]) > 0 && args.includes("--runs") ? Number(args[args.indexOf("--runs") + 1]) : 20;
const asJson = args.includes("--json");
// Only the floor, create → first exec and warm exec (what the ordinary-user pass measures).
const coreOnly = args.includes("--core-only");
// Only the floor and the CLI's start-up rows.
const cliOnly = args.includes("--cli-only");
// Only the floor and one section's rows: image-pull, layers or snapshots.
const only = args.includes("--only") ? args[args.indexOf("--only") + 1] : null;
if (only !== null && !["image-pull", "layers", "snapshots"].includes(only)) throw new Error("--only takes: image-pull, layers, snapshots");
const imagePullOnly = only === "image-pull";
const baselineCli = args.includes("--baseline") ? path.join(path.resolve(args[args.indexOf("--baseline") + 1]), "bin", "pyro.js") : null;
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

class CoreDone extends Error {}

/**
 * The CLI's start-up: `pyro --version` and `pyro workspace exec bench -- true`, and the same for
 * the --baseline build when given, alternating run by run.
 */
async function benchCliStartup(existing) {
  const ws = existing ?? (await pyro.createWorkspace({ environment: ENV, name: "bench" }));
  const builds = [["", cli], ...(baselineCli ? [["_baseline", baselineCli]] : [])];
  for (const [what, argv] of [
    ["cli_version", ["--version"]],
    ["cli_workspace_exec", ["workspace", "exec", "bench", "--", "true"]],
  ]) {
    log(`[bench] CLI pyro ${argv.join(" ")} x${runs}${baselineCli ? ", alternating with the baseline build" : ""}`);
    const samples = Object.fromEntries(builds.map(([suffix]) => [suffix, []]));
    for (let i = 0; i < runs; i++) for (const [suffix, file] of builds) samples[suffix].push(await spawnTimed(process.execPath, [file, ...argv], env));
    for (const [suffix] of builds) results[`${what}${suffix}`] = stats(samples[suffix]);
  }
  if (!existing) await pyro.deleteWorkspace(ws.workspace_id);
}

/** The same core figures as an ordinary user, through runuser, merged in as `user_*` rows. */
async function benchAsUser() {
  if (process.getuid() !== 0) return;
  const user = [process.env.PYRO_BENCH_USER, "pyro-ci", "pyrotest"].find((u) => u && spawnSync("id", ["-u", u]).status === 0);
  if (!user) {
    notes.push("No ordinary user to measure as (set PYRO_BENCH_USER): user figures not measured.");
    return;
  }
  const userHome = spawnSync("sh", ["-c", `getent passwd ${user} | cut -d: -f6`], { encoding: "utf8" }).stdout.trim();
  log(`[bench] the same core figures as ${user} (an ordinary user), x${runs}`);
  const r = spawnSync("runuser", ["-u", user, "--", "env", `HOME=${userHome}`, `PATH=${process.env.PATH}`, process.execPath, fileURLToPath(import.meta.url), "--core-only", "--json", "--runs", String(runs)], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    timeout: 900_000,
  });
  if (r.status !== 0) {
    notes.push(`The ordinary-user pass as ${user} failed (exit ${r.status}): user figures not measured.`);
    return;
  }
  const child = JSON.parse(r.stdout);
  for (const [name, value] of Object.entries(child.results)) results[`user_${name}`] = value;
  const ratio = (a, b) => (results[a] && results[b] ? (results[a].p50_ms / results[b].p50_ms).toFixed(2) : "?");
  notes.push(
    `As ${user}: create → first exec ${ratio("user_sdk_create_to_first_exec", "sdk_create_to_first_exec")}× root's, warm exec ${ratio("user_sdk_warm_exec", "sdk_warm_exec")}× root's (p50, same run).`,
  );
}

const realHome = new Pyro();
const log = (line) => process.stderr.write(`${line}\n`);
log(`[bench] ensuring ${ENV} is cached in ${realHome.home}`);
await realHome.pullEnvironment(ENV, { onProgress: (e) => log(`[pull] phase=${e.phase} ${e.message}`) });

const home = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-bench-"));
fs.symlinkSync(path.join(realHome.home, "environments"), path.join(home, "environments"));
// The VM backend's guest kit and images are caches too.
fs.mkdirSync(path.join(realHome.home, "vm"), { recursive: true });
fs.symlinkSync(path.join(realHome.home, "vm"), path.join(home, "vm"));
const pyro = new Pyro({ home });
const env = { ...process.env, PYRO_HOME: home };
const results = {};
const notes = [];

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

  if (cliOnly) {
    await benchCliStartup();
    throw new CoreDone();
  }
  if (imagePullOnly) {
    await benchImagePull();
    throw new CoreDone();
  }
  if (only === "layers") {
    await benchLayers([1000, 10000, 100000]);
    throw new CoreDone();
  }
  if (only === "snapshots") {
    await benchSnapshotFiles();
    throw new CoreDone();
  }

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
  if (coreOnly) throw new CoreDone();
  await benchAsUser();

  await benchCliStartup(ws);

  log(`[bench] CLI pyro run ${ENV} -- true x${runs}`);
  const cliRun = [];
  for (let i = 0; i < runs; i++) cliRun.push(await spawnTimed(process.execPath, [cli, "run", ENV, "--", "true"], env));
  results.cli_run = stats(cliRun);

  await benchSnapshotFiles();

  // The layered /workspace; 100 000 files only with --only layers (its seed alone takes minutes).
  await benchLayers([1000, 10000]);

  await benchNetwork();

  // The warmed daily loop a chat host drives: create → exec → reset → exec → delete.
  await pyro.prepare(ENV);
  log(`[bench] warmed daily loop (create, exec, reset, exec, delete) x${runs}`);
  const loop = [];
  for (let i = 0; i < runs; i++) {
    loop.push(
      await time(async () => {
        const w = await pyro.createWorkspace({ environment: ENV });
        await pyro.execWorkspace(w.workspace_id, { command: ["true"] });
        await pyro.resetWorkspace(w.workspace_id);
        await pyro.execWorkspace(w.workspace_id, { command: ["true"] });
        await pyro.deleteWorkspace(w.workspace_id);
      }),
    );
  }
  results.daily_loop_create_exec_reset_exec_delete = stats(loop);

  await benchVm();

  await benchImagePull();

  log(`[bench] node -e 0 (Node start-up, for reference) x${runs}`);
  const nodeStart = [];
  for (let i = 0; i < runs; i++) nodeStart.push(await spawnTimed(process.execPath, ["-e", "0"], env));
  results.node_startup = stats(nodeStart);

  await pyro.deleteWorkspace(ws.workspace_id);
} catch (err) {
  if (!(err instanceof CoreDone)) throw err;
} finally {
  for (const w of (await pyro.listWorkspaces()).workspaces) await pyro.deleteWorkspace(w.workspace_id).catch(() => undefined);
  pyro.close();
  fs.rmSync(home, { recursive: true, force: true });
}

/**
 * The layered /workspace (core/workspace-layers.ts) at each seed size: a workspace seeded with
 * `files` small files (100 directories of files/100), then, run after run, 10 files changed (one
 * exec, not timed) and timed: a snapshot (a fresh name each run: it copies only the live upper),
 * a diff against the baseline, a fork (deleted again outside the timing), `workspace start` after
 * a stop (the sandbox start a reset and a fork also pay), a reset to the baseline and a reset back
 * to the run's snapshot. The snapshots stay named, so the live stack grows by one layer a run, as
 * it does for a user who snapshots and resets in turn. What each snapshot's new layer stores is
 * measured on the host with `du -sb`, next to the seed layer's size and the snapshot's own
 * `entries` and `bytes`.
 */
async function benchLayers(sizes) {
  const seeds = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-bench-seeds-"));
  try {
    for (const files of sizes) {
      const seed = path.join(seeds, String(files));
      log(`[bench] layers: writing a seed of ${files} files`);
      for (let d = 1; d <= 100; d++) {
        fs.mkdirSync(path.join(seed, `d${d}`), { recursive: true });
        for (let f = 1; f <= files / 100; f++) fs.writeFileSync(path.join(seed, `d${d}`, `f${f}.txt`), `file ${d} ${f}\n`);
      }
      log(`[bench] layers: create seeded with ${files} files`);
      let ws;
      results[`layers_${files}_create_seeded`] = stats([await time(async () => (ws = await pyro.createWorkspace({ environment: ENV, seedPath: seed })))]);
      const id = ws.workspace_id;
      // The seed's files, on the host and in the new layer, are still being written back to the
      // disk: every fsync after this would wait behind them. They are the create's cost, not the
      // rows' below, so they are flushed first, untimed.
      spawnSync("sync");
      const layerDir = (layer) => path.join(home, "workspace-layers", layer);
      // Apparent bytes (what the files hold) and allocated bytes (what the disk gives them).
      const duBytes = (dir) => Number(spawnSync("du", ["-sb", dir], { encoding: "utf8" }).stdout.split("\t")[0]);
      const duAllocated = (dir) => Number(spawnSync("du", ["-s", "--block-size=1", dir], { encoding: "utf8" }).stdout.split("\t")[0]);
      const stackOf = (name) => JSON.parse(fs.readFileSync(path.join(home, "workspaces", id, "snapshots", `${name}.json`), "utf8")).layers;
      const seedLayer = stackOf("baseline").at(-1);
      const rows = { snapshot_create: [], diff_baseline: [], fork: [], workspace_start: [], reset_to_baseline: [], reset_to_snapshot: [] };
      const stored = [];
      log(`[bench] layers with ${files} files: change 10, snapshot, diff, fork, start, reset x${runs}`);
      for (let i = 0; i < runs; i++) {
        const change = await pyro.execWorkspace(id, { command: `for d in $(seq 1 10); do echo "run ${i}" >> /workspace/d$d/f1.txt; done` });
        if (change.exit_code !== 0) throw new Error(`changing 10 files failed: ${change.stderr}`);
        let info;
        rows.snapshot_create.push(await time(async () => (info = await pyro.createSnapshot(id, `s${i}`))));
        const newLayer = layerDir(stackOf(`s${i}`)[0]);
        stored.push({ du: duBytes(newLayer), allocated: duAllocated(newLayer), entries: info.entries, bytes: info.bytes });
        let diff;
        rows.diff_baseline.push(await time(async () => (diff = await pyro.diffWorkspace(id))));
        // A diff that does not see exactly the 10 changed files measures the wrong thing.
        if (diff.changes.length !== 10) throw new Error(`diff against baseline saw ${diff.changes.length} changes, not 10`);
        let fork;
        rows.fork.push(await time(async () => (fork = await pyro.forkWorkspace(id))));
        await pyro.deleteWorkspace(fork.workspace_id);
        await pyro.stopWorkspace(id);
        rows.workspace_start.push(await time(() => pyro.startWorkspace(id)));
        rows.reset_to_baseline.push(await time(() => pyro.resetWorkspace(id)));
        rows.reset_to_snapshot.push(await time(() => pyro.resetWorkspace(id, { snapshot: `s${i}` })));
        log(`[bench] layers with ${files} files: run ${i + 1}/${runs} done`);
      }
      for (const [row, samples] of Object.entries(rows)) results[`layers_${files}_${row}`] = stats(samples);
      const p50 = (row) => results[`layers_${files}_${row}`].p50_ms;
      const last = stored.at(-1);
      notes.push(
        `layers, ${files}-file seed (seed layer: du -sb ${duBytes(layerDir(seedLayer))} bytes, ${duAllocated(layerDir(seedLayer))} allocated): a snapshot after changing 10 files stores ` +
          `du -sb ${Math.min(...stored.map((s) => s.du))}–${Math.max(...stored.map((s) => s.du))} bytes, ${Math.min(...stored.map((s) => s.allocated))}–${Math.max(...stored.map((s) => s.allocated))} allocated, in its new layer (last one: ${last.entries} entries, ${last.bytes} bytes as SnapshotInfo reports); ` +
          `minus sandbox start (p50 − workspace start p50 ${p50("workspace_start")} ms): reset to baseline ${(p50("reset_to_baseline") - p50("workspace_start")).toFixed(1)} ms, ` +
          `reset to snapshot ${(p50("reset_to_snapshot") - p50("workspace_start")).toFixed(1)} ms, fork ${(p50("fork") - p50("workspace_start")).toFixed(1)} ms`,
      );
      await pyro.deleteWorkspace(id);
      fs.rmSync(seed, { recursive: true, force: true });
    }
  } finally {
    fs.rmSync(seeds, { recursive: true, force: true });
  }
}

/**
 * Snapshots and reset of a workspace holding N small files written in the workspace itself (so,
 * in the layered layout, all of them in the live upper: a snapshot copies them all).
 */
async function benchSnapshotFiles() {
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

}

/**
 * Network: a 100 MiB download from a server on the host's loopback into a workspace (egress with
 * --allow-host-loopback, so through slirp4netns), timed inside the workspace; and the round trip
 * of a small request to an echo server through a published port versus the same server run
 * directly on the host's loopback, on a kept-open connection and with a new connection each time.
 */
async function benchNetwork() {
  const SIZE = 100 * 2 ** 20;
  const chunk = Buffer.alloc(2 ** 20, 120);
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { "content-length": SIZE });
    let sent = 0;
    const pump = () => {
      while (sent < SIZE) {
        sent += chunk.length;
        if (!res.write(chunk)) return res.once("drain", pump);
      }
      res.end();
    };
    pump();
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const port = server.address().port;
  const dl = await pyro.createWorkspace({ environment: ENV, networkPolicy: "egress", allowHostLoopback: true });
  const downloads = Math.max(3, Math.floor(runs / 4));
  log(`[bench] 100 MiB download from host loopback into a workspace x${downloads}`);
  const times = [];
  try {
    for (let i = 0; i < downloads; i++) {
      const r = await pyro.execWorkspace(dl.workspace_id, {
        command: ["bash", "-c", `s=$(date +%s%N); exec 3<>/dev/tcp/10.0.2.2/${port}; printf 'GET / HTTP/1.0\r\n\r\n' >&3; n=$(cat <&3 | wc -c); e=$(date +%s%N); echo "$n $(( (e - s) / 1000 ))"`],
        timeoutSeconds: 120,
      });
      const [bytes, micros] = r.stdout.trim().split(" ").map(Number);
      if (!(bytes > SIZE)) throw new Error(`download got ${bytes} bytes: ${r.stderr}`);
      times.push(micros / 1000);
    }
  } finally {
    server.close();
    await pyro.deleteWorkspace(dl.workspace_id);
  }
  results.net_download_100mib = stats(times);
  notes.push(`net_download_100mib: ${(SIZE / 2 ** 20 / (results.net_download_100mib.p50_ms / 1000)).toFixed(0)} MiB/s at p50`);

  const ECHO = 'use IO::Socket::INET; my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$ARGV[0]", Listen => 64, ReuseAddr => 1) or die "listen: $!"; print "up\n"; STDOUT->flush; while (my $c = $s->accept) { $c->autoflush(1); while (my $l = <$c>) { print $c $l } close $c }';
  const freePort = () => new Promise((r) => { const s = net.createServer().listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => r(p)); }); });
  const hostEchoPort = await freePort();
  const hostEcho = spawn("perl", ["-e", ECHO, String(hostEchoPort)], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise((r) => hostEcho.stdout.once("data", r));
  const pw = await pyro.createWorkspace({ environment: ENV, networkPolicy: "egress+published-ports" });
  try {
    const svc = await pyro.startService(pw.workspace_id, "echo", { command: ["perl", "-e", ECHO, "8000"], readiness: { type: "tcp", port: 8000 }, publish: [8000] });
    const published = svc.published_ports[0].host_port;
    const n = runs * 10;
    /** Round trips of one line on one kept-open connection. */
    const keptOpen = async (p) => {
      const sock = net.connect(p, "127.0.0.1");
      await new Promise((r) => sock.once("connect", r));
      sock.setNoDelay(true);
      const samples = [];
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        await new Promise((r) => { sock.once("data", r); sock.write("ping\n"); });
        samples.push(performance.now() - t0);
      }
      sock.destroy();
      return stats(samples);
    };
    /** Connect, one line there and back, close. */
    const fresh = async (p) => {
      const samples = [];
      for (let i = 0; i < runs * 2; i++) {
        const t0 = performance.now();
        await new Promise((resolve, reject) => {
          const sock = net.connect(p, "127.0.0.1", () => sock.write("ping\n"));
          sock.setNoDelay(true);
          sock.once("data", () => { sock.destroy(); resolve(); });
          sock.once("error", reject);
        });
        samples.push(performance.now() - t0);
      }
      return stats(samples);
    };
    log(`[bench] request round trip: direct host loopback vs published port x${n}`);
    results.net_rtt_direct_loopback = await keptOpen(hostEchoPort);
    results.net_rtt_published_port = await keptOpen(published);
    log(`[bench] connect + round trip + close: direct host loopback vs published port x${runs * 2}`);
    results.net_connect_rtt_direct_loopback = await fresh(hostEchoPort);
    results.net_connect_rtt_published_port = await fresh(published);
    notes.push(`published port adds ${(results.net_rtt_published_port.p50_ms - results.net_rtt_direct_loopback.p50_ms).toFixed(3)} ms per round trip and ${(results.net_connect_rtt_published_port.p50_ms - results.net_connect_rtt_direct_loopback.p50_ms).toFixed(3)} ms per new connection at p50`);
  } finally {
    hostEcho.kill();
    await pyro.deleteWorkspace(pw.workspace_id);
  }
}

/**
 * Image pull: a ~100 MB image of three gzip layers (random bytes, so the wire carries all of
 * it, over a static busybox for the exec rows) pushed once to a loopback registry, then, run
 * after run, pulled by (a) pyro's puller, (b) `skopeo copy` to an OCI layout and (c) the CLI's
 * `pyro env pull`, each into a fresh directory, interleaved so noise hits all three alike.
 * (a) and (b) do the same work: fetch, verify and store the compressed blobs. Then create →
 * first exec from the pulled image next to the same from ${ENV}, also interleaved.
 */
async function benchImagePull() {
  const { build } = await import("esbuild");
  const tools = await build({
    stdin: {
      contents: 'export { pullImage } from "./src/environments/oci/pull.ts"; export { OCI, Pusher, makeLayer, startRegistry } from "./scripts/oci-registry.ts";',
      resolveDir: root,
      loader: "ts",
    },
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    // As in build.mjs: CommonJS dependencies bundled into ESM still call require() for built-ins.
    banner: { js: 'import { createRequire as __pyroCreateRequire } from "node:module"; const require = __pyroCreateRequire(import.meta.url);' },
    write: false,
    logLevel: "warning",
  });
  const toolsFile = path.join(home, "image-pull-tools.mjs");
  fs.writeFileSync(toolsFile, tools.outputFiles[0].text);
  const { pullImage, OCI, Pusher, makeLayer, startRegistry } = await import(toolsFile);

  const LAYER_BYTES = 33 * 2 ** 20;
  log("[bench] image pull: building and pushing a three-layer image of ~100 MB");
  const layers = [0, 1, 2].map((i) =>
    makeLayer({ [`data/layer${i}.bin`]: crypto.randomBytes(LAYER_BYTES) }, "gzip", i === 0 ? (dir) => {
      fs.mkdirSync(path.join(dir, "bin"));
      fs.copyFileSync("/bin/busybox", path.join(dir, "bin", "busybox"));
      for (const applet of ["sh", "true"]) fs.symlinkSync("busybox", path.join(dir, "bin", applet));
    } : undefined),
  ).map((layer) => ({ ...layer, mediaType: OCI.layerGzip }));
  const registry = await startRegistry();
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-bench-pull-"));
  try {
    const pushed = await new Pusher(registry).image("bench/img", "1", layers, { config: { Env: ["PATH=/bin"], WorkingDir: "/" } });
    const ref = `${registry.host}/bench/img:1`;
    const bytes = pushed.layers.reduce((sum, layer) => sum + layer.size, pushed.config.size);
    const pullRuns = Math.max(5, Math.floor(runs / 2));
    log(`[bench] image pull (${(bytes / 1e6).toFixed(1)} MB): pyro pullImage, skopeo copy, pyro env pull x${pullRuns}`);
    const samples = { pyro: [], skopeo: [], cli: [] };
    // The last run's CLI home stays: the workspace rows below use the image installed there.
    let imageHome;
    for (let i = 0; i < pullRuns; i++) {
      const run = fs.mkdtempSync(path.join(scratch, "run-"));
      // Each timed pull starts with no dirty pages of the one before (the unpack writes a lot),
      // and pyro and skopeo take turns going first, so neither pays for the other's writeback.
      const pulls = [
        async () => samples.pyro.push(await time(() => pullImage(path.join(run, "pyro"), ref))),
        async () => samples.skopeo.push(await spawnTimed("skopeo", ["copy", "--quiet", "--src-tls-verify=false", `docker://${ref}`, `oci:${path.join(run, "skopeo")}:x`], process.env)),
      ];
      for (const pull of i % 2 ? pulls.reverse() : pulls) {
        spawnSync("sync");
        await pull();
      }
      spawnSync("sync");
      imageHome = path.join(run, "cli");
      samples.cli.push(await spawnTimed(process.execPath, [cli, "env", "pull", ref], { ...process.env, PYRO_HOME: imageHome }));
      if (i < pullRuns - 1) fs.rmSync(run, { recursive: true, force: true });
    }
    results.image_pull_pyro = stats(samples.pyro);
    results.image_pull_skopeo = stats(samples.skopeo);
    results.image_env_pull_cli = stats(samples.cli);
    const seconds = (row, q) => (results[row][q] / 1000).toFixed(2);
    const rate = (row) => bytes / 1e6 / (results[row].p50_ms / 1000);
    const line = (label, row) => `${label} p50 ${seconds(row, "p50_ms")} s, p95 ${seconds(row, "p95_ms")} s, ${rate(row).toFixed(0)} MB/s at p50`;
    notes.push(
      `image pull of ${(bytes / 1e6).toFixed(1)} MB (3 gzip layers, loopback registry): ${line("pyro (download + verify)", "image_pull_pyro")}; ` +
        `${line("skopeo copy", "image_pull_skopeo")}; pyro/skopeo throughput ${(rate("image_pull_pyro") / rate("image_pull_skopeo")).toFixed(2)}× (target ≥ 0.8×); ` +
        `${line("pyro env pull (download + verify + unpack + install)", "image_env_pull_cli")}`,
    );

    // Create → first exec from the pulled image, next to the same from the catalog environment.
    const imagePyro = new Pyro({ home: imageHome });
    try {
      for (const [p, environment] of [[imagePyro, ref], [pyro, ENV]]) {
        const w = await p.createWorkspace({ environment });
        await p.execWorkspace(w.workspace_id, { command: ["true"] });
        await p.deleteWorkspace(w.workspace_id);
      }
      log(`[bench] create -> first exec: pulled image vs ${ENV}, interleaved x${runs}`);
      const create = { image: [], catalog: [] };
      for (let i = 0; i < runs; i++) {
        for (const [what, p, environment] of [["image", imagePyro, ref], ["catalog", pyro, ENV]]) {
          let id;
          create[what].push(
            await time(async () => {
              id = (await p.createWorkspace({ environment })).workspace_id;
              await p.execWorkspace(id, { command: ["true"] });
            }),
          );
          await p.deleteWorkspace(id);
        }
      }
      results.image_create_to_first_exec = stats(create.image);
      results.image_catalog_create_to_first_exec = stats(create.catalog);
      notes.push(`create → first exec from the pulled image is ${(results.image_create_to_first_exec.p50_ms / results.image_catalog_create_to_first_exec.p50_ms).toFixed(2)}× the same from ${ENV} (p50, same run)`);
    } finally {
      for (const w of (await imagePyro.listWorkspaces()).workspaces) await imagePyro.deleteWorkspace(w.workspace_id).catch(() => undefined);
      imagePyro.close();
    }
  } finally {
    await registry.stop();
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

/**
 * The VM backend: boot to agent-ready (as the supervisor in the VM's jail measures it, from its
 * own start to the guest agent's first word), create → first exec, a warm exec, and the host
 * memory an idle VM workspace holds (PSS of every process in its cgroup: QEMU, virtiofsd, the
 * supervisor). Fewer runs: under TCG emulation a boot takes seconds.
 */
async function benchVm() {
  const vmRuns = Math.max(3, Math.floor(runs / 4));
  let acceleration = null;
  const boot = [];
  const create = [];
  const memory = [];
  log(`[bench] VM backend: create -> first exec, boot -> agent ready, idle memory x${vmRuns}`);
  for (let i = 0; i < vmRuns; i++) {
    let info;
    try {
      create.push(
        await time(async () => {
          info = await pyro.createWorkspace({ environment: ENV, backend: "vm" });
          await pyro.execWorkspace(info.workspace_id, { command: ["true"] });
        }),
      );
    } catch (err) {
      notes.push(`vm backend not measured: ${err.message}`);
      return;
    }
    acceleration = info.isolation.match(/acceleration: (\w+)/)?.[1] ?? acceleration;
    const logText = fs.readFileSync(path.join(home, "workspaces", info.workspace_id, "sandbox.log"), "utf8");
    const ready = logText.match(/agent ready after (\d+) ms/g)?.pop()?.match(/\d+/)?.[0];
    if (ready) boot.push(Number(ready));
    if (i === 0) {
      const warm = [];
      for (let j = 0; j < runs * 2; j++) warm.push(await time(() => pyro.execWorkspace(info.workspace_id, { command: ["true"] })));
      results.vm_warm_exec = stats(warm);
    }
    await new Promise((r) => setTimeout(r, 2000));
    memory.push(idlePssMib(info.workspace_id));
    await pyro.deleteWorkspace(info.workspace_id);
  }
  if (boot.length) results.vm_boot_to_agent_ready = stats(boot);
  results.vm_create_to_first_exec = stats(create);
  const mem = [...memory].sort((a, b) => a - b);
  notes.push(`vm backend: acceleration ${acceleration}; idle VM workspace holds ${mem[Math.floor(mem.length / 2)].toFixed(0)} MiB of host memory (PSS, median of ${mem.length}; guest RAM is touched lazily)`);
}

/** Proportional set size of every process in a workspace's memory cgroup, in MiB. */
function idlePssMib(id) {
  const procs = [`/sys/fs/cgroup/memory/pyro/${id}/cgroup.procs`, `/sys/fs/cgroup/pyro/${id}/cgroup.procs`].find((f) => fs.existsSync(f));
  if (!procs) return NaN;
  let kib = 0;
  for (const pid of fs.readFileSync(procs, "utf8").split("\n").filter(Boolean)) {
    try {
      kib += Number(fs.readFileSync(`/proc/${pid}/smaps_rollup`, "utf8").match(/^Pss:\s+(\d+)/m)?.[1] ?? 0);
    } catch {
      // exited
    }
  }
  return kib / 1024;
}

const meta = { date: new Date().toISOString(), host: `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.release()}`, node: process.version, runs };
if (asJson) {
  process.stdout.write(JSON.stringify({ meta, results, notes }, null, 2) + "\n");
} else {
  process.stdout.write(`\n${meta.date}  ${meta.host}  node ${meta.node}\n\n| measurement | runs | p50 ms | p95 ms | min ms | max ms | p50 × floor |\n|---|---|---|---|---|---|---|\n`);
  for (const [name, s] of Object.entries(results)) {
    // Each row against the floor measured as the same user in the same run.
    const floor = results[name.startsWith("user_") ? "user_floor_bwrap_true" : "floor_bwrap_true"];
    const times = floor ? (s.p50_ms / floor.p50_ms).toFixed(1) : "";
    process.stdout.write(`| ${name} | ${s.runs} | ${s.p50_ms} | ${s.p95_ms} | ${s.min_ms} | ${s.max_ms} | ${times} |\n`);
  }
  if (notes.length) process.stdout.write(`\n${notes.join("\n")}\n`);
}
