/**
 * The stdio transport: how chat hosts (Claude Code, Codex, OpenCode, Claude Desktop, Cursor)
 * start pyro — as a child process speaking MCP on stdin/stdout. Logs go to stderr only; stdout
 * belongs to the protocol.
 */
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import type { Pyro } from "../sdk/pyro.js";
import { createMcpServer } from "./server.js";
import type { McpServerOptions } from "./surfaces.js";

/** Serves over stdio until the client disconnects. */
export async function serveStdio(pyro: Pyro, options: McpServerOptions = {}): Promise<void> {
  const server = createMcpServer(pyro, options);
  const transport = new StdioServerTransport();
  await server.connect(transport);
  await new Promise<void>((resolve) => {
    transport.onclose = () => resolve();
    process.stdin.on("end", () => resolve());
  });
  pyro.close();
}
