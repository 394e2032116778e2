/**
 * The workspace state store: one directory per workspace under `<home>/workspaces/<id>/` with
 * an atomically replaced `workspace.json`, an append-only `history.jsonl`, and cross-process
 * locks so any number of CLI processes, SDK instances and MCP servers share workspaces
 * without a daemon and without lost updates. History and event lines are written with the
 * workspace's secret values already redacted, so neither journal ever holds one at rest.
 * Removing a workspace removes everything of it — processes, cgroups, sockets, locks,
 * directory — and what a killed call left half-done (a `.deleting-*` directory, a directory a
 * create never wrote a record into, sockets and locks of workspaces that are gone) is finished
 * by later calls, a few at a time. Host-side; only touches pyro-owned paths.
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import lockfile from "proper-lockfile";
import { homeLayout } from "../shared/home.js";
import { readJsonIfExists, writeJsonAtomic } from "../shared/atomic.js";
import { PyroError } from "../shared/errors.js";
import type { WorkspaceRecord, CommandRecord, WorkspaceEvent } from "./types.js";
import { removeTree } from "../runtime/confine/trees.js";
import { sweepSandbox } from "../runtime/confine/sandbox.js";
import { processStartTime } from "../shared/process.js";
import { looksLikeWorkspaceId } from "./ids.js";
import { secretRedactor } from "./secrets.js";
import { releaseWorkspaceDisk } from "../runtime/confine/disk.js";

/** Locks older than this with no heartbeat belong to a dead process and are taken over. */
const LOCK_STALE_MS = 10_000;
/** How long a caller waits for a lock another live process holds. */
const LOCK_WAIT_MS = 30_000;
/** Leftover workspace directories a call finishes removing besides its own work (see `finishInterrupted`). */
const LEFTOVERS_PER_CALL = 2;

/** This process as a lock or a removal names its owner: pid and kernel start time (pids are reused). */
function ownerTag(): string {
  return `${process.pid}.${processStartTime(process.pid) ?? 0}`;
}

/**
 * Names a lock's holder. Written whole (a sibling renamed over it): a waiter must never read
 * the empty file a plain write shows between its create and its write, take it for a dead
 * holder's, and break a lock that is being taken — two callers would then both hold it.
 * The temporary file starts with the lock's name, so a workspace's removal sweeps one left by
 * a killed holder. Not `writeFileAtomic`: its fsyncs would cost every lock taken, and a holder's
 * name matters only while the holder runs, never across a crash of the host.
 */
function writeOwner(ownerPath: string, tag: string): void {
  const tmp = `${ownerPath}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, tag, { mode: 0o600 });
  fs.renameSync(tmp, ownerPath);
}

/**
 * Whether the process an owner tag names still runs; a bare pid (older pyro) is checked by pid
 * alone. A tag that names no process proves nothing and counts as alive: such a lock is judged
 * by staleness.
 */
function ownerAlive(tag: string): boolean {
  const [pid, start] = tag.split(".").map(Number);
  if (pid === undefined || !Number.isInteger(pid) || pid <= 0) return true;
  const actual = processStartTime(pid);
  return actual !== null && (start === undefined || Number.isNaN(start) || actual === start);
}

export class StateStore {
  readonly layout: ReturnType<typeof homeLayout>;

  constructor(readonly home: string) {
    this.layout = homeLayout(home);
  }

  async init(): Promise<void> {
    for (const dir of [this.layout.home, this.layout.workspaces, this.layout.run, this.layout.locks]) {
      await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    }
  }

  workspaceDir(id: string): string {
    return path.join(this.layout.workspaces, id);
  }

  paths(id: string) {
    const dir = this.workspaceDir(id);
    return {
      dir,
      record: path.join(dir, "workspace.json"),
      history: path.join(dir, "history.jsonl"),
      sandboxState: path.join(dir, "sandbox"),
      workspace: path.join(dir, "workspace"),
      log: path.join(dir, "sandbox.log"),
      ops: path.join(dir, "ops"),
      snapshots: path.join(dir, "snapshots"),
      events: path.join(dir, "events.jsonl"),
      secrets: path.join(dir, "secrets.json"),
      socket: path.join(this.layout.run, `${id}.sock`),
    };
  }

  /**
   * Runs `fn` holding the named lock. Locks are directories (atomic mkdir) refreshed while
   * held, with the holder's pid and start time beside them (`NAME.lock.owner`): a lock whose
   * holder is dead (a killed CLI) is taken over at once, one whose holder left no owner file by
   * staleness, so a killed call never wedges a workspace.
   */
  async withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const release = await this.acquire(name);
    try {
      return await fn();
    } finally {
      await release();
    }
  }

  private async acquire(name: string): Promise<() => Promise<void>> {
    const target = path.join(this.layout.locks, name);
    const lockPath = `${target}.lock`;
    const ownerPath = `${lockPath}.owner`;
    const deadline = Date.now() + LOCK_WAIT_MS;
    let delay = 5;
    for (;;) {
      try {
        const release = await lockfile.lock(target, {
          realpath: false,
          lockfilePath: lockPath,
          stale: LOCK_STALE_MS,
          retries: 0,
          // A lock removed under us (its workspace deleted meanwhile) must not crash the process from a timer.
          onCompromised: () => undefined,
        });
        const tag = ownerTag();
        writeOwner(ownerPath, tag);
        return async () => {
          try {
            if (fs.readFileSync(ownerPath, "utf8") === tag) fs.rmSync(ownerPath, { force: true });
          } catch {
            // already gone
          }
          await release().catch(() => undefined);
        };
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "ENOENT") await fsp.mkdir(this.layout.locks, { recursive: true, mode: 0o700 });
        else if (code !== "ELOCKED" || Date.now() > deadline) {
          throw new PyroError("workspace_busy", `could not take the ${name} lock: ${(err as Error).message}`, {
            hint: "Another pyro call is changing this workspace; retry in a moment.",
          });
        } else if (!breakDeadLock(lockPath, ownerPath)) {
          await new Promise((r) => setTimeout(r, delay));
          delay = Math.min(50, delay * 1.2);
        }
      }
    }
  }

  async read(id: string): Promise<WorkspaceRecord | undefined> {
    return readJsonIfExists<WorkspaceRecord>(this.paths(id).record);
  }

  /** A workspace's record by id; `workspace_not_found` when there is none. */
  async load(id: string): Promise<WorkspaceRecord> {
    const record = await this.read(id);
    if (!record) throw new PyroError("workspace_not_found", `workspace ${id} does not exist`, { hint: "Run `pyro workspace list` to see workspaces." });
    return record;
  }

  async write(record: WorkspaceRecord): Promise<void> {
    await writeJsonAtomic(this.paths(record.workspace_id).record, record);
  }

  async listIds(): Promise<string[]> {
    try {
      return (await fsp.readdir(this.layout.workspaces)).filter((n) => !n.startsWith("."));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
  }

  async readAll(): Promise<WorkspaceRecord[]> {
    const records = await Promise.all((await this.listIds()).map((id) => this.read(id).catch(() => undefined)));
    return records.filter((r): r is WorkspaceRecord => r !== undefined);
  }

  /** One JSON line per command; a single O_APPEND write, so concurrent appends never interleave. */
  async appendHistory(id: string, entry: CommandRecord): Promise<void> {
    await fsp.appendFile(this.paths(id).history, JSON.stringify(await this.redacted(id, entry)) + "\n", { mode: 0o600 });
  }

  /** `value` with the workspace's secret values replaced, for what is written to disk. */
  private async redacted<T>(id: string, value: T): Promise<T> {
    return (await secretRedactor(this.paths(id).secrets)).redactValue(value);
  }

  async readHistory(id: string): Promise<CommandRecord[]> {
    let text: string;
    try {
      text = await fsp.readFile(this.paths(id).history, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    const out: CommandRecord[] = [];
    for (const line of text.split("\n")) {
      if (!line) continue;
      try {
        out.push(JSON.parse(line) as CommandRecord);
      } catch {
        // A torn last line from a crash is skipped, not fatal.
      }
    }
    return out;
  }

  /** The review journal (see `workspace summary`): one JSON line per mutating event. */
  async appendEvent(id: string, event: WorkspaceEvent): Promise<void> {
    await fsp.appendFile(this.paths(id).events, JSON.stringify(await this.redacted(id, event)) + "\n", { mode: 0o600 });
  }

  async readEvents(id: string): Promise<WorkspaceEvent[]> {
    let text: string;
    try {
      text = await fsp.readFile(this.paths(id).events, "utf8");
    } catch {
      return [];
    }
    return text
      .split("\n")
      .filter(Boolean)
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as WorkspaceEvent];
        } catch {
          return [];
        }
      });
  }

  /**
   * Marks an operation in flight (exec) so the TTL reaper never removes a workspace in use.
   * The marker names the owning pid; markers of dead pids are ignored.
   */
  async beginOperation(id: string): Promise<() => Promise<void>> {
    const dir = this.paths(id).ops;
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    const file = path.join(dir, `${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`);
    await fsp.writeFile(file, "");
    return () => fsp.rm(file, { force: true });
  }

  hasLiveOperations(id: string): boolean {
    let names: string[];
    try {
      names = fs.readdirSync(this.paths(id).ops);
    } catch {
      return false;
    }
    let live = false;
    for (const n of names) {
      const pid = Number(n.split("-")[0]);
      try {
        process.kill(pid, 0);
        live = true;
      } catch {
        // The process that began this operation is gone (e.g. a killed CLI): drop its marker,
        // so a later process reusing the pid never makes the workspace look busy.
        fs.rmSync(path.join(this.paths(id).ops, n), { force: true });
      }
    }
    return live;
  }

  /** The host directories a workspace's sandboxes mount, by which `sweepSandbox` finds them. */
  private sandboxDirs(id: string, dir = this.workspaceDir(id)): string[] {
    return [dir, path.join(this.layout.run, `${id}.vm`)];
  }

  /**
   * Kills whatever of the workspace's sandboxes still runs, recorded or not (a start a killed
   * call never wrote down, a killed snapshot's copy), and waits until it is gone.
   */
  async sweepSandbox(id: string): Promise<void> {
    await sweepSandbox(id, this.sandboxDirs(id));
  }

  /**
   * Removes a workspace and everything of it. In this order, so that a call killed at any
   * point leaves something the next call finishes: every process and cgroup of it (nothing may
   * write into the tree while it goes); its secrets (they must not wait in a half-removed
   * directory); then the directory is renamed to `.deleting-ID-OWNER` (never again listed as a
   * workspace) and removed; last its sockets and locks.
   */
  async removeWorkspace(id: string): Promise<void> {
    const p = this.paths(id);
    await this.sweepSandbox(id);
    await fsp.rm(p.secrets, { force: true });
    // A disk-limited /workspace is a mount: unmounted before the directory moves, so the removal
    // never walks into it and no mount outlives its workspace.
    await releaseWorkspaceDisk(p.workspace);
    const trash = path.join(this.layout.workspaces, `.deleting-${id}-${ownerTag()}`);
    try {
      await fsp.rename(p.dir, trash);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      await this.removeRunFiles(id);
      return;
    }
    await removeTree(trash);
    await this.removeRunFiles(id);
  }

  /**
   * Sockets (`run/ID.*`: the agent's, slirp4netns's, a VM's run directory, a bind in flight)
   * and locks (`locks/ID.*`) of a workspace. Not the workspace lock itself: a delete holds it,
   * and its release removes it (removed here, another caller could take it meanwhile and the
   * release would remove theirs); a dead holder's is `finishInterrupted`'s.
   */
  private async removeRunFiles(id: string): Promise<void> {
    for (const dir of [this.layout.run, this.layout.locks]) {
      for (const name of await readdirOrEmpty(dir)) {
        if (!name.startsWith(`${id}.`) || (dir === this.layout.locks && (name === `${id}.lock` || name === `${id}.lock.owner`))) continue;
        await fsp.rm(path.join(dir, name), { recursive: true, force: true });
      }
    }
  }

  /**
   * Finishes what killed calls left, at most `budget` workspace directories per call (each may
   * hold a large tree; the rest wait for the next call), plus every stray socket and lock:
   * - `.deleting-ID-OWNER` whose owner is dead: a delete killed half-way;
   * - a workspace directory without `workspace.json`: a create killed before its first record
   *   write, which happens under the registry lock, so it is judged under that lock;
   * - sockets and locks named for a workspace whose directory is gone (locks only once their
   *   holder is dead or they are stale: a delete in progress still holds its own).
   * Returns the ids whose directories it removed.
   */
  async finishInterrupted(budget = LEFTOVERS_PER_CALL): Promise<string[]> {
    const finished: string[] = [];
    const names = await readdirOrEmpty(this.layout.workspaces);
    for (const name of names) {
      if (finished.length >= budget) return finished;
      const m = /^\.deleting-([^-]+)-(.+)$/.exec(name);
      if (!m || ownerAlive(m[2]!)) continue;
      const id = m[1]!;
      const dir = path.join(this.layout.workspaces, name);
      await sweepSandbox(id, this.sandboxDirs(id, dir));
      await fsp.rm(path.join(dir, "secrets.json"), { force: true });
      await removeTree(dir);
      finished.push(id);
    }
    const unrecorded = (ids: string[]) => ids.filter((id) => looksLikeWorkspaceId(id) && !fs.existsSync(this.paths(id).record) && fs.existsSync(this.workspaceDir(id)));
    let orphans = unrecorded(names);
    if (orphans.length > 0 && finished.length < budget) {
      await this.withLock("registry", async () => {
        orphans = unrecorded(orphans);
        for (const id of orphans.slice(0, budget - finished.length)) {
          await this.removeWorkspace(id);
          finished.push(id);
        }
      });
    }
    const present = new Set((await readdirOrEmpty(this.layout.workspaces)).map((n) => /^(?:\.deleting-)?([^-]+)/.exec(n)?.[1] ?? n));
    const gone = (name: string) => {
      const id = name.split(".")[0]!;
      return looksLikeWorkspaceId(id) && !present.has(id);
    };
    for (const name of await readdirOrEmpty(this.layout.run)) {
      if (gone(name)) await fsp.rm(path.join(this.layout.run, name), { recursive: true, force: true });
    }
    for (const name of await readdirOrEmpty(this.layout.locks)) {
      if (!gone(name) || !name.endsWith(".lock")) continue;
      const lockPath = path.join(this.layout.locks, name);
      if (lockIsDead(lockPath, `${lockPath}.owner`)) {
        await fsp.rm(lockPath, { recursive: true, force: true });
        await fsp.rm(`${lockPath}.owner`, { force: true });
      }
    }
    for (const name of await readdirOrEmpty(this.layout.locks)) {
      // An owner file whose lock is gone: its holder was killed between the two removals.
      if (gone(name) && name.endsWith(".lock.owner") && !fs.existsSync(path.join(this.layout.locks, name.slice(0, -".owner".length)))) {
        await fsp.rm(path.join(this.layout.locks, name), { force: true });
      }
    }
    return finished;
  }
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await fsp.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
}

/**
 * Whether a lock's holder is certainly gone: its owner file, written after the lock was made,
 * names a process that no longer runs; or, without an owner file, the lock is stale. An owner
 * file older than the lock belongs to an earlier holder and proves nothing.
 */
function lockIsDead(lockPath: string, ownerPath: string): boolean {
  let lock: fs.Stats;
  try {
    lock = fs.statSync(lockPath);
  } catch {
    return false;
  }
  try {
    const owner = fs.statSync(ownerPath);
    if (lock.birthtimeMs > 0 && owner.mtimeMs >= lock.birthtimeMs) return !ownerAlive(fs.readFileSync(ownerPath, "utf8").trim());
  } catch {
    // no owner file: judged by staleness
  }
  return lock.mtimeMs < Date.now() - LOCK_STALE_MS;
}

/**
 * Removes a lock whose holder is dead so the caller can take it now rather than after the
 * staleness period. The same narrow race as any stale-lock takeover (two callers removing one
 * dead lock, one of them the other's fresh lock) is bounded by re-checking right before removal.
 */
function breakDeadLock(lockPath: string, ownerPath: string): boolean {
  try {
    const owner = fs.statSync(ownerPath);
    const lock = fs.statSync(lockPath);
    if (!(lock.birthtimeMs > 0 && owner.mtimeMs >= lock.birthtimeMs)) return false;
    if (ownerAlive(fs.readFileSync(ownerPath, "utf8").trim())) return false;
    // Still the same lock (not one taken since by a live caller): same inode, same birth.
    const now = fs.statSync(lockPath);
    if (now.birthtimeMs !== lock.birthtimeMs || now.ino !== lock.ino) return false;
    fs.rmSync(ownerPath, { force: true });
    fs.rmdirSync(lockPath);
    return true;
  } catch {
    return false;
  }
}
