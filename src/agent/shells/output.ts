/**
 * A shell's output as the host sees it: an append-only, bounded byte log addressed by absolute
 * offsets (cursors), and the redaction stage every PTY byte passes before it enters that log.
 * Pure; no I/O, no timers (the shell decides when to flush held-back bytes).
 */
import { MIN_SECRET_LENGTH, REDACTED } from "../../shared/redact.js";
import type { RedactingStream, Redactor } from "../../shared/redact.js";

/** How much output a shell keeps; older bytes are dropped and reads from before say so. */
export const OUTPUT_LOG_LIMIT = 4 * 1024 * 1024;
const BLOCK_BYTES = 64 * 1024;
const EMPTY: Buffer = Buffer.alloc(0);
const REDACTED_BYTES = Buffer.from(REDACTED);

/**
 * Bytes [start, end) of a stream whose total length only grows. Stored in fixed blocks so that
 * thousands of tiny PTY chunks neither fragment memory nor make dropping the oldest bytes cost
 * a copy of the whole log.
 */
export class OutputLog {
  private blocks: Buffer[] = [];
  /** Bytes used in the last block. */
  private tailUsed = 0;
  /** Bytes of the first block that are already dropped. */
  private headSkip = 0;
  private startOffset = 0;
  private endOffset = 0;

  constructor(readonly limit = OUTPUT_LOG_LIMIT) {}

  /** Absolute offset of the oldest byte still kept. */
  get start(): number {
    return this.startOffset;
  }

  /** Absolute offset just past the newest byte (= total bytes ever appended). */
  get end(): number {
    return this.endOffset;
  }

  append(data: Buffer): void {
    let from = 0;
    while (from < data.length) {
      let block = this.blocks[this.blocks.length - 1];
      if (!block || this.tailUsed === block.length) {
        block = Buffer.allocUnsafe(BLOCK_BYTES);
        this.blocks.push(block);
        this.tailUsed = 0;
      }
      const n = data.copy(block, this.tailUsed, from);
      this.tailUsed += n;
      from += n;
    }
    this.endOffset += data.length;
    this.dropOverflow();
  }

  private dropOverflow(): void {
    let excess = this.endOffset - this.startOffset - this.limit;
    while (excess > 0) {
      const first = this.blocks[0]!;
      const firstLen = (this.blocks.length === 1 ? this.tailUsed : first.length) - this.headSkip;
      if (excess >= firstLen && this.blocks.length > 1) {
        this.blocks.shift();
        this.headSkip = 0;
        this.startOffset += firstLen;
        excess -= firstLen;
      } else {
        const n = Math.min(excess, firstLen);
        this.headSkip += n;
        this.startOffset += n;
        excess -= n;
      }
    }
  }

  /** The kept bytes in [from, to), clipped to what is kept. Always a copy. */
  slice(from: number, to: number): Buffer {
    const lo = Math.max(from, this.startOffset);
    const hi = Math.min(to, this.endOffset);
    if (hi <= lo) return EMPTY;
    const out = Buffer.allocUnsafe(hi - lo);
    let written = 0;
    // Absolute offset of the first byte of the current block.
    let blockStart = this.startOffset - this.headSkip;
    for (let i = 0; i < this.blocks.length && written < out.length; i++) {
      const block = this.blocks[i]!;
      const used = i === this.blocks.length - 1 ? this.tailUsed : block.length;
      const blockEnd = blockStart + used;
      if (blockEnd > lo) {
        const a = Math.max(lo, blockStart) - blockStart;
        const b = Math.min(hi, blockEnd) - blockStart;
        written += block.copy(out, written, a, b);
      }
      blockStart = blockEnd;
    }
    return out;
  }
}

/**
 * A value's beginning that already left the redaction stage because the PTY went quiet on it:
 * its bytes, how many of them went into the log as they are (`shown`, only ever fewer than
 * MIN_SECRET_LENGTH), and whether the rest went in as `[REDACTED]` (`masked`).
 */
interface OpenValue {
  bytes: Buffer;
  shown: number;
  masked: boolean;
}

/**
 * Redaction of one shell's PTY output. Wraps the agent's RedactingStream and adds what an
 * interactive stream needs on top of it:
 *
 * - Held-back bytes (a tail that could be the start of a secret) are released by `flush()` when
 *   the PTY goes quiet, so a prompt is not stuck behind them. A tail of MIN_SECRET_LENGTH bytes
 *   or more is released as `[REDACTED]`, never as itself: a value printed in pieces (`printf`
 *   of each half with a pause between) shows neither half. Shorter tails are released as they
 *   are (a prompt ending in the letter a value starts with is common; a value's first three
 *   bytes are the most that can show, and only when output stops right there).
 * - Once a beginning is released, the bytes that continue it are followed: while they go on
 *   matching a value they are held (after a masked release, dropped — the marker stands for
 *   them); when a value completes, nothing of it beyond the marker enters the log; when they
 *   stop matching, output flows on as usual. So a masked beginning that was not a value after
 *   all costs some output, never a leak.
 * - When the agent's secrets are reloaded, the next chunk switches to the new redactor.
 */
export class ShellRedaction {
  private source: Redactor;
  private stream: RedactingStream;
  private open: OpenValue | null = null;

  constructor(private readonly current: () => Redactor) {
    this.source = current();
    this.stream = this.source.stream();
  }

  /**
   * Bytes not yet released. While a released beginning is being continued, the whole length of
   * that beginning counts, so the shell waits the long delay before releasing the continuation.
   */
  get held(): number {
    if (this.open && !this.open.masked && this.open.bytes.length > this.open.shown) return this.open.bytes.length;
    return this.stream.held;
  }

  push(chunk: Buffer): Buffer {
    let before = EMPTY;
    const latest = this.current();
    if (latest !== this.source) {
      before = this.flush();
      this.source = latest;
      this.stream = latest.stream();
      this.open = null;
    }
    const out = this.open ? this.continueOpen(chunk) : this.stream.push(chunk);
    return before.length ? Buffer.concat([before, out]) : out;
  }

  /** Releases the held-back bytes (the PTY went quiet, or the shell ended). */
  flush(): Buffer {
    const open = this.open;
    if (open) {
      if (open.masked || open.bytes.length === open.shown) return EMPTY;
      if (open.bytes.length >= MIN_SECRET_LENGTH) {
        open.masked = true;
        return REDACTED_BYTES;
      }
      const rest = open.bytes.subarray(open.shown);
      open.shown = open.bytes.length;
      return rest;
    }
    // What the stream holds is always the beginning of some value (see RedactingStream).
    const held = this.stream.flush();
    if (held.length === 0) return EMPTY;
    const masked = held.length >= MIN_SECRET_LENGTH;
    this.open = { bytes: Buffer.from(held), shown: masked ? 0 : held.length, masked };
    return masked ? REDACTED_BYTES : held;
  }

  /** A chunk arriving after a value's beginning was released: see the class comment. */
  private continueOpen(chunk: Buffer): Buffer {
    const open = this.open!;
    const have = open.bytes.length;
    let longest = 0;
    let completes = -1;
    let continues = false;
    for (const needle of this.source.needles) {
      if (needle.length <= have || !needle.subarray(0, have).equals(open.bytes)) continue;
      const rest = needle.subarray(have);
      let m = 0;
      while (m < rest.length && m < chunk.length && rest[m] === chunk[m]) m++;
      longest = Math.max(longest, m);
      if (m === rest.length) completes = Math.max(completes, m);
      else if (m === chunk.length) continues = true;
    }
    if (continues) {
      // Still inside a value: keep following it (nothing enters the log yet).
      open.bytes = Buffer.concat([open.bytes, chunk]);
      return EMPTY;
    }
    this.open = null;
    if (completes >= 0) {
      const marker = open.masked ? EMPTY : REDACTED_BYTES;
      const after = this.stream.push(chunk.subarray(completes));
      return marker.length ? Buffer.concat([marker, after]) : after;
    }
    // Not a value after all. Masked bytes stay masked (with what continued them); bytes that
    // were only held go through the stream again, where a value starting inside them is caught.
    if (open.masked) return this.stream.push(chunk.subarray(longest));
    return this.stream.push(Buffer.concat([open.bytes.subarray(open.shown), chunk]));
  }
}
