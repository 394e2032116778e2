// Drive `pyro mcp serve` with the official MCP client over stdio, exactly as a chat host does.
// Run from the repo root after `npm run build`: node examples/mcp-client.mjs
// (workspace-full, because it uses vm_run and workspace tools; docs/integrations.md picks a set)
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const transport = new StdioClientTransport({ command: process.execPath, args: [new URL("../bin/pyro.js", import.meta.url).pathname, "mcp", "serve", "--profile", "workspace-full"] });
const client = new Client({ name: "pyro-example", version: "1.0.0" });
await client.connect(transport);

const tools = await client.listTools();
console.log("tools:", tools.tools.map((t) => t.name).join(", "));

const run = await client.callTool({ name: "vm_run", arguments: { environment: "debian:12", command: "uname -s && git --version" } });
console.log("vm_run:", run.structuredContent.exit_code, run.structuredContent.stdout.trim());

const created = await client.callTool({ name: "workspace_create", arguments: { environment: "debian:12", labels: { example: "mcp" } } });
const id = created.structuredContent.workspace_id;
const exec = await client.callTool({ name: "workspace_exec", arguments: { workspace_id: id, command: "echo hello > greeting && cat greeting" } });
console.log("workspace_exec:", exec.structuredContent.stdout.trim());

const missing = await client.callTool({ name: "workspace_status", arguments: { workspace_id: "no-such-workspace" } });
console.log("error:", missing.isError, missing._meta["pyro/error"].code, "-", missing.content[0].text);

await client.callTool({ name: "workspace_delete", arguments: { workspace_id: id } });
await client.close();
