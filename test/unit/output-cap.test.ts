import { describe, expect, it } from "vitest";
import { HeadTailBuffer, capBytes, renderCapped } from "../../src/shared/output-cap.js";

describe("output capping", () => {
  it("keeps everything when output fits the budget", () => {
    const { bytes, info } = capBytes(Buffer.from("hello"), 100);
    expect(bytes.toString()).toBe("hello");
    expect(info).toEqual({ total_bytes: 5, head_bytes: 5, tail_bytes: 0, omitted_bytes: 0 });
    expect(renderCapped(bytes, info)).toBe("hello");
  });

  it("keeps the head and the tail of a long stream and counts what it dropped", () => {
    const buffer = new HeadTailBuffer(10);
    for (let i = 0; i < 100; i++) buffer.push(Buffer.from(String(i % 10)));
    const info = buffer.info();
    expect(info).toEqual({ total_bytes: 100, head_bytes: 5, tail_bytes: 5, omitted_bytes: 90 });
    expect(buffer.bytes().toString()).toBe("0123456789");
    const text = renderCapped(buffer.bytes(), info);
    expect(text).toContain("01234");
    expect(text).toContain("90 bytes omitted of 100");
    expect(text.endsWith("56789")).toBe(true);
  });

  it("handles one chunk larger than the whole budget", () => {
    const { bytes, info } = capBytes(Buffer.from("abcdefghijklmnopqrstuvwxyz"), 6);
    expect(bytes.toString()).toBe("abcxyz");
    expect(info.omitted_bytes).toBe(20);
  });
});
