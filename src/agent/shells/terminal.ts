/**
 * The rendered view of a shell: a headless terminal emulator (@xterm/headless) fed the same
 * redacted bytes as the shell's output log, plus a map from log offsets to terminal lines, so
 * a read from a cursor returns the lines a person would see from there on — colours dropped,
 * progress bars collapsed, clears honoured — or the current screen of a full-screen program.
 * Loads the emulator on first use; never touches processes or the filesystem.
 */
import type * as XtermModuleNs from "@xterm/headless";
import type { IBuffer, IDisposable, Terminal } from "@xterm/headless";

/** Lines of history behind the screen, for terminals up to SCROLLBACK_FULL_COLS wide. */
export const SCROLLBACK_LINES = 5000;
const SCROLLBACK_FULL_COLS = 200;
/**
 * xterm keeps 12 bytes per cell of every line it holds; wider terminals get proportionally
 * fewer history lines so one shell stays near 12 MB however wide the host asks it to be.
 */
const CELL_BUDGET = SCROLLBACK_LINES * SCROLLBACK_FULL_COLS;
/** Offset→line records kept; beyond this the oldest half goes (reads from there start earlier). */
const MAX_RECORDS = 200_000;

type XtermModule = typeof XtermModuleNs;
let xterm: Promise<XtermModule> | undefined;

/** The emulator is bundled but only evaluated when the first shell opens. */
function loadXterm(): Promise<XtermModule> {
  xterm ??= import("@xterm/headless").then((m) => {
    const mod = m as XtermModule & { default?: XtermModule };
    return mod.Terminal ? mod : mod.default!;
  });
  return xterm;
}

export function scrollbackFor(cols: number): number {
  return Math.max(100, Math.min(SCROLLBACK_LINES, Math.floor(CELL_BUDGET / cols)));
}

export interface RenderOptions {
  /**
   * Keep the cursor's line up to the cursor column instead of trimming its trailing spaces:
   * what a prompt pattern such as `\$ $` needs to see.
   */
  keepCursorColumn?: boolean;
}

export interface Rendered {
  text: string;
  /** A full-screen program is showing (the alternate screen): `text` is that screen. */
  altScreen: boolean;
  /** The log offset the rendering reflects (everything before it has been parsed). */
  end: number;
}

/**
 * Line numbers here are absolute: lines ever dropped from the top of the history (`trimmed`)
 * plus the index in xterm's normal buffer. They stay stable while history scrolls away and when
 * `clear` erases it.
 */
export class ScreenModel {
  private queuedEnd = 0;
  private parsedEnd = 0;
  private trimmed = 0;
  /** Records, one per parsed chunk: log offset at its end, cursor line there, topmost line it touched. */
  private offsets: number[] = [];
  private lines: number[] = [];
  private mins: number[] = [];
  /** Line to start from for offsets older than the oldest record. */
  private floorLine = 0;
  /** Topmost line the cursor moved to (or erased) while parsing the current chunk. */
  private chunkMin = Number.POSITIVE_INFINITY;
  private waiters: { target: number; resolve: () => void }[] = [];
  private readonly disposables: IDisposable[] = [];
  /** Called after every parsed chunk. */
  onParsed: (() => void) | null = null;
  /**
   * Receives what the terminal answers to queries in the output (cursor position, device
   * attributes), to be typed back into the PTY as a real terminal would.
   */
  onAnswer: ((data: string) => void) | null = null;

  private constructor(private readonly term: Terminal) {}

  static async create(cols: number, rows: number): Promise<ScreenModel> {
    const { Terminal } = await loadXterm();
    // The headless build counts `buffer` and `parser` as proposed API.
    const term = new Terminal({ cols: Math.max(2, cols), rows, scrollback: scrollbackFor(cols), allowProposedApi: true, logLevel: "off" });
    const model = new ScreenModel(term);
    model.disposables.push(term.onData((data) => model.onAnswer?.(data)));
    model.watchTrim();
    model.watchUpwardMoves();
    return model;
  }

  /** Bytes queued but not yet parsed (for flow control). */
  get backlog(): number {
    return this.queuedEnd - this.parsedEnd;
  }

  get parsed(): number {
    return this.parsedEnd;
  }

  get altScreen(): boolean {
    return this.term.buffer.active.type === "alternate";
  }

  /** Queues log bytes [queuedEnd, queuedEnd + data.length). */
  write(data: Buffer): void {
    this.queuedEnd += data.length;
    const end = this.queuedEnd;
    this.term.write(data, () => {
      // xterm calls this right after parsing exactly this chunk, so the state now is "up to end".
      this.parsedEnd = end;
      this.record(end);
      for (const w of this.waiters.filter((x) => x.target <= end)) w.resolve();
      this.waiters = this.waiters.filter((x) => x.target > end);
      this.onParsed?.();
    });
  }

  /** Resolves once everything up to `target` has been parsed. */
  caughtUp(target: number): Promise<void> {
    if (this.parsedEnd >= target) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ target, resolve }));
  }

  resize(cols: number, rows: number): void {
    const before = this.cursorLine();
    this.term.options.scrollback = scrollbackFor(cols);
    this.term.resize(Math.max(2, cols), rows);
    // Reflow re-wraps history: move the recorded lines with the cursor (close enough for reads
    // that started before the resize; exact for every read after it).
    const delta = this.cursorLine() - before;
    if (delta !== 0) {
      for (let i = 0; i < this.lines.length; i++) {
        this.lines[i]! += delta;
        this.mins[i]! += delta;
      }
      this.floorLine += delta;
    }
  }

  /**
   * The text from the line the output at `offset` was written on (or the topmost line any
   * later output moved back to) down to the last non-empty line; the current screen when a
   * full-screen program is showing. Call after caughtUp().
   */
  render(offset: number, options: RenderOptions = {}): Rendered {
    const active = this.term.buffer.active;
    if (active.type === "alternate") {
      const rows: string[] = [];
      for (let y = 0; y < this.term.rows; y++) rows.push(this.rowText(active, active.baseY + y, true, options));
      return { text: trimTrailingEmpty(rows).join("\n"), altScreen: true, end: this.parsedEnd };
    }
    const buf = this.term.buffer.normal;
    let y = Math.max(0, this.startLine(offset) - this.trimmed);
    // Start at the beginning of a wrapped (logical) line.
    while (y > 0 && buf.getLine(y)?.isWrapped) y--;
    const out: string[] = [];
    for (; y < buf.length; y++) {
      let text = "";
      // Join the rows of a wrapped line: a long command or a long output line reads as one.
      while (y + 1 < buf.length && buf.getLine(y + 1)?.isWrapped) text += this.rowText(buf, y++, false, options);
      out.push(text + this.rowText(buf, y, true, options));
    }
    // Leading blank lines only come from an erased screen the output has not reached yet.
    let first = 0;
    while (first < out.length && out[first]!.trim() === "") first++;
    return { text: trimTrailingEmpty(out.slice(first)).join("\n"), altScreen: false, end: this.parsedEnd };
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
    this.term.dispose();
    for (const w of this.waiters) w.resolve();
    this.waiters = [];
  }

  private rowText(buf: IBuffer, y: number, trimRight: boolean, options: RenderOptions): string {
    const line = buf.getLine(y);
    if (!line) return "";
    // xterm only trims cells never written; spaces a program printed are trimmed here.
    const text = trimRight ? line.translateToString(true).replace(/ +$/, "") : line.translateToString(false);
    if (options.keepCursorColumn && y === buf.baseY + buf.cursorY && text.length < buf.cursorX) return text.padEnd(buf.cursorX, " ");
    return text;
  }

  private cursorLine(): number {
    const buf = this.term.buffer.normal;
    return this.trimmed + buf.baseY + buf.cursorY;
  }

  private record(end: number): void {
    const line = this.cursorLine();
    this.offsets.push(end);
    this.lines.push(line);
    this.mins.push(Math.min(line, this.chunkMin));
    this.chunkMin = Number.POSITIVE_INFINITY;
    if (this.offsets.length > MAX_RECORDS) {
      const drop = MAX_RECORDS / 2;
      let floor = this.lines[drop - 1]!;
      for (let i = 0; i < drop; i++) floor = Math.min(floor, this.mins[i]!);
      this.floorLine = floor;
      this.offsets.splice(0, drop);
      this.lines.splice(0, drop);
      this.mins.splice(0, drop);
    }
  }

  /** The absolute line a read from `offset` starts on. */
  private startLine(offset: number): number {
    // Last record at or before offset.
    let lo = 0;
    let hi = this.offsets.length - 1;
    let at = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.offsets[mid]! <= offset) {
        at = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    let line = at >= 0 ? this.lines[at]! : this.floorLine;
    // Output after the cursor may have gone back up (clear, a redrawn progress block, a status
    // line): start from the topmost line it touched, or its updates would be invisible.
    for (let i = at + 1; i < this.mins.length; i++) if (this.mins[i]! < line) line = this.mins[i]!;
    return Math.max(line, this.trimmed);
  }

  /**
   * History dropped from the top (scrollback full, or `clear` erasing it) shifts xterm's line
   * indices; counting it keeps recorded lines valid. xterm exposes no public event for it, so
   * this reaches into the normal buffer's line list; without it only reads of output older
   * than the whole history would start on the wrong line.
   */
  private watchTrim(): void {
    const core = (this.term as unknown as { _core?: { _bufferService?: { buffers?: { normal?: { lines?: { onTrim?: (cb: (n: number) => void) => IDisposable } } } } } })._core;
    const lines = core?._bufferService?.buffers?.normal?.lines;
    if (lines?.onTrim) this.disposables.push(lines.onTrim((n) => (this.trimmed += n)));
  }

  /** Notes the topmost line each cursor-up, cursor-position or erase sequence reaches. */
  private watchUpwardMoves(): void {
    const parser = this.term.parser;
    const first = (params: (number | number[])[]) => (typeof params[0] === "number" ? params[0] : 0);
    const note = (row: (buf: IBuffer, params: (number | number[])[]) => number | null) => (params: (number | number[])[]) => {
      const buf = this.term.buffer.active;
      if (buf.type === "normal") {
        const r = row(buf, params);
        if (r !== null) this.chunkMin = Math.min(this.chunkMin, this.trimmed + buf.baseY + Math.max(0, Math.min(r, this.term.rows - 1)));
      }
      return false; // observe only: xterm's own handler still runs
    };
    const up = note((buf, p) => buf.cursorY - Math.max(1, first(p)));
    const absoluteRow = note((_buf, p) => Math.max(1, first(p)) - 1);
    const top = note(() => 0);
    const erase = note((_buf, p) => (first(p) === 0 ? null : 0));
    this.disposables.push(
      parser.registerCsiHandler({ final: "A" }, up), // CUU
      parser.registerCsiHandler({ final: "F" }, up), // CPL
      parser.registerCsiHandler({ final: "H" }, absoluteRow), // CUP
      parser.registerCsiHandler({ final: "f" }, absoluteRow), // HVP
      parser.registerCsiHandler({ final: "d" }, absoluteRow), // VPA
      parser.registerCsiHandler({ final: "J" }, erase), // ED 1/2/3
      parser.registerCsiHandler({ prefix: "?", final: "J" }, erase), // DECSED
      parser.registerCsiHandler({ final: "r" }, top), // DECSTBM homes the cursor
      parser.registerEscHandler({ final: "M" }, () => up([1])), // RI
      parser.registerEscHandler({ final: "c" }, () => top([])), // RIS
    );
  }
}

function trimTrailingEmpty(lines: string[]): string[] {
  let n = lines.length;
  while (n > 0 && lines[n - 1]!.trim() === "") n--;
  return lines.slice(0, n);
}
