import { describe, expect, it } from "vitest";
import { encodeFrame, FrameDecoder, FrameError, MAX_PAYLOAD_BYTES } from "../../src/protocol/frames.js";

describe("agent protocol frames", () => {
  it("round-trips a header and a binary payload byte for byte", () => {
    const payload = Buffer.from([0, 255, 10, 13, 0x1b, 0x80]);
    const frames = new FrameDecoder().push(encodeFrame({ id: 7, type: "result", exitCode: 0 }, payload));
    expect(frames).toHaveLength(1);
    expect(frames[0]!.header).toEqual({ id: 7, type: "result", exitCode: 0 });
    expect(Buffer.compare(frames[0]!.payload, payload)).toBe(0);
  });

  it("reassembles frames split at every byte boundary and several frames in one read", () => {
    const data = Buffer.concat([encodeFrame({ id: 1, type: "a" }, Buffer.from("hello")), encodeFrame({ id: 2, type: "b" })]);
    const decoder = new FrameDecoder();
    const got = [];
    for (const byte of data) got.push(...decoder.push(Buffer.from([byte])));
    expect(got.map((f) => f.header.id)).toEqual([1, 2]);
    expect(got[0]!.payload.toString()).toBe("hello");
    expect(new FrameDecoder().push(data)).toHaveLength(2);
  });

  it("refuses a peer that announces an oversized payload instead of buffering it", () => {
    const prefix = Buffer.alloc(8);
    prefix.writeUInt32BE(10, 0);
    prefix.writeUInt32BE(MAX_PAYLOAD_BYTES + 1, 4);
    expect(() => new FrameDecoder().push(prefix)).toThrow(FrameError);
  });

  it("refuses headers that are not JSON objects with an id and a type", () => {
    const bad = (header: string) => {
      const h = Buffer.from(header);
      const prefix = Buffer.alloc(8);
      prefix.writeUInt32BE(h.length, 0);
      prefix.writeUInt32BE(0, 4);
      return Buffer.concat([prefix, h]);
    };
    expect(() => new FrameDecoder().push(bad("not json"))).toThrow(FrameError);
    expect(() => new FrameDecoder().push(bad('{"type":"x"}'))).toThrow(FrameError);
    expect(() => new FrameDecoder().push(bad("[1,2]"))).toThrow(FrameError);
  });
});
