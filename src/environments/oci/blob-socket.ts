/**
 * A blob's GET on a connection of its own, read without Node's HTTP parser.
 *
 * Why: a pull is bound by Node's one JavaScript thread, and `node:http` copies every body chunk
 * into a fresh Buffer inside its parser (`on_body`): in a profile of the loopback bench pull that
 * copy was about 11% of the CPU, and the page faults of touching the fresh memory about 7% more.
 * Here the socket reads every chunk into one reusable buffer (`onread`), and the caller hashes
 * and writes it synchronously before the next read overwrites it: no allocation per read.
 *
 * Only the plain case is read here: an answer `200` with a Content-Length equal to the blob's
 * size and no Transfer-Encoding. Anything else (a redirect, a 401, a chunked or otherwise
 * announced body, another status, a head that does not fit) is declined before any body byte is
 * handed on, and the connection is closed: the caller then asks again through `node:http`, whose
 * rules (redirects, authorisation, error bodies) stay the only ones.
 */
import net from "node:net";
import tls from "node:tls";

/** The one buffer each connection reads into: large reads, few callbacks. */
const READ_BUFFER_BYTES = 1024 * 1024;
/** A registry's answer head is a few hundred bytes; one larger than this is left to node:http. */
const HEAD_MAX_BYTES = 64 * 1024;
const HEAD_END = Buffer.from("\r\n\r\n");
/** What node:http would send as a header value (it throws on anything else: those are declined). */
const HEADER_VALUE = /^[\t\x20-\x7e]*$/;

/**
 * Whether the body was read to its announced end, or the answer was declined: with its status,
 * or 0 when the request was not sent or the head was unreadable, too large or a 200 not taken.
 */
export type BlobAnswer = { read: true } | { read: false; status: number };

/**
 * GETs `url` with `headers` and, when the answer is a 200 announcing exactly `size` bytes, hands
 * each read of its body to `onChunk` (a view of the shared read buffer, valid only during the
 * call; whatever `onChunk` throws ends the read with that error). Resolves once `size` bytes are
 * handed on. Rejects on a network failure, a connection closed early (ECONNRESET, as node:http
 * says it) and when `signal` aborts; the connection is closed in every case.
 */
export function readBlobAnswer(url: URL, headers: Record<string, string>, size: number, signal: AbortSignal, onChunk: (chunk: Buffer) => void): Promise<BlobAnswer> {
  return new Promise((resolve, reject) => {
    if (Object.values(headers).some((value) => !HEADER_VALUE.test(value))) {
      resolve({ read: false, status: 0 });
      return;
    }
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const head = Buffer.allocUnsafe(HEAD_MAX_BYTES);
    let headLength = 0;
    let bodyStarted = false;
    let received = 0;
    let settled = false;

    const settle = (outcome: { answer: BlobAnswer } | { error: unknown }): void => {
      if (settled) return;
      settled = true;
      signal.removeEventListener("abort", onAbort);
      socket.destroy();
      if ("answer" in outcome) resolve(outcome.answer);
      else reject(outcome.error);
    };
    const onAbort = (): void => settle({ error: signal.reason });

    const body = (chunk: Buffer): void => {
      if (chunk.length === 0) return;
      received += chunk.length;
      onChunk(chunk);
    };

    /** Collects the head; on its end, accepts or declines the answer and hands on any body bytes of this read. */
    const readHead = (chunk: Buffer): void => {
      const before = headLength;
      headLength += chunk.copy(head, headLength);
      const end = head.subarray(0, headLength).indexOf(HEAD_END, Math.max(0, before - HEAD_END.length + 1));
      if (end < 0) {
        if (headLength === HEAD_MAX_BYTES) settle({ answer: { read: false, status: 0 } });
        return;
      }
      const status = acceptedStatus(head.subarray(0, end).toString("latin1"), size);
      if (status !== 200) {
        settle({ answer: { read: false, status } });
        return;
      }
      bodyStarted = true;
      body(chunk.subarray(end + HEAD_END.length - before));
    };

    const readBuffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
    const callback = (bytes: number): boolean => {
      if (settled) return false;
      const chunk = readBuffer.subarray(0, bytes);
      try {
        if (bodyStarted) body(chunk);
        else readHead(chunk);
      } catch (err) {
        settle({ error: err });
        return false;
      }
      // (A blob of 0 bytes is whole as soon as its head is.)
      if (bodyStarted && received >= size) settle({ answer: { read: true } });
      return !settled;
    };

    const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
    const onread = { buffer: readBuffer, callback };
    // Node 20's tls.connect takes `onread` too (the decrypted bytes land in the buffer), though
    // its types do not say so. Certificates are checked as node:https checks them.
    const socket =
      url.protocol === "https:"
        ? tls.connect({ host, port: Number(url.port) || 443, servername: net.isIP(host) ? undefined : host, onread } as tls.ConnectionOptions)
        : net.connect({ host, port: Number(url.port) || 80, onread });
    signal.addEventListener("abort", onAbort, { once: true });
    // A socket that ignored `onread` (a Node whose TLS socket does not take it) hands its bytes
    // to 'data' instead, before any reached `callback`: the answer is declined, not lost.
    socket.on("data", () => settle({ answer: { read: false, status: 0 } }));
    socket.on("error", (err) => settle({ error: err }));
    socket.on("close", () => {
      const err = Object.assign(new Error(bodyStarted ? "the registry closed the connection before the whole blob arrived" : "socket hang up"), { code: "ECONNRESET" });
      settle({ error: err });
    });

    const lines = [`GET ${url.pathname}${url.search} HTTP/1.1`, `Host: ${url.host}`];
    for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
    lines.push("Connection: close", "", "");
    socket.write(lines.join("\r\n"), "latin1");
  });
}

/**
 * The status of an answer head, or 0 when it is a 200 this reader does not take (it announces
 * another size, several or none, or a Transfer-Encoding): 200 only for the plain whole body.
 */
function acceptedStatus(text: string, size: number): number {
  const [statusLine = "", ...fields] = text.split("\r\n");
  const match = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(statusLine);
  if (!match) return 0;
  const status = Number(match[1]);
  if (status !== 200) return status;
  const lengths: string[] = [];
  for (const field of fields) {
    const colon = field.indexOf(":");
    if (colon <= 0) return 0;
    const name = field.slice(0, colon).trim().toLowerCase();
    if (name === "transfer-encoding") return 0;
    if (name === "content-length") lengths.push(field.slice(colon + 1).trim());
  }
  return lengths.length === 1 && /^\d+$/.test(lengths[0]!) && Number(lengths[0]) === size ? 200 : 0;
}
