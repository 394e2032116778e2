/**
 * The one output-capping helper. Keeps the first and last halves of a byte stream up to a
 * budget and counts what it dropped, so a model sees how a command started and how it ended
 * without an unbounded blob in its context. Used by the agent for exec output and by the host
 * for anything else it bounds. Pure; no I/O.
 */

/** Byte accounting for one captured output stream (stdout or stderr). */
export interface CapturedStreamInfo {
  /** Bytes the command wrote in total. */
  total_bytes: number;
  /** Bytes kept from the start of the stream. */
  head_bytes: number;
  /** Bytes kept from the end of the stream. */
  tail_bytes: number;
  /** Bytes dropped between head and tail. */
  omitted_bytes: number;
}

/** Default budget per stream: ~16k tokens, enough for a test run's summary and its failures. */
export const DEFAULT_MAX_OUTPUT_BYTES = 65536;
/** Upper bound a caller may ask for: both streams of one result must fit one 16 MiB protocol frame. */
export const MAX_OUTPUT_BYTES_LIMIT = 8 * 1024 * 1024;

export class HeadTailBuffer {
  private readonly headLimit: number;
  private readonly tailLimit: number;
  private head: Buffer[] = [];
  private head_bytes = 0;
  /** Tail kept as a list of chunks trimmed from the front once over budget. */
  private tail: Buffer[] = [];
  private tail_bytes = 0;
  private total = 0;

  constructor(maxBytes: number) {
    this.headLimit = Math.ceil(maxBytes / 2);
    this.tailLimit = Math.floor(maxBytes / 2);
  }

  push(chunk: Buffer): void {
    this.total += chunk.length;
    if (this.head_bytes < this.headLimit) {
      const take = Math.min(chunk.length, this.headLimit - this.head_bytes);
      this.head.push(chunk.subarray(0, take));
      this.head_bytes += take;
      chunk = chunk.subarray(take);
    }
    if (chunk.length === 0 || this.tailLimit === 0) return;
    this.tail.push(chunk);
    this.tail_bytes += chunk.length;
    while (this.tail_bytes > this.tailLimit) {
      const first = this.tail[0]!;
      const excess = this.tail_bytes - this.tailLimit;
      if (first.length <= excess) {
        this.tail.shift();
        this.tail_bytes -= first.length;
      } else {
        this.tail[0] = first.subarray(excess);
        this.tail_bytes -= excess;
      }
    }
  }

  info(): CapturedStreamInfo {
    return {
      total_bytes: this.total,
      head_bytes: this.head_bytes,
      tail_bytes: this.tail_bytes,
      omitted_bytes: this.total - this.head_bytes - this.tail_bytes,
    };
  }

  /** Head bytes then tail bytes, contiguous; `info()` says where the gap is. */
  bytes(): Buffer {
    return Buffer.concat([...this.head, ...this.tail]);
  }
}

/** Caps an in-memory string or buffer the same way the stream buffer does. */
export function capBytes(data: Buffer, maxBytes: number): { bytes: Buffer; info: CapturedStreamInfo } {
  const buffer = new HeadTailBuffer(maxBytes);
  buffer.push(data);
  return { bytes: buffer.bytes(), info: buffer.info() };
}

/**
 * Caps text to at most `maxBytes` of UTF-8 the same way, head and tail, moving each cut to a
 * character boundary so that no character is split (a split one would decode as U+FFFD, which
 * is longer than what it replaces). `info` counts bytes of the UTF-8 encoding.
 */
export function capText(text: string, maxBytes: number): { head: string; tail: string; info: CapturedStreamInfo } {
  const total = Buffer.byteLength(text, "utf8");
  if (total === text.length) {
    // ASCII: a byte is a character, so the cut needs no encoding of megabytes it drops.
    const headChars = Math.min(total, Math.ceil(maxBytes / 2));
    const tailChars = Math.min(total - headChars, Math.floor(maxBytes / 2));
    const omitted = total - headChars - tailChars;
    const info = { total_bytes: total, head_bytes: headChars, tail_bytes: tailChars, omitted_bytes: omitted };
    return omitted ? { head: text.slice(0, headChars), tail: text.slice(total - tailChars), info } : { head: text, tail: "", info };
  }
  const data = Buffer.from(text, "utf8");
  const { info } = capBytes(data, maxBytes);
  if (info.omitted_bytes === 0) return { head: text, tail: "", info };
  let headEnd = info.head_bytes;
  while (headEnd > 0 && isContinuation(data[headEnd])) headEnd--;
  let tailStart = data.length - info.tail_bytes;
  while (tailStart < data.length && isContinuation(data[tailStart])) tailStart++;
  const tail_bytes = data.length - tailStart;
  return {
    head: data.subarray(0, headEnd).toString("utf8"),
    tail: data.subarray(tailStart).toString("utf8"),
    info: { total_bytes: data.length, head_bytes: headEnd, tail_bytes, omitted_bytes: data.length - headEnd - tail_bytes },
  };
}

/** A UTF-8 continuation byte (10xxxxxx): never the first byte of a character. */
function isContinuation(byte: number | undefined): boolean {
  return byte !== undefined && (byte & 0xc0) === 0x80;
}

/**
 * Renders kept bytes as text with an explicit marker where bytes were dropped, so neither a
 * human nor a model mistakes a capped stream for the whole of it.
 */
export function renderCapped(bytes: Buffer, info: CapturedStreamInfo): string {
  if (info.omitted_bytes === 0) return bytes.toString("utf8");
  const head = bytes.subarray(0, info.head_bytes).toString("utf8");
  const tail = bytes.subarray(info.head_bytes).toString("utf8");
  return `${head}\n[... ${info.omitted_bytes} bytes omitted of ${info.total_bytes}; raise max_output_bytes to see more ...]\n${tail}`;
}

export function validateMaxOutputBytes(value: number): boolean {
  return Number.isSafeInteger(value) && value > 0 && value <= MAX_OUTPUT_BYTES_LIMIT;
}
