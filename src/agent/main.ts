/**
 * pyro-agent: the process that runs *inside* a sandbox and performs every exec and file
 * operation on the host's behalf. It is bundled into one file and started with the host's own
 * node through the runtime directory's dynamic loader, so it depends on nothing the
 * environment ships. It listens on the already-bound socket passed as fd 3: it never creates
 * a path the host would later follow. It trusts nothing the host did not check either way.
 */
import net from "node:net";
import { FrameDecoder, encodeFrame, FrameError } from "../protocol/frames.js";
import type { Frame, FrameHeader } from "../protocol/frames.js";
import { PROTOCOL_VERSION } from "../protocol/messages.js";
import type { ArchiveImportRequest, ExecRequest } from "../protocol/messages.js";
import { runExec } from "./exec.js";
import { ArchiveImport } from "./archive-import.js";
import { AgentFailure } from "./failure.js";

const AGENT_VERSION = "1";
const CAPABILITIES = ["exec", "archive_import"];

/** A streamed request in progress on one connection (chunks follow its first frame). */
interface Stream {
  chunk(payload: Buffer): void;
  end(): void;
}

function send(socket: net.Socket, header: FrameHeader, payload?: Uint8Array): void {
  if (!socket.destroyed) socket.write(encodeFrame(header, payload));
}

function sendError(socket: net.Socket, id: number, err: unknown): void {
  const failure = err instanceof AgentFailure ? err : new AgentFailure("internal", err instanceof Error ? err.message : String(err));
  send(socket, { id, type: "error", code: failure.code, message: failure.message, ...(failure.details ? { details: failure.details } : {}) });
}

async function handle(socket: net.Socket, frame: Frame, streams: Map<number, Stream>): Promise<void> {
  const { header, payload } = frame;
  const id = header.id;
  switch (header.type) {
    case "hello":
      send(socket, { id, type: "result", protocol: PROTOCOL_VERSION, agentVersion: AGENT_VERSION, pid: process.pid, capabilities: CAPABILITIES });
      return;
    case "ping":
      send(socket, { id, type: "result" });
      return;
    case "exec": {
      const { header: result, payload: output } = await runExec(header as unknown as ExecRequest, payload);
      send(socket, { id, type: "result", ...result }, output);
      return;
    }
    case "archive_import": {
      const job = new ArchiveImport(header as unknown as ArchiveImportRequest);
      streams.set(id, job);
      try {
        const result = await job.done;
        send(socket, { id, type: "result", ...result });
      } finally {
        streams.delete(id);
      }
      return;
    }
    case "chunk":
      streams.get(id)?.chunk(payload);
      return;
    case "end":
      streams.get(id)?.end();
      return;
    default:
      throw new AgentFailure("invalid_request", `unknown request type ${header.type}`);
  }
}

function onConnection(socket: net.Socket): void {
  const decoder = new FrameDecoder();
  const streams = new Map<number, Stream>();
  socket.on("data", (data: Buffer) => {
    let frames: Frame[];
    try {
      frames = decoder.push(data);
    } catch (err) {
      // A peer that cannot frame is not a peer we keep talking to.
      if (err instanceof FrameError) socket.destroy();
      return;
    }
    for (const frame of frames) {
      handle(socket, frame, streams).catch((err: unknown) => sendError(socket, frame.header.id, err));
    }
  });
  socket.on("error", () => socket.destroy());
  socket.on("close", () => {
    for (const stream of streams.values()) stream.end();
  });
}

const server = net.createServer(onConnection);
server.on("error", (err) => {
  process.stderr.write(`pyro-agent: ${err.message}\n`);
  process.exit(70);
});
server.listen({ fd: 3 });
process.on("SIGTERM", () => process.exit(0));
