/**
 * A service's stdout or stderr on disk: redacted on the way in, bounded by rotation (the live
 * file plus one `.1`), and read back as a tail of lines or as everything retained under a cap.
 * The files live under /run/pyro-services (a tmpfs), outside /workspace, so diff and export
 * never see them. Never throws from the write path: a full tmpfs must not crash the agent.
 */
import fs from "node:fs";
import type { Redactor, RedactingStream } from "../../shared/redact.js";

export const SERVICES_DIR = "/run/pyro-services";
/** A live log file is rotated to `.1` once it reaches this size, so one stream keeps at most twice it. */
export const LOG_ROTATE_BYTES = 1024 * 1024;
/** Most a single read returns per stream: keeps a result well inside a model's context and one frame. */
export const LOG_READ_MAX_BYTES = 256 * 1024;

export class LogWriter {
  private fd: number | null;
  private size = 0;
  private readonly redacting: RedactingStream;

  constructor(
    readonly file: string,
    redactor: Redactor,
  ) {
    this.fd = fs.openSync(file, "w", 0o600);
    this.redacting = redactor.stream();
  }

  write(chunk: Buffer): void {
    this.append(this.redacting.push(chunk));
  }

  /**
   * Ends the stream: releases the bytes the redactor held back and closes the file. Held-back
   * bytes are released only here, never on a timer: they are the start of a secret value, and
   * writing them out while the process can still print the rest would put the whole value on
   * disk in two pieces.
   */
  close(): void {
    this.append(this.redacting.end());
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }

  private append(data: Buffer): void {
    try {
      while (data.length > 0 && this.fd !== null) {
        const part = data.subarray(0, LOG_ROTATE_BYTES - this.size);
        let written = 0;
        while (written < part.length) written += fs.writeSync(this.fd, part, written);
        this.size += part.length;
        data = data.subarray(part.length);
        if (this.size >= LOG_ROTATE_BYTES) this.rotate();
      }
    } catch {
      // Out of space (or the directory was removed under us): the service keeps running and
      // this output is lost; the log stays readable up to here.
    }
  }

  private rotate(): void {
    fs.closeSync(this.fd!);
    this.fd = null;
    fs.renameSync(this.file, `${this.file}.1`);
    this.fd = fs.openSync(this.file, "w", 0o600);
    this.size = 0;
  }
}

export interface LogRead {
  text: string;
  bytes: number;
  /** True when the read cap cut the start of what was asked for. */
  truncated: boolean;
}

function readOrEmpty(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch {
    return Buffer.alloc(0);
  }
}

/** The last `count` lines of `data`; a final newline does not count as an empty line. */
export function lastLines(data: Buffer, count: number): Buffer {
  if (count <= 0) return Buffer.alloc(0);
  let end = data.length;
  if (end > 0 && data[end - 1] === 0x0a) end--;
  let at = end;
  for (let seen = 0; seen < count; seen++) {
    // (lastIndexOf with a negative offset would count from the end, hence the at === 0 check)
    if (at === 0) return data;
    const nl = data.lastIndexOf(0x0a, at - 1);
    if (nl === -1) return data;
    at = nl;
  }
  return data.subarray(at + 1);
}

/**
 * Reads what a stream retained (rotated file then live file), redacted again with the current
 * redactor, as its last `tailLines` lines (null: all of it), keeping the end if it is over `maxBytes`.
 */
export function readLog(file: string, tailLines: number | null, redactor: Redactor, maxBytes = LOG_READ_MAX_BYTES): LogRead {
  // Reads and rotation both run synchronously on the agent's one thread, so the pair is consistent.
  const retained = redactor.redactBytes(Buffer.concat([readOrEmpty(`${file}.1`), readOrEmpty(file)]));
  let out = tailLines === null ? retained : lastLines(retained, tailLines);
  let truncated = false;
  if (out.length > maxBytes) {
    let start = out.length - maxBytes;
    // Start on a character boundary, not inside a multi-byte sequence.
    while (start < out.length && (out[start]! & 0xc0) === 0x80) start++;
    out = out.subarray(start);
    truncated = true;
  }
  return { text: out.toString("utf8"), bytes: out.length, truncated };
}
