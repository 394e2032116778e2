import { Duplex, PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { AgentClient } from "../../src/protocol/client.js";
import { CHUNK_PAYLOAD_BYTES, encodeFrame, encodeReply, FrameDecoder, FrameError, MAX_PAYLOAD_BYTES } from "../../src/protocol/frames.js";
import { PROTOCOL_VERSION } from "../../src/protocol/messages.js";
import { PyroError } from "../../src/shared/errors.js";

/** A client talking to a fake agent that answers every request (after hello) with `reply` bytes. */
async function clientAnswering(reply: Buffer): Promise<AgentClient> {
  const toAgent = new PassThrough();
  const toHost = new PassThrough();
  const decoder = new FrameDecoder();
  toAgent.on("data", (d: Buffer) => {
    for (const f of decoder.push(d)) {
      const header = f.header.type === "hello" ? { id: f.header.id, type: "result", protocol: PROTOCOL_VERSION } : { id: f.header.id, type: "result", path: "/workspace" };
      for (const frame of encodeReply(header, f.header.type === "hello" ? undefined : reply)) toHost.write(frame);
    }
  });
  return AgentClient.overStream(Duplex.from({ readable: toHost, writable: toAgent }));
}

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

  it("sends a reply larger than a frame as chunk frames, and the client joins them in order", async () => {
    const big = Buffer.alloc(CHUNK_PAYLOAD_BYTES * 2 + 5);
    for (let i = 0; i < big.length; i += 4096) big[i] = (i / 4096) % 251;
    const frames = encodeReply({ id: 3, type: "result" }, big).flatMap((f) => new FrameDecoder().push(f));
    expect(frames.map((f) => f.header.type)).toEqual(["chunk", "chunk", "result"]);
    expect(frames.every((f) => f.payload.length <= CHUNK_PAYLOAD_BYTES)).toBe(true);

    const client = await clientAnswering(big);
    const { header, payload } = await client.request({ type: "file_list", path: ".", recursive: true, maxEntries: 10 }, undefined, { maxReplyBytes: big.length });
    expect(header).toMatchObject({ path: "/workspace" });
    expect(payload.equals(big)).toBe(true);
    client.close();
  });

  it("refuses a reply larger than its request accepts instead of buffering it", async () => {
    const client = await clientAnswering(Buffer.alloc(CHUNK_PAYLOAD_BYTES * 2));
    const err = await client.request({ type: "file_list", path: ".", recursive: true, maxEntries: 10 }, undefined, { maxReplyBytes: CHUNK_PAYLOAD_BYTES }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PyroError);
    expect((err as PyroError).code).toBe("agent_protocol_error");
    // The connection stays usable: the rest of that reply is dropped, the next request answered.
    const next = await client.request({ type: "ping" }, undefined, { maxReplyBytes: CHUNK_PAYLOAD_BYTES * 2 });
    expect(next.payload.length).toBe(CHUNK_PAYLOAD_BYTES * 2);
    client.close();
  });
});
