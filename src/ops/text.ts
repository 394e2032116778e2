/**
 * Text for a model's context window: program output with terminal control sequences resolved
 * the way a terminal would show them, file content with control characters made visible, and
 * capped line lists that say what they left out. MCP applies these; the SDK and the CLI keep
 * bytes as programs wrote them. Pure; no I/O.
 */
/* eslint-disable no-control-regex -- matching control characters is this file's purpose */

// ESC-introduced sequences: CSI (colours, cursor movement), OSC (titles, hyperlinks; ended by
// BEL or ST), DCS/SOS/PM/APC strings, and two-character escapes (charset selection, keypad modes).
// An unterminated string sequence ends at the line's end, so a stray ESC ] never eats the rest.
const OSC = /\x1b\][^\n]*?(?:\x07|\x1b\\|(?=\n)|$)/g;
const STRING_SEQ = /\x1b[PX^_][^\n]*?(?:\x1b\\|(?=\n)|$)/g;
const CSI = /(?:\x1b\[|\u009b)[0-?]*[ -/]*[@-~]/g;
const ESC_PAIR = /\x1b[ -/]*[0-~]/g;
// Left after the above: a lone ESC (e.g. a sequence cut in half by output capping), other C0
// controls except tab and newline, DEL and the C1 range.
const OTHER_CONTROLS = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;

/**
 * Program output as a terminal would leave it on screen, as plain text: escape sequences
 * removed, `\r` overwriting the start of its line (progress bars collapse to their last state),
 * backspace stepping back, CRLF read as a newline. Lossy by design: for reading, not for bytes.
 */
export function cleanTerminalOutput(text: string): string {
  if (!/[\x00-\x08\x0b-\x1f\x7f-\x9f]/.test(text)) return text;
  const stripped = text.replace(OSC, "").replace(STRING_SEQ, "").replace(CSI, "").replace(ESC_PAIR, "");
  return stripped
    .split("\n")
    .map((line) => (line.includes("\r") || line.includes("\b") ? overstrike(line.replace(/\r+$/, "")) : line))
    .join("\n")
    .replace(OTHER_CONTROLS, "");
}

/** Applies `\r` (back to column 0) and `\b` (one column back) as overwrites within one line. */
function overstrike(line: string): string {
  const cells: string[] = [];
  let col = 0;
  for (const ch of line) {
    if (ch === "\r") col = 0;
    else if (ch === "\b") col = Math.max(0, col - 1);
    else cells[col++] = ch;
  }
  return cells.join("");
}

/**
 * File content with control characters shown as `\xNN` (tab, newline and CR kept), so a model
 * never receives a raw escape sequence but loses nothing: it can see the bytes are there.
 */
export function escapeControls(text: string): string {
  return text.replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]/g, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

/** True when the text holds a character `escapeControls` would rewrite. */
export function hasControls(text: string): boolean {
  return /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]/.test(text);
}

/**
 * At most `max` lines: the first `max` are kept and a last line says how many were left out
 * and how to see them (`more`).
 */
export function capLines(lines: string[], max: number, more: (omitted: number) => string): string {
  if (lines.length <= max) return lines.join("\n");
  return [...lines.slice(0, max), `[${lines.length - max} more not shown: ${more(lines.length - max)}]`].join("\n");
}

/** Bytes as a short human figure: 512 B, 3.4 KiB, 1.2 MiB. */
export function humanBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
}
