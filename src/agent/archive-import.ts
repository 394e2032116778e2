/**
 * Extracts a streamed tar (optionally gzip) into a directory under /workspace, inside the
 * sandbox. Every entry passes the shared archive policy (src/shared/archive.ts) before a byte
 * is written; node-tar additionally refuses to write through symlinks already on disk. The
 * first unsafe entry aborts the whole import.
 */
import fs from "node:fs";
import path from "node:path/posix";
import { PassThrough } from "node:stream";
import { checkArchiveEntry } from "../shared/archive.js";
import type { ArchiveProblem, ArchiveTally } from "../shared/archive.js";
import { WORKSPACE_GUEST_PATH } from "../protocol/messages.js";
import type { ArchiveImportRequest, ArchiveImportResult } from "../protocol/messages.js";
import { AgentFailure } from "./failure.js";

/** Resolves a destination and insists it is /workspace or below it (lexically; no host involved). */
export function workspaceDestination(dest: string): string {
  const resolved = path.resolve(WORKSPACE_GUEST_PATH, dest);
  if (resolved !== WORKSPACE_GUEST_PATH && !resolved.startsWith(`${WORKSPACE_GUEST_PATH}/`)) {
    throw new AgentFailure("path_outside_workspace", `${dest} is outside ${WORKSPACE_GUEST_PATH}`);
  }
  return resolved;
}

export class ArchiveImport {
  readonly done: Promise<ArchiveImportResult>;
  private readonly input = new PassThrough();

  constructor(req: ArchiveImportRequest) {
    this.done = this.run(req);
    // Until run() attaches, keep early errors from being unhandled.
    this.done.catch(() => undefined);
  }

  chunk(payload: Buffer): void {
    this.input.write(payload);
  }

  end(): void {
    this.input.end();
  }

  private async run(req: ArchiveImportRequest): Promise<ArchiveImportResult> {
    const dest = workspaceDestination(req.dest);
    fs.mkdirSync(dest, { recursive: true });
    const tally: ArchiveTally = { entries: 0, bytes: 0 };
    let problem: ArchiveProblem | null = null;
    // tar is loaded on first use: it costs ~25 ms of agent start-up, which every workspace
    // create would otherwise pay even when nothing is seeded.
    const { Unpack } = await import("tar");
    await new Promise<void>((resolve, reject) => {
      const unpack = new Unpack({
        cwd: dest,
        strict: true,
        preserveOwner: false,
        filter: (_p, entry) => {
          if (problem) return false;
          const e = entry as unknown as { path: string; type: string; size?: number; linkpath?: string };
          problem = checkArchiveEntry(e, tally, { maxEntries: req.maxEntries, maxBytes: req.maxBytes });
          if (problem) {
            unpack.abort(new Error(problem.reason));
            return false;
          }
          return true;
        },
      });
      unpack.on("error", (err: Error) => reject(err));
      unpack.on("close", () => resolve());
      this.input.on("error", reject);
      this.input.pipe(unpack);
    }).catch((err: Error) => {
      if (problem) throw new AgentFailure(problem.code, `${problem.entry}: ${problem.reason}`, { entry: problem.entry });
      throw new AgentFailure("archive_unsafe_entry", `archive rejected: ${err.message}`);
    });
    if (problem) {
      const p = problem as ArchiveProblem;
      throw new AgentFailure(p.code, `${p.entry}: ${p.reason}`, { entry: p.entry });
    }
    return { entries: tally.entries, bytes: tally.bytes, dest };
  }
}
