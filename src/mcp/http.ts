/**
 * The Streamable HTTP transport (`pyro mcp serve --http`): the official SDK's
 * StreamableHTTPServerTransport behind a small node:http server that insists on a bearer token
 * for every request and, on a loopback bind, on a loopback Host header (DNS rebinding). One MCP
 * server per session, all sharing one `Pyro`. Never binds beyond loopback without a token the
 * user chose. Transport only: which tools exist is server.ts's business.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";
import type { Pyro } from "../sdk/pyro.js";
import { PyroError } from "../shared/errors.js";
import { createMcpServer } from "./server.js";
import { resolveSurface } from "./surfaces.js";
import type { McpServerOptions } from "./surfaces.js";

export const DEFAULT_HTTP_HOST = "127.0.0.1";
export const DEFAULT_HTTP_PORT = 8765;
export const MCP_HTTP_PATH = "/mcp";
/** Read when `token` is not given. */
export const TOKEN_ENV = "PYRO_MCP_TOKEN";

export interface HttpServeOptions extends McpServerOptions {
  /** Default 127.0.0.1. Anything but loopback needs an explicit token. */
  host?: string;
  /** Default 8765; 0 picks a free port (the returned url says which). */
  port?: number;
  /** Bearer token clients must send; default `$PYRO_MCP_TOKEN`, else a random one (loopback only). */
  token?: string;
}

export interface HttpServer {
  url: string;
  token: string;
  /** True when pyro made the token up (it must be shown to the user). */
  generatedToken: boolean;
  close(): Promise<void>;
}

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "::1", "localhost"]);
const MIN_TOKEN_LENGTH = 16;

export function isLoopback(host: string): boolean {
  return LOOPBACK_HOSTS.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Checks the bind and picks the token: refuses a non-loopback bind without a chosen token. */
export function resolveHttpAuth(host: string, token: string | undefined): { token: string; generated: boolean } {
  if (token !== undefined && token.length < MIN_TOKEN_LENGTH) {
    throw new PyroError("invalid_argument", `the bearer token must be at least ${MIN_TOKEN_LENGTH} characters`, { hint: "Use a long random token, e.g. `openssl rand -hex 32`." });
  }
  if (token !== undefined) return { token, generated: false };
  if (!isLoopback(host)) {
    throw new PyroError("invalid_argument", `refusing to serve MCP on ${host}, which is not loopback, without a bearer token`, {
      hint: `Pass --token (or set ${TOKEN_ENV}) with a long random secret, or bind to 127.0.0.1.`,
      details: { reason: "token_required", host },
    });
  }
  return { token: randomBytes(32).toString("base64url"), generated: true };
}

function authorized(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  if (!m) return false;
  const given = Buffer.from(m[1]!);
  const expected = Buffer.from(token);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function hostName(hostHeader: string | undefined): string {
  if (!hostHeader) return "";
  if (hostHeader.startsWith("[")) return hostHeader.slice(1, hostHeader.indexOf("]"));
  return hostHeader.replace(/:\d+$/, "");
}

function jsonError(res: http.ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32001, message }, id: null }));
}

async function readJson(req: http.IncomingMessage, limit = 32 * 1024 * 1024): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new PyroError("invalid_argument", "request body too large");
    chunks.push(chunk as Buffer);
  }
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

/**
 * Starts serving MCP over Streamable HTTP at `http://HOST:PORT/mcp`. Resolves once listening.
 * The profile/mode options are checked before anything binds.
 */
export async function serveHttp(pyro: Pyro, options: HttpServeOptions = {}): Promise<HttpServer> {
  const host = options.host ?? DEFAULT_HTTP_HOST;
  const port = options.port ?? DEFAULT_HTTP_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new PyroError("invalid_argument", `port must be 0-65535, got ${port}`);
  const surfaceOptions: McpServerOptions = { ...(options.profile !== undefined ? { profile: options.profile } : {}), ...(options.mode !== undefined ? { mode: options.mode } : {}) };
  resolveSurface(surfaceOptions);
  const { token, generated } = resolveHttpAuth(host, options.token ?? (process.env[TOKEN_ENV] || undefined));
  const loopback = isLoopback(host);
  const sessions = new Map<string, StreamableHTTPServerTransport>();

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (url.pathname !== MCP_HTTP_PATH) return jsonError(res, 404, `not found: MCP is served at ${MCP_HTTP_PATH}`);
    // A web page in the user's browser must not reach a loopback server through a DNS name it controls.
    if (loopback && !isLoopback(hostName(req.headers.host))) return jsonError(res, 403, `Host ${req.headers.host ?? "(none)"} is not allowed`);
    if (!authorized(req.headers.authorization, token)) {
      return jsonError(res, 401, "missing or wrong bearer token: send Authorization: Bearer <token>", { "www-authenticate": 'Bearer realm="pyro"' });
    }
    const sessionId = req.headers["mcp-session-id"];
    const existing = typeof sessionId === "string" ? sessions.get(sessionId) : undefined;
    if (req.method === "POST") {
      const body = await readJson(req).catch(() => undefined);
      if (body === undefined) return jsonError(res, 400, "the body is not JSON");
      if (existing) return existing.handleRequest(req, res, body);
      if (sessionId !== undefined) return jsonError(res, 404, "unknown or expired session; initialize again");
      if (!isInitializeRequest(body)) return jsonError(res, 400, "no session: the first request must be initialize");
      const transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => {
          sessions.set(id, transport);
        },
      });
      transport.onclose = () => {
        if (transport.sessionId) sessions.delete(transport.sessionId);
      };
      await createMcpServer(pyro, surfaceOptions).connect(transport);
      return transport.handleRequest(req, res, body);
    }
    if (req.method === "GET" || req.method === "DELETE") {
      if (!existing) return jsonError(res, sessionId === undefined ? 400 : 404, "unknown or missing session");
      return existing.handleRequest(req, res);
    }
    return jsonError(res, 405, `method ${req.method} not allowed`, { allow: "GET, POST, DELETE" });
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) jsonError(res, 500, (err as Error).message);
      else res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) =>
      reject(new PyroError("invalid_argument", `cannot listen on ${host}:${port}: ${err.code ?? err.message}`, { hint: err.code === "EADDRINUSE" ? "Choose another --port, or 0 for any free port." : "Check --host and --port." })),
    );
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return {
    url: `http://${shownHost}:${address.port}${MCP_HTTP_PATH}`,
    token,
    generatedToken: generated,
    async close() {
      await Promise.all([...sessions.values()].map((t) => t.close().catch(() => undefined)));
      sessions.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
