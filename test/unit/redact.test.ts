import { describe, expect, it } from "vitest";
import { Redactor, SecretScan } from "../../src/shared/redact.js";
import { ShellRedaction } from "../../src/agent/shells/output.js";

const VALUE = "tok-5f3a9c1e77d2b0aa";

/** Feeds chunks through a shell's redaction stage with a quiet flush after each, as a PTY printing pieces with pauses would. */
function shellLog(redactor: Redactor, chunks: string[], quietAfterEach = true): string {
  const stage = new ShellRedaction(() => redactor);
  const out: Buffer[] = [];
  for (const c of chunks) {
    out.push(stage.push(Buffer.from(c)));
    if (quietAfterEach) out.push(stage.flush());
  }
  out.push(stage.flush());
  return Buffer.concat(out).toString();
}

describe("secret redaction", () => {
  const redactor = new Redactor([VALUE]);

  it("a shell printing a value in two halves with a pause between shows neither half", () => {
    const log = shellLog(redactor, ["key=", VALUE.slice(0, 10), VALUE.slice(10), "\r\n$ "]);
    expect(log).not.toContain(VALUE.slice(0, 10));
    expect(log).not.toContain(VALUE.slice(10));
    expect(log).toBe("key=[REDACTED]\r\n$ ");
  });

  it("a shell printing a value four bytes at a time with pauses shows none of it", () => {
    const pieces = VALUE.match(/.{1,4}/g)!;
    const log = shellLog(redactor, ["> ", ...pieces, " done\r\n"]);
    for (const p of pieces) expect(log).not.toContain(p);
    expect(log).toBe("> [REDACTED] done\r\n");
  });

  it("a shell keeps ordinary output that only looks like a value's beginning for a moment", () => {
    // Short tails go out as they are; what follows them stays unchanged when it is no value.
    expect(shellLog(redactor, ["to", "day is fine\r\n"])).toBe("today is fine\r\n");
    expect(shellLog(redactor, ["a tok-5f3", "! no\r\n"], false)).toBe("a tok-5f3! no\r\n");
  });

  it("a value completed after a released short beginning shows at most that beginning", () => {
    const log = shellLog(redactor, ["to", VALUE.slice(2)]);
    expect(log).toBe("to[REDACTED]");
  });

  it("output that ends inside a value shows no piece of it, but a short coincidental tail stays", () => {
    const cut = redactor.stream();
    expect(Buffer.concat([cut.push(Buffer.from(`half: ${VALUE.slice(0, 9)}`)), cut.end()]).toString()).toBe("half: [REDACTED]");
    const word = redactor.stream();
    expect(Buffer.concat([word.push(Buffer.from("go to")), word.end()]).toString()).toBe("go to");
  });

  it("a read window cutting a value in two shows no piece of it, whichever side", () => {
    const text = Buffer.from(`before ${VALUE} after`);
    const start = text.indexOf(VALUE);
    for (let cut = start + 1; cut < start + VALUE.length; cut++) {
      const left = redactor.redactWindow(text, 0, cut);
      const right = redactor.redactWindow(text, cut, text.length);
      expect(left.replaced && right.replaced).toBe(true);
      const joined = left.bytes.toString() + right.bytes.toString();
      for (let n = 4; n <= VALUE.length; n++) for (let i = 0; i + n <= VALUE.length; i++) expect(joined).not.toContain(VALUE.slice(i, i + n));
    }
    expect(redactor.redactWindow(text, 0, 6).bytes.toString()).toBe("before");
  });

  it("marks a result that returns content when it replaced a value in it", () => {
    const r = redactor.redactResult({ workspace_id: "w", files: [{ content: `x ${VALUE}`, secrets_redacted: false }], other: { secrets_redacted: false, text: "plain" } });
    expect(r.replaced).toBe(true);
    expect(r.value.files[0]).toEqual({ content: "x [REDACTED]", secrets_redacted: true });
    expect(r.value.other.secrets_redacted).toBe(false);
  });

  it("finds a value split across the chunks of a scanned file", () => {
    const scan = new SecretScan(redactor);
    scan.push(Buffer.from(`aaa ${VALUE.slice(0, 7)}`));
    expect(scan.found).toBe(false);
    scan.push(Buffer.from(`${VALUE.slice(7)} bbb`));
    expect(scan.found).toBe(true);
  });
});
