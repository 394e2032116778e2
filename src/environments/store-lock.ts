/**
 * The one lock that serialises every change to the environment cache (pull, import, prune)
 * across processes. Readers (list, inspect, layers) never take it: they only ever see
 * manifests that were written atomically after their layers were complete.
 */
import path from "node:path";
import fs from "node:fs/promises";
import lockfile from "proper-lockfile";
import { PyroError } from "../shared/errors.js";

/**
 * proper-lockfile refreshes the lock's mtime every UPDATE ms; a lock not refreshed for STALE ms
 * belongs to a dead process and is taken over. Generous values, because a build keeps the
 * event loop busy hashing hundreds of megabytes.
 */
const LOCK_STALE_MS = 15_000;
const LOCK_UPDATE_MS = 3_000;
const LOCK_POLL_MS = 500;

export interface HeldLock {
  /** Set when another process took the lock over (ours looked stale); commits must not proceed. */
  compromised?: Error;
}

/**
 * Runs `fn` while holding the lock on `root` (a `.lock` directory inside it), waiting as long
 * as another process holds it. `onWait` is called once if we have to wait.
 */
export async function withStoreLock<T>(
  root: string,
  fn: (lock: HeldLock) => Promise<T>,
  options: { signal?: AbortSignal; onWait?: () => void } = {},
): Promise<T> {
  await fs.mkdir(root, { recursive: true, mode: 0o755 });
  const held: HeldLock = {};
  let release: (() => Promise<void>) | undefined;
  let waited = false;
  while (!release) {
    throwIfCancelled(options.signal);
    try {
      release = await lockfile.lock(root, {
        lockfilePath: path.join(root, ".lock"),
        realpath: false,
        stale: LOCK_STALE_MS,
        update: LOCK_UPDATE_MS,
        retries: 0,
        onCompromised: (err) => {
          // The default handler throws from a timer and would crash the process; record it
          // instead and let the holder refuse to commit.
          held.compromised = err;
        },
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ELOCKED") throw err;
      if (!waited) options.onWait?.();
      waited = true;
      await new Promise((resolve) => setTimeout(resolve, LOCK_POLL_MS));
    }
  }
  try {
    return await fn(held);
  } finally {
    await release().catch(() => undefined);
  }
}

export function assertLockHeld(lock: HeldLock): void {
  if (lock.compromised) {
    throw new PyroError("environment_build_failed", "Another pyro process took over the environment cache lock during the build.", {
      hint: "Run the pull again once other environment operations have finished.",
      cause: lock.compromised,
    });
  }
}

function throwIfCancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    throw new PyroError("environment_build_failed", "The environment build was cancelled.", { details: { cancelled: true } });
  }
}
