/**
 * The environment a workspace's programs start with: the sandbox's defaults (protocol/guest.ts),
 * then, for a workspace made from an image, the image's `Env` (its PATH above all, so tools the
 * image puts in its own directories are found), then what the call gives. Pure.
 */
import { guestEnv } from "../protocol/guest.js";
import type { WorkspaceRecord } from "./types.js";

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * An image config's `Env` list (`NAME=value`) as a map. Entries without `=` or with a name a
 * shell could not export are dropped, as a container runtime would not set them either; a
 * later entry of the same name wins.
 */
export function imageEnv(entries: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of entries) {
    const eq = entry.indexOf("=");
    if (eq <= 0) continue;
    const name = entry.slice(0, eq);
    if (ENV_NAME.test(name)) env[name] = entry.slice(eq + 1);
  }
  return env;
}

/** The environment of one exec, shell or service of this workspace; `extra` wins over the image's. */
export function commandEnv(record: Pick<WorkspaceRecord, "environment_env">, extra: Record<string, string> = {}): Record<string, string> {
  return guestEnv({ ...(record.environment_env ?? {}), ...extra });
}
