/**
 * Just enough of the DNS wire format (RFC 1035) for the allow-list forwarder: read the question
 * of a query, build the short answers the forwarder gives itself (NXDOMAIN, NODATA, SERVFAIL),
 * and read the IPv4 addresses out of an upstream response. Every input is untrusted bytes from
 * the sandbox or the network: all reads are bounds-checked, name compression loops are cut off,
 * and anything malformed is `null`. Pure; no I/O.
 */

export const TYPE_A = 1;
export const TYPE_CNAME = 5;
export const TYPE_PTR = 12;
export const TYPE_AAAA = 28;
export const RCODE_SERVFAIL = 2;
export const RCODE_NXDOMAIN = 3;
export const RCODE_REFUSED = 5;

export interface DnsQuestion {
  id: number;
  /** Lower case, no trailing dot; "" for the root. */
  name: string;
  type: number;
  class: number;
  /** Byte offset just past the question section's first entry. */
  end: number;
  /** The query's RD flag, echoed in answers. */
  recursionDesired: boolean;
}

/** Reads a (possibly compressed) name starting at `offset`; returns it and the offset after it. */
function readName(msg: Buffer, offset: number): { name: string; next: number } | null {
  const labels: string[] = [];
  let pos = offset;
  let next = -1;
  let jumps = 0;
  let length = 0;
  for (;;) {
    if (pos >= msg.length) return null;
    const len = msg[pos]!;
    if (len === 0) {
      pos += 1;
      break;
    }
    if ((len & 0xc0) === 0xc0) {
      if (pos + 1 >= msg.length || ++jumps > 32) return null;
      if (next < 0) next = pos + 2;
      pos = ((len & 0x3f) << 8) | msg[pos + 1]!;
      continue;
    }
    if ((len & 0xc0) !== 0 || pos + 1 + len > msg.length) return null;
    length += len + 1;
    if (length > 255) return null;
    labels.push(msg.toString("latin1", pos + 1, pos + 1 + len).toLowerCase());
    pos += 1 + len;
  }
  return { name: labels.join("."), next: next < 0 ? pos : next };
}

/** The first question of a standard query, or null when the message is not one. */
export function parseQuery(msg: Buffer): DnsQuestion | null {
  if (msg.length < 12) return null;
  const flags = msg.readUInt16BE(2);
  const isResponse = (flags & 0x8000) !== 0;
  const opcode = (flags >> 11) & 0xf;
  if (isResponse || opcode !== 0 || msg.readUInt16BE(4) !== 1) return null;
  const q = readName(msg, 12);
  if (!q || q.next + 4 > msg.length) return null;
  return {
    id: msg.readUInt16BE(0),
    name: q.name,
    type: msg.readUInt16BE(q.next),
    class: msg.readUInt16BE(q.next + 2),
    end: q.next + 4,
    recursionDesired: (flags & 0x0100) !== 0,
  };
}

/** An answer with no records and the given response code (0 with no records is NODATA). */
export function emptyAnswer(query: Buffer, question: DnsQuestion, rcode: number): Buffer {
  const out = Buffer.alloc(question.end);
  query.copy(out, 0, 0, question.end);
  // QR=1, opcode 0, AA=0, TC=0, RD echoed, RA=1, rcode.
  out.writeUInt16BE(0x8000 | (question.recursionDesired ? 0x0100 : 0) | 0x0080 | (rcode & 0xf), 2);
  out.writeUInt16BE(1, 4);
  out.writeUInt16BE(0, 6);
  out.writeUInt16BE(0, 8);
  out.writeUInt16BE(0, 10);
  return out;
}

export interface DnsAnswerSummary {
  id: number;
  rcode: number;
  truncated: boolean;
  /** IPv4 addresses of the A records in the answer section, with their TTLs. */
  addresses: { address: string; ttl: number }[];
}

/** Reads an upstream response: its id, rcode, TC flag and every A record of the answer section. */
export function parseResponse(msg: Buffer): DnsAnswerSummary | null {
  if (msg.length < 12) return null;
  const flags = msg.readUInt16BE(2);
  if ((flags & 0x8000) === 0) return null;
  const qd = msg.readUInt16BE(4);
  const an = msg.readUInt16BE(6);
  let pos = 12;
  for (let i = 0; i < qd; i++) {
    const q = readName(msg, pos);
    if (!q || q.next + 4 > msg.length) return null;
    pos = q.next + 4;
  }
  const addresses: { address: string; ttl: number }[] = [];
  for (let i = 0; i < an; i++) {
    const r = readName(msg, pos);
    if (!r || r.next + 10 > msg.length) return null;
    const type = msg.readUInt16BE(r.next);
    const cls = msg.readUInt16BE(r.next + 2);
    const ttl = msg.readUInt32BE(r.next + 4);
    const rdlength = msg.readUInt16BE(r.next + 8);
    const rdata = r.next + 10;
    if (rdata + rdlength > msg.length) return null;
    if (type === TYPE_A && cls === 1 && rdlength === 4) {
      addresses.push({ address: [...msg.subarray(rdata, rdata + 4)].join("."), ttl });
    }
    pos = rdata + rdlength;
  }
  return { id: msg.readUInt16BE(0), rcode: flags & 0xf, truncated: (flags & 0x0200) !== 0, addresses };
}

/** Builds a query (for tests and probes): one question, RD set. */
export function buildQuery(id: number, name: string, type: number): Buffer {
  const labels = name.split(".").filter(Boolean);
  const parts = [Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0])];
  for (const label of labels) parts.push(Buffer.from([label.length]), Buffer.from(label, "latin1"));
  parts.push(Buffer.from([0, type >> 8, type & 0xff, 0, 1]));
  return Buffer.concat(parts);
}

/** Builds a response with A records for a query (for test DNS servers). */
export function buildAResponse(query: Buffer, question: DnsQuestion, addresses: string[], ttl = 60): Buffer {
  const head = emptyAnswer(query, question, 0);
  head.writeUInt16BE(question.type === TYPE_A ? addresses.length : 0, 6);
  if (question.type !== TYPE_A) return head;
  const records = addresses.map((a) => {
    const r = Buffer.alloc(16);
    r.writeUInt16BE(0xc00c, 0); // pointer to the question's name
    r.writeUInt16BE(TYPE_A, 2);
    r.writeUInt16BE(1, 4);
    r.writeUInt32BE(ttl, 6);
    r.writeUInt16BE(4, 10);
    a.split(".").forEach((octet, i) => r.writeUInt8(Number(octet), 12 + i));
    return r;
  });
  return Buffer.concat([head, ...records]);
}
