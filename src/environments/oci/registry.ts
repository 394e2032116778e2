/**
 * A client for one registry's OCI distribution API (`/v2/…`), over `node:http`/`node:https`: resolve a
 * reference to the linux/amd64 image manifest (through an index or manifest list), and fetch
 * blobs by digest, each verified with sha256 while it streams. Content that does not match its
 * digest or declared size is refused (`image_digest_mismatch`); nothing here writes anywhere
 * but the file the caller names, and the caller renames it into the store only on success.
 *
 * Transport rules: HTTPS, except plain HTTP for a loopback registry (localhost, 127.0.0.0/8,
 * ::1) or one the caller names insecure. Redirects (registries send blobs to object storage)
 * are followed up to 5 hops; a redirect to plain HTTP is followed only to a loopback address
 * from a loopback registry or to an insecure-named host, a non-loopback registry may never
 * send pyro to a loopback address, and the Authorization header never leaves the registry's
 * own origin. Every request has a timeout for the answer to start and for each gap between
 * body chunks, so a stalled registry fails instead of hanging.
 *
 * Why `node:http` and not `fetch`: a pull is bound by this one JavaScript thread, and fetch's
 * web-stream body costs about twice the CPU of a plain socket stream for the same bytes. Blob
 * bodies are piped straight into the file (hashed on the same buffers, written with writev when
 * several are queued), so the only per-chunk work is the hash and a counter. A blob the registry
 * serves itself, whole, is read without Node's HTTP parser at all (blob-socket.ts says why).
 */
import { createHash } from "node:crypto";
import { createWriteStream, writeSync } from "node:fs";
import fs from "node:fs/promises";
import http from "node:http";
import type { IncomingMessage } from "node:http";
import https from "node:https";
import { pipeline } from "node:stream/promises";
import { PyroError } from "../../shared/errors.js";
import { readBlobAnswer } from "./blob-socket.js";
import { basicAuthorization, dockerCredentials, parseAuthChallenge, tokenFromAnswer, tokenRequestUrl } from "./auth.js";
import type { AuthChallenge, RegistryCredentials } from "./auth.js";
import { formatImageReference, isLoopbackRegistry, registryHostname } from "./reference.js";
import type { ImageReference } from "./reference.js";
import { DEFAULT_PULL_LIMITS, MANIFEST_ACCEPT, SANDBOX_PLATFORM, checkImageLimits, invalid, parseManifestDocument, selectPlatform } from "./manifest.js";
import type { Descriptor, ManifestDocument, Platform, PullLimits } from "./manifest.js";

export interface RegistryClientOptions {
  /** Registries (host[:port]) spoken to over plain HTTP although not on loopback. Default none. */
  insecureRegistries?: readonly string[];
  /**
   * Credentials for this registry; `null` pulls anonymously. Default: the user's Docker
   * configuration (see auth.ts), read once, on the first 401.
   */
  credentials?: RegistryCredentials | null;
  /** Environment for `DOCKER_CONFIG`, `HOME` and credential helpers' `PATH`. Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Overrides of DEFAULT_PULL_LIMITS. */
  limits?: Partial<PullLimits>;
  /** Longest wait for an answer to start, and between two chunks of a body. Default 30 s. */
  timeoutMs?: number;
}

/** A manifest or index as fetched: its exact bytes (stored as they are) and their digest. */
export interface FetchedManifest {
  digest: string;
  mediaType: string;
  bytes: Buffer;
}

export interface ResolvedImage {
  reference: ImageReference;
  /** The canonical reference, as messages and the store name it. */
  name: string;
  /** The index or manifest list the reference named, when it named one. */
  index: FetchedManifest | null;
  /** The linux/amd64 image manifest; its digest is the image's identity. */
  manifest: FetchedManifest;
  platform: Platform;
  config: Descriptor;
  layers: Descriptor[];
}

export const DEFAULT_TIMEOUT_MS = 30_000;
const MAX_REDIRECTS = 5;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
/** Error bodies and token answers are read only this far. */
const SMALL_BODY_MAX = 64 * 1024;
/** Bytes a blob's file stream queues before it pushes back on the socket: fewer, larger writes. */
const BLOB_WRITE_BUFFER = 1024 * 1024;

/** An answer whose body is not read yet: status, headers, and the body as a socket stream. */
interface Answer {
  status: number;
  ok: boolean;
  header(name: string): string | null;
  body: IncomingMessage;
}

export class RegistryClient {
  readonly registry: string;
  readonly limits: PullLimits;
  private readonly base: URL;
  private readonly insecure: Set<string>;
  private readonly env: NodeJS.ProcessEnv;
  private readonly timeoutMs: number;
  private credentials: RegistryCredentials | null | undefined;
  /** The Authorization value that last worked (or was issued) for this registry's origin. */
  private authorization: string | undefined;
  /** Set once the registry answers a blob's GET with a redirect (see readBlobDirect). */
  private blobsRedirected = false;

  constructor(registry: string, options: RegistryClientOptions = {}) {
    this.registry = registry;
    this.insecure = new Set((options.insecureRegistries ?? []).map((host) => host.toLowerCase()));
    const plain = isLoopbackRegistry(registry) || this.isInsecure(registry);
    this.base = new URL(`${plain ? "http" : "https"}://${registry}/`);
    this.env = options.env ?? process.env;
    this.credentials = options.credentials;
    this.limits = { ...DEFAULT_PULL_LIMITS, ...options.limits };
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /**
   * The reference's linux/amd64 image: manifest (through its index if it is one), config and
   * layer descriptors, every size checked against the limits, nothing downloaded but manifests.
   */
  async resolve(ref: ImageReference, signal?: AbortSignal): Promise<ResolvedImage> {
    const name = formatImageReference(ref);
    const first = await this.fetchManifest(ref, ref.digest ?? ref.tag!, ref.digest, undefined, signal);
    let index: FetchedManifest | null = null;
    let manifest = first.fetched;
    let doc: ManifestDocument = first.doc;
    let platform: Platform = { ...SANDBOX_PLATFORM };
    if (doc.kind === "index") {
      const entry = selectPlatform(name, doc.manifests);
      if (entry.size > this.limits.manifestBytes) throw manifestTooLarge(name, entry.size, this.limits.manifestBytes);
      const second = await this.fetchManifest(ref, entry.digest, entry.digest, entry.size, signal);
      if (second.doc.kind !== "manifest") throw invalid(`the linux/amd64 manifest of ${name}`, "it is an index, not an image manifest (nested indexes are not read)");
      index = first.fetched;
      manifest = second.fetched;
      doc = second.doc;
      platform = entry.platform ?? platform;
    }
    checkImageLimits(name, doc.config, doc.layers, this.limits);
    return { reference: ref, name, index, manifest, platform, config: doc.config, layers: doc.layers };
  }

  /** A small blob (the config) into memory, verified; refused beyond `limit` bytes. */
  async fetchBlob(ref: ImageReference, descriptor: Descriptor, limit: number, signal?: AbortSignal): Promise<Buffer> {
    const watchdog = new Watchdog(this.timeoutMs, signal);
    try {
      const res = await this.get(ref, `blobs/${descriptor.digest}`, undefined, watchdog);
      const bytes = await readBounded(res, Math.min(limit, descriptor.size), watchdog, () => mismatch(ref, descriptor, "the registry sent more bytes than the descriptor's size"));
      verify(ref, descriptor, bytes.length, sha256(bytes));
      return bytes;
    } catch (err) {
      throw watchdog.translate(err, this.registry);
    } finally {
      watchdog.stop();
    }
  }

  /**
   * Streams a blob into `file` (created here, exclusively, mode 0600), hashing as it goes, and
   * fsyncs it. Throws `image_digest_mismatch` on a wrong size or digest; the caller deletes the
   * file then. `onBytes` is told the running byte count after every chunk.
   */
  async downloadBlob(ref: ImageReference, descriptor: Descriptor, file: string, onBytes: (done: number) => void, signal?: AbortSignal): Promise<void> {
    const watchdog = new Watchdog(this.timeoutMs, signal);
    const handle = await fs.open(file, "wx", 0o600);
    try {
      const hash = createHash("sha256");
      let done = 0;
      const take = (chunk: Buffer): void => {
        watchdog.arm();
        done += chunk.length;
        if (done > descriptor.size) throw mismatch(ref, descriptor, "the registry sent more bytes than the manifest says");
        hash.update(chunk);
        onBytes(done);
      };
      const direct = await this.readBlobDirect(ref, descriptor, watchdog, (chunk) => {
        take(chunk);
        writeFully(handle.fd, chunk);
      });
      if (!direct) {
        const res = await this.get(ref, `blobs/${descriptor.digest}`, undefined, watchdog);
        const declared = res.header("content-length");
        if (declared !== null && Number(declared) !== descriptor.size) {
          discard(res);
          throw mismatch(ref, descriptor, `the registry announced ${declared} bytes, the manifest says ${descriptor.size}`);
        }
        // The same buffers are counted, hashed and written: no copies, and the file stream
        // batches what queues up while a write is in flight into one writev.
        await pipeline(
          res.body,
          async function* (source: AsyncIterable<Buffer>) {
            for await (const chunk of source) {
              take(chunk);
              yield chunk;
            }
          },
          // On the bare descriptor, not the FileHandle: a FileHandle's stream holds it open until
          // the stream closes it, and the handle must stay open for the datasync below.
          createWriteStream("", { fd: handle.fd, autoClose: false, emitClose: false, highWaterMark: BLOB_WRITE_BUFFER }),
        );
      }
      verify(ref, descriptor, done, `sha256:${hash.digest("hex")}`);
      await handle.datasync();
    } catch (err) {
      throw watchdog.translate(err, this.registry);
    } finally {
      watchdog.stop();
      // Waits for a write still in flight when the pipeline broke off.
      await handle.close();
    }
  }

  /**
   * The blob's GET read without Node's HTTP parser (blob-socket.ts), each read handed to
   * `onChunk`: true when the registry answered it with the whole blob, false when it answered
   * anything else and nothing was handed on (downloadBlob then asks again through `get`). A
   * registry that redirected a blob once is asked through `get` directly from then on: its blobs
   * live elsewhere, and the redirect would cost every blob a request.
   */
  private async readBlobDirect(ref: ImageReference, descriptor: Descriptor, watchdog: Watchdog, onChunk: (chunk: Buffer) => void): Promise<boolean> {
    if (this.blobsRedirected) return false;
    const url = new URL(`/v2/${ref.repository}/blobs/${descriptor.digest}`, this.base);
    watchdog.arm();
    const answer = await readBlobAnswer(url, this.headersFor(url, undefined), descriptor.size, watchdog.signal, onChunk);
    if (!answer.read && REDIRECT_STATUSES.has(answer.status)) this.blobsRedirected = true;
    return answer.read;
  }

  private async fetchManifest(
    ref: ImageReference,
    reference: string,
    expectedDigest: string | null,
    expectedSize: number | undefined,
    signal: AbortSignal | undefined,
  ): Promise<{ fetched: FetchedManifest; doc: ManifestDocument }> {
    const name = formatImageReference(ref);
    const watchdog = new Watchdog(this.timeoutMs, signal);
    try {
      const res = await this.get(ref, `manifests/${reference}`, MANIFEST_ACCEPT, watchdog);
      const bytes = await readBounded(res, this.limits.manifestBytes, watchdog, () => manifestTooLarge(name, undefined, this.limits.manifestBytes));
      const digest = sha256(bytes);
      const announced = res.header("docker-content-digest");
      const descriptor = { mediaType: "manifest", digest: expectedDigest ?? digest, size: expectedSize ?? bytes.length };
      if (expectedDigest !== null) verify(ref, descriptor, bytes.length, digest);
      else if (announced !== null && /^sha256:/.test(announced) && announced !== digest) {
        throw mismatch(ref, { ...descriptor, digest: announced }, "the manifest's bytes do not match the Docker-Content-Digest the registry announced");
      }
      const doc = parseManifestDocument(bytes, res.header("content-type"), expectedDigest ? `manifest ${expectedDigest} of ${name}` : `the manifest of ${name}`);
      return { fetched: { digest, mediaType: doc.mediaType, bytes }, doc };
    } catch (err) {
      throw watchdog.translate(err, this.registry);
    } finally {
      watchdog.stop();
    }
  }

  /**
   * GET `/v2/<repository>/<suffix>`, authorising on a 401 challenge once, and mapping every
   * unsuccessful status to its coded error. Returns a 2xx response whose body is unread.
   */
  private async get(ref: ImageReference, suffix: string, accept: string | undefined, watchdog: Watchdog): Promise<Answer> {
    const url = new URL(`/v2/${ref.repository}/${suffix}`, this.base);
    const scope = `repository:${ref.repository}:pull`;
    let res = await this.follow(url, accept, watchdog);
    if (res.status === 401) {
      const challenge = parseAuthChallenge(res.header("www-authenticate"));
      discard(res);
      await this.authorize(ref, challenge, scope, watchdog);
      res = await this.follow(url, accept, watchdog);
    }
    if (res.ok) return res;
    throw await statusError(ref, res, this.credentials !== undefined && this.credentials !== null);
  }

  /** One request, following redirects under the transport rules above. */
  private async follow(start: URL, accept: string | undefined, watchdog: Watchdog): Promise<Answer> {
    let url = start;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop += 1) {
      watchdog.arm();
      const res = await request(url, this.headersFor(url, accept), watchdog.signal);
      const location = res.header("location");
      if (!REDIRECT_STATUSES.has(res.status) || !location) return res;
      discard(res);
      const next = new URL(location, url);
      this.checkRedirect(url, next);
      url = next;
    }
    throw new PyroError("registry_unreachable", `${this.registry} redirected more than ${MAX_REDIRECTS} times`, {
      hint: "Check the registry's address and configuration.",
      details: { registry: this.registry },
    });
  }

  /** The headers of a GET to `url`: the authorization that worked goes only to the registry's own origin. */
  private headersFor(url: URL, accept: string | undefined): Record<string, string> {
    const headers: Record<string, string> = { "accept-encoding": "identity", "user-agent": "pyro" };
    if (accept) headers.accept = accept;
    if (this.authorization && url.origin === this.base.origin) headers.authorization = this.authorization;
    return headers;
  }

  private checkRedirect(from: URL, to: URL): void {
    const fromLoopback = isLoopbackRegistry(from.host);
    const toLoopback = isLoopbackRegistry(to.host);
    let reason: string | undefined;
    if (to.protocol !== "https:" && to.protocol !== "http:") reason = `to a ${to.protocol} address`;
    else if (toLoopback && !fromLoopback && !this.isInsecure(to.host)) reason = "from a remote registry to this machine's loopback";
    else if (to.protocol === "http:" && !(toLoopback && fromLoopback) && !this.isInsecure(to.host)) reason = "to plain HTTP";
    if (reason) {
      throw new PyroError("registry_unreachable", `${this.registry} redirected ${reason} (${to.protocol}//${to.host}), which pyro does not follow`, {
        hint: "Plain HTTP is used only for loopback registries and registries named insecure.",
        details: { registry: this.registry, redirect_host: to.host, redirect_protocol: to.protocol },
      });
    }
  }

  /** Turns a 401 challenge into an Authorization value for the retry, or throws `image_unauthorized`. */
  private async authorize(ref: ImageReference, challenge: AuthChallenge | undefined, scope: string, watchdog: Watchdog): Promise<void> {
    if (this.credentials === undefined) this.credentials = (await dockerCredentials(this.registry, this.env)) ?? null;
    const credentials = this.credentials;
    if (challenge?.scheme === "basic") {
      if (!credentials) throw unauthorized(ref, false);
      this.authorization = basicAuthorization(credentials);
      return;
    }
    if (challenge?.scheme !== "bearer") {
      throw new PyroError("image_unauthorized", `${this.registry} asked for an authentication scheme pyro does not speak (${challenge?.scheme ?? "none"})`, {
        hint: "pyro speaks Basic and Bearer-token registry authentication.",
        details: { registry: this.registry, reference: formatImageReference(ref) },
      });
    }
    const realm = tokenRequestUrl(challenge, scope);
    if (!realm) throw invalid(`the authentication challenge of ${this.registry}`, "it names no usable realm");
    const realmLoopback = isLoopbackRegistry(realm.host);
    if (realm.protocol === "http:" && !(realmLoopback && isLoopbackRegistry(this.registry)) && !this.isInsecure(realm.host)) {
      throw new PyroError("registry_unreachable", `${this.registry} sends pyro for a token to plain HTTP (${realm.host}), which pyro refuses`, {
        hint: "Tokens and credentials travel over HTTPS only, except between loopback addresses.",
        details: { registry: this.registry, realm_host: realm.host },
      });
    }
    if (realmLoopback && !isLoopbackRegistry(this.registry)) {
      throw new PyroError("registry_unreachable", `${this.registry} sends pyro for a token to this machine's loopback, which pyro refuses`, {
        details: { registry: this.registry, realm_host: realm.host },
      });
    }
    const headers: Record<string, string> = { "accept-encoding": "identity", "user-agent": "pyro" };
    if (credentials) headers.authorization = basicAuthorization(credentials);
    watchdog.arm();
    // A redirect of the token request is not followed: it answers as a failed status below.
    const res = await request(realm, headers, watchdog.signal);
    if (res.status === 401 || res.status === 403) {
      discard(res);
      throw unauthorized(ref, Boolean(credentials));
    }
    if (!res.ok) {
      discard(res);
      throw new PyroError("registry_unreachable", `the token service of ${this.registry} answered HTTP ${res.status}`, {
        details: { registry: this.registry, status: res.status },
      });
    }
    const text = (await readBounded(res, SMALL_BODY_MAX, watchdog, () => invalid(`the token answer of ${this.registry}`, "it is too long"))).toString("utf8");
    const token = tokenFromAnswer(text);
    if (!token) throw invalid(`the token answer of ${this.registry}`, "it holds no token");
    this.authorization = `Bearer ${token}`;
  }

  private isInsecure(host: string): boolean {
    const lower = host.toLowerCase();
    return this.insecure.has(lower) || this.insecure.has(registryHostname(lower));
  }
}

/**
 * One request's timer and cancellation: `arm` (re)starts the countdown — before a request and
 * after every body chunk — and the signal aborts when it runs out or the caller's signal fires.
 */
class Watchdog {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private expired = false;
  readonly signal: AbortSignal;

  constructor(
    private readonly timeoutMs: number,
    private readonly external: AbortSignal | undefined,
  ) {
    this.signal = external ? AbortSignal.any([external, this.controller.signal]) : this.controller.signal;
  }

  arm(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.expired = true;
      this.controller.abort();
    }, this.timeoutMs);
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  /** A coded error for whatever a request threw: ours pass through, network failures are named. */
  translate(err: unknown, registry: string): PyroError {
    if (err instanceof PyroError) return err;
    if (this.external?.aborted) {
      return new PyroError("environment_build_failed", "the image pull was cancelled", { details: { cancelled: true }, cause: err });
    }
    if (this.expired) {
      return new PyroError("registry_unreachable", `${registry} did not answer within ${Math.round(this.timeoutMs / 1000)} s`, {
        hint: "Check the network and the registry, then pull again; blobs already downloaded are kept.",
        details: { registry, timeout_ms: this.timeoutMs },
        cause: err,
      });
    }
    // node:http puts the system error's code on the error itself (ECONNREFUSED, ECONNRESET, …).
    const failure = err as { code?: unknown; cause?: { code?: unknown; message?: unknown } } | undefined;
    const cause = failure?.cause;
    const code = typeof failure?.code === "string" ? failure.code : typeof cause?.code === "string" ? cause.code : undefined;
    const reason = code ?? (typeof cause?.message === "string" ? cause.message : err instanceof Error ? err.message : String(err));
    return new PyroError("registry_unreachable", `${registry} could not be reached (${reason.slice(0, 200)})`, {
      hint: "Check the registry address and the network, then pull again; blobs already downloaded are kept.",
      details: { registry, ...(code ? { error: code } : {}) },
      cause: err,
    });
  }
}

/**
 * One GET, without following redirects or decoding anything; resolves when the answer's head
 * has arrived. A request on a kept-alive connection the registry closed meanwhile is sent once
 * more on a new one (the request never reached it, and a GET may be repeated).
 */
function request(url: URL, headers: Record<string, string>, signal: AbortSignal, retried = false): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const transport = url.protocol === "https:" ? https : http;
    const req = transport.request(url, { method: "GET", headers, signal }, (res) => {
      const status = res.statusCode ?? 0;
      resolve({
        status,
        ok: status >= 200 && status < 300,
        header: (name) => {
          const value = res.headers[name.toLowerCase()];
          return value === undefined ? null : Array.isArray(value) ? value.join(", ") : value;
        },
        body: res,
      });
    });
    req.on("error", (err: NodeJS.ErrnoException) => {
      if (!retried && req.reusedSocket && err.code === "ECONNRESET" && !signal.aborted) resolve(request(url, headers, signal, true));
      else reject(err);
    });
    req.end();
  });
}

/** The body's chunks, each restarting the watchdog; a body left unread to its end is dropped. */
async function* bodyChunks(res: Answer, watchdog: Watchdog): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      watchdog.arm();
      yield chunk;
    }
  } finally {
    discard(res);
  }
}

/** A whole body, refused (with `onTooLarge`'s error) beyond `limit` bytes, announced or sent. */
async function readBounded(res: Answer, limit: number, watchdog: Watchdog, onTooLarge: () => PyroError): Promise<Buffer> {
  const declared = res.header("content-length");
  if (declared !== null && Number(declared) > limit) {
    discard(res);
    throw onTooLarge();
  }
  const parts: Buffer[] = [];
  let total = 0;
  for await (const chunk of bodyChunks(res, watchdog)) {
    total += chunk.length;
    if (total > limit) throw onTooLarge();
    parts.push(chunk);
  }
  return Buffer.concat(parts);
}

/** Up to `max` bytes of a body as text; the rest is never read. */
async function readStart(res: Answer, max: number): Promise<string> {
  const parts: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      parts.push(chunk);
      total += chunk.length;
      if (total >= max) break;
    }
  } finally {
    discard(res);
  }
  return Buffer.concat(parts).subarray(0, max).toString("utf8");
}

/**
 * Drops a body not read to its end, closing its connection: a registry's unread rest could be
 * gigabytes, so it is never drained. A body read to its end keeps its connection for reuse.
 */
function discard(res: Answer): void {
  if (!res.body.complete) res.body.destroy();
}

/** Writes all of `bytes` at the file's position before returning, so their buffer can be reused. */
function writeFully(fd: number, bytes: Uint8Array): void {
  for (let written = 0; written < bytes.length; ) written += writeSync(fd, bytes, written);
}

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

function verify(ref: ImageReference, descriptor: Descriptor, size: number, digest: string): void {
  if (size !== descriptor.size) throw mismatch(ref, descriptor, `the registry sent ${size} bytes, the descriptor says ${descriptor.size}`);
  if (digest !== descriptor.digest) throw mismatch(ref, descriptor, `its content hashes to ${digest}`);
}

function mismatch(ref: ImageReference, descriptor: Descriptor, reason: string): PyroError {
  return new PyroError("image_digest_mismatch", `${descriptor.digest} of ${formatImageReference(ref)} failed verification: ${reason}`, {
    hint: "The registry or something between it and this machine altered the content; nothing of it was stored. Pull again, and report it if it persists.",
    details: { reference: formatImageReference(ref), digest: descriptor.digest, reason },
  });
}

function manifestTooLarge(name: string, size: number | undefined, limit: number): PyroError {
  return new PyroError("image_too_large", `the manifest of ${name} is larger than the limit of ${limit} bytes`, {
    hint: "Manifests and indexes of real images are a few KiB; check the reference.",
    details: { reference: name, ...(size !== undefined ? { size } : {}), limit },
  });
}

function unauthorized(ref: ImageReference, hadCredentials: boolean): PyroError {
  const name = formatImageReference(ref);
  return new PyroError(
    "image_unauthorized",
    hadCredentials ? `${ref.registry} refused the credentials for ${name}` : `${ref.registry} needs credentials for ${name} and none were found`,
    {
      hint: hadCredentials
        ? "Check the credentials in your Docker configuration (docker login REGISTRY), and that the account may pull this repository."
        : "Log in with `docker login REGISTRY` (pyro reads ~/.docker/config.json, or $DOCKER_CONFIG), or check that the repository exists and is public.",
      details: { reference: name, registry: ref.registry, credentials: hadCredentials },
    },
  );
}

/** The coded error for a non-2xx answer, with the registry's own error code when it sent one. */
async function statusError(ref: ImageReference, res: Answer, hadCredentials: boolean): Promise<PyroError> {
  let registryCode: string | undefined;
  try {
    // Only the start of an error body is read: a hostile registry could send gigabytes.
    const text = await readStart(res, SMALL_BODY_MAX);
    const body = JSON.parse(text) as { errors?: { code?: unknown }[] };
    const code = body.errors?.[0]?.code;
    if (typeof code === "string") registryCode = code.slice(0, 64);
  } catch {
    // no readable error body: the status says enough
  }
  const name = formatImageReference(ref);
  const details = { reference: name, status: res.status, ...(registryCode ? { registry_error: registryCode } : {}) };
  if (res.status === 404) {
    return new PyroError("image_not_found", `${name} was not found (${registryCode ?? "HTTP 404"})`, {
      hint: "Check the repository name and tag; `docker.io/library/NAME:TAG` for Docker Hub's official images.",
      details,
    });
  }
  if (res.status === 401 || res.status === 403) {
    const err = unauthorized(ref, hadCredentials);
    return new PyroError("image_unauthorized", err.message, { hint: err.hint, details: { ...err.details, ...details } });
  }
  return new PyroError("registry_unreachable", `${ref.registry} answered HTTP ${res.status} for ${name}`, {
    hint: res.status === 429 ? "The registry is rate-limiting this machine; wait, or log in, then pull again." : "The registry failed; try again later.",
    details,
  });
}
