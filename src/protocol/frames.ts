/**
 * Framing for the host <-> agent protocol. A frame is
 *   u32 BE header length | u32 BE payload length | header (UTF-8 JSON object) | payload bytes
 * so binary data (stdout, archives, file contents) travels raw, never base64. The decoder is the
 * first line of defence against a hostile peer: it refuses oversized or malformed frames rather
 * than buffering without bound. Pure; no I/O.
 */

/** Largest header a peer may send: headers carry metadata only. */
export const MAX_HEADER_BYTES = 1024 * 1024;
/** Largest payload in one frame; bigger transfers are split into `chunk` frames. */
export const MAX_PAYLOAD_BYTES = 16 * 1024 * 1024;
/** Payload bytes per `chunk` frame when a reply is split (well under the frame limit). */
export const CHUNK_PAYLOAD_BYTES = 4 * 1024 * 1024;

export interface FrameHeader {
  /** Request id chosen by the client; every frame of one exchange carries it. */
  id: number;
  type: string;
  [key: string]: unknown;
}

export interface Frame {
  header: FrameHeader;
  payload: Buffer;
}

export class FrameError extends Error {}

export function encodeFrame(header: FrameHeader, payload?: Uint8Array): Buffer {
  const headerBytes = Buffer.from(JSON.stringify(header), "utf8");
  const payloadLength = payload?.byteLength ?? 0;
  if (headerBytes.length > MAX_HEADER_BYTES) throw new FrameError("frame header too large");
  if (payloadLength > MAX_PAYLOAD_BYTES) throw new FrameError("frame payload too large");
  const prefix = Buffer.allocUnsafe(8);
  prefix.writeUInt32BE(headerBytes.length, 0);
  prefix.writeUInt32BE(payloadLength, 4);
  return payload && payloadLength > 0
    ? Buffer.concat([prefix, headerBytes, payload], 8 + headerBytes.length + payloadLength)
    : Buffer.concat([prefix, headerBytes], 8 + headerBytes.length);
}

/**
 * A reply whose payload may exceed one frame: the payload travels in `chunk` frames (same id,
 * header `{ id, type: "chunk" }`, payload only) and the header in the final frame with the last
 * piece. A receiver joins the pieces in order; it decides how many bytes it accepts in all.
 */
export function encodeReply(header: FrameHeader, payload?: Uint8Array): Buffer[] {
  if (!payload || payload.byteLength <= CHUNK_PAYLOAD_BYTES) return [encodeFrame(header, payload)];
  const frames: Buffer[] = [];
  let at = 0;
  for (; payload.byteLength - at > CHUNK_PAYLOAD_BYTES; at += CHUNK_PAYLOAD_BYTES) {
    frames.push(encodeFrame({ id: header.id, type: "chunk" }, payload.subarray(at, at + CHUNK_PAYLOAD_BYTES)));
  }
  frames.push(encodeFrame(header, payload.subarray(at)));
  return frames;
}

/** Incremental decoder: feed it socket data, it yields whole frames. */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  push(data: Buffer): Frame[] {
    this.chunks.push(data);
    this.buffered += data.length;
    const frames: Frame[] = [];
    while (this.buffered >= 8) {
      const head = this.peek(8);
      const headerLength = head.readUInt32BE(0);
      const payloadLength = head.readUInt32BE(4);
      if (headerLength === 0 || headerLength > MAX_HEADER_BYTES) throw new FrameError(`bad frame header length ${headerLength}`);
      if (payloadLength > MAX_PAYLOAD_BYTES) throw new FrameError(`frame payload too large (${payloadLength} bytes)`);
      const total = 8 + headerLength + payloadLength;
      if (this.buffered < total) break;
      const whole = this.take(total);
      let header: unknown;
      try {
        header = JSON.parse(whole.subarray(8, 8 + headerLength).toString("utf8"));
      } catch {
        throw new FrameError("frame header is not JSON");
      }
      if (!isHeader(header)) throw new FrameError("frame header lacks id/type");
      frames.push({ header, payload: whole.subarray(8 + headerLength) });
    }
    return frames;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length >= n) return this.chunks[0]!.subarray(0, n);
    return Buffer.concat(this.chunks).subarray(0, n);
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return out;
  }
}

function isHeader(value: unknown): value is FrameHeader {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const v = value as Record<string, unknown>;
  return typeof v.id === "number" && Number.isSafeInteger(v.id) && typeof v.type === "string";
}
