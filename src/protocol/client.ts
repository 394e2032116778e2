/**
 * Host side of the agent protocol over any duplex byte stream (a unix socket today, a
 * virtio-serial or vsock channel for VMs). Multiplexes requests by id on one connection, so
 * an SDK instance keeps one warm connection per workspace. Requests and results are typed by
 * the `Requests` map (protocol/messages.ts), so callers read result fields without casts. The
 * agent is still a peer, not a part of the host: frame sizes are bounded by the decoder, a reply
 * split into `chunk` frames is joined only up to what its request said it accepts, error frames
 * are reduced to a code and a bounded message, and callers bound what they pass on.
 */
import net from "node:net";
import type { Duplex } from "node:stream";
import { FrameDecoder, MAX_PAYLOAD_BYTES, encodeFrame } from "./frames.js";
import type { Frame } from "./frames.js";
import { PROTOCOL_VERSION } from "./messages.js";
import type { Reply, RequestOf, Requests, RequestType } from "./messages.js";
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
  /** Payload pieces received in `chunk` frames before the result, and their total. */
  chunks: Buffer[];
  received: number;
  /** The most payload bytes this request accepts in all; more is a protocol error. */
  maxReplyBytes: number;
}

/** How one request is answered. */
export interface RequestOptions {
  /**
   * The most payload bytes the reply may carry, joined from its `chunk` frames (default: one
   * frame's worth). A request whose answer can be larger says so; an agent sending more is
   * refused rather than buffered.
   */
  maxReplyBytes?: number;
}

/** A request outside the `Requests` map, and its result as the agent sent it. */
export interface UncheckedRequest {
  type: string;
  [field: string]: unknown;
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
    const { header: info } = await client.request({ type: "hello", protocol: PROTOCOL_VERSION });
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

  /**
   * Sends one request; resolves with the `result` frame's header (typed by `Requests`) and its
   * payload, or rejects with a PyroError mapped from the agent's error frame.
   */
  async request<K extends RequestType>(body: RequestOf<K>, payload?: Uint8Array, options: RequestOptions = {}): Promise<Reply<K>> {
    const frame = await this.send(body, payload, options.maxReplyBytes ?? MAX_PAYLOAD_BYTES);
    // The frame's own id and type ("result") are not part of the result.
    const { id: _id, type: _type, ...fields } = frame.header;
    // The agent answering this type builds its header from the same map (agent/handler.ts).
    const header = fields as Requests[K]["res"];
    return { header, payload: frame.payload };
  }

  /**
   * Sends a request the map does not allow (a wrong field type, an unknown request) and returns
   * the result untyped. For probing the agent's own validation; product code uses `request`.
   */
  requestUnchecked(body: UncheckedRequest, payload?: Uint8Array): Promise<Frame> {
    return this.send(body, payload, MAX_PAYLOAD_BYTES);
  }

  private send(body: { type: string }, payload: Uint8Array | undefined, maxReplyBytes: number): Promise<Frame> {
    const id = this.nextId++;
    return new Promise<Frame>((resolve, reject) => {
      if (this.closedError) return reject(this.closedError);
      this.pending.set(id, { resolve, reject, chunks: [], received: 0, maxReplyBytes });
      this.stream.write(encodeFrame({ ...body, id }, payload));
    });
  }

  close(): void {
    this.stream.destroy();
  }

  private dispatch(frame: Frame): void {
    const pending = this.pending.get(frame.header.id);
    if (!pending) return;
    const received = pending.received + frame.payload.length;
    if (received > pending.maxReplyBytes) {
      // Forgotten from here on: the rest of this reply's frames find no request and are dropped.
      this.pending.delete(frame.header.id);
      pending.reject(new PyroError("agent_protocol_error", `agent reply larger than the ${pending.maxReplyBytes} bytes asked for`));
      return;
    }
    if (frame.header.type === "chunk") {
      pending.chunks.push(frame.payload);
      pending.received = received;
      return;
    }
    this.pending.delete(frame.header.id);
    const whole = pending.chunks.length > 0 ? { header: frame.header, payload: Buffer.concat([...pending.chunks, frame.payload], received) } : frame;
    if (frame.header.type === "error") {
      const agentCode = String(frame.header.code ?? "internal");
      const message = String(frame.header.message ?? "agent error").slice(0, 2000);
      const details = typeof frame.header.details === "object" && frame.header.details !== null ? (frame.header.details as Record<string, unknown>) : undefined;
      pending.reject(new PyroError(AGENT_CODE_MAP[agentCode] ?? "internal_error", message, details ? { details } : {}));
      return;
    }
    pending.resolve(whole);
  }

  private fail(err: Error): void {
    if (this.closedError) return;
    this.closedError = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}
