/**
 * A shell's output as the host sees it: an append-only, bounded byte log addressed by absolute
 * offsets (cursors), and the redaction stage every PTY byte passes before it enters that log.
 * Pure; no I/O, no timers (the shell decides when to flush held-back bytes).
 */
import { REDACTED } from "../../shared/redact.js";
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
 * Redaction of one shell's PTY output. Wraps the agent's RedactingStream and adds what an
 * interactive stream needs on top of it:
 *
 * - Held-back bytes (a tail that could be the start of a secret) are released by `flush()` when
 *   the PTY goes quiet, so a prompt is not stuck behind them. After such a release the released
 *   bytes are fed into the stream again as context: if the rest of the secret arrives later,
 *   that rest still becomes `[REDACTED]`, so the complete value never appears in the log.
 * - When the agent's secrets are reloaded, the next chunk switches to the new redactor.
 */
export class ShellRedaction {
  private source: Redactor;
  private stream: RedactingStream;
  /** Released bytes the stream must see again before the next chunk (context for a split secret). */
  private inject: Buffer | null = null;
  /** Bytes at the head of the stream's coming output that were already released. */
  private released: Buffer = EMPTY;

  constructor(private readonly current: () => Redactor) {
    this.source = current();
    this.stream = this.source.stream();
  }

  /** Bytes the stream holds back (a possible secret prefix). */
  get held(): number {
    return this.stream.held;
  }

  push(chunk: Buffer): Buffer {
    let before = EMPTY;
    const latest = this.current();
    if (latest !== this.source) {
      before = this.flush();
      this.source = latest;
      this.stream = latest.stream();
      this.inject = null;
      this.released = EMPTY;
    }
    let data = chunk;
    if (this.inject) {
      data = Buffer.concat([this.inject, chunk]);
      this.inject = null;
    }
    const out = this.strip(this.stream.push(data));
    return before.length ? Buffer.concat([before, out]) : out;
  }

  /** Releases the held-back bytes (the PTY went quiet, or the shell ended). */
  flush(): Buffer {
    const raw = this.stream.flush();
    const out = this.strip(raw);
    if (raw.length > 0) {
      // raw was held because it is a partial secret; everything in it has now been released.
      this.inject = raw;
      this.released = raw;
    }
    return out;
  }

  /** Removes from the stream's output the bytes that were already released earlier. */
  private strip(out: Buffer): Buffer {
    if (this.released.length === 0 || out.length === 0) return out;
    const limit = Math.min(out.length, this.released.length);
    let k = 0;
    while (k < limit && out[k] === this.released[k]) k++;
    if (k === out.length && k < this.released.length) {
      this.released = this.released.subarray(k);
      return EMPTY;
    }
    if (k === this.released.length) {
      this.released = EMPTY;
      return out.subarray(k);
    }
    // A secret that began inside the released bytes was completed and replaced: emit from the
    // start of its replacement (the released part of it is already in the log).
    this.released = EMPTY;
    const marker = out.lastIndexOf(REDACTED_BYTES, k);
    return out.subarray(marker >= 0 && marker + REDACTED_BYTES.length > k ? marker : k);
  }
}
