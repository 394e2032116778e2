/**
 * Reading a host tree as a tar stream: how pyro hands host files (a seed, an imported root) to
 * a sandbox without ever giving the sandbox a host path. Spawns only what the caller names.
 */
import { spawn } from "node:child_process";
import { PassThrough } from "node:stream";
import type { Readable } from "node:stream";

export interface TarReader {
  /** The archive as it is written. */
  stream: Readable;
  /** Settles when tar has exited: null on success, else the tail of what it said. */
  done: Promise<string | null>;
}

/**
 * Runs `argv` (a `tar -c … -f -`, possibly behind a confined launch whose descriptors are
 * `fds`, from fd 3 up) and returns its output. The output is attached at once: Node drains
 * and discards a child's unread output when the child exits, which tar may do before the
 * reader is there.
 */
export function tarReader(argv: string[], fds: number[] = []): TarReader {
  const tar = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe", ...fds] });
  const stderr: Buffer[] = [];
  tar.stderr!.on("data", (d: Buffer) => stderr.push(d));
  const done = new Promise<string | null>((resolve) => {
    tar.on("error", (err) => resolve(err.message));
    tar.on("close", (code) => resolve(code === 0 ? null : Buffer.concat(stderr).toString("utf8").trim().slice(-500) || `tar exited ${code}`));
  });
  return { stream: tar.stdout!.pipe(new PassThrough()), done };
}
