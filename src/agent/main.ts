/**
 * pyro-agent: the process that runs *inside* a sandbox and performs every exec and file
 * operation on the host's behalf. It is bundled into one file and started with the host's own
 * node through the runtime directory's dynamic loader, so it depends on nothing the
 * environment ships. It listens on the already-bound socket passed as fd 3: it never creates
 * a path the host would later follow. It trusts nothing the host did not check either way.
 */
import fs from "node:fs";
import net from "node:net";
import { Duplex } from "node:stream";
import { FrameDecoder, encodeFrame, FrameError } from "../protocol/frames.js";
import type { Frame, FrameHeader } from "../protocol/frames.js";
import { PROTOCOL_VERSION } from "../protocol/messages.js";
import { ChannelMux } from "../protocol/mux.js";
import type { ExecRequest } from "../protocol/messages.js";
import { runExec } from "./exec.js";
import { fileList, fileRead, fileWrite } from "./files.js";
import { patchApply } from "./patch.js";
import { treeDiff } from "./diff.js";
import { exportCopy } from "./export.js";
import { AgentFailure } from "./failure.js";
import type { HandlerMap } from "./handler.js";
import { secretHandlers } from "./secrets.js";
import { shellHandlers } from "./shells.js";
import { serviceHandlers } from "./services.js";

const AGENT_VERSION = "1";

function send(socket: Duplex, header: FrameHeader, payload?: Uint8Array): void {
  if (!socket.destroyed) socket.write(encodeFrame(header, payload));
}

function sendError(socket: Duplex, id: number, err: unknown): void {
  const failure = err instanceof AgentFailure ? err : new AgentFailure("internal", err instanceof Error ? err.message : String(err));
  send(socket, { id, type: "error", code: failure.code, message: failure.message, ...(failure.details ? { details: failure.details } : {}) });
}

const str = (v: unknown, what: string): string => {
  if (typeof v !== "string") throw new AgentFailure("invalid_request", `${what} must be a string`);
  return v;
};
const num = (v: unknown, fallback: number): number => (typeof v === "number" && Number.isFinite(v) ? v : fallback);

const HANDLERS: HandlerMap = {
  ...secretHandlers,
  ...shellHandlers,
  ...serviceHandlers,
  hello: () => ({ result: { protocol: PROTOCOL_VERSION, agentVersion: AGENT_VERSION, pid: process.pid, capabilities: Object.keys(HANDLERS) } }),
  ping: () => ({ result: {} }),
  exec: async (h, payload) => {
    const { header, payload: output } = await runExec(h as unknown as ExecRequest, payload);
    return { result: header, payload: output };
  },
  file_list: (h) => ({ result: fileList({ path: str(h.path, "path"), recursive: h.recursive === true, maxEntries: num(h.maxEntries, 1000) }) }),
  file_read: (h) => {
    const { header, payload } = fileRead({ path: str(h.path, "path"), offset: num(h.offset, 0), maxBytes: num(h.maxBytes, 65536) });
    return { result: header, payload };
  },
  file_write: (h, payload) => ({ result: fileWrite({ path: str(h.path, "path"), mode: typeof h.mode === "number" ? h.mode : null }, payload) }),
  patch_apply: (_h, payload) => ({ result: patchApply(payload.toString("utf8")) }),
  tree_diff: (h) => {
    // The patch can be megabytes: it travels as the payload, not in the header.
    const { patch, ...result } = treeDiff({ base: str(h.base, "base"), live: str(h.live, "live"), path: typeof h.path === "string" ? h.path : null, maxBytes: num(h.maxBytes, 65536) });
    return { result, payload: Buffer.from(patch, "utf8") };
  },
  export_copy: (h) => ({ result: exportCopy({ path: str(h.path, "path"), name: str(h.name, "name") }) }),
};

async function handle(socket: Duplex, frame: Frame): Promise<void> {
  const handler = HANDLERS[frame.header.type];
  if (!handler) throw new AgentFailure("invalid_request", `unknown request type ${frame.header.type}`);
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
