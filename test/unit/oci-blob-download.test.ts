// How a blob download reads a registry's answer: a plain whole body is read on a socket of its
// own (blob-socket.ts), and every other answer — chunked, a wrong size, a redirect — is asked
// again through node:http, giving the same bytes or the same coded errors as before. A short
// body, a stall and a cancel end the download with their codes and close the connection.
import { describe, it, expect, beforeEach, afterEach } from "vitest";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { RegistryClient } from "../../src/environments/oci/registry.js";
import { parseImageReference } from "../../src/environments/oci/reference.js";
import { expectPyroError } from "../helpers.js";

const blob = randomBytes(3 * 1024 * 1024 + 17);
const digest = `sha256:${createHash("sha256").update(blob).digest("hex")}`;
const descriptor = { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest, size: blob.length };
const blobPath = `/v2/team/app/blobs/${digest}`;

/** A registry on 127.0.0.1 whose blob answer each test writes; it records every request and when each connection closes. */
async function startRegistry(answer: (req: http.IncomingMessage, res: http.ServerResponse) => void) {
  const requests: string[] = [];
  const connections: (string | undefined)[] = [];
  const closed: Promise<void>[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req.url ?? "");
    connections.push(req.headers.connection);
    closed.push(new Promise((resolve) => req.socket.once("close", () => resolve())));
    answer(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    host,
    requests,
    connections,
    closed,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

describe("downloading a blob", () => {
  let dir: string;
  let file: string;
  let registry: Awaited<ReturnType<typeof startRegistry>> | undefined;

  const download = (options: { timeoutMs?: number; signal?: AbortSignal; onBytes?: (done: number) => void } = {}) => {
    const client = new RegistryClient(registry!.host, { credentials: null, timeoutMs: options.timeoutMs });
    return client.downloadBlob(parseImageReference(`${registry!.host}/team/app:1`), descriptor, file, options.onBytes ?? (() => undefined), options.signal);
  };

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-blob-download-"));
    file = path.join(dir, "blob");
  });

  afterEach(async () => {
    await registry?.stop();
    registry = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("reads a plain answer in one request, with progress up to the blob's size", async () => {
    registry = await startRegistry((_req, res) => {
      res.writeHead(200, { "content-length": blob.length });
      res.end(blob);
    });
    const progress: number[] = [];
    await download({ onBytes: (done) => progress.push(done) });
    expect(fs.readFileSync(file).equals(blob)).toBe(true);
    expect(registry.requests).toEqual([blobPath]);
    // The socket reader's request (node:http's keeps its connection alive): the test reads what it reads.
    expect(registry.connections).toEqual(["close"]);
    expect(progress.at(-1)).toBe(blob.length);
  });

  it("gives the same bytes for a chunked answer, read again through node:http", async () => {
    registry = await startRegistry((_req, res) => {
      res.writeHead(200);
      res.write(blob.subarray(0, 1000));
      res.end(blob.subarray(1000));
    });
    await download();
    expect(fs.readFileSync(file).equals(blob)).toBe(true);
    expect(registry.requests).toEqual([blobPath, blobPath]);
    expect(registry.connections).toEqual(["close", "keep-alive"]);
  });

  it("follows a redirect of the blob as before", async () => {
    registry = await startRegistry((req, res) => {
      if (req.url === blobPath) {
        res.writeHead(307, { location: "/storage/blob" });
        res.end();
        return;
      }
      res.writeHead(200, { "content-length": blob.length });
      res.end(blob);
    });
    await download();
    expect(fs.readFileSync(file).equals(blob)).toBe(true);
    expect(registry.requests).toEqual([blobPath, blobPath, "/storage/blob"]);
  });

  it("refuses an answer announcing another size with image_digest_mismatch", async () => {
    registry = await startRegistry((_req, res) => {
      res.writeHead(200, { "content-length": blob.length + 1 });
      res.end(Buffer.concat([blob, Buffer.from("x")]));
    });
    const err = await expectPyroError(download(), "image_digest_mismatch");
    expect(err.message).toContain(`announced ${blob.length + 1} bytes`);
  });

  it("refuses altered content with image_digest_mismatch", async () => {
    const altered = Buffer.from(blob);
    altered[1000] = altered[1000]! ^ 0xff;
    registry = await startRegistry((_req, res) => {
      res.writeHead(200, { "content-length": altered.length });
      res.end(altered);
    });
    const err = await expectPyroError(download(), "image_digest_mismatch");
    expect(err.details?.digest).toBe(digest);
  });

  it("answers a body broken off halfway with registry_unreachable", async () => {
    registry = await startRegistry((req, res) => {
      res.writeHead(200, { "content-length": blob.length });
      res.write(blob.subarray(0, blob.length >> 1), () => req.socket.destroy());
    });
    const err = await expectPyroError(download(), "registry_unreachable");
    expect(err.details?.error).toBe("ECONNRESET");
  });

  it("answers a body that stalls with registry_unreachable after the timeout, closing the connection", async () => {
    registry = await startRegistry((_req, res) => {
      res.writeHead(200, { "content-length": blob.length });
      res.write(blob.subarray(0, 1000));
    });
    const err = await expectPyroError(download({ timeoutMs: 300 }), "registry_unreachable");
    expect(err.details?.timeout_ms).toBe(300);
    await registry.closed[0];
  });

  it("ends a cancelled download as cancelled, closing the connection", async () => {
    const abort = new AbortController();
    registry = await startRegistry((_req, res) => {
      res.writeHead(200, { "content-length": blob.length });
      res.write(blob.subarray(0, 1000), () => abort.abort());
    });
    const err = await expectPyroError(download({ signal: abort.signal }), "environment_build_failed");
    expect(err.details?.cancelled).toBe(true);
    await registry.closed[0];
  });
});
