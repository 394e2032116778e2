/**
 * The one secret-redaction helper. Replaces every occurrence of a secret value with
 * `[REDACTED]`, in whole texts and in streams whose chunks may split a value anywhere: the
 * stream form holds back just enough trailing bytes that a value split across chunks is still
 * caught, and releases them on the next chunk or on flush. Also the forms a bounded read needs:
 * a window cut out of a longer text (a value cut by the window's edge is hidden too), a text
 * cut short (a value's beginning at its end is hidden), a scan that only says whether a value
 * occurs, and deep redaction of results that marks where it replaced something
 * (`secrets_redacted`). Works on bytes, so binary output and multi-byte characters pass through
 * untouched. Pure; no I/O.
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
    return this.redactResult(value).value;
  }

  /**
   * Deep-redacts a JSON-like value and says whether anything was replaced. An object that
   * carries a boolean `secrets_redacted` gets it set to true when a value was replaced anywhere
   * inside it, so a result that returns file content says so to whoever reads it. Objects that
   * are not plain (errors, buffers, class instances) are left as they are.
   */
  redactResult<T>(value: T): { value: T; replaced: boolean } {
    if (this.needles.length === 0) return { value, replaced: false };
    if (typeof value === "string") {
      const out = this.redact(value);
      return { value: out as T, replaced: out !== value };
    }
    if (Array.isArray(value)) {
      let replaced = false;
      const out = value.map((v) => {
        const r = this.redactResult(v);
        replaced ||= r.replaced;
        return r.value;
      });
      return { value: out as T, replaced };
    }
    if (isPlainObject(value)) {
      let replaced = false;
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) {
        const r = this.redactResult(v);
        replaced ||= r.replaced;
        out[k] = r.value;
      }
      if (replaced && typeof out.secrets_redacted === "boolean") out.secrets_redacted = true;
      return { value: out as T, replaced };
    }
    return { value, replaced: false };
  }

  /** True when any secret value occurs in `data`. */
  occursIn(data: Buffer): boolean {
    return this.needles.some((n) => data.includes(n));
  }

  /**
   * Redacts the window [from, to) of `data`, where `data` reaches up to `holdBack` bytes beyond
   * the window on either side (less only at the ends of what the window was cut from). A value
   * that crosses an edge of the window is found in the surrounding bytes and its part inside the
   * window becomes `[REDACTED]` too, so reading a text in windows never shows a piece of a value.
   */
  redactWindow(data: Buffer, from: number, to: number): { bytes: Buffer; replaced: boolean } {
    const window = data.subarray(from, to);
    if (this.needles.length === 0 || window.length === 0) return { bytes: window, replaced: false };
    // Matches over the whole buffer, longest value first, never overlapping one already taken.
    const taken: [number, number][] = [];
    for (const needle of this.needles) {
      for (let at = data.indexOf(needle); at !== -1; at = data.indexOf(needle, at + 1)) {
        const end = at + needle.length;
        if (end <= from || at >= to) continue;
        if (taken.some(([a, b]) => at < b && end > a)) continue;
        taken.push([at, end]);
      }
    }
    if (taken.length === 0) return { bytes: window, replaced: false };
    taken.sort((x, y) => x[0] - y[0]);
    const parts: Buffer[] = [];
    let pos = from;
    for (const [a, b] of taken) {
      const start = Math.max(a, from);
      parts.push(data.subarray(pos, start), REDACTED_BYTES);
      pos = Math.min(b, to);
    }
    parts.push(data.subarray(pos, to));
    return { bytes: Buffer.concat(parts), replaced: true };
  }

  /**
   * For a text that was cut short: replaces a tail that is the beginning of a secret value
   * (at least `minimum` bytes of it) with `[REDACTED]`. The rest of the value is not there to
   * tell, so a tail that merely looks like one is hidden too.
   */
  maskCutTail(data: Buffer, minimum = 1): { bytes: Buffer; replaced: boolean } {
    const cut = partialMatchStart(data, Math.min(this.holdBack, data.length), this);
    if (cut >= data.length || data.length - cut < minimum) return { bytes: data, replaced: false };
    return { bytes: Buffer.concat([data.subarray(0, cut), REDACTED_BYTES]), replaced: true };
  }

  stream(): RedactingStream {
    return new RedactingStream(this);
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== "object") return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * Whether a secret value occurs in a stream of chunks (a file copied piece by piece), also when
 * a chunk boundary splits it. Keeps only the last `holdBack` bytes between chunks.
 */
export class SecretScan {
  private tail: Buffer = Buffer.alloc(0);
  found = false;

  constructor(private readonly redactor: Redactor) {}

  push(chunk: Buffer): void {
    if (this.found || this.redactor.empty || chunk.length === 0) return;
    const data = this.tail.length ? Buffer.concat([this.tail, chunk]) : chunk;
    if (this.redactor.occursIn(data)) this.found = true;
    const keep = Math.min(this.redactor.holdBack, data.length);
    this.tail = Buffer.from(data.subarray(data.length - keep));
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

  /** Releases whatever is held back as it is (idle; the caller decides what it shows). */
  flush(): Buffer {
    const rest = this.redactor.redactBytes(this.pending);
    this.pending = Buffer.alloc(0);
    return rest;
  }

  /**
   * Ends the stream. What is held back is the beginning of a value that never completed (a
   * command that printed half a value and stopped): MIN_SECRET_LENGTH bytes or more of it
   * become `[REDACTED]`; fewer go out as they are (a prompt or a word that only starts like one).
   */
  end(): Buffer {
    const rest = this.flush();
    return rest.length >= MIN_SECRET_LENGTH ? REDACTED_BYTES : rest;
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
