/**
 * Where pyro keeps its state: `$PYRO_HOME`, else `$XDG_STATE_HOME/pyro`, else
 * `~/.local/state/pyro`. Pure path arithmetic; creates nothing.
 */
import os from "node:os";
import path from "node:path";

export function resolvePyroHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.PYRO_HOME) return path.resolve(env.PYRO_HOME);
  if (env.XDG_STATE_HOME) return path.join(path.resolve(env.XDG_STATE_HOME), "pyro");
  return path.join(os.homedir(), ".local", "state", "pyro");
}

/** The fixed sub-directories of the state directory. */
export function homeLayout(home: string) {
  return {
    home,
    environments: path.join(home, "environments"),
    workspaces: path.join(home, "workspaces"),
    /** Read-only layers of layered workspaces, shared by a workspace, its snapshots and its forks. */
    workspaceLayers: path.join(home, "workspace-layers"),
    /** Fresh workspace filesystems by size, copied into each new disk image (runtime/confine/disk.ts). */
    diskTemplates: path.join(home, "disk-templates"),
    run: path.join(home, "run"),
    locks: path.join(home, "locks"),
    tmp: path.join(home, "tmp"),
  };
}
