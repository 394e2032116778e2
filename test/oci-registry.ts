/**
 * A real registry for the image tests: the loopback registry and pusher of
 * scripts/oci-registry.ts (shared with the image-pull benchmark), and a front proxy that can play
 * a token service, tamper with blobs, rewrite manifests or redirect blob downloads. Nothing here
 * reaches any address but 127.0.0.1.
 */
import http from "node:http";
import { freePort } from "../scripts/oci-registry.js";
import type { LocalRegistry } from "../scripts/oci-registry.js";

export { DOCKER, OCI, Pusher, freePort, makeLayer, sha256, startRegistry } from "../scripts/oci-registry.js";
export type { LocalRegistry as TestRegistry, PushedBlob } from "../scripts/oci-registry.js";

/** What the front proxy does besides passing requests on. */
export interface ProxyBehaviour {
  /** Blob digests whose bodies get one byte flipped. */
  tamper?: Set<string>;
  /** Paths (`/v2/…/manifests/REF`) answered with these bytes instead. */
  manifests?: Map<string, { body: Buffer; contentType: string }>;
  /** Requests for blobs answered with a 307 to this function's URL (given the digest). */
  redirectBlobs?: (digest: string) => string;
  /** Blob digests answered with 503, as a failing registry would. */
  fail?: Set<string>;
  /**
   * Blob digests whose bodies stop halfway, the connection held open; `onStall` is told when the
   * first half is sent, with a promise of the connection's close (the client giving up).
   */
  stall?: Set<string>;
  onStall?: (digest: string, closed: Promise<void>) => void;
  /** Require a Bearer token from `/token` for every /v2/ request. */
  bearer?: boolean;
}

export interface FrontProxy {
  host: string;
  behaviour: ProxyBehaviour;
  /** Every request seen: method, path, whether it carried an Authorization header. */
  requests: { method: string; path: string; authorization: boolean }[];
  stop(): Promise<void>;
}

const TOKEN = "pyro-test-token-0123456789";

/**
 * An HTTP server on 127.0.0.1 in front of `upstream`. Also serves `/token` (Docker-style token
 * answers) and `/storage/<digest>` (a blob straight from the registry, for redirect tests).
 */
export async function startProxy(upstream: LocalRegistry, behaviour: ProxyBehaviour = {}): Promise<FrontProxy> {
  const requests: FrontProxy["requests"] = [];
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const server = http.createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? "/", `http://${host}`);
      requests.push({ method: req.method ?? "GET", path: url.pathname, authorization: Boolean(req.headers.authorization) });
      if (url.pathname === "/token") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ token: TOKEN, expires_in: 300 }));
        return;
      }
      if (behaviour.bearer && url.pathname.startsWith("/v2/") && req.headers.authorization !== `Bearer ${TOKEN}`) {
        res.writeHead(401, {
          "www-authenticate": `Bearer realm="http://${host}/token",service="pyro-test",scope="repository:any:pull"`,
          "content-type": "application/json",
        });
        res.end(JSON.stringify({ errors: [{ code: "UNAUTHORIZED" }] }));
        return;
      }
      const override = behaviour.manifests?.get(url.pathname);
      if (override) {
        res.writeHead(200, { "content-type": override.contentType, "content-length": override.body.length });
        res.end(override.body);
        return;
      }
      const blob = /^\/v2\/(.+)\/blobs\/(sha256:[0-9a-f]{64})$/.exec(url.pathname);
      if (blob && behaviour.fail?.has(blob[2]!)) {
        res.writeHead(503, { "content-type": "application/json" });
        res.end(JSON.stringify({ errors: [{ code: "UNAVAILABLE" }] }));
        return;
      }
      if (blob && behaviour.redirectBlobs) {
        res.writeHead(307, { location: behaviour.redirectBlobs(blob[2]!) });
        res.end();
        return;
      }
      let upstreamPath = url.pathname + url.search;
      const storage = /^\/storage\/(.+)\/(sha256:[0-9a-f]{64})$/.exec(url.pathname);
      if (storage) upstreamPath = `/v2/${storage[1]}/blobs/${storage[2]}`;
      const headers: Record<string, string> = {};
      for (const name of ["accept", "range"]) if (typeof req.headers[name] === "string") headers[name] = req.headers[name] as string;
      const auth = upstream.auth;
      if (auth) headers.authorization = `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString("base64")}`;
      const answer = await fetch(`http://${upstream.host}${upstreamPath}`, { method: req.method, headers, redirect: "manual" });
      let body = Buffer.from(await answer.arrayBuffer());
      const digest = blob?.[2] ?? storage?.[2];
      if (digest && behaviour.tamper?.has(digest) && body.length > 0) {
        body = Buffer.from(body);
        const middle = body.length >> 1;
        body[middle] = body[middle]! ^ 0xff;
      }
      const out: Record<string, string> = {};
      for (const name of ["content-type", "docker-content-digest", "location", "www-authenticate"]) {
        const value = answer.headers.get(name);
        if (value) out[name] = value;
      }
      out["content-length"] = String(body.length);
      res.writeHead(answer.status, out);
      if (digest && behaviour.stall?.has(digest)) {
        const closed = new Promise<void>((resolve) => res.once("close", () => resolve()));
        res.write(body.subarray(0, body.length >> 1), () => behaviour.onStall?.(digest, closed));
        return;
      }
      res.end(body);
    })().catch((err: unknown) => {
      res.writeHead(500);
      res.end(String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    host,
    behaviour,
    requests,
    stop: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        // A stalled body's connection is not waited for.
        server.closeAllConnections();
      }),
  };
}
