/**
 * Channels over one byte stream. A VM guest's agent is reachable over a single virtio-serial
 * port, but the host opens many independent agent connections (each CLI call, the MCP server,
 * a shell attached while a command runs). The VM supervisor turns each host connection into a
 * channel here; the guest agent turns each channel back into a connection and serves it exactly
 * as it serves a socket, so the agent protocol is the same on every backend.
 *
 * Wire format, both directions: `type u8 | channel u32be | length u32be | payload`. Written by
 * hand because it is twelve lines of framing with no library worth a dependency; the payload
 * bound keeps a malformed or hostile peer from making the other side buffer without limit.
 */
import { Duplex } from "node:stream";

const HEADER = 9;
/** Bound on one frame's payload; larger writes are split. */
export const MAX_CHANNEL_FRAME = 64 * 1024;

const enum Kind {
  /** host → guest: a new connection on this channel. */
  Open = 1,
  Data = 2,
  /** Either side: the channel is finished (no half-close; the agent protocol never needs it). */
  Close = 3,
  /** guest → host, once: the agent serves channels now. */
  Ready = 4,
}

export class MuxError extends Error {}

class Channel extends Duplex {
  closedByPeer = false;

  constructor(
    private readonly mux: ChannelMux,
    readonly id: number,
  ) {
    super({ allowHalfOpen: false });
  }

  override _read(): void {
    // Data is pushed as frames arrive.
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    for (let at = 0; at < chunk.length; at += MAX_CHANNEL_FRAME) this.mux.send(Kind.Data, this.id, chunk.subarray(at, at + MAX_CHANNEL_FRAME));
    done();
  }

  override _final(done: (err?: Error | null) => void): void {
    this.mux.closeChannel(this);
    done();
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    this.mux.closeChannel(this);
    done(err);
  }
}

/**
 * One end of a multiplexed stream. The host end calls `open()` for each connection; the guest
 * end passes `onChannel` and receives them. `ready` resolves when the guest end announced itself.
 */
export class ChannelMux {
  private readonly channels = new Map<number, Channel>();
  private buffered: Buffer = Buffer.alloc(0);
  private nextId = 1;
  private closed = false;
  readonly ready: Promise<void>;
  private markReady!: () => void;

  constructor(
    private readonly stream: Duplex,
    private readonly onChannel: ((channel: Duplex) => void) | null = null,
    private readonly onBroken: (err: Error) => void = () => undefined,
  ) {
    this.ready = new Promise((resolve) => (this.markReady = resolve));
    stream.on("data", (data: Buffer) => this.receive(data));
    stream.on("close", () => this.shutdown(new MuxError("the channel stream closed")));
    stream.on("error", (err: Error) => this.shutdown(err));
  }

  /** Guest end: tells the host the agent is serving. */
  announceReady(): void {
    this.send(Kind.Ready, 0, Buffer.alloc(0));
  }

  /** Host end: a new connection to the agent. */
  open(): Duplex {
    const channel = new Channel(this, this.nextId++);
    this.channels.set(channel.id, channel);
    this.send(Kind.Open, channel.id, Buffer.alloc(0));
    return channel;
  }

  get channelCount(): number {
    return this.channels.size;
  }

  send(kind: Kind, id: number, payload: Buffer): void {
    if (this.closed || this.stream.destroyed) return;
    const header = Buffer.alloc(HEADER);
    header.writeUInt8(kind, 0);
    header.writeUInt32BE(id, 1);
    header.writeUInt32BE(payload.length, 5);
    this.stream.write(payload.length > 0 ? Buffer.concat([header, payload]) : header);
  }

  closeChannel(channel: Channel): void {
    if (!this.channels.delete(channel.id)) return;
    if (!channel.closedByPeer) this.send(Kind.Close, channel.id, Buffer.alloc(0));
  }

  private receive(data: Buffer): void {
    this.buffered = this.buffered.length === 0 ? data : Buffer.concat([this.buffered, data]);
    while (this.buffered.length >= HEADER) {
      const kind = this.buffered.readUInt8(0);
      const id = this.buffered.readUInt32BE(1);
      const length = this.buffered.readUInt32BE(5);
      if (length > MAX_CHANNEL_FRAME || kind < Kind.Open || kind > Kind.Ready) {
        this.shutdown(new MuxError(`malformed channel frame (kind ${kind}, length ${length})`));
        return;
      }
      if (this.buffered.length < HEADER + length) return;
      const payload = this.buffered.subarray(HEADER, HEADER + length);
      this.buffered = this.buffered.subarray(HEADER + length);
      this.dispatch(kind, id, payload);
    }
  }

  private dispatch(kind: Kind, id: number, payload: Buffer): void {
    const channel = this.channels.get(id);
    switch (kind) {
      case Kind.Ready:
        this.markReady();
        return;
      case Kind.Open: {
        if (!this.onChannel || channel) return;
        const opened = new Channel(this, id);
        this.channels.set(id, opened);
        this.onChannel(opened);
        return;
      }
      case Kind.Data:
        // Copy: the payload is a view into a buffer that is reused as frames arrive.
        channel?.push(Buffer.from(payload));
        return;
      case Kind.Close:
        if (!channel) return;
        channel.closedByPeer = true;
        this.channels.delete(id);
        channel.push(null);
        channel.destroy();
        return;
    }
  }

  private shutdown(err: Error): void {
    if (this.closed) return;
    this.closed = true;
    for (const channel of this.channels.values()) {
      channel.closedByPeer = true;
      channel.destroy();
    }
    this.channels.clear();
    this.onBroken(err);
  }
}
