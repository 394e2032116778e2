/**
 * Host side of the agent protocol over any duplex byte stream (a unix socket today, a
 * virtio-serial or vsock channel for VMs). Multiplexes requests by id on one connection, so
 * an SDK instance keeps one warm connection per workspace. Everything the agent sends is
 * untrusted: frame sizes are bounded by the decoder and result shapes are checked by callers.
 */
import net from "node:net";
import type { Duplex } from "node:stream";
import { FrameDecoder, encodeFrame, MAX_PAYLOAD_BYTES } from "./frames.js";
import type { Frame, FrameHeader } from "./frames.js";
import { PROTOCOL_VERSION } from "./messages.js";
import type { HelloResult } from "./messages.js";
import { PyroError } from "../shared/errors.js";
import type { ErrorCode } from "../shared/errors.js";

/** Maps the agent's error codes onto the public error codes. */
const AGENT_CODE_MAP: Record<string, ErrorCode> = {
  invalid_request: "invalid_argument",
  path_outside_workspace: "path_outside_workspace",
  not_found: "path_not_found",
  patch_failed: "patch_failed",
  shell_not_found: "shell_not_found",
  service_not_found: "service_not_found",
  service_exists: "service_exists",
  secret_not_found: "secret_not_found",
};

interface Pending {
  resolve(frame: Frame): void;
  reject(err: Error): void;
  onChunk?: (payload: Buffer) => void;
}

export class AgentClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private closedError: Error | null = null;

  private constructor(private readonly stream: Duplex) {
    const decoder = new FrameDecoder();
    stream.on("data", (data: Buffer) => {
      let frames: Frame[];
      try {
        frames = decoder.push(data);
      } catch (err) {
        this.fail(new PyroError("agent_protocol_error", `agent sent an invalid frame: ${(err as Error).message}`));
        stream.destroy();
        return;
      }
      for (const frame of frames) this.dispatch(frame);
    });
    stream.on("error", (err) => this.fail(new PyroError("agent_unreachable", `agent connection failed: ${err.message}`)));
    stream.on("close", () => this.fail(new PyroError("agent_unreachable", "agent connection closed")));
  }

  /** Speaks the protocol over an already-open byte stream (e.g. a utility sandbox's stdio). */
  static async overStream(stream: Duplex): Promise<AgentClient> {
    return AgentClient.handshake(new AgentClient(stream));
  }

  private static async handshake(client: AgentClient): Promise<AgentClient> {
    const hello = await client.request({ type: "hello", protocol: PROTOCOL_VERSION });
    const info = hello.header as unknown as HelloResult;
    if (info.protocol !== PROTOCOL_VERSION) {
      client.close();
      throw new PyroError("agent_protocol_error", `agent speaks protocol ${String(info.protocol)}, host speaks ${PROTOCOL_VERSION}`, {
        hint: "Restart the workspace (`pyro workspace stop` then `start`) so it runs the current agent.",
      });
    }
    return client;
  }

  /** Connects to a unix socket and performs the version handshake. */
  static async connect(socketPath: string, timeoutMs = 5000): Promise<AgentClient> {
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ path: socketPath });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new PyroError("agent_unreachable", `agent did not accept a connection within ${timeoutMs} ms`));
      }, timeoutMs);
      s.once("connect", () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once("error", (err) => {
        clearTimeout(timer);
        reject(new PyroError("agent_unreachable", `cannot reach the workspace agent: ${err.message}`));
      });
    });
    socket.setNoDelay(true);
    return AgentClient.handshake(new AgentClient(socket));
  }

  get closed(): boolean {
    return this.closedError !== null;
  }

  /** Sends one request; resolves with the `result` frame or rejects with a PyroError. */
  request(body: Omit<FrameHeader, "id">, payload?: Uint8Array, onChunk?: (payload: Buffer) => void): Promise<Frame> {
    const id = this.nextId++;
    return new Promise<Frame>((resolve, reject) => {
      if (this.closedError) return reject(this.closedError);
      this.pending.set(id, { resolve, reject, ...(onChunk ? { onChunk } : {}) });
      this.stream.write(encodeFrame({ ...body, id } as FrameHeader, payload));
    });
  }

  /**
   * Sends a streamed request: the first frame, then `source` in chunk frames, then `end`.
   * Used for archives, whose size has no fixed bound.
   */
  async requestStream(body: Omit<FrameHeader, "id">, source: AsyncIterable<Buffer>): Promise<Frame> {
    const id = this.nextId++;
    const done = new Promise<Frame>((resolve, reject) => {
      if (this.closedError) return reject(this.closedError);
      this.pending.set(id, { resolve, reject });
    });
    this.stream.write(encodeFrame({ ...body, id } as FrameHeader));
    let failed = false;
    done.catch(() => {
      failed = true;
    });
    for await (const data of source) {
      if (failed || this.closedError) break;
      for (let offset = 0; offset < data.length; offset += MAX_PAYLOAD_BYTES) {
        const ok = this.stream.write(encodeFrame({ id, type: "chunk" }, data.subarray(offset, offset + MAX_PAYLOAD_BYTES)));
        if (!ok) await new Promise((r) => this.stream.once("drain", r));
      }
    }
    if (!failed && !this.closedError) this.stream.write(encodeFrame({ id, type: "end" }));
    return done;
  }

  close(): void {
    this.stream.destroy();
  }

  private dispatch(frame: Frame): void {
    const pending = this.pending.get(frame.header.id);
    if (!pending) return;
    if (frame.header.type === "chunk") {
      pending.onChunk?.(frame.payload);
      return;
    }
    this.pending.delete(frame.header.id);
    if (frame.header.type === "error") {
      const agentCode = String(frame.header.code ?? "internal");
      const message = String(frame.header.message ?? "agent error").slice(0, 2000);
      const details = typeof frame.header.details === "object" && frame.header.details !== null ? (frame.header.details as Record<string, unknown>) : undefined;
      pending.reject(new PyroError(AGENT_CODE_MAP[agentCode] ?? "internal_error", message, details ? { details } : {}));
      return;
    }
    pending.resolve(frame);
  }

  private fail(err: Error): void {
    if (this.closedError) return;
    this.closedError = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}
