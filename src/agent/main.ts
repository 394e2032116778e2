/**
 * pyro-agent: the process that runs *inside* a sandbox and performs every exec and file
 * operation on the host's behalf. It is bundled into one file and started with the host's own
 * node through the runtime directory's dynamic loader, so it depends on nothing the
 * environment ships. It listens on the already-bound socket passed as fd 3: it never creates
 * a path the host would later follow. It trusts nothing the host did not check either way.
 *
 * This file only assembles the handler table from the feature modules (exec, files, patch,
 * diff, export, secrets, shells/, services/), each typed from protocol/messages.ts `Requests`,
 * adds the handshake, and runs the transports (unix socket, VM serial channel, stdio).
 */
import fs from "node:fs";
import net from "node:net";
import { Duplex } from "node:stream";
import { FrameDecoder, encodeReply, FrameError } from "../protocol/frames.js";
import type { Frame, FrameHeader } from "../protocol/frames.js";
import { PROTOCOL_VERSION } from "../protocol/messages.js";
import type { RequestType } from "../protocol/messages.js";
import { ChannelMux } from "../protocol/mux.js";
import { execHandlers } from "./exec.js";
import { countOomKillsHere } from "./expendable.js";
import { fileHandlers } from "./files.js";
import { patchHandlers } from "./patch.js";
import { diffHandlers } from "./diff.js";
import { exportHandlers } from "./export.js";
import { AgentFailure } from "./failure.js";
import type { Handler, HandlerTable, Handlers } from "./handler.js";
import { currentRedactor, secretHandlers } from "./secrets.js";
import { shellHandlers } from "./shells/shells.js";
import { serviceHandlers } from "./services/services.js";

const AGENT_VERSION = "1";

/** A payload over one frame (a long listing) goes out in `chunk` frames before the header's frame. */
function send(socket: Duplex, header: FrameHeader, payload?: Uint8Array): void {
  for (const frame of encodeReply(header, payload)) if (!socket.destroyed) socket.write(frame);
}

/**
 * Error frames are redacted here, at their source: a message may quote what the host sent (a
 * cwd, a path, a command) and that may be a secret's value.
 */
function sendError(socket: Duplex, id: number, err: unknown): void {
  const failure = err instanceof AgentFailure ? err : new AgentFailure("internal", err instanceof Error ? err.message : String(err));
  const redactor = currentRedactor();
  send(socket, { id, type: "error", code: failure.code, message: redactor.redact(failure.message), ...(failure.details ? { details: redactor.redactValue(failure.details) } : {}) });
}

const connectionHandlers: Handlers<"hello" | "ping"> = {
  // The capabilities are the request types this agent serves.
  hello: () => ({ result: { protocol: PROTOCOL_VERSION, agentVersion: AGENT_VERSION, pid: process.pid, capabilities: Object.keys(HANDLERS) } }),
  ping: () => ({ result: {} }),
};

/** Every request type the protocol declares, each served by its feature module. */
const HANDLERS: HandlerTable = {
  ...secretHandlers,
  ...shellHandlers,
  ...serviceHandlers,
  ...connectionHandlers,
  ...execHandlers,
  ...fileHandlers,
  ...patchHandlers,
  ...diffHandlers,
  ...exportHandlers,
};

function isRequestType(type: string): type is RequestType {
  // Own keys only: "toString" and the like are not requests.
  return Object.hasOwn(HANDLERS, type);
}

async function handle(socket: Duplex, frame: Frame): Promise<void> {
  const type = frame.header.type;
  if (!isRequestType(type)) throw new AgentFailure("invalid_request", `unknown request type ${type}`);
  // Any handler takes any header: each validates the fields it reads.
  const handler: Handler<RequestType> = HANDLERS[type];
  const { result, payload } = await handler(frame.header, frame.payload);
  send(socket, { ...result, id: frame.header.id, type: "result" }, payload);
}

function onConnection(socket: Duplex): void {
  const decoder = new FrameDecoder();
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
      handle(socket, frame).catch((err: unknown) => sendError(socket, frame.header.id, err));
    }
  });
  socket.on("error", () => socket.destroy());
}

const serialAt = process.argv.indexOf("--serial");
if (serialAt > 0) {
  countOomKillsHere();
  // VM guests: one virtio-serial port carries every host connection as a channel (protocol/mux.ts).
  // The port opens once (a second open is refused by the driver), so both directions share the fd.
  const fd = fs.openSync(process.argv[serialAt + 1] ?? "", "r+");
  const port = Duplex.from({ readable: fs.createReadStream("", { fd, highWaterMark: 256 * 1024 }), writable: fs.createWriteStream("", { fd, autoClose: false }) });
  const mux = new ChannelMux(port, onConnection, (err) => {
    process.stderr.write(`pyro-agent: the host link broke: ${err.message}\n`);
    process.exit(70);
  });
  mux.announceReady();
} else if (process.argv.includes("--stdio")) {
  // Utility sandboxes: one connection over stdin/stdout, and exit when the host hangs up.
  const stdio = Duplex.from({ readable: process.stdin, writable: process.stdout });
  onConnection(stdio);
  process.stdin.on("end", () => process.exit(0));
} else {
  const server = net.createServer(onConnection);
  server.on("error", (err) => {
    process.stderr.write(`pyro-agent: ${err.message}\n`);
    process.exit(70);
  });
  server.listen({ fd: 3 });
}
process.on("SIGTERM", () => process.exit(0));
