/**
 * How tools reach the MCP server: `Register` collects tool definitions before a surface decides
 * which to show (server.ts), and `registerOperation` defines the tool of one operation declaration
 * (src/ops/): its input schema from the declaration's fields, its output schema, a handler that
 * runs the operation and returns structured content with the operation's text for a model.
 */
import type { CallToolResult, ServerNotification, ServerRequest, ToolAnnotations } from "@modelcontextprotocol/sdk/types.js";
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import type * as z from "zod";
import type { Pyro } from "../sdk/pyro.js";
import { inputShape } from "../ops/op.js";
import type { AnyOperation as Operation } from "../ops/op.js";
import { ok, tool } from "./results.js";

export interface ToolConfig {
  title: string;
  description: string;
  inputSchema: z.ZodRawShape;
  outputSchema: z.ZodRawShape;
  annotations?: ToolAnnotations;
}

export type Handler = (args: never, extra?: never) => Promise<CallToolResult>;

/**
 * How tools are defined on a server. `has(name)` says whether this server offers a tool (for text
 * renderings that point at another tool); it is meaningful at call time.
 */
export type Register = ((name: string, config: ToolConfig, handler: Handler) => void) & { has: (name: string) => boolean };

/** Defines the MCP tool of an operation. */
export function registerOperation(register: Register, pyro: Pyro, operation: Operation): void {
  if (!operation.mcp || !operation.title || !operation.description || !operation.output) throw new Error(`operation ${operation.sdk ?? operation.cli} is not an MCP tool`);
  register(
    operation.mcp,
    {
      title: operation.title,
      description: operation.description,
      inputSchema: inputShape(operation),
      outputSchema: operation.output,
      ...(operation.annotations ? { annotations: operation.annotations } : {}),
    },
    tool(async (args: Record<string, unknown>, extra: RequestExtra | undefined) => {
      const progress = progressSender(extra);
      const result = await operation.run(pyro, args as never, progress ? { surface: "mcp", progress } : { surface: "mcp" });
      const structured = operation.forModel ? operation.forModel(result) : (result as object);
      return ok(structured, operation.text(result, { surface: "mcp", offers: register.has }));
    }),
  );
}

/** What a tool handler gets with a request: its `_meta` and a way to send notifications. */
type RequestExtra = Pick<RequestHandlerExtra<ServerRequest, ServerNotification>, "_meta" | "sendNotification">;

/**
 * MCP progress notifications for an operation's progress lines, when the request asked for
 * them (a `progressToken`); none otherwise. The total is unknown, so `progress` counts lines.
 * A notification that cannot be sent is dropped: progress never fails the call.
 */
function progressSender(extra: RequestExtra | undefined): ((line: string) => void) | undefined {
  const token = extra?._meta?.progressToken;
  if (token === undefined || !extra) return undefined;
  let count = 0;
  return (line) => {
    count += 1;
    extra.sendNotification({ method: "notifications/progress", params: { progressToken: token, progress: count, message: line } }).catch(() => undefined);
  };
}
