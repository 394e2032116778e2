/**
 * The one secret-redaction helper. Replaces every occurrence of a secret value with
 * `[REDACTED]`, in whole texts and in streams whose chunks may split a value anywhere: the
 * stream form holds back just enough trailing bytes that a value split across chunks is still
 * caught, and releases them on the next chunk or on flush. Works on bytes, so binary output and
 * multi-byte characters pass through untouched. Pure; no I/O.
 */

export const REDACTED = "[REDACTED]";
const REDACTED_BYTES = Buffer.from(REDACTED);
/** Values shorter than this are not redacted: replacing "a" everywhere would destroy output. */
export const MIN_SECRET_LENGTH = 4;

export class Redactor {
  /** Secret values as bytes, longest first. */
  readonly needles: Buffer[];
  /** Longest needle minus one: the most a split value can leave at the end of a chunk. */
  readonly holdBack: number;

  constructor(values: Iterable<string>) {
    const unique = [...new Set([...values].filter((v) => typeof v === "string" && Buffer.byteLength(v) >= MIN_SECRET_LENGTH))];
    // Longest first, so a secret that contains another is replaced whole.
    this.needles = unique.map((v) => Buffer.from(v)).sort((a, b) => b.length - a.length);
    this.holdBack = this.needles.length ? Math.max(...this.needles.map((n) => n.length)) - 1 : 0;
  }

  get empty(): boolean {
    return this.needles.length === 0;
  }

  redactBytes(data: Buffer): Buffer {
    if (this.needles.length === 0 || data.length === 0) return data;
    let out = data;
    for (const needle of this.needles) {
      let at = out.indexOf(needle);
      if (at === -1) continue;
      const parts: Buffer[] = [];
      let from = 0;
      while (at !== -1) {
        parts.push(out.subarray(from, at), REDACTED_BYTES);
        from = at + needle.length;
        at = out.indexOf(needle, from);
      }
      parts.push(out.subarray(from));
      out = Buffer.concat(parts);
    }
    return out;
  }

  redact(text: string): string {
    if (this.needles.length === 0) return text;
    return this.redactBytes(Buffer.from(text, "utf8")).toString("utf8");
  }

  /** Deep-redacts strings inside a JSON-like value (for results and metadata). */
  redactValue<T>(value: T): T {
    if (this.needles.length === 0) return value;
    if (typeof value === "string") return this.redact(value) as T;
    if (Array.isArray(value)) return value.map((v) => this.redactValue(v)) as T;
    if (value && typeof value === "object" && !Buffer.isBuffer(value)) {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) out[k] = this.redactValue(v);
      return out as T;
    }
    return value;
  }

  stream(): RedactingStream {
    return new RedactingStream(this);
  }
}

/** Streaming redaction: push chunks, get redacted bytes that are safe to release. */
export class RedactingStream {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly redactor: Redactor) {}

  push(chunk: Buffer): Buffer {
    if (this.redactor.empty) return chunk;
    const data = this.redactor.redactBytes(Buffer.concat([this.pending, chunk]));
    // Keep the tail that could be the start of a secret; release the rest.
    const keep = Math.min(this.redactor.holdBack, data.length);
    const cut = partialMatchStart(data, keep, this.redactor);
    this.pending = data.subarray(cut);
    return data.subarray(0, cut);
  }

  /** Releases whatever is held back (end of stream, or idle). */
  flush(): Buffer {
    const rest = this.redactor.redactBytes(this.pending);
    this.pending = Buffer.alloc(0);
    return rest;
  }

  get held(): number {
    return this.pending.length;
  }
}

/**
 * Index from which `data` must be held back: the earliest position within the last `keep`
 * bytes where a suffix of `data` is a prefix of some secret. Holding back only real partial
 * matches keeps ordinary output flowing without delay.
 */
function partialMatchStart(data: Buffer, keep: number, redactor: Redactor): number {
  const needles = redactor.needles;
  for (let start = data.length - keep; start < data.length; start++) {
    const tail = data.subarray(start);
    if (needles.some((n) => n.length > tail.length && n.subarray(0, tail.length).equals(tail))) return start;
  }
  return data.length;
}
