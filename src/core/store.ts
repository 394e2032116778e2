/**
 * The workspace state store: one directory per workspace under `<home>/workspaces/<id>/` with
 * an atomically replaced `workspace.json`, an append-only `history.jsonl`, and cross-process
 * locks so any number of CLI processes, SDK instances and MCP servers share workspaces
 * without a daemon and without lost updates. Host-side; only touches pyro-owned paths.
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
import { releaseWorkspaceDisk } from "../runtime/confine/disk.js";

/** Locks older than this with no heartbeat belong to a dead process and are taken over. */
const LOCK_STALE_MS = 10_000;

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
   * held; a holder that died is detected by staleness, so a killed CLI never wedges a workspace.
   */
  async withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const target = path.join(this.layout.locks, name);
    let release: () => Promise<void>;
    try {
      release = await lockfile.lock(target, {
        realpath: false,
        lockfilePath: `${target}.lock`,
        stale: LOCK_STALE_MS,
        retries: { retries: 600, factor: 1.2, minTimeout: 5, maxTimeout: 50 },
      });
    } catch (err) {
      throw new PyroError("workspace_busy", `could not take the ${name} lock: ${(err as Error).message}`, {
        hint: "Another pyro call is changing this workspace; retry in a moment.",
      });
    }
    try {
      return await fn();
    } finally {
      await release().catch(() => undefined);
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
    await fsp.appendFile(this.paths(id).history, JSON.stringify(entry) + "\n", { mode: 0o600 });
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
    await fsp.appendFile(this.paths(id).events, JSON.stringify(event) + "\n", { mode: 0o600 });
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

  async removeWorkspace(id: string): Promise<void> {
    const p = this.paths(id);
    await fsp.rm(p.socket, { force: true });
    // A disk-limited /workspace is a mount: unmounted first, so the removal never walks into
    // it and no mount outlives its workspace.
    await releaseWorkspaceDisk(p.workspace);
    // Move aside first so a half-finished removal never looks like a workspace.
    const trash = path.join(this.layout.workspaces, `.deleting-${id}-${process.pid}`);
    try {
      await fsp.rename(p.dir, trash);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw err;
    }
    await removeTree(trash);
    await fsp.rm(path.join(this.layout.locks, `${id}.lock`), { recursive: true, force: true });
  }
}
