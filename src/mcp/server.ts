/**
 * The MCP server: pyro's tools registered with the official MCP TypeScript SDK, each with a
 * description written for a model, a typed input schema, an output schema, structured content
 * and a short text rendering. Tools come from the operation declarations (src/ops/, through
 * registry.ts) and from the *-tools.ts files still written by hand; the profile or mode
 * (surfaces.ts) decides which of them a server shows, with which arguments and descriptions.
 * Transports live apart (stdio.ts, http.ts).
 */
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { CallToolRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import * as z from "zod";
import type { Pyro } from "../sdk/pyro.js";
import { PyroError } from "../shared/errors.js";
import { MCP_TOOLS } from "../contract.js";
import { OPERATIONS } from "../ops/index.js";
import { registerOperation } from "./registry.js";
import type { Handler, Register, ToolConfig } from "./registry.js";
import { fitResult } from "./budget.js";
import { errorResult, noteUnavailable, validationError } from "./results.js";
import { resolveSurface } from "./surfaces.js";
import type { McpServerOptions, Surface } from "./surfaces.js";

export { ERROR_META_KEY, ok, tool } from "./results.js";
export { BUDGET_META_KEY, MCP_RESULT_BUDGET_BYTES } from "./budget.js";
export type { McpServerOptions } from "./surfaces.js";
export type { Register, ToolConfig } from "./registry.js";
export { execText, cleanExec, MCP_LIST_LIMIT } from "../ops/workspace.js";

const VERSION = "0.1.0";

/**
 * Builds a server showing the tools of one profile (default `workspace-core`) or mode. Not
 * connected: give it to a transport (stdio.ts, http.ts) or an in-memory pair. `defineMore`
 * defines further tools (internal: tests use it to show that a tool no surface knows appears in
 * `workspace-full` only).
 */
export function createMcpServer(pyro: Pyro, options: McpServerOptions = {}, defineMore?: (register: Register) => void): McpServer {
  const surface = resolveSurface(options);
  const seedNote = options.projectSourceDescription ? ` If seed_path is omitted, the workspace is seeded from ${options.projectSourceDescription}.` : "";
  const server = new McpServer({ name: "pyro", version: VERSION }, { instructions: surface.instructions + seedNote });
  const defined = new Map<string, { config: ToolConfig; handler: Handler }>();
  const offered = (name: string) => (surface.tools === null ? defined.has(name) : surface.tools.has(name));
  const register: Register = Object.assign(
    (name: string, config: ToolConfig, handler: Handler) => {
      if (defined.has(name)) throw new Error(`MCP tool ${name} is defined twice`);
      defined.set(name, { config, handler });
    },
    { has: offered },
  );

  for (const operation of OPERATIONS) if (operation.mcp) registerOperation(register, pyro, operation);
  defineMore?.(register);

  for (const name of MCP_TOOLS) {
    if (!defined.has(name)) throw new Error(`MCP tool ${name} is in the contract but not defined`);
  }
  applySurface(server, surface, defined, seedNote);
  return server;
}

/**
 * Registers the tools a surface offers, in its order: each with only the arguments it allows
 * (as a strict object, so an argument the tool does not take is an error, not silently
 * dropped) and its description for the surface; an error whose hint names a tool this server
 * lacks gets a note saying so; every answer is fitted to the result budget (budget.ts). Bad arguments get pyro's `invalid_argument` with the arguments
 * the tool takes.
 */
function applySurface(server: McpServer, surface: Surface, defined: Map<string, { config: ToolConfig; handler: Handler }>, seedNote = ""): void {
  // workspace-full: the contract's order, then tools the contract does not list yet.
  const names = surface.tools === null ? [...MCP_TOOLS.filter((n) => defined.has(n)), ...[...defined.keys()].filter((n) => !(MCP_TOOLS as readonly string[]).includes(n))] : [...surface.tools.keys()];
  const has = (name: string) => names.includes(name);
  const offered = new Map<string, { schema: z.ZodType; params: string[]; handler: Handler }>();
  // registerTool's generic signature cannot follow schemas built at run time; the tools it lists
  // carry exactly these schemas.
  const registerTool = server.registerTool.bind(server) as unknown as (name: string, config: object, handler: Handler) => void;
  for (const name of names) {
    const tool = defined.get(name);
    if (!tool) throw new Error(`MCP ${surface.label} lists ${name}, which no tool file defines`);
    const variant = surface.tools?.get(name);
    const shape = variant ? pick(tool.config.inputSchema, variant.params, name) : tool.config.inputSchema;
    const description = (variant?.description ?? tool.config.description) + (name === "workspace_create" ? seedNote : "");
    const schema = z.strictObject(shape);
    const handler = (async (args: never, extra?: never) => noteUnavailable(await tool.handler(args, extra), defined.keys(), has, surface.label)) as Handler;
    offered.set(name, { schema, params: Object.keys(shape), handler });
    registerTool(name, { ...tool.config, description, inputSchema: schema }, handler);
  }
  // Calls are answered here rather than by McpServer's own dispatcher (the low-level Server's
  // public setRequestHandler replaces it), so that bad input gets pyro's `invalid_argument` with
  // the arguments the tool takes, and a tool this server does not offer gets the list it does —
  // like every other bad input, on every surface.
  // Every answer, result or error, passes the result budget (budget.ts) here and nowhere else.
  server.server.setRequestHandler(CallToolRequestSchema, async (request, extra): Promise<CallToolResult> => fitResult(await answer(request.params.name, request.params.arguments, extra)));
  async function answer(name: string, args: Record<string, unknown> | undefined, extra: unknown): Promise<CallToolResult> {
    const tool = offered.get(name);
    if (!tool) return errorResult(new PyroError("invalid_argument", `Tool ${name} not found`, { hint: `Call tools/list: this server (${surface.label}) offers ${names.join(", ")}.` }));
    const parsed = tool.schema.safeParse(args ?? {});
    if (!parsed.success) return errorResult(validationError(name, parsed.error.issues, tool.params, surface.label));
    // `extra` carries the request's progress token and the way to send progress notifications.
    return tool.handler(parsed.data as never, extra as never);
  }
}

function pick(shape: z.ZodRawShape, keys: readonly string[], tool: string): z.ZodRawShape {
  for (const key of keys) {
    if (!(key in shape)) throw new Error(`MCP tool ${tool} has no argument ${key} to offer`);
  }
  return Object.fromEntries(keys.map((key) => [key, shape[key]!]));
}
